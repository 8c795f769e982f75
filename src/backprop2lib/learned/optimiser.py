"""The coordinatewise learned optimiser of Andrychowicz et al. (2016), with a GRU variant.

A small recurrent network with 20 units per layer and two layers is shared by *every*
coordinate of every optimisee. Each coordinate keeps its own hidden (and cell) state, and a
linear head turns the top layer's output into that coordinate's update, θ ← θ + update.

Here all coordinates of all optimisees are flattened into one batch axis, so each step is one
``LSTMCell`` (or ``GRUCell``) call per layer, however many parameter tensors there are. Ports
that loop over parameter tensors pay one call per tensor, and that loop is where hidden-state rows
of different tensors have ended up overwriting each other. ``benchmarks/learned_optimiser_speed.py``
measures the two. On a 2-core CPU with the MNIST MLP they run at the same speed (ratio 0.9 to 1.1):
one weight matrix holds 98.5% of the coordinates, and the cell's arithmetic dominates. Flattening
is kept because it is simpler and cannot mix up states, not because it is faster there.
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

    def initial_state(self, n_instances: int, n_params: int, *, device=None, dtype=torch.float32) -> State:
        """Zero state for every coordinate: (h, c) per layer for the LSTM, h per layer for the GRU."""
        rows = n_instances * n_params
        per_layer = 2 if self.config.cell == "lstm" else 1
        return tuple(torch.zeros(rows, self.config.hidden, device=device, dtype=dtype)
                     for _ in range(per_layer * self.config.layers))

    def forward(self, grad: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if grad.dim() != 2:
            raise ValueError(f"grad: expected [B, P] (instances x coordinates), got {tuple(grad.shape)}")
        flat = grad.reshape(-1)
        if state[0].shape[0] != flat.shape[0]:
            raise ValueError(f"state: has {state[0].shape[0]} coordinate rows, grad has {flat.shape[0]}")
        x = flat.unsqueeze(-1) if self.config.preprocess is None else preprocess_gradients(flat, self.config.preprocess)
        new: list[torch.Tensor] = []
        if self.config.cell == "lstm" and not torch.is_grad_enabled() and flat.shape[0] >= LSTM_KERNEL_MIN_ROWS:
            x, new = _lstm_layers(self.cells, x, state)
        elif self.config.cell == "lstm":
            for i, cell in enumerate(self.cells):
                h, c = cell(x, (state[2 * i], state[2 * i + 1]))
                new += [h, c]
                x = h
        else:
            for i, cell in enumerate(self.cells):
                x = cell(x, state[i])
                new.append(x)
        update = self.head(x).squeeze(-1) * self.config.output_scale
        return update.reshape(grad.shape), tuple(new)

    def describe(self) -> dict:
        return {**asdict(self.config), "meta_parameters": sum(p.numel() for p in self.parameters())}


LSTM_KERNEL_MIN_ROWS = 4096  # below this the multi-layer kernel's fixed cost per call outweighs its speed


def _lstm_layers(cells: nn.ModuleList, x: torch.Tensor, state: State) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All LSTM layers for one time step in one ``torch.lstm`` call (evaluation, gradients off).

    The same arithmetic as calling each ``nn.LSTMCell`` in turn, with the cells' own parameters,
    but PyTorch's multi-layer kernel: on 2 CPU cores about 1.8x faster at 16k coordinates, where
    the cell is nearly all of the cost of a learned-optimiser step, and about 2x slower for a few
    hundred coordinates (its fixed cost per call), hence ``LSTM_KERNEL_MIN_ROWS``. Meta-training keeps the
    cell-by-cell path, which is as fast with gradients on (tested equal to it).
    """
    weights = [w for cell in cells for w in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    h0 = torch.stack(state[0::2])
    c0 = torch.stack(state[1::2])
    out, h, c = torch.lstm(x.unsqueeze(0), (h0, c0), weights, True, len(cells), 0.0, False, False, False)
    new: list[torch.Tensor] = []
    for hi, ci in zip(h.unbind(0), c.unbind(0)):
        new += [hi, ci]
    return out[0], new


def detach_state(state: State) -> State:
    """Cut the graph at a truncation boundary; the values carry on."""
    return tuple(s.detach() for s in state)
