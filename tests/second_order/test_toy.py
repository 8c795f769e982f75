"""The cubic model behind the inflection-point argument, and the toy step rules."""

import math

import pytest
import torch

from backprop2lib.second_order.toy import (CUBIC_THRESHOLDS, ToyMethod, concave_points, cubic, cubic_outcomes,
                                           cubic_u, derivatives, double_well, himmelblau, saddle_well,
                                           toy_step, trajectories)
from backprop2lib.tasks.plane_wave import plane_wave


@pytest.mark.parametrize("u", [0.0, 0.3, 1.0, 2.5, 3.0, 4.0, 7.0, 9.0, 15.0])
@pytest.mark.parametrize("g,lam", [(-1.0, -2.0), (0.5, -0.3)])
def test_cubic_closed_forms_match_direct_evaluation(u, g, lam):
    # orient so that downhill is +x: for g > 0 mirror the cubic (x -> -x flips g and t)
    t = u * lam ** 2 / abs(g) * (1 if g < 0 else -1)
    f = cubic(g, lam, t)
    out = cubic_outcomes(u)
    down = -math.copysign(1.0, g)
    x_abs, x_newton = down * abs(g) / abs(lam), -down * abs(g) / abs(lam)
    unit = g * g / abs(lam)
    assert f(x_abs) / unit == pytest.approx(out.abs_change, abs=1e-12)
    assert f(x_newton) / unit == pytest.approx(out.newton_change, abs=1e-12)
    x_inflection = abs(lam) / abs(t) if t else math.inf
    if t:
        # the minimiser: slope zero with positive curvature, downhill of the start
        x_star = out.minimiser * x_inflection
        slope = g + lam * (down * x_star) + 0.5 * t * x_star ** 2
        curvature = lam + t * down * x_star
        assert slope == pytest.approx(0.0, abs=1e-9) and curvature > 0
        assert out.abs_step == pytest.approx((abs(g) / abs(lam)) / x_inflection)


def test_cubic_thresholds_are_where_the_closed_forms_change_sign():
    eps = 1e-6
    assert cubic_outcomes(CUBIC_THRESHOLDS["abs step raises f"] - eps).abs_change < 0
    assert cubic_outcomes(CUBIC_THRESHOLDS["abs step raises f"] + eps).abs_change > 0
    assert cubic_outcomes(CUBIC_THRESHOLDS["plain Newton raises f"] - eps).newton_change > 0
    assert cubic_outcomes(CUBIC_THRESHOLDS["plain Newton raises f"] + eps).newton_change < 0
    u4 = CUBIC_THRESHOLDS["abs step overshoots the minimiser"]
    assert cubic_outcomes(u4 - eps).abs_step < cubic_outcomes(u4 - eps).minimiser
    assert cubic_outcomes(u4 + eps).abs_step > cubic_outcomes(u4 + eps).minimiser
    assert cubic_outcomes(0.5).region.startswith("before")
    assert cubic_outcomes(2.0).region.startswith("between")
    assert cubic_outcomes(5.0).region.startswith("past")
    with pytest.raises(ValueError, match="u"):
        cubic_outcomes(-1.0)


def test_derivatives_match_hand_formulas():
    x = torch.tensor([[0.3, -0.7], [1.2, 0.4]], dtype=torch.float64)
    f, g, H = derivatives(saddle_well, x)
    a, b = x[:, 0], x[:, 1]
    torch.testing.assert_close(f, a ** 4 / 4 - a ** 2 / 2 + b ** 2 / 2)
    torch.testing.assert_close(g, torch.stack([a ** 3 - a, b], -1))
    H_ref = torch.zeros(2, 2, 2, dtype=torch.float64)
    H_ref[:, 0, 0] = 3 * a ** 2 - 1
    H_ref[:, 1, 1] = 1
    torch.testing.assert_close(H, H_ref)
    with pytest.raises(ValueError, match="x"):
        derivatives(saddle_well, torch.zeros(3))


def test_toy_steps_match_their_formulas_on_the_double_well():
    x = torch.tensor([[0.2], [-0.3], [0.9]], dtype=torch.float64)
    g = x ** 3 - x
    h = 3 * x ** 2 - 1
    newton = toy_step(ToyMethod("N", "newton"), double_well, x)
    absolute = toy_step(ToyMethod("A", "backprop2"), double_well, x)
    gd = toy_step(ToyMethod("GD", "gd", lr=0.1), double_well, x)
    torch.testing.assert_close(newton, x - g / h)
    torch.testing.assert_close(absolute, x - g / h.abs())
    torch.testing.assert_close(gd, x - 0.1 * g)
    # in the concave region plain Newton climbs to the maximum at 0, the |λ| step goes downhill
    f0 = double_well(x[:2])
    assert (double_well(newton[:2]) > f0).all() and (double_well(absolute[:2]) < f0).all()


def test_cubic_u_on_the_double_well():
    x = torch.tensor([[0.2], [-0.1]], dtype=torch.float64)
    c = cubic_u(double_well, x)
    g, lam, t3 = x ** 3 - x, 3 * x ** 2 - 1, 6 * x
    # downhill direction is -sign(g); the third derivative along it is t3 * (-sign g)
    expected = (t3 * -torch.sign(g)) * g.abs() / lam ** 2
    torch.testing.assert_close(c["u"], expected.squeeze(-1))


def test_trajectories_and_concave_points():
    starts = torch.tensor([[0.1, 0.5], [-0.2, -1.0]], dtype=torch.float64)
    path = trajectories(ToyMethod("sf", "saddle_free", damping=1e-3), saddle_well, starts, 30)
    assert path.shape == (31, 2, 2)
    # saddle-free Newton leaves the saddle for the minima at (±1, 0)
    torch.testing.assert_close(path[-1].abs(), torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64),
                               atol=1e-3, rtol=0)
    pts = concave_points(himmelblau, (-5, -5), (5, 5), 21)
    assert len(pts) > 0
    _, _, H = derivatives(himmelblau, pts)
    assert (torch.linalg.eigvalsh(H)[:, 0] < 0).all()


def test_plane_wave_is_seeded_and_checks_arguments():
    x1, y1 = plane_wave(50, seed=3)
    x2, y2 = plane_wave(50, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (50, 2) and y1.shape == (50, 1)
    assert (x1.abs() <= 2).all()
    _, y0 = plane_wave(50, seed=3, noise=0.0)
    assert (y0.abs() <= 1 + 1e-6).all() and not torch.equal(y0, y1)
    with pytest.raises(ValueError, match="n_points"):
        plane_wave(0)
    with pytest.raises(ValueError, match="noise"):
        plane_wave(5, noise=-1.0)


def test_classify_endpoints_reads_the_gradient_and_the_smallest_eigenvalue():
    from backprop2lib.second_order.toy import classify_endpoints, double_well, saddle_well

    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.5, 0.5], [1.0 + 1e-6, 0.0]], dtype=torch.float64)
    assert classify_endpoints(saddle_well, x) == ["saddle or maximum", "minimum", "minimum", "not stationary",
                                                  "minimum"]
    # the double well's maximum at 0 is "saddle or maximum"; a loose tolerance counts a nearby point as stationary
    assert classify_endpoints(double_well, torch.tensor([[0.0], [0.3]], dtype=torch.float64)) == [
        "saddle or maximum", "not stationary"]
    assert classify_endpoints(double_well, torch.tensor([[0.3]], dtype=torch.float64), grad_tol=1.0) == [
        "saddle or maximum"]
    with pytest.raises(ValueError, match="grad_tol"):
        classify_endpoints(double_well, torch.tensor([[0.3]], dtype=torch.float64), grad_tol=0.0)
