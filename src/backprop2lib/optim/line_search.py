"""backprop2's two-way backtracking line search, batched: one step size per task.

Given a direction ``delta`` and the gradient ``g`` at ``w``, the Armijo test asks for a
sufficient decrease, ``E0 - E(w + s delta) >= alpha * (-s delta.g)``. The step size ``s``
persists between iterations (warm start) and moves both ways:

* the test fails: shrink ``s <- beta s`` until the test passes *and* the error stopped
  falling (at most ``max_its`` times); then undo the last shrink if it made things worse;
* the test passes: grow ``s <- s / beta`` while the error keeps falling; then undo the
  growth that did not help.

The undo rules keep the lowest error found, so the returned step can fail the Armijo test
(e.g. a warm start that is a little too long but still lower than its half); it always lowers
the error when any tried step did. Every task runs its own search, but all tasks are
evaluated together: each round is one batched call of the error function, and finished tasks
simply keep their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

ErrorFn = Callable[[torch.Tensor], torch.Tensor]  # w [T, P] -> error [T]


@dataclass(frozen=True)
class LineSearch:
    """Settings, with backprop2's defaults (s0 = 0.1, alpha = beta = 0.5, 15 tries)."""

    s0: float = 0.1
    alpha: float = 0.5
    beta: float = 0.5
    max_its: int = 15

    def __post_init__(self) -> None:
        if not self.s0 > 0:
            raise ValueError(f"s0: expected a positive initial step size, got {self.s0!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected 0 < alpha < 1 (Armijo fraction), got {self.alpha!r}")
        if not 0 < self.beta < 1:
            raise ValueError(f"beta: expected 0 < beta < 1 (shrink factor), got {self.beta!r}")
        if not isinstance(self.max_its, int) or self.max_its < 1:
            raise ValueError(f"max_its: expected a positive int, got {self.max_its!r}")

    def initial(self, n_tasks: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
        """Fresh step sizes ``[T]`` (reset at the start of every adaptation)."""
        return torch.full((n_tasks,), self.s0, device=device, dtype=dtype)


def _finite_or_inf(e: torch.Tensor) -> torch.Tensor:
    # a step so long that the error overflows is simply a very bad step
    return torch.where(torch.isfinite(e), e, torch.full_like(e, float("inf")))


@torch.no_grad()
def line_search(
    error: ErrorFn,
    w: torch.Tensor,
    delta: torch.Tensor,
    grad: torch.Tensor,
    error0: torch.Tensor,
    s: torch.Tensor,
    settings: LineSearch = LineSearch(),
    error_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Search every task's step size along ``delta`` from ``w``.

    ``w``, ``delta``, ``grad``: ``[T, P]``; ``error0``: the error at ``w`` ``[T]``; ``s``: the
    current (warm-start) step sizes ``[T]``. Returns the new step sizes, the error at
    ``w + s * delta`` for each task, and the number of error evaluations. A task whose
    error is still not finite at the end gets ``s = 0`` (no step), never a NaN parameter.
    ``error_rows(w_rows, rows)``, if given, evaluates only the tasks ``rows``; it is used once
    most tasks have finished searching, so the last few searches do not pay for every task.
    """
    if w.dim() != 2 or delta.shape != w.shape or grad.shape != w.shape:
        raise ValueError(f"w, delta, grad: expected equal shapes [T, P], got {tuple(w.shape)}, "
                         f"{tuple(delta.shape)}, {tuple(grad.shape)}")
    if error0.shape != w.shape[:1] or s.shape != w.shape[:1]:
        raise ValueError(f"error0, s: expected shape [{w.shape[0]}], got {tuple(error0.shape)}, {tuple(s.shape)}")
    a, b = settings.alpha, settings.beta
    decrease_needed = -a * (delta * grad).sum(-1)  # times s: the Armijo right-hand side

    def passes(step, e):
        return error0 - e >= step * decrease_needed

    e = _finite_or_inf(error(w + s[:, None] * delta))
    evaluations = 1
    shrinking = ~passes(s, e)
    growing = ~shrinking
    for _ in range(settings.max_its):
        if not bool((shrinking | growing).any()):
            break
        searching = shrinking | growing
        s_try = torch.where(shrinking, s * b, torch.where(growing, s / b, s))
        if error_rows is not None and 2 * int(searching.sum()) <= len(s):
            rows = searching.nonzero().squeeze(1)
            e_try = e.clone()  # rows not searching are never taken
            e_try[rows] = _finite_or_inf(error_rows(w[rows] + s_try[rows, None] * delta[rows], rows))
        else:
            e_try = _finite_or_inf(error(w + s_try[:, None] * delta))
        evaluations += 1
        better = e_try < e
        # shrinking stops once the test passes and the error no longer falls; the last
        # shrink did not help then, so it is undone (the values are simply not taken)
        stop_shrink = shrinking & passes(s_try, e_try) & ~better
        stop_grow = growing & ~better
        take = (shrinking & ~stop_shrink) | (growing & ~stop_grow)
        s = torch.where(take, s_try, s)
        e = torch.where(take, e_try, e)
        shrinking = shrinking & ~stop_shrink
        growing = growing & ~stop_grow
    bad = ~torch.isfinite(e)
    s = torch.where(bad, torch.zeros_like(s), s)
    e = torch.where(bad, error0, e)
    return s, e, evaluations
