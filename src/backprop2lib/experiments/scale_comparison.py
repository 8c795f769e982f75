"""Chapter 2's comparison: every method meta-trained on the same task family from the same start,
for several training seeds at once, then adapted to the same held-out tasks (paired over seeds and
tasks) and scored by query MSE.

Methods: MAML (the initialisation-only learner; chapter 1 compares it with FOMAML and Reptile, which
:func:`train_methods` also trains), Meta-SGD, the meta-gradient scale, and the backprop2 meta-learner
with no scale ("mean only": batch Reptile with its line search), the quadratic and the quartic
regulariser. Each adapts with its own inner loop ("native": MAML and Meta-SGD with the k SGD steps
they were trained for, the meta-gradient scale with its k regularised steps, the backprop2 learners
with their line-searched loop) and, for the equal-budget rows, every learned start with the same
loop (backprop2's, no regulariser, no learned rates).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..meta.backprop2 import ScaleModel, train_backprop2
from ..meta.backprop2 import stack_rows  # per-seed regularisers as one [S·T, P] batch
from ..meta.fewshot import Adapter, evaluate_few_shot, query_errors, sgd_adapter
from ..meta.maml import train_maml
from ..meta.meta_sgd import train_meta_sgd
from ..meta.reptile import train_reptile
from ..meta.scale_gradient import train_scale_gradient
from ..models.mlp import MLP
from ..profiles import Profile, resolve_profile
from ..scale import QuadraticRegulariser, QuarticRegulariser, quartic_inverse_scale, quartic_minimum_distance
from ..scale.adapt import InnerLoop, adapt
from ..optim.tune import LRChoice, choose
from ..stats import (Comparison as Verdict, SeedSummary, Summary, compare_seeds, permutation_p_value,
                     rank_correlation, summarise, summarise_seeds, interval_text)
from ..tables import markdown_table
from ..tasks import GaussianBumpTasks, TeacherTasks

TRAINABLE = registry.names("maml", "fomaml", "reptile", "meta_sgd", "scale_gradient", "mean_only", "quadratic",
                           "quartic")
"""Every method :func:`train_methods` trains, by display name (ids, names, colours: :mod:`backprop2lib.methods`)."""
METHODS = registry.names("maml", "meta_sgd", "scale_gradient", "mean_only", "quadratic", "quartic")
"""The methods chapter 2 compares (FOMAML and Reptile are chapter 1's; here MAML stands for the
initialisation-only learners, which keeps three training seeds of every method within the budget)."""


@dataclass(frozen=True)
class ComparisonSettings:
    iterations: int = 4000  # Adam meta-iterations of the gradient-based learners
    meta_batch: int = 25
    k_shot: int = 10  # support points per task, in training and at test
    k_query: int = 40  # query points per training task (the statistics learners adapt on all 50)
    inner_steps: int = 5  # SGD steps of MAML, FOMAML, Reptile, Meta-SGD, meta-gradient scale
    # inner steps on E (backprop2lib.meta's one convention). The chapter's runs used 0.1 for all five,
    # on the MSE for the MAML family, so their step on E is twice the others':
    inner_lr: float = 0.1  # Meta-SGD's initial rate and the meta-gradient scale's step
    maml_inner_lr: float = 0.2  # MAML, FOMAML, Reptile: 0.1 on the MSE (one output) = 0.2 on E
    meta_lr: float = 1e-3
    outer_iterations: int = 10  # backprop2 learners
    tasks_per_iteration: int = 100
    adapt_steps: int = 100  # line-searched steps of the backprop2 inner loop
    strength_quadratic: float = 1e-4
    strength_quartic: float = 1e-4
    strength_gradient: float = 1e-2
    floor: float = 1e-6  # variance floor of the quadratic

    @property
    def loop(self) -> InnerLoop:
        return InnerLoop(max_steps=self.adapt_steps)


@dataclass
class TrainedMethod:
    name: str
    adapter: Adapter
    scale: torch.Tensor | None  # the per-parameter scale it learned, if it learns one
    seconds: float
    start: torch.Tensor  # the learned initialisation (mean), flat [P]
    extra: dict = field(default_factory=dict)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass
class SeededMethod:
    """One method trained for several seeds in one batched run: one :class:`TrainedMethod` per seed."""

    name: str
    rows: list[TrainedMethod]  # row j: the learner of training seed ``seeds[j]``
    seeds: list[int]
    seconds: float  # the batched run's time (every seed trained in it)


def _kw(seed: int, seeds) -> dict:
    return dict(seeds=list(seeds)) if seeds is not None else dict(generator=_seeded(seed))


def train_backprop2_method(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, rule: str, *,
                           strength: float | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
                           device="cpu") -> TrainedMethod | SeededMethod:
    """One backprop2 learner (``rule``: mean_only, quadratic, quartic) as a :class:`TrainedMethod`
    (with ``seeds``: a :class:`SeededMethod`, every seed in one batch)."""
    if strength is None:
        strength = settings.strength_quartic if rule == "quartic" else settings.strength_quadratic
    learned = train_backprop2(model, tasks, rule=rule, outer_iterations=settings.outer_iterations,
                              tasks_per_iteration=settings.tasks_per_iteration,
                              points_per_task=settings.k_shot + settings.k_query, loop=settings.loop, strength=strength,
                              floor=settings.floor, init=init, device=device, **_kw(seed, seeds))
    return _wrap(registry.name(rule), learned, model, settings)


def _trained(name: str, r, model: MLP, s: ComparisonSettings) -> TrainedMethod:
    """A single run's result as a :class:`TrainedMethod` (its adapter is the method's native inner loop)."""
    if name in ("MAML", "FOMAML", "Reptile"):
        return TrainedMethod(name, sgd_adapter(model, r.params, steps=s.inner_steps, lr=s.maml_inner_lr), None,
                             r.seconds, r.params)
    if name in ("Meta-SGD", "meta-gradient scale"):  # the learned scale: Meta-SGD's rates, or σ
        return TrainedMethod(name, lambda x, y: r.adapt(model, x, y).params,
                             r.rates if name == "Meta-SGD" else r.scale, r.seconds, r.params)
    return TrainedMethod(name, lambda x, y: r.adapt(model, x, y).params, r.scale, r.seconds, r.mean, {"model": r})


def _wrap(name: str, result, model: MLP, s: ComparisonSettings) -> TrainedMethod | SeededMethod:
    seeds = result.seeds if isinstance(result, ScaleModel) else result.config.get("seeds")
    if seeds is None:
        return _trained(name, result, model, s)
    return SeededMethod(name, [_trained(name, result.seed(j), model, s) for j in range(len(seeds))], list(seeds),
                        result.seconds)


def train_methods(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *,
                  methods=METHODS, seed: int = 0, seeds: Sequence[int] | None = None, device="cpu",
                  progress: bool | None = None) -> dict[str, TrainedMethod] | dict[str, SeededMethod]:
    """Meta-train every method in ``methods`` on ``tasks`` from the flat start ``init [P]``.

    Without ``seeds``: one run each, method i with the generator of ``seed + i``. With ``seeds``:
    every method trains one learner per seed in one batched run (the same seeds for every method),
    returned as a :class:`SeededMethod`.
    """
    unknown = set(methods) - set(TRAINABLE)
    if unknown:
        raise ValueError(f"methods: unknown method(s) {sorted(unknown)}; valid: {', '.join(TRAINABLE)}")
    s = settings
    common = dict(iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.k_shot, k_query=s.k_query,
                  device=device, progress=progress)
    out = {}
    for i, name in enumerate(methods):
        kw = {**common, **_kw(seed + i, seeds)}
        if name in ("MAML", "FOMAML"):
            r = train_maml(model, tasks, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, meta_lr=s.meta_lr,
                           first_order=name == "FOMAML", init=init, **kw)
        elif name == "Reptile":
            r = train_reptile(model, tasks, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, init=init, **kw)
        elif name == "Meta-SGD":
            r = train_meta_sgd(model, tasks, inner_steps=s.inner_steps, init_rate=s.inner_lr, meta_lr=s.meta_lr,
                               init=init, **kw)
        elif name == "meta-gradient scale":
            r = train_scale_gradient(model, tasks, inner_steps=s.inner_steps, inner_lr=s.inner_lr,
                                     strength=s.strength_gradient, meta_lr=s.meta_lr, init=init, **kw)
        else:  # the backprop2 learners: their registry id is their rule
            out[name] = train_backprop2_method(model, tasks, init, s, registry.get(name).id, seed=seed + i,
                                               seeds=seeds, device=device)
            continue
        out[name] = _wrap(name, r, model, s)
    return out


def evaluate_methods(model: MLP, trained: dict[str, TrainedMethod], batch) -> dict[str, np.ndarray]:
    """Query MSE per held-out task for every trained method, on the same tasks."""
    return evaluate_few_shot(model, {name: m.adapter for name, m in trained.items()}, batch)


def evaluate_starts(model: MLP, trained: dict[str, TrainedMethod], batch, loop: InnerLoop) -> dict[str, np.ndarray]:
    """Query MSE when every method's learned *start* is adapted with the same inner loop (no
    regulariser, no learned rates): separates what the initialisation is worth from the inner loop."""
    return evaluate_few_shot(model, {name: (lambda x, y, m=m: adapt(model, m.start, x, y, loop=loop).params)
                                     for name, m in trained.items()}, batch)


def evaluate_seeds(model: MLP, trained: dict[str, SeededMethod], batch, loop: InnerLoop | None = None
                   ) -> dict[str, np.ndarray]:
    """Query MSE ``[S, T]`` (training seed × task) of every seeded method on the same ``batch``: with
    its native inner loop (one call per seed), or with ``loop`` from its learned start (see
    :func:`evaluate_starts`; every seed's tasks in one batched call, ``[S·T, P]``)."""
    rows = {name: m.rows for name, m in trained.items()}
    n = {len(r) for r in rows.values()}
    if len(n) != 1:
        raise ValueError(f"trained: expected the same number of seeds for every method, got {sorted(n)}")
    S, T = n.pop(), batch.x_support.shape[0]
    if loop is not None:
        x, y = batch.x_support.repeat(S, 1, 1), batch.y_support.repeat(S, 1, 1)
        out = {}
        for name, r in rows.items():
            starts = torch.stack([row.start for row in r]).repeat_interleave(T, 0)
            adapted = adapt(model, starts, x, y, loop=loop).params
            out[name] = query_errors(model, adapted, batch.x_query.repeat(S, 1, 1),
                                     batch.y_query.repeat(S, 1, 1)).reshape(S, T)
        return out
    per_seed = [evaluate_methods(model, {name: r[j] for name, r in rows.items()}, batch) for j in range(S)]
    return {name: np.stack([e[name] for e in per_seed]) for name in trained}


def adapted_spread(model: MLP, method: TrainedMethod, batch) -> torch.Tensor:
    """Per-parameter std over tasks of the adapted parameters: the scale a method *uses*, learned or not."""
    with torch.enable_grad():
        adapted = method.adapter(batch.x_support, batch.y_support).detach()
    return adapted.std(0, unbiased=False)


@dataclass(frozen=True)
class ScaleRecovery:
    correlation: float  # Spearman's rho of the method's scale with the true s*
    p_value: float  # one-sided permutation test against "no relation"
    source: str  # "learned" (a meta-parameter) or "adapted" (spread of adapted parameters)


def scale_recovery(model: MLP, method: TrainedMethod, true_scale: torch.Tensor, batch, *,
                   n_permutations: int = 10_000) -> ScaleRecovery:
    """How well a method's per-parameter scale ranks the parameters like the true scale s*.

    Methods that learn a scale are scored on it (σ, the quartic's 1/√a, Meta-SGD's rates);
    the others on the spread of their adapted parameters over the held-out ``batch``.
    """
    if method.scale is not None:
        scale, source = method.scale, "learned"
    else:
        scale, source = adapted_spread(model, method, batch), "adapted"
    a, b = scale.double().cpu().numpy(), true_scale.double().cpu().numpy()
    return ScaleRecovery(rank_correlation(a, b), permutation_p_value(a, b, n_permutations=n_permutations), source)


def sweep_strength(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, rule: str,
                   strengths, *, seed: int = 0, device="cpu") -> dict[float, TrainedMethod]:
    """Train the backprop2 ``rule`` at each regulariser strength (to choose c on validation tasks)."""
    return {c: train_backprop2_method(model, tasks, init, settings, rule, strength=c, seed=seed, device=device)
            for c in strengths}


# ================================================================================ the chapter's sections
# Chapter 2 (notebooks/02_parameter_scale): Settings, one function per section, Results, run, tables,
# figures, check_claims and findings. Every random draw comes from a generator seeded from Settings.


FAMILIES = ("sparse", "narrow", "wide", "bumps")
TEACHER_FAMILIES = ("sparse", "narrow", "wide")  # the families whose true scale s* is known
BACKPROP2 = registry.names("mean_only", "quadratic", "quartic")
REGULARISED = registry.names("quadratic", "quartic")
NATIVE, SAME = "native", "same"  # inner loops: each method's own; backprop2's for every learned start


class LearnerSettings:
    """What chapters 2 and 3's ``Settings`` share, mixed into their frozen dataclasses (which hold ``n_seeds``,
    ``iterations``, ``outer_iterations``, ``tasks_per_iteration``, ``adapt_steps``, ``layers``, ``activation``)."""

    def seeds(self, base: int) -> list[int]:
        """The training seeds of a run whose first seed is ``base``."""
        return [base + i for i in range(self.n_seeds)]

    @property
    def comparison(self) -> ComparisonSettings:
        """The learners' settings in the form the training functions take (before any strength is chosen)."""
        return ComparisonSettings(iterations=self.iterations, outer_iterations=self.outer_iterations,
                                  tasks_per_iteration=self.tasks_per_iteration, adapt_steps=self.adapt_steps)

    def model(self) -> MLP:
        return MLP(self.layers, activation=self.activation)


@dataclass(frozen=True)
class Settings(LearnerSettings):
    """Every size, grid and seed of chapter 2.

    The ``paper`` profile trains every method for 3 seeds (``full``: 10) at once: the gradient-based
    learners for 2,000 Adam meta-iterations (``full``: 3,000, where MAML's meta-loss is still
    falling by about 10% per thousand), the backprop2 learners for 10 outer iterations of 100 tasks
    (50 points each, 100 line-searched inner steps), as backprop2's driver did, on a 2-20-1 network
    of Gaussian units (81 parameters). The regulariser strengths are tuned per family on one tuning
    seed (not a training seed) with 3 outer iterations (``full``: 10); 150 test tasks per family
    (``full``: 300; shared by every seed and method), 50 terminator tasks, 10,000 permutations and a
    recovery threshold p < 0.01. Reductions in the ``smoke`` profile (CI): 120 meta-iterations, 3
    outer iterations of 30 tasks instead of 10 of 100, 30 inner steps instead of 100, 2 tuning outer
    iterations and two strengths instead of three, 60 test tasks, 20 terminator tasks, 2,000
    permutations and p < 0.05.
    """

    # sizes that depend on the profile
    iterations: int  # Adam meta-iterations (MAML, Meta-SGD, meta-gradient scale)
    outer_iterations: int  # backprop2 outer iterations (10 in the original driver)
    tasks_per_iteration: int
    adapt_steps: int  # line-searched inner steps of the backprop2 learners
    test_tasks: int  # held-out tasks per family, the same for every method and seed
    terminator_tasks: int
    permutations: int
    recovery_p: float  # significance required for "better than chance"
    n_seeds: int  # training seeds of every method (and of the collapse runs)
    strengths: tuple[float, ...]  # regulariser strengths c tried on validation tasks, per family
    tuning_outer_iterations: int  # outer iterations of the strength sweep's runs
    # tasks and grids
    query_points: int = 200
    k_shot: int = 10
    validation_tasks: int = 200
    spread_points: int = 50  # points per task of the batch the adapted spreads are measured on
    shots: tuple[int, ...] = (2, 5, 10, 20)
    terminator_budgets: tuple[int, ...] = (25, 100, 400)  # fixed inner-loop budgets beside the terminator
    terminator_cap: int = 3000
    diverged_above: float = 1e6
    # the regularisers' minima
    minima_rms: tuple[float, ...] = (0.1, 2.0)
    minima_samples: int = 20_000
    minima_grid_max: float = 10.0
    minima_grid_points: int = 200_001
    # the collapse runs
    collapse_points: int = 50
    collapse_strengths: tuple[float, ...] = (1e-2, 1e-4)  # the quadratic without a floor (the quartic at the first)
    collapse_floor: float = 1e-30
    # the network and the teacher families
    layers: tuple[int, ...] = (2, 20, 1)
    activation: str = "gaussian"
    n_varying: int = 8
    sparse_spread: float = 0.5
    spreads: tuple[float, float] = (0.1, 0.4)  # narrow, wide
    init_noise: float = 0.3
    # seeds
    family_seed: int = 0
    ood_seed: int = 1
    init_seed: int = 0
    minima_seed: int = 1
    collapse_seed: int = 7  # the collapse runs' seeds are collapse_seed, collapse_seed + 1, ...
    tuning_seed: int = 11  # the strength sweep's one training seed (never a training seed of the comparison)
    train_seed: int = 100  # every method's training seeds are train_seed, train_seed + 1, ...
    validation_seed: int = 500  # plus the family's index
    test_seed: int = 900
    test_ood_seed: int = 901
    spread_seed: int = 902
    shots_seed: int = 910  # plus K
    terminator_seed: int = 920

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's)."""
        p = resolve_profile(profile)
        return cls(
            iterations=p.select(smoke=120, paper=2000, full=3000),
            outer_iterations=p.select(smoke=3, paper=10),
            tasks_per_iteration=p.select(smoke=30, paper=100),
            adapt_steps=p.select(smoke=30, paper=100),
            test_tasks=p.select(smoke=60, paper=150, full=300),
            terminator_tasks=p.select(smoke=20, paper=50),
            permutations=p.select(smoke=2000, paper=10000),
            recovery_p=p.select(smoke=0.05, paper=0.01),
            n_seeds=p.select(smoke=3, paper=3, full=10),
            strengths=p.select(smoke=(1e-6, 1e-4), paper=(1e-6, 1e-5, 1e-4)),
            tuning_outer_iterations=p.select(smoke=2, paper=3, full=10),
        )



def regularisers_figure(*, half_width: float = 2.5, points: int = 501):
    """The quadratic (σ = 1) and quartic (a = 1) regularisers at c = 1: value and gradient against w − μ."""
    import matplotlib.pyplot as plt

    d = torch.linspace(-half_width, half_width, points, dtype=torch.float64)[:, None]
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    curves = {"quadratic, σ = 1": QuadraticRegulariser(zero, one, 1.0).value_and_grad(d),
              "quartic, a = 1": QuarticRegulariser(zero, one, 1.0).value_and_grad(d)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for (name, (value, grad)), color in zip(curves.items(), [registry.color("quadratic"), registry.color("quartic")]):
        axes[0].plot(d[:, 0], value, color=color, label=name)
        axes[1].plot(d[:, 0], grad[:, 0], color=color, label=name)
    axes[0].set(xlabel="w − μ", ylabel="R / c", title="value", ylim=(0, 4))
    axes[1].set(xlabel="w − μ", ylabel="dR/dw / c", title="gradient", ylim=(-6, 6))
    axes[0].legend(); axes[1].axhline(0, color="k", lw=0.5)
    return fig


@dataclass(frozen=True)
class MinimumCheck:
    rms: float  # the deviations' RMS
    variant: str
    found: float  # where a grid search finds the minimum of |w − μ|
    intended: float | None  # where the variant meant to put it (None: least squares, no intention)
    at_formula: bool  # found at 1/sqrt(a)


@dataclass(frozen=True)
class QuarticMinima:
    checks: list[MinimumCheck]

    @property
    def ok(self) -> bool:
        return all(c.at_formula for c in self.checks)

    def ratio(self, rms: float, variant: str) -> float:
        """Where ``variant`` puts the minima, divided by where it meant to (deviations of RMS ``rms``)."""
        for c in self.checks:
            if c.rms == rms and c.variant == variant and c.intended is not None:
                return c.found / c.intended
        raise ValueError(f"rms, variant: no check with an intended distance for {rms!r}, {variant!r}")


def quartic_minima(settings: Settings) -> QuarticMinima:
    """Where each variant of the quartic's inverse scale a puts the minima, by a dense grid search."""
    s, checks = settings, []
    grid = torch.linspace(0, s.minima_grid_max, s.minima_grid_points, dtype=torch.float64)[:, None]
    for rms in s.minima_rms:
        dev = rms * torch.randn(s.minima_samples, 1, generator=_seeded(s.minima_seed), dtype=torch.float64)
        rms_hat, mad = dev.pow(2).mean().sqrt().item(), dev.abs().mean().item()
        for variant, intended in [("least_squares", None), ("type2", mad), ("type3", rms_hat), ("consistent", rms_hat)]:
            a = quartic_inverse_scale(dev, variant)
            value, _ = QuarticRegulariser(torch.zeros(1, dtype=torch.float64), a, 1.0).value_and_grad(grid)
            found = grid[value.argmin(), 0].item()
            ok = abs(found - quartic_minimum_distance(a).item()) < 1e-3 * max(found, 1.0)
            checks.append(MinimumCheck(rms, variant, found, intended, bool(ok)))
    return QuarticMinima(checks)


def minima_table(minima: QuarticMinima) -> str:
    rows = [[f"{c.rms:g}", c.variant, f"{c.found:.3f}", "—" if c.intended is None else f"{c.intended:.3f}",
             "—" if c.intended is None else f"{c.found / c.intended:.2f}"] for c in minima.checks]
    return markdown_table(["deviation RMS", "variant", "minimum found at |w − μ|", "intended", "found / intended"], rows)


@dataclass(frozen=True, eq=False)
class Setup:
    """The network, the task families (each with its OOD family) and the one start every method shares."""

    model: MLP
    families: dict  # name -> (family, OOD family), in FAMILIES order
    init: torch.Tensor  # [P]
    device: torch.device | str

    @property
    def sparse(self) -> TeacherTasks:
        return self.families["sparse"][0]

    def tasks_of(self, family, n: int, k: int, seed: int, query: int | None = None):
        if query is None:  # the family's default query size
            return family.sample(n, k, generator=_seeded(seed), device=self.device)
        return family.sample(n, k, query, generator=_seeded(seed), device=self.device)


def task_setup(settings: Settings, *, device: torch.device | str = "cpu") -> Setup:
    """The four task families and the common start: the sparse teacher's mean plus noise (hidden units
    would otherwise be defined only up to a permutation, and "which parameter varies" would have no
    meaning). This start knows roughly where the teachers' mean is: an advantage every method shares."""
    s, model = settings, settings.model()
    sparse = TeacherTasks.sparse_variation(model, n_varying=s.n_varying, spread=s.sparse_spread, seed=s.family_seed,
                                           device=device)
    narrow, wide = TeacherTasks.two_spreads(model, spreads=s.spreads, seed=s.family_seed, device=device)
    families = {"sparse": (sparse, sparse.ood_complement(seed=s.ood_seed)), "narrow": (narrow, wide),
                "wide": (wide, wide.with_scale(2 * wide.scale, "wider")),
                "bumps": (GaussianBumpTasks.training(), GaussianBumpTasks.ood())}
    init = sparse.mean + s.init_noise * torch.randn(model.n_params, generator=_seeded(s.init_seed)).to(device)
    return Setup(model, families, init, device)


@dataclass(frozen=True, eq=False)
class Collapse:
    runs: dict  # name -> ScaleModel over the collapse seeds (history entries: one value per seed)

    def scale(self, name: str) -> np.ndarray:
        """Mean learned scale ``[outer iterations + 1, S]`` (row 0: the two-task initialisation)."""
        return np.asarray(self.runs[name].history["scale_mean"], dtype=float)

    @property
    def names(self) -> list[str]:
        return list(self.runs)


def quadratic_collapse(settings: Settings, setup: Setup, *, device: torch.device | str = "cpu") -> Collapse:
    """The backprop2 learner on the sparse family, every collapse seed at once: the quadratic without a
    floor at each collapse strength, then the quartic at the first."""
    s, c = settings.comparison, settings.collapse_strengths
    kws = {f"quadratic, c = {x:.0e}, no floor".replace("e-0", "e-"): dict(rule="quadratic", strength=x,
                                                                         floor=settings.collapse_floor) for x in c}
    kws[f"quartic, c = {c[0]:.0e}".replace("e-0", "e-")] = dict(rule="quartic", strength=c[0])
    return Collapse({name: train_backprop2(setup.model, setup.sparse, outer_iterations=s.outer_iterations,
                                           tasks_per_iteration=s.tasks_per_iteration,
                                           points_per_task=settings.collapse_points, loop=s.loop, init=setup.init,
                                           seeds=settings.seeds(settings.collapse_seed), device=device, **kw)
                     for name, kw in kws.items()})


def collapse_figure(collapse: Collapse):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(collapse.names):  # entry 0: the two-task initialisation
        h = collapse.scale(name)
        for j in range(h.shape[1]):
            ax.plot(np.arange(len(h)), h[:, j], marker="o", ms=3, color=colors[i % len(colors)],
                    label=name if j == 0 else None, alpha=0.8)
    ax.set(yscale="log", xlabel="outer iteration (0: initialisation from two tasks)", ylabel="mean learned scale",
           title="Scale over outer iterations (one line per seed)")
    ax.legend()
    return fig


def _range(values) -> str:
    values = np.asarray(values, dtype=float)
    lo, hi = values.min(), values.max()
    return f"{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"{lo:.2g} to {hi:.2g}"


def collapse_text(collapse: Collapse) -> str:
    lines = []
    for name, r in collapse.runs.items():
        h = collapse.scale(name)
        error = np.asarray(r.history["error_after"][-1], dtype=float)
        lines.append(f"{name}: mean scale {_range(h[0])} from the two-task initialisation, {_range(h[1])} after the "
                     f"first outer iteration, {_range(h[-1])} after the last (range over {h.shape[1]} seeds); "
                     f"training error after adaptation {_range(error)}")
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class StrengthSweep:
    """Each regularised learner trained at each strength c on each family (the tuning seed, shortened
    meta-training), scored by the mean query MSE on that family's validation tasks."""

    scores: dict[str, dict[str, dict[float, Summary]]]  # family -> method -> c -> validation MSE
    choices: dict[str, dict[str, LRChoice]]  # family -> method -> the chosen c (``best``, ``at_edge``)
    strengths: tuple[float, ...]

    def chosen(self, family: str) -> dict[str, float]:
        return {m: c.best for m, c in self.choices[family].items()}

    def settings(self, settings: Settings, family: str) -> ComparisonSettings:
        """The learners' settings for ``family`` with its chosen strengths."""
        chosen = self.chosen(family)
        return dataclasses.replace(settings.comparison, strength_quadratic=chosen[registry.name("quadratic")],
                                   strength_quartic=chosen[registry.name("quartic")])


def sweep_strengths(settings: Settings, setup: Setup, *, device: torch.device | str = "cpu") -> StrengthSweep:
    s = settings
    tuning = dataclasses.replace(s.comparison, outer_iterations=s.tuning_outer_iterations)
    scores, choices = {}, {}
    for i, (f, (family, _)) in enumerate(setup.families.items()):
        validation = setup.tasks_of(family, s.validation_tasks, s.k_shot, s.validation_seed + i, s.query_points)
        scores[f], choices[f] = {}, {}
        for m in REGULARISED:
            runs = sweep_strength(setup.model, family, setup.init, tuning, registry.get(m).id, list(s.strengths),
                                  seed=s.tuning_seed, device=device)
            scores[f][m] = {c: summarise(evaluate_methods(setup.model, {"m": run}, validation)["m"],
                                         diverged_above=s.diverged_above) for c, run in runs.items()}
            choices[f][m] = choose(f"{m}: strength c", s.strengths,
                                   [x.mean if x.n_diverged == 0 else np.inf for x in scores[f][m].values()])
    return StrengthSweep(scores, choices, tuple(s.strengths))


def strength_table(sweep: StrengthSweep) -> str:
    fams = list(sweep.scores)
    rows = []
    for m in REGULARISED:
        for c in sweep.strengths:
            rows.append([m, f"{c:g}"] + [str(sweep.scores[f][m][c]) + (" ←" if sweep.choices[f][m].best == c else "")
                                         for f in fams])
    return markdown_table(["method", "c"] + [f"{f}: validation MSE" for f in fams], rows)


def strength_text(sweep: StrengthSweep) -> str:
    lines = []
    for f in sweep.choices:
        parts = [f"{m}: c = {c.best:g}" + (" (at the grid's edge)" if c.at_edge else "")
                 for m, c in sweep.choices[f].items()]
        lines.append(f"{f}: " + "; ".join(parts))
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class FamilyComparison:
    """One family: every method over the training seeds, adapted to the same test and OOD tasks."""

    settings: ComparisonSettings  # with this family's chosen strengths
    ood_name: str  # what the OOD tasks are ("ood", "wide", "wider", ...)
    trained: dict[str, SeededMethod]
    test: object
    test_ood: object
    errors: dict[tuple[str, bool], dict[str, np.ndarray]]  # (loop, ood) -> method -> query MSE [S, T]
    recovery: dict[str, list[ScaleRecovery]] | None  # method -> per seed (teacher families only)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Every method meta-trained on each family for every seed and adapted to the same test tasks (in
    distribution and OOD), with its native inner loop and with the same loop from its learned start."""

    by_family: dict[str, FamilyComparison]
    n_seeds: int
    diverged_above: float

    @property
    def families(self) -> list[str]:
        return list(self.by_family)

    def errors(self, family: str, method: str, loop: str = NATIVE, ood: bool = False) -> np.ndarray:
        """Query MSE ``[S, T]`` of ``method`` on ``family``'s test (or OOD) tasks with ``loop``."""
        if loop not in (NATIVE, SAME):
            raise ValueError(f"loop: expected {NATIVE!r} or {SAME!r}, got {loop!r}")
        return self.by_family[family].errors[(loop, ood)][method]

    def summary(self, family: str, method: str, loop: str = NATIVE, ood: bool = False) -> SeedSummary:
        return summarise_seeds(self.errors(family, method, loop, ood), diverged_above=self.diverged_above)

    def verdict(self, family: str, a: str, b: str, loop: str = NATIVE, ood: bool = False, *,
                loop_b: str | None = None) -> Verdict:
        """``a`` (with ``loop``) against ``b`` (with ``loop_b``, default the same), paired over the training
        seeds and the shared test tasks."""
        return compare_seeds(self.errors(family, a, loop, ood), self.errors(family, b, loop_b or loop, ood),
                             paired=True, diverged_above=self.diverged_above)

    @property
    def n_diverged(self) -> int:
        return sum(self.summary(f, m, loop, ood).n_diverged for f in self.by_family for m in METHODS
                   for loop in (NATIVE, SAME) for ood in (False, True))


def compare_methods(settings: Settings, setup: Setup, sweep: StrengthSweep, *,
                    device: torch.device | str = "cpu") -> Comparison:
    """Per family: every method of :data:`METHODS` for the training seeds (one batched run per method),
    the family's chosen strengths; then every seed adapted to the same test and OOD tasks with its
    native loop and, from its learned start, with backprop2's loop; the scale recovery per seed."""
    s, model = settings, setup.model
    out = {}
    for f, (family, ood) in setup.families.items():
        cs = sweep.settings(s, f)
        trained = train_methods(model, family, setup.init, cs, seeds=s.seeds(s.train_seed), device=device,
                                progress=False)
        test = setup.tasks_of(family, s.test_tasks, s.k_shot, s.test_seed, s.query_points)
        test_ood = setup.tasks_of(ood, s.test_tasks, s.k_shot, s.test_ood_seed, s.query_points)
        errors = {(loop, o): evaluate_seeds(model, trained, batch, None if loop == NATIVE else cs.loop)
                  for loop in (NATIVE, SAME) for o, batch in ((False, test), (True, test_ood))}
        recovery = None
        if isinstance(family, TeacherTasks):
            spread_batch = setup.tasks_of(family, s.test_tasks, s.spread_points, s.spread_seed)
            recovery = {m: [scale_recovery(model, row, family.scale, spread_batch, n_permutations=s.permutations)
                            for row in t.rows] for m, t in trained.items()}
        out[f] = FamilyComparison(cs, getattr(ood, "name", "OOD"), trained, test, test_ood, errors, recovery)
    return Comparison(out, s.n_seeds, s.diverged_above)


def errors_table(comparison: Comparison, *, loop: str = NATIVE, ood: bool = False) -> str:
    """Query MSE per method and family over the training seeds (mean ± across-seed 95% interval), with
    ``loop``; the training time of the batched runs summed over the families."""
    c, fs = comparison, comparison.families
    names = [f"{f} → {c.by_family[f].ood_name}" if ood else f for f in fs]
    timed = loop == NATIVE and not ood  # the training time once, beside the native in-distribution errors

    def row(m: str) -> list[str]:
        time = [f"{sum(c.by_family[f].trained[m].seconds for f in fs):.0f}"] if timed else []
        return [m] + time + [interval_text(c.summary(f, m, loop, ood)) for f in fs]

    return markdown_table(["method" if loop == NATIVE else "learned start of"]
                          + (["training time (s)"] if timed else []) + names, [row(m) for m in METHODS])


def recovery_table(comparison: Comparison) -> str:
    """Spearman's rho of each method's scale with the true s*, per teacher family: the range over the
    training seeds, and the largest permutation p."""
    c = comparison
    fs = [f for f in c.families if c.by_family[f].recovery is not None]
    rec = {f: c.by_family[f].recovery for f in fs}
    return markdown_table(["method", "scored on"] + [f"ρ on {f} (largest p)" for f in fs],
                          [[m, rec[fs[0]][m][0].source] + [f"{_range([r.correlation for r in rec[f][m]])} "
                                                           f"({max(r.p_value for r in rec[f][m]):.2g})" for f in fs]
                           for m in METHODS])


def scale_ratios(comparison: Comparison) -> dict[str, np.ndarray]:
    """Per method that learns a scale: median learned scale, wide ÷ narrow, per training seed ``[S]``."""
    out = {}
    for m in METHODS:
        narrow, wide = comparison.by_family["narrow"].trained[m].rows, comparison.by_family["wide"].trained[m].rows
        if narrow[0].scale is not None:
            out[m] = np.array([float((w.scale / n.scale).median()) for n, w in zip(narrow, wide)])
    return out


def scale_ratio_table(comparison: Comparison) -> str:
    """Median learned scale, wide over narrow, for the methods that learn a scale (truth: 4)."""
    return markdown_table(["method (learned scale)", "median learned scale, wide ÷ narrow (truth: 4), range over seeds"],
                          [[m, _range(r)] for m, r in scale_ratios(comparison).items()])


@dataclass(frozen=True, eq=False)
class Shots:
    shots: tuple[int, ...]
    errors: dict[str, list[np.ndarray]]  # method -> per K, query MSE [S, T]
    diverged_above: float

    def summaries(self) -> dict[str, list[SeedSummary]]:
        return {m: [summarise_seeds(e, diverged_above=self.diverged_above) for e in v] for m, v in self.errors.items()}


def error_vs_shots(settings: Settings, setup: Setup, comparison: Comparison) -> Shots:
    """The sparse family's learners (every seed) adapted from K support points, K in ``settings.shots``
    (trained with K = 10)."""
    s, out = settings, {m: [] for m in METHODS}
    for k in s.shots:
        batch = setup.tasks_of(setup.sparse, s.test_tasks, k, s.shots_seed + k, s.query_points)
        for m, e in evaluate_seeds(setup.model, comparison.by_family["sparse"].trained, batch).items():
            out[m].append(e)
    return Shots(tuple(s.shots), out, s.diverged_above)


def shots_figure(shots: Shots):
    import matplotlib.pyplot as plt

    from ..plotting import plot_summaries

    fig, ax = plt.subplots(figsize=(7, 4))
    plot_summaries(ax, list(shots.shots), shots.summaries(), xlabel="support points K", ylabel="query MSE",
                   title="Sparse family: error against shots (95% band across seeds)")
    return fig


@dataclass(frozen=True, eq=False)
class Terminator:
    """The sparse family's quartic learner (every seed) adapted with fixed budgets and with the dynamic
    terminator, on the same held-out tasks."""

    steps: dict[str, np.ndarray]  # inner loop -> steps taken [S, T]
    stopped: dict[str, np.ndarray]  # inner loop -> stopped by the terminator [S, T]
    support: dict[str, np.ndarray]  # inner loop -> support error (½ SSE) after adaptation [S, T]
    query: dict[str, np.ndarray]  # inner loop -> query MSE [S, T]
    cap: int
    diverged_above: float

    @property
    def loops(self) -> list[str]:
        return list(self.steps)

    @property
    def terminated(self) -> str:
        return self.loops[-1]

    def verdict(self, a: str, b: str) -> Verdict:
        return compare_seeds(self.query[a], self.query[b], paired=True, diverged_above=self.diverged_above)


def terminator(settings: Settings, setup: Setup, comparison: Comparison) -> Terminator:
    """Every seed's quartic learner of the sparse family adapted to the same held-out tasks with each
    fixed budget and with the terminator: one batched call per inner loop (``[S·T, P]``, each task from
    its own seed's mean and regulariser; every task stops on its own)."""
    s, model = settings, setup.model
    learners = [row.extra["model"] for row in comparison.by_family["sparse"].trained[registry.name("quartic")].rows]
    held_out = setup.tasks_of(setup.sparse, s.terminator_tasks, s.k_shot, s.terminator_seed, s.query_points)
    S, T = len(learners), s.terminator_tasks
    starts = torch.stack([q.mean for q in learners]).repeat_interleave(T, 0)
    regulariser = stack_rows([q.regulariser for q in learners], T)
    x, y = held_out.x_support.repeat(S, 1, 1), held_out.y_support.repeat(S, 1, 1)
    x_query, y_query = held_out.x_query.repeat(S, 1, 1), held_out.y_query.repeat(S, 1, 1)
    loops = {f"fixed {n} steps": InnerLoop(max_steps=n) for n in s.terminator_budgets}
    loops[f"terminator (cap {s.terminator_cap})"] = InnerLoop(max_steps=s.terminator_cap, terminate=True)
    fields = {k: {} for k in ("steps", "stopped", "support", "query")}
    for name, loop in loops.items():
        r = adapt(model, starts, x, y, loop=loop, regulariser=regulariser)
        fields["steps"][name] = r.steps.cpu().numpy().reshape(S, T)
        fields["stopped"][name] = r.stopped.cpu().numpy().reshape(S, T)
        fields["support"][name] = r.error_after.double().cpu().numpy().reshape(S, T)
        fields["query"][name] = query_errors(model, r.params, x_query, y_query).reshape(S, T)
    return Terminator(**fields, cap=s.terminator_cap, diverged_above=s.diverged_above)


def terminator_table(term: Terminator) -> str:
    rows = []
    for name in term.loops:
        steps = term.steps[name]
        rows.append([name, f"{steps.mean():.0f} ({steps.min()}–{steps.max()})", f"{term.stopped[name].mean():.0%}",
                     f"{term.support[name].mean():.3g}",
                     interval_text(summarise_seeds(term.query[name], diverged_above=term.diverged_above))])
    return markdown_table(["inner loop", "steps: mean (range)", "stopped by terminator", "support error (½ SSE)",
                           "query MSE (across seeds)"], rows)


# ---------------------------------------------------------------------------------------- run

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    minima: QuarticMinima
    setup: Setup
    collapse: Collapse
    sweep: StrengthSweep
    comparison: Comparison
    shots: Shots
    terminator: Terminator


def run(settings: Settings, *, device: torch.device | str = "cpu") -> Results:
    """Every section of the chapter, in the notebook's order."""
    minima = quartic_minima(settings)
    setup = task_setup(settings, device=device)
    collapse = quadratic_collapse(settings, setup, device=device)
    sweep = sweep_strengths(settings, setup, device=device)
    comparison = compare_methods(settings, setup, sweep, device=device)
    shots = error_vs_shots(settings, setup, comparison)
    term = terminator(settings, setup, comparison)
    return Results(settings, minima, setup, collapse, sweep, comparison, shots, term)


# ---------------------------------------------------------------------------------------- claims and findings

def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return
    them; every comparison of methods at seed level (paired over training seeds and shared test tasks)."""
    s, c, m = results.settings, results.comparison, results.minima
    claims = Claims()
    print(f"training seeds: {s.n_seeds} (of every method on every family, and of the collapse runs)")
    print(f"parameters: {results.setup.model.n_params}; families: {', '.join(c.families)}; methods: {len(METHODS)}")
    claims.check("backprop2's type 2 and type 3 quartics put the minima more than twice too far out for deviations "
                 "of RMS 0.1 and too close for RMS 2; the consistent variant is within 1% at both",
                 all(m.ratio(0.1, v) > 2 and m.ratio(2.0, v) < 0.9 for v in ("type2", "type3"))
                 and all(abs(m.ratio(r, "consistent") - 1) < 0.01 for r in (0.1, 2.0)))
    quadratic, quartic = (results.collapse.scale(n) for n in (results.collapse.names[0], results.collapse.names[-1]))
    claims.check("On every seed, without a floor the quadratic scale at c = 1e-2 falls below 1/1000 of its initial value",
                 bool((quadratic[-1] < 1e-3 * quadratic[0]).all()))
    claims.check("On every seed, the quartic scale at the same c stays above 1/10 of its initial value",
                 bool((quartic.min(0) > 0.1 * quartic[0]).all()))
    rec = c.by_family["sparse"].recovery[registry.name("quartic")]
    claims.check("On every seed, the quartic's learned scale ranks the sparse family's parameters like s*, better than "
                 "chance", all(r.p_value < s.recovery_p and r.correlation > 0 for r in rec))
    claims.check("On every teacher family, the quadratic's validation error is lowest at the weakest strength tried",
                 all(results.sweep.choices[f][registry.name("quadratic")].best == min(s.strengths)
                     for f in TEACHER_FAMILIES))
    maml = registry.name("maml")
    claims.check("On every seed, the spread of MAML's adapted parameters also ranks the sparse family's parameters "
                 "like s*, better than chance", all(r.p_value < s.recovery_p and r.correlation > 0
                                                    for r in c.by_family["sparse"].recovery[maml]))
    claims.check("With their own inner loops, all three backprop2 learners end lower than MAML in distribution on "
                 "sparse, narrow and wide",
                 all(c.verdict(f, b, maml).verdict == "lower" for f in TEACHER_FAMILIES for b in BACKPROP2))
    claims.check("MAML's own start adapted with backprop2's loop ends lower than with MAML's own 5 steps, on sparse, "
                 "narrow and wide", all(c.verdict(f, maml, maml, SAME, loop_b=NATIVE).verdict == "lower"
                                         for f in TEACHER_FAMILIES))
    claims.check("With their own inner loops, Meta-SGD and the meta-gradient scale end lower than MAML in distribution "
                 "on every family", all(c.verdict(f, x, maml).verdict == "lower" for f in FAMILIES
                                        for x in registry.names("meta_sgd", "scale_gradient")))
    claims.check("With the same inner loop for every start, the backprop2 learners' starts still end lower than "
                 "MAML's on sparse and narrow", all(c.verdict(f, b, maml, SAME).verdict == "lower"
                                                    for f in ("sparse", "narrow") for b in BACKPROP2))
    claims.check("On every seed, the backprop2 learners' advantage over MAML shrinks when every start is adapted with "
                 "the same loop (their error relative to MAML's is higher), on sparse, narrow and wide",
                 all((relative_to_maml(c, f, b, SAME) > relative_to_maml(c, f, b, NATIVE)).all()
                     for f in TEACHER_FAMILIES for b in BACKPROP2))
    mean_only = registry.name("mean_only")
    claims.check("In distribution neither regulariser ends lower than the mean-only learner on narrow, wide or bumps",
                 all(c.verdict(f, r, mean_only).verdict != "lower" for f in ("narrow", "wide", "bumps")
                     for r in REGULARISED))
    quartic = registry.name("quartic")
    claims.check("On the sparse family the quartic does not end higher than the mean-only learner in distribution, nor "
                 "lower out of distribution", c.verdict("sparse", quartic, mean_only).verdict != "higher"
                 and c.verdict("sparse", quartic, mean_only, ood=True).verdict != "lower")
    ratios = scale_ratios(c)
    claims.check("On every seed, the quadratic's and the quartic's learned scale is more than twice as large on wide "
                 "as on narrow; Meta-SGD's rates and the meta-gradient scale less than 1.5 times",
                 all((ratios[r] > 2).all() for r in REGULARISED)
                 and all((ratios[x] < 1.5).all() for x in registry.names("meta_sgd", "scale_gradient")))
    claims.check("On narrow and wide, on every seed, neither Meta-SGD's rates nor the meta-gradient scale rank the "
                 "parameters like s* better than chance",
                 all(r.p_value >= s.recovery_p for f in ("narrow", "wide")
                     for x in registry.names("meta_sgd", "scale_gradient") for r in c.by_family[f].recovery[x]))
    claims.check("No method diverged on any test or OOD task, with either inner loop", c.n_diverged == 0)
    t = results.terminator
    claims.check("On every seed, the terminator stops more than half of the held-out tasks before the step cap",
                 bool((t.stopped[t.terminated].mean(1) > 0.5).all()))
    shortest = t.loops[0]
    claims.check(f"The terminator ends lower than the shortest fixed budget ({shortest})",
                 t.verdict(t.terminated, shortest).verdict == "lower")
    return claims


def relative_to_maml(comparison: Comparison, family: str, method: str, loop: str) -> np.ndarray:
    """Per training seed ``[S]``: ``method``'s mean query error divided by MAML's, both with ``loop``
    (in distribution)."""
    a = summarise_seeds(comparison.errors(family, method, loop), diverged_above=comparison.diverged_above)
    b = summarise_seeds(comparison.errors(family, registry.name("maml"), loop), diverged_above=comparison.diverged_above)
    return a.per_seed / b.per_seed


def findings(results: Results) -> dict[str, str]:
    """The numbers and verdicts the chapter's prose quotes, as text (glued into it by the notebook)."""
    s, c, sweep, term = results.settings, results.comparison, results.sweep, results.terminator
    out = {"seeds": str(s.n_seeds)}
    for rms in s.minima_rms:
        for v in ("type2", "type3"):
            out[f"minima_{v}_{rms:g}".replace(".", "_")] = f"{results.minima.ratio(rms, v):.2f}"
    for key, name in zip(("quadratic", "quadratic_weak", "quartic"), results.collapse.names):
        h = results.collapse.scale(name)
        out[f"collapse_{key}_init"] = _range(h[0])
        out[f"collapse_{key}_first"] = _range(h[1])
        out[f"collapse_{key}_last"] = _range(h[-1])
        out[f"collapse_{key}_error"] = _range(results.collapse.runs[name].history["error_after"][-1])
    for f in c.families:
        for m, choice in sweep.choices[f].items():
            out[f"{f}_{registry.get(m).id}_c"] = f"{choice.best:.0e}".replace("e-0", "e-")
        for m in METHODS:
            for loop in (NATIVE, SAME):
                for ood in (False, True):
                    summary = c.summary(f, m, loop, ood)
                    out[f"{f}_{registry.get(m).id}_{loop}_{'ood' if ood else 'in'}"] = f"{summary.mean:.2g} ± {summary.ci95:.1g}"
        others = [registry.get(m).id for m in METHODS if m != registry.name("maml")]
        pairs = [(a, "maml", NATIVE, NATIVE) for a in others] + [(a, "maml", SAME, SAME) for a in others] \
            + [(a, "mean_only", loop, loop) for a in ("quadratic", "quartic", "meta_sgd", "scale_gradient", "maml")
               for loop in (NATIVE, SAME)] + [("maml", "maml", SAME, NATIVE)]
        for a, b, loop_a, loop_b in pairs:
            for ood in (False, True):
                v = c.verdict(f, registry.name(a), registry.name(b), loop_a, ood, loop_b=loop_b)
                out[f"{f}_{a}_{loop_a}_vs_{b}_{loop_b}_{'ood' if ood else 'in'}"] = v.phrase
        rec = c.by_family[f].recovery
        if rec is not None:
            for m in METHODS:
                out[f"{f}_{registry.get(m).id}_rho"] = _range([r.correlation for r in rec[m]])
                out[f"{f}_{registry.get(m).id}_p"] = f"{max(r.p_value for r in rec[m]):.2g}"
                out[f"{f}_{registry.get(m).id}_p_min"] = f"{min(r.p_value for r in rec[m]):.2g}"
        for b in BACKPROP2:
            for loop in (NATIVE, SAME):
                out[f"{f}_{registry.get(b).id}_{loop}_over_maml"] = _range(relative_to_maml(c, f, b, loop))
    for m, r in scale_ratios(c).items():
        out[f"ratio_{registry.get(m).id}"] = _range(r)
    fixed = [name for name in term.loops if name != term.terminated]
    out["term_stopped"] = f"{term.stopped[term.terminated].mean():.0%}"
    out["term_stopped_min"] = f"{term.stopped[term.terminated].mean(1).min():.0%}"
    out["term_steps"] = f"{term.steps[term.terminated].mean():,.0f}"
    out["term_steps_min"] = f"{term.steps[term.terminated].min():,}"
    out["term_cap"] = f"{term.cap:,}"
    summary = summarise_seeds(term.query[term.terminated], diverged_above=term.diverged_above)
    out["term_error"] = f"{summary.mean:.2g} ± {summary.ci95:.1g}"
    for name, n in zip(fixed, s.terminator_budgets):
        summary = summarise_seeds(term.query[name], diverged_above=term.diverged_above)
        out[f"term_fixed_{n}"] = f"{summary.mean:.2g} ± {summary.ci95:.1g}"
        out[f"term_vs_fixed_{n}"] = term.verdict(term.terminated, name).phrase
    return out
