"""MAML (second order) and first-order MAML, batched over tasks.

theta'_t = theta - alpha grad L_support,t(theta)  (k steps)
meta-loss = mean_t L_query,t(theta'_t)
The inner gradient is the model's explicit backward pass, so the meta-gradient
through it is one ordinary ``backward()`` over one graph for all tasks.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.sinusoid import SinusoidTasks, TaskBatch
from .adapt import sgd_adapt
from .training import TrainResult, initial_params, make_adam, run_loop


def maml_loss(
    model: MLP,
    theta: Params,
    batch: TaskBatch,
    *,
    inner_steps: int = 1,
    inner_lr: float = 0.01,
    first_order: bool = False,
) -> torch.Tensor:
    """Mean query loss after adapting ``theta`` to each task's support set."""
    phi = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=inner_steps, lr=inner_lr,
                    first_order=first_order)
    # every task has the same number of query points, so the mean of per-task MSEs is the global mean
    return (model.forward(phi, batch.x_query, check=False) - batch.y_query).pow(2).mean()


def train_maml(
    model: MLP,
    tasks: SinusoidTasks,
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    k_query: int = 10,
    inner_steps: int = 1,
    inner_lr: float = 0.01,
    meta_lr: float = 1e-3,
    first_order: bool = False,
    init: Params | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> TrainResult:
    """Meta-train ``theta`` with Adam on the (first-order) MAML meta-loss."""
    method = "FOMAML" if first_order else "MAML"
    theta = initial_params(model, init, generator, device)
    optimiser = make_adam(theta, meta_lr)
    batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device)

    def step(i: int, batch: TaskBatch) -> torch.Tensor:
        loss = maml_loss(model, theta, batch, inner_steps=inner_steps, inner_lr=inner_lr, first_order=first_order)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    losses, seconds = run_loop(method, step, batches, iterations, progress=progress)
    config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query,
                  inner_steps=inner_steps, inner_lr=inner_lr, meta_lr=meta_lr, first_order=first_order)
    return TrainResult(method, tuple(p.detach() for p in theta), losses, seconds, config)
