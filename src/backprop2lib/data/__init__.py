"""Real data sets that need no download: the bundled MNIST subset and a reader for full MNIST."""

from .mnist import (
    ENV_VAR,
    MNIST,
    Split,
    bundled_split,
    load_bundled_mnist,
    load_idx_mnist,
    read_idx,
    stratified_indices,
    stratified_split,
    write_idx,
)

__all__ = [
    "ENV_VAR",
    "MNIST",
    "Split",
    "bundled_split",
    "load_bundled_mnist",
    "load_idx_mnist",
    "read_idx",
    "stratified_indices",
    "stratified_split",
    "write_idx",
]
