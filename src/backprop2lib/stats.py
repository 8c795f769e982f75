"""Summaries that never let a diverged run silently become a NaN mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # normal quantile; our samples have n >= 100 where this matters


@dataclass(frozen=True)
class Summary:
    mean: float
    ci95: float  # half-width of the 95% confidence interval of the mean
    n: int  # finite values that went into the mean
    n_diverged: int  # values that were NaN, inf or above the divergence bound, left out

    def __str__(self) -> str:
        text = f"{self.mean:.3g} ± {self.ci95:.2g}"
        if self.n_diverged:
            text += f" ({self.n_diverged} diverged)"
        return text


def summarise(values, *, diverged_above: float = np.inf) -> Summary:
    """Mean and 95% CI (normal approximation) of the values that did not diverge.

    A value diverged if it is NaN, infinite, or above ``diverged_above`` (a loss that
    blew up to 1e30 is as diverged as an overflow); those are counted, not averaged.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("summarise() needs at least one value, got an empty array")
    if not diverged_above > 0:
        raise ValueError(f"diverged_above: expected a positive bound, got {diverged_above!r}")
    finite = np.isfinite(values) & (values <= diverged_above)
    kept = values[finite]
    n_diverged = int((~finite).sum())
    if kept.size == 0:
        return Summary(float("nan"), float("nan"), 0, n_diverged)
    ci = Z_95 * kept.std(ddof=1) / np.sqrt(kept.size) if kept.size > 1 else float("nan")
    return Summary(float(kept.mean()), float(ci), int(kept.size), n_diverged)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equally long vectors."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 3:
        raise ValueError(f"a, b: expected two vectors of equal length >= 3, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a, b: contain NaN or inf")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def permutation_p_value(a, b, *, n_permutations: int = 10_000, seed: int = 0) -> float:
    """One-sided p-value that ``rank_correlation(a, b)`` is this large by chance (b shuffled)."""
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations: expected a positive int, got {n_permutations!r}")
    observed = rank_correlation(a, b)
    rng = np.random.default_rng(seed)
    a = _ranks(np.asarray(a, dtype=np.float64).ravel())
    b = _ranks(np.asarray(b, dtype=np.float64).ravel())
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    if denom == 0:
        return 1.0
    shuffled = np.stack([rng.permutation(b) for _ in range(n_permutations)])
    null = shuffled @ a / denom
    return float((1 + (null >= observed - 1e-12).sum()) / (1 + n_permutations))
