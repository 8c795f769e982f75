"""The inner loop: k SGD steps for every task at once."""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params


def sgd_step(model: MLP, params: Params, x: torch.Tensor, y: torch.Tensor, lr: float, *,
             first_order: bool = False) -> Params:
    """One SGD step on every task's ``(x, y)``; see :func:`sgd_adapt` for ``first_order``."""
    if first_order:
        with torch.no_grad():
            _, grads = model.loss_and_grad(params, x, y, check=False, need_loss=False)
    else:
        _, grads = model.loss_and_grad(params, x, y, check=False, need_loss=False)
    return tuple(torch.add(p, g, alpha=-lr) for p, g in zip(params, grads))


def sgd_adapt(
    model: MLP,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> Params:
    """Run ``steps`` SGD steps from ``params`` (shared or per-task) on every task's ``(x, y)``.

    The result always has a task axis. With ``first_order=False`` the steps stay
    differentiable in ``params`` (second-order MAML); with ``first_order=True`` each
    gradient is a constant (first-order MAML), which also skips building its graph.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")
    model._check_batch(params, x, y)
    if steps == 0:
        return model.expand(params, x.shape[0])
    for _ in range(steps):
        params = sgd_step(model, params, x, y, lr, first_order=first_order)
    return params
