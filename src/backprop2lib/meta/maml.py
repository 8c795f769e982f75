"""MAML (second order) and first-order MAML, batched over tasks.

theta'_t = theta - alpha grad E_support,t(theta)  (k steps; alpha a step on E, see :mod:`backprop2lib.meta`)
meta-loss = mean_t MSE_query,t(theta'_t)
The inner gradient is the model's explicit backward pass, so the meta-gradient
through it is one ordinary ``backward()`` over one graph for all tasks.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.batch import TaskBatch
from .adapt import descend
from .training import MetaTraining, TrainResult

MAML_INNER_LR = 0.02
"""Finn et al. (2017)'s α = 0.01 on the MSE of one output, as a step on E (×2; exact)."""


def _query_loss(model: MLP, theta: Params, batch: TaskBatch, inner_steps: int, inner_lr: float,
                first_order: bool) -> torch.Tensor:
    phi = descend(model, theta, batch.x_support, batch.y_support, steps=inner_steps, lr=inner_lr,
                  first_order=first_order)
    # every task has the same number of query points, so the mean of per-task MSEs is the global mean
    return (model.forward(phi, batch.x_query, check=False) - batch.y_query).pow(2).mean()


def _query_loss_per_seed(run, theta: Params, batch: TaskBatch, inner_steps: int, inner_lr: float,
                         first_order: bool) -> torch.Tensor:
    """Each seed's mean query MSE ``[S]``, every task adapted from its own seed's start."""
    model = run.model
    phi = descend(model, run.per_task(theta), batch.x_support, batch.y_support, steps=inner_steps, lr=inner_lr,
                  first_order=first_order)
    per_task = (model.forward(phi, batch.x_query, check=False) - batch.y_query).pow(2).mean(dim=(1, 2))
    return run.seed_means(per_task)


def maml_loss(model: MLP, theta: torch.Tensor, batch: TaskBatch, *, inner_steps: int = 1,
              inner_lr: float = MAML_INNER_LR, first_order: bool = False) -> torch.Tensor:
    """Mean query MSE after adapting the flat start ``theta [P]`` to each task's support set."""
    return _query_loss(model, model.unflatten(theta), batch, inner_steps, inner_lr, first_order)


def train_maml(model: MLP, tasks, *, inner_steps: int = 1, inner_lr: float = MAML_INNER_LR, meta_lr: float = 1e-3,
               first_order: bool = False, **schedule) -> TrainResult:
    """Meta-train the start with Adam on the (first-order) MAML meta-loss.

    ``schedule``: the keywords every trainer shares (``iterations``, ``meta_batch``, ``k_shot``,
    ``k_query``, ``init`` flat [P], ``generator`` or ``seeds``, ``device``, ``progress``; see
    :class:`MetaTraining`, which also says how ``seeds`` trains one model per seed in one batch).
    """
    run = MetaTraining("FOMAML" if first_order else "MAML", model, tasks, **schedule)
    theta = run.tuple_leaves()  # Adam on the tuple view, one leaf per weight and bias ([S, ...] with seeds)
    if run.n_seeds is None:
        losses, seconds = run.adam(theta, meta_lr, lambda b: _query_loss(model, theta, b, inner_steps, inner_lr,
                                                                         first_order))
    else:
        losses, seconds = run.adam(theta, meta_lr, lambda b: _query_loss_per_seed(run, theta, b, inner_steps,
                                                                                  inner_lr, first_order))
    return TrainResult(run.method, model.flatten(tuple(p.detach() for p in theta)), losses, seconds,
                       dict(run.config, inner_steps=inner_steps, inner_lr=inner_lr, meta_lr=meta_lr,
                            first_order=first_order))
