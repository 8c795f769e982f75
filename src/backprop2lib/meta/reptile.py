"""Reptile (Nichol et al. 2018), batched: theta <- theta + eps (mean_t phi_t - theta).

phi_t is k SGD steps on task t from theta (steps on E, see :mod:`backprop2lib.meta`). The outer
step eps is annealed linearly to 0 over training. With eps = 1 this is the "batch Reptile" update
that backprop2's meta-learner uses for its mean.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.batch import TaskBatch
from .adapt import descend
from .training import MetaTraining, TrainResult


@torch.no_grad()
def _update(model: MLP, theta: Params, x: torch.Tensor, y: torch.Tensor, inner_steps: int, inner_lr: float,
            outer_lr: float) -> tuple[Params, torch.Tensor]:
    before = model.loss(theta, x, y).mean()
    phi = descend(model, theta, x, y, steps=inner_steps, lr=inner_lr, first_order=True)
    return tuple(torch.lerp(p, f.mean(dim=0), outer_lr) for p, f in zip(theta, phi)), before


@torch.no_grad()
def _update_per_seed(run, theta: Params, x: torch.Tensor, y: torch.Tensor, inner_steps: int, inner_lr: float,
                     outer_lr: float) -> tuple[Params, torch.Tensor]:
    """:func:`_update` for ``[S, ...]`` starts: each seed moves towards the mean of its own tasks."""
    model, start = run.model, run.per_task(theta)
    before = run.seed_means(model.loss(start, x, y))
    phi = descend(model, start, x, y, steps=inner_steps, lr=inner_lr, first_order=True)
    means = (f.reshape(run.n_seeds, run.meta_batch, *f.shape[1:]).mean(dim=1) for f in phi)
    return tuple(torch.lerp(p, m, outer_lr) for p, m in zip(theta, means)), before


def reptile_update(model: MLP, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, inner_steps: int,
                   inner_lr: float, outer_lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Reptile step from the flat start ``theta [P]`` for a batch of tasks; returns the new flat
    start and the mean pre-adaptation MSE."""
    new, before = _update(model, model.unflatten(theta.detach()), x, y, inner_steps, inner_lr, outer_lr)
    return model.flatten(new), before


def train_reptile(model: MLP, tasks, *, inner_steps: int = 5, inner_lr: float = 0.02,
                  outer_lr: float = 1.0, anneal: bool = True, **schedule) -> TrainResult:
    """Reptile on the support and query points of each task (the same data MAML sees).

    ``inner_lr``: a step on E; the default 0.02 is the 0.01 on the MSE (one output) that the book's
    Reptile took before the library had one loss convention. ``schedule``: see :class:`MetaTraining`
    (``seeds`` trains one start per seed at once).
    """
    if not 0 < outer_lr <= 1:
        raise ValueError(f"outer_lr: expected 0 < outer_lr <= 1, got {outer_lr!r}")
    run = MetaTraining("Reptile", model, tasks, **schedule)
    theta = [p.detach() for p in run.tuple_leaves()]  # the tuple view between iterations, as before

    def step(i: int, batch: TaskBatch) -> torch.Tensor:
        eps = outer_lr * (1 - i / run.iterations) if anneal else outer_lr
        if run.n_seeds is None:
            theta[:], before = _update(model, tuple(theta), batch.x_all, batch.y_all, inner_steps, inner_lr, eps)
        else:
            theta[:], before = _update_per_seed(run, tuple(theta), batch.x_all, batch.y_all, inner_steps, inner_lr,
                                                eps)
        return before

    losses, seconds = run.loop(step)
    return TrainResult("Reptile", model.flatten(tuple(theta)), losses, seconds,
                       dict(run.config, inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, anneal=anneal))
