"""backprop2's Gaussian-bump tasks: y = height * exp(-||width * (x - o)||^2) + noise on [-1, 1]^2.

A task is its offset ``o``, drawn uniformly from a small set: ``training()`` has the four
offsets {0.3, 0.9} x {0.5, 0.7}; ``ood()`` the single offset (-0.5, -0.5), outside their span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .batch import TaskFamily, add_noise, check_number, check_range, uniform_inputs

TRAINING_OFFSETS = ((0.3, 0.5), (0.3, 0.7), (0.9, 0.5), (0.9, 0.7))
OOD_OFFSETS = ((-0.5, -0.5),)


@dataclass(frozen=True)
class GaussianBumpTasks(TaskFamily):
    """Tasks y = height * exp(-||width * (x - o)||^2) + N(0, noise_std^2), x ~ U[x_range]^2, o ~ U(offsets).

    ``offsets`` is a sequence of (o1, o2) pairs (stored as a tuple of float pairs);
    a batch's ``truth`` is its offsets, ``[T, 2]``.
    """

    offsets: tuple[tuple[float, float], ...] = TRAINING_OFFSETS
    height: float = 10.0
    width: float = 5.0
    noise_std: float = 0.1
    x_range: tuple[float, float] = (-1.0, 1.0)
    name: str = "training"

    def __post_init__(self) -> None:
        try:
            table = torch.as_tensor(self.offsets, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"offsets: expected a sequence of (o1, o2) pairs, got {self.offsets!r}") from None
        if table.dim() != 2 or table.shape[0] < 1 or table.shape[1] != 2:
            raise ValueError(f"offsets: expected shape [n >= 1, 2] (a sequence of (o1, o2) pairs), "
                             f"got {tuple(table.shape)}")
        if not bool(torch.isfinite(table).all()):
            raise ValueError(f"offsets: expected finite values, got {self.offsets!r}")
        # a tuple of float pairs, so the family stays hashable and comparable (no tensor fields)
        object.__setattr__(self, "offsets", tuple((float(a), float(b)) for a, b in table.tolist()))
        for field in ("height", "width"):
            object.__setattr__(self, field, check_number(field, getattr(self, field), positive=True))
        object.__setattr__(self, "noise_std", check_number("noise_std", self.noise_std))
        object.__setattr__(self, "x_range", check_range("x_range", self.x_range))

    @classmethod
    def training(cls) -> "GaussianBumpTasks":
        return cls(TRAINING_OFFSETS, name="training")

    @classmethod
    def ood(cls) -> "GaussianBumpTasks":
        return cls(OOD_OFFSETS, name="ood")

    def target(self, offsets: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Noise-free y ``[T, N, 1]`` for offsets ``[T, 2]`` at inputs ``x: [T, N, 2]``."""
        if offsets.dim() != 2 or offsets.shape[1] != 2:
            raise ValueError(f"offsets: expected shape [T, 2], got {tuple(offsets.shape)}")
        if x.dim() != 3 or x.shape[0] != offsets.shape[0] or x.shape[2] != 2:
            raise ValueError(f"x: expected shape [{offsets.shape[0]}, N, 2], got {tuple(x.shape)}")
        z = self.width * (x - offsets[:, None, :])
        return self.height * torch.exp(-z.pow(2).sum(dim=-1, keepdim=True))

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        which = torch.randint(len(self.offsets), (n_tasks,), generator=generator, device=gen_device).to(device)
        offsets = torch.tensor(self.offsets, device=device, dtype=dtype)[which]
        x = uniform_inputs(self.x_range, (n_tasks, n_points, 2), generator=generator, gen_device=gen_device,
                           device=device, dtype=dtype)
        y = add_noise(self.target(offsets, x), self.noise_std, generator=generator, gen_device=gen_device)
        return x, y, offsets
