"""The sequential trainer: R models (rows: method x strength x seed) learn a task sequence at once.

Each row is one network trained on task 1, then task 2, ... with plain minibatch SGD on the task's
cross-entropy, its consolidation penalty (:mod:`.penalties`) taken as a proximal step after each
gradient step. After every task the trainer measures every row's accuracy on every task's validation
and test images (the accuracy matrix the field's metrics read, :mod:`.metrics`), then lets each row
remember the task: the Fisher for EWC rows, K adaptations for the learned-scale rows, the solution
itself for L2. Rows of the same seed share the network's start, the permutations and the minibatches,
so methods are compared paired by seed; no row influences another (one batched tensor, row-wise maths).

A row whose parameters stop being finite is recorded as diverged (method, strength, seed, task, step),
and its accuracies are NaN from then on: counted by the statistics, never averaged in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ..models.mlp import MLP
from ..progress import progress_bar
from .fisher import diagonal_fisher
from .penalties import CONSOLIDATION, ConsolidationState, learned_scale_prior, proximal_step
from .tasks import TaskSequence, stream_seed

__all__ = ["RowPlan", "SequenceRun", "TrainSettings", "accuracy", "train_sequence"]


@dataclass(frozen=True)
class TrainSettings:
    steps_per_task: int  # SGD steps on each task
    batch: int = 64
    learning_rate: float = 0.1
    eval_every: int | None = None  # test-accuracy curve every this many steps (None: at task ends only)
    eval_images: int | None = None  # test images per task for the curve (None: all)
    fisher_images: int = 500  # training images the Fisher is averaged over
    fisher_kind: str = "true"
    adaptations: int = 8  # learned scale: K adaptations, each to a disjoint K-th of the task's training images
    adapt_steps: int = 100  # ... of this many SGD steps from the task's solution
    floor_ratio: float = 1e-6  # learned scale: σ² floored at this fraction of the row's largest
    gamma: float = 1.0  # online EWC's decay of the running Fisher

    def __post_init__(self) -> None:
        for name in ("steps_per_task", "batch", "fisher_images", "adapt_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not isinstance(self.adaptations, int) or self.adaptations < 2:
            raise ValueError(f"adaptations: expected at least 2 (a variance needs two), got {self.adaptations!r}")
        for name in ("eval_every", "eval_images"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected a positive int or None, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate!r}")


@dataclass(frozen=True)
class RowPlan:
    """Which method, strength λ and seed (index into the sequence's seeds) each row trains."""

    methods: tuple[str, ...]
    strengths: tuple[float, ...]
    seed_of_row: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (len(self.methods) == len(self.strengths) == len(self.seed_of_row) >= 1):
            raise ValueError(f"methods, strengths, seed_of_row: expected equal non-zero lengths, got "
                             f"{len(self.methods)}, {len(self.strengths)}, {len(self.seed_of_row)}")
        unknown = sorted(set(self.methods) - set(CONSOLIDATION))
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; valid: {', '.join(CONSOLIDATION)}")

    @classmethod
    def grid(cls, strengths: Mapping[str, Sequence[float]], n_seeds: int) -> "RowPlan":
        """Every (method, strength) of ``strengths`` for seeds 0..n_seeds−1; method-major, seeds innermost."""
        rows = [(m, float(lam), s) for m, grid in strengths.items() for lam in grid for s in range(n_seeds)]
        if not rows:
            raise ValueError("strengths: expected at least one method with at least one strength")
        m, lam, s = zip(*rows)
        return cls(m, lam, s)

    @property
    def n_rows(self) -> int:
        return len(self.methods)

    def rows(self, method: str, strength: float | None = None) -> list[int]:
        """The rows of ``method`` (at ``strength``), in seed order."""
        found = [r for r, (m, lam) in enumerate(zip(self.methods, self.strengths))
                 if m == method and (strength is None or lam == strength)]
        if not found:
            raise ValueError(f"method, strength: no rows for {method!r} at {strength!r}")
        return found

    def describe(self, row: int) -> str:
        return f"{self.methods[row]} (λ = {self.strengths[row]:g}, seed {self.seed_of_row[row]})"


@dataclass(frozen=True, eq=False)
class SequenceRun:
    """What one batched run of a task sequence measured."""

    plan: RowPlan
    task_names: tuple[str, ...]
    test: torch.Tensor  # [R, T, T]: accuracy on task j (last axis) after training task i (middle axis)
    validation: torch.Tensor  # [R, T, T], the same on validation images (what strengths are tuned on)
    curve_steps: tuple[int, ...]  # global SGD steps of the curve points
    curves: torch.Tensor  # [R, points, T] test accuracy on each task along training
    first_fisher: torch.Tensor | None  # [R, P] the Fisher of task 1 at its solution (rows that computed it, else NaN)
    first_scale_precision: torch.Tensor | None  # [R, P] the learned scale's 1/σ² after task 1 (its rows, else NaN)
    first_solution: torch.Tensor  # [R, P] the parameters after task 1
    final_solution: torch.Tensor  # [R, P] the parameters after the last task
    diverged: tuple[str, ...] = field(default=())
    wall_s: float = 0.0


def accuracy(model: MLP, flat: torch.Tensor, sequence: TaskSequence, part: str, task: int,
             seed_of_row: torch.Tensor, limit: int | None = None, chunk: int = 512) -> torch.Tensor:
    """Fraction correct ``[R]`` of each row on ``task``'s images in ``part`` (the first ``limit``); NaN if diverged."""
    n = sequence.size(part, task) if limit is None else min(limit, sequence.size(part, task))
    correct = torch.zeros(flat.shape[0], device=flat.device)
    params = model.unflatten(flat)
    for start in range(0, n, chunk):
        which = torch.arange(start, min(start + chunk, n)).expand(flat.shape[0], -1)
        x, y = sequence.inputs(part, task, seed_of_row, which)
        correct += (model.forward(params, x, check=False).argmax(-1) == y).float().sum(1)
    finite = torch.isfinite(flat).all(-1)
    return torch.where(finite, correct / n, torch.full_like(correct, float("nan")))


def _sgd_steps(model: MLP, flat: torch.Tensor, sequence: TaskSequence, task: int, seed_of_row: torch.Tensor,
               which: torch.Tensor, lr: float, penalty=None, bar=None) -> torch.Tensor:
    """``which.shape[1]`` SGD steps of every row on its minibatches ``which [R, steps, B]``."""
    for step in range(which.shape[1]):
        flat = _sgd_step(model, flat, sequence, task, seed_of_row, which[:, step], lr, penalty)
        if bar is not None:
            bar.update(1)
    return flat


def _sgd_step(model, flat, sequence, task, seed_of_row, which, lr, penalty):
    x, y = sequence.inputs("train", task, seed_of_row, which)
    flat = flat.detach().requires_grad_(True)
    logits = model.forward(model.unflatten(flat), x, check=False)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    (grad,) = torch.autograd.grad(loss.view(y.shape).mean(1).sum(), flat)
    with torch.no_grad():
        v = flat - lr * grad
        return v if penalty is None else proximal_step(penalty, v, lr)


def _chunk_positions(n: int, k: int, steps: int, batch: int, seed: int) -> torch.Tensor:
    """``[k, steps, batch]`` positions: adaptation j draws only from the j-th of a random partition of n images."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    size = n // k
    pick = torch.randint(size, (k, steps, batch), generator=g)
    return order[:size * k].view(k, size).gather(1, pick.flatten(1)).view(k, steps, batch)


def train_sequence(model: MLP, sequence: TaskSequence, plan: RowPlan, settings: TrainSettings,
                   seed_values: Sequence[int], *, device: torch.device | str = "cpu",
                   parts: Sequence[str] = ("test", "validation"), matrix: bool = True,
                   desc: str = "continual") -> SequenceRun:
    """Train every row of ``plan`` on ``sequence``, task after task; see the module docstring.

    ``parts``: which accuracy matrices to measure (the other stays NaN); ``matrix=False`` measures only
    the last row (after the last task), which is all that tuning a strength needs and a tenth of the cost
    of a ten-task matrix.

    ``seed_values[s]`` seeds seed s's network start (and, through the sequence, its permutations);
    minibatches come from :meth:`TaskSequence.minibatch_positions` with the same seed values.
    """
    if model.sizes[0] != 784 or model.sizes[-1] != sequence.n_outputs:
        raise ValueError(f"model: expected 784 inputs and {sequence.n_outputs} outputs for {sequence.name}, "
                         f"got sizes {model.sizes}")
    if len(seed_values) != sequence.n_seeds:
        raise ValueError(f"seed_values: expected {sequence.n_seeds} seeds (the sequence's), got {len(seed_values)}")
    if max(plan.seed_of_row) >= sequence.n_seeds:
        raise ValueError(f"plan: rows use seed {max(plan.seed_of_row)} but the sequence has {sequence.n_seeds}")
    unknown = sorted(set(parts) - {"test", "validation"})
    if unknown or not parts:
        raise ValueError(f"parts: expected a non-empty subset of ('test', 'validation'), got {tuple(parts)}")
    start_time = time.perf_counter()
    s = settings
    R, T = plan.n_rows, sequence.n_tasks
    rows_seed = torch.tensor(plan.seed_of_row)
    starts = torch.stack([model.flatten(model.init(generator=torch.Generator().manual_seed(stream_seed(v, "start"))))
                          for v in seed_values])  # one start per seed, drawn alone
    flat = starts[rows_seed].to(device)
    methods = plan.methods
    kinds = [CONSOLIDATION[m] for m in methods]
    state = ConsolidationState(torch.tensor(plan.strengths, device=device),
                               torch.tensor([k[1] == "online" for k in kinds], device=device), gamma=s.gamma)
    fisher_rows = [r for r, k in enumerate(kinds) if k[0] == "fisher"]
    scale_rows = [r for r, k in enumerate(kinds) if k[0] == "learned_scale"]
    test = torch.full((R, T, T), float("nan"))
    validation = torch.full((R, T, T), float("nan"))
    curve_steps, curves, diverged = [], [], []
    first_fisher = first_scale = first_solution = None
    is_dead = torch.zeros(R, dtype=torch.bool)

    def curve_point(global_step: int) -> None:
        curve_steps.append(global_step)
        curves.append(torch.stack([accuracy(model, flat, sequence, "test", j, rows_seed, s.eval_images)
                                   for j in range(T)], -1).cpu())

    def check_divergence(task: int, step: int) -> None:
        nonlocal is_dead
        dead = (~torch.isfinite(flat).all(-1)).cpu()
        for r in (dead & ~is_dead).nonzero().flatten().tolist():
            diverged.append(f"{plan.describe(r)} diverged in task {task + 1} by step {step}")
        is_dead = dead

    bar = progress_bar(T * s.steps_per_task, desc)
    every = s.eval_every or s.steps_per_task
    if s.eval_every:
        curve_point(0)
    for t in range(T):
        positions = sequence.minibatch_positions(t, s.steps_per_task, s.batch, seed_values)[rows_seed]
        penalty = state.regulariser()
        for start in range(0, s.steps_per_task, every):
            stop = min(start + every, s.steps_per_task)
            flat = _sgd_steps(model, flat, sequence, t, rows_seed, positions[:, start:stop], s.learning_rate,
                              penalty, bar)
            check_divergence(t, stop)
            if s.eval_every:
                curve_point(t * s.steps_per_task + stop)
        if matrix or t == T - 1:
            for part, table in (("test", test), ("validation", validation)):
                if part in parts:
                    for j in range(T):
                        table[:, t, j] = accuracy(model, flat, sequence, part, j, rows_seed).cpu()
        if t == 0:
            first_solution = flat.detach().cpu().clone()
        if t == T - 1:
            break
        # remember task t: each row's precision and anchor
        precision = torch.zeros_like(flat)
        anchor = flat.detach().clone()
        for r, k in enumerate(kinds):
            if k[0] == "uniform":
                precision[r] = 1.0
        need_fisher = fisher_rows + (scale_rows if t == 0 else [])
        if need_fisher:
            idx = torch.tensor(need_fisher)
            n = min(s.fisher_images, sequence.size("train", t))
            x, y = sequence.inputs("train", t, rows_seed[idx], torch.arange(n).expand(len(idx), -1))
            fisher = diagonal_fisher(model, flat[idx].nan_to_num(), x, y, kind=s.fisher_kind)
            for i, r in enumerate(need_fisher):
                if r in fisher_rows:
                    precision[r] = fisher[i]
            if t == 0:
                first_fisher = torch.full_like(flat, float("nan"))
                first_fisher[idx] = fisher
                first_fisher = first_fisher.cpu()
        live_scale_rows = [r for r in scale_rows if not bool(is_dead[r])]  # a diverged row has nothing to adapt
        if t == 0 and scale_rows:
            first_scale = torch.full_like(flat, float("nan")).cpu()
        if live_scale_rows:
            prior = _learned_scale(model, flat, sequence, t, rows_seed, live_scale_rows, s, seed_values)
            idx = torch.tensor(live_scale_rows)
            precision[idx] = 1 / prior.variance
            anchor[idx] = prior.mean
            if t == 0:
                first_scale[idx] = (1 / prior.variance).cpu()
        # a diverged row keeps NaN parameters; give it a harmless penalty so the others' state stays valid
        precision = precision.nan_to_num(0.0, 0.0, 0.0)
        state.add_task(precision, anchor.nan_to_num(0.0, 0.0, 0.0))
    bar.close()
    return SequenceRun(plan, sequence.task_names, test, validation, tuple(curve_steps),
                       torch.stack(curves, 1) if curves else torch.empty(R, 0, T), first_fisher, first_scale,
                       first_solution, flat.detach().cpu().clone(), tuple(diverged),
                       time.perf_counter() - start_time)


def _learned_scale(model, flat, sequence, task, rows_seed, scale_rows, s: TrainSettings, seed_values):
    """backprop2's prior for ``scale_rows``: K adaptations from the task's solution, each on its own K-th of the data."""
    K, L = s.adaptations, len(scale_rows)
    n = sequence.size("train", task)
    idx = torch.tensor(scale_rows)
    seeds = rows_seed[idx]
    # positions [K, L, steps, B]: seed s's partition of the task's images comes from its own generator
    per_seed = {int(v): _chunk_positions(n, K, s.adapt_steps, s.batch, stream_seed(seed_values[int(v)], "adaptations", task))
                for v in seeds.unique()}
    which = torch.stack([per_seed[int(v)] for v in seeds], 1)  # [K, L, steps, B]
    adapted = _sgd_steps(model, flat[idx].repeat(K, 1), sequence, task, seeds.repeat(K),
                         which.flatten(0, 1), s.learning_rate)
    return learned_scale_prior(adapted.detach().view(K, L, -1), floor_ratio=s.floor_ratio)
