"""The book's house style and the plots chapters share; every method's colour comes from
:mod:`backprop2lib.methods`."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from . import methods

TARGET_COLOR = "#444444"  # the ground truth in plot_fit (not a method)


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


def plot_curves(ax, curves: Sequence, *, x: str = "steps", interval: str = "t", title: str = "",
                xlabel: str | None = None, ylabel: str = "loss", logy: bool = True, marker: str | None = None,
                styles: Mapping[str, str] | None = None, legend: bool = False) -> None:
    """Mean loss with a 95% CI band over each :class:`~backprop2lib.optim.Curve`'s rows, one line per
    curve in its method's colour, against the recorded steps or the run's wall time.

    ``interval``: ``"t"`` (Student's t: a handful of seeds or models) or ``"normal"`` (hundreds of
    tasks or instances). Diverged rows are left out of the band (the tables count them). A curve over
    several training seeds (``n_seeds`` > 1) is drawn across seeds: the mean of the seeds' means and
    its Student-t band (:meth:`Curve.seed_summary`), whatever ``interval`` says.
    """
    if x not in ("steps", "seconds"):
        raise ValueError(f"x: expected 'steps' or 'seconds', got {x!r}")
    for curve in curves:
        xs = curve.steps if x == "steps" else curve.seconds
        summaries = ([curve.seed_summary(int(s)) for s in curve.steps] if curve.n_seeds > 1
                     else curve.summaries(interval=interval))
        mean = np.array([s.mean for s in summaries])
        ci = np.nan_to_num(np.array([s.ci95 for s in summaries]))  # one row left: no band
        color = methods.color(curve.name)
        ax.plot(xs, mean, color=color, ls=(styles or {}).get(curve.name, "-"), marker=marker, ms=3, label=curve.name)
        ax.fill_between(xs, np.maximum(mean - ci, 1e-12) if logy else mean - ci, mean + ci,
                        color=color, alpha=0.15, lw=0)
    if logy:
        ax.set_yscale("log")
    if x == "seconds":
        ax.set_xscale("log")
    default_xlabel = "steps" if x == "steps" else "wall time (s)"
    ax.set(xlabel=xlabel or default_xlabel, ylabel=ylabel, title=title)
    if legend:
        ax.legend()


def plot_summaries(ax, xs: Sequence, summaries: Mapping[str, Sequence], *, xlabel: str, ylabel: str,
                   title: str = "", logy: bool = True, logx: bool = False) -> None:
    """Mean with a 95% CI band against ``xs``, one line per method (``Summary`` objects from ``stats``)."""
    for name, rows in summaries.items():
        mean = np.array([r.mean for r in rows])
        ci = np.array([r.ci95 for r in rows])
        color = methods.color(name)
        ax.plot(xs, mean, marker="o", ms=3, color=color, label=name)
        ax.fill_between(xs, mean - ci, mean + ci, color=color, alpha=0.15, lw=0)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)


def plot_training_losses(ax, results: Sequence, *, window: int = 500, title: str = "") -> None:
    """Training loss per iteration, smoothed by a moving average of ``window`` iterations (a run over
    several seeds, losses ``[iterations, S]``: the mean over its seeds)."""
    for r in results:
        losses = np.asarray(r.losses, dtype=float)
        if losses.ndim == 2:
            losses = losses.mean(axis=1)
        w = max(1, min(window, len(losses) // 5 or 1))
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + w, smooth, color=methods.color(r.method), label=r.method)
    ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"training loss (moving mean of {window})")
    ax.set_title(title)
    ax.legend()


def plot_fit(ax, x, target, predictions: Mapping[str, np.ndarray], *, support=None, title: str = "") -> None:
    """One task: the true function, the support points and predictions (label -> y)."""
    ax.plot(x, target, color=TARGET_COLOR, lw=2, label="ground truth")
    styles = ["--", "-.", "-", ":"]
    for i, (label, y) in enumerate(predictions.items()):
        ax.plot(x, y, ls=styles[i % len(styles)], lw=1.5, label=label)
    if support is not None:
        ax.scatter(*support, color="k", marker="^", zorder=5, label="support points")
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.legend(loc="lower right", fontsize=8)
    plt.setp(ax, ylim=(-5.5, 5.5))
