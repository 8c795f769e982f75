"""Optimisee families and the seeds their instances come from, for meta-training and for evaluation.

A :class:`Family` draws instances of one optimisee family for four purposes that never share
a seed: meta-training episodes (training seed s, episode e: seed ``s · TRAINING_SEED_STRIDE + e``),
validation (``VALIDATION_SEED``, early stopping), tuning the baselines' learning rates
(``TUNING_SEED``) and test (``TEST_SEED``). MNIST optimisees also use disjoint image splits of the
bundled subset: meta-training on the train split, validation and tuning on the validation split,
test on the test split. So a stored learned optimiser and the baselines a chapter runs later
meet on the same test instances, with the same initialisations and minibatches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..data.mnist import N_CLASSES, N_PIXELS, Split, bundled_split
from .problems import MNISTNets, Quadratics

VALIDATION_SEED = 1_000_000
TEST_SEED = 2_000_000
TUNING_SEED = 3_000_000
TRAINING_SEED_STRIDE = 100_000  # episodes per training seed before two seeds' draws could meet


@dataclass(frozen=True)
class Family:
    """How to draw instances of one optimisee family for meta-training, validation, tuning and test."""

    name: str
    sample: Callable[[int, int, str], object]  # (n, seed, split name) -> instances

    def train(self, n: int, seed: int = 0) -> Callable[[int], object]:
        """Episode ``e`` of training seed ``seed``: ``n`` fresh instances."""
        if not 0 <= seed < VALIDATION_SEED // TRAINING_SEED_STRIDE:
            raise ValueError(f"seed: expected 0 <= seed < {VALIDATION_SEED // TRAINING_SEED_STRIDE}, got {seed!r}")
        return lambda episode: self.sample(n, seed * TRAINING_SEED_STRIDE + episode, "train")

    def validation(self, n: int) -> object:
        return self.sample(n, VALIDATION_SEED, "validation")

    def tuning(self, n: int) -> object:
        return self.sample(n, TUNING_SEED, "validation")

    def test(self, n: int) -> object:
        return self.sample(n, TEST_SEED, "test")


def quadratic_family(draw: str = "gaussian", dim: int = 10, *, device: torch.device | str = "cpu") -> Family:
    """Random quadratics ‖Wθ − y‖² (no data splits: every purpose draws from its own seeds), on ``device``."""
    return Family(f"quadratic ({draw})", lambda n, seed, split: Quadratics.sample(n, dim=dim, draw=draw, seed=seed,
                                                                              device=device))


def mnist_family(*, hidden: tuple[int, ...] = (20,), activation: str = "sigmoid", split: Split | None = None,
                 device: torch.device | str = "cpu") -> Family:
    """MLPs 784 → hidden → 10 on the bundled MNIST subset (split from seed 0 unless ``split`` is given), on
    ``device`` (the draws are made on the CPU, so every device sees the same instances)."""
    data = split if split is not None else bundled_split(seed=0)
    pools = {"train": data.train, "validation": data.validation, "test": data.test}
    label = f"MNIST {'-'.join(map(str, (N_PIXELS, *hidden, N_CLASSES)))} {activation}"
    return Family(label, lambda n, seed, name: MNISTNets.sample(n, pools[name], hidden=tuple(hidden),
                                                                 activation=activation, seed=seed, device=device))
