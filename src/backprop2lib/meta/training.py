"""What every gradient-based meta-trainer shares: the flat start, the meta-batches, the Adam step,
the loss history, divergence checks, timing and the result.

A trainer (``train_maml``, ``train_reptile``, ``train_pretrained``, ``train_meta_sgd``,
``train_scale_gradient``) builds its meta-parameters from :attr:`MetaTraining.start`, hands
:meth:`MetaTraining.adam` a meta-loss (or :meth:`MetaTraining.loop` its own step) and returns a
:class:`TrainResult` whose ``params`` is the learned start, flat ``[P]``. The keywords every
trainer takes the same way (``iterations``, ``meta_batch``, ``k_shot``, ``k_query``, ``init``,
``generator``, ``device``, ``progress``) are :class:`MetaTraining`'s.

**Training seeds as a batched axis.** With ``seeds=[s_0, …, s_{S-1}]`` instead of a ``generator``,
one call trains S independent models at once: seed s starts from ``model.init`` drawn with
``torch.Generator().manual_seed(s)`` (or from ``init``) and draws its own meta-batches from that
generator, so seed s of a batched run is the run with ``generator=torch.Generator().manual_seed(s)``
(equal up to floating-point summation order). The meta-parameters are ``[S, ...]``, every task of
a meta-batch adapts from its own seed's start (``[S·T, ...]``, seed-major), and the meta-loss is
the sum over seeds of each seed's mean, so seeds never mix: Adam and Reptile's interpolation act
per coordinate. ``TrainResult.params`` is then ``[S, P]`` and ``losses`` ``[iterations, S]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

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
    params: torch.Tensor  # the learned start, flat [P] (the layout of MLP.flatten), detached; [S, P] with seeds
    losses: np.ndarray  # one training loss per iteration ([iterations, S] with seeds)
    seconds: float
    config: dict = field(default_factory=dict)

    per_seed_fields = ("params",)  # tensors with a leading seed axis in a seeded run

    @property
    def iterations_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def n_seeds(self) -> int | None:
        """How many seeds this run trained at once (None: a single run)."""
        seeds = self.config.get("seeds")
        return None if seeds is None else len(seeds)

    def require_single(self, action: str) -> None:
        """Raise a clear error where ``action`` needs one model and this result holds several seeds."""
        if self.n_seeds is not None:
            raise ValueError(f"{action}: this result holds {self.n_seeds} seeds; take one with result.seed(row)")

    def seed(self, row: int) -> "TrainResult":
        """The result of seed ``row`` alone: ``params [P]`` and its losses, as a single run returns them.
        The time is the batched run's (every seed trained in it)."""
        if self.n_seeds is None:
            raise ValueError("seed: this result is a single run (trained without seeds)")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < self.n_seeds:
            raise ValueError(f"row: expected a seed row 0..{self.n_seeds - 1}, got {row!r}")
        changes = {name: getattr(self, name)[row] for name in self.per_seed_fields}
        config = {k: v for k, v in self.config.items() if k != "seeds"}
        config["seed"] = self.config["seeds"][row]
        return replace(self, losses=self.losses[:, row], config=config, **changes)


def flat_start(model: MLP, init: torch.Tensor | None, generator: torch.Generator | None, device) -> torch.Tensor:
    """A detached copy of the flat start ``init [P]`` on ``device``, or a fresh ``model.init`` flattened."""
    if init is None:
        init = model.flatten(model.init(generator=generator, device=device))
    if not isinstance(init, torch.Tensor) or tuple(init.shape) != (model.n_params,):
        got = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init: expected a flat start [{model.n_params}] (MLP.flatten of shared parameters), "
                         f"got {got}")
    return init.detach().clone().to(device)


def check_seeds(seeds) -> list[int]:
    """``seeds`` as a list of distinct non-negative ints (at least one)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise ValueError(f"seeds: expected a non-empty sequence of ints, got {seeds!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds: expected non-negative ints, got {list(seeds)!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct seeds (a repeated seed trains the same model twice), "
                         f"got {list(seeds)!r}")
    return list(seeds)


def seeded_starts(model: MLP, init: torch.Tensor | None, generators: Sequence[torch.Generator],
                  device) -> torch.Tensor:
    """One flat start per seed ``[S, P]``: ``model.init`` drawn from each seed's generator, or ``init``
    (``[P]``: the same start for every seed; ``[S, P]``: one each), detached copies on ``device``."""
    S = len(generators)
    if init is None:
        return torch.stack([model.flatten(model.init(generator=g, device=device)) for g in generators])
    if not isinstance(init, torch.Tensor) or tuple(init.shape) not in ((model.n_params,), (S, model.n_params)):
        got = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init: expected a flat start [{model.n_params}] or one per seed [{S}, {model.n_params}], "
                         f"got {got}")
    return init.detach().expand(S, model.n_params).clone().to(device)


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
                 seeds: Sequence[int] | None = None, device: torch.device | str = "cpu",
                 progress: bool | None = None) -> None:
        self.method, self.model, self.iterations, self.progress = method, model, iterations, progress
        self.meta_batch = meta_batch
        self.config = dict(iterations=iterations, meta_batch=meta_batch, k_shot=k_shot, k_query=k_query)
        if seeds is None:
            self.n_seeds = None
            self.start = flat_start(model, init, generator, device)  # before the stream: its draws come first
            self.batches = tasks.stream(meta_batch, k_shot, k_query, generator=generator, device=device,
                                        dtype=self.start.dtype)
            return
        if generator is not None:
            raise ValueError("generator, seeds: give one or the other (each seed makes its own generator)")
        seeds = check_seeds(seeds)
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.n_seeds = len(seeds)
        self.config["seeds"] = seeds
        self.start = seeded_starts(model, init, generators, device)  # [S, P]
        self.batches = tasks.stream_seeds(meta_batch, k_shot, k_query, generators=generators, device=device,
                                          dtype=self.start.dtype)

    def per_task(self, theta: Params) -> Params:
        """The start each task of a meta-batch adapts from: ``theta`` itself (shared), or with seeds
        every seed's ``[S, ...]`` repeated for its ``meta_batch`` tasks (``[S·T, ...]``, seed-major)."""
        if self.n_seeds is None:
            return theta
        if isinstance(theta, torch.Tensor):  # flat [S, P] -> [S·T, P]
            return theta.repeat_interleave(self.meta_batch, dim=0)
        return tuple(p.repeat_interleave(self.meta_batch, dim=0) for p in theta)

    def seed_means(self, per_task: torch.Tensor) -> torch.Tensor:
        """Per-task values ``[S·T]`` averaged within each seed: ``[S]``."""
        return per_task.reshape(self.n_seeds, self.meta_batch).mean(dim=1)

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
            value = loss(batch)  # a scalar, or one per seed [S]: their sum keeps the seeds' gradients apart
            optimiser.zero_grad(set_to_none=True)
            (value.sum() if value.dim() else value).backward()
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
                    where = f"at iteration {first} (of {iterations})"
                    value = recent[first - done]
                    if value.dim():  # one loss per seed: name the seeds that diverged
                        rows = (~torch.isfinite(value)).nonzero().flatten().tolist()
                        where += f", seed row(s) {rows}"
                        value = value[rows[0]]
                    raise DivergenceError(
                        f"{method}: training loss became {float(value)} {where}; lower the learning rate or "
                        f"check the data"
                    )
                bar.update(i + 1 - done)
                done = i + 1
    seconds = time.perf_counter() - start
    return torch.stack(losses).cpu().numpy(), seconds
