"""The book's inference, in one place: summaries that never let a diverged run silently become a
NaN mean, normal and Student-t intervals, Wilson intervals for accuracies, and one ``compare``
that every chapter's "lower / higher / not distinguishable" verdict goes through; over training
seeds, ``summarise_seeds`` and ``compare_seeds`` (values ``[seeds, test tasks]``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # normal quantile; our samples have n >= 100 where this matters
INTERVALS = ("normal", "t")  # "t": Student's t with n - 1 degrees of freedom, for a handful of seeds


@dataclass(frozen=True)
class Summary:
    mean: float
    ci95: float  # half-width of the 95% confidence interval of the mean
    n: int  # finite values that went into the mean
    n_diverged: int  # values that were NaN, inf or above the divergence bound, left out

    def __str__(self) -> str:
        return interval_text(self)


def interval_text(summary, fmt: str = ".3g", width_fmt: str = ".2g", *, scale: float = 1.0,
                  tasks: bool = False) -> str:
    """The one way the book writes an interval: "mean ± half-width" of a :class:`Summary` or
    :class:`SeedSummary` (the mean alone where the half-width is not finite, e.g. one seed), values times
    ``scale`` (100: percentage points), then "(tasks ± w)" for a SeedSummary's pooled test-task interval when
    ``tasks``, and "(k diverged)" when values were left out. ``fmt="matched"``: both to the half-width's
    second significant digit (0.1234 ± 0.0056 → "0.1234 ± 0.0056", 12.3 ± 1.4 → "12.3 ± 1.4")."""
    mean, width = summary.mean * scale, summary.ci95 * scale
    if fmt == "matched":
        if math.isfinite(width) and width > 0:
            decimals = max(0, 1 - math.floor(math.log10(width)))
            text = f"{mean:.{decimals}f} ± {width:.{decimals}f}"
        else:
            text = f"{mean:.2g}"
    else:
        text = f"{mean:{fmt}} ± {width:{width_fmt}}" if math.isfinite(width) else f"{mean:{fmt}}"
    if tasks:
        text += f" (tasks ± {summary.tasks.ci95 * scale:{width_fmt if fmt != 'matched' else '.2g'}})"
    if summary.n_diverged:
        text += f" ({summary.n_diverged} diverged)"
    return text


def _check_interval(interval) -> str:
    if interval not in INTERVALS:
        raise ValueError(f"interval: expected one of {INTERVALS}, got {interval!r}")
    return interval


def _quantile_95(interval: str, dof):
    """The two-sided 95% quantile: normal, or Student's t with ``dof`` degrees of freedom."""
    if interval == "normal":
        return Z_95
    from scipy.stats import t  # lazy: scipy is slow to import and most callers never need it

    return t.ppf(0.975, dof)


def summarise(values, *, interval: str = "normal", diverged_above: float = np.inf) -> Summary:
    """Mean and 95% CI of the values that did not diverge.

    A value diverged if it is NaN, infinite, or above ``diverged_above`` (a loss that
    blew up to 1e30 is as diverged as an overflow); those are counted, not averaged.
    ``interval="normal"`` uses the normal quantile (samples of hundreds of tasks),
    ``interval="t"`` Student's t with n − 1 degrees of freedom (a handful of seeds).
    With fewer than two kept values the half-width is NaN.
    """
    _check_interval(interval)
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
    if kept.size > 1:
        ci = float(_quantile_95(interval, kept.size - 1)) * kept.std(ddof=1) / np.sqrt(kept.size)
    else:
        ci = float("nan")
    return Summary(float(kept.mean()), float(ci), int(kept.size), n_diverged)


def mean_and_ci(values, axis: int = -1, interval: str = "t") -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% CI half-width along ``axis``, leaving out non-finite (diverged) entries.

    For curves ``[steps, seeds]`` and tables ``[sizes, draws]``: one mean and half-width per
    step. Where fewer than two entries are finite the half-width is 0 (no band can be drawn)
    and, with none, the mean is NaN. Student's t by default, each entry with its own n − 1.
    """
    _check_interval(interval)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0 or values.size == 0:
        raise ValueError(f"values: expected a non-empty array, got shape {values.shape}")
    values = np.where(np.isfinite(values), values, np.nan)  # ±inf is as diverged as NaN
    n = np.isfinite(values).sum(axis)
    with warnings.catch_warnings():  # all-NaN slices are expected (a method that could not train)
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis)
        sd = np.nanstd(values, axis, ddof=1) if values.shape[axis] > 1 else np.zeros_like(mean)
    quantile = _quantile_95(interval, np.maximum(n - 1, 1))
    return mean, np.where(n > 1, quantile * sd / np.sqrt(np.maximum(n, 1)), 0.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion from ``successes`` of ``n`` (sound near 0 and 1).

    (p + z²/2n ± z √(p(1 − p)/n + z²/4n²)) / (1 + z²/n) with p = successes / n. At k = 0 the
    lower bound is exactly 0 and at k = n the upper exactly 1, as the formula gives; set so,
    since rounding would leave them a hair off.
    """
    for name, value in (("n", n), ("successes", successes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected an int, got {value!r}")
    if n <= 0:
        raise ValueError(f"n: expected a positive count, got {n!r}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes: expected an int in 0..{n} (n), got {successes!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))  # 0.95: Z_95 exactly
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if successes == 0 else centre - half
    hi = 1.0 if successes == n else centre + half
    return lo, hi


TESTS = ("difference", "overlap")  # how an unpaired comparison reads its intervals (see compare)


@dataclass(frozen=True)
class Comparison:
    """How ``a`` compares with ``b``: the verdict and the interval of a − b it reads."""

    verdict: str  # "lower": a is lower than b; "higher"; or "not distinguishable"
    difference: Summary  # a − b: mean, the 95% half-width the verdict reads, values kept and left out
    a: Summary  # each side on its own (same interval and divergence rule)
    b: Summary
    paired: bool
    test: str  # "difference" or "overlap" (see :func:`compare`)
    interval: str  # "normal" or "t"

    @property
    def low(self) -> float:
        return self.difference.mean - self.difference.ci95

    @property
    def phrase(self) -> str:
        """The verdict as prose reads it between a and b: "lower than", "higher than", "not distinguishable from"."""
        return {"lower": "lower than", "higher": "higher than", "not distinguishable": "not distinguishable from"}[
            self.verdict]

    @property
    def high(self) -> float:
        return self.difference.mean + self.difference.ci95

    def __str__(self) -> str:
        how = "paired" if self.paired else ("separate intervals" if self.test == "overlap" else "unpaired")
        d = self.difference
        text = f"{self.verdict} (a − b = {d.mean:.3g} ± {d.ci95:.2g}, {how}, {self.interval} 95% CI"
        if d.n_diverged:
            text += f", {d.n_diverged} diverged left out"
        return text + ")"


def _welch(a: np.ndarray, b: np.ndarray, interval: str) -> float:
    """95% half-width of mean(a) − mean(b) for independent samples (Welch–Satterthwaite dof for t)."""
    if a.size < 2 or b.size < 2:
        return float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se2 = va + vb
    if se2 == 0:  # two constant samples: the difference is known exactly
        return 0.0
    dof = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return float(_quantile_95(interval, dof)) * math.sqrt(se2)


def _kept(values: np.ndarray, diverged_above: float) -> np.ndarray:
    return np.isfinite(values) & (values <= diverged_above)


def compare(a, b, *, paired: bool, interval: str = "normal", test: str = "difference",
            diverged_above: float = np.inf) -> Comparison:
    """Is ``a`` lower than ``b``, higher, or not distinguishable at 95%?

    - ``paired=True``: ``a[i]`` and ``b[i]`` were measured on the same instance (task, seed);
      the interval is that of the per-instance differences, and a pair where either side
      diverged is left out and counted (``difference.n_diverged``).
    - ``paired=False, test="difference"``: independent samples; the interval of
      mean(a) − mean(b) with half-width √(h_a² + h_b²) (normal) or Welch's t.
    - ``paired=False, test="overlap"``: the two 95% intervals are compared for overlap:
      "lower" when a's upper bound lies below b's lower bound. This is an interval of the
      difference with half-width h_a + h_b, wider than Welch's, so it calls fewer differences;
      chapters 1–3 reported it and keep it so their verdicts stay what they were.

    "lower" means the interval of a − b lies below 0, "higher" above 0. Diverged values (NaN,
    inf, above ``diverged_above``) are counted, never averaged.
    """
    if not isinstance(paired, bool):
        raise ValueError(f"paired: expected True or False, got {paired!r}")
    _check_interval(interval)
    if test not in TESTS:
        raise ValueError(f"test: expected one of {TESTS}, got {test!r}")
    if paired and test == "overlap":
        raise ValueError("test: 'overlap' compares two separate intervals and ignores the pairing; "
                         "use test='difference' with paired=True")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"a, b: expected non-empty samples, got sizes {a.size} and {b.size}")
    if paired and a.shape != b.shape:
        raise ValueError(f"a, b: paired samples need equal shapes, got {a.shape} and {b.shape}")
    a, b = a.ravel(), b.ravel()
    sa = summarise(a, interval=interval, diverged_above=diverged_above)
    sb = summarise(b, interval=interval, diverged_above=diverged_above)
    if paired:
        both = _kept(a, diverged_above) & _kept(b, diverged_above)
        # a pair is as diverged as its worse side: summarise the differences of the kept pairs only
        d = a - b
        d[~both] = np.nan
        diff = summarise(d, interval=interval)
    else:
        ka, kb = a[_kept(a, diverged_above)], b[_kept(b, diverged_above)]
        mean = sa.mean - sb.mean
        half = sa.ci95 + sb.ci95 if test == "overlap" else _welch(ka, kb, interval)
        diff = Summary(float(mean), float(half), sa.n + sb.n, sa.n_diverged + sb.n_diverged)
    if test == "overlap":
        # read the two intervals as they are printed, so the verdict is the chapters' old one exactly
        lower = sa.mean + sa.ci95 < sb.mean - sb.ci95
        higher = sb.mean + sb.ci95 < sa.mean - sa.ci95
    else:
        lower = diff.mean + diff.ci95 < 0
        higher = diff.mean - diff.ci95 > 0
    verdict = "lower" if lower else "higher" if higher else "not distinguishable"
    return Comparison(verdict, diff, sa, sb, paired, test, interval)


# ------------------------------------------------------------------------------ over training seeds

@dataclass(frozen=True)
class SeedSummary:
    """A method's test error over training seeds: values ``[S, T]`` (seed × test task).

    The interval that matters for a conclusion is the one across seeds: each seed's mean over its
    test tasks, then the mean and Student-t 95% interval of those S means. The pooled test-task
    interval (``tasks``) is kept beside it, because it says how well each seed was measured, not
    whether another seed would agree.
    """

    mean: float  # mean over seeds of each seed's mean over its kept test tasks
    ci95: float  # Student-t 95% half-width across seeds (NaN with one seed)
    per_seed: np.ndarray  # [S] each seed's mean over its kept test tasks (NaN: every task diverged)
    tasks: Summary  # every (seed, task) value pooled, normal interval
    n_diverged: int  # (seed, task) values left out

    @property
    def n_seeds(self) -> int:
        """Seeds with at least one kept test task (those the interval is over)."""
        return int(np.isfinite(self.per_seed).sum())

    def __str__(self) -> str:
        text = f"{self.mean:.3g} ± {self.ci95:.2g} over {self.n_seeds} seeds (tasks ± {self.tasks.ci95:.2g})"
        if self.n_diverged:
            text += f" ({self.n_diverged} diverged)"
        return text


def _seed_task_array(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name}: expected values [seeds, test tasks] with both >= 1, got shape {values.shape}")
    return values


def _row_means(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Each row's mean over its kept entries (NaN where none is kept)."""
    n = kept.sum(1)
    total = np.where(kept, values, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def summarise_seeds(values, *, diverged_above: float = np.inf) -> SeedSummary:
    """Mean and across-seed Student-t 95% interval of ``values [S, T]`` (seed × test task).

    Diverged values (NaN, inf, above ``diverged_above``) are left out of their seed's mean and
    counted; a seed whose every task diverged has a NaN mean and is left out of the interval.
    """
    values = _seed_task_array(values, "values")
    per_seed = _row_means(values, _kept(values, diverged_above))
    across = summarise(per_seed, interval="t")
    tasks = summarise(values, diverged_above=diverged_above)
    return SeedSummary(across.mean, across.ci95, per_seed, tasks, tasks.n_diverged)


def compare_seeds(a, b, *, paired: bool, diverged_above: float = np.inf) -> Comparison:
    """``a`` against ``b`` over training seeds, both ``[S, T]`` (seed × test task): lower, higher or
    not distinguishable at 95%, Student's t across seeds.

    - ``paired=True``: row s of ``a`` and of ``b`` share the seed (start, task stream) and column t
      the test task. Each seed contributes the mean of its per-task differences a − b over the tasks
      where neither side diverged; the verdict reads the t-interval of those S differences.
    - ``paired=False``: independent seeds; Welch's t-interval of the difference of the two sets of
      per-seed means.

    With a single seed there is no across-seed interval, and the verdict is "not distinguishable".
    """
    if not isinstance(paired, bool):
        raise ValueError(f"paired: expected True or False, got {paired!r}")
    a, b = _seed_task_array(a, "a"), _seed_task_array(b, "b")
    if paired and a.shape != b.shape:
        raise ValueError(f"a, b: paired values need one shape [seeds, test tasks], got {a.shape} and {b.shape}")
    sa, sb = summarise_seeds(a, diverged_above=diverged_above), summarise_seeds(b, diverged_above=diverged_above)
    if paired:
        both = _kept(a, diverged_above) & _kept(b, diverged_above)
        d = _row_means(a - b, both)  # a seed with no pair kept is NaN: left out of the interval
        n_left_out = int((~both).sum())
        diff = summarise(d, interval="t")
        diff = Summary(diff.mean, diff.ci95, diff.n, n_left_out)
    else:
        ka, kb = sa.per_seed[np.isfinite(sa.per_seed)], sb.per_seed[np.isfinite(sb.per_seed)]
        mean = float(ka.mean() - kb.mean()) if ka.size and kb.size else float("nan")
        diff = Summary(mean, _welch(ka, kb, "t"), ka.size + kb.size, sa.n_diverged + sb.n_diverged)
    lower = diff.mean + diff.ci95 < 0
    higher = diff.mean - diff.ci95 > 0
    verdict = "lower" if lower else "higher" if higher else "not distinguishable"
    across = (Summary(sa.mean, sa.ci95, sa.n_seeds, sa.n_diverged), Summary(sb.mean, sb.ci95, sb.n_seeds, sb.n_diverged))
    return Comparison(verdict, diff, *across, paired, "difference", "t")


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


def fitted_exponent(x, y) -> float:
    """k in y ∝ x^k: the least-squares slope of log y on log x (e.g. seconds per step against P)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x, y: expected two 1-D sequences of one length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2 or len(np.unique(x)) < 2:
        raise ValueError(f"x: need at least two distinct values to fit a slope, got {x.tolist()}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError(f"x, y: expected finite positive values (they are logged), got {x.tolist()} and {y.tolist()}")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
