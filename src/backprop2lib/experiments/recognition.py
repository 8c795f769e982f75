"""Chapter 5's experiments: recognition by reconstruction, given its best shot.

Two families of class models (one model per digit, the class whose adapted model reconstructs an
image best wins):

- **full-parameter** class models: each method of the earlier chapters meta-learns a start (and a
  scale or step sizes) per digit; adapting moves every parameter of the reconstructor;
- **code** class models: per digit a decoder and a prior over a d-dimensional code; adapting moves
  the code only (:mod:`backprop2lib.recognition.codes`).

What takes long is trained by the trained-model store's jobs (:mod:`backprop2lib.recognition.jobs`,
listed by :mod:`backprop2lib.recognition.catalogue`): every method's map over budget, knob and held-out
fraction; the code maps; the data-efficiency cells; the shifted and rotated digits. The notebook loads
them (:func:`load_stored`) and presents them; what it computes itself is cheap: MAML's diagnosis, the
pictures, the verdicts. Protocol: everything is chosen on validation images; test images are used once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..data.mnist import MNIST, Split, bundled_split
from ..models.mlp import MLP
from ..profiles import Profile, resolve_profile
from ..recognition import catalogue, invariance
from ..recognition.class_models import MetaSettings
from ..recognition.codes import CodeClassModels
from ..recognition.few_shot import MOVED, code_scores
from ..recognition.images import coordinate_grid, images_to_tasks
from ..recognition.jobs import experiment_from_config
from ..recognition.pictures import hidden_maps, plot_images, reconstructions
from ..recognition.priors import ClassPriors
from ..recognition.robustness import Robustness
from ..recognition.tuning import MethodMap, default_adaptation, run_setting, trajectory
from ..scale.adapt import InnerLoop, adapt
from ..stats import Comparison, compare_seeds, interval_text, summarise
from ..store import obtain
from ..tables import markdown_table

NCM, KNN, LOGREG = catalogue.BASELINE_NAMES
GOAL_SIZES = (1, 5, 10)
"""The sizes (images per digit) the chapter's goal names: beat nearest class mean and 1-NN there."""
CODE = "code class models"


# ---------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """What the notebook itself computes (the stored jobs' sizes are :data:`catalogue.SIZES`)."""

    profile: str
    diagnosis_images: int  # validation images of the diagnosed digit
    diagnosis_steps: int  # steps of MAML's trajectory
    collage_steps: int  # line-search steps of the collage's drawings
    diagnosis_digit: int = 3
    collage_digit: int = 3
    collage_examples: int = 6
    collage_units: int = 4
    translate_pixels: int = 4
    rotate_degrees: float = 90.0  # a multiple of 90, so the rotated grid is the grid
    zoom_factor: float = 1.3
    contrast: float = 0.5
    background: float = 0.3

    def __post_init__(self) -> None:
        if self.rotate_degrees % 90:
            raise ValueError(f"rotate_degrees: expected a multiple of 90 (a pixel-exact check), got {self.rotate_degrees}")
        for name in ("collage_digit", "diagnosis_digit"):
            if not 0 <= getattr(self, name) <= 9:
                raise ValueError(f"{name}: expected a digit 0..9, got {getattr(self, name)}")

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        p = resolve_profile(profile)
        return cls(p.name, diagnosis_images=p.select(smoke=2, paper=6), diagnosis_steps=p.select(smoke=3, paper=10),
                   collage_steps=p.select(smoke=5, paper=100))

    @property
    def sizes(self) -> dict:
        return catalogue.SIZES[self.profile]

    @property
    def meta(self) -> MetaSettings:
        return catalogue.meta_settings(self.profile)

    def split(self) -> Split:
        return bundled_split()


def setup_text(settings: Settings) -> str:
    split, z = settings.split(), settings.sizes
    return (f"images: train {len(split.train)}, validation {len(split.validation)}, test {len(split.test)} "
            f"(the first {z['test_images']} test images are scored); training seeds per job: {z['seeds']}; "
            f"draws per size: {z['draws']}")


def scale_table(settings: Settings) -> str:
    """Every reduction against backprop2's own setting, stated (its README describes the classifier; it published
    no experiment to match)."""
    z, m = settings.sizes, settings.meta
    budgets = ", ".join(f"{b:,}" for b in z["budgets"])
    p = settings.profile
    further = "; ".join(f"{_label((method, tuple(hidden)))} to {', '.join(f'{b:,}' for b in extra)}"
                        for method, hidden in catalogue.method_map_variants(p)
                        if (extra := catalogue.extra_budgets(p, method, hidden)))
    codes = "; ".join(catalogue.code_experiment(settings.profile, d, hidden, fourier).reconstructor.describe()
                      for d, hidden, fourier in catalogue.code_map_variants(settings.profile))
    full = ", ".join(sorted({"2-" + "-".join(map(str, h)) + "-1" for _, h in
                             catalogue.method_map_variants(settings.profile)}))
    return markdown_table(["", "backprop2", "this chapter"], [
        ["reconstructor", "2 → 20 Gaussian → 1", f"full-parameter: {full}; code: {codes}"],
        ["inner loop", "SGD with line search until the terminator stops it",
         f"{m.inner_steps} steps (fixed or line search, as each method meta-trains); a knob when classifying"],
        ["meta-training", "1,000 meta-iterations (its default)",
         f"budget curve: {budgets} images seen per class model; further: {further or 'none'}; code class "
         f"models: {z['iterations']:,} meta-iterations "
         f"of {catalogue.code_experiment(settings.profile).training.meta_batch} images per class"],
        ["training seeds", "1", f"{z['seeds']}"],
        ["choosing settings", "by hand", f"on {z['validation_per_digit']} validation images per digit"],
        ["test images", "–", f"{z['test_images']} of the 1,000 (fixed)"],
        ["few-shot curve", "–", f"n = {', '.join(map(str, z['sizes']))} × {z['draws']} draws × {z['seeds']} seeds"],
    ])


# ---------------------------------------------------------------------------------------- stored results

@dataclass(frozen=True, eq=False)
class Stored:
    """Every stored job's result, by family and key."""

    method_maps: dict  # (method, hidden) -> MethodMap
    method_priors: dict  # (method, hidden) -> [ClassPriors or None] per seed, at the largest budget
    method_cells: dict  # (n, draw) -> MethodMap
    code_maps: dict  # (code_dim, hidden, fourier) -> the job's record
    code_models: dict  # (code_dim, hidden, fourier) -> CodeClassModels (every seed, rows seed-major)
    code_experiments: dict  # (code_dim, hidden, fourier) -> CodeExperiment
    code_cells: dict  # (n, draw) -> the job's record
    provenance: list[str]  # one line per stored model
    seeds: int


def _priors_from(state: dict, record: dict) -> list[ClassPriors | None]:
    if record.get("priors") is None:
        return [None] * len(record["map"]["seeds"])
    p = record["priors"]
    out = []
    for s in range(state["mean"].shape[0]):
        mean = state["mean"][s]
        if not bool(torch.isfinite(mean).all()):
            out.append(None)
            continue
        spread = state["spread"][s] if "spread" in state else None
        out.append(ClassPriors(p["method"], mean, spread, strength=p["strength"], decay=p["decay"]))
    return out


def join_seeds(maps: list[MethodMap]) -> MethodMap:
    """One map from maps of the same method and settings trained on different seeds (the jobs of a map the
    catalogue splits by seed), stacked along the seed axis in seed order."""
    if not maps:
        raise ValueError("maps: expected at least one map")
    first = maps[0]
    for m in maps[1:]:
        for name in ("method", "knob", "budgets", "knob_values", "held_fractions"):
            if getattr(m, name) != getattr(first, name):
                raise ValueError(f"maps: {name} differs between the maps joined ({getattr(first, name)!r} and "
                                 f"{getattr(m, name)!r})")
    seeds = [s for m in maps for s in m.seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"maps: a training seed appears twice ({seeds})")
    order = sorted(range(len(seeds)), key=seeds.__getitem__)

    def stacked(name):
        return np.concatenate([getattr(m, name) for m in maps])[order]
    chosen = [c for m in maps for c in m.chosen]
    return MethodMap(first.method, first.knob, first.budgets, tuple(seeds[i] for i in order), first.knob_values,
                     first.held_fractions, stacked("validation"), stacked("auroc"), stacked("seconds"),
                     [chosen[i] for i in order], stacked("test"), [f for m in maps for f in m.failures])


def load_stored(settings: Settings, *, device="cpu", log: Callable[[str], None] = print) -> Stored:
    """Every chapter 5 model of the profile: loaded when its stamp matches, otherwise trained now (saying so)."""
    maps, priors, cells, code_maps, code_models, experiments, code_cells, lines = {}, {}, {}, {}, {}, {}, {}, []
    for spec in catalogue.trained_models(settings.profile):
        stored = obtain(spec, log=lines.append, device=device)
        c, r = spec.config, stored.record
        if c["kind"] == "method-map":  # a map split by seed comes as one job per seed: joined below
            key = (c["method"], tuple(c["hidden"]))
            maps.setdefault(key, []).append(MethodMap.from_record(r["map"]))
            priors.setdefault(key, []).append(_priors_from(stored.state, r))
        elif c["kind"] == "method-cell":
            cells[(c["n"], c["draw"])] = MethodMap.from_record(r["map"])
        elif c["kind"] == "code-map":
            e = experiment_from_config(c["experiment"])
            key = (e.reconstructor.code_dim, e.reconstructor.hidden, e.reconstructor.fourier)
            code_maps[key], experiments[key] = r, e
            code_models[key] = CodeClassModels(e.reconstructor, *(stored.state[n].to(device) for n in
                                                                   ("w", "mu", "log_sigma", "log_alpha")),
                                               e.training.beta)
        else:
            code_cells[(c["n"], c["draw"])] = r
    for key, parts in maps.items():
        maps[key] = join_seeds(parts)
        by_seed = {seed: p for part, ps in zip(parts, priors[key]) for seed, p in zip(part.seeds, ps)}
        priors[key] = [by_seed[seed] for seed in maps[key].seeds]
    for line in lines:
        log(line)
    return Stored(maps, priors, cells, code_maps, code_models, experiments, code_cells, lines,
                  settings.sizes["seeds"])


def seeds_line(stored: Stored) -> str:
    counts = sorted({len(m.seeds) for m in stored.method_maps.values()} |
                    {len(r["test"]) for r in stored.code_maps.values()})
    return f"training seeds: {'/'.join(map(str, counts))} per method map, code map and few-shot cell"


def _label(key) -> str:
    method, hidden = key
    return registry.name(method) + ("" if hidden == (20,) else f" 2-({', '.join(map(str, hidden))})-1")


def _seed_interval(values) -> str:
    v = np.asarray(values, dtype=float)
    return interval_text(summarise(v[np.isfinite(v)], interval="t"), ".3f", ".2f")


# ---------------------------------------------------------------------------------------- full-parameter family

def _plain_and_held(m: MethodMap) -> tuple[np.ndarray, np.ndarray]:
    """At the largest budget, per seed: the best validation accuracy with every pixel scored (fraction 0) and the
    best with some pixels held out ``([S], [S])``."""
    v = m.validation[:, -1]  # [S, K, F]
    fractions = np.asarray(m.held_fractions)
    if 0.0 not in m.held_fractions or not (fractions > 0).any():
        raise ValueError("held_fractions: the map needs 0 and at least one held-out fraction")
    with np.errstate(all="ignore"):
        plain = np.nanmax(v[:, :, fractions == 0].reshape(len(v), -1), axis=1)
        held = np.nanmax(v[:, :, fractions > 0].reshape(len(v), -1), axis=1)
    return plain, held


def budget_table(stored: Stored) -> str:
    """Per method: the best validation accuracy (over knob and held-out fraction) at each budget, mean ± t-interval
    over seeds ("–" where a map stops earlier); the meta-training time; diverged settings."""
    budgets = sorted({b for m in stored.method_maps.values() for b in m.budgets})
    rows = []
    for key, m in stored.method_maps.items():
        best = m.best_validation()
        cells = [_seed_interval(best[:, m.budgets.index(b)]) if b in m.budgets else "–" for b in budgets]
        rows.append([_label(key)] + cells + [f"{m.seconds.sum():.0f}", str(m.diverged), str(len(m.failures))])
    return markdown_table(["method"] + [f"{b:,} images" for b in budgets]
                          + ["meta-training (s, all seeds and budgets)", "diverged settings", "diverged trainings"], rows)


def shared_budget(stored: Stored) -> int:
    """The largest budget every method map has: where methods are compared on equal terms."""
    return max(set.intersection(*(set(m.budgets) for m in stored.method_maps.values())))


def plateau(m: MethodMap) -> Comparison:
    """The best validation accuracy at the largest budget against the one before, paired by seed."""
    return rise(m, m.budgets[-1])


def rise(m: MethodMap, budget: int) -> Comparison:
    """The best validation accuracy at ``budget`` against the budget before it, paired by seed."""
    if budget not in m.budgets or m.budgets.index(budget) == 0:
        raise ValueError(f"budget: expected one of {list(m.budgets[1:])} (a budget with one before it), got {budget}")
    best, j = m.best_validation(), m.budgets.index(budget)
    return compare_seeds(best[:, j:j + 1], best[:, j - 1:j], paired=True)


def rise_into(stored: Stored, budget: int | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """The maps whose best validation accuracy still rises into ``budget`` (default: the budget every map shares)
    from the budget before it (higher, paired by seed, 95%)."""
    budget = shared_budget(stored) if budget is None else budget
    return [k for k, m in stored.method_maps.items() if budget in m.budgets and rise(m, budget).verdict == "higher"]


def unextended_rising(stored: Stored) -> list[tuple[str, tuple[int, ...]]]:
    """The maps that still rise into the shared budget but stop there: the budget curve does not show whether
    more training would change their verdict."""
    b = shared_budget(stored)
    return [k for k in rise_into(stored, b) if stored.method_maps[k].budgets[-1] == b]


def still_rising(stored: Stored) -> list[tuple[str, tuple[int, ...]]]:
    """The maps whose best validation accuracy still rises at their largest budget (:func:`plateau` higher)."""
    return [k for k, m in stored.method_maps.items() if plateau(m).verdict == "higher"]


def best_at_largest(stored: Stored) -> tuple[str, tuple[int, ...]]:
    """The map with the best mean validation accuracy at its own largest budget (budgets differ: the maps that
    rose run further; ties: the first listed)."""
    keys = list(stored.method_maps)

    def score(key):  # a map whose every seed diverged at its largest budget ranks last
        values = stored.method_maps[key].best_validation()[:, -1]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else -math.inf

    return max(keys, key=lambda k: (score(k), -keys.index(k)))


def largest_budgets_vs_choice(stored: Stored, chosen) -> Comparison:
    """At each one's largest budget: the most accurate map (:func:`best_at_largest`) against the chosen one,
    paired by seed (same seeds, same validation images)."""
    a, b = stored.method_maps[best_at_largest(stored)], stored.method_maps[chosen]
    return compare_seeds(a.best_validation()[:, -1:], b.best_validation()[:, -1:], paired=True)


def best_method(stored: Stored) -> tuple[str, tuple[int, ...]]:
    """The full-parameter class models ``(method, hidden)`` with the best mean validation accuracy at the budget
    every map shares (ties: the first listed)."""
    b = shared_budget(stored)

    def score(key):
        m = stored.method_maps[key]
        return float(np.nanmean(m.best_validation()[:, m.budgets.index(b)]))

    keys = list(stored.method_maps)
    return max(keys, key=lambda k: (score(k), -keys.index(k)))


def held_out_effect(m: MethodMap) -> Comparison:
    """At the largest budget, per seed: the best validation accuracy with some pixels held out against the best
    with every pixel adapted on and scored (fraction 0), paired by seed."""
    plain, held = _plain_and_held(m)
    return compare_seeds(held[:, None], plain[:, None], paired=True)


def map_table(stored: Stored) -> str:
    """At the largest budget: best validation accuracy with every pixel scored and with held-out scoring, each
    seed's choice, and the test accuracy of the choice (mean ± t-interval over seeds)."""
    rows = []
    for key, m in stored.method_maps.items():
        plain, held = _plain_and_held(m)
        chosen = "; ".join("–" if math.isnan(k) else f"{m.knob} {k:g}, held {f:g}" for k, f in m.chosen)
        rows.append([_label(key), f"{m.budgets[-1]:,}", _seed_interval(plain), _seed_interval(held),
                     held_out_effect(m).verdict, chosen, _seed_interval(m.test)])
    return markdown_table(["method", "budget (images)", "validation, every pixel scored",
                           "validation, held-out pixels scored", "held-out vs every pixel", "choice per seed",
                           "test accuracy"], rows)


def budget_figure(stored: Stored):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, m in stored.method_maps.items():
        best = m.best_validation()
        mean = np.nanmean(best, axis=0)
        ax.plot(m.budgets, mean, "o-" if key[1] == (20,) else "s--", color=registry.color(key[0]), label=_label(key),
                lw=1.2)
        ax.fill_between(m.budgets, np.nanmin(best, 0), np.nanmax(best, 0), color=registry.color(key[0]), alpha=0.12)
    ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="meta-training budget (images seen per class model)",
           ylabel="best validation accuracy", ylim=(0, 1))
    ax.legend(fontsize=7, ncol=2)
    return fig


def map_figure(stored: Stored, hidden=(20,)):
    """Validation accuracy at the largest budget over knob × held-out fraction, mean over seeds, per method."""
    items = [(k, m) for k, m in stored.method_maps.items() if k[1] == tuple(hidden)]
    cols = 3
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.0 * rows), squeeze=False)
    for ax, (key, m) in zip(axes.ravel(), items):
        with np.errstate(all="ignore"):
            grid = np.nanmean(m.validation[:, -1], axis=0)  # [K, F]
        im = ax.imshow(grid.T, vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(len(m.knob_values)), [f"{v:g}" for v in m.knob_values], fontsize=7)
        ax.set_yticks(range(len(m.held_fractions)), [f"{f:g}" for f in m.held_fractions], fontsize=7)
        ax.set(title=registry.name(key[0]), xlabel=m.knob, ylabel="held-out fraction")
        for (k, f), value in np.ndenumerate(grid):
            ax.text(k, f, "×" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if np.isnan(value) or value < 0.5 else "black")
    for ax in axes.ravel()[len(items):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="validation accuracy")
    return fig


# ---------------------------------------------------------------------------------------- MAML's diagnosis

@dataclass(frozen=True, eq=False)
class Diagnosis:
    """MAML's class model of one digit adapting to validation images of that digit, step by step, at the step it
    meta-trained with and at half of it (what the first version of this chapter classified with); and the
    validation accuracy each gives, per seed."""

    digit: int
    images: MNIST
    lrs: tuple[float, float]  # (its training step, half of it)
    errors: dict  # lr -> [steps + 1, N] reconstruction error
    pictures: dict  # lr -> [steps + 1, N, 28, 28]
    blank_error: float  # the error of drawing nothing (all black), for scale
    accuracy: dict  # lr -> [S] validation accuracy (every pixel scored, its trained number of steps)
    steps: int  # that number of steps


def maml_diagnosis(settings: Settings, stored: Stored, *, device="cpu") -> Diagnosis:
    key = ("maml", (20,))
    priors = stored.method_priors[key]
    model = MLP((2, 20, 1), activation="gaussian")
    split = settings.split()
    images = split.validation.subset(split.validation.labels == settings.diagnosis_digit).subset(
        slice(0, settings.diagnosis_images))
    trained = default_adaptation("maml", settings.meta)
    lrs = (trained.lr, trained.lr / 2)
    first = next(p for p in priors if p is not None)
    errors, pictures = {}, {}
    for lr in lrs:
        e, params = trajectory(model, first, images, settings.diagnosis_digit, lr=lr, steps=settings.diagnosis_steps,
                               device=device)
        errors[lr] = e.numpy()
        pictures[lr] = reconstructions(model, params.reshape(-1, params.shape[-1])).reshape(
            params.shape[0], params.shape[1], 28, 28)
    blank = float(0.5 * images.pixels().pow(2).mean())
    validation = split.validation.per_class(settings.sizes["validation_per_digit"], seed=0)
    accuracy = {lr: np.array([np.nan if p is None else
                              run_setting(model, p, validation, trained.with_(lr=lr), chunk=16, device=device).accuracy
                              for p in priors]) for lr in lrs}
    return Diagnosis(settings.diagnosis_digit, images, lrs, errors, pictures, blank, accuracy, trained.steps)


def diagnosis_table(d: Diagnosis) -> str:
    steps = d.errors[d.lrs[0]].shape[0] - 1
    shown = sorted({0, 1, 2, min(5, steps), steps})
    rows = [[f"step {lr:g}"] + [f"{d.errors[lr][s].mean():.3f}" for s in shown] + [_seed_interval(d.accuracy[lr])]
            for lr in d.lrs]
    rows.append(["drawing nothing (black)"] + [f"{d.blank_error:.3f}"] * len(shown) + ["–"])
    return markdown_table(["adaptation"] + [f"error after {s} steps" for s in shown]
                          + [f"validation accuracy ({d.steps} steps, as trained)"], rows)


def diagnosis_figure(d: Diagnosis):
    steps = d.errors[d.lrs[0]].shape[0] - 1
    shown = sorted({0, 1, 2, min(5, steps), steps})
    fig, axes = plt.subplots(2, len(shown) + 1, figsize=(1.7 * (len(shown) + 1), 4.0))
    image = d.images.pixels()[0].reshape(28, 28)
    for row, lr in enumerate(d.lrs):
        plot_images(axes[row, :1], image[None], titles=["image"])
        plot_images(axes[row, 1:], d.pictures[lr][shown, 0].clamp(0, 1),
                    titles=[f"step {lr:g}: {s} steps" for s in shown])
    return fig


# ---------------------------------------------------------------------------------------- code family

def _code_label(key) -> str:
    d, hidden, fourier = key
    inputs = f"{fourier} Fourier freq." if fourier else "x, y"
    return f"d = {d}, [{inputs}] → {'-'.join(map(str, hidden))}"


def code_validation(record: dict) -> np.ndarray:
    """Each seed's best validation accuracy over held-out fraction × prior weight ``[S]``."""
    v = np.asarray(record["validation"], dtype=float)
    return v.reshape(len(v), -1).max(1)


def code_choice(stored: Stored):
    """The code map with the best mean validation accuracy (ties: the first listed)."""
    return max(stored.code_maps, key=lambda k: (code_validation(stored.code_maps[k]).mean(),
                                                -list(stored.code_maps).index(k)))


def code_cells_key(stored: Stored, profile: str):
    """The code map whose class models the stored few-shot cells and the moved digits use: the catalogue's
    :func:`~backprop2lib.recognition.catalogue.code_experiment`, fixed before the maps ran (the cells are the
    expensive jobs, so they cannot wait for the maps' choice)."""
    want = catalogue.code_experiment(profile)
    keys = [k for k, e in stored.code_experiments.items() if e == want]
    if not keys:
        raise ValueError(f"stored: no code map has the experiment the few-shot cells use ({want})")
    return keys[0]


def code_cells_vs_choice(stored: Stored, profile: str, chosen) -> Comparison:
    """Validation accuracy (best setting) of the code map the cells use against the maps' choice ``chosen`` (the
    key :func:`code_choice` gives), paired by seed."""
    cells = stored.code_maps[code_cells_key(stored, profile)]
    return compare_seeds(code_validation(cells)[:, None], code_validation(stored.code_maps[chosen])[:, None],
                         paired=True)


def code_map_table(stored: Stored) -> str:
    rows = []
    for key, r in stored.code_maps.items():
        curve = r["curve"]
        last, before = np.asarray(curve[-1][1], float), np.asarray(curve[-2][1], float) if len(curve) > 1 else None
        chosen = "; ".join(f"held {f:g}, prior × {w:g}" for f, w in r["chosen"])
        rows.append([_code_label(key), f"{r['n_params']:,}", _seed_interval(code_validation(r)), chosen,
                     _seed_interval(r["test"]),
                     "–" if before is None else _seed_interval(last - before)])
    return markdown_table(["code class models", "parameters per class", "validation (best setting)",
                           "choice per seed", "test accuracy", "last gain on the training curve"], rows)


def code_plateau(record: dict) -> Comparison:
    """The training curve's last validation point against the one before, paired by seed."""
    curve = record["curve"]
    return compare_seeds(np.asarray(curve[-1][1], float)[:, None], np.asarray(curve[-2][1], float)[:, None],
                         paired=True)


def code_curve_figure(stored: Stored):
    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("viridis")
    for i, (key, r) in enumerate(stored.code_maps.items()):
        its = [it for it, _ in r["curve"]]
        values = np.array([v for _, v in r["curve"]], dtype=float)  # [points, S]
        color = cmap(i / max(1, len(stored.code_maps) - 1))
        ax.plot(its, values.mean(1), "o-", ms=3, color=color, label=_code_label(key))
        ax.fill_between(its, values.min(1), values.max(1), color=color, alpha=0.15)
    ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
    ax.set(xlabel="meta-iterations", ylabel="validation accuracy (curve images)", ylim=(0, 1))
    ax.legend(fontsize=7)
    return fig


@dataclass(frozen=True, eq=False)
class CodePictures:
    key: tuple
    images: torch.Tensor  # [K, 784]
    own: torch.Tensor  # [K, 28, 28] the image's own class model, its code adapted
    other: torch.Tensor  # [K, 28, 28] the best other class model
    other_class: list[int]


def code_pictures(settings: Settings, stored: Stored, *, device="cpu") -> CodePictures:
    """What the chosen code class models (first seed) draw for a few validation images, adapting on half their
    pixels: the own class's reconstruction and the best of the other nine."""
    key = code_choice(stored)
    e, models = stored.code_experiments[key], stored.code_models[key]
    first = models.select(list(range(10)))
    split = settings.split()
    val = split.validation.per_class(1, seed=2)
    images = val.pixels().to(device)
    fit = code_scores(first, e, images)
    labels = val.labels
    grid = first.reconstructor.features(coordinate_grid(dtype=first.w.dtype, device=device))
    with torch.no_grad():
        pics = first.reconstructor.reconstruct(first.w, fit.codes.to(device).transpose(0, 1), grid)  # [C, N, 784]
    scores = fit.scores(e.prior_weight).clone()
    scores[torch.arange(len(labels)), labels] = float("inf")
    other = scores.argmin(1)
    n = torch.arange(len(labels))
    return CodePictures(key, images.cpu(), pics[labels, n].reshape(-1, 28, 28).cpu(),
                        pics[other, n].reshape(-1, 28, 28).cpu(), other.tolist())


def code_pictures_figure(p: CodePictures):
    k = len(p.images)
    fig, axes = plt.subplots(3, k, figsize=(1.3 * k, 4.2))
    plot_images(axes[0], p.images.reshape(-1, 28, 28), titles=["image"] * k)
    plot_images(axes[1], p.own.clamp(0, 1), titles=["own class"] * k)
    plot_images(axes[2], p.other.clamp(0, 1), titles=[f"best other: {c}" for c in p.other_class])
    return fig


# ---------------------------------------------------------------------------------------- moved digits

def moved(stored: Stored) -> Robustness:
    key = next(k for k, r in stored.code_maps.items() if r.get("robustness"))
    return Robustness.from_record(stored.code_maps[key]["robustness"])


def robustness_table(rob: Robustness) -> str:
    rows = [[name] + [_seed_interval(acc[:, j]) if len(acc) > 1 else f"{acc[0, j]:.3f}"
                      for j in range(len(rob.conditions))] for name, acc in rob.accuracy.items()]
    return markdown_table(["classifier"] + [c.label for c in rob.conditions], rows)


def robustness_figure(rob: Robustness):
    shifts = [j for j, c in enumerate(rob.conditions) if c.angle == 0]
    turns = [0] + [j for j, c in enumerate(rob.conditions) if c.angle > 0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for name, acc in rob.accuracy.items():
        base = name.replace(MOVED, "")
        color = registry.color("code_models") if base.startswith(CODE) else registry.color(base)
        style = "--" if name.endswith(MOVED) or name.endswith("search") else "-"
        mean = acc.mean(0)
        axes[0].plot([rob.conditions[j].shift for j in shifts], mean[shifts], "o" + style, color=color, label=name,
                     ms=3)
        axes[1].plot([rob.conditions[j].angle for j in turns], mean[turns], "o" + style, color=color, ms=3)
    for ax in axes:
        ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
    axes[0].set(xlabel="shift (pixels, random direction)", ylabel="test accuracy", ylim=(0, 1))
    axes[1].set(xlabel="rotation (degrees, either way)")
    axes[0].legend(fontsize=7)
    return fig


def robustness_verdict(rob: Robustness, a: str, b: str, condition: int) -> str:
    """``a`` against ``b`` on one condition: per-seed accuracies where both have seeds, else the mean of ``a``'s
    seeds against ``b``'s one value (a comparison with no interval says so)."""
    x, y = rob.accuracy[a][:, condition], rob.accuracy[b][:, condition]
    if len(x) > 1 and len(y) == 1:
        return compare_seeds(x[:, None], np.full((len(x), 1), y[0]), paired=True).verdict
    if len(x) > 1 and len(y) > 1:
        return compare_seeds(x[:, None], y[:, None], paired=True).verdict
    return "not distinguishable (one seed each)"


# ---------------------------------------------------------------------------------------- data efficiency

@dataclass(frozen=True, eq=False)
class Efficiency:
    """Test accuracy against training images per digit: ``families[name]`` ``[sizes, S, D]`` (seed × draw),
    ``baselines[name]`` ``[sizes, D]``; every cell of one (n, draw) trains on the same images."""

    sizes: list[int]
    draws: int
    families: dict[str, np.ndarray]
    baselines: dict[str, np.ndarray]

    def verdict(self, family: str, baseline: str, size: int) -> Comparison:
        """``family`` against ``baseline`` at ``size`` images per digit, across training seeds, paired by draw:
        "higher" means more accurate."""
        i = self.sizes.index(size)
        a = self.families[family][i]
        return compare_seeds(a, np.broadcast_to(self.baselines[baseline][i], a.shape), paired=True)


def efficiency(stored: Stored, full_key: tuple[str, tuple[int, ...]]) -> Efficiency:
    sizes = sorted({n for n, _ in stored.code_cells})
    draws = 1 + max(d for _, d in stored.code_cells)
    S = len(next(iter(stored.code_cells.values()))["code_accuracy"])
    code = np.full((len(sizes), S, draws), np.nan)
    full = np.full((len(sizes), S, draws), np.nan)
    baselines = {}
    for (n, d), r in stored.code_cells.items():
        i = sizes.index(n)
        code[i, :, d] = r["code_accuracy"]
        for name, value in r["baselines"].items():
            baselines.setdefault(name, np.full((len(sizes), draws), np.nan))[i, d] = value
    for (n, d), m in stored.method_cells.items():
        full[sizes.index(n), :, d] = m.test
    return Efficiency(sizes, draws, {CODE: code, _label(full_key): full}, baselines)


def efficiency_table(e: Efficiency) -> str:
    rows = []
    for name, acc in e.families.items():
        rows.append([name] + [_seed_interval(np.nanmean(acc[i], axis=1)) for i in range(len(e.sizes))])
    for name, acc in e.baselines.items():
        rows.append([name] + [_seed_interval(acc[i]) if e.draws > 1 else f"{acc[i, 0]:.3f}"
                              for i in range(len(e.sizes))])
    return markdown_table(["classifier"] + [f"n = {n}" for n in e.sizes], rows)


def efficiency_figure(e: Efficiency):
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, acc in e.families.items():
        per_seed = np.nanmean(acc, axis=2)  # [sizes, S]
        color = registry.color("code_models") if name == CODE else registry.color(name.split(" 2-")[0])
        mean = np.nanmean(per_seed, 1)
        ax.errorbar(e.sizes, mean, yerr=[np.maximum(0, mean - np.nanmin(per_seed, 1)),
                                         np.maximum(0, np.nanmax(per_seed, 1) - mean)],
                    marker="o", ms=4, capsize=3, lw=2.0, color=color, label=f"{name} (seed range)")
    for name, acc in e.baselines.items():
        ax.plot(e.sizes, np.nanmean(acc, 1), "o--" if name.endswith(MOVED) else "o-", ms=3, lw=1.0,
                color=registry.color(name.replace(MOVED, "")), label=name)
    ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="training images per digit", ylabel="test accuracy", ylim=(0, 1))
    ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------- collage and edits

@dataclass(frozen=True, eq=False)
class Collage:
    """A full-parameter class model of one digit, adapted at length to validation images of that digit."""

    key: tuple  # (method, hidden)
    digit: int
    images: MNIST
    adapted: torch.Tensor  # [N, P]
    pictures: torch.Tensor  # [N, 28, 28]
    maps: torch.Tensor  # [N, hidden, 28, 28]
    units: list[int]


def collage(settings: Settings, stored: Stored, key: tuple, *, device="cpu") -> Collage:
    model = MLP((2, *key[1], 1), activation="gaussian")
    priors = next(p for p in stored.method_priors[key] if p is not None)
    split = settings.split()
    images = split.validation.subset(split.validation.labels == settings.collage_digit).subset(
        slice(0, settings.collage_examples))
    x, y = images_to_tasks(images, device=device, dtype=priors.mean.dtype)
    start, regulariser, rates = priors.to(device).rows(torch.full((len(images),), settings.collage_digit,
                                                                  device=device))
    with torch.no_grad():  # many more steps than the classifier takes: what the class model can draw
        adapted = adapt(model, start, x, y, loop=InnerLoop(max_steps=settings.collage_steps, lr=None),
                        regulariser=regulariser, rates=rates).params.cpu()
    maps = hidden_maps(model, adapted)
    units = maps.flatten(2).std(-1).mean(0).argsort(descending=True)[:settings.collage_units].tolist()
    return Collage(key, settings.collage_digit, images, adapted, reconstructions(model, adapted), maps, units)


def collage_figure(drawing: Collage):
    n = len(drawing.images)
    fig, axes = plt.subplots(2 + len(drawing.units), n, figsize=(1.6 * n, 10), squeeze=False)
    plot_images(axes[0], drawing.images.pixels().reshape(-1, 28, 28), titles=["image"] * n)
    plot_images(axes[1], drawing.pictures.clamp(0, 1), titles=["reconstruction"] * n)
    for row, unit in enumerate(drawing.units):
        plot_images(axes[2 + row], drawing.maps[:, unit], titles=[f"unit {unit}"] * n)
    return fig


@dataclass(frozen=True, eq=False)
class Edits:
    pictures: dict[str, torch.Tensor]  # edit -> [28, 28]
    errors: dict[str, float]  # transformation -> largest pixel difference, edited vs transformed


def invariance_edits(settings: Settings, drawing: Collage) -> Edits:
    model, w0 = MLP((2, *drawing.key[1], 1), activation="gaussian"), drawing.adapted[0]
    pixel = 2 / 27
    s = settings
    edits = {
        "adapted": w0,
        f"{s.translate_pixels} px right": invariance.translate(model, w0, (s.translate_pixels * pixel, 0.0)),
        f"rotated {s.rotate_degrees:g}°": invariance.rotate(model, w0, s.rotate_degrees),
        f"zoom {s.zoom_factor:g}": invariance.zoom(model, w0, s.zoom_factor),
        f"contrast × {s.contrast:g}": invariance.brighten(model, w0, s.contrast),
        f"background + {s.background:g}": invariance.shift_background(model, w0, s.background),
    }
    pics = reconstructions(model, torch.stack(list(edits.values())))
    base = pics[0].double()
    background = float(model.unflatten(w0[None])[-1][0, 0])
    n = s.translate_pixels
    errors = {
        "translation": float((pics[1].double()[:, n:] - base[:, :-n]).abs().max()),
        "rotation": float((pics[2].double() - torch.rot90(base, int(s.rotate_degrees // 90))).abs().max()),
        "contrast": float((pics[4].double() - (background + s.contrast * (base - background))).abs().max()),
        "background": float((pics[5].double() - (base + s.background)).abs().max()),
    }
    return Edits(dict(zip(edits, pics)), errors)


def edits_text(edits: Edits) -> str:
    return "largest pixel difference, edited vs transformed: " + str({k: f"{v:.1e}" for k, v in edits.errors.items()})


def edits_figure(edits: Edits):
    fig, axes = plt.subplots(1, len(edits.pictures), figsize=(1.8 * len(edits.pictures), 2.2))
    plot_images(axes, torch.stack(list(edits.pictures.values())).clamp(0, 1), titles=list(edits.pictures))
    return fig


# ---------------------------------------------------------------------------------------- results, claims, findings

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    stored: Stored
    diagnosis: Diagnosis
    moved: Robustness
    efficiency: Efficiency
    edits: Edits
    full_method: tuple  # the full-parameter (method, hidden) the maps choose at their shared budget
    code_key: tuple  # the code map the validation accuracy chooses
    extra: dict = field(default_factory=dict)


def goal_verdicts(e: Efficiency) -> dict[tuple[str, str, int], Comparison]:
    return {(family, baseline, n): e.verdict(family, baseline, n)
            for family in e.families for baseline in (NCM, KNN) for n in GOAL_SIZES if n in e.sizes}


RISING_CLAIM = ("Every full-parameter map whose validation accuracy still rises into the budget all maps share runs "
                "at least one budget further")


def check_claims(results: Results) -> Claims:
    """The chapter's claims that hold at every scale it runs (what the measured verdicts are is printed by
    :func:`verdicts_text` and quoted from the run in the text)."""
    r, s = results, results.stored
    claims = Claims()
    print(seeds_line(s))
    claims.check("The stored full-parameter few-shot cells use the method and reconstructor the validation maps "
                 "choose", (catalogue.FULL_PARAMETER_METHOD, catalogue.FULL_PARAMETER_HIDDEN) == r.full_method)
    cells_key = code_cells_key(s, r.settings.profile)
    claims.check("The stored code few-shot cells use the code class models the validation maps choose, or ones "
                 "validation does not distinguish from them (paired by seed)",
                 cells_key == r.code_key
                 or code_cells_vs_choice(s, r.settings.profile, r.code_key).verdict == "not distinguishable")
    claims.check(RISING_CLAIM, not unextended_rising(s))
    claims.check("Every classifier of the data-efficiency table is scored on the same test images for every "
                 "(n, draw)", all(len(c["code_accuracy"]) == s.seeds for c in s.code_cells.values())
                 and set(s.method_cells) == set(s.code_cells))
    claims.check("Editing input-layer biases translates, input weights rotate, output weights and bias change "
                 "contrast and background, exactly (max pixel difference < 1e-4)", max(r.edits.errors.values()) < 1e-4)
    d = r.diagnosis
    claims.check("MAML's start is a worse picture of its own digit than drawing nothing, before it adapts",
                 bool((d.errors[d.lrs[0]][0] > d.blank_error).all()))
    return claims


def verdicts_text(results: Results) -> str:
    """Every seed-level verdict of the chapter, with its interval."""
    r = results
    lines = []
    for (family, baseline, n), v in goal_verdicts(r.efficiency).items():
        lines.append(f"n = {n}: {family} vs {baseline}: {v}")
    b = shared_budget(r.stored)
    for key, m in r.stored.method_maps.items():
        if m.budgets[-1] != b:
            lines.append(f"{_label(key)}: {b:,} images vs the budget before: {rise(m, b)}")
        lines.append(f"{_label(key)}: largest budget ({m.budgets[-1]:,}) vs the one before: {plateau(m)}")
        lines.append(f"{_label(key)}: held-out scoring vs every pixel scored: {held_out_effect(m)}")
    top = best_at_largest(r.stored)
    if top != r.full_method:
        lines.append(f"validation at each one's largest budget: {_label(top)} vs {_label(r.full_method)} (chosen): "
                     f"{largest_budgets_vs_choice(r.stored, r.full_method)}")
    for key, rec in r.stored.code_maps.items():
        lines.append(f"{_code_label(key)}: last point of the training curve vs the one before: {code_plateau(rec)}")
    cells_key = code_cells_key(r.stored, r.settings.profile)
    if cells_key != r.code_key:
        versus = code_cells_vs_choice(r.stored, r.settings.profile, r.code_key)
        lines.append(f"validation: {_code_label(cells_key)} (the few-shot cells' class models) vs "
                     f"{_code_label(r.code_key)} (the maps' choice): {versus}")
    d = r.diagnosis
    a, b = d.accuracy[d.lrs[0]], d.accuracy[d.lrs[1]]
    lines.append(f"MAML, validation accuracy at its training step vs half of it: "
                 f"{compare_seeds(a[:, None], b[:, None], paired=True)}")
    rob = r.moved
    last_shift = max(j for j, c in enumerate(rob.conditions) if c.angle == 0)
    for other in (f"{CODE} + edit search", NCM, KNN, NCM + MOVED, KNN + MOVED):
        if other in rob.accuracy:
            lines.append(f"{rob.conditions[last_shift].label}: {CODE} vs {other}: "
                         f"{robustness_verdict(rob, CODE, other, last_shift)}")
    return "\n".join(lines)


def _mean_text(v) -> str:
    return _seed_interval(np.asarray(v, dtype=float))


def _cells_text(r: Results) -> str:
    cells_key = code_cells_key(r.stored, r.settings.profile)
    if cells_key == r.code_key:
        return " The few-shot cells and the moved digits use these class models."
    v = code_cells_vs_choice(r.stored, r.settings.profile, r.code_key)
    return (f" The few-shot cells and the moved digits use {_code_label(cells_key)}, fixed before the maps ran "
            f"(test accuracy {_mean_text(r.stored.code_maps[cells_key]['test'])}); on validation it is {v.phrase} "
            f"the maps' choice (paired by seed).")


def findings_markdown(results: Results) -> str:
    """The chapter's findings, written from the run: every number and every directional word comes from a
    measured comparison (seed-level, 95%)."""
    r, s, e = results, results.stored, results.efficiency
    out = []
    # the goal
    verdicts = goal_verdicts(e)
    lines = []
    met = {}
    for family in e.families:
        parts = []
        for n in GOAL_SIZES:
            if n not in e.sizes:
                continue
            i = e.sizes.index(n)
            acc = np.nanmean(e.families[family][i], axis=1)
            vs = [f"{verdicts[(family, b, n)].phrase} {b} ({_mean_text(e.baselines[b][i])})" for b in (NCM, KNN)]
            parts.append(f"at n = {n} it reaches {_mean_text(acc)}, {vs[0]} and {vs[1]}")
        met[family] = all(verdicts[(family, b, n)].verdict == "higher"
                          for b in (NCM, KNN) for n in GOAL_SIZES if n in e.sizes)
        lines.append(f"- **{family}**: " + "; ".join(parts) + ".")
    winners = [f for f, ok in met.items() if ok]
    head = ("**The goal is met** by " + " and ".join(winners) if winners else "**The goal is not met**")
    out.append(head + f": beating nearest class mean and 1-NN at every n of {', '.join(map(str, GOAL_SIZES))} "
               f"(training seeds: {s.seeds}, paired by draw, 95%).\n\n" + "\n".join(lines))
    # budgets
    b = shared_budget(s)
    into = rise_into(s, b)
    further = [f"{_label(k)} (to {s.method_maps[k].budgets[-1]:,})" for k in into if s.method_maps[k].budgets[-1] > b]
    rising = [f"{_label(k)} ({s.method_maps[k].budgets[-2]:,} → {s.method_maps[k].budgets[-1]:,} images, "
              f"{_mean_text(s.method_maps[k].best_validation()[:, -2])} → "
              f"{_mean_text(s.method_maps[k].best_validation()[:, -1])})" for k in still_rising(s)]
    top = best_at_largest(s)
    if top == r.full_method:
        top_text = (f" At each map's largest budget the most accurate on validation is still the chosen "
                    f"{_label(top)}.")
    else:
        v = largest_budgets_vs_choice(s, r.full_method)
        top_text = (f" At each map's largest budget the most accurate on validation is {_label(top)} "
                    f"({_mean_text(s.method_maps[top].best_validation()[:, -1])} at "
                    f"{s.method_maps[top].budgets[-1]:,} images), {v.phrase} the chosen {_label(r.full_method)} "
                    f"({_mean_text(s.method_maps[r.full_method].best_validation()[:, -1])} at "
                    f"{s.method_maps[r.full_method].budgets[-1]:,}; paired by seed).")
    code_rising = [_code_label(k) for k, rec in s.code_maps.items() if code_plateau(rec).verdict == "higher"]
    out.append(f"**Budget.** Into the budget every map shares ({b:,} images per class model), the best validation "
               f"accuracy still rose for {', '.join(_label(k) for k in into) if into else 'no full-parameter method'}"
               f"{'; these ran further: ' + ', '.join(further) if further else ''}. From each map's second-largest "
               f"budget to its largest it still rose for {'; '.join(rising) if rising else 'no full-parameter method'}."
               + top_text + f" On the code class models' training curves the last gain was distinguishable from "
               f"zero for {', '.join(code_rising) if code_rising else 'none'}.")
    # held-out scoring
    effects = {_label(k): held_out_effect(m).verdict for k, m in s.method_maps.items()}
    counts = {v: sum(1 for x in effects.values() if x == v) for v in ("higher", "lower", "not distinguishable")}
    out.append(f"**Held-out scoring.** Scoring on held-out pixels instead of every pixel gave a higher best "
               f"validation accuracy for {counts['higher']} of the {len(effects)} full-parameter maps, a lower one "
               f"for {counts['lower']}, and one not distinguishable for {counts['not distinguishable']}.")
    # MAML
    d = r.diagnosis
    start = d.errors[d.lrs[0]][0].mean()
    trained, half = d.accuracy[d.lrs[0]], d.accuracy[d.lrs[1]]
    cmp = compare_seeds(trained[:, None], half[:, None], paired=True)
    steps = d.errors[d.lrs[0]].shape[0] - 1
    path = d.errors[d.lrs[0]].mean(axis=1)  # mean error after 0..steps steps at its own step
    k = int(np.argmax(path))
    overshoot = (f" On the way it overshoots: after {k} step{'s' if k > 1 else ''} the error is {path[k]:.3f}, "
                 f"{path[k] / path[0]:.1f}× where it started." if k > 0 else "")
    out.append(f"**MAML.** Its start is not a picture: before adapting, MAML's model of a {d.digit} has a "
               f"reconstruction error of {start:.3f} on its own digit, against {d.blank_error:.3f} for drawing "
               f"nothing. It is a launch point for the steps it was trained through. Its validation accuracy is "
               f"{_mean_text(trained)} when classified at the step it meta-trained with ({d.lrs[0]:g}) and "
               f"{_mean_text(half)} at half that step: the first is {cmp.phrase} the second.{overshoot} After "
               f"{steps} steps "
               f"at its own step its error is {d.errors[d.lrs[0]][-1].mean():.3f}; at half the step, "
               f"{d.errors[d.lrs[1]][-1].mean():.3f}.")
    # backprop2's question: a setting between "adapt too freely" and "too little"?
    inside, edge = [], []
    for key, m in s.method_maps.items():
        if key[1] != (20,):
            continue
        with np.errstate(all="ignore"):
            per_knob = np.nanmean(np.nanmax(m.validation[:, -1], axis=2), axis=0)  # [K], best fraction, seed mean
        if np.isnan(per_knob).all():
            continue
        k = int(np.nanargmax(per_knob))
        (inside if 0 < k < len(per_knob) - 1 else edge).append(
            f"{registry.name(key[0])} ({m.knob} {m.knob_values[k]:g})")
    dims = sorted(k for k in s.code_maps if k[2])  # the Fourier reconstructor at every code dimension
    code_means = [code_validation(s.code_maps[k]).mean() for k in dims]
    if len(dims) > 2:
        j = int(np.argmax(code_means))
        where = ("inside the range" if 0 < j < len(dims) - 1 else
                 "at the smallest code" if j == 0 else "at the largest code")
        code_text = (f" Over the code dimension, validation accuracy peaks at d = {dims[j][0]}, {where} "
                     f"({', '.join(f'{k[0]}: {v:.3f}' for k, v in zip(dims, code_means))}; means over seeds).")
    else:
        code_text = ""
    out.append("**A setting between adapting too freely and too little.** At the largest budget, the knob value "
               "with the best mean validation accuracy lies inside the range for "
               f"{', '.join(inside) if inside else 'no method'} and at an end of it for "
               f"{', '.join(edge) if edge else 'no method'}." + code_text)
    # the best of each family, and the code dimension
    best_full = max(s.method_maps, key=lambda k: np.nanmean(np.where(np.isfinite(s.method_maps[k].test),
                                                                     s.method_maps[k].test, np.nan)))
    code_rows = ", ".join(f"d = {k[0]}{'' if k[2] else ' (2-20-1)'}: {_mean_text(code_validation(rec))}"
                          for k, rec in s.code_maps.items())
    out.append(f"**The trained models on all 300 images per digit.** The most accurate full-parameter class models "
               f"on the test images are {_label(best_full)} ({_mean_text(s.method_maps[best_full].test)}); the maps "
               f"choose {_label(r.full_method)} on validation images. Code class models, validation accuracy "
               f"by code dimension: {code_rows}; the chosen one ({_code_label(r.code_key)}) reaches "
               f"{_mean_text(s.code_maps[r.code_key]['test'])} on the test images." + _cells_text(r))
    # moved digits
    rob = r.moved
    j = max(i for i, c in enumerate(rob.conditions) if c.angle == 0)
    k = max(i for i, c in enumerate(rob.conditions) if c.angle > 0) if any(c.angle for c in rob.conditions) else None
    parts = []
    for other in (NCM + MOVED, KNN + MOVED, f"{CODE} + edit search"):
        if other in rob.accuracy:
            verdict = robustness_verdict(rob, CODE, other, j)
            phrase = {"higher": "more accurate than", "lower": "less accurate than"}.get(
                verdict, "not distinguishable from")
            parts.append(f"{phrase} {other} ({rob.mean(other)[j]:.3f})")
    text = (f"**Moved digits.** On digits shifted by {rob.conditions[j].shift:g} pixels the code class models reach "
            f"{rob.mean(CODE)[j]:.3f} (unmoved: {rob.mean(CODE)[0]:.3f}); nearest class mean trained on unmoved digits "
            f"goes from {rob.mean(NCM)[0]:.3f} to {rob.mean(NCM)[j]:.3f}. The code class models are "
            + ", ".join(parts) + ".")
    searched = f"{CODE} + edit search"
    if searched in rob.accuracy:
        text += (f" With the search over moves of the pictures (the first training seed only, so without an "
                 f"interval) the code class models reach {rob.mean(searched)[0]:.3f} on unmoved digits and "
                 f"{rob.mean(searched)[j]:.3f} at {rob.conditions[j].shift:g} pixels, where 1-NN trained on moved "
                 f"copies reaches {rob.mean(KNN + MOVED)[j]:.3f}.")
    if k is not None:
        text += (f" Turned by {rob.conditions[k].angle:g}°: code class models {rob.mean(CODE)[k]:.3f}, nearest "
                 f"class mean {rob.mean(NCM)[k]:.3f}, 1-NN on moved copies {rob.mean(KNN + MOVED)[k]:.3f}.")
    out.append(text)
    out.append("**Invariances hold exactly.** Editing a reconstructor's input-layer biases moves its picture, its "
               "input weights rotate it, its output layer changes contrast and background; each edited picture "
               f"matches the transformed original to within {max(r.edits.errors.values()):.0e}.")
    return "\n\n".join(out)
