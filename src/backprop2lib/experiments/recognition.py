"""Chapter 5's experiments: the knob sweeps (the trade-off map) and accuracy against data.

Protocol. Class models meta-train on the train split of the bundled subset. Every knob is
swept on validation images and the best setting is chosen there by accuracy; test images are
used once, for the chosen setting. For the data-efficiency curve the test split stays fixed and
what varies between repeats ("draws") is which n training images per digit are used, drawn
from the 400 non-test images per digit (the train and validation splits together).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..data.mnist import MNIST, Split, bundled_split
from ..optim.errors import DivergenceError
from ..models.mlp import MLP
from ..recognition.baselines import BASELINES
from ..recognition.class_models import ClassModels, MetaSettings, train_class_models
from ..recognition.classifier import Classification, auroc_per_class, classify
from ..recognition.images import images_to_tasks
from ..recognition.priors import ClassPriors
from ..scale.adapt import InnerLoop, adapt

KNOBS = {"reptile": "steps", "maml": "steps", "quadratic": "strength", "quartic": "strength",
         "scale_gradient": "strength", "eve": "decay"}
"""The one hyper-parameter each method's trade-off is swept along."""

SCORES = ("reconstruction", "objective")


@dataclass(frozen=True)
class Adaptation:
    """How the class models adapt to an image when classifying it, and how they are compared."""

    steps: int = 10
    lr: float | None = None  # None: backprop2's line search, one step size per (image, class model)
    score: str = "reconstruction"  # "objective": error plus the prior's penalty (see Classification.by_objective)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score: unknown {self.score!r}; valid: {', '.join(SCORES)}")

    def with_(self, **changes) -> "Adaptation":
        return replace(self, **changes)


def default_adaptation(method: str, settings: MetaSettings) -> Adaptation:
    """Adapt as the method was meta-trained: Reptile, MAML and the scale-gradient learner with the
    fixed step ``settings.inner_lr`` (on E), backprop2's learners (quadratic, quartic, Eve) with its
    line search; the number of steps is the meta-training inner loop's. Reptile and MAML meta-train
    with ``settings.maml_inner_lr``, twice this step in the chapter's settings (see MetaSettings)."""
    if method not in KNOBS:
        raise ValueError(f"method: unknown {method!r}; valid: {', '.join(KNOBS)}")
    fixed = method in ("reptile", "maml", "scale_gradient")
    return Adaptation(steps=settings.inner_steps, lr=settings.inner_lr if fixed else None)


def stable_priors(priors: ClassPriors, lr: float | None) -> ClassPriors:
    """Bound each prior's curvature so that a fixed step of size ``lr`` cannot blow up on the prior alone.

    Quadratic: the step multiplies w − μ by 1 − 2·lr·c/σ², so σ² >= 2·lr·c (at the bound one step
    lands on μ). Quartic: the curvature at its minima is 8·c·a, so a <= 1/(8·lr·c). Without this a
    strong regulariser would diverge rather than pull, and the sweep would measure the step size.
    """
    c = priors.strength
    if lr is None or priors.spread is None or c == 0 or priors.method == "eve":  # None: the line search guards
        return priors
    if priors.method == "quadratic":
        return priors.with_(spread=priors.spread.clamp_min(2 * lr * c))
    return priors.with_(spread=priors.spread.clamp_max(1 / (8 * lr * c)))


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


@dataclass
class Setting:
    """One point of a sweep: the knob's value and what classifying with it gave."""

    knob: str
    value: float
    accuracy: float
    auroc: np.ndarray  # per class [C]
    result: Classification | None  # None if adaptation diverged
    seconds: float
    diverged: bool = False

    @property
    def mean_auroc(self) -> float:
        return float(np.nanmean(self.auroc)) if not self.diverged else math.nan


def run_setting(model: MLP, priors: ClassPriors, images: MNIST, adaptation: Adaptation, *, knob: str = "",
                value: float = math.nan, chunk: int = 256, device="cpu") -> Setting:
    """Classify ``images`` with ``priors`` adapted as ``adaptation`` says; divergence is recorded, not raised."""
    x, y = images_to_tasks(images, device=device, dtype=priors.mean.dtype)
    start = time.perf_counter()
    try:
        res = classify(model, stable_priors(priors, adaptation.lr), x[0], y, steps=adaptation.steps,
                       lr=adaptation.lr, chunk=chunk)
    except DivergenceError:
        return Setting(knob, value, math.nan, np.full(priors.n_classes, np.nan), None,
                       time.perf_counter() - start, diverged=True)
    if adaptation.score == "objective":
        res = res.by_objective()
    labels = images.labels.cpu().numpy()
    return Setting(knob, value, res.accuracy(labels), separation(res, labels), res, time.perf_counter() - start)


def separation(result: Classification, labels) -> np.ndarray:
    """Per class, the AUROC of its model's loss *relative to the image's mean loss over all classes*.

    Raw losses mostly say how hard an image is to draw (a thick 8 is hard for every model), so
    each image's losses are centred first: the score asks whether class c's model fits this
    image better than the models fit it on average, the same comparison the classifier makes.
    """
    losses = result.losses
    return auroc_per_class(losses - losses.mean(1, keepdim=True), labels)


def sweep(model: MLP, models: ClassModels, images: MNIST, adaptation: Adaptation, values: Sequence[float], *,
          knob: str | None = None, chunk: int = 256, device="cpu") -> list[Setting]:
    """Classify ``images`` at every value of the method's knob (``KNOBS``, or ``knob``)."""
    knob = knob or KNOBS[models.method]
    out = []
    for v in values:
        priors, adapt = models.priors, adaptation
        if knob == "steps":
            adapt = adaptation.with_(steps=int(v))
        elif knob in ("strength", "decay"):
            priors = priors.with_(**{knob: float(v)})
        else:
            raise ValueError(f"knob: unknown {knob!r}; valid: steps, strength, decay")
        out.append(run_setting(model, priors, images, adapt, knob=knob, value=v, chunk=chunk, device=device))
    return out


def best_setting(settings: Sequence[Setting]) -> Setting:
    """The highest validation accuracy; ties go to the earlier (smaller) knob value."""
    ok = [s for s in settings if not s.diverged]
    if not ok:
        raise ValueError("settings: every setting diverged")
    return max(ok, key=lambda s: (s.accuracy, -settings.index(s)))


def in_and_out_of_class(result: Classification, labels) -> tuple[np.ndarray, np.ndarray]:
    """Adapted losses of each image under its own class model, and under the nine others."""
    losses = result.losses.numpy()
    labels = np.asarray(labels)
    own = np.zeros(losses.shape, dtype=bool)
    own[np.arange(len(labels)), labels] = True
    return losses[own], losses[~own]


def pool_and_test(split: Split | None = None) -> tuple[MNIST, MNIST]:
    """The 400 non-test images per digit (train + validation) and the fixed test split."""
    split = split or bundled_split()
    pool = MNIST(torch.cat([split.train.images, split.validation.images]),
                 torch.cat([split.train.labels, split.validation.labels]))
    return pool, split.test


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
    knob = KNOBS[method]
    if knob_value is not None and knob == "steps":
        adapt = adaptation.with_(steps=int(knob_value))
    elif knob_value is not None:
        priors = priors.with_(**{knob: float(knob_value)})
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
