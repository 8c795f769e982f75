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
from .training import MetaTraining, TrainResult


@dataclass
class MetaSGDResult(TrainResult):
    rates: torch.Tensor | None = None  # the learned α [P] ([S, P] with seeds)
    inner_steps: int = 1
    per_seed_fields = ("params", "rates")

    def adapt(self, model: MLP, x: torch.Tensor, y: torch.Tensor, *, steps: int | None = None):
        self.require_single("adapt")
        loop = InnerLoop(max_steps=self.inner_steps if steps is None else steps, lr=1.0)
        return adapt(model, self.params, x, y, loop=loop, rates=self.rates)


def meta_sgd_loss(model: MLP, theta: torch.Tensor, rates: torch.Tensor, batch, *, inner_steps: int = 1) -> torch.Tensor:
    """Mean query error after ``inner_steps`` Meta-SGD steps from flat ``theta [P]`` with rates ``[P]``."""
    loop = InnerLoop(max_steps=inner_steps, lr=1.0)
    w = adapt(model, theta, batch.x_support, batch.y_support, loop=loop, rates=rates).params
    return error(model, w, batch.x_query, batch.y_query, check=False).mean()


def train_meta_sgd(model: MLP, tasks, *, inner_steps: int = 1, init_rate: float = 0.01, meta_lr: float = 1e-3,
                   **schedule) -> MetaSGDResult:
    """Adam on (θ, α); α starts at ``init_rate`` (a step on E) everywhere. ``schedule``: see
    :class:`MetaTraining` (``init``: the flat start θ [P]; ``seeds``: one (θ, α) per seed at once)."""
    if not init_rate > 0:
        raise ValueError(f"init_rate: expected a positive learning rate, got {init_rate!r}")
    run = MetaTraining("Meta-SGD", model, tasks, **schedule)
    theta = run.flat_leaf()
    rates = torch.full_like(theta, init_rate).requires_grad_(True)
    if run.n_seeds is None:
        losses, seconds = run.adam([theta, rates], meta_lr,
                                   lambda b: meta_sgd_loss(model, theta, rates, b, inner_steps=inner_steps))
    else:  # [S, P] each; every task adapts from its seed's θ with its seed's α
        loop = InnerLoop(max_steps=inner_steps, lr=1.0)

        def per_seed(b):
            w = adapt(model, run.per_task(theta), b.x_support, b.y_support, loop=loop, rates=run.per_task(rates)).params
            return run.seed_means(error(model, w, b.x_query, b.y_query, check=False))

        losses, seconds = run.adam([theta, rates], meta_lr, per_seed)
    return MetaSGDResult("Meta-SGD", theta.detach(), losses, seconds,
                         dict(run.config, inner_steps=inner_steps, init_rate=init_rate, meta_lr=meta_lr),
                         rates=rates.detach(), inner_steps=inner_steps)
