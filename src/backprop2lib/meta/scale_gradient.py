"""Beyond backprop2: learn the per-parameter scale by meta-gradient instead of from task variance.

The inner loop is the quadratic regulariser's, k steps of gradient descent from μ on

    E_sup,t(w) + c Σ_i (w_i − μ_i)² / σ_i²,

and (μ, log σ) are trained like MAML: differentiate the query error after the inner loop with
respect to both (second order, one graph for all tasks) and take an Adam step. backprop2 set σ
from how far parameters moved on training tasks; here σ is whatever makes adaptation
generalise best. σ² is kept above α·c (α the inner step) so the inner step on the
regulariser, whose curvature is 2c/σ², cannot become unstable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.mlp import MLP
from ..scale.adapt import InnerLoop, adapt
from ..scale.objective import error
from ..scale.regularisers import QuadraticRegulariser
from .training import MetaTraining, TrainResult


def _regulariser(mean, log_scale, strength: float, inner_lr: float) -> QuadraticRegulariser:
    variance = torch.exp(2 * log_scale).clamp_min(inner_lr * strength)
    return QuadraticRegulariser(mean, variance, strength)


@dataclass
class ScaleGradientResult(TrainResult):
    log_scale: torch.Tensor | None = None  # learned log σ [P] ([S, P] with seeds)
    per_seed_fields = ("params", "log_scale")
    strength: float = 1e-2
    inner_steps: int = 5
    inner_lr: float = 0.1

    @property
    def regulariser(self) -> QuadraticRegulariser:
        return _regulariser(self.params, self.log_scale, self.strength, self.inner_lr)

    @property
    def scale(self) -> torch.Tensor:
        return self.regulariser.scale

    def adapt(self, model: MLP, x: torch.Tensor, y: torch.Tensor, *, steps: int | None = None):
        self.require_single("adapt")
        loop = InnerLoop(max_steps=self.inner_steps if steps is None else steps, lr=self.inner_lr)
        return adapt(model, self.params, x, y, loop=loop, regulariser=self.regulariser)


def scale_gradient_loss(model: MLP, mean: torch.Tensor, log_scale: torch.Tensor, batch, *, inner_steps: int,
                        inner_lr: float, strength: float) -> torch.Tensor:
    """Mean query error after the regularised inner loop, differentiable in ``mean`` and ``log_scale``."""
    regulariser = _regulariser(mean, log_scale, strength, inner_lr)
    w = adapt(model, mean, batch.x_support, batch.y_support, loop=InnerLoop(max_steps=inner_steps, lr=inner_lr),
              regulariser=regulariser).params
    return error(model, w, batch.x_query, batch.y_query, check=False).mean()


def train_scale_gradient(model: MLP, tasks, *, inner_steps: int = 5, inner_lr: float = 0.1, strength: float = 1e-2,
                         init_scale: float = 1.0, meta_lr: float = 1e-3, **schedule) -> ScaleGradientResult:
    """Adam on (μ, log σ); σ starts at ``init_scale`` for every parameter; ``inner_lr`` is a step on E.
    ``schedule``: see :class:`MetaTraining` (``init``: the flat start μ [P]; ``seeds``: one (μ, σ) per seed at once)."""
    for name, value in (("inner_lr", inner_lr), ("strength", strength), ("init_scale", init_scale)):
        if not value > 0:
            raise ValueError(f"{name}: expected a positive number, got {value!r}")
    run = MetaTraining("meta-gradient scale", model, tasks, **schedule)
    mean = run.flat_leaf()
    log_scale = torch.full_like(mean, float(torch.tensor(init_scale).log())).requires_grad_(True)
    if run.n_seeds is None:
        losses, seconds = run.adam([mean, log_scale], meta_lr, lambda b: scale_gradient_loss(
            model, mean, log_scale, b, inner_steps=inner_steps, inner_lr=inner_lr, strength=strength))
    else:  # [S, P] each; every task adapts from its seed's μ with its seed's σ
        loop = InnerLoop(max_steps=inner_steps, lr=inner_lr)

        def per_seed(b):
            mu = run.per_task(mean)
            regulariser = _regulariser(mu, run.per_task(log_scale), strength, inner_lr)
            w = adapt(model, mu, b.x_support, b.y_support, loop=loop, regulariser=regulariser).params
            return run.seed_means(error(model, w, b.x_query, b.y_query, check=False))

        losses, seconds = run.adam([mean, log_scale], meta_lr, per_seed)
    config = dict(run.config, inner_steps=inner_steps, inner_lr=inner_lr, strength=strength, init_scale=init_scale,
                  meta_lr=meta_lr)
    return ScaleGradientResult(run.method, mean.detach(), losses, seconds, config, log_scale=log_scale.detach(),
                               strength=strength, inner_steps=inner_steps, inner_lr=inner_lr)
