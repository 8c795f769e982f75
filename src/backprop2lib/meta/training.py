"""What every gradient-based meta-trainer shares: the flat start, the meta-batches, the Adam step,
the loss history, divergence checks, timing and the result.

A trainer (``train_maml``, ``train_reptile``, ``train_pretrained``, ``train_meta_sgd``,
``train_scale_gradient``) builds its meta-parameters from :attr:`MetaTraining.start`, hands
:meth:`MetaTraining.adam` a meta-loss (or :meth:`MetaTraining.loop` its own step) and returns a
:class:`TrainResult` whose ``params`` is the learned start, flat ``[P]``. The keywords every
trainer takes the same way (``iterations``, ``meta_batch``, ``k_shot``, ``k_query``, ``init``,
``generator``, ``device``, ``progress``) are :class:`MetaTraining`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..models.mlp import MLP, Params
from ..optim.errors import DivergenceError
from ..progress import progress_bar
from ..tasks.batch import TaskBatch
from .adapt import as_tuple


@dataclass
class TrainResult:
    method: str
    params: torch.Tensor  # the learned start, flat [P] (the layout of MLP.flatten), detached
    losses: np.ndarray  # one training loss per iteration
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def iterations_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")


def flat_start(model: MLP, init: torch.Tensor | None, generator: torch.Generator | None, device) -> torch.Tensor:
    """A detached copy of the flat start ``init [P]`` on ``device``, or a fresh ``model.init`` flattened."""
    if init is None:
        init = model.flatten(model.init(generator=generator, device=device))
    if not isinstance(init, torch.Tensor) or tuple(init.shape) != (model.n_params,):
        got = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init: expected a flat start [{model.n_params}] (MLP.flatten of shared parameters), "
                         f"got {got}")
    return init.detach().clone().to(device)


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (fewer ops per step)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


class MetaTraining:
    """One meta-training run: ``iterations`` meta-batches of ``meta_batch`` tasks with ``k_shot`` support
    and ``k_query`` query points each, from the flat start ``init [P]`` (default: ``model.init``)."""

    def __init__(self, method: str, model: MLP, tasks, *, iterations: int, meta_batch: int = 25, k_shot: int = 10,
                 k_query: int = 10, init: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", progress: bool | None = None) -> None:
        self.method, self.model, self.iterations, self.progress = method, model, iterations, progress
        self.start = flat_start(model, init, generator, device)  # before the stream: its draws come first
        self.batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device,
                                    dtype=self.start.dtype)
        self.config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query)

    def flat_leaf(self) -> torch.Tensor:
        """The start as one flat leaf to optimise."""
        return self.start.clone().requires_grad_(True)

    def tuple_leaves(self) -> Params:
        """The start as the model's tuple view, one leaf per weight and bias (what MAML differentiates)."""
        return tuple(p.requires_grad_(True) for p in as_tuple(self.model, self.start))

    def loop(self, step: Callable[[int, TaskBatch], torch.Tensor]) -> tuple[np.ndarray, float]:
        return run_loop(self.method, step, self.batches, self.iterations, progress=self.progress)

    def adam(self, params, lr: float, loss: Callable[[TaskBatch], torch.Tensor]) -> tuple[np.ndarray, float]:
        """Adam on ``params`` against ``loss(batch)``, one meta-batch per iteration."""
        optimiser = make_adam(params, lr)

        def step(i: int, batch: TaskBatch) -> torch.Tensor:
            value = loss(batch)
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            return value.detach()

        return self.loop(step)


def run_loop(
    method: str,
    step: Callable[[int, TaskBatch], torch.Tensor],
    batches: Iterator[TaskBatch],
    iterations: int,
    *,
    progress: bool | None = None,
    check_every: int = 500,
) -> tuple[np.ndarray, float]:
    """Call ``step(i, batch)`` ``iterations`` times; return the loss history and seconds taken.

    Losses stay on the device and are checked for NaN/inf every ``check_every``
    iterations (one sync, not one per step); a non-finite loss raises
    :class:`DivergenceError` naming the method and the first bad iteration.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: expected a positive int, got {iterations!r}")
    losses: list[torch.Tensor] = []
    done = 0
    start = time.perf_counter()
    with progress_bar(iterations, method, progress) as bar:
        for i in range(iterations):
            losses.append(step(i, next(batches)))
            if (i + 1) % check_every == 0 or i + 1 == iterations:
                recent = torch.stack(losses[done:])
                bad = (~torch.isfinite(recent)).nonzero()
                if bad.numel():
                    first = done + int(bad[0, 0])
                    raise DivergenceError(
                        f"{method}: training loss became {float(recent[first - done])} at iteration {first} "
                        f"(of {iterations}); lower the learning rate or check the data"
                    )
                bar.update(i + 1 - done)
                done = i + 1
    seconds = time.perf_counter() - start
    return torch.stack(losses).cpu().numpy(), seconds
