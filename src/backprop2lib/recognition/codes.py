"""Class models that adapt only a small code: each digit's network can move only inside what it learned.

Full-parameter adaptation of a coordinate network lets any class model fit any digit given
enough steps, so its error says little about the class. What made analysis by synthesis work
elsewhere (ABS, Schott et al. 2019; CAVIA, Zintgraf et al. 2019; functa, Dupont et al. 2022)
is that adaptation changes only a low-dimensional code z that a class's decoder turns into a
picture. Here, per class c:

    f_c(x; z) = MLP_c([φ(x), z])                 x: a pixel's coordinates, z ∈ R^d

with φ the raw coordinates or fixed random Fourier features (sin and cos of x·B). Adapting to an
image means gradient steps on the code only, on the pixels the image is *adapted on*:

    J_c(z) = E_adapt(z) + β · ½ mean(((z − μ_c) / σ_c)²),    z ← z − α_c ⊙ ∇_z J_c

and the image is *scored* on the pixels held out from adaptation, E_held(z*) (+ optionally the
code's prior penalty). Meta-training (:func:`train_code_models`, CAVIA's second-order loop) learns
each class's network, its code prior (μ_c, σ_c) and per-dimension code step sizes α_c (as
Meta-SGD and functa do), all ten classes batched on one leading axis. At test time
(:func:`adapt_codes`) several starts drawn from the prior take a few steps each; the best start
by J is refined (ABS's many starts, then refinement).

Shapes: ``C`` classes, ``N`` images, ``K`` starts, ``d`` code dimensions, 784 pixels. Masks are
``[N, 784]`` booleans, True where a pixel is adapted on (:func:`pixel_split`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..data.mnist import N_CLASSES, N_PIXELS
from ..models.activations import ACTIVATIONS
from ..models.activations import activation as apply_activation
from ..models.mlp import MLP
from .images import coordinate_grid, moved_each

__all__ = ["CodeReconstructor", "CodeClassModels", "CodeSettings", "CodeFit", "pixel_split", "adapt_codes",
           "adapt_codes_with_edits", "train_code_models", "edited_coordinates"]


# ----------------------------------------------------------------------------- the reconstructor

@dataclass(frozen=True)
class CodeReconstructor:
    """A coordinate network conditioned on a code: inputs φ(x) (2 raw coordinates, or 2·``fourier``
    Fourier features) then the ``code_dim`` code, hidden layers ``hidden``, one output."""

    code_dim: int
    hidden: tuple[int, ...] = (20,)
    activation: str = "gaussian"
    fourier: int = 0  # Fourier frequencies (0: the raw coordinates)
    fourier_scale: float = 2.0  # frequencies B ~ N(0, scale²) per coordinate, in cycles across [−1, 1]
    fourier_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("code_dim", "fourier"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "code_dim" else 0):
                raise ValueError(f"{name}: expected an int >= {1 if name == 'code_dim' else 0}, got {value!r}")
        hidden = tuple(self.hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"hidden: expected one or more positive layer widths, got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if not self.fourier_scale > 0:
            raise ValueError(f"fourier_scale: expected a positive number, got {self.fourier_scale!r}")

    @property
    def n_features(self) -> int:
        return 2 if self.fourier == 0 else 2 * self.fourier

    @property
    def mlp(self) -> MLP:
        return MLP((self.n_features + self.code_dim, *self.hidden, 1), activation=self.activation)

    @property
    def n_params(self) -> int:
        return self.mlp.n_params

    def describe(self) -> str:
        first = "x, y" if self.fourier == 0 else f"{self.fourier} Fourier frequencies of x, y"
        return f"[{first}; code of {self.code_dim}] → {'-'.join(map(str, self.hidden))} {self.activation} → 1"

    def features(self, coords: torch.Tensor) -> torch.Tensor:
        """φ(x) for coordinates ``[..., 2]``: themselves, or [sin(π x·B), cos(π x·B)] with B fixed by the seed."""
        if coords.shape[-1] != 2:
            raise ValueError(f"coords: expected [..., 2] pixel coordinates, got {tuple(coords.shape)}")
        if self.fourier == 0:
            return coords
        g = torch.Generator().manual_seed(self.fourier_seed)
        B = (torch.randn(2, self.fourier, generator=g, dtype=torch.float64) * self.fourier_scale).to(coords)
        angle = math.pi * coords @ B
        return torch.cat([angle.sin(), angle.cos()], dim=-1)

    def reconstruct(self, w: torch.Tensor, codes: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Brightness ``[C, N, n]`` of class networks ``w [C, P]`` with codes ``codes [C, N, d]`` at pixels whose
        features are ``features`` (``[n, F]`` shared by every image, ``[N, n, F]`` per image, or
        ``[C, N, n, F]`` per class and image)."""
        C, N, d = codes.shape
        if w.dim() != 2 or w.shape != (C, self.n_params):
            raise ValueError(f"w: expected [C, {self.n_params}] for {C} classes, got {tuple(w.shape)}")
        if d != self.code_dim:
            raise ValueError(f"codes: expected code dimension {self.code_dim}, got {d}")
        params = self.mlp.unflatten(w)
        F = self.n_features
        W1, b1 = params[0], params[1]  # [C, F + d, H], [C, H]
        if features.dim() == 2:  # one coordinate part per class, shared by the images
            coord_part = (features @ W1[:, :F]).unsqueeze(1)  # [C, 1, n, H]
        elif features.dim() == 3 and features.shape[0] == N:
            coord_part = torch.einsum("knf,cfh->cknh", features, W1[:, :F])  # [C, N, n, H]
        elif features.dim() == 4 and features.shape[:2] == (C, N):
            coord_part = torch.einsum("cknf,cfh->cknh", features, W1[:, :F])
        else:
            raise ValueError(f"features: expected [n, {F}], [{N}, n, {F}] or [{C}, {N}, n, {F}], "
                             f"got {tuple(features.shape)}")
        code_part = torch.einsum("ckd,cdh->ckh", codes, W1[:, F:]) + b1.unsqueeze(1)  # [C, N, H]
        a = coord_part + code_part.unsqueeze(2)  # [C, N, n, H]
        n = a.shape[2]
        h = apply_activation(self.activation, a).reshape(C, N * n, -1)
        tail = MLP(self.mlp.sizes[1:], activation=self.activation)
        return tail.forward(params[2:], h, check=False).reshape(C, N, n)


def edited_coordinates(shift=(0.0, 0.0), angle: float = 0.0, *, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """The pixel grid ``[784, 2]`` seen by a reconstruction moved by ``shift`` (coordinate units, 2/27 per
    pixel, +y up) and turned by ``angle`` radians about the centre: f'(x) = f(R⁻¹(x − shift))."""
    grid = coordinate_grid(dtype=dtype, device=device)
    c, s = math.cos(angle), math.sin(angle)
    inverse = torch.tensor([[c, -s], [s, c]], dtype=dtype, device=device)  # R⁻¹ applied to row vectors: x R
    return (grid - torch.as_tensor(shift, dtype=dtype, device=device)) @ inverse


def pixel_split(n_images: int, fraction: float, *, seed: int = 0, device="cpu") -> torch.Tensor:
    """``[n_images, 784]`` masks, True on a random ``fraction`` of each image's pixels (adapted on), False on the
    rest (held out, scored on); each image its own draw, from ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction: expected a fraction of pixels in (0, 1), got {fraction!r}")
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 0:
        raise ValueError(f"n_images: expected a non-negative int, got {n_images!r}")
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(n_images, N_PIXELS, generator=g, dtype=torch.float64).argsort(dim=1)
    k = int(round(fraction * N_PIXELS))
    mask = torch.zeros(n_images, N_PIXELS, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask.to(device)


# ----------------------------------------------------------------------------- class models

@dataclass
class CodeClassModels:
    """Ten (or C) class models: networks ``w [C, P]``, code priors ``mu, log_sigma [C, d]``, code step sizes
    ``log_alpha [C, d]``, and ``beta``, the weight of the code's prior penalty in J."""

    reconstructor: CodeReconstructor
    w: torch.Tensor
    mu: torch.Tensor
    log_sigma: torch.Tensor
    log_alpha: torch.Tensor
    beta: float = 0.01
    seconds: float = 0.0
    history: list = field(default_factory=list)  # (iteration, mean held-out error) during meta-training
    validation: list = field(default_factory=list)  # (iterations done, the validate callback's value)

    @classmethod
    def initial(cls, reconstructor: CodeReconstructor, n_classes: int = N_CLASSES, *, seed: int = 0,
                inner_lr: float = 1.0, beta: float = 0.01, dtype=torch.float32, device="cpu") -> "CodeClassModels":
        """Every class from the same random network (PyTorch's scheme), μ = 0, σ = 1, α = ``inner_lr``."""
        g = torch.Generator().manual_seed(seed)
        w0 = reconstructor.mlp.flatten(reconstructor.mlp.init(generator=g, dtype=torch.float64))
        d = reconstructor.code_dim
        zeros = torch.zeros(n_classes, d, dtype=dtype, device=device)
        return cls(reconstructor, w0.to(dtype).repeat(n_classes, 1).to(device), zeros.clone(), zeros.clone(),
                   torch.full_like(zeros, math.log(inner_lr)), beta)

    @property
    def n_classes(self) -> int:
        return self.w.shape[0]

    def parameters(self) -> list[torch.Tensor]:
        return [self.w, self.mu, self.log_sigma, self.log_alpha]

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        """½ mean(((z − μ_c)/σ_c)²) over the code's dimensions, for codes ``z [C, ..., d]``: ``[C, ...]``."""
        shape = (self.n_classes,) + (1,) * (z.dim() - 2) + (z.shape[-1],)
        u = (z - self.mu.reshape(shape)) / self.log_sigma.exp().reshape(shape)
        return 0.5 * u.pow(2).mean(-1)

    def select(self, classes) -> "CodeClassModels":
        """The class models ``classes`` only (an index or a list), in that order."""
        idx = torch.as_tensor(classes).reshape(-1)
        return CodeClassModels(self.reconstructor, self.w[idx], self.mu[idx], self.log_sigma[idx],
                               self.log_alpha[idx], self.beta)


def _errors(models: CodeClassModels, z: torch.Tensor, features, targets: torch.Tensor, masks: torch.Tensor):
    """Mean ½ squared error on the adapted and on the held-out pixels, each ``[C, M]`` for codes ``z [C, M, d]``
    (M = images × starts, flattened); ``targets, masks [M, 784]``."""
    pred = models.reconstructor.reconstruct(models.w, z, features)  # [C, M, 784]
    sq = 0.5 * (pred - targets.unsqueeze(0)).pow(2)
    m = masks.to(sq.dtype).unsqueeze(0)
    adapt = (sq * m).sum(-1) / m.sum(-1).clamp_min(1)
    held = (sq * (1 - m)).sum(-1) / (1 - m).sum(-1).clamp_min(1)
    return adapt, held


def _inner_steps(models: CodeClassModels, z, features, targets, masks, steps: int, *, create_graph: bool):
    """``steps`` gradient steps on J = E_adapt + β·penalty, codes only; returns the codes."""
    alpha = models.log_alpha.exp().unsqueeze(1)  # [C, 1, d]
    for _ in range(steps):
        adapt, _ = _errors(models, z, features, targets, masks)
        J = adapt + models.beta * models.penalty(z)
        (grad,) = torch.autograd.grad(J.sum(), z, create_graph=create_graph)
        z = z - alpha * grad
    return z


@dataclass
class CodeFit:
    """Codes adapted to images by every class model, and the scores: each ``[N, C]`` (codes ``[N, C, d]``)."""

    codes: torch.Tensor
    adapt_error: torch.Tensor  # E on the pixels adapted on
    held_error: torch.Tensor  # E on the held-out pixels: the score
    penalty: torch.Tensor  # ½ mean(((z − μ)/σ)²)
    objective: torch.Tensor  # E_adapt + β·penalty, what the starts were chosen by

    def scores(self, prior_weight: float = 0.0) -> torch.Tensor:
        """The class scores, lower is better: held-out error + ``prior_weight`` × the code's penalty."""
        return self.held_error + prior_weight * self.penalty

    def predict(self, prior_weight: float = 0.0) -> torch.Tensor:
        return self.scores(prior_weight).argmin(-1)

    def predict_per_seed(self, n_seeds: int, prior_weight: float = 0.0) -> torch.Tensor:
        """For class models trained with several seeds (rows seed-major, :func:`train_code_models`): each seed's
        predictions among its own C classes, ``[S, N]``."""
        scores = self.scores(prior_weight)
        if scores.shape[1] % n_seeds:
            raise ValueError(f"n_seeds: {scores.shape[1]} class models do not split into {n_seeds} seeds")
        return scores.reshape(scores.shape[0], n_seeds, -1).argmin(-1).T


def adapt_codes(models: CodeClassModels, images: torch.Tensor, masks: torch.Tensor, *, starts: int = 8,
                steps: int = 5, refine: int = 20, features: torch.Tensor | None = None,
                start_noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                chunk: int = 64, points: int | None = None) -> CodeFit:
    """Every class model's code adapted to every image (``images [N, 784]`` in [0, 1]) on its ``masks``:
    ``starts`` starts (the prior mean, then draws from N(μ, σ²)) take ``steps`` steps; the best by J is refined for
    ``refine`` more. ``features``: the pixels' features (default: the plain grid's; ``[N, 784, F]`` for edited
    coordinates per image). ``start_noise [N, starts - 1, d]``: the draws' standard-normal noise (default from
    ``generator``), shared by the classes. ``points``: adapt on a random draw of this many of each image's adapted
    pixels (the same draw for every class and start; the cost of a step scales with it); the errors reported are on
    every adapted and held-out pixel. Images go in chunks of ``chunk``; gradients never leave this function.
    """
    if images.dim() != 2 or images.shape[1] != N_PIXELS:
        raise ValueError(f"images: expected [N, {N_PIXELS}] grey levels in [0, 1], got {tuple(images.shape)}")
    if masks.shape != images.shape or masks.dtype != torch.bool:
        raise ValueError(f"masks: expected a bool tensor shaped like images {tuple(images.shape)}, "
                         f"got {masks.dtype} {tuple(masks.shape)}")
    for name, value in (("starts", starts), ("steps", steps), ("refine", refine), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name in ("starts", "chunk") else 0):
            raise ValueError(f"{name}: expected a {'positive' if name in ('starts', 'chunk') else 'non-negative'} int, "
                             f"got {value!r}")
    N, d, C = images.shape[0], models.reconstructor.code_dim, models.n_classes
    dtype, device = models.w.dtype, models.w.device
    if start_noise is None:
        g = generator or torch.Generator().manual_seed(0)
        start_noise = torch.randn(N, starts - 1, d, generator=g, dtype=torch.float64)
    if start_noise.shape != (N, starts - 1, d):
        raise ValueError(f"start_noise: expected [{N}, {starts - 1}, {d}], got {tuple(start_noise.shape)}")
    start_noise = start_noise.to(device=device, dtype=dtype)
    grid = models.reconstructor.features(coordinate_grid(dtype=dtype, device=device)) if features is None else features
    images, masks = images.to(device=device, dtype=dtype), masks.to(device)
    if points is not None:
        fewest = int(masks.sum(1).min()) if N else 0
        if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= max(fewest, 1):
            raise ValueError(f"points: expected None or an int from 1 to the fewest adapted pixels of an image "
                             f"({fewest}), got {points!r}")
        g = torch.Generator().manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator))
                                          if generator is not None else 1)
        order = torch.rand(N, N_PIXELS, generator=g, dtype=torch.float64).to(device).argsort(1)
        # each image's first `points` adapted pixels in that random order
        rank = torch.where(masks.gather(1, order), torch.arange(N_PIXELS, device=device), N_PIXELS)
        chosen = order.gather(1, rank.sort(1).indices[:, :points])  # [N, points]
    out = []
    with torch.enable_grad():
        for a in range(0, N, chunk):
            b = min(N, a + chunk)
            n = b - a
            if points is None:
                fit_grid, fit_images, fit_masks = grid, images[a:b], masks[a:b]
            else:  # per image: its drawn pixels only, all of them adapted on
                idx = chosen[a:b]
                fit_grid = grid[idx] if grid.dim() == 2 else grid[a:b].gather(1, idx[..., None].expand(-1, -1,
                                                                                                    grid.shape[-1]))
                fit_images = images[a:b].gather(1, idx)
                fit_masks = torch.ones_like(idx, dtype=torch.bool)
            feats = fit_grid if fit_grid.dim() == 2 else fit_grid.repeat_interleave(starts, 0)
            # starts: [C, n, K, d]: start 0 at μ, the others μ + σ ε
            eps = torch.cat([torch.zeros(n, 1, d, dtype=dtype, device=device), start_noise[a:b]], dim=1)
            z = models.mu[:, None, None, :] + models.log_sigma.exp()[:, None, None, :] * eps.unsqueeze(0)
            z = z.reshape(C, n * starts, d).detach().requires_grad_(True)
            targets = fit_images.repeat_interleave(starts, 0)
            m = fit_masks.repeat_interleave(starts, 0)
            z = _inner_steps(models, z, feats, targets, m, steps, create_graph=False)
            with torch.no_grad():
                adapt, _ = _errors(models, z, feats, targets, m)
                J = (adapt + models.beta * models.penalty(z)).reshape(C, n, starts)
                best = J.argmin(-1)  # [C, n]
                z = z.reshape(C, n, starts, d).gather(2, best[..., None, None].expand(C, n, 1, d)).squeeze(2)
            z = _inner_steps(models, z.detach().requires_grad_(True), fit_grid, fit_images, fit_masks, refine,
                             create_graph=False).detach()
            with torch.no_grad():
                adapt, held = _errors(models, z, grid if grid.dim() == 2 else grid[a:b], images[a:b], masks[a:b])
                pen = models.penalty(z)
            out.append((z.transpose(0, 1), adapt.T, held.T, pen.T, (adapt + models.beta * pen).T))
    codes, adapt, held, pen, obj = (torch.cat(parts, 0).detach().cpu() for parts in zip(*out))
    return CodeFit(codes, adapt, held, pen, obj)


def adapt_codes_with_edits(models: CodeClassModels, images: torch.Tensor, masks: torch.Tensor,
                           edits: list[tuple[tuple[float, float], float]], *, prior_weight: float = 0.0,
                           generator: torch.Generator | None = None, **adapt) -> tuple[CodeFit, torch.Tensor]:
    """:func:`adapt_codes` once per edit ``((dx, dy), angle)`` of the class models' pictures (their coordinates
    moved and turned, :func:`edited_coordinates`), keeping per image and class the edit whose score (held-out
    error + ``prior_weight`` × penalty) is lowest. Returns that fit and the chosen edit's index ``[N, C]``.

    Every (image, edit) pair is one row of a single batched adaptation, and every edit sees the same start
    draws, so with the identity among ``edits`` the search can only lower the score.
    """
    if not edits:
        raise ValueError("edits: expected at least one ((dx, dy), angle) edit")
    N, E = images.shape[0], len(edits)
    starts = adapt.get("starts", 8)
    d = models.reconstructor.code_dim
    noise = adapt.pop("start_noise", None)
    if noise is None:
        g = generator or torch.Generator().manual_seed(0)
        noise = torch.randn(N, starts - 1, d, generator=g, dtype=torch.float64)
    rec, dtype, device = models.reconstructor, models.w.dtype, models.w.device
    feats = torch.stack([rec.features(edited_coordinates(shift, angle, dtype=dtype, device=device))
                         for shift, angle in edits])  # [E, 784, F]
    fit = adapt_codes(models, images.repeat_interleave(E, 0), masks.repeat_interleave(E, 0),
                      features=feats.repeat(N, 1, 1), start_noise=noise.repeat_interleave(E, 0), **adapt)

    def per_edit(t):  # [N·E, C, ...] -> [N, E, C, ...]
        return t.reshape(N, E, *t.shape[1:])

    score = per_edit(fit.scores(prior_weight))  # [N, E, C]
    best = score.argmin(1)  # [N, C]

    def pick(t):
        t = per_edit(t)
        index = best.reshape(N, 1, -1, *([1] * (t.dim() - 3))).expand(N, 1, *t.shape[2:])
        return t.gather(1, index).squeeze(1)

    return CodeFit(pick(fit.codes), pick(fit.adapt_error), pick(fit.held_error), pick(fit.penalty),
                   pick(fit.objective)), best


# ----------------------------------------------------------------------------- meta-training

@dataclass(frozen=True)
class CodeSettings:
    """Meta-training of code class models: CAVIA's loop, every class on one batched axis."""

    iterations: int = 500
    meta_batch: int = 16  # images per class per iteration
    inner_steps: int = 5
    adapt_fraction: float = 0.5  # pixels adapted on in training; the query is the rest
    points: int | None = 256  # adapt and query pixels drawn per image and iteration (None: all, by the split)
    meta_lr: float = 3e-3
    inner_lr: float = 1.0  # α's start
    beta: float = 0.01
    seed: int = 0
    # Deformed copies: each drawn training image moved by a shift up to this many pixels (each axis, uniform)
    # and turned up to this many degrees; with a few images per class, the code can then learn to move them.
    augment_shift: float = 0.0
    augment_angle: float = 0.0

    def __post_init__(self) -> None:
        for name in ("augment_shift", "augment_angle"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a non-negative number, got {getattr(self, name)!r}")
        for name in ("iterations", "meta_batch", "inner_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not 0 < self.adapt_fraction < 1:
            raise ValueError(f"adapt_fraction: expected a fraction in (0, 1), got {self.adapt_fraction!r}")
        if self.points is not None and (isinstance(self.points, bool) or not isinstance(self.points, int)
                                        or not 1 <= self.points <= min(self.adapt_fraction, 1 - self.adapt_fraction)
                                        * N_PIXELS):
            raise ValueError(f"points: expected None or an int from 1 to the smaller side of the split "
                             f"({int(min(self.adapt_fraction, 1 - self.adapt_fraction) * N_PIXELS)}), got {self.points!r}")
        for name in ("meta_lr", "inner_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta: expected beta >= 0, got {self.beta!r}")


def meta_loss(models: CodeClassModels, images: torch.Tensor, masks: torch.Tensor, steps: int,
              features: torch.Tensor | None = None) -> torch.Tensor:
    """CAVIA's meta-loss for ``images [C, T, 784]`` (class c's images in row c) with ``masks [C, T, 784]``: codes
    from μ_c, ``steps`` inner steps on the adapted pixels (differentiated through), then the mean held-out error."""
    C, T, _ = images.shape
    d = models.reconstructor.code_dim
    feats = features if features is not None else models.reconstructor.features(
        coordinate_grid(dtype=models.w.dtype, device=models.w.device))
    z = models.mu.unsqueeze(1).expand(C, T, d)
    if not z.requires_grad:
        z = z.clone().requires_grad_(True)
    alpha = models.log_alpha.exp().unsqueeze(1)
    m = masks.to(images.dtype)
    for _ in range(steps):
        pred = models.reconstructor.reconstruct(models.w, z, feats)
        sq = 0.5 * (pred - images).pow(2)
        adapt = (sq * m).sum(-1) / m.sum(-1).clamp_min(1)
        J = adapt + models.beta * models.penalty(z)
        (grad,) = torch.autograd.grad(J.sum(), z, create_graph=True)
        z = z - alpha * grad
    pred = models.reconstructor.reconstruct(models.w, z, feats)
    sq = 0.5 * (pred - images).pow(2)
    held = (sq * (1 - m)).sum(-1) / (1 - m).sum(-1).clamp_min(1)
    return held.mean()


def meta_loss_on_points(models: CodeClassModels, adapt_y: torch.Tensor, adapt_features: torch.Tensor,
                        query_y: torch.Tensor, query_features: torch.Tensor, steps: int) -> torch.Tensor:
    """:func:`meta_loss` on gathered pixels: class c's image t adapts on the pixels ``adapt_y [C, T, n_a]`` (features
    ``[C, T, n_a, F]``) and is scored on ``query_y [C, T, n_q]``. Training draws a few hundred of each per image
    instead of computing all 784 pixels at every inner step."""
    C, T, _ = adapt_y.shape
    d = models.reconstructor.code_dim
    z = models.mu.unsqueeze(1).expand(C, T, d)
    if not z.requires_grad:
        z = z.clone().requires_grad_(True)
    alpha = models.log_alpha.exp().unsqueeze(1)
    for _ in range(steps):
        pred = models.reconstructor.reconstruct(models.w, z, adapt_features)
        J = 0.5 * (pred - adapt_y).pow(2).mean(-1) + models.beta * models.penalty(z)
        (grad,) = torch.autograd.grad(J.sum(), z, create_graph=True)
        z = z - alpha * grad
    pred = models.reconstructor.reconstruct(models.w, z, query_features)
    return 0.5 * (pred - query_y).pow(2).mean()


def train_code_models(reconstructor: CodeReconstructor, pixels_by_class: list[torch.Tensor],
                      settings: CodeSettings = CodeSettings(), *, seeds=None, validate=None, validate_every: int = 0,
                      progress: bool | None = None) -> CodeClassModels:
    """Meta-train one code class model per entry of ``pixels_by_class`` (class c's images ``[M_c, 784]``), all at
    once: each iteration draws ``meta_batch`` images per class and fresh adapt/held-out pixel splits.

    ``seeds`` (default: ``settings.seed`` alone) trains one set of class models per seed in the same batch, rows
    seed-major (row ``s·C + c`` is class c under ``seeds[s]``): each seed starts from its own network and draws its
    images, moves and splits from its own generator, and the loss is the sum of the seeds' meta-losses, so every
    seed's models are the ones it would get alone (up to floating-point summation order).

    ``validate(models) -> float`` (e.g. accuracy on validation images) or a list (one per seed), called on a
    detached copy every ``validate_every`` iterations and after the last, fills ``models.validation``: the budget
    curve."""
    from ..progress import progress_bar

    if isinstance(validate_every, bool) or not isinstance(validate_every, int) or validate_every < 0:
        raise ValueError(f"validate_every: expected a non-negative int, got {validate_every!r}")
    if (validate is None) != (validate_every == 0):
        raise ValueError("validate, validate_every: give both (a callback and how often) or neither")
    if len(pixels_by_class) < 2:
        raise ValueError(f"pixels_by_class: expected at least two classes, got {len(pixels_by_class)}")
    for c, p in enumerate(pixels_by_class):
        if p.dim() != 2 or p.shape[1] != N_PIXELS or p.shape[0] < 1:
            raise ValueError(f"pixels_by_class[{c}]: expected [M, {N_PIXELS}] with M >= 1, got {tuple(p.shape)}")
    s = settings
    seeds = (s.seed,) if seeds is None else tuple(int(seed) for seed in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct training seeds, got {seeds!r}")
    C, S = len(pixels_by_class), len(seeds)
    dtype, device = pixels_by_class[0].dtype, pixels_by_class[0].device
    per_seed = [CodeClassModels.initial(reconstructor, C, seed=seed, inner_lr=s.inner_lr, beta=s.beta, dtype=dtype,
                                        device=device) for seed in seeds]
    models = CodeClassModels(reconstructor, *(torch.cat([getattr(m, name) for m in per_seed])
                                              for name in ("w", "mu", "log_sigma", "log_alpha")), s.beta)
    for p in models.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(models.parameters(), lr=s.meta_lr)
    generators = [torch.Generator().manual_seed(seed + 1) for seed in seeds]
    feats = reconstructor.features(coordinate_grid(dtype=dtype, device=device))
    started = time.perf_counter()
    bar = progress_bar(s.iterations, "code class models", progress)
    for it in range(s.iterations):
        draws = [_draw(pixels_by_class, s, g, device) for g in generators]  # per seed: its own stream
        batch = torch.cat([d[0] for d in draws])  # [S·C, T, 784]
        masks = torch.cat([d[1] for d in draws])
        if s.points is None:
            loss = S * meta_loss(models, batch, masks, s.inner_steps, feats)  # = the sum of the seeds' means
        else:
            order = torch.cat([d[2] for d in draws])
            side = masks.gather(-1, order)
            adapt_idx = order.masked_select(side).reshape(*batch.shape[:2], -1)[..., :s.points]
            query_idx = order.masked_select(~side).reshape(*batch.shape[:2], -1)[..., :s.points]
            loss = S * meta_loss_on_points(models, batch.gather(-1, adapt_idx), feats[adapt_idx],
                                           batch.gather(-1, query_idx), feats[query_idx], s.inner_steps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_code_models: meta-loss not finite at iteration {it}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        models.history.append((it, float(loss.detach()) / S))
        if validate is not None and ((it + 1) % validate_every == 0 or it + 1 == s.iterations):
            snapshot = CodeClassModels(reconstructor, *(p.detach().clone() for p in models.parameters()), s.beta)
            value = validate(snapshot)  # a number, or one per seed
            models.validation.append((it + 1, float(value) if isinstance(value, (int, float)) else
                                      [float(v) for v in value]))
        bar.update(1)
    bar.close()
    for p in models.parameters():
        p.requires_grad_(False)
    models.seconds = time.perf_counter() - started
    return models


def _draw(pixels_by_class: list[torch.Tensor], s: CodeSettings, g: torch.Generator, device):
    """One seed's draw for an iteration: ``meta_batch`` images per class (moved, if augmenting), their pixel
    splits, and (when training on ``points``) a random pixel order per image."""
    batch = torch.stack([p[torch.randint(p.shape[0], (s.meta_batch,), generator=g).to(p.device)]
                         for p in pixels_by_class])  # [C, T, 784]
    if s.augment_shift or s.augment_angle:
        n = batch.shape[0] * batch.shape[1]
        shifts = (torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1) * s.augment_shift
        angles = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * s.augment_angle
        batch = moved_each(batch.reshape(n, -1), shifts, angles).reshape(batch.shape)
    masks = pixel_split(len(pixels_by_class) * s.meta_batch, s.adapt_fraction,
                        seed=int(torch.randint(2**31 - 1, (1,), generator=g)), device=device).reshape(batch.shape)
    order = None
    if s.points is not None:  # a draw of each side of the split: the first `points` of each in a random order
        order = torch.rand(batch.shape, generator=g, dtype=torch.float64).to(device).argsort(-1)
    return batch, masks, order
