"""One record of a batched run: the loss of every row at the recorded steps, and where rows diverged.

Every chapter's run produces a :class:`Curve`: a training run from T initialisations (chapter 4),
an optimiser on B optimisee instances (chapter 6), T held-out tasks adapting for a few steps
(chapter 1). Rows are independent: a row that diverged is *counted*, never averaged in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from ..stats import Comparison, SeedSummary, Summary, compare_seeds, summarise, summarise_seeds


def _check_int(name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


# eq=False: the fields are arrays, whose == has no single truth value.
@dataclass(frozen=True, eq=False)
class Curve:
    """``losses[i, b]``: row b's recorded loss at step ``steps[i]``.

    A row that diverged has NaN losses from the step it diverged on (``diverged_at[b]``, −1 if
    never); a curve built from raw errors (an adaptation run that is not stopped) may instead keep
    them and name a ``diverged_above`` bound, above which a value counts as diverged in every
    summary. ``seconds[i]`` is the cumulative wall time of the run up to ``steps[i]`` (evaluation
    excluded), when it was timed. ``labels`` carries what the curve is of (e.g. ``k_shot``,
    ``inner_lr``), ``info`` what the stepper reported, ``params`` the final parameters ``[B, P]``.

    With ``n_seeds`` = S > 1 the rows are S training seeds × T test rows, seed-major (row
    ``s·T + t`` is seed s on test row t, the same test rows for every seed): :meth:`by_seed` and
    :meth:`seed_summary` read them per seed, and :func:`compare_curves` compares across seeds.
    """

    name: str
    losses: np.ndarray
    diverged_at: np.ndarray | None = None
    steps: np.ndarray | None = None
    seconds: np.ndarray | None = None
    problem: str = ""
    diverged_above: float = math.inf
    labels: Mapping[str, object] = field(default_factory=dict)
    info: Mapping[str, object] = field(default_factory=dict)
    params: torch.Tensor | None = None
    n_seeds: int = 1

    def __post_init__(self) -> None:
        losses = np.asarray(self.losses, dtype=np.float64)
        if losses.ndim != 2:
            raise ValueError(f"losses: expected [n_records, rows], got shape {losses.shape}")
        object.__setattr__(self, "losses", losses)
        steps = np.arange(losses.shape[0]) if self.steps is None else np.asarray(self.steps, dtype=np.int64)
        if steps.shape != (losses.shape[0],) or (steps.size > 1 and not (np.diff(steps) > 0).all()):
            raise ValueError(f"steps: expected {losses.shape[0]} increasing steps (one per record), got {steps}")
        object.__setattr__(self, "steps", steps)
        at = np.full(losses.shape[1], -1, dtype=np.int64) if self.diverged_at is None \
            else np.asarray(self.diverged_at, dtype=np.int64)
        if at.shape != (losses.shape[1],):
            raise ValueError(f"diverged_at: expected one step per row ({losses.shape[1]}), got shape {at.shape}")
        object.__setattr__(self, "diverged_at", at)
        if self.seconds is not None:
            seconds = np.asarray(self.seconds, dtype=np.float64)
            if seconds.shape != steps.shape:
                raise ValueError(f"seconds: expected one time per record ({steps.size}), got shape {seconds.shape}")
            object.__setattr__(self, "seconds", seconds)
        n_seeds = _check_int("n_seeds", self.n_seeds, low=1)
        if losses.shape[1] % n_seeds:
            raise ValueError(f"n_seeds: {losses.shape[1]} rows do not split into {n_seeds} seeds of equal size")

    # ---------------------------------------------------------------- shape
    @property
    def n_steps(self) -> int:
        return int(self.steps[-1])

    @property
    def n_rows(self) -> int:
        return self.losses.shape[1]

    n_instances = n_rows  # the learned-optimiser chapter's word for a row

    @property
    def diverged(self) -> np.ndarray:
        """``[rows]`` bool: the row was stopped as diverged during the run."""
        return self.diverged_at >= 0

    # ---------------------------------------------------------------- reading
    def index(self, step) -> int:
        """The record index of ``step`` (a ValueError if that step was not recorded)."""
        step = _check_int("step", step, low=0)
        hits = np.nonzero(self.steps == step)[0]
        if not hits.size:
            raise ValueError(f"step: {step} was not recorded; recorded steps are {self.steps[0]}..{self.n_steps} "
                             f"({self.steps.size} records)")
        return int(hits[0])

    def at(self, step=None) -> np.ndarray:
        """Every row's loss ``[rows]`` at ``step`` (default: the last); NaN where diverged."""
        return self.losses[-1 if step is None else self.index(step)].copy()

    @property
    def final(self) -> np.ndarray:
        return self.losses[-1]

    def summary(self, step=None, *, interval: str = "normal") -> Summary:
        """Mean and 95% CI at ``step`` over the rows; diverged rows are counted, not averaged."""
        return summarise(self.at(step), diverged_above=self.diverged_above, interval=interval)

    def by_seed(self, step=None) -> np.ndarray:
        """The losses at ``step`` (default: the last) as ``[seeds, test rows]``; NaN where diverged."""
        return self.at(step).reshape(self.n_seeds, -1)

    def seed_summary(self, step=None) -> SeedSummary:
        """Across seeds at ``step``: each seed's mean over its test rows, their mean and Student-t
        95% interval, and the pooled test-row interval beside it (see :func:`stats.summarise_seeds`)."""
        return summarise_seeds(self.by_seed(step), diverged_above=self.diverged_above)

    def summaries(self, *, interval: str = "normal") -> list[Summary]:
        return [self.summary(int(s), interval=interval) for s in self.steps]

    def mean_losses(self) -> np.ndarray:
        """Mean loss per record over the rows that never diverged (a fixed set; NaN if none)."""
        kept = self.losses[:, ~self.diverged]
        if kept.shape[1] == 0:
            return np.full(self.losses.shape[0], np.nan)
        return kept.mean(axis=1)

    def steps_to_reach(self, target: float) -> int | None:
        """The first recorded step whose :meth:`mean_losses` is ≤ ``target``; None if never."""
        if isinstance(target, bool) or not isinstance(target, (int, float, np.floating, np.integer)) \
                or math.isnan(target):
            raise ValueError(f"target: expected a number, got {target!r}")
        hits = np.nonzero(self.mean_losses() <= target)[0]
        return int(self.steps[hits[0]]) if hits.size else None

    def loss_at_time(self, seconds: float) -> np.ndarray:
        """Each row's loss at the last record within ``seconds`` of run time."""
        if self.seconds is None:
            raise ValueError("seconds: this curve was not timed")
        i = int(np.searchsorted(self.seconds, seconds, side="right")) - 1
        return self.losses[max(i, 0)]

    @property
    def seconds_per_step(self) -> float:
        if self.seconds is None:
            raise ValueError("seconds: this curve was not timed")
        return float(self.seconds[-1] / max(1, self.n_steps))


def concatenate(parts: list[Curve]) -> Curve:
    """One curve of all rows from runs on consecutive chunks of rows (same steps, same stepper)."""
    if not parts:
        raise ValueError("parts: expected at least one curve")
    first = parts[0]
    for p in parts[1:]:
        if not np.array_equal(p.steps, first.steps):
            raise ValueError("parts: the curves recorded different steps")
    seconds = None if first.seconds is None else np.sum([p.seconds for p in parts], axis=0)
    params = None if any(p.params is None for p in parts) else torch.cat([p.params for p in parts])
    return Curve(first.name, np.concatenate([p.losses for p in parts], axis=1),
                 np.concatenate([p.diverged_at for p in parts]), first.steps, seconds, first.problem,
                 first.diverged_above, dict(first.labels), dict(first.info), params)


def compare_curves(a: Curve, b: Curve, step_a: int | None = None, step_b: int | None = None) -> Comparison:
    """``a`` at ``step_a`` against ``b`` at ``step_b`` (default: each curve's last) across training seeds.

    Paired (per-seed differences over shared test rows, :func:`stats.compare_seeds`) when both
    curves have the same seeds and test rows; both need at least two seeds for a verdict other
    than "not distinguishable"."""
    if a.n_seeds != b.n_seeds or a.n_rows != b.n_rows:
        raise ValueError(f"a, b: expected curves over the same seeds and test rows, got {a.n_seeds} × "
                         f"{a.n_rows // a.n_seeds} and {b.n_seeds} × {b.n_rows // b.n_seeds}")
    return compare_seeds(a.by_seed(step_a), b.by_seed(step_b), paired=True,
                         diverged_above=min(a.diverged_above, b.diverged_above))
