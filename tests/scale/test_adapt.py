import pytest
import torch

from backprop2lib.models import MLP
from backprop2lib.scale import (EveRates, InnerLoop, QuadraticRegulariser, QuarticRegulariser, adapt,
                                adapt_one_at_a_time, error, error_and_grad, point_errors)
from backprop2lib.tasks import TeacherTasks

D = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _forward_one(model: MLP, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One task's network output from its flat vector, slicing W1, b1, W2, b2, ... by hand."""
    act = {"tanh": torch.tanh, "gaussian": lambda z: torch.exp(-z * z), "relu": torch.relu,
           "sigmoid": torch.sigmoid}[model.activation]
    h, k = x, 0
    for layer, (n_in, n_out) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        W = w[k:k + n_in * n_out].reshape(n_in, n_out)
        k += n_in * n_out
        b = w[k:k + n_out]
        k += n_out
        h = h @ W + b
        if layer < model.n_layers - 1:
            h = act(h)
    assert k == w.numel()
    return h


def _error_one(model, w, x, y):
    """E(w) = mean over points of ½‖f(x) − y‖²."""
    return 0.5 * (_forward_one(model, w, x) - y).pow(2).sum(-1).mean()


def _setup(activation="tanh", sizes=(2, 5, 1), T=3, N=12, seed=0, noise_std=0.0):
    model = MLP(sizes, activation)
    tasks = TeacherTasks.sparse_variation(model, n_varying=6, spread=0.5, seed=seed, noise_std=noise_std)
    batch = tasks.sample(T, N, N, generator=gen(seed), dtype=D)
    start = tasks.mean.to(D) + 0.1 * torch.randn(model.n_params, generator=gen(seed + 100), dtype=D)
    return model, tasks, batch, start


# ------------------------------------------------------------------ objective
@pytest.mark.parametrize("activation", ["gaussian", "tanh"])
@pytest.mark.parametrize("sizes", [(2, 5, 1), (2, 4, 3, 2)])
def test_error_and_grad_match_autograd_per_task(activation, sizes):
    model = MLP(sizes, activation)
    g = gen(1)
    w = torch.randn(4, model.n_params, generator=g, dtype=D)
    x = torch.randn(4, 9, sizes[0], generator=g, dtype=D)
    y = torch.randn(4, 9, sizes[-1], generator=g, dtype=D)
    e, grad = error_and_grad(model, w, x, y)
    pe = point_errors(model, w, x, y)
    torch.testing.assert_close(error(model, w, x, y), e, rtol=1e-12, atol=1e-14)
    for t in range(4):
        leaf = w[t].clone().requires_grad_(True)
        out = _forward_one(model, leaf, x[t])
        ref_points = 0.5 * (out - y[t]).pow(2).sum(-1)
        ref = ref_points.mean()
        (ref_grad,) = torch.autograd.grad(ref, leaf)
        torch.testing.assert_close(pe[t], ref_points.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(e[t], ref.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad[t], ref_grad, rtol=1e-10, atol=1e-12)


def test_objective_shape_errors():
    model = MLP((2, 3, 1), "tanh")
    w = torch.zeros(2, model.n_params)
    x, y = torch.zeros(2, 4, 2), torch.zeros(2, 4, 1)
    with pytest.raises(ValueError, match="w: expected"):
        error(model, w[:, 1:], x, y)
    with pytest.raises(ValueError, match="w: expected"):
        error_and_grad(model, w[0], x, y)
    with pytest.raises(ValueError, match="x: expected"):
        point_errors(model, w, x[:1], y[:1])
    with pytest.raises(ValueError, match="y: expected"):
        error_and_grad(model, w, x, y[..., :0])


# ---------------------------------------------------- adapt vs a slow reference
def _reference_adapt(model, start, x, y, *, steps, lr, reg_value=None, rates_of=None):
    """w ← w − lr · rates(w) ⊙ ∇(E + R)(w), one task at a time, gradients by autograd."""
    out = []
    for t in range(x.shape[0]):
        w = (start if start.dim() == 1 else start[t]).detach().clone()
        for _ in range(steps):
            leaf = w.clone().requires_grad_(True)
            total = _error_one(model, leaf, x[t], y[t])
            if reg_value is not None:
                total = total + reg_value(leaf)
            (grad,) = torch.autograd.grad(total, leaf)
            r = 1.0 if rates_of is None else rates_of(w)
            w = w - lr * r * grad
        out.append(w)
    return torch.stack(out)


@pytest.mark.parametrize("activation", ["tanh", "gaussian"])
def test_fixed_lr_without_regulariser_equals_plain_gradient_descent(activation):
    model, _, b, start = _setup(activation)
    res = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=6, lr=0.3))
    ref = _reference_adapt(model, start, b.x_support, b.y_support, steps=6, lr=0.3)
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)
    assert res.steps.tolist() == [6, 6, 6] and not bool(res.stopped.any())
    torch.testing.assert_close(res.step_size, torch.full((3,), 0.3, dtype=D))
    before = torch.stack([_error_one(model, start, b.x_support[t], b.y_support[t]) for t in range(3)])
    after = torch.stack([_error_one(model, ref[t], b.x_support[t], b.y_support[t]) for t in range(3)])
    torch.testing.assert_close(res.error_before, before)
    torch.testing.assert_close(res.error_after, after)
    torch.testing.assert_close(res.improvement, before - after)
    assert not bool(res.diverged.any())


def test_per_task_start_vectors():
    model, _, b, start = _setup()
    starts = start + 0.2 * torch.randn(3, model.n_params, generator=gen(5), dtype=D)
    res = adapt(model, starts, b.x_support, b.y_support, loop=InnerLoop(max_steps=4, lr=0.2))
    ref = _reference_adapt(model, starts, b.x_support, b.y_support, steps=4, lr=0.2)
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)


def test_fixed_lr_with_quadratic_regulariser_adds_its_gradient():
    model, _, b, start = _setup("gaussian")
    mu = start + 0.3 * torch.randn(model.n_params, generator=gen(6), dtype=D)
    var = 0.05 + torch.rand(model.n_params, generator=gen(7), dtype=D)
    reg = QuadraticRegulariser(mu, var, 0.5)
    res = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=5, lr=0.02), regulariser=reg)
    ref = _reference_adapt(model, start, b.x_support, b.y_support, steps=5, lr=0.02,
                           reg_value=lambda w: 0.5 * ((w - mu) ** 2 / var).sum())
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)
    # the regulariser changed the result, and it is excluded from the reported error
    plain = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=5, lr=0.02))
    assert float((plain.params - res.params).abs().max()) > 1e-3
    torch.testing.assert_close(res.error_after, error(model, res.params, b.x_support, b.y_support))


def test_fixed_lr_with_quartic_regulariser_adds_its_gradient():
    model, _, b, start = _setup("tanh")
    a = 0.5 + torch.rand(model.n_params, generator=gen(8), dtype=D)
    reg = QuarticRegulariser(start, a, 0.1)
    start2 = start + 0.3 * torch.randn(model.n_params, generator=gen(9), dtype=D)
    res = adapt(model, start2, b.x_support, b.y_support, loop=InnerLoop(max_steps=5, lr=0.1), regulariser=reg)
    ref = _reference_adapt(model, start2, b.x_support, b.y_support, steps=5, lr=0.1,
                           reg_value=lambda w: 0.1 * ((a * (w - start) ** 2 - 1) ** 2).sum())
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)


def test_fixed_rates_vector_multiplies_elementwise():
    model, _, b, start = _setup("tanh")
    rates = torch.exp(torch.randn(model.n_params, generator=gen(10), dtype=D))
    res = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=5, lr=0.1), rates=rates)
    ref = _reference_adapt(model, start, b.x_support, b.y_support, steps=5, lr=0.1, rates_of=lambda w: rates)
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)


def test_eve_rates_are_re_evaluated_at_each_w():
    model, _, b, start = _setup("gaussian")
    spread = torch.exp(torch.randn(model.n_params, generator=gen(11), dtype=D))
    fitted = start + spread * torch.randn(5, model.n_params, generator=gen(12), dtype=D)
    eve = EveRates.fit(fitted, decay=1.0)
    loop = InnerLoop(max_steps=6, lr=0.5)
    res = adapt(model, start, b.x_support, b.y_support, loop=loop, rates=eve)

    def rates_of(w):  # λ exp(−κ d²/σ²), written out
        var = fitted.var(0, unbiased=False)
        var = var.clamp_min(var.max() * 1e-6)
        return var / var.mean() * torch.exp(-1.0 * (w - fitted.mean(0)) ** 2 / var)

    ref = _reference_adapt(model, start, b.x_support, b.y_support, steps=6, lr=0.5, rates_of=rates_of)
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)
    # rates frozen at the start would give another path
    frozen = adapt(model, start, b.x_support, b.y_support, loop=loop, rates=eve.rates(start))
    assert float((frozen.params - res.params).abs().max()) > 1e-6


# ------------------------------------------------- batched vs one at a time
def _line_search_terminator_loop():
    return InnerLoop(max_steps=300, terminate=True, terminator_every=2, terminator_window=5, p_lim=1e-2)


def test_batched_equals_one_at_a_time_with_line_search_and_terminator():
    model, _, b, start = _setup("tanh", T=4, N=30, noise_std=0.1)
    loop = _line_search_terminator_loop()
    mu = start.clone()
    reg = QuadraticRegulariser(mu, torch.full_like(mu, 0.5), 1e-3)
    batched = adapt(model, start, b.x_support, b.y_support, loop=loop, regulariser=reg)
    single = adapt_one_at_a_time(model, start, b.x_support, b.y_support, loop=loop, regulariser=reg)
    assert torch.equal(batched.steps, single.steps)
    assert torch.equal(batched.stopped, single.stopped)
    assert bool(batched.stopped.all()) and len(set(batched.steps.tolist())) > 1  # tasks stop at different steps
    assert bool((batched.steps < loop.max_steps).all())
    torch.testing.assert_close(batched.params, single.params, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(batched.error_before, single.error_before, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(batched.error_after, single.error_after, rtol=1e-9, atol=1e-11)
    assert bool((batched.error_after < batched.error_before).all())


def test_batched_step_size_of_stopped_tasks_equals_one_at_a_time():
    model, _, b, start = _setup("tanh", T=4, N=30, noise_std=0.1)
    loop = _line_search_terminator_loop()
    batched = adapt(model, start, b.x_support, b.y_support, loop=loop)
    single = adapt_one_at_a_time(model, start, b.x_support, b.y_support, loop=loop)
    assert len(set(batched.steps.tolist())) > 1
    torch.testing.assert_close(batched.step_size, single.step_size)


def _per_task_prior(kind, mean, spread):
    """``(regulariser, rates)`` of one kind, on [T, P] (one row per task) or [P] tensors."""
    if kind == "quadratic":
        return QuadraticRegulariser(mean, spread, 1e-3), None
    if kind == "quartic":
        return QuarticRegulariser(mean, spread, 1e-3), None
    return None, EveRates(mean, spread, decay=0.5)


@pytest.mark.parametrize("kind", ["quadratic", "quartic", "eve"])
def test_per_task_prior_with_line_search_and_terminator_equals_each_task_alone(kind, monkeypatch):
    """A [T, P] regulariser or rates in one batched call = each task alone with its own [P] objects.

    The line search's last rounds and the steps once most tasks have stopped use a subset of the
    tasks; the [T, P] objects must then be cut to those rows (``take``), or the rows mismatch.
    """
    model, _, b, start = _setup("tanh", T=4, N=30, noise_std=0.1)
    T = 4
    g = gen(30)
    mean = start + 0.3 * torch.randn(T, model.n_params, generator=g, dtype=D)
    spread = 0.5 + torch.rand(T, model.n_params, generator=g, dtype=D)
    loop = _line_search_terminator_loop()
    x, y = b.x_support, b.y_support
    alone = [adapt_one_at_a_time(model, mean[t], x[t:t + 1], y[t:t + 1], loop=loop,
                                 **dict(zip(("regulariser", "rates"), _per_task_prior(kind, mean[t], spread[t]))))
             for t in range(T)]
    regulariser, rates = _per_task_prior(kind, mean, spread)
    cls = type(regulariser if rates is None else rates)
    calls = []  # rows of the object take() was called on
    original_take = cls.take
    monkeypatch.setattr(cls, "take", lambda self, rows: calls.append(self.mean.shape[0]) or original_take(self, rows))
    batched = adapt(model, mean, x, y, loop=loop, regulariser=regulariser, rates=rates)
    one_by_one = adapt_one_at_a_time(model, mean, x, y, loop=loop, regulariser=regulariser, rates=rates)
    for name in ("steps", "stopped"):
        want = torch.cat([getattr(r, name) for r in alone])
        assert torch.equal(getattr(batched, name), want) and torch.equal(getattr(one_by_one, name), want)
    for name in ("params", "error_before", "error_after", "step_size"):
        want = torch.cat([getattr(r, name) for r in alone])
        torch.testing.assert_close(getattr(batched, name), want, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(getattr(one_by_one, name), want, rtol=1e-12, atol=1e-14)
    assert bool(batched.stopped.all())
    ordered = sorted(batched.steps.tolist())
    only_some = ordered[-1] - ordered[T // 2 - 1]  # steps at which at most half the tasks were still active
    assert only_some > 0
    from_all = calls[:len(calls) - T].count(T)  # the last T calls are adapt_one_at_a_time's, one per task
    if kind == "eve":  # rates are cut once per such step, the line search uses values only
        assert from_all == only_some
    else:  # ... and the line search also evaluated subsets of the tasks
        assert from_all > only_some


def test_one_at_a_time_gives_each_task_its_row_of_a_rates_tensor():
    model, _, b, start = _setup("tanh")
    rates = torch.exp(torch.randn(3, model.n_params, generator=gen(31), dtype=D))
    loop = InnerLoop(max_steps=4, lr=0.1)
    batched = adapt(model, start, b.x_support, b.y_support, loop=loop, rates=rates)
    single = adapt_one_at_a_time(model, start, b.x_support, b.y_support, loop=loop, rates=rates)
    assert single.params.shape == (3, model.n_params)
    torch.testing.assert_close(single.params, batched.params, rtol=1e-12, atol=1e-14)


def test_a_per_task_regulariser_for_other_tasks_is_refused_by_name():
    model, _, b, start = _setup("tanh")  # 3 tasks
    wrong = QuadraticRegulariser(start.expand(4, -1), torch.ones(4, model.n_params, dtype=D))
    with pytest.raises(ValueError, match=r"w: expected \[T, P\] = \(4, "):
        adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=1, lr=0.1), regulariser=wrong)


def test_line_search_never_raises_the_full_batch_objective():
    """Full batch: every line-search step lowers E (+R), so the error after one step is below before."""
    model, _, b, start = _setup("gaussian", T=3, N=20)
    for steps in (1, 2, 5):
        res = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=steps))
        assert bool((res.error_after < res.error_before).all())
        assert bool((res.step_size > 0).all())


# ------------------------------------------------------------- batches and budgets
def test_sampled_batches_are_reproducible_with_a_seeded_generator():
    model, _, b, start = _setup("tanh", N=30)
    loop = InnerLoop(max_steps=8, batch_size=5)
    runs = [adapt(model, start, b.x_support, b.y_support, loop=loop, generator=gen(3)) for _ in range(2)]
    assert torch.equal(runs[0].params, runs[1].params) and torch.equal(runs[0].step_size, runs[1].step_size)
    other = adapt(model, start, b.x_support, b.y_support, loop=loop, generator=gen(4))
    assert not torch.equal(runs[0].params, other.params)  # the batches do matter


def test_batch_steps_use_the_drawn_points():
    """One fixed-lr step on a batch of 5 drawn with replacement equals the reference step on those points."""
    model, _, b, start = _setup("tanh", N=30)
    res = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=1, lr=0.4, batch_size=5),
                generator=gen(21))
    idx = torch.randint(30, (3, 5), generator=gen(21))  # the same draw, made by hand
    xb = torch.stack([b.x_support[t, idx[t]] for t in range(3)])
    yb = torch.stack([b.y_support[t, idx[t]] for t in range(3)])
    ref = _reference_adapt(model, start, xb, yb, steps=1, lr=0.4)
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)


def test_terminator_stops_an_easy_task_and_budget_runs_take_max_steps():
    model, _, b, start = _setup("tanh", T=2, N=30, noise_std=0.1)
    easy = adapt(model, start, b.x_support, b.y_support, loop=_line_search_terminator_loop())
    assert bool(easy.stopped.all()) and bool((easy.steps < 300).all())
    # the terminator checks every 2 steps with a window of 5 (buffers start at 1): never before 5 checks
    assert bool((easy.steps >= 8).all())
    budget = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=37, terminate=False))
    assert budget.steps.tolist() == [37, 37] and not bool(budget.stopped.any())
    zero = adapt(model, start, b.x_support, b.y_support, loop=InnerLoop(max_steps=0))
    assert zero.steps.tolist() == [0, 0]
    torch.testing.assert_close(zero.params, start.expand(2, -1))


def test_faithful_inner_loop_settings():
    loop = InnerLoop.faithful()
    assert (loop.max_steps, loop.lr, loop.terminate, loop.batch_size) == (10_000, None, True, 50)
    assert InnerLoop.faithful(200, batch_size=10).batch_size == 10
    assert InnerLoop().with_(lr=0.1).lr == 0.1


# ---------------------------------------------------------------- meta-gradients
def test_gradient_of_final_error_wrt_start_matches_finite_differences():
    model, _, b, start = _setup("gaussian", T=2, N=10)
    mu = start.clone()
    reg = QuadraticRegulariser(mu, torch.full_like(mu, 0.3), 0.05)
    rates = 0.5 + torch.rand(model.n_params, generator=gen(13), dtype=D)
    loop = InnerLoop(max_steps=4, lr=0.3)

    def final(w0):
        res = adapt(model, w0, b.x_support, b.y_support, loop=loop, regulariser=reg, rates=rates)
        return error(model, res.params, b.x_query, b.y_query).sum()

    leaf = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(final(leaf), leaf)
    eps = 1e-6
    fd = torch.zeros_like(start)
    for i in range(model.n_params):
        plus, minus = start.clone(), start.clone()
        plus[i] += eps
        minus[i] -= eps
        fd[i] = (final(plus) - final(minus)) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)
    assert float(grad.abs().max()) > 1e-3


# --------------------------------------------------------------------- bad input
def test_bad_input():
    model, _, b, start = _setup()
    x, y = b.x_support, b.y_support
    nan = start.clone()
    nan[0] = float("nan")
    with pytest.raises(ValueError, match="start"):
        adapt(model, nan, x, y)
    with pytest.raises(ValueError, match="start"):
        adapt(model, start[1:], x, y)
    with pytest.raises(ValueError, match="start"):
        adapt(model, start.expand(2, -1), x, y)  # 2 start vectors for 3 tasks
    with pytest.raises(ValueError, match="x"):
        adapt(model, start, x[:0], y[:0])
    with pytest.raises(ValueError, match="x"):
        adapt(model, start, x[0], y[0])
    with pytest.raises(ValueError, match="y"):
        adapt(model, start, x, y[:, :3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_steps=-1), "max_steps"),
        (dict(max_steps=2.0), "max_steps"),
        (dict(max_steps=True), "max_steps"),
        (dict(lr=0.0), "lr"),
        (dict(lr=-0.1), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
    ],
)
def test_inner_loop_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InnerLoop(**kwargs)


def test_adam_adapt_equals_torch_adam_task_by_task():
    """Batched Adam in the inner loop against torch.optim.Adam run on each task separately."""
    from backprop2lib.scale import adam_adapt

    model, _, b, start = _setup("tanh", T=3, N=12)
    res = adam_adapt(model, start, b.x_support, b.y_support, steps=7, lr=0.05)
    for t in range(3):
        w = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.05)
        for _ in range(7):
            opt.zero_grad()
            _error_one(model, w, b.x_support[t], b.y_support[t]).backward()
            opt.step()
        torch.testing.assert_close(res.params[t], w.detach(), rtol=1e-6, atol=1e-8)
    assert bool((res.steps == 7).all())
    with pytest.raises(ValueError, match="lr"):
        adam_adapt(model, start, b.x_support, b.y_support, steps=1, lr=0.0)
