"""Classifying from a few images per digit: one draw of training images, code class models of several
seeds trained on it in one batch, and pixel baselines on the same images (and on their moved copies).

The protocol is the data-efficiency curve's: the test split stays fixed; a *draw* is which ``n``
images per digit are taken from the pool (the train and validation splits together), seeded by the
draw's index, the same images for every classifier. :func:`code_draw` is one cell of that curve;
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
from .codes import CodeClassModels, CodeReconstructor, CodeSettings, adapt_codes, pixel_split, train_code_models
from .images import moved_copies

MOVED = ", moved copies"
"""Suffix of a baseline trained on the moved copies of the drawn images."""
TEST_SPLIT_SEED = 10_000  # the held-out pixels of the test images: one split, every draw and seed


def pool_and_test(split: Split | None = None) -> tuple[MNIST, MNIST]:
    """The 400 non-test images per digit (train + validation) and the fixed test split."""
    split = split or bundled_split()
    pool = MNIST(torch.cat([split.train.images, split.validation.images]),
                 torch.cat([split.train.labels, split.validation.labels]))
    return pool, split.test


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


def code_draw(experiment: CodeExperiment, n: int, draw: int, seeds, baselines: Mapping[str, Callable], *,
              pool: MNIST, test: MNIST, device="cpu") -> DrawResult:
    """Draw ``draw`` of ``n`` images per digit: train the code class models of every seed on it (one batch) and
    classify ``test`` by held-out reconstruction error; train each baseline on the same images and on their
    moved copies."""
    e, seeds = experiment, tuple(seeds)
    train = pool.per_class(n, seed=draw)
    pixels, labels = train.pixels(), train.labels
    test_pixels = test.pixels()
    masks = pixel_split(len(test_pixels), 1 - e.held_fraction, seed=TEST_SPLIT_SEED, device=device)
    seconds = {}
    start = time.perf_counter()
    models = train_code_models(e.reconstructor, [pixels[labels == c].to(device) for c in range(N_CLASSES)],
                               e.training, seeds=seeds, progress=False)
    fit = adapt_codes(models, test_pixels.to(device), masks, starts=e.starts, steps=e.steps, refine=e.refine,
                      points=e.points, generator=torch.Generator().manual_seed(draw))
    code = (fit.predict_per_seed(len(seeds), e.prior_weight) == test.labels).double().mean(1).numpy()
    seconds["code class models"] = time.perf_counter() - start
    moved = moved_copies(pixels, e.augment_copies, e.training.augment_shift, e.training.augment_angle,
                         generator=torch.Generator().manual_seed(draw))
    scores = {}
    for name, make in baselines.items():
        for label, x, y in ((name, pixels, labels), (name + MOVED, moved, labels.repeat_interleave(e.augment_copies))):
            start = time.perf_counter()
            scores[label] = float((make().fit(x, y).predict(test_pixels) == test.labels.numpy()).mean())
            seconds[label] = time.perf_counter() - start
    return DrawResult(models, code, scores, seconds)
