"""Chapter 3's drivers (experiments/eve.py): Eve's training, the inner loops compared from its mean,
the Adam step tuning, errors against the step budget, and the movement measure."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from backprop2lib.experiments.eve import (Movement, error_vs_steps, inner_loops, loop_starts, movement, train_eve,
                                          train_mean_only, tune_adam_lr)
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


def test_seeded_learners_are_their_single_runs(sparse):
    init = sparse.mean + 0.05 * torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(0))
    for train in (lambda **kw: train_eve(MODEL, sparse, init, TINY, decay=0.3, **kw),
                  lambda **kw: train_mean_only(MODEL, sparse, init, TINY, **kw)):
        both = train(seeds=[4, 5])
        assert both.seeds == [4, 5]
        for row, seed in enumerate((4, 5)):
            one = train(seed=seed)
            torch.testing.assert_close(both.seed(row).mean, one.mean, rtol=1e-5, atol=1e-6)
            if one.rates is not None:  # Eve's: the variance behind its rates
                torch.testing.assert_close(both.seed(row).rates.variance, one.rates.variance, rtol=1e-4, atol=1e-7)
    assert train_mean_only(MODEL, sparse, init, TINY, seed=1).rule == "mean_only"


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


def test_own_mean_and_meta_sgd_loops_start_where_they_say(batch):
    from backprop2lib.meta.meta_sgd import MetaSGDResult
    from backprop2lib.scale.adapt import adapt

    mean = torch.randn(MODEL.n_params, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    own_mean = mean + 0.3
    eve, own = _eve_model(mean, torch.ones_like(mean), 0.2), _eve_model(own_mean, torch.ones_like(mean), 0.2)
    rates = torch.full_like(mean, 0.05)
    meta_sgd = MetaSGDResult("Meta-SGD", mean - 0.2, [], 0.0, {}, rates=rates, inner_steps=5)
    loops = inner_loops(MODEL, eve, adam_lr=0.01, own=own, own_adam_lr=0.03, meta_sgd=meta_sgd)
    assert list(loops) == list(chapter.INNER_LOOPS)
    x, y = batch.x_support, batch.y_support
    torch.testing.assert_close(loops[chapter.SGD_OWN](x, y, 3).params,
                               adapt(MODEL, own_mean, x, y, loop=InnerLoop(max_steps=3)).params)
    torch.testing.assert_close(loops[chapter.ADAM_OWN](x, y, 4).params, _adam_by_hand(own_mean, batch, 4, 0.03),
                               rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(loops[chapter.META_SGD](x, y, 2).params, meta_sgd.adapt(MODEL, x, y, steps=2).params)
    starts = loop_starts(eve, own, meta_sgd)
    assert starts[chapter.SGD_OWN] is own_mean and starts[chapter.META_SGD] is meta_sgd.params
    for name in chapter.INNER_LOOPS:  # 0 steps: every loop is at its start
        at_start = _query_mse(starts[name].expand(5, -1), batch)
        np.testing.assert_allclose(error_vs_steps(MODEL, {name: loops[name]}, batch, [0])[name][0], at_start,
                                   rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="own_adam_lr"):
        inner_loops(MODEL, eve, adam_lr=0.01, own=own)


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
    # one start per training seed: the score is the mean of the seeds' scores
    other = start + 0.5
    both = tune_adam_lr(MODEL, torch.stack([start, other]), batch, steps=5, grid=grid[:3])
    alone = tune_adam_lr(MODEL, other, batch, steps=5, grid=grid[:3])
    assert both.scores == pytest.approx([(a + b) / 2 for a, b in zip(choice.scores[:3], alone.scores)], rel=1e-12)


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
                         permutations=50, recovery_p=0.5, n_seeds=2, adapt_steps=5, validation_tasks=6,
                         query_points=20, steps=(1, 5), layers=(2, 6, 1), n_varying=4, adam_grid=(1e-3, 1e-2, 1e-1))


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
    assert smoke.n_seeds == 3 and smoke.seeds(smoke.eve_seed) == [3, 4, 5] and smoke.mean_only_seed == 11
    assert smoke.model().n_params == 81
    paper = chapter.Settings.for_profile("paper")
    assert paper.comparison == ComparisonSettings(iterations=3000, outer_iterations=10, tasks_per_iteration=100,
                                                  adapt_steps=100)
    assert (paper.test_tasks, paper.decays, paper.permutations, paper.recovery_p) == (
        300, (0.0, 0.05, 0.2, 1.0, 5.0), 10000, 0.01)
    assert paper.n_seeds == 3
    full = chapter.Settings.for_profile("full")
    assert full.n_seeds == 10 and dataclasses.replace(full, n_seeds=3) == paper
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
        assert sweep.eves[kappa].seeds == [3, 4]
        rhos = []
        for row in range(2):
            eve = sweep.eves[kappa].seed(row)
            errors = [query_errors(setup.model, eve.adapt(setup.model, b.x_support, b.y_support).params,
                                   b.x_query, b.y_query) for b in (sweep.validation, val_ood)]
            for summary, e in zip(sweep.scores[kappa], errors):
                assert summary.per_seed[row] == pytest.approx(e.mean(), rel=1e-12)
            rhos.append(rank_correlation(eve.rates.base_rates.numpy(), setup.sparse.scale.numpy()))
        assert sweep.rate_correlation[kappa] == pytest.approx(np.mean(rhos))
    assert sweep.chosen == min(SMALL.decays, key=lambda k: sweep.scores[k][0].mean)
    assert chapter.decay_table(sweep).count("\n") == 1 + len(SMALL.decays)


def test_compare_inner_loops_against_direct_calls(small_results):
    setup, sweep, comparison = small_results.setup, small_results.sweep, small_results.comparison
    assert list(comparison.by_family) == ["sparse", "narrow", "wide"] and comparison.meta_sgd_steps == 5
    assert comparison.by_family["sparse"].eve is sweep.eves[sweep.chosen]
    narrow, ood = setup.families["narrow"]
    r = comparison.by_family["narrow"]
    assert r.n_seeds == 2
    s = SMALL.comparison
    eve = train_eve(setup.model, narrow, setup.init, s, decay=sweep.chosen, seeds=[3, 4])
    own = train_mean_only(setup.model, narrow, setup.init, s, seeds=[11, 12])
    torch.testing.assert_close(r.eve.mean, eve.mean, rtol=0, atol=0)
    torch.testing.assert_close(r.own.mean, own.mean, rtol=0, atol=0)
    val = setup.tasks_of(narrow, 6, 502)
    adam = tune_adam_lr(setup.model, eve.mean, val, steps=5, grid=list(SMALL.adam_grid))
    adam_own = tune_adam_lr(setup.model, own.mean, val, steps=5, grid=list(SMALL.adam_grid))
    assert r.adam.scores == pytest.approx(adam.scores, rel=1e-12) and r.adam_lr == adam.best
    assert r.adam_own.scores == pytest.approx(adam_own.scores, rel=1e-12)
    test = setup.tasks_of(ood, 6, 901)
    for row in range(2):
        loops = inner_loops(setup.model, eve.seed(row), adam_lr=adam.best, own=own.seed(row),
                            own_adam_lr=adam_own.best, meta_sgd=r.meta_sgd.seed(row))
        direct = error_vs_steps(setup.model, loops, test, [1, 5])
        for name in chapter.INNER_LOOPS:
            for k, want in enumerate(direct[name]):
                np.testing.assert_allclose(comparison.errors("narrow", name, (1, 5)[k], ood=True)[row], want,
                                           rtol=1e-12, err_msg=name)
    assert r.meta_sgd.rates.shape == (2, setup.model.n_params)
    v = comparison.verdict("narrow", "Eve", "Meta-SGD", 5, ood=True)
    assert v.paired and v.difference.n == 2
    for steps in (5, 1):
        table = chapter.inner_loops_table(comparison, steps)
        assert table.count("\n") == 1 + len(chapter.INNER_LOOPS) and "Meta-SGD" in table
    assert len(chapter.verdicts_text(comparison).splitlines()) == 3 * 2 * len(chapter.VERDICT_PAIRS)


def test_rate_recovery_against_direct_calls(small_results):
    setup, rec = small_results.setup, small_results.recovery
    for f, (family, _) in setup.families.items():
        r = small_results.comparison.by_family[f]
        s = family.scale.numpy()
        for row in range(2):
            lam = r.eve.seed(row).rates.base_rates.numpy()
            assert rec.eve[f][row] == (pytest.approx(rank_correlation(lam, s)),
                                       pytest.approx(permutation_p_value(lam, s, n_permutations=50, seed=0)))
            assert rec.meta_sgd[f][row] == pytest.approx(rank_correlation(r.meta_sgd.seed(row).rates.numpy(), s))
    assert chapter.recovery_table(rec).count("\n") == 1 + 3


def test_sparse_movement_against_direct_calls(small_results):
    setup, r = small_results.setup, small_results.comparison.by_family["sparse"]
    sparse, ood = setup.families["sparse"]
    moves = small_results.movement
    for row in range(2):
        adapted = r.loops[row]["SGD + line search"](r.test_ood.x_support, r.test_ood.y_support, 5).params.detach()
        assert moves.moves[("SGD + line search", "OOD")][row] == movement(adapted, r.eve.seed(row).mean,
                                                                          sparse.varying, ood.varying)
        adapted = r.loops[row]["Meta-SGD"](r.test.x_support, r.test.y_support, 5).params.detach()
        assert moves.moves[("Meta-SGD", "in distribution")][row] == movement(adapted, r.meta_sgd.seed(row).params,
                                                                             sparse.varying, sparse.varying)
    assert len(moves.moves) == 2 * len(chapter.INNER_LOOPS)
    mean = moves.mean("Eve", "OOD")
    assert mean.fixed == pytest.approx(np.mean([m.fixed for m in moves.moves[("Eve", "OOD")]]))
    assert moves.convergence["OOD"].shape == (2, 6)
    assert chapter.movement_table(moves).count("\n") == 1 + 2 * len(chapter.INNER_LOOPS)


def test_check_claims_prints_one_line_per_claim_and_raises_when_one_fails(small_results, capsys):
    claims = chapter.check_claims(small_results)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "training seeds: 2 (of Eve, the mean-only learner and Meta-SGD, every family)"
    assert lines[1] == "parameters: 25; families: sparse, narrow, wide; inner loops compared: 6"
    assert lines[2:] == [f"{s}: {v}" for s, v in claims.verdicts]
    rec = small_results.recovery
    failing = chapter.Results(small_results.settings, small_results.setup, small_results.sweep,
                              small_results.comparison,
                              chapter.RateRecovery(rec.base_rates, rec.true_scale,
                                                   {**rec.eve, "sparse": [(-0.5, 1.0)] * 2}, rec.meta_sgd),
                              small_results.movement)
    failed = chapter.check_claims(failing)
    assert not failed.verdicts[0][1]
    with pytest.raises(AssertionError, match="better than chance"):
        failed.assert_all()


def test_findings_give_every_number_the_chapter_quotes(small_results):
    import re
    from pathlib import Path

    values = chapter.findings(small_results)
    assert all(isinstance(v, str) and v for v in values.values())
    text = (Path(__file__).parents[2] / "notebooks" / "03_eve.md").read_text()
    quoted = set(re.findall(r"\{glue:text\}`([A-Za-z_0-9]+)`", text))
    # SMALL sweeps kappa 0 and 0.5 and budgets 1 and 5: the names of other kappas and of 100 steps are
    # the paper run's; every other name the chapter quotes must be there
    missing = {q for q in quoted - set(values) if not re.search(r"kappa_(0_2|1|5)_|_100_|^ls_", q)}
    assert quoted and not missing, sorted(missing)
    # the ls_ names are the line-search sweep's (experiments.line_search_sweep.findings)
    sweep_names = {"ls_repeats", "ls_steps", "ls_setting", "ls_time_seconds", "ls_time_steps", "ls_time_best",
                   "ls_time_vs_published"} | {
        f"ls_{row}{part}" for row in ("best", "full_batch", "logistic", "relu")
        for part in ("", "_steps", "_published", "_vs_published")}
    assert {q for q in quoted if q.startswith("ls_")} <= sweep_names
    assert values["seeds"] == "2" and values["kappa"] == f"{small_results.sweep.chosen:g}"
    assert values["sparse_eve_vs_sgd_5_in"] in ("lower than", "higher than", "not distinguishable from")
