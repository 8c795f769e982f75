"""The chapter-2 driver: same tasks for every method, starts adapted by one loop, scale recovery scoring."""

import numpy as np
import pytest
import torch

from backprop2lib.experiments.scale_comparison import (METHODS, TRAINABLE, ComparisonSettings, TrainedMethod,
                                                       adapted_spread, evaluate_seeds, evaluate_starts, scale_recovery,
                                                       train_methods)
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
    return tasks, train_methods(MODEL, tasks, init, TINY, methods=TRAINABLE, seed=1)


def test_every_method_is_trained_and_keeps_its_start(trained):
    _, methods = trained
    assert list(methods) == list(TRAINABLE) and set(METHODS) < set(TRAINABLE)
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


def test_seeded_training_row_j_is_the_single_run_with_seed_j():
    """Every method trained for seeds [3, 4] in one batch: seed 4's learner adapts like the single run
    whose generator is seeded 4 (float64), and :func:`evaluate_seeds` stacks the rows' errors."""
    model = MLP((2, 5, 1), activation="gaussian")
    tasks = TeacherTasks.sparse_variation(model, n_varying=3, spread=0.5, seed=0)
    init = tasks.mean.double() + 0.1 * torch.randn(model.n_params, generator=torch.Generator().manual_seed(0),
                                          dtype=torch.float64)
    seeded = train_methods(model, tasks, init, TINY, seeds=[3, 4])
    batch = tasks.sample(3, 5, 7, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    errors = evaluate_seeds(model, seeded, batch)
    for name in METHODS:
        assert seeded[name].seeds == [3, 4] and len(seeded[name].rows) == 2
        single = train_methods(model, tasks, init, TINY, methods=(name,), seed=4)[name]
        expected = evaluate_starts(model, {name: single}, batch, InnerLoop(max_steps=3))[name]
        got = evaluate_seeds(model, {name: seeded[name]}, batch, InnerLoop(max_steps=3))[name]
        np.testing.assert_allclose(got[1], expected, rtol=1e-8, err_msg=name)
        assert errors[name].shape == (2, 3)
        np.testing.assert_allclose(errors[name][1], ch2_errors(model, single, batch), rtol=1e-8, err_msg=name)


def ch2_errors(model, method, batch):
    from backprop2lib.experiments.scale_comparison import evaluate_methods
    return evaluate_methods(model, {"m": method}, batch)["m"]


# ---------------------------------------------------------------------------------------- the chapter's sections

import dataclasses  # noqa: E402

from backprop2lib.experiments import scale_comparison as ch2  # noqa: E402
from backprop2lib.stats import compare_seeds, summarise  # noqa: E402


def test_settings_for_profile_gives_the_notebooks_sizes():
    smoke, paper, full = (ch2.Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    assert (smoke.iterations, smoke.outer_iterations, smoke.tasks_per_iteration, smoke.adapt_steps, smoke.test_tasks,
            smoke.terminator_tasks, smoke.permutations, smoke.recovery_p, smoke.n_seeds, smoke.strengths,
            smoke.tuning_outer_iterations) == (120, 3, 30, 30, 60, 20, 2000, 0.05, 3, (1e-6, 1e-4), 2)
    assert (paper.iterations, paper.outer_iterations, paper.tasks_per_iteration, paper.adapt_steps, paper.test_tasks,
            paper.terminator_tasks, paper.permutations, paper.recovery_p, paper.n_seeds, paper.strengths,
            paper.tuning_outer_iterations) == (2000, 10, 100, 100, 150, 50, 10000, 0.01, 3, (1e-6, 1e-5, 1e-4), 3)
    assert full == dataclasses.replace(paper, n_seeds=10, iterations=3000, test_tasks=300, tuning_outer_iterations=10)
    assert paper.seeds(paper.train_seed) == [100, 101, 102] and paper.tuning_seed not in paper.seeds(paper.train_seed)
    assert smoke.comparison == ComparisonSettings(iterations=120, outer_iterations=3, tasks_per_iteration=30,
                                                  adapt_steps=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.iterations = 1


SMALL = dataclasses.replace(
    ch2.Settings.for_profile("smoke"), iterations=2, outer_iterations=2, tasks_per_iteration=4, adapt_steps=3,
    test_tasks=4, terminator_tasks=3, permutations=20, query_points=10, validation_tasks=4, spread_points=8,
    n_seeds=2, strengths=(1e-4, 1e-2), tuning_outer_iterations=1, shots=(2, 5), terminator_budgets=(4,),
    terminator_cap=300, minima_samples=500, minima_grid_points=20_001, layers=(2, 4, 1), n_varying=3)


@pytest.fixture(scope="module")
def small():
    return ch2.run(SMALL)


def test_quartic_minima_are_at_the_formula():
    m = ch2.quartic_minima(SMALL)
    assert m.ok and len(m.checks) == 8 and "consistent" in ch2.minima_table(m)
    for c in m.checks:
        if c.variant == "consistent":
            assert c.found == pytest.approx(c.intended, rel=2e-3) and m.ratio(c.rms, "consistent") == pytest.approx(1, rel=2e-3)
    assert m.ratio(0.1, "type3") == pytest.approx(0.1 ** -0.5, rel=0.02)  # at sqrt(RMS), not at RMS
    with pytest.raises(ValueError, match="rms, variant"):
        m.ratio(0.1, "least_squares")


def test_sections_match_direct_calls(small):
    s, setup = SMALL, small.setup
    direct = TeacherTasks.sparse_variation(setup.model, n_varying=3, spread=0.5, seed=0)
    init = direct.mean + 0.3 * torch.randn(setup.model.n_params, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(setup.init, init, rtol=0, atol=0)
    assert list(setup.families) == list(ch2.FAMILIES)
    # the collapse runs: every collapse seed at once, the quadratic without floor at c = 1e-2 first
    from backprop2lib.meta.backprop2 import train_backprop2
    first = train_backprop2(setup.model, direct, outer_iterations=2, tasks_per_iteration=4, points_per_task=50,
                            loop=InnerLoop(max_steps=3), init=init, generator=torch.Generator().manual_seed(8),
                            rule="quadratic", strength=1e-2, floor=1e-30)
    assert small.collapse.names == ["quadratic, c = 1e-2, no floor", "quadratic, c = 1e-4, no floor",
                                    "quartic, c = 1e-2"]
    np.testing.assert_allclose(small.collapse.scale(small.collapse.names[0])[:, 1], first.history["scale_mean"],
                               rtol=1e-4)
    # the strength sweep: per family, on the tuning seed with shortened meta-training, on validation tasks
    val = direct.sample(4, 10, 10, generator=torch.Generator().manual_seed(500))
    tuning = dataclasses.replace(s.comparison, outer_iterations=1)
    m = ch2.train_backprop2_method(setup.model, direct, init, tuning, "quartic", strength=1e-4, seed=s.tuning_seed)
    e = summarise(ch2.evaluate_methods(setup.model, {"m": m}, val)["m"], diverged_above=1e6)
    quartic = "backprop2 quartic"
    assert small.sweep.scores["sparse"][quartic][1e-4].mean == pytest.approx(e.mean)
    for f in ch2.FAMILIES:
        chosen = small.sweep.choices[f][quartic]
        assert chosen.best == min(s.strengths, key=lambda c: small.sweep.scores[f][quartic][c].mean)
        assert small.comparison.by_family[f].settings.strength_quartic == chosen.best
    # the comparison: every method for every seed, the same test tasks, paired verdicts
    c = small.comparison
    assert c.families == list(ch2.FAMILIES) and c.n_seeds == 2
    assert [f for f in c.families if c.by_family[f].recovery is not None] == ["sparse", "narrow", "wide"]
    test = direct.sample(4, 10, 10, generator=torch.Generator().manual_seed(900))
    torch.testing.assert_close(c.by_family["sparse"].test.x_support, test.x_support)
    trained = c.by_family["sparse"].trained
    for row in (0, 1):
        direct_errors = ch2.evaluate_methods(setup.model, {k: t.rows[row] for k, t in trained.items()}, test)
        np.testing.assert_allclose(c.errors("sparse", "MAML")[row], direct_errors["MAML"], rtol=1e-6)
    starts = ch2.evaluate_starts(setup.model, {"MAML": trained["MAML"].rows[1]}, test,
                                 c.by_family["sparse"].settings.loop)
    np.testing.assert_allclose(c.errors("sparse", "MAML", ch2.SAME)[1], starts["MAML"], rtol=1e-6)
    v = c.verdict("sparse", quartic, "MAML", ch2.SAME, loop_b=ch2.NATIVE)
    expected = compare_seeds(c.errors("sparse", quartic, ch2.SAME), c.errors("sparse", "MAML"), paired=True,
                             diverged_above=1e6)
    assert (v.verdict, v.difference.mean) == (expected.verdict, expected.difference.mean)
    with pytest.raises(ValueError, match="loop"):
        c.errors("sparse", "MAML", "backprop2")
    assert set(ch2.scale_ratios(c)) == {"Meta-SGD", "meta-gradient scale", "backprop2 quadratic", quartic}
    assert small.shots.shots == (2, 5) and all(len(v) == 2 and v[0].shape == (2, 4) for v in small.shots.errors.values())
    assert small.terminator.loops == ["fixed 4 steps", "terminator (cap 300)"]
    for table in (ch2.strength_table(small.sweep), ch2.errors_table(c), ch2.errors_table(c, ood=True),
                  ch2.errors_table(c, loop=ch2.SAME), ch2.recovery_table(c), ch2.scale_ratio_table(c),
                  ch2.terminator_table(small.terminator)):
        assert table.startswith("|")
    assert ch2.strength_text(small.sweep).count("\n") == 3 and ch2.collapse_text(small.collapse).count("seeds") == 3


def test_terminator_batches_the_seeds_like_one_seed_at_a_time(small):
    """The terminator section adapts every seed's tasks in one call; seed 1 alone gives the same result."""
    s, setup, t = SMALL, small.setup, small.terminator
    learner = small.comparison.by_family["sparse"].trained["backprop2 quartic"].rows[1].extra["model"]
    held_out = setup.tasks_of(setup.sparse, s.terminator_tasks, s.k_shot, s.terminator_seed, s.query_points)
    alone = learner.adapt(setup.model, held_out.x_support, held_out.y_support,
                          loop=InnerLoop(max_steps=s.terminator_cap, terminate=True))
    np.testing.assert_array_equal(t.steps[t.terminated][1], alone.steps.numpy())
    np.testing.assert_allclose(t.support[t.terminated][1], alone.error_after.double().numpy(), rtol=1e-4)


def test_check_claims_prints_one_line_per_claim_and_raises_when_one_fails(small, capsys):
    ch2.check_claims(small)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "training seeds: 2 (of every method on every family, and of the collapse runs)"
    assert out[1].startswith("parameters: ") and len(out) == 2 + 18
    wrong = ch2.MinimumCheck(0.1, "consistent", 0.2, 0.1, True)  # the consistent variant twice too far out
    bad = dataclasses.replace(small, minima=ch2.QuarticMinima([wrong] + small.minima.checks[1:]))
    with pytest.raises(AssertionError):
        ch2.check_claims(bad).assert_all()


def test_findings_are_text_for_every_family_method_and_loop(small):
    out = ch2.findings(small)
    assert all(isinstance(v, str) for v in out.values()) and out["seeds"] == "2"
    for f in ch2.FAMILIES:
        for key in ("maml", "quartic", "mean_only"):
            for loop in ("native", "same"):
                assert f"{f}_{key}_{loop}_in" in out and f"{f}_{key}_{loop}_ood" in out
        assert out[f"{f}_quartic_native_vs_maml_native_in"] in ("lower than", "higher than", "not distinguishable from")
        assert out[f"{f}_maml_same_vs_maml_native_ood"]
    assert "sparse_quartic_rho" in out and "bumps_quartic_rho" not in out and "ratio_quartic" in out
    assert out["term_cap"] == "300" and "term_vs_fixed_4" in out
