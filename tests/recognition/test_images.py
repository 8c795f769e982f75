"""Images as regression tasks: the coordinate grid, the round trip, and the ImageTasks family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backprop2lib.data.mnist import MNIST, SIDE
from backprop2lib.meta.reptile import train_reptile
from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.images import (
    ImageTasks,
    coordinate_grid,
    images_to_tasks,
    tasks_to_images,
)

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, SIDE, SIDE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def pixel_at(coords: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of coordinates, inverting x = -1 + 2c/27, y = 1 - 2r/27 independently of the library."""
    c = np.rint((coords[..., 0].double().cpu().numpy() + 1) * (SIDE - 1) / 2).astype(int)
    r = np.rint((1 - coords[..., 1].double().cpu().numpy()) * (SIDE - 1) / 2).astype(int)
    return r, c


# ----------------------------------------------------------------------------- grid

def test_grid_corners_put_the_top_row_at_plus_one():
    grid = coordinate_grid()
    assert grid.shape == (SIDE * SIDE, 2) and grid.dtype == torch.float32
    last = SIDE - 1
    assert grid[0].tolist() == [-1.0, 1.0]                    # top-left
    assert grid[last].tolist() == [1.0, 1.0]                  # top-right
    assert grid[last * SIDE].tolist() == [-1.0, -1.0]         # bottom-left
    assert grid[SIDE * SIDE - 1].tolist() == [1.0, -1.0]      # bottom-right


def test_grid_is_row_major_and_evenly_spaced():
    grid = coordinate_grid(5, dtype=torch.float64)
    r, c = np.divmod(np.arange(25), 5)
    expected = np.stack([-1 + 2 * c / 4, 1 - 2 * r / 4], axis=1)
    np.testing.assert_allclose(grid.numpy(), expected, atol=1e-15)


def test_grid_rejects_bad_side_and_dtype():
    for side in (1, 0, 28.0, True):
        with pytest.raises(ValueError, match="side"):
            coordinate_grid(side)
    with pytest.raises(ValueError, match="dtype"):
        coordinate_grid(dtype=torch.int64)


# ----------------------------------------------------------------------------- round trip

def test_uint8_images_round_trip_exactly():
    images = random_images(5)
    x, y = images_to_tasks(images)
    assert x.shape == (5, 784, 2) and y.shape == (5, 784, 1)
    back = tasks_to_images(y)
    assert back.shape == (5, SIDE, SIDE)
    torch.testing.assert_close(back, images.float() / 255, atol=1e-6, rtol=0)
    torch.testing.assert_close(tasks_to_images(y[..., 0]), back)  # [N, 784] too


def test_targets_sit_at_their_pixels_coordinates():
    image = torch.zeros(1, SIDE, SIDE, dtype=torch.uint8)
    image[0, 0, 0] = 255   # top-left
    image[0, 2, 25] = 128  # near the top-right corner
    x, y = images_to_tasks(image)
    hits = torch.nonzero(y[0, :, 0]).flatten()
    r, c = pixel_at(x[0, hits])
    assert sorted(zip(r.tolist(), c.tolist())) == [(0, 0), (2, 25)]
    assert x[0, y[0, :, 0] == 1].tolist() == [[-1.0, 1.0]]
    assert y[0, 2 * SIDE + 25, 0].item() == pytest.approx(128 / 255)


def test_every_accepted_input_gives_the_same_tasks():
    images = random_images(3, seed=1)
    _, y = images_to_tasks(images)
    labels = torch.tensor([1, 2, 3])
    for variant in (images.reshape(3, 784), images.float() / 255, (images.double() / 255).reshape(3, 784),
                    MNIST(images, labels), images.numpy()):
        torch.testing.assert_close(images_to_tasks(variant)[1], y)


def test_x_is_a_view_of_one_grid_on_the_requested_device_and_dtype():
    x, y = images_to_tasks(random_images(4), dtype=torch.float64)
    assert x.dtype == y.dtype == torch.float64
    assert x.stride(0) == 0  # expanded, not copied
    torch.testing.assert_close(x[3], coordinate_grid(dtype=torch.float64))


@CUDA
def test_images_to_tasks_on_cuda():
    images = random_images(2)
    x, y = images_to_tasks(images, device="cuda")
    assert x.device.type == y.device.type == "cuda"
    torch.testing.assert_close(tasks_to_images(y).cpu(), images.float() / 255)


def test_images_to_tasks_rejects_bad_input():
    good = random_images(2)
    bad_shapes = [good[0], good[:, :27], good.reshape(2, 28 * 28, 1), good.reshape(2, 784)[:, :783]]
    for images in bad_shapes:
        with pytest.raises(ValueError, match="shape"):
            images_to_tasks(images)
    with pytest.raises(ValueError, match="uint8"):
        images_to_tasks(good.long())
    with pytest.raises(ValueError, match="uint8"):
        images_to_tasks(good.bool())
    with pytest.raises(ValueError, match=r"\[0, 1\].*0\.\.255"):
        images_to_tasks(good.float())  # 0..255 as floats: the classic mistake
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        images_to_tasks(good.float() / 255 - 0.1)
    nan = good.float() / 255
    nan[1, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="1 NaN"):
        images_to_tasks(nan)
    with pytest.raises(ValueError, match="MNIST"):
        images_to_tasks([[0] * 784])
    with pytest.raises(ValueError, match="dtype"):
        images_to_tasks(good, dtype=torch.int32)


def test_tasks_to_images_clips_predictions_and_rejects_bad_shapes():
    y = torch.full((2, 784, 1), 0.5, requires_grad=True)
    pred = y * torch.linspace(-1, 3, 784).reshape(1, 784, 1)
    pictures = tasks_to_images(pred)
    assert not pictures.requires_grad
    assert pictures.min().item() == 0.0 and pictures.max().item() == 1.0
    assert pictures[0, 0, 0].item() == 0.0 and pictures[0, -1, -1].item() == 1.0
    for bad in (torch.zeros(2, 783), torch.zeros(2, 784, 2), torch.zeros(784), torch.zeros(2, 28, 28)):
        with pytest.raises(ValueError, match="shape"):
            tasks_to_images(bad)
    with pytest.raises(ValueError, match="floating"):
        tasks_to_images(torch.zeros(2, 784, dtype=torch.uint8))


# ----------------------------------------------------------------------------- ImageTasks

def make_tasks(n_images: int = 4, seed: int = 0) -> ImageTasks:
    return ImageTasks(random_images(n_images, seed).reshape(n_images, 784).float() / 255)


def test_support_and_query_are_distinct_pixels_of_the_drawn_image():
    tasks = make_tasks()
    images = tasks.pixels.reshape(-1, SIDE, SIDE)
    batch = tasks.sample(6, 30, 20, generator=torch.Generator().manual_seed(0))
    assert batch.x_support.shape == (6, 30, 2) and batch.y_query.shape == (6, 20, 1)
    assert batch.truth.shape == (6,) and batch.truth.dtype == torch.long
    for t in range(6):
        r, c = pixel_at(batch.x_all[t])
        assert len(set(zip(r.tolist(), c.tolist()))) == 50  # no pixel twice
        expected = images[batch.truth[t], torch.as_tensor(r), torch.as_tensor(c)]
        torch.testing.assert_close(batch.y_all[t, :, 0], expected, atol=0, rtol=0)


def test_all_784_points_are_a_permutation_of_the_image():
    tasks = make_tasks(2)
    batch = tasks.sample(3, 784, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert batch.x_query.shape == (3, 0, 2) and batch.x_support.dtype == torch.float64
    for t in range(3):
        r, c = pixel_at(batch.x_support[t])
        assert sorted((r * SIDE + c).tolist()) == list(range(784))
        order = np.argsort(r * SIDE + c)
        assert not np.array_equal(order, np.arange(784))  # shuffled, not the grid's order
        torch.testing.assert_close(batch.y_support[t, order, 0], tasks.pixels[batch.truth[t]].double())


def test_images_are_drawn_uniformly_with_replacement():
    tasks = make_tasks(3)
    truth = tasks.sample(600, 1, generator=torch.Generator().manual_seed(2)).truth
    counts = torch.bincount(truth, minlength=3)
    assert counts.sum() == 600 and counts.min() > 150  # about 200 each


def test_sampling_is_reproducible_with_a_seeded_generator():
    tasks = make_tasks()
    a = tasks.sample(5, 10, 5, generator=torch.Generator().manual_seed(3))
    b = tasks.sample(5, 10, 5, generator=torch.Generator().manual_seed(3))
    c = tasks.sample(5, 10, 5, generator=torch.Generator().manual_seed(4))
    for field in ("x_support", "y_support", "x_query", "y_query", "truth"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.x_support, c.x_support)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_makes_the_draws_of_the_old_per_family_code(dtype):
    """ImageTasks.sample as it stood before the families shared TaskFamily, written out call by call."""
    tasks = make_tasks(5)
    g_new, g_old = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    for n_tasks, n_support, n_query in ((6, 30, 20), (2, 0, 784), (3, 1, 0)):
        batch = tasks.sample(n_tasks, n_support, n_query, generator=g_new, dtype=dtype)
        n = n_support + n_query
        image = torch.randint(len(tasks), (n_tasks,), generator=g_old)
        order = torch.rand(n_tasks, 784, generator=g_old, dtype=torch.float64).argsort(dim=1)[:, :n]
        y = tasks.pixels[image.unsqueeze(1), order].to(dtype).unsqueeze(-1)
        x = coordinate_grid(SIDE, dtype=dtype)[order]
        expected = (x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:], image)
        for got, want in zip((batch.x_support, batch.y_support, batch.x_query, batch.y_query, batch.truth), expected):
            assert got.dtype == want.dtype and torch.equal(got, want)


def test_too_many_points_and_bad_counts_raise():
    tasks = make_tasks()
    with pytest.raises(ValueError, match="784"):
        tasks.sample(2, 700, 85)
    with pytest.raises(ValueError, match="n_tasks"):
        tasks.sample(0, 10)
    with pytest.raises(ValueError, match="n_query"):
        tasks.sample(2, 10, -1)


def test_image_tasks_validates_pixels():
    assert len(make_tasks(3)) == 3
    with pytest.raises(ValueError, match="floating"):
        ImageTasks(random_images(2).reshape(2, 784))
    for shape in ((2, 28, 28), (0, 784), (2, 783)):
        with pytest.raises(ValueError, match="shape"):
            ImageTasks(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageTasks(torch.full((2, 784), 2.0))


def test_from_mnist_keeps_only_one_digit():
    images = random_images(5, seed=5)
    data = MNIST(images, torch.tensor([3, 1, 3, 7, 1]))
    threes = ImageTasks.from_mnist(data, 3, dtype=torch.float64)
    assert len(threes) == 2 and threes.pixels.dtype == torch.float64 and "3" in threes.name
    torch.testing.assert_close(threes.pixels, images[[0, 2]].reshape(2, 784).double() / 255)
    batch = threes.sample(20, 5, generator=torch.Generator().manual_seed(0))
    assert set(batch.truth.tolist()) <= {0, 1}
    assert len(ImageTasks.from_mnist(data)) == 5
    with pytest.raises(ValueError, match="no images of digit 5"):
        ImageTasks.from_mnist(data, 5)
    with pytest.raises(ValueError, match="digit"):
        ImageTasks.from_mnist(data, 10)
    with pytest.raises(ValueError, match="MNIST"):
        ImageTasks.from_mnist(images, 3)


@CUDA
def test_cpu_generator_serves_cuda_tasks():
    tasks = make_tasks()
    cpu = tasks.sample(4, 10, 5, generator=torch.Generator().manual_seed(0))
    cuda = ImageTasks(tasks.pixels.cuda()).sample(4, 10, 5, generator=torch.Generator().manual_seed(0),
                                                  device="cuda")
    assert cuda.x_support.device.type == "cuda" and cuda.truth.device.type == "cuda"
    for field in ("x_support", "y_support", "x_query", "y_query", "truth"):
        assert torch.equal(getattr(cuda, field).cpu(), getattr(cpu, field))


def test_stream_and_reptile_accept_image_tasks():
    tasks = make_tasks()
    batch = next(tasks.stream(4, 10, 5, chunk=3, generator=torch.Generator().manual_seed(0)))
    assert batch.x_support.shape == (4, 10, 2) and batch.y_query.shape == (4, 5, 1)

    model = MLP((2, 5, 1), activation="gaussian")
    init = model.flatten(model.init(generator=torch.Generator().manual_seed(0)))
    result = train_reptile(model, tasks, iterations=3, meta_batch=4, k_shot=10, k_query=10, inner_steps=2,
                           inner_lr=0.1, init=init, generator=torch.Generator().manual_seed(1), progress=False)
    assert len(result.losses) == 3 and np.isfinite(result.losses).all()
    assert result.params.shape == init.shape and torch.isfinite(result.params).all()
    assert not torch.allclose(result.params, init)
