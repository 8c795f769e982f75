"""The "pretrained" baseline: one network regressing all tasks jointly, later fine-tuned."""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..tasks.sinusoid import SinusoidTasks, TaskBatch
from .training import TrainResult, initial_params, make_adam, run_loop


def train_pretrained(
    model: MLP,
    tasks: SinusoidTasks,
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    k_query: int = 10,
    lr: float = 1e-3,
    init: Params | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> TrainResult:
    """Adam on the mean squared error over all points of a fresh batch of tasks each iteration."""
    theta = initial_params(model, init, generator, device)
    optimiser = make_adam(theta, lr)
    batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device)

    def step(i: int, batch: TaskBatch) -> torch.Tensor:
        loss = model.loss(theta, batch.x_all, batch.y_all, check=False).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    losses, seconds = run_loop("pretrained", step, batches, iterations, progress=progress)
    config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query, lr=lr)
    return TrainResult("pretrained", tuple(p.detach() for p in theta), losses, seconds, config)
