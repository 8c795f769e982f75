"""A trained :class:`~backprop2lib.learned.optimiser.CoordinatewiseOptimiser` behind the stepper
protocol of :mod:`backprop2lib.optim.steppers`, so :func:`backprop2lib.optim.run` runs learned and
hand-designed optimisers alike."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..optim.steppers import check_pair
from .optimiser import CoordinatewiseOptimiser


@dataclass(frozen=True)
class LearnedStepper:
    """θ ← θ + net(g).

    The net runs under ``torch.no_grad`` in its own dtype and device (the gradient is cast to
    them and the update cast back to θ's), with one recurrent state row per coordinate of every
    instance. ``name`` defaults to the cell, upper-case ("LSTM" or "GRU").
    """

    net: CoordinatewiseOptimiser
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.net, CoordinatewiseOptimiser):
            raise ValueError(f"net: expected a CoordinatewiseOptimiser, got {type(self.net).__name__}")
        if self.name is None:
            object.__setattr__(self, "name", self.net.config.cell.upper())

    @property
    def lr(self) -> None:
        """A learned optimiser has no learning rate to tune."""
        return None

    def _param(self) -> torch.Tensor:
        return next(self.net.parameters())

    def init(self, theta: torch.Tensor) -> dict:
        if theta.dim() != 2:
            raise ValueError(f"theta: expected [B, P] (instances x coordinates), got {tuple(theta.shape)}")
        p = self._param()
        B, P = theta.shape
        return {"t": 0, "rnn": self.net.initial_state(B, P, device=p.device, dtype=p.dtype)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        check_pair(theta, grad)
        p = self._param()
        with torch.no_grad():
            update, state["rnn"] = self.net(grad.to(device=p.device, dtype=p.dtype), state["rnn"])
            state["t"] += 1
            return theta + update.to(device=theta.device, dtype=theta.dtype)
