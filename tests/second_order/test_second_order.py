"""Tests for backprop2lib.second_order: random within-layer blocks, exact block Hessians, the
per-eigendirection step rules and the optimisers / training loop built on them.

Every reference here is independent of the library's hessian module: losses are written from
scratch with plain torch ops on parameters sliced out of the flat vector by hand, and
differentiated with torch.autograd (gradients, torch.autograd.functional.hessian) or by central
differences. Everything that compares numbers runs in float64.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.optim import SGD, Adam, DivergenceError, run
from backprop2lib.optim.line_search import LineSearch
from backprop2lib.second_order import (BlockGroup, BlockNewton, BlockPartition, GradientDescentLineSearch,
                                       MLPProblem, block_partition, block_step, eigen_step, full_hessian,
                                       loss_and_grad, loss_grad_and_block_hessians, mean_loss)

D = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- references


def ref_params(sizes, v):
    """Slice one model's flat vector [P] into W [in, out], b [out] per layer (row-major W first)."""
    out, start = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append(v[start:start + fan_in * fan_out].reshape(fan_in, fan_out))
        start += fan_in * fan_out
        out.append(v[start:start + fan_out])
        start += fan_out
    assert start == v.shape[-1]
    return out


def ref_act(name, a):
    if name == "gaussian":
        return torch.exp(-a * a)
    if name == "tanh":
        return torch.tanh(a)
    if name == "sigmoid":
        return 1 / (1 + torch.exp(-a))
    if name == "relu":
        return torch.clamp(a, min=0)
    raise AssertionError(name)


def ref_loss(sizes, act, loss, v, x, y):
    """One model's batch-mean loss: ½‖f − y‖² per point, or −log softmax(f)_label per point."""
    ps = ref_params(sizes, v)
    h = x
    n_layers = len(sizes) - 1
    for layer in range(n_layers):
        h = h @ ps[2 * layer] + ps[2 * layer + 1]
        if layer < n_layers - 1:
            h = ref_act(act, h)
    if loss == "squared":
        return (0.5 * ((h - y) ** 2).sum(-1)).mean()
    logz = torch.log(torch.exp(h - h.max(-1, keepdim=True).values).sum(-1)) + h.max(-1).values
    picked = h.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
    return (logz - picked).mean()


def ref_losses(sizes, act, loss, w, x, y):
    return torch.stack([ref_loss(sizes, act, loss, w[t], x[t], y[t]) for t in range(w.shape[0])])


def ref_grad(sizes, act, loss, w, x, y):
    v = w.detach().clone().requires_grad_(True)
    total = ref_losses(sizes, act, loss, v, x, y).sum()
    (g,) = torch.autograd.grad(total, v)
    return g


def ref_hessian(sizes, act, loss, w, x, y):
    return torch.stack([
        torch.autograd.functional.hessian(lambda v, t=t: ref_loss(sizes, act, loss, v, x[t], y[t]), w[t])
        for t in range(w.shape[0])
    ])


def problem(sizes, act="tanh", loss="squared", T=2, N=12, seed=0, scale=1.0):
    """An MLP, flat float64 parameters [T, P] (N(0, scale²)), inputs [T, N, in] and targets."""
    g = gen(seed)
    model = MLP(tuple(sizes), activation=act)
    w = scale * torch.randn(T, model.n_params, generator=g, dtype=D)
    x = torch.randn(T, N, sizes[0], generator=g, dtype=D)
    if loss == "squared":
        y = torch.randn(T, N, sizes[-1], generator=g, dtype=D)
    else:
        y = torch.randint(0, sizes[-1], (T, N), generator=g)
    return model, w, x, y


def tensor_layout(model):
    """For every flat index: (layer, tensor number 2*layer + is_bias); and each tensor's range."""
    layer_of, tensor_of, ranges = [], [], []
    start = 0
    for layer, (fi, fo) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        for k, n in enumerate((fi * fo, fo)):
            layer_of += [layer] * n
            tensor_of += [2 * layer + k] * n
            ranges.append((start, start + n))
            start += n
    return torch.tensor(layer_of), torch.tensor(tensor_of), ranges


# ============================================================================ 1. block_partition

ARCHS = [(2, 10, 1), (2, 6, 5, 1), (3, 4, 3), (2, 3, 3, 3, 2)]


@pytest.mark.parametrize("sizes", ARCHS + [(1, 1), (5, 1, 4)])
@pytest.mark.parametrize("b", [1, 2, 3, 4, 7, 1000])
def test_partition_covers_every_index_once_and_respects_tensors(sizes, b):
    model = MLP(sizes)
    part = block_partition(model, b, generator=gen(3))
    assert isinstance(part, BlockPartition)
    assert part.n_params == model.n_params and part.max_block_size == b
    flat = torch.cat([g.index.flatten() for g in part.groups])
    assert torch.equal(flat.sort().values, torch.arange(model.n_params))  # each index exactly once
    layer_of, tensor_of, ranges = tensor_layout(model)
    sizes_per_tensor: dict[int, list[int]] = {}
    seen_keys = set()
    for group in part.groups:
        assert isinstance(group, BlockGroup)
        assert group.index.dtype == torch.int64
        assert group.index.shape == group.rows.shape == group.cols.shape
        assert group.index.shape == (group.n_blocks, group.size) and 1 <= group.size <= b
        key = (group.layer, group.size)
        assert key not in seen_keys  # one group per (layer, size)
        seen_keys.add(key)
        for block in group.index:
            tensors = tensor_of[block].unique()
            assert tensors.numel() == 1, "a block crosses W/b tensors or layers"
            assert bool((layer_of[block] == group.layer).all())
            sizes_per_tensor.setdefault(int(tensors), []).append(len(block))
    assert part.n_blocks == sum(len(v) for v in sizes_per_tensor.values())
    for k, (lo, hi) in enumerate(ranges):
        n = hi - lo
        got = sizes_per_tensor[k]
        assert sum(got) == n
        assert len(got) == math.ceil(n / b)
        assert max(got) - min(got) <= 1


def test_partition_extremes_diagonal_and_whole_tensors():
    model = MLP((3, 4, 3))
    assert block_partition(model, 1).n_blocks == model.n_params
    whole = block_partition(model, 10_000, generator=gen(0))
    assert whole.n_blocks == 2 * model.n_layers
    assert sorted(g.size for g in whole.groups) == sorted([12, 4, 12, 3])


@pytest.mark.parametrize("b", [1, 3, 7, 100])
def test_partition_rows_and_cols_name_the_input_and_output_unit(b):
    """Params coded W_l[i, j] = 10000 l + 100 i + j (+ 50 for b_l[j], row i = fan_in) read back
    through the flat index of MLP.flatten give back (layer, row, col)."""
    model = MLP((3, 5, 4, 2))
    params = []
    for layer, (fi, fo) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        i = torch.arange(fi, dtype=D)[:, None]
        j = torch.arange(fo, dtype=D)[None, :]
        params.append(10000 * layer + 100 * i + j)
        params.append(10000 * layer + 100 * fi + 50 + torch.arange(fo, dtype=D))
    flat = model.flatten(tuple(params))
    part = block_partition(model, b, generator=gen(1))
    for group in part.groups:
        code = flat[group.index].long()
        fi = model.sizes[group.layer]
        is_bias = group.rows == fi
        assert torch.equal(code // 10000, torch.full_like(code, group.layer))
        rest = code % 10000
        assert torch.equal(torch.where(is_bias, torch.full_like(rest, fi), rest // 100), group.rows)
        assert torch.equal(torch.where(is_bias, rest % 100 - 50, rest % 100), group.cols)
        assert torch.equal(is_bias, (rest % 100) >= 50)


def test_partition_is_random_and_reproducible():
    model = MLP((2, 10, 5, 1))

    def key(p):
        return torch.cat([g.index.flatten() for g in p.groups])

    a, a2 = block_partition(model, 3, generator=gen(0)), block_partition(model, 3, generator=gen(0))
    c = block_partition(model, 3, generator=gen(1))
    assert torch.equal(key(a), key(a2))
    assert not torch.equal(key(a), key(c))
    moved = a.to("cpu")
    assert torch.equal(key(moved), key(a)) and moved.n_params == a.n_params


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None, "3"])
def test_partition_rejects_bad_block_size(bad):
    with pytest.raises(ValueError, match="max_block_size"):
        block_partition(MLP((2, 3, 1)), bad)


@pytest.mark.parametrize("bad", [torch.nn.Linear(2, 3), (2, 3, 1), None])
def test_partition_rejects_non_mlp(bad):
    with pytest.raises(TypeError, match="model"):
        block_partition(bad, 3)


# ============================================================================ 2. block Hessians

ACTS = ["gaussian", "tanh", "sigmoid", "relu"]


def _arch_for(sizes, loss):
    # cross entropy over a single output is constant (softmax of one logit): use three classes there
    return sizes if loss == "squared" or sizes[-1] > 1 else sizes[:-1] + (3,)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("sizes", ARCHS, ids=lambda s: "-".join(map(str, s)))
def test_block_hessians_equal_full_hessians(sizes, act, loss):
    sizes = _arch_for(sizes, loss)
    model, w, x, y = problem(sizes, act, loss, T=2, N=9, seed=zlib.crc32(repr((sizes, act, loss)).encode()) % 1000, scale=0.8)
    H_ref = ref_hessian(sizes, act, loss, w, x, y)
    H_func = full_hessian(model, w, x, y, loss=loss)
    assert H_func.shape == (2, model.n_params, model.n_params)
    assert H_ref.abs().max() > 1e-3  # not a vacuous comparison
    torch.testing.assert_close(H_func, H_ref, rtol=1e-9, atol=1e-11)
    g_ref = ref_grad(sizes, act, loss, w, x, y)
    for b in (1, 3, 7, 10_000):
        part = block_partition(model, b, generator=gen(b))
        value, g, hs = loss_grad_and_block_hessians(model, w, x, y, part, loss=loss)
        torch.testing.assert_close(value, ref_losses(sizes, act, loss, w, x, y), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
        assert len(hs) == len(part.groups)
        for group, h in zip(part.groups, hs):
            assert h.shape == (2, group.n_blocks, group.size, group.size)
            idx = group.index
            expected = H_ref[:, idx[:, :, None], idx[:, None, :]]
            torch.testing.assert_close(h, expected, rtol=1e-9, atol=1e-11)


def test_output_layer_block_is_kronecker_for_squared_loss():
    """ε = I at a linear output with ½‖f − y‖²: ∂²E/∂W_ij∂W_kl = δ_jl mean(z_i z_k) for the last W."""
    model, w, x, y = problem((2, 4, 3), "tanh", "squared", T=2, N=8, seed=9)
    part = block_partition(model, 10_000, generator=gen(0))
    _, _, hs = loss_grad_and_block_hessians(model, w, x, y, part)
    ps = ref_params(model.sizes, w[0])
    z = torch.tanh(x[0] @ ps[0] + ps[1])  # the output layer's input, [N, 4]
    zz = torch.cat([z, torch.ones(z.shape[0], 1, dtype=D)], 1)
    zz = (zz.T @ zz) / z.shape[0]
    (group, h), = [(g, h) for g, h in zip(part.groups, hs) if g.layer == 1 and g.size == 12]
    want = zz[group.rows[0][:, None], group.rows[0][None, :]] * (group.cols[0][:, None] == group.cols[0][None, :])
    torch.testing.assert_close(h[0, 0], want, rtol=1e-12, atol=1e-14)
    lam = torch.linalg.eigvalsh(h[0, 0])
    torch.testing.assert_close(lam[0::3], lam[1::3])  # every eigenvalue three times
    torch.testing.assert_close(lam[0::3], lam[2::3])


@pytest.mark.parametrize("sizes,act,loss", [((2, 6, 5, 1), "tanh", "squared"),
                                            ((3, 4, 3), "gaussian", "cross_entropy"),
                                            ((2, 3, 3, 3, 2), "sigmoid", "squared")])
def test_block_hessian_entries_match_central_differences_of_the_gradient(sizes, act, loss):
    model, w, x, y = problem(sizes, act, loss, T=2, N=10, seed=5)
    part = block_partition(model, 4, generator=gen(2))
    _, _, hs = loss_grad_and_block_hessians(model, w, x, y, part, loss=loss)
    eps = 1e-5
    checked = 0
    for group, h in zip(part.groups, hs):
        block = group.index[0]  # first block of every group; all of its columns
        for a, col in enumerate(block.tolist()):
            e = torch.zeros(model.n_params, dtype=D)
            e[col] = eps
            _, gp = loss_and_grad(model, w + e, x, y, loss=loss)
            _, gm = loss_and_grad(model, w - e, x, y, loss=loss)
            fd = (gp - gm)[:, block] / (2 * eps)  # column `a` of the block, both models
            torch.testing.assert_close(h[:, 0, :, a], fd, rtol=0, atol=1e-6)
            checked += 1
    assert checked >= 8


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_batched_models_equal_each_model_alone(loss):
    model, w, x, y = problem((2, 5, 4, 3), "gaussian", loss, T=3, N=7, seed=8)
    part = block_partition(model, 3, generator=gen(4))
    value, g, hs = loss_grad_and_block_hessians(model, w, x, y, part, loss=loss)
    for t in range(3):
        v1, g1, h1 = loss_grad_and_block_hessians(model, w[t:t + 1], x[t:t + 1], y[t:t + 1], part, loss=loss)
        torch.testing.assert_close(v1[0], value[t], rtol=1e-13, atol=0)
        torch.testing.assert_close(g1[0], g[t], rtol=1e-12, atol=1e-15)
        for a, b in zip(h1, hs):
            torch.testing.assert_close(a[0], b[t], rtol=1e-12, atol=1e-15)


def test_loss_helpers_agree_and_skip_hessians():
    model, w, x, y = problem((2, 6, 2), "sigmoid", "squared", T=2, N=5, seed=1)
    v, g, hs = loss_grad_and_block_hessians(model, w, x, y, None)
    assert hs == []
    v2, g2 = loss_and_grad(model, w, x, y)
    torch.testing.assert_close(v2, v, rtol=0, atol=0)
    torch.testing.assert_close(g2, g, rtol=0, atol=0)
    torch.testing.assert_close(mean_loss(model, w, x, y), v, rtol=1e-14, atol=0)
    # the library's mean loss is backprop2's ½‖f − y‖², not MLP.loss's mean over outputs
    torch.testing.assert_close(mean_loss(model, w, x, y), ref_losses(model.sizes, "sigmoid", "squared", w, x, y))


def test_int32_labels_work_for_cross_entropy():
    model, w, x, y = problem((2, 4, 3), "tanh", "cross_entropy", T=2, N=6, seed=2)
    part = block_partition(model, 3, generator=gen(0))
    a = loss_grad_and_block_hessians(model, w, x, y, part, loss="cross_entropy")
    b = loss_grad_and_block_hessians(model, w, x, y.to(torch.int32), part, loss="cross_entropy")
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    for h1, h2 in zip(a[2], b[2]):
        torch.testing.assert_close(h1, h2)


def test_hessian_argument_checks():
    model, w, x, y = problem((2, 4, 1), "tanh", "squared", T=2, N=6)
    with pytest.raises(ValueError, match="loss"):
        loss_and_grad(model, w, x, y, loss="mse")
    with pytest.raises(ValueError, match="w"):
        loss_and_grad(model, w[:, :-1], x, y)
    with pytest.raises(ValueError, match="x"):
        loss_and_grad(model, w, x[:1], y)
    with pytest.raises(ValueError, match="y"):
        loss_and_grad(model, w, x, y[..., 0])
    with pytest.raises(ValueError, match="y"):  # float "labels"
        loss_and_grad(model, w, x, y[..., 0], loss="cross_entropy")
    with pytest.raises(ValueError, match="partition"):
        loss_grad_and_block_hessians(model, w, x, y, block_partition(MLP((2, 5, 1)), 3))
    with pytest.raises(TypeError, match="model"):
        loss_and_grad(object(), w, x, y)


# ============================================================================ 3. step rules


def ref_step(H, g, rule, lr=0.1, max_step=1.0, damping=0.0):
    """Slow per-direction reference: numpy eigh and a python loop over eigendirections."""
    H = np.asarray(H, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    g_hat = V.T @ g
    step = np.zeros_like(g_hat)
    n_newton = 0
    for k in range(len(lam)):
        if rule == "saddle_free":
            step[k] = -g_hat[k] / (abs(lam[k]) + damping)
            n_newton += 1
            continue
        c = {"backprop2": abs(lam[k]), "newton": lam[k], "damped": lam[k] + damping}[rule]
        if max_step * abs(c) > abs(g_hat[k]):
            step[k] = -g_hat[k] / c
            n_newton += 1
        else:
            step[k] = -lr * g_hat[k]
    return V @ step, n_newton / len(lam)


def rotation(theta):
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


def _examples():
    rng = np.random.default_rng(0)
    R = rotation(0.7)
    Q3, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    A = rng.normal(size=(3, 3))
    return {
        "diag2": (np.diag([2.0, -0.5]), np.array([1.0, 3.0])),
        "diag2_both_newton": (np.diag([4.0, -3.0]), np.array([1.0, -2.0])),
        "rot2": (R @ np.diag([2.0, -0.5]) @ R.T, np.array([1.0, 3.0])),
        "rot2_pd": (R @ np.diag([5.0, 0.2]) @ R.T, np.array([-0.4, 0.9])),
        "diag3": (np.diag([3.0, -1.5, 0.05]), np.array([0.5, -1.0, 2.0])),
        "rot3": (Q3 @ np.diag([2.5, -0.8, 0.3]) @ Q3.T, np.array([0.6, 0.2, -1.1])),
        "rand3": (A + A.T, rng.normal(size=3)),
    }


EXAMPLES = _examples()


@pytest.mark.parametrize("rule", ["backprop2", "newton", "damped", "saddle_free"])
@pytest.mark.parametrize("name", list(EXAMPLES))
@pytest.mark.parametrize("lr,max_step,damping", [(0.1, 1.0, 0.0), (0.3, 0.5, 0.2), (0.05, 4.0, 1.0)])
def test_block_step_matches_per_direction_reference(name, rule, lr, max_step, damping):
    H, g = EXAMPLES[name]
    step, frac = block_step(torch.tensor(H), torch.tensor(g), rule=rule, lr=lr, max_step=max_step,
                            damping=damping)
    want, want_frac = ref_step(H, g, rule, lr, max_step, damping)
    np.testing.assert_allclose(step.numpy(), want, rtol=1e-10, atol=1e-12)
    assert float(frac) == pytest.approx(want_frac)


def test_known_backprop2_step_on_a_diagonal_block():
    # λ = 2 passes (2 > |1|): −1/2; λ = −0.5 fails (0.5 < 3): −lr·3
    step, frac = block_step(torch.tensor([[2.0, 0.0], [0.0, -0.5]], dtype=D), torch.tensor([1.0, 3.0], dtype=D),
                            lr=0.1)
    torch.testing.assert_close(step, torch.tensor([-0.5, -0.3], dtype=D))
    assert float(frac) == 0.5
    s, mask = eigen_step(torch.tensor([2.0, -0.5, -4.0], dtype=D), torch.tensor([1.0, 3.0, 2.0], dtype=D), lr=0.1)
    torch.testing.assert_close(s, torch.tensor([-0.5, -0.3, -0.5], dtype=D))
    assert mask.tolist() == [True, False, True]


def test_block_step_batched_equals_reference_block_by_block():
    g0 = gen(11)
    A = torch.randn(2, 5, 4, 4, generator=g0, dtype=D)
    H = A + A.transpose(-1, -2)
    g = torch.randn(2, 5, 4, generator=g0, dtype=D)
    for rule in ("backprop2", "newton", "damped", "saddle_free"):
        step, frac = block_step(H, g, rule=rule, lr=0.2, max_step=0.7, damping=0.3)
        assert step.shape == (2, 5, 4) and frac.shape == (2, 5)
        for t in range(2):
            for k in range(5):
                want, want_frac = ref_step(H[t, k].numpy(), g[t, k].numpy(), rule, 0.2, 0.7, 0.3)
                np.testing.assert_allclose(step[t, k].numpy(), want, rtol=1e-9, atol=1e-12)
                assert float(frac[t, k]) == pytest.approx(want_frac)


def test_block_step_uses_the_symmetric_part():
    g0 = gen(12)
    A = torch.randn(3, 3, generator=g0, dtype=D)
    g = torch.randn(3, generator=g0, dtype=D)
    sym = 0.5 * (A + A.T)
    torch.testing.assert_close(block_step(A, g)[0], block_step(sym, g)[0])
    torch.testing.assert_close(block_step(A.T, g)[0], block_step(sym, g)[0])


def test_newton_on_positive_definite_block_is_minus_inverse_hessian_times_gradient():
    g0 = gen(13)
    A = torch.randn(6, 5, 5, generator=g0, dtype=D)
    H = A @ A.transpose(-1, -2) + 0.5 * torch.eye(5, dtype=D)
    g = torch.randn(6, 5, generator=g0, dtype=D)
    step, frac = block_step(H, g, rule="newton", max_step=1e6)
    assert bool((frac == 1).all())
    torch.testing.assert_close(step, -torch.linalg.solve(H, g), rtol=1e-9, atol=1e-12)
    # on a positive definite block backprop2's |λ| rule is plain Newton
    torch.testing.assert_close(block_step(H, g, rule="backprop2", max_step=1e6)[0], step, rtol=1e-12, atol=1e-14)


def test_backprop2_flips_newton_exactly_along_negative_curvature():
    g0 = gen(14)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g0, dtype=D))
    lam = torch.tensor([-3.0, -0.7, 0.4, 2.0], dtype=D)
    H = Q @ torch.diag(lam) @ Q.T
    g = torch.randn(4, generator=g0, dtype=D)
    b2, f1 = block_step(H, g, rule="backprop2", max_step=1e6)
    nt, f2 = block_step(H, g, rule="newton", max_step=1e6)
    assert float(f1) == float(f2) == 1.0
    lam_e, V = torch.linalg.eigh(H)
    b2_hat, nt_hat = V.T @ b2, V.T @ nt
    neg = lam_e < 0
    torch.testing.assert_close(b2_hat[neg], -nt_hat[neg])  # opposite sign along λ < 0
    torch.testing.assert_close(b2_hat[~neg], nt_hat[~neg])  # identical along λ > 0
    assert bool((b2_hat[neg].abs() > 1e-3).all())  # and the difference is not vacuous
    assert float(g @ b2) < 0  # |λ| Newton is a descent direction
    torch.testing.assert_close(nt, -torch.linalg.solve(H, g))


def test_backprop2_step_is_always_a_descent_direction():
    g0 = gen(15)
    A = torch.randn(200, 5, 5, generator=g0, dtype=D)
    H = A + A.transpose(-1, -2)
    g = torch.randn(200, 5, generator=g0, dtype=D)
    for max_step in (0.1, 1.0, 10.0):
        step, _ = block_step(H, g, rule="backprop2", lr=0.1, max_step=max_step)
        assert bool(((step * g).sum(-1) < 0).all())


def test_saddle_free_is_minus_abs_hessian_plus_damping_inverse_times_gradient():
    g0 = gen(16)
    Q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g0, dtype=D))
    lam = torch.tensor([-2.0, -1e-3, 1e-3, 5.0], dtype=D)  # tiny eigenvalues: the guard would fail there
    H = Q @ torch.diag(lam) @ Q.T
    g = torch.randn(4, generator=g0, dtype=D)
    for delta in (0.1, 1.0):
        absH = Q @ torch.diag(lam.abs()) @ Q.T
        step, frac = block_step(H, g, rule="saddle_free", damping=delta)
        torch.testing.assert_close(step, -torch.linalg.solve(absH + delta * torch.eye(4, dtype=D), g))
        assert float(frac) == 1.0  # no guard


def test_damped_is_minus_shifted_inverse_when_positive_definite():
    g0 = gen(17)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g0, dtype=D))
    H = Q @ torch.diag(torch.tensor([-0.5, 0.3, 4.0], dtype=D)) @ Q.T  # indefinite, H + δI positive
    g = torch.randn(3, generator=g0, dtype=D)
    delta = 1.0
    step, frac = block_step(H, g, rule="damped", damping=delta, max_step=1e6)
    assert float(frac) == 1.0
    torch.testing.assert_close(step, -torch.linalg.solve(H + delta * torch.eye(3, dtype=D), g))
    # damping 0 is plain Newton
    torch.testing.assert_close(block_step(H, g, rule="damped", max_step=1e6)[0],
                               block_step(H, g, rule="newton", max_step=1e6)[0])


def test_newton_fraction_counts_guarded_directions():
    H = torch.diag(torch.tensor([2.0, 0.01, -3.0], dtype=D))
    g = torch.ones(3, dtype=D)
    for rule, want in (("backprop2", 2 / 3), ("newton", 2 / 3), ("saddle_free", 1.0)):
        _, frac = block_step(H, g, rule=rule, damping=0.1)
        assert float(frac) == pytest.approx(want)
    _, frac = block_step(H, g, max_step=1e-6)
    assert float(frac) == 0.0
    step, frac = block_step(H, g, max_step=1e-6, lr=0.25)  # every direction a gradient step
    torch.testing.assert_close(step, -0.25 * g)


def test_block_step_argument_errors():
    H = torch.eye(3, dtype=D)
    g = torch.ones(3, dtype=D)
    with pytest.raises(ValueError, match="hessians"):
        block_step(torch.eye(2, dtype=D), g)
    with pytest.raises(ValueError, match="grads"):
        block_step(H.expand(2, 3, 3), torch.ones(3, 3, dtype=D))
    with pytest.raises(ValueError, match="rule"):
        block_step(H, g, rule="sfn")
    with pytest.raises(ValueError, match="rule"):
        eigen_step(torch.ones(3, dtype=D), g, rule="Newton")
    for lr in (0.0, -1.0):
        with pytest.raises(ValueError, match="lr"):
            block_step(H, g, lr=lr)
    with pytest.raises(ValueError, match="max_step"):
        block_step(H, g, max_step=0.0)
    with pytest.raises(ValueError, match="damping"):
        block_step(H, g, damping=-0.1)


# ============================================================================ 4. optimisers in the one loop


def fixed(x, y):
    return lambda step: (x, y)


def GradientDescent(lr):  # noqa: N802 - chapter 4's name for plain SGD
    return SGD(lr, name="GD")


def train(model, w0, stepper, batches, n_steps, *, loss="squared", evaluate=None, eval_every=1, seed=0):
    """Chapter 4's use of the one loop: T models of an MLP, recorded every ``eval_every`` steps."""
    problem = MLPProblem(model, w0, batches, loss, evaluate, seed)
    return run(stepper, problem, n_steps, record_every=eval_every, keep_params=True)


def fresh_state(opt, model, w, batch, *, loss="squared", seed=0):
    """A second-order stepper's state for ``w`` on one fixed batch (blocks drawn with ``seed``)."""
    return opt.init(w, MLPProblem(model, w, fixed(*batch), loss, seed=seed))


def capture():
    """An evaluate() for train that also keeps every parameter vector it is shown."""
    seen = []

    def evaluate_with(model, x, y, loss="squared"):
        def evaluate(v):
            seen.append(v.clone())
            return mean_loss(model, v, x, y, loss=loss)
        return evaluate

    return seen, evaluate_with


def test_full_hessian_newton_solves_linear_least_squares_in_one_step():
    g0 = gen(20)
    model = MLP((3, 1), activation="sigmoid")  # no hidden layer: the activation is never used
    T, N = 2, 30
    x = torch.randn(T, N, 3, generator=g0, dtype=D)
    y = x @ torch.randn(T, 3, 1, generator=g0, dtype=D) + 0.5 + 0.1 * torch.randn(T, N, 1, generator=g0, dtype=D)
    w0 = torch.randn(T, model.n_params, generator=g0, dtype=D)
    opt = BlockNewton(max_block_size=None, rule="newton", max_step=1e8)
    state = fresh_state(opt, model, w0, (x, y), seed=0)
    w1 = opt.step(w0, None, state, None)
    for t in range(T):
        X1 = torch.cat([x[t], torch.ones(N, 1, dtype=D)], 1)
        sol = torch.linalg.lstsq(X1, y[t]).solution[:, 0]  # [W (3), b] = the flat layout
        torch.testing.assert_close(w1[t], sol, rtol=1e-9, atol=1e-10)
    assert state["newton_fraction"] == [1.0]
    # the gradient vanishes there
    _, g = loss_and_grad(model, w1, x, y)
    assert float(g.abs().max()) < 1e-10
    curve = train(model, w0, opt, fixed(x, y), 2)
    assert curve.info["newton_fraction"] == [1.0, 1.0]
    assert curve.name == "block Newton (newton, full)"
    lstsq_loss = mean_loss(model, w1, x, y).numpy()
    np.testing.assert_allclose(curve.losses[1], lstsq_loss, rtol=1e-10)
    np.testing.assert_allclose(curve.losses[2], lstsq_loss, rtol=1e-10)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_block_size_one_newton_is_diagonal_newton(loss):
    model, w, x, y = problem((2, 5, 3), "tanh", loss, T=2, N=15, seed=21, scale=0.7)
    lr, max_step = 0.05, 1.0
    opt = BlockNewton(max_block_size=1, rule="newton", lr=lr, max_step=max_step)
    state = fresh_state(opt, model, w, (x, y), seed=0)
    delta, value, g = opt.direction(model, w, (x, y), state, loss)
    H = ref_hessian(model.sizes, "tanh", loss, w, x, y)
    d = torch.diagonal(H, dim1=-2, dim2=-1)
    g_ref = ref_grad(model.sizes, "tanh", loss, w, x, y)
    newton = max_step * d.abs() > g_ref.abs()
    want = torch.where(newton, -g_ref / d, -lr * g_ref)
    assert 0 < int(newton.sum()) < newton.numel()  # both branches exercised
    torch.testing.assert_close(delta, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g, g_ref)
    assert state["newton_fraction"][-1] == pytest.approx(float(newton.to(D).mean()))


def test_whole_tensor_blocks_equal_full_hessian_sub_blocks():
    """With b at least every tensor's size the blocks are W_l and b_l: the step equals block_step
    applied to those diagonal sub-blocks of the full (autograd) Hessian.

    One output unit: with squared loss and several outputs the output-layer W block is
    (mean z zᵀ) ⊗ I, every eigenvalue repeated, and the per-direction guard can then split an
    eigenspace, so the step depends on eigh's arbitrary basis (see the Kronecker test below)."""
    model, w, x, y = problem((2, 4, 3, 1), "gaussian", "squared", T=2, N=10, seed=22, scale=0.8)
    opt = BlockNewton(max_block_size=64, rule="backprop2", lr=0.1, max_step=2.0)
    delta, _, _ = opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y), seed=5), "squared")
    H = ref_hessian(model.sizes, "gaussian", "squared", w, x, y)
    g = ref_grad(model.sizes, "gaussian", "squared", w, x, y)
    want = torch.zeros_like(w)
    for lo, hi in tensor_layout(model)[2]:
        want[:, lo:hi] = block_step(H[:, lo:hi, lo:hi], g[:, lo:hi], rule="backprop2", lr=0.1, max_step=2.0)[0]
    torch.testing.assert_close(delta, want, rtol=1e-9, atol=1e-12)


def test_full_hessian_saddle_free_newton():
    model, w, x, y = problem((2, 3, 1), "tanh", "squared", T=2, N=10, seed=23)
    delta_ = 0.3
    opt = BlockNewton(max_block_size=None, rule="saddle_free", damping=delta_)
    assert opt.name == "block Newton (saddle_free, full)"
    delta, _, _ = opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y)), "squared")
    H = ref_hessian(model.sizes, "tanh", "squared", w, x, y)
    g = ref_grad(model.sizes, "tanh", "squared", w, x, y)
    for t in range(2):
        lam, V = torch.linalg.eigh(H[t])
        assert bool((lam < 0).any())  # a genuinely indefinite example
        absH = V @ torch.diag(lam.abs() + delta_) @ V.T
        torch.testing.assert_close(delta[t], -torch.linalg.solve(absH, g[t]), rtol=1e-8, atol=1e-11)


def _regression(T=3, N=40, seed=30, sizes=(2, 8, 1), act="tanh"):
    g0 = gen(seed)
    model = MLP(sizes, activation=act)
    x = torch.rand(T, N, sizes[0], generator=g0, dtype=D) * 2 - 1
    y = torch.sin(3 * x[..., :1]) * torch.cos(2 * x[..., -1:])
    w0 = model.flatten(model.init(T, scheme="normal", generator=g0, dtype=D))
    return model, w0, x, y


def test_train_gradient_descent_equals_a_hand_written_loop():
    model, w0, x, y = _regression()
    xe, ye = x[:, :10], y[:, :10]

    def batches(step):  # a different mini-batch every step; batches(0) is not used for evaluation
        rows = torch.arange(10) + (step % 3) * 10
        return x[:, rows], y[:, rows]

    seen, evaluate_with = capture()
    lr, n = 0.3, 7
    curve = train(model, w0, GradientDescent(lr), batches, n, evaluate=evaluate_with(model, xe, ye))
    w = w0.clone()
    ws, losses = [w.clone()], [ref_losses(model.sizes, "tanh", "squared", w, xe, ye)]
    for step in range(1, n + 1):
        w = w - lr * ref_grad(model.sizes, "tanh", "squared", w, *batches(step))
        ws.append(w.clone())
        losses.append(ref_losses(model.sizes, "tanh", "squared", w, xe, ye))
    assert len(seen) == n + 1
    for a, b in zip(seen, ws):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(curve.losses, torch.stack(losses).detach().numpy(), rtol=1e-11)
    assert curve.steps.tolist() == list(range(n + 1))
    assert curve.losses.shape == (n + 1, 3)
    assert not curve.diverged.any() and (curve.diverged_at == -1).all()
    assert (np.diff(curve.seconds) >= 0).all() and curve.seconds[0] == 0
    assert curve.info == {} and curve.name == "GD"
    assert (w0 == seen[0]).all()  # w0 itself is not modified


def test_train_default_evaluation_and_eval_every():
    model, w0, x, y = _regression()
    curve = train(model, w0, GradientDescent(0.2), fixed(x, y), 10, eval_every=4)
    assert curve.steps.tolist() == [0, 4, 8, 10]
    w = w0.clone()
    want = {0: mean_loss(model, w, x, y)}
    for step in range(1, 11):
        w = w - 0.2 * loss_and_grad(model, w, x, y)[1]
        want[step] = mean_loss(model, w, x, y)
    np.testing.assert_allclose(curve.losses, torch.stack([want[s] for s in (0, 4, 8, 10)]).numpy(), rtol=1e-12)
    assert train(model, w0, GradientDescent(0.2), fixed(x, y), 0).losses.shape == (1, 3)


def test_adam_in_train_equals_torch_optim_adam_model_by_model():
    model, w0, x, y = _regression(T=3)
    lr, betas, eps, n = 0.02, (0.8, 0.95), 1e-7, 12
    seen, evaluate_with = capture()
    curve = train(model, w0, Adam(lr, betas, eps), fixed(x, y), n, evaluate=evaluate_with(model, x, y))
    for t in range(3):
        p = w0[t].clone().requires_grad_(True)
        opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
        for step in range(1, n + 1):
            opt.zero_grad()
            ref_loss(model.sizes, "tanh", "squared", p, x[t], y[t]).backward()
            opt.step()
            torch.testing.assert_close(seen[step][t], p.detach(), rtol=1e-11, atol=1e-12)
        assert curve.losses[-1, t] == pytest.approx(float(ref_loss(model.sizes, "tanh", "squared", p.detach(), x[t], y[t])),
                                                    rel=1e-10)


@pytest.mark.parametrize("which", ["linear", "tanh"])
def test_gradient_descent_line_search_decreases_monotonically(which):
    if which == "linear":  # a quadratic: linear least squares
        g0 = gen(31)
        model = MLP((3, 1))
        x = torch.randn(4, 25, 3, generator=g0, dtype=D) * torch.tensor([0.1, 1.0, 5.0], dtype=D)  # ill-conditioned
        y = torch.randn(4, 25, 1, generator=g0, dtype=D)
        w0 = torch.randn(4, model.n_params, generator=g0, dtype=D)
    else:
        model, w0, x, y = _regression(T=4)
    curve = train(model, w0, GradientDescentLineSearch(), fixed(x, y), 30)
    assert (np.diff(curve.losses, axis=0) <= 1e-12).all()
    assert (curve.losses[-1] < 0.5 * curve.losses[0]).all()


def test_block_newton_lowers_the_loss_of_a_gaussian_net():
    model, w0, x, y = _regression(T=4, N=100, seed=1, sizes=(2, 20, 1), act="gaussian")
    with_search = train(model, w0, BlockNewton(7, line_search=LineSearch()), fixed(x, y), 50)
    assert (np.diff(with_search.losses, axis=0) <= 1e-12).all()  # the search keeps the best step
    assert (with_search.losses[-1] < 0.1 * with_search.losses[0]).all()  # observed: < 0.002
    raw = train(model, w0, BlockNewton(7), fixed(x, y), 50)
    assert np.median(raw.losses[-1] / raw.losses[0]) < 0.5  # the plain method is not monotone per model
    fr = raw.info["newton_fraction"]
    assert len(fr) == 50 and all(0 <= f <= 1 for f in fr) and 0 < np.mean(fr) < 1
    assert raw.name == "block Newton (backprop2, b=7)"


def test_block_newton_trains_a_classifier():
    g0 = gen(32)
    model = MLP((2, 6, 3), activation="tanh")
    x = torch.randn(2, 60, 2, generator=g0, dtype=D)
    y = (x[..., 0] > 0).long() + (x[..., 1] > 0.5).long()
    w0 = model.flatten(model.init(2, generator=g0, dtype=D))
    curve = train(model, w0, BlockNewton(3, line_search=LineSearch()), fixed(x, y), 20, loss="cross_entropy")
    assert (curve.losses[-1] < 0.6 * curve.losses[0]).all()


def test_divergence_is_flagged_and_recorded_as_nan_from_then_on():
    model, w0, x, y = _regression(T=3)
    n = 60
    curve = train(model, w0, GradientDescent(1e6), fixed(x, y), n)
    assert curve.diverged.all()
    assert ((curve.diverged_at >= 1) & (curve.diverged_at <= n)).all()
    for t in range(3):  # finite before the divergence step, NaN (counted, never averaged) from it on
        k = curve.diverged_at[t]
        assert np.isfinite(curve.losses[:k, t]).all()
        assert np.isnan(curve.losses[k:, t]).all()
    assert bool(torch.isfinite(curve.params).all())  # frozen at the last finite parameters


def test_divergence_freezes_only_the_diverging_model():
    g0 = gen(33)
    model = MLP((3, 1))  # linear least squares: curvature mean(x xᵀ)
    x = torch.randn(3, 20, 3, generator=g0, dtype=D)
    y = torch.randn(3, 20, 1, generator=g0, dtype=D)
    x[1] *= 40.0  # curvature ~1600 for model 1 only: lr 0.3 is unstable there, fine for the others
    w0 = torch.randn(3, model.n_params, generator=g0, dtype=D)
    curve = train(model, w0, GradientDescent(0.3), fixed(x, y), 200)
    assert curve.diverged.tolist() == [False, True, False]
    assert curve.diverged_at[0] == curve.diverged_at[2] == -1 and curve.diverged_at[1] > 0
    assert np.isfinite(curve.losses[:, [0, 2]]).all()
    assert (curve.losses[-1, [0, 2]] < curve.losses[0, [0, 2]]).all()


def test_divergence_between_records_is_caught_where_it_happens():
    model, w0, x, y = _regression(T=3)
    curve = train(model, w0, GradientDescent(1e6), fixed(x, y), 60, eval_every=3)
    assert curve.diverged.all()
    finite_rows = curve.steps < curve.diverged_at.min()
    assert np.isfinite(curve.losses[finite_rows]).all()
    assert not np.isinf(curve.losses).any()  # never an inf in the record: NaN marks diverged models


def test_reuse_blocks_false_redraws_the_partition_every_step():
    model, w0, x, y = _regression(T=2, sizes=(2, 6, 1))

    def key(p):
        return torch.cat([g.index.flatten() for g in p.groups])

    for reuse in (True, False):
        opt = BlockNewton(3, reuse_blocks=reuse)
        state = fresh_state(opt, model, w0, (x, y), seed=0)
        first = key(state["partition"])
        w1 = opt.step(w0, None, state, None)
        second = key(state["partition"])
        opt.step(w1, None, state, None)
        third = key(state["partition"])
        if reuse:
            assert torch.equal(first, second) and torch.equal(second, third)
        else:  # the first step uses the draw made in init, every later step draws again
            assert torch.equal(first, second) and not torch.equal(second, third)
    a = train(model, w0, BlockNewton(3, reuse_blocks=True), fixed(x, y), 5)
    b = train(model, w0, BlockNewton(3, reuse_blocks=False), fixed(x, y), 5)
    np.testing.assert_array_equal(a.losses[:2], b.losses[:2])  # same first draw
    assert not np.allclose(a.losses[2:], b.losses[2:])
    # and the seed of train picks the blocks
    c = train(model, w0, BlockNewton(3), fixed(x, y), 3, seed=1)
    assert not np.allclose(a.losses[1:4], c.losses[1:])


@pytest.mark.parametrize("where", [0, -1])  # first weight of layer 1; last bias (output layer)
def test_non_finite_parameters_raise_naming_the_layer_and_model(where):
    model, w, x, y = _regression(T=3, sizes=(2, 5, 1), act="gaussian")
    w = w.clone()
    w[1, where] = float("inf")
    opt = BlockNewton(3)
    with pytest.raises(DivergenceError, match=r"layer 1 .*model\(s\) \[1\]"):
        opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y), seed=0), "squared")
    full = BlockNewton(None)
    with pytest.raises(DivergenceError, match=r"model\(s\) \[1\]"):
        full.direction(model, w, (x, y), fresh_state(full, model, w, (x, y)), "squared")
    # the loop does not catch it: the whole run stops (GD instead marks that model diverged at its start)
    with pytest.raises(DivergenceError, match=r"model\(s\) \[1\]"):
        train(model, w, BlockNewton(3), fixed(x, y), 2)
    curve = train(model, w, GradientDescent(0.1), fixed(x, y), 2)
    assert curve.diverged.tolist() == [False, True, False] and curve.diverged_at[1] == 0


def test_saddle_free_default_damping_survives_a_dead_relu_unit():
    model, w, x, y = _regression(T=1, sizes=(2, 5, 1), act="relu")
    ps = [p.clone() for p in model.unflatten(w)]
    ps[0][0, :, 0] = 0.0
    ps[1][0, 0] = -5.0  # hidden unit 0 never fires on x in [-1, 1]²
    w = model.flatten(tuple(ps))
    opt = BlockNewton(3, rule="saddle_free")
    delta, _, _ = opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y), seed=0), "squared")
    assert bool(torch.isfinite(delta).all())


def test_saddle_free_with_damping_handles_a_dead_relu_unit():
    model, w, x, y = _regression(T=1, sizes=(2, 5, 1), act="relu")
    ps = [p.clone() for p in model.unflatten(w)]
    ps[0][0, :, 0] = 0.0
    ps[1][0, 0] = -5.0
    w = model.flatten(tuple(ps))
    opt = BlockNewton(3, rule="saddle_free", damping=1e-3)
    delta, _, _ = opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y), seed=0), "squared")
    assert bool(torch.isfinite(delta).all())
    # backprop2's guard needs no damping: 0 curvature and 0 gradient give a zero step
    opt = BlockNewton(3)
    delta, _, _ = opt.direction(model, w, (x, y), fresh_state(opt, model, w, (x, y), seed=0), "squared")
    assert bool(torch.isfinite(delta).all())
    dead = torch.zeros(model.n_params, dtype=torch.bool)
    dead[torch.tensor([0, 5, 10])] = True  # W1[:, 0] (row-major, fan_out 5) and b1[0]
    assert bool((delta[0, dead] == 0).all())


def test_train_argument_errors():
    model, w0, x, y = _regression(T=2)
    opt = GradientDescent(0.1)
    for bad in (-1, 2.5, "3"):
        with pytest.raises(ValueError, match="n_steps"):
            train(model, w0, opt, fixed(x, y), bad)
    for bad_w in (w0[0], w0[:, :-1], w0[:, None]):
        with pytest.raises(ValueError, match="w0"):
            train(model, bad_w, opt, fixed(x, y), 1)
    with pytest.raises(ValueError, match="loss"):
        train(model, w0, opt, fixed(x, y), 1, loss="mse")
    with pytest.raises(ValueError, match="y"):
        train(model, w0, opt, fixed(x, y[..., 0]), 1)
    with pytest.raises(ValueError, match="y"):
        train(model, w0, opt, fixed(x, y[:1]), 1)
    with pytest.raises(ValueError, match="y"):
        train(model, w0, opt, fixed(x, y[..., 0]), 1, loss="cross_entropy")


def test_optimiser_argument_errors():
    for bad in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lr"):
            GradientDescent(bad)
        with pytest.raises(ValueError, match="lr"):
            Adam(bad)
        with pytest.raises(ValueError, match="lr"):
            BlockNewton(lr=bad)
        with pytest.raises(ValueError, match="max_step"):
            BlockNewton(max_step=bad)
    with pytest.raises(ValueError, match="betas"):
        Adam(0.1, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="rule"):
        BlockNewton(rule="gauss_newton")
    with pytest.raises(ValueError, match="damping"):
        BlockNewton(damping=-1.0)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_block_size"):
            BlockNewton(max_block_size=bad)
    assert BlockNewton().name == "block Newton (backprop2, b=7)"
    defaults = BlockNewton()
    assert (defaults.max_block_size, defaults.lr, defaults.max_step, defaults.reuse_blocks) == (7, 0.1, 1.0, True)


def test_eigh_survives_float32_denormal_blocks():
    # seen on MNIST: pixels that are almost always 0 give block entries around 1e-38, and float32
    # LAPACK eigh returns NaN for such blocks; the scaled decomposition must stay finite and exact
    from backprop2lib.second_order.steps import symmetric_eigh
    H = torch.zeros(2, 7, 7)
    H[0, 0, 0], H[0, 4, 4], H[0, 3, 3], H[0, 3, 6], H[0, 6, 3] = -1.1e-7, -1.2e-3, -1.3e-38, -1.7e-37, -1.7e-37
    H[0, 0, 4] = H[0, 4, 0] = 1.2e-16
    H[1] = torch.diag(torch.arange(1.0, 8.0))
    lam, V = symmetric_eigh(H)
    assert bool(torch.isfinite(lam).all() and torch.isfinite(V).all())
    torch.testing.assert_close(V @ torch.diag_embed(lam) @ V.transpose(-1, -2), H, atol=1e-9, rtol=0)
    step, _ = block_step(H, torch.ones(2, 7))
    assert bool(torch.isfinite(step).all())
