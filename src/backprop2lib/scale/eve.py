"""Eve: per-parameter learning rates from the scale of each parameter across tasks.

    σ_i² = var_t(w_ti), clipped below at max_j σ_j² / 1e6
    λ_i  = σ_i² / mean_j σ_j²                         (parameters that vary a lot move fast)
    lr_i = λ_i · exp(−κ (w_i − μ_i)² / σ_i²)          (and slow down beyond a few σ from μ)

The Gaussian envelope gives 0.82 of the rate at 1σ, 0.45 at 2σ, 0.17 at 3σ for backprop2's
κ = 0.2 (hard-coded there, a parameter here). Adam damps parameters whose gradients are
large; Eve boosts parameters that differ a lot between tasks. It adds no error term: the
step is −lr ⊙ ∇E, scaled by a global step size (fixed or the line search).

The mean and variance are ``[P]`` (shared by every task) or ``[T, P]`` (one row per task, each
row with its own λ: the means in λ are over a row's parameters); ``take(rows)`` gives the rates
of a subset of the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .regularisers import _check_w, _take

RELATIVE_FLOOR = 1e-6


@dataclass(frozen=True)
class EveRates:
    mean: torch.Tensor
    variance: torch.Tensor
    decay: float = 0.2  # κ

    def __post_init__(self) -> None:
        if self.mean.dim() not in (1, 2) or self.variance.shape != self.mean.shape:
            raise ValueError(f"mean, variance: expected two tensors of equal shape, [P] (shared by all tasks) or "
                             f"[T, P] (one row per task), got {tuple(self.mean.shape)} and "
                             f"{tuple(self.variance.shape)}")
        if not bool(torch.isfinite(self.mean).all()):
            raise ValueError("mean: contains NaN or inf")
        if not bool((self.variance > 0).all() & torch.isfinite(self.variance).all()):
            raise ValueError("variance: must be positive and finite (fit() applies the relative floor)")
        if not self.decay >= 0:
            raise ValueError(f"decay: expected κ >= 0, got {self.decay!r}")

    @classmethod
    def fit(cls, adapted: torch.Tensor, *, decay: float = 0.2, relative_floor: float = RELATIVE_FLOOR) -> "EveRates":
        if adapted.dim() != 2 or adapted.shape[0] < 2:
            raise ValueError(f"adapted: expected [T, P] parameters of at least 2 tasks, got {tuple(adapted.shape)}")
        if not bool(torch.isfinite(adapted).all()):
            raise ValueError("adapted: contains NaN or inf")
        mean = adapted.mean(0)
        variance = adapted.var(0, unbiased=False)
        top = variance.max()
        if not top > 0:
            raise ValueError("adapted: no parameter varies across tasks; Eve's rates are undefined")
        return cls(mean, variance.clamp_min(top * relative_floor), decay)

    @property
    def scale(self) -> torch.Tensor:
        return self.variance.sqrt()

    @property
    def base_rates(self) -> torch.Tensor:
        """λ_i = σ_i² / mean σ² (mean 1; per row for a [T, P] variance)."""
        return self.variance / self.variance.mean(-1, keepdim=True)

    def take(self, rows: torch.Tensor) -> "EveRates":
        """The rates of tasks ``rows`` (for a [T, P] mean); itself for a shared [P] mean."""
        return _take(self, rows, ("mean", "variance"))

    def rates(self, w: torch.Tensor) -> torch.Tensor:
        """Per-parameter learning rates at ``w [T, P]`` (or ``[P]`` for a shared mean)."""
        _check_w(w, self.mean)
        d = w - self.mean
        return self.base_rates * torch.exp(-self.decay * d * d / self.variance)

    def convergence(self, w: torch.Tensor) -> torch.Tensor:
        """backprop2's convergence metric, mean_i |w_i − μ_i| / σ_i, per task."""
        _check_w(w, self.mean)
        return ((w - self.mean).abs() / self.scale).mean(-1)
