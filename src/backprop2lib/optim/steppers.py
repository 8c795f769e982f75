"""Hand-designed optimisers on flat parameters, batched over B independent rows.

Every stepper follows one protocol (as learned_optimization and optax do), with no autograd:

* ``init(theta) -> state``: a fresh state dict for parameters ``theta: [B, P]``;
* ``step(theta, grad, state) -> theta'``: one update of every row; ``state`` is updated in place.

A row is whatever the caller batches: optimisee instances (chapter 6), models trained from
different initialisations (chapter 4) or tasks adapting in an inner loop (chapter 3). The update
formulas are exactly those of ``torch.optim`` (no weight decay), so a batched run equals B
separate ``torch.optim`` runs. Steppers that need more than the gradient (a line search, block
Newton) live next to what they need and follow the same protocol; :func:`backprop2lib.optim.loop.run`
drives all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Stepper(Protocol):
    name: str

    def init(self, theta: torch.Tensor) -> dict: ...

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor: ...


def check_number(name: str, value, *, low: float, high: float = math.inf,
                 low_open: bool = True, high_open: bool = True) -> float:
    """``value`` as a float if it is a finite number in the interval, else a ValueError naming ``name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: expected a finite number in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


def check_pair(theta: torch.Tensor, grad: torch.Tensor) -> None:
    if theta.dim() != 2:
        raise ValueError(f"theta: expected [B, P] (rows x coordinates), got {tuple(theta.shape)}")
    if grad.shape != theta.shape:
        raise ValueError(f"grad: expected the shape of theta {tuple(theta.shape)}, got {tuple(grad.shape)}")


@dataclass(frozen=True)
class SGD:
    """θ ← θ − lr·g."""

    lr: float
    name: str = "SGD"

    def __post_init__(self) -> None:
        check_number("lr", self.lr, low=0.0)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        check_pair(theta, grad)
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
        check_number("lr", self.lr, low=0.0)
        check_number("momentum", self.momentum, low=0.0, high=1.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "buf": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        check_pair(theta, grad)
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
        check_number("lr", self.lr, low=0.0)
        check_number("alpha", self.alpha, low=0.0, high=1.0, low_open=False)
        check_number("eps", self.eps, low=0.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "square_avg": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        check_pair(theta, grad)
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
        check_number("lr", self.lr, low=0.0)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {self.betas!r}")
        for i, beta in enumerate(self.betas):
            check_number(f"betas[{i}]", beta, low=0.0, high=1.0, low_open=False)
        check_number("eps", self.eps, low=0.0, low_open=False)

    def init(self, theta: torch.Tensor) -> dict:
        return {"t": 0, "exp_avg": torch.zeros_like(theta), "exp_avg_sq": torch.zeros_like(theta)}

    def step(self, theta: torch.Tensor, grad: torch.Tensor, state: dict) -> torch.Tensor:
        check_pair(theta, grad)
        beta1, beta2 = self.betas
        with torch.no_grad():
            t = state["t"] = state["t"] + 1
            m = state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * grad
            v = state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
            bias1 = 1 - beta1 ** t
            bias2 = 1 - beta2 ** t
            denom = v.sqrt() / math.sqrt(bias2) + self.eps
            return theta - (self.lr / bias1) * m / denom


STEPPERS = {"SGD": SGD, "NAG": NAG, "RMSprop": RMSprop, "Adam": Adam}
"""The hand-designed steppers by display name (each takes its learning rate first)."""
