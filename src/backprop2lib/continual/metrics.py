"""The continual-learning metrics, named as the field names them, from an accuracy matrix.

``acc[..., i, j]`` is the accuracy on task j after training task i (T x T, any leading axes such as
rows or seeds). With T tasks:

* **average accuracy** (ACC; Avalanche's stream accuracy): mean_j acc[T−1, j], every task after the last;
* **learning accuracy**: mean_j acc[j, j], each task just after it was learned (plasticity);
* **backward transfer** (BWT; Lopez-Paz & Ranzato 2017): mean_{j<T−1} (acc[T−1, j] − acc[j, j]),
  negative when learning later tasks hurt earlier ones;
* **forgetting** (Chaudhry et al. 2018): mean_{j<T−1} (max_{i<T−1} acc[i, j] − acc[T−1, j]), the drop from
  the best a task ever was to where it ends.
"""

from __future__ import annotations

import torch

__all__ = ["average_accuracy", "backward_transfer", "forgetting", "learning_accuracy"]


def _check(acc: torch.Tensor, need_two: bool = False) -> int:
    if acc.dim() < 2 or acc.shape[-1] != acc.shape[-2]:
        raise ValueError(f"acc: expected an accuracy matrix [..., T, T], got shape {tuple(acc.shape)}")
    if need_two and acc.shape[-1] < 2:
        raise ValueError("acc: backward transfer and forgetting need at least two tasks")
    return acc.shape[-1]


def average_accuracy(acc: torch.Tensor) -> torch.Tensor:
    _check(acc)
    return acc[..., -1, :].mean(-1)


def learning_accuracy(acc: torch.Tensor) -> torch.Tensor:
    _check(acc)
    return acc.diagonal(dim1=-2, dim2=-1).mean(-1)


def backward_transfer(acc: torch.Tensor) -> torch.Tensor:
    T = _check(acc, need_two=True)
    return (acc[..., -1, : T - 1] - acc.diagonal(dim1=-2, dim2=-1)[..., : T - 1]).mean(-1)


def forgetting(acc: torch.Tensor) -> torch.Tensor:
    T = _check(acc, need_two=True)
    best = acc[..., : T - 1, : T - 1].amax(-2)  # best accuracy on task j after any task i < T−1 (Chaudhry et al.)
    return (best - acc[..., -1, : T - 1]).mean(-1)
