"""What a class model sees and draws, and how trustworthy its probabilities are.

``reconstructions`` and ``hidden_maps`` evaluate a reconstructor on the pixel grid, so a
fitted parameter vector becomes a picture (its output) and one picture per hidden unit (what
that unit responds to). ``calibration`` bins predicted confidences against accuracy (the
reliability diagram) and gives the expected calibration error. The ``plot_*`` helpers draw
these in the house style.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.mnist import SIDE
from ..models.activations import activation
from ..models.mlp import MLP
from .images import coordinate_grid


def _grid_for(model: MLP, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if model.sizes[0] != 2:
        raise ValueError(f"model: expected 2 inputs (pixel coordinates), got sizes {model.sizes}")
    if w.dim() not in (1, 2) or w.shape[-1] != model.n_params:
        raise ValueError(f"w: expected flat parameters [P] or [T, P] with P = {model.n_params}, got {tuple(w.shape)}")
    w = w[None] if w.dim() == 1 else w
    x = coordinate_grid(SIDE, device=w.device, dtype=w.dtype).expand(w.shape[0], -1, -1)
    return w, x


def reconstructions(model: MLP, w: torch.Tensor) -> torch.Tensor:
    """The pictures ``[T, 28, 28]`` that parameters ``w`` ([P] or [T, P]) draw on the pixel grid (not clipped)."""
    w, x = _grid_for(model, w)
    with torch.no_grad():
        out = model.forward(model.unflatten(w), x)
    return out[..., 0].reshape(-1, SIDE, SIDE)


def hidden_maps(model: MLP, w: torch.Tensor, layer: int = 0) -> torch.Tensor:
    """Each hidden unit's activation over the grid, ``[T, H, 28, 28]`` (``layer`` 0 = first hidden layer)."""
    if not 0 <= layer < model.n_layers - 1:
        raise ValueError(f"layer: expected a hidden layer 0..{model.n_layers - 2}, got {layer!r}")
    w, x = _grid_for(model, w)
    p = model.unflatten(w)
    h = x
    with torch.no_grad():
        for i in range(layer + 1):
            h = activation(model.activation, h @ p[2 * i] + p[2 * i + 1][:, None, :])
    return h.permute(0, 2, 1).reshape(w.shape[0], -1, SIDE, SIDE)


@dataclass
class Calibration:
    """Reliability of the top-class probability, in ``bins`` equal-width confidence bins."""

    edges: np.ndarray  # [bins + 1]
    confidence: np.ndarray  # mean top probability per bin (NaN where empty) [bins]
    accuracy: np.ndarray  # fraction correct per bin [bins]
    counts: np.ndarray  # images per bin [bins]
    ece: float  # expected calibration error: Σ_b (n_b / N) |accuracy_b − confidence_b|


def calibration(probabilities, labels, bins: int = 10) -> Calibration:
    """Bin the images by their top probability and compare confidence with accuracy."""
    p = probabilities.numpy() if isinstance(probabilities, torch.Tensor) else np.asarray(probabilities)
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[0] == 0:
        raise ValueError(f"probabilities: expected [N, C] with N = len(labels) = {y.shape[0]} >= 1, got {p.shape}")
    if not np.allclose(p.sum(1), 1, atol=1e-4):
        raise ValueError("probabilities: rows must sum to 1")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins: expected a positive int, got {bins!r}")
    top = p.max(1)
    correct = (p.argmax(1) == y).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=top, minlength=bins) / counts
        acc = np.bincount(which, weights=correct, minlength=bins) / counts
    ece = float(np.nansum(counts / len(y) * np.abs(acc - conf)))
    return Calibration(edges, conf, acc, counts, ece)


def plot_images(axes, images, titles=None, *, vmin: float = 0.0, vmax: float = 1.0) -> None:
    """One grey-scale picture per axis (``images``: [K, 28, 28] tensor or array), without ticks."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    for i, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)


def plot_reliability(ax, cal: Calibration, *, label: str = "") -> None:
    centres = (cal.edges[:-1] + cal.edges[1:]) / 2
    ok = cal.counts > 0
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls=":")
    ax.plot(centres[ok], cal.accuracy[ok], "o-", ms=4, label=f"{label} (ECE {cal.ece:.3f})".strip())
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy")


def plot_confusion(ax, matrix: np.ndarray, names=None) -> None:
    """Row-normalised confusion matrix with the counts written in."""
    matrix = np.asarray(matrix)
    rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    n = matrix.shape[0]
    names = names or [str(i) for i in range(n)]
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names, xlabel="predicted", ylabel="true")
    ax.grid(False)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
