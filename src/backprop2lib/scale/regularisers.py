"""Regularisers that tie a task's parameters ``w`` to the meta-learned mean ``mu`` at a
per-parameter scale (backprop2's two approaches, plus the variants it coded).

Every regulariser has ``value_and_grad(w) -> (R [T], dR/dw [T, P])`` for flat parameters
``w: [T, P]`` and a ``fit`` classmethod that sets its meta-parameters from adapted task
parameters ``[T, P]`` (statistics over tasks, population variance). ``strength`` is the
error scale ``c``: a constant (backprop2's default 1e-2) or a tensor the caller computed.

The mean (and its companion, the variance or inverse scale) is ``[P]``, shared by every task,
or ``[T, P]``, one row per task (e.g. recognition, where every row is a different class's
prior); then ``w`` must be ``[T, P]`` with the same T, and ``take(rows)`` gives the regulariser
of a subset of the tasks (what the line search and the terminator need).

Quadratic, R = c Σ_i (w_i − μ_i)² / σ_i²: its gradient always points at μ, so adapted
parameters end closer to μ than the tasks need, the next σ is smaller, the pull stronger —
the scale collapses over outer iterations. ``fit(floor=...)`` bounds σ² from below.

Quartic, R = c Σ_i (a_i (w_i − μ_i)² − 1)²: a double well with minima at |w_i − μ_i| = 1/√a_i
and a bump of height c at μ_i, so it pushes parameters *out* to their typical distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

QUARTIC_VARIANTS = ("least_squares", "type2", "type3", "consistent")
A_MAX = 1e4  # backprop2's cap on the inverse scale (type 2); also used for parameters that never vary


def _check_pair(mean: torch.Tensor, other: torch.Tensor, other_name: str) -> None:
    if mean.dim() not in (1, 2):
        raise ValueError(f"mean: expected a flat vector [P] (shared by all tasks) or [T, P] (one row per task), "
                         f"got shape {tuple(mean.shape)}")
    if other.shape != mean.shape:
        raise ValueError(f"{other_name}: expected shape {tuple(mean.shape)} (like mean), got {tuple(other.shape)}")
    if not bool(torch.isfinite(mean).all()):
        raise ValueError("mean: contains NaN or inf")


def _check_w(w: torch.Tensor, mean: torch.Tensor) -> None:
    """``w`` fits ``mean``: [P] or [T, P] for a shared mean [P], exactly [T, P] for a per-task mean [T, P]."""
    if mean.dim() == 1:
        if w.dim() not in (1, 2) or w.shape[-1] != mean.shape[0]:
            raise ValueError(f"w: expected [P] or [T, P] with P = {mean.shape[0]}, got {tuple(w.shape)}")
    elif tuple(w.shape) != tuple(mean.shape):
        raise ValueError(f"w: expected [T, P] = {tuple(mean.shape)} (one row per task of the [T, P] mean), "
                         f"got {tuple(w.shape)}")


def _positions(mask: torch.Tensor) -> list:
    """Where ``mask`` is True: parameter numbers for [P], (task, parameter) pairs for [T, P]."""
    found = mask.nonzero()
    return found.flatten().tolist() if mask.dim() == 1 else [tuple(r) for r in found.tolist()]


def _take(obj, rows: torch.Tensor, fields: tuple[str, ...]):
    """``obj`` for the tasks ``rows`` of its [T, P] tensors; ``obj`` itself when they are shared [P]."""
    if obj.mean.dim() == 1:
        return obj
    return replace(obj, **{f: getattr(obj, f)[rows] for f in fields})


def _check_adapted(w: torch.Tensor) -> None:
    if w.dim() != 2 or w.shape[0] < 2:
        raise ValueError(f"adapted: expected [T, P] parameters of at least 2 tasks, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        bad = (~torch.isfinite(w)).any(-1).nonzero().flatten().tolist()
        raise ValueError(f"adapted: parameters of task(s) {bad[:10]} contain NaN or inf")


@dataclass(frozen=True)
class QuadraticRegulariser:
    """R(w) = c Σ_i (w_i − μ_i)² / σ_i²; the gradient is 2c (w − μ) / σ²."""

    mean: torch.Tensor
    variance: torch.Tensor
    strength: float | torch.Tensor = 1e-2

    def __post_init__(self) -> None:
        _check_pair(self.mean, self.variance, "variance")
        if not bool((self.variance > 0).all() & torch.isfinite(self.variance).all()):
            not_positive = ~(self.variance > 0)
            zero = _positions(not_positive)
            where = "parameter(s)" if self.variance.dim() == 1 else "(task, parameter) pair(s)"
            raise ValueError(
                f"variance: must be positive and finite; {where} {zero[:10]} have variance "
                f"{self.variance[not_positive][:1].tolist() if zero else 'inf/NaN'} (σ = 0 means infinite "
                "precision: fit with floor > 0)")

    @property
    def scale(self) -> torch.Tensor:
        """The per-parameter scale σ."""
        return self.variance.sqrt()

    def take(self, rows: torch.Tensor) -> "QuadraticRegulariser":
        """The regulariser of tasks ``rows`` (for a [T, P] mean); itself for a shared [P] mean."""
        return _take(self, rows, ("mean", "variance"))

    def value_and_grad(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_w(w, self.mean)
        d_over_var = (w - self.mean) / self.variance
        value = self.strength * ((w - self.mean) * d_over_var).sum(-1)
        return value, 2 * self.strength * d_over_var

    @classmethod
    def fit(cls, adapted: torch.Tensor, *, strength: float | torch.Tensor = 1e-2,
            floor: float = 0.0) -> "QuadraticRegulariser":
        """μ = mean over tasks, σ² = population variance over tasks, at least ``floor``."""
        _check_adapted(adapted)
        if not floor >= 0:
            raise ValueError(f"floor: expected a variance floor >= 0, got {floor!r}")
        return cls(adapted.mean(0), adapted.var(0, unbiased=False).clamp_min(floor), strength)


def quartic_inverse_scale(deviations: torch.Tensor, variant: str = "consistent") -> torch.Tensor:
    """The quartic's inverse scale ``a [P]`` from task deviations ``d = w − μ`` ``[T, P]``.

    ``least_squares``: a = Σ d² / Σ d⁴ (backprop2's fit of a d² ≈ 1);
    ``type2``: a = min(1 / mean|d|, 1e4) (minima at √mean|d|, not at mean|d| as documented);
    ``type3``: a = 1 / √mean d² (minima at √RMS, not at the RMS);
    ``consistent``: a = 1 / mean d² (minima exactly at the RMS deviation).
    A parameter that never varies gets a = 1e4 (minima 0.01 from μ) instead of 0 or NaN.
    """
    if variant not in QUARTIC_VARIANTS:
        raise ValueError(f"variant: unknown quartic variant {variant!r}; valid: {', '.join(QUARTIC_VARIANTS)}")
    if deviations.dim() != 2:
        raise ValueError(f"deviations: expected [T, P], got shape {tuple(deviations.shape)}")
    if not bool(torch.isfinite(deviations).all()):
        raise ValueError("deviations: contain NaN or inf")
    d2 = deviations.pow(2)
    if variant == "least_squares":
        a = d2.sum(0) / d2.pow(2).sum(0)
    elif variant == "type2":
        a = 1 / deviations.abs().mean(0)
    elif variant == "type3":
        a = 1 / d2.mean(0).sqrt()
    else:
        a = 1 / d2.mean(0)
    a = torch.where(torch.isfinite(a), a, torch.full_like(a, A_MAX))
    return a.clamp(max=A_MAX)


def quartic_minimum_distance(a: torch.Tensor) -> torch.Tensor:
    """Where the quartic's minima sit: |w − μ| = 1/√a."""
    return a.rsqrt()


@dataclass(frozen=True)
class QuarticRegulariser:
    """R(w) = c Σ_i (a_i (w_i − μ_i)² − 1)²; the gradient is 4c a (w − μ)(a (w − μ)² − 1)."""

    mean: torch.Tensor
    inverse_scale: torch.Tensor
    strength: float | torch.Tensor = 1e-2

    def __post_init__(self) -> None:
        _check_pair(self.mean, self.inverse_scale, "inverse_scale")
        if not bool((self.inverse_scale > 0).all() & torch.isfinite(self.inverse_scale).all()):
            raise ValueError("inverse_scale: every a_i must be positive and finite")

    @property
    def scale(self) -> torch.Tensor:
        """The per-parameter scale: the distance of the minima from μ, 1/√a."""
        return quartic_minimum_distance(self.inverse_scale)

    def take(self, rows: torch.Tensor) -> "QuarticRegulariser":
        """The regulariser of tasks ``rows`` (for a [T, P] mean); itself for a shared [P] mean."""
        return _take(self, rows, ("mean", "inverse_scale"))

    def value_and_grad(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_w(w, self.mean)
        d = w - self.mean
        a = self.inverse_scale
        inner = a * d * d - 1
        return self.strength * inner.pow(2).sum(-1), 4 * self.strength * a * d * inner

    @classmethod
    def fit(cls, adapted: torch.Tensor, *, strength: float | torch.Tensor = 1e-2,
            variant: str = "consistent") -> "QuarticRegulariser":
        """μ = mean over tasks, a from the deviations about it (see :func:`quartic_inverse_scale`)."""
        _check_adapted(adapted)
        mean = adapted.mean(0)
        return cls(mean, quartic_inverse_scale(adapted - mean, variant), strength)
