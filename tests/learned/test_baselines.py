"""Baselines for the learned optimizer and the evaluation harness (learned/baselines.py, evaluate.py)."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.learned.baselines import BASELINES, LR_GRID, NAG, SGD, Adam, LearnedStepper, RMSprop
from backprop2lib.learned.evaluate import (Curve, LRChoice, final, mean_ci, paired_difference, run,
                                           steps_to_reach, tune_lr)
from backprop2lib.learned.optimizer import CoordinatewiseOptimizer, LearnedOptimizerConfig
from backprop2lib.learned.problems import MNISTNets, Quadratics


def quadratics(n=4, seed=0):
    return Quadratics.sample(n, seed=seed, dtype=torch.float64)


# ------------------------------------------------------------------ baselines vs torch.optim

TORCH_EQUIVALENTS = [
    (SGD(0.003), lambda p: torch.optim.SGD(p, lr=0.003)),
    (NAG(0.002), lambda p: torch.optim.SGD(p, lr=0.002, momentum=0.9, nesterov=True)),
    (NAG(0.001, momentum=0.5), lambda p: torch.optim.SGD(p, lr=0.001, momentum=0.5, nesterov=True)),
    (RMSprop(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    (Adam(0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    (Adam(0.02, betas=(0.8, 0.99), eps=1e-6), lambda p: torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
]


@pytest.mark.parametrize("stepper, make_torch", TORCH_EQUIVALENTS, ids=lambda x: getattr(x, "name", ""))
def test_baseline_matches_torch_optim_instance_by_instance(stepper, make_torch):
    prob = quadratics(3)
    theta = prob.init()
    state = stepper.init(theta)
    for t in range(20):
        _, grad = prob.loss_and_grad(theta, t)
        theta = stepper.step(theta, grad, state)
    assert state["t"] == 20
    for b in range(prob.n_instances):
        single = prob.subset(slice(b, b + 1))
        p = torch.nn.Parameter(single.init()[0].clone())
        opt = make_torch([p])
        for t in range(20):
            opt.zero_grad()
            single.loss(p[None], t).sum().backward()
            opt.step()
        torch.testing.assert_close(theta[b], p.detach(), rtol=1e-10, atol=1e-12)
    assert not torch.equal(theta, prob.init())


def test_registry_and_grid():
    assert BASELINES == {"SGD": SGD, "NAG": NAG, "RMSprop": RMSprop, "Adam": Adam}
    assert LR_GRID == (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
    for name, cls in BASELINES.items():
        assert cls(0.1).name == name
        assert cls(0.1).lr == 0.1


@pytest.mark.parametrize("cls", [SGD, NAG, RMSprop, Adam])
@pytest.mark.parametrize("lr", [0.0, -1e-3, math.nan, math.inf, True])
def test_bad_lr_names_the_argument(cls, lr):
    with pytest.raises(ValueError, match="lr"):
        cls(lr)


def test_bad_hyperparameters_name_the_argument():
    with pytest.raises(ValueError, match="momentum"):
        NAG(0.1, momentum=1.0)
    with pytest.raises(ValueError, match="alpha"):
        RMSprop(0.1, alpha=1.5)
    with pytest.raises(ValueError, match="betas"):
        Adam(0.1, betas=(0.9,))
    with pytest.raises(ValueError, match="eps"):
        Adam(0.1, eps=-1.0)
    with pytest.raises(ValueError, match="grad"):
        SGD(0.1).step(torch.zeros(2, 3), torch.zeros(2, 4), {"t": 0})


# ------------------------------------------------------------------ the learned optimizer as a stepper

@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_learned_stepper_equals_calling_the_net(cell):
    net = CoordinatewiseOptimizer(LearnedOptimizerConfig(cell=cell), seed=3)
    stepper = LearnedStepper(net)
    assert stepper.name == cell.upper()
    assert LearnedStepper(net, name="mine").name == "mine"
    prob = Quadratics.sample(3, seed=1)
    theta = prob.init()
    state = stepper.init(theta)
    by_hand = prob.init()
    rnn = net.initial_state(*by_hand.shape, device=by_hand.device, dtype=by_hand.dtype)
    for t in range(5):
        _, grad = prob.loss_and_grad(theta, t)
        theta = stepper.step(theta, grad, state)
        _, g = prob.loss_and_grad(by_hand, t)
        with torch.no_grad():
            update, rnn = net(g, rnn)
        by_hand = by_hand + update
        assert not theta.requires_grad
    torch.testing.assert_close(theta, by_hand, rtol=0, atol=0)
    curve = run(stepper, prob, 5)
    assert curve.name == cell.upper()
    assert np.isfinite(curve.losses).all()


def test_learned_stepper_rejects_other_nets():
    with pytest.raises(ValueError, match="net"):
        LearnedStepper(torch.nn.Linear(1, 1))


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
    np.testing.assert_array_equal(final(curve, 30), curve.losses[30])
    np.testing.assert_array_equal(final(curve), curve.losses[30])
    s = mean_ci(curve, 30)
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
    s = mean_ci(curve, 15)
    assert s.n == 0 and s.n_diverged == 6 and math.isnan(s.mean)
    assert steps_to_reach(curve, 1e9) is None


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
    s = mean_ci(curve, 40)
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
        mean_ci(curve, 4)
    with pytest.raises(ValueError, match="horizon"):
        final(curve, -1)


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
        tune_lr(SGD, (0.1,), val, 0)
    with pytest.raises(ValueError, match="grid"):  # everything diverged: no choice to report
        tune_lr(SGD, (10.0, 100.0), Quadratics.sample(2), 30)
    with pytest.raises(ValueError, match="diverged_above"):
        run(SGD(0.1), val, 3, diverged_above=0.0)


def _curve(losses, name="c"):
    losses = np.asarray(losses, dtype=np.float64)
    diverged = np.isnan(losses).any(0)
    at = np.array([np.argmax(np.isnan(col)) if d else -1 for col, d in zip(losses.T, diverged)])
    return Curve(name, losses, diverged, at)


def test_steps_to_reach():
    c = _curve([[4.0, 6.0], [3.0, 5.0], [2.0, 2.0], [1.0, 1.0]])  # means 5, 4, 2, 1
    assert steps_to_reach(c, 5.0) == 0
    assert steps_to_reach(c, 3.0) == 2
    assert steps_to_reach(c, 1.0) == 3
    assert steps_to_reach(c, 0.5) is None
    # a diverging instance is left out of every step's mean, not only after it blew up
    d = _curve([[4.0, 100.0], [3.0, 100.0], [2.0, np.nan]])
    assert steps_to_reach(d, 3.0) == 1
    with pytest.raises(ValueError, match="target"):
        steps_to_reach(c, math.nan)


def test_paired_difference():
    a = _curve([[5.0, 5.0, 5.0, 5.0], [1.0, 2.0, np.nan, 4.0]], "a")
    b = _curve([[5.0, 5.0, 5.0, 5.0], [2.0, 4.0, 1.0, 5.0]], "b")
    s = paired_difference(a, b, 1)
    assert s.n == 3 and s.n_diverged == 1
    assert s.mean == pytest.approx(np.mean([-1.0, -2.0, -1.0]))
    assert s.ci95 > 0
    assert paired_difference(a, b, 0).mean == 0.0
    with pytest.raises(ValueError, match="a, b"):
        paired_difference(a, _curve([[1.0], [1.0]]), 1)
    with pytest.raises(ValueError, match="step"):
        paired_difference(a, b, 2)


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
    np.testing.assert_array_equal(adam.losses, again.losses)  # identical optimizers: identical curves
    assert not np.array_equal(adam.losses[1:], sgd.losses[1:])
    assert paired_difference(adam, again, 5).mean == 0.0
    d = paired_difference(adam, sgd, 0)
    assert d.mean == 0.0 and d.n == 3
    # a different seed is a different set of instances
    other = run(Adam(0.01), MNISTNets.sample(3, data, seed=5, dtype=torch.float64), 0)
    assert not np.array_equal(other.losses[0], adam.losses[0])
