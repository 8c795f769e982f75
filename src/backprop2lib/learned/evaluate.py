"""Evaluating optimizers on instance sets: paired runs, tuned baselines, honest summaries.

* :func:`run` runs one stepper (:mod:`backprop2lib.learned.baselines`) on every instance of a
  problem set and records the loss curve of each instance. Step t uses minibatch t of each
  instance, so two runs on the same instance set see the same data: comparisons are paired.
* A run that blows up is *diverged*, not averaged: its losses from that step on are NaN, and
  every summary counts such instances separately (:func:`backprop2lib.stats.summarise`).
* :func:`tune_lr` picks a baseline's learning rate on *validation* instances by the criterion
  that is reported (final loss at the horizon), and says when the choice sits at the grid's edge.
* :func:`steps_to_reach` and :func:`paired_difference` turn two curves into the comparisons the
  field now expects ("how many steps does tuned Adam need to match the learned optimizer").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from ..progress import progress_bar
from ..stats import Summary, summarise


class Stepper(Protocol):
    name: str

    def init(self, theta: torch.Tensor) -> dict: ...

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor: ...


class Problems(Protocol):
    def init(self) -> torch.Tensor: ...

    def loss_and_grad(self, theta: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True, eq=False)
class Curve:
    """The losses of one optimizer on B instances.

    ``losses[t, b]`` is instance b's loss at θ_t on its minibatch t (the loss whose gradient
    step t uses), t = 0..n_steps; NaN from the step the instance diverged on.
    ``diverged_at[b]`` is that step, -1 if the instance never diverged.
    """

    name: str
    losses: np.ndarray  # [n_steps + 1, B]
    diverged: np.ndarray  # bool [B]
    diverged_at: np.ndarray  # int [B]
    problem: str = ""

    @property
    def n_steps(self) -> int:
        return self.losses.shape[0] - 1

    @property
    def n_instances(self) -> int:
        return self.losses.shape[1]

    def mean_losses(self) -> np.ndarray:
        """Mean loss per step over the instances that never diverged ([n_steps + 1]; NaN if none)."""
        kept = self.losses[:, ~self.diverged]
        if kept.shape[1] == 0:
            return np.full(self.losses.shape[0], np.nan)
        return kept.mean(axis=1)


def _check_int(name: str, value, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    return int(value)


def _check_step(curve: Curve, step, name: str = "step") -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step <= curve.n_steps:
        raise ValueError(f"{name}: expected an int in 0..{curve.n_steps} (the curve's steps), got {step!r}")
    return int(step)


def run(stepper: Stepper, problems: Problems, n_steps: int, *, diverged_above: float = math.inf,
        progress: bool | None = False, chunk_size: int | None = None) -> Curve:
    """Run ``stepper`` for ``n_steps`` steps on every instance of ``problems``.

    At step t the loss and gradient come from one call ``problems.loss_and_grad(θ_t, t)``; the loss
    is recorded and the gradient drives the update to θ_{t+1}. At t = n_steps only the loss is kept.
    An instance whose loss or θ is not finite (or whose loss is above ``diverged_above``; in float64
    a blow-up can take many steps to overflow) is diverged from that step: its θ is frozen and its
    losses from then on are NaN.

    ``chunk_size``: run the instances in groups of this many, one after the other (the problems
    must have ``chunk(start, stop)``). Instances are independent and every stepper acts per
    coordinate, so the numbers are the same; a learned optimizer runs several times faster on 100
    MNIST networks one at a time (chunk_size=1), because its state then stays in cache.
    """
    n_steps = _check_int("n_steps", n_steps, low=0)
    if chunk_size is not None:
        chunk_size = _check_int("chunk_size", chunk_size, low=1)
        if not callable(getattr(problems, "chunk", None)):
            raise ValueError(f"problems: chunk_size needs a chunk(start, stop) method, {type(problems).__name__} has none")
        total = problems.n_instances
        if total > chunk_size:
            parts = [run(stepper, problems.chunk(a, min(a + chunk_size, total)), n_steps,
                         diverged_above=diverged_above, progress=False) for a in range(0, total, chunk_size)]
            return Curve(parts[0].name, np.concatenate([c.losses for c in parts], axis=1),
                         np.concatenate([c.diverged for c in parts]), np.concatenate([c.diverged_at for c in parts]),
                         parts[0].problem)
    if isinstance(diverged_above, bool) or not isinstance(diverged_above, (int, float)) or not diverged_above > 0:
        raise ValueError(f"diverged_above: expected a positive bound (inf for none), got {diverged_above!r}")
    if not (callable(getattr(stepper, "init", None)) and callable(getattr(stepper, "step", None))):
        raise ValueError(f"stepper: expected an object with init() and step(), got {type(stepper).__name__}")
    theta = problems.init()
    if theta.dim() != 2:
        raise ValueError(f"problems: init() returned shape {tuple(theta.shape)}, expected [B, P]")
    B = theta.shape[0]
    state = stepper.init(theta)
    losses = np.full((n_steps + 1, B), np.nan)
    diverged = torch.zeros(B, dtype=torch.bool, device=theta.device)
    diverged_at = np.full(B, -1, dtype=np.int64)
    name = getattr(stepper, "name", type(stepper).__name__)
    with progress_bar(n_steps, f"{name} on {getattr(problems, 'name', 'problems')}", enabled=progress) as bar:
        for t in range(n_steps + 1):
            loss, grad = problems.loss_and_grad(theta, t)
            bad = ~torch.isfinite(loss) | ~torch.isfinite(theta).all(dim=1) | (loss > diverged_above)
            new = bad & ~diverged
            if new.any():
                diverged_at[new.cpu().numpy()] = t
                diverged |= new
            losses[t] = loss.detach().to("cpu", torch.float64).masked_fill(diverged.cpu(), math.nan).numpy()
            if t == n_steps:
                break
            if diverged.all():  # nothing left to run; the rest stays NaN
                bar.update(n_steps - t)
                break
            grad = grad.masked_fill(diverged[:, None], 0.0)  # keep NaNs out of the optimizer state
            stepped = stepper.step(theta, grad, state)
            theta = torch.where(diverged[:, None], theta, stepped)
            bar.update(1)
    dv = diverged.cpu().numpy()
    return Curve(name, losses, dv, diverged_at, getattr(problems, "name", ""))


def final(curve: Curve, horizon: int | None = None) -> np.ndarray:
    """Per-instance losses ``[B]`` at step ``horizon`` (default: the last); NaN where diverged."""
    step = curve.n_steps if horizon is None else _check_step(curve, horizon, "horizon")
    return curve.losses[step].copy()


def mean_ci(curve: Curve, step: int) -> Summary:
    """Mean loss at ``step`` with a 95% CI; instances diverged by then are counted, not averaged."""
    return summarise(curve.losses[_check_step(curve, step)])


def paired_difference(a: Curve, b: Curve, step: int) -> Summary:
    """Mean and 95% CI of the per-instance difference a − b at ``step``.

    ``a`` and ``b`` must be runs on the same instances (paired). Instances where either run has
    diverged by ``step`` are left out and counted in ``n_diverged``. Negative means a is lower.
    """
    if a.losses.shape[1] != b.losses.shape[1]:
        raise ValueError(f"a, b: expected runs on the same instances, got {a.n_instances} and {b.n_instances}")
    if a.problem and b.problem and a.problem != b.problem:
        raise ValueError(f"a, b: runs on different problems ({a.problem!r} and {b.problem!r})")
    _check_step(a, step)
    _check_step(b, step)
    return summarise(a.losses[step] - b.losses[step])


def steps_to_reach(curve: Curve, target: float) -> int | None:
    """The first step t whose mean loss is ≤ ``target``, or None if the curve never gets there.

    The mean is over the instances that never diverged in this run (a fixed set, so an instance
    blowing up cannot pull the mean down); None if every instance diverged.
    """
    if isinstance(target, bool) or not isinstance(target, (int, float, np.floating, np.integer)) \
            or math.isnan(target):
        raise ValueError(f"target: expected a number, got {target!r}")
    hits = np.nonzero(curve.mean_losses() <= target)[0]
    return int(hits[0]) if hits.size else None


@dataclass(frozen=True)
class LRChoice:
    """The learning rate a tuning run chose.

    ``final_losses[i]``: mean final loss at the horizon on the validation instances for
    ``grid[i]``; inf where any instance diverged.
    """

    name: str
    best: float
    grid: tuple[float, ...]
    final_losses: tuple[float, ...]
    horizon: int = 0

    @property
    def at_edge(self) -> bool:
        """True if the best rate is the grid's smallest or largest: the grid should be widened."""
        return self.best in (self.grid[0], self.grid[-1])

    def __str__(self) -> str:
        edge = " (AT THE GRID'S EDGE)" if self.at_edge else ""
        return f"{self.name}: lr = {self.best:g}{edge}"


def tune_lr(make: Callable[[float], Stepper], grid: Sequence[float], validation_problems: Problems,
            horizon: int, *, diverged_above: float = math.inf, progress: bool | None = False) -> LRChoice:
    """Pick the learning rate in ``grid`` with the lowest mean final loss at ``horizon``.

    ``make(lr)`` builds the stepper, e.g. ``Adam`` or ``lambda lr: NAG(lr, momentum=0.95)``.
    Tune on validation instances, never on the test instances that are reported. A rate under
    which any instance diverged (see :func:`run`, ``diverged_above``) scores inf; ties go to the
    smaller rate.
    """
    horizon = _check_int("horizon", horizon, low=1)
    grid = tuple(grid)
    if not grid:
        raise ValueError("grid: expected at least one learning rate, got none")
    for lr in grid:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)) \
                or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"grid: expected positive finite learning rates, got {lr!r}")
    grid = tuple(float(lr) for lr in grid)
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"grid: expected strictly increasing learning rates, got {grid}")
    scores = []
    name = None
    for lr in grid:
        stepper = make(lr)
        name = name or getattr(stepper, "name", type(stepper).__name__)
        curve = run(stepper, validation_problems, horizon, diverged_above=diverged_above, progress=progress)
        scores.append(math.inf if curve.diverged.any() else float(curve.losses[horizon].mean()))
    best = int(np.argmin(scores))
    if not math.isfinite(scores[best]):
        raise ValueError(f"grid: every learning rate diverged for {name} within {horizon} steps: {grid}")
    return LRChoice(name, grid[best], grid, tuple(scores), horizon)
