"""Task sequences for continual learning, built from one MNIST split and batched over seeds.

A :class:`TaskSequence` is T tasks learned one after another. Two kinds, named as the field names them:

* **permuted MNIST** (:func:`permuted_mnist`): every task is the ten-digit problem with the pixels
  shuffled by a fixed permutation of its own (Goodfellow et al. 2013; Kirkpatrick et al. 2017).
  Task 1 is the unpermuted images; each later task draws a fresh permutation, per seed. ``square``
  permutes only a centred ``square x square`` block of pixels (the Fisher-overlap experiment: a
  small square makes tasks similar, a large one different).
* **split MNIST** (:func:`split_mnist`): task k keeps two digits, e.g. 0/1, 2/3, ..., 8/9. We run it
  *domain-incremental*: one shared two-way output ("first or second digit of the pair"), no task
  label at test time (van de Ven & Tolias 2019's middle scenario; the task-incremental variant with
  a head per task is much easier, the class-incremental one needs replay to get anywhere).

Inputs stay ``[N, 784]`` floats once per part (train / validation / test); a seed's permutation is
applied when a batch is drawn, so ten tasks of three seeds cost no more memory than one image set.
Rows of a batched model name their seed (``seed_of_row``): every method trained from seed s sees the
same permutations and the same minibatches, so comparisons between methods are paired by seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..data.mnist import N_PIXELS, SIDE, MNIST, Split

__all__ = ["PARTS", "STREAMS", "TaskSequence", "permuted_mnist", "split_mnist", "square_pixels", "stream_seed"]

PARTS = ("train", "validation", "test")
STREAMS = ("permutations", "start", "minibatches", "adaptations")


def stream_seed(seed: int, stream: str, task: int = 0) -> int:
    """The generator seed of one random stream of training seed ``seed``: its permutations, its network's
    start, or task ``task``'s minibatches or adaptations. Distinct streams never share a generator state,
    and a stream depends on its own seed alone (not on which other seeds are trained beside it)."""
    if stream not in STREAMS:
        raise ValueError(f"stream: expected one of {STREAMS}, got {stream!r}")
    if not isinstance(task, int) or not 0 <= task < 1000:
        raise ValueError(f"task: expected an int in 0..999, got {task!r}")
    return (int(seed) * len(STREAMS) + STREAMS.index(stream)) * 1000 + task


def square_pixels(square: int) -> torch.Tensor:
    """Flat indices of the centred ``square x square`` block of a 28 x 28 image."""
    if not isinstance(square, int) or not 1 <= square <= SIDE:
        raise ValueError(f"square: expected a side between 1 and {SIDE} pixels, got {square!r}")
    start = (SIDE - square) // 2
    rows = torch.arange(start, start + square)
    return (rows[:, None] * SIDE + rows[None, :]).flatten()


@dataclass(frozen=True, eq=False)
class _Part:
    x: torch.Tensor  # [N, 784] pixels in [0, 1]
    index: tuple[torch.Tensor, ...]  # per task: the images it uses
    target: tuple[torch.Tensor, ...]  # per task: their labels for this task


@dataclass(frozen=True, eq=False)
class TaskSequence:
    """T tasks, per seed; draw minibatches and evaluation sets as ``[rows, N, 784]``.

    ``permutations [S, T, 784]`` (long) say where each input pixel comes from, per seed and task;
    ``n_outputs`` is the width of the shared output layer.
    """

    name: str
    task_names: tuple[str, ...]
    permutations: torch.Tensor
    n_outputs: int
    parts: dict

    @property
    def n_tasks(self) -> int:
        return len(self.task_names)

    @property
    def n_seeds(self) -> int:
        return self.permutations.shape[0]

    def _part(self, part: str) -> _Part:
        if part not in self.parts:
            raise ValueError(f"part: expected one of {PARTS}, got {part!r}")
        return self.parts[part]

    def _task(self, task: int) -> int:
        if not isinstance(task, int) or not 0 <= task < self.n_tasks:
            raise ValueError(f"task: expected an int in 0..{self.n_tasks - 1}, got {task!r}")
        return task

    def _rows(self, seed_of_row: torch.Tensor) -> torch.Tensor:
        seed_of_row = torch.as_tensor(seed_of_row, dtype=torch.long)
        if seed_of_row.dim() != 1 or seed_of_row.numel() == 0 or int(seed_of_row.min()) < 0 \
                or int(seed_of_row.max()) >= self.n_seeds:
            raise ValueError(f"seed_of_row: expected a non-empty 1-D tensor of seed numbers in 0..{self.n_seeds - 1}, "
                             f"got {seed_of_row.tolist()}")
        return seed_of_row

    def size(self, part: str, task: int) -> int:
        """How many images task ``task`` has in ``part``."""
        return self._part(part).index[self._task(task)].numel()

    def inputs(self, part: str, task: int, seed_of_row, which: torch.Tensor | None = None):
        """Images ``[R, N, 784]`` (each row permuted by its seed's permutation) and labels ``[R, N]``.

        ``which [R, N]`` picks, per row, positions among the task's images (a minibatch);
        None takes all of them, the same for every row (an evaluation set).
        """
        p, task, rows = self._part(part), self._task(task), self._rows(seed_of_row)
        index, target = p.index[task], p.target[task]
        perm = self.permutations[rows, task].to(p.x.device)  # [R, 784]
        if which is None:
            x = p.x[index]  # [N, 784]
            return torch.gather(x.unsqueeze(0).expand(len(rows), -1, -1), 2,
                                perm.unsqueeze(1).expand(-1, x.shape[0], -1)), target.expand(len(rows), -1)
        if which.dim() != 2 or which.shape[0] != len(rows):
            raise ValueError(f"which: expected [rows, N] = [{len(rows)}, N] positions, got {tuple(which.shape)}")
        which = which.to(index.device)
        x = p.x[index[which]]  # [R, N, 784]
        return torch.gather(x, 2, perm.unsqueeze(1).expand(-1, which.shape[1], -1)), target[which]

    def minibatch_positions(self, task: int, steps: int, batch: int, seed_values: Sequence[int]) -> torch.Tensor:
        """Positions ``[S, steps, batch]`` among task ``task``'s training images, uniform with replacement.

        Seed s's draws come from a CPU generator seeded by :func:`stream_seed` alone, so a seed's
        minibatches do not depend on which other seeds are trained beside it.
        """
        task = self._task(task)
        if len(seed_values) != self.n_seeds:
            raise ValueError(f"seed_values: expected {self.n_seeds} seeds (one per seed of the sequence), "
                             f"got {len(seed_values)}")
        n = self.size("train", task)
        return torch.stack([torch.randint(n, (steps, batch), generator=torch.Generator().manual_seed(
            stream_seed(s, "minibatches", task))) for s in seed_values])


def _parts(split: Split, digits: Sequence[Sequence[int]] | None, n_tasks: int,
           device: torch.device | str) -> dict:
    parts = {}
    for part in PARTS:
        data: MNIST = getattr(split, part)
        x = data.pixels(device=device)
        y = data.labels.to(device)
        if digits is None:
            every = torch.arange(len(y), device=device)
            parts[part] = _Part(x, (every,) * n_tasks, (y,) * n_tasks)
        else:
            index, target = [], []
            for pair in digits:
                keep = torch.isin(y, torch.tensor(list(pair), device=device)).nonzero().flatten()
                # the label within the task: the digit's position in its tuple (domain-incremental)
                label = (y[keep].unsqueeze(-1) == torch.tensor(list(pair), device=device)).long().argmax(-1)
                index.append(keep)
                target.append(label)
            parts[part] = _Part(x, tuple(index), tuple(target))
    return parts


def permuted_mnist(split: Split, n_tasks: int, seed_values: Sequence[int], *, square: int | None = None,
                   device: torch.device | str = "cpu") -> TaskSequence:
    """``n_tasks`` permuted-MNIST tasks for each seed in ``seed_values``; task 1 is unpermuted.

    Seed s's permutations come from a CPU generator seeded by :func:`stream_seed` alone.
    ``square``: permute only the centred ``square x square`` pixels (None: all 784).
    """
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks: expected a positive int, got {n_tasks!r}")
    if len(seed_values) < 1:
        raise ValueError("seed_values: expected at least one seed")
    moved = torch.arange(N_PIXELS) if square is None else square_pixels(square)
    perms = []
    for s in seed_values:
        g = torch.Generator().manual_seed(stream_seed(s, "permutations"))
        rows = [torch.arange(N_PIXELS)]
        for _ in range(n_tasks - 1):
            perm = torch.arange(N_PIXELS)
            perm[moved] = moved[torch.randperm(moved.numel(), generator=g)]
            rows.append(perm)
        perms.append(torch.stack(rows))
    where = "all pixels" if square is None else f"the centred {square}x{square} pixels"
    names = tuple(["unpermuted"] + [f"permutation {k}" for k in range(1, n_tasks)])
    return TaskSequence(f"permuted MNIST ({n_tasks} tasks, {where})", names, torch.stack(perms), 10,
                        _parts(split, None, n_tasks, device))


def split_mnist(split: Split, seed_values: Sequence[int], *,
                digits: Sequence[Sequence[int]] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)),
                device: torch.device | str = "cpu") -> TaskSequence:
    """Split MNIST, domain-incremental: task k tells ``digits[k][0]`` from ``digits[k][1]`` on one shared 2-way output."""
    digits = tuple(tuple(int(d) for d in pair) for pair in digits)
    flat = [d for pair in digits for d in pair]
    if not digits or any(len(p) != 2 for p in digits) or len(set(flat)) != len(flat) or \
            any(not 0 <= d <= 9 for d in flat):
        raise ValueError(f"digits: expected pairs of distinct digits 0..9, no digit twice, got {digits!r}")
    if len(seed_values) < 1:
        raise ValueError("seed_values: expected at least one seed")
    identity = torch.arange(N_PIXELS).expand(len(seed_values), len(digits), -1).clone()
    return TaskSequence("split MNIST (domain-incremental)", tuple(f"{a}/{b}" for a, b in digits), identity, 2,
                        _parts(split, digits, len(digits), device))
