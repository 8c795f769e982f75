import math

import pytest
import torch

from backprop2lib.scale import EveRates
from backprop2lib.scale.eve import RELATIVE_FLOOR

D = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _adapted(T=6, spreads=(0.5, 2.0, 1e-5, 1.0), seed=0):
    g = gen(seed)
    return 1.0 + torch.randn(T, len(spreads), generator=g, dtype=D) * torch.tensor(spreads, dtype=D)


def test_fit_mean_population_variance_and_relative_floor():
    w = _adapted()
    eve = EveRates.fit(w)
    n = w.shape[0]
    mean = w.sum(0) / n
    var = ((w - mean) ** 2).sum(0) / n
    torch.testing.assert_close(eve.mean, mean)
    floor = float(var.max()) * 1e-6
    assert RELATIVE_FLOOR == 1e-6
    assert float(var[2]) < floor  # the tiny spread is below the floor ...
    assert float(eve.variance[2]) == pytest.approx(floor, rel=1e-12)  # ... and clipped to max σ² / 1e6
    for i in (0, 1, 3):
        assert float(eve.variance[i]) == pytest.approx(float(var[i]), rel=1e-12)
    torch.testing.assert_close(eve.scale, eve.variance.sqrt())
    assert eve.decay == 0.2
    assert EveRates.fit(w, decay=0.7).decay == 0.7
    custom = EveRates.fit(w, relative_floor=0.1)
    assert float(custom.variance.min()) == pytest.approx(0.1 * float(var.max()), rel=1e-12)


def test_fit_takes_the_mean_over_tasks():
    w = _adapted()
    torch.testing.assert_close(EveRates.fit(w).mean, w.mean(0))


def test_base_rates_have_mean_one_and_are_proportional_to_variance():
    eve = EveRates.fit(_adapted(seed=1))
    lam = eve.base_rates
    assert float(lam.mean()) == pytest.approx(1.0, rel=1e-12)
    torch.testing.assert_close(lam / eve.variance, torch.full_like(lam, float(lam[0] / eve.variance[0])))
    assert int(lam.argmax()) == 1 and int(lam.argmin()) == 2  # the widest-varying parameter moves fastest


@pytest.mark.parametrize("decay", [0.0, 0.2, 1.3])
def test_rates_formula_per_element(decay):
    eve = EveRates.fit(_adapted(seed=2), decay=decay)
    w = torch.randn(3, 4, generator=gen(3), dtype=D) * 2
    rates = eve.rates(w)
    assert rates.shape == (3, 4)
    lam_mean = sum(float(v) for v in eve.variance) / 4
    for t in range(3):
        for i in range(4):
            d = float(w[t, i]) - float(eve.mean[i])
            var = float(eve.variance[i])
            expected = var / lam_mean * math.exp(-decay * d * d / var)
            assert float(rates[t, i]) == pytest.approx(expected, rel=1e-12)
    torch.testing.assert_close(eve.rates(w[0]), rates[0])  # [P] input too


def test_envelope_values_at_one_two_three_four_sigma():
    eve = EveRates.fit(_adapted(seed=4))
    envelope = {1: 0.82, 2: 0.45, 3: 0.17, 4: 0.04}
    for k, documented in envelope.items():
        w = eve.mean + k * eve.scale
        ratio = eve.rates(w) / eve.base_rates
        assert torch.allclose(ratio, torch.full_like(ratio, ratio[0].item()))  # the same at kσ for every i
        assert round(float(ratio[0]), 2) == documented
        assert round(float((eve.rates(eve.mean - k * eve.scale) / eve.base_rates)[0]), 2) == documented
    torch.testing.assert_close(eve.rates(eve.mean), eve.base_rates)  # full rate at μ


def test_decay_is_a_parameter():
    w = _adapted(seed=5)
    slow, fast = EveRates.fit(w, decay=0.05), EveRates.fit(w, decay=0.8)
    at = slow.mean + 2 * slow.scale
    assert bool((fast.rates(at) < slow.rates(at)).all())
    torch.testing.assert_close(EveRates.fit(w, decay=0.0).rates(at), slow.base_rates)


def test_convergence_metric():
    eve = EveRates.fit(_adapted(seed=6))
    w = torch.randn(5, 4, generator=gen(7), dtype=D)
    metric = eve.convergence(w)
    assert metric.shape == (5,)
    for t in range(5):
        expected = sum(abs(float(w[t, i] - eve.mean[i])) / math.sqrt(float(eve.variance[i])) for i in range(4)) / 4
        assert float(metric[t]) == pytest.approx(expected, rel=1e-12)
    assert float(eve.convergence(eve.mean + 3 * eve.scale)) == pytest.approx(3.0, rel=1e-12)


def test_errors():
    same = torch.ones(4, 3, dtype=D)
    with pytest.raises(ValueError, match="no parameter varies"):
        EveRates.fit(same)
    w = _adapted()
    with pytest.raises(ValueError, match="decay"):
        EveRates.fit(w, decay=-0.1)
    with pytest.raises(ValueError, match="decay"):
        EveRates.fit(w, decay=float("nan"))
    bad = w.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="adapted.*NaN"):
        EveRates.fit(bad)
    with pytest.raises(ValueError, match="adapted"):
        EveRates.fit(w[:1])
    with pytest.raises(ValueError, match="adapted"):
        EveRates.fit(w[0])
    with pytest.raises(ValueError, match="variance"):
        EveRates(torch.zeros(3, dtype=D), torch.tensor([1.0, 0.0, 1.0], dtype=D))
    with pytest.raises(ValueError, match="mean, variance"):
        EveRates(torch.zeros(3, dtype=D), torch.ones(4, dtype=D))


# ------------------------------------------------------- a mean per task: [T, P]
def _per_task(T=5, P=4, seed=20):
    """``(mean [T, P], variance [T, P])``: every task its own Eve prior, variances over three decades."""
    g = gen(seed)
    return torch.randn(T, P, generator=g, dtype=D), 10 ** (3 * torch.rand(T, P, generator=g, dtype=D) - 2)


def test_per_task_mean_equals_one_shared_mean_object_per_row():
    mean, variance = _per_task()
    eve = EveRates(mean, variance, decay=0.35)
    w = mean + 2 * torch.randn(mean.shape, generator=gen(21), dtype=D)
    rates, convergence = eve.rates(w), eve.convergence(w)
    assert rates.shape == mean.shape and convergence.shape == (mean.shape[0],)
    for t in range(mean.shape[0]):
        row = EveRates(mean[t], variance[t], decay=0.35)
        torch.testing.assert_close(eve.base_rates[t], row.base_rates, rtol=1e-14, atol=0)
        torch.testing.assert_close(rates[t], row.rates(w[t]), rtol=1e-14, atol=0)
        torch.testing.assert_close(convergence[t], row.convergence(w[t]), rtol=1e-14, atol=0)
        torch.testing.assert_close(eve.scale[t], row.scale, rtol=0, atol=0)
        # λ is normalised per task (mean 1 over the row's parameters), not over the whole [T, P]
        assert float(eve.base_rates[t].mean()) == pytest.approx(1.0, rel=1e-12)


def test_take_equals_building_from_the_rows_and_a_shared_mean_is_its_own_take():
    mean, variance = _per_task(seed=22)
    eve = EveRates(mean, variance, decay=0.5)
    rows = torch.tensor([4, 1, 1])
    taken, built = eve.take(rows), EveRates(mean[rows], variance[rows], decay=0.5)
    assert isinstance(taken, EveRates) and taken.decay == 0.5
    w = mean[rows] + torch.randn(3, 4, generator=gen(23), dtype=D)
    for name in ("mean", "variance", "base_rates"):
        assert torch.equal(getattr(taken, name), getattr(built, name))
    assert torch.equal(taken.rates(w), built.rates(w)) and torch.equal(taken.convergence(w), built.convergence(w))
    shared = EveRates(mean[0], variance[0])
    assert shared.take(rows) is shared


def test_per_task_shapes_are_checked_and_named():
    mean, variance = _per_task(seed=24)
    with pytest.raises(ValueError, match=r"mean, variance: expected two tensors of equal shape"):
        EveRates(mean, variance[0])
    with pytest.raises(ValueError, match=r"mean, variance: expected two tensors of equal shape"):
        EveRates(mean[None], variance[None])
    eve = EveRates(mean, variance)
    for w in (torch.zeros(6, 4, dtype=D), torch.zeros(4, dtype=D), torch.zeros(5, 3, dtype=D)):
        with pytest.raises(ValueError, match=r"w: expected \[T, P\] = \(5, 4\)"):
            eve.rates(w)
        with pytest.raises(ValueError, match=r"w: expected \[T, P\] = \(5, 4\)"):
            eve.convergence(w)
    with pytest.raises(ValueError, match=r"w: expected \[P\] or \[T, P\] with P = 4"):
        EveRates(mean[0], variance[0]).rates(torch.zeros(2, 5, dtype=D))
