"""Choosing how a method's class models adapt, on validation images: its knob, the held-out fraction and
the meta-training budget.

Every method has one knob that sets how freely its class models adapt (:data:`KNOBS`): the number of
adaptation steps for the learners of an initialisation (Reptile, MAML, first-order MAML, Meta-SGD, the
mean-only learner), the regulariser strength c for the quadratic, quartic and meta-gradient scale, Eve's
decay κ. A second knob is common to all: the fraction of each image's pixels held out from adaptation and
scored on (0: adapt on and score every pixel, :func:`..classifier.classify`'s ``adapt_masks``).

:func:`tune_and_test` is the protocol both the chapter's map and its data-efficiency cells use: meta-train
a method's class models at each budget and training seed, classify validation images at every (knob,
held fraction), choose per seed the most accurate pair at the largest budget, and (optionally) classify
test images once with that choice. Nothing is chosen on test images.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.mnist import MNIST
from ..models.mlp import MLP
from ..optim.errors import DivergenceError
from ..scale.adapt import InnerLoop, adapt
from .class_models import METHODS, MetaSettings, train_class_models
from .classifier import Classification, auroc_per_class, classify
from .codes import pixel_split
from .images import images_to_tasks
from .priors import ClassPriors

__all__ = ["KNOBS", "Adaptation", "default_adaptation", "apply_knob", "stable_priors", "Setting", "run_setting",
           "sweep", "best_setting", "separation", "meta_budget", "MethodMap", "tune_and_test", "trajectory"]

KNOBS = {"reptile": "steps", "maml": "steps", "fomaml": "steps", "meta_sgd": "steps", "mean_only": "steps",
         "quadratic": "strength", "quartic": "strength", "scale_gradient": "strength", "eve": "decay"}
"""The one hyper-parameter each method's trade-off is swept along."""
assert set(KNOBS) == set(METHODS)

SCORES = ("reconstruction", "objective")
HELD_OUT_SEED = 20_000
"""Which pixels of an image are held out when scoring: one split per image list, the same for every method."""


@dataclass(frozen=True)
class Adaptation:
    """How the class models adapt to an image when classifying it, and how they are compared."""

    steps: int = 10
    lr: float | None = None  # None: backprop2's line search, one step size per (image, class model)
    score: str = "reconstruction"  # "objective": error plus the prior's penalty (see Classification.by_objective)
    held_fraction: float = 0.0  # pixels held out from adaptation and scored on; 0: adapt on and score every pixel

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score: unknown {self.score!r}; valid: {', '.join(SCORES)}")
        if not 0 <= self.held_fraction < 1:
            raise ValueError(f"held_fraction: expected a fraction in [0, 1), got {self.held_fraction!r}")

    def with_(self, **changes) -> "Adaptation":
        return replace(self, **changes)


def default_adaptation(method: str, settings: MetaSettings) -> Adaptation:
    """Adapt as the method was meta-trained: with the step it meta-trained with (Reptile, MAML and first-order
    MAML ``settings.maml_inner_lr``, the meta-gradient scale ``settings.inner_lr``, Meta-SGD its learned
    per-parameter steps), backprop2's learners (mean-only, quadratic, quartic, Eve) with its line search; the
    number of steps is the meta-training inner loop's.

    MAML's start is meant for exactly the steps it was trained through: at another step size it is a poor
    start (chapter 5's diagnosis), so classifying with the step it trained with is part of giving it its chance.
    """
    if method not in KNOBS:
        raise ValueError(f"method: unknown {method!r}; valid: {', '.join(KNOBS)}")
    lr = {"reptile": settings.maml_inner_lr, "maml": settings.maml_inner_lr, "fomaml": settings.maml_inner_lr,
          "scale_gradient": settings.inner_lr, "meta_sgd": 1.0}.get(method)  # Meta-SGD: α is the step
    return Adaptation(steps=settings.inner_steps, lr=lr)


def apply_knob(priors: ClassPriors, adaptation: Adaptation, knob: str, value: float) -> tuple[ClassPriors, Adaptation]:
    """The priors and adaptation with ``knob`` set to ``value``: ``steps`` and ``held_fraction`` set the
    adaptation's, ``strength`` (the regulariser's c) and ``decay`` (Eve's κ) the priors'."""
    if knob == "steps":
        return priors, adaptation.with_(steps=int(value))
    if knob == "held_fraction":
        return priors, adaptation.with_(held_fraction=float(value))
    if knob in ("strength", "decay"):
        return priors.with_(**{knob: float(value)}), adaptation
    raise ValueError(f"knob: unknown {knob!r}; valid: steps, strength, decay, held_fraction")


def stable_priors(priors: ClassPriors, lr: float | None) -> ClassPriors:
    """Bound each prior's curvature so that a fixed step of size ``lr`` cannot blow up on the prior alone.

    Quadratic: the step multiplies w − μ by 1 − 2·lr·c/σ², so σ² >= 2·lr·c (at the bound one step
    lands on μ). Quartic: the curvature at its minima is 8·c·a, so a <= 1/(8·lr·c). Without this a
    strong regulariser would diverge rather than pull, and the sweep would measure the step size.
    """
    c = priors.strength
    if lr is None or priors.spread is None or c == 0 or priors.method in ("eve", "rates"):
        return priors  # None: the line search guards
    if priors.method == "quadratic":
        return priors.with_(spread=priors.spread.clamp_min(2 * lr * c))
    return priors.with_(spread=priors.spread.clamp_max(1 / (8 * lr * c)))


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


def held_out_masks(n_images: int, held_fraction: float, device="cpu") -> torch.Tensor | None:
    """The pixels adapted on (True) when ``held_fraction`` of each image is held out; None for 0."""
    if held_fraction == 0:
        return None
    return pixel_split(n_images, 1 - held_fraction, seed=HELD_OUT_SEED, device=device)


def run_setting(model: MLP, priors: ClassPriors, images: MNIST, adaptation: Adaptation, *, knob: str = "",
                value: float = math.nan, chunk: int = 256, device="cpu") -> Setting:
    """Classify ``images`` with ``priors`` adapted as ``adaptation`` says; divergence is recorded, not raised."""
    x, y = images_to_tasks(images, device=device, dtype=priors.mean.dtype)
    start = time.perf_counter()
    try:
        res = classify(model, stable_priors(priors, adaptation.lr), x[0], y, steps=adaptation.steps,
                       lr=adaptation.lr, chunk=chunk,
                       adapt_masks=held_out_masks(len(images), adaptation.held_fraction, device))
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


def sweep(model: MLP, priors: ClassPriors, method: str, images: MNIST, adaptation: Adaptation,
          values: Sequence[float], *, knob: str | None = None, chunk: int = 256, device="cpu") -> list[Setting]:
    """Classify ``images`` at every value of the method's knob (``KNOBS[method]``, or ``knob``)."""
    knob = knob or KNOBS[method]
    out = []
    for v in values:
        p, a = apply_knob(priors, adaptation, knob, v)
        out.append(run_setting(model, p, images, a, knob=knob, value=v, chunk=chunk, device=device))
    return out


def best_setting(settings: Sequence[Setting]) -> Setting:
    """The highest validation accuracy; ties go to the earlier (smaller) knob value."""
    ok = [s for s in settings if not s.diverged]
    if not ok:
        raise ValueError("settings: every setting diverged")
    return max(ok, key=lambda s: (s.accuracy, -settings.index(s)))


def meta_budget(method: str, settings: MetaSettings, images: int) -> MetaSettings:
    """``settings`` with the meta-training budget set to ``images`` images seen per class model: meta-iterations
    of ``meta_batch`` images (Reptile, MAML, first-order MAML, Meta-SGD, meta-gradient scale) or outer iterations
    of ``tasks_per_iteration`` images (backprop2's learners), rounded up."""
    if method not in KNOBS:
        raise ValueError(f"method: unknown {method!r}; valid: {', '.join(KNOBS)}")
    if isinstance(images, bool) or not isinstance(images, int) or images < 1:
        raise ValueError(f"images: expected a positive number of images seen, got {images!r}")
    if method in ("mean_only", "quadratic", "quartic", "eve"):
        return settings.with_(outer_iterations=-(-images // settings.tasks_per_iteration))
    return settings.with_(iterations=-(-images // settings.meta_batch))


@dataclass
class MethodMap:
    """One method's validation map and test accuracy: ``validation [S, B, K, F]`` accuracy over training seeds,
    budgets (images seen), knob values and held-out fractions (NaN where adaptation diverged), ``auroc`` the same
    shape (mean per-digit AUROC), ``seconds [S, B]`` of meta-training, per seed the chosen ``(knob value, held
    fraction)`` at the largest budget and its ``test`` accuracy (NaN without test images)."""

    method: str
    knob: str
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    knob_values: tuple[float, ...]
    held_fractions: tuple[float, ...]
    validation: np.ndarray
    auroc: np.ndarray
    seconds: np.ndarray
    chosen: list[tuple[float, float]]
    test: np.ndarray
    failures: list[str] = field(default_factory=list)  # meta-trainings that diverged: (seed, budget) and why

    @property
    def diverged(self) -> int:
        """Settings whose adaptation diverged (every seed, budget, knob and fraction)."""
        return int(np.isnan(self.validation).sum())

    def best_validation(self) -> np.ndarray:
        """Per seed and budget, the best validation accuracy over knob and fraction ``[S, B]``; NaN where every
        setting diverged."""
        v = self.validation.reshape(*self.validation.shape[:2], -1)
        finite = np.isfinite(v).any(-1)
        best = np.where(np.isfinite(v), v, -np.inf).max(-1)
        return np.where(finite, best, np.nan)

    def to_record(self) -> dict:
        """JSON-ready (the trained-model store's record)."""
        def floats(a):
            return [None if not np.isfinite(x) else float(f"{x:.6g}") for x in np.asarray(a, float).ravel()]
        return {"method": self.method, "knob": self.knob, "budgets": list(self.budgets), "seeds": list(self.seeds),
                "knob_values": list(self.knob_values), "held_fractions": list(self.held_fractions),
                "shape": list(self.validation.shape), "validation": floats(self.validation),
                "auroc": floats(self.auroc), "seconds": floats(self.seconds),
                "chosen": [list(c) for c in self.chosen], "test": floats(self.test), "failures": list(self.failures)}

    @classmethod
    def from_record(cls, record: dict) -> "MethodMap":
        def array(values, shape):
            return np.array([np.nan if v is None else v for v in values], dtype=float).reshape(shape)
        shape = tuple(record["shape"])
        return cls(record["method"], record["knob"], tuple(record["budgets"]), tuple(record["seeds"]),
                   tuple(record["knob_values"]), tuple(record["held_fractions"]), array(record["validation"], shape),
                   array(record["auroc"], shape), array(record["seconds"], shape[:2]),
                   [tuple(c) for c in record["chosen"]], array(record["test"], (shape[0],)),
                   list(record.get("failures", [])))


def tune_and_test(method: str, model: MLP, train: MNIST, validation: MNIST, test: MNIST | None, *,
                  meta: MetaSettings, budgets: Sequence[int], seeds: Sequence[int], knob_values: Sequence[float],
                  held_fractions: Sequence[float] = (0.0,), chunk: int = 16, device="cpu",
                  progress: Callable[[int], None] | None = None) -> tuple[MethodMap, list[ClassPriors]]:
    """Meta-train ``method``'s class models on ``train`` at every budget (images seen, :func:`meta_budget`) and
    seed; classify ``validation`` at every knob value × held-out fraction; per seed choose the most accurate at
    the largest budget (ties: the earlier knob value, then the earlier fraction) and classify ``test`` with it.
    Returns the map and each seed's class-model priors at the largest budget (None where its meta-training
    diverged: recorded in ``failures``, its accuracies NaN). ``progress(1)`` after each (seed, budget)."""
    if method not in KNOBS:
        raise ValueError(f"method: unknown {method!r}; valid: {', '.join(KNOBS)}")
    budgets, seeds = tuple(int(b) for b in budgets), tuple(int(s) for s in seeds)
    knob_values, held_fractions = tuple(knob_values), tuple(float(f) for f in held_fractions)
    for name, values in (("budgets", budgets), ("seeds", seeds), ("knob_values", knob_values),
                         ("held_fractions", held_fractions)):
        if not values:
            raise ValueError(f"{name}: expected at least one value")
    if list(budgets) != sorted(set(budgets)):
        raise ValueError(f"budgets: expected increasing budgets, got {budgets}")
    knob = KNOBS[method]
    S, B, K, F = len(seeds), len(budgets), len(knob_values), len(held_fractions)
    val = np.full((S, B, K, F), np.nan)
    auroc = np.full((S, B, K, F), np.nan)
    seconds = np.zeros((S, B))
    chosen, test_acc, last_priors = [], np.full(S, np.nan), []
    base = default_adaptation(method, meta)
    failures = []
    for i, seed in enumerate(seeds):
        trained = None
        for j, images in enumerate(budgets):
            started = time.perf_counter()
            try:
                trained = train_class_models(method, model, train, meta_budget(method, meta, images), seed=seed,
                                             device=device)
            except FloatingPointError as err:  # DivergenceError is one: counted, not hidden, not fatal
                seconds[i, j] = time.perf_counter() - started
                failures.append(f"seed {seed}, {images} images: {err}")
                trained = None
                if progress is not None:
                    progress(1)
                continue
            seconds[i, j] = trained.seconds
            for f, fraction in enumerate(held_fractions):
                settings = sweep(model, trained.priors, method, validation, base.with_(held_fraction=fraction),
                                 knob_values, chunk=chunk, device=device)
                val[i, j, :, f] = [s.accuracy for s in settings]
                auroc[i, j, :, f] = [s.mean_auroc for s in settings]
            if progress is not None:
                progress(1)
        last = val[i, -1]
        if trained is None or np.isnan(last).all():  # the largest budget diverged in training or in every setting
            chosen.append((math.nan, math.nan))
            last_priors.append(None if trained is None else trained.priors)
            continue
        k, f = np.unravel_index(np.nanargmax(last), last.shape)  # first maximum: earlier knob, then fraction
        chosen.append((float(knob_values[k]), held_fractions[f]))
        last_priors.append(trained.priors)
        if test is not None:
            p, a = apply_knob(trained.priors, base.with_(held_fraction=held_fractions[f]), knob, knob_values[k])
            test_acc[i] = run_setting(model, p, test, a, chunk=chunk, device=device).accuracy
    return (MethodMap(method, knob, budgets, seeds, knob_values, held_fractions, val, auroc, seconds, chosen,
                      test_acc, failures), last_priors)


def trajectory(model: MLP, priors: ClassPriors, images: MNIST, digit: int, *, lr: float | None, steps: int,
               device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Digit ``digit``'s class model adapting to each of ``images`` one step at a time (its method's regulariser
    or rates, steps of ``lr``): the reconstruction error on every pixel after 0..``steps`` steps ``[steps + 1, N]``
    and the parameters ``[steps + 1, N, P]``. What MAML's start looks like, and where each step takes it."""
    if not 0 <= digit < priors.n_classes:
        raise ValueError(f"digit: expected a class 0..{priors.n_classes - 1}, got {digit!r}")
    x, y = images_to_tasks(images, device=device, dtype=priors.mean.dtype)
    start, regulariser, rates = stable_priors(priors.to(device), lr).rows(
        torch.full((len(images),), digit, device=device))
    w = start.expand(len(images), -1) if start.dim() == 1 else start
    errors, params = [], [w]
    with torch.no_grad():
        for _ in range(steps):
            res = adapt(model, w, x, y, loop=InnerLoop(max_steps=1, lr=lr), regulariser=regulariser, rates=rates)
            errors.append(res.error_before)
            w = res.params
            params.append(w)
        errors.append(adapt(model, w, x, y, loop=InnerLoop(max_steps=0, lr=lr)).error_before)
    return torch.stack(errors).cpu(), torch.stack(params).cpu()
