"""Meta-SGD (Li et al. 2017): learn the initialisation AND a learning rate for every parameter.

    w_t = θ − α ⊙ ∇E_sup,t(θ)        (k such steps)
    min over (θ, α) of mean_t E_qry,t(w_t)

The published relative of Eve: both give every parameter its own rate, but Meta-SGD learns
the rates by meta-gradient, Eve sets them from how much each parameter varies across tasks.
Flat parameter vectors; the inner loop is :func:`backprop2lib.scale.adapt` with step size 1
and ``rates = α`` (differentiable, second order through the explicit backward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.mlp import MLP
from ..scale.adapt import InnerLoop, adapt
from ..scale.objective import error
from .training import TrainResult, make_adam, run_loop


@dataclass
class MetaSGDResult(TrainResult):
    rates: torch.Tensor | None = None  # the learned α [P]
    inner_steps: int = 1

    def adapt(self, model: MLP, x: torch.Tensor, y: torch.Tensor, *, steps: int | None = None):
        loop = InnerLoop(max_steps=self.inner_steps if steps is None else steps, lr=1.0)
        return adapt(model, self.flat, x, y, loop=loop, rates=self.rates)


def meta_sgd_loss(model: MLP, theta: torch.Tensor, rates: torch.Tensor, batch, *, inner_steps: int = 1) -> torch.Tensor:
    """Mean query error after ``inner_steps`` Meta-SGD steps from flat ``theta [P]`` with rates ``[P]``."""
    loop = InnerLoop(max_steps=inner_steps, lr=1.0)
    w = adapt(model, theta, batch.x_support, batch.y_support, loop=loop, rates=rates).params
    return error(model, w, batch.x_query, batch.y_query, check=False).mean()


def train_meta_sgd(
    model: MLP,
    tasks,
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    k_query: int = 10,
    inner_steps: int = 1,
    init_rate: float = 0.01,
    meta_lr: float = 1e-3,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> MetaSGDResult:
    """Adam on (θ, α); α starts at ``init_rate`` everywhere. ``init``: flat start [P]."""
    if not init_rate > 0:
        raise ValueError(f"init_rate: expected a positive learning rate, got {init_rate!r}")
    if init is None:
        init = model.flatten(model.init(generator=generator, device=device))
    theta = init.detach().clone().to(device).requires_grad_(True)
    rates = torch.full_like(theta, init_rate).requires_grad_(True)
    optimiser = make_adam([theta, rates], meta_lr)
    batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device)

    def step(i: int, batch) -> torch.Tensor:
        loss = meta_sgd_loss(model, theta, rates, batch, inner_steps=inner_steps)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        return loss.detach()

    losses, seconds = run_loop("Meta-SGD", step, batches, iterations, progress=progress)
    config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query,
                  inner_steps=inner_steps, init_rate=init_rate, meta_lr=meta_lr)
    flat = theta.detach()
    return MetaSGDResult("Meta-SGD", model.unflatten(flat), losses, seconds, config, rates=rates.detach(),
                         inner_steps=inner_steps)
