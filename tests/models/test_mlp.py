import pytest
import torch

from backprop2lib.models import ACTIVATIONS, MLP

D = torch.float64


def _autograd_loss_per_task(model, params, x, y):
    """Loss of each task through autograd, by a loop over tasks (the obvious reference)."""
    out = []
    for t in range(x.shape[0]):
        p_t = [p[t] if p.dim() == len(s) + 1 else p for p, s in zip(params, model.shapes)]
        h = x[t]
        for layer in range(model.n_layers):
            h = h @ p_t[2 * layer] + p_t[2 * layer + 1]
            if layer < model.n_layers - 1:
                h = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                     "gaussian": lambda z: torch.exp(-z * z)}[model.activation](h)
        out.append((h - y[t]).pow(2).mean())
    return torch.stack(out)


def _batch(model, T=4, N=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, model.sizes[0], generator=g, dtype=D)
    y = torch.randn(T, N, model.sizes[-1], generator=g, dtype=D)
    return x, y


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [(1, 5, 1), (3, 6, 4, 2)])
def test_explicit_gradient_matches_autograd_per_task(activation, sizes):
    model = MLP(sizes, activation)
    params = model.init(4, generator=torch.Generator().manual_seed(1), dtype=D)
    x, y = _batch(model)
    loss, grads = model.loss_and_grad(params, x, y)
    leaves = [p.clone().requires_grad_(True) for p in params]
    ref = _autograd_loss_per_task(model, leaves, x, y)
    ref_grads = torch.autograd.grad(ref.sum(), leaves)  # tasks are independent: sum gives each task's gradient
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_explicit_gradient_is_differentiable_like_autograd(activation):
    """Second derivatives through the explicit backward equal autograd's double backward."""
    model = MLP((2, 6, 5, 1), activation)
    shared = [p.requires_grad_(True) for p in model.init(generator=torch.Generator().manual_seed(2), dtype=D)]
    x, y = _batch(model, T=3)
    v = [torch.randn(3, *s, dtype=D, generator=torch.Generator().manual_seed(3)) for s in model.shapes]
    _, grads = model.loss_and_grad(shared, x, y)
    hvp = torch.autograd.grad(sum((g * w).sum() for g, w in zip(grads, v)), shared)
    ref_loss = _autograd_loss_per_task(model, shared, x, y)
    ref_grads = [torch.autograd.grad(ref_loss[t], shared, create_graph=True) for t in range(3)]
    ref_hvp = torch.autograd.grad(
        sum((g * w[t]).sum() for t in range(3) for g, w in zip(ref_grads[t], v)), shared)
    for a, b in zip(hvp, ref_hvp):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_gradient_matches_finite_differences():
    model = MLP((1, 4, 1), "gaussian")
    params = model.init(2, generator=torch.Generator().manual_seed(4), dtype=D)
    x, y = _batch(model, T=2, N=5)
    _, grads = model.loss_and_grad(params, x, y)
    eps = 1e-6
    for i, p in enumerate(params):
        for idx in [(0,) + (0,) * (p.dim() - 1), (1,) + tuple(s - 1 for s in p.shape[1:])]:
            plus = [q.clone() for q in params]
            minus = [q.clone() for q in params]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd = (model.loss(plus, x, y) - model.loss(minus, x, y)) / (2 * eps)
            assert abs(float(fd[idx[0]]) - float(grads[i][idx])) < 1e-7


def test_batched_forward_equals_one_model_at_a_time():
    model = MLP((3, 8, 2), "tanh")
    params = model.init(5, generator=torch.Generator().manual_seed(5))
    x, _ = _batch(model, T=5)
    x = x.float()
    out = model.forward(params, x)
    for t in range(5):
        single = model.forward(tuple(p[t] for p in params), x[t : t + 1])
        torch.testing.assert_close(out[t : t + 1], single)


def test_shared_params_broadcast_over_tasks():
    model = MLP((1, 6, 1))
    shared = model.init(generator=torch.Generator().manual_seed(6), dtype=D)
    x, y = _batch(model, T=3)
    torch.testing.assert_close(model.forward(shared, x), model.forward(model.expand(shared, 3), x))
    torch.testing.assert_close(model.loss_and_grad(shared, x, y)[1][0], model.loss_and_grad(model.expand(shared, 3), x, y)[1][0])


def test_init_schemes():
    model = MLP((10, 200, 1))
    g = torch.Generator().manual_seed(7)
    normal = model.init(scheme="normal", generator=g)
    assert abs(float(normal[0].std()) - 1.0) < 0.05 and abs(float(normal[0].mean())) < 0.05
    pt = model.init(scheme="pytorch", generator=g)
    assert float(pt[0].abs().max()) <= 1 / 10**0.5 and float(pt[2].abs().max()) <= 1 / 200**0.5
    assert float(pt[0].abs().max()) > 0.9 / 10**0.5
    stacked = model.init(3, generator=g)
    assert [tuple(p.shape) for p in stacked] == [(3, 10, 200), (3, 200), (3, 200, 1), (3, 1)]
    assert model.n_params == 10 * 200 + 200 + 200 + 1
    assert MLP((1, 40, 40, 1)).n_params == 1761


def test_flatten_round_trip():
    model = MLP((2, 3, 1))
    params = model.init(4)
    flat = model.flatten(params)
    assert flat.shape == (4, model.n_params)
    for a, b in zip(model.unflatten(flat), params):
        torch.testing.assert_close(a, b)
    assert model.flatten(model.init()).shape == (model.n_params,)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MLP((1,)), "sizes"),
        (lambda: MLP((1, 0, 1)), "sizes"),
        (lambda: MLP((1, 4, 1), "swish"), "unknown activation 'swish'.*relu, tanh, sigmoid, gaussian"),
        (lambda: MLP((1, 4, 1)).init(scheme="xavier"), "unknown init scheme 'xavier'"),
    ],
)
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shape_errors_name_the_argument():
    model = MLP((2, 4, 1))
    params = model.init(3)
    with pytest.raises(ValueError, match=r"x: expected shape \[T, N, 2\]"):
        model.forward(params, torch.zeros(3, 5, 1))
    with pytest.raises(ValueError, match="x: has 2 tasks but params have 3"):
        model.forward(params, torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match=r"y: expected shape \(3, 5, 1\)"):
        model.loss(params, torch.zeros(3, 5, 2), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="params: expected 4 tensors"):
        model.forward(params[:2], torch.zeros(3, 5, 2))
    with pytest.raises(ValueError, match=r"params\[2\]: expected shape \(4, 1\)"):
        model.forward((params[0], params[1], torch.zeros(3, 4, 2), params[3]), torch.zeros(3, 5, 2))
