"""backprop2's sinusoidal regression with several inputs and outputs: y = A sin(2π F (x − φ)) + b + noise.

A task is a random vector-valued function of ``d`` inputs with ``o`` outputs: a phase φ ``[d]``, a
frequency matrix F ``[o, d]``, a mixing matrix A ``[o, o]`` and an offset b ``[o]``, every entry
drawn N(0, 1); inputs are uniform on ``x_range`` per coordinate and the noise N(0, σ²) is added to
every output. With one input and one output this is the sinusoid of the reference's "other data sets"
(y = A·sin(2πF(x − φ)) + N(b, 0.1²)); with two inputs and three outputs it is the data set of the
only numeric result backprop2 published, its hyper-parameter sweep of SGD with a line search
(:mod:`backprop2lib.experiments.line_search_sweep`).

:meth:`MixedSinusoidTasks.legacy_task` draws the one task that numpy's legacy generator, seeded
once, gives when the draws are made in backprop2's order (φ, F, A, b, training inputs, test
inputs, training noise, test noise), so that experiment runs on the very numbers it ran on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .batch import TaskBatch, TaskFamily, add_noise, check_number, check_range, uniform_inputs


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class MixedSinusoidTasks(TaskFamily):
    """Tasks y = A sin(2π F (x − φ)) + b + N(0, noise_std²), x ~ U[x_range]^d, every entry of φ, F, A, b ~ N(0, 1).

    A batch's ``truth`` is ``[T, d + o·d + o·o + o]``: φ, then F and A row-major, then b
    (:meth:`unpack` splits it).
    """

    input_dim: int = 2
    output_dim: int = 3
    x_range: tuple[float, float] = (-2.0, 2.0)
    noise_std: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_dim", _positive_int("input_dim", self.input_dim))
        object.__setattr__(self, "output_dim", _positive_int("output_dim", self.output_dim))
        object.__setattr__(self, "x_range", check_range("x_range", self.x_range))
        object.__setattr__(self, "noise_std", check_number("noise_std", self.noise_std))

    @property
    def n_truth(self) -> int:
        """Numbers per task: ``d + o·d + o·o + o``."""
        d, o = self.input_dim, self.output_dim
        return d + o * d + o * o + o

    def unpack(self, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """φ ``[T, d]``, F ``[T, o, d]``, A ``[T, o, o]`` and b ``[T, o]`` from ``truth [T, n_truth]``."""
        if truth.dim() != 2 or truth.shape[1] != self.n_truth:
            raise ValueError(f"truth: expected shape [T, {self.n_truth}] (phase, frequencies, mixing, offset), "
                             f"got {tuple(truth.shape)}")
        d, o = self.input_dim, self.output_dim
        phase, freq, mix, offset = truth.split([d, o * d, o * o, o], dim=1)
        return phase, freq.reshape(-1, o, d), mix.reshape(-1, o, o), offset

    def target(self, truth: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Noise-free y ``[T, N, o]`` for tasks ``truth [T, n_truth]`` at inputs ``x [T, N, d]``."""
        phase, freq, mix, offset = self.unpack(truth)
        if x.dim() != 3 or x.shape[0] != truth.shape[0] or x.shape[2] != self.input_dim:
            raise ValueError(f"x: expected shape [{truth.shape[0]}, N, {self.input_dim}], got {tuple(x.shape)}")
        waves = torch.sin(2 * math.pi * (x - phase[:, None, :]) @ freq.transpose(1, 2))  # [T, N, o]
        return waves @ mix.transpose(1, 2) + offset[:, None, :]

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        truth = torch.randn(n_tasks, self.n_truth, generator=generator, device=gen_device, dtype=dtype).to(device)
        x = uniform_inputs(self.x_range, (n_tasks, n_points, self.input_dim), generator=generator,
                           gen_device=gen_device, device=device, dtype=dtype)
        y = add_noise(self.target(truth, x), self.noise_std, generator=generator, gen_device=gen_device)
        return x, y, truth

    def legacy_task(self, seed: int, n_train: int, n_test: int | None = None, *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float64) -> TaskBatch:
        """One task drawn by ``numpy.random.RandomState(seed)`` in backprop2's order: training points as support,
        test points (``n_test``, default ``n_train``) as query.

        The draws, in order: φ ``[d]``, F ``[o, d]``, A ``[o, o]``, b ``[o]`` (standard normal), the
        training inputs and then the test inputs (uniform on ``x_range``, each drawn coordinate-major:
        all points' first coordinate, then their second, ...), then the training noise and the test
        noise (σ times standard normals, output-major). Computed in float64, then cast to ``dtype``.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed: expected an int in [0, 2**32), got {seed!r}")
        n_train = _positive_int("n_train", n_train)
        n_test = n_train if n_test is None else _positive_int("n_test", n_test)
        d, o = self.input_dim, self.output_dim
        rs = np.random.RandomState(int(seed))
        truth = np.concatenate([rs.normal(size=d), rs.normal(size=o * d), rs.normal(size=o * o), rs.normal(size=o)])
        lo, hi = self.x_range
        x_train = rs.uniform(lo, hi, size=(d, n_train)).T
        x_test = rs.uniform(lo, hi, size=(d, n_test)).T
        noise_train = self.noise_std * rs.normal(size=(o, n_train)).T
        noise_test = self.noise_std * rs.normal(size=(o, n_test)).T
        t = torch.from_numpy(truth)[None]
        xs = [torch.from_numpy(np.ascontiguousarray(x))[None] for x in (x_train, x_test)]
        ys = [self.target(t, x) + torch.from_numpy(np.ascontiguousarray(n))[None]
              for x, n in zip(xs, (noise_train, noise_test))]
        cast = dict(device=device, dtype=dtype)
        return TaskBatch(xs[0].to(**cast), ys[0].to(**cast), xs[1].to(**cast), ys[1].to(**cast), t.to(**cast))
