"""The activations' values and derivatives: against autograd, and against the formulas the MLP,
the block Hessians and the pictures used before they shared one module (written out below)."""

import pytest
import torch

from backprop2lib.models import ACTIVATIONS, MLP
from backprop2lib.models.activations import activation, activation_and_slope, activation_derivatives, get_activation

D = torch.float64
REFERENCE = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gaussian": lambda z: torch.exp(-z * z)}


def points(dtype=D) -> torch.Tensor:
    """Random points, and the awkward ones: 0, tiny, large, both signs."""
    z = 3 * torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return torch.cat([z, torch.tensor([0.0, 1e-8, -1e-8, 0.5, -0.5, 12.0, -12.0], dtype=dtype)])


def test_the_names_and_the_error_for_an_unknown_one():
    assert ACTIVATIONS == ("relu", "tanh", "sigmoid", "gaussian")
    for bad in ("swish", None, ["relu"]):
        with pytest.raises(ValueError, match="unknown activation .*relu, tanh, sigmoid, gaussian"):
            get_activation(bad)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation_derivatives("swish", torch.zeros(2))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_first_and_second_derivatives_equal_autograd(name):
    z = points()
    if name == "relu":
        z = z[z.abs() > 1e-6]  # the kink: no derivative there
    z = z.requires_grad_(True)
    value = REFERENCE[name](z)
    d1 = torch.autograd.grad(value.sum(), z, create_graph=True)[0]
    d2 = torch.autograd.grad(d1.sum(), z, allow_unused=True)[0] if d1.requires_grad else None
    d2 = torch.zeros_like(z) if d2 is None else d2  # relu: autograd's slope is piecewise constant
    a, s, c = activation_derivatives(name, z.detach())
    torch.testing.assert_close(a, value.detach(), rtol=0, atol=0)
    torch.testing.assert_close(s, d1.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(c, d2, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_second_derivative_equals_a_central_difference_of_the_first(name):
    z = points()
    z = z[(z.abs() > 1e-3)] if name == "relu" else z
    h = 1e-6
    _, up, _ = activation_derivatives(name, z + h)
    _, down, _ = activation_derivatives(name, z - h)
    torch.testing.assert_close(activation_derivatives(name, z)[2], (up - down) / (2 * h), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_the_three_entry_points_agree_to_the_bit(name, dtype):
    z = points(dtype)
    a, s, _ = activation_derivatives(name, z)
    a1, s1 = activation_and_slope(name, z)
    assert a.dtype == dtype and torch.equal(a, a1) and torch.equal(s, s1) and torch.equal(activation(name, z), a)


def old_activation_and_slope(name, z):
    """models/mlp.py's _activation_and_slope and _activation, as they were."""
    if name == "relu":
        return torch.relu(z), (z > 0).to(z.dtype)
    if name == "tanh":
        a = torch.tanh(z)
        return a, 1 - a * a
    if name == "sigmoid":
        a = torch.sigmoid(z)
        return a, a * (1 - a)
    a = torch.exp(-z * z)
    return a, -2 * z * a


def old_activation_derivatives(name, a):
    """second_order/hessian.py's _activation_derivatives, as it was."""
    if name == "relu":
        return torch.relu(a), (a > 0).to(a.dtype), torch.zeros_like(a)
    if name == "tanh":
        h = torch.tanh(a)
        d1 = 1 - h * h
        return h, d1, -2 * h * d1
    if name == "sigmoid":
        h = torch.sigmoid(a)
        d1 = h * (1 - h)
        return h, d1, d1 * (1 - 2 * h)
    h = torch.exp(-a * a)
    return h, -2 * a * h, (4 * a * a - 2) * h


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_bit_identical_to_the_formulas_before_sharing(name, dtype):
    z = points(dtype)
    for got, want in zip(activation_and_slope(name, z), old_activation_and_slope(name, z)):
        assert torch.equal(got, want)
    for got, want in zip(activation_derivatives(name, z), old_activation_derivatives(name, z)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gaussian"])
def test_mlp_backward_is_the_old_formula_to_the_bit(name, dtype):
    """loss_and_grad's hand-written backward, rebuilt from the old slope formula, layer by layer."""
    model = MLP((3, 6, 5, 2), name)
    g = torch.Generator().manual_seed(1)
    params = model.init(4, generator=g, dtype=dtype)
    x = torch.randn(4, 7, 3, generator=g, dtype=dtype)
    y = torch.randn(4, 7, 2, generator=g, dtype=dtype)
    inputs, slopes, h = [], [], x
    for layer in range(model.n_layers):
        inputs.append(h)
        h = torch.baddbmm(params[2 * layer + 1].unsqueeze(1), h, params[2 * layer])
        if layer < model.n_layers - 1:
            h, s = old_activation_and_slope(name, h)
            slopes.append(s)
    assert torch.equal(model.forward(params, x), h)
    delta = (h - y) * (2.0 / (7 * 2))
    _, grads = model.loss_and_grad(params, x, y)
    for layer in reversed(range(model.n_layers)):
        assert torch.equal(grads[2 * layer], torch.bmm(inputs[layer].transpose(1, 2), delta))
        if layer > 0:
            delta = delta.matmul(params[2 * layer].transpose(-1, -2)) * slopes[layer - 1]
