"""Adapt to many held-out tasks and measure the error on a dense grid, step by step.

Starts are flat ``[P]`` and ``inner_lr`` is a step on E (see :mod:`backprop2lib.meta`); what is
measured is the MSE on the grid.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params
from ..optim.curve import Curve
from ..tasks.batch import TaskBatch
from ..tasks.sinusoid import SinusoidTasks
from .adapt import as_tuple, sgd_step


# Sinusoid targets have |y| <= 5, so even predicting 0 gives an MSE below 12.5; an error
# above 1e6 means the adaptation ran away, whether or not it has overflowed yet.
DIVERGED_ABOVE = 1e6


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
    params: torch.Tensor,
    tasks: SinusoidTasks,
    *,
    method: str = "",
    n_tasks: int = 600,
    k_shot: int = 10,
    steps: int = 10,
    inner_lr: float = 0.02,  # MAML's α = 0.01 on the MSE of one output, as a step on E
    grid_points: int = 1000,
    seed: int = 1234,
    device: torch.device | str = "cpu",
    diverged_above: float = DIVERGED_ABOVE,
) -> Curve:
    """Adapt the flat start ``params [P]`` to ``n_tasks`` new tasks from ``k_shot`` points each, all tasks at once.

    The tasks come from ``seed`` alone, so every method is evaluated on the same
    tasks and support points (a paired comparison). Diverged tasks (NaN, inf, or an
    error above ``diverged_above``) stay in the curve as they are and are counted, not
    averaged, by :meth:`Curve.summary`. The curve's rows are the tasks, its records the steps
    0..``steps``; ``labels`` holds ``k_shot`` and ``inner_lr``.

    ``params [S, P]`` (one start per training seed) adapts every seed's start to the same tasks
    in one batch: the curve has ``n_seeds`` = S and rows seed-major (seed s, task t is row
    ``s·n_tasks + t``), and row s·n_tasks + t equals task t of the run with ``params[s]`` alone.
    """
    if params.dim() not in (1, 2) or params.shape[-1] != model.n_params:
        raise ValueError(f"params: expected a flat start [{model.n_params}] or one per seed [S, {model.n_params}], "
                         f"got {tuple(params.shape)}")
    generator = torch.Generator().manual_seed(seed)
    batch = tasks.sample(n_tasks, k_shot, 0, generator=generator, device=device)
    x_grid = tasks.grid(grid_points, device=device).expand(n_tasks, grid_points).unsqueeze(-1)
    y_grid = tasks.target(batch.truth, x_grid)
    n_seeds = 1 if params.dim() == 1 else params.shape[0]
    if params.dim() == 2:  # every seed's start on every task: rows seed-major, the tasks repeated per seed
        params = params.repeat_interleave(n_tasks, dim=0)
        batch = TaskBatch(*(t.repeat(n_seeds, *([1] * (t.dim() - 1))) for t in batch._fields()))
        x_grid, y_grid = x_grid.repeat(n_seeds, 1, 1), y_grid.repeat(n_seeds, 1, 1)
    params = as_tuple(model, params.detach().to(device))
    mse = _grid_mse_per_step(model, params, batch, x_grid, y_grid, steps, inner_lr)
    return Curve(method, mse.double().cpu().numpy(), diverged_above=diverged_above,
                 labels={"k_shot": k_shot, "inner_lr": inner_lr}, n_seeds=n_seeds)


@torch.no_grad()
def predict_after_adaptation(
    model: MLP, params: torch.Tensor, batch: TaskBatch, x: torch.Tensor, *, steps: list[int], inner_lr: float = 0.02,
) -> dict[int, torch.Tensor]:
    """Predictions ``[T, N, 1]`` at inputs ``x`` after each number of steps in ``steps`` from the flat start
    ``params [P]`` (for plots)."""
    wanted = sorted(set(steps))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"steps: expected non-negative step counts, got {steps!r}")
    params = as_tuple(model, params.detach())
    model._check_batch(params, batch.x_support, batch.y_support)
    out = {}
    for step in range(wanted[-1] + 1):
        if step in wanted:
            out[step] = model.forward(params, x)
        if step < wanted[-1]:
            params = sgd_step(model, params, batch.x_support, batch.y_support, inner_lr)
    return out
