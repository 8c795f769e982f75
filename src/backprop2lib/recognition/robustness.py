"""Accuracy on shifted and rotated digits: where classification by reconstruction should shine.

A class model's picture can be moved exactly by editing its coordinates (:func:`.codes.edited_coordinates`),
while a pixel classifier trained on centred digits sees a shifted digit as a different vector. The test set
here moves each test digit by a shift of a given length in a random direction, or turns it by a given angle
with a random sign (:func:`moved_test_sets`); every classifier sees the same moved images.

A classifier is a callable from images ``[N, 784]`` to predicted classes, ``[N]`` (one model) or ``[S, N]``
(one row per training seed), so the table keeps a seed axis where there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .images import moved_each

__all__ = ["Condition", "moved_test_sets", "Robustness", "robustness"]


@dataclass(frozen=True)
class Condition:
    """One column of the table: digits shifted by ``shift`` pixels (random direction) or turned by ``angle``
    degrees (random sign); both 0 is the unmoved test set."""

    shift: float = 0.0
    angle: float = 0.0

    def __post_init__(self) -> None:
        if not (self.shift >= 0 and self.angle >= 0):
            raise ValueError(f"shift, angle: expected non-negative sizes, got {self.shift!r}, {self.angle!r}")

    @property
    def label(self) -> str:
        if self.shift and self.angle:
            return f"{self.shift:g} px, {self.angle:g}°"
        if self.shift:
            return f"shift {self.shift:g} px"
        if self.angle:
            return f"turn {self.angle:g}°"
        return "unmoved"


def moved_test_sets(images: torch.Tensor, conditions: Sequence[Condition], *, seed: int = 0) -> list[torch.Tensor]:
    """Each condition's moved copy of ``images [N, 784]``: image i shifted by ``shift`` pixels in direction φ_i and
    turned by ± ``angle`` (sign s_i), with φ and s drawn once from ``seed`` and shared by every condition, so the
    columns differ only in how far the digits move."""
    if images.dim() != 2 or images.shape[1] != 784:
        raise ValueError(f"images: expected [N, 784] grey levels in [0, 1], got {tuple(images.shape)}")
    if not conditions:
        raise ValueError("conditions: expected at least one condition")
    n = images.shape[0]
    g = torch.Generator().manual_seed(seed)
    direction = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    sign = torch.where(torch.rand(n, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0).to(torch.float64)
    unit = torch.stack([direction.cos(), direction.sin()], -1)
    return [moved_each(images, c.shift * unit, c.angle * sign) for c in conditions]


@dataclass
class Robustness:
    """Accuracy per classifier and condition: ``accuracy[name]`` is ``[S, len(conditions)]`` (S = 1 for a
    classifier without seeds)."""

    conditions: tuple[Condition, ...]
    accuracy: dict[str, np.ndarray]

    def mean(self, name: str) -> np.ndarray:
        """Mean accuracy over seeds per condition."""
        return self.accuracy[name].mean(0)

    def to_record(self) -> dict:
        return {"conditions": [[c.shift, c.angle] for c in self.conditions],
                "accuracy": {k: v.round(6).tolist() for k, v in self.accuracy.items()}}

    @classmethod
    def from_record(cls, record: dict) -> "Robustness":
        return cls(tuple(Condition(*c) for c in record["conditions"]),
                   {k: np.asarray(v, dtype=float) for k, v in record["accuracy"].items()})


def robustness(classifiers: Mapping[str, Callable[[torch.Tensor], torch.Tensor | np.ndarray]], images: torch.Tensor,
               labels, conditions: Sequence[Condition], *, seed: int = 0) -> Robustness:
    """Every classifier on every condition's moved test set (:func:`moved_test_sets`)."""
    labels = torch.as_tensor(np.asarray(labels)).long()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels: expected {images.shape[0]} labels, got shape {tuple(labels.shape)}")
    if not classifiers:
        raise ValueError("classifiers: expected at least one classifier")
    sets = moved_test_sets(images, conditions, seed=seed)
    out = {}
    for name, predict in classifiers.items():
        columns = []
        for moved in sets:
            pred = torch.as_tensor(np.asarray(predict(moved))).long()
            if pred.dim() == 1:
                pred = pred[None]
            if pred.dim() != 2 or pred.shape[1] != len(labels):
                raise ValueError(f"classifiers[{name!r}]: expected predictions [N] or [S, N] for N = {len(labels)} "
                                 f"images, got shape {tuple(pred.shape)}")
            columns.append((pred == labels).double().mean(1).numpy())
        out[name] = np.stack(columns, 1)
    return Robustness(tuple(conditions), out)
