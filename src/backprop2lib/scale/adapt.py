"""The inner loop of the scale-based meta-learners, for many tasks at once.

From a start ``w0`` (the meta-learned mean) every task descends its own objective

    E_t(w) + R(w)          (R: a regulariser from ``regularisers``, or none)

along ``−rates ⊙ ∇`` (``rates``: Eve's per-parameter learning rates, a fixed vector such as
Meta-SGD's, or none), with a fixed step size or backprop2's warm-started line search (one step
size per task), for a fixed number of steps or until the dynamic terminator stops the task
(per-task flags: a stopped task is frozen while the others go on). Steps use all of a task's
points, or a batch sampled with replacement (backprop2 used 50).

``adapt`` does every task in one batched computation: the Python loop runs over steps, never
over tasks. ``adapt_one_at_a_time`` is backprop2's faithful mode, the same code called for one
task after another. With a fixed step size and no terminator, the result is differentiable
in ``w0``, the regulariser's tensors and the rates (for meta-gradients).

The regulariser and the rates may hold one row per task (a ``[T, P]`` mean, or a ``[T, P]``
rates tensor): wherever only some tasks are evaluated (the line search's last rounds, the steps
once most tasks have stopped) they are cut to those rows with ``take(rows)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch

from ..models.mlp import MLP
from ..optim.line_search import LineSearch, line_search
from ..optim.terminator import DynamicTerminator
from .objective import error, error_and_grad, point_errors


class Regulariser(Protocol):
    def value_and_grad(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class InnerLoop:
    """How to adapt: step budget, step size rule, stopping rule, batch size."""

    max_steps: int = 100
    lr: float | None = None  # a fixed step size; None: the line search decides per task
    line_search: LineSearch = LineSearch()
    terminate: bool = False  # stop each task when the dynamic terminator fires
    terminator_every: int = 5
    terminator_window: int = 50
    p_lim: float = 1e-3
    batch_size: int | None = None  # None: every point at every step; else sampled with replacement

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 0:
            raise ValueError(f"max_steps: expected an int >= 0, got {self.max_steps!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr: expected a positive step size or None (line search), got {self.lr!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool)
                                            or self.batch_size < 1):
            raise ValueError(f"batch_size: expected a positive int or None (all points), got {self.batch_size!r}")

    @classmethod
    def faithful(cls, max_steps: int = 10_000, **overrides) -> "InnerLoop":
        """backprop2's fast_adapt: SGD on batches of 50 drawn with replacement, line search, terminator."""
        return replace(cls(max_steps=max_steps, lr=None, terminate=True, batch_size=50), **overrides)

    def with_(self, **changes) -> "InnerLoop":
        return replace(self, **changes)


@dataclass
class AdaptResult:
    params: torch.Tensor  # adapted flat parameters [T, P]
    steps: torch.Tensor  # steps taken per task [T]
    stopped: torch.Tensor  # True where the terminator stopped the task before the budget [T]
    error_before: torch.Tensor  # data error on all of the task's points, at the start [T]
    error_after: torch.Tensor  # ... and at the end (regulariser excluded) [T]
    step_size: torch.Tensor  # the final line-search step size, or the fixed lr [T]

    @property
    def improvement(self) -> torch.Tensor:
        """backprop2's dE: error before minus after (regulariser excluded)."""
        return self.error_before - self.error_after

    @property
    def diverged(self) -> torch.Tensor:
        return ~(torch.isfinite(self.params).all(-1) & torch.isfinite(self.error_after))


def _take_rows(obj, rows):
    """A regulariser or rates for the tasks ``rows`` only: rows of a [T, P] tensor, ``take`` for objects that
    have it (one without ``take`` is shared by all tasks), None stays None."""
    if isinstance(obj, torch.Tensor):
        return obj[rows] if obj.dim() == 2 else obj
    return obj.take(rows) if hasattr(obj, "take") else obj


def _rates_at(rates, w: torch.Tensor) -> torch.Tensor | None:
    if rates is None:
        return None
    if isinstance(rates, torch.Tensor):
        return rates
    return rates.rates(w)  # e.g. EveRates: depends on where w is


def _draw_batch(x, y, batch_size, generator):
    if batch_size is None:
        return x, y
    T, N, _ = x.shape
    draw_device = generator.device if generator is not None else x.device
    idx = torch.randint(N, (T, batch_size), generator=generator, device=draw_device).to(x.device)
    return (x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1])),
            y.gather(1, idx[..., None].expand(-1, -1, y.shape[-1])))


def adapt(
    model: MLP,
    start: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loop: InnerLoop = InnerLoop(),
    regulariser: Regulariser | None = None,
    rates=None,
    generator: torch.Generator | None = None,
) -> AdaptResult:
    """Adapt flat parameters ``start`` (``[P]`` shared, or ``[T, P]``) to every task's ``(x, y)``."""
    if start.dim() not in (1, 2) or start.shape[-1] != model.n_params:
        raise ValueError(f"start: expected flat parameters [P] or [T, P] with P = {model.n_params}, "
                         f"got {tuple(start.shape)}")
    if x.dim() != 3 or x.shape[0] < 1:
        raise ValueError(f"x: expected [T, N, {model.sizes[0]}] with T >= 1, got {tuple(x.shape)}")
    T = x.shape[0]
    if start.dim() == 2 and start.shape[0] != T:
        raise ValueError(f"start: has {start.shape[0]} tasks but x has {T}")
    if not bool(torch.isfinite(start).all()):
        raise ValueError("start: parameters contain NaN or inf")
    w = start.expand(T, -1) if start.dim() == 1 else start
    error_before = error(model, w, x, y).detach()  # also checks x and y against the model

    def objective(v, xb, yb, reg):
        e, g = error_and_grad(model, v, xb, yb, check=False)
        if reg is not None:
            r, gr = reg.value_and_grad(v)
            e, g = e + r, g + gr
        return e, g

    def value(v, xb, yb, reg):  # the line search needs values only: a forward pass, no backward
        e = error(model, v, xb, yb, check=False)
        return e if reg is None else e + reg.value_and_grad(v)[0]

    def step(v, xb, yb, s, reg, rates_v):
        """One step for the tasks (rows) given, with their regulariser and rates; new parameters and step sizes."""
        e0, g = objective(v, xb, yb, reg)
        r = _rates_at(rates_v, v)
        delta = -g if r is None else -r * g
        if not fixed:
            vd = v.detach()
            s, _, _ = line_search(lambda u: value(u, xb, yb, reg), vd, delta.detach(), g.detach(), e0.detach(), s,
                                  loop.line_search,
                                  error_rows=lambda u, rows: value(u, xb[rows], yb[rows], _take_rows(reg, rows)))
        return v + s[:, None] * delta, s

    fixed = loop.lr is not None
    s = (torch.full((T,), float(loop.lr), device=w.device, dtype=w.dtype) if fixed
         else loop.line_search.initial(T, device=w.device, dtype=w.dtype))
    terminator = (DynamicTerminator(error_before, every=loop.terminator_every, window=loop.terminator_window,
                                    p_lim=loop.p_lim) if loop.terminate else None)
    active = torch.ones(T, dtype=torch.bool, device=w.device)
    stopped = torch.zeros_like(active)
    steps = torch.zeros(T, dtype=torch.long, device=w.device)
    n_active = T
    for i in range(loop.max_steps):
        xb, yb = _draw_batch(x, y, loop.batch_size, generator)
        if terminator is not None and terminator.due(i):
            stop = terminator.update(point_errors(model, w.detach(), xb, yb, check=False)) & active
            if bool(stop.any()):
                stopped |= stop
                active &= ~stop
                n_active = int(active.sum())
                if n_active == 0:
                    break
        if n_active == T:  # every task steps: no masking (keeps the graph simple for meta-gradients)
            w, s = step(w, xb, yb, s, regulariser, rates)
        elif 2 * n_active > T:
            new, s_new = step(w, xb, yb, s, regulariser, rates)
            w = torch.where(active[:, None], new, w)
            s = torch.where(active, s_new, s)  # a stopped task keeps the step size it stopped with
        else:  # most tasks have stopped: step only the others
            rows = active.nonzero().squeeze(1)
            new, s_new = step(w[rows], xb[rows], yb[rows], s[rows], _take_rows(regulariser, rows),
                              _take_rows(rates, rows))
            w = w.index_copy(0, rows, new)
            s = s.index_copy(0, rows, s_new)
        steps += active
    error_after = error(model, w.detach(), x, y, check=False)
    return AdaptResult(w, steps, stopped, error_before, error_after, s)


def adapt_one_at_a_time(model: MLP, start: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                        loop: InnerLoop = InnerLoop(), regulariser: Regulariser | None = None, rates=None,
                        generator: torch.Generator | None = None) -> AdaptResult:
    """backprop2's faithful mode: :func:`adapt` for one task after another (a Python loop over tasks).

    A per-task (``[T, P]``) regulariser or rates gives each task its own row.
    """
    T = x.shape[0]
    results = [adapt(model, start if start.dim() == 1 else start[t:t + 1], x[t:t + 1], y[t:t + 1], loop=loop,
                     regulariser=_take_rows(regulariser, slice(t, t + 1)), rates=_take_rows(rates, slice(t, t + 1)),
                     generator=generator)
                for t in range(T)]
    return AdaptResult(*(torch.cat([getattr(r, f) for r in results]) for f in
                         ("params", "steps", "stopped", "error_before", "error_after", "step_size")))


def adam_adapt(model: MLP, start: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               regulariser: Regulariser | None = None) -> AdaptResult:
    """Adam in the inner loop, every task with its own moment estimates (a baseline for Eve).

    Adam scales each parameter's step by its own gradient history, so parameters with large
    gradients are damped; Eve instead boosts the parameters that vary across tasks.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")
    if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
        raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
    if start.dim() not in (1, 2) or start.shape[-1] != model.n_params:
        raise ValueError(f"start: expected flat parameters [P] or [T, P] with P = {model.n_params}, "
                         f"got {tuple(start.shape)}")
    T = x.shape[0]
    w = (start.expand(T, -1) if start.dim() == 1 else start).detach().clone()
    error_before = error(model, w, x, y)
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    b1, b2 = betas
    with torch.no_grad():
        for i in range(1, steps + 1):
            _, g = error_and_grad(model, w, x, y, check=False)
            if regulariser is not None:
                g = g + regulariser.value_and_grad(w)[1]
            m.lerp_(g, 1 - b1)
            v.lerp_(g * g, 1 - b2)
            w -= lr * (m / (1 - b1 ** i)) / ((v / (1 - b2 ** i)).sqrt() + eps)
        error_after = error(model, w, x, y, check=False)
    n = torch.full((T,), steps, dtype=torch.long, device=w.device)
    return AdaptResult(w, n, torch.zeros(T, dtype=torch.bool, device=w.device), error_before, error_after,
                       torch.full((T,), lr, dtype=w.dtype, device=w.device))
