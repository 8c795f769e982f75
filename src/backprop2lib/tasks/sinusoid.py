"""Sinusoid regression tasks, y = A sin(x - phase), sampled many at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class TaskBatch:
    """T regression tasks with support (adaptation) and query (evaluation) points.

    ``x_*``/``y_*`` are ``[T, N, 1]``; ``amplitude`` and ``phase`` are ``[T]``.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    y_query: torch.Tensor
    amplitude: torch.Tensor
    phase: torch.Tensor

    @property
    def n_tasks(self) -> int:
        return self.amplitude.shape[0]

    def __getitem__(self, index) -> "TaskBatch":
        """A sub-batch of tasks (an int keeps the task axis, with length 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return TaskBatch(*(t[index] for t in (self.x_support, self.y_support, self.x_query, self.y_query,
                                              self.amplitude, self.phase)))

    @property
    def x_all(self) -> torch.Tensor:
        return torch.cat([self.x_support, self.x_query], dim=1)

    @property
    def y_all(self) -> torch.Tensor:
        return torch.cat([self.y_support, self.y_query], dim=1)


@dataclass(frozen=True)
class SinusoidTasks:
    """The family y = A sin(x - phase), A ~ U[amplitude], phase ~ U[phase], x ~ U[x_range].

    ``SinusoidTasks.maml()`` is the MAML paper's setting (phase in [0, pi]);
    ``SinusoidTasks.reptile()`` the Reptile demo's (phase in [0, 2 pi]).
    """

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    name: str = "maml"

    def __post_init__(self) -> None:
        for field in ("amplitude", "phase", "x_range"):
            lo, hi = getattr(self, field)
            if not lo < hi:
                raise ValueError(f"{field}: expected (low, high) with low < high, got {(lo, hi)}")

    @classmethod
    def maml(cls) -> "SinusoidTasks":
        return cls((0.1, 5.0), (0.0, math.pi), (-5.0, 5.0), "maml")

    @classmethod
    def reptile(cls) -> "SinusoidTasks":
        return cls((0.1, 5.0), (0.0, 2 * math.pi), (-5.0, 5.0), "reptile")

    @staticmethod
    def target(amplitude: torch.Tensor, phase: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y for tasks ``[T]`` at inputs ``x: [T, N, 1]``."""
        return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])

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
        """Sample ``n_tasks`` tasks with their points, in one batched call on ``device``."""
        for name, value, low in (("n_tasks", n_tasks, 1), ("n_support", n_support, 0), ("n_query", n_query, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
        gen_device = generator.device if generator is not None else torch.device(device)
        u = torch.rand(n_tasks, 2 + n_support + n_query, generator=generator, device=gen_device, dtype=dtype)
        u = u.to(device)
        amplitude = self.amplitude[0] + (self.amplitude[1] - self.amplitude[0]) * u[:, 0]
        phase = self.phase[0] + (self.phase[1] - self.phase[0]) * u[:, 1]
        x = (self.x_range[0] + (self.x_range[1] - self.x_range[0]) * u[:, 2:]).unsqueeze(-1)
        y = self.target(amplitude, phase, x)
        return TaskBatch(x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:], amplitude, phase)

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
        """An endless stream of meta-batches, sampled ``chunk`` meta-batches per call (cheap per step)."""
        while True:
            big = self.sample(n_tasks * chunk, n_support, n_query, generator=generator, device=device, dtype=dtype)
            for i in range(chunk):
                yield big[slice(i * n_tasks, (i + 1) * n_tasks)]

    def grid(self, n_points: int = 1000, *, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A dense evaluation grid over ``x_range``, shape ``[n_points]``."""
        if n_points < 2:
            raise ValueError(f"n_points: expected >= 2, got {n_points}")
        return torch.linspace(*self.x_range, n_points, device=device, dtype=dtype)
