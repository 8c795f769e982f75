"""The one loop, its curve and the learning-rate tuner (optim/loop.py, curve.py, tune.py)."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.learned.problems import MNISTNets, Quadratics
from backprop2lib.optim import LR_GRID, SGD, Adam, Curve, LRChoice, half_decades, run, tune_lr


def quadratics(n=4, seed=0):
    return Quadratics.sample(n, seed=seed, dtype=torch.float64)


# ------------------------------------------------------------------ run

def test_run_matches_a_hand_loop_and_decreases_the_loss():
    prob = quadratics(5)
    curve = run(SGD(1e-3), prob, 30)
    assert isinstance(curve, Curve)
    assert curve.losses.shape == (31, 5) and curve.n_steps == 30 and curve.n_instances == 5
    assert not curve.diverged.any() and (curve.diverged_at == -1).all()
    theta = prob.init()
    expected = []
    for t in range(31):
        loss, grad = prob.loss_and_grad(theta, t)
        expected.append(loss.numpy())
        theta = theta - 1e-3 * grad
    np.testing.assert_allclose(curve.losses, np.stack(expected), rtol=1e-12)
    assert (curve.losses[-1] < curve.losses[0]).all()
    np.testing.assert_array_equal(curve.at(30), curve.losses[30])
    np.testing.assert_array_equal(curve.at(), curve.losses[30])
    s = curve.summary(30)
    assert s.n == 5 and s.n_diverged == 0
    assert s.mean == pytest.approx(curve.losses[30].mean())


def test_run_zero_steps_records_the_start():
    prob = quadratics(2)
    curve = run(Adam(0.1), prob, 0)
    assert curve.losses.shape == (1, 2)
    np.testing.assert_allclose(curve.losses[0], prob.loss(prob.init()).numpy())


def test_divergence_is_flagged_frozen_and_nan_after():
    prob = Quadratics.sample(6, seed=0)  # float32: a blow-up overflows within a few steps
    curve = run(SGD(10.0), prob, 15)
    assert curve.diverged.all()
    for b in range(6):
        k = curve.diverged_at[b]
        assert 1 <= k <= 15
        assert np.isfinite(curve.losses[:k, b]).all()
        assert np.isnan(curve.losses[k:, b]).all()
    s = curve.summary(15)
    assert s.n == 0 and s.n_diverged == 6 and math.isnan(s.mean)
    assert curve.steps_to_reach(1e9) is None


def test_divergence_of_some_instances_leaves_the_others_alone():
    # W = c·I: curvature 2c², so SGD with lr 0.1 converges for c = 1 and blows up for c = 10
    scale = torch.tensor([1.0, 10.0, 1.0, 10.0, 1.0])
    W = scale[:, None, None] * torch.eye(4).expand(5, 4, 4)
    y = torch.ones(5, 4)
    prob = Quadratics(W, y, torch.zeros(5, 4))
    curve = run(SGD(0.1), prob, 40)
    np.testing.assert_array_equal(curve.diverged, [False, True, False, True, False])
    assert (curve.diverged_at[[1, 3]] > 5).all() and (curve.diverged_at[[0, 2, 4]] == -1).all()
    ok = ~curve.diverged
    assert np.isfinite(curve.losses[:, ok]).all()
    assert curve.losses[-1, ok].max() < 1e-6
    s = curve.summary(40)
    assert s.n == 3 and s.n_diverged == 2
    np.testing.assert_allclose(curve.mean_losses(), curve.losses[:, ok].mean(1))
    # a bound catches a blow-up before it overflows
    bounded = run(SGD(0.1), prob, 40, diverged_above=1e6)
    np.testing.assert_array_equal(bounded.diverged, curve.diverged)
    assert (bounded.diverged_at[[1, 3]] < curve.diverged_at[[1, 3]]).all()
    np.testing.assert_array_equal(bounded.losses[:, ok], curve.losses[:, ok])


def test_run_bad_arguments():
    prob = quadratics(2)
    with pytest.raises(ValueError, match="n_steps"):
        run(SGD(0.1), prob, -1)
    with pytest.raises(ValueError, match="n_steps"):
        run(SGD(0.1), prob, 2.5)
    with pytest.raises(ValueError, match="stepper"):
        run(object(), prob, 2)
    curve = run(SGD(1e-3), prob, 3)
    with pytest.raises(ValueError, match="step"):
        curve.summary(4)
    with pytest.raises(ValueError, match="step"):
        curve.at(-1)


# ------------------------------------------------------------------ tuning and comparisons

def test_tune_lr_picks_the_best_final_loss():
    val = quadratics(4, seed=5)
    grid = (1e-5, 1e-4, 1e-3, 3e-3, 0.1, 1.0)
    choice = tune_lr(SGD, grid, val, 20)
    assert isinstance(choice, LRChoice) and choice.name == "SGD" and choice.horizon == 20
    assert choice.grid == grid and len(choice.final_losses) == len(grid)
    expected = []
    for lr in grid:
        c = run(SGD(lr), val, 20)
        expected.append(math.inf if c.diverged.any() else c.losses[20].mean())
    assert list(choice.final_losses) == pytest.approx(expected)
    assert choice.final_losses[-1] > 1e6  # lr 1 blows up on these quadratics (no overflow yet in float64)
    assert choice.best == grid[int(np.argmin(expected))]
    assert choice.best not in (1e-5, 1.0) and not choice.at_edge
    assert "SGD" in str(choice)
    bounded = tune_lr(SGD, grid, val, 20, diverged_above=1e6)
    assert bounded.final_losses[-1] == math.inf and bounded.best == choice.best


def test_tuning_at_several_horizons_equals_tuning_at_each():
    from backprop2lib.optim import tune_lr_at

    val = quadratics(4, seed=5)
    grid = (1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1)
    both = tune_lr_at(SGD, grid, val, [30, 6])
    assert sorted(both) == [6, 30]
    for h in (6, 30):
        alone = tune_lr(SGD, grid, val, h)
        assert both[h].best == alone.best and both[h].horizon == h
        assert list(both[h].scores) == pytest.approx(list(alone.scores))
    # a rate that diverges after the short horizon still scores at it
    at = run(SGD(0.03), val, 30, diverged_above=1e5).diverged_at
    late = int(at[at >= 0].min())  # the first row to blow up
    assert late > 1  # lr 0.03 blows up, but not at once
    bounded = tune_lr_at(SGD, (1e-3, 0.01, 0.03), val, [late - 1, 30], diverged_above=1e5)
    assert math.isfinite(bounded[late - 1].scores[-1]) and bounded[30].scores[-1] == math.inf
    with pytest.raises(ValueError, match="horizons"):
        tune_lr_at(SGD, grid, val, 5)
    with pytest.raises(ValueError, match="horizons"):
        tune_lr_at(SGD, grid, val, [0, 5])


def test_tune_lr_at_edge():
    val = quadratics(3, seed=2)
    low = tune_lr(SGD, (1e-6, 1e-5, 1e-4), val, 10)  # the larger, the better: best is the top edge
    assert low.best == 1e-4 and low.at_edge
    assert LRChoice("x", 0.01, (0.001, 0.01, 0.1), (3.0, 1.0, 2.0)).at_edge is False
    assert LRChoice("x", 0.001, (0.001, 0.01, 0.1), (1.0, 2.0, 3.0)).at_edge is True


def test_tune_lr_bad_arguments():
    val = quadratics(2)
    with pytest.raises(ValueError, match="grid"):
        tune_lr(SGD, (), val, 5)
    with pytest.raises(ValueError, match="grid"):
        tune_lr(SGD, (0.1, 0.0), val, 5)
    with pytest.raises(ValueError, match="grid"):
        tune_lr(SGD, (0.1, 0.01), val, 5)
    with pytest.raises(ValueError, match="horizon"):
        tune_lr(SGD, (0.1, 0.3), val, 0)
    with pytest.raises(ValueError, match="grid"):  # one rate cannot be judged against its neighbours
        tune_lr(SGD, (0.1,), val, 5)
    with pytest.raises(ValueError, match="grid"):  # everything diverged: no choice to report
        tune_lr(SGD, (10.0, 100.0), Quadratics.sample(2), 30)
    with pytest.raises(ValueError, match="diverged_above"):
        run(SGD(0.1), val, 3, diverged_above=0.0)


def _curve(losses, name="c"):
    losses = np.asarray(losses, dtype=np.float64)
    diverged = np.isnan(losses).any(0)
    at = np.array([np.argmax(np.isnan(col)) if d else -1 for col, d in zip(losses.T, diverged)])
    return Curve(name, losses, at)


def test_steps_to_reach():
    c = _curve([[4.0, 6.0], [3.0, 5.0], [2.0, 2.0], [1.0, 1.0]])  # means 5, 4, 2, 1
    assert c.steps_to_reach(5.0) == 0
    assert c.steps_to_reach(3.0) == 2
    assert c.steps_to_reach(1.0) == 3
    assert c.steps_to_reach(0.5) is None
    # a diverging instance is left out of every step's mean, not only after it blew up
    d = _curve([[4.0, 100.0], [3.0, 100.0], [2.0, np.nan]])
    assert d.steps_to_reach(3.0) == 1
    with pytest.raises(ValueError, match="target"):
        c.steps_to_reach(math.nan)


def test_curve_reads_records_by_step_and_checks_its_shape():
    c = Curve("c", [[1.0, 2.0], [3.0, np.nan], [5.0, np.nan]], [-1, 1], steps=[0, 10, 20],
              seconds=[0.0, 1.0, 2.5])
    np.testing.assert_array_equal(c.at(10), [3.0, np.nan])
    np.testing.assert_array_equal(c.at(), c.final)
    assert c.n_steps == 20 and c.n_rows == 2 and c.diverged.tolist() == [False, True]
    assert c.seconds_per_step == pytest.approx(2.5 / 20)
    np.testing.assert_array_equal(c.loss_at_time(1.2), c.at(10))
    np.testing.assert_array_equal(c.loss_at_time(0.5), c.at(0))
    s = c.summary(10)
    assert s.n == 1 and s.n_diverged == 1 and s.mean == 3.0
    with pytest.raises(ValueError, match="step: 5 was not recorded"):
        c.at(5)
    with pytest.raises(ValueError, match="losses"):
        Curve("c", [1.0, 2.0])
    with pytest.raises(ValueError, match="steps"):
        Curve("c", [[1.0], [2.0]], steps=[3, 1])
    with pytest.raises(ValueError, match="diverged_at"):
        Curve("c", [[1.0], [2.0]], [-1, -1])
    # an error bound makes raw values above it count as diverged in every summary
    raw = Curve("c", [[1.0, 2.0e9, 3.0]], diverged_above=1e6)
    assert raw.summary(0).n == 2 and raw.summary(0).n_diverged == 1


def test_record_every_keeps_the_steps_it_names_and_the_last():
    prob = quadratics(3)
    every = run(SGD(1e-3), prob, 10)
    sparse = run(SGD(1e-3), prob, 10, record_every=4)
    assert sparse.steps.tolist() == [0, 4, 8, 10]
    np.testing.assert_array_equal(sparse.losses, every.losses[[0, 4, 8, 10]])
    assert (np.diff(sparse.seconds) >= 0).all()


class _Evaluated:
    """Quadratics whose recorded loss is another function of θ than the training loss."""

    def __init__(self, prob):
        self.prob, self.name = prob, "evaluated"

    def init(self):
        return self.prob.init()

    def loss_and_grad(self, theta, t):
        return self.prob.loss_and_grad(theta, t)

    def evaluate(self, theta):
        return theta.pow(2).sum(1)


def test_an_evaluate_method_is_what_gets_recorded():
    prob = quadratics(3)
    curve = run(SGD(1e-3), _Evaluated(prob), 5, keep_params=True)
    theta = prob.init()
    for t in range(5):
        theta = theta - 1e-3 * prob.loss_and_grad(theta, t)[1]
    np.testing.assert_allclose(curve.at(5), theta.pow(2).sum(1).numpy(), rtol=1e-12)
    torch.testing.assert_close(curve.params, theta)


def test_chunked_runs_equal_one_run():
    prob = quadratics(5)
    whole = run(Adam(0.01), prob, 8)
    chunked = run(Adam(0.01), prob, 8, chunk_size=2)
    np.testing.assert_allclose(chunked.losses, whole.losses, rtol=1e-12)
    with pytest.raises(ValueError, match="chunk"):
        run(Adam(0.01), _Evaluated(prob), 3, chunk_size=2)


def test_half_decades_is_the_default_grid():
    assert half_decades(1e-4, 1.0) == LR_GRID
    assert half_decades(0.003, 10) == (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    with pytest.raises(ValueError, match="low, high"):
        half_decades(1.0, 0.1)


def test_runs_on_mnist_are_paired():
    from backprop2lib.data.mnist import bundled_split

    data = bundled_split().validation
    prob = MNISTNets.sample(3, data, seed=4, dtype=torch.float64)
    twin = MNISTNets.sample(3, data, seed=4, dtype=torch.float64)  # same instances, built again
    adam = run(Adam(0.01), prob, 5)
    sgd = run(SGD(0.5), prob, 5)
    again = run(Adam(0.01), twin, 5)
    assert adam.losses.shape == (6, 3) and np.isfinite(adam.losses).all()
    np.testing.assert_array_equal(adam.losses[0], sgd.losses[0])  # same θ0 and minibatch 0
    np.testing.assert_array_equal(adam.losses, again.losses)  # identical optimisers: identical curves
    assert not np.array_equal(adam.losses[1:], sgd.losses[1:])
    np.testing.assert_array_equal(adam.at(0), again.at(0))
    # a different seed is a different set of instances
    other = run(Adam(0.01), MNISTNets.sample(3, data, seed=5, dtype=torch.float64), 0)
    assert not np.array_equal(other.losses[0], adam.losses[0])
