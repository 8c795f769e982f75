"""Quadratic consolidation penalties: remember old tasks with a per-parameter prior.

Every method of the continual-learning chapter adds, while task t is learned, a penalty
½ λ Σ_i p_i (θ_i − a_i)² with a per-parameter *precision* p and an *anchor* a. The methods differ
only in where p comes from:

* ``sgd``: no penalty (p = 0);
* ``l2``: p = 1 everywhere, the uniform pull towards the old solutions;
* ``ewc``: p = the diagonal Fisher of each old task at its solution (Kirkpatrick et al. 2017);
* ``online_ewc``: one running Fisher, F̃ ← γ F̃ + F_t, anchored at the latest solution
  (Schwarz et al. 2018);
* ``quadratic``: p = 1/σ², backprop2's quadratic regulariser (the learned-scale prior) with σ estimated
  the backprop2 way (:func:`learned_scale_prior`).

``ewc``, ``l2`` and ``quadratic`` keep one quadratic per old task. A sum of quadratics is one
quadratic, with precision Σ_k p_k and anchor Σ_k p_k a_k / Σ_k p_k, so the state is two vectors
whatever the number of tasks (:class:`ConsolidationState`). The penalty itself *is* chapter 2's
:class:`~backprop2lib.scale.regularisers.QuadraticRegulariser` (c Σ (w − μ)²/σ² with c = 1,
μ = a, σ² = 2/(λ p)), not a twin of it.

Precisions are divided by one constant per model, the mean precision of its first task, so that
λ means the same for every method (λ = 1: an average parameter is pulled as hard as by an L2 penalty
of strength 1) and one strength grid serves all; within a method the tasks keep their natural
relative weight, as in EWC.

Stiff penalties make an explicit gradient step unstable (λ p_i × learning rate > 2), and the
Fisher's largest entries are over a hundred times its mean (chapter 7's networks after one task), so at
step 0.1 an explicit step would diverge above λ ≈ 0.1, weaker than some benchmarks choose. The trainer
therefore takes the penalty
as a proximal step (:func:`proximal_step`), exact for a quadratic and stable at any stiffness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..scale.regularisers import QuadraticRegulariser

__all__ = ["CONSOLIDATION", "ConsolidationState", "TINY_PRECISION", "learned_scale_prior", "proximal_step"]

# method id (as in backprop2lib.methods) -> (where the precision comes from, how old tasks combine)
CONSOLIDATION = {
    "sgd": ("none", "sum"),
    "l2": ("uniform", "sum"),
    "ewc": ("fisher", "sum"),
    "online_ewc": ("fisher", "online"),
    "quadratic": ("learned_scale", "sum"),
}
TINY_PRECISION = 1e-30  # a parameter no old task constrains: its σ² = 2/1e-30 is finite and its pull is nil


def proximal_step(regulariser: QuadraticRegulariser, v: torch.Tensor, step: float) -> torch.Tensor:
    """argmin_w R(w) + ‖w − v‖² / (2 step) for the quadratic R = c Σ (w − μ)²/σ²: the implicit penalty step.

    With k = 2c/σ², w = (v + step k μ) / (1 + step k): it satisfies (w − v)/step + ∇R(w) = 0, and it never
    overshoots μ however stiff the penalty (an explicit step diverges once step · k > 2).
    """
    if not step > 0:
        raise ValueError(f"step: expected a positive step size, got {step!r}")
    if v.shape != regulariser.mean.shape and (regulariser.mean.dim() != 1 or v.shape[-1] != regulariser.mean.shape[0]):
        raise ValueError(f"v: expected shape {tuple(regulariser.mean.shape)} (like the regulariser's mean), "
                         f"got {tuple(v.shape)}")
    k = step * 2 * regulariser.strength / regulariser.variance
    return (v + k * regulariser.mean) / (1 + k)


@dataclass
class ConsolidationState:
    """The penalty of R models (rows) after the tasks seen so far: precision and anchor, ``[R, P]`` each.

    ``strength [R]`` is each row's λ; ``online [R]`` (bool) marks rows that keep one running precision
    anchored at the latest solution (decay ``gamma``) instead of one quadratic per old task.
    """

    strength: torch.Tensor
    online: torch.Tensor
    gamma: float = 1.0
    precision: torch.Tensor | None = None  # Σ_k p_k (online: the running precision)
    weighted_anchor: torch.Tensor | None = None  # Σ_k p_k a_k (online: p a_latest)
    scale: torch.Tensor | None = None  # [R, 1] the normalising constant of each row (its first task's mean p)

    def __post_init__(self) -> None:
        if self.strength.dim() != 1 or self.online.shape != self.strength.shape or self.online.dtype != torch.bool:
            raise ValueError(f"strength, online: expected [R] strengths and [R] booleans, got "
                             f"{tuple(self.strength.shape)} and {tuple(self.online.shape)} {self.online.dtype}")
        if not bool((self.strength >= 0).all()):
            raise ValueError(f"strength: expected λ >= 0 for every row, got {self.strength.tolist()}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma: expected a decay in [0, 1], got {self.gamma!r}")

    def add_task(self, precision: torch.Tensor, anchor: torch.Tensor) -> None:
        """Remember one more task: its per-parameter precision ``[R, P]`` (>= 0) and anchor ``[R, P]``."""
        if precision.shape != anchor.shape or precision.dim() != 2 or precision.shape[0] != self.strength.shape[0]:
            raise ValueError(f"precision, anchor: expected [R, P] each with R = {self.strength.shape[0]}, got "
                             f"{tuple(precision.shape)} and {tuple(anchor.shape)}")
        bad = ~torch.isfinite(precision).all(-1) | ~torch.isfinite(anchor).all(-1) | (precision < 0).any(-1)
        if bool(bad.any()):
            raise ValueError(f"precision, anchor: rows {bad.nonzero().flatten().tolist()} are negative, NaN or inf")
        if self.scale is None:
            mean = precision.mean(-1, keepdim=True)
            self.scale = torch.where(mean > 0, mean, torch.ones_like(mean))
        p = precision / self.scale
        if self.precision is None:
            self.precision, self.weighted_anchor = p, p * anchor
            return
        online = self.online.unsqueeze(-1)
        self.precision = torch.where(online, self.gamma * self.precision + p, self.precision + p)
        self.weighted_anchor = torch.where(online, self.precision * anchor, self.weighted_anchor + p * anchor)

    def regulariser(self) -> QuadraticRegulariser | None:
        """The penalty ½ λ Σ p (θ − a)² as a quadratic regulariser over the rows; None before the first task."""
        if self.precision is None:
            return None
        p = self.precision
        anchor = self.weighted_anchor / p.clamp_min(TINY_PRECISION)
        stiffness = (self.strength.unsqueeze(-1) * p / 2).clamp_min(TINY_PRECISION)  # c/σ² with c = 1
        return QuadraticRegulariser(anchor, 1 / stiffness, 1.0)


def learned_scale_prior(adapted: torch.Tensor, *, floor_ratio: float = 1e-6) -> QuadraticRegulariser:
    """backprop2's quadratic regulariser fitted to ``adapted [K, R, P]``: K adaptations of each of R models.

    μ = mean over the K adaptations, σ² = their population variance, floored at ``floor_ratio`` times the
    row's largest variance (backprop2's own floor, from Eve) so that a parameter that never moved gets a
    large but finite precision. Each row is fitted by ``QuadraticRegulariser.fit``.
    """
    if adapted.dim() != 3 or adapted.shape[0] < 2:
        raise ValueError(f"adapted: expected [K, R, P] with K >= 2 adaptations, got {tuple(adapted.shape)}")
    if not 0 < floor_ratio < 1:
        raise ValueError(f"floor_ratio: expected a ratio in (0, 1), got {floor_ratio!r}")
    largest = adapted.var(0, unbiased=False).amax(-1)  # [R]
    if not bool((largest > 0).all()):
        raise ValueError(f"adapted: rows {(largest <= 0).nonzero().flatten().tolist()} never varied across "
                         "the adaptations; no scale can be estimated")
    fits = [QuadraticRegulariser.fit(adapted[:, r], floor=float(largest[r]) * floor_ratio)
            for r in range(adapted.shape[1])]
    return QuadraticRegulariser(torch.stack([f.mean for f in fits]), torch.stack([f.variance for f in fits]), 1.0)
