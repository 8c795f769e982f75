"""Adapt to many held-out tasks and measure the error on a dense grid, step by step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.mlp import MLP, Params
from ..stats import Summary, summarise
from ..tasks.sinusoid import SinusoidTasks, TaskBatch
from .adapt import sgd_step


# Sinusoid targets have |y| <= 5, so even predicting 0 gives an MSE below 12.5; an error
# above 1e6 means the adaptation ran away, whether or not it has overflowed yet.
DIVERGED_ABOVE = 1e6


@dataclass(frozen=True)
class AdaptationCurve:
    """Grid MSE of every held-out task after 0..steps adaptation steps: ``mse[step, task]``."""

    method: str
    k_shot: int
    inner_lr: float
    mse: np.ndarray
    diverged_above: float = DIVERGED_ABOVE

    @property
    def steps(self) -> int:
        return self.mse.shape[0] - 1

    def at(self, step: int) -> Summary:
        """Mean, 95% CI and the number of diverged (non-finite) tasks after ``step`` steps."""
        if not 0 <= step <= self.steps:
            raise ValueError(f"step: expected 0..{self.steps}, got {step}")
        return summarise(self.mse[step], diverged_above=self.diverged_above)

    def summaries(self) -> list[Summary]:
        return [self.at(s) for s in range(self.steps + 1)]


@torch.no_grad()
def _grid_mse_per_step(model: MLP, params: Params, batch: TaskBatch, x_grid: torch.Tensor, y_grid: torch.Tensor,
                       steps: int, lr: float) -> torch.Tensor:
    out = [model.loss(params, x_grid, y_grid)]
    for _ in range(steps):
        params = sgd_step(model, params, batch.x_support, batch.y_support, lr)
        out.append(model.loss(params, x_grid, y_grid, check=False))
    return torch.stack(out)


def evaluate_adaptation(
    model: MLP,
    params: Params,
    tasks: SinusoidTasks,
    *,
    method: str = "",
    n_tasks: int = 600,
    k_shot: int = 10,
    steps: int = 10,
    inner_lr: float = 0.01,
    grid_points: int = 1000,
    seed: int = 1234,
    device: torch.device | str = "cpu",
    diverged_above: float = DIVERGED_ABOVE,
) -> AdaptationCurve:
    """Adapt ``params`` to ``n_tasks`` new tasks from ``k_shot`` points each, all tasks at once.

    The tasks come from ``seed`` alone, so every method is evaluated on the same
    tasks and support points (a paired comparison). Diverged tasks (NaN, inf, or an
    error above ``diverged_above``) stay in ``mse`` as they are and are counted, not
    averaged, by :meth:`AdaptationCurve.at`.
    """
    generator = torch.Generator().manual_seed(seed)
    batch = tasks.sample(n_tasks, k_shot, 0, generator=generator, device=device)
    x_grid = tasks.grid(grid_points, device=device).expand(n_tasks, grid_points).unsqueeze(-1)
    y_grid = tasks.target(batch.amplitude, batch.phase, x_grid)
    params = tuple(p.detach().to(device) for p in params)
    mse = _grid_mse_per_step(model, params, batch, x_grid, y_grid, steps, inner_lr)
    return AdaptationCurve(method, k_shot, inner_lr, mse.double().cpu().numpy(), diverged_above)


@torch.no_grad()
def predict_after_adaptation(
    model: MLP, params: Params, batch: TaskBatch, x: torch.Tensor, *, steps: list[int], inner_lr: float = 0.01,
) -> dict[int, torch.Tensor]:
    """Predictions ``[T, N, 1]`` at inputs ``x`` after each number of steps in ``steps`` (for plots)."""
    wanted = sorted(set(steps))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps: expected non-negative step counts, got {steps!r}")
    model._check_batch(params, batch.x_support, batch.y_support)
    out = {}
    for step in range(wanted[-1] + 1):
        if step in wanted:
            out[step] = model.forward(params, x)
        if step < wanted[-1]:
            params = sgd_step(model, params, batch.x_support, batch.y_support, inner_lr)
    return out
