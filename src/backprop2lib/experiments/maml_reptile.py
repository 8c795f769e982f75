"""Chapter 1's experiments: MAML, first-order MAML, Reptile and a pretrained baseline on the MAML
paper's sinusoids, trained from one start and adapted to the same held-out tasks.

The chapter's sections, one function each: :func:`task_examples` (the task family),
:func:`train_methods` (the four methods, every training seed in one batched run each),
:func:`tune_steps` (every method's adaptation step tuned on validation tasks),
:func:`evaluate_methods` (adaptation curves at K = 5 and 10, at the trained and at the tuned
step), :func:`example_fits` (one new task, before and after adaptation), :func:`large_step`
(adaptation with five times the trained step, where tasks diverge) and :func:`time_meta_iteration`
(batched MAML against a per-task loop). :func:`run` runs them all; the ``*_table``, ``*_text`` and
``*_figure`` functions present a section's result; :func:`check_claims` checks the chapter's
findings at seed level and :func:`findings` gives the numbers its prose quotes.

Training seeds. Seed s gives every method the same start (``model.init`` drawn from
``torch.Generator().manual_seed(s)``) and the same stream of training tasks, so the methods are
compared seed by seed (paired), and every conclusion is read from the interval across seeds.

Every random draw comes from a ``torch.Generator`` seeded from :class:`Settings`, so a section
gives the same numbers alone as in the notebook, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..meta import (TrainResult, evaluate_adaptation, from_mse_lr, maml_loss, predict_after_adaptation, train_maml,
                    train_pretrained, train_reptile)
from ..meta.evaluate import DIVERGED_ABOVE
from ..meta.reference import maml_loss_per_task
from ..models.mlp import MLP
from ..optim.curve import Curve
from ..plotting import plot_curves, plot_fit, plot_training_losses
from ..profiles import Profile, resolve_profile
from ..optim.curve import compare_curves
from ..optim.tune import LRChoice, choose
from ..stats import Comparison, SeedSummary
from ..tables import markdown_table, seed_adaptation_table
from ..tasks import SinusoidTasks
from ..timing import time_per_call

METHODS = registry.names("maml", "fomaml", "reptile", "pretrained")
"""The methods chapter 1 compares, by display name, in the order they are trained and shown."""


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """Every size, seed and step size of chapter 1.

    The ``paper`` profile (and ``full``, which is the same) runs the MAML paper's sinusoid
    experiment at its published scale (Finn et al. 2017; ``shared/reference/maml-reptile.md``):
    network 1-40-40-1 with ReLU units, 25 tasks per meta-batch, K = 10 support and 10 query points
    per training task, one inner SGD step with α = 0.01 on the MSE, Adam with learning rate 1e-3,
    70,000 meta-iterations, 600 held-out tasks adapted for up to 10 steps at K = 5 and 10 and
    scored on a dense grid of 1,000 points. The paper trains once; we train 3 seeds in ``paper``
    and 10 in ``full``. Reductions in ``paper``: 30,000 meta-iterations instead of 70,000 (three
    seeds of every method must fit in the chapter's 15 minutes on 2 CPU cores; ``full`` has the
    70,000). Reductions in ``smoke`` (CI): 2,500 meta-iterations, the required MAML advantage over
    the baseline after one step 2.5× instead of 5×, held-out functions scored on 100 grid points
    instead of 1,000, the step tuned on 100 validation tasks instead of 200, 20 timing repeats
    instead of 100 and a training-loss smoothing window of 100 iterations instead of 1,000; its 3 seeds are
    ``paper``'s, so the claim cell prints the same lines.

    Not published settings, ours: Reptile's inner loop (5 steps at α = 0.01 on the 20 points MAML
    sees per task, outer step annealed from 1 to 0) on the MAML family; the required advantage
    (the paper shows curves only); the large step α = 0.05 of the divergence section; the timing
    benchmark; the step tuning (every method's adaptation step chosen from ``tune_mse_lrs`` by its
    mean grid error after ``eval_steps`` steps at K = 10 on ``tune_tasks`` validation tasks, the
    same protocol for every method). Step sizes stated on the MSE (``*_mse_lr``) are converted to the library's steps on
    E by :func:`backprop2lib.meta.from_mse_lr` (the properties ``inner_lr`` and ``large_lr``).
    """

    # sizes that depend on the profile
    iterations: int  # meta-iterations for every method
    seeds: tuple[int, ...]  # training seeds: each gives every method the same start and task stream
    mse_ratio_required: float  # MAML's error after 1 step (K = 10) must be this many times below the baseline's
    timing_repeats: int  # calls per timing round of batched MAML (the per-task loop: a tenth, at least 5)
    loss_window: int  # moving mean over this many iterations in the training-loss figure
    # the network and the task family's batches
    layers: tuple[int, ...] = (1, 40, 40, 1)
    activation: str = "relu"
    meta_batch: int = 25
    k_shot: int = 10  # support points per training task
    k_query: int = 10  # query points per training task
    # steps
    inner_mse_lr: float = 0.01  # the papers' α, on the MSE: inner step of training and evaluation
    meta_lr: float = 1e-3  # Adam's learning rate: MAML, FOMAML and the pretrained baseline
    reptile_inner_steps: int = 5
    reptile_outer_lr: float = 1.0  # annealed linearly to 0 over training
    # evaluation
    eval_tasks: int = 600  # held-out tasks, the same for every method
    eval_steps: int = 10
    eval_k_shots: tuple[int, ...] = (5, 10)
    grid_points: int = 1000  # dense grid the adapted functions are scored on
    # the task-family figure
    family_tasks: int = 6
    family_k_shot: int = 10
    family_grid_points: int = 500
    # the example fits
    fit_k_shot: int = 5
    fit_grid_points: int = 400
    fit_steps: tuple[int, ...] = (0, 1, 10)
    fit_methods: tuple[str, ...] = ("MAML", "pretrained")
    # the divergence section: MAML's start adapted with a larger step
    large_mse_lr: float = 0.05
    large_k_shot: int = 5
    large_steps: int = 10
    # the adaptation step, tuned on validation tasks for every method (the same protocol)
    tune_mse_lrs: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02, 0.04)  # on the MSE, as α is stated
    tune_tasks: int = 200
    tune_k_shot: int = 10
    # seeds of everything that is not training
    family_seed: int = 3  # the six tasks of the task-family figure
    eval_seed: int = 2024  # held-out tasks and their support points, every evaluation
    tune_seed: int = 77  # the validation tasks of the step tuning (never the held-out ones)
    fit_seed: int = 11  # the task of the example fits
    timing_seed: int = 5  # the meta-batch that is timed

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's)."""
        p = resolve_profile(profile)
        return cls(
            iterations=p.select(smoke=2_500, paper=30_000, full=70_000),
            # smoke (CI, <= 90 s): the held-out functions scored on 100 grid points instead of 1,000
            # (scoring is most of the evaluation's cost), and the step tuned on 100 validation tasks
            grid_points=p.select(smoke=100, paper=1000),
            tune_tasks=p.select(smoke=100, paper=200),
            seeds=p.select(smoke=(0, 1, 2), paper=(0, 1, 2), full=tuple(range(10))),
            mse_ratio_required=p.select(smoke=2.5, paper=5.0),
            timing_repeats=p.select(smoke=20, paper=100),
            loss_window=p.select(smoke=100, paper=1000),
        )

    @property
    def inner_lr(self) -> float:
        """The inner step α as a step on E (α = 0.01 on the MSE is 0.02 on E)."""
        return from_mse_lr(self.inner_mse_lr)

    @property
    def large_lr(self) -> float:
        """The divergence section's step as a step on E."""
        return from_mse_lr(self.large_mse_lr)

    @property
    def tasks(self) -> SinusoidTasks:
        """The MAML paper's family: A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[−5, 5]."""
        return SinusoidTasks.maml()

    def model(self) -> MLP:
        return MLP(self.layers, activation=self.activation)


# ---------------------------------------------------------------------------------------- sections

@dataclass(frozen=True, eq=False)
class TaskExamples:
    """A few tasks of the family: each curve on a grid and its support points."""

    x: np.ndarray  # [N] grid
    y: np.ndarray  # [T, N] each task's curve on the grid
    x_support: np.ndarray  # [T, K]
    y_support: np.ndarray  # [T, K]


def task_examples(settings: Settings) -> TaskExamples:
    """``family_tasks`` tasks with ``family_k_shot`` support points each (seed ``family_seed``)."""
    tasks = settings.tasks
    x = tasks.grid(settings.family_grid_points)
    batch = tasks.sample(settings.family_tasks, settings.family_k_shot, generator=_seeded(settings.family_seed))
    y = torch.stack([tasks.target(batch.truth[t:t + 1], x[None, :, None])[0, :, 0]
                     for t in range(settings.family_tasks)])
    return TaskExamples(x.numpy(), y.numpy(), batch.x_support[..., 0].numpy(), batch.y_support[..., 0].numpy())


@dataclass(frozen=True, eq=False)
class Training:
    """The four methods, every seed trained at once: ``runs[name].params`` is ``[S, P]`` (row s: seed s)."""

    seeds: tuple[int, ...]
    runs: dict[str, TrainResult]  # by display name, in METHODS order

    def params(self, name: str) -> torch.Tensor:
        """The learned starts of ``name``, one per seed ``[S, P]``."""
        return self.runs[name].params


def train_methods(settings: Settings, *, device: torch.device | str = "cpu") -> Training:
    """MAML, FOMAML, Reptile and the pretrained baseline, each trained for every seed in one batched run.

    Seed s gives every method the same start and the same training tasks (:mod:`backprop2lib.meta.training`)."""
    model, tasks, alpha = settings.model(), settings.tasks, settings.inner_lr
    common = dict(iterations=settings.iterations, meta_batch=settings.meta_batch, k_shot=settings.k_shot,
                  k_query=settings.k_query, seeds=list(settings.seeds), device=device)
    runs = {
        "MAML": train_maml(model, tasks, inner_lr=alpha, meta_lr=settings.meta_lr, **common),
        "FOMAML": train_maml(model, tasks, inner_lr=alpha, meta_lr=settings.meta_lr, first_order=True, **common),
        "Reptile": train_reptile(model, tasks, inner_steps=settings.reptile_inner_steps, inner_lr=alpha,
                                 outer_lr=settings.reptile_outer_lr, **common),
        "pretrained": train_pretrained(model, tasks, lr=settings.meta_lr, **common),
    }
    return Training(tuple(settings.seeds), runs)


@dataclass(frozen=True, eq=False)
class StepTuning:
    """Every method's adaptation step (on the MSE, as α is stated) chosen on validation tasks."""

    choices: dict[str, LRChoice]  # by display name; ``best`` on the MSE

    def mse_lr(self, name: str) -> float:
        return self.choices[name].best


def tune_steps(settings: Settings, training: Training, *, device: torch.device | str = "cpu") -> StepTuning:
    """For every method, the step in ``tune_mse_lrs`` with the lowest grid error after ``eval_steps`` steps at
    K = ``tune_k_shot``, averaged over seeds and ``tune_tasks`` validation tasks (seed ``tune_seed``);
    a step under which any task diverged scores inf. The same protocol for every method."""
    model, choices = settings.model(), {}
    for name, run in training.runs.items():
        scores = []
        for mse_lr in settings.tune_mse_lrs:
            curve = evaluate_adaptation(model, run.params, settings.tasks, method=name, n_tasks=settings.tune_tasks,
                                        k_shot=settings.tune_k_shot, steps=settings.eval_steps,
                                        inner_lr=from_mse_lr(mse_lr), grid_points=settings.grid_points,
                                        seed=settings.tune_seed, device=device)
            final = curve.at(settings.eval_steps)
            ok = np.isfinite(final).all() and (final <= DIVERGED_ABOVE).all()
            scores.append(float(final.mean()) if ok else np.inf)
        choices[name] = choose(name, settings.tune_mse_lrs, scores, settings.eval_steps)
    return StepTuning(choices)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Adaptation curves on the held-out tasks: ``curves[(name, k)]`` at the trained step α and
    ``tuned[(name, k)]`` at each method's tuned step; rows seeds × tasks (seed-major), records steps
    0..eval_steps."""

    curves: dict[tuple[str, int], Curve]
    tuned: dict[tuple[str, int], Curve]

    def curve(self, name: str, k: int, *, tuned: bool = False) -> Curve:
        return (self.tuned if tuned else self.curves)[(name, k)]


def evaluate_methods(settings: Settings, training: Training, tuning: StepTuning, *,
                     device: torch.device | str = "cpu") -> Evaluation:
    """Every method's starts (every seed) adapted by SGD to the same ``eval_tasks`` tasks (seed ``eval_seed``),
    at each K: at the trained step α (the paper's protocol) and at the method's tuned step."""
    model = settings.model()

    def curves(mse_lr_of) -> dict[tuple[str, int], Curve]:
        return {(name, k): evaluate_adaptation(model, run.params, settings.tasks, method=name,
                                               n_tasks=settings.eval_tasks, k_shot=k, steps=settings.eval_steps,
                                               inner_lr=from_mse_lr(mse_lr_of(name)), grid_points=settings.grid_points,
                                               seed=settings.eval_seed, device=device)
                for name, run in training.runs.items() for k in settings.eval_k_shots}

    return Evaluation(curves(lambda name: settings.inner_mse_lr), curves(tuning.mse_lr))


@dataclass(frozen=True, eq=False)
class ExampleFits:
    """One new task: the truth on a grid, its support points, and each method's prediction after each step count."""

    x: np.ndarray  # [N]
    truth: np.ndarray  # [N]
    x_support: np.ndarray  # [K]
    y_support: np.ndarray  # [K]
    predictions: dict[str, dict[int, np.ndarray]]  # method -> steps -> [N]
    k_shot: int


def example_fits(settings: Settings, training: Training, *, device: torch.device | str = "cpu") -> ExampleFits:
    """The ``fit_methods`` (their first training seed's start) adapted to one task (seed ``fit_seed``) from
    ``fit_k_shot`` points."""
    model, tasks = settings.model(), settings.tasks
    demo = tasks.sample(1, settings.fit_k_shot, generator=_seeded(settings.fit_seed), device=device)
    xs = tasks.grid(settings.fit_grid_points, device=device)[None, :, None]
    truth = tasks.target(demo.truth, xs)[0, :, 0].cpu().numpy()
    predictions = {}
    for name in settings.fit_methods:
        preds = predict_after_adaptation(model, training.params(name)[0], demo, xs, steps=list(settings.fit_steps),
                                         inner_lr=settings.inner_lr)
        predictions[name] = {s: p[0, :, 0].cpu().numpy() for s, p in preds.items()}
    return ExampleFits(xs[0, :, 0].cpu().numpy(), truth, demo.x_support[0, :, 0].cpu().numpy(),
                       demo.y_support[0, :, 0].cpu().numpy(), predictions, settings.fit_k_shot)


@dataclass(frozen=True, eq=False)
class LargeStep:
    """MAML's start adapted at the trained step and at a larger one, on the same tasks (K = ``large_k_shot``)."""

    trained: Curve  # at the trained step α (the evaluation's curve)
    large: Curve  # at the large step
    trained_mse_lr: float  # α on the MSE, as the text states it
    large_mse_lr: float
    steps: int  # the step count reported

    @property
    def n_diverged(self) -> int:
        """Diverged (seed, task) pairs after ``steps`` steps at the large step."""
        return self.large.summary(self.steps).n_diverged

    def diverged_per_seed(self) -> np.ndarray:
        """``[S]`` tasks that diverged for each seed's start after ``steps`` steps at the large step."""
        final = self.large.by_seed(self.steps)
        return (~np.isfinite(final) | (final > self.large.diverged_above)).sum(axis=1)


def large_step(settings: Settings, training: Training, evaluation: Evaluation, *,
               device: torch.device | str = "cpu") -> LargeStep:
    """MAML's starts (every seed) adapted with ``large_mse_lr`` (on the MSE) for ``large_steps`` steps on the
    evaluation's tasks.

    Diverged tasks stay in the curve and are counted by its summaries, never averaged.
    """
    large = evaluate_adaptation(settings.model(), training.params("MAML"), settings.tasks,
                                method=f"MAML, alpha = {settings.large_mse_lr:g}", n_tasks=settings.eval_tasks,
                                k_shot=settings.large_k_shot, steps=settings.large_steps, inner_lr=settings.large_lr,
                                grid_points=settings.grid_points, seed=settings.eval_seed, device=device)
    return LargeStep(evaluation.curve("MAML", settings.large_k_shot), large, settings.inner_mse_lr,
                     settings.large_mse_lr, settings.large_steps)


@dataclass(frozen=True)
class Timing:
    """Milliseconds per second-order MAML meta-iteration, batched and by a per-task loop."""

    ms_batched: float
    ms_loop: float

    @property
    def speedup(self) -> float:
        return self.ms_loop / self.ms_batched


def meta_iteration_calls(model: MLP, theta: torch.Tensor, batch, inner_lr: float):
    """Two calls that each add one second-order MAML meta-gradient (one inner step) of the leaf ``theta [P]``
    to ``theta.grad``: the library's batched one and a per-task Python loop with double backward."""

    def batched():
        maml_loss(model, theta, batch, inner_steps=1, inner_lr=inner_lr).backward()

    def per_task_loop():
        maml_loss_per_task(model, theta, batch, inner_steps=1, inner_lr=inner_lr).backward()

    return batched, per_task_loop


def time_meta_iteration(settings: Settings, training: Training, *, device: torch.device | str = "cpu") -> Timing:
    """One meta-iteration (``meta_batch`` tasks, K = ``k_shot``, one inner step, forward and backward) from
    MAML's first seed's start, timed both ways (:func:`meta_iteration_calls`; the two compute the same meta-gradient).
    The per-task loop is timed with a tenth of the repeats (at least 5)."""
    batch = settings.tasks.sample(settings.meta_batch, settings.k_shot, settings.k_query,
                                  generator=_seeded(settings.timing_seed), device=device)
    theta = training.params("MAML")[0].clone().requires_grad_(True)
    batched, per_task_loop = meta_iteration_calls(settings.model(), theta, batch, settings.inner_lr)
    ms_batched = 1e3 * time_per_call(batched, repeats=settings.timing_repeats, device=device)
    ms_loop = 1e3 * time_per_call(per_task_loop, repeats=max(5, settings.timing_repeats // 10), device=device)
    return Timing(ms_batched, ms_loop)


# ---------------------------------------------------------------------------------------- run

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    examples: TaskExamples
    training: Training
    tuning: StepTuning
    evaluation: Evaluation
    fits: ExampleFits
    large_step: LargeStep
    timing: Timing


def run(settings: Settings, *, device: torch.device | str = "cpu") -> Results:
    """Every section of the chapter, in the notebook's order."""
    examples = task_examples(settings)
    training = train_methods(settings, device=device)
    tuning = tune_steps(settings, training, device=device)
    evaluation = evaluate_methods(settings, training, tuning, device=device)
    fits = example_fits(settings, training, device=device)
    large = large_step(settings, training, evaluation, device=device)
    timing = time_meta_iteration(settings, training, device=device)
    return Results(settings, examples, training, tuning, evaluation, fits, large, timing)


# ---------------------------------------------------------------------------------------- tables, text

def training_table(training: Training) -> str:
    """Meta-iterations per seed and the time of the batched run that trained every seed."""
    n = len(training.seeds)
    return markdown_table(
        ["method", "seeds", "meta-iterations per seed", "training time, all seeds (s)", "seed-iterations / s"],
        [[name, n, len(r.losses), f"{r.seconds:.0f}", f"{n * r.iterations_per_second:,.0f}"]
         for name, r in training.runs.items()],
    )


def tuning_table(tuning: StepTuning) -> str:
    """Each method's validation score (grid MSE after the horizon) at every step of the grid, and its choice."""
    first = next(iter(tuning.choices.values()))
    headers = ["method"] + [f"α = {lr:g}" for lr in first.grid] + ["chosen α", "at the grid's edge"]
    rows = [[name] + [f"{v:.3g}" if np.isfinite(v) else "diverged" for v in c.scores]
            + [f"{c.best:g}", "yes" if c.at_edge else "no"] for name, c in tuning.choices.items()]
    return markdown_table(headers, rows)


def adaptation_results_table(evaluation: Evaluation, steps=(1, 10), *, tuned: bool = False) -> str:
    """Method × (K, steps): grid MSE across seeds (mean ± t-interval, task interval beside), diverged counted;
    at the trained step α, or (``tuned``) at each method's tuned step."""
    return seed_adaptation_table(list((evaluation.tuned if tuned else evaluation.curves).values()), steps=list(steps))


def large_step_text(result: LargeStep) -> str:
    """Both step sizes' errors after ``steps`` steps across seeds (the tasks that did not diverge), and how
    many (seed, task) pairs diverged."""
    k, n = result.large.labels["k_shot"], result.steps
    lines = [f"MAML, K = {k}, alpha = {alpha:g}, {n} steps: {c.seed_summary(n)}"
             for alpha, c in ((result.trained_mse_lr, result.trained), (result.large_mse_lr, result.large))]
    lines.append(f"diverged tasks per seed at alpha = {result.large_mse_lr:g}: "
                 f"{', '.join(map(str, result.diverged_per_seed()))} of {result.large.n_rows // result.large.n_seeds}")
    return "\n".join(lines)


def timing_text(timing: Timing) -> str:
    return "\n".join([
        f"batched: {timing.ms_batched:.2f} ms per meta-iteration ({1e3 / timing.ms_batched:,.0f} per second)",
        f"per-task loop: {timing.ms_loop:.2f} ms per meta-iteration ({1e3 / timing.ms_loop:,.0f} per second)",
        f"speed-up: {timing.speedup:.1f}x",
    ])


def headline_text(evaluation: Evaluation) -> str:
    """MAML against the baseline after one step at K = 10, across seeds, with the reference run's figures."""
    maml, base = evaluation.curve("MAML", 10).seed_summary(1), evaluation.curve("pretrained", 10).seed_summary(1)
    return "\n".join([
        f"MAML vs pretrained after 1 step, K = 10: {maml} vs {base} ({base.mean / maml.mean:.1f}x lower error)",
        "reference on a 2-core CPU (plain torch.func.vmap MAML, one training run, task intervals): "
        "0.33 ± 0.03 vs 2.47 ± 0.19",
    ])


# ---------------------------------------------------------------------------------------- figures

_NUMBERS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight", 9: "Nine"}


def task_family_figure(examples: TaskExamples):
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for t in range(examples.y.shape[0]):
        ax.plot(examples.x, examples.y[t], lw=1.2)
        ax.scatter(examples.x_support[t], examples.y_support[t], s=12)
    n, k = examples.y.shape[0], examples.x_support.shape[1]
    ax.set(xlabel="x", ylabel="y", title=f"{_NUMBERS.get(n, str(n))} tasks and their K = {k} support points")
    return fig


def training_figure(training: Training, *, window: int):
    fig, ax = plt.subplots()
    plot_training_losses(ax, training.runs.values(), window=window,
                         title="Training losses (each method's own objective)")
    return fig


def adaptation_figure(evaluation: Evaluation):
    ks = sorted({k for _, k in evaluation.curves})
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.8), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], ks):
        plot_curves(ax, [c for (_, kk), c in evaluation.curves.items() if kk == k], interval="normal", marker="o",
                    xlabel="adaptation steps", ylabel="MSE on the dense grid", title=f"K = {k} support points",
                    legend=True)
    return fig


def example_fits_figure(fits: ExampleFits):
    fig, axes = plt.subplots(1, len(fits.predictions), figsize=(10, 3.6), sharey=True, squeeze=False)
    for ax, (name, preds) in zip(axes[0], fits.predictions.items()):
        plot_fit(ax, fits.x, fits.truth, {f"{s} step{'s' if s != 1 else ''}": p for s, p in preds.items()},
                 support=(fits.x_support, fits.y_support), title=f"{name}, K = {fits.k_shot}")
    return fig


# ---------------------------------------------------------------------------------------- claims

def comparison(evaluation: Evaluation, a: str, b: str, *, step_a: int = 1, step_b: int = 1, k: int = 10,
               tuned_b: bool = False) -> Comparison:
    """``a`` after ``step_a`` steps against ``b`` after ``step_b`` (K = ``k``; ``b`` at its tuned step with
    ``tuned_b``), paired over training seeds (each seed's mean difference over the shared tasks, Student's t
    across seeds)."""
    return compare_curves(evaluation.curve(a, k), evaluation.curve(b, k, tuned=tuned_b), step_a, step_b)


def verdict(evaluation: Evaluation, a: str, b: str, **kw) -> str:
    """:func:`comparison`'s verdict: "lower", "higher" or "not distinguishable"."""
    return comparison(evaluation, a, b, **kw).verdict


def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return them.

    Every claim is read across training seeds: "beats" means the paired 95% interval across seeds of
    the difference lies below zero."""
    s, ev, large = results.settings, results.evaluation, results.large_step
    maml1, base1 = ev.curve("MAML", 10).by_seed(1), ev.curve("pretrained", 10).by_seed(1)
    ratio_per_seed = np.nanmean(base1, axis=1) / np.nanmean(maml1, axis=1)
    per_seed = large.diverged_per_seed()
    n_tasks = large.large.n_rows // large.large.n_seeds
    claims = Claims()
    print(f"training seeds: {len(results.training.seeds)}; parameters per model: {s.model().n_params}; "
          f"held-out tasks: {s.eval_tasks}; test K: {' and '.join(map(str, s.eval_k_shots))}")
    claims.check("MAML beats the pretrained baseline after 1 step (K=10), by the required factor on every seed",
                 verdict(ev, "MAML", "pretrained") == "lower" and bool((ratio_per_seed >= s.mse_ratio_required).all()))
    claims.check("First-order MAML beats the pretrained baseline after 1 step (K=10)",
                 verdict(ev, "FOMAML", "pretrained") == "lower")
    claims.check("Reptile beats the pretrained baseline after 1 step (K=10)",
                 verdict(ev, "Reptile", "pretrained") == "lower")
    claims.check("MAML keeps improving from 1 to 10 steps (K=10)", verdict(ev, "MAML", "MAML", step_a=10) == "lower")
    claims.check("MAML beats the pretrained baseline at the baseline's own tuned step, after 1 and after 10 steps "
                 "(K=10)", all(verdict(ev, "MAML", "pretrained", step_a=n, step_b=n, tuned_b=True) == "lower"
                               for n in (1, s.eval_steps)))
    claims.check("With alpha = 0.05 some held-out tasks diverge, but not all, for every seed's MAML start",
                 bool(((per_seed > 0) & (per_seed < n_tasks)).all()))
    claims.check("Batched MAML is faster than the per-task loop", results.timing.ms_batched < results.timing.ms_loop)
    return claims




def findings(results: Results) -> dict[str, str]:
    """The numbers and verdicts the chapter's findings quote, as text (glued into the prose by the notebook)."""
    s, ev, large = results.settings, results.evaluation, results.large_step

    def at(name: str, step: int, k: int = 10, tuned: bool = False) -> SeedSummary:
        return ev.curve(name, k, tuned=tuned).seed_summary(step)

    def text(summary: SeedSummary) -> str:
        return f"{summary.mean:.2f} ± {summary.ci95:.2f}"

    out = {"seeds": str(len(results.training.seeds)), "iterations": f"{s.iterations:,}",
           "eval_tasks": f"{s.eval_tasks:,}"}
    for name, key in (("MAML", "maml"), ("FOMAML", "fomaml"), ("Reptile", "reptile"), ("pretrained", "pre")):
        for step in (1, s.eval_steps):
            out[f"{key}_{step}"] = text(at(name, step))
        out[f"{key}_lr"] = f"{results.tuning.mse_lr(name):g}"
        out[f"{key}_tuned_1"] = text(at(name, 1, tuned=True))
        out[f"{key}_tuned_{s.eval_steps}"] = text(at(name, s.eval_steps, tuned=True))
    maml_seeds = at("MAML", 1).per_seed
    out["maml_1_seed_range"] = f"{np.nanmin(maml_seeds):.2f} to {np.nanmax(maml_seeds):.2f}"
    out["ratio_1"] = f"{at('pretrained', 1).mean / at('MAML', 1).mean:.0f}"
    for other in ("FOMAML", "Reptile"):
        for step in (1, s.eval_steps):
            out[f"{other.lower()}_vs_maml_{step}"] = comparison(ev, other, "MAML", step_a=step, step_b=step).phrase
    out["pre_0_to_10"] = f"{at('pretrained', 0).mean:.2f} to {at('pretrained', s.eval_steps).mean:.2f}"
    n_pairs = large.large.n_rows
    out["large_diverged"] = f"{large.n_diverged:,} of {n_pairs:,}"
    out["trained_diverged"] = f"{large.trained.seed_summary(large.steps).n_diverged:,}"
    return out
