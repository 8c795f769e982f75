"""Recognition as reconstruction: the class whose model, adapted to an image, reconstructs it best.

Every class model starts from its meta-learned μ_c and takes ``steps`` full-batch gradient steps
of size ``lr`` on the image's pixels (with its method's regulariser or per-parameter rates, see
:class:`.priors.ClassPriors`). The adapted reconstruction error E_c (mean ½ squared error over
pixels, regulariser excluded) is the class's score: predicted = argmin_c E_c and

    p(c | image) = softmax_c(−E_c / temperature).

By default the error, not the regularised objective, is compared, because the regulariser's value
depends on each class's own scale. :meth:`Classification.by_objective` re-scores by the
objective E_c + R_c (the penalty at the adapted parameters is kept in ``penalties``); which of
the two separates classes better is measured, not assumed, in chapter 5.
The temperature turns errors into calibrated probabilities; :func:`fit_temperature` sets it
on validation images, never on the test images it is then applied to.

Held-out-pixel scoring (``adapt_masks``): each class model adapts on a subset of an image's pixels
and is scored on the rest. A class model that can fit anything then no longer wins by memorising
the pixels it is scored on; how large the held-out part is becomes a knob of the trade-off map.

:func:`classify` adapts all C class models to a chunk of images in one batched call
(``C x chunk`` tasks; the Python loop runs over chunks and steps, never over classes or
images). :func:`classify_one_at_a_time` does the same with a loop over images and classes and the
library's own regulariser and rates objects: slow and obvious, the reference for tests.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from scipy.stats import rankdata

from ..models.mlp import MLP
from ..optim.errors import DivergenceError
from ..scale.adapt import InnerLoop, adapt
from ..scale.objective import error
from .priors import ClassPriors

__all__ = ["Classification", "auroc_per_class", "classify", "classify_one_at_a_time", "fit_temperature"]

TEMPERATURE_RANGE = 1e4
"""fit_temperature searches temperatures within this factor either side of the typical loss spread."""


def _check_labels(labels, n: int, n_classes: int) -> np.ndarray:
    """``labels`` as an int64 array ``[n]`` with values in ``0..n_classes-1``."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.shape != (n,) or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise ValueError(f"labels: expected {n} integer class numbers (shape ({n},)), got {labels.dtype} "
                         f"of shape {labels.shape}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels: expected classes in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels


def _check_losses(losses) -> np.ndarray:
    """``losses`` as a float64 array ``[N, C]`` of finite numbers, N >= 1, C >= 2."""
    if isinstance(losses, torch.Tensor):
        losses = losses.detach().cpu().numpy()
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 2 or losses.shape[0] < 1 or losses.shape[1] < 2:
        raise ValueError(f"losses: expected [N, C] with N >= 1 images and C >= 2 classes, got shape {losses.shape}")
    if not np.isfinite(losses).all():
        raise ValueError(f"losses: {int((~np.isfinite(losses)).sum())} entries are NaN or inf")
    return losses


def _check_temperature(temperature) -> float:
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not math.isfinite(temperature)
            or temperature <= 0):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    return float(temperature)


@dataclass
class Classification:
    """Per image and class model: the reconstruction error before and after adaptation, and the verdict.

    All tensors are on the CPU (they are small; notebooks tabulate them). ``probabilities`` are
    softmax(−losses / temperature) over classes.
    """

    losses: torch.Tensor  # adapted reconstruction error (on the held-out pixels, if any), regulariser excluded [N, C]
    initial_losses: torch.Tensor  # the same at the class's start μ_c [N, C]
    predicted: torch.Tensor  # argmin_c losses, long [N]
    probabilities: torch.Tensor  # [N, C], rows sum to 1
    temperature: float = 1.0
    names: tuple[str, ...] = ()  # class labels, as in the priors
    penalties: torch.Tensor | None = None  # the regulariser's value at the adapted parameters [N, C]

    @property
    def n_classes(self) -> int:
        return self.losses.shape[1]

    def accuracy(self, labels) -> float:
        """The fraction of images whose predicted class is ``labels`` (tensor or array ``[N]``)."""
        labels = _check_labels(labels, self.losses.shape[0], self.n_classes)
        return float((self.predicted.numpy() == labels).mean()) if labels.size else float("nan")

    def confusion(self, labels) -> np.ndarray:
        """Counts ``[C, C]``: row = true class, column = predicted class."""
        labels = _check_labels(labels, self.losses.shape[0], self.n_classes)
        C = self.n_classes
        return np.bincount(labels * C + self.predicted.numpy(), minlength=C * C).reshape(C, C)

    def by_objective(self) -> "Classification":
        """Re-score by the regularised objective E_c + R_c (error plus the prior's penalty) instead of E_c.

        An MDL-style score: a class that must move its parameters far, in its own units, to fit
        the image pays for it. Identical to ``self`` for priors without a regulariser.
        """
        if self.penalties is None:
            return self
        total = self.losses + self.penalties
        return replace(self, losses=total, predicted=total.argmin(-1),
                       probabilities=torch.softmax(-total / self.temperature, dim=-1), penalties=None)

    def with_temperature(self, temperature: float) -> "Classification":
        """The same adapted losses turned into probabilities at another temperature (no re-adaptation)."""
        t = _check_temperature(temperature)
        return replace(self, probabilities=torch.softmax(-self.losses / t, dim=-1), temperature=t)


def _check_inputs(model: MLP, priors: ClassPriors, images_x: torch.Tensor, images_y: torch.Tensor,
                  steps, lr, temperature, chunk) -> tuple[ClassPriors, InnerLoop, float]:
    if not isinstance(model, MLP):
        raise ValueError(f"model: expected an MLP, got {type(model).__name__}")
    if not isinstance(priors, ClassPriors):
        raise ValueError(f"priors: expected ClassPriors, got {type(priors).__name__}")
    if priors.n_params != model.n_params:
        raise ValueError(f"priors: the class models have P = {priors.n_params} parameters, but model "
                         f"{model.sizes} has {model.n_params}")
    d, o = model.sizes[0], model.sizes[-1]
    if not isinstance(images_y, torch.Tensor) or images_y.dim() != 3 or images_y.shape[0] < 1 \
            or images_y.shape[-1] != o or not images_y.is_floating_point():
        shape = tuple(images_y.shape) if isinstance(images_y, torch.Tensor) else type(images_y).__name__
        raise ValueError(f"images_y: expected floating-point targets [N, pixels, {o}] with N >= 1, got {shape}")
    N, M = images_y.shape[:2]
    if not isinstance(images_x, torch.Tensor) or tuple(images_x.shape) not in ((M, d), (N, M, d)):
        shape = tuple(images_x.shape) if isinstance(images_x, torch.Tensor) else type(images_x).__name__
        raise ValueError(f"images_x: expected the pixel coordinates, one grid [{M}, {d}] or one per image "
                         f"[{N}, {M}, {d}], got {shape}")
    if images_x.dtype != images_y.dtype or images_x.device != images_y.device:
        raise ValueError(f"images_x: expected dtype {images_y.dtype} on {images_y.device} (like images_y), got "
                         f"{images_x.dtype} on {images_x.device}")
    for name, t in (("images_x", images_x), ("images_y", images_y)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: contains NaN or inf")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr)
                           or lr <= 0):
        raise ValueError(f"lr: expected a positive finite step size, or None (line search), got {lr!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int (images adapted at once), got {chunk!r}")
    priors = priors.to(device=images_y.device, dtype=images_y.dtype)
    return priors, InnerLoop(max_steps=steps, lr=None if lr is None else float(lr)), _check_temperature(temperature)


def _split_pixels(adapt_masks, images_x: torch.Tensor, images_y: torch.Tensor):
    """Per image, the pixels adapted on and the pixels held out: ``(x_a, y_a, x_h, y_h)``, each ``[N, k or M - k,
    ·]``; None if ``adapt_masks`` is None (adapt on and score every pixel)."""
    if adapt_masks is None:
        return None
    N, M = images_y.shape[:2]
    if not isinstance(adapt_masks, torch.Tensor) or adapt_masks.dtype != torch.bool \
            or tuple(adapt_masks.shape) != (N, M):
        got = (f"{adapt_masks.dtype} {tuple(adapt_masks.shape)}" if isinstance(adapt_masks, torch.Tensor)
               else type(adapt_masks).__name__)
        raise ValueError(f"adapt_masks: expected a bool tensor [{N}, {M}] (True on the pixels adapted on), got {got}")
    counts = adapt_masks.sum(1)
    k = int(counts[0])
    if bool((counts != k).any()) or not 0 < k < M:
        raise ValueError(f"adapt_masks: expected the same number of adapted pixels in every image, at least one "
                         f"adapted and one held out; got between {int(counts.min())} and {int(counts.max())} of {M}")
    masks = adapt_masks.to(images_y.device)
    # adapted pixels first, each part in pixel order
    order = (~masks).to(torch.int8).argsort(dim=1, stable=True)
    x = images_x.expand(N, M, images_x.shape[-1]) if images_x.dim() == 2 else images_x

    def take(t, idx):
        return t.gather(1, idx[..., None].expand(-1, -1, t.shape[-1]))

    a, h = order[:, :k], order[:, k:]
    return take(x, a), take(images_y, a), take(x, h), take(images_y, h)


def _check_finite(losses: torch.Tensor, first_image: int, priors: ClassPriors, lr: float) -> None:
    """DivergenceError naming the first (image, class) pairs whose adaptation blew up."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        pairs = bad.nonzero().tolist()
        shown = ", ".join(f"(image {first_image + i}, class {priors.names[c]})" for i, c in pairs[:5])
        raise DivergenceError(
            f"adaptation diverged (NaN or inf reconstruction error) for {len(pairs)} (image, class) pair(s) "
            f"among images {first_image}..{first_image + losses.shape[0] - 1}, first {shown}; "
            f"use a smaller lr (got {'the line search' if lr is None else f'{lr:g}'}) or fewer steps")


def _finish(losses, initial, temperature: float, names, penalties=None) -> Classification:
    losses, initial = losses.detach().cpu(), initial.detach().cpu()
    penalties = None if penalties is None else penalties.detach().cpu()
    return Classification(losses, initial, losses.argmin(-1), torch.softmax(-losses / temperature, dim=-1),
                          temperature, tuple(names), penalties)


def classify(model: MLP, priors: ClassPriors, images_x: torch.Tensor, images_y: torch.Tensor, *, steps: int,
             lr: float, temperature: float = 1.0, chunk: int = 256, adapt_masks: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> Classification:
    """Adapt every class model to every image and pick the best reconstruction.

    ``images_x``: pixel coordinates, one grid ``[M, d]`` or ``[N, M, d]``; ``images_y``: targets
    ``[N, M, o]``. ``adapt_masks`` ``[N, M]`` (True on the pixels adapted on, the same number in every
    image, e.g. ``codes.pixel_split``): adapt on those and score on the rest; None: adapt on and score
    every pixel. ``chunk`` images are adapted at once (``C x chunk`` tasks), which bounds
    memory at about ``C * chunk * M * hidden`` activations per layer. The priors are moved to
    the images' device and dtype. A NaN or inf adapted error raises DivergenceError naming
    the first (image, class) pairs: a diverged class model must not silently lose (or win).
    ``generator`` goes to ``adapt``; with full-batch steps nothing is random.
    """
    priors, loop, temperature = _check_inputs(model, priors, images_x, images_y, steps, lr, temperature, chunk)
    split = _split_pixels(adapt_masks, images_x, images_y)
    if split is not None:  # adapt on the first part, score on the second
        images_x, images_y, held_x, held_y = split
    N, M, o = images_y.shape
    C, device = priors.n_classes, images_y.device
    losses = torch.empty(N, C, dtype=images_y.dtype, device=device)
    initial = torch.empty_like(losses)
    penalties = None if priors.method in ("initialisation", "eve", "rates") else torch.empty_like(losses)

    def per_task(t, i0, i1):  # images [N, m, ·] -> tasks [n·C, m, ·], task i·C + c: image i0 + i, class c
        n = i1 - i0
        return t[i0:i1, None].expand(n, C, *t.shape[1:]).reshape(n * C, *t.shape[1:])

    with torch.no_grad():
        for i0 in range(0, N, chunk):
            i1 = min(i0 + chunk, N)
            n = i1 - i0
            start, regulariser, rates = priors.rows(torch.arange(C, device=device).repeat(n))
            if images_x.dim() == 2:
                x = images_x.expand(n * C, M, images_x.shape[-1])
            else:
                x = per_task(images_x, i0, i1)
            y = per_task(images_y, i0, i1)
            res = adapt(model, start, x, y, loop=loop, regulariser=regulariser, rates=rates, generator=generator)
            if split is None:
                after, before = res.error_after, res.error_before
            else:
                hx, hy = per_task(held_x, i0, i1), per_task(held_y, i0, i1)
                after = error(model, res.params, hx, hy, check=False)
                before = error(model, start.expand(n * C, -1) if start.dim() == 1 else start, hx, hy, check=False)
            _check_finite(after.reshape(n, C), i0, priors, loop.lr)
            losses[i0:i1] = after.reshape(n, C)
            initial[i0:i1] = before.reshape(n, C)
            if penalties is not None:
                penalties[i0:i1] = regulariser.value_and_grad(res.params)[0].reshape(n, C)
    return _finish(losses, initial, temperature, priors.names, penalties)


def classify_one_at_a_time(model: MLP, priors: ClassPriors, images_x: torch.Tensor, images_y: torch.Tensor, *,
                           steps: int, lr: float, temperature: float = 1.0, chunk: int = 256,
                           adapt_masks: torch.Tensor | None = None,
                           generator: torch.Generator | None = None) -> Classification:
    """:func:`classify` with a Python loop over images and classes and ``priors.one_class`` (the reference).

    ``chunk`` is accepted for the same signature and ignored; held-out pixels are picked by boolean indexing.
    """
    priors, loop, temperature = _check_inputs(model, priors, images_x, images_y, steps, lr, temperature, chunk)
    _split_pixels(adapt_masks, images_x, images_y)  # the same checks as classify
    N, C = images_y.shape[0], priors.n_classes
    losses = torch.empty(N, C, dtype=images_y.dtype, device=images_y.device)
    initial = torch.empty_like(losses)
    penalties = None if priors.method in ("initialisation", "eve", "rates") else torch.empty_like(losses)
    with torch.no_grad():
        for i in range(N):
            x, y = (images_x if images_x.dim() == 2 else images_x[i]), images_y[i]
            keep = torch.ones(y.shape[0], dtype=torch.bool) if adapt_masks is None else adapt_masks[i].cpu()
            score = keep if adapt_masks is None else ~keep
            for c in range(C):
                start, regulariser, rates = priors.one_class(c)
                res = adapt(model, start, x[keep][None], y[keep][None], loop=loop, regulariser=regulariser,
                            rates=rates, generator=generator)
                losses[i, c] = error(model, res.params, x[score][None], y[score][None])[0]
                initial[i, c] = error(model, start[None], x[score][None], y[score][None])[0]
                if penalties is not None:
                    penalties[i, c] = regulariser.value_and_grad(res.params)[0][0]
            _check_finite(losses[i:i + 1], i, priors, loop.lr)
    return _finish(losses, initial, temperature, priors.names, penalties)


# --------------------------------------------------------------- calibration
def _nll(losses: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log likelihood of ``labels`` under softmax(−losses / temperature)."""
    z = -losses / temperature
    return float(np.mean(logsumexp(z, axis=1) - z[np.arange(len(labels)), labels]))


def fit_temperature(losses, labels) -> float:
    """The temperature T minimising the NLL of ``labels [N]`` under softmax(−losses [N, C] / T).

    The NLL is convex in 1/T (a log-sum-exp of linear functions plus a linear term), hence
    unimodal in log T: a log grid of temperatures ±1e4 times the median per-image loss spread
    brackets the minimum, and a bounded 1-D search refines it. Fit it on validation images.
    If the minimum lies at the grid's edge (e.g. every label has the smallest loss, so the NLL
    keeps falling as T → 0) the edge is returned with a RuntimeWarning.
    """
    losses = _check_losses(losses)
    labels = _check_labels(labels, losses.shape[0], losses.shape[1])
    spread = losses.max(1) - losses.min(1)
    spread = spread[spread > 0]
    if spread.size == 0:
        raise ValueError("losses: every image has the same loss for every class; no temperature fits better "
                         "than another")
    centre = math.log(float(np.median(spread)))
    grid = centre + np.linspace(-math.log(TEMPERATURE_RANGE), math.log(TEMPERATURE_RANGE), 97)
    values = np.array([_nll(losses, labels, math.exp(g)) for g in grid])
    best = int(np.argmin(values))
    if best in (0, len(grid) - 1):
        why = ("the smallest loss marks every label" if best == 0
               else "the losses carry little information about the labels")
        warnings.warn(f"fit_temperature: the likelihood still improves at the search bound T = "
                      f"{math.exp(grid[best]):.3g} ({why}); returning the bound", RuntimeWarning, stacklevel=2)
        return math.exp(grid[best])
    found = minimize_scalar(lambda g: _nll(losses, labels, math.exp(g)), bounds=(grid[best - 1], grid[best + 1]),
                            method="bounded", options=dict(xatol=1e-8))
    return math.exp(found.x if found.fun <= values[best] else grid[best])


def auroc_per_class(losses, labels) -> np.ndarray:
    """For each class c, the AUROC of −losses[:, c] for telling images of class c from the rest ``[C]``.

    The Mann–Whitney statistic from average ranks (a tie between a positive and a negative counts
    half): the probability that a random image of class c is reconstructed better by model c than
    a random other image. NaN for a class with no images, or with nothing but its images.
    """
    losses = _check_losses(losses)
    N, C = losses.shape
    labels = _check_labels(labels, N, C)
    ranks = rankdata(-losses, axis=0)  # [N, C], ties averaged
    positive = labels[:, None] == np.arange(C)[None, :]
    n_pos = positive.sum(0).astype(np.float64)
    n_neg = N - n_pos
    rank_sum = (ranks * positive).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
