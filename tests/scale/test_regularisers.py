import math

import pytest
import torch

from backprop2lib.scale import (QUARTIC_VARIANTS, QuadraticRegulariser, QuarticRegulariser, quartic_inverse_scale,
                                quartic_minimum_distance)
from backprop2lib.scale.regularisers import A_MAX

D = torch.float64
P = 6


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mean_var_a(seed=0):
    g = gen(seed)
    mean = torch.randn(P, generator=g, dtype=D)
    variance = 0.1 + torch.rand(P, generator=g, dtype=D) * 2
    a = 0.2 + torch.rand(P, generator=g, dtype=D) * 3
    return mean, variance, a


def _quadratic_formula(w, mean, variance, c):
    """c Σ_i (w_i − μ_i)² / σ_i², one term at a time."""
    rows = w.reshape(-1, P)
    out = [sum(c * (float(r[i]) - float(mean[i])) ** 2 / float(variance[i]) for i in range(P)) for r in rows]
    return torch.tensor(out, dtype=D).reshape(w.shape[:-1])


def _quartic_formula(w, mean, a, c):
    """c Σ_i (a_i (w_i − μ_i)² − 1)², one term at a time."""
    rows = w.reshape(-1, P)
    out = [sum(c * (float(a[i]) * (float(r[i]) - float(mean[i])) ** 2 - 1) ** 2 for i in range(P)) for r in rows]
    return torch.tensor(out, dtype=D).reshape(w.shape[:-1])


def _make(kind, strength, seed=0):
    mean, variance, a = _mean_var_a(seed)
    if kind == "quadratic":
        return QuadraticRegulariser(mean, variance, strength), lambda w, c: _quadratic_formula(w, mean, variance, c)
    return QuarticRegulariser(mean, a, strength), lambda w, c: _quartic_formula(w, mean, a, c)


def _central_differences(f, w, eps=1e-6):
    """d(sum of f)/dw by central differences, one coordinate at a time."""
    out = torch.zeros_like(w)
    flat_w, flat_out = w.reshape(-1), out.reshape(-1)
    for k in range(flat_w.numel()):
        plus, minus = flat_w.clone(), flat_w.clone()
        plus[k] += eps
        minus[k] -= eps
        flat_out[k] = (f(plus.reshape(w.shape)).sum() - f(minus.reshape(w.shape)).sum()) / (2 * eps)
    return out


@pytest.mark.parametrize("kind", ["quadratic", "quartic"])
@pytest.mark.parametrize("shape", [(4, P), (P,)])
@pytest.mark.parametrize("strength", [0.37, torch.tensor(0.37, dtype=D)])
def test_value_and_gradient_match_formula_autograd_and_finite_differences(kind, shape, strength):
    reg, formula = _make(kind, strength)
    w = (reg.mean + 1.5 * torch.randn(shape, generator=gen(1), dtype=D)).requires_grad_(True)
    value, grad = reg.value_and_grad(w)
    assert value.shape == shape[:-1] and grad.shape == shape
    torch.testing.assert_close(value.detach(), formula(w.detach(), 0.37), rtol=1e-12, atol=1e-14)
    # tasks (rows) are independent: the gradient of the sum is each row's gradient
    ref = torch.autograd.grad(value.sum(), w)[0]
    torch.testing.assert_close(grad.detach(), ref, rtol=1e-12, atol=1e-14)
    fd = _central_differences(lambda v: reg.value_and_grad(v)[0], w.detach())
    torch.testing.assert_close(grad.detach(), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["quadratic", "quartic"])
def test_tensor_strength_is_differentiable(kind):
    """A strength the caller computed (a tensor) enters linearly: dR/dc = R / c."""
    c = torch.tensor(0.3, dtype=D, requires_grad=True)
    reg, _ = _make(kind, c)
    w = reg.mean + torch.randn(3, P, generator=gen(2), dtype=D)
    value, _ = reg.value_and_grad(w)
    (dc,) = torch.autograd.grad(value.sum(), c)
    torch.testing.assert_close(dc, value.sum().detach() / 0.3)


def test_quadratic_minimum_at_mean_and_quartic_bump_of_height_c_there():
    mean, variance, a = _mean_var_a(3)
    c = 0.05
    quad = QuadraticRegulariser(mean, variance, c)
    value, grad = quad.value_and_grad(mean)
    assert float(value) == 0.0 and bool((grad == 0).all())
    quartic = QuarticRegulariser(mean, a, c)
    value, grad = quartic.value_and_grad(mean)
    torch.testing.assert_close(value, torch.tensor(c * P, dtype=D))  # c per parameter at μ
    assert bool((grad == 0).all())
    # a local maximum: every small move off μ (along any coordinate) lowers R
    for i in range(P):
        for step in (1e-3, -1e-3):
            w = mean.clone()
            w[i] += step
            assert float(quartic.value_and_grad(w)[0]) < c * P


def test_quartic_minima_sit_at_one_over_sqrt_a_by_grid_search():
    mean, _, a = _mean_var_a(4)
    reg = QuarticRegulariser(mean, a, 0.1)
    distance = quartic_minimum_distance(a)
    torch.testing.assert_close(distance, 1 / a.sqrt())
    torch.testing.assert_close(reg.scale, distance)
    # dense 1-D grid per coordinate (the other coordinates sit at a minimum, so they add 0)
    offsets = torch.linspace(-4, 4, 80_001, dtype=D)  # spacing 1e-4
    for i in range(P):
        w = mean + distance  # every coordinate at its minimum
        w = w.expand(offsets.numel(), P).clone()
        w[:, i] = mean[i] + offsets
        values = reg.value_and_grad(w)[0]
        pos = offsets[offsets > 0][values[offsets > 0].argmin()]
        neg = offsets[offsets < 0][values[offsets < 0].argmin()]
        assert abs(float(pos) - 1 / math.sqrt(float(a[i]))) < 2e-4
        assert abs(float(neg) + 1 / math.sqrt(float(a[i]))) < 2e-4
        assert float(values.min()) < 1e-8  # the minima are zeros of R


def _deviations_with_spread(T=4000, spread=(0.3, 1.0, 2.5), seed=5):
    g = gen(seed)
    s = torch.tensor(spread, dtype=D)
    d = torch.randn(T, len(spread), generator=g, dtype=D) * s
    return d - d.mean(0)


def test_quartic_variants_put_minima_where_each_one_says():
    d = _deviations_with_spread()
    rms = d.pow(2).mean(0).sqrt()
    mad = d.abs().mean(0)
    consistent = quartic_minimum_distance(quartic_inverse_scale(d, "consistent"))
    torch.testing.assert_close(consistent, rms, rtol=1e-12, atol=0)
    # the drawn spreads are recovered (4000 draws: ~1% standard error)
    torch.testing.assert_close(consistent, torch.tensor([0.3, 1.0, 2.5], dtype=D), rtol=0.05, atol=0)
    type3 = quartic_minimum_distance(quartic_inverse_scale(d, "type3"))
    torch.testing.assert_close(type3, rms.sqrt(), rtol=1e-12, atol=0)  # √RMS, not the RMS
    type2 = quartic_minimum_distance(quartic_inverse_scale(d, "type2"))
    torch.testing.assert_close(type2, mad.sqrt(), rtol=1e-12, atol=0)  # √(mean |d|), not mean |d|
    # the √ discrepancy is real: type2/3 minima are far from the spread for a spread of 0.3 or 2.5
    assert abs(float(type3[0]) - float(rms[0])) > 0.2 and abs(float(type3[2]) - float(rms[2])) > 0.8
    ls = quartic_inverse_scale(d, "least_squares")
    torch.testing.assert_close(ls, d.pow(2).sum(0) / d.pow(4).sum(0), rtol=1e-12, atol=0)
    # least squares of a d² ≈ 1: the slope minimising Σ(a d² − 1)² per parameter, by a grid over a
    for i in range(3):
        grid = float(ls[i]) * torch.linspace(0.9, 1.1, 2001, dtype=D)
        sse = ((grid[:, None] * d[:, i].pow(2)[None] - 1) ** 2).sum(1)
        assert abs(float(grid[sse.argmin()]) / float(ls[i]) - 1) < 2e-4


@pytest.mark.parametrize("variant", QUARTIC_VARIANTS)
def test_never_varying_parameters_get_a_max_not_nan(variant):
    d = _deviations_with_spread(T=10)
    d = torch.cat([d, torch.zeros(10, 2, dtype=D)], dim=1)
    a = quartic_inverse_scale(d, variant)
    assert bool(torch.isfinite(a).all())
    assert float(a[3]) == A_MAX == float(a[4]) == 1e4
    assert bool((a[:3] < A_MAX).all())
    # and the fitted regulariser accepts it
    w = d + 1.0
    reg = QuarticRegulariser.fit(w, variant=variant)
    assert bool(torch.isfinite(reg.value_and_grad(w)[1]).all())


def test_type2_inverse_scale_is_capped_at_a_max():
    d = torch.tensor([[1e-6, 1.0], [-1e-6, -1.0]], dtype=D)
    a = quartic_inverse_scale(d, "type2")
    assert float(a[0]) == A_MAX and abs(float(a[1]) - 1.0) < 1e-12


def test_unknown_variant_and_bad_deviations():
    with pytest.raises(ValueError, match="variant"):
        quartic_inverse_scale(torch.zeros(3, 2), "type4")
    with pytest.raises(ValueError, match="deviations"):
        quartic_inverse_scale(torch.zeros(3), "consistent")
    with pytest.raises(ValueError, match="variant"):
        QuarticRegulariser.fit(torch.randn(3, 2), variant="Consistent")


def test_quadratic_fit_mean_population_variance_and_floor():
    g = gen(6)
    w = torch.randn(7, P, generator=g, dtype=D) * torch.linspace(0.01, 2, P, dtype=D) + 3
    reg = QuadraticRegulariser.fit(w, strength=0.2)
    n = w.shape[0]
    mean = w.sum(0) / n
    var = ((w - mean) ** 2).sum(0) / n  # ddof 0
    torch.testing.assert_close(reg.mean, mean)
    torch.testing.assert_close(reg.variance, var)
    torch.testing.assert_close(reg.scale, var.sqrt())
    assert reg.strength == 0.2
    floor = float(var[2])
    floored = QuadraticRegulariser.fit(w, floor=floor)
    torch.testing.assert_close(floored.variance, torch.maximum(var, torch.tensor(floor, dtype=D)))
    assert float(floored.variance[0]) == floor and float(floored.variance[-1]) == float(var[-1])


def test_quartic_fit_uses_deviations_from_the_task_mean():
    w = torch.randn(9, P, generator=gen(7), dtype=D) + 5
    for variant in QUARTIC_VARIANTS:
        reg = QuarticRegulariser.fit(w, variant=variant, strength=0.4)
        torch.testing.assert_close(reg.mean, w.mean(0))
        torch.testing.assert_close(reg.inverse_scale, quartic_inverse_scale(w - w.mean(0), variant))
        assert reg.strength == 0.4


def test_zero_variance_parameter_without_floor_raises_and_floor_fixes_it():
    w = torch.randn(5, P, generator=gen(8), dtype=D)
    w[:, 3] = 0.25  # never varies
    with pytest.raises(ValueError, match="variance"):
        QuadraticRegulariser.fit(w)
    reg = QuadraticRegulariser.fit(w, floor=1e-3)
    assert float(reg.variance[3]) == 1e-3
    with pytest.raises(ValueError, match="floor"):
        QuadraticRegulariser.fit(w, floor=-1.0)


@pytest.mark.parametrize("cls", [QuadraticRegulariser, QuarticRegulariser])
def test_fit_rejects_nan_and_too_few_tasks(cls):
    w = torch.randn(4, P, generator=gen(9), dtype=D)
    w[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"adapted.*task\(s\) \[2\]"):
        cls.fit(w)
    with pytest.raises(ValueError, match="adapted.*at least 2 tasks"):
        cls.fit(torch.randn(1, P, dtype=D))
    with pytest.raises(ValueError, match="adapted"):
        cls.fit(torch.randn(P, dtype=D))


def test_shape_and_value_errors_name_the_argument():
    mean, variance, a = _mean_var_a()
    with pytest.raises(ValueError, match=r"mean: expected a flat vector \[P\].* or \[T, P\]"):
        QuadraticRegulariser(mean[None, None], variance[None, None])
    with pytest.raises(ValueError, match=r"variance: expected shape \(1, 6\)"):
        QuadraticRegulariser(mean[None], variance)  # a [T, P] mean needs a [T, P] variance
    with pytest.raises(ValueError, match="variance"):
        QuadraticRegulariser(mean, variance[:-1])
    with pytest.raises(ValueError, match="inverse_scale"):
        QuarticRegulariser(mean, a[:-1])
    with pytest.raises(ValueError, match="inverse_scale"):
        QuarticRegulariser(mean, -a)
    with pytest.raises(ValueError, match="variance"):
        QuadraticRegulariser(mean, variance.clone().fill_(float("inf")))
    bad_mean = mean.clone()
    bad_mean[0] = float("nan")
    with pytest.raises(ValueError, match="mean"):
        QuadraticRegulariser(bad_mean, variance)
    reg = QuadraticRegulariser(mean, variance)
    with pytest.raises(ValueError, match="w: expected"):
        reg.value_and_grad(torch.zeros(3, P + 1, dtype=D))
    with pytest.raises(ValueError, match="w: expected"):
        QuarticRegulariser(mean, a).value_and_grad(torch.zeros(2, 3, P, dtype=D))


# ------------------------------------------------------- a mean per task: [T, P]
T = 5


def _per_task(kind, seed=10):
    """``(mean [T, P], variance or inverse scale [T, P], class)``: every task its own prior."""
    g = gen(seed)
    mean = torch.randn(T, P, generator=g, dtype=D)
    spread = 0.1 + 2 * torch.rand(T, P, generator=g, dtype=D)
    return mean, spread, QuadraticRegulariser if kind == "quadratic" else QuarticRegulariser


@pytest.mark.parametrize("kind", ["quadratic", "quartic"])
@pytest.mark.parametrize("strength", [0.37, torch.tensor(0.37, dtype=D)])
def test_per_task_mean_equals_one_shared_mean_object_per_row_and_autograd(kind, strength):
    mean, spread, cls = _per_task(kind)
    reg = cls(mean, spread, strength)
    w = (mean + 1.5 * torch.randn(T, P, generator=gen(11), dtype=D)).requires_grad_(True)
    value, grad = reg.value_and_grad(w)
    assert value.shape == (T,) and grad.shape == (T, P)
    for t in range(T):
        v, g = cls(mean[t], spread[t], strength).value_and_grad(w[t].detach())
        torch.testing.assert_close(value[t].detach(), v, rtol=1e-14, atol=0)
        torch.testing.assert_close(grad[t].detach(), g, rtol=1e-14, atol=1e-15)
    ref = torch.autograd.grad(value.sum(), w)[0]
    torch.testing.assert_close(grad.detach(), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["quadratic", "quartic"])
def test_take_equals_building_from_the_rows_and_a_shared_mean_is_its_own_take(kind):
    mean, spread, cls = _per_task(kind, seed=12)
    reg = cls(mean, spread, 0.2)
    rows = torch.tensor([3, 0, 3])
    taken = reg.take(rows)
    built = cls(mean[rows], spread[rows], 0.2)
    assert isinstance(taken, cls) and taken.strength == 0.2
    for name in ("mean", "scale"):
        assert torch.equal(getattr(taken, name), getattr(built, name))
    w = mean[rows] + torch.randn(3, P, generator=gen(13), dtype=D)
    for got, want in zip(taken.value_and_grad(w), built.value_and_grad(w)):
        assert torch.equal(got, want)
    shared = cls(mean[0], spread[0], 0.2)
    assert shared.take(rows) is shared


@pytest.mark.parametrize("kind", ["quadratic", "quartic"])
def test_per_task_shapes_are_checked_and_named(kind):
    mean, spread, cls = _per_task(kind, seed=14)
    companion = "variance" if kind == "quadratic" else "inverse_scale"
    with pytest.raises(ValueError, match=rf"{companion}: expected shape \({T}, {P}\)"):
        cls(mean, spread[0])
    with pytest.raises(ValueError, match=rf"{companion}: expected shape \({T}, {P}\)"):
        cls(mean, spread[:-1])
    bad = mean.clone()
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="mean: contains NaN or inf"):
        cls(bad, spread)
    reg = cls(mean, spread)
    for w in (torch.zeros(T + 1, P, dtype=D), torch.zeros(P, dtype=D), torch.zeros(T, P + 1, dtype=D),
              torch.zeros(2, T, P, dtype=D)):
        with pytest.raises(ValueError, match=rf"w: expected \[T, P\] = \({T}, {P}\)"):
            reg.value_and_grad(w)


def test_per_task_zero_variance_names_the_task_and_parameter():
    mean, variance, _ = _per_task("quadratic", seed=15)
    variance = variance.clone()
    variance[3, 4] = 0.0
    with pytest.raises(ValueError, match=r"variance: must be positive.*\(task, parameter\).*\[\(3, 4\)\]"):
        QuadraticRegulariser(mean, variance)
    variance[3, 4] = float("inf")
    with pytest.raises(ValueError, match="variance: must be positive and finite.*inf/NaN"):
        QuadraticRegulariser(mean, variance)
    with pytest.raises(ValueError, match="inverse_scale: every a_i must be positive"):
        QuarticRegulariser(mean, -variance.abs())
