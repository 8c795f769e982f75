"""Editing an adapted reconstructor's parameters moves, turns, brightens its picture.

A reconstructor f(x; w) maps a pixel coordinate x ∈ [−1, 1]² to brightness. Its first layer
sees x only through a = x W₁ + b₁, and its output is y = h W_L + b_L. So, exactly:

- translation by δ, f'(x) = f(x − δ):          b₁ ← b₁ − δ W₁
- a linear map A (rotation, scaling), f'(x) = f(A⁻¹x):  W₁ ← A⁻ᵀ W₁
- brightness (contrast about the background) k:  W_L ← k W_L
- background β:                                  b_L ← b_L + β

This is backprop2's argument for why a class model can meet a shifted, rotated or fainter
digit with a few parameter changes instead of a new fit. Every function takes flat parameters
``w`` ([P] or [T, P], the layout of ``MLP.flatten``) and returns edited copies.
"""

from __future__ import annotations

import math

import torch

from ..models.mlp import MLP


def _check(model: MLP, w: torch.Tensor) -> None:
    if model.sizes[0] != 2:
        raise ValueError(f"model: expected 2 inputs (pixel coordinates), got sizes {model.sizes}")
    if w.dim() not in (1, 2) or w.shape[-1] != model.n_params:
        raise ValueError(f"w: expected flat parameters [P] or [T, P] with P = {model.n_params}, got {tuple(w.shape)}")


def _edit(model: MLP, w: torch.Tensor, change) -> torch.Tensor:
    _check(model, w)
    out = w.clone()
    change(model.unflatten(out))  # views into ``out``: edited in place
    return out


def translate(model: MLP, w: torch.Tensor, shift) -> torch.Tensor:
    """The picture moved by ``shift = (dx, dy)`` in coordinate units (2/27 per pixel; +dy is up)."""
    def change(p):
        delta = torch.as_tensor(shift, dtype=w.dtype, device=w.device)
        if delta.shape != (2,):
            raise ValueError(f"shift: expected (dx, dy), got {tuple(delta.shape)}")
        p[1].sub_(delta @ p[0])
    return _edit(model, w, change)


def linear_map(model: MLP, w: torch.Tensor, matrix) -> torch.Tensor:
    """The picture transformed by the invertible 2×2 ``matrix`` A about the centre: f'(x) = f(A⁻¹x)."""
    a = torch.as_tensor(matrix, dtype=w.dtype, device=w.device)
    if a.shape != (2, 2):
        raise ValueError(f"matrix: expected a 2x2 matrix, got shape {tuple(a.shape)}")
    if not abs(float(torch.linalg.det(a))) > 1e-12:
        raise ValueError("matrix: expected an invertible map (determinant is 0)")
    inverse_t = torch.linalg.inv(a).T

    def change(p):
        p[0].copy_(inverse_t @ p[0])
    return _edit(model, w, change)


def rotation_matrix(angle_degrees: float) -> torch.Tensor:
    """Anticlockwise rotation (the row axis points up in the coordinate grid)."""
    t = math.radians(angle_degrees)
    return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)


def rotate(model: MLP, w: torch.Tensor, angle_degrees: float) -> torch.Tensor:
    return linear_map(model, w, rotation_matrix(angle_degrees))


def zoom(model: MLP, w: torch.Tensor, factor: float) -> torch.Tensor:
    """The picture scaled by ``factor`` about the centre (> 1: larger)."""
    if not factor > 0:
        raise ValueError(f"factor: expected a positive scale factor, got {factor!r}")
    return linear_map(model, w, torch.eye(2, dtype=torch.float64) * factor)


def brighten(model: MLP, w: torch.Tensor, factor: float) -> torch.Tensor:
    """Output weights times ``factor``: the strokes' contrast against the background changes."""
    def change(p):
        p[-2].mul_(factor)
    return _edit(model, w, change)


def shift_background(model: MLP, w: torch.Tensor, offset: float) -> torch.Tensor:
    """Output bias plus ``offset``: the whole picture, background included, gets brighter."""
    def change(p):
        p[-1].add_(offset)
    return _edit(model, w, change)
