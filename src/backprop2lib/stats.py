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
