"""The chapter-2 driver: same tasks for every method, starts adapted by one loop, scale recovery scoring."""

import numpy as np
import pytest
import torch

from backprop2lib.experiments.scale_comparison import (METHODS, ComparisonSettings, TrainedMethod, adapted_spread,
                                                       evaluate_starts, scale_recovery, train_methods)
from backprop2lib.meta.adapt import from_mse_lr
from backprop2lib.models import MLP
from backprop2lib.scale import InnerLoop, adapt
from backprop2lib.tasks import TeacherTasks

MODEL = MLP((2, 6, 1), activation="gaussian")
TINY = ComparisonSettings(iterations=3, meta_batch=4, k_shot=5, k_query=5, inner_steps=2, outer_iterations=2,
                          tasks_per_iteration=4, adapt_steps=3)


@pytest.fixture(scope="module")
def trained():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=4, spread=0.5, seed=0)
    init = tasks.mean + 0.1 * torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(0))
    return tasks, train_methods(MODEL, tasks, init, TINY, seed=1)


def test_every_method_is_trained_and_keeps_its_start(trained):
    _, methods = trained
    assert list(methods) == list(METHODS)
    for m in methods.values():
        assert m.start.shape == (MODEL.n_params,) and bool(torch.isfinite(m.start).all())
    # the backprop2 learners' start is their learned mean
    assert torch.equal(methods["backprop2 quartic"].start, methods["backprop2 quartic"].extra["model"].mean)


def test_maml_family_takes_the_published_step_converted_to_e(trained):
    """The chapter's runs gave MAML, FOMAML and Reptile inner_lr = 0.1 as a step on the MSE: 0.2 on E,
    bit for bit the old step; Meta-SGD and the meta-gradient scale keep 0.1, which was already on E."""
    assert ComparisonSettings().maml_inner_lr == from_mse_lr(ComparisonSettings().inner_lr) == 0.2
    tasks, methods = trained
    batch = tasks.sample(4, 5, 5, generator=torch.Generator().manual_seed(5))
    for name in ("MAML", "FOMAML", "Reptile"):
        old = tuple(p.clone() for p in MODEL.unflatten(methods[name].start))
        for _ in range(TINY.inner_steps):  # the old adapter: explicit MSE gradient, step inner_lr
            _, grads = MODEL.loss_and_grad(old, batch.x_support, batch.y_support)
            old = tuple(torch.add(p, g, alpha=-TINY.inner_lr) for p, g in zip(old, grads))
        assert torch.equal(methods[name].adapter(batch.x_support, batch.y_support), MODEL.flatten(old)), name


def test_evaluate_starts_adapts_each_start_with_the_same_loop(trained):
    tasks, methods = trained
    batch = tasks.sample(5, 5, 20, generator=torch.Generator().manual_seed(3))
    loop = InnerLoop(max_steps=4)
    errors = evaluate_starts(MODEL, methods, batch, loop)
    for name in ("MAML", "backprop2 quadratic"):
        w = adapt(MODEL, methods[name].start, batch.x_support, batch.y_support, loop=loop).params
        expected = MODEL.loss(MODEL.unflatten(w), batch.x_query, batch.y_query).double().numpy()
        np.testing.assert_allclose(errors[name], expected, rtol=1e-6)


@pytest.fixture(scope="module")
def graded():
    """A teacher whose P parameters vary with a known, graded spread (0.05 .. 1, shuffled), and 300 tasks."""
    P = MODEL.n_params
    g = torch.Generator().manual_seed(0)
    spread = torch.linspace(0.05, 1.0, P)[torch.randperm(P, generator=g)]
    teacher = TeacherTasks(MODEL, torch.randn(P, generator=g), spread, name="graded")
    return teacher, teacher.sample(300, 5, generator=torch.Generator().manual_seed(1))


def _method(name, adapter, scale, start):
    return TrainedMethod(name, adapter, scale, 0.0, start)


def test_scale_recovery_finds_a_known_spread_in_the_adapted_parameters(graded):
    teacher, batch = graded
    # an adapter that recovers every task's parameters exactly uses the teacher's spread
    oracle = _method("oracle", lambda x, y: batch.truth, None, teacher.mean)
    torch.testing.assert_close(adapted_spread(MODEL, oracle, batch), teacher.scale, rtol=0.15, atol=0)
    found = scale_recovery(MODEL, oracle, teacher.scale, batch, n_permutations=500)
    assert found.source == "adapted" and found.correlation > 0.95 and found.p_value < 0.01
    # one that ignores the task leaves every parameter where it started: nothing to recover
    blind = _method("blind", lambda x, y: teacher.mean.expand(x.shape[0], -1), None, teacher.mean)
    missed = scale_recovery(MODEL, blind, teacher.scale, batch, n_permutations=500)
    assert missed.source == "adapted" and missed.correlation == 0.0 and missed.p_value == 1.0


def test_scale_recovery_scores_a_learned_scale_itself(graded):
    teacher, batch = graded
    blind = lambda x, y: teacher.mean.expand(x.shape[0], -1)  # noqa: E731  (would score 0 if it were used)
    # a learned scale is scored by rank: any increasing function of s* recovers it exactly
    right = scale_recovery(MODEL, _method("σ²", blind, teacher.scale ** 2, teacher.mean), teacher.scale, batch,
                           n_permutations=500)
    assert right.source == "learned" and right.correlation == pytest.approx(1.0) and right.p_value < 0.01
    wrong = scale_recovery(MODEL, _method("1/σ", blind, 1 / teacher.scale, teacher.mean), teacher.scale, batch,
                           n_permutations=500)
    assert wrong.correlation == pytest.approx(-1.0) and wrong.p_value > 0.99


def test_scale_recovery_uses_what_each_trained_method_learned(trained):
    tasks, methods = trained
    batch = tasks.sample(6, 10, generator=torch.Generator().manual_seed(4))
    learns_a_scale = {"Meta-SGD", "meta-gradient scale", "backprop2 quadratic", "backprop2 quartic"}
    for name, method in methods.items():
        r = scale_recovery(MODEL, method, tasks.scale, batch, n_permutations=50)
        assert r.source == ("learned" if name in learns_a_scale else "adapted"), name
        assert -1 <= r.correlation <= 1 and 0 < r.p_value <= 1


def test_unknown_method_is_rejected():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=4, seed=0)
    with pytest.raises(ValueError, match="methods"):
        train_methods(MODEL, tasks, tasks.mean, TINY, methods=("MAML", "iMAML"))
