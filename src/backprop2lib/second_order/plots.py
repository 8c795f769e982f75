"""Figures for the second-order chapter, in the house style of :mod:`backprop2lib.plotting`."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch


# one colour per optimiser family, shades for block sizes; stable across figures
COLORS = {
    "GD": "#999999",
    "GD + line search": "#444444",
    "Adam": "#0b5394",
    "Newton": "#cc0000",
    "|λ| Newton": "#38761d",
    "saddle-free Newton": "#b45f06",
}
_BLOCK_SHADES = ["#93c47d", "#6aa84f", "#38761d", "#274e13", "#0c343d"]


def curve_color(name: str) -> str:
    if name in COLORS:
        return COLORS[name]
    if "newton," in name:  # plain Newton rule
        return COLORS["Newton"]
    if "saddle_free" in name:
        return COLORS["saddle-free Newton"]
    sizes = ["b=1", "b=7", "b=32", "full"]
    for i, s in enumerate(sizes):
        if s in name:
            return _BLOCK_SHADES[i + (1 if "line search" in name and i < 3 else 0)]
    return "#a64d79"


def mean_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% CI half-width (Student's t) over the model axis (last), ignoring NaN (diverged) entries."""
    n = np.isfinite(values).sum(-1)
    mean = np.nanmean(values, -1)
    sd = np.nanstd(values, -1, ddof=1) if values.shape[-1] > 1 else np.zeros_like(mean)
    from scipy.stats import t

    quantile = t.ppf(0.975, np.maximum(n - 1, 1))  # Student's t: a handful of initialisations
    return mean, np.where(n > 1, quantile * sd / np.sqrt(np.maximum(n, 1)), 0.0)


def plot_training_curves(ax, curves: Sequence, *, x: str = "steps", title: str = "", ylabel: str = "training loss",
                         logy: bool = True, styles: Mapping[str, str] | None = None) -> None:
    """Mean loss with a 95% CI band over the models, against steps or training wall time."""
    if x not in ("steps", "seconds"):
        raise ValueError(f"x: expected 'steps' or 'seconds', got {x!r}")
    for curve in curves:
        xs = curve.steps if x == "steps" else curve.seconds
        mean, ci = mean_band(curve.losses)
        color = curve_color(curve.name)
        ls = (styles or {}).get(curve.name, "-")
        ax.plot(xs, mean, color=color, ls=ls, label=curve.name)
        ax.fill_between(xs, np.maximum(mean - ci, 1e-12) if logy else mean - ci, mean + ci,
                        color=color, alpha=0.15, lw=0)
    if logy:
        ax.set_yscale("log")
    if x == "seconds":
        ax.set_xscale("log")
    ax.set(xlabel="optimiser steps" if x == "steps" else "training wall time (s)", ylabel=ylabel, title=title)


def plot_contours(ax, f: Callable[[torch.Tensor], torch.Tensor], lo: tuple[float, float], hi: tuple[float, float],
                  *, n: int = 200, levels: int = 30, shade_concave: bool = True) -> None:
    """Contours of a 2-D test function, with the region of negative curvature shaded."""
    from .toy import derivatives

    xs = torch.linspace(lo[0], hi[0], n, dtype=torch.float64)
    ys = torch.linspace(lo[1], hi[1], n, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([X, Y], -1).reshape(-1, 2)
    Z = f(pts).reshape(n, n)
    ax.contour(X.numpy(), Y.numpy(), Z.numpy(), levels=levels, colors="#bbbbbb", linewidths=0.6)
    if shade_concave:
        _, _, H = derivatives(f, pts)
        concave = (torch.linalg.eigvalsh(H)[:, 0] < 0).reshape(n, n).to(torch.float64)
        ax.contourf(X.numpy(), Y.numpy(), concave.numpy(), levels=[0.5, 1.5], colors=["#fce5cd"], alpha=0.7)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), aspect="equal")


def plot_paths(ax, paths: Mapping[str, torch.Tensor], *, colors: Mapping[str, str] | None = None) -> None:
    """Optimiser trajectories ``[steps + 1, M, 2]`` on top of a contour plot; starts marked."""
    for name, path in paths.items():
        color = (colors or COLORS).get(name, "#a64d79")
        p = path.numpy()
        for m in range(p.shape[1]):
            ax.plot(p[:, m, 0], p[:, m, 1], color=color, lw=1.2, marker=".", ms=3,
                    label=name if m == 0 else None)
        ax.plot(p[0, :, 0], p[0, :, 1], "k.", ms=6)
