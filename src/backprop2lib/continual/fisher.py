"""The diagonal Fisher information of a classifier MLP, batched over models, and the overlap of two.

For a network with class probabilities p(y | x, θ), the Fisher of data D is
F = E_{x∈D} E_{y∼p(·|x,θ)} [∇ log p(y|x) ∇ log p(y|x)ᵀ]; elastic weight consolidation keeps its
diagonal (Kirkpatrick et al. 2017). ``kind="true"`` takes the inner expectation exactly, over all
classes weighted by p; ``kind="empirical"`` uses the data's own labels instead (cheaper, and a
different quantity far from a minimum: Kunstner et al. 2019).

No per-example gradient is ever formed. For a layer a = h W + b, the per-example gradient of W is
the outer product h δᵀ of the layer's input and the gradient at its pre-activation, so its square's
mean over examples is (h²)ᵀ (δ²) / N: one matmul per layer. The true Fisher backpropagates one δ
per class (backpropagation is linear in the output gradient) and weights the squares by p.
"""

from __future__ import annotations

import math

import torch

from ..models.activations import activation_and_slope
from ..models.mlp import MLP

__all__ = ["FISHER_KINDS", "diagonal_fisher", "fisher_overlap", "layer_slices"]

FISHER_KINDS = ("true", "empirical")


def layer_slices(model: MLP) -> list[tuple[str, slice]]:
    """Where each weight matrix and bias vector sits in the flat parameter vector: ("W1", slice), ("b1", ...), ..."""
    out, start = [], 0
    for k, shape in enumerate(model.shapes):
        size = math.prod(shape)
        out.append((f"{'Wb'[k % 2]}{k // 2 + 1}", slice(start, start + size)))
        start += size
    return out


def _check(model: MLP, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None) -> None:
    if flat.dim() != 2 or flat.shape[1] != model.n_params:
        raise ValueError(f"params: expected flat parameters [R, {model.n_params}], got {tuple(flat.shape)}")
    if x.dim() != 3 or x.shape[0] != flat.shape[0] or x.shape[2] != model.sizes[0]:
        raise ValueError(f"x: expected [R, N, {model.sizes[0]}] with R = {flat.shape[0]}, got {tuple(x.shape)}")
    if y is not None and tuple(y.shape) != tuple(x.shape[:2]):
        raise ValueError(f"y: expected labels [R, N] = {tuple(x.shape[:2])}, got {tuple(y.shape)}")


def diagonal_fisher(model: MLP, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None = None, *,
                    kind: str = "true", chunk: int = 256) -> torch.Tensor:
    """The diagonal Fisher ``[R, P]`` of each of R models ``flat [R, P]`` on its data ``x [R, N, in]``.

    ``kind="true"``: expectation over the model's own predictive distribution (``y`` unused);
    ``kind="empirical"``: squared gradients of −log p(y|x) at the labels ``y [R, N]``.
    Examples are processed ``chunk`` at a time (memory), and the result is their mean.
    """
    if kind not in FISHER_KINDS:
        raise ValueError(f"kind: expected one of {FISHER_KINDS}, got {kind!r}")
    if kind == "empirical" and y is None:
        raise ValueError("y: the empirical Fisher needs the labels y [R, N]")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive number of examples per pass, got {chunk!r}")
    _check(model, flat, x, y)
    R, N, _ = x.shape
    params = model.unflatten(flat.detach())
    total = torch.zeros_like(flat)
    for start in range(0, N, chunk):
        xs = x[:, start:start + chunk]
        ys = None if y is None else y[:, start:start + chunk]
        total += _fisher_sum(model, params, xs, ys, kind)
    return total / N


def _fisher_sum(model: MLP, params, x: torch.Tensor, y: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Σ over the examples of x of the squared log-likelihood gradients, flat ``[R, P]``."""
    inputs, slopes, h = [], [], x
    for layer in range(model.n_layers):
        inputs.append(h)
        a = torch.baddbmm(params[2 * layer + 1].unsqueeze(1), h, params[2 * layer])
        if layer < model.n_layers - 1:
            h, slope = activation_and_slope(model.activation, a)
            slopes.append(slope)
        else:
            h = a
    p = torch.softmax(h, -1)  # [R, n, C]
    C = p.shape[-1]
    if kind == "empirical":
        delta = (p - torch.nn.functional.one_hot(y, C).to(p.dtype)).unsqueeze(2)  # [R, n, 1, C]
        weight = torch.ones_like(p[..., :1])  # [R, n, 1]
    else:
        delta = p.unsqueeze(2) - torch.eye(C, dtype=p.dtype, device=p.device)  # [R, n, c, C]: class c's gradient
        weight = p  # [R, n, c]
    grads = [None] * (2 * model.n_layers)
    for layer in reversed(range(model.n_layers)):
        sq = (weight.unsqueeze(-1) * delta.pow(2)).sum(2)  # [R, n, out]: Σ_c p_c δ_c²
        grads[2 * layer] = torch.bmm(inputs[layer].pow(2).transpose(1, 2), sq)  # Σ_n h² δ²
        grads[2 * layer + 1] = sq.sum(1)
        if layer > 0:
            delta = delta.matmul(params[2 * layer].transpose(-1, -2).unsqueeze(1)) * slopes[layer - 1].unsqueeze(2)
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads], -1)


def fisher_overlap(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Overlap of two diagonal Fishers along the last axis, in [0, 1] (1: proportional).

    Kirkpatrick et al.'s overlap 1 − ½ tr(F̂a + F̂b − 2 (F̂a F̂b)^½) of the trace-normalised matrices; for
    diagonal matrices it is Σ_i √(f̂a_i f̂b_i), the Bhattacharyya coefficient of the two normalised diagonals.
    """
    if fa.shape != fb.shape:
        raise ValueError(f"fa, fb: expected equal shapes, got {tuple(fa.shape)} and {tuple(fb.shape)}")
    if bool((fa < 0).any()) or bool((fb < 0).any()):
        raise ValueError("fa, fb: a diagonal Fisher is never negative")
    na, nb = fa.sum(-1, keepdim=True), fb.sum(-1, keepdim=True)
    if bool((na == 0).any()) or bool((nb == 0).any()):
        raise ValueError("fa, fb: a Fisher that is zero everywhere has no overlap to speak of")
    return (fa / na * fb / nb).sqrt().sum(-1)
