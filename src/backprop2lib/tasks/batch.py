"""The one batch type every task family yields, and the sampling and streaming the families share.

:class:`TaskBatch` holds T regression tasks with support and query points of any input and output
width, and each task's ground truth; the meta-learners train on any family that yields it.
:class:`TaskFamily` is the base of every family (sinusoids, teacher networks, Gaussian bumps,
images): it checks the sizes, lets the family draw all points of every task at once
(:meth:`TaskFamily._draw`), cuts them into support and query, and streams meta-batches.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


# eq=False: the fields are tensors, whose == is elementwise and has no single truth value.
@dataclass(frozen=True, eq=False)
class TaskBatch:
    """T regression tasks with support (adaptation) and query (evaluation) points.

    ``x_support: [T, K, d]``, ``y_support: [T, K, o]``, ``x_query: [T, Q, d]``, ``y_query: [T, Q, o]``;
    ``truth`` is each task's ground truth with a leading task axis, what the family's ``target``
    takes: a sinusoid's (amplitude, phase) ``[T, 2]``, a teacher's parameters ``[T, P]``, a bump's
    offset ``[T, 2]``, an image's index ``[T]``.
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

    def __getitem__(self, index) -> "TaskBatch":
        """A sub-batch of tasks: an int keeps the task axis (length 1); slices and index tensors as torch."""
        if isinstance(index, torch.Tensor) and index.dim() == 0 and index.dtype != torch.bool:
            index = int(index)
        if isinstance(index, int) and not isinstance(index, bool):
            i = index + self.n_tasks if index < 0 else index
            if not 0 <= i < self.n_tasks:
                raise IndexError(f"task index {index} out of range for {self.n_tasks} tasks")
            index = slice(i, i + 1)  # a slice, not an int, so the task axis survives
        return TaskBatch(*(t[index] for t in self._fields()))

    def to(self, device: torch.device | str) -> "TaskBatch":
        return TaskBatch(*(t.to(device) for t in self._fields()))

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


def uniform_inputs(x_range: tuple[float, float], shape: tuple[int, ...], *, generator: torch.Generator | None,
                   gen_device: torch.device, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """Inputs ``shape`` drawn uniformly on ``x_range`` per coordinate: one ``torch.rand`` call."""
    u = torch.rand(shape, generator=generator, device=gen_device, dtype=dtype).to(device)
    return x_range[0] + (x_range[1] - x_range[0]) * u


def add_noise(y: torch.Tensor, noise_std: float, *, generator: torch.Generator | None,
              gen_device: torch.device) -> torch.Tensor:
    """``y + N(0, noise_std²)``; nothing is drawn when ``noise_std`` is 0.

    Families draw the noise last, so their tasks and inputs do not depend on the noise level.
    """
    if noise_std > 0:
        noise = torch.randn(y.shape, generator=generator, device=gen_device, dtype=y.dtype)
        y = y + noise_std * noise.to(y.device)
    return y


# ------------------------------------------------------------------ the family base
class TaskFamily(abc.ABC):
    """A distribution over regression tasks, sampled many tasks at a time.

    A family implements :meth:`_draw` (all points of every task, one batched draw); this base
    gives :meth:`sample` (checked sizes, support then query) and :meth:`stream`.
    """

    @abc.abstractmethod
    def _draw(self, n_tasks: int, n_points: int, *, generator: torch.Generator | None, gen_device: torch.device,
              device: torch.device | str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [T, n_points, d]``, ``y [T, n_points, o]`` and ``truth [T, ...]`` on ``device``.

        Random numbers are drawn from ``generator`` on ``gen_device`` (the generator's device,
        see :func:`draw_device`) and moved, so a CPU generator gives the same tasks on any device.
        """

    def sample(
        self,
        n_tasks: int,
        n_support: int,
        n_query: int = 0,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> TaskBatch:
        """Sample ``n_tasks`` tasks with ``n_support`` then ``n_query`` points each, in one batched call on ``device``."""
        check_counts(n_tasks, n_support, n_query)
        x, y, truth = self._draw(n_tasks, n_support + n_query, generator=generator,
                                 gen_device=draw_device(generator, device), device=device, dtype=dtype)
        return TaskBatch(x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:], truth)

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
    ) -> Iterator[TaskBatch]:
        """An endless stream of ``n_tasks``-task meta-batches, drawn ``chunk`` meta-batches per ``sample`` call.

        One big ``sample`` call per ``chunk`` steps keeps the per-step cost to a slice. The
        arguments are checked here, at the call, not at the first ``next()``.
        """
        check_counts(n_tasks, n_support, n_query)
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")

        def batches() -> Iterator[TaskBatch]:
            while True:
                big = self.sample(n_tasks * chunk, n_support, n_query, generator=generator, device=device,
                                  dtype=dtype)
                for i in range(chunk):
                    yield big[i * n_tasks : (i + 1) * n_tasks]

        return batches()

    def stream_seeds(
        self,
        n_tasks: int,
        n_support: int,
        n_query: int = 0,
        *,
        generators: Sequence[torch.Generator],
        chunk: int = 256,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Iterator[TaskBatch]:
        """S independent streams in one: meta-batch i holds ``n_tasks`` tasks of every seed, seed-major
        (tasks ``s·n_tasks … (s+1)·n_tasks − 1`` are seed s's), and seed s's tasks are exactly meta-batch
        i of ``stream(..., generator=generators[s])``. The seeds are drawn once per ``chunk`` steps and
        interleaved there, so a step costs one slice, as in :meth:`stream`.
        """
        check_counts(n_tasks, n_support, n_query)
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"chunk: expected an int >= 1, got {chunk!r}")
        generators = list(generators)
        if not generators or not all(isinstance(g, torch.Generator) for g in generators):
            raise ValueError(f"generators: expected one torch.Generator per seed (at least one), got {generators!r}")
        n_seeds = len(generators)

        def interleave(parts: list[torch.Tensor]) -> torch.Tensor:
            # [S][chunk·T, ...] -> [chunk, S, T, ...] -> [chunk·S·T, ...]: step i's S·T tasks are contiguous
            stacked = torch.stack([p.reshape(chunk, n_tasks, *p.shape[1:]) for p in parts], dim=1)
            return stacked.reshape(chunk * n_seeds * n_tasks, *stacked.shape[3:])

        def batches() -> Iterator[TaskBatch]:
            width = n_seeds * n_tasks
            while True:
                bigs = [self.sample(n_tasks * chunk, n_support, n_query, generator=g, device=device, dtype=dtype)
                        for g in generators]  # once per chunk steps, not per step
                big = TaskBatch(*(interleave([getattr(b, f) for b in bigs])
                                  for f in ("x_support", "y_support", "x_query", "y_query", "truth")))
                for i in range(chunk):
                    yield big[i * width : (i + 1) * width]

        return batches()
