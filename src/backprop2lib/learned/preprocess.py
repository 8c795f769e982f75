"""Gradient preprocessing for coordinatewise learned optimisers (Andrychowicz et al. 2016, appendix A).

Gradients span many orders of magnitude, which an LSTM's squashing gates handle badly. Each
coordinate ∇ becomes two numbers:

    (log|∇| / p, sign ∇)   if |∇| ≥ e^{−p},
    (−1, e^{p} ∇)          otherwise,

so large gradients are described by their magnitude on a log scale and their sign, and tiny
ones by a rescaled value. The two branches meet at |∇| = e^{−p}: the first feature is −1 on both
sides and the second is ±1 on both sides. The paper uses p = 10; the authors' released code p = 5.
"""

from __future__ import annotations

import math

import torch


def preprocess_gradients(grad: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """``grad: [...]`` → ``[..., 2]`` as above."""
    if not p > 0:
        raise ValueError(f"p: expected a positive number, got {p!r}")
    threshold = math.exp(-p)
    big = grad.abs() >= threshold
    # clamp inside the log so the unused branch never makes a NaN/inf that leaks into gradients
    log_part = torch.log(grad.abs().clamp_min(threshold)) / p
    first = torch.where(big, log_part, torch.full_like(grad, -1.0))
    second = torch.where(big, torch.sign(grad), grad * math.exp(p))
    return torch.stack([first, second], dim=-1)
