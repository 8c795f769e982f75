"""The chapter-2 driver: same tasks for every method, starts adapted by one loop, scale recovery scoring."""

import numpy as np
import pytest
import torch

from backprop2lib.experiments.scale_comparison import (METHODS, ComparisonSettings, evaluate_starts, scale_recovery,
                                                       train_methods)
from backprop2lib.models import MLP
from backprop2lib.scale import InnerLoop, adapt
from backprop2lib.stats import rank_correlation
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


def test_evaluate_starts_adapts_each_start_with_the_same_loop(trained):
    tasks, methods = trained
    batch = tasks.sample(5, 5, 20, generator=torch.Generator().manual_seed(3))
    loop = InnerLoop(max_steps=4)
    errors = evaluate_starts(MODEL, methods, batch, loop)
    for name in ("MAML", "backprop2 quadratic"):
        w = adapt(MODEL, methods[name].start, batch.x_support, batch.y_support, loop=loop).params
        expected = MODEL.loss(MODEL.unflatten(w), batch.x_query, batch.y_query).double().numpy()
        np.testing.assert_allclose(errors[name], expected, rtol=1e-6)


def test_scale_recovery_scores_learned_scale_or_adapted_spread(trained):
    tasks, methods = trained
    batch = tasks.sample(6, 10, generator=torch.Generator().manual_seed(4))
    learned = scale_recovery(MODEL, methods["backprop2 quartic"], tasks.scale, batch, n_permutations=50)
    assert learned.source == "learned"
    assert learned.correlation == pytest.approx(
        rank_correlation(methods["backprop2 quartic"].scale.numpy(), tasks.scale.numpy()))
    used = scale_recovery(MODEL, methods["MAML"], tasks.scale, batch, n_permutations=50)
    assert used.source == "adapted"
    spread = methods["MAML"].adapter(batch.x_support, batch.y_support).detach().std(0, unbiased=False)
    assert used.correlation == pytest.approx(rank_correlation(spread.numpy(), tasks.scale.numpy()))
    assert 0 < used.p_value <= 1


def test_unknown_method_is_rejected():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=4, seed=0)
    with pytest.raises(ValueError, match="methods"):
        train_methods(MODEL, tasks, tasks.mean, TINY, methods=("MAML", "iMAML"))
