import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sp  # the reference; the library imports scipy lazily

from backprop2lib.stats import (INTERVALS, Z_95, Comparison, compare, mean_and_ci, permutation_p_value,
                                rank_correlation, summarise, wilson_interval)


def _slow_ranks(values):
    """Rank 1..n by counting; ties get the average of the positions they share."""
    values = list(values)
    out = []
    for v in values:
        below = sum(1 for u in values if u < v)
        equal = sum(1 for u in values if u == v)
        out.append(below + (equal + 1) / 2)  # positions below+1 .. below+equal, averaged
    return out


def _slow_spearman(a, b):
    ra, rb = _slow_ranks(a), _slow_ranks(b)
    n = len(ra)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb)


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlation_equals_pearson_of_ranks_without_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=20)
    b = a + rng.normal(size=20) * (seed + 0.5)
    assert rank_correlation(a, b) == pytest.approx(_slow_spearman(a, b), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlation_with_ties_uses_average_ranks(seed):
    rng = np.random.default_rng(100 + seed)
    a = rng.integers(0, 4, size=15).astype(float)  # many ties
    b = (a + rng.integers(0, 3, size=15)).astype(float)
    assert rank_correlation(a, b) == pytest.approx(_slow_spearman(a, b), abs=1e-12)
    assert _slow_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]  # the reference itself


def test_monotone_reversed_and_list_inputs():
    a = np.arange(10.0)
    assert rank_correlation(a, np.exp(a)) == pytest.approx(1.0, abs=1e-12)
    assert rank_correlation(a, -a**3) == pytest.approx(-1.0, abs=1e-12)
    assert rank_correlation([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0, abs=1e-12)
    assert rank_correlation(np.ones(5), np.arange(5.0)) == 0.0  # no variation: defined as 0
    assert rank_correlation(a.reshape(2, 5), a.reshape(5, 2)) == pytest.approx(1.0)  # flattened


def test_permutation_p_value_matches_the_exact_permutation_distribution():
    """n = 6: all 720 permutations of b give the exact one-sided p-value; the Monte Carlo estimate is close."""
    a = np.array([0.3, 1.2, -0.5, 2.2, 0.9, 1.5])
    b = np.array([0.1, 0.8, 0.2, 1.9, 0.0, 1.1])
    observed = _slow_spearman(a, b)
    perms = list(itertools.permutations(b))
    exact = sum(1 for p in perms if _slow_spearman(a, p) >= observed - 1e-12) / len(perms)
    estimate = permutation_p_value(a, b, n_permutations=20_000, seed=1)
    assert 0.01 < exact < 0.5
    assert abs(estimate - exact) < 0.01  # standard error ~0.002


def test_permutation_p_value_small_for_correlated_large_for_independent():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    strong = a + 0.5 * rng.normal(size=50)
    assert permutation_p_value(a, strong, n_permutations=2000) < 0.01
    assert permutation_p_value(a, strong, n_permutations=2000) == 1 / 2001  # nothing beats it
    assert permutation_p_value(a, -strong, n_permutations=2000) > 0.99  # one-sided
    independent = np.random.default_rng(7).normal(size=50)
    assert permutation_p_value(a, independent, n_permutations=2000) > 0.05
    # the same seed gives the same p-value
    assert permutation_p_value(a, independent, seed=3, n_permutations=500) == \
        permutation_p_value(a, independent, seed=3, n_permutations=500)


def test_p_values_of_independent_data_are_roughly_uniform():
    rng = np.random.default_rng(11)
    p = np.array([permutation_p_value(rng.normal(size=15), rng.normal(size=15), n_permutations=200, seed=k)
                  for k in range(200)])
    assert 0.42 < p.mean() < 0.58  # uniform: 0.5 ± 0.02 standard error
    assert 0.04 < (p < 0.2).mean() < 0.3
    assert (p < 0.01).mean() < 0.05


def test_constant_input_gives_p_value_one():
    assert permutation_p_value(np.ones(6), np.arange(6.0), n_permutations=50) == 1.0


def test_errors():
    with pytest.raises(ValueError, match="equal length"):
        rank_correlation([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match=">= 3"):
        rank_correlation([1, 2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        rank_correlation([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        rank_correlation([1, 2, 3], [1, float("inf"), 3])
    with pytest.raises(ValueError, match="equal length"):
        permutation_p_value([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="NaN"):
        permutation_p_value([1, 2, float("nan")], [1, 2, 3])


# ------------------------------------------------------------------ summaries and intervals


def _hand_sd(values):
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def test_normal_summary_is_unchanged_and_the_default():
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=200)
    s = summarise(x)
    # today's formula, written out: the mean and 1.96 standard errors, bit for bit
    assert s.mean == float(x.mean())
    assert s.ci95 == float(Z_95 * x.std(ddof=1) / np.sqrt(x.size))
    assert s == summarise(x, interval="normal") and (s.n, s.n_diverged) == (200, 0)
    assert Z_95 == pytest.approx(sp.norm.ppf(0.975), abs=1e-15)


@pytest.mark.parametrize("n", [2, 3, 5, 30])
def test_t_summary_uses_student_t_with_n_minus_one_dof(n):
    values = list(np.random.default_rng(n).normal(2.0, 0.5, size=n))
    s = summarise(values, interval="t")
    expected = sp.t.ppf(0.975, n - 1) * _hand_sd(values) / math.sqrt(n)
    assert s.mean == pytest.approx(sum(values) / n, rel=1e-14)
    assert s.ci95 == pytest.approx(expected, rel=1e-12)
    assert s.ci95 > summarise(values).ci95  # wider than the normal interval for a handful of seeds


def test_t_summary_counts_only_the_kept_values_in_its_dof():
    values = [1.0, 2.0, 4.0, float("nan"), 1e9]
    s = summarise(values, interval="t", diverged_above=1e6)
    assert (s.n, s.n_diverged) == (3, 2)
    assert s.ci95 == pytest.approx(sp.t.ppf(0.975, 2) * _hand_sd([1.0, 2.0, 4.0]) / math.sqrt(3), rel=1e-12)
    assert math.isnan(summarise([5.0, float("nan")], interval="t").ci95)  # one value: no spread
    with pytest.raises(ValueError, match="interval"):
        summarise([1.0, 2.0], interval="student")


def _mean_band_before(values):
    """second_order/plots.mean_band as it was, verbatim: what mean_and_ci must reproduce."""
    n = np.isfinite(values).sum(-1)
    mean = np.nanmean(values, -1)
    sd = np.nanstd(values, -1, ddof=1) if values.shape[-1] > 1 else np.zeros_like(mean)
    quantile = sp.t.ppf(0.975, np.maximum(n - 1, 1))
    return mean, np.where(n > 1, quantile * sd / np.sqrt(np.maximum(n, 1)), 0.0)


def _slow_mean_and_ci(column, interval):
    kept = [float(v) for v in column if math.isfinite(v)]
    if not kept:
        return math.nan, 0.0
    mean = sum(kept) / len(kept)
    if len(kept) < 2:
        return mean, 0.0
    q = Z_95 if interval == "normal" else sp.t.ppf(0.975, len(kept) - 1)
    return mean, q * _hand_sd(kept) / math.sqrt(len(kept))


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_mean_and_ci_equals_a_per_column_reference_with_nans(interval, axis):
    rng = np.random.default_rng(5)
    values = rng.lognormal(size=(6, 7))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[0, :] = np.nan  # a row with nothing finite
    values[:, 2] = np.nan
    values[1, 1:] = np.nan  # one finite entry in row 1
    values[3, 4] = np.inf  # inf is diverged, like NaN
    mean, ci = mean_and_ci(values, axis=axis, interval=interval)
    lanes = values.T if axis == 0 else values
    reference = np.array([_slow_mean_and_ci(lane, interval) for lane in lanes])
    np.testing.assert_allclose(mean, reference[:, 0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ci, reference[:, 1], rtol=1e-12)
    assert mean.shape == ci.shape == (values.shape[1 - (axis % 2)],)


def test_mean_and_ci_is_mean_band_bit_for_bit_on_nan_marked_curves():
    rng = np.random.default_rng(9)
    for shape in [(40, 5), (3, 4, 6), (8, 1), (5, 2)]:
        values = rng.lognormal(size=shape)
        values[rng.random(shape) < 0.25] = np.nan
        with warnings.catch_warnings():  # the old code warned on all-NaN rows
            warnings.simplefilter("ignore", RuntimeWarning)
            old = _mean_band_before(values)
        new = mean_and_ci(values)  # default: last axis, Student's t
        assert np.array_equal(old[0], new[0], equal_nan=True) and np.array_equal(old[1], new[1], equal_nan=True)


def test_mean_and_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="interval"):
        mean_and_ci(np.ones((2, 3)), interval="wald")
    with pytest.raises(ValueError, match="non-empty"):
        mean_and_ci(np.ones((0, 3)))


def _wilson_by_hand(k, n, z=1.959963984540054):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (50, 100), (3, 7), (1, 1), (0, 1), (601, 1000)])
def test_wilson_interval_equals_the_closed_form(k, n):
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = _wilson_by_hand(k, n)
    assert lo == pytest.approx(ref_lo, abs=1e-14) and hi == pytest.approx(ref_hi, abs=1e-14)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    z2 = Z_95 ** 2
    if k == 0:  # the closed form collapses: [0, z²/(n + z²)]
        assert lo == 0.0 and hi == pytest.approx(z2 / (n + z2), rel=1e-12)
    if k == n:  # and mirrored: [n/(n + z²), 1]
        assert hi == 1.0 and lo == pytest.approx(n / (n + z2), rel=1e-12)


def test_wilson_interval_known_value_and_confidence():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo99, hi99 = wilson_interval(50, 100, confidence=0.99)
    assert (lo99, hi99) == pytest.approx(_wilson_by_hand(50, 100, z=sp.norm.ppf(0.995)), abs=1e-14)
    assert lo99 < lo and hi99 > hi


@pytest.mark.parametrize("k, n, confidence, match", [
    (0, 0, 0.95, "n"), (5, 4, 0.95, "successes"), (-1, 4, 0.95, "successes"), (2.0, 4, 0.95, "successes"),
    (2, 4, 1.0, "confidence"), (2, 4, 0.0, "confidence"), (True, 4, 0.95, "successes"),
])
def test_wilson_interval_rejects_bad_counts(k, n, confidence, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(k, n, confidence)


# ------------------------------------------------------------------ compare

def _paired_but_overlapping(n=40, seed=0):
    """a is 0.1 lower than b on every instance, but instances spread far more than 0.1."""
    rng = np.random.default_rng(seed)
    b = rng.normal(5.0, 2.0, size=n)
    a = b - 0.1 + rng.normal(0.0, 0.01, size=n)
    return a, b


@pytest.mark.parametrize("interval", INTERVALS)
def test_paired_and_unpaired_disagree_where_the_pairing_carries_the_signal(interval):
    a, b = _paired_but_overlapping()
    paired = compare(a, b, paired=True, interval=interval)
    assert paired.verdict == "lower" and paired.high < 0
    for test in ("difference", "overlap"):
        unpaired = compare(a, b, paired=False, interval=interval, test=test)
        assert unpaired.verdict == "not distinguishable" and unpaired.low < 0 < unpaired.high
    # the two marginal intervals overlap, as the constructed data intend
    sa, sb = summarise(a, interval=interval), summarise(b, interval=interval)
    assert sa.mean + sa.ci95 > sb.mean - sb.ci95


def test_every_verdict_is_reachable_and_antisymmetric():
    a, b = _paired_but_overlapping()
    assert compare(a, b, paired=True).verdict == "lower"
    assert compare(b, a, paired=True).verdict == "higher"
    assert compare(a, a + np.where(np.arange(a.size) % 2, 0.1, -0.1), paired=True).verdict == "not distinguishable"
    far = np.arange(20.0)
    for test in ("difference", "overlap"):
        assert compare(far, far + 100, paired=False, test=test).verdict == "lower"
        assert compare(far + 100, far, paired=False, test=test).verdict == "higher"
        assert compare(far, far + 1, paired=False, test=test).verdict == "not distinguishable"


def test_paired_intervals_equal_scipy_ttest_rel_and_welch_equals_ttest_ind():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 12), rng.normal(0.5, 2, 9)
    welch = compare(a, b, paired=False, interval="t")
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    normal = compare(a, b, paired=False)
    ha, hb = summarise(a).ci95, summarise(b).ci95
    assert normal.difference.ci95 == pytest.approx(math.hypot(ha, hb), rel=1e-12)
    c = rng.normal(0, 1, 12)
    paired = compare(a, c, paired=True, interval="t")
    ref = sp.ttest_rel(a, c).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_overlap_is_the_difference_test_with_summed_half_widths_and_is_more_conservative():
    # half-widths 1.96 · √(10/9) / √10 = 0.65 each: Welch's √2 · 0.65 = 0.92 < 1.1 < 2 · 0.65 = 1.31
    a = np.array([-1.0, 1.0] * 5)
    b = a[::-1] + 1.1
    sa, sb = summarise(a), summarise(b)
    welch = compare(a, b, paired=False)
    overlap = compare(a, b, paired=False, test="overlap")
    assert welch.difference.mean == overlap.difference.mean == pytest.approx(sa.mean - sb.mean)
    assert overlap.difference.ci95 == pytest.approx(sa.ci95 + sb.ci95)
    assert overlap.difference.ci95 > welch.difference.ci95
    assert welch.verdict == "lower" and overlap.verdict == "not distinguishable"


def _chapter_verdicts(a, b, diverged_above):
    """The chapters' own helpers, verbatim: the separate-interval test of chapters 1–3 and
    chapter 6's paired difference, each as it was before compare() existed."""
    sa, sb = summarise(a, diverged_above=diverged_above), summarise(b, diverged_above=diverged_above)
    if sa.mean + sa.ci95 < sb.mean - sb.ci95:
        overlap = "lower"
    elif sb.mean + sb.ci95 < sa.mean - sa.ci95:
        overlap = "higher"
    else:
        overlap = "not distinguishable"
    d = summarise(np.asarray(a) - np.asarray(b))
    paired = "lower" if d.mean + d.ci95 < 0 else "higher" if d.mean - d.ci95 > 0 else "not distinguishable"
    return overlap, paired


def _random_pair(seed):
    """Losses of two methods on n tasks, some diverged: paired (odd seeds) or independent draws."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    a = rng.lognormal(size=n)
    if seed % 2:
        b = a * rng.lognormal(rng.normal(0, 1.0), 0.3, size=n)
    else:
        b = rng.lognormal(rng.normal(0, 1.5), 1.0, size=n)
    a[rng.random(n) < 0.1] = np.nan
    b[rng.random(n) < 0.1] = np.inf
    return a, b


def test_the_random_pairs_reach_every_verdict_of_both_old_tests():
    seen = {_chapter_verdicts(*_random_pair(seed), 1e6) for seed in range(40)}
    for which in (0, 1):
        assert {v[which] for v in seen} == {"lower", "higher", "not distinguishable"}


@pytest.mark.parametrize("seed", range(40))
def test_compare_reproduces_each_chapters_old_verdict(seed):
    a, b = _random_pair(seed)
    overlap, paired = _chapter_verdicts(a, b, 1e6)
    assert compare(a, b, paired=False, test="overlap", diverged_above=1e6).verdict == overlap  # chapters 1-3
    assert compare(a, b, paired=True).verdict == paired  # chapter 6
    beats = compare(a, b, paired=False, test="overlap", diverged_above=1e6).verdict == "lower"
    assert beats == (overlap == "lower")  # chapter 1's boolean beats(a, b)


def test_diverged_values_are_counted_not_averaged():
    a, b = _paired_but_overlapping(n=30)
    a[3], b[7], a[11] = np.nan, np.inf, 1e9
    c = compare(a, b, paired=True, diverged_above=1e6)
    keep = np.ones(30, bool)
    keep[[3, 7, 11]] = False
    assert c.verdict == "lower"  # three diverged pairs do not poison the mean
    assert (c.difference.n, c.difference.n_diverged) == (27, 3)
    assert c.difference.mean == pytest.approx(float(np.mean(a[keep] - b[keep])), rel=1e-12)
    assert (c.a.n_diverged, c.b.n_diverged) == (2, 1)
    u = compare(a, b, paired=False, diverged_above=1e6)
    assert (u.difference.n, u.difference.n_diverged) == (57, 3)
    assert u.difference.mean == pytest.approx(float(np.mean(np.delete(a, [3, 11])) - np.mean(np.delete(b, 7))))
    everything = compare([np.nan, np.nan], [1.0, 2.0], paired=False)
    assert math.isnan(everything.difference.mean) and everything.verdict == "not distinguishable"


def test_comparison_is_frozen_and_prints_its_reading():
    a, b = _paired_but_overlapping()
    a[0] = np.nan
    c = compare(a, b, paired=True, interval="t")
    assert isinstance(c, Comparison) and c.paired and c.test == "difference" and c.interval == "t"
    text = str(c)
    assert text.startswith("lower (a − b = ") and "paired, t 95% CI" in text and "1 diverged left out" in text
    assert "separate intervals" in str(compare(a, b, paired=False, test="overlap"))
    with pytest.raises(AttributeError):
        c.verdict = "higher"


@pytest.mark.parametrize("kwargs, a, b, match", [
    (dict(paired=True), [1.0, 2.0, 3.0], [1.0, 2.0], "equal shapes"),
    (dict(paired=False), [], [1.0, 2.0], "non-empty"),
    (dict(paired=True), [1.0], [], "non-empty"),
    (dict(paired=False, interval="wilson"), [1.0, 2.0], [1.0, 2.0], "interval"),
    (dict(paired=False, test="t-test"), [1.0, 2.0], [1.0, 2.0], "test"),
    (dict(paired=True, test="overlap"), [1.0, 2.0], [1.0, 2.0], "pairing"),
    (dict(paired=1), [1.0, 2.0], [1.0, 2.0], "paired"),
    (dict(paired=False, diverged_above=-1.0), [1.0, 2.0], [1.0, 2.0], "diverged_above"),
])
def test_compare_rejects_bad_input(kwargs, a, b, match):
    with pytest.raises(ValueError, match=match):
        compare(a, b, **kwargs)


def test_compare_needs_paired_to_be_said():
    with pytest.raises(TypeError):
        compare([1.0, 2.0], [1.0, 2.0])  # paired is keyword-only and has no default: say which test


# ----------------------------------------------------------------------------- fitted_exponent
def test_fitted_exponent_recovers_a_power_law_and_equals_the_log_log_slope():
    from backprop2lib.stats import fitted_exponent

    P = [100, 400, 1600, 6400]
    assert fitted_exponent(P, [3e-4 * p ** 1.5 for p in P]) == pytest.approx(1.5, abs=1e-12)
    seconds = [0.011, 0.02, 0.09, 0.31]
    slow = np.cov(np.log(P), np.log(seconds))[0, 1] / np.var(np.log(P), ddof=1)  # least squares, by hand
    assert fitted_exponent(P, seconds) == pytest.approx(slow, rel=1e-12)
    assert fitted_exponent(np.array(P), tuple(seconds)) == fitted_exponent(P, seconds)


@pytest.mark.parametrize("x, y, match", [
    ([100], [0.1], "two distinct"), ([100, 100], [0.1, 0.2], "two distinct"), ([1, 2], [0.1], "shapes"),
    ([1, 2], [0.1, 0.0], "positive"), ([1, -2], [0.1, 0.2], "positive"), ([1, 2], [0.1, math.nan], "positive"),
])
def test_fitted_exponent_rejects_what_has_no_slope(x, y, match):
    from backprop2lib.stats import fitted_exponent

    with pytest.raises(ValueError, match=match):
        fitted_exponent(x, y)


# ------------------------------------------------------------------------------ over training seeds
from backprop2lib.stats import SeedSummary, compare_seeds, summarise_seeds  # noqa: E402


def _slow_seed_means(values, bound=np.inf):
    out = []
    for row in values:
        kept = [v for v in row if np.isfinite(v) and v <= bound]
        out.append(sum(kept) / len(kept) if kept else np.nan)
    return np.array(out)


def _slow_t_half_width(x):
    x = [v for v in x if np.isfinite(v)]
    n = len(x)
    m = sum(x) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1))
    return sp.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


def test_seed_summary_is_the_t_interval_of_the_per_seed_task_means():
    rng = np.random.default_rng(4)
    values = rng.normal(1.0, 0.3, size=(5, 40)) + rng.normal(0, 0.5, size=(5, 1))  # a seed effect
    values[2, 7] = np.nan
    values[4, :3] = 1e9  # diverged above the bound
    s = summarise_seeds(values, diverged_above=1e6)
    assert isinstance(s, SeedSummary) and s.n_seeds == 5 and s.n_diverged == 4
    ref = _slow_seed_means(values, 1e6)
    np.testing.assert_allclose(s.per_seed, ref)
    assert s.mean == pytest.approx(ref.mean())
    assert s.ci95 == pytest.approx(_slow_t_half_width(ref))
    # the across-seed interval is much wider than the pooled test-task one when seeds differ
    assert s.ci95 > 3 * s.tasks.ci95
    assert str(s).startswith(f"{s.mean:.3g} ± {s.ci95:.2g} over 5 seeds")


def test_a_seed_whose_every_task_diverged_is_left_out_and_one_seed_has_no_interval():
    values = np.array([[1.0, 2.0], [np.nan, np.inf], [3.0, 5.0]])
    s = summarise_seeds(values)
    assert s.n_seeds == 2 and np.isnan(s.per_seed[1]) and s.mean == pytest.approx((1.5 + 4.0) / 2)
    one = summarise_seeds(values[:1])
    assert one.mean == 1.5 and math.isnan(one.ci95)
    assert compare_seeds(values[:1], values[:1] + 1, paired=True).verdict == "not distinguishable"


def test_paired_seed_comparison_reads_the_t_interval_of_per_seed_mean_differences():
    rng = np.random.default_rng(7)
    seed_effect = rng.normal(0, 1.0, size=(4, 1))  # shared by both methods: pairing removes it
    b = 2.0 + seed_effect + rng.normal(0, 0.2, size=(4, 30))
    a = b - 0.3 + rng.normal(0, 0.05, size=(4, 30))
    a[1, 5] = np.nan  # that pair is left out of seed 1's mean difference
    c = compare_seeds(a, b, paired=True)
    both = np.isfinite(a) & np.isfinite(b)
    d = np.array([np.mean((a - b)[s][both[s]]) for s in range(4)])
    assert c.difference.mean == pytest.approx(d.mean())
    assert c.difference.ci95 == pytest.approx(_slow_t_half_width(d))
    assert c.difference.n_diverged == 1 and c.verdict == "lower"
    assert compare_seeds(b, a, paired=True).verdict == "higher"
    # unpaired, the shared seed effect swamps the difference
    unpaired = compare_seeds(a, b, paired=False)
    assert unpaired.verdict == "not distinguishable"
    ref = sp.ttest_ind(_slow_seed_means(a), _slow_seed_means(b), equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    assert unpaired.difference.mean - unpaired.difference.ci95 == pytest.approx(lo)
    assert unpaired.difference.mean + unpaired.difference.ci95 == pytest.approx(hi)


def test_seed_comparisons_reject_bad_shapes():
    with pytest.raises(ValueError, match=r"values: expected values \[seeds, test tasks\]"):
        summarise_seeds(np.ones(5))
    with pytest.raises(ValueError, match="paired values need one shape"):
        compare_seeds(np.ones((3, 4)), np.ones((3, 5)), paired=True)
    with pytest.raises(ValueError, match="paired: expected True or False"):
        compare_seeds(np.ones((3, 4)), np.ones((3, 4)), paired="yes")


def test_interval_text_is_the_one_way_intervals_are_written():
    from backprop2lib.stats import Summary, interval_text, summarise_seeds

    assert interval_text(Summary(0.123456, 0.0123, 5, 0)) == "0.123 ± 0.012"
    assert interval_text(Summary(0.123456, float("nan"), 1, 0)) == "0.123"  # one value: no interval to write
    assert interval_text(Summary(0.5, 0.05, 5, 2), ".1f", ".1f", scale=100) == "50.0 ± 5.0 (2 diverged)"
    assert interval_text(Summary(12.34, 1.4, 5, 0), "matched") == "12.3 ± 1.4"
    assert interval_text(Summary(0.002834, 0.000134, 5, 0), "matched") == "0.00283 ± 0.00013"
    assert interval_text(Summary(3.0, 0.0, 5, 0), "matched") == "3"
    seeds = summarise_seeds(np.array([[1.0, 2.0], [3.0, np.nan]]))
    text = interval_text(seeds, tasks=True)
    assert text.startswith(f"{seeds.mean:.3g} ± {seeds.ci95:.2g} (tasks ± {seeds.tasks.ci95:.2g})")
    assert text.endswith("(1 diverged)") and str(Summary(1.0, 0.5, 3, 0)) == "1 ± 0.5"
