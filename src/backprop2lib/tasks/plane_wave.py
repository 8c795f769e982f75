"""backprop2's sinusoid on 2-D inputs: a plane wave y = A sin(2π f·(x − φ)) + noise.

The original's sinusoidal data set is y = A·sin(2πF(x − φ)) + N(b, 0.1²) with x ~ U[−2, 2]; with
two input coordinates we read F(x − φ) as a dot product, so the target is a plane wave across the
square. It is one fixed regression problem (not a task family): the second-order chapter trains
networks on it from many random initialisations.
"""

from __future__ import annotations

import math

import torch


def plane_wave(
    n_points: int,
    *,
    seed: int = 0,
    amplitude: float = 1.0,
    frequency: tuple[float, float] = (0.35, 0.2),
    phase: tuple[float, float] = (0.3, -0.2),
    noise: float = 0.1,
    x_range: tuple[float, float] = (-2.0, 2.0),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_points`` inputs ``[N, 2]`` drawn uniformly on the square and targets ``[N, 1]``."""
    if not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"n_points: expected a positive int, got {n_points!r}")
    if not noise >= 0:
        raise ValueError(f"noise: expected a standard deviation >= 0, got {noise!r}")
    lo, hi = x_range
    if not hi > lo:
        raise ValueError(f"x_range: expected (low, high) with high > low, got {x_range!r}")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_points, 2, generator=g, dtype=torch.float64) * (hi - lo) + lo
    f = torch.tensor(frequency, dtype=torch.float64)
    p = torch.tensor(phase, dtype=torch.float64)
    y = amplitude * torch.sin(2 * math.pi * ((x - p) * f).sum(-1, keepdim=True))
    y = y + noise * torch.randn(n_points, 1, generator=g, dtype=torch.float64)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)
