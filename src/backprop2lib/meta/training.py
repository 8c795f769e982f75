"""What every meta-training loop shares: meta-batches, loss history, divergence checks, timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..models.mlp import MLP, Params
from ..progress import progress_bar
from ..tasks.sinusoid import TaskBatch


class DivergenceError(RuntimeError):
    """Training produced NaN or inf; the message says where."""


@dataclass
class TrainResult:
    method: str
    params: Params  # shared meta-parameters, detached
    losses: np.ndarray  # one training loss per iteration
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def flat(self) -> torch.Tensor:
        """The parameters as one flat vector [P] (the layout of ``MLP.flatten``)."""
        return torch.cat([p.reshape(-1) for p in self.params])

    @property
    def iterations_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")


def initial_params(model: MLP, init: Params | None, generator: torch.Generator | None, device) -> Params:
    if init is None:
        init = model.init(generator=generator, device=device)
    if model.check_params(init) is not None:
        raise ValueError("init: expected shared parameters (no task axis)")
    return tuple(p.detach().clone().to(device).requires_grad_(True) for p in init)


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device (fewer ops per step)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


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
