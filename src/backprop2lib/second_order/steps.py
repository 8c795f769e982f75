"""Step rules for one Hessian block, applied to many blocks at once.

Every rule eigendecomposes the block, ``H = V Λ Vᵀ``, rotates the gradient into the eigenbasis,
``ĝ = Vᵀ g``, treats each eigendirection on its own and rotates back. Along direction k:

* ``"backprop2"``: where ``max_step · |λ_k| > |ĝ_k|`` (the Newton step would be shorter than
  ``max_step``), step ``−ĝ_k / |λ_k|``, Newton with the absolute eigenvalue, so a direction of
  negative curvature still goes downhill; elsewhere a gradient step ``−lr · ĝ_k``.
* ``"newton"``: the same, with the signed eigenvalue ``−ĝ_k / λ_k`` (plain Newton, which moves
  towards maxima and saddles along negative curvature). Same guard, so only the sign differs.
* ``"damped"``: ``−ĝ_k / (λ_k + damping)`` under the same guard (Levenberg-style damping).
* ``"saddle_free"``: ``−ĝ_k / (|λ_k| + damping)`` everywhere (Dauphin et al.'s saddle-free
  Newton: no guard, the damping keeps small eigenvalues from blowing up the step; only an exactly
  zero denominator falls back to the gradient step).
"""

from __future__ import annotations

import torch

RULES = ("backprop2", "newton", "damped", "saddle_free")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"rule: unknown step rule {rule!r}; valid: {', '.join(RULES)}")
    return rule


def eigen_step(
    eigenvalues: torch.Tensor,
    g_hat: torch.Tensor,
    *,
    rule: str = "backprop2",
    lr: float = 0.1,
    max_step: float = 1.0,
    damping: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The step along each eigendirection, and a mask of directions that took a Newton-type step."""
    check_rule(rule)
    if rule == "saddle_free":
        # a zero eigenvalue without damping (e.g. a dead ReLU unit) falls back to the gradient step
        curvature = eigenvalues.abs() + damping
        newton = curvature > 0
        safe = torch.where(newton, curvature, torch.ones_like(curvature))
        return torch.where(newton, -g_hat / safe, -lr * g_hat), newton
    curvature = {"backprop2": eigenvalues.abs(), "newton": eigenvalues, "damped": eigenvalues + damping}[rule]
    newton = max_step * curvature.abs() > g_hat.abs()
    safe = torch.where(newton, curvature, torch.ones_like(curvature))
    return torch.where(newton, -g_hat / safe, -lr * g_hat), newton


def symmetric_eigh(hessians: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of many symmetric blocks, robust to float32 underflow.

    Each block is scaled by its largest entry before ``eigh`` and entries below eps² of that are
    set to zero: float32 LAPACK returns NaN for blocks holding denormal numbers (seen on MNIST,
    where pixels that are almost always 0 give Hessian entries around 1e-38). Blocks that still
    fail are decomposed again in float64.
    """
    # symmetrise: float round-off in the averaged products can break exact symmetry
    H = 0.5 * (hessians + hessians.transpose(-1, -2))
    scale = H.abs().amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    Hn = H / scale
    tiny = torch.finfo(H.dtype).eps ** 2
    Hn = torch.where(Hn.abs() < tiny, torch.zeros_like(Hn), Hn)
    lam, V = torch.linalg.eigh(Hn)
    bad = ~(torch.isfinite(lam).all(-1) & torch.isfinite(V).flatten(-2).all(-1))
    if bool(bad.any()) and H.dtype != torch.float64:
        lam64, V64 = torch.linalg.eigh(Hn[bad].double())
        lam[bad], V[bad] = lam64.to(lam.dtype), V64.to(V.dtype)
    return lam * scale.squeeze(-1), V


def block_step(
    hessians: torch.Tensor,
    grads: torch.Tensor,
    *,
    rule: str = "backprop2",
    lr: float = 0.1,
    max_step: float = 1.0,
    damping: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps ``[..., s]`` for blocks ``hessians: [..., s, s]`` with gradients ``grads: [..., s]``.

    Returns the steps and the fraction of eigendirections per block that took a Newton-type step.
    One batched ``torch.linalg.eigh`` serves every block.
    """
    if hessians.shape[-2:] != (grads.shape[-1], grads.shape[-1]) or hessians.shape[:-2] != grads.shape[:-1]:
        raise ValueError(f"hessians, grads: expected [..., s, s] and [..., s], got {tuple(hessians.shape)} "
                         f"and {tuple(grads.shape)}")
    if not lr > 0 or not max_step > 0 or damping < 0:
        raise ValueError(f"lr, max_step: expected > 0 and damping >= 0, got {lr}, {max_step}, {damping}")
    lam, V = symmetric_eigh(hessians)
    g_hat = (V.transpose(-1, -2) @ grads.unsqueeze(-1)).squeeze(-1)
    step_hat, newton = eigen_step(lam, g_hat, rule=rule, lr=lr, max_step=max_step, damping=damping)
    return (V @ step_hat.unsqueeze(-1)).squeeze(-1), newton.to(grads.dtype).mean(-1)
