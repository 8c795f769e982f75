import itertools
import math

import numpy as np
import pytest

from backprop2lib.stats import permutation_p_value, rank_correlation


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
