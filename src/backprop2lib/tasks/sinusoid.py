"""Sinusoid regression tasks, y = A sin(x - phase), sampled many at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .batch import TaskFamily, check_range


@dataclass(frozen=True)
class SinusoidTasks(TaskFamily):
    """The family y = A sin(x - phase), A ~ U[amplitude], phase ~ U[phase], x ~ U[x_range].

    ``SinusoidTasks.maml()`` is the MAML paper's setting (phase in [0, pi]);
    ``SinusoidTasks.reptile()`` the Reptile demo's (phase in [0, 2 pi]). A batch's ``truth`` is
    ``[T, 2]``: column 0 the amplitude, column 1 the phase.
    """

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    name: str = "maml"

    def __post_init__(self) -> None:
        for field in ("amplitude", "phase", "x_range"):
            object.__setattr__(self, field, check_range(field, getattr(self, field)))

    @classmethod
    def maml(cls) -> "SinusoidTasks":
        return cls((0.1, 5.0), (0.0, math.pi), (-5.0, 5.0), "maml")

    @classmethod
    def reptile(cls) -> "SinusoidTasks":
        return cls((0.1, 5.0), (0.0, 2 * math.pi), (-5.0, 5.0), "reptile")

    @staticmethod
    def target(truth: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y for tasks ``truth = (amplitude, phase): [T, 2]`` at inputs ``x: [T, N, 1]``."""
        if truth.dim() != 2 or truth.shape[1] != 2:
            raise ValueError(f"truth: expected (amplitude, phase) of shape [T, 2], got {tuple(truth.shape)}")
        if x.dim() != 3 or x.shape[0] != truth.shape[0] or x.shape[2] != 1:
            raise ValueError(f"x: expected shape [{truth.shape[0]}, N, 1], got {tuple(x.shape)}")
        return truth[:, 0, None, None] * torch.sin(x - truth[:, 1, None, None])

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        # one draw per task: amplitude, phase, then its points
        u = torch.rand(n_tasks, 2 + n_points, generator=generator, device=gen_device, dtype=dtype)
        u = u.to(device)
        amplitude = self.amplitude[0] + (self.amplitude[1] - self.amplitude[0]) * u[:, 0]
        phase = self.phase[0] + (self.phase[1] - self.phase[0]) * u[:, 1]
        x = (self.x_range[0] + (self.x_range[1] - self.x_range[0]) * u[:, 2:]).unsqueeze(-1)
        truth = torch.stack([amplitude, phase], dim=1)
        return x, self.target(truth, x), truth

    def grid(self, n_points: int = 1000, *, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A dense evaluation grid over ``x_range``, shape ``[n_points]``."""
        if n_points < 2:
            raise ValueError(f"n_points: expected >= 2, got {n_points}")
        return torch.linspace(*self.x_range, n_points, device=device, dtype=dtype)
