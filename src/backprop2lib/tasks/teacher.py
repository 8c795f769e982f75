"""Teacher-network regression tasks whose parameter distribution is known exactly.

Task t is the network ``model`` with flat parameters ``theta_t = mean + scale * eps_t``,
``eps_t ~ N(0, I)``, in :meth:`MLP.flatten`'s layout. Because ``scale`` is known per parameter,
a meta-learner's learned per-parameter quantities (learning rates, preconditioners, which
parameters it adapts) can be scored against the truth.

>>> model = MLP((2, 20, 1), activation="gaussian")
>>> tasks = TeacherTasks.sparse_variation(model, n_varying=8, spread=0.5, seed=0)
>>> batch = tasks.sample(25, 10, 10)          # batch.truth: theta_t, [25, model.n_params]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..models.mlp import MLP
from .batch import TaskFamily, add_noise, check_counts, check_number, check_range, draw_device, uniform_inputs


def _check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    return seed


def parameter_sensitivity(model: MLP, theta: torch.Tensor, *, n_points: int = 1024, seed: int = 0,
                          x_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """How much each parameter moves the output: RMS over inputs of ∂f(x)/∂θ_i at flat ``theta [P]``."""
    if theta.dim() != 1 or theta.shape[0] != model.n_params:
        raise ValueError(f"theta: expected flat parameters [{model.n_params}], got {tuple(theta.shape)}")
    g = torch.Generator().manual_seed(seed)
    lo, hi = x_range
    x = (lo + (hi - lo) * torch.rand(1, n_points, model.sizes[0], generator=g, dtype=theta.dtype)).to(theta.device)
    jac = torch.func.jacrev(lambda w: model.forward(model.unflatten(w), x, check=False).reshape(-1))(theta)
    return jac.pow(2).mean(0).sqrt()


# eq=False: mean and scale are tensors, whose == has no single truth value.
@dataclass(frozen=True, eq=False)
class TeacherTasks(TaskFamily):
    """Tasks y = model(theta_t, x) + noise, theta_t = mean + scale * N(0, I), x ~ U[x_range]^d.

    ``mean`` and ``scale`` are ``[model.n_params]`` on one device; ``scale >= 0`` and a parameter
    with scale 0 is the same (``mean``) in every task. Build families with
    :meth:`sparse_variation`, :meth:`two_spreads`, :meth:`ood_complement` or :meth:`with_scale`.
    A batch's ``truth`` is theta_t, ``[T, P]``, drawn first (:meth:`sample_params`).
    """

    model: MLP
    mean: torch.Tensor
    scale: torch.Tensor
    x_range: tuple[float, float] = (-1.0, 1.0)
    noise_std: float = 0.0
    name: str = "teacher"

    def __post_init__(self) -> None:
        if not isinstance(self.model, MLP):
            raise ValueError(f"model: expected an MLP, got {type(self.model).__name__}")
        P = self.model.n_params
        for field in ("mean", "scale"):
            t = getattr(self, field)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise ValueError(f"{field}: expected a floating-point tensor of shape [{P}], got {t!r}")
            if tuple(t.shape) != (P,):
                raise ValueError(f"{field}: expected shape [{P}] (model.n_params), got {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"{field}: expected finite values, got {int((~torch.isfinite(t)).sum())} non-finite")
        if bool((self.scale < 0).any()):
            raise ValueError(f"scale: expected values >= 0, min is {float(self.scale.min())}")
        if self.scale.device != self.mean.device:
            raise ValueError(f"scale: on {self.scale.device} but mean is on {self.mean.device}")
        object.__setattr__(self, "x_range", check_range("x_range", self.x_range))
        object.__setattr__(self, "noise_std", check_number("noise_std", self.noise_std))

    # ------------------------------------------------------------ constructors
    @classmethod
    def sparse_variation(
        cls,
        model: MLP,
        *,
        n_varying: int = 8,
        spread: float = 0.5,
        seed: int = 0,
        device: torch.device | str = "cpu",
        noise_std: float = 0.0,
        name: str = "sparse",
        among: str = "sensitive",
    ) -> "TeacherTasks":
        """Every parameter matters (mean ~ N(0, 1), backprop2's init) but only ``n_varying`` vary.

        Those ``n_varying`` parameters have scale ``spread``, the rest scale 0. They are chosen
        uniformly among the *sensitive* parameters (``among="sensitive"``: output sensitivity at
        the mean at least the median, see :func:`parameter_sensitivity`) or among all P
        (``among="all"``). A Gaussian unit far in its tail barely changes the output, so varying
        its weights would make tasks that differ in name only, and no learner could see it.
        ``seed`` alone fixes mean and scale (the mean equals :meth:`two_spreads`' for the same
        model and seed).
        """
        P = model.n_params
        if not isinstance(n_varying, int) or isinstance(n_varying, bool) or not 1 <= n_varying <= P:
            raise ValueError(f"n_varying: expected an int in [1, {P}] (model.n_params), got {n_varying!r}")
        if among not in ("sensitive", "all"):
            raise ValueError(f"among: expected 'sensitive' or 'all', got {among!r}")
        spread = check_number("spread", spread, positive=True)
        g = torch.Generator().manual_seed(_check_seed(seed))  # private, on CPU: same family on every device
        mean = torch.randn(P, generator=g)
        candidates = torch.arange(P)
        if among == "sensitive":
            sens = parameter_sensitivity(model, mean)
            candidates = (sens >= sens.median()).nonzero().squeeze(1)
            if candidates.numel() < n_varying:
                raise ValueError(f"n_varying: only {candidates.numel()} sensitive parameters, asked for {n_varying}")
        scale = torch.zeros(P)
        scale[candidates[torch.randperm(candidates.numel(), generator=g)[:n_varying]]] = spread
        return cls(model, mean.to(device), scale.to(device), noise_std=noise_std, name=name)

    @classmethod
    def two_spreads(
        cls,
        model: MLP,
        *,
        spreads: tuple[float, float] = (0.1, 0.4),
        seed: int = 0,
        device: torch.device | str = "cpu",
        noise_std: float = 0.0,
    ) -> tuple["TeacherTasks", "TeacherTasks"]:
        """Families "narrow" and "wide": one mean ~ N(0, 1), scales ``spreads[f] * r``.

        The profile ``r_i = exp(U(-log 3, log 3))`` is shared and heterogeneous (a factor 9
        between extremes), so a learned per-parameter scale can be scored by its correlation
        with ``r`` within each family, and by the ratio ``spreads[1] / spreads[0]`` across them.
        """
        try:
            lo, hi = (float(s) for s in spreads)
        except (TypeError, ValueError):
            raise ValueError(f"spreads: expected (narrow, wide), got {spreads!r}") from None
        if not (math.isfinite(hi) and 0 < lo < hi):
            raise ValueError(f"spreads: expected finite (narrow, wide) with 0 < narrow < wide, got {(lo, hi)}")
        P = model.n_params
        g = torch.Generator().manual_seed(_check_seed(seed))
        mean = torch.randn(P, generator=g).to(device)
        r = torch.exp((2 * torch.rand(P, generator=g) - 1) * math.log(3.0)).to(device)
        return (cls(model, mean, lo * r, noise_std=noise_std, name="narrow"),
                cls(model, mean, hi * r, noise_std=noise_std, name="wide"))

    def ood_complement(self, *, seed: int = 0, name: str = "ood") -> "TeacherTasks":
        """Out of distribution: the same scale values, moved onto parameters that never vary here.

        For a :meth:`sparse_variation` family this is the same ``spread`` on the same number of
        parameters, chosen uniformly among the non-varying *sensitive* ones (as in
        :meth:`sparse_variation`): tasks that need changes where training tasks never varied.
        """
        varying = self.varying
        sens = parameter_sensitivity(self.model, self.mean.cpu()).to(varying.device)
        n, free = int(varying.sum()), ((~varying) & (sens >= sens.median())).nonzero().squeeze(1)
        if n == 0:
            raise ValueError("scale: no parameter varies, so there is no variation to move")
        if free.numel() < n:
            raise ValueError(f"scale: {n} of {self.model.n_params} parameters vary, which leaves only "
                             f"{free.numel()} non-varying ones to carry {n} varying parameters out of distribution")
        g = torch.Generator().manual_seed(_check_seed(seed))
        chosen = free[torch.randperm(free.numel(), generator=g)[:n].to(free.device)]
        scale = torch.zeros_like(self.scale)
        scale[chosen] = self.scale[varying]
        return self.with_scale(scale, name)

    def with_scale(self, scale: torch.Tensor, name: str) -> "TeacherTasks":
        """A copy with another ``scale`` (same mean, inputs and noise), e.g. an out-of-distribution family."""
        if isinstance(scale, torch.Tensor):
            scale = scale.to(self.mean.device)  # follow the mean, so a CPU-built scale serves a CUDA family
        return dataclasses.replace(self, scale=scale, name=name)

    # ---------------------------------------------------------------- queries
    @property
    def varying(self) -> torch.Tensor:
        """Which parameters vary across tasks: ``scale > 0``, boolean ``[P]``."""
        return self.scale > 0

    def target(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Noise-free y ``[T, N, out]`` of the teachers ``theta: [T, P]`` at ``x: [T, N, in]``."""
        if theta.dim() != 2 or theta.shape[1] != self.model.n_params:
            raise ValueError(f"theta: expected shape [T, {self.model.n_params}], got {tuple(theta.shape)}")
        return self.model.forward(self.model.unflatten(theta), x)

    # --------------------------------------------------------------- sampling
    def sample_params(
        self,
        n_tasks: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``n_tasks`` teachers' flat parameters ``[T, P]``."""
        check_counts(n_tasks, 0, 0)
        # eps for every parameter, even those with scale 0: families differing only in scale
        # (with_scale) then draw the same eps, and points, from the same generator state.
        eps = torch.randn(n_tasks, self.model.n_params, generator=generator,
                          device=draw_device(generator, device), dtype=dtype).to(device)
        return self.mean.to(device, dtype) + self.scale.to(device, dtype) * eps

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        theta = self.sample_params(n_tasks, generator=generator, device=device, dtype=dtype)
        x = uniform_inputs(self.x_range, (n_tasks, n_points, self.model.sizes[0]), generator=generator,
                           gen_device=gen_device, device=device, dtype=dtype)
        y = add_noise(self.target(theta, x), self.noise_std, generator=generator, gen_device=gen_device)
        return x, y, theta
