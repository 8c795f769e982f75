"""Chapter 1's driver (experiments/maml_reptile.py): its settings per profile, each section at a tiny
size against a direct call or a written-out reference, run(), and the claim checks."""

import dataclasses

import numpy as np
import pytest
import torch

from backprop2lib import methods
from backprop2lib.experiments import maml_reptile as ch1
from backprop2lib.experiments.maml_reptile import (METHODS, Evaluation, LargeStep, Results, Settings, Timing,
                                                   Training)
from backprop2lib.meta import TrainResult, evaluate_adaptation, from_mse_lr, train_maml, train_pretrained, train_reptile
from backprop2lib.meta.reference import maml_loss_per_task
from backprop2lib.optim import Curve
from backprop2lib.profiles import Profile
from backprop2lib.tasks import SinusoidTasks
from backprop2lib.tasks.batch import TaskBatch

# every section at a size that runs in well under a second
TINY = dataclasses.replace(Settings.for_profile("smoke"), iterations=3, eval_tasks=30, eval_steps=3, grid_points=64,
                           timing_repeats=1, loss_window=2, family_grid_points=50, fit_grid_points=40,
                           fit_steps=(0, 1, 3), large_steps=3)

CLAIMS = [
    "MAML beats the pretrained baseline by the required factor after 1 step (K=10)",
    "First-order MAML beats the pretrained baseline after 1 step (K=10)",
    "Reptile beats the pretrained baseline after 1 step (K=10)",
    "MAML keeps improving from 1 to 10 steps (K=10)",
    "With alpha = 0.05 some tasks diverge and are counted, not averaged",
    "Batched MAML is faster than the per-task loop",
]


def _seeded(seed):
    return torch.Generator().manual_seed(seed)


def _training(params: dict[str, torch.Tensor]) -> Training:
    """A Training holding the given learned starts (no training run)."""
    init = next(iter(params.values()))
    return Training(init, {name: TrainResult(name, p, np.zeros(2), 1.0) for name, p in params.items()})


def _random_start(seed: int, scale: float = 1.0) -> torch.Tensor:
    model = TINY.model()
    return scale * model.flatten(model.init(generator=_seeded(seed)))


def _forward(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The 1-40-40-1 ReLU network on one task, written out: x [N, 1] -> [N, 1]."""
    w1, b1, w2, b2, w3, b3 = TINY.model().unflatten(theta)
    return torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2) @ w3 + b3


@pytest.fixture(scope="module")
def trained():
    return ch1.train_methods(TINY)


# ------------------------------------------------------------------ Settings

def test_smoke_settings_are_the_ones_the_notebook_used():
    s = Settings.for_profile("smoke")
    assert (s.iterations, s.mse_ratio_required, s.timing_repeats, s.loss_window) == (4_000, 2.5, 20, 100)
    assert (s.eval_tasks, s.eval_steps, s.eval_k_shots, s.grid_points) == (600, 10, (5, 10), 1000)
    assert (s.layers, s.activation, s.meta_batch, s.k_shot, s.k_query) == ((1, 40, 40, 1), "relu", 25, 10, 10)
    assert (s.inner_mse_lr, s.meta_lr, s.reptile_inner_steps, s.reptile_outer_lr) == (0.01, 1e-3, 5, 1.0)
    assert (s.init_seed, s.maml_seed, s.fomaml_seed, s.reptile_seed, s.pretrained_seed) == (0, 1, 2, 3, 4)
    assert (s.family_seed, s.eval_seed, s.fit_seed, s.timing_seed) == (3, 2024, 11, 5)
    assert (s.family_tasks, s.family_k_shot, s.fit_k_shot, s.fit_steps) == (6, 10, 5, (0, 1, 10))
    assert (s.large_mse_lr, s.large_k_shot, s.large_steps) == (0.05, 5, 10)
    # the MSE steps become steps on E: α = 0.01 is 0.02, the large step 0.05 is 0.1
    assert s.inner_lr == 0.02 and s.large_lr == pytest.approx(0.1)
    assert s.model().n_params == 1761
    assert s.tasks == SinusoidTasks.maml()


def test_paper_and_full_are_the_published_scale():
    paper, full = Settings.for_profile("paper"), Settings.for_profile(Profile("full"))
    assert (paper.iterations, paper.mse_ratio_required, paper.timing_repeats, paper.loss_window) == \
        (70_000, 5.0, 100, 1000)
    assert full == paper
    smoke = Settings.for_profile("smoke")
    # only the profile-dependent sizes differ between profiles
    differ = {f.name for f in dataclasses.fields(Settings) if getattr(smoke, f.name) != getattr(paper, f.name)}
    assert differ == {"iterations", "mse_ratio_required", "timing_repeats", "loss_window"}


def test_settings_reject_an_unknown_profile_and_are_frozen():
    with pytest.raises(ValueError, match="unknown profile"):
        Settings.for_profile("huge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.for_profile("smoke").iterations = 1


# ------------------------------------------------------------------ task_examples

def test_task_examples_are_the_seeded_tasks_on_their_curves():
    ex = ch1.task_examples(TINY)
    batch = SinusoidTasks.maml().sample(6, 10, generator=_seeded(TINY.family_seed))
    amplitude, phase = batch.truth[:, 0].double().numpy(), batch.truth[:, 1].double().numpy()
    assert ex.y.shape == (6, 50) and ex.x_support.shape == (6, 10)
    np.testing.assert_allclose(ex.x, np.linspace(-5, 5, 50), atol=1e-6)
    # every curve and every support point is A sin(x − φ) of its own task
    np.testing.assert_allclose(ex.y, amplitude[:, None] * np.sin(ex.x[None, :] - phase[:, None]), atol=1e-5)
    np.testing.assert_allclose(ex.y_support, amplitude[:, None] * np.sin(ex.x_support - phase[:, None]), atol=1e-5)
    assert not np.allclose(ex.y[0], ex.y[1])


# ------------------------------------------------------------------ train_methods

def test_train_methods_trains_each_method_with_its_own_seed_from_one_start(trained):
    model, tasks = TINY.model(), TINY.tasks
    init = model.flatten(model.init(generator=_seeded(0)))
    assert tuple(trained.runs) == METHODS == ("MAML", "FOMAML", "Reptile", "pretrained")
    torch.testing.assert_close(trained.init, init, rtol=0, atol=0)
    common = dict(iterations=3, meta_batch=25, k_shot=10, k_query=10, init=init)
    direct = {
        "MAML": train_maml(model, tasks, inner_lr=0.02, meta_lr=1e-3, generator=_seeded(1), **common),
        "FOMAML": train_maml(model, tasks, inner_lr=0.02, meta_lr=1e-3, first_order=True, generator=_seeded(2),
                             **common),
        "Reptile": train_reptile(model, tasks, inner_steps=5, inner_lr=0.02, outer_lr=1.0, generator=_seeded(3),
                                 **common),
        "pretrained": train_pretrained(model, tasks, lr=1e-3, generator=_seeded(4), **common),
    }
    for name, run in trained.runs.items():
        assert run.method == name and run.params.shape == (1761,) and len(run.losses) == 3
        torch.testing.assert_close(run.params, direct[name].params, rtol=0, atol=0)
        np.testing.assert_array_equal(run.losses, direct[name].losses)
        assert not torch.equal(run.params, init)
    assert not torch.equal(trained.params("MAML"), trained.params("FOMAML"))


# ------------------------------------------------------------------ evaluate_methods

def test_each_curve_is_evaluate_adaptation_called_directly(trained):
    ev = ch1.evaluate_methods(TINY, trained)
    assert list(ev.curves) == [(m, k) for m in METHODS for k in (5, 10)]
    for (name, k), curve in ev.curves.items():
        direct = evaluate_adaptation(TINY.model(), trained.params(name), TINY.tasks, method=name, n_tasks=30,
                                     k_shot=k, steps=3, inner_lr=0.02, grid_points=64, seed=2024)
        assert curve.name == name and curve.labels["k_shot"] == k and curve.losses.shape == (4, 30)
        np.testing.assert_array_equal(curve.losses, direct.losses)
        assert curve.diverged_above == 1e6


def test_every_method_is_evaluated_on_the_same_tasks():
    start = _random_start(7)
    ev = ch1.evaluate_methods(TINY, _training({name: start for name in METHODS}))
    for k in (5, 10):
        for name in METHODS[1:]:
            np.testing.assert_array_equal(ev.curve(name, k).losses, ev.curve("MAML", k).losses)
    assert not np.array_equal(ev.curve("MAML", 5).at(1), ev.curve("MAML", 10).at(1))


# ------------------------------------------------------------------ example_fits

def test_example_fits_against_a_written_out_sgd_step():
    starts = {"MAML": _random_start(8), "pretrained": _random_start(9)}
    fits = ch1.example_fits(TINY, _training(starts))
    demo = SinusoidTasks.maml().sample(1, 5, generator=_seeded(11))
    x = torch.linspace(-5, 5, 40)[:, None]
    amplitude, phase = float(demo.truth[0, 0]), float(demo.truth[0, 1])
    np.testing.assert_allclose(fits.truth, amplitude * np.sin(x[:, 0].numpy() - phase), atol=1e-5)
    np.testing.assert_array_equal(fits.x_support, demo.x_support[0, :, 0].numpy())
    assert list(fits.predictions) == ["MAML", "pretrained"] and fits.k_shot == 5
    for name, theta in starts.items():
        assert list(fits.predictions[name]) == [0, 1, 3]
        np.testing.assert_allclose(fits.predictions[name][0], _forward(theta, x)[:, 0].detach().numpy(), atol=1e-5)
        # one step of SGD at 0.02 on E = mean over the support points of ½(f − y)², by autograd
        w = theta.clone().requires_grad_(True)
        error = 0.5 * (_forward(w, demo.x_support[0]) - demo.y_support[0]).pow(2).mean()
        (grad,) = torch.autograd.grad(error, w)
        np.testing.assert_allclose(fits.predictions[name][1], _forward(theta - 0.02 * grad, x)[:, 0].detach().numpy(),
                                   atol=1e-4)
        assert not np.allclose(fits.predictions[name][3], fits.predictions[name][1])


# ------------------------------------------------------------------ large_step

def test_large_step_counts_diverged_tasks_and_never_averages_them():
    # a start whose adaptation runs away on some tasks and not on others at this step
    settings = dataclasses.replace(TINY, eval_tasks=60, large_mse_lr=LARGE_MIXED)
    training = _training({name: _random_start(12) for name in METHODS})
    ev = ch1.evaluate_methods(settings, training)
    result = ch1.large_step(settings, training, ev)
    assert result.trained is ev.curve("MAML", 5)
    direct = evaluate_adaptation(settings.model(), training.params("MAML"), settings.tasks, n_tasks=60, k_shot=5,
                                 steps=3, inner_lr=from_mse_lr(LARGE_MIXED), grid_points=64, seed=2024)
    np.testing.assert_array_equal(result.large.losses, direct.losses)
    final = result.large.at(3)
    runaway = ~np.isfinite(final) | (final > 1e6)
    assert 0 < runaway.sum() < 60  # the setting under test: some tasks diverge, not all
    summary = result.large.summary(3)
    assert summary.n_diverged == result.n_diverged == runaway.sum()
    assert summary.n == 60 - runaway.sum()
    assert summary.mean == pytest.approx(final[~runaway].mean(), rel=1e-12)
    assert summary.mean < 1e6
    text = ch1.large_step_text(result).splitlines()
    assert text[0] == f"MAML, K = 5, alpha = 0.01, 3 steps: {result.trained.summary(3)}"
    assert text[1] == f"MAML, K = 5, alpha = {LARGE_MIXED:g}, 3 steps: {summary}"
    assert text[1].endswith(f"({runaway.sum()} diverged)")


LARGE_MIXED = 0.5  # a step (on the MSE) at which start 12 diverges on some of the 60 tasks after 3 steps


# ------------------------------------------------------------------ time_meta_iteration

def test_both_timed_calls_compute_the_second_order_meta_gradient():
    model, theta = TINY.model(), _random_start(13)
    batch = SinusoidTasks.maml().sample(4, 10, 10, generator=_seeded(5))
    w = theta.clone().requires_grad_(True)
    grads = []
    for call in ch1.meta_iteration_calls(model, w, batch, 0.02):
        call()
        grads.append(w.grad.clone())
        w.grad = None
    # the reference: a loop over tasks with autograd's double backward, in float64
    w64 = theta.double().requires_grad_(True)
    b64 = TaskBatch(*(t.double() for t in (batch.x_support, batch.y_support, batch.x_query, batch.y_query,
                                            batch.truth)))
    (expected,) = torch.autograd.grad(maml_loss_per_task(model, w64, b64, inner_lr=0.02), w64)
    (first_order,) = torch.autograd.grad(maml_loss_per_task(model, w64, b64, inner_lr=0.02, first_order=True), w64)
    for g in grads:
        torch.testing.assert_close(g.double(), expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(g.double(), first_order, rtol=1e-3, atol=1e-4)


def test_timing_times_maml_start_on_the_seeded_batch_with_its_repeats(monkeypatch):
    settings = dataclasses.replace(TINY, timing_repeats=60)
    theta = _random_start(13)
    seen, timed = {}, []

    def spy_calls(model, w, batch, inner_lr):
        seen.update(w=w, batch=batch, inner_lr=inner_lr)
        return "batched", "loop"

    def fake_time_per_call(fn, *, repeats: int, device=None):
        timed.append((fn, repeats))
        return {"batched": 1e-3, "loop": 2e-3}[fn]

    monkeypatch.setattr(ch1, "meta_iteration_calls", spy_calls)
    monkeypatch.setattr(ch1, "time_per_call", fake_time_per_call)
    timing = ch1.time_meta_iteration(settings, _training({**{n: _random_start(1) for n in METHODS}, "MAML": theta}))
    assert timed == [("batched", 60), ("loop", 6)]
    assert timing == Timing(ms_batched=1.0, ms_loop=2.0) and timing.speedup == 2.0
    # MAML's start, as a fresh leaf; the meta-batch seeded by timing_seed; the trained step α
    torch.testing.assert_close(seen["w"], theta, rtol=0, atol=0)
    assert seen["w"].requires_grad and seen["w"].is_leaf and seen["w"] is not theta
    expected = SinusoidTasks.maml().sample(25, 10, 10, generator=_seeded(5))
    torch.testing.assert_close(seen["batch"].x_all, expected.x_all, rtol=0, atol=0)
    torch.testing.assert_close(seen["batch"].y_all, expected.y_all, rtol=0, atol=0)
    assert seen["inner_lr"] == 0.02


# ------------------------------------------------------------------ run

def test_run_returns_every_section_and_each_matches_the_section_alone():
    results = ch1.run(TINY)
    assert [f.name for f in dataclasses.fields(Results)] == \
        ["settings", "examples", "training", "evaluation", "fits", "large_step", "timing"]
    assert results.settings is TINY
    assert isinstance(results.examples, ch1.TaskExamples) and isinstance(results.fits, ch1.ExampleFits)
    assert tuple(results.training.runs) == METHODS
    assert set(results.evaluation.curves) == {(m, k) for m in METHODS for k in (5, 10)}
    assert results.large_step.trained is results.evaluation.curve("MAML", 5)
    assert np.isfinite(results.timing.ms_batched) and np.isfinite(results.timing.ms_loop)
    # a section alone gives the numbers it gives inside run()
    alone = ch1.evaluate_methods(TINY, ch1.train_methods(TINY))
    for key, curve in results.evaluation.curves.items():
        np.testing.assert_array_equal(curve.losses, alone.curves[key].losses)
    np.testing.assert_array_equal(ch1.task_examples(TINY).y, results.examples.y)


# ------------------------------------------------------------------ tables and figures

def test_training_table_has_one_row_per_method(trained):
    lines = ch1.training_table(trained).splitlines()
    assert lines[0] == "| method | meta-iterations | training time (s) | iterations / s |"
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[2:]] == list(METHODS)
    assert all(line.split(" | ")[1] == "3" for line in lines[2:])


def test_adaptation_figure_draws_each_method_in_its_colour_per_k():
    import matplotlib.pyplot as plt

    ev = _synthetic_evaluation()
    fig = ch1.adaptation_figure(ev)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["K = 5 support points", "K = 10 support points"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == list(METHODS)
        assert [line.get_color() for line in ax.get_lines()] == [methods.color(m) for m in METHODS]
    plt.close(fig)


# ------------------------------------------------------------------ claims

def _curve(name: str, k: int, means_by_step: list[float], n: int = 200, seed: int = 0, spread: float = 0.05) -> Curve:
    rng = np.random.default_rng(seed)
    losses = np.array([m * (1 + spread * rng.standard_normal(n)) for m in means_by_step])
    return Curve(name, losses, diverged_above=1e6, labels={"k_shot": k, "inner_lr": 0.02})


def _synthetic_evaluation(spread: float = 0.05, **means) -> Evaluation:
    """Curves over 10 steps whose step-1 and step-10 means are given per method (K = 5 and 10 alike), each
    task's error scattered by a relative ``spread``."""
    default = {"MAML": (0.35, 0.12), "FOMAML": (0.39, 0.11), "Reptile": (0.5, 0.1), "pretrained": (2.4, 1.5)}
    default.update(means)
    curves = {}
    for i, name in enumerate(METHODS):
        one, ten = default[name]
        steps = [3.0, one] + list(np.geomspace(one, ten, 10)[1:])
        for k in (5, 10):
            curves[(name, k)] = _curve(name, k, steps, seed=10 * i + k, spread=spread)
    return Evaluation(curves)


def _results(evaluation=None, *, n_diverged=None, ms=(1.0, 10.0), settings=TINY) -> Results:
    """Results for the claims: every claim holds unless an argument says otherwise."""
    evaluation = evaluation or _synthetic_evaluation()
    n = settings.eval_tasks
    large = np.full((4, n), 1.0)
    large[-1, :n // 3 if n_diverged is None else n_diverged] = np.inf
    large_curve = Curve("MAML, alpha = 0.05", large, diverged_above=1e6, labels={"k_shot": 5, "inner_lr": 0.1})
    training = _training({name: torch.zeros(1761) for name in METHODS})
    return Results(settings, None, training, evaluation, None,
                   LargeStep(evaluation.curve("MAML", 5), large_curve, 0.01, 0.05, 3), Timing(*ms))


def test_check_claims_prints_one_line_per_claim(capsys):
    settings = dataclasses.replace(TINY, eval_tasks=600)
    claims = ch1.check_claims(_results(settings=settings))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["parameters per model: 1761; held-out tasks: 600; test K: 5 and 10"] + \
        [f"{claim}: True" for claim in CLAIMS]
    assert [s for s, _ in claims.verdicts] == CLAIMS
    claims.assert_all()


@pytest.mark.parametrize("failing, results", [
    (0, lambda: _results(_synthetic_evaluation(MAML=(1.0, 0.12)))),  # 2.4 / 1.0 < the required 2.5
    (1, lambda: _results(_synthetic_evaluation(FOMAML=(2.4, 0.11)))),
    (2, lambda: _results(_synthetic_evaluation(Reptile=(2.4, 0.1)))),
    (3, lambda: _results(_synthetic_evaluation(MAML=(0.35, 0.35)))),
    (4, lambda: _results(n_diverged=0)),
    (4, lambda: _results(n_diverged=TINY.eval_tasks)),
    (5, lambda: _results(ms=(10.0, 1.0))),
])
def test_each_claim_fails_on_its_own_and_assert_all_raises(failing, results, capsys):
    claims = ch1.check_claims(results())
    verdicts = dict(claims.verdicts)
    assert [claim for claim in CLAIMS if not verdicts[claim]] == [CLAIMS[failing]]
    assert f"{CLAIMS[failing]}: False" in capsys.readouterr().out.splitlines()
    with pytest.raises(AssertionError, match="did not hold"):
        claims.assert_all()


def test_beats_is_a_non_overlap_of_the_two_intervals_without_diverged_tasks():
    ev = _synthetic_evaluation(FOMAML=(0.37, 0.11), spread=0.5)  # MAML 0.35 vs FOMAML 0.37: intervals overlap

    def interval(values):  # written out: mean ± z·s/√n over the tasks that did not diverge
        kept = values[np.isfinite(values) & (values <= 1e6)]
        half = 1.959963984540054 * kept.std(ddof=1) / np.sqrt(kept.size)
        return kept.mean() - half, kept.mean() + half

    outcomes = set()
    for a in METHODS:
        for b in METHODS:
            expected = interval(ev.curve(a, 10).at(1))[1] < interval(ev.curve(b, 10).at(1))[0]
            assert ch1.beats(ev, a, b) == expected, (a, b)
            outcomes.add(expected)
    assert outcomes == {True, False}
    assert not ch1.beats(ev, "MAML", "FOMAML") and ch1.beats(ev, "MAML", "pretrained")
    # between two intervals that overlap and an interval of the difference that excludes 0: not "beats"
    z = np.random.default_rng(0).standard_normal(200)
    z = (z - z.mean()) / z.std(ddof=1)  # mean 0, sd 1 exactly: each half-width is 1.96 · 0.1 / √200 ≈ 0.0139
    close = {(name, 10): Curve(name, np.stack([np.ones(200), mean + 0.1 * z]), labels={"k_shot": 10})
             for name, mean in (("MAML", 1.0), ("FOMAML", 1.024))}
    assert not ch1.beats(Evaluation(close), "MAML", "FOMAML")  # 1.024 − 1.0 < 2 · 0.0139, though > √2 · 0.0139
    close[("FOMAML", 10)] = Curve("FOMAML", np.stack([np.ones(200), 1.03 + 0.1 * z]), labels={"k_shot": 10})
    assert ch1.beats(Evaluation(close), "MAML", "FOMAML")
    assert ch1.beats(ev, "MAML", "MAML", step_a=10) and not ch1.beats(ev, "MAML", "MAML", step_b=10)
    # diverged tasks in MAML's curve are left out, not averaged into a mean that would lose
    curves = dict(ev.curves)
    losses = curves[("MAML", 10)].losses.copy()
    losses[1, :3] = [np.nan, np.inf, 1e7]
    curves[("MAML", 10)] = Curve("MAML", losses, diverged_above=1e6, labels={"k_shot": 10})
    assert ch1.beats(Evaluation(curves), "MAML", "pretrained")
