"""The book's house style and the plots chapters share."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# One colour per method, the same in every chapter.
METHOD_COLORS = {
    "MAML": "#0b5394",
    "FOMAML": "#6fa8dc",
    "Reptile": "#38761d",
    "pretrained": "#990000",
    "Meta-SGD": "#b45f06",
    "meta-gradient scale": "#674ea7",
    "backprop2 mean only": "#999999",
    "backprop2 quadratic": "#cc0000",
    "backprop2 quartic": "#e69138",
    "Eve": "#bf9000",
    "target": "#444444",
}
_FALLBACK = ["#b45f06", "#674ea7", "#bf9000", "#45818e", "#a64d79"]


def use_house_style() -> None:
    """Small, quiet figures: light grid, no top/right spines, PNG at a sensible dpi."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 3.8),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "figure.autolayout": True,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.frameon": False,
        "legend.fontsize": 9,
        "font.size": 10,
    })


def method_color(name: str) -> str:
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    return _FALLBACK[sum(map(ord, name)) % len(_FALLBACK)]


def plot_adaptation_curves(ax, curves: Sequence, *, title: str = "", log: bool = True) -> None:
    """Mean grid MSE against adaptation steps with a 95% CI band, one line per method."""
    for curve in curves:
        summaries = curve.summaries()
        steps = np.arange(len(summaries))
        mean = np.array([s.mean for s in summaries])
        ci = np.array([s.ci95 for s in summaries])
        color = method_color(curve.method)
        ax.plot(steps, mean, marker="o", ms=3, color=color, label=curve.method)
        ax.fill_between(steps, mean - ci, mean + ci, color=color, alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("adaptation steps")
    ax.set_ylabel("MSE on the dense grid")
    ax.set_title(title)
    ax.legend()


def plot_summaries(ax, xs: Sequence, summaries: Mapping[str, Sequence], *, xlabel: str, ylabel: str,
                   title: str = "", logy: bool = True, logx: bool = False) -> None:
    """Mean with a 95% CI band against ``xs``, one line per method (``Summary`` objects from ``stats``)."""
    for name, rows in summaries.items():
        mean = np.array([r.mean for r in rows])
        ci = np.array([r.ci95 for r in rows])
        color = method_color(name)
        ax.plot(xs, mean, marker="o", ms=3, color=color, label=name)
        ax.fill_between(xs, mean - ci, mean + ci, color=color, alpha=0.15, lw=0)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)


def plot_training_losses(ax, results: Sequence, *, window: int = 500, title: str = "") -> None:
    """Training loss per iteration, smoothed by a moving average of ``window`` iterations."""
    for r in results:
        losses = np.asarray(r.losses, dtype=float)
        w = max(1, min(window, len(losses) // 5 or 1))
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + w, smooth, color=method_color(r.method), label=r.method)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"training loss (moving mean of {window})")
    ax.set_title(title)
    ax.legend()


def plot_fit(ax, x, target, predictions: Mapping[str, np.ndarray], *, support=None, title: str = "") -> None:
    """One task: the true function, the support points and predictions (label -> y)."""
    ax.plot(x, target, color=METHOD_COLORS["target"], lw=2, label="ground truth")
    styles = ["--", "-.", "-", ":"]
    for i, (label, y) in enumerate(predictions.items()):
        ax.plot(x, y, ls=styles[i % len(styles)], lw=1.5, label=label)
    if support is not None:
        ax.scatter(*support, color="k", marker="^", zorder=5, label="support points")
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.legend(loc="lower right", fontsize=8)
    plt.setp(ax, ylim=(-5.5, 5.5))
