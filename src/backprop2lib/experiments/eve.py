"""Chapter 3's experiments: Eve's per-parameter learning rates against other inner loops that start
from the same learned mean (plain gradient descent with the line search, Adam with a tuned step)
and against Meta-SGD, whose rates are learned by meta-gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..meta.backprop2 import ScaleModel, train_backprop2
from ..meta.fewshot import query_errors
from ..models.mlp import MLP
from ..optim.tune import LRChoice, check_grid, choose
from ..scale.adapt import InnerLoop, adam_adapt, adapt
from .scale_comparison import ComparisonSettings


def train_eve(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *, decay: float = 0.2,
              seed: int = 0, device="cpu") -> ScaleModel:
    """The backprop2 learner with Eve's rates (no regulariser), decay ``κ = decay``."""
    return train_backprop2(model, tasks, rule="eve", decay=decay, outer_iterations=settings.outer_iterations,
                           tasks_per_iteration=settings.tasks_per_iteration,
                           points_per_task=settings.k_shot + settings.k_query, loop=settings.loop, init=init,
                           generator=torch.Generator().manual_seed(seed), device=device)


def inner_loops(model: MLP, eve: ScaleModel, *, adam_lr: float):
    """Three ways to adapt from Eve's learned mean μ, as functions ``(x, y, steps) -> AdaptResult``."""
    return {
        "Eve": lambda x, y, n: eve.adapt(model, x, y, loop=eve.loop.with_(max_steps=n)),
        "SGD + line search": lambda x, y, n: adapt(model, eve.mean, x, y, loop=eve.loop.with_(max_steps=n)),
        "Adam (tuned)": lambda x, y, n: adam_adapt(model, eve.mean, x, y, steps=n, lr=adam_lr),
    }


def tune_adam_lr(model: MLP, start: torch.Tensor, validation, *, steps: int, grid) -> LRChoice:
    """The inner-loop Adam step with the lowest mean query error on ``validation`` tasks (never test tasks).

    The criterion is the reported one (query error after ``steps`` steps); a rate under which any
    task's error is not finite scores inf. The grid rule and ``at_edge`` are the library's one tuner's.
    """
    scores = []
    for lr in check_grid(grid):
        res = adam_adapt(model, start, validation.x_support, validation.y_support, steps=steps, lr=lr)
        e = query_errors(model, res.params, validation.x_query, validation.y_query)
        scores.append(float(np.mean(np.where(np.isfinite(e), e, np.inf))))
    return choose("Adam (inner loop)", grid, scores, steps)


def error_vs_steps(model: MLP, loops, batch, steps: list[int]) -> dict[str, list[np.ndarray]]:
    """Query MSE per task after each budget in ``steps``, for every inner loop."""
    return {name: [query_errors(model, run(batch.x_support, batch.y_support, n).params.detach(), batch.x_query,
                                batch.y_query) for n in steps] for name, run in loops.items()}


@dataclass(frozen=True)
class Movement:
    """Mean |w − μ| after adaptation, on three groups of parameters."""

    trained_varying: float  # parameters that vary across the training tasks
    test_varying: float  # parameters that vary across the test tasks (the same ones in distribution)
    fixed: float  # parameters that vary in neither

    @property
    def focus(self) -> float:
        """How much more the training-varying parameters move than the fixed ones."""
        return self.trained_varying / self.fixed


def movement(adapted: torch.Tensor, start: torch.Tensor, trained_varying: torch.Tensor,
             test_varying: torch.Tensor) -> Movement:
    if adapted.dim() != 2 or adapted.shape[-1] != start.shape[-1]:
        raise ValueError(f"adapted: expected [T, {start.shape[-1]}], got {tuple(adapted.shape)}")
    d = (adapted - start).abs().mean(0)
    fixed = ~(trained_varying | test_varying)
    if not bool(fixed.any()) or not bool(trained_varying.any()) or not bool(test_varying.any()):
        raise ValueError("trained_varying, test_varying: need some varying parameters of each kind and some fixed ones")
    return Movement(float(d[trained_varying].mean()), float(d[test_varying].mean()), float(d[fixed].mean()))
