"""Slow, obvious references: one task at a time with autograd (for tests and speed comparisons).

This is how most MAML ports work: a Python loop over tasks, each inner step with
``torch.autograd.grad(create_graph=True)``. Starts are flat ``[P]``, inner steps are steps on
backprop2's E = mean over points of ½‖f − y‖² and the query loss is the MSE, as in
:mod:`backprop2lib.meta` (written out here from the definitions, not through the library's code).
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP
from ..tasks.batch import TaskBatch


def _one_task_output(model: MLP, params, x) -> torch.Tensor:
    h = x
    for layer in range(model.n_layers):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < model.n_layers - 1:
            h = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "gaussian": lambda z: torch.exp(-z * z)}[model.activation](h)
    return h


def _one_task_error(model: MLP, params, x, y) -> torch.Tensor:
    """E: mean over points of ½‖f − y‖² (what an inner step of size lr descends)."""
    return 0.5 * (_one_task_output(model, params, x) - y).pow(2).sum(-1).mean()


def _one_task_mse(model: MLP, params, x, y) -> torch.Tensor:
    return (_one_task_output(model, params, x) - y).pow(2).mean()


def maml_loss_per_task(
    model: MLP, theta: torch.Tensor, batch: TaskBatch, *, inner_steps: int = 1, inner_lr: float = 0.02,
    first_order: bool = False,
) -> torch.Tensor:
    """The MAML meta-loss from the flat start ``theta [P]`` by a Python loop over tasks and autograd's
    double backward."""
    losses = []
    for t in range(batch.n_tasks):
        phi = list(model.unflatten(theta))
        for _ in range(inner_steps):
            loss = _one_task_error(model, phi, batch.x_support[t], batch.y_support[t])
            grads = torch.autograd.grad(loss, phi, create_graph=not first_order)
            phi = [p - inner_lr * (g.detach() if first_order else g) for p, g in zip(phi, grads)]
        losses.append(_one_task_mse(model, phi, batch.x_query[t], batch.y_query[t]))
    return torch.stack(losses).mean()


def reptile_update_per_task(
    model: MLP, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, inner_steps: int, inner_lr: float,
    outer_lr: float,
) -> torch.Tensor:
    """Reptile's definition written out from the flat start ``theta [P]``: SGD per task with autograd,
    then move towards the mean."""
    adapted = []
    for t in range(x.shape[0]):
        phi = theta.detach().clone().requires_grad_(True)
        for _ in range(inner_steps):
            (g,) = torch.autograd.grad(_one_task_error(model, model.unflatten(phi), x[t], y[t]), phi)
            phi = (phi - inner_lr * g).detach().requires_grad_(True)
        adapted.append(phi.detach())
    return theta + outer_lr * (torch.stack(adapted).mean(0) - theta)
