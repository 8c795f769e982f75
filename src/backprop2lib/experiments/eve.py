"""Chapter 3's experiments: Eve's per-parameter learning rates against other inner loops that start
from the same learned mean (plain gradient descent with the line search, Adam with a tuned step)
and against Meta-SGD, whose rates are learned by meta-gradient.

The building blocks come first (:func:`train_eve`, :func:`inner_loops`, :func:`tune_adam_lr`,
:func:`error_vs_steps`, :func:`movement`); then :class:`Settings` and the chapter's sections, one
function each: :func:`task_families` (the teacher families and the common start), :func:`sweep_decay`
(κ chosen on validation tasks), :func:`compare_inner_loops` (every inner loop on every family),
:func:`rate_recovery` (Eve's and Meta-SGD's rates against the true scale) and :func:`sparse_movement`
(where each inner loop moves). :func:`run` runs them all; the ``*_table``, ``*_text`` and
``*_figure`` functions present a section's result; :func:`check_claims` checks the chapter's findings.

Every random draw comes from a ``torch.Generator`` (or NumPy generator) seeded from :class:`Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..meta.backprop2 import ScaleModel, train_backprop2
from ..meta.fewshot import query_errors
from ..meta.meta_sgd import MetaSGDResult, train_meta_sgd
from ..models.mlp import MLP
from ..optim.tune import LRChoice, check_grid, choose
from ..plotting import plot_summaries
from ..profiles import Profile, resolve_profile
from ..scale.adapt import InnerLoop, adam_adapt, adapt
from ..stats import (Comparison as Verdict, SeedSummary, compare_seeds, permutation_p_value,
                     rank_correlation, summarise, summarise_seeds, interval_text)
from ..tables import markdown_table
from ..tasks import TeacherTasks
from .scale_comparison import ComparisonSettings, LearnerSettings


EVE, SGD_LS, ADAM = "Eve", "SGD + line search", "Adam (tuned)"
SGD_OWN, ADAM_OWN = "SGD + line search, own μ", "Adam (tuned), own μ"
META_SGD = "Meta-SGD"
INNER_LOOPS = (EVE, SGD_LS, ADAM, SGD_OWN, ADAM_OWN, META_SGD)
"""Every inner loop the chapter compares: Eve; gradient descent with the line search and tuned Adam
from Eve's learned mean, and from their own learned mean (the mean-only backprop2 learner's: the
same meta-training without any scale); Meta-SGD from its own meta-learned start with its rates."""


def train_eve(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *, decay: float = 0.2,
              seed: int = 0, seeds: Sequence[int] | None = None, device="cpu") -> ScaleModel:
    """The backprop2 learner with Eve's rates (no regulariser), decay ``κ = decay``; with ``seeds``, one
    learner per seed in one batch (seed s as the single run with ``seed=s``)."""
    return _train(model, tasks, init, settings, "eve", decay=decay, seed=seed, seeds=seeds, device=device)


def train_mean_only(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *, seed: int = 0,
                    seeds: Sequence[int] | None = None, device="cpu") -> ScaleModel:
    """The backprop2 learner without a scale: μ is the mean of the tasks adapted by gradient descent
    with the line search. It is the learned start of the inner loops that do not use Eve's μ."""
    return _train(model, tasks, init, settings, "mean_only", seed=seed, seeds=seeds, device=device)


def _train(model, tasks, init, settings: ComparisonSettings, rule: str, *, decay: float = 0.2, seed: int,
           seeds, device) -> ScaleModel:
    kw = dict(seeds=list(seeds)) if seeds is not None else dict(generator=torch.Generator().manual_seed(seed))
    return train_backprop2(model, tasks, rule=rule, decay=decay, outer_iterations=settings.outer_iterations,
                           tasks_per_iteration=settings.tasks_per_iteration,
                           points_per_task=settings.k_shot + settings.k_query, loop=settings.loop, init=init,
                           device=device, **kw)


def inner_loops(model: MLP, eve: ScaleModel, *, adam_lr: float, own: ScaleModel | None = None,
                own_adam_lr: float | None = None, meta_sgd: MetaSGDResult | None = None):
    """The inner loops of :data:`INNER_LOOPS`, as functions ``(x, y, steps) -> AdaptResult``: Eve and
    the loops from Eve's mean μ always; from ``own``'s mean and Meta-SGD when given (single seeds)."""
    loops = {
        EVE: lambda x, y, n: eve.adapt(model, x, y, loop=eve.loop.with_(max_steps=n)),
        SGD_LS: lambda x, y, n: adapt(model, eve.mean, x, y, loop=eve.loop.with_(max_steps=n)),
        ADAM: lambda x, y, n: adam_adapt(model, eve.mean, x, y, steps=n, lr=adam_lr),
    }
    if own is not None:
        if own_adam_lr is None:
            raise ValueError("own_adam_lr: expected Adam's step for the own-mean loop, got None")
        loops[SGD_OWN] = lambda x, y, n: adapt(model, own.mean, x, y, loop=eve.loop.with_(max_steps=n))
        loops[ADAM_OWN] = lambda x, y, n: adam_adapt(model, own.mean, x, y, steps=n, lr=own_adam_lr)
    if meta_sgd is not None:
        loops[META_SGD] = lambda x, y, n: meta_sgd.adapt(model, x, y, steps=n)
    return loops


def loop_starts(eve: ScaleModel, own: ScaleModel | None = None, meta_sgd: MetaSGDResult | None = None):
    """Where each inner loop of :func:`inner_loops` starts ``[P]`` (the movement is measured from there)."""
    starts = {EVE: eve.mean, SGD_LS: eve.mean, ADAM: eve.mean}
    if own is not None:
        starts.update({SGD_OWN: own.mean, ADAM_OWN: own.mean})
    if meta_sgd is not None:
        starts[META_SGD] = meta_sgd.params
    return starts


def tune_adam_lr(model: MLP, start: torch.Tensor, validation, *, steps: int, grid) -> LRChoice:
    """The inner-loop Adam step with the lowest mean query error on ``validation`` tasks (never test tasks).

    ``start``: the flat start ``[P]``, or one per training seed ``[S, P]`` (the score is then the mean
    over seeds). The criterion is the reported one (query error after ``steps`` steps); a rate under
    which any task's error is not finite scores inf. The grid rule and ``at_edge`` are the library's
    one tuner's.
    """
    starts = start[None] if start.dim() == 1 else start
    scores = []
    for lr in check_grid(grid):
        per_start = []
        for w0 in starts:
            res = adam_adapt(model, w0, validation.x_support, validation.y_support, steps=steps, lr=lr)
            e = query_errors(model, res.params, validation.x_query, validation.y_query)
            per_start.append(float(np.mean(np.where(np.isfinite(e), e, np.inf))))
        scores.append(float(np.mean(per_start)))
    return choose("Adam (inner loop)", grid, scores, steps)


def error_vs_steps(model: MLP, loops, batch, steps: list[int]) -> dict[str, list[np.ndarray]]:
    """Query MSE per task after each budget in ``steps``, for every inner loop."""
    return {name: [query_errors(model, run(batch.x_support, batch.y_support, n).params.detach(), batch.x_query,
                                batch.y_query) for n in steps] for name, run in loops.items()}


@dataclass(frozen=True)
class Movement:
    """Mean |w − μ| after adaptation, on three groups of parameters."""

    trained_varying: float  # parameters that vary across the training tasks
    test_varying: float  # parameters that vary across the test tasks (the same ones in distribution)
    fixed: float  # parameters that vary in neither

    @property
    def focus(self) -> float:
        """How much more the training-varying parameters move than the fixed ones."""
        return self.trained_varying / self.fixed


def movement(adapted: torch.Tensor, start: torch.Tensor, trained_varying: torch.Tensor,
             test_varying: torch.Tensor) -> Movement:
    if adapted.dim() != 2 or adapted.shape[-1] != start.shape[-1]:
        raise ValueError(f"adapted: expected [T, {start.shape[-1]}], got {tuple(adapted.shape)}")
    d = (adapted - start).abs().mean(0)
    fixed = ~(trained_varying | test_varying)
    if not bool(fixed.any()) or not bool(trained_varying.any()) or not bool(test_varying.any()):
        raise ValueError("trained_varying, test_varying: need some varying parameters of each kind and some fixed ones")
    return Movement(float(d[trained_varying].mean()), float(d[test_varying].mean()), float(d[fixed].mean()))


# ---------------------------------------------------------------------------------------- settings

def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Settings(LearnerSettings):
    """Every size, grid and seed of chapter 3.

    The ``paper`` profile (and ``full``, the same) meta-trains Eve as backprop2 did: 10 outer
    iterations of 100 tasks with 50 points each, 100 line-searched inner steps, on the previous
    chapter's teacher-network families (2-20-1 Gaussian units, 81 parameters); Meta-SGD gets 3,000
    Adam meta-iterations; 300 test tasks per family, five decays κ swept, 10,000 permutations and
    a recovery threshold p < 0.01. Reductions in the ``smoke`` profile (CI): 3 outer iterations of
    30 tasks instead of 10 of 100, 150 Meta-SGD meta-iterations instead of 3,000, 100 test tasks
    instead of 300, three decays (0, 0.2, 5) instead of five, 2,000 permutations and p < 0.05.
    Everything else is as in ``paper``. The decay sweep, the Adam grid and the test families are
    ours, not backprop2's (which hard-coded κ = 0.2).
    """

    # sizes that depend on the profile
    iterations: int  # Meta-SGD's Adam meta-iterations
    outer_iterations: int  # Eve's outer iterations
    tasks_per_iteration: int
    test_tasks: int  # per family, in distribution and OOD
    decays: tuple[float, ...]  # κ swept on validation tasks
    permutations: int  # of the rank-correlation permutation test
    recovery_p: float  # the p-value Eve's rate recovery on the sparse family must beat (on every seed)
    n_seeds: int  # training seeds of every meta-learned method (Eve, the mean-only learner, Meta-SGD)
    # inner loops and tasks
    adapt_steps: int = 100  # inner-loop budget for Eve, SGD and Adam
    validation_tasks: int = 200
    k_shot: int = 10  # support points of validation and test tasks
    query_points: int = 200
    adam_grid: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # inner-loop Adam steps tried on validation tasks
    steps: tuple[int, ...] = (1, 2, 5, 10, 25, 100)  # step budgets of the error-vs-steps curves
    diverged_above: float = 1e6
    # the network and the teacher families
    layers: tuple[int, ...] = (2, 20, 1)
    activation: str = "gaussian"
    n_varying: int = 8  # sparse family: parameters that vary
    sparse_spread: float = 0.5
    spreads: tuple[float, float] = (0.1, 0.4)  # narrow, wide
    init_noise: float = 0.3  # the common start: the sparse mean plus this much Gaussian noise
    # seeds
    family_seed: int = 0  # the teacher families
    ood_seed: int = 1  # the sparse family's OOD complement
    init_seed: int = 0
    eve_seed: int = 3  # Eve's training seeds are eve_seed, eve_seed + 1, ...
    meta_sgd_seed: int = 7
    mean_only_seed: int = 11
    validation_seed: int = 500  # sparse validation tasks (the decay sweep and the sparse family's Adam tuning)
    validation_ood_seed: int = 501
    family_validation_seed: int = 502  # validation tasks of the narrow and wide families
    test_seed: int = 900
    test_ood_seed: int = 901
    permutation_seed: int = 0
    jitter_seed: int = 0  # horizontal jitter of the rates figure

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's)."""
        p = resolve_profile(profile)
        return cls(
            iterations=p.select(smoke=150, paper=3000),
            outer_iterations=p.select(smoke=3, paper=10),
            tasks_per_iteration=p.select(smoke=30, paper=100),
            test_tasks=p.select(smoke=100, paper=300),
            decays=p.select(smoke=(0.0, 0.2, 5.0), paper=(0.0, 0.05, 0.2, 1.0, 5.0)),
            permutations=p.select(smoke=2000, paper=10000),
            recovery_p=p.select(smoke=0.05, paper=0.01),
            n_seeds=p.select(smoke=3, paper=3, full=10),
        )



# ---------------------------------------------------------------------------------------- sections

@dataclass(frozen=True, eq=False)
class Setup:
    """The teacher families (each with its OOD family) and the common start."""

    model: MLP
    families: dict[str, tuple[TeacherTasks, TeacherTasks]]  # name -> (family, OOD family)
    init: torch.Tensor  # [P]
    query_points: int
    k_shot: int
    device: torch.device | str

    @property
    def sparse(self) -> TeacherTasks:
        return self.families["sparse"][0]

    def tasks_of(self, family: TeacherTasks, n: int, seed: int):
        """``n`` tasks of ``family`` with ``k_shot`` support and ``query_points`` query points (seed ``seed``)."""
        return family.sample(n, self.k_shot, self.query_points, generator=_seeded(seed), device=self.device)


def task_families(settings: Settings, *, device: torch.device | str = "cpu") -> Setup:
    """sparse (OOD: other parameters vary), narrow (OOD: wide), wide (OOD: twice as wide), and the start."""
    model = settings.model()
    sparse = TeacherTasks.sparse_variation(model, n_varying=settings.n_varying, spread=settings.sparse_spread,
                                           seed=settings.family_seed, device=device)
    narrow, wide = TeacherTasks.two_spreads(model, spreads=settings.spreads, seed=settings.family_seed, device=device)
    families = {"sparse": (sparse, sparse.ood_complement(seed=settings.ood_seed)), "narrow": (narrow, wide),
                "wide": (wide, wide.with_scale(2 * wide.scale, "wider"))}
    init = sparse.mean + settings.init_noise * torch.randn(model.n_params,
                                                           generator=_seeded(settings.init_seed)).to(device)
    return Setup(model, families, init, settings.query_points, settings.k_shot, device)


def _per_seed_errors(model: MLP, learner: ScaleModel, batch) -> np.ndarray:
    """Query MSE ``[S, T]`` of every seed of a seeded backprop2 learner adapting to ``batch`` (its own loop)."""
    return np.stack([query_errors(model, learner.seed(j).adapt(model, batch.x_support, batch.y_support).params,
                                  batch.x_query, batch.y_query)
                     for j in range(len(learner.seeds))])


@dataclass(frozen=True, eq=False)
class DecaySweep:
    """Eve meta-trained on the sparse family at each decay κ (every training seed), scored on
    validation tasks."""

    eves: dict[float, ScaleModel]  # κ -> the seeded learner (one per training seed)
    scores: dict[float, tuple[SeedSummary, SeedSummary]]  # κ -> (in distribution, OOD) query MSE after adapt_steps
    rate_correlation: dict[float, float]  # κ -> ρ(λ, s*), mean over seeds
    validation: object  # the sparse validation tasks (reused to tune Adam on the sparse family)

    @property
    def chosen(self) -> float:
        """The κ with the lowest in-distribution validation error, mean over seeds (OOD error plays no part)."""
        return min(self.scores, key=lambda k: self.scores[k][0].mean)


def sweep_decay(settings: Settings, setup: Setup, *, device: torch.device | str = "cpu") -> DecaySweep:
    model, sparse = setup.model, setup.sparse
    validation = setup.tasks_of(sparse, settings.validation_tasks, settings.validation_seed)
    validation_ood = setup.tasks_of(setup.families["sparse"][1], settings.validation_tasks,
                                    settings.validation_ood_seed)
    eves, scores, rho = {}, {}, {}
    for kappa in settings.decays:
        eves[kappa] = train_eve(model, sparse, setup.init, settings.comparison, decay=kappa,
                                seeds=settings.seeds(settings.eve_seed), device=device)
        scores[kappa] = tuple(summarise_seeds(_per_seed_errors(model, eves[kappa], batch),
                                              diverged_above=settings.diverged_above)
                              for batch in (validation, validation_ood))
        rho[kappa] = float(np.mean([rank_correlation(rates.cpu().numpy(), sparse.scale.cpu().numpy())
                                    for rates in eves[kappa].rates.base_rates]))
    return DecaySweep(eves, scores, rho, validation)


@dataclass(frozen=True, eq=False)
class FamilyComparison:
    """Every inner loop on one family's test tasks (in distribution and OOD), every training seed.

    ``curve[loop][k]``: query MSE ``[S, T]`` (seed × test task) after ``steps[k]`` steps;
    ``loops[j]``/``starts[j]``: seed j's inner loops and where each starts."""

    eve: ScaleModel  # seeded
    own: ScaleModel  # the mean-only learner, seeded
    meta_sgd: MetaSGDResult  # seeded
    adam: LRChoice  # Adam's step from Eve's μ
    adam_own: LRChoice  # … from the own μ
    loops: list[dict]
    starts: list[dict]
    test: object
    test_ood: object
    curve: dict[str, list[np.ndarray]]
    curve_ood: dict[str, list[np.ndarray]]

    @property
    def adam_lr(self) -> float:
        return self.adam.best

    @property
    def n_seeds(self) -> int:
        return len(self.loops)


@dataclass(frozen=True, eq=False)
class Comparison:
    by_family: dict[str, FamilyComparison]
    steps: tuple[int, ...]
    meta_sgd_steps: int  # the inner steps Meta-SGD was meta-trained for (its native budget)

    def errors(self, family: str, loop: str, steps: int, ood: bool = False) -> np.ndarray:
        """Query MSE ``[S, T]`` of ``loop`` after ``steps`` steps on ``family``'s test tasks."""
        r = self.by_family[family]
        return (r.curve_ood if ood else r.curve)[loop][self.steps.index(steps)]

    def verdict(self, family: str, a: str, b: str, steps: int, ood: bool = False, *,
                diverged_above: float = 1e6) -> Verdict:
        """``a`` against ``b`` after ``steps`` steps, paired over the training seeds and the shared test tasks."""
        return compare_seeds(self.errors(family, a, steps, ood), self.errors(family, b, steps, ood), paired=True,
                             diverged_above=diverged_above)


def compare_inner_loops(settings: Settings, setup: Setup, sweep: DecaySweep, *,
                        device: torch.device | str = "cpu") -> Comparison:
    """Per family and training seed: Eve at the chosen κ (the sweep's on sparse), the mean-only learner,
    Meta-SGD; Adam's step tuned on validation tasks from each learned mean; every inner loop adapted to
    the same test tasks for each budget in ``steps``."""
    model, kappa, s = setup.model, sweep.chosen, settings.comparison
    if s.inner_steps not in settings.steps:
        raise ValueError(f"steps: expected Meta-SGD's trained budget {s.inner_steps} among {settings.steps}")
    out = {}
    for f, (family, ood) in setup.families.items():
        eve = sweep.eves[kappa] if f == "sparse" else train_eve(model, family, setup.init, s, decay=kappa,
                                                                 seeds=settings.seeds(settings.eve_seed), device=device)
        own = train_mean_only(model, family, setup.init, s, seeds=settings.seeds(settings.mean_only_seed),
                              device=device)
        meta_sgd = train_meta_sgd(model, family, inner_steps=s.inner_steps, init_rate=s.inner_lr, meta_lr=s.meta_lr,
                                  iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.k_shot, k_query=s.k_query,
                                  init=setup.init, seeds=settings.seeds(settings.meta_sgd_seed), device=device,
                                  progress=False)
        val = sweep.validation if f == "sparse" else setup.tasks_of(family, settings.validation_tasks,
                                                                    settings.family_validation_seed)
        grid = list(settings.adam_grid)
        adam = tune_adam_lr(model, eve.mean, val, steps=settings.adapt_steps, grid=grid)
        adam_own = tune_adam_lr(model, own.mean, val, steps=settings.adapt_steps, grid=grid)
        test = setup.tasks_of(family, settings.test_tasks, settings.test_seed)
        test_ood = setup.tasks_of(ood, settings.test_tasks, settings.test_ood_seed)
        per_seed = [(eve.seed(j), own.seed(j), meta_sgd.seed(j)) for j in range(settings.n_seeds)]
        loops = [inner_loops(model, e, adam_lr=adam.best, own=o, own_adam_lr=adam_own.best, meta_sgd=m)
                 for e, o, m in per_seed]
        starts = [loop_starts(e, o, m) for e, o, m in per_seed]
        curves = []
        for batch in (test, test_ood):
            by_seed = [error_vs_steps(model, lj, batch, list(settings.steps)) for lj in loops]
            curves.append({name: [np.stack([seed_errors[name][k] for seed_errors in by_seed])
                                  for k in range(len(settings.steps))] for name in INNER_LOOPS})
        out[f] = FamilyComparison(eve, own, meta_sgd, adam, adam_own, loops, starts, test, test_ood, *curves)
    return Comparison(out, tuple(settings.steps), s.inner_steps)


@dataclass(frozen=True, eq=False)
class RateRecovery:
    """Per family and training seed: Eve's base rates λ against the true scale s*, ρ(λ, s*) with its
    permutation p, and ρ of Meta-SGD's rates."""

    base_rates: dict[str, np.ndarray]  # [S, P]
    true_scale: dict[str, np.ndarray]  # [P]
    eve: dict[str, list[tuple[float, float]]]  # family -> per seed (ρ, p)
    meta_sgd: dict[str, list[float]]  # family -> per seed ρ(Meta-SGD's rates, s*)


def rate_recovery(settings: Settings, setup: Setup, comparison: Comparison) -> RateRecovery:
    lam, scale, eve, msgd = {}, {}, {}, {}
    for f, (family, _) in setup.families.items():
        r = comparison.by_family[f]
        lam[f] = r.eve.rates.base_rates.cpu().numpy()
        scale[f] = family.scale.cpu().numpy()
        eve[f] = [(rank_correlation(row, scale[f]),
                   permutation_p_value(row, scale[f], n_permutations=settings.permutations,
                                       seed=settings.permutation_seed)) for row in lam[f]]
        msgd[f] = [rank_correlation(row, scale[f]) for row in r.meta_sgd.rates.cpu().numpy()]
    return RateRecovery(lam, scale, eve, msgd)


@dataclass(frozen=True, eq=False)
class Movements:
    """On the sparse family: where each inner loop moves from its own start, per training seed
    (``moves[(loop, "in distribution" | "OOD")][j]``), and Eve's convergence metric mean|w − μ|/σ
    per seed and task."""

    moves: dict[tuple[str, str], list[Movement]]
    convergence: dict[str, np.ndarray]  # "in distribution" | "OOD" -> [S, T]
    steps: int

    def mean(self, loop: str, label: str) -> Movement:
        """The movement of ``loop`` averaged over the seeds (focus: the mean of the seeds' foci is
        :meth:`focus`)."""
        ms = self.moves[(loop, label)]
        return Movement(*(float(np.mean([getattr(m, k) for m in ms]))
                          for k in ("trained_varying", "test_varying", "fixed")))

    def focus(self, loop: str, label: str) -> np.ndarray:
        return np.array([m.focus for m in self.moves[(loop, label)]])


def sparse_movement(settings: Settings, setup: Setup, comparison: Comparison) -> Movements:
    r = comparison.by_family["sparse"]
    sparse, ood = setup.families["sparse"]
    moves: dict[tuple[str, str], list[Movement]] = {}
    for loops, starts in zip(r.loops, r.starts):
        for name, run_loop in loops.items():
            for label, batch, test_varying in (("in distribution", r.test, sparse.varying),
                                               ("OOD", r.test_ood, ood.varying)):
                res = run_loop(batch.x_support, batch.y_support, settings.adapt_steps)
                moves.setdefault((name, label), []).append(
                    movement(res.params.detach(), starts[name], sparse.varying, test_varying))
    conv = {label: np.stack([r.eve.seed(j).rates.convergence(
        loops[EVE](b.x_support, b.y_support, settings.adapt_steps).params.detach()).cpu().numpy()
        for j, loops in enumerate(r.loops)]) for label, b in (("in distribution", r.test), ("OOD", r.test_ood))}
    return Movements(moves, conv, settings.adapt_steps)


# ---------------------------------------------------------------------------------------- run

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    setup: Setup
    sweep: DecaySweep
    comparison: Comparison
    recovery: RateRecovery
    movement: Movements


def run(settings: Settings, *, device: torch.device | str = "cpu") -> Results:
    """Every section of the chapter, in the notebook's order."""
    setup = task_families(settings, device=device)
    sweep = sweep_decay(settings, setup, device=device)
    comparison = compare_inner_loops(settings, setup, sweep, device=device)
    recovery = rate_recovery(settings, setup, comparison)
    moves = sparse_movement(settings, setup, comparison)
    return Results(settings, setup, sweep, comparison, recovery, moves)


# ---------------------------------------------------------------------------------------- tables, text

def decay_table(sweep: DecaySweep) -> str:
    return markdown_table(["κ", "validation MSE (in distribution)", "validation MSE (OOD)", "ρ(λ, s*), mean over seeds"],
                          [[f"{k:g}", interval_text(a, tasks=True), interval_text(b, tasks=True), f"{sweep.rate_correlation[k]:.2f}"]
                           for k, (a, b) in sweep.scores.items()])


def decay_text(sweep: DecaySweep) -> str:
    return f"chosen decay: kappa = {sweep.chosen:g} (backprop2's hard-coded value: 0.2)"


def adam_text(comparison: Comparison) -> str:
    lines = []
    for f, r in comparison.by_family.items():
        for label, choice in (("Eve's mean", r.adam), ("own mean", r.adam_own)):
            lines.append(f"{f}, from {label}: Adam inner-loop step chosen on validation tasks: {choice.best:g} "
                         f"(validation MSE by step: {', '.join(f'{k:g}: {v:.3g}' for k, v in zip(choice.grid, choice.scores))})")
    return "\n".join(lines)


def inner_loops_table(comparison: Comparison, steps: int, *, diverged_above: float = 1e6) -> str:
    """Every inner loop after ``steps`` steps, every family, both test sets: query MSE, mean over training
    seeds ± the across-seed interval (test-task interval in brackets)."""
    fams = list(comparison.by_family)
    rows = [[name] + [interval_text(summarise_seeds(comparison.errors(f, name, steps, ood), diverged_above=diverged_above))
                      for f in fams for ood in (False, True)] for name in INNER_LOOPS]
    return markdown_table(["inner loop"] + [f"{f} {w}" for f in fams for w in ("in dist.", "OOD")], rows)


def recovery_table(recovery: RateRecovery) -> str:
    def rho_range(values) -> str:
        return f"{np.mean(values):.2f} ({min(values):.2f} to {max(values):.2f})"

    return markdown_table(["family", "Eve: ρ(λ, s*), mean (seed range)", "Eve: largest p over seeds",
                           "Meta-SGD: ρ(rates, s*), mean (seed range)"],
                          [[f, rho_range([r for r, _ in per_seed]), f"{max(p for _, p in per_seed):.2g}",
                            rho_range(recovery.meta_sgd[f])] for f, per_seed in recovery.eve.items()])


def movement_table(moves: Movements) -> str:
    rows = []
    for (name, label) in moves.moves:
        mv, focus = moves.mean(name, label), moves.focus(name, label)
        rows.append([name, label, f"{mv.trained_varying:.3f}", f"{mv.test_varying:.3f}" if label == "OOD" else "(same)",
                     f"{mv.fixed:.3f}", f"{focus.mean():.1f} ({focus.min():.1f} to {focus.max():.1f})"])
    return markdown_table(["inner loop", "tasks", "training-varying", "test-varying", "fixed",
                           "focus, mean (seed range)"], rows)


def convergence_text(moves: Movements) -> str:
    return (f"Eve's convergence metric mean|w - mu|/sigma after {moves.steps} steps, mean over seeds and tasks: " +
            ", ".join(f"{k}: {v.mean():.2f}" for k, v in moves.convergence.items()))


VERDICT_PAIRS = ((SGD_LS, False), (ADAM, False), (SGD_OWN, False), (ADAM_OWN, False), (META_SGD, False),
                 (SGD_LS, True), (ADAM, True), (SGD_OWN, True), (META_SGD, True))
"""Eve against each of these (loop, OOD?) in :func:`verdicts_text`."""


def verdicts_text(comparison: Comparison, *, diverged_above: float = 1e6) -> str:
    """Eve against every other inner loop, at the largest budget and at Meta-SGD's trained budget:
    lower / higher / not distinguishable, paired over training seeds and test tasks."""
    lines = []
    for f in comparison.by_family:
        for steps in (comparison.steps[-1], comparison.meta_sgd_steps):
            for other, ood in VERDICT_PAIRS:
                v = comparison.verdict(f, EVE, other, steps, ood, diverged_above=diverged_above)
                lines.append(f"{f}, {'OOD' if ood else 'in distribution'}, {steps} steps: Eve vs {other}: {v}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- figures

def steps_figure(comparison: Comparison, family: str = "sparse", *, diverged_above: float = 1e6):
    """Query MSE against the step budget, in distribution and OOD, every inner loop: mean over training
    seeds with the across-seed 95% band; the loops from their own mean dashed, in their base colour."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    r = comparison.by_family[family]
    for ax, errors, title in zip(axes, (r.curve, r.curve_ood),
                                 (f"{family}: in distribution", f"{family}: out of distribution")):
        curves = {name: [summarise_seeds(e, diverged_above=diverged_above) for e in errs]
                  for name, errs in errors.items()}
        plot_summaries(ax, list(comparison.steps), {n: c for n, c in curves.items() if n not in (SGD_OWN, ADAM_OWN)},
                       xlabel="inner steps", ylabel="query MSE", title=title, logx=True)
        for name, base in ((SGD_OWN, SGD_LS), (ADAM_OWN, ADAM)):
            mean = np.array([c.mean for c in curves[name]])
            ax.plot(comparison.steps, mean, "--", marker="o", ms=3, color=registry.color(base), label=name)
        ax.legend(fontsize=7)
    return fig


def rates_figure(recovery: RateRecovery, *, jitter_seed: int = 0):
    """Eve's base rate per parameter against the true scale, first training seed (the sparse family
    jittered horizontally)."""
    fig, axes = plt.subplots(1, len(recovery.eve), figsize=(12, 3.6))
    for ax, f in zip(axes, recovery.eve):
        s, lam = recovery.true_scale[f], recovery.base_rates[f][0]
        rho, p = recovery.eve[f][0]
        jitter = s + 0.01 * np.random.default_rng(jitter_seed).standard_normal(s.shape) * (f == "sparse")
        ax.scatter(jitter, lam, s=10, color=registry.color("Eve"))
        ax.set(yscale="log", xlabel="true scale s*", ylabel="Eve's base rate λ",
               title=f"{f}, seed 1: ρ = {rho:.2f} (p = {p:.2g})")
    return fig


# ---------------------------------------------------------------------------------------- claims

def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return
    them; every comparison at seed level (paired over training seeds and test tasks)."""
    s, comparison, mv = results.settings, results.comparison, results.movement
    claims = Claims()
    print(f"training seeds: {s.n_seeds} (of Eve, the mean-only learner and Meta-SGD, every family)")
    print(f"parameters: {results.setup.model.n_params}; families: {', '.join(results.setup.families)}; "
          f"inner loops compared: {len(INNER_LOOPS)}")
    claims.check("On every seed, Eve's base rates rank the truly varying parameters of the sparse family above the "
                 "others better than chance", all(p < s.recovery_p and rho > 0 for rho, p in results.recovery.eve["sparse"]))
    claims.check("On every seed, on OOD tasks Eve concentrates its movement on the training-varying parameters more "
                 "than SGD does", bool((mv.focus(EVE, "OOD") > 2 * mv.focus(SGD_LS, "OOD")).all()))
    claims.check("On every seed, on OOD tasks Eve moves the test-varying parameters less than SGD does",
                 all(e.test_varying < g.test_varying for e, g in zip(mv.moves[(EVE, "OOD")], mv.moves[(SGD_LS, "OOD")])))
    claims.check("The Adam steps chosen on validation tasks are inside the grid, not at its edge",
                 not any(c.at_edge for r in comparison.by_family.values() for c in (r.adam, r.adam_own)))
    big = comparison.steps[-1]

    def verdict(family: str, other: str, ood: bool = False) -> str:
        return comparison.verdict(family, EVE, other, big, ood, diverged_above=s.diverged_above).verdict

    claims.check(f"Sparse, in distribution, {big} steps: Eve ends lower than tuned Adam from Eve's mean",
                 verdict("sparse", ADAM) == "lower")
    claims.check(f"Sparse, OOD, {big} steps: Eve ends higher than gradient descent with the line search, from Eve's "
                 "mean and from its own", verdict("sparse", SGD_LS, True) == verdict("sparse", SGD_OWN, True) == "higher")
    claims.check(f"Sparse, in distribution, {big} steps: Eve does not end lower than gradient descent from its own "
                 "mean, nor than Meta-SGD given the same number of steps",
                 verdict("sparse", SGD_OWN) != "lower" and verdict("sparse", META_SGD) != "lower")
    claims.check(f"Narrow and wide, in distribution, {big} steps: Eve does not end lower than gradient descent with "
                 "the line search, from Eve's mean or from its own",
                 all(verdict(f, other) != "lower" for f in ("narrow", "wide") for other in (SGD_LS, SGD_OWN)))
    claims.check("No inner loop diverged on any test task, at any budget",
                 all(summarise_seeds(e, diverged_above=s.diverged_above).n_diverged == 0
                     for r in comparison.by_family.values()
                     for curve in (r.curve, r.curve_ood) for errs in curve.values() for e in errs))
    return claims


_KEYS = {EVE: "eve", SGD_LS: "sgd", ADAM: "adam", SGD_OWN: "sgd_own", ADAM_OWN: "adam_own", META_SGD: "meta_sgd"}


def findings(results: Results) -> dict[str, str]:
    """The numbers and verdicts the chapter's findings quote, as text (glued into the prose by the notebook)."""
    s, sweep, comparison, mv, rec = (results.settings, results.sweep, results.comparison, results.movement,
                                     results.recovery)
    big, small = comparison.steps[-1], comparison.meta_sgd_steps

    def text(errors: np.ndarray) -> str:
        summary = summarise_seeds(errors, diverged_above=s.diverged_above)
        return f"{summary.mean:.2g} ± {summary.ci95:.1g}"

    out = {"seeds": str(s.n_seeds), "big_steps": str(big), "small_steps": str(small), "kappa": f"{sweep.chosen:g}"}
    for k, (ind, ood) in sweep.scores.items():
        key = f"{k:g}".replace(".", "_")
        out[f"kappa_{key}_in"] = f"{ind.mean:.2g} ± {ind.ci95:.1g}"
        out[f"kappa_{key}_ood"] = f"{ood.mean:.2g} ± {ood.ci95:.1g}"
    for f in comparison.by_family:
        for name, key in _KEYS.items():
            for steps in (big, small):
                for ood, where in ((False, "in"), (True, "ood")):
                    out[f"{f}_{key}_{steps}_{where}"] = text(comparison.errors(f, name, steps, ood))
        for other, ood in VERDICT_PAIRS:
            for steps in (big, small):
                v = comparison.verdict(f, EVE, other, steps, ood, diverged_above=s.diverged_above)
                out[f"{f}_eve_vs_{_KEYS[other]}_{steps}_{'ood' if ood else 'in'}"] = v.phrase
        rhos = [rho for rho, _ in rec.eve[f]]
        out[f"{f}_rho"] = f"{min(rhos):.2f} to {max(rhos):.2f}"
        out[f"{f}_p_max"] = f"{max(p for _, p in rec.eve[f]):.2g}"
        out[f"{f}_meta_sgd_rho"] = f"{min(rec.meta_sgd[f]):.2f} to {max(rec.meta_sgd[f]):.2f}"
        r = comparison.by_family[f]
        out[f"{f}_adam_lr"], out[f"{f}_adam_own_lr"] = f"{r.adam.best:g}", f"{r.adam_own.best:g}"
    for name, key in ((EVE, "eve"), (SGD_LS, "sgd")):
        for label, where in (("in distribution", "in"), ("OOD", "ood")):
            m, focus = mv.mean(name, label), mv.focus(name, label)
            out[f"move_{key}_{where}_trained"] = f"{m.trained_varying:.2f}"
            out[f"move_{key}_{where}_test"] = f"{m.test_varying:.2f}"
            out[f"move_{key}_{where}_focus"] = f"{focus.mean():.1f}"
    out["convergence_in"] = f"{mv.convergence['in distribution'].mean():.2f}"
    out["convergence_ood"] = f"{mv.convergence['OOD'].mean():.2f}"
    return out
