"""Random parameter blocks for block-diagonal second-order methods.

backprop2 splits every parameter tensor of every layer (weights and biases separately) into
⌈n/b⌉ nearly equal blocks of a random permutation of its indices; blocks never cross layers
or tensors. Only the Hessian entries *within* a block are computed, so the cost of a step is
linear in the number of parameters P for a fixed maximum block size b.

A :class:`BlockPartition` stores the blocks grouped by (layer, block size): inside a group every
block has the same size, so its Hessians stack into one ``[T, n_blocks, s, s]`` tensor and one
batched ``torch.linalg.eigh`` call (no padding, whose fake eigenvalues could mix with real ones).
For each block entry it keeps the flat parameter index and the (input, output) unit of the
weight it belongs to; a bias is a weight from a constant input, given input index ``fan_in``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.mlp import MLP


@dataclass(frozen=True)
class BlockGroup:
    """Blocks of one size inside one layer.

    ``index``: flat parameter indices ``[n_blocks, size]``; ``rows``: the input unit of each entry
    (``fan_in`` for biases); ``cols``: the output unit (pre-activation) of each entry.
    """

    layer: int
    index: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor

    @property
    def size(self) -> int:
        return self.index.shape[1]

    @property
    def n_blocks(self) -> int:
        return self.index.shape[0]


@dataclass(frozen=True)
class BlockPartition:
    """Every parameter of an MLP in exactly one block, blocks grouped by (layer, size)."""

    groups: tuple[BlockGroup, ...]
    n_params: int
    max_block_size: int

    @property
    def n_blocks(self) -> int:
        return sum(g.n_blocks for g in self.groups)

    def to(self, device: torch.device | str) -> "BlockPartition":
        groups = tuple(BlockGroup(g.layer, g.index.to(device), g.rows.to(device), g.cols.to(device))
                       for g in self.groups)
        return BlockPartition(groups, self.n_params, self.max_block_size)


def check_block_size(max_block_size: int) -> int:
    if isinstance(max_block_size, bool) or not isinstance(max_block_size, int) or max_block_size < 1:
        raise ValueError(f"max_block_size: expected a positive int, got {max_block_size!r}")
    return max_block_size


def block_partition(
    model: MLP,
    max_block_size: int = 7,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> BlockPartition:
    """Split each layer's weights and biases into random blocks of at most ``max_block_size``.

    A tensor with n entries gets ⌈n/b⌉ blocks whose sizes differ by at most one (backprop2's
    rule). ``max_block_size=1`` gives a diagonal method; a size at least as large as every
    tensor gives one block per weight matrix and one per bias vector.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model: block Hessians are implemented for backprop2lib.models.MLP, got {type(model).__name__}")
    b = check_block_size(max_block_size)
    by_key: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    offset = 0
    for layer, (fan_in, fan_out) in enumerate(zip(model.sizes[:-1], model.sizes[1:])):
        # weights W[i, j] sit at offset + i * fan_out + j (row-major, as MLP.flatten)
        n_w = fan_in * fan_out
        w_rows = torch.arange(n_w) // fan_out
        w_cols = torch.arange(n_w) % fan_out
        b_rows = torch.full((fan_out,), fan_in)
        b_cols = torch.arange(fan_out)
        for start, n, rows, cols in ((offset, n_w, w_rows, w_cols), (offset + n_w, fan_out, b_rows, b_cols)):
            perm = torch.randperm(n, generator=generator)
            for chunk in torch.tensor_split(perm, math.ceil(n / b)):
                key = (layer, len(chunk))
                by_key.setdefault(key, []).append((start + chunk, rows[chunk], cols[chunk]))
        offset += n_w + fan_out
    groups = []
    for (layer, _), items in sorted(by_key.items()):
        index, rows, cols = (torch.stack(t).to(device) for t in zip(*items))
        groups.append(BlockGroup(layer, index, rows, cols))
    return BlockPartition(tuple(groups), model.n_params, b)
