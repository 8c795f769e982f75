import pytest
import torch

from backprop2lib.continual import average_accuracy, backward_transfer, forgetting, learning_accuracy

D = torch.float64

# acc[i, j]: accuracy on task j after training task i.
#
# A: task 1 improves while task 2 is learned (0.80 -> 0.90), then both old tasks drop.
#   ACC = (0.60 + 0.70 + 0.97) / 3 = 2.27 / 3       = 0.756666...
#   LA  = (0.80 + 0.95 + 0.97) / 3 = 2.72 / 3       = 0.906666...
#   BWT = ((0.60 - 0.80) + (0.70 - 0.95)) / 2       = -0.225      (against the diagonal)
#   F   = ((0.90 - 0.60) + (0.95 - 0.70)) / 2       = 0.275       (against the best row i < 2: 0.90 for task 1)
A = [[0.80, 0.10, 0.12],
     [0.90, 0.95, 0.08],
     [0.60, 0.70, 0.97]]
A_EXPECTED = (2.27 / 3, 2.72 / 3, -0.225, 0.275)

# B: task 2 scores 0.99 before it is ever trained (row 0) - Chaudhry et al.'s max over l < T-1 counts it.
#   ACC = (0.50 + 0.60 + 0.90) / 3 = 2.00 / 3       = 0.666666...
#   LA  = (0.70 + 0.80 + 0.90) / 3 = 2.40 / 3       = 0.8
#   BWT = ((0.50 - 0.70) + (0.60 - 0.80)) / 2       = -0.2
#   F   = ((0.70 - 0.50) + (0.99 - 0.60)) / 2       = (0.20 + 0.39) / 2 = 0.295
B = [[0.70, 0.99, 0.10],
     [0.65, 0.80, 0.10],
     [0.50, 0.60, 0.90]]
B_EXPECTED = (2.00 / 3, 2.40 / 3, -0.2, 0.295)

# C: the last row beats every earlier one: positive transfer, negative forgetting (the last row is not in the max).
#   ACC = (0.70 + 0.80 + 0.90) / 3 = 0.8
#   LA  = (0.50 + 0.60 + 0.90) / 3 = 2.00 / 3       = 0.666666...
#   BWT = ((0.70 - 0.50) + (0.80 - 0.60)) / 2       = 0.2
#   F   = ((0.50 - 0.70) + (0.60 - 0.80)) / 2       = -0.2
C = [[0.50, 0.10, 0.10],
     [0.40, 0.60, 0.10],
     [0.70, 0.80, 0.90]]
C_EXPECTED = (0.8, 2.00 / 3, 0.2, -0.2)

METRICS = (average_accuracy, learning_accuracy, backward_transfer, forgetting)


@pytest.mark.parametrize("acc, expected", [(A, A_EXPECTED), (B, B_EXPECTED), (C, C_EXPECTED)], ids="ABC")
def test_metrics_of_hand_worked_matrices(acc, expected):
    acc = torch.tensor(acc, dtype=D)
    for metric, want in zip(METRICS, expected):
        got = metric(acc)
        assert got.shape == ()
        assert float(got) == pytest.approx(want, abs=1e-12), metric.__name__


def test_metrics_over_leading_axes():
    # [2, 3, T, T]: the three matrices, and each scaled by a half (every metric is linear in acc)
    mats = torch.tensor([A, B, C], dtype=D)
    batch = torch.stack([mats, 0.5 * mats])
    expected = torch.tensor([A_EXPECTED, B_EXPECTED, C_EXPECTED], dtype=D)  # [3, 4 metrics]
    for m, metric in enumerate(METRICS):
        got = metric(batch)
        assert got.shape == (2, 3)
        torch.testing.assert_close(got, torch.stack([expected[:, m], 0.5 * expected[:, m]]), rtol=1e-12, atol=1e-12)


def _slow(acc):
    """The four metrics of one T x T matrix, by loops over the definitions."""
    T = len(acc)
    avg = sum(acc[T - 1][j] for j in range(T)) / T
    learn = sum(acc[j][j] for j in range(T)) / T
    bwt = sum(acc[T - 1][j] - acc[j][j] for j in range(T - 1)) / (T - 1)
    forget = sum(max(acc[i][j] for i in range(T - 1)) - acc[T - 1][j] for j in range(T - 1)) / (T - 1)
    return avg, learn, bwt, forget


def test_metrics_of_random_matrices_match_the_definitions():
    acc = torch.rand(4, 5, 5, generator=torch.Generator().manual_seed(0), dtype=D)
    for m, metric in enumerate(METRICS):
        got = metric(acc)
        for r in range(4):
            assert float(got[r]) == pytest.approx(_slow(acc[r].tolist())[m], abs=1e-12)


def test_metrics_reject_bad_shapes():
    one = torch.tensor([[0.9]], dtype=D)
    assert float(average_accuracy(one)) == 0.9 and float(learning_accuracy(one)) == 0.9
    for metric in (backward_transfer, forgetting):
        with pytest.raises(ValueError, match="acc: backward transfer and forgetting need at least two tasks"):
            metric(one)
    for metric in METRICS:
        with pytest.raises(ValueError, match="acc: expected an accuracy matrix"):
            metric(torch.rand(3, 2))
        with pytest.raises(ValueError, match="acc: expected an accuracy matrix"):
            metric(torch.rand(3))
