"""Batched functional MLPs.

Parameters are a tuple ``(W1, b1, W2, b2, ...)`` of plain tensors. Shared
parameters have shapes ``W: [in, out]``, ``b: [out]``; per-task parameters carry a
leading task axis, ``W: [T, in, out]``, ``b: [T, out]``. Inputs are ``[T, N, in]``.
One forward (or one explicit backward) serves every task at once.

``loss_and_grad`` writes the backward pass out by hand (matmuls and activation
derivatives). The result is an ordinary differentiable expression, so an inner
SGD step built from it can itself be differentiated: second-order MAML becomes
one graph with one ``backward()``, without double-backward through autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .activations import ACTIVATIONS, activation_and_slope
from .activations import activation as apply_activation

Params = tuple[torch.Tensor, ...]

INITS = ("pytorch", "normal")


def _affine(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h @ W + b for h: [T, N, in]; W shared [in, out] or per task [T, in, out]."""
    if W.dim() == 2:  # shared weights: one big matmul over all tasks' points
        T, N, _ = h.shape
        if b.dim() == 1:
            return torch.addmm(b, h.reshape(T * N, -1), W).reshape(T, N, -1)
        return h.matmul(W) + b.unsqueeze(1)
    return torch.baddbmm(b.unsqueeze(1), h, W)


@dataclass(frozen=True)
class MLP:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` with a linear output layer.

    >>> model = MLP((1, 40, 40, 1), activation="relu")
    >>> theta = model.init()                    # shared parameters
    >>> y = model.forward(theta, x)             # x: [T, N, 1] -> y: [T, N, 1]
    """

    sizes: tuple[int, ...]
    activation: str = "relu"

    def __post_init__(self) -> None:
        sizes = tuple(self.sizes)
        if len(sizes) < 2 or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive ints (input, ..., output), got {self.sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")

    # ---------------------------------------------------------------- structure
    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the shared parameters, in order W1, b1, W2, b2, ..."""
        out: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out += [(fan_in, fan_out), (fan_out,)]
        return out

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    # ---------------------------------------------------------- initialisation
    def init(
        self,
        n_models: int | None = None,
        *,
        scheme: str = "pytorch",
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Params:
        """Fresh parameters; with ``n_models`` a leading axis of independent draws.

        ``scheme="pytorch"``: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, as
        ``torch.nn.Linear``. ``scheme="normal"``: every weight and bias N(0, 1), as backprop2.
        """
        if scheme not in INITS:
            raise ValueError(f"unknown init scheme {scheme!r}; valid: {', '.join(INITS)}")
        if n_models is not None and (not isinstance(n_models, int) or n_models < 1):
            raise ValueError(f"n_models must be a positive int or None, got {n_models!r}")
        lead = () if n_models is None else (n_models,)
        params = []
        for shape, fan_in in zip(self.shapes, [s for s in self.sizes[:-1] for _ in (0, 1)]):
            if generator is not None and generator.device != torch.device(device):
                # draw on the generator's device then move, so a CPU generator works for CUDA models
                draw_device = generator.device
            else:
                draw_device = device
            if scheme == "normal":
                p = torch.randn(lead + shape, generator=generator, device=draw_device, dtype=dtype)
            else:
                bound = 1.0 / math.sqrt(fan_in)
                p = torch.rand(lead + shape, generator=generator, device=draw_device, dtype=dtype) * (2 * bound) - bound
            params.append(p.to(device))
        return tuple(params)

    # ------------------------------------------------------------------ checks
    def check_params(self, params: Sequence[torch.Tensor]) -> int | None:
        """Validate parameter shapes; return the task-axis length, or None if shared."""
        if len(params) != len(self.shapes):
            raise ValueError(f"params: expected {len(self.shapes)} tensors (W, b per layer), got {len(params)}")
        n_tasks = None
        for i, (p, shape) in enumerate(zip(params, self.shapes)):
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"params[{i}]: expected a tensor, got {type(p).__name__}")
            if tuple(p.shape) == shape:
                continue
            if p.dim() == len(shape) + 1 and tuple(p.shape[1:]) == shape:
                if n_tasks not in (None, p.shape[0]):
                    raise ValueError(f"params[{i}]: task axis {p.shape[0]} disagrees with earlier {n_tasks}")
                n_tasks = p.shape[0]
                continue
            raise ValueError(f"params[{i}]: expected shape {shape} or [T, *{shape}], got {tuple(p.shape)}")
        return n_tasks

    def _check_batch(self, params: Params, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        n_tasks = self.check_params(params)
        if x.dim() != 3 or x.shape[-1] != self.sizes[0]:
            raise ValueError(f"x: expected shape [T, N, {self.sizes[0]}], got {tuple(x.shape)}")
        if n_tasks is not None and x.shape[0] != n_tasks:
            raise ValueError(f"x: has {x.shape[0]} tasks but params have {n_tasks}")
        if y is not None and tuple(y.shape) != (*x.shape[:2], self.sizes[-1]):
            raise ValueError(f"y: expected shape {(*x.shape[:2], self.sizes[-1])}, got {tuple(y.shape)}")

    # ----------------------------------------------------------------- compute
    def forward(self, params: Params, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Network output ``[T, N, out]`` for inputs ``x: [T, N, in]``."""
        if check:
            self._check_batch(params, x)
        h = x
        for layer in range(self.n_layers):
            h = _affine(h, params[2 * layer], params[2 * layer + 1])
            if layer < self.n_layers - 1:
                h = apply_activation(self.activation, h)
        return h

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Mean squared error per task, ``[T]``."""
        if check:
            self._check_batch(params, x, y)
        err = self.forward(params, x, check=False) - y
        return err.pow(2).mean(dim=(1, 2))

    def loss_and_grad(
        self, params: Params, x: torch.Tensor, y: torch.Tensor, *, check: bool = True, need_loss: bool = True
    ) -> tuple[torch.Tensor | None, Params]:
        """Per-task MSE ``[T]`` and its gradient per task (each with a leading ``[T]`` axis).

        The backward pass is explicit, so the returned gradient is differentiable
        with respect to ``params`` (what second-order MAML needs). ``need_loss=False``
        skips the loss value (returns None), which inner loops do not use.
        """
        if check:
            self._check_batch(params, x, y)
        T, N, _ = x.shape
        relu = self.activation == "relu"
        inputs, saved = [], []
        h = x
        for layer in range(self.n_layers):
            inputs.append(h)
            z = _affine(h, params[2 * layer], params[2 * layer + 1])
            if layer < self.n_layers - 1:
                if relu:  # keep the output; threshold_backward gives the masked gradient in one op
                    h = torch.relu(z)
                    saved.append(h)
                else:
                    h, slope = activation_and_slope(self.activation, z)
                    saved.append(slope)
            else:
                h = z
        err = h - y
        loss = err.pow(2).mean(dim=(1, 2)) if need_loss else None
        delta = err * (2.0 / (N * self.sizes[-1]))  # dL/dz at the output, per task
        grads: list[torch.Tensor] = [None] * len(params)  # type: ignore[list-item]
        for layer in reversed(range(self.n_layers)):
            grads[2 * layer] = torch.bmm(inputs[layer].transpose(1, 2), delta)
            grads[2 * layer + 1] = delta.sum(dim=1)
            if layer > 0:
                back = delta.matmul(params[2 * layer].transpose(-1, -2))
                if relu:
                    delta = torch.ops.aten.threshold_backward(back, saved[layer - 1], 0.0)
                else:
                    delta = back * saved[layer - 1]
        return loss, tuple(grads)

    # ----------------------------------------------------------- flat vectors
    def flatten(self, params: Params) -> torch.Tensor:
        """One flat vector per model: ``[P]`` (shared) or ``[T, P]`` (per task)."""
        n_tasks = self.check_params(params)
        lead = () if n_tasks is None else (n_tasks,)
        return torch.cat([p.expand(*lead, *s).reshape(*lead, -1) for p, s in zip(params, self.shapes)], dim=-1)

    def unflatten(self, flat: torch.Tensor) -> Params:
        """Inverse of :meth:`flatten`; the results are views into ``flat``."""
        if flat.shape[-1] != self.n_params or flat.dim() not in (1, 2):
            raise ValueError(f"flat: expected shape [{self.n_params}] or [T, {self.n_params}], got {tuple(flat.shape)}")
        lead = tuple(flat.shape[:-1])
        out, start = [], 0
        for s in self.shapes:
            size = math.prod(s)
            out.append(flat[..., start : start + size].reshape(*lead, *s))
            start += size
        return tuple(out)

    def expand(self, params: Params, n_tasks: int) -> Params:
        """Give shared parameters an explicit task axis ``[n_tasks, ...]`` (views, no copies)."""
        self.check_params(params)
        return tuple(p.expand(n_tasks, *s) if tuple(p.shape) == s else p for p, s in zip(params, self.shapes))
