"""Reptile (Nichol et al. 2018), batched: theta <- theta + eps (mean_t phi_t - theta).

phi_t is k SGD steps on task t from theta. The outer step eps is annealed
linearly to 0 over training. With eps = 1 this is the "batch Reptile" update that
backprop2's meta-learner uses for its mean.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.sinusoid import SinusoidTasks, TaskBatch
from .adapt import sgd_adapt
from .training import TrainResult, initial_params, run_loop


@torch.no_grad()
def reptile_update(
    model: MLP, theta: Params, x: torch.Tensor, y: torch.Tensor, *, inner_steps: int, inner_lr: float,
    outer_lr: float,
) -> tuple[Params, torch.Tensor]:
    """One Reptile step for a batch of tasks; returns the new theta and the mean pre-adaptation loss."""
    before = model.loss(theta, x, y).mean()
    phi = sgd_adapt(model, theta, x, y, steps=inner_steps, lr=inner_lr, first_order=True)
    new = tuple(torch.lerp(p, f.mean(dim=0), outer_lr) for p, f in zip(theta, phi))
    return new, before


def train_reptile(
    model: MLP,
    tasks: SinusoidTasks,
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    k_query: int = 10,
    inner_steps: int = 5,
    inner_lr: float = 0.01,
    outer_lr: float = 1.0,
    anneal: bool = True,
    init: Params | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> TrainResult:
    """Reptile on the support and query points of each task (the same data MAML sees)."""
    if not 0 < outer_lr <= 1:
        raise ValueError(f"outer_lr: expected 0 < outer_lr <= 1, got {outer_lr!r}")
    theta = [p.detach() for p in initial_params(model, init, generator, device)]
    batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device)

    def step(i: int, batch: TaskBatch) -> torch.Tensor:
        eps = outer_lr * (1 - i / iterations) if anneal else outer_lr
        new, before = reptile_update(model, tuple(theta), batch.x_all, batch.y_all, inner_steps=inner_steps,
                                     inner_lr=inner_lr, outer_lr=eps)
        theta[:] = new
        return before

    losses, seconds = run_loop("Reptile", step, batches, iterations, progress=progress)
    config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query,
                  inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr, anneal=anneal)
    return TrainResult("Reptile", tuple(theta), losses, seconds, config)
