import math

import pytest
import torch

from backprop2lib.optim import LineSearch, line_search

D = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _quadratics(T=6, P=2, seed=0):
    """E_t(w) = ½ h_t ‖w − w*_t‖², a different curvature per task; w, −grad, grad, E(w)."""
    g = gen(seed)
    h = torch.exp(torch.linspace(math.log(0.05), math.log(20.0), T, dtype=D))
    w_star = torch.randn(T, P, generator=g, dtype=D)
    w = w_star + torch.randn(T, P, generator=g, dtype=D)

    def error(v):
        return 0.5 * h * (v - w_star).pow(2).sum(-1)

    grad = h[:, None] * (w - w_star)
    return h, error, w, grad


@pytest.mark.parametrize("P", [1, 2])
def test_steps_land_within_a_factor_one_over_beta_of_the_exact_minimiser(P):
    """Along −grad, a quadratic's error is minimised at s = 1/h; warm starts far too large and far too small."""
    h, error, w, grad = _quadratics(P=P)
    T = h.shape[0]
    settings = LineSearch(max_its=40)
    for factor in (1e-3, 0.3, 1.0, 3.0, 1e3):
        s0 = factor / h
        s, e, n = line_search(error, w, -grad, grad, error(w), s0, settings)
        assert n <= settings.max_its + 1
        ratio = s * h  # the chosen step over the exact one
        assert bool(((ratio >= settings.beta) & (ratio <= 1 / settings.beta)).all()), (factor, ratio)
        torch.testing.assert_close(e, error(w + s[:, None] * -grad), rtol=0, atol=0)
        assert bool((e < error(w)).all())
        if factor >= 3:
            assert bool((s < s0).all())  # shrank
        if factor <= 0.3:
            assert bool((s > s0).all())  # grew
    assert T == 6


@pytest.mark.parametrize("beta", [0.5, 0.8])
def test_accepted_steps_pass_the_armijo_test_when_alpha_allows(beta):
    """On a quadratic, s·h <= 2/(1+β) after the search, and Armijo holds iff s·h <= 2(1 − α):
    with α <= β/(1+β) every accepted step passes the test."""
    alpha = beta / (1 + beta) - 0.01
    h, error, w, grad = _quadratics(T=8, seed=1)
    settings = LineSearch(alpha=alpha, beta=beta, max_its=80)
    e0 = error(w)
    for factor in (1e-2, 0.4, 0.9, 1.1, 1.7, 1e2):
        s, e, _ = line_search(error, w, -grad, grad, e0, factor / h, settings)
        decrease = e0 - e
        armijo = alpha * s * (grad * grad).sum(-1)
        assert bool((decrease >= armijo).all()), factor
        assert bool((s * h <= 2 / (1 + beta) + 1e-12).all())


def test_default_alpha_can_keep_a_step_that_fails_armijo_as_specified():
    """backprop2's rule, faithfully: a shrink that passes the test but makes the error worse is undone.

    h = 1, s = 1.2 fails Armijo (α = 0.5 needs s <= 1), s = 0.6 passes but has a larger error
    (|0.6 − 1| > |1.2 − 1|), so the search keeps 1.2. The same happens growing from 0.6."""
    w, w_star = torch.ones(2, 1, dtype=D), torch.zeros(2, 1, dtype=D)

    def error(v):
        return 0.5 * (v - w_star).pow(2).sum(-1)

    grad = w - w_star
    s, e, _ = line_search(error, w, -grad, grad, error(w), torch.tensor([1.2, 0.6], dtype=D))
    torch.testing.assert_close(s, torch.tensor([1.2, 1.2], dtype=D))
    # the kept step is the better of the two grid points, though it fails Armijo
    assert float(error(w - 1.2 * grad)[0]) < float(error(w - 0.6 * grad)[0])
    assert not bool((error(w) - e >= 0.5 * s * (grad * grad).sum(-1)).any())


def test_batched_equals_one_task_at_a_time():
    h, error, w, grad = _quadratics(T=7, seed=2)
    s0 = torch.tensor([1e-3, 0.1, 1.0, 10.0, 100.0, 0.05, 3.0], dtype=D)
    e0 = error(w)
    s, e, _ = line_search(error, w, -grad, grad, e0, s0, LineSearch(max_its=20))
    for t in range(7):
        def one(v, t=t):
            return 0.5 * h[t] * (v - (w[t] - grad[t] / h[t])).pow(2).sum(-1)

        s1, e1, _ = line_search(one, w[t:t + 1], -grad[t:t + 1], grad[t:t + 1], e0[t:t + 1], s0[t:t + 1],
                                LineSearch(max_its=20))
        assert float(s1) == float(s[t])
        assert float(e1) == pytest.approx(float(e[t]), rel=1e-14, abs=1e-300)


def test_batched_equals_one_task_at_a_time_on_a_nonconvex_function():
    """A wiggly 1-D function: many local minima along the line; identical per-task choices."""
    T = 5
    g = gen(3)
    w = torch.randn(T, 3, generator=g, dtype=D)
    freq = torch.linspace(1, 4, T, dtype=D)

    def error_rows(v, f):
        return 0.1 * v.pow(2).sum(-1) + torch.sin(f[:, None] * v).sum(-1)

    error = lambda v: error_rows(v, freq)  # noqa: E731
    v = w.clone().requires_grad_(True)
    grad = torch.autograd.grad(error(v).sum(), v)[0]
    s0 = torch.full((T,), 0.3, dtype=D)
    s, e, _ = line_search(error, w, -grad, grad, error(w), s0)
    for t in range(T):
        s1, e1, _ = line_search(lambda u, t=t: error_rows(u, freq[t:t + 1]), w[t:t + 1], -grad[t:t + 1],
                                grad[t:t + 1], error(w)[t:t + 1], s0[t:t + 1])
        assert float(s1) == float(s[t]) and float(e1) == float(e[t])
    torch.testing.assert_close(e, error(w + s[:, None] * -grad), rtol=0, atol=0)


def test_overflowing_long_steps_still_give_finite_results():
    """inf for long steps (task 0), NaN for long steps (task 1): the search backs off to finite ones."""
    h, error, w, grad = _quadratics(T=3, seed=4)

    def fragile(v):
        e = error(v)
        far = (v - w).norm(dim=-1) > 0.5 * (grad.norm(dim=-1) / h)  # half the exact step is the limit
        e = torch.where(far & (torch.arange(3) == 0), torch.full_like(e, float("inf")), e)
        return torch.where(far & (torch.arange(3) >= 1), torch.full_like(e, float("nan")), e)

    e0 = error(w)
    s, e, _ = line_search(fragile, w, -grad, grad, e0, 100 / h, LineSearch(max_its=30))
    assert bool(torch.isfinite(s).all() & torch.isfinite(e).all())
    assert bool((s > 0).all() & (s * h <= 0.5).all())
    assert bool((e < e0).all())
    torch.testing.assert_close(e, fragile(w + s[:, None] * -grad), rtol=0, atol=0)


def test_every_trial_non_finite_gives_no_step():
    h, error, w, grad = _quadratics(T=3, seed=5)
    calls = []

    def broken(v):
        calls.append(v.clone())
        e = error(v)
        # task 1 is never finite anywhere off w; the others are fine
        return torch.where(torch.arange(3) == 1, torch.full_like(e, float("nan")), e)

    e0 = error(w)
    s, e, n = line_search(broken, w, -grad, grad, e0, torch.full((3,), 0.1, dtype=D), LineSearch(max_its=6))
    assert float(s[1]) == 0.0 and float(e[1]) == float(e0[1])
    assert bool((s[[0, 2]] > 0).all()) and bool(torch.isfinite(e).all())
    assert n == len(calls) <= 7
    everything_inf = lambda v: torch.full(v.shape[:1], float("inf"), dtype=D)  # noqa: E731
    s, e, _ = line_search(everything_inf, w, -grad, grad, e0, torch.full((3,), 0.1, dtype=D))
    assert bool((s == 0).all()) and torch.equal(e, e0)


def test_zero_gradient_takes_the_warm_start_and_does_not_move():
    w = torch.randn(2, 3, dtype=D)
    zero = torch.zeros_like(w)
    const = lambda v: torch.full(v.shape[:1], 2.0, dtype=D)  # noqa: E731
    s, e, n = line_search(const, w, zero, zero, torch.full((2,), 2.0, dtype=D), torch.full((2,), 0.1, dtype=D))
    torch.testing.assert_close(s, torch.full((2,), 0.1, dtype=D))
    assert n == 2  # the warm start and one growth that did not help


def test_initial_step_sizes():
    s = LineSearch(s0=0.25).initial(4, dtype=D)
    assert s.shape == (4,) and s.dtype == D and bool((s == 0.25).all())
    assert LineSearch() == LineSearch(s0=0.1, alpha=0.5, beta=0.5, max_its=15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(s0=0.0), "s0"),
        (dict(s0=-1.0), "s0"),
        (dict(s0=float("nan")), "s0"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.0), "alpha"),
        (dict(beta=0.0), "beta"),
        (dict(beta=1.0), "beta"),
        (dict(max_its=0), "max_its"),
        (dict(max_its=2.0), "max_its"),
    ],
)
def test_settings_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LineSearch(**kwargs)


def test_shape_errors():
    h, error, w, grad = _quadratics(T=3)
    s0, e0 = torch.full((3,), 0.1, dtype=D), error(w)
    with pytest.raises(ValueError, match="w, delta, grad"):
        line_search(error, w[0], -grad[0], grad[0], e0, s0)
    with pytest.raises(ValueError, match="w, delta, grad"):
        line_search(error, w, -grad[:, :1], grad, e0, s0)
    with pytest.raises(ValueError, match="w, delta, grad"):
        line_search(error, w, -grad, grad[:2], e0, s0)
    with pytest.raises(ValueError, match="error0, s"):
        line_search(error, w, -grad, grad, e0[:2], s0)
    with pytest.raises(ValueError, match="error0, s"):
        line_search(error, w, -grad, grad, e0, s0[None])


def test_evaluating_only_the_searching_rows_gives_the_same_result():
    """``error_rows`` (used once most tasks have finished searching) changes cost, not results."""
    h, error, w, grad = _quadratics(T=9, seed=4)
    s0 = torch.tensor([1e-4, 1e-3, 0.1, 1.0, 10.0, 100.0, 0.05, 3.0, 1e3], dtype=D)  # very different searches
    e0 = error(w)
    w_star = w - grad / h[:, None]
    calls = []

    def rows_error(v, rows):
        calls.append(len(rows))
        return 0.5 * h[rows] * (v - w_star[rows]).pow(2).sum(-1)

    full = line_search(error, w, -grad, grad, e0, s0, LineSearch(max_its=20))
    subset = line_search(error, w, -grad, grad, e0, s0, LineSearch(max_its=20), error_rows=rows_error)
    assert torch.equal(full[0], subset[0]) and torch.equal(full[1], subset[1]) and full[2] == subset[2]
    assert calls and max(calls) <= 4  # used, and only for at most half of the 9 tasks
