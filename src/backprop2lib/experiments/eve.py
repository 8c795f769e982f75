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

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..meta.backprop2 import ScaleModel, train_backprop2
from ..meta.fewshot import query_errors
from ..models.mlp import MLP
from ..optim.tune import LRChoice, check_grid, choose
from ..plotting import plot_summaries
from ..profiles import Profile, resolve_profile
from ..scale.adapt import InnerLoop, adam_adapt, adapt
from ..stats import Summary, compare, permutation_p_value, rank_correlation, summarise
from ..tables import markdown_table
from ..tasks import TeacherTasks
from .scale_comparison import ComparisonSettings, train_methods


def train_eve(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *, decay: float = 0.2,
              seed: int = 0, device="cpu") -> ScaleModel:
    """The backprop2 learner with Eve's rates (no regulariser), decay ``κ = decay``."""
    return train_backprop2(model, tasks, rule="eve", decay=decay, outer_iterations=settings.outer_iterations,
                           tasks_per_iteration=settings.tasks_per_iteration,
                           points_per_task=settings.k_shot + settings.k_query, loop=settings.loop, init=init,
                           generator=torch.Generator().manual_seed(seed), device=device)


def inner_loops(model: MLP, eve: ScaleModel, *, adam_lr: float):
    """Three ways to adapt from Eve's learned mean μ, as functions ``(x, y, steps) -> AdaptResult``."""
    return {
        "Eve": lambda x, y, n: eve.adapt(model, x, y, loop=eve.loop.with_(max_steps=n)),
        "SGD + line search": lambda x, y, n: adapt(model, eve.mean, x, y, loop=eve.loop.with_(max_steps=n)),
        "Adam (tuned)": lambda x, y, n: adam_adapt(model, eve.mean, x, y, steps=n, lr=adam_lr),
    }


def tune_adam_lr(model: MLP, start: torch.Tensor, validation, *, steps: int, grid) -> LRChoice:
    """The inner-loop Adam step with the lowest mean query error on ``validation`` tasks (never test tasks).

    The criterion is the reported one (query error after ``steps`` steps); a rate under which any
    task's error is not finite scores inf. The grid rule and ``at_edge`` are the library's one tuner's.
    """
    scores = []
    for lr in check_grid(grid):
        res = adam_adapt(model, start, validation.x_support, validation.y_support, steps=steps, lr=lr)
        e = query_errors(model, res.params, validation.x_query, validation.y_query)
        scores.append(float(np.mean(np.where(np.isfinite(e), e, np.inf))))
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
class Settings:
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
    recovery_p: float  # the p-value Eve's rate recovery on the sparse family must beat
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
    eve_seed: int = 3
    meta_sgd_seed: int = 7
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
        )

    @property
    def comparison(self) -> ComparisonSettings:
        """The learners' settings in the form the training functions take."""
        return ComparisonSettings(iterations=self.iterations, outer_iterations=self.outer_iterations,
                                  tasks_per_iteration=self.tasks_per_iteration, adapt_steps=self.adapt_steps)

    def model(self) -> MLP:
        return MLP(self.layers, activation=self.activation)


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


@dataclass(frozen=True, eq=False)
class DecaySweep:
    """Eve meta-trained on the sparse family at each decay κ, scored on validation tasks."""

    eves: dict[float, ScaleModel]
    scores: dict[float, tuple[Summary, Summary]]  # κ -> (in distribution, OOD) query MSE after adapt_steps
    rate_correlation: dict[float, float]  # κ -> ρ(λ, s*)
    validation: object  # the sparse validation tasks (reused to tune Adam on the sparse family)

    @property
    def chosen(self) -> float:
        """The κ with the lowest in-distribution validation error (OOD error plays no part)."""
        return min(self.scores, key=lambda k: self.scores[k][0].mean)


def sweep_decay(settings: Settings, setup: Setup, *, device: torch.device | str = "cpu") -> DecaySweep:
    model, sparse = setup.model, setup.sparse
    validation = setup.tasks_of(sparse, settings.validation_tasks, settings.validation_seed)
    validation_ood = setup.tasks_of(setup.families["sparse"][1], settings.validation_tasks,
                                    settings.validation_ood_seed)
    eves, scores, rho = {}, {}, {}
    for kappa in settings.decays:
        eves[kappa] = train_eve(model, sparse, setup.init, settings.comparison, decay=kappa, seed=settings.eve_seed,
                                device=device)
        pair = []
        for batch in (validation, validation_ood):
            res = eves[kappa].adapt(model, batch.x_support, batch.y_support)
            pair.append(summarise(query_errors(model, res.params, batch.x_query, batch.y_query),
                                  diverged_above=settings.diverged_above))
        scores[kappa] = tuple(pair)
        rho[kappa] = rank_correlation(eves[kappa].rates.base_rates.cpu().numpy(), sparse.scale.cpu().numpy())
    return DecaySweep(eves, scores, rho, validation)


@dataclass(frozen=True, eq=False)
class FamilyComparison:
    """Every inner loop on one family's test tasks (in distribution and OOD)."""

    eve: ScaleModel
    adam: LRChoice
    loops: dict  # name -> (x, y, steps) -> AdaptResult
    test: object
    test_ood: object
    curve: dict[str, list[np.ndarray]]  # inner loop -> per step budget, query MSE per task
    curve_ood: dict[str, list[np.ndarray]]
    meta_sgd: tuple[np.ndarray, np.ndarray]  # Meta-SGD's query MSE per task (in distribution, OOD)
    meta_sgd_rates: torch.Tensor

    @property
    def adam_lr(self) -> float:
        return self.adam.best


@dataclass(frozen=True, eq=False)
class Comparison:
    by_family: dict[str, FamilyComparison]
    steps: tuple[int, ...]


def compare_inner_loops(settings: Settings, setup: Setup, sweep: DecaySweep, *,
                        device: torch.device | str = "cpu") -> Comparison:
    """Per family: Eve at the chosen κ (the sweep's on sparse), Adam tuned on validation tasks, Meta-SGD;
    every inner loop adapted to the same test tasks for each budget in ``steps``."""
    model, kappa, s = setup.model, sweep.chosen, settings.comparison
    out = {}
    for f, (family, ood) in setup.families.items():
        eve = sweep.eves[kappa] if f == "sparse" else train_eve(model, family, setup.init, s, decay=kappa,
                                                                 seed=settings.eve_seed, device=device)
        val = sweep.validation if f == "sparse" else setup.tasks_of(family, settings.validation_tasks,
                                                                    settings.family_validation_seed)
        adam = tune_adam_lr(model, eve.mean, val, steps=settings.adapt_steps, grid=list(settings.adam_grid))
        meta_sgd = train_methods(model, family, setup.init, s, methods=("Meta-SGD",), seed=settings.meta_sgd_seed,
                                 device=device)["Meta-SGD"]
        test = setup.tasks_of(family, settings.test_tasks, settings.test_seed)
        test_ood = setup.tasks_of(ood, settings.test_tasks, settings.test_ood_seed)
        loops = inner_loops(model, eve, adam_lr=adam.best)
        out[f] = FamilyComparison(
            eve, adam, loops, test, test_ood, error_vs_steps(model, loops, test, list(settings.steps)),
            error_vs_steps(model, loops, test_ood, list(settings.steps)),
            tuple(query_errors(model, meta_sgd.adapter(b.x_support, b.y_support).detach(), b.x_query, b.y_query)
                  for b in (test, test_ood)), meta_sgd.scale)
    return Comparison(out, tuple(settings.steps))


@dataclass(frozen=True, eq=False)
class RateRecovery:
    """Per family: Eve's base rates λ and the true scale s*, ρ(λ, s*) with its permutation p, Meta-SGD's ρ."""

    base_rates: dict[str, np.ndarray]
    true_scale: dict[str, np.ndarray]
    eve: dict[str, tuple[float, float]]  # family -> (ρ, p)
    meta_sgd: dict[str, float]  # family -> ρ(Meta-SGD's rates, s*)


def rate_recovery(settings: Settings, setup: Setup, comparison: Comparison) -> RateRecovery:
    lam, scale, eve, msgd = {}, {}, {}, {}
    for f, (family, _) in setup.families.items():
        r = comparison.by_family[f]
        lam[f] = r.eve.rates.base_rates.cpu().numpy()
        scale[f] = family.scale.cpu().numpy()
        eve[f] = (rank_correlation(lam[f], scale[f]),
                  permutation_p_value(lam[f], scale[f], n_permutations=settings.permutations,
                                      seed=settings.permutation_seed))
        msgd[f] = rank_correlation(r.meta_sgd_rates.cpu().numpy(), scale[f])
    return RateRecovery(lam, scale, eve, msgd)


@dataclass(frozen=True, eq=False)
class Movements:
    """On the sparse family: where each inner loop moves (``moves[(loop, "in distribution" | "OOD")]``) and Eve's
    convergence metric mean|w − μ|/σ per task."""

    moves: dict[tuple[str, str], Movement]
    convergence: dict[str, torch.Tensor]  # "in distribution" | "OOD" -> [T]
    steps: int


def sparse_movement(settings: Settings, setup: Setup, comparison: Comparison) -> Movements:
    r = comparison.by_family["sparse"]
    sparse, ood = setup.families["sparse"]
    moves = {}
    for name, run_loop in r.loops.items():
        for label, batch, test_varying in (("in distribution", r.test, sparse.varying),
                                           ("OOD", r.test_ood, ood.varying)):
            res = run_loop(batch.x_support, batch.y_support, settings.adapt_steps)
            moves[(name, label)] = movement(res.params.detach(), r.eve.mean, sparse.varying, test_varying)
    eve_loop = r.loops["Eve"]
    conv = {label: r.eve.rates.convergence(eve_loop(b.x_support, b.y_support, settings.adapt_steps).params.detach())
            for label, b in (("in distribution", r.test), ("OOD", r.test_ood))}
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

INNER_LOOPS = ("Eve", "SGD + line search", "Adam (tuned)", "Meta-SGD")


def decay_table(sweep: DecaySweep) -> str:
    return markdown_table(["κ", "validation MSE (in distribution)", "validation MSE (OOD)", "ρ(λ, s*)"],
                          [[f"{k:g}", str(a), str(b), f"{sweep.rate_correlation[k]:.2f}"]
                           for k, (a, b) in sweep.scores.items()])


def decay_text(sweep: DecaySweep) -> str:
    return f"chosen decay: kappa = {sweep.chosen:g} (backprop2's hard-coded value: 0.2)"


def adam_text(comparison: Comparison) -> str:
    return "\n".join(f"{f}: Adam inner-loop step chosen on validation tasks: {r.adam_lr:g} "
                     f"(validation MSE by step: {', '.join(f'{k:g}: {v:.3g}' for k, v in zip(r.adam.grid, r.adam.scores))})"
                     for f, r in comparison.by_family.items())


def _final(r: FamilyComparison, name: str, which: int, last: int):
    if name == "Meta-SGD":
        return r.meta_sgd[which]
    return (r.curve if which == 0 else r.curve_ood)[name][last]


def inner_loops_table(comparison: Comparison, *, diverged_above: float = 1e6) -> str:
    """Every inner loop after the largest budget (Meta-SGD after its trained steps), every family, both test sets."""
    last = len(comparison.steps) - 1
    fams = list(comparison.by_family)
    rows = [[name] + [str(summarise(_final(comparison.by_family[f], name, which, last), diverged_above=diverged_above))
                      for f in fams for which in (0, 1)] for name in INNER_LOOPS]
    return markdown_table(["inner loop"] + [f"{f} {w}" for f in fams for w in ("in dist.", "OOD")], rows)


def recovery_table(recovery: RateRecovery) -> str:
    return markdown_table(["family", "Eve: ρ(λ, s*) (p)", "Meta-SGD: ρ(rates, s*)"],
                          [[f, f"{rho:.2f} ({p:.2g})", f"{recovery.meta_sgd[f]:.2f}"]
                           for f, (rho, p) in recovery.eve.items()])


def movement_table(moves: Movements) -> str:
    return markdown_table(["inner loop", "tasks", "training-varying", "test-varying", "fixed", "focus"],
                          [[name, label, f"{mv.trained_varying:.3f}", f"{mv.test_varying:.3f}" if label == "OOD"
                            else "(same)", f"{mv.fixed:.3f}", f"{mv.focus:.1f}"]
                           for (name, label), mv in moves.moves.items()])


def convergence_text(moves: Movements) -> str:
    return (f"Eve's convergence metric mean|w - mu|/sigma after {moves.steps} steps: " +
            ", ".join(f"{k}: {v.mean().item():.2f}" for k, v in moves.convergence.items()))


def verdicts_text(comparison: Comparison, *, diverged_above: float = 1e6) -> str:
    """Eve against each other inner loop: do the two 95% intervals of the mean query error overlap?"""
    last, five = len(comparison.steps) - 1, comparison.steps.index(5)

    def verdict(a, b):
        return compare(a, b, paired=False, test="overlap", diverged_above=diverged_above).verdict

    lines = []
    for f, r in comparison.by_family.items():
        for other in ("SGD + line search", "Adam (tuned)"):
            for curve, label in ((r.curve, "in distribution"), (r.curve_ood, "OOD")):
                lines.append(f"{f}, {label}, {comparison.steps[last]} steps: Eve vs {other}: "
                             f"{verdict(curve['Eve'][last], curve[other][last])}")
        lines.append(f"{f}, in distribution: Eve ({comparison.steps[last]} steps) vs Meta-SGD (5 steps): "
                     f"{verdict(r.curve['Eve'][last], r.meta_sgd[0])}")
        lines.append(f"{f}, in distribution, 5 steps: Eve vs SGD + line search: "
                     f"{verdict(r.curve['Eve'][five], r.curve['SGD + line search'][five])}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- figures

def steps_figure(comparison: Comparison, family: str = "sparse", *, diverged_above: float = 1e6):
    """Query MSE against the step budget, in distribution and OOD, every inner loop from Eve's mean."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    r = comparison.by_family[family]
    for ax, errors, title in zip(axes, (r.curve, r.curve_ood),
                                 (f"{family}: in distribution", f"{family}: out of distribution")):
        curves = {name: [summarise(e, diverged_above=diverged_above) for e in errs] for name, errs in errors.items()}
        plot_summaries(ax, list(comparison.steps), curves, xlabel="inner steps", ylabel="query MSE", title=title,
                       logx=True)
    return fig


def rates_figure(recovery: RateRecovery, *, jitter_seed: int = 0):
    """Eve's base rate per parameter against the true scale (the sparse family jittered horizontally)."""
    fig, axes = plt.subplots(1, len(recovery.eve), figsize=(12, 3.6))
    for ax, f in zip(axes, recovery.eve):
        s, lam = recovery.true_scale[f], recovery.base_rates[f]
        rho, p = recovery.eve[f]
        jitter = s + 0.01 * np.random.default_rng(jitter_seed).standard_normal(s.shape) * (f == "sparse")
        ax.scatter(jitter, lam, s=10, color=registry.color("Eve"))
        ax.set(yscale="log", xlabel="true scale s*", ylabel="Eve's base rate λ",
               title=f"{f}: ρ = {rho:.2f} (p = {p:.2g})")
    return fig


# ---------------------------------------------------------------------------------------- claims

def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return them."""
    s, comparison, moves = results.settings, results.comparison, results.movement.moves
    rho, p = results.recovery.eve["sparse"]
    claims = Claims()
    print(f"parameters: {results.setup.model.n_params}; families: {', '.join(results.setup.families)}; "
          f"inner loops compared: {len(INNER_LOOPS)}")
    claims.check("Eve's base rates rank the truly varying parameters of the sparse family above the others better than chance",
                 p < s.recovery_p and rho > 0)
    claims.check("On OOD tasks Eve concentrates its movement on the training-varying parameters more than SGD does",
                 moves[("Eve", "OOD")].focus > 2 * moves[("SGD + line search", "OOD")].focus)
    claims.check("On OOD tasks Eve moves the test-varying parameters less than SGD does",
                 moves[("Eve", "OOD")].test_varying < moves[("SGD + line search", "OOD")].test_varying)
    claims.check("The Adam step chosen on validation tasks is inside the grid, not at its edge",
                 not any(r.adam.at_edge for r in comparison.by_family.values()))
    claims.check("No inner loop diverged on any test task",
                 all(summarise(e, diverged_above=s.diverged_above).n_diverged == 0
                     for r in comparison.by_family.values()
                     for curve in (r.curve, r.curve_ood) for errs in curve.values() for e in errs))
    return claims
