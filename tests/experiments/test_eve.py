"""Chapter 3's drivers (experiments/eve.py): Eve's training, the inner loops compared from its mean,
the Adam step tuning, errors against the step budget, and the movement measure."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.experiments.eve import Movement, error_vs_steps, inner_loops, movement, train_eve, tune_adam_lr
from backprop2lib.experiments.scale_comparison import ComparisonSettings
from backprop2lib.meta.backprop2 import ScaleModel
from backprop2lib.models import MLP
from backprop2lib.scale import InnerLoop
from backprop2lib.scale.eve import EveRates
from backprop2lib.tasks import TeacherTasks

MODEL = MLP((2, 6, 1), activation="gaussian")
TINY = ComparisonSettings(k_shot=10, k_query=20, outer_iterations=3, tasks_per_iteration=30, adapt_steps=20)


@pytest.fixture(scope="module")
def sparse():
    return TeacherTasks.sparse_variation(MODEL, n_varying=4, spread=0.5, seed=0)


@pytest.fixture(scope="module")
def batch(sparse):
    tasks = TeacherTasks(MODEL, sparse.mean.double(), sparse.scale.double())
    return tasks.sample(5, 8, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _eve_model(mean, variance, decay):
    return ScaleModel("eve", mean, None, EveRates(mean, variance, decay), InnerLoop(max_steps=4))


def _query_mse(w, batch):
    """Query MSE per task, written out: mean over points and outputs of (f − y)²."""
    out = MODEL.forward(MODEL.unflatten(w), batch.x_query)
    return ((out - batch.y_query) ** 2).mean(dim=(1, 2)).double().numpy()


def _adam_by_hand(start, batch, steps, lr):
    """torch.optim.Adam on each task alone, on backprop2's error (mean over points of ½‖f − y‖²)."""
    out = []
    for t in range(batch.x_support.shape[0]):
        w = torch.nn.Parameter(start.detach().clone()[None])
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            f = MODEL.forward(MODEL.unflatten(w), batch.x_support[t:t + 1])
            (0.5 * ((f - batch.y_support[t:t + 1]) ** 2).sum(-1).mean()).backward()
            opt.step()
        out.append(w.detach()[0])
    return torch.stack(out)


# ------------------------------------------------------------------ train_eve

def test_train_eve_gives_the_varying_parameters_the_large_rates(sparse):
    init = sparse.mean + 0.05 * torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(0))
    eve = train_eve(MODEL, sparse, init, TINY, decay=0.3, seed=1)
    assert eve.rule == "eve" and eve.regulariser is None and eve.rates.decay == 0.3
    assert eve.loop.max_steps == TINY.adapt_steps
    rates = eve.rates.base_rates
    varying = sparse.scale > 0
    assert rates.mean().item() == pytest.approx(1.0, rel=1e-5)  # λ = σ² / mean σ²
    # the 4 parameters that differ between tasks get rates tens of times those of the 21 that do not
    # (about 40x here, for seeds 0-2 between 26x and 68x)
    assert rates[varying].mean() > 10 * rates[~varying].mean()
    again = train_eve(MODEL, sparse, init, TINY, decay=0.3, seed=1)
    torch.testing.assert_close(again.mean, eve.mean, rtol=0, atol=0)  # the seed fixes the run
    other = train_eve(MODEL, sparse, init, TINY, decay=0.3, seed=2)
    assert not torch.equal(other.mean, eve.mean)


# ------------------------------------------------------------------ inner_loops, error_vs_steps

def test_every_inner_loop_starts_from_eves_mean(batch):
    mean = torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    variance = torch.linspace(0.1, 2.0, MODEL.n_params, dtype=torch.float64)
    loops = inner_loops(MODEL, _eve_model(mean, variance, 0.2), adam_lr=0.01)
    assert list(loops) == ["Eve", "SGD + line search", "Adam (tuned)"]
    errors = error_vs_steps(MODEL, loops, batch, [0, 3])
    at_mean = _query_mse(mean.expand(5, -1), batch)
    for name, per_budget in errors.items():
        assert len(per_budget) == 2 and per_budget[0].shape == (5,)
        np.testing.assert_allclose(per_budget[0], at_mean, rtol=1e-12, err_msg=name)  # 0 steps: μ itself
        assert not np.allclose(per_budget[1], at_mean), name  # 3 steps moved every loop


def test_eve_with_equal_rates_and_no_decay_is_sgd_with_the_line_search(batch):
    mean = torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    flat = inner_loops(MODEL, _eve_model(mean, torch.ones_like(mean), 0.0), adam_lr=0.01)
    x, y = batch.x_support, batch.y_support
    torch.testing.assert_close(flat["Eve"](x, y, 4).params, flat["SGD + line search"](x, y, 4).params)
    graded = inner_loops(MODEL, _eve_model(mean, torch.linspace(0.1, 2.0, MODEL.n_params, dtype=torch.float64), 0.0),
                         adam_lr=0.01)
    assert not torch.allclose(graded["Eve"](x, y, 4).params, graded["SGD + line search"](x, y, 4).params)


def test_the_adam_loop_is_torch_adam_on_each_task_from_the_mean(batch):
    mean = torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    loops = inner_loops(MODEL, _eve_model(mean, torch.ones_like(mean), 0.2), adam_lr=0.03)
    got = loops["Adam (tuned)"](batch.x_support, batch.y_support, 6).params
    torch.testing.assert_close(got, _adam_by_hand(mean, batch, 6, 0.03), rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------ tune_adam_lr

def test_tune_adam_lr_scores_each_rate_by_the_mean_query_error_and_picks_the_lowest(batch):
    start = torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    grid = (1e-4, 0.01, 0.1, 1e200)  # 1e200: the squared error overflows; a non-finite error scores inf
    choice = tune_adam_lr(MODEL, start, batch, steps=5, grid=grid)
    assert choice.grid == grid and len(choice.scores) == 4
    for lr, score in zip(grid[:3], choice.scores):
        assert score == pytest.approx(_query_mse(_adam_by_hand(start, batch, 5, lr), batch).mean(), rel=1e-9)
    assert math.isinf(choice.scores[3])
    assert choice.best == grid[int(np.argmin(choice.scores[:3]))] and not choice.at_edge
    with pytest.raises(ValueError, match="grid"):
        tune_adam_lr(MODEL, start, batch, steps=5, grid=[0.01])


# ------------------------------------------------------------------ movement

def test_movement_averages_the_distance_moved_in_each_group():
    start = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    trained = torch.tensor([True, True, False, False, False, False])
    test = torch.tensor([False, True, True, False, False, False])
    # two tasks; |w − μ| per parameter averaged over tasks: [2, 4, 1, 0.5, 0.5, 0.5]
    adapted = start + torch.tensor([[2.0, 4.0, -1.0, 0.5, -0.5, 0.0],
                                    [-2.0, -4.0, 1.0, 0.5, 0.5, -1.0]])
    m = movement(adapted, start, trained, test)
    assert m == Movement(trained_varying=3.0, test_varying=2.5, fixed=0.5)
    assert m.focus == 6.0


def test_movement_rejects_bad_shapes_and_empty_groups():
    start = torch.zeros(4)
    some = torch.tensor([True, False, False, False])
    with pytest.raises(ValueError, match="adapted"):
        movement(torch.zeros(4), start, some, some)
    with pytest.raises(ValueError, match="adapted"):
        movement(torch.zeros(2, 3), start, some, some)
    with pytest.raises(ValueError, match="fixed"):
        movement(torch.ones(2, 4), start, torch.ones(4, dtype=torch.bool), some)
    with pytest.raises(ValueError, match="varying"):
        movement(torch.ones(2, 4), start, torch.zeros(4, dtype=torch.bool), some)


# ------------------------------------------------------------------ Settings, the sections, run, claims

from backprop2lib.experiments import eve as chapter  # noqa: E402
from backprop2lib.meta.fewshot import query_errors  # noqa: E402
from backprop2lib.stats import permutation_p_value, rank_correlation, summarise  # noqa: E402

SMALL = chapter.Settings(iterations=20, outer_iterations=2, tasks_per_iteration=10, test_tasks=6, decays=(0.0, 0.5),
                         permutations=50, recovery_p=0.5, adapt_steps=5, validation_tasks=6, query_points=20,
                         steps=(1, 5), layers=(2, 6, 1), n_varying=4, adam_grid=(1e-3, 1e-2, 1e-1))


def test_settings_for_each_profile():
    smoke = chapter.Settings.for_profile("smoke")
    # the values the notebook used before it had a driver
    assert smoke.comparison == ComparisonSettings(iterations=150, outer_iterations=3, tasks_per_iteration=30,
                                                  adapt_steps=100)
    assert (smoke.test_tasks, smoke.validation_tasks, smoke.query_points, smoke.k_shot) == (100, 200, 200, 10)
    assert smoke.decays == (0.0, 0.2, 5.0) and smoke.permutations == 2000 and smoke.recovery_p == 0.05
    assert smoke.adam_grid == (1e-3, 3e-3, 1e-2, 3e-2, 1e-1) and smoke.steps == (1, 2, 5, 10, 25, 100)
    assert (smoke.eve_seed, smoke.meta_sgd_seed, smoke.validation_seed, smoke.validation_ood_seed,
            smoke.family_validation_seed, smoke.test_seed, smoke.test_ood_seed) == (3, 7, 500, 501, 502, 900, 901)
    assert smoke.model().n_params == 81
    paper = chapter.Settings.for_profile("paper")
    assert paper.comparison == ComparisonSettings(iterations=3000, outer_iterations=10, tasks_per_iteration=100,
                                                  adapt_steps=100)
    assert (paper.test_tasks, paper.decays, paper.permutations, paper.recovery_p) == (
        300, (0.0, 0.05, 0.2, 1.0, 5.0), 10000, 0.01)
    assert chapter.Settings.for_profile("full") == paper
    with pytest.raises(Exception):
        smoke.test_tasks = 1  # frozen


@pytest.fixture(scope="module")
def small_results():
    return chapter.run(SMALL)


def test_task_families_are_the_teacher_families_and_the_seeded_start(small_results):
    setup, model = small_results.setup, SMALL.model()
    sparse = TeacherTasks.sparse_variation(model, n_varying=4, spread=0.5, seed=0)
    torch.testing.assert_close(setup.sparse.mean, sparse.mean, rtol=0, atol=0)
    torch.testing.assert_close(setup.sparse.scale, sparse.scale, rtol=0, atol=0)
    torch.testing.assert_close(setup.families["sparse"][1].scale, sparse.ood_complement(seed=1).scale, rtol=0, atol=0)
    narrow, wide = TeacherTasks.two_spreads(model, spreads=(0.1, 0.4), seed=0)
    torch.testing.assert_close(setup.families["narrow"][1].scale, wide.scale, rtol=0, atol=0)
    torch.testing.assert_close(setup.families["wide"][1].scale, 2 * wide.scale, rtol=0, atol=0)
    init = sparse.mean + 0.3 * torch.randn(model.n_params, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(setup.init, init, rtol=0, atol=0)
    batch = setup.tasks_of(sparse, 3, 11)
    direct = sparse.sample(3, 10, 20, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(batch.x_query, direct.x_query, rtol=0, atol=0)


def test_sweep_decay_trains_eve_at_each_decay_and_picks_the_lowest_validation_error(small_results):
    setup, sweep = small_results.setup, small_results.sweep
    assert list(sweep.eves) == [0.0, 0.5]
    val_ood = setup.tasks_of(setup.families["sparse"][1], 6, 501)
    for kappa in SMALL.decays:
        eve = train_eve(setup.model, setup.sparse, setup.init, SMALL.comparison, decay=kappa, seed=3)
        torch.testing.assert_close(sweep.eves[kappa].mean, eve.mean, rtol=0, atol=0)
        for summary, batch in zip(sweep.scores[kappa], (sweep.validation, val_ood)):
            e = query_errors(setup.model, eve.adapt(setup.model, batch.x_support, batch.y_support).params,
                             batch.x_query, batch.y_query)
            assert summary.mean == pytest.approx(summarise(e, diverged_above=1e6).mean, rel=1e-12)
        assert sweep.rate_correlation[kappa] == pytest.approx(
            rank_correlation(eve.rates.base_rates.numpy(), setup.sparse.scale.numpy()))
    assert sweep.chosen == min(SMALL.decays, key=lambda k: sweep.scores[k][0].mean)
    assert chapter.decay_table(sweep).count("\n") == 1 + len(SMALL.decays)


def test_compare_inner_loops_against_direct_calls(small_results):
    setup, sweep, comparison = small_results.setup, small_results.sweep, small_results.comparison
    assert list(comparison.by_family) == ["sparse", "narrow", "wide"]
    assert comparison.by_family["sparse"].eve is sweep.eves[sweep.chosen]
    narrow, ood = setup.families["narrow"]
    r = comparison.by_family["narrow"]
    eve = train_eve(setup.model, narrow, setup.init, SMALL.comparison, decay=sweep.chosen, seed=3)
    torch.testing.assert_close(r.eve.mean, eve.mean, rtol=0, atol=0)
    adam = tune_adam_lr(setup.model, eve.mean, setup.tasks_of(narrow, 6, 502), steps=5, grid=list(SMALL.adam_grid))
    assert r.adam.scores == pytest.approx(adam.scores, rel=1e-12) and r.adam_lr == adam.best
    test = setup.tasks_of(ood, 6, 901)
    direct = error_vs_steps(setup.model, inner_loops(setup.model, eve, adam_lr=adam.best), test, [1, 5])
    for name in direct:
        for got, want in zip(r.curve_ood[name], direct[name]):
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
    assert r.meta_sgd[0].shape == (6,) and r.meta_sgd_rates.shape == (setup.model.n_params,)
    table = chapter.inner_loops_table(comparison)
    assert table.count("\n") == 1 + 4 and "Meta-SGD" in table
    assert len(chapter.verdicts_text(comparison).splitlines()) == 3 * 6


def test_rate_recovery_against_direct_calls(small_results):
    setup, rec = small_results.setup, small_results.recovery
    for f, (family, _) in setup.families.items():
        lam = small_results.comparison.by_family[f].eve.rates.base_rates.numpy()
        s = family.scale.numpy()
        assert rec.eve[f] == (pytest.approx(rank_correlation(lam, s)),
                              pytest.approx(permutation_p_value(lam, s, n_permutations=50, seed=0)))
    assert chapter.recovery_table(rec).count("\n") == 1 + 3


def test_sparse_movement_against_direct_calls(small_results):
    setup, r = small_results.setup, small_results.comparison.by_family["sparse"]
    sparse, ood = setup.families["sparse"]
    adapted = r.loops["SGD + line search"](r.test_ood.x_support, r.test_ood.y_support, 5).params.detach()
    assert small_results.movement.moves[("SGD + line search", "OOD")] == movement(adapted, r.eve.mean, sparse.varying,
                                                                                ood.varying)
    assert len(small_results.movement.moves) == 6
    assert chapter.movement_table(small_results.movement).count("\n") == 1 + 6


def test_check_claims_prints_one_line_per_claim_and_raises_when_one_fails(small_results, capsys):
    claims = chapter.check_claims(small_results)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "parameters: 25; families: sparse, narrow, wide; inner loops compared: 4"
    assert lines[1:] == [f"{s}: {v}" for s, v in claims.verdicts] and len(claims.verdicts) == 5
    rec = small_results.recovery
    failing = chapter.Results(small_results.settings, small_results.setup, small_results.sweep,
                              small_results.comparison,
                              chapter.RateRecovery(rec.base_rates, rec.true_scale, {**rec.eve, "sparse": (-0.5, 1.0)},
                                                   rec.meta_sgd),
                              small_results.movement)
    failed = chapter.check_claims(failing)
    assert not failed.verdicts[0][1]
    with pytest.raises(AssertionError, match="better than chance"):
        failed.assert_all()
