"""Ordinary classifiers trained on the same few labelled images as the reconstruction classifier.

A recognition-by-reconstruction result means little without them: with one to ten images per
digit, nearest class mean and 1-nearest-neighbour are hard to beat. All share one interface:

* ``fit(pixels, labels) -> self`` with ``pixels [N, 784]`` (or ``[N, 28, 28]``) in [0, 1]
  (floating point, torch or numpy; uint8 is divided by 255) and ``labels [N]`` in 0..9;
* ``predict_proba(pixels) -> numpy [N, 10]`` (rows sum to 1; a digit absent from training has
  probability 0, so every classifier answers only with digits it has seen);
* ``predict(pixels) -> numpy [N]``, the most probable digit.

:data:`BASELINES` maps display names to factories, for tables that compare them all.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..data.mnist import N_CLASSES, N_PIXELS
from ..models.mlp import MLP
from .images import _flat_pixels

__all__ = ["BASELINES", "KNearestNeighbours", "LogisticRegressionBaseline", "NearestClassMean", "SmallMLP"]


def _pixels(pixels, name: str = "pixels") -> torch.Tensor:
    """``pixels`` as float ``[N, 784]`` in [0, 1] on their own device, N >= 1."""
    if not isinstance(pixels, (torch.Tensor, np.ndarray)):  # not an MNIST: its labels would be ignored
        raise ValueError(f"{name}: expected a tensor or array [N, {N_PIXELS}], got {type(pixels).__name__}")
    flat = _flat_pixels(pixels, name)
    if flat.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image, got shape {tuple(flat.shape)}")
    return flat.float() / 255 if flat.dtype == torch.uint8 else flat


def _labels(labels, n: int) -> torch.Tensor:
    """``labels`` as int64 ``[n]`` on the CPU, checked to lie in 0..9."""
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels: expected a tensor or array [N] of digits, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels: expected integer digits 0..{N_CLASSES - 1}, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels: expected shape [{n}] (one per image in pixels), got {tuple(labels.shape)}")
    labels = labels.long().cpu()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= N_CLASSES:
        raise ValueError(f"labels: expected digits in 0..{N_CLASSES - 1}, found {low}..{high}")
    return labels


def _full_proba(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Probabilities over the seen ``classes`` spread into 10 columns (zeros for unseen digits)."""
    out = np.zeros((proba.shape[0], N_CLASSES))
    out[:, classes] = proba
    return out


class _Baseline:
    """What every baseline shares: argument checks, the fitted flag and ``predict``."""

    _fitted = False

    def fit(self, pixels, labels) -> "_Baseline":
        x = _pixels(pixels)
        y = _labels(labels, x.shape[0])
        self.classes_ = np.unique(y.numpy())
        self._fit(x, y)
        self._fitted = True
        return self

    def predict_proba(self, pixels) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit(pixels, labels) before predicting")
        return self._predict_proba(_pixels(pixels))

    def predict(self, pixels) -> np.ndarray:
        return self.predict_proba(pixels).argmax(axis=1)

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        raise NotImplementedError

    def _predict_proba(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError


class NearestClassMean(_Baseline):
    """The digit whose mean training image is nearest (Euclidean); p ∝ exp(-distance² / temperature).

    ``temperature`` (default 1) only shapes the probabilities, never the prediction; set the
    attribute to calibrate them. Distances are computed in float64, all images at once.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.double().cpu()
        sums = torch.zeros(N_CLASSES, N_PIXELS, dtype=torch.float64).index_add_(0, y, x)
        counts = torch.bincount(y, minlength=N_CLASSES)
        self.means_ = (sums / counts.clamp(min=1).unsqueeze(1)).numpy()  # [10, 784]; unseen digits 0
        self.seen_ = counts.numpy() > 0

    def squared_distances(self, pixels) -> np.ndarray:
        """Squared distance ``[N, 10]`` from each image to each class mean (inf for unseen digits)."""
        if not self._fitted:
            raise RuntimeError("NearestClassMean: call fit(pixels, labels) before predicting")
        return self._squared_distances(_pixels(pixels))

    def _squared_distances(self, x: torch.Tensor) -> np.ndarray:
        x = x.double().cpu().numpy()
        m = self.means_
        d2 = (x * x).sum(1, keepdims=True) - 2 * x @ m.T + (m * m).sum(1)
        d2 = np.maximum(d2, 0)  # rounding can dip just below 0 for an image equal to a mean
        d2[:, ~self.seen_] = np.inf
        return d2

    def _predict_proba(self, x: torch.Tensor) -> np.ndarray:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ValueError(f"temperature: expected a finite number > 0, got {t!r}")
        logits = -self._squared_distances(x) / t
        logits -= logits.max(axis=1, keepdims=True)  # the nearest mean gets exp(0) = 1: no underflow to 0/0
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


class KNearestNeighbours(_Baseline):
    """``k``-nearest-neighbour vote (Euclidean, sklearn, brute force); ``k`` is clipped to the training size."""

    def __init__(self, k: int = 1) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k: expected an int >= 1, got {k!r}")
        self.k = k

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from sklearn.neighbors import KNeighborsClassifier

        self.k_ = min(self.k, x.shape[0])
        self.model_ = KNeighborsClassifier(n_neighbors=self.k_, algorithm="brute")
        self.model_.fit(x.double().cpu().numpy(), y.numpy())

    def _predict_proba(self, x: torch.Tensor) -> np.ndarray:
        return _full_proba(self.model_.predict_proba(x.double().cpu().numpy()), self.model_.classes_)


class LogisticRegressionBaseline(_Baseline):
    """Multinomial logistic regression (sklearn, lbfgs) with L2 strength ``1 / C``.

    Trained on a single digit, it has nothing to separate: it then answers that digit with
    probability 1 (sklearn would refuse to fit).
    """

    def __init__(self, C: float = 1.0, max_iter: int = 5000) -> None:
        if isinstance(C, bool) or not isinstance(C, (int, float)) or not math.isfinite(C) or C <= 0:
            raise ValueError(f"C: expected a finite number > 0, got {C!r}")
        if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
            raise ValueError(f"max_iter: expected an int >= 1, got {max_iter!r}")
        self.C = C
        self.max_iter = max_iter

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from sklearn.linear_model import LogisticRegression

        self.model_ = None
        if len(self.classes_) > 1:  # lbfgs on >2 classes is multinomial (sklearn's default)
            self.model_ = LogisticRegression(C=self.C, solver="lbfgs", max_iter=self.max_iter)
            self.model_.fit(x.double().cpu().numpy(), y.numpy())

    def _predict_proba(self, x: torch.Tensor) -> np.ndarray:
        if self.model_ is None:
            return _full_proba(np.ones((x.shape[0], 1)), self.classes_)
        return _full_proba(self.model_.predict_proba(x.double().cpu().numpy()), self.model_.classes_)


class SmallMLP(_Baseline):
    """A 784-``hidden``-10 ReLU network, cross-entropy, full-batch Adam for ``steps`` steps.

    Deterministic given ``seed`` (a private generator draws the initial weights; no data
    shuffling). Only digits seen in training get logits, as for the other baselines.
    """

    def __init__(self, hidden: int = 100, steps: int = 500, lr: float = 1e-3, weight_decay: float = 1e-4,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        for name, value, low in (("hidden", hidden, 1), ("steps", steps, 1), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
        for name, value, positive in (("lr", lr, True), ("weight_decay", weight_decay, False)):
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            if not ok or value < 0 or (positive and value == 0):
                raise ValueError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
        self.hidden, self.steps, self.lr, self.weight_decay = hidden, steps, lr, weight_decay
        self.seed, self.device = seed, torch.device(device)
        self.model = MLP((N_PIXELS, hidden, N_CLASSES), activation="relu")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model.forward(self.params_, x.unsqueeze(0), check=False)[0]
        return logits.masked_fill(~self._seen, float("-inf"))

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        init = self.model.init(generator=generator, device=self.device)
        self.params_ = tuple(p.requires_grad_(True) for p in init)
        self._seen = torch.zeros(N_CLASSES, dtype=torch.bool, device=self.device)
        self._seen[torch.as_tensor(self.classes_, device=self.device)] = True
        x, y = x.to(self.device, torch.float32), y.to(self.device)
        optimiser = torch.optim.Adam(self.params_, lr=self.lr, weight_decay=self.weight_decay)
        with torch.enable_grad():
            for _ in range(self.steps):
                optimiser.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(self._logits(x), y).backward()
                optimiser.step()
        self.params_ = tuple(p.detach() for p in self.params_)

    @torch.no_grad()
    def _predict_proba(self, x: torch.Tensor) -> np.ndarray:
        logits = self._logits(x.to(self.device, torch.float32)).double()
        return torch.softmax(logits, dim=1).cpu().numpy()


BASELINES: dict[str, Callable[[], _Baseline]] = {
    "nearest class mean": NearestClassMean,
    "kNN (k=1)": lambda: KNearestNeighbours(k=1),
    "logistic regression": LogisticRegressionBaseline,
    "MLP": SmallMLP,
}
"""Display name -> a fresh, unfitted classifier with its default settings."""
