"""Exact within-block Hessians of an MLP's loss, without forming the full Hessian.

For one data point, let ``a`` be a layer's pre-activations and ``z`` its input. ``a`` is linear
in the layer's weights, ``a_j = Σ_i z_i W_ij + b_j``, and ``z`` does not depend on them, so

    ∂²E/∂W_ij ∂W_kl = ε_jl z_i z_k,      ε = ∂²E/∂a ∂aᵀ,

exactly (a bias is a weight from a constant input 1). ε comes from a second-order backward pass:
at the (linear) output ε = H^y, the Hessian of the loss in the network output; one layer down,

    ε = diag(f′(a)) W ε⁺ Wᵀ diag(f′(a)) + diag(f″(a) ⊙ ∂E/∂h),

with ``h = f(a)`` the layer's output, ``W`` the next layer's weights and ε⁺ the next layer's ε.
Averaging ε_jl z_i z_k over the batch only for the (i, j), (k, l) pairs inside a block costs
O(N · P · b), linear in the number of parameters P for a fixed block size b.

Everything is batched over T independent models (flat parameters ``[T, P]``, data ``[T, N, ·]``).
Losses, per data point, averaged over the batch:

* ``"squared"``: ½‖f − y‖² (backprop2's error), ``y: [T, N, out]``, H^y = I;
* ``"cross_entropy"``: −log softmax(f)_y, ``y``: integer labels ``[T, N]``, H^y = diag(p) − ppᵀ.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..models.activations import activation_derivatives
from ..models.mlp import MLP
from ..optim.errors import DivergenceError
from .blocks import BlockPartition

LOSSES = ("squared", "cross_entropy")

# element budget for the gathered [T, N, blocks, s, s] products; bounds memory for any P
_CHUNK_ELEMENTS = 1 << 23


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    return loss


def _check(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss: str) -> None:
    if not isinstance(model, MLP):
        raise TypeError(f"model: block Hessians are implemented for backprop2lib.models.MLP, got {type(model).__name__}")
    _check_loss(loss)
    if w.dim() != 2 or w.shape[1] != model.n_params:
        raise ValueError(f"w: expected flat parameters [T, {model.n_params}], got {tuple(w.shape)}")
    T = w.shape[0]
    if x.dim() != 3 or x.shape[0] != T or x.shape[2] != model.sizes[0]:
        raise ValueError(f"x: expected shape [{T}, N, {model.sizes[0]}], got {tuple(x.shape)}")
    if loss == "squared":
        if tuple(y.shape) != (T, x.shape[1], model.sizes[-1]):
            raise ValueError(f"y: expected targets [{T}, {x.shape[1]}, {model.sizes[-1]}], got {tuple(y.shape)}")
    else:
        if tuple(y.shape) != (T, x.shape[1]) or y.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"y: expected integer labels [{T}, {x.shape[1]}], got {tuple(y.shape)} {y.dtype}")


def output_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-point loss ``[T, N]`` of network outputs ``out: [T, N, o]``."""
    if loss == "squared":
        return 0.5 * (out - y).pow(2).sum(-1)
    return -torch.log_softmax(out, -1).gather(-1, y.unsqueeze(-1).long()).squeeze(-1)


def mean_loss(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss: str = "squared") -> torch.Tensor:
    """The batch-averaged loss per model ``[T]`` (values only; used by line searches)."""
    _check(model, w, x, y, loss)
    return output_loss(model.forward(model.unflatten(w), x, check=False), y, loss).mean(1)


def loss_and_grad(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  loss: str = "squared") -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-averaged loss ``[T]`` and its gradient ``[T, P]`` (first-order methods)."""
    value, grad, _ = loss_grad_and_block_hessians(model, w, x, y, None, loss=loss)
    return value, grad


def loss_grad_and_block_hessians(
    model: MLP,
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    partition: BlockPartition | None,
    *,
    loss: str = "squared",
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Loss ``[T]``, gradient ``[T, P]`` and one ``[T, n_blocks, s, s]`` Hessian per block group.

    ``partition=None`` skips the Hessians (a plain forward and backward pass).
    """
    _check(model, w, x, y, loss)
    if partition is not None and partition.n_params != model.n_params:
        raise ValueError(f"partition: made for {partition.n_params} parameters, the model has {model.n_params}")
    T, N, _ = x.shape
    params = model.unflatten(w)
    L = model.n_layers
    need_h = partition is not None
    # forward, keeping each layer's input (with a constant 1 for the bias) and activation slopes
    inputs, slopes, curvatures = [], [], []
    h = x
    for layer in range(L):
        inputs.append(h)
        a = torch.baddbmm(params[2 * layer + 1].unsqueeze(1), h, params[2 * layer])
        if layer < L - 1:
            h, d1, d2 = activation_derivatives(model.activation, a)
            slopes.append(d1)
            curvatures.append(d2)
        else:
            h = a
    out = h
    value = output_loss(out, y, loss).mean(1)
    # output layer: gradient and Hessian of the per-point loss in the output
    if loss == "squared":
        delta = out - y
        eps = torch.eye(out.shape[-1], dtype=w.dtype, device=w.device).expand(T, N, -1, -1) if need_h else None
    else:
        p = torch.softmax(out, -1)
        delta = p - torch.nn.functional.one_hot(y.long(), out.shape[-1]).to(p.dtype)
        eps = (torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)) if need_h else None
    epsilons: list[torch.Tensor | None] = [None] * L
    grads: list[torch.Tensor] = [None] * (2 * L)  # type: ignore[list-item]
    for layer in reversed(range(L)):
        grads[2 * layer] = torch.bmm(inputs[layer].transpose(1, 2), delta) / N
        grads[2 * layer + 1] = delta.mean(1)
        epsilons[layer] = eps
        if layer > 0:
            W = params[2 * layer]  # [T, in, out]
            back = delta.matmul(W.transpose(1, 2))  # ∂E/∂h of the layer below, [T, N, in]
            if need_h:
                # W ε Wᵀ per point: [T, N, in, in]
                wew = torch.matmul(torch.matmul(W.unsqueeze(1), eps), W.transpose(1, 2).unsqueeze(1))
                s = slopes[layer - 1]
                eps = s.unsqueeze(-1) * wew * s.unsqueeze(-2) + torch.diag_embed(curvatures[layer - 1] * back)
            delta = back * slopes[layer - 1]
    grad = torch.cat([g.reshape(T, -1) for g in grads], dim=1)
    hessians: list[torch.Tensor] = []
    if need_h:
        for group in partition.groups:
            hessians.append(_group_hessian(inputs[group.layer], epsilons[group.layer], group.rows, group.cols))
    return value, grad, hessians


def _group_hessian(z: torch.Tensor, eps: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """mean_n ε_n[j_a, j_b] z_n[i_a] z_n[i_b] for every block, in chunks of blocks.

    The data axis goes last so the gathers are contiguous ``index_select`` calls and the sum over
    data points is a batched matmul (about 5x faster than an einsum over gathered tensors).
    """
    T, N, _ = z.shape
    o = eps.shape[-1]
    z1 = torch.cat([z, torch.ones(T, N, 1, dtype=z.dtype, device=z.device)], dim=-1)
    z_last = z1.transpose(1, 2).contiguous()  # [T, in + 1, N]
    eps_last = eps.reshape(T, N, o * o).transpose(1, 2).contiguous()  # [T, o·o, N]
    n_blocks, s = rows.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, T * N * s * s))
    out = []
    for start in range(0, n_blocks, chunk):
        r, c = rows[start:start + chunk], cols[start:start + chunk]
        k = r.shape[0]
        pairs = (c.unsqueeze(-1) * o + c.unsqueeze(-2)).reshape(-1)
        e = torch.index_select(eps_last, 1, pairs).reshape(T, k, s, s, N)  # ε[j_a, j_b] per point
        q = torch.index_select(z_last, 1, r.reshape(-1)).reshape(T, k, s, N)  # z[i_a] per point
        e.mul_(q.unsqueeze(-3))  # ε[j_a, j_b] z[i_b]
        out.append(torch.matmul(e, q.unsqueeze(-1)).squeeze(-1) / N)  # Σ_n (...) z[i_a]
    return torch.cat(out, dim=1)


def full_hessian(model: MLP, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 loss: str = "squared") -> torch.Tensor:
    """The full Hessian ``[T, P, P]`` by ``torch.func`` (small problems, tests, saddle-free Newton)."""
    _check(model, w, x, y, loss)

    def single(wi: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = model.forward(model.unflatten(wi.unsqueeze(0)), xi.unsqueeze(0), check=False)
        return output_loss(out, yi.unsqueeze(0), loss).mean()

    hess: Callable = torch.func.hessian(single)
    return torch.func.vmap(hess)(w, x, y)


def check_finite_hessians(hessians: list[torch.Tensor], partition: BlockPartition, where: str = "") -> None:
    """Raise :class:`DivergenceError`, naming the layer and the models, when a block Hessian has NaN or inf."""
    for h, group in zip(hessians, partition.groups):
        bad = ~torch.isfinite(h).flatten(1).all(1)
        if bool(bad.any()):
            models = bad.nonzero().flatten().tolist()
            raise DivergenceError(f"{where + ': ' if where else ''}non-finite block Hessian in layer "
                                  f"{group.layer + 1} (block size {group.size}) for model(s) {models}")
