"""Chapter 7's experiments: elastic weight consolidation against backprop2's learned-scale prior.

Five ways to learn tasks one after another (:data:`METHODS`): plain SGD, a uniform L2 pull towards the
old solutions, EWC, online EWC and backprop2's quadratic regulariser with σ estimated the backprop2 way.
They differ only in the per-parameter precision of one quadratic penalty (:mod:`backprop2lib.continual`).

The sections, one function each: :func:`tune_strengths` (λ per method on validation accuracy, one tuning
seed), :func:`run_benchmark` (every method at its λ, all training seeds in one batch),
:func:`fisher_overlap_by_depth` (the EWC paper's Fisher-overlap figure) and :func:`compare_precisions`
(EWC's Fisher against backprop2's 1/σ², parameter by parameter). :func:`run` runs them all; the
``*_table`` and ``*_figure`` functions present them; :func:`check_claims` checks the findings and
:func:`findings` gives the numbers the text quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..continual import (RowPlan, SequenceRun, TrainSettings, average_accuracy, backward_transfer,
                         diagonal_fisher, fisher_overlap, forgetting, layer_slices, learning_accuracy,
                         permuted_mnist, split_mnist, train_sequence)
from ..data.mnist import bundled_split
from ..models.mlp import MLP
from ..optim.tune import LRChoice, choose
from ..plotting import plot_summaries
from ..profiles import Profile, resolve_profile
from ..stats import Comparison, compare_seeds, rank_correlation, summarise, interval_text
from ..tables import markdown_table

METHODS = ("sgd", "l2", "ewc", "online_ewc", "quadratic")
"""Registry ids of the compared methods (display names from :mod:`backprop2lib.methods`)."""
PENALISED = METHODS[1:]
BENCHMARKS = ("permuted", "permuted_long", "split")
BENCHMARK_NAMES = {"permuted": "permuted MNIST, three tasks", "permuted_long": "permuted MNIST, long sequence",
                   "split": "split MNIST (domain-incremental)"}


@dataclass(frozen=True)
class Settings:
    """Every size, grid and seed of chapter 7.

    ``paper``: the bundled 5,000 MNIST images (3,000 train / 1,000 validation / 1,000 test per task), a
    784-100-100-10 ReLU network (2-way output for split MNIST), plain SGD (step 0.1, batch 64); 800
    steps per task on the three permuted tasks, 400 on each of 10 permuted tasks and 300 on each of the 5
    split tasks (the 15-minute budget of a 2-core run); λ chosen per method and benchmark from an 8-value grid (1e-4 to 1e3) on one tuning seed; 3 training
    seeds. ``smoke`` (CI) shrinks the steps, the long sequence (4 tasks), the grid and the Fisher sample;
    ``full`` takes 10 seeds and twice the steps. The EWC paper used all 60,000 MNIST images, larger
    networks (up to 1,000 units per layer), dropout and far longer training; we state our scale instead.
    """

    n_seeds: int
    steps: int  # SGD steps per task, three permuted tasks
    long_tasks: int  # tasks of the long permuted sequence
    long_steps: int
    split_steps: int
    overlap_steps: int  # per task, the Fisher-overlap networks
    strengths: tuple[float, ...]  # the λ grid every penalised method is tuned on
    eval_every: int  # steps between points of the three-task accuracy curves
    eval_images: int  # test images per task for those curves
    fisher_images: int
    adapt_steps: int  # the learned scale's adaptations (K = adaptations of them)
    adaptations: int = 8
    layers: tuple[int, ...] = (784, 100, 100, 10)
    overlap_layers: tuple[int, ...] = (784, 100, 100, 100, 100, 10)
    squares: tuple[int, int] = (8, 26)  # the small and the large permuted square of the overlap figure
    batch: int = 64
    learning_rate: float = 0.1
    floor_ratio: float = 1e-6  # σ² floor of the learned scale, as a fraction of the largest (backprop2's, from Eve)
    gamma: float = 1.0  # online EWC's decay
    split_seed: int = 0  # the bundled data's train / validation / test split
    seed: int = 100  # training seeds are seed, seed + 1, ...
    tuning_seed: int = 11  # the one seed λ is tuned on (not a training seed)

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        p = resolve_profile(profile)
        return cls(
            n_seeds=p.select(smoke=3, paper=3, full=10),
            steps=p.select(smoke=120, paper=800, full=2000),
            long_tasks=p.select(smoke=4, paper=10),
            long_steps=p.select(smoke=80, paper=400, full=1000),
            split_steps=p.select(smoke=80, paper=300, full=800),
            overlap_steps=p.select(smoke=120, paper=1000, full=2000),
            strengths=p.select(smoke=(1e-3, 0.1, 10.0), paper=(1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0, 1e3)),
            eval_every=p.select(smoke=50, paper=100),
            eval_images=p.select(smoke=100, paper=500),
            fisher_images=p.select(smoke=150, paper=300),
            adapt_steps=p.select(smoke=20, paper=100),
        )

    @property
    def seed_values(self) -> list[int]:
        return [self.seed + i for i in range(self.n_seeds)]

    def train_settings(self, benchmark: str, *, curves: bool = False) -> TrainSettings:
        steps = {"permuted": self.steps, "permuted_long": self.long_steps, "split": self.split_steps}[benchmark]
        return TrainSettings(steps, self.batch, self.learning_rate, self.eval_every if curves else None,
                             self.eval_images, self.fisher_images, "true", self.adaptations, self.adapt_steps,
                             self.floor_ratio, self.gamma)

    def model(self, benchmark: str) -> MLP:
        out = 2 if benchmark == "split" else 10
        return MLP((*self.layers[:-1], out), activation="relu")


def _sequence(settings: Settings, benchmark: str, seed_values, device):
    split = bundled_split(settings.split_seed)
    if benchmark == "permuted":
        return permuted_mnist(split, 3, seed_values, device=device)
    if benchmark == "permuted_long":
        return permuted_mnist(split, settings.long_tasks, seed_values, device=device)
    if benchmark == "split":
        return split_mnist(split, seed_values, device=device)
    raise ValueError(f"benchmark: expected one of {BENCHMARKS}, got {benchmark!r}")


# ------------------------------------------------------------------------------------------ tuning

@dataclass(frozen=True, eq=False)
class Tuning:
    benchmark: str
    choices: dict  # method id -> LRChoice (scores: 1 − final average validation accuracy)
    run: SequenceRun

    def strength(self, method: str) -> float:
        return 0.0 if method == "sgd" else self.choices[method].best


def tune_strengths(settings: Settings, benchmark: str, *, device="cpu") -> Tuning:
    """λ for every penalised method: the grid value with the best final average *validation* accuracy on
    one tuning seed (never a training seed, never test images); ties go to the weaker penalty."""
    grid = {"sgd": (0.0,), **{m: settings.strengths for m in PENALISED}}
    plan = RowPlan.grid(grid, 1)
    seq = _sequence(settings, benchmark, [settings.tuning_seed], device)
    run = train_sequence(settings.model(benchmark), seq, plan, settings.train_settings(benchmark),
                         [settings.tuning_seed], device=device, parts=("validation",), matrix=False,
                         desc=f"tuning λ, {benchmark}")
    error = (1 - average_accuracy(run.validation)).nan_to_num(nan=float("inf"))  # a diverged row scores inf
    choices = {m: choose(registry.name(m), settings.strengths,
                         [float(error[plan.rows(m, lam)[0]]) for lam in settings.strengths]) for m in PENALISED}
    return Tuning(benchmark, choices, run)


# ------------------------------------------------------------------------------------------ benchmarks

@dataclass(frozen=True, eq=False)
class Benchmark:
    """Every method at its tuned λ, trained from every training seed; metrics ``[method][seed]``."""

    name: str
    tuning: Tuning
    run: SequenceRun

    def per_seed(self, method: str, metric: str) -> np.ndarray:
        """``[S]`` one value per training seed: "acc", "learning", "forgetting", "bwt" or "first" (task 1 at the end)."""
        acc = self.run.test[self.run.plan.rows(method)]
        if metric == "first":
            return acc[:, -1, 0].numpy()
        fn = {"acc": average_accuracy, "learning": learning_accuracy, "forgetting": forgetting,
              "bwt": backward_transfer}[metric]
        return fn(acc).numpy()

    def compare(self, a: str, b: str, metric: str) -> Comparison:
        """``a`` against ``b`` on ``metric``, paired by training seed (Student's t across seeds)."""
        return compare_seeds(self.per_seed(a, metric)[:, None], self.per_seed(b, metric)[:, None], paired=True)


def run_benchmark(settings: Settings, benchmark: str, tuning: Tuning, *, device="cpu") -> Benchmark:
    plan = RowPlan.grid({m: (tuning.strength(m),) for m in METHODS}, settings.n_seeds)
    seq = _sequence(settings, benchmark, settings.seed_values, device)
    run = train_sequence(settings.model(benchmark), seq, plan,
                         settings.train_settings(benchmark, curves=benchmark == "permuted"),
                         settings.seed_values, device=device, parts=("test",), desc=benchmark)
    return Benchmark(benchmark, tuning, run)


# ------------------------------------------------------------------------------------------ Fisher overlap

@dataclass(frozen=True, eq=False)
class Overlap:
    layers: tuple[str, ...]  # "layer 1", ... (weights and biases of a layer together)
    overlap: dict  # square side -> [S, L] Fisher overlap of tasks A and B per layer, per seed
    strength: float


def fisher_overlap_by_depth(settings: Settings, strength: float, *, device="cpu") -> Overlap:
    """Train a deeper network on task A (unpermuted) then task B (a centred square permuted) with EWC at
    ``strength``; the overlap of the two tasks' Fishers at the final parameters, layer by layer."""
    model = MLP(settings.overlap_layers, activation="relu")
    split = bundled_split(settings.split_seed)
    slices = layer_slices(model)
    out = {}
    for square in settings.squares:
        seq = permuted_mnist(split, 2, settings.seed_values, square=square, device=device)
        plan = RowPlan.grid({"ewc": (strength,)}, settings.n_seeds)
        ts = TrainSettings(settings.overlap_steps, settings.batch, settings.learning_rate,
                           fisher_images=settings.fisher_images)  # EWC's Fisher of task A
        final = train_sequence(model, seq, plan, ts, settings.seed_values, device=device, parts=("test",),
                               matrix=False, desc=f"overlap, {square}x{square} square").final_solution.to(device)
        rows = torch.arange(settings.n_seeds)
        n = settings.fisher_images
        fishers = []
        for task in range(2):
            x, y = seq.inputs("train", task, rows, torch.arange(n).expand(len(rows), -1))
            fishers.append(diagonal_fisher(model, final, x, y))
        per_layer = []
        for k in range(model.n_layers):  # a layer's weights and bias lie side by side in the flat vector
            cols = slice(slices[2 * k][1].start, slices[2 * k + 1][1].stop)
            per_layer.append(fisher_overlap(fishers[0][:, cols], fishers[1][:, cols]))
        out[square] = torch.stack(per_layer, -1).numpy()
    return Overlap(tuple(f"layer {k + 1}" for k in range(model.n_layers)), out, strength)


# ------------------------------------------------------------------------------------------ precisions

GROUPS = ("layer 1, dark pixels", "layer 1, other pixels", "hidden layers", "output layer", "biases")


@dataclass(frozen=True, eq=False)
class Precisions:
    """EWC's Fisher and backprop2's 1/σ² after task 1, at the same parameters (the quadratic rows)."""

    fisher: np.ndarray  # [S, P], each normalised to mean 1
    scale: np.ndarray  # [S, P] 1/σ², normalised to mean 1
    groups: np.ndarray  # [P] index into GROUPS
    rho: np.ndarray  # [S] Spearman over all parameters
    rho_groups: np.ndarray  # [S, G] Spearman within each group (NaN: fewer than 3 parameters)
    share: np.ndarray  # [S, G] each group's share of the total precision, Fisher
    share_scale: np.ndarray  # [S, G] the same for 1/σ²


def compare_precisions(settings: Settings, bench: Benchmark) -> Precisions:
    run = bench.run
    rows = run.plan.rows("quadratic")
    fisher = run.first_fisher[rows].double().numpy()
    scale = run.first_scale_precision[rows].double().numpy()
    fisher = fisher / fisher.mean(1, keepdims=True)
    scale = scale / scale.mean(1, keepdims=True)
    model = settings.model(bench.name)
    split = bundled_split(settings.split_seed)
    dark = (split.train.pixels().amax(0) == 0).numpy()  # task 1 is unpermuted: pixels dark in every image
    groups = np.full(model.n_params, GROUPS.index("hidden layers"))
    for name, s in layer_slices(model):
        if name.startswith("b"):
            groups[s] = GROUPS.index("biases")
        elif name == "W1":
            w1 = np.where(np.repeat(dark, model.sizes[1]), GROUPS.index("layer 1, dark pixels"),
                          GROUPS.index("layer 1, other pixels"))
            groups[s] = w1
        elif name == f"W{model.n_layers}":
            groups[s] = GROUPS.index("output layer")
    rho = np.array([rank_correlation(f, c) for f, c in zip(fisher, scale)])
    rho_groups = np.array([[rank_correlation(f[groups == g], c[groups == g]) if (groups == g).sum() >= 3
                            else np.nan for g in range(len(GROUPS))] for f, c in zip(fisher, scale)])
    share = np.stack([fisher[:, groups == g].sum(1) / fisher.sum(1) for g in range(len(GROUPS))], 1)
    share_scale = np.stack([scale[:, groups == g].sum(1) / scale.sum(1) for g in range(len(GROUPS))], 1)
    return Precisions(fisher, scale, groups, rho, rho_groups, share, share_scale)


# ------------------------------------------------------------------------------------------ everything

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    benchmarks: dict  # name -> Benchmark
    overlap: Overlap
    precisions: Precisions


def run(settings: Settings, *, device="cpu") -> Results:
    benches = {b: run_benchmark(settings, b, tune_strengths(settings, b, device=device), device=device)
               for b in BENCHMARKS}
    overlap = fisher_overlap_by_depth(settings, benches["permuted"].tuning.strength("ewc"), device=device)
    return Results(settings, benches, overlap, compare_precisions(settings, benches["permuted"]))


# ------------------------------------------------------------------------------------------ presentation

def _pct(values: np.ndarray) -> str:
    """Mean ± Student-t 95% half-width across seeds, in percentage points."""
    return interval_text(summarise(np.asarray(values) * 100, interval="t"), ".1f", ".1f")


def tuning_table(benches: dict) -> str:
    """Final average validation accuracy (%) of the tuning seed at every λ; the chosen λ in bold."""
    rows = []
    for name, bench in benches.items():
        for m in PENALISED:
            c: LRChoice = bench.tuning.choices[m]
            cells = [f"**{100 * (1 - s):.1f}**" if lam == c.best else f"{100 * (1 - s):.1f}"
                     for lam, s in zip(c.grid, c.scores)]
            rows.append([BENCHMARK_NAMES[name], registry.name(m), *cells, "yes" if c.at_edge else "no"])
    grid = next(iter(benches.values())).tuning.choices[PENALISED[0]].grid
    return markdown_table(["benchmark", "method", *[f"λ = {lam:g}" for lam in grid], "at grid edge"], rows)


def results_table(bench: Benchmark) -> str:
    """Every method's metrics (% , mean ± 95% across seeds) and its paired verdicts against EWC and SGD."""
    rows = []
    for m in METHODS:
        vs = [bench.compare(m, other, "acc").verdict if m != other else "—" for other in ("ewc", "sgd")]
        rows.append([registry.name(m), f"{bench.tuning.strength(m):g}", _pct(bench.per_seed(m, "acc")),
                     _pct(bench.per_seed(m, "first")), _pct(bench.per_seed(m, "learning")),
                     _pct(bench.per_seed(m, "forgetting")), _pct(bench.per_seed(m, "bwt")), *vs])
    return markdown_table(["method", "λ", "average accuracy", "task 1 at the end", "learning accuracy", "forgetting",
                           "backward transfer", "ACC vs EWC", "ACC vs SGD"], rows)


def diverged_text(results: Results) -> str:
    lines = [f"{BENCHMARK_NAMES[n]}: {len(b.run.diverged)} diverged runs (tuning: {len(b.tuning.run.diverged)})"
             for n, b in results.benchmarks.items()]
    for b in results.benchmarks.values():
        lines += list(b.run.diverged) + list(b.tuning.run.diverged)
    return "\n".join(lines)


def curves_figure(bench: Benchmark):
    """Test accuracy on each of the three tasks along training, mean over seeds with the across-seed band."""
    run = bench.run
    fig, axes = plt.subplots(len(run.task_names), 1, figsize=(7, 2.0 * len(run.task_names)), sharex=True)
    steps = np.array(run.curve_steps)
    for j, ax in enumerate(axes):
        summaries = {registry.name(m): [summarise(run.curves[run.plan.rows(m), k, j].numpy() * 100, interval="t")
                                        for k in range(len(steps))] for m in METHODS}
        plot_summaries(ax, steps, summaries, xlabel="SGD steps" if j == len(axes) - 1 else "",
                       ylabel=f"task {'ABC'[j] if len(axes) <= 3 else j + 1} (%)", logy=False)
        if j:  # one legend, on the top panel
            ax.get_legend().remove()
        for t in range(1, len(run.task_names)):
            ax.axvline(steps[-1] * t / len(run.task_names), color="0.7", lw=0.8, ls=":")
    fig.tight_layout()
    return fig


def long_sequence_figure(bench: Benchmark):
    """Average test accuracy over the tasks seen so far, after each task."""
    run = bench.run
    T = len(run.task_names)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    summaries = {}
    for m in METHODS:
        acc = run.test[run.plan.rows(m)]
        summaries[registry.name(m)] = [summarise(acc[:, i, :i + 1].mean(-1).numpy() * 100, interval="t")
                                       for i in range(T)]
    plot_summaries(ax, np.arange(1, T + 1), summaries, xlabel="tasks learned",
                   ylabel="average accuracy so far (%)", logy=False)
    fig.tight_layout()
    return fig


def overlap_table(overlap: Overlap) -> str:
    rows = [[f"{sq}x{sq}", *[_frac(overlap.overlap[sq][:, k]) for k in range(len(overlap.layers))]]
            for sq in overlap.overlap]
    return markdown_table(["permuted square", *overlap.layers], rows)


def _frac(values: np.ndarray) -> str:
    """Mean ± Student-t 95% half-width across seeds, two decimals."""
    return interval_text(summarise(np.asarray(values), interval="t"), ".2f", ".2f")


def overlap_figure(overlap: Overlap):
    fig, ax = plt.subplots(figsize=(5, 3))
    xs = np.arange(1, len(overlap.layers) + 1)
    for sq, shade in zip(overlap.overlap, ("0.6", "0.0")):
        vals = overlap.overlap[sq]
        ax.errorbar(xs, vals.mean(0), yerr=[summarise(v, interval="t").ci95 for v in vals.T], color=shade,
                    marker="o", capsize=3, label=f"{sq}x{sq} square permuted")
    ax.set(xlabel="layer (1 = input)", ylabel="Fisher overlap", ylim=(0, 1.02), xticks=xs)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def precision_table(p: Precisions) -> str:
    rows = []
    for g, name in enumerate(GROUPS):
        n = int((p.groups == g).sum())
        rows.append([name, f"{n:,}", _frac(p.share[:, g]), _frac(p.share_scale[:, g]),
                     _frac(p.rho_groups[:, g]) if np.isfinite(p.rho_groups[:, g]).all() else "—"])
    rows.append(["all parameters", f"{p.groups.size:,}", "1", "1", _frac(p.rho)])
    return markdown_table(["parameters", "count", "share of EWC's precision", "share of backprop2's precision",
                           "Spearman ρ within"], rows)


def precision_figure(p: Precisions):
    """log10 of EWC's Fisher against log10 of backprop2's 1/σ² (first seed), coloured by group."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    f = np.log10(np.maximum(p.fisher[0], 1e-12))
    c = np.log10(p.scale[0])
    for g, name in enumerate(GROUPS):
        keep = p.groups == g
        ax.scatter(f[keep], c[keep], s=2, alpha=0.3, label=name, rasterized=True)
    ax.set(xlabel="log10 EWC Fisher (mean 1)", ylabel="log10 backprop2 1/σ² (mean 1)")
    ax.legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ claims

def check_claims(results: Results) -> Claims:
    """The chapter's findings that hold at every scale it runs, checked at seed level (paired by training
    seed, Student's t across seeds). The benchmarks' sharper verdicts need the ``paper`` budget; the text
    quotes them from the run (:func:`findings`), they are not asserted."""
    s = results.settings
    claims = Claims()
    print(f"training seeds: {s.n_seeds} (every method, every benchmark; λ tuned on a separate seed)")
    benches = results.benchmarks.values()
    claims.check("On every benchmark, EWC's average accuracy is not lower than plain SGD's",
                 all(b.compare("ewc", "sgd", "acc").verdict != "lower" for b in benches))
    claims.check("On every benchmark, backprop2's learned-scale prior does not beat EWC's average accuracy",
                 all(b.compare("quadratic", "ewc", "acc").verdict != "higher" for b in benches))
    claims.check("On every benchmark, the uniform L2 pull does not beat EWC's average accuracy",
                 all(b.compare("l2", "ewc", "acc").verdict != "higher" for b in benches))
    ov = results.overlap.overlap
    big, small = max(s.squares), min(s.squares)
    claims.check("Fisher overlap in the first layer is lower for the large permuted square than for the small",
                 compare_seeds(ov[big][:, :1], ov[small][:, :1], paired=True).verdict == "lower")
    claims.check("Large permuted square: the last layer's Fisher overlap is higher than the first layer's",
                 compare_seeds(ov[big][:, -1:], ov[big][:, :1], paired=True).verdict == "higher")
    p = results.precisions
    claims.check("EWC's Fisher and backprop2's 1/σ² rank the weights in opposite orders (ρ < 0 on every seed)",
                 bool((p.rho < 0).all()))
    dark = GROUPS.index("layer 1, dark pixels")
    count_share = float((p.groups == dark).mean())
    claims.check("Weights from always-dark pixels: no Fisher at all, but more than their share of backprop2's "
                 "precision, on every seed", bool((p.share[:, dark] == 0).all() and (p.share_scale[:, dark] > count_share).all()))
    return claims


def verdicts_text(results: Results) -> str:
    """Every method against EWC, and EWC against plain SGD, on average accuracy and forgetting: this run's
    paired verdicts with their intervals (the ``paper`` budget resolves more of them than ``smoke``)."""
    lines = []
    for name, bench in results.benchmarks.items():
        for m, other in (("ewc", "sgd"), ("quadratic", "ewc"), ("l2", "ewc"), ("online_ewc", "ewc")):
            for metric in ("acc", "forgetting"):
                lines.append(f"{BENCHMARK_NAMES[name]}: {registry.name(m)} vs {registry.name(other)}, {metric}: "
                             f"{bench.compare(m, other, metric)}")
    return "\n".join(lines)


def findings(results: Results) -> dict[str, str]:
    """The numbers and verdicts the chapter's text quotes, as text (glued into the prose)."""
    s = results.settings
    out = {"seeds": str(s.n_seeds), "steps": f"{s.steps:,}", "long_tasks": str(s.long_tasks),
           "long_steps": f"{s.long_steps:,}", "split_steps": f"{s.split_steps:,}"}
    short = {"permuted": "perm", "permuted_long": "long", "split": "split"}
    for name, bench in results.benchmarks.items():
        key = short[name]
        for m in METHODS:
            out[f"{key}_{m}_lambda"] = f"{bench.tuning.strength(m):g}"
            for metric in ("acc", "first", "learning", "forgetting", "bwt"):
                out[f"{key}_{m}_{metric}"] = _pct(bench.per_seed(m, metric))
            if m != "ewc":
                for metric in ("acc", "first", "forgetting", "learning"):
                    out[f"{key}_{m}_vs_ewc_{metric}"] = bench.compare(m, "ewc", metric).phrase
            if m != "sgd":
                for metric in ("acc", "first", "forgetting", "learning"):
                    out[f"{key}_{m}_vs_sgd_{metric}"] = bench.compare(m, "sgd", metric).phrase
        out[f"{key}_diverged"] = str(len(bench.run.diverged) + len(bench.tuning.run.diverged))
        for m in PENALISED:
            c = bench.tuning.choices[m]
            out[f"{key}_{m}_edge"] = ("the weakest strength tried" if c.best == c.grid[0] else
                                      "the strongest strength tried" if c.best == c.grid[-1] else "inside the grid")
    ov = results.overlap
    for sq, vals in ov.overlap.items():
        out[f"overlap_{sq}_first"] = _frac(vals[:, 0])
        out[f"overlap_{sq}_last"] = _frac(vals[:, -1])
    big, small = max(s.squares), min(s.squares)
    out["overlap_first_verdict"] = compare_seeds(ov.overlap[big][:, :1], ov.overlap[small][:, :1], paired=True).phrase
    out["overlap_big_depth_verdict"] = compare_seeds(ov.overlap[big][:, -1:], ov.overlap[big][:, :1],
                                                     paired=True).phrase
    p = results.precisions
    out["rho"] = f"{_frac(p.rho)} (every seed between {p.rho.min():.3f} and {p.rho.max():.3f})"
    out["share_count_dark"] = f"{100 * (p.groups == GROUPS.index('layer 1, dark pixels')).mean():.1f}%"
    for g, name in enumerate(GROUPS):
        key = name.replace(",", "").replace(" ", "_")
        out[f"share_fisher_{key}"] = f"{100 * p.share[:, g].mean():.1f}%"
        out[f"share_scale_{key}"] = f"{100 * p.share_scale[:, g].mean():.1f}%"
    return out
