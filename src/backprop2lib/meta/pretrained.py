"""The "pretrained" baseline: one network regressing all tasks jointly, later fine-tuned."""

from __future__ import annotations

from ..models.mlp import MLP
from .training import MetaTraining, TrainResult


def train_pretrained(model: MLP, tasks, *, lr: float = 1e-3, **schedule) -> TrainResult:
    """Adam on the mean squared error over all points of a fresh batch of tasks each iteration.

    ``schedule``: see :class:`MetaTraining` (``seeds`` trains one model per seed at once).
    """
    run = MetaTraining("pretrained", model, tasks, **schedule)
    theta = run.tuple_leaves()
    if run.n_seeds is None:
        losses, seconds = run.adam(theta, lr, lambda b: model.loss(theta, b.x_all, b.y_all, check=False).mean())
    else:  # one model per seed: each seed's mean over its own tasks
        losses, seconds = run.adam(theta, lr, lambda b: run.seed_means(
            model.loss(run.per_task(theta), b.x_all, b.y_all, check=False)))
    return TrainResult("pretrained", model.flatten(tuple(p.detach() for p in theta)), losses, seconds,
                       dict(run.config, lr=lr))
