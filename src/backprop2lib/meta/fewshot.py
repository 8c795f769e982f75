"""Few-shot evaluation shared by every method: adapt on each task's support points, score on
its query points, all tasks at once and the same tasks for every method (paired).

An *adapter* is any callable ``(x_support, y_support) -> flat adapted parameters [T, P]``;
:func:`sgd_adapter` makes one for the initialisation-only methods (MAML, FOMAML, Reptile).
The score is the plain mean squared error on the query points, the same for every method,
whatever objective its own inner loop uses.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from ..models.mlp import MLP
from .adapt import as_tuple, descend

Adapter = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sgd_adapter(model: MLP, start: torch.Tensor, *, steps: int, lr: float) -> Adapter:
    """``steps`` plain SGD steps of size ``lr`` on E from the flat ``start [P]`` (how MAML adapts)."""
    theta = as_tuple(model, start.detach())

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model.flatten(descend(model, theta, x, y, steps=steps, lr=lr, first_order=True))

    return run


@torch.no_grad()
def query_errors(model: MLP, adapted: torch.Tensor, x_query: torch.Tensor, y_query: torch.Tensor) -> np.ndarray:
    """Query MSE per task for flat adapted parameters ``[T, P]`` (NaN where the parameters are)."""
    if adapted.dim() != 2 or adapted.shape[0] != x_query.shape[0]:
        raise ValueError(f"adapted: expected [{x_query.shape[0]}, P] parameters, got {tuple(adapted.shape)}")
    return model.loss(model.unflatten(adapted), x_query, y_query).double().cpu().numpy()


def evaluate_few_shot(model: MLP, adapters: Mapping[str, Adapter], batch) -> dict[str, np.ndarray]:
    """Query MSE per task for every adapter on the same ``batch`` of tasks."""
    if not adapters:
        raise ValueError("adapters: expected at least one method to evaluate")
    out = {}
    for name, run in adapters.items():
        with torch.enable_grad():  # some inner loops differentiate internally; nothing is kept
            adapted = run(batch.x_support, batch.y_support)
        out[name] = query_errors(model, adapted.detach(), batch.x_query, batch.y_query)
    return out
