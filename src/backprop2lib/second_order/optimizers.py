"""First- and second-order optimisers on flat parameters ``[T, P]``, and one training loop for all.

The optimisers are small settings objects with a ``state`` and a ``step``; every step acts on T
independent models at once (here: the same problem from T random initialisations, i.e. seeds).

* :class:`GradientDescent`: ``w ← w − lr g``.
* :class:`GradientDescentLineSearch`: direction ``−g`` with backprop2's warm-started two-way
  line search (one step size per model).
* :class:`Adam`: Kingma and Ba's Adam, every model with its own moments.
* :class:`BlockNewton`: backprop2's block-diagonal generalised Newton: random blocks inside each
  layer, exact within-block Hessians, one batched eigendecomposition, a step rule per
  eigendirection (:mod:`.steps`), and optionally the line search along the result.
  ``max_block_size=None`` uses the full Hessian (one block; small problems only), which with the
  ``"saddle_free"`` rule is saddle-free Newton.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..models.mlp import MLP
from ..optim.line_search import LineSearch, line_search
from ..progress import progress_bar
from .blocks import BlockPartition, block_partition, check_block_size
from .hessian import check_finite_hessians, full_hessian, loss_grad_and_block_hessians, mean_loss
from .steps import block_step, check_rule

Batch = tuple[torch.Tensor, torch.Tensor]


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GradientDescent:
    lr: float = 0.1
    name: str = "GD"

    def __post_init__(self) -> None:
        _positive("lr", self.lr)

    def init(self, model: MLP, w: torch.Tensor, generator: torch.Generator | None) -> dict:
        return {}

    def step(self, model: MLP, w: torch.Tensor, batch: Batch, state: dict, loss: str) -> torch.Tensor:
        _, g, _ = loss_grad_and_block_hessians(model, w, *batch, None, loss=loss)
        return w - self.lr * g


@dataclass(frozen=True)
class GradientDescentLineSearch:
    settings: LineSearch = LineSearch()
    name: str = "GD + line search"

    def init(self, model: MLP, w: torch.Tensor, generator: torch.Generator | None) -> dict:
        return {"s": self.settings.initial(w.shape[0], device=w.device, dtype=w.dtype)}

    def step(self, model: MLP, w: torch.Tensor, batch: Batch, state: dict, loss: str) -> torch.Tensor:
        value, g, _ = loss_grad_and_block_hessians(model, w, *batch, None, loss=loss)
        return _searched(model, w, -g, g, value, batch, state, self.settings, loss)


def _searched(model, w, delta, g, value, batch, state, settings, loss) -> torch.Tensor:
    def error(v: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, v, *batch, loss=loss)

    def error_rows(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, v, batch[0][rows], batch[1][rows], loss=loss)

    s, _, _ = line_search(error, w, delta, g, value, state["s"], settings, error_rows)
    state["s"] = s
    return w + s[:, None] * delta


@dataclass(frozen=True)
class Adam:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    name: str = "Adam"

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")

    def init(self, model: MLP, w: torch.Tensor, generator: torch.Generator | None) -> dict:
        return {"m": torch.zeros_like(w), "v": torch.zeros_like(w), "t": 0}

    def step(self, model: MLP, w: torch.Tensor, batch: Batch, state: dict, loss: str) -> torch.Tensor:
        _, g, _ = loss_grad_and_block_hessians(model, w, *batch, None, loss=loss)
        b1, b2 = self.betas
        state["t"] += 1
        t = state["t"]
        state["m"].lerp_(g, 1 - b1)
        state["v"].lerp_(g * g, 1 - b2)
        return w - self.lr * (state["m"] / (1 - b1 ** t)) / ((state["v"] / (1 - b2 ** t)).sqrt() + self.eps)


@dataclass(frozen=True)
class BlockNewton:
    """backprop2's generalised Newton (defaults: lr 0.1, block size 7, max_step 1, reused blocks)."""

    max_block_size: int | None = 7
    rule: str = "backprop2"
    lr: float = 0.1
    max_step: float = 1.0
    damping: float = 0.0
    reuse_blocks: bool = True
    line_search: LineSearch | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.max_block_size is not None:
            check_block_size(self.max_block_size)
        check_rule(self.rule)
        _positive("lr", self.lr)
        _positive("max_step", self.max_step)
        if not self.damping >= 0:
            raise ValueError(f"damping: expected a number >= 0, got {self.damping!r}")
        if not self.name:
            size = "full" if self.max_block_size is None else f"b={self.max_block_size}"
            search = " + line search" if self.line_search is not None else ""
            object.__setattr__(self, "name", f"block Newton ({self.rule}, {size}){search}")

    def init(self, model: MLP, w: torch.Tensor, generator: torch.Generator | None) -> dict:
        state: dict = {"generator": generator, "newton_fraction": []}
        if self.max_block_size is not None:
            state["partition"] = block_partition(model, self.max_block_size, generator=generator, device=w.device)
            state["fresh"] = True  # the first step uses this draw, later ones redraw if not reused
        if self.line_search is not None:
            state["s"] = self.line_search.initial(w.shape[0], device=w.device, dtype=w.dtype)
        return state

    def direction(self, model: MLP, w: torch.Tensor, batch: Batch, state: dict,
                  loss: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The generalised Newton step ``[T, P]`` (before any line search), the loss and gradient."""
        kw = dict(rule=self.rule, lr=self.lr, max_step=self.max_step, damping=self.damping)
        if self.max_block_size is None:
            value, g, _ = loss_grad_and_block_hessians(model, w, *batch, None, loss=loss)
            H = full_hessian(model, w, *batch, loss=loss)
            if not bool(torch.isfinite(H).all()):
                raise FloatingPointError("non-finite full Hessian for model(s) "
                                         f"{(~torch.isfinite(H).flatten(1).all(1)).nonzero().flatten().tolist()}")
            delta, frac = block_step(H, g, **kw)
            state["newton_fraction"].append(frac.mean().item())
            return delta, value, g
        if not self.reuse_blocks and state.pop("fresh", False) is False:
            state["partition"] = block_partition(model, self.max_block_size, generator=state["generator"],
                                                 device=w.device)
        partition: BlockPartition = state["partition"]
        value, g, hessians = loss_grad_and_block_hessians(model, w, *batch, partition, loss=loss)
        check_finite_hessians(hessians, partition)
        delta = torch.zeros_like(w)
        fractions = []
        for group, H in zip(partition.groups, hessians):
            steps, frac = block_step(H, g[:, group.index], **kw)
            delta[:, group.index] = steps
            fractions.append(frac.sum(1))
        state["newton_fraction"].append(float(torch.stack(fractions).sum() / (w.shape[0] * partition.n_blocks)))
        return delta, value, g

    def step(self, model: MLP, w: torch.Tensor, batch: Batch, state: dict, loss: str) -> torch.Tensor:
        delta, value, g = self.direction(model, w, batch, state, loss)
        if self.line_search is None:
            return w + delta
        return _searched(model, w, delta, g, value, batch, state, self.line_search, loss)


Optimizer = GradientDescent | GradientDescentLineSearch | Adam | BlockNewton


@dataclass
class TrainingCurve:
    """Losses on the evaluation data ``[n_evals, T]`` at ``steps``, and wall time per step."""

    name: str
    steps: np.ndarray
    losses: np.ndarray
    seconds: np.ndarray  # cumulative training wall time at each evaluation (evaluation excluded)
    diverged: np.ndarray  # [T] bool: the model's loss became NaN/inf (frozen from then on)
    diverged_at: np.ndarray  # [T] the step where it did, -1 if never
    info: dict = field(default_factory=dict)
    params: torch.Tensor | None = None  # the final parameters [T, P]

    @property
    def final(self) -> np.ndarray:
        return self.losses[-1]

    @property
    def seconds_per_step(self) -> float:
        return float(self.seconds[-1] / max(1, self.steps[-1]))


def train(
    model: MLP,
    w0: torch.Tensor,
    optimizer: Optimizer,
    batches: Callable[[int], Batch],
    n_steps: int,
    *,
    loss: str = "squared",
    evaluate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    eval_every: int = 1,
    seed: int = 0,
    progress: bool | None = None,
) -> TrainingCurve:
    """Run ``optimizer`` for ``n_steps`` from ``w0: [T, P]``; ``batches(step)`` gives ``(x, y)``.

    ``evaluate(w) -> [T]`` measures the loss that is recorded (default: the loss on
    ``batches(0)``). A model whose new parameters (at any step) or recorded loss (at an evaluation)
    are not finite is marked diverged there: its parameters are frozen at their last finite values,
    its recorded losses are NaN from then on, and ``diverged`` counts it; it is never silently
    averaged with the rest. With ``eval_every > 1`` a loss that overflows between evaluations is
    detected at the next evaluation.
    """
    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps: expected an int >= 0, got {n_steps!r}")
    if w0.dim() != 2 or w0.shape[1] != model.n_params:
        raise ValueError(f"w0: expected flat parameters [T, {model.n_params}], got {tuple(w0.shape)}")
    if evaluate is None:
        fixed = batches(0)

        def evaluate(v: torch.Tensor) -> torch.Tensor:
            return mean_loss(model, v, *fixed, loss=loss)

    generator = torch.Generator().manual_seed(seed)
    w = w0.detach().clone()
    T = w.shape[0]
    state = optimizer.init(model, w, generator)
    diverged = torch.zeros(T, dtype=torch.bool)
    diverged_at = np.full(T, -1)
    steps, losses, seconds = [0], [evaluate(w).detach().cpu().numpy()], [0.0]
    elapsed = 0.0
    bar = progress_bar(n_steps, optimizer.name, progress)
    with torch.no_grad():
        for step in range(1, n_steps + 1):
            batch = batches(step)
            start = time.perf_counter()
            new = optimizer.step(model, w, batch, state, loss)
            if w.device.type == "cuda":
                torch.cuda.synchronize(w.device)
            elapsed += time.perf_counter() - start
            ok = torch.isfinite(new).all(1).cpu()
            if step % eval_every == 0 or step == n_steps:
                value = evaluate(new).cpu()
                ok &= torch.isfinite(value)
            newly = ~ok & ~diverged
            if bool(newly.any()):
                diverged_at[newly.numpy()] = step
                diverged |= newly
            w = torch.where(diverged.to(w.device)[:, None], w, new)
            if step % eval_every == 0 or step == n_steps:
                steps.append(step)
                # a diverged model is recorded as NaN from the step it was detected: counted, never averaged
                losses.append(torch.where(diverged, torch.full_like(value, float("nan")), value).numpy())
                seconds.append(elapsed)
            bar.update(1)
    bar.close()
    info = {k: v for k, v in state.items() if k == "newton_fraction"}
    return TrainingCurve(optimizer.name, np.array(steps), np.stack(losses), np.array(seconds),
                         diverged.numpy(), diverged_at, info, w)
