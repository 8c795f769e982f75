"""Figures for the second-order chapter's toy problems, in the house style of :mod:`backprop2lib.plotting`
(training curves are :func:`backprop2lib.plotting.plot_curves`)."""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from .. import methods


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
    """Optimiser trajectories ``[steps + 1, M, 2]`` on top of a contour plot; starts marked. Colours:
    ``colors[name]`` where given, else the method's (:mod:`backprop2lib.methods`)."""
    for name, path in paths.items():
        color = colors[name] if colors and name in colors else methods.color(name)
        p = path.numpy()
        for m in range(p.shape[1]):
            ax.plot(p[:, m, 0], p[:, m, 1], color=color, lw=1.2, marker=".", ms=3,
                    label=name if m == 0 else None)
        ax.plot(p[0, :, 0], p[0, :, 1], "k.", ms=6)
