"""Chapter 1's experiments: MAML, first-order MAML, Reptile and a pretrained baseline on the MAML
paper's sinusoids, trained from one start and adapted to the same held-out tasks.

The chapter's sections, one function each: :func:`task_examples` (the task family),
:func:`train_methods` (the four methods), :func:`evaluate_methods` (adaptation curves at K = 5
and 10), :func:`example_fits` (one new task, before and after adaptation), :func:`large_step`
(adaptation with five times the trained step, where tasks diverge) and :func:`time_meta_iteration`
(batched MAML against a per-task loop). :func:`run` runs them all; the ``*_table``, ``*_text`` and
``*_figure`` functions present a section's result; :func:`check_claims` checks the chapter's
findings.

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
from ..stats import Summary, compare
from ..tables import adaptation_table, markdown_table
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
    scored on a dense grid of 1,000 points. Reductions in the ``smoke`` profile (CI): 4,000
    meta-iterations instead of 70,000, the required MAML advantage over the baseline after one
    step 2.5× instead of 5×, 20 timing repeats instead of 100 and a training-loss smoothing window
    of 100 iterations instead of 1,000; everything else is as in ``paper``.

    Not published settings, ours: Reptile's inner loop (5 steps at α = 0.01 on the 20 points MAML
    sees per task, outer step annealed from 1 to 0) on the MAML family; the required advantage
    (the paper shows curves only); the large step α = 0.05 of the divergence section; the timing
    benchmark. Step sizes stated on the MSE (``*_mse_lr``) are converted to the library's steps on
    E by :func:`backprop2lib.meta.from_mse_lr` (the properties ``inner_lr`` and ``large_lr``).
    """

    # sizes that depend on the profile
    iterations: int  # meta-iterations for every method
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
    # seeds
    init_seed: int = 0  # the one start every method trains from
    maml_seed: int = 1
    fomaml_seed: int = 2
    reptile_seed: int = 3
    pretrained_seed: int = 4
    family_seed: int = 3  # the six tasks of the task-family figure
    eval_seed: int = 2024  # held-out tasks and their support points, every evaluation
    fit_seed: int = 11  # the task of the example fits
    timing_seed: int = 5  # the meta-batch that is timed

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's)."""
        p = resolve_profile(profile)
        return cls(
            iterations=p.select(smoke=4_000, paper=70_000),
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
    """The four methods trained from one start: ``runs[name]`` holds the learned start, flat ``[P]``."""

    init: torch.Tensor  # the common start, flat [P]
    runs: dict[str, TrainResult]  # by display name, in METHODS order

    def params(self, name: str) -> torch.Tensor:
        return self.runs[name].params


def train_methods(settings: Settings, *, device: torch.device | str = "cpu") -> Training:
    """MAML, FOMAML, Reptile and the pretrained baseline, each with its own seed, from one start."""
    model, tasks, alpha = settings.model(), settings.tasks, settings.inner_lr
    init = model.flatten(model.init(generator=_seeded(settings.init_seed), device=device))
    common = dict(iterations=settings.iterations, meta_batch=settings.meta_batch, k_shot=settings.k_shot,
                  k_query=settings.k_query, init=init, device=device)
    runs = {
        "MAML": train_maml(model, tasks, inner_lr=alpha, meta_lr=settings.meta_lr,
                           generator=_seeded(settings.maml_seed), **common),
        "FOMAML": train_maml(model, tasks, inner_lr=alpha, meta_lr=settings.meta_lr, first_order=True,
                             generator=_seeded(settings.fomaml_seed), **common),
        "Reptile": train_reptile(model, tasks, inner_steps=settings.reptile_inner_steps, inner_lr=alpha,
                                 outer_lr=settings.reptile_outer_lr, generator=_seeded(settings.reptile_seed),
                                 **common),
        "pretrained": train_pretrained(model, tasks, lr=settings.meta_lr, generator=_seeded(settings.pretrained_seed),
                                       **common),
    }
    return Training(init, runs)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Adaptation curves on the held-out tasks: ``curves[(name, k)]``, rows tasks, records steps 0..eval_steps."""

    curves: dict[tuple[str, int], Curve]

    def curve(self, name: str, k: int) -> Curve:
        return self.curves[(name, k)]


def evaluate_methods(settings: Settings, training: Training, *, device: torch.device | str = "cpu") -> Evaluation:
    """Every method adapted by SGD at α to the same ``eval_tasks`` tasks (seed ``eval_seed``), at each K."""
    model = settings.model()
    curves = {
        (name, k): evaluate_adaptation(model, run.params, settings.tasks, method=name, n_tasks=settings.eval_tasks,
                                       k_shot=k, steps=settings.eval_steps, inner_lr=settings.inner_lr,
                                       grid_points=settings.grid_points, seed=settings.eval_seed, device=device)
        for name, run in training.runs.items() for k in settings.eval_k_shots
    }
    return Evaluation(curves)


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
    """The ``fit_methods`` adapted to one task (seed ``fit_seed``) from ``fit_k_shot`` points."""
    model, tasks = settings.model(), settings.tasks
    demo = tasks.sample(1, settings.fit_k_shot, generator=_seeded(settings.fit_seed), device=device)
    xs = tasks.grid(settings.fit_grid_points, device=device)[None, :, None]
    truth = tasks.target(demo.truth, xs)[0, :, 0].cpu().numpy()
    predictions = {}
    for name in settings.fit_methods:
        preds = predict_after_adaptation(model, training.params(name), demo, xs, steps=list(settings.fit_steps),
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
        return self.large.summary(self.steps).n_diverged


def large_step(settings: Settings, training: Training, evaluation: Evaluation, *,
               device: torch.device | str = "cpu") -> LargeStep:
    """MAML's start adapted with ``large_mse_lr`` (on the MSE) for ``large_steps`` steps on the evaluation's tasks.

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
    MAML's start, timed both ways (:func:`meta_iteration_calls`; the two compute the same meta-gradient).
    The per-task loop is timed with a tenth of the repeats (at least 5)."""
    batch = settings.tasks.sample(settings.meta_batch, settings.k_shot, settings.k_query,
                                  generator=_seeded(settings.timing_seed), device=device)
    theta = training.params("MAML").clone().requires_grad_(True)
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
    evaluation: Evaluation
    fits: ExampleFits
    large_step: LargeStep
    timing: Timing


def run(settings: Settings, *, device: torch.device | str = "cpu") -> Results:
    """Every section of the chapter, in the notebook's order."""
    examples = task_examples(settings)
    training = train_methods(settings, device=device)
    evaluation = evaluate_methods(settings, training, device=device)
    fits = example_fits(settings, training, device=device)
    large = large_step(settings, training, evaluation, device=device)
    timing = time_meta_iteration(settings, training, device=device)
    return Results(settings, examples, training, evaluation, fits, large, timing)


# ---------------------------------------------------------------------------------------- tables, text

def training_table(training: Training) -> str:
    return markdown_table(
        ["method", "meta-iterations", "training time (s)", "iterations / s"],
        [[name, len(r.losses), f"{r.seconds:.0f}", f"{r.iterations_per_second:,.0f}"]
         for name, r in training.runs.items()],
    )


def adaptation_results_table(evaluation: Evaluation, steps=(1, 10)) -> str:
    """Method × (K, steps): grid MSE, mean ± 95% CI, diverged tasks counted."""
    return adaptation_table(list(evaluation.curves.values()), steps=list(steps))


def large_step_text(result: LargeStep) -> str:
    """Both step sizes' errors after ``steps`` steps: mean ± 95% CI of the tasks that did not diverge, and
    how many did."""
    k, n = result.large.labels["k_shot"], result.steps
    return "\n".join(f"MAML, K = {k}, alpha = {alpha:g}, {n} steps: {c.summary(n)}"
                     for alpha, c in ((result.trained_mse_lr, result.trained), (result.large_mse_lr, result.large)))


def timing_text(timing: Timing) -> str:
    return "\n".join([
        f"batched: {timing.ms_batched:.2f} ms per meta-iteration ({1e3 / timing.ms_batched:,.0f} per second)",
        f"per-task loop: {timing.ms_loop:.2f} ms per meta-iteration ({1e3 / timing.ms_loop:,.0f} per second)",
        f"speed-up: {timing.speedup:.1f}x",
    ])


def headline_text(evaluation: Evaluation) -> str:
    """MAML against the baseline after one step at K = 10, with the reference run's figures."""
    maml, base = evaluation.curve("MAML", 10).summary(1), evaluation.curve("pretrained", 10).summary(1)
    return "\n".join([
        f"MAML vs pretrained after 1 step, K = 10: {maml} vs {base} ({base.mean / maml.mean:.1f}x lower error)",
        "reference on a 2-core CPU (plain torch.func.vmap MAML): 0.33 ± 0.03 vs 2.47 ± 0.19",
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

def beats(evaluation: Evaluation, a: str, b: str, *, step_a: int = 1, step_b: int = 1, k: int = 10) -> bool:
    """``a``'s 95% interval after ``step_a`` steps lies below ``b``'s after ``step_b`` (K = ``k``);
    diverged tasks are left out of both."""
    return compare(evaluation.curve(a, k).at(step_a), evaluation.curve(b, k).at(step_b), paired=False,
                   test="overlap", diverged_above=DIVERGED_ABOVE).verdict == "lower"


def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return them."""
    s, ev = results.settings, results.evaluation
    at1: dict[str, Summary] = {name: ev.curve(name, 10).summary(1) for name in results.training.runs}
    wild = results.large_step.large.summary(results.large_step.steps)
    claims = Claims()
    print(f"parameters per model: {s.model().n_params}; held-out tasks: {s.eval_tasks}; "
          f"test K: {' and '.join(map(str, s.eval_k_shots))}")
    claims.check("MAML beats the pretrained baseline by the required factor after 1 step (K=10)",
                 at1["MAML"].mean * s.mse_ratio_required <= at1["pretrained"].mean)
    claims.check("First-order MAML beats the pretrained baseline after 1 step (K=10)",
                 beats(ev, "FOMAML", "pretrained"))
    claims.check("Reptile beats the pretrained baseline after 1 step (K=10)", beats(ev, "Reptile", "pretrained"))
    claims.check("MAML keeps improving from 1 to 10 steps (K=10)", beats(ev, "MAML", "MAML", step_a=10))
    claims.check("With alpha = 0.05 some tasks diverge and are counted, not averaged",
                 0 < wild.n_diverged < s.eval_tasks and wild.mean < DIVERGED_ABOVE)
    claims.check("Batched MAML is faster than the per-task loop", results.timing.ms_batched < results.timing.ms_loop)
    return claims
