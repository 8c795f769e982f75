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


# ---------------------------------------------------------------------------------------- the chapter's sections

import dataclasses  # noqa: E402

from backprop2lib.experiments import scale_comparison as ch2  # noqa: E402
from backprop2lib.stats import summarise  # noqa: E402


def test_settings_for_profile_gives_the_notebooks_sizes():
    smoke, paper, full = (ch2.Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    assert (smoke.iterations, smoke.outer_iterations, smoke.tasks_per_iteration, smoke.adapt_steps, smoke.test_tasks,
            smoke.terminator_tasks, smoke.permutations, smoke.recovery_p) == (150, 3, 30, 30, 100, 20, 2000, 0.05)
    assert (paper.iterations, paper.outer_iterations, paper.tasks_per_iteration, paper.adapt_steps, paper.test_tasks,
            paper.terminator_tasks, paper.permutations, paper.recovery_p) == (3000, 10, 100, 100, 300, 100, 10000, 0.01)
    assert full == paper
    for s in (smoke, paper):
        assert s.query_points == 200 and s.strengths == (1e-2, 1e-3, 1e-4, 1e-5, 1e-6) and s.shots == (2, 5, 10, 20)
        assert (s.train_seed, s.sweep_seed, s.collapse_seed, s.validation_seed, s.test_seed, s.test_ood_seed,
                s.spread_seed, s.shots_seed, s.terminator_seed) == (100, 11, 7, 500, 900, 901, 902, 910, 920)
    assert smoke.comparison == ComparisonSettings(iterations=150, outer_iterations=3, tasks_per_iteration=30,
                                                  adapt_steps=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.iterations = 1


SMALL = dataclasses.replace(
    ch2.Settings.for_profile("smoke"), iterations=2, outer_iterations=2, tasks_per_iteration=4, adapt_steps=3,
    test_tasks=4, terminator_tasks=3, permutations=20, query_points=10, validation_tasks=4, spread_points=8,
    strengths=(1e-2, 1e-4), shots=(2, 5), terminator_budgets=(4,), terminator_cap=300, minima_samples=500,
    minima_grid_points=20_001, layers=(2, 4, 1), n_varying=3)


@pytest.fixture(scope="module")
def small():
    return ch2.run(SMALL)


def test_quartic_minima_are_at_the_formula():
    m = ch2.quartic_minima(SMALL)
    assert m.ok and len(m.checks) == 8 and "consistent" in ch2.minima_table(m)
    consistent = [c for c in m.checks if c.variant == "consistent"]
    for c in consistent:
        assert c.found == pytest.approx(c.intended, rel=2e-3)


def test_sections_match_direct_calls(small):
    s, setup = SMALL, small.setup
    direct = TeacherTasks.sparse_variation(setup.model, n_varying=3, spread=0.5, seed=0)
    init = direct.mean + 0.3 * torch.randn(setup.model.n_params, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(setup.init, init, rtol=0, atol=0)
    # the collapse runs: the quadratic without floor at c = 1e-2 first
    from backprop2lib.meta.backprop2 import train_backprop2
    first = train_backprop2(setup.model, direct, outer_iterations=2, tasks_per_iteration=4, points_per_task=50,
                            loop=InnerLoop(max_steps=3), init=init, generator=torch.Generator().manual_seed(7),
                            rule="quadratic", strength=1e-2, floor=1e-30)
    assert list(small.collapse.runs) == ["quadratic, c = 1e-2, no floor", "quadratic, c = 1e-4, no floor",
                                         "quartic, c = 1e-2"]
    assert small.collapse.quadratic.history["scale_mean"] == first.history["scale_mean"]
    # the strength sweep: chosen on validation tasks, then used by every learner
    val = direct.sample(4, 10, 10, generator=torch.Generator().manual_seed(500))
    m = ch2.train_backprop2_method(setup.model, direct, init, s.comparison, "quartic", strength=1e-4, seed=11)
    e = summarise(ch2.evaluate_methods(setup.model, {"m": m}, val)["m"], diverged_above=1e6)
    assert small.sweep.val_error["quartic"][1e-4].mean == pytest.approx(e.mean)
    assert small.comparison.settings.strength_quartic == small.sweep.chosen["quartic"]
    # the comparison: every method, the same test tasks
    c = small.comparison
    assert list(c.families) == list(ch2.FAMILIES) and list(c.recovery) == ["sparse", "narrow", "wide"]
    test = direct.sample(4, 10, 10, generator=torch.Generator().manual_seed(900))
    torch.testing.assert_close(c.tests["sparse"][0].x_support, test.x_support)
    direct_errors = ch2.evaluate_methods(setup.model, c.trained["sparse"], test)
    np.testing.assert_allclose(c.raw["sparse"]["MAML"], direct_errors["MAML"], rtol=1e-6)
    starts = ch2.evaluate_starts(setup.model, c.trained["sparse"], test, c.settings.loop)
    assert small.same_loop.errors["sparse"]["Reptile"].mean == pytest.approx(
        summarise(starts["Reptile"], diverged_above=1e6).mean)
    assert small.shots.shots == (2, 5) and all(len(v) == 2 for v in small.shots.errors.values())
    assert list(small.terminator.results) == ["fixed 4 steps", "terminator (cap 300)"]
    for table in (ch2.strength_table(small.sweep), ch2.errors_table(c), ch2.ood_table(c), ch2.recovery_table(c),
                  ch2.scale_ratio_table(c), ch2.same_loop_table(small.same_loop), ch2.terminator_table(small.terminator)):
        assert table.startswith("|")
    lines = ch2.verdicts_text(c).splitlines()
    assert len(lines) == 4 * 4 and lines[0].startswith("sparse: backprop2 quartic vs MAML in distribution: ")


def test_check_claims_prints_one_line_per_claim_and_raises_when_one_fails(small, capsys):
    claims = ch2.check_claims(small)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("parameters: ") and len(out) == 1 + 6
    bad = dataclasses.replace(small, minima=ch2.QuarticMinima([dataclasses.replace(small.minima.checks[0],
                                                                                    at_formula=False)]))
    with pytest.raises(AssertionError):
        ch2.check_claims(bad).assert_all()
    del claims
