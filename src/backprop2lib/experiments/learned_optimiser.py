"""Chapter 6's experiments: the learned optimiser of Andrychowicz et al. (2016), meta-trained on several
seeds, against SGD, NAG, RMSprop and Adam tuned for each reported horizon, on held-out instances.

The meta-training is too long for the ``paper`` budget on a 2-core CPU (10⁵ MNIST optimisee steps
per run, 9 runs), so the learned optimisers come from the trained-model store
(:mod:`backprop2lib.store`; which ones: :mod:`backprop2lib.learned.catalogue`; what a job does,
including the learned optimiser's test runs: :mod:`backprop2lib.learned.jobs`). ``smoke`` trains
them afresh at a tiny scale. The chapter runs the baselines here, on the same test instances
(:mod:`backprop2lib.learned.families`), tunes them on validation instances, and compares.

Sections, one function each: :func:`load_models`, :func:`compare_section` (quadratics, MNIST and
each generalisation setting), :func:`paper_comparison`; tables, figures, :func:`check_claims` and
:func:`findings` (the numbers the text quotes) present them.

Every verdict reads the training seeds: the seed-level verdict pairs each seed's mean over the
shared test instances with the baseline's (Student's t across seeds); the per-seed verdicts are
paired over test instances (normal 95% CI). Ratios to tuned Adam are given per seed and as the
mean and t-interval across seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..claims import Claims
from ..learned.catalogue import LONGER, SIZES, trained_models
from ..learned.catalogue import recipe_of as catalogue_recipe_of
from ..learned.jobs import family_of
from ..optim import LR_GRID, STEPPERS, Curve, LRChoice, run as run_optimiser, tune_lr_at
from ..optim.curve import compare_curves
from ..profiles import Profile, resolve_profile
from ..stats import Comparison, SeedSummary, compare, summarise, summarise_seeds, interval_text
from ..store import StoredModel, obtain
from ..tables import markdown_table

PAPER: dict[str, tuple[float | None, float, str]] = {
    "quadratic, 100": (0.040, 0.051, ""), "MNIST, 100": (0.25, 0.36, ""), "MNIST, 200": (0.21, 0.30, ""),
    "40 units, 100": (0.19, 0.33, ""), "2 layers, 100": (0.33, 0.70, ""),
    "ReLU, 100": (None, 0.37, "fails: no progress (≈2.3 → 2.7)"),
}
"""(LSTM, Adam, note) at a step, digitised from the paper's figures (``shared/reference/learned-optimizer.md``).
The ReLU LSTM is not a number there: the paper shows it making no progress."""
PAPER_NAG = {"MNIST, 100": 0.33, "MNIST, 200": 0.26}
"""NAG's loss in the paper's MNIST figure, better than its Adam (0.36, 0.30)."""
LONG = "MNIST, 1,000 steps"  # the catalogue's label of the long-horizon evaluation
GENERALISATION = ("40 units", "2 layers", "ReLU", LONG)


# ---------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """What chapter 6 runs itself: the baselines, their grid and how many validation instances tune them.

    The learned optimisers' sizes and budgets are in :data:`backprop2lib.learned.catalogue.SIZES`
    (stated in the chapter). Against the published setting (Andrychowicz et al. 2016 and the
    released code), in ``paper``: MNIST is the bundled 5,000-image subset (3,000 / 1,000 / 1,000
    images for train / validation / test), not the 70,000 images of MNIST; MNIST meta-training
    runs 1,000 episodes of one network (10⁵ optimisee steps) where the released code runs 10,000
    (10⁶); validation every 100 episodes on 20 networks (released: every 1,000). The baselines on
    MNIST and on quadratics are all four, tuned at every reported step; the generalisation tests
    compare with tuned Adam only (tuned for each network and step), the ratio the paper's claims
    rest on.
    """

    profile: str
    device: str  # where the baselines run and any model is trained (the stored ones record their own)
    quad_tuning: int  # validation quadratics every baseline's rate is tuned on
    mnist_tuning: int  # validation-split MNIST networks ...
    shift_tuning: int  # ... per generalisation network (Adam only)
    long_tuning: int  # ... for the long horizon (Adam only)
    baselines: tuple[str, ...] = ("SGD", "NAG", "RMSprop", "Adam")
    lr_grid: tuple[float, ...] = (*LR_GRID, 3.0, 10.0)  # half-decades 1e-4 … 10

    @classmethod
    def for_profile(cls, profile: str | Profile | None, device: str | None = None) -> "Settings":
        """The profile's settings; ``device`` as :func:`backprop2lib.runtime.pick_device` chooses it by default."""
        from ..runtime import pick_device

        p = resolve_profile(profile)
        return cls(p.name, str(pick_device(device)), quad_tuning=p.select(smoke=20, paper=100), mnist_tuning=p.select(smoke=2, paper=20),
                   shift_tuning=p.select(smoke=2, paper=10), long_tuning=p.select(smoke=2, paper=5))

    @property
    def sizes(self) -> dict:
        """The learned optimisers' sizes in this profile (:data:`~backprop2lib.learned.catalogue.SIZES`)."""
        return SIZES[self.profile]


# ---------------------------------------------------------------------------------------- loading

def recipe_of(model: StoredModel) -> str:
    """The recipe's display name (a key of :data:`~backprop2lib.learned.catalogue.RECIPES`) of a stored model."""
    return catalogue_recipe_of(model.spec)


def load_models(settings: Settings, log: Callable[[str], None] = print) -> dict[tuple[str, str], list[StoredModel]]:
    """Every learned optimiser of the profile, loaded from the store (or trained now, saying why):
    ``{(problem, recipe): [model per training seed]}``, seeds in order."""
    out: dict[tuple[str, str], list[StoredModel]] = {}
    for spec in trained_models(settings.profile):
        model = obtain(spec, log=log, device=settings.device)
        out.setdefault((spec.config["family"]["problem"], recipe_of(model)), []).append(model)
    for models in out.values():
        models.sort(key=lambda m: m.spec.config["training_seed"])
    return out


def learned_curve(models: Sequence[StoredModel], label: str, name: str) -> Curve:
    """The stored test runs of evaluation ``label``, every seed: a curve of S seeds × test instances."""
    runs = [m.record["evaluations"][label] for m in models]
    steps = runs[0]["steps"]
    if any(list(r["steps"]) != list(steps) for r in runs):
        raise ValueError(f"models: the seeds' {label!r} runs were recorded at different steps")
    losses = np.concatenate([np.asarray(r["losses"], dtype=np.float64) for r in runs], axis=1)
    bad = ~np.isfinite(losses)
    diverged_at = np.where(bad.any(0), np.asarray(steps)[bad.argmax(0)], -1)
    return Curve(name, losses, diverged_at, steps=steps, problem=label, n_seeds=len(models))


def _evaluation_entry(models: Sequence[StoredModel], label: str) -> dict:
    return next(e for e in models[0].spec.config["evaluations"] if e["label"] == label)


# ---------------------------------------------------------------------------------------- one section

@dataclass(frozen=True, eq=False)
class Section:
    """One setting (quadratics, MNIST, a generalisation network or the long horizon): the learned optimisers'
    curves (S seeds × test rows), the baselines' tuned rates per reported step and their test curves."""

    label: str
    steps: tuple[int, ...]  # the reported steps
    training_horizon: int  # the learned optimisers' episode length
    learned: dict[str, Curve]  # recipe -> curve over seeds
    choices: dict[str, dict[int, LRChoice]]  # baseline -> step -> tuned rate
    baselines: dict[tuple[str, int], Curve]  # (baseline, step it was tuned for) -> one run on the test rows
    n_test: int
    tuning_instances: int

    @property
    def n_seeds(self) -> dict[str, int]:
        return {name: c.n_seeds for name, c in self.learned.items()}

    def baseline(self, name: str, step: int, n_seeds: int = 1) -> Curve:
        """Baseline ``name`` tuned for ``step``, its test rows repeated for ``n_seeds`` seeds (it has no
        training seed: each learned seed is paired with the same runs)."""
        c = self.baselines[(name, step)]
        return Curve(c.name, np.tile(c.losses, (1, n_seeds)), np.tile(c.diverged_at, n_seeds), steps=c.steps,
                     problem=c.problem, n_seeds=n_seeds)

    def ratio(self, recipe: str, step: int, reference: str = "Adam") -> SeedSummary:
        """Learned ÷ tuned ``reference`` at ``step``: each seed's mean loss over the test rows over the
        reference's, and their mean and t-interval across seeds."""
        learned = self.learned[recipe].seed_summary(step).per_seed
        ref = self.baselines[(reference, step)].summary(step).mean
        return summarise_seeds((learned / ref)[:, None])

    def verdict(self, recipe: str, other: str, step: int) -> Comparison:
        """Seed level: ``recipe`` against baseline ``other`` (tuned for ``step``) or another recipe."""
        a = self.learned[recipe]
        b = self.learned[other] if other in self.learned else self.baseline(other, step, a.n_seeds)
        return compare_curves(a, b, step, step)

    def per_seed(self, recipe: str, other: str, step: int) -> list[str]:
        """Each seed's own paired verdict over the test rows against baseline ``other`` tuned for ``step``."""
        a = self.learned[recipe].by_seed(step)
        b = self.baselines[(other, step)].at(step)
        return [compare(row, b, paired=True).verdict for row in a]

    def progress(self, recipe: str, step: int) -> list[str]:
        """Per seed: the loss at ``step`` against the loss at the start (paired over test rows)."""
        c = self.learned[recipe]
        return [compare(a, s, paired=True).verdict for a, s in zip(c.by_seed(step), c.by_seed(0))]


def compare_section(label: str, models: Mapping[str, Sequence[StoredModel]], baselines: Sequence[str],
                    grid: Sequence[float], tuning_instances: int, steps: Sequence[int] | None = None,
                    device: str = "cpu") -> Section:
    """The learned optimisers' stored test runs of ``label`` and ``baselines`` tuned at each reported step on
    validation instances, then run on the same test instances."""
    first = next(iter(models.values()))
    entry = _evaluation_entry(first, label)
    family = family_of(entry, device)
    horizon = entry["steps"]
    training = first[0].spec.config["meta"]["episode_length"]
    if steps is None:
        steps = sorted({min(training, horizon), horizon})
    learned = {recipe: learned_curve(ms, label, recipe) for recipe, ms in models.items()}
    recorded = learned[next(iter(learned))].steps
    choices, curves = {}, {}
    tuning = family.tuning(tuning_instances)
    test = family.test(entry["n"])
    every = int(np.gcd.reduce(np.diff(recorded))) if len(recorded) > 1 else horizon
    for name in baselines:
        choices[name] = tune_lr_at(lambda lr, cls=STEPPERS[name]: cls(lr), grid, tuning, list(steps))
        for step in steps:  # a rate tuned for an earlier step runs to that step only (the figure shows the last)
            curves[(name, step)] = run_optimiser(STEPPERS[name](choices[name][step].best), test, step,
                                                 record_every=math.gcd(every, step))
    return Section(label, tuple(steps), training, learned, choices, curves, entry["n"], tuning_instances)


# ---------------------------------------------------------------------------------------- run

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    models: dict[tuple[str, str], list[StoredModel]]
    quadratics: Section
    mnist: Section
    generalisation: dict[str, Section] = field(default_factory=dict)


def run(settings: Settings, log: Callable[[str], None] = print) -> Results:
    """Every section of the chapter, in the notebook's order."""
    models = load_models(settings, log)
    quad = {r: ms for (p, r), ms in models.items() if p == "quadratic"}
    mnist = {r: ms for (p, r), ms in models.items() if p == "mnist"}
    return Results(settings, models,
                   compare_section("quadratic", quad, settings.baselines, settings.lr_grid, settings.quad_tuning,
                                   device=settings.device),
                   compare_section("MNIST", mnist, settings.baselines, settings.lr_grid, settings.mnist_tuning,
                                   device=settings.device),
                   generalisation_sections(settings, models))


def generalisation_sections(settings: Settings, models: Mapping[tuple[str, str], list[StoredModel]]
                            ) -> dict[str, Section]:
    """The MNIST-trained LSTMs (as published, with random scaling, and meta-trained twice as long) on the networks
    they never saw and over 1,000 steps, against tuned Adam."""
    lstms = {r: ms for (p, r), ms in models.items() if p == "mnist" and r.startswith("LSTM")}
    out = {}
    for label in GENERALISATION:
        first = next(iter(lstms.values()))
        horizon = _evaluation_entry(first, label)["steps"]
        training = first[0].spec.config["meta"]["episode_length"]
        steps = sorted({min(training, horizon), horizon}) if label != LONG else [horizon]
        out[label] = compare_section(label, lstms, ("Adam",), settings.lr_grid,
                                     settings.long_tuning if label == LONG else settings.shift_tuning, steps,
                                     device=settings.device)
    return out


# ---------------------------------------------------------------------------------------- tables

def _short(verdicts: Sequence[str]) -> str:
    return ", ".join({"lower": "lower", "higher": "higher", "not distinguishable": "n.d."}[v] for v in verdicts)


def section_table(section: Section, reference: str = "Adam") -> str:
    """Per reported step: each learned recipe's loss (mean ± t-CI across seeds), its ratio to tuned Adam
    (per seed, then mean ± t-CI), the seed-level verdict against tuned Adam and each seed's own verdict;
    each baseline's loss (± CI over test instances) with the rate tuned for that step."""
    rows = []
    for step in section.steps:
        ref = section.baselines[(reference, step)].summary(step).mean
        for recipe, curve in section.learned.items():
            r = section.ratio(recipe, step, reference)
            rows.append([str(step), f"{recipe} ({curve.n_seeds} seeds)", interval_text(curve.seed_summary(step)),
                         interval_text(r, ".2f"), section.verdict(recipe, reference, step).verdict,
                         _short(section.per_seed(recipe, reference, step)),
                         str(int((curve.diverged_at >= 0).sum()))])
        for name in section.choices:
            c = section.baselines[(name, step)]
            s = c.summary(step)
            rows.append([str(step), f"{name} (lr {section.choices[name][step].best:g})", str(s),
                         f"{s.mean / ref:.2f}", "", "", str(int(c.diverged.sum()))])
    return markdown_table(["step", "optimiser", "loss", f"÷ tuned {reference}", f"vs tuned {reference}, seed level",
                           "vs tuned Adam, each seed", "diverged runs"], rows)


def baselines_table(sections: Mapping[str, Section]) -> str:
    """Every tuned learning rate, by setting, baseline and reported step, and whether it sits at the grid's edge."""
    rows = [[label, name, str(step), f"{c.best:g}", "yes" if c.at_edge else "no", str(section.tuning_instances)]
            for label, section in sections.items() for name, by_step in section.choices.items()
            for step, c in by_step.items()]
    return markdown_table(["setting", "baseline", "tuned for step", "lr", "at grid edge", "tuning instances"], rows)


def generalisation_table(results: Results) -> str:
    """Both LSTMs on every generalisation setting: ratio to Adam tuned for that network and step, verdicts,
    and whether each seed makes progress from the start (the paper's ReLU LSTM did not)."""
    rows = []
    for label, section in results.generalisation.items():
        for step in section.steps:
            for recipe, curve in section.learned.items():
                rows.append([label, str(step), recipe, interval_text(curve.seed_summary(step)),
                             interval_text(section.ratio(recipe, step), ".2f"), section.verdict(recipe, "Adam", step).verdict,
                             _short(section.per_seed(recipe, "Adam", step)), _short(section.progress(recipe, step)),
                             str(int((curve.diverged_at >= 0).sum()))])
    return markdown_table(["setting", "step", "learned", "loss", "÷ tuned Adam", "vs tuned Adam, seed level",
                           "each seed", "vs its start, each seed", "diverged runs"], rows)


@dataclass(frozen=True)
class PaperRow:
    setting: str
    paper: str  # the paper's LSTM ÷ Adam, or its note
    ratio: SeedSummary  # here, across seeds
    step: int
    verdict: str  # here, seed level, LSTM vs tuned Adam


def paper_comparison(results: Results) -> list[PaperRow]:
    """Each setting of the paper's figures that was run here: LSTM ÷ tuned Adam there and here."""
    sections = {"quadratic": results.quadratics, "MNIST": results.mnist, **results.generalisation}
    rows = []
    for key, (lstm, adam, note) in PAPER.items():
        label, step = key.rsplit(", ", 1)
        section = sections.get(label)
        step = int(step)
        if section is None or step not in section.steps:
            continue
        paper = note or f"{lstm / adam:.2f}"
        rows.append(PaperRow(key, paper, section.ratio("LSTM", step), step,
                             section.verdict("LSTM", "Adam", step).verdict))
    return rows


def paper_table(rows: Sequence[PaperRow]) -> str:
    return markdown_table(["setting", "paper: LSTM ÷ Adam", "here: LSTM ÷ tuned Adam (seeds)", "here: seed-level verdict"],
                          [[r.setting, r.paper, interval_text(r.ratio, ".2f"), r.verdict] for r in rows])


def budget_table(models: Mapping[tuple[str, str], Sequence[StoredModel]]) -> str:
    """Each recipe's meta-training: per seed, the episode chosen on validation and whether the validation
    loss was still falling at the end (the last quarter of the budget beat the best before it by over 1%)."""
    rows = []
    for (problem, recipe), seeds in models.items():
        for m in seeds:
            v = np.asarray(m.record["validation"], dtype=float)
            late = v[:, 0] >= 0.75 * v[-1, 0]
            # still improving: the last quarter's checks beat the best before it by more than 1%
            falling = bool(late.any() and (~late).any() and v[late, 1].min() < 0.99 * v[~late, 1].min())
            rows.append([problem, recipe, str(m.spec.config["training_seed"]),
                         f"{m.record['optimisee_steps']:,}", str(m.record["best_episode"] + 1),
                         str(len(m.record["episode_losses"])), f"{m.record['best_validation']:.3g}",
                         "yes" if falling else "no", str(len(m.record["bad_truncations"]))])
    return markdown_table(["problem", "learned", "seed", "optimisee steps", "best episode", "episodes",
                           "best validation loss", "still falling at the end", "skipped truncations"], rows)


def cost_table(models: Mapping[tuple[str, str], Sequence[StoredModel]]) -> str:
    """Meta-training and evaluation cost per recipe (mean over seeds) and where the models were trained."""
    rows = []
    for (problem, recipe), models in models.items():
        train = np.array([m.record["meta_training_seconds"] for m in models])
        steps = np.array([m.record["optimisee_steps"] for m in models])
        evals = np.array([sum(e["seconds"] for e in m.record["evaluations"].values()) for m in models])
        info = models[0].info
        rows.append([problem, recipe, str(len(models)), f"{train.mean():.0f}", f"{(steps / train).mean():.0f}",
                     f"{evals.mean():.0f}", f"{info.get('host', '?')}, {info.get('threads', '?')} thread(s)",
                     models[0].source.split(" (")[0]])
    return markdown_table(["problem", "learned", "seeds", "meta-training s (mean)", "optimisee steps / s",
                           "evaluation s (mean)", "trained on", "here"], rows)


# ---------------------------------------------------------------------------------------- figures

_HORIZON_LINE = dict(color="#bbbbbb", lw=0.8, ls=":")


def budget_figure(models: Mapping[tuple[str, str], Sequence[StoredModel]]):
    """Validation loss against optimisee steps of meta-training, every seed, one panel per problem."""
    import matplotlib.pyplot as plt

    from .. import methods

    keys = {"LSTM": "lstm", "GRU": "gru", "LSTM, random scaling": "lstm_scaled", LONGER: "lstm_2x"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, problem in zip(axes, ("quadratic", "mnist")):
        for (p, recipe), seeds in models.items():
            if p != problem:
                continue
            for i, m in enumerate(seeds):
                v = np.asarray(m.record["validation"], dtype=float)
                per_episode = m.record["optimisee_steps"] / max(1, len(m.record["episode_losses"]))
                ax.plot((v[:, 0] + 1) * per_episode, v[:, 1], "o-", ms=2.5, lw=1,
                        color=methods.color(keys[recipe]), alpha=0.85, label=recipe if i == 0 else None)
        ax.set(yscale="log", xlabel="optimisee steps of meta-training", ylabel="validation loss",
               title={"quadratic": "quadratics", "mnist": "MNIST 784-20-10 sigmoid"}[problem])
        ax.legend(fontsize=8)
    return fig


def section_figure(sections: Sequence[Section], step_for_baselines: Callable[[Section], int] | None = None):
    """One panel per section: every learned recipe (mean over seeds, t band) and the baselines tuned for
    the last reported step, the training horizon dotted."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_curves

    fig, axes = plt.subplots(1, len(sections), figsize=(5.2 * len(sections), 3.8), squeeze=False)
    for ax, section in zip(axes[0], sections):
        step = section.steps[-1] if step_for_baselines is None else step_for_baselines(section)
        curves = [*section.learned.values(), *(section.baselines[(n, step)] for n in section.choices)]
        plot_curves(ax, curves, xlabel="optimisee steps", title=section.label, interval="normal")
        ax.axvline(section.training_horizon, **_HORIZON_LINE)
    axes[0, 0].legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------- claims, findings

def seeds_line(results: Results) -> str:
    counts = {}
    for (problem, recipe), models in results.models.items():
        counts.setdefault(problem, set()).add(len(models))
    q, m = counts["quadratic"], counts["mnist"]
    return (f"training seeds: {'/'.join(map(str, sorted(m)))} per MNIST recipe, "
            f"{'/'.join(map(str, sorted(q)))} per quadratic cell")


def _early_stopped(model: StoredModel) -> bool:
    """The stored parameters are from the validation check with the lowest loss (and there was one)."""
    checks = [(int(e), float(v)) for e, v in model.record["validation"]]
    if not checks:
        return False
    episode, value = min(checks, key=lambda c: (c[1], c[0]))
    return model.record["best_episode"] == episode and math.isclose(model.record["best_validation"], value,
                                                                     rel_tol=1e-5)


def check_claims(results: Results) -> Claims:
    """The chapter's claims that hold at every scale it runs (the seed-level verdicts, which need the stored
    ``paper`` models, are printed by :func:`verdicts_text` and quoted from the run in the text)."""
    claims = Claims()
    print(seeds_line(results))
    sections = {"quadratic": results.quadratics, "MNIST": results.mnist, **results.generalisation}
    claims.check("No learned-optimiser test run diverged on the quadratics or the MNIST network it was trained on",
                 all((c.diverged_at < 0).all() for s in (results.quadratics, results.mnist)
                     for c in s.learned.values()))
    # pairing: the baselines start where the learned optimisers start, instance by instance
    claims.check("Learned optimisers and baselines start from the same test instances in every setting (paired)",
                 all(np.allclose(c.by_seed(0), s.baselines[key].at(0)[None, :], rtol=1e-5, atol=1e-6)
                     for s in sections.values() for c in s.learned.values() for key in s.baselines))
    claims.check("Every learned optimiser is the checkpoint of its run with the lowest validation loss",
                 all(_early_stopped(m) for ms in results.models.values() for m in ms))
    return claims


def verdicts_text(results: Results) -> str:
    """Every seed-level verdict of the chapter, with its interval (the ``paper`` models decide them)."""
    lines = []
    for section in (results.quadratics, results.mnist, *results.generalisation.values()):
        for step in section.steps:
            for recipe in section.learned:
                others = [n for n in section.choices] + [r for r in section.learned if r != recipe and recipe == "LSTM"]
                for other in others:
                    lines.append(f"{section.label}, step {step}: {recipe} vs {other}: "
                                 f"{section.verdict(recipe, other, step)}")
    return "\n".join(lines)


def findings(results: Results) -> dict[str, str]:
    """The numbers and verdicts the chapter's text quotes (glued into the prose). Steps are named by role:
    ``h`` the training horizon (or the first reported step), ``end`` the last reported step."""
    out: dict[str, str] = {"seeds_line": seeds_line(results)}
    q, m = results.quadratics, results.mnist
    z = results.settings.sizes
    out.update(q_seeds=str(z["q_seeds"]), m_seeds=str(z["m_seeds"]), m_episodes=f"{z['m_episodes']:,}",
               m_steps=f"{z['m_episodes'] * z['m_length']:,}", m_test=str(z["m_test"][0]),
               q_test=str(z["q_test"][0]), shift_test=str(z["m_shift"][0]), long_test=str(z["m_long"][0]),
               q_episodes=f"{z['q_episodes']:,}")
    slugs = {"LSTM": "lstm", "GRU": "gru", "LSTM, random scaling": "scaled", LONGER: "lstm2x"}
    for key, section in (("q", q), ("m", m)):
        for role, step in (("h", section.steps[0]), ("end", section.steps[-1])):
            p = f"{key}_{role}"
            out[p] = f"{step:,}"
            adam = section.baselines[("Adam", step)].summary(step).mean
            for recipe in section.learned:
                slug = slugs[recipe]
                out[f"{p}_{slug}_ratio"] = interval_text(section.ratio(recipe, step), ".2f")
                out[f"{p}_{slug}_per_seed"] = _short(section.per_seed(recipe, "Adam", step))
                for name in section.choices:
                    out[f"{p}_{slug}_vs_{name.lower()}"] = section.verdict(recipe, name, step).phrase
                out[f"{p}_{slug}_beats_all"] = ("lower than every tuned baseline" if all(
                    section.verdict(recipe, n, step).verdict == "lower" for n in section.choices)
                    else "not lower than every tuned baseline (the table says which)")
            for name in section.choices:
                out[f"{p}_{name.lower()}_lr"] = f"{section.choices[name][step].best:g}"
                out[f"{p}_{name.lower()}_ratio"] = f"{section.baselines[(name, step)].summary(step).mean / adam:.2f}"
            if "GRU" in section.learned:
                out[f"{p}_gru_vs_lstm"] = section.verdict("GRU", "LSTM", step).phrase
            if "LSTM, random scaling" in section.learned:
                out[f"{p}_scaled_vs_lstm"] = section.verdict("LSTM, random scaling", "LSTM", step).phrase
            if LONGER in section.learned:
                out[f"{p}_lstm2x_vs_lstm"] = section.verdict(LONGER, "LSTM", step).phrase
    for label, section in results.generalisation.items():
        slug = {"40 units": "wide", "2 layers": "deep", "ReLU": "relu", LONG: "long"}[label]
        for role, step in (("h", section.steps[0]), ("end", section.steps[-1])):
            p = f"{slug}_{role}"
            out[p] = f"{step:,}"
            for recipe in section.learned:
                r = slugs[recipe]
                out[f"{p}_{r}_ratio"] = interval_text(section.ratio(recipe, step), ".2f")
                out[f"{p}_{r}_vs_adam"] = section.verdict(recipe, "Adam", step).phrase
                out[f"{p}_{r}_per_seed"] = _short(section.per_seed(recipe, "Adam", step))
                out[f"{p}_{r}_progress"] = _short(section.progress(recipe, step))
                out[f"{p}_{r}_loss"] = interval_text(section.learned[recipe].seed_summary(step))
            out[f"{p}_adam_loss"] = str(section.baselines[("Adam", step)].summary(step))
            out[f"{p}_scaled_vs_lstm"] = section.verdict("LSTM, random scaling", "LSTM", step).phrase
            if LONGER in section.learned:
                out[f"{p}_lstm2x_vs_lstm"] = section.verdict(LONGER, "LSTM", step).phrase
    for key, (lstm, adam, note) in PAPER.items():  # the paper's side, whatever steps this profile reports
        name = {"quadratic, 100": "paper_q", "MNIST, 100": "paper_m100", "MNIST, 200": "paper_m200",
                "40 units, 100": "paper_wide", "2 layers, 100": "paper_deep", "ReLU, 100": "paper_relu"}[key]
        out[name] = note or f"{lstm / adam:.2f}"
    out["paper_nag"] = (f"NAG {PAPER_NAG['MNIST, 100']:g} against Adam's {PAPER['MNIST, 100'][1]:g} at step 100, "
                        f"{PAPER_NAG['MNIST, 200']:g} against {PAPER['MNIST, 200'][1]:g} at step 200")
    lstm = results.models.get(("mnist", "LSTM"), [])
    if lstm:
        secs = np.array([mm.record["meta_training_seconds"] for mm in lstm])
        steps = np.array([mm.record["optimisee_steps"] for mm in lstm])
        out["m_train_minutes"] = f"{secs.mean() / 60:.0f}"
        out["m_steps_per_s"] = f"{(steps / secs).mean():.0f}"
        out["m_where"] = lstm[0].source.split(" (")[0]
    return out
