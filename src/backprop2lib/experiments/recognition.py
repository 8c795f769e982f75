"""Chapter 5's experiments: recognition by reconstruction, the knob sweeps (the trade-off map) and
accuracy against data.

Protocol. Class models meta-train on the train split of the bundled subset. Every knob is
swept on validation images and the best setting is chosen there by accuracy; test images are
used once, for the chosen setting. For the data-efficiency curve the test split stays fixed and
what varies between repeats ("draws") is which n training images per digit are used, drawn
from the 400 non-test images per digit (the train and validation splits together).

The chapter's sections, one function each: :func:`train_methods` (ten class models per method),
:func:`tradeoff_map` (every method's knob swept on validation images, the best setting chosen),
:func:`evaluate_on_test` (the chosen settings and the ordinary classifiers on the test images),
:func:`collage` (what the best method's class model draws), :func:`invariance_edits` (parameter
edits that translate, rotate and recolour the drawing), :func:`accuracy_against_data` (test
accuracy against training images per digit) and :func:`calibrate` (temperature and calibration
of the best setting). :func:`run` runs them all; the ``*_table``, ``*_text`` and ``*_figure``
functions present a section's result; :func:`check_claims` checks the chapter's findings.

The building blocks the sections share (:class:`Adaptation`, :func:`apply_knob`,
:func:`run_setting`, :func:`sweep`, :func:`data_efficiency`, ...) come first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import methods as registry
from ..claims import Claims
from ..data.mnist import MNIST, Split, bundled_split
from ..optim.errors import DivergenceError
from ..models.mlp import MLP
from ..profiles import Profile, resolve_profile
from ..recognition import invariance
from ..recognition.baselines import BASELINES
from ..recognition.class_models import METHODS, ClassModels, MetaSettings, train_class_models
from ..recognition.classifier import Classification, auroc_per_class, classify, fit_temperature
from ..recognition.few_shot import CodeExperiment, code_draw, pool_and_test
from ..recognition.images import images_to_tasks
from ..recognition.pictures import (Calibration, calibration, hidden_maps, plot_confusion, plot_images,
                                    plot_reliability, reconstructions)
from ..recognition.priors import ClassPriors
from ..recognition.tuning import (KNOBS, SCORES, Adaptation, Setting, apply_knob, best_setting,
                                  default_adaptation, run_setting, separation, stable_priors, sweep)
from ..scale.adapt import InnerLoop, adapt
from ..stats import Comparison as Verdict, compare_seeds, mean_and_ci, wilson_interval
from ..tables import markdown_table

COMPARED = ("reptile", "maml", "quadratic", "quartic", "scale_gradient", "eve")

def adapt_class_model(model: MLP, priors: ClassPriors, adaptation: Adaptation, images: MNIST, digit: int, *,
                      device="cpu") -> torch.Tensor:
    """Digit ``digit``'s class model adapted to each of ``images``, as the classifier does it: parameters [N, P]."""
    if not 0 <= digit < priors.n_classes:
        raise ValueError(f"digit: expected a class 0..{priors.n_classes - 1}, got {digit!r}")
    x, y = images_to_tasks(images, device=device, dtype=priors.mean.dtype)
    start, regulariser, rates = stable_priors(priors.to(device), adaptation.lr).rows(
        torch.full((len(images),), digit, device=device))
    with torch.no_grad():
        return adapt(model, start, x, y, loop=InnerLoop(max_steps=adaptation.steps, lr=adaptation.lr),
                     regulariser=regulariser, rates=rates).params


def in_and_out_of_class(result: Classification, labels) -> tuple[np.ndarray, np.ndarray]:
    """Adapted losses of each image under its own class model, and under the nine others."""
    losses = result.losses.numpy()
    labels = np.asarray(labels)
    own = np.zeros(losses.shape, dtype=bool)
    own[np.arange(len(labels)), labels] = True
    return losses[own], losses[~own]


@dataclass
class EfficiencyResult:
    sizes: list[int]
    draws: int
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)  # classifier -> [len(sizes), draws]
    seconds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # why an entry is NaN (e.g. no spread from 1 image)


def _accuracy_after_training(method, model, train, test, settings, adaptation, knob_value, *, seed, chunk,
                             device) -> float:
    models = train_class_models(method, model, train, settings, seed=seed, device=device)
    priors, adapt = models.priors, adaptation
    if knob_value is not None:
        priors, adapt = apply_knob(priors, adaptation, KNOBS[method], knob_value)
    return run_setting(model, priors, test, adapt, chunk=chunk, device=device).accuracy


def data_efficiency(method: str, model: MLP, settings: MetaSettings, adaptation: Adaptation,
                    knob_value: float | None, sizes: Sequence[int], draws: int, *,
                    baselines: Mapping[str, Callable] = BASELINES, split: Split | None = None,
                    test_images: int | None = None, chunk: int = 256, device="cpu",
                    progress: Callable | None = None) -> EfficiencyResult:
    """Test accuracy against training images per digit, for ``method`` and every baseline.

    Draw d of size n takes n images per digit from the pool with seed d (the same images for every
    classifier). ``knob_value`` (chosen on validation) is applied to the method's knob.
    """
    pool, test = pool_and_test(split)
    if test_images is not None:
        test = test.subset(slice(0, test_images))  # the split is in seeded random order: a mix of digits
    out = EfficiencyResult(list(sizes), draws)
    names = [method, *baselines]
    for name in names:
        out.accuracy[name] = np.full((len(sizes), draws), np.nan)
        out.seconds[name] = 0.0
    test_pixels = test.pixels()
    for i, n in enumerate(sizes):
        for d in range(draws):
            train = pool.per_class(n, seed=d)
            start = time.perf_counter()
            try:
                out.accuracy[method][i, d] = _accuracy_after_training(method, model, train, test, settings, adaptation,
                                                                      knob_value, seed=d, chunk=chunk, device=device)
            except (ValueError, DivergenceError) as err:  # e.g. Eve cannot measure a spread from one image
                out.failures.append(f"{method}, n = {n}, draw {d}: {err}")
            out.seconds[method] += time.perf_counter() - start
            for name, make in baselines.items():
                start = time.perf_counter()
                clf = make().fit(train.pixels(), train.labels)
                out.accuracy[name][i, d] = float((clf.predict(test_pixels) == test.labels.numpy()).mean())
                out.seconds[name] += time.perf_counter() - start
            if progress is not None:
                progress(1)
    return out


@dataclass
class CodeEfficiency:
    """Test accuracy against training images per digit: the code class models ``[sizes, seeds, draws]``, each
    baseline ``[sizes, draws]`` (plain, and ", moved copies" trained on the augmented set)."""

    sizes: list[int]
    draws: int
    seeds: tuple[int, ...]
    code: np.ndarray
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def verdict(self, baseline: str, size: int) -> Verdict:
        """The code models against ``baseline`` at ``size`` images per digit, across training seeds, paired by
        draw (the same training images): "higher" means more accurate."""
        i = self.sizes.index(size)
        code = self.code[i]  # [S, D]
        return compare_seeds(code, np.broadcast_to(self.baselines[baseline][i], code.shape), paired=True)


def code_data_efficiency(experiment: CodeExperiment, sizes: Sequence[int], draws: int, seeds: Sequence[int], *,
                         baselines: Mapping[str, Callable] = BASELINES, split: Split | None = None,
                         test_images: int | None = None, device="cpu",
                         progress: Callable | None = None) -> CodeEfficiency:
    """:func:`~backprop2lib.recognition.few_shot.code_draw` for every size and draw: the code class models of
    every seed and each baseline (plain and on moved copies) on the same images."""
    pool, test = pool_and_test(split)
    if test_images is not None:
        test = test.subset(slice(0, test_images))  # the split is in seeded random order: a mix of digits
    seeds = tuple(seeds)
    out = CodeEfficiency(list(sizes), draws, seeds, np.full((len(sizes), len(seeds), draws), np.nan))
    for i, n in enumerate(sizes):
        for d in range(draws):
            result = code_draw(experiment, n, d, seeds, baselines, pool=pool, test=test, device=device)
            out.code[i, :, d] = result.code
            for name, value in result.baselines.items():
                out.baselines.setdefault(name, np.full((len(sizes), draws), np.nan))[i, d] = value
            for name, value in result.seconds.items():
                out.seconds[name] = out.seconds.get(name, 0.0) + value
            if progress is not None:
                progress(1)
    return out


# ---------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """Every size, grid and seed of chapter 5.

    backprop2 (``shared/seeds``) describes the classifier but publishes no experiment to match, so
    there is no published scale; ``full`` is our own larger run. The ``paper`` profile
    meta-trains every class model for 100 meta-iterations (Reptile, MAML, meta-gradient scale; 1,000
    in ``full``) or 5 outer iterations of 50 images (backprop2's learners; 10 of 300 in ``full``),
    sweeps every knob on 20 validation images per digit (100 in ``full``), tests on 1,000 test
    images and repeats the data-efficiency curve over 3 draws (5 in ``full``). The ``smoke``
    profile (CI) reduces all of these (3 meta-iterations, 2 outer iterations of 5 images, 2 sweep
    images per digit, two knob values, sizes 1 and 5, one draw, 100 test images, 5 collage steps).
    """

    # sizes that depend on the profile
    meta_iterations: int  # Reptile / MAML / scale-gradient meta-iterations per class model
    outer_iterations: int  # backprop2's learners (quadratic, quartic, Eve): outer iterations ...
    tasks_per_iteration: int  # ... of this many images each
    sweep_images: int  # validation images per digit in every sweep
    steps_values: tuple[int, ...]  # the knob values swept: adaptation steps (Reptile, MAML)
    strength_values: tuple[float, ...]  # ... the regulariser's c (quadratic, quartic, scale gradient)
    decay_values: tuple[float, ...]  # ... Eve's κ
    sizes: tuple[int, ...]  # training images per digit in the data-efficiency curve
    draws: int  # draws of the training images per size
    test_images: int  # test images (the split's first, in its seeded random order)
    collage_steps: int  # line-search steps of the collage's drawings
    # the reconstructor and the class models' inner loop
    hidden: tuple[int, ...] = (20,)
    inner_steps: int = 5
    inner_lr: float = 0.3  # on E: the fixed adaptation step of Reptile, MAML and the meta-gradient scale
    chunk: int = 4  # images adapted at once: small chunks keep the activations in cache (see the benchmark)
    # seeds
    split_seed: int = 0  # the bundled subset's train / validation / test split
    class_model_seed: int = 0  # the class models' start and their training draws
    sweep_seed: int = 0  # which validation images the sweeps use
    # the collage and the parameter edits
    collage_digit: int = 3
    collage_examples: int = 6
    collage_units: int = 4  # hidden units shown, the most varied over the image
    translate_pixels: int = 4
    rotate_degrees: float = 90.0  # a multiple of 90, so the rotated grid is the grid
    zoom_factor: float = 1.3
    contrast: float = 0.5
    background: float = 0.3

    def __post_init__(self) -> None:
        if self.rotate_degrees % 90:
            raise ValueError(f"rotate_degrees: expected a multiple of 90 (a pixel-exact check), got {self.rotate_degrees}")
        if not 0 <= self.collage_digit <= 9:
            raise ValueError(f"collage_digit: expected a digit 0..9, got {self.collage_digit}")

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's)."""
        p = resolve_profile(profile)
        return cls(
            meta_iterations=p.select(smoke=3, paper=100, full=1000),
            outer_iterations=p.select(smoke=2, paper=5, full=10),
            tasks_per_iteration=p.select(smoke=5, paper=50, full=300),
            sweep_images=p.select(smoke=2, paper=20, full=100),
            steps_values=p.select(smoke=(0, 5), paper=(0, 1, 2, 5, 10, 20)),
            strength_values=p.select(smoke=(0.0, 1.0), paper=(0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)),
            decay_values=p.select(smoke=(0.0, 1.0), paper=(0.0, 0.2, 1.0, 5.0, 25.0)),
            sizes=p.select(smoke=(1, 5), paper=(1, 5, 10, 50, 100, 400)),
            draws=p.select(smoke=1, paper=3, full=5),
            test_images=p.select(smoke=100, paper=1000),
            collage_steps=p.select(smoke=5, paper=100),
        )

    @property
    def meta(self) -> MetaSettings:
        """The class models' meta-training budget (the same for every method)."""
        return MetaSettings(iterations=self.meta_iterations, inner_steps=self.inner_steps, inner_lr=self.inner_lr,
                            outer_iterations=self.outer_iterations, tasks_per_iteration=self.tasks_per_iteration)

    def knob_values(self, knob: str) -> tuple[float, ...]:
        values = {"steps": self.steps_values, "strength": self.strength_values, "decay": self.decay_values}
        if knob not in values:
            raise ValueError(f"knob: unknown {knob!r}; valid: {', '.join(values)}")
        return values[knob]

    def model(self) -> MLP:
        """backprop2's reconstructor: pixel coordinates → Gaussian units → brightness."""
        return MLP((2, *self.hidden, 1), activation="gaussian")

    def split(self) -> Split:
        return bundled_split(seed=self.split_seed)


def setup_text(settings: Settings) -> str:
    model, split = settings.model(), settings.split()
    return (f"reconstructor: {model.sizes}, Gaussian units, P = {model.n_params}; "
            f"images: train {len(split.train)}, validation {len(split.validation)}, test {len(split.test)}")


# ---------------------------------------------------------------------------------------- sections

@dataclass(frozen=True, eq=False)
class Training:
    """Every method's ten class models, trained on the train split from one start."""

    class_models: dict[str, ClassModels]  # method id -> its class models


def train_methods(settings: Settings, *, device: torch.device | str = "cpu") -> Training:
    model, split = settings.model(), settings.split()
    return Training({method: train_class_models(method, model, split.train, settings.meta,
                                                seed=settings.class_model_seed, device=device)
                     for method in COMPARED})


@dataclass(frozen=True, eq=False)
class TradeOff:
    """Every method's knob swept on the same validation images, and the setting each chooses there."""

    images: MNIST  # the sweep's validation images
    sweeps: dict[str, list[Setting]]  # method -> one Setting per knob value
    chosen: dict[str, Setting]  # method -> its most accurate setting
    best_method: str  # the method whose chosen setting is most accurate


def tradeoff_map(settings: Settings, training: Training, *, device: torch.device | str = "cpu") -> TradeOff:
    model, images = settings.model(), settings.split().validation.per_class(settings.sweep_images,
                                                                             seed=settings.sweep_seed)
    sweeps = {method: sweep(model, cm.priors, method, images, default_adaptation(method, settings.meta),
                            settings.knob_values(KNOBS[method]), chunk=settings.chunk, device=device)
              for method, cm in training.class_models.items()}
    chosen = {m: best_setting(s) for m, s in sweeps.items()}
    best = max(chosen, key=lambda m: chosen[m].accuracy)  # ties: the earlier method
    return TradeOff(images, sweeps, chosen, best)


@dataclass(frozen=True, eq=False)
class ChosenRun:
    """One method's chosen setting, classified on the test images."""

    setting: Setting  # the test run (knob and value are the chosen ones)
    priors: ClassPriors  # the priors with the knob applied
    adaptation: Adaptation  # ... and the adaptation


@dataclass(frozen=True, eq=False)
class HeldOut:
    images: MNIST
    runs: dict[str, ChosenRun]  # method -> its chosen setting on the test images
    baselines: dict[str, float]  # ordinary classifier -> test accuracy (trained on the train split)

    @property
    def labels(self) -> np.ndarray:
        return self.images.labels.numpy()

    def interval(self, accuracy: float) -> tuple[float, float]:
        """95% Wilson interval of a test accuracy."""
        n = len(self.images)
        return wilson_interval(int(round(accuracy * n)), n)


def evaluate_on_test(settings: Settings, training: Training, tradeoff: TradeOff, *,
                    device: torch.device | str = "cpu") -> HeldOut:
    model, split = settings.model(), settings.split()
    images = split.test.subset(slice(0, settings.test_images))  # the split is in seeded random order
    runs = {}
    for method, chosen in tradeoff.chosen.items():
        priors, adaptation = apply_knob(training.class_models[method].priors,
                                        default_adaptation(method, settings.meta), chosen.knob, chosen.value)
        result = run_setting(model, priors, images, adaptation, knob=chosen.knob, value=chosen.value,
                             chunk=settings.chunk, device=device)
        runs[method] = ChosenRun(result, priors, adaptation)
    baselines = {}
    for name, make in BASELINES.items():
        clf = make().fit(split.train.pixels(), split.train.labels)
        baselines[name] = float((clf.predict(images.pixels()) == images.labels.numpy()).mean())
    return HeldOut(images, runs, baselines)


@dataclass(frozen=True, eq=False)
class Collage:
    """The best method's class model of one digit, adapted at length to validation images of that digit."""

    method: str
    digit: int
    images: MNIST
    adapted: torch.Tensor  # [N, P]
    pictures: torch.Tensor  # [N, 28, 28] reconstructions
    maps: torch.Tensor  # [N, hidden, 28, 28] hidden units' activations
    units: list[int]  # the units shown: the most varied over the image


def collage(settings: Settings, tradeoff: TradeOff, test: HeldOut, *,
            device: torch.device | str = "cpu") -> Collage:
    model, best = settings.model(), test.runs[tradeoff.best_method]
    validation = settings.split().validation
    images = validation.subset(validation.labels == settings.collage_digit).subset(slice(0, settings.collage_examples))
    # the chosen setting may barely adapt (it does not, if it is 0 steps); to show what a class model
    # can draw, adapt it longer here, with backprop2's line search
    drawing = Adaptation(steps=settings.collage_steps, lr=None)
    adapted = adapt_class_model(model, best.priors, drawing, images, settings.collage_digit, device=device)
    maps = hidden_maps(model, adapted)
    units = maps.flatten(2).std(-1).mean(0).argsort(descending=True)[:settings.collage_units].tolist()
    return Collage(tradeoff.best_method, settings.collage_digit, images, adapted, reconstructions(model, adapted),
                   maps, units)


@dataclass(frozen=True, eq=False)
class Edits:
    """The collage's first adapted model, edited and redrawn, and how far each edit is from the
    transformed original picture."""

    pictures: dict[str, torch.Tensor]  # edit -> [28, 28]
    errors: dict[str, float]  # transformation -> largest pixel difference, edited vs transformed


def invariance_edits(settings: Settings, drawing: Collage) -> Edits:
    model, w0 = settings.model(), drawing.adapted[0]
    pixel = 2 / 27  # grid spacing on [-1, 1]
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
    errors = {  # each edited picture against the transformed original (pixel-exact moves on the grid)
        "translation": float((pics[1].double()[:, n:] - base[:, :-n]).abs().max()),
        "rotation": float((pics[2].double() - torch.rot90(base, int(s.rotate_degrees // 90))).abs().max()),
        "contrast": float((pics[4].double() - (background + s.contrast * (base - background))).abs().max()),
        "background": float((pics[5].double() - (base + s.background)).abs().max()),
    }
    return Edits(dict(zip(edits, pics)), errors)


def accuracy_against_data(settings: Settings, tradeoff: TradeOff, *, device: torch.device | str = "cpu",
                          progress: Callable | None = None) -> EfficiencyResult:
    """The best method, its knob at the value chosen on validation images, against every baseline."""
    best = tradeoff.best_method
    return data_efficiency(best, settings.model(), settings.meta, default_adaptation(best, settings.meta),
                           tradeoff.chosen[best].value, settings.sizes, settings.draws,
                           split=settings.split(), test_images=settings.test_images, chunk=settings.chunk,
                           device=device, progress=progress)


@dataclass(frozen=True, eq=False)
class Calibrated:
    """The best setting's softmax temperature, fitted on the sweep's validation images, and the
    calibration of its test probabilities with it and at temperature 1."""

    method: str
    temperature: float
    fitted: Calibration
    raw: Calibration


def calibrate(tradeoff: TradeOff, test: HeldOut) -> Calibrated:
    best = tradeoff.best_method
    temperature = fit_temperature(tradeoff.chosen[best].result.losses, tradeoff.images.labels)
    result = test.runs[best].setting.result
    return Calibrated(best, temperature, calibration(result.with_temperature(temperature).probabilities, test.labels),
                      calibration(result.probabilities, test.labels))


@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    training: Training
    tradeoff: TradeOff
    test: HeldOut
    collage: Collage
    edits: Edits
    efficiency: EfficiencyResult
    calibration: Calibrated


def run(settings: Settings, *, device: torch.device | str = "cpu") -> Results:
    """Every section of the chapter, in the notebook's order."""
    training = train_methods(settings, device=device)
    tradeoff = tradeoff_map(settings, training, device=device)
    test = evaluate_on_test(settings, training, tradeoff, device=device)
    drawing = collage(settings, tradeoff, test, device=device)
    edits = invariance_edits(settings, drawing)
    efficiency = accuracy_against_data(settings, tradeoff, device=device)
    return Results(settings, training, tradeoff, test, drawing, edits, efficiency, calibrate(tradeoff, test))


# ---------------------------------------------------------------------------------------- tables, text

def training_table(training: Training) -> str:
    return markdown_table(["method", "prior used in adaptation", "knob swept", "meta-training (s, 10 classes)"],
                          [[m, cm.priors.method, KNOBS[m], f"{cm.seconds:.1f}"]
                           for m, cm in training.class_models.items()])


def sweep_table(tradeoff: TradeOff) -> str:
    rows = [[method, s.knob, f"{s.value:g}", "diverged" if s.diverged else f"{s.accuracy:.3f}",
             "–" if s.diverged else f"{s.mean_auroc:.3f}", f"{s.seconds:.1f}"]
            for method, settings in tradeoff.sweeps.items() for s in settings]
    return markdown_table(["method", "knob", "value", "validation accuracy", "mean AUROC", "seconds"], rows)


def separation_table(tradeoff: TradeOff) -> str:
    """Separation per digit at each method's chosen setting (AUROC of the digit's model's relative error)."""
    return markdown_table(["method", "setting"] + [f"digit {d}" for d in range(10)],
                          [[m, f"{s.knob} = {s.value:g}"] + [f"{a:.2f}" for a in s.auroc]
                           for m, s in tradeoff.chosen.items()])


def held_out_table(test: HeldOut, tradeoff: TradeOff) -> str:
    rows = []
    for method, run_ in test.runs.items():
        chosen, r = tradeoff.chosen[method], run_.setting
        lo, hi = test.interval(r.accuracy)
        rows.append([method, f"{chosen.knob} = {chosen.value:g}", f"{chosen.accuracy:.3f}",
                     f"{r.accuracy:.3f} [{lo:.3f}, {hi:.3f}]", f"{np.nanmean(r.auroc):.3f}",
                     f"{len(test.images) / r.seconds:.0f}"])
    for name, acc in test.baselines.items():
        lo, hi = test.interval(acc)
        rows.append([name, "–", "–", f"{acc:.3f} [{lo:.3f}, {hi:.3f}]", "–", "–"])
    return markdown_table(["classifier", "chosen setting", "validation accuracy", "test accuracy [95% CI]",
                           "mean AUROC", "images / s"], rows)


def edits_text(edits: Edits) -> str:
    return "largest pixel difference, edited vs transformed: " + str({k: f"{v:.1e}" for k, v in edits.errors.items()})


def efficiency_table(efficiency: EfficiencyResult) -> str:
    """Test accuracy, mean ± 95% t-interval over draws, per size; seconds over all draws."""
    rows = []
    for name, acc in efficiency.accuracy.items():
        m, ci = mean_and_ci(acc)
        rows.append([name] + [f"{a:.3f} ± {c:.3f}" for a, c in zip(m, ci)] + [f"{efficiency.seconds[name]:.0f}"])
    return markdown_table(["classifier"] + [f"n = {n}" for n in efficiency.sizes] + ["seconds (all draws)"], rows)


def failures_text(efficiency: EfficiencyResult) -> str:
    """The entries that could not be trained (NaN in the table): counted and shown, not hidden."""
    if not efficiency.failures:
        return "every classifier trained at every size and draw"
    return "\n".join(f"could not train: {failure}" for failure in efficiency.failures)


def calibration_text(cal: Calibrated) -> str:
    return (f"temperature {cal.temperature:.3g} (fitted on validation); expected calibration error on the test "
            f"images: {cal.fitted.ece:.3f} (at temperature 1: {cal.raw.ece:.3f})")


def summary_text(results: Results) -> str:
    """The numbers behind the findings: the best setting, each sweep's shape, the small-n comparison."""
    t, best = results.tradeoff, results.tradeoff.best_method
    lines = [f"best method: {best} ({t.chosen[best].knob} = {t.chosen[best].value:g}); "
             f"test accuracy {results.test.runs[best].setting.accuracy:.3f}"]
    for method, settings in t.sweeps.items():
        acc = np.array([s.accuracy for s in settings], dtype=float)
        i = int(np.nanargmax(acc))
        shape = ("sweet spot inside the range" if 0 < i < len(acc) - 1 else
                 "best at the smallest value" if i == 0 else "best at the largest value")
        lines.append(f"{method}: {shape}; accuracy {np.nanmin(acc):.3f} … {np.nanmax(acc):.3f}; "
                     f"diverged settings: {sum(s.diverged for s in settings)}")
    e = results.efficiency
    ncm, knn, ours = e.accuracy["nearest class mean"], e.accuracy["kNN (k=1)"], e.accuracy[best]
    for i, n in enumerate(e.sizes):
        if n <= 10:
            lines.append(f"n = {n}: {best} {np.nanmean(ours[i]):.3f} vs nearest class mean {ncm[i].mean():.3f} "
                         f"and kNN {knn[i].mean():.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- figures

def tradeoff_figure(tradeoff: TradeOff):
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharey=True)
    for ax, (method, settings) in zip(axes.ravel(), tradeoff.sweeps.items()):
        xs = np.arange(len(settings))
        ax.plot(xs, [s.accuracy for s in settings], "o-", color=registry.color(method), label="accuracy")
        ax.plot(xs, [s.mean_auroc for s in settings], "s--", color="#777777", label="mean AUROC")
        ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
        ax.set_xticks(xs, [f"{s.value:g}" for s in settings], fontsize=8)
        ax.set(title=method, xlabel=settings[0].knob, ylim=(0, 1))
    axes[0, 0].legend(fontsize=8)
    return fig


def separation_figure(tradeoff: TradeOff):
    """The best method's adapted errors under the own and the other digits' models, at the smallest,
    the chosen and the largest knob value."""
    show = tradeoff.best_method
    settings = tradeoff.sweeps[show]
    labels = tradeoff.images.labels.numpy()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    for ax, s in zip(axes, [settings[0], tradeoff.chosen[show], settings[-1]]):
        if s.diverged:
            ax.set_title(f"{s.knob} = {s.value:g}: diverged")
            continue
        own, other = in_and_out_of_class(s.result, labels)
        bins = np.linspace(min(own.min(), other.min()), max(np.quantile(own, 0.99), np.quantile(other, 0.99)), 40)
        ax.hist(other, bins=bins, density=True, alpha=0.5, color="#999999", label="other digits' models")
        ax.hist(own, bins=bins, density=True, alpha=0.6, color=registry.color(show), label="own digit's model")
        ax.set(title=f"{show}, {s.knob} = {s.value:g}: accuracy {s.accuracy:.2f}", xlabel="adapted reconstruction error")
    axes[0].legend(fontsize=8)
    return fig


def collage_figure(drawing: Collage):
    n = len(drawing.images)
    fig, axes = plt.subplots(2 + len(drawing.units), n, figsize=(1.6 * n, 10), squeeze=False)
    plot_images(axes[0], drawing.images.pixels().reshape(-1, 28, 28), titles=["image"] * n)
    plot_images(axes[1], drawing.pictures.clamp(0, 1), titles=["reconstruction"] * n)
    for row, unit in enumerate(drawing.units):
        plot_images(axes[2 + row], drawing.maps[:, unit], titles=[f"unit {unit}"] * n)
    return fig


def edits_figure(edits: Edits):
    fig, axes = plt.subplots(1, len(edits.pictures), figsize=(1.8 * len(edits.pictures), 2.2))
    plot_images(axes, torch.stack(list(edits.pictures.values())).clamp(0, 1), titles=list(edits.pictures))
    return fig


def efficiency_figure(efficiency: EfficiencyResult, best_method: str):
    fig, ax = plt.subplots()
    for name, acc in efficiency.accuracy.items():
        m, ci = mean_and_ci(acc)
        ax.errorbar(efficiency.sizes, m, yerr=ci, marker="o", ms=4, capsize=3, label=name,
                    color=registry.color(name), lw=2.0 if name == best_method else 1.0)
    ax.axhline(0.1, color="#bbbbbb", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="training images per digit", ylabel="test accuracy", ylim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def confusion_figure(test: HeldOut, cal: Calibrated):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_confusion(axes[0], test.runs[cal.method].setting.result.confusion(test.labels))
    axes[0].set_title(f"{cal.method}: test confusion")
    plot_reliability(axes[1], cal.fitted, label=cal.method)
    axes[1].legend(fontsize=8)
    axes[1].set_title(f"reliability (temperature {cal.temperature:.3g}, fitted on validation)")
    return fig


# ---------------------------------------------------------------------------------------- claims

def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return them."""
    test = results.test
    best_test = test.runs[results.tradeoff.best_method].setting.accuracy
    best_lo, best_hi = test.interval(best_test)
    ncm_lo, _ = test.interval(test.baselines["nearest class mean"])
    claims = Claims()
    claims.check("The best reconstruction classifier is well above chance on the test images (95% interval above 0.2)",
                 best_lo > 0.2)
    claims.check("Editing input-layer biases translates, input weights rotate, output weights and bias change contrast "
                 "and background, exactly (max pixel difference < 1e-4)", max(results.edits.errors.values()) < 1e-4)
    claims.check("Nearest class mean, trained on the same 300 images per digit, beats the best reconstruction "
                 "classifier on the test images (its 95% interval lies above)", ncm_lo > best_hi)
    return claims
