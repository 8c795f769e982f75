"""The second-order chapter's driver: settings, one function per section, results, tables, figures, claims.

The chapter (``notebooks/04_second_order.ipynb``) checks backprop2's exact block Hessians, derives
the inflection-point argument for its absolute-eigenvalue Newton step and checks it on test
functions, trains two networks with block Newton and with tuned first-order optimisers, and times
a step against the number of parameters P. Each of those is a section function here
(:func:`check_block_hessians`, :func:`inflection_argument`, :func:`toy_trajectories`,
:func:`compare_on_plane_wave`, :func:`compare_on_mnist`, :func:`cost_per_step`), all sizes, grids
and seeds come from :class:`Settings`, and :func:`run` runs them all.

A :class:`Problem` is one training problem run from T random initialisations at once (the seeds
are the model axis): the plane-wave regression with backprop2's Gaussian units, or an MNIST MLP
on the bundled subset. ``problem.seeded(seed)`` gives the initialisations of one seed as a
problem of the one loop (:func:`backprop2lib.optim.run`), so every optimiser sees the same
initialisations and the same minibatches. Learning rates are tuned with
:func:`backprop2lib.optim.tune_lr` on *other* initialisations (a tuning seed) by the final
training loss; the chosen rate is reported with a flag when it sits at the edge of its grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from .. import methods
from ..claims import Claims
from ..data.mnist import N_CLASSES, N_PIXELS, Minibatches, bundled_split
from ..models.mlp import MLP
from ..optim import SGD, Adam, Curve, LineSearch, LRChoice, run as run_optimiser, tune_lr
from ..profiles import Profile, resolve_profile
from ..second_order.blocks import block_partition
from ..second_order.hessian import full_hessian, loss_grad_and_block_hessians, mean_loss
from ..second_order.optimisers import BlockNewton, GradientDescentLineSearch, MLPProblem
from ..second_order.toy import (CUBIC_THRESHOLDS, TEST_FUNCTIONS, ToyMethod, concave_points, cubic_outcomes,
                                cubic_u, toy_step, trajectories)
from ..stats import Summary, fitted_exponent, summarise
from ..tables import markdown_table
from ..tasks.plane_wave import plane_wave

Batch = tuple[torch.Tensor, torch.Tensor]

# ============================================================================================ settings

_LINE_SEARCH = LineSearch()  # backprop2's warm-started two-way backtracking, its defaults


@dataclass(frozen=True)
class Settings:
    """Every size, grid and seed of chapter 4.

    Against backprop2's setting. The method and its defaults are backprop2's: the |λ| rule with
    lr 0.1 and max_step 1, random within-layer blocks of at most 7 parameters drawn once and
    reused, its warm-started two-way line search (s0 0.1, α = β = 0.5, 15 tries). The plane wave
    is backprop2's sinusoid data set read with 2-D inputs (200 points, 20 Gaussian units, N(0, 1)
    initialisation, ½‖f − y‖²). The sizes are the chapter's own, since no published experiment of
    the method fixes them, so ``full`` is the same as ``paper``: 10 initialisations × 300 full-batch
    steps on the plane wave, 5 × 200 minibatch steps (128 images, loss recorded every 10 steps) on a
    784-20-10 MLP, and step timings for P up to 82,150 (d_in up to 4,096). One reduction in every
    profile: MNIST is the library's bundled 5,000-image subset (300 / 100 / 100 images per digit
    for train / validation / test), not the 70,000 images of MNIST. Reductions in ``smoke`` (CI):
    3 × 40 plane-wave steps, 2 × 20 MNIST steps recorded every 5, timings for d_in ≤ 256; the
    Hessian checks, the toy grids and starts, the learning-rate grids, the block sizes, the
    optimiser lists and the seeds are the same in every profile.

    Seeds. Every draw is seeded here: the block-Hessian checks from ``hessian_seed``; each training
    problem's data from ``data_seed``; the reported runs start from the initialisations (and block
    draws) of ``report_seed``, and the learning rates are tuned on those of ``tuning_seed``; the
    timed networks from ``cost_seed``.
    """

    # -- sizes that depend on the profile
    wave_models: int  # plane wave: initialisations (seeds), trained side by side
    wave_steps: int
    mnist_models: int
    mnist_steps: int
    mnist_record_every: int  # MNIST: the training loss is recorded every this many steps
    cost_inputs: tuple[int, ...]  # d_in of the d_in-20-10 MLPs timed with blocks of cost_block_size
    # -- exact block Hessians against torch.func.hessian (float64)
    hessian_activations: tuple[str, ...] = ("gaussian", "tanh", "sigmoid", "relu")
    hessian_networks: tuple[tuple[str, tuple[int, ...]], ...] = (("squared", (2, 8, 6, 1)),
                                                                 ("cross_entropy", (5, 7, 4)))
    hessian_block_size: int = 5
    hessian_models: int = 2
    hessian_points: int = 16
    hessian_seed: int = 0
    # -- the inflection-point argument: concave grid points (name, low corner, high corner, points per axis);
    #    the cubic model is checked on the first (the double well)
    concave_grids: tuple[tuple[str, tuple[float, ...], tuple[float, ...], int], ...] = (
        ("double well", (-1.2,), (1.2,), 401),
        ("saddle well", (-1.5, -1.5), (1.5, 1.5), 41),
        ("Himmelblau", (-5.0, -5.0), (5.0, 5.0), 41),
    )
    guard_max_step: float = 1.0  # backprop2's guard, max_step
    # -- toy trajectories: every method uses the full 2 x 2 Hessian
    toy_methods: tuple[ToyMethod, ...] = (
        ToyMethod("GD", "gd", lr=0.1),
        ToyMethod("Newton", "newton", max_step=1.0),
        ToyMethod("|λ| Newton", "backprop2", max_step=1.0),
        ToyMethod("saddle-free Newton", "saddle_free", damping=1e-3),
    )
    toy_starts: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = (
        ("saddle well", ((0.15, 0.9), (-0.3, -1.1), (0.05, -0.4))),
        ("Himmelblau", ((-0.6, -0.5), (0.3, -1.4), (-1.0, -1.5))),
    )
    toy_steps: int = 15
    # -- training networks
    report_seed: int = 0  # the initialisations that are reported
    tuning_seed: int = 1000  # the rates are chosen on other initialisations than the ones reported
    data_seed: int = 0
    adam_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    line_search: LineSearch = _LINE_SEARCH
    wave_points: int = 200
    wave_hidden: int = 20
    wave_record_every: int = 5
    gd_grid_wave: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    # after tuned GD, GD + line search and tuned Adam: backprop2's defaults (lr 0.1, max_step 1),
    # then with the line search for b = 1, 7, 32 and the full Hessian, plain Newton, saddle-free Newton
    wave_second_order: tuple[BlockNewton, ...] = (
        BlockNewton(7),
        *(BlockNewton(b, line_search=_LINE_SEARCH) for b in (1, 7, 32, None)),
        BlockNewton(7, rule="newton", line_search=_LINE_SEARCH),
        BlockNewton(None, rule="saddle_free", damping=1e-3, line_search=_LINE_SEARCH),
    )
    mnist_hidden: int = 20
    mnist_batch_size: int = 128
    mnist_eval_images: int = 1000
    gd_grid_mnist: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    mnist_second_order: tuple[BlockNewton, ...] = (
        BlockNewton(7),
        *(BlockNewton(b, line_search=_LINE_SEARCH) for b in (1, 7, 32)),
    )
    # -- cost per step: d_in -> hidden -> 10 MLPs, one block-Newton step (no line search)
    cost_inputs_full: tuple[int, ...] = (16, 32, 64)  # the full Hessian, where it is still feasible
    cost_block_size: int = 7
    cost_hidden: int = 20
    cost_points: int = 64
    cost_repeats: int = 3
    cost_rounds: int = 3
    cost_repeats_full: int = 2
    cost_rounds_full: int = 2
    cost_seed: int = 0

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings for ``profile`` (a name, a Profile, or None: ``$BACKPROP2_PROFILE``,
        else ``paper``); an unknown name raises a ValueError."""
        p = resolve_profile(profile)
        return cls(
            wave_models=p.select(smoke=3, paper=10),
            wave_steps=p.select(smoke=40, paper=300),
            mnist_models=p.select(smoke=2, paper=5),
            mnist_steps=p.select(smoke=20, paper=200),
            mnist_record_every=p.select(smoke=5, paper=10),
            cost_inputs=p.select(smoke=(16, 64, 256), paper=(16, 64, 256, 1024, 4096)),
        )

    def concave_grid(self, name: str) -> tuple[tuple[float, ...], tuple[float, ...], int]:
        for grid_name, lo, hi, n in self.concave_grids:
            if grid_name == name:
                return lo, hi, n
        raise ValueError(f"name: no concave grid {name!r}; grids: {[g[0] for g in self.concave_grids]}")


# ====================================================================== problems and measurements

@dataclass(frozen=True)
class Problem:
    name: str
    model: MLP
    loss: str
    init_scheme: str
    batches: Callable[[int], Batch]  # step -> (x [T, N, in], y); T is the number of models
    evaluate: Callable[[torch.Tensor], torch.Tensor]  # w [T, P] -> the recorded loss [T]
    n_models: int
    accuracy: Callable[[torch.Tensor], torch.Tensor] | None = None  # w -> test accuracy [T]

    def init(self, seed: int) -> torch.Tensor:
        """T fresh parameter vectors ``[T, P]`` (seed 0, 1, ... for the comparison, others for tuning)."""
        g = torch.Generator().manual_seed(seed)
        return self.model.flatten(self.model.init(self.n_models, scheme=self.init_scheme, generator=g))

    def seeded(self, seed: int) -> MLPProblem:
        """The T models of ``seed`` as a problem of :func:`backprop2lib.optim.run` (the block draws use
        the same seed)."""
        return MLPProblem(self.model, self.init(seed), self.batches, self.loss, self.evaluate, seed,
                          f"{self.name}, seed {seed}")


def plane_wave_problem(*, n_models: int, n_points: int = 200, hidden: int = 20, seed: int = 0) -> Problem:
    """backprop2's setting: 2-D inputs, Gaussian hidden units, N(0, 1) initialisation, ½‖f − y‖².

    Full batch: every step sees all ``n_points`` points; the recorded loss is the training loss.
    """
    model = MLP((2, hidden, 1), activation="gaussian")
    x, y = plane_wave(n_points, seed=seed)
    batch = (x.expand(n_models, -1, -1), y.expand(n_models, -1, -1))

    def evaluate(w: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, w, *batch, loss="squared")

    return Problem("plane wave", model, "squared", "normal", lambda step: batch, evaluate, n_models)


def mnist_problem(*, n_models: int, hidden: int = 20, batch_size: int = 128, n_eval: int = 1000,
                  activation: str = "sigmoid", seed: int = 0) -> Problem:
    """784 → hidden → 10 on the bundled MNIST subset's training split, cross-entropy.

    Step k trains on minibatch k, drawn with a fixed seed so every optimiser sees the same ones;
    the recorded loss is the training loss on the first ``n_eval`` training images, and
    ``accuracy`` is measured on the test split. The learned-optimiser chapter's
    :class:`~backprop2lib.learned.problems.MNISTNets` draws from the same
    :class:`~backprop2lib.data.mnist.Minibatches`, but one minibatch per instance; here one
    minibatch serves all T models, which differ only in their initialisation.
    """
    split = bundled_split(seed=0)
    train, test = Minibatches.of(split.train), Minibatches.of(split.test)
    model = MLP((N_PIXELS, hidden, N_CLASSES), activation=activation)
    T = n_models

    def batches(step: int) -> Batch:
        x, y = train.draw(seed * 1_000_003 + step, (batch_size,))
        return x.expand(T, -1, -1), y.expand(T, -1)

    eval_batch = (train.x[:n_eval].expand(T, -1, -1), train.y[:n_eval].expand(T, -1))

    def evaluate(w: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, w, *eval_batch, loss="cross_entropy")

    def accuracy(w: torch.Tensor) -> torch.Tensor:
        out = model.forward(model.unflatten(w), test.x.expand(w.shape[0], -1, -1))
        return (out.argmax(-1) == test.y).to(torch.float64).mean(1)

    return Problem(f"MNIST {N_PIXELS}-{hidden}-{N_CLASSES}", model, "cross_entropy", "pytorch", batches, evaluate, T,
                   accuracy)


def final_summary(curve: Curve) -> Summary:
    """Mean ± 95% CI of the final loss over the models; diverged models are counted, not averaged.

    With a handful of initialisations the interval uses Student's t, not the normal quantile.
    """
    return summarise(curve.final, interval="t")  # diverged models are NaN there


def block_hessian_error(activation: str, loss: str, sizes: tuple[int, ...], block_size: int = 5, seed: int = 0,
                        *, n_models: int = 2, n_points: int = 16) -> float:
    """The largest |block − full| over every block of random blocks of ``block_size``, for ``n_models``
    random MLPs of ``sizes`` on ``n_points`` random points (float64): the library's exact block
    Hessians against ``torch.func.hessian``'s full one."""
    g = torch.Generator().manual_seed(seed)
    model = MLP(sizes, activation=activation)
    w = model.flatten(model.init(n_models, scheme="normal", generator=g)).double()
    x = torch.randn(n_models, n_points, sizes[0], generator=g, dtype=torch.float64)
    y = (torch.randn(n_models, n_points, sizes[-1], generator=g, dtype=torch.float64) if loss == "squared"
         else torch.randint(sizes[-1], (n_models, n_points), generator=g))
    partition = block_partition(model, block_size, generator=g)
    _, _, blocks = loss_grad_and_block_hessians(model, w, x, y, partition, loss=loss)
    H = full_hessian(model, w, x, y, loss=loss)
    return max((H[:, grp.index[:, :, None], grp.index[:, None, :]] - h).abs().max().item()
               for grp, h in zip(partition.groups, blocks))


def step_seconds(optimiser, d_in: int, *, hidden: int = 20, n_out: int = 10, n_points: int = 64,
                 repeats: int = 3, rounds: int = 3, seed: int = 0) -> tuple[int, float]:
    """(P, seconds per step) of ``optimiser`` on one MLP d_in → hidden → n_out with random data.

    P grows with the input width at a fixed hidden width, like an MNIST MLP, so the cost of the
    block Hessians (O(N·P·b)) and eigendecompositions (O(P·b²)) is what grows.
    """
    from ..timing import time_per_call

    model = MLP((d_in, hidden, n_out), activation="sigmoid")
    g = torch.Generator().manual_seed(seed)
    w = model.flatten(model.init(1, generator=g))
    x = torch.randn(1, n_points, d_in, generator=g)
    y = torch.randint(n_out, (1, n_points), generator=g)
    problem = MLPProblem(model, w, lambda step: (x, y), "cross_entropy", seed=seed)
    state = optimiser.init(w, problem)
    loss, grad = problem.loss_and_grad(w, 0)
    # w is not updated: every call does the same work (a second-order step computes its own
    # loss, gradient and Hessians on the batch)
    seconds = time_per_call(lambda: optimiser.step(w, grad, state, loss), repeats=repeats, warmup=1, rounds=rounds)
    return model.n_params, seconds


# ============================================================================================ sections

# ---------------------------------------------------------------------------- exact block Hessians

@dataclass(frozen=True)
class HessianCase:
    activation: str
    loss: str
    sizes: tuple[int, ...]
    error: float  # max |block − full| over every block and model


@dataclass(frozen=True)
class HessianCheck:
    cases: tuple[HessianCase, ...]

    @property
    def max_error(self) -> float:
        return max(c.error for c in self.cases)


def check_block_hessians(settings: Settings) -> HessianCheck:
    """Every block of every activation × (loss, network) against the full Hessian (float64)."""
    cases = []
    for activation in settings.hessian_activations:
        for loss, sizes in settings.hessian_networks:
            err = block_hessian_error(activation, loss, sizes, settings.hessian_block_size, settings.hessian_seed,
                                      n_models=settings.hessian_models, n_points=settings.hessian_points)
            cases.append(HessianCase(activation, loss, tuple(sizes), err))
    return HessianCheck(tuple(cases))


# ----------------------------------------------------------------------- the inflection-point argument

@dataclass(frozen=True)
class ConcaveCounts:
    """One test function's concave grid points and what one step does from them (fractions in [0, 1];
    NaN where the condition selects no point)."""

    function: str
    n_points: int
    newton_raises: float  # unguarded plain Newton raises f
    abs_lowers_where_newton_raises: float
    abs_lowers: float  # unguarded |λ| step lowers f
    newton_raises_guarded: float  # the same with backprop2's guard (max_step, lr 0.1)
    abs_lowers_where_newton_raises_guarded: float
    abs_lowers_guarded: float
    guarded_rescues: bool  # the guarded |λ| step lowers f wherever guarded Newton raises it
    unguarded_fails: int  # points where the unguarded |λ| step does not lower f


@dataclass(frozen=True, eq=False)
class Inflection:
    """The cubic model on the double well's concave points, and the counts on every test function.

    ``u[i]``: the local u = τγ/λ² at concave point i; ``change_abs``/``change_newton``: the loss
    change of one unguarded |λ| / plain Newton step from it, in units of γ²/|λ|."""

    u: np.ndarray
    change_abs: np.ndarray
    change_newton: np.ndarray
    cubic_accuracy: float  # fraction of points where "u < 9" predicts whether the |λ| step lowers f
    counts: tuple[ConcaveCounts, ...]

    @property
    def n_points(self) -> int:
        return len(self.u)


def inflection_argument(settings: Settings) -> Inflection:
    """Single unguarded steps from the double well's concave points against the cubic model's closed
    forms, then guarded and unguarded steps from every test function's concave points."""
    dw = TEST_FUNCTIONS["double well"]
    pts = concave_points(dw, *settings.concave_grid("double well"))
    local = cubic_u(dw, pts)
    unit = local["g"] ** 2 / local["lambda"].abs()
    f0 = dw(pts)
    pure_abs, pure_newton = ToyMethod("|λ| Newton", "backprop2"), ToyMethod("Newton", "newton")
    change_abs = ((dw(toy_step(pure_abs, dw, pts)) - f0) / unit).numpy()
    change_newton = ((dw(toy_step(pure_newton, dw, pts)) - f0) / unit).numpy()
    u = local["u"].numpy()
    predicted_ok = (u < CUBIC_THRESHOLDS["abs step raises f"]) == (change_abs < 0)
    cubic_accuracy = float(predicted_ok.mean())

    guarded_abs = ToyMethod("|λ| Newton", "backprop2", max_step=settings.guard_max_step)
    guarded_newton = ToyMethod("Newton", "newton", max_step=settings.guard_max_step)
    counts = []
    for name, lo, hi, n in settings.concave_grids:
        f = TEST_FUNCTIONS[name]
        x = concave_points(f, lo, hi, n)
        fx = f(x)
        lower = {m.name + (" (guard)" if m.max_step < np.inf else ""): (f(toy_step(m, f, x)) < fx)
                 for m in (pure_abs, pure_newton, guarded_abs, guarded_newton)}
        newton_up, newton_up_g = ~lower["Newton"], ~lower["Newton (guard)"]
        abs_low, abs_low_g = lower["|λ| Newton"], lower["|λ| Newton (guard)"]
        counts.append(ConcaveCounts(
            name, len(x),
            newton_up.float().mean().item(), abs_low[newton_up].float().mean().item(), abs_low.float().mean().item(),
            newton_up_g.float().mean().item(), abs_low_g[newton_up_g].float().mean().item(),
            abs_low_g.float().mean().item(),
            guarded_rescues=bool(abs_low_g[newton_up_g].all()),
            unguarded_fails=int((~abs_low).sum()),
        ))
    return Inflection(u, change_abs, change_newton, cubic_accuracy, tuple(counts))


# ----------------------------------------------------------------------------- toy trajectories

@dataclass(frozen=True, eq=False)
class Trajectories:
    """``paths[function][method]``: iterates ``[steps + 1, starts, 2]``; ``final_values`` the change of f
    from each start after the last step, ``final_points`` where each run ended."""

    paths: Mapping[str, Mapping[str, torch.Tensor]]
    final_values: Mapping[str, Mapping[str, torch.Tensor]]
    final_points: Mapping[str, Mapping[str, torch.Tensor]]

    @property
    def n_steps(self) -> int:
        return next(iter(next(iter(self.paths.values())).values())).shape[0] - 1


def toy_trajectories(settings: Settings) -> Trajectories:
    """Every toy method from every start on the 2-D test functions, ``settings.toy_steps`` steps."""
    paths, final_values, final_points = {}, {}, {}
    for name, starts in settings.toy_starts:
        f = TEST_FUNCTIONS[name]
        x0 = torch.tensor(starts, dtype=torch.float64)
        paths[name] = {m.name: trajectories(m, f, x0, settings.toy_steps) for m in settings.toy_methods}
        final_values[name] = {label: f(path[-1]) - f(x0) for label, path in paths[name].items()}
        final_points[name] = {label: path[-1] for label, path in paths[name].items()}
    return Trajectories(paths, final_values, final_points)


# ---------------------------------------------------------------------------- training networks

@dataclass(frozen=True, eq=False)
class Comparison:
    """Tuned first-order baselines and block Newton on one problem, from the same initialisations.

    ``tuned``: the learning-rate choices (GD, Adam), made on the tuning seed's initialisations;
    ``curves``: one per optimiser, by name, in run order; ``accuracy``: each optimiser's test
    accuracy per model (problems that measure one)."""

    problem: Problem
    tuned: tuple[LRChoice, ...]
    curves: Mapping[str, Curve]
    accuracy: Mapping[str, np.ndarray] | None = None


def gradient_descent(lr: float) -> SGD:
    """Plain gradient descent (full batches on the plane wave), named as the tables show it."""
    return SGD(lr, name="GD")


def compare_optimisers(problem: Problem, settings: Settings, *, gd_grid, second_order, n_steps: int,
                       record_every: int, keep_params: bool = False) -> Comparison:
    """Tune GD and Adam with :func:`~backprop2lib.optim.tune_lr` on ``problem.seeded(tuning_seed)``,
    then run tuned GD, GD + line search, tuned Adam and ``second_order`` with
    :func:`~backprop2lib.optim.run` on ``problem.seeded(report_seed)``, in that order."""
    tuning = problem.seeded(settings.tuning_seed)
    gd = tune_lr(gradient_descent, gd_grid, tuning, n_steps)
    adam = tune_lr(Adam, settings.adam_grid, tuning, n_steps)
    optimisers = [gradient_descent(gd.best), GradientDescentLineSearch(settings.line_search), Adam(adam.best),
                  *second_order]
    curves = {opt.name: run_optimiser(opt, problem.seeded(settings.report_seed), n_steps, record_every=record_every,
                                      keep_params=keep_params)
              for opt in optimisers}
    accuracy = None
    if problem.accuracy is not None and keep_params:
        accuracy = {name: problem.accuracy(c.params).numpy() for name, c in curves.items()}
    return Comparison(problem, (gd, adam), curves, accuracy)


def compare_on_plane_wave(settings: Settings) -> Comparison:
    """backprop2's plane-wave regression (81 parameters at 20 units): full batch, the full Hessian joins."""
    problem = plane_wave_problem(n_models=settings.wave_models, n_points=settings.wave_points,
                                 hidden=settings.wave_hidden, seed=settings.data_seed)
    return compare_optimisers(problem, settings, gd_grid=settings.gd_grid_wave, second_order=settings.wave_second_order,
                              n_steps=settings.wave_steps, record_every=settings.wave_record_every)


def compare_on_mnist(settings: Settings) -> Comparison:
    """The MNIST MLP on minibatches; the final parameters are kept for the test accuracy."""
    problem = mnist_problem(n_models=settings.mnist_models, hidden=settings.mnist_hidden,
                            batch_size=settings.mnist_batch_size, n_eval=settings.mnist_eval_images,
                            seed=settings.data_seed)
    return compare_optimisers(problem, settings, gd_grid=settings.gd_grid_mnist,
                              second_order=settings.mnist_second_order, n_steps=settings.mnist_steps,
                              record_every=settings.mnist_record_every, keep_params=True)


# ------------------------------------------------------------------------------------ cost per step

@dataclass(frozen=True)
class Cost:
    """(P, seconds per step) of block Newton with blocks of ``block_size`` and with the full Hessian."""

    block_size: int
    block: tuple[tuple[int, float], ...]
    full: tuple[tuple[int, float], ...]

    @property
    def block_exponent(self) -> float:
        return fitted_exponent(*zip(*self.block))

    @property
    def full_exponent(self) -> float:
        return fitted_exponent(*zip(*self.full))

    @property
    def largest_shared(self) -> int:
        """The largest P timed with both."""
        block_at = dict(self.block)
        return max(p for p, _ in self.full if p in block_at)

    @property
    def full_over_block(self) -> float:
        """How many times a full-Hessian step costs a block step at :attr:`largest_shared`."""
        p = self.largest_shared
        return dict(self.full)[p] / dict(self.block)[p]


def cost_per_step(settings: Settings) -> Cost:
    """Seconds per block-Newton step (no line search) on d_in → hidden → 10 MLPs, for blocks of
    ``cost_block_size`` and for the full Hessian (smaller P only)."""
    kw = dict(hidden=settings.cost_hidden, n_points=settings.cost_points, seed=settings.cost_seed)
    block = [step_seconds(BlockNewton(settings.cost_block_size), d, repeats=settings.cost_repeats,
                          rounds=settings.cost_rounds, **kw) for d in settings.cost_inputs]
    full = [step_seconds(BlockNewton(None), d, repeats=settings.cost_repeats_full, rounds=settings.cost_rounds_full,
                         **kw) for d in settings.cost_inputs_full]
    return Cost(settings.cost_block_size, tuple(block), tuple(full))


# ============================================================================================= results

@dataclass(frozen=True, eq=False)
class Results:
    hessians: HessianCheck
    inflection: Inflection
    trajectories: Trajectories
    wave: Comparison
    mnist: Comparison
    cost: Cost


def run(settings: Settings) -> Results:
    """Every section of the chapter, in the chapter's order."""
    return Results(check_block_hessians(settings), inflection_argument(settings), toy_trajectories(settings),
                   compare_on_plane_wave(settings), compare_on_mnist(settings), cost_per_step(settings))


# ===================================================================================== tables, figures

def hessian_table(check: HessianCheck) -> str:
    return markdown_table(["activation", "loss", "network", "max |block - full|"],
                          [[c.activation, c.loss, "-".join(map(str, c.sizes)), f"{c.error:.1e}"] for c in check.cases])


def cubic_model_line(inflection: Inflection) -> str:
    return (f"double well: {inflection.n_points} concave points; the cubic model predicts whether the unguarded "
            f"|λ| step lowers f at {inflection.cubic_accuracy:.1%} of them")


def concave_table(inflection: Inflection) -> str:
    rows = [[c.function, c.n_points, f"{c.newton_raises:.0%}", f"{c.abs_lowers_where_newton_raises:.0%}",
             f"{c.abs_lowers:.0%}", f"{c.newton_raises_guarded:.0%}",
             f"{c.abs_lowers_where_newton_raises_guarded:.0%}", f"{c.abs_lowers_guarded:.0%}"]
            for c in inflection.counts]
    return markdown_table(["function", "concave points", "Newton raises f", "… where |λ| lowers f", "|λ| lowers f",
                           "Newton raises f (guard)", "… where |λ| lowers f (guard)", "|λ| lowers f (guard)"], rows)


def trajectory_table(result: Trajectories) -> str:
    rows = [[name, label, f"{float(v.mean()):+.3f}", f"{int((v < 0).sum())}/{len(v)}",
             "; ".join(f"({a:+.2f}, {b:+.2f})" for a, b in result.final_points[name][label].tolist())]
            for name, per in result.final_values.items() for label, v in per.items()]
    return markdown_table(["function", "method", f"mean f change after {result.n_steps} steps", "starts that lowered f",
                           "end points"], rows)


def tuning_table(comparison: Comparison) -> str:
    return markdown_table(["tuned", "grid", "chosen", "at grid edge"],
                          [[c.name, ", ".join(f"{g:g}" for g in c.grid), f"{c.best:g}", str(c.at_edge)]
                           for c in comparison.tuned])


def training_rows(curves: Mapping[str, Curve],
                  extra: Callable[[str, Curve], list[str]] | None = None) -> list[list[str]]:
    """One table row per optimiser: final loss ± 95% t-interval over the models, diverged models,
    ms per step, the mean fraction of plain-Newton directions (block Newton only), then ``extra``."""
    rows = []
    for name, c in curves.items():
        s = final_summary(c)
        frac = c.info.get("newton_fraction")
        row = [name, f"{s.mean:.3g} ± {s.ci95:.2g}", str(int(c.diverged.sum())), f"{1e3 * c.seconds_per_step:.2f}",
               f"{np.mean(frac):.2f}" if frac else "–"]
        rows.append(row + (extra(name, c) if extra else []))
    return rows


def training_table(comparison: Comparison) -> str:
    """Final training loss, divergences, cost and Newton fraction per optimiser, and the test accuracy
    (mean ± 95% t-interval over the models) where the problem measures one."""
    headers = ["optimiser", "final training loss", "diverged", "ms / step", "Newton fraction"]
    extra = None
    if comparison.accuracy is not None:
        headers.append("test accuracy (%)")

        def extra(name: str, curve: Curve) -> list[str]:
            s = summarise(100 * comparison.accuracy[name], interval="t")  # a handful of initialisations
            return [f"{s.mean:.1f} ± {s.ci95:.1f}"]

    return markdown_table(headers, training_rows(comparison.curves, extra))


def _sorted_p(row: list[str]) -> int:
    return int(row[0].replace(",", ""))


def cost_table(cost: Cost) -> str:
    block_at, full_at = dict(cost.block), dict(cost.full)
    rows = [[f"{p:,}", f"{1e3 * s:.1f}", f"{1e3 * full_at[p]:.0f}" if p in full_at else "–"] for p, s in cost.block]
    rows += [[f"{p:,}", "–", f"{1e3 * f:.0f}"] for p, f in cost.full if p not in block_at]
    return markdown_table(["P", f"b = {cost.block_size} (ms / step)", "full Hessian (ms / step)"],
                          sorted(rows, key=_sorted_p))


def cost_line(cost: Cost) -> str:
    return (f"fitted exponent, b = {cost.block_size}: {cost.block_exponent:.2f}; full Hessian: "
            f"{cost.full_exponent:.2f}; full / b={cost.block_size} at P = {cost.largest_shared:,}: "
            f"{cost.full_over_block:.0f}x")


def cubic_model_figure(inflection: Inflection):
    """The loss change of one unguarded step against the local u: the double well's points and the
    cubic model's closed forms, with the thresholds of the derivation."""
    import matplotlib.pyplot as plt

    u = inflection.u
    order = np.argsort(u)
    us = np.geomspace(1e-3, 40, 300)
    keep = u[order] > 0
    abs_color, newton_color = methods.color("|λ| Newton"), methods.color("Newton")
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(us, [cubic_outcomes(v).abs_change for v in us], color=abs_color, label="|λ| step, cubic model")
    ax.plot(us, [cubic_outcomes(v).newton_change for v in us], color=newton_color, label="Newton step, cubic model")
    ax.plot(u[order][keep], inflection.change_abs[order][keep], ".", ms=3, color=abs_color,
            label="|λ| step, double well")
    ax.plot(u[order][keep], inflection.change_newton[order][keep], ".", ms=3, color=newton_color,
            label="Newton step, double well")
    for value in CUBIC_THRESHOLDS.values():
        ax.axvline(value, color="#bbbbbb", lw=0.8, ls=":")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xscale="log", xlim=(1e-3, 40), ylim=(-2, 3),
           xlabel="u = τγ/λ²  (|λ|-step length / distance to the inflection point)",
           ylabel="loss change / (γ²/|λ|)", title="One step from a concave point of x⁴/4 − x²/2")
    ax.legend(fontsize=8, loc="upper left")
    return fig


TRAJECTORY_LIMITS = {"saddle well": ((-1.6, -1.4), (1.6, 1.4)), "Himmelblau": ((-4.5, -4.5), (4.5, 4.5))}


def trajectory_figure(result: Trajectories, limits: Mapping[str, tuple] = TRAJECTORY_LIMITS):
    """The toy paths on each 2-D test function's contours, concave regions shaded."""
    import matplotlib.pyplot as plt

    from ..second_order.plots import plot_contours, plot_paths

    fig, axes = plt.subplots(1, len(result.paths), figsize=(10, 4.6), squeeze=False)
    for ax, (name, paths) in zip(axes[0], result.paths.items()):
        plot_contours(ax, TEST_FUNCTIONS[name], *limits[name], n=120, levels=20)
        plot_paths(ax, paths)
        ax.set_title(name)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    return fig


def training_figure(comparison: Comparison):
    """Training loss (mean and 95% t-interval over the models) against steps and against wall time."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_curves

    curves = comparison.curves.values()
    problem = comparison.problem
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    plot_curves(axes[0], curves, x="steps", xlabel="optimiser steps", ylabel="training loss",
                title=f"{problem.name}, {problem.model.n_params:,} parameters")
    plot_curves(axes[1], curves, x="seconds", xlabel="training wall time (s)", ylabel="training loss",
                title="… against training wall time")
    axes[1].legend(fontsize=7, loc="upper right")
    return fig


def cost_figure(cost: Cost):
    """Seconds per step against P, log-log, with the fitted slopes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.loglog(*zip(*cost.block), "o-", color=methods.color(f"block Newton (backprop2, b={cost.block_size})"),
              label=f"b = {cost.block_size} (slope {cost.block_exponent:.2f})")
    ax.loglog(*zip(*cost.full), "s-", color=methods.color("Newton"),
              label=f"full Hessian (slope {cost.full_exponent:.2f})")
    ax.set(xlabel="parameters P", ylabel="seconds per step", title="Cost of one generalised-Newton step (1 CPU thread)")
    ax.legend()
    return fig


# ============================================================================================== claims

def check_claims(results: Results) -> Claims:
    """Print and check every directional finding of the chapter (verdicts only, no measured numbers)."""
    claims = Claims()
    wave, mnist = results.wave.curves, results.mnist.curves
    counts = results.inflection.counts
    print(f"block-Hessian checks: {len(results.hessians.cases)}; test functions: {len(counts)}; "
          f"plane wave parameters: {results.wave.problem.model.n_params}; "
          f"MNIST parameters: {results.mnist.problem.model.n_params}")
    claims.check("Block Hessians equal the full Hessian's diagonal blocks (4 activations x 2 losses, float64, error < 1e-10)",
                 results.hessians.max_error < 1e-10)
    claims.check("With backprop2's guard, the |λ| step lowers f at every concave grid point where guarded Newton raises it "
                 "(all three test functions)", all(c.guarded_rescues for c in counts))
    claims.check("Without the guard, the |λ| step raises f at some concave points (near inflection points, as derived)",
                 all(c.unguarded_fails > 0 for c in counts))
    claims.check("The cubic model predicts whether the unguarded |λ| step lowers f at >= 90% of the double well's concave points",
                 results.inflection.cubic_accuracy >= 0.9)
    saddle_ends = results.trajectories.final_points["saddle well"]
    newton_to_saddle = bool((saddle_ends["Newton"].norm(dim=-1) < 1e-3).all())
    minimum = torch.tensor([1.0, 0.0], dtype=torch.float64)  # the minima are (±1, 0)
    abs_to_minimum = bool(((saddle_ends["|λ| Newton"] - minimum).abs()
                           .min((saddle_ends["|λ| Newton"] + minimum).abs()).amax(-1) < 1e-3).all())
    claims.check("Saddle well: guarded plain Newton converges to the saddle from every start, the |λ| rule to a minimum",
                 newton_to_saddle and abs_to_minimum)
    himmelblau = results.trajectories.final_values["Himmelblau"]
    claims.check("Himmelblau: the |λ| rule ends below its start from every start, guarded plain Newton above",
                 bool((himmelblau["|λ| Newton"] < 0).all() and (himmelblau["Newton"] > 0).all()))
    claims.check("Cost per block-Newton step (b = 7) grows at most linearly in P (fitted exponent < 1.3)",
                 results.cost.block_exponent < 1.3)
    claims.check("A full-Hessian step costs more than 10x a b = 7 step at the largest P where both ran",
                 results.cost.full_over_block > 10)
    claims.check("Plane wave: with the line search, block Newton (b = 7) ends lower than GD with the same line search",
                 final_summary(wave["block Newton (backprop2, b=7) + line search"]).mean
                 < final_summary(wave["GD + line search"]).mean)
    signed, absolute = (final_summary(wave[f"block Newton ({r}, b=7) + line search"]) for r in ("newton", "backprop2"))
    claims.check("Plane wave: with the line search, plain-Newton and |λ| blocks (b = 7) end within each other's 95% intervals",
                 abs(signed.mean - absolute.mean) < signed.ci95 + absolute.ci95)
    adam = final_summary(mnist["Adam"]).mean
    claims.check("MNIST: tuned Adam ends lower than every block-Newton variant after the same number of steps",
                 all(adam < final_summary(c).mean for n, c in mnist.items() if "Newton" in n))
    adam_time = mnist["Adam"].seconds[-1]
    claims.check("MNIST: at the wall time tuned Adam needs for all its steps, every block-Newton variant is still higher",
                 all(np.nanmean(c.loss_at_time(adam_time)) > adam for n, c in mnist.items() if "Newton" in n))
    claims.check("The tuned learning rates of GD and Adam are inside their grids on both problems",
                 not any(c.at_edge for c in (*results.wave.tuned, *results.mnist.tuned)))
    return claims
