"""Steppers that need more than the gradient — backprop2's line search and block Newton — and the
problem they act on: T models of one MLP trained on step-indexed batches.

Both follow the stepper protocol of :mod:`backprop2lib.optim.steppers` and run in the one loop,
:func:`backprop2lib.optim.run`, next to the hand-designed SGD and Adam there; they declare
``needs_problem = True``, so the loop hands them the :class:`MLPProblem` at ``init`` and the loss
of the current parameters at every ``step``. Every step acts on T independent models at once
(here: the same problem from T random initialisations, i.e. seeds).

* :class:`GradientDescentLineSearch`: direction ``−g`` with backprop2's warm-started two-way
  line search (one step size per model).
* :class:`BlockNewton`: backprop2's block-diagonal generalised Newton: random blocks inside each
  layer, exact within-block Hessians, one batched eigendecomposition, a step rule per
  eigendirection (:mod:`.steps`), and optionally the line search along the result.
  ``max_block_size=None`` uses the full Hessian (one block; small problems only), which with the
  ``"saddle_free"`` rule is saddle-free Newton.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..models.mlp import MLP
from ..optim.errors import DivergenceError, rows_text
from ..optim.line_search import LineSearch, line_search
from .blocks import BlockPartition, block_partition, check_block_size
from .hessian import (_check_loss, check_finite_hessians, full_hessian, loss_and_grad,
                      loss_grad_and_block_hessians, mean_loss)
from .steps import block_step, check_rule

Batch = tuple[torch.Tensor, torch.Tensor]


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and value > 0 and np.isfinite(value)):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True, eq=False)
class MLPProblem:
    """T models of one MLP from the initialisations ``w0 [T, P]``, trained on ``batches``.

    ``batches(k)`` gives the ``(x, y)`` that training step k (1, 2, ...) uses, so every optimiser
    sees the same minibatches; ``evaluate(w) -> [T]`` is the recorded loss (default: the loss on
    ``batches(0)``). ``seed`` seeds what a stepper draws (block Newton's blocks). This is the
    problem protocol of :func:`backprop2lib.optim.run` plus what second-order steppers need:
    ``model``, ``loss`` and the step's ``batch(t)``.
    """

    model: MLP
    w0: torch.Tensor
    batches: Callable[[int], Batch]
    loss: str = "squared"
    evaluate_with: Callable[[torch.Tensor], torch.Tensor] | None = None
    seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, MLP):
            raise TypeError(f"model: expected a backprop2lib.models.MLP, got {type(self.model).__name__}")
        if self.w0.dim() != 2 or self.w0.shape[1] != self.model.n_params:
            raise ValueError(f"w0: expected flat parameters [T, {self.model.n_params}], got {tuple(self.w0.shape)}")
        _check_loss(self.loss)

    def init(self) -> torch.Tensor:
        return self.w0.detach().clone()

    def batch(self, t: int) -> Batch:
        """The batch of the loop's step t, i.e. training step t + 1."""
        return self.batches(t + 1)

    def loss_and_grad(self, w: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        return loss_and_grad(self.model, w, *self.batch(t), loss=self.loss)

    def evaluate(self, w: torch.Tensor) -> torch.Tensor:
        if self.evaluate_with is not None:
            return self.evaluate_with(w)
        return mean_loss(self.model, w, *self.batches(0), loss=self.loss)


@dataclass(frozen=True)
class GradientDescentLineSearch:
    """Direction −g, step size from backprop2's warm-started line search (one per model)."""

    settings: LineSearch = LineSearch()
    name: str = "GD + line search"
    needs_problem = True

    def init(self, w: torch.Tensor, problem: MLPProblem) -> dict:
        return {"problem": problem, "t": 0, "s": self.settings.initial(w.shape[0], device=w.device, dtype=w.dtype)}

    def step(self, w: torch.Tensor, grad: torch.Tensor, state: dict, loss: torch.Tensor) -> torch.Tensor:
        problem: MLPProblem = state["problem"]
        batch = problem.batch(state["t"])
        state["t"] += 1
        return _searched(problem.model, w, -grad, grad, loss, batch, state, self.settings, problem.loss)


def _searched(model, w, delta, g, value, batch, state, settings, loss) -> torch.Tensor:
    def error(v: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, v, *batch, loss=loss)

    def error_rows(v: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, v, batch[0][rows], batch[1][rows], loss=loss)

    s, _, _ = line_search(error, w, delta, g, value, state["s"], settings, error_rows)
    state["s"] = s
    return w + s[:, None] * delta


@dataclass(frozen=True)
class BlockNewton:
    """backprop2's generalised Newton (defaults: lr 0.1, block size 7, max_step 1, reused blocks).

    The blocks are drawn with a generator seeded by the problem's ``seed``; with
    ``reuse_blocks=False`` every step draws new ones from it. The state's ``newton_fraction``
    (reported in the curve's ``info``) is, per step, the fraction of eigendirections that took the
    plain Newton step rather than the rule's guard.
    """

    max_block_size: int | None = 7
    rule: str = "backprop2"
    lr: float = 0.1
    max_step: float = 1.0
    damping: float = 0.0
    reuse_blocks: bool = True
    line_search: LineSearch | None = None
    name: str = ""
    needs_problem = True
    reports = ("newton_fraction",)

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

    def init(self, w: torch.Tensor, problem: MLPProblem) -> dict:
        generator = torch.Generator().manual_seed(problem.seed)
        state: dict = {"problem": problem, "t": 0, "generator": generator, "newton_fraction": []}
        if self.max_block_size is not None:
            state["partition"] = block_partition(problem.model, self.max_block_size, generator=generator,
                                                 device=w.device)
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
            bad = ~torch.isfinite(H).flatten(1).all(1)
            if bool(bad.any()):
                raise DivergenceError(f"{self.name}: non-finite full Hessian at step {state.get('t', 0) + 1} "
                                      f"for model(s) {rows_text(bad.nonzero().flatten().tolist())}")
            delta, frac = block_step(H, g, **kw)
            state["newton_fraction"].append(frac.mean().item())
            return delta, value, g
        if not self.reuse_blocks and state.pop("fresh", False) is False:
            state["partition"] = block_partition(model, self.max_block_size, generator=state["generator"],
                                                 device=w.device)
        partition: BlockPartition = state["partition"]
        value, g, hessians = loss_grad_and_block_hessians(model, w, *batch, partition, loss=loss)
        check_finite_hessians(hessians, partition, where=f"{self.name}, step {state.get('t', 0) + 1}")
        delta = torch.zeros_like(w)
        fractions = []
        for group, H in zip(partition.groups, hessians):
            steps, frac = block_step(H, g[:, group.index], **kw)
            delta[:, group.index] = steps
            fractions.append(frac.sum(1))
        state["newton_fraction"].append(float(torch.stack(fractions).sum() / (w.shape[0] * partition.n_blocks)))
        return delta, value, g

    def step(self, w: torch.Tensor, grad: torch.Tensor, state: dict, loss: torch.Tensor) -> torch.Tensor:
        # The Hessians come with their own loss and gradient on the step's batch (the same numbers
        # as the loop's, computed in the same pass).
        problem: MLPProblem = state["problem"]
        batch = problem.batch(state["t"])
        delta, value, g = self.direction(problem.model, w, batch, state, problem.loss)
        state["t"] += 1
        if self.line_search is None:
            return w + delta
        return _searched(problem.model, w, delta, g, value, batch, state, self.line_search, problem.loss)
