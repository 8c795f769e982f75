"""backprop2's data error on flat parameter vectors: E(w) = mean over points of ½‖f(x; w) − y‖².

Parameters are one flat vector per task, ``w: [T, P]`` (the layout of ``MLP.flatten``), the
form regularisers and per-parameter learning rates act on. The gradient reuses the model's
explicit backward pass, so it stays differentiable in ``w`` (for meta-gradients).
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP


def _check(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
    if w.dim() != 2 or w.shape[-1] != model.n_params:
        raise ValueError(f"w: expected flat parameters [T, {model.n_params}], got {tuple(w.shape)}")
    if x.dim() != 3 or x.shape[0] != w.shape[0] or x.shape[-1] != model.sizes[0]:
        raise ValueError(f"x: expected [{w.shape[0]}, N, {model.sizes[0]}], got {tuple(x.shape)}")
    if tuple(y.shape) != (*x.shape[:2], model.sizes[-1]):
        raise ValueError(f"y: expected {(*x.shape[:2], model.sizes[-1])}, got {tuple(y.shape)}")


def point_errors(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """½‖f(x_n) − y_n‖² for every point, ``[T, N]``."""
    if check:
        _check(model, w, x, y)
    out = model.forward(model.unflatten(w), x, check=False)
    return 0.5 * (out - y).pow(2).sum(-1)


def error(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Mean point error per task, ``[T]``."""
    return point_errors(model, w, x, y, check=check).mean(-1)


def error_and_grad(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *,
                   check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The error ``[T]`` and its gradient ``[T, P]`` with respect to ``w``."""
    if check:
        _check(model, w, x, y)
    mse, grads = model.loss_and_grad(model.unflatten(w), x, y, check=False)
    half_sse = 0.5 * model.sizes[-1]  # MSE averages over outputs too; E sums them
    flat = torch.cat([g.reshape(w.shape[0], -1) for g in grads], dim=-1)
    return half_sse * mse, half_sse * flat
