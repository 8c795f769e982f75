"""Training seeds as a batched axis: seed s of one batched run is the run with seed s alone."""

import numpy as np
import pytest
import torch

from backprop2lib.meta import train_maml, train_pretrained, train_reptile
from backprop2lib.meta.meta_sgd import train_meta_sgd
from backprop2lib.meta.scale_gradient import train_scale_gradient
from backprop2lib.models.mlp import MLP
from backprop2lib.optim.errors import DivergenceError
from backprop2lib.tasks import SinusoidTasks

MODEL = MLP((1, 8, 8, 1), activation="relu")
TASKS = SinusoidTasks.maml()
SCHEDULE = dict(iterations=7, meta_batch=3, k_shot=4, k_query=5, progress=False)
SEEDS = [3, 11, 5]

TRAINERS = {
    "MAML": lambda **kw: train_maml(MODEL, TASKS, inner_steps=2, inner_lr=0.02, meta_lr=1e-2, **kw),
    "FOMAML": lambda **kw: train_maml(MODEL, TASKS, inner_steps=2, inner_lr=0.02, meta_lr=1e-2, first_order=True,
                                      **kw),
    "Reptile": lambda **kw: train_reptile(MODEL, TASKS, inner_steps=3, inner_lr=0.02, outer_lr=0.5, **kw),
    "pretrained": lambda **kw: train_pretrained(MODEL, TASKS, lr=1e-2, **kw),
    "Meta-SGD": lambda **kw: train_meta_sgd(MODEL, TASKS, inner_steps=2, init_rate=0.02, meta_lr=1e-2, **kw),
    "meta-gradient scale": lambda **kw: train_scale_gradient(MODEL, TASKS, inner_steps=2, inner_lr=0.05,
                                                             strength=0.1, meta_lr=1e-2, **kw),
}
PER_SEED = {"Meta-SGD": "rates", "meta-gradient scale": "log_scale"}  # learned beside the start


def _start(seed: int) -> torch.Tensor:
    return MODEL.flatten(MODEL.init(generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


@pytest.mark.parametrize("name", TRAINERS)
def test_seed_s_of_a_batched_run_is_the_run_with_seed_s(name):
    train = TRAINERS[name]
    starts = torch.stack([_start(100 + s) for s in SEEDS])  # float64 starts: the streams follow their dtype
    batched = train(seeds=SEEDS, init=starts, **SCHEDULE)
    assert batched.params.shape == (len(SEEDS), MODEL.n_params)
    assert batched.losses.shape == (SCHEDULE["iterations"], len(SEEDS))
    assert batched.config["seeds"] == SEEDS
    for row, seed in enumerate(SEEDS):
        alone = train(generator=torch.Generator().manual_seed(seed), init=starts[row], **SCHEDULE)
        torch.testing.assert_close(batched.params[row], alone.params, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(batched.losses[:, row], alone.losses, rtol=1e-10, atol=1e-12)
        one = batched.seed(row)  # the single-run view of one seed
        assert one.params.shape == (MODEL.n_params,) and one.config["seed"] == seed and one.n_seeds is None
        if name in PER_SEED:
            torch.testing.assert_close(getattr(one, PER_SEED[name]), getattr(alone, PER_SEED[name]),
                                       rtol=1e-10, atol=1e-12)
    # the seeds really differ: different tasks give different models
    assert not torch.allclose(batched.params[0], batched.params[1])


def test_without_init_each_seed_draws_its_own_start_from_its_generator():
    batched = train_pretrained(MODEL, TASKS, lr=1e-2, seeds=[0, 1], **SCHEDULE)
    alone = train_pretrained(MODEL, TASKS, lr=1e-2, generator=torch.Generator().manual_seed(1), **SCHEDULE)
    torch.testing.assert_close(batched.params[1], alone.params, rtol=1e-5, atol=1e-6)  # float32
    # one shared start [P] is copied to every seed
    shared = train_maml(MODEL, TASKS, seeds=[0, 1], init=_start(9).float(), iterations=1, meta_batch=2, k_shot=3,
                        k_query=3, progress=False)
    assert shared.params.shape == (2, MODEL.n_params)


def test_the_stream_of_seeds_interleaves_the_single_streams():
    gens = [torch.Generator().manual_seed(s) for s in (4, 2)]
    stream = TASKS.stream_seeds(3, 2, 1, generators=gens, chunk=2)
    singles = [TASKS.stream(3, 2, 1, generator=torch.Generator().manual_seed(s), chunk=2) for s in (4, 2)]
    for _ in range(5):  # across a chunk boundary
        batch = next(stream)
        assert batch.n_tasks == 6
        for row, single in enumerate(singles):
            expected = next(single)
            torch.testing.assert_close(batch[row * 3 : (row + 1) * 3].x_support, expected.x_support)
            torch.testing.assert_close(batch[row * 3 : (row + 1) * 3].y_query, expected.y_query)
            torch.testing.assert_close(batch[row * 3 : (row + 1) * 3].truth, expected.truth)


def test_a_seeded_result_asks_for_one_seed_where_one_model_is_needed():
    result = TRAINERS["Meta-SGD"](seeds=[0, 1], iterations=1, meta_batch=2, k_shot=3, k_query=3, progress=False)
    batch = TASKS.sample(2, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"adapt: this result holds 2 seeds; take one with result.seed\(row\)"):
        result.adapt(MODEL, batch.x_support, batch.y_support)
    assert result.seed(1).adapt(MODEL, batch.x_support, batch.y_support).params.shape == (2, MODEL.n_params)
    with pytest.raises(ValueError, match="row: expected a seed row 0..1"):
        result.seed(2)
    with pytest.raises(ValueError, match="single run"):
        result.seed(0).seed(0)


def test_bad_seeds_and_starts_get_clear_errors():
    with pytest.raises(ValueError, match="seeds: expected distinct"):
        train_pretrained(MODEL, TASKS, seeds=[1, 1], **SCHEDULE)
    with pytest.raises(ValueError, match="seeds: expected a non-empty"):
        train_pretrained(MODEL, TASKS, seeds=[], **SCHEDULE)
    with pytest.raises(ValueError, match="seeds: expected non-negative ints"):
        train_pretrained(MODEL, TASKS, seeds=[0, 1.5], **SCHEDULE)
    with pytest.raises(ValueError, match="generator, seeds"):
        train_pretrained(MODEL, TASKS, seeds=[0], generator=torch.Generator(), **SCHEDULE)
    with pytest.raises(ValueError, match=r"init: expected a flat start \[\d+\] or one per seed \[2, "):
        train_pretrained(MODEL, TASKS, seeds=[0, 1], init=torch.zeros(3, MODEL.n_params), **SCHEDULE)
    with pytest.raises(ValueError, match="generators"):
        TASKS.stream_seeds(2, 2, generators=[])


def test_a_diverging_seed_is_named():
    starts = torch.stack([_start(0), _start(1) * 1e200])  # the second seed's loss overflows at once
    with pytest.raises(DivergenceError, match=r"seed row\(s\) \[1\]"):
        train_pretrained(MODEL, TASKS, lr=1e-2, seeds=[0, 1], init=starts, **SCHEDULE)


# ----------------------------------------------------------------------------- backprop2's learners
from backprop2lib.meta.backprop2 import history_array, train_backprop2  # noqa: E402
from backprop2lib.scale.adapt import InnerLoop  # noqa: E402

LEARNER = dict(outer_iterations=3, tasks_per_iteration=4, points_per_task=12, floor=1e-6, progress=False)


@pytest.mark.parametrize("rule,loop", [("quadratic", InnerLoop(max_steps=6, lr=None)),
                                       ("quartic", InnerLoop(max_steps=6, lr=None)),
                                       ("eve", InnerLoop(max_steps=6, lr=None)),
                                       ("mean_only", InnerLoop(max_steps=4, lr=0.05))])
def test_seed_s_of_a_batched_backprop2_learner_is_the_learner_with_seed_s(rule, loop):
    starts = torch.stack([_start(50 + s) for s in SEEDS])
    batched = train_backprop2(MODEL, TASKS, rule=rule, loop=loop, seeds=SEEDS, init=starts, **LEARNER)
    assert batched.mean.shape == (len(SEEDS), MODEL.n_params)
    assert history_array(batched, "error_after").shape == (LEARNER["outer_iterations"] + 1, len(SEEDS))
    for row, seed in enumerate(SEEDS):
        alone = train_backprop2(MODEL, TASKS, rule=rule, loop=loop, generator=torch.Generator().manual_seed(seed),
                                init=starts[row], **LEARNER)
        one = batched.seed(row)
        torch.testing.assert_close(one.mean, alone.mean, rtol=1e-9, atol=1e-11)
        if alone.scale is not None:
            torch.testing.assert_close(one.scale, alone.scale, rtol=1e-9, atol=1e-11)
        for key in ("error_after", "steps", "scale_mean"):
            np.testing.assert_allclose(history_array(one, key), history_array(alone, key), rtol=1e-9, atol=1e-11)
    assert not torch.allclose(batched.mean[0], batched.mean[1])


def test_seeded_backprop2_learners_refuse_what_they_cannot_batch():
    with pytest.raises(ValueError, match="full-batch"):
        train_backprop2(MODEL, TASKS, seeds=[0, 1], loop=InnerLoop(max_steps=2, batch_size=5), **LEARNER)
    with pytest.raises(ValueError, match="error_scale='constant'"):
        train_backprop2(MODEL, TASKS, seeds=[0, 1], error_scale="dE", **LEARNER)
    learner = train_backprop2(MODEL, TASKS, rule="quadratic", seeds=[0, 1], loop=InnerLoop(max_steps=2), **LEARNER)
    batch = TASKS.sample(2, 5, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"holds 2 seeds; take one with model.seed\(row\)"):
        learner.adapt(MODEL, batch.x_support, batch.y_support)
    assert learner.seed(0).adapt(MODEL, batch.x_support, batch.y_support).params.shape == (2, MODEL.n_params)


# ----------------------------------------------------------------------------- evaluation over seeds
from backprop2lib.meta import evaluate_adaptation  # noqa: E402
from backprop2lib.optim import Curve, compare_curves  # noqa: E402
from backprop2lib.stats import summarise_seeds  # noqa: E402


def test_evaluating_s_starts_at_once_equals_evaluating_each_start_alone():
    starts = torch.stack([_start(s) for s in (1, 2, 3)]).float()  # the evaluation tasks are float32
    kw = dict(n_tasks=7, k_shot=5, steps=3, inner_lr=0.02, grid_points=50, seed=4)
    curve = evaluate_adaptation(MODEL, starts, TASKS, **kw)
    assert curve.n_seeds == 3 and curve.n_rows == 21 and curve.by_seed(2).shape == (3, 7)
    for s in range(3):
        alone = evaluate_adaptation(MODEL, starts[s], TASKS, **kw)
        for step in range(4):
            np.testing.assert_allclose(curve.by_seed(step)[s], alone.at(step), rtol=1e-5)
    summary = curve.seed_summary(3)
    ref = summarise_seeds(curve.by_seed(3))
    assert summary.mean == ref.mean and summary.ci95 == ref.ci95 and summary.n_seeds == 3
    with pytest.raises(ValueError, match=r"params: expected a flat start \[\d+\] or one per seed"):
        evaluate_adaptation(MODEL, starts[None], TASKS, **kw)


def test_curves_over_seeds_compare_paired_and_refuse_mismatched_rows():
    rng = np.random.default_rng(0)
    base = rng.normal(1.0, 0.1, size=(3, 5)) + np.array([[0.0], [0.5], [1.0]])  # a seed effect, shared
    a = Curve("a", np.stack([base.ravel(), base.ravel() - 0.2]), n_seeds=3)
    b = Curve("b", np.stack([base.ravel(), base.ravel() + rng.normal(0, 0.01, 15)]), n_seeds=3)
    assert compare_curves(a, b).verdict == "lower"  # step 1: a is 0.2 lower on every seed
    assert compare_curves(a, b, 0, 0).verdict == "not distinguishable"  # step 0: identical
    with pytest.raises(ValueError, match="same seeds and test rows"):
        compare_curves(a, Curve("c", np.ones((2, 15)), n_seeds=5))
    with pytest.raises(ValueError, match="n_seeds: 15 rows do not split into 4 seeds"):
        Curve("d", np.ones((2, 15)), n_seeds=4)
