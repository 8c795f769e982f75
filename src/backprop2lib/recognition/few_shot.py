"""Classifying from a few images per digit: one draw of training images, code class models of several
seeds trained on it in one batch, and pixel baselines on the same images (and on their moved copies).

The protocol is the data-efficiency curve's: the test split stays fixed; a *draw* is which ``n``
images per digit are taken from the pool (the train split; the validation split stays for choosing
settings), seeded by the draw's index, the same images for every classifier and every job. :func:`code_draw` is one cell of that curve;
chapter 5's driver (``experiments.recognition``) loops it in a notebook, and the trained-model
store's jobs (:mod:`.jobs`) run it when the cells are too many for a chapter's budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from ..data.mnist import MNIST, N_CLASSES, Split, bundled_split
from .codes import (CodeClassModels, CodeFit, CodeReconstructor, CodeSettings, adapt_codes, adapt_codes_with_edits,
                    pixel_split, train_code_models)
from .images import moved_copies

MOVED = ", moved copies"
"""Suffix of a baseline trained on the moved copies of the drawn images."""
TEST_SPLIT_SEED = 10_000  # the held-out pixels of the test images: one split, every draw and seed


def pool_and_test(split: Split | None = None) -> tuple[MNIST, MNIST]:
    """The images draws are taken from (the train split, 300 per digit) and the fixed test split; the validation
    split is left for choosing settings."""
    split = split or bundled_split()
    return split.train, split.test


@dataclass(frozen=True)
class CodeExperiment:
    """Code class models (:mod:`.codes`) as a classifier: the reconstructor, its meta-training, and test-time
    adaptation (``starts`` starts of ``steps`` steps, the best refined ``refine`` steps, on ``points`` of the
    adapted pixels) with the score on the ``held_fraction`` of pixels held out (+ ``prior_weight`` × the code's
    penalty). Pixel baselines are also trained on ``augment_copies`` moved copies of each training image, the
    moves the class models train on (fair chances)."""

    reconstructor: CodeReconstructor
    training: CodeSettings
    starts: int = 8
    steps: int = 5
    refine: int = 20
    points: int | None = 128
    held_fraction: float = 0.5
    prior_weight: float = 0.0
    augment_copies: int = 20


@dataclass
class DrawResult:
    """One draw: the class models (rows seed-major), each seed's test accuracy ``[S]``, each baseline's."""

    models: CodeClassModels
    code: np.ndarray
    baselines: dict[str, float]
    seconds: dict[str, float]


def code_scores(models: CodeClassModels, experiment: CodeExperiment, images: torch.Tensor, *,
                held_fraction: float | None = None, seed: int = 0, edits=None, **overrides) -> CodeFit:
    """Every class model adapted to ``images [N, 784]`` as ``experiment`` says (its starts, steps, refinement and
    points, any of them replaced by ``overrides``), adapting on all but ``held_fraction`` of each image's pixels
    (default: the experiment's; the split drawn from :data:`TEST_SPLIT_SEED`) and scored on the rest. ``edits``
    (a list of ``((dx, dy), angle)`` moves of the pictures): also search over them, keeping per image and class
    the best (:func:`.codes.adapt_codes_with_edits`)."""
    e = experiment
    fraction = e.held_fraction if held_fraction is None else held_fraction
    device = models.w.device
    masks = pixel_split(len(images), 1 - fraction, seed=TEST_SPLIT_SEED, device=device)
    adapt = dict(starts=e.starts, steps=e.steps, refine=e.refine, points=e.points)
    adapt.update(overrides)
    g = torch.Generator().manual_seed(seed)
    if edits is None:
        return adapt_codes(models, images.to(device), masks, generator=g, **adapt)
    return adapt_codes_with_edits(models, images.to(device), masks, list(edits), generator=g,
                                  prior_weight=e.prior_weight, **adapt)[0]


def code_predictor(models: CodeClassModels, experiment: CodeExperiment, n_seeds: int, **scoring):
    """A classifier for :func:`.robustness.robustness`: images ``[N, 784]`` -> each seed's predictions ``[S, N]``
    (:func:`code_scores` with ``scoring``)."""
    def predict(images: torch.Tensor) -> torch.Tensor:
        return code_scores(models, experiment, images, **scoring).predict_per_seed(n_seeds, experiment.prior_weight)
    return predict


def code_draw(experiment: CodeExperiment, n: int, draw: int, seeds, baselines: Mapping[str, Callable], *,
              pool: MNIST, test: MNIST, device="cpu") -> DrawResult:
    """Draw ``draw`` of ``n`` images per digit: train the code class models of every seed on it (one batch) and
    classify ``test`` by held-out reconstruction error; train each baseline on the same images and on their
    moved copies."""
    e, seeds = experiment, tuple(seeds)
    train = pool.per_class(n, seed=draw)
    pixels, labels = train.pixels(), train.labels
    test_pixels = test.pixels()
    seconds = {}
    start = time.perf_counter()
    models = train_code_models(e.reconstructor, [pixels[labels == c].to(device) for c in range(N_CLASSES)],
                               e.training, seeds=seeds, progress=False)
    fit = code_scores(models, e, test_pixels, seed=draw)
    code = (fit.predict_per_seed(len(seeds), e.prior_weight) == test.labels).double().mean(1).numpy()
    seconds["code class models"] = time.perf_counter() - start
    fitted, fit_seconds = fitted_baselines(baselines, pixels, labels, e, seed=draw)
    scores = {}
    for name, predict in fitted.items():
        start = time.perf_counter()
        scores[name] = float((predict(test_pixels) == test.labels.numpy()).mean())
        seconds[name] = fit_seconds[name] + time.perf_counter() - start
    return DrawResult(models, code, scores, seconds)


def fitted_baselines(baselines: Mapping[str, Callable], pixels: torch.Tensor, labels: torch.Tensor,
                     experiment: CodeExperiment, *, seed: int = 0) -> tuple[dict[str, Callable], dict[str, float]]:
    """Each baseline fitted on ``pixels`` and on their moved copies (the moves the class models train on: fair
    chances; named with :data:`MOVED`), as classifiers (their ``predict``), and the seconds each fit took."""
    e = experiment
    moved = moved_copies(pixels, e.augment_copies, e.training.augment_shift, e.training.augment_angle,
                         generator=torch.Generator().manual_seed(seed))
    out, seconds = {}, {}
    for name, make in baselines.items():
        for label, x, y in ((name, pixels, labels), (name + MOVED, moved, labels.repeat_interleave(e.augment_copies))):
            start = time.perf_counter()
            out[label] = make().fit(x, y).predict
            seconds[label] = time.perf_counter() - start
    return out, seconds
