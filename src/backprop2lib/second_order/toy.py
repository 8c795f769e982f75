"""Low-dimensional test functions, step-rule trajectories, and the cubic model of a concave region.

The cubic model is the local picture behind backprop2's claim that Newton steps with absolute
eigenvalues "escape non-convex regions in the direction of inflection points". Along one
eigendirection, oriented so that downhill is +x, take

    f(x) = f0 − |g| x − ½ |λ| x² + (t/6) x³,     λ < 0 (concave here), t > 0,

so the curvature f″(x) = −|λ| + t x turns positive at the inflection point x_I = |λ|/t, and the
minimiser beyond it is x* = (|λ| + √(λ² + 2t|g|))/t. Everything depends on one number,

    u = t |g| / λ²  =  (length of the |λ| step) / (distance to the inflection point),

and, in units of |g|²/|λ|, the |λ| step x = |g|/|λ| changes f by −(3/2 − u/6), plain Newton
x = −|g|/|λ| by +(1/2 − u/6). :func:`cubic_outcomes` gives these closed forms; the tests check
them against direct evaluation of the cubic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .steps import eigen_step

# ------------------------------------------------------------------------------------ cubic model


@dataclass(frozen=True)
class CubicOutcome:
    """Where the |λ| step lands on the cubic model, in units of the inflection distance x_I."""

    u: float
    abs_step: float  # |λ|-step length / x_I  (= u)
    minimiser: float  # x* / x_I
    abs_change: float  # f change of the |λ| step, in units of g²/|λ|
    newton_change: float  # f change of the plain Newton step, same units

    @property
    def region(self) -> str:
        if self.abs_step < 1:
            return "before the inflection (still concave)"
        if self.abs_step <= self.minimiser:
            return "between the inflection and the minimiser"
        return "past the minimiser"


def cubic_outcomes(u: float) -> CubicOutcome:
    """Closed forms for the cubic model with ``u = t|g|/λ² >= 0``."""
    if not (u >= 0 and math.isfinite(u)):
        raise ValueError(f"u: expected a finite number >= 0, got {u!r}")
    return CubicOutcome(u, u, 1 + math.sqrt(1 + 2 * u), -(1.5 - u / 6), 0.5 - u / 6)


def cubic(g: float, lam: float, t: float) -> Callable[[np.ndarray], np.ndarray]:
    """f(x) − f(0) for slope ``g``, curvature ``lam`` and third derivative ``t`` at x = 0."""
    return lambda x: g * x + 0.5 * lam * x ** 2 + t * x ** 3 / 6


# Thresholds on u that follow from the closed forms (see the chapter's derivation):
CUBIC_THRESHOLDS = {
    "abs step passes the inflection": 1.0,  # u > 1
    "plain Newton raises f": 3.0,  # u < 3
    "abs step overshoots the minimiser": 4.0,  # u > 4  (u - 1 > sqrt(1 + 2u))
    "abs step raises f": 9.0,  # u > 9
}

# ------------------------------------------------------------------------------- test functions


def double_well(x: torch.Tensor) -> torch.Tensor:
    """1-D: x⁴/4 − x²/2; minima at ±1, a maximum at 0, inflection points at ±1/√3."""
    return x[..., 0] ** 4 / 4 - x[..., 0] ** 2 / 2


def saddle_well(x: torch.Tensor) -> torch.Tensor:
    """2-D: x⁴/4 − x²/2 + y²/2; minima at (±1, 0), a saddle at the origin."""
    return x[..., 0] ** 4 / 4 - x[..., 0] ** 2 / 2 + x[..., 1] ** 2 / 2


def himmelblau(x: torch.Tensor) -> torch.Tensor:
    """2-D: Himmelblau's function / 100: four minima, four saddles, a maximum near (−0.27, −0.92)."""
    a, b = x[..., 0], x[..., 1]
    return ((a * a + b - 11) ** 2 + (a + b * b - 7) ** 2) / 100


TEST_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "double well": double_well,
    "saddle well": saddle_well,
    "Himmelblau": himmelblau,
}


def derivatives(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """f, ∇f and ∇²f at many points ``x: [M, d]`` (autograd, one batched call)."""
    if x.dim() != 2:
        raise ValueError(f"x: expected points [M, d], got {tuple(x.shape)}")

    def single(p: torch.Tensor) -> torch.Tensor:
        return f(p.unsqueeze(0)).squeeze(0)

    value = f(x)
    grad = torch.func.vmap(torch.func.grad(single))(x)
    hess = torch.func.vmap(torch.func.hessian(single))(x)
    return value, grad, hess


@dataclass(frozen=True)
class ToyMethod:
    """A step rule for the toy problems: ``"gd"`` or a rule of :func:`.steps.eigen_step`."""

    name: str
    rule: str
    lr: float = 0.1
    max_step: float = math.inf
    damping: float = 0.0


def toy_step(method: ToyMethod, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """One step of ``method`` from every point ``x: [M, d]``, with the full (small) Hessian."""
    _, g, H = derivatives(f, x)
    if method.rule == "gd":
        return x - method.lr * g
    lam, V = torch.linalg.eigh(H)
    g_hat = (V.transpose(-1, -2) @ g.unsqueeze(-1)).squeeze(-1)
    step, _ = eigen_step(lam, g_hat, rule=method.rule, lr=method.lr, max_step=method.max_step,
                         damping=method.damping)
    return x + (V @ step.unsqueeze(-1)).squeeze(-1)


def trajectories(method: ToyMethod, f: Callable[[torch.Tensor], torch.Tensor], starts: torch.Tensor,
                 n_steps: int) -> torch.Tensor:
    """Iterates ``[n_steps + 1, M, d]`` from ``starts: [M, d]`` (float64 recommended)."""
    if n_steps < 0:
        raise ValueError(f"n_steps: expected an int >= 0, got {n_steps!r}")
    path = [starts]
    x = starts
    for _ in range(n_steps):
        x = toy_step(method, f, x)
        path.append(x)
    return torch.stack(path)


def concave_points(f: Callable[[torch.Tensor], torch.Tensor], lo: tuple[float, ...], hi: tuple[float, ...],
                   n: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Grid points (n per axis) where the Hessian has a negative eigenvalue and the gradient is not 0."""
    axes = [torch.linspace(a, b, n, dtype=dtype) for a, b in zip(lo, hi)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(lo))
    _, g, H = derivatives(f, grid)
    keep = (torch.linalg.eigvalsh(H)[:, 0] < 0) & (g.norm(dim=-1) > 1e-8)
    return grid[keep]


def cubic_u(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The cubic model's numbers along the most negative-curvature direction at each ``x: [M, d]``.

    The direction v is the eigenvector of the smallest Hessian eigenvalue λ, oriented downhill
    (gᵀv ≤ 0); g_v = |gᵀv|, t = the third directional derivative of f along v, and
    u = t g_v / λ². Negative u means the curvature becomes *more* negative downhill: no inflection
    ahead, the case the argument does not cover.
    """
    _, g, H = derivatives(f, x)
    lam, V = torch.linalg.eigh(H)
    v = V[..., 0]
    v = torch.where(((g * v).sum(-1, keepdim=True) > 0), -v, v)

    def along(p: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        def phi(s: torch.Tensor) -> torch.Tensor:
            return f((p + s * direction).unsqueeze(0)).squeeze(0)
        d3 = torch.func.grad(torch.func.grad(torch.func.grad(phi)))
        return d3(torch.zeros((), dtype=p.dtype))

    t = torch.func.vmap(along)(x, v)
    g_v = (g * v).sum(-1).abs()
    lam0 = lam[..., 0]
    return {"u": t * g_v / lam0 ** 2, "lambda": lam0, "g": g_v, "t": t, "direction": v}


ENDPOINTS = ("minimum", "saddle or maximum", "not stationary")
"""What :func:`classify_endpoints` calls a point."""


def classify_endpoints(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                       grad_tol: float = 1e-4) -> list[str]:
    """For each point of ``x: [M, d]``: ``"minimum"`` (‖∇f‖ < ``grad_tol``, smallest Hessian
    eigenvalue > 0), ``"saddle or maximum"`` (‖∇f‖ < ``grad_tol``, smallest eigenvalue <= 0) or
    ``"not stationary"``: where a run of a step rule ended, read from the function itself."""
    if not grad_tol > 0:
        raise ValueError(f"grad_tol: expected a positive tolerance, got {grad_tol!r}")
    _, g, H = derivatives(f, x)
    stationary = g.norm(dim=-1) < grad_tol
    convex = torch.linalg.eigvalsh(H)[:, 0] > 0
    return [ENDPOINTS[2] if not s else ENDPOINTS[0] if c else ENDPOINTS[1]
            for s, c in zip(stationary.tolist(), convex.tolist())]
