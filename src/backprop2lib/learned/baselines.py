"""Hand-designed baselines for the learned optimizer, batched over B optimizee instances.

Every stepper works on flat parameters ``θ: [B, P]`` (B independent instances) with no autograd:

* ``init(theta) -> state``: a fresh state dict for these instances;
* ``step(theta, grad, state) -> theta'``: one update; ``state`` is updated in place.

The update formulas are exactly those of ``torch.optim`` (SGD, SGD with Nesterov momentum,
RMSprop, Adam; no weight decay), applied to every instance at once, so a batched run equals B
separate ``torch.optim`` runs. :class:`LearnedStepper` gives a trained
:class:`~backprop2lib.learned.optimizer.CoordinatewiseOptimizer` the same interface, so
:mod:`backprop2lib.learned.evaluate` runs learned and hand-designed optimizers alike.

Each baseline has one learning rate ``lr``, tuned on validation instances over :data:`LR_GRID`
(half-decades from 1e-4 to 1) by :func:`backprop2lib.learned.evaluate.tune_lr`; an untuned
baseline is not a credible comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .optimizer import CoordinatewiseOptimizer

LR_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)


def _check_number(name: str, value, *, low: float, high: float = math.inf,
                  low_open: bool = True, high_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a finite number in {lo}{low}, {high}{hi}, got {value!r}")


def _check_pair(theta: torch.Tensor, grad: torch.Tensor) -> None:
    if theta.dim() != 2:
        raise ValueError(f"theta: expected [B, P] (instances x coordinates), got {tuple(theta.shape)}")
    if grad.shape != theta.shape:
        raise ValueError(f"grad: expected the shape of theta {tuple(theta.shape)}, got {tuple(grad.shape)}")


@dataclass(frozen=True)
class SGD:
    """θ ← θ − lr·g."""

    lr: float
    name: str = "SGD"

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, low=0.0)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        _check_pair(theta, grad)
        with torch.no_grad():
            state["t"] += 1
            return theta - self.lr * grad


@dataclass(frozen=True)
class NAG:
    """Nesterov momentum as ``torch.optim.SGD(momentum=μ, nesterov=True)``:
    b ← μ·b + g (b₁ = g), θ ← θ − lr·(g + μ·b)."""

    lr: float
    momentum: float = 0.9
    name: str = "NAG"

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, low=0.0)
        _check_number("momentum", self.momentum, low=0.0, high=1.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "buf": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        _check_pair(theta, grad)
        with torch.no_grad():
            state["t"] += 1
            buf = state["buf"] = self.momentum * state["buf"] + grad  # zero start: b₁ = g, as torch
            return theta - self.lr * (grad + self.momentum * buf)


@dataclass(frozen=True)
class RMSprop:
    """As ``torch.optim.RMSprop`` (not centred, no momentum):
    s ← α·s + (1−α)·g², θ ← θ − lr·g / (√s + ε)."""

    lr: float
    alpha: float = 0.99
    eps: float = 1e-8
    name: str = "RMSprop"

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, low=0.0)
        _check_number("alpha", self.alpha, low=0.0, high=1.0, low_open=False)
        _check_number("eps", self.eps, low=0.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "square_avg": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        _check_pair(theta, grad)
        with torch.no_grad():
            state["t"] += 1
            sq = state["square_avg"] = self.alpha * state["square_avg"] + (1 - self.alpha) * grad * grad
            return theta - self.lr * grad / (sq.sqrt() + self.eps)


@dataclass(frozen=True)
class Adam:
    """As ``torch.optim.Adam`` (no weight decay, no amsgrad):
    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    name: str = "Adam"

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, low=0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            _check_number(f"betas[{i}]", beta, low=0.0, high=1.0, low_open=False)
        _check_number("eps", self.eps, low=0.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "exp_avg": torch.zeros_like(theta), "exp_avg_sq": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        _check_pair(theta, grad)
        beta1, beta2 = self.betas
        with torch.no_grad():
            t = state["t"] = state["t"] + 1
            m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
            v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
            bias1 = 1 - beta1 ** t
            bias2 = 1 - beta2 ** t
            denom = v.sqrt() / math.sqrt(bias2) + self.eps
            return theta - (self.lr / bias1) * m / denom


@dataclass(frozen=True)
class LearnedStepper:
    """A :class:`CoordinatewiseOptimizer` behind the stepper interface: θ ← θ + net(g).

    The net runs under ``torch.no_grad`` in its own dtype and device (the gradient is cast to
    them and the update cast back to θ's), with one recurrent state row per coordinate of every
    instance. ``name`` defaults to the cell, upper-case ("LSTM" or "GRU").
    """

    net: CoordinatewiseOptimizer
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.net, CoordinatewiseOptimizer):
            raise ValueError(f"net: expected a CoordinatewiseOptimizer, got {type(self.net).__name__}")
        if self.name is None:
            object.__setattr__(self, "name", self.net.config.cell.upper())

    @property
    def lr(self) -> None:
        """A learned optimizer has no learning rate to tune."""
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
        _check_pair(theta, grad)
        p = self._param()
        with torch.no_grad():
            update, state["rnn"] = self.net(grad.to(device=p.device, dtype=p.dtype), state["rnn"])
            state["t"] += 1
            return theta + update.to(device=theta.device, dtype=theta.dtype)


BASELINES = {"SGD": SGD, "NAG": NAG, "RMSprop": RMSprop, "Adam": Adam}
