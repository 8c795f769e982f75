"""The coordinatewise learned optimiser of Andrychowicz et al. (2016), with a GRU variant.

A small recurrent network with 20 units per layer and two layers is shared by *every*
coordinate of every optimisee. Each coordinate keeps its own hidden (and cell) state, and a
linear head turns the top layer's output into that coordinate's update, θ ← θ + update.

Here all coordinates of all optimisees are flattened into one batch axis, so each step is one
cell per layer, however many parameter tensors there are. Ports that loop over parameter tensors
pay one call per tensor, and that loop is where hidden-state rows of different tensors have ended
up overwriting each other.

The state is *coordinate-last*: each state tensor is ``[hidden, B·P]``, one column per coordinate,
and the cells are written out here (:func:`lstm_cell`, :func:`gru_cell`) in that layout rather
than called as ``nn.LSTMCell``. Measured on a 2-core CPU with the MNIST MLP (15,910
coordinates), PyTorch's cell works on ``[B·P, 4·hidden]`` gates whose four gate slices are
strided, and its sigmoid and tanh on strided slices run about 7x slower than on the contiguous
``[hidden, B·P]`` blocks used here; with ``torch.compile`` (:meth:`CoordinatewiseOptimiser.compile`)
the pointwise work fuses too. ``benchmarks/learned_optimiser_speed.py`` measures the steps per
second of each. The parameters are still held by ``nn.LSTMCell``/``nn.GRUCell`` modules, so they
are PyTorch's own (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``, gates in PyTorch's
order), and the tests check every step against those modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .preprocess import preprocess_gradients

CELLS = ("lstm", "gru")

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class LearnedOptimiserConfig:
    """``preprocess``: p of the log/sign preprocessing, or None to feed the raw gradient."""

    cell: str = "lstm"
    hidden: int = 20
    layers: int = 2
    preprocess: float | None = 10.0
    output_scale: float = 0.1
    init_scale: float = 0.01  # the head's weights start this small: early updates are tiny

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell: unknown cell {self.cell!r}; valid: {', '.join(CELLS)}")
        for name in ("hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.preprocess is not None and not self.preprocess > 0:
            raise ValueError(f"preprocess: expected p > 0 or None, got {self.preprocess!r}")
        if not self.output_scale > 0:
            raise ValueError(f"output_scale: expected a positive number, got {self.output_scale!r}")


class CoordinatewiseOptimiser(nn.Module):
    """φ: the learned optimiser. ``forward(grad [B, P], state) -> (update [B, P], state)``."""

    def __init__(self, config: LearnedOptimiserConfig = LearnedOptimiserConfig(), *, seed: int = 0):
        super().__init__()
        self.config = config
        g = torch.Generator().manual_seed(int(seed))
        n_in = 1 if config.preprocess is None else 2
        cell = nn.LSTMCell if config.cell == "lstm" else nn.GRUCell
        self.cells = nn.ModuleList(cell(n_in if i == 0 else config.hidden, config.hidden)
                                   for i in range(config.layers))
        self.head = nn.Linear(config.hidden, 1)
        h = config.hidden
        with torch.no_grad():
            bound = h ** -0.5
            for p in self.parameters():  # deterministic from the seed, same range as PyTorch's default
                p.copy_(torch.rand(p.shape, generator=g) * 2 * bound - bound)
            if config.cell == "lstm":
                # gates are ordered (input, forget, cell, output): forget-gate bias 1 keeps memory early on
                for c in self.cells:
                    c.bias_ih[h:2 * h].fill_(1.0)
                    c.bias_hh[h:2 * h].zero_()
            self.head.weight.mul_(config.init_scale)
            self.head.bias.zero_()
        self._compiled = None  # set by compile()

    def initial_state(self, n_instances: int, n_params: int, *, device=None, dtype=torch.float32) -> State:
        """Zero state: (h, c) per layer for the LSTM, h per layer for the GRU, each ``[hidden, B·P]``;
        column ``b·P + k`` belongs to coordinate k of instance b."""
        columns = n_instances * n_params
        per_layer = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(self.config.hidden, columns, device=device, dtype=dtype)
                     for _ in range(per_layer * self.config.layers))

    def compile(self) -> "CoordinatewiseOptimiser":
        """Run steps through ``torch.compile`` (fuses the pointwise work of the cells; compiles once per
        shape, a few seconds to a minute on a CPU). The numbers agree with the eager step to rounding."""
        self._compiled = torch.compile(_step, dynamic=False)
        return self

    def forward(self, grad: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if grad.dim() != 2:
            raise ValueError(f"grad: expected [B, P] (instances x coordinates), got {tuple(grad.shape)}")
        flat = grad.reshape(-1)
        if state[0].dim() != 2 or state[0].shape[1] != flat.shape[0]:
            raise ValueError(f"state: expected [hidden, {flat.shape[0]}] (one column per coordinate), "
                             f"got {tuple(state[0].shape)}")
        weights = [(c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh) for c in self.cells]
        head = (self.head.weight, self.head.bias)
        cfg = self.config
        if (cfg.cell == "lstm" and not torch.is_grad_enabled() and flat.shape[0] >= LSTM_KERNEL_MIN_ROWS
                and self._compiled is None):
            top, new = _lstm_kernel(weights, _inputs(flat, cfg.preprocess), state)
            update = torch.addmm(head[1].unsqueeze(1), head[0], top) * cfg.output_scale
        else:
            step = self._compiled or _step
            update, new = step(cfg.cell, cfg.preprocess, cfg.output_scale, weights, head, flat, state)
        return update.reshape(grad.shape), tuple(new)

    def copy(self) -> "CoordinatewiseOptimiser":
        """A new optimiser with the same configuration and parameter values (eager, not compiled)."""
        other = CoordinatewiseOptimiser(self.config)
        other.load_state_dict(self.state_dict())
        return other.to(next(self.parameters()))

    def describe(self) -> dict:
        return {**asdict(self.config), "meta_parameters": sum(p.numel() for p in self.parameters())}


def lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step, columns are coordinates: ``x [in, N]``, ``h, c [hidden, N]``; PyTorch's gate order
    (input, forget, cell, output) and parameters."""
    gates = torch.addmm(torch.addmm((bias_ih + bias_hh).unsqueeze(1), weight_ih, x), weight_hh, h)
    i, f, g, o = gates.chunk(4, 0)  # contiguous [hidden, N] blocks
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step in the same layout; PyTorch's gate order (reset, update, new) and parameters."""
    ir, iz, inew = torch.addmm(bias_ih.unsqueeze(1), weight_ih, x).chunk(3, 0)
    hr, hz, hnew = torch.addmm(bias_hh.unsqueeze(1), weight_hh, h).chunk(3, 0)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(iz + hz)
    n = torch.tanh(inew + r * hnew)
    return n + z * (h - n)  # (1 - z) n + z h


def _inputs(flat: torch.Tensor, preprocess: float | None) -> torch.Tensor:
    """The first layer's input ``[1 or 2, N]``: the raw gradient or its log/sign preprocessing."""
    return flat.unsqueeze(0) if preprocess is None else preprocess_gradients(flat, preprocess).T.contiguous()


def _step(cell: str, preprocess: float | None, output_scale: float, weights, head, flat: torch.Tensor,
          state: State):
    """Inputs, every layer and the head for one step: ``(update [1, N], new state)``; a pure function of its
    arguments, the unit :meth:`CoordinatewiseOptimiser.compile` compiles."""
    x = _inputs(flat, preprocess)
    new: list[torch.Tensor] = []
    for i, w in enumerate(weights):
        if cell == "lstm":
            h, c = lstm_cell(x, state[2 * i], state[2 * i + 1], *w)
            new += [h, c]
        else:
            h = gru_cell(x, state[i], *w)
            new.append(h)
        x = h
    return torch.addmm(head[1].unsqueeze(1), head[0], x) * output_scale, new


LSTM_KERNEL_MIN_ROWS = 4096  # below this the multi-layer kernel's fixed cost per call outweighs its speed


def _lstm_kernel(weights, x: torch.Tensor, state: State) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All LSTM layers for one step in one ``torch.lstm`` call (evaluation, gradients off, not compiled).

    The same arithmetic as :func:`lstm_cell` layer by layer, with the same parameters, in PyTorch's
    multi-layer kernel, which wants coordinates first: the state is transposed in and out. On 2 CPU
    cores it is still the fastest eager evaluation at MNIST sizes (measured in the benchmark), and
    slower for a few hundred coordinates (its fixed cost per call), hence ``LSTM_KERNEL_MIN_ROWS``.
    """
    flat = [w for layer in weights for w in layer]
    h0 = torch.stack([s.T for s in state[0::2]])
    c0 = torch.stack([s.T for s in state[1::2]])
    out, h, c = torch.lstm(x.T.unsqueeze(0), (h0, c0), flat, True, len(weights), 0.0, False, False, False)
    new: list[torch.Tensor] = []
    for hi, ci in zip(h.unbind(0), c.unbind(0)):
        new += [hi.T.contiguous(), ci.T.contiguous()]
    return out[0].T, new


def detach_state(state: State) -> State:
    """Cut the graph at a truncation boundary; the values carry on."""
    return tuple(s.detach() for s in state)
