import math

import numpy as np
import pytest
import torch

from backprop2lib.meta.adapt import sgd_adapt
from backprop2lib.meta.backprop2 import history_array, train_backprop2
from backprop2lib.meta.fewshot import evaluate_few_shot, query_errors, sgd_adapter
from backprop2lib.meta.meta_sgd import MetaSGDResult, meta_sgd_loss, train_meta_sgd
from backprop2lib.meta.scale_gradient import ScaleGradientResult, scale_gradient_loss, train_scale_gradient
from backprop2lib.models import MLP
from backprop2lib.scale import InnerLoop, adapt, error
from backprop2lib.tasks import TaskBatch, TeacherTasks

D = torch.float64
MODEL = MLP((2, 4, 1), "tanh")  # P = 17


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _forward_one(model: MLP, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One task's output from its flat vector, slicing W1, b1, W2, b2, ... by hand."""
    act = {"tanh": torch.tanh, "gaussian": lambda z: torch.exp(-z * z)}[model.activation]
    h, k = x, 0
    for layer, (n_in, n_out) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        W = w[k:k + n_in * n_out].reshape(n_in, n_out)
        k += n_in * n_out
        h = h @ W + w[k:k + n_out]
        k += n_out
        if layer < model.n_layers - 1:
            h = act(h)
    return h


def _error_one(model, w, x, y):
    """backprop2's E: mean over points of ½‖f − y‖²."""
    return 0.5 * (_forward_one(model, w, x) - y).pow(2).sum(-1).mean()


def _mse_one(model, w, x, y):
    return (_forward_one(model, w, x) - y).pow(2).mean()


# ======================================================= backprop2, reproduced slowly
def _fit_by_hand(rule, W, *, strength, floor, decay, variant="consistent"):
    """(mean, penalty(w) or None, rates(w) or None, scale) from adapted parameters W [T, P], written out."""
    mu = W.mean(0)
    var = ((W - mu) ** 2).mean(0)
    if rule == "quadratic":
        var = var.clamp_min(floor)
        return mu, (lambda w: strength * ((w - mu) ** 2 / var).sum()), None, var.sqrt()
    if rule == "quartic":
        a = 1 / var if variant == "consistent" else 1 / var.sqrt()  # minima at the RMS deviation, or at √RMS
        a = a.clamp(max=1e4)
        return mu, (lambda w: strength * ((a * (w - mu) ** 2 - 1) ** 2).sum()), None, a.rsqrt()
    if rule == "eve":
        var = var.clamp_min(var.max() * 1e-6)
        return mu, None, (lambda w: var / var.mean() * torch.exp(-decay * (w - mu) ** 2 / var)), var.sqrt()
    return mu, None, None, var.sqrt()


def _adapt_by_hand(model, start, x, y, steps, lr, penalty=None, rates=None):
    out = []
    for t in range(x.shape[0]):
        w = start.clone()
        for _ in range(steps):
            leaf = w.clone().requires_grad_(True)
            total = _error_one(model, leaf, x[t], y[t]) + (0 if penalty is None else penalty(leaf))
            (g,) = torch.autograd.grad(total, leaf)
            w = w - lr * (1 if rates is None else rates(w)) * g
        out.append(w)
    return torch.stack(out)


def _backprop2_by_hand(model, tasks, *, rule, iterations, T, N, steps, lr, strength, floor, decay, error_scale,
                       seed, variant):
    g = gen(seed)
    init = model.flatten(model.init(scheme="normal", generator=g))
    first = tasks.sample(2, N, generator=g)
    w1 = _adapt_by_hand(model, init, first.x_support[:1], first.y_support[:1], steps, lr)
    w2 = _adapt_by_hand(model, w1[0], first.x_support[1:], first.y_support[1:], steps, lr)
    c = strength
    fit = dict(floor=floor, decay=decay, variant=variant)
    mu, penalty, rates, scale = _fit_by_hand(rule, torch.cat([w1, w2]), strength=c, **fit)
    # the first entry describes the two-task initialisation (no adaptation errors yet)
    history = {"error_before": [np.nan], "error_after": [np.nan], "scale_mean": [float(scale.mean())], "strength": [c]}
    for _ in range(iterations):
        batch = tasks.sample(T, N, generator=g)
        adapted = _adapt_by_hand(model, mu, batch.x_support, batch.y_support, steps, lr, penalty, rates)
        before = [float(_error_one(model, mu, batch.x_support[t], batch.y_support[t])) for t in range(T)]
        after = [float(_error_one(model, adapted[t], batch.x_support[t], batch.y_support[t])) for t in range(T)]
        if error_scale == "dE":
            c = strength * max(np.mean(before) - np.mean(after), 0.0)
        mu, penalty, rates, scale = _fit_by_hand(rule, adapted, strength=c, **fit)
        history["error_before"].append(np.mean(before))
        history["error_after"].append(np.mean(after))
        history["scale_mean"].append(float(scale.mean()))
        history["strength"].append(c)
    return mu, history


CASES = [
    ("quadratic", dict(floor=1e-2, strength=1e-2), "constant"),
    ("quadratic", dict(floor=1e-2, strength=0.05), "dE"),
    # fixed-step descent on a quartic with a up to 1e4 is only stable for a small strength
    ("quartic", dict(floor=0.0, strength=1e-5), "constant"),
    ("quartic", dict(floor=0.0, strength=1e-5, variant="type3"), "constant"),
    ("eve", dict(floor=0.0, strength=1e-2, decay=0.5), "constant"),
    ("mean_only", dict(floor=0.0, strength=1e-2), "constant"),
]


@pytest.mark.parametrize("rule, kw, error_scale", CASES)
def test_train_backprop2_equals_a_slow_reference_run(rule, kw, error_scale):
    """Init from two tasks, then per outer iteration adapt every task from μ and REPLACE μ and the scale."""
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.5, seed=0)  # noise-free
    decay, variant = kw.get("decay", 0.2), kw.get("variant", "consistent")
    settings = dict(rule=rule, iterations=3, T=3, N=10, steps=5, lr=0.05, strength=kw["strength"],
                    floor=kw["floor"], decay=decay, error_scale=error_scale, seed=1, variant=variant)
    ours = train_backprop2(MODEL, tasks, rule=rule, outer_iterations=3, tasks_per_iteration=3, points_per_task=10,
                           loop=InnerLoop(max_steps=5, lr=0.05), strength=kw["strength"], floor=kw["floor"],
                           decay=decay, error_scale=error_scale, variant=variant, generator=gen(1), progress=False)
    mu, history = _backprop2_by_hand(MODEL, tasks, **settings)
    torch.testing.assert_close(ours.mean, mu, rtol=1e-4, atol=1e-5)
    for key, values in history.items():
        assert len(ours.history[key]) == 4
        np.testing.assert_allclose(ours.history[key], values, rtol=1e-4, atol=1e-7, err_msg=key)
    assert all(len(v) == 4 for v in ours.history.values())
    np.testing.assert_array_equal(history_array(ours, "steps"), [np.nan, 5.0, 5.0, 5.0])
    np.testing.assert_array_equal(history_array(ours, "stopped"), [np.nan, 0.0, 0.0, 0.0])
    assert ours.rule == rule
    if rule in ("quadratic", "eve"):
        torch.testing.assert_close(ours.scale.mean(), torch.tensor(history["scale_mean"][-1]))
    if rule == "mean_only":
        assert ours.scale is None and ours.regulariser is None and ours.rates is None
    # the returned regulariser / rates are centred on the returned mean
    source = ours.regulariser if ours.regulariser is not None else ours.rates
    if source is not None:
        assert torch.equal(source.mean, ours.mean)


def test_error_scale_de_sets_strength_from_the_improvement():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.5, seed=2)
    coef = 0.3
    ours = train_backprop2(MODEL, tasks, rule="quadratic", outer_iterations=4, tasks_per_iteration=3,
                           points_per_task=10, loop=InnerLoop(max_steps=4, lr=0.05), strength=coef, floor=1e-2,
                           error_scale="dE", generator=gen(3), progress=False)
    before, after = history_array(ours, "error_before"), history_array(ours, "error_after")
    assert history_array(ours, "strength")[0] == pytest.approx(coef)  # no dE before the first iteration
    np.testing.assert_allclose(history_array(ours, "strength")[1:], coef * np.maximum(before[1:] - after[1:], 0),
                               rtol=1e-5)
    assert float(ours.regulariser.strength) == pytest.approx(coef * max(before[-1] - after[-1], 0), rel=1e-5)
    constant = train_backprop2(MODEL, tasks, rule="quadratic", outer_iterations=2, tasks_per_iteration=3,
                               points_per_task=10, loop=InnerLoop(max_steps=4, lr=0.05), strength=coef, floor=1e-2,
                               generator=gen(3), progress=False)
    assert constant.history["strength"] == [coef, coef, coef]


@pytest.mark.parametrize("rule", ["quadratic", "eve"])
def test_faithful_mode_equals_batched_without_randomness_in_the_loop(rule):
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.5, seed=4)
    common = dict(rule=rule, outer_iterations=3, tasks_per_iteration=4, points_per_task=10,
                  loop=InnerLoop(max_steps=6, lr=0.05), floor=1e-2, progress=False)
    batched = train_backprop2(MODEL, tasks, mode="batched", generator=gen(5), **common)
    faithful = train_backprop2(MODEL, tasks, mode="faithful", generator=gen(5), **common)
    torch.testing.assert_close(batched.mean, faithful.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched.scale, faithful.scale, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched.history["error_after"], faithful.history["error_after"], rtol=1e-5)


def test_model_adapt_with_and_without_the_regulariser():
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.5, seed=6)
    trained = train_backprop2(MODEL, tasks, rule="quadratic", outer_iterations=2, tasks_per_iteration=3,
                              points_per_task=10, loop=InnerLoop(max_steps=5, lr=0.05), floor=0.05, strength=0.1,
                              generator=gen(7), progress=False)
    batch = tasks.sample(2, 10, generator=gen(8))
    reg = trained.adapt(MODEL, batch.x_support, batch.y_support)
    free = trained.adapt(MODEL, batch.x_support, batch.y_support, regularise=False)
    penalty = trained.regulariser
    ref_reg = _adapt_by_hand(MODEL, trained.mean, batch.x_support, batch.y_support, 5, 0.05,
                             lambda w: penalty.strength * ((w - penalty.mean) ** 2 / penalty.variance).sum())
    ref_free = _adapt_by_hand(MODEL, trained.mean, batch.x_support, batch.y_support, 5, 0.05)
    torch.testing.assert_close(reg.params, ref_reg, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(free.params, ref_free, rtol=1e-4, atol=1e-5)
    assert float((reg.params - free.params).abs().max()) > 1e-4
    assert bool(torch.isfinite(reg.params).all()) and float(reg.params.abs().max()) < 100


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rule="cubic"), "rule"),
        (dict(mode="parallel"), "mode"),
        (dict(error_scale="relative"), "error_scale"),
        (dict(outer_iterations=0), "outer_iterations"),
        (dict(tasks_per_iteration=1), "tasks_per_iteration"),
        (dict(points_per_task=0), "points_per_task"),
    ],
)
def test_train_backprop2_argument_errors(kwargs, match):
    tasks = TeacherTasks.sparse_variation(MODEL, n_varying=5, seed=0)
    with pytest.raises(ValueError, match=match):
        train_backprop2(MODEL, tasks, progress=False, **kwargs)
    with pytest.raises(ValueError, match="key"):
        history_array(train_backprop2(MODEL, tasks, rule="mean_only", outer_iterations=1, tasks_per_iteration=2,
                                      points_per_task=4, loop=InnerLoop(max_steps=1, lr=0.01), progress=False),
                      "nonsense")


class _InputsVanishAfterInit:
    """A task family whose first two tasks (the initialisation) have inputs, and every later task has x = 0.

    With x = 0 the input-layer weights get an exactly zero data gradient, and the quadratic's gradient is
    zero at μ: those weights never leave μ in an outer iteration, so their variance is exactly 0."""

    def __init__(self):
        self.calls = 0
        self.teacher = TeacherTasks.sparse_variation(MODEL, n_varying=5, spread=0.5, seed=0)

    def sample(self, n_tasks, n_points, *, generator=None, device="cpu", dtype=torch.float32):
        batch = self.teacher.sample(n_tasks, n_points, generator=generator, device=device, dtype=dtype)
        self.calls += 1
        if self.calls == 1:
            return batch
        x = torch.zeros_like(batch.x_support)
        return TaskBatch(x, batch.y_support, x[:, :0], batch.y_support[:, :0], batch.truth)


def test_quadratic_without_floor_reports_the_outer_iteration_where_a_variance_hit_zero():
    family = _InputsVanishAfterInit()
    with pytest.raises(ValueError, match=r"outer iteration 0: variance"):
        train_backprop2(MODEL, family, rule="quadratic", outer_iterations=2, tasks_per_iteration=3,
                        points_per_task=8, loop=InnerLoop(max_steps=3, lr=0.05), generator=gen(9), progress=False)
    # exactly the input-layer weights (flat indices 0..7 of W1 [2, 4]) are named
    family = _InputsVanishAfterInit()
    with pytest.raises(ValueError, match=r"backprop2 \(quadratic\): outer iteration 0: .*parameter\(s\) "
                                         r"\[0, 1, 2, 3, 4, 5, 6, 7\] have variance \[0\.0\]"):
        train_backprop2(MODEL, family, rule="quadratic", outer_iterations=2, tasks_per_iteration=3,
                        points_per_task=8, loop=InnerLoop(max_steps=3, lr=0.05), generator=gen(9), progress=False)


# ================================================================== Meta-SGD
def _batch64(seed=0, T=3, K=6, Q=5, model=MODEL):
    tasks = TeacherTasks.sparse_variation(model, n_varying=6, spread=0.5, seed=seed)
    return tasks.sample(T, K, Q, generator=gen(seed), dtype=D)


def _meta_sgd_by_hand(model, theta, rates, batch, steps):
    losses = []
    for t in range(batch.n_tasks):
        w = theta
        for _ in range(steps):
            (g,) = torch.autograd.grad(_error_one(model, w, batch.x_support[t], batch.y_support[t]), w,
                                       create_graph=True)
            w = w - rates * g
        losses.append(_error_one(model, w, batch.x_query[t], batch.y_query[t]))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("steps", [1, 2])
def test_meta_sgd_gradient_matches_per_task_autograd(steps):
    batch = _batch64()
    g = gen(10)
    theta = torch.randn(MODEL.n_params, generator=g, dtype=D).requires_grad_(True)
    rates = (0.05 + 0.2 * torch.rand(MODEL.n_params, generator=g, dtype=D)).requires_grad_(True)
    ours = meta_sgd_loss(MODEL, theta, rates, batch, inner_steps=steps)
    ref = _meta_sgd_by_hand(MODEL, theta, rates, batch, steps)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    d_ours = torch.autograd.grad(ours, (theta, rates))
    d_ref = torch.autograd.grad(ref, (theta, rates))
    for a, b in zip(d_ours, d_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert float(a.abs().max()) > 1e-4


def test_train_meta_sgd_lowers_the_held_out_query_error():
    model = MLP((2, 6, 1), "tanh")
    tasks = TeacherTasks.sparse_variation(model, n_varying=6, spread=0.3, seed=11)
    init = model.flatten(model.init(generator=gen(12)))
    result = train_meta_sgd(model, tasks, iterations=150, meta_batch=8, k_shot=10, k_query=10, inner_steps=1,
                            init_rate=0.05, meta_lr=2e-2, init=init, generator=gen(13), progress=False)
    assert isinstance(result, MetaSGDResult) and result.rates.shape == (model.n_params,)
    assert len(result.losses) == 150 and result.config["inner_steps"] == 1
    held_out = tasks.sample(100, 10, 20, generator=gen(14))
    before = meta_sgd_loss(model, init, torch.full_like(init, 0.05), held_out)
    adapted = result.adapt(model, held_out.x_support, held_out.y_support)
    assert adapted.steps.tolist() == [1] * 100
    after = error(model, adapted.params, held_out.x_query, held_out.y_query).mean()
    torch.testing.assert_close(after, meta_sgd_loss(model, result.params, result.rates, held_out))
    assert float(after) < 0.5 * float(before)
    with pytest.raises(ValueError, match="init_rate"):
        train_meta_sgd(model, tasks, iterations=1, init_rate=0.0, progress=False)


# ======================================================== meta-gradient scale
def _fd(f, x, eps=1e-6):
    out = torch.zeros_like(x)
    for i in range(x.numel()):
        plus, minus = x.clone(), x.clone()
        plus[i] += eps
        minus[i] -= eps
        out[i] = (f(plus) - f(minus)) / (2 * eps)
    return out


def test_scale_gradient_loss_gradient_matches_finite_differences():
    model = MLP((2, 3, 1), "gaussian")
    batch = _batch64(seed=15, model=model)
    g = gen(16)
    mean = torch.randn(model.n_params, generator=g, dtype=D)
    log_scale = torch.log(0.4 + torch.rand(model.n_params, generator=g, dtype=D))  # σ² >= 0.16 > α c = 0.05
    log_scale[3] = math.log(0.1)  # σ² = 0.01 < α c: clamped at the floor, so no gradient
    kw = dict(inner_steps=3, inner_lr=0.1, strength=0.5)
    m, ls = mean.clone().requires_grad_(True), log_scale.clone().requires_grad_(True)
    d_mean, d_log = torch.autograd.grad(scale_gradient_loss(model, m, ls, batch, **kw), (m, ls))
    with torch.no_grad():
        fd_mean = _fd(lambda v: scale_gradient_loss(model, v, log_scale, batch, **kw), mean)
        fd_log = _fd(lambda v: scale_gradient_loss(model, mean, v, batch, **kw), log_scale)
    torch.testing.assert_close(d_mean, fd_mean, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(d_log, fd_log, rtol=1e-5, atol=1e-8)
    assert float(d_log[3]) == 0.0 and float(d_log.abs().max()) > 1e-4


def _scale_result(model, mean, log_scale, *, strength=0.2, inner_steps=4, inner_lr=0.1):
    return ScaleGradientResult("meta-gradient scale", mean, np.zeros(1), 0.0, {},
                               log_scale=log_scale, strength=strength, inner_steps=inner_steps, inner_lr=inner_lr)


def test_scale_gradient_variance_floor_and_default_inner_steps():
    model = MLP((2, 3, 1), "tanh")
    g = gen(17)
    mean = torch.randn(model.n_params, generator=g, dtype=D)
    log_scale = torch.linspace(-6, 1, model.n_params, dtype=D)
    result = _scale_result(model, mean, log_scale)
    reg = result.regulariser
    floor = 0.1 * 0.2  # inner_lr · strength
    expected = torch.maximum(torch.exp(2 * log_scale), torch.tensor(floor, dtype=D))
    torch.testing.assert_close(reg.variance, expected)
    assert float(reg.variance.min()) == pytest.approx(floor) and float(reg.variance.max()) > floor
    torch.testing.assert_close(result.scale, expected.sqrt())
    torch.testing.assert_close(reg.mean, mean)
    batch = _batch64(seed=18, model=model)
    res = result.adapt(model, batch.x_support, batch.y_support)
    assert res.steps.tolist() == [4, 4, 4]
    ref = _adapt_by_hand(model, mean, batch.x_support, batch.y_support, 4, 0.1,
                         lambda w: 0.2 * ((w - mean) ** 2 / expected).sum())
    torch.testing.assert_close(res.params, ref, rtol=1e-10, atol=1e-12)
    assert result.adapt(model, batch.x_support, batch.y_support, steps=2).steps.tolist() == [2, 2, 2]


def test_train_scale_gradient_runs_the_documented_loss_and_validates():
    model = MLP((2, 3, 1), "tanh")
    tasks = TeacherTasks.sparse_variation(model, n_varying=4, spread=0.3, seed=19)
    init = model.flatten(model.init(generator=gen(20)))
    result = train_scale_gradient(model, tasks, iterations=3, meta_batch=4, k_shot=5, k_query=5, inner_steps=2,
                                  init_scale=0.5, meta_lr=1e-2, init=init, generator=gen(21), progress=False)
    # the first recorded loss is scale_gradient_loss at the initial (μ, log σ) on the first meta-batch
    first = next(tasks.stream(4, 5, 5, generator=gen(21)))
    expected = scale_gradient_loss(model, init, torch.full_like(init, math.log(0.5)), first, inner_steps=2,
                                   inner_lr=0.1, strength=1e-2)
    assert float(result.losses[0]) == pytest.approx(float(expected), rel=1e-5)
    assert result.log_scale.shape == (model.n_params,) and result.inner_steps == 2
    assert result.params.shape == init.shape and not torch.equal(result.params, init)  # Adam moved μ
    for name in ("inner_lr", "strength", "init_scale"):
        with pytest.raises(ValueError, match=name):
            train_scale_gradient(model, tasks, iterations=1, progress=False, **{name: 0.0})


# ==================================================================== few-shot
def test_evaluate_few_shot_with_sgd_adapter_equals_mse_after_sgd_by_hand():
    model = MLP((2, 5, 1), "tanh")
    batch = _batch64(seed=22, T=4, model=model)
    theta = torch.randn(model.n_params, generator=gen(23), dtype=D) * 0.5
    adapters = {"sgd": sgd_adapter(model, theta, steps=3, lr=0.2),
                "none": lambda x, y: theta.expand(x.shape[0], -1)}
    scores = evaluate_few_shot(model, adapters, batch)
    assert set(scores) == {"sgd", "none"}
    for t in range(4):
        w = theta.clone()
        for _ in range(3):  # plain SGD on E (the library's one convention for inner steps), by hand
            leaf = w.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(_error_one(model, leaf, batch.x_support[t], batch.y_support[t]), leaf)
            w = w - 0.2 * g
        expected = float(_mse_one(model, w, batch.x_query[t], batch.y_query[t]))  # scored on the MSE
        assert scores["sgd"][t] == pytest.approx(expected, rel=1e-10)
        assert scores["none"][t] == pytest.approx(float(_mse_one(model, theta, batch.x_query[t],
                                                                 batch.y_query[t])), rel=1e-10)
    assert scores["sgd"].dtype == np.float64 and scores["sgd"].shape == (4,)
    # and the library's own sgd_adapt gives the same
    phi = sgd_adapt(model, theta, batch.x_support, batch.y_support, steps=3, lr=0.2)
    np.testing.assert_allclose(scores["sgd"], model.loss(model.unflatten(phi), batch.x_query, batch.y_query).numpy())
    # the same step size means the same step for MAML's adapter and for the scale learners' inner loop
    same = adapt(model, theta, batch.x_support, batch.y_support, loop=InnerLoop(max_steps=3, lr=0.2)).params
    torch.testing.assert_close(phi, same, rtol=1e-12, atol=1e-14)


def test_few_shot_errors():
    model = MLP((2, 5, 1), "tanh")
    batch = _batch64(seed=24, model=model)
    with pytest.raises(ValueError, match="adapters"):
        evaluate_few_shot(model, {}, batch)
    with pytest.raises(ValueError, match="adapted"):
        query_errors(model, torch.zeros(2, model.n_params, dtype=D), batch.x_query, batch.y_query)
