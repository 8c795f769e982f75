"""One learning-rate tuner for every chapter: a grid, validation rows, the criterion that is reported.

A baseline is only a credible comparison when its step size was tuned, on *validation* data (never
the rows that are reported), by the criterion the chapter reports (the loss at the horizon), and
when the chosen rate is not at the edge of its grid (then the grid should have been wider).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .curve import _check_int
from .loop import run

LR_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Half-decades from 1e-4 to 1: the default grid."""


def half_decades(low: float, high: float) -> tuple[float, ...]:
    """1, 3, 10, 30, ... times powers of ten from ``low`` to ``high`` (both of the form 1eK or 3eK)."""
    if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and 0 < low < high):
        raise ValueError(f"low, high: expected 0 < low < high, got {low!r}, {high!r}")
    grid = []
    exponent = math.floor(math.log10(low))
    while True:
        for mantissa in (1.0, 3.0):
            value = float(f"{mantissa}e{exponent}")
            if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                grid.append(value)
        if 10.0 ** exponent > high:
            break
        exponent += 1
    return tuple(grid)


def check_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """At least two positive, finite, strictly increasing rates (one rate cannot be at an edge)."""
    grid = tuple(grid)
    if len(grid) < 2:
        raise ValueError(f"grid: expected at least two learning rates, got {list(grid)!r}")
    for lr in grid:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"grid: expected positive finite learning rates, got {lr!r}")
    grid = tuple(float(lr) for lr in grid)
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"grid: expected strictly increasing learning rates, got {grid}")
    return grid


@dataclass(frozen=True)
class LRChoice:
    """The learning rate a tuning run chose.

    ``scores[i]``: the criterion for ``grid[i]`` (mean loss at the horizon on the validation rows;
    inf where any row diverged).
    """

    name: str
    best: float
    grid: tuple[float, ...]
    scores: tuple[float, ...]
    horizon: int = 0

    @property
    def at_edge(self) -> bool:
        """True if the best rate is the grid's smallest or largest: the grid should be widened."""
        return self.best in (self.grid[0], self.grid[-1])

    @property
    def final_losses(self) -> tuple[float, ...]:
        return self.scores

    def __str__(self) -> str:
        edge = " (AT THE GRID'S EDGE)" if self.at_edge else ""
        return f"{self.name}: lr = {self.best:g}{edge}"


def choose(name: str, grid: Sequence[float], scores: Sequence[float], horizon: int = 0) -> LRChoice:
    """The rate with the lowest score (ties go to the smaller rate); an error if every rate diverged."""
    grid = check_grid(grid)
    scores = tuple(float(s) for s in scores)
    if len(scores) != len(grid):
        raise ValueError(f"scores: expected one score per rate ({len(grid)}), got {len(scores)}")
    best = int(np.argmin(scores))
    if not math.isfinite(scores[best]):
        raise ValueError(f"grid: every learning rate diverged for {name} within {horizon} steps: {grid}")
    return LRChoice(name, grid[best], grid, scores, horizon)


def tune_lr(make: Callable[[float], object], grid: Sequence[float], validation, horizon: int, *,
            diverged_above: float = math.inf, record_every: int | None = None,
            progress: bool | None = False) -> LRChoice:
    """Pick the rate in ``grid`` with the lowest mean recorded loss at ``horizon`` on ``validation``.

    ``make(lr)`` builds the stepper, e.g. ``Adam`` or ``lambda lr: NAG(lr, momentum=0.95)``;
    ``validation`` is a problem (:mod:`.loop`) of validation rows, never the reported ones. A rate
    under which any row diverged scores inf; ties go to the smaller rate.
    """
    horizon = _check_int("horizon", horizon, low=1)
    return tune_lr_at(make, grid, validation, [horizon], diverged_above=diverged_above,
                      record_every=record_every, progress=progress)[horizon]


def tune_lr_at(make: Callable[[float], object], grid: Sequence[float], validation, horizons: Sequence[int], *,
               diverged_above: float = math.inf, record_every: int | None = None,
               progress: bool | None = False) -> dict[int, LRChoice]:
    """:func:`tune_lr` for each of several horizons from one run per rate: ``{horizon: choice}``.

    A result reported at steps 100 and 200 gets a rate tuned for each (the loss at 100 of the
    rate best at 200 is not what a tuned baseline reaches at 100). A rate scores inf at a horizon
    when any row diverged by then.
    """
    if isinstance(horizons, (int, np.integer)) or not len(horizons):
        raise ValueError(f"horizons: expected a non-empty sequence of steps, got {horizons!r}")
    horizons = sorted({_check_int("horizons", h, low=1) for h in horizons})
    grid = check_grid(grid)
    every = record_every or math.gcd(*horizons)
    scores: dict[int, list[float]] = {h: [] for h in horizons}
    name = None
    for lr in grid:
        stepper = make(lr)
        name = name or getattr(stepper, "name", type(stepper).__name__)
        curve = run(stepper, validation, horizons[-1], diverged_above=diverged_above, record_every=every,
                    progress=progress)
        for h in horizons:
            gone = ((curve.diverged_at >= 0) & (curve.diverged_at <= h)).any()
            scores[h].append(math.inf if gone else float(curve.at(h).mean()))
    return {h: choose(name, grid, scores[h], h) for h in horizons}
