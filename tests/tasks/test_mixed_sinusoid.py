import math

import numpy as np
import pytest
import torch

from backprop2lib.tasks import MixedSinusoidTasks, TaskFamily


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def slow_target(truth: np.ndarray, x: np.ndarray, d: int, o: int) -> np.ndarray:
    """y_i = sum_j A_ij sin(2 pi sum_k F_jk (x_k - phi_k)) + b_i, one point and one output at a time."""
    phase, freq, mix, offset = truth[:d], truth[d:d + o * d], truth[d + o * d:d + o * d + o * o], truth[-o:]
    y = np.zeros((x.shape[0], o))
    for n in range(x.shape[0]):
        waves = [math.sin(2 * math.pi * sum(freq[j * d + k] * (x[n, k] - phase[k]) for k in range(d)))
                 for j in range(o)]
        for i in range(o):
            y[n, i] = sum(mix[i * o + j] * waves[j] for j in range(o)) + offset[i]
    return y


def test_is_a_family_with_the_expected_shapes_and_ranges():
    tasks = MixedSinusoidTasks()
    assert isinstance(tasks, TaskFamily) and tasks.n_truth == 2 + 6 + 9 + 3
    b = tasks.sample(7, 11, 5, generator=gen(0), dtype=torch.float64)
    assert b.x_support.shape == (7, 11, 2) and b.y_support.shape == (7, 11, 3)
    assert b.x_query.shape == (7, 5, 2) and b.truth.shape == (7, 20)
    assert -2 <= float(b.x_all.min()) and float(b.x_all.max()) <= 2
    phase, freq, mix, offset = tasks.unpack(b.truth)
    assert phase.shape == (7, 2) and freq.shape == (7, 3, 2) and mix.shape == (7, 3, 3) and offset.shape == (7, 3)
    one = MixedSinusoidTasks(input_dim=1, output_dim=1).sample(4, 6, generator=gen(1))
    assert one.x_support.shape == (4, 6, 1) and one.truth.shape == (4, 4)


def test_target_against_a_slow_reference():
    for d, o in ((2, 3), (1, 1), (3, 2)):
        tasks = MixedSinusoidTasks(d, o, noise_std=0.0)
        b = tasks.sample(3, 9, generator=gen(d * 10 + o), dtype=torch.float64)
        for t in range(3):
            expected = slow_target(b.truth[t].numpy(), b.x_support[t].numpy(), d, o)
            np.testing.assert_allclose(b.y_support[t].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_parameters_are_standard_normal_and_the_noise_has_the_stated_spread():
    tasks = MixedSinusoidTasks(noise_std=0.1)
    b = tasks.sample(3000, 40, generator=gen(2), dtype=torch.float64)
    assert abs(float(b.truth.mean())) < 0.02 and abs(float(b.truth.std()) - 1) < 0.02
    residual = b.y_support - tasks.target(b.truth, b.x_support)
    assert abs(float(residual.std()) - 0.1) < 0.002 and abs(float(residual.mean())) < 0.002


def test_same_seed_same_tasks_other_seed_other_tasks():
    a, b = (MixedSinusoidTasks().sample(4, 6, 6, generator=gen(3)) for _ in range(2))
    c = MixedSinusoidTasks().sample(4, 6, 6, generator=gen(4))
    assert torch.equal(a.y_all, b.y_all) and torch.equal(a.truth, b.truth)
    assert not torch.equal(a.truth, c.truth)


def test_legacy_task_is_numpys_draw_in_backprop2s_order():
    tasks = MixedSinusoidTasks()  # 2 -> 3, noise 0.1, inputs on [-2, 2]
    b = tasks.legacy_task(6763, 40, 30)
    rs = np.random.RandomState(6763)
    phase, freq, mix, offset = rs.normal(size=(2, 1)), rs.normal(size=(3, 2)), rs.normal(size=(3, 3)), rs.normal(size=(3, 1))
    x_train, x_test = rs.uniform(-2, 2, (2, 40)), rs.uniform(-2, 2, (2, 30))
    noise_train, noise_test = rs.normal(0, 0.1, (3, 40)), rs.normal(0, 0.1, (3, 30))

    def f(x, noise):
        return (mix @ np.sin(2 * np.pi * freq @ (x - phase)) + offset + noise).T

    assert b.x_support.dtype == torch.float64 and b.x_support.shape == (1, 40, 2) and b.x_query.shape == (1, 30, 2)
    np.testing.assert_array_equal(b.x_support[0].numpy(), x_train.T)
    np.testing.assert_array_equal(b.x_query[0].numpy(), x_test.T)
    np.testing.assert_allclose(b.y_support[0].numpy(), f(x_train, noise_train), rtol=0, atol=1e-13)
    np.testing.assert_allclose(b.y_query[0].numpy(), f(x_test, noise_test), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(b.truth[0].numpy(),
                                  np.concatenate([phase.ravel(), freq.ravel(), mix.ravel(), offset.ravel()]))
    # the default test size is the training size, and the first draws do not depend on the sizes
    c = tasks.legacy_task(6763, 25, dtype=torch.float32)
    assert c.x_query.shape == (1, 25, 2) and c.y_query.dtype == torch.float32
    assert torch.equal(c.truth, b.truth.float())


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_dim: expected an int >= 1"):
        MixedSinusoidTasks(input_dim=0)
    with pytest.raises(ValueError, match="output_dim"):
        MixedSinusoidTasks(output_dim=2.5)
    with pytest.raises(ValueError, match="x_range"):
        MixedSinusoidTasks(x_range=(2.0, -2.0))
    with pytest.raises(ValueError, match="noise_std"):
        MixedSinusoidTasks(noise_std=-1.0)
    tasks = MixedSinusoidTasks()
    with pytest.raises(ValueError, match=r"truth: expected shape \[T, 20\]"):
        tasks.target(torch.zeros(2, 19), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match=r"x: expected shape \[2, N, 2\]"):
        tasks.target(torch.zeros(2, 20), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="seed"):
        tasks.legacy_task(-1, 10)
    with pytest.raises(ValueError, match="n_train"):
        tasks.legacy_task(0, 0)
    with pytest.raises(ValueError, match="n_test"):
        tasks.legacy_task(0, 10, n_test=0)
    with pytest.raises(ValueError, match="n_tasks"):
        tasks.sample(0, 3)
