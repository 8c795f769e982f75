"""Slow, obvious references: one task at a time with autograd (for tests and speed comparisons).

This is how most MAML ports work: a Python loop over tasks, each inner step with
``torch.autograd.grad(create_graph=True)``.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.sinusoid import TaskBatch


def _one_task_loss(model: MLP, params, x, y) -> torch.Tensor:
    h = x
    for layer in range(model.n_layers):
        h = h @ params[2 * layer] + params[2 * layer + 1]
        if layer < model.n_layers - 1:
            h = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "gaussian": lambda z: torch.exp(-z * z)}[model.activation](h)
    return (h - y).pow(2).mean()


def maml_loss_per_task(
    model: MLP, theta: Params, batch: TaskBatch, *, inner_steps: int = 1, inner_lr: float = 0.01,
    first_order: bool = False,
) -> torch.Tensor:
    """The MAML meta-loss by a Python loop over tasks and autograd's double backward."""
    losses = []
    for t in range(batch.n_tasks):
        phi = list(theta)
        for _ in range(inner_steps):
            loss = _one_task_loss(model, phi, batch.x_support[t], batch.y_support[t])
            grads = torch.autograd.grad(loss, phi, create_graph=not first_order)
            phi = [p - inner_lr * (g.detach() if first_order else g) for p, g in zip(phi, grads)]
        losses.append(_one_task_loss(model, phi, batch.x_query[t], batch.y_query[t]))
    return torch.stack(losses).mean()


def reptile_update_per_task(
    model: MLP, theta: Params, x: torch.Tensor, y: torch.Tensor, *, inner_steps: int, inner_lr: float,
    outer_lr: float,
) -> Params:
    """Reptile's definition written out: SGD per task with autograd, then move towards the mean."""
    adapted = []
    for t in range(x.shape[0]):
        phi = [p.detach().clone().requires_grad_(True) for p in theta]
        for _ in range(inner_steps):
            grads = torch.autograd.grad(_one_task_loss(model, phi, x[t], y[t]), phi)
            phi = [(p - inner_lr * g).detach().requires_grad_(True) for p, g in zip(phi, grads)]
        adapted.append([p.detach() for p in phi])
    means = [torch.stack([a[i] for a in adapted]).mean(0) for i in range(len(theta))]
    return tuple(p + outer_lr * (m - p) for p, m in zip(theta, means))
