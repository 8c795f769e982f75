"""A general batch of regression tasks, and the sampling helpers the task families share.

:class:`RegressionBatch` has the interface of :class:`~backprop2lib.tasks.sinusoid.TaskBatch`
(``x_support``, ``y_support``, ``x_query``, ``y_query``, ``x_all``, ``y_all``, indexing), so
the meta-learners train on any family that yields it, with any input and output width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


# eq=False: the fields are tensors, whose == is elementwise and has no single truth value.
@dataclass(frozen=True, eq=False)
class RegressionBatch:
    """T regression tasks with support (adaptation) and query (evaluation) points.

    ``x_support: [T, K, d]``, ``y_support: [T, K, o]``, ``x_query: [T, Q, d]``, ``y_query: [T, Q, o]``;
    ``truth`` is each task's ground truth with a leading task axis (e.g. parameters ``[T, P]``).
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    truth: torch.Tensor

    def __post_init__(self) -> None:
        # Shape checks only (no data is read), so slicing a streamed chunk stays cheap.
        if self.truth.dim() == 0:
            raise ValueError("truth: expected a leading task axis, got a scalar")
        n = self.truth.shape[0]
        for field in ("x_support", "y_support", "x_query", "y_query"):
            t = getattr(self, field)
            if t.dim() != 3 or t.shape[0] != n:
                raise ValueError(f"{field}: expected shape [{n}, N, width] (T from truth), got {tuple(t.shape)}")
        for part in ("support", "query"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.shape[1] != y.shape[1]:
                raise ValueError(f"y_{part}: has {y.shape[1]} points per task but x_{part} has {x.shape[1]}")
        if self.x_support.shape[2] != self.x_query.shape[2]:
            raise ValueError(f"x_query: input width {self.x_query.shape[2]} differs from x_support's "
                             f"{self.x_support.shape[2]}")
        if self.y_support.shape[2] != self.y_query.shape[2]:
            raise ValueError(f"y_query: output width {self.y_query.shape[2]} differs from y_support's "
                             f"{self.y_support.shape[2]}")

    @property
    def n_tasks(self) -> int:
        return self.truth.shape[0]

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.x_support, self.y_support, self.x_query, self.y_query, self.truth)

    def __getitem__(self, index) -> "RegressionBatch":
        """A sub-batch of tasks: an int keeps the task axis (length 1); slices and index tensors as torch."""
        if isinstance(index, torch.Tensor) and index.dim() == 0 and index.dtype != torch.bool:
            index = int(index)
        if isinstance(index, int) and not isinstance(index, bool):
            i = index + self.n_tasks if index < 0 else index
            if not 0 <= i < self.n_tasks:
                raise IndexError(f"task index {index} out of range for {self.n_tasks} tasks")
            index = slice(i, i + 1)  # a slice, not an int, so the task axis survives
        return RegressionBatch(*(t[index] for t in self._fields()))

    def to(self, device: torch.device | str) -> "RegressionBatch":
        return RegressionBatch(*(t.to(device) for t in self._fields()))

    @property
    def x_all(self) -> torch.Tensor:
        return torch.cat([self.x_support, self.x_query], dim=1)

    @property
    def y_all(self) -> torch.Tensor:
        return torch.cat([self.y_support, self.y_query], dim=1)


# ------------------------------------------------------------------ shared helpers
def check_counts(n_tasks: int, n_support: int, n_query: int) -> None:
    """The sizes every ``sample`` takes: at least one task, any number (>= 0) of points."""
    for name, value, low in (("n_tasks", n_tasks, 1), ("n_support", n_support, 0), ("n_query", n_query, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")


def check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    """A finite ``(low, high)`` pair with ``low < high``, returned as floats."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}: expected finite (low, high) with low < high, got {(lo, hi)}")
    return lo, hi


def check_number(name: str, value: float, *, positive: bool = False) -> float:
    """A finite float, >= 0 (noise levels) or with ``positive`` > 0 (spreads, heights, widths)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def draw_device(generator: torch.Generator | None, device: torch.device | str) -> torch.device:
    """Where to draw random numbers: the generator's device (then move), so a CPU generator serves CUDA."""
    return generator.device if generator is not None else torch.device(device)


def stream_batches(
    sample: Callable[..., RegressionBatch],
    n_tasks: int,
    n_support: int,
    n_query: int = 0,
    *,
    chunk: int = 256,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[RegressionBatch]:
    """An endless stream of ``n_tasks``-task meta-batches from ``sample``, drawn ``chunk`` meta-batches per call.

    One big ``sample`` call per ``chunk`` steps keeps the per-step cost to a slice. The arguments
    are checked here, at the call, not at the first ``next()``.
    """
    check_counts(n_tasks, n_support, n_query)
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")

    def batches() -> Iterator[RegressionBatch]:
        while True:
            big = sample(n_tasks * chunk, n_support, n_query, generator=generator, device=device, dtype=dtype)
            for i in range(chunk):
                yield big[i * n_tasks : (i + 1) * n_tasks]

    return batches()


class StreamsBatches:
    """For task families with a batched ``sample``: an endless stream of meta-batches from it."""

    def stream(
        self,
        n_tasks: int,
        n_support: int,
        n_query: int = 0,
        *,
        chunk: int = 256,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Iterator[RegressionBatch]:
        """An endless stream of meta-batches, sampled ``chunk`` meta-batches per call (cheap per step)."""
        return stream_batches(self.sample, n_tasks, n_support, n_query, chunk=chunk, generator=generator,
                              device=device, dtype=dtype)
