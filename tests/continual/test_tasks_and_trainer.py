import pytest
import torch

import backprop2lib.continual.trainer as trainer_module
from backprop2lib.continual import (RowPlan, TrainSettings, accuracy, diagonal_fisher, permuted_mnist, proximal_step,
                                    split_mnist, square_pixels, train_sequence)
from backprop2lib.models.mlp import MLP

N_PIXELS = 784
IDENTITY = torch.arange(N_PIXELS)


# ====================================================================================== tasks

def test_square_pixels_is_the_centred_block():
    for side in (1, 8, 27, 28):
        start = (28 - side) // 2
        want = [r * 28 + c for r in range(start, start + side) for c in range(start, start + side)]
        assert square_pixels(side).tolist() == want
    for bad in (0, 29, 8.0, "8"):
        with pytest.raises(ValueError, match="square"):
            square_pixels(bad)


def test_permuted_mnist_permutations(split):
    seq = permuted_mnist(split, 4, [11, 12])
    assert seq.permutations.shape == (2, 4, N_PIXELS) and seq.n_tasks == 4 and seq.n_seeds == 2
    assert seq.n_outputs == 10 and seq.task_names[0] == "unpermuted"
    for s in range(2):
        assert torch.equal(seq.permutations[s, 0], IDENTITY)
        for t in range(1, 4):
            perm = seq.permutations[s, t]
            assert torch.equal(perm.sort().values, IDENTITY)  # a permutation ...
            assert int((perm != IDENTITY).sum()) > 700  # ... that moves (almost) every pixel
        for t in range(2, 4):
            assert not torch.equal(seq.permutations[s, t], seq.permutations[s, t - 1])
    assert not torch.equal(seq.permutations[0, 1], seq.permutations[1, 1])  # different seeds differ


def test_a_seed_gets_the_same_permutations_whatever_seeds_are_beside_it(split):
    a = permuted_mnist(split, 3, [11, 12])
    b = permuted_mnist(split, 3, [12, 99, 11])
    assert torch.equal(a.permutations[0], b.permutations[2])
    assert torch.equal(a.permutations[1], b.permutations[0])
    assert not torch.equal(b.permutations[1, 1:], b.permutations[0, 1:])


def test_square_permutations_move_only_the_centred_pixels(split):
    seq = permuted_mnist(split, 3, [3, 4], square=8)
    centre = torch.zeros(N_PIXELS, dtype=torch.bool)
    centre[square_pixels(8)] = True
    for s in range(2):
        for t in range(3):
            perm = seq.permutations[s, t]
            assert torch.equal(perm[~centre], IDENTITY[~centre])  # outside the square: untouched
            assert torch.equal(perm[centre].sort().values, IDENTITY[centre])  # inside: a shuffle of the square
            if t > 0:
                assert int((perm[centre] != IDENTITY[centre]).sum()) > 50


def test_inputs_apply_each_rows_permutation(split):
    seq = permuted_mnist(split, 2, [21, 22])
    rows = torch.tensor([0, 1, 0])
    x, y = seq.inputs("test", 1, rows)
    pixels, labels = split.test.pixels(), split.test.labels
    assert x.shape == (3, len(labels), N_PIXELS) and y.shape == (3, len(labels))
    for r, s in enumerate(rows.tolist()):
        perm = seq.permutations[s, 1]
        assert torch.equal(x[r], pixels[:, perm])
        assert torch.equal(y[r], labels)
    # a few entries by the definition x_out[r, n, k] = x_in[n, perm[k]]
    for r, n, k in [(0, 0, 0), (1, 5, 300), (2, 999, 783), (1, 17, 406)]:
        assert float(x[r, n, k]) == float(pixels[n, seq.permutations[rows[r], 1, k]])
    # task 0 is the unpermuted images
    x0, _ = seq.inputs("test", 0, rows)
    assert torch.equal(x0[1], pixels)


def test_minibatches_pick_from_the_evaluation_set(split):
    seq = permuted_mnist(split, 2, [21, 22])
    rows = torch.tensor([1, 0])
    which = seq.minibatch_positions(1, 3, 5, [21, 22])[rows][:, 2]  # [R, B]: step 2 of each row
    x, y = seq.inputs("train", 1, rows, which)
    full_x, full_y = seq.inputs("train", 1, rows)
    assert x.shape == (2, 5, N_PIXELS)
    for r in range(2):
        assert torch.equal(x[r], full_x[r, which[r]])
        assert torch.equal(y[r], full_y[r, which[r]])


def test_minibatch_positions_do_not_depend_on_the_other_seeds(split):
    a = permuted_mnist(split, 2, [11, 12])
    b = permuted_mnist(split, 2, [12, 11, 13])
    pa = a.minibatch_positions(1, 4, 6, [11, 12])
    pb = b.minibatch_positions(1, 4, 6, [12, 11, 13])
    assert pa.shape == (2, 4, 6)
    assert torch.equal(pa[0], pb[1]) and torch.equal(pa[1], pb[0])
    assert not torch.equal(pb[0], pb[2])
    assert int(pa.min()) >= 0 and int(pa.max()) < a.size("train", 1)
    assert not torch.equal(a.minibatch_positions(0, 4, 6, [11, 12]), pa)  # tasks draw differently


@pytest.mark.parametrize("digits", [((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)), ((3, 8), (1, 7))])
def test_split_mnist_keeps_the_pairs_digits(split, digits):
    seq = split_mnist(split, [0, 1], digits=digits)
    assert seq.n_outputs == 2 and seq.n_tasks == len(digits)
    assert seq.task_names == tuple(f"{a}/{b}" for a, b in digits)
    assert torch.equal(seq.permutations, IDENTITY.expand(2, len(digits), -1))
    for part in ("train", "validation", "test"):
        data = getattr(split, part)
        pixels, labels = data.pixels(), data.labels
        for t, (first, second) in enumerate(digits):
            keep = [n for n in range(len(labels)) if int(labels[n]) in (first, second)]
            x, y = seq.inputs(part, t, torch.tensor([1]))
            assert seq.size(part, t) == len(keep)
            assert torch.equal(x[0], pixels[keep])
            assert y[0].tolist() == [int(int(labels[n]) == second) for n in keep]
            assert set(y[0].tolist()) == {0, 1}


def test_task_arguments_are_checked(split):
    with pytest.raises(ValueError, match="n_tasks"):
        permuted_mnist(split, 0, [1])
    with pytest.raises(ValueError, match="seed_values"):
        permuted_mnist(split, 2, [])
    with pytest.raises(ValueError, match="square"):
        permuted_mnist(split, 2, [1], square=30)
    for digits in (((0, 1), (1, 2)), ((0, 10),), ((0, 1, 2),), ()):
        with pytest.raises(ValueError, match="digits"):
            split_mnist(split, [0], digits=digits)
    with pytest.raises(ValueError, match="seed_values"):
        split_mnist(split, [])
    seq = permuted_mnist(split, 2, [1, 2])
    with pytest.raises(ValueError, match="part"):
        seq.inputs("training", 0, torch.tensor([0]))
    with pytest.raises(ValueError, match="task"):
        seq.inputs("test", 2, torch.tensor([0]))
    with pytest.raises(ValueError, match="seed_of_row"):
        seq.inputs("test", 0, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="seed_of_row"):
        seq.inputs("test", 0, torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="which"):
        seq.inputs("train", 0, torch.tensor([0, 1]), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="seed_values"):
        seq.minibatch_positions(0, 2, 3, [1])


# ==================================================================================== trainer

MODEL = MLP((784, 8, 10), "relu")
SETTINGS = TrainSettings(steps_per_task=5, batch=8, fisher_images=20, adaptations=2, adapt_steps=3, eval_every=None)
GRID = {"sgd": [0.0], "ewc": [1.0], "quadratic": [1.0]}


def _assert_rows_equal(batched, b_rows, alone, a_rows):
    for field in ("test", "validation", "first_solution", "first_fisher", "first_scale_precision"):
        got, want = getattr(batched, field)[b_rows], getattr(alone, field)[a_rows]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True, msg=field)


def test_seeds_trained_together_equal_seeds_trained_alone(split):
    seeds = [5, 6]
    together = train_sequence(MODEL, permuted_mnist(split, 2, seeds), RowPlan.grid(GRID, 2), SETTINGS, seeds)
    assert together.test.shape == (6, 2, 2) and together.validation.shape == (6, 2, 2)
    assert bool(torch.isfinite(together.test).all()) and not together.diverged
    for s, value in enumerate(seeds):
        alone = train_sequence(MODEL, permuted_mnist(split, 2, [value]), RowPlan.grid(GRID, 1), SETTINGS, [value])
        # grid rows are method-major with seeds innermost: method m, seed s is row 2 m + s together, m alone
        _assert_rows_equal(together, [2 * m + s for m in range(3)], alone, [0, 1, 2])
    # the rows of one seed share the start and task 1, then the penalties make them part ways
    assert torch.equal(together.first_solution[0], together.first_solution[2])
    assert torch.equal(together.test[0, 0], together.test[4, 0])
    assert not torch.equal(together.test[0, 1], together.test[2, 1])


def test_sgd_rows_do_not_see_the_penalty_rows(split):
    seeds = [7]
    seq = permuted_mnist(split, 3, seeds)
    settings = TrainSettings(steps_per_task=4, batch=8, fisher_images=20, adaptations=2, adapt_steps=2)
    mixed = train_sequence(MODEL, seq, RowPlan.grid({"l2": [3.0], "sgd": [0.0], "ewc": [10.0], "online_ewc": [5.0],
                                                     "quadratic": [1.0]}, 1), settings, seeds)
    alone = train_sequence(MODEL, seq, RowPlan.grid({"sgd": [0.0]}, 1), settings, seeds)
    torch.testing.assert_close(mixed.test[1], alone.test[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(mixed.validation[1], alone.validation[0], rtol=0, atol=1e-5)
    assert alone.first_fisher is None and alone.first_scale_precision is None
    assert not torch.equal(mixed.test[1, 1:], mixed.test[2, 1:])  # ewc at λ = 10 does train differently


def test_an_ewc_rows_penalty_step_matches_the_formula(split, monkeypatch):
    """The first step of task 2 by hand: SGD from the task-1 solution θ1, then the implicit step of
    ½ λ Σ (F_i / mean F)(θ_i − θ1_i)² with F the true Fisher of task 1's first training images at θ1."""
    calls = []

    def recording_step(regulariser, v, step):
        w = proximal_step(regulariser, v, step)
        calls.append((regulariser, v.clone(), step, w.clone()))
        return w

    monkeypatch.setattr(trainer_module, "proximal_step", recording_step)
    seeds, lam, lr = [5], 2.5, 0.1
    seq = permuted_mnist(split, 2, seeds)
    settings = TrainSettings(steps_per_task=3, batch=8, fisher_images=20, learning_rate=lr)
    plan = RowPlan(("sgd", "ewc"), (0.0, lam), (0, 0))
    run = train_sequence(MODEL, seq, plan, settings, seeds)
    assert len(calls) == settings.steps_per_task  # one implicit step per SGD step of task 2, none in task 1

    theta1 = run.first_solution[1]
    x, _ = seq.inputs("train", 0, torch.tensor([0]), torch.arange(20).unsqueeze(0))
    fisher = diagonal_fisher(MODEL, theta1.unsqueeze(0), x)[0]
    torch.testing.assert_close(run.first_fisher[1], fisher, rtol=1e-5, atol=1e-9)
    assert bool(torch.isnan(run.first_fisher[0]).all())  # the sgd row computed none
    normalised = fisher / fisher.mean()

    penalty, v, step, w = calls[0]
    assert step == lr
    # the penalty's gradient at any θ is λ F̂ (θ − θ1)
    theta = theta1 + torch.randn(theta1.shape, generator=torch.Generator().manual_seed(0))
    _, grad = penalty.value_and_grad(torch.stack([theta, theta]))
    torch.testing.assert_close(grad[1], lam * normalised * (theta - theta1), rtol=1e-4, atol=1e-6)
    assert float(grad[0].abs().max()) < 1e-20  # the sgd row: λ = 0
    # v is one SGD step on task 2's first minibatch from θ1
    which = seq.minibatch_positions(1, settings.steps_per_task, settings.batch, seeds)[:, 0]
    xb, yb = seq.inputs("train", 1, torch.tensor([0]), which)
    flat = theta1.unsqueeze(0).clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(MODEL.forward(MODEL.unflatten(flat), xb)[0], yb[0])
    (g,) = torch.autograd.grad(loss, flat)
    torch.testing.assert_close(v[1], theta1 - lr * g[0], rtol=1e-5, atol=1e-6)
    # and w = argmin ½ λ Σ F̂ (w − θ1)² + |w − v|² / (2 lr) = (v + lr λ F̂ θ1) / (1 + lr λ F̂)
    k = lr * lam * normalised
    torch.testing.assert_close(w[1], (v[1] + k * theta1) / (1 + k), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w[0], v[0], rtol=0, atol=0)


def test_accuracy_against_a_direct_count(split):
    seq = permuted_mnist(split, 2, [3, 4])
    flat = MODEL.flatten(MODEL.init(3, generator=torch.Generator().manual_seed(1)))
    flat[2, 0] = float("nan")
    rows = torch.tensor([1, 0, 1])
    got = accuracy(MODEL, flat, seq, "test", 1, rows, chunk=300)
    x, y = seq.inputs("test", 1, rows)
    for r in range(2):
        logits = MODEL.forward(MODEL.unflatten(flat[r]), x[r:r + 1])[0]
        n_right = sum(int(logits[n].argmax() == y[r, n]) for n in range(len(y[r])))
        assert float(got[r]) == pytest.approx(n_right / len(y[r]))
    assert torch.isnan(got[2])
    limited = accuracy(MODEL, flat[:1], seq, "test", 1, rows[:1], limit=50)
    logits = MODEL.forward(MODEL.unflatten(flat[0]), x[:1, :50])[0]
    assert float(limited[0]) == pytest.approx(float((logits.argmax(-1) == y[0, :50]).float().mean()))


def test_curves_end_each_task_at_the_accuracy_matrix(split):
    settings = TrainSettings(steps_per_task=5, batch=8, fisher_images=20, adaptations=2, adapt_steps=2, eval_every=2)
    run = train_sequence(MODEL, permuted_mnist(split, 2, [9]), RowPlan.grid({"sgd": [0.0], "l2": [1.0]}, 1),
                         settings, [9])
    assert run.curve_steps == (0, 2, 4, 5, 7, 9, 10)
    assert run.curves.shape == (2, 7, 2)
    torch.testing.assert_close(run.curves[:, 3], run.test[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(run.curves[:, 6], run.test[:, 1], rtol=0, atol=0)


def test_trainer_arguments_are_checked(split):
    with pytest.raises(ValueError, match="methods: unknown \\['si'\\]"):
        RowPlan.grid({"sgd": [0.0], "si": [1.0]}, 1)
    with pytest.raises(ValueError, match="methods, strengths, seed_of_row"):
        RowPlan(("sgd", "ewc"), (0.0,), (0, 0))
    with pytest.raises(ValueError, match="strengths"):
        RowPlan.grid({"ewc": []}, 2)
    with pytest.raises(ValueError, match="method, strength"):
        RowPlan.grid(GRID, 1).rows("ewc", 2.0)
    for field, value in (("steps_per_task", 0), ("batch", 2.5), ("adaptations", 1), ("learning_rate", 0.0),
                         ("fisher_images", -1)):
        with pytest.raises(ValueError, match=field):
            TrainSettings(**{"steps_per_task": 5, field: value})
    split_seq = split_mnist(split, [0])
    with pytest.raises(ValueError, match="model: expected 784 inputs and 2 outputs"):
        train_sequence(MODEL, split_seq, RowPlan.grid({"sgd": [0.0]}, 1), SETTINGS, [0])
    seq = permuted_mnist(split, 2, [0])
    with pytest.raises(ValueError, match="model: expected 784 inputs"):
        train_sequence(MLP((100, 8, 10)), seq, RowPlan.grid({"sgd": [0.0]}, 1), SETTINGS, [0])
    with pytest.raises(ValueError, match="seed_values"):
        train_sequence(MODEL, seq, RowPlan.grid({"sgd": [0.0]}, 1), SETTINGS, [0, 1])
    with pytest.raises(ValueError, match="plan"):
        train_sequence(MODEL, seq, RowPlan.grid({"sgd": [0.0]}, 2), SETTINGS, [0])


def test_negative_eval_every_is_rejected():
    with pytest.raises(ValueError, match="eval_every"):
        TrainSettings(steps_per_task=5, eval_every=-1)


def test_diverged_rows_are_recorded_and_the_others_go_on(split):
    seq = permuted_mnist(split, 2, [5])
    settings = TrainSettings(steps_per_task=5, batch=8, fisher_images=20, learning_rate=1e25)
    run = train_sequence(MODEL, seq, RowPlan.grid({"sgd": [0.0], "ewc": [1.0]}, 1), settings, [5])
    assert len(run.diverged) == 2 and "task 1" in run.diverged[0]
    assert bool(torch.isnan(run.test).all())


def test_a_diverged_learned_scale_row_does_not_stop_the_run(split):
    seq = permuted_mnist(split, 2, [5])
    settings = TrainSettings(steps_per_task=5, batch=8, fisher_images=20, adaptations=2, adapt_steps=2,
                             learning_rate=1e25)
    run = train_sequence(MODEL, seq, RowPlan.grid({"sgd": [0.0], "quadratic": [1.0]}, 1), settings, [5])
    assert any(d.startswith("quadratic") for d in run.diverged)


def test_stream_seeds_are_distinct_across_seeds_streams_and_tasks():
    from backprop2lib.continual.tasks import STREAMS, stream_seed

    seen = {stream_seed(s, stream, t) for s in range(50) for stream in STREAMS for t in range(20)}
    assert len(seen) == 50 * len(STREAMS) * 20
    with pytest.raises(ValueError, match="stream"):
        stream_seed(1, "init")
    with pytest.raises(ValueError, match="task"):
        stream_seed(1, "minibatches", 1000)
