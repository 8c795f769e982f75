"""The hidden-unit activations of the book's MLPs and their derivatives, in one place.

Every pass that needs an activation comes here: the MLP's forward and its hand-written backward
(:mod:`.mlp`, value and slope), the exact block Hessians of the second-order chapter
(:mod:`backprop2lib.second_order.hessian`, value, slope and curvature) and the recognition
chapter's pictures of hidden units. Derivatives are written in terms of the value where that
saves work (tanh' = 1 − tanh², σ' = σ(1 − σ)), so each pass computes f once.

>>> a, slope, curvature = activation_derivatives("tanh", z)   # f(z), f'(z), f''(z)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class Activation:
    """f, f′ from (z, f(z)) and f″ from (z, f(z), f′(z)): the later ones reuse what the earlier computed."""

    value: Callable[[Tensor], Tensor]
    slope: Callable[[Tensor, Tensor], Tensor]
    curvature: Callable[[Tensor, Tensor, Tensor], Tensor]


def _gaussian(z: Tensor) -> Tensor:  # backprop2's exp(−z²) units
    return torch.exp(-z * z)


# The formulas are those the MLP's backward and the Hessian pass have always used, operation for
# operation, so their numbers do not change by being shared.
_TABLE: dict[str, Activation] = {
    "relu": Activation(torch.relu, lambda z, a: (z > 0).to(z.dtype), lambda z, a, d1: torch.zeros_like(z)),
    "tanh": Activation(torch.tanh, lambda z, a: 1 - a * a, lambda z, a, d1: -2 * a * d1),
    "sigmoid": Activation(torch.sigmoid, lambda z, a: a * (1 - a), lambda z, a, d1: d1 * (1 - 2 * a)),
    "gaussian": Activation(_gaussian, lambda z, a: -2 * z * a, lambda z, a, d1: (4 * z * z - 2) * a),
}
ACTIVATIONS = tuple(_TABLE)  # ("relu", "tanh", "sigmoid", "gaussian")


def get_activation(name: str) -> Activation:
    """The :class:`Activation` called ``name``; a ValueError lists the valid names."""
    try:
        return _TABLE[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None


def activation(name: str, z: Tensor) -> Tensor:
    """f(z)."""
    return get_activation(name).value(z)


def activation_and_slope(name: str, z: Tensor) -> tuple[Tensor, Tensor]:
    """f(z) and f′(z) (the explicit backward pass)."""
    f = get_activation(name)
    a = f.value(z)
    return a, f.slope(z, a)


def activation_derivatives(name: str, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """f(z), f′(z) and f″(z) (the second-order backward pass of the block Hessians)."""
    f = get_activation(name)
    a = f.value(z)
    d1 = f.slope(z, a)
    return a, d1, f.curvature(z, a, d1)
