import pytest
import torch

from backprop2lib.continual import ConsolidationState, learned_scale_prior, proximal_step
from backprop2lib.scale.regularisers import QuadraticRegulariser

D = torch.float64
R, P = 4, 6


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ proximal step

@pytest.mark.parametrize("strength", [1.0, 0.3])
@pytest.mark.parametrize("shared_mean", [False, True])
def test_proximal_step_is_the_implicit_step(strength, shared_mean):
    g = gen(0)
    shape = (P,) if shared_mean else (R, P)
    mean = torch.randn(shape, generator=g, dtype=D)
    variance = 0.05 + torch.rand(shape, generator=g, dtype=D)
    reg = QuadraticRegulariser(mean, variance, strength)
    v = torch.randn(R, P, generator=g, dtype=D)
    step = 0.37
    w = proximal_step(reg, v, step)
    assert w.shape == v.shape
    _, grad = reg.value_and_grad(w)
    # the optimality condition of argmin_w R(w) + |w - v|^2 / (2 step)
    torch.testing.assert_close((w - v) / step + grad, torch.zeros_like(v), rtol=0, atol=1e-12)

    # and w really is the minimiser: the proximal objective is larger at nearby points
    def objective(u):
        return reg.value_and_grad(u)[0] + ((u - v) ** 2).sum(-1) / (2 * step)

    for seed in range(3):
        nudged = w + 1e-3 * torch.randn(w.shape, generator=gen(10 + seed), dtype=D)
        assert bool((objective(nudged) > objective(w)).all())


def test_proximal_step_never_overshoots_where_an_explicit_step_does():
    g = gen(1)
    mean = torch.randn(R, P, generator=g, dtype=D)
    reg = QuadraticRegulariser(mean, torch.full((R, P), 1e-10, dtype=D), 1.0)  # stiffness k = 2c/σ² = 2e10
    v = mean + torch.randn(R, P, generator=g, dtype=D)
    step = 0.1  # step · k = 2e9, far beyond the explicit step's stability limit of 2
    w = proximal_step(reg, v, step)
    torch.testing.assert_close(w, mean, rtol=0, atol=1e-8)  # lands at the mean ...
    assert bool(((w - mean) * (v - mean) >= 0).all())  # ... from v's side: no overshoot
    assert bool(((w - mean).abs() <= (v - mean).abs()).all())
    # The explicit step v − step ∇R(v) moves to mean + (1 − step k)(v − mean): with step k > 2 it lands
    # further from the mean than it started, on the other side (and diverges when repeated).
    explicit = v - step * reg.value_and_grad(v)[1]
    assert bool(((explicit - mean).abs() > 1e6 * (v - mean).abs()).all())
    assert bool(((explicit - mean) * (v - mean) < 0).all())


def test_proximal_step_rejects_bad_input():
    reg = QuadraticRegulariser(torch.zeros(R, P, dtype=D), torch.ones(R, P, dtype=D), 1.0)
    v = torch.zeros(R, P, dtype=D)
    for step in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="step"):
            proximal_step(reg, v, step)
    with pytest.raises(ValueError, match="v: expected shape"):
        proximal_step(reg, torch.zeros(R, P + 1, dtype=D), 0.1)
    with pytest.raises(ValueError, match="v: expected shape"):
        proximal_step(reg, torch.zeros(R + 1, P, dtype=D), 0.1)


# -------------------------------------------------------------------------- consolidation state

def _tasks(seed: int, n_tasks: int = 3):
    g = gen(seed)
    precisions = [torch.rand(R, P, generator=g, dtype=D) * 3 for _ in range(n_tasks)]
    precisions[-1][:, 1:3] = 0.0  # parameters the latest task does not constrain
    for p in precisions:
        p[0, 0] = 0.0  # ... and one that no task constrains (total precision 0: no pull)
    anchors = [torch.randn(R, P, generator=g, dtype=D) for _ in range(n_tasks)]
    return precisions, anchors


def _explicit_penalty(theta, strength, online, gamma, precisions, anchors):
    """Σ_rows ½ λ Σ_k Σ_i (p_k,i / scale)(θ_i − a_k,i)², one quadratic per old task ("sum" rows), or
    ½ λ Σ_i (p̃_i / scale)(θ_i − a_latest,i)² with p̃ = γ(…(γ p_1 + p_2)…) + p_K ("online" rows);
    scale = the row's mean first-task precision."""
    total = theta.new_zeros(())
    for r in range(theta.shape[0]):
        scale = precisions[0][r].mean()
        if online[r]:
            running = torch.zeros(P, dtype=D)
            for p in precisions:
                running = gamma * running + p[r]
            total = total + 0.5 * strength[r] * ((running / scale) * (theta[r] - anchors[-1][r]) ** 2).sum()
        else:
            for p, a in zip(precisions, anchors):
                total = total + 0.5 * strength[r] * ((p[r] / scale) * (theta[r] - a[r]) ** 2).sum()
    return total


@pytest.mark.parametrize("n_tasks", [1, 2, 3])
def test_consolidation_state_equals_the_explicit_sum_of_quadratics(n_tasks):
    strength = torch.tensor([0.7, 2.0, 0.0, 1.3], dtype=D)  # row 2: plain SGD (λ = 0)
    online = torch.tensor([False, False, False, True])
    gamma = 0.6
    state = ConsolidationState(strength, online, gamma=gamma)
    assert state.regulariser() is None
    precisions, anchors = _tasks(2, n_tasks)
    for p, a in zip(precisions, anchors):
        state.add_task(p, a)
    reg = state.regulariser()
    assert isinstance(reg, QuadraticRegulariser)

    g = gen(3)
    for _ in range(2):
        theta = torch.randn(R, P, generator=g, dtype=D).requires_grad_(True)
        (want,) = torch.autograd.grad(_explicit_penalty(theta, strength, online, gamma, precisions, anchors), theta)
        _, got = reg.value_and_grad(theta.detach())
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        assert float(got[2].abs().max()) < 1e-20  # the λ = 0 row feels no pull at all

    # the values agree up to a constant in θ
    t1, t2 = torch.randn(R, P, generator=g, dtype=D), torch.randn(R, P, generator=g, dtype=D)
    for r in range(R):
        def explicit_row(t):
            return _explicit_penalty(t[r:r + 1], strength[r:r + 1], online[r:r + 1], gamma,
                                     [p[r:r + 1] for p in precisions], [a[r:r + 1] for a in anchors])
        got_diff = reg.value_and_grad(t1)[0][r] - reg.value_and_grad(t2)[0][r]
        torch.testing.assert_close(got_diff, explicit_row(t1) - explicit_row(t2), rtol=1e-10, atol=1e-12)


def test_strength_zero_rows_are_plain_sgd_through_the_proximal_step():
    strength = torch.tensor([0.0, 5.0])
    state = ConsolidationState(strength, torch.tensor([False, True]))
    g = gen(4)
    state.add_task(torch.rand(2, P, generator=g) * 100, torch.randn(2, P, generator=g))
    v = torch.randn(2, P, generator=g)
    w = proximal_step(state.regulariser(), v, 0.1)
    assert torch.equal(w[0], v[0])  # float32 too: the tiny stiffness rounds away exactly
    assert not torch.allclose(w[1], v[1])


def test_zero_first_task_precision_gives_no_pull():
    """A row whose first task constrains nothing (an sgd row at λ > 0) gets scale 1 and no penalty."""
    state = ConsolidationState(torch.tensor([1.5, 1.5], dtype=D), torch.tensor([False, False]))
    p = torch.rand(2, P, generator=gen(5), dtype=D)
    p[0] = 0.0
    state.add_task(p, torch.randn(2, P, generator=gen(6), dtype=D))
    assert torch.equal(state.scale[0], torch.ones(1, dtype=D))
    _, grad = state.regulariser().value_and_grad(torch.randn(2, P, generator=gen(7), dtype=D))
    assert float(grad[0].abs().max()) < 1e-20
    assert float(grad[1].abs().max()) > 1e-3


def test_consolidation_state_rejects_bad_input():
    strength, online = torch.tensor([1.0, 2.0]), torch.tensor([False, True])
    with pytest.raises(ValueError, match="strength: expected λ >= 0"):
        ConsolidationState(torch.tensor([1.0, -0.5]), online)
    with pytest.raises(ValueError, match="strength, online"):
        ConsolidationState(strength, torch.tensor([0, 1]))  # not booleans
    with pytest.raises(ValueError, match="strength, online"):
        ConsolidationState(strength, torch.tensor([False, True, False]))
    with pytest.raises(ValueError, match="gamma"):
        ConsolidationState(strength, online, gamma=1.5)
    state = ConsolidationState(strength, online)
    good = torch.ones(2, P)
    with pytest.raises(ValueError, match="rows \\[1\\] are negative"):
        state.add_task(torch.tensor([[1.0] * P, [1.0] * (P - 1) + [-1.0]]), good)
    bad_anchor = good.clone()
    bad_anchor[0, 3] = float("nan")
    with pytest.raises(ValueError, match="rows \\[0\\] are negative, NaN or inf"):
        state.add_task(good, bad_anchor)
    with pytest.raises(ValueError, match="precision, anchor: expected"):
        state.add_task(good, torch.ones(2, P + 1))
    with pytest.raises(ValueError, match="precision, anchor: expected"):
        state.add_task(torch.ones(3, P), torch.ones(3, P))  # R disagrees with the strengths
    assert state.precision is None  # nothing was remembered by the failed calls


# ---------------------------------------------------------------------- learned scale prior

def _population_variance(adapted):
    """Σ_k (w_k − mean)² / K, written out."""
    K = adapted.shape[0]
    mean = sum(adapted[k] for k in range(K)) / K
    return sum((adapted[k] - mean) ** 2 for k in range(K)) / K, mean


@pytest.mark.parametrize("floor_ratio", [1e-6, 0.05])
def test_learned_scale_prior_is_mean_and_floored_population_variance(floor_ratio):
    g = gen(8)
    K, rows, n = 5, 3, 7
    adapted = torch.randn(K, rows, n, generator=g, dtype=D) * torch.logspace(-3, 0, n, dtype=D)
    adapted[:, 0, 2] = 0.4  # never moved: the floor makes its precision large but finite
    prior = learned_scale_prior(adapted, floor_ratio=floor_ratio)
    variance, mean = _population_variance(adapted)
    floor = floor_ratio * variance.amax(-1, keepdim=True)
    torch.testing.assert_close(prior.mean, mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(prior.variance, torch.maximum(variance, floor), rtol=1e-10, atol=0)
    assert float(prior.variance[0, 2]) == pytest.approx(float(floor[0, 0]))
    assert prior.strength == 1.0
    if floor_ratio == 0.05:  # the floor binds somewhere besides the frozen parameter
        assert int((variance < floor).sum()) > 1
    # rows fitted together equal rows fitted one at a time
    for r in range(rows):
        alone = learned_scale_prior(adapted[:, r:r + 1], floor_ratio=floor_ratio)
        torch.testing.assert_close(alone.mean[0], prior.mean[r], rtol=0, atol=0)
        torch.testing.assert_close(alone.variance[0], prior.variance[r], rtol=0, atol=0)


def test_learned_scale_prior_rejects_bad_input():
    g = gen(9)
    with pytest.raises(ValueError, match="adapted: expected \\[K, R, P\\] with K >= 2"):
        learned_scale_prior(torch.randn(1, 2, 3, generator=g))
    with pytest.raises(ValueError, match="adapted: expected"):
        learned_scale_prior(torch.randn(4, 3, generator=g))
    for ratio in (0.0, 1.0, -1e-3):
        with pytest.raises(ValueError, match="floor_ratio"):
            learned_scale_prior(torch.randn(3, 2, 4, generator=g), floor_ratio=ratio)
    frozen = torch.randn(3, 2, 4, generator=g)
    frozen[:, 1] = frozen[0, 1]
    with pytest.raises(ValueError, match="rows \\[1\\] never varied"):
        learned_scale_prior(frozen)
