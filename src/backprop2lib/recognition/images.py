"""Images as regression tasks: one point per pixel, input its coordinates, target its grey level.

Pixel ``(r, c)`` of a ``side x side`` image sits at ``x = linspace(-1, 1, side)[c]`` and
``y = linspace(1, -1, side)[r]``: the top row is at ``y = +1``, so a network's picture is upright
when plotted with ``imshow``. Points are listed row-major (index ``r * side + c``), the order of
``image.reshape(-1)``, so targets and predictions on the grid turn back into pictures with a reshape.

>>> x, y = images_to_tasks(mnist)              # x: [N, 784, 2] (a view of one grid), y: [N, 784, 1]
>>> tasks = ImageTasks.from_mnist(mnist, digit=3)
>>> batch = tasks.sample(25, 100, 50)          # 100 support + 50 query pixels per image; truth: image index
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.mnist import MNIST, N_PIXELS, SIDE
from ..tasks.batch import TaskFamily

__all__ = ["ImageTasks", "coordinate_grid", "images_to_tasks", "moved_copies", "moved_each", "moved_images", "tasks_to_images"]


def coordinate_grid(side: int = SIDE, *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel coordinates ``[side * side, 2]``, row-major; column 0 is x (left -1), column 1 is y (top +1)."""
    if not isinstance(side, int) or isinstance(side, bool) or side < 2:
        raise ValueError(f"side: expected an int >= 2, got {side!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point dtype, got {dtype}")
    cols = torch.linspace(-1, 1, side, device=device, dtype=dtype)
    rows = torch.linspace(1, -1, side, device=device, dtype=dtype)
    y, x = torch.meshgrid(rows, cols, indexing="ij")  # [side, side]: entry (r, c)
    return torch.stack([x, y], dim=-1).reshape(side * side, 2)


def _flat_pixels(images, name: str = "images") -> torch.Tensor:
    """``images`` as ``[N, 784]`` on their own device, uint8 (0..255) or floating (checked in [0, 1])."""
    if isinstance(images, MNIST):
        images = images.images
    elif isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor [N, {SIDE}, {SIDE}] or [N, {N_PIXELS}] or an MNIST, "
                         f"got {type(images).__name__}")
    shape = tuple(images.shape)
    if not ((len(shape) == 3 and shape[1:] == (SIDE, SIDE)) or (len(shape) == 2 and shape[1] == N_PIXELS)):
        raise ValueError(f"{name}: expected shape [N, {SIDE}, {SIDE}] or [N, {N_PIXELS}], got {shape}")
    flat = images.reshape(shape[0], N_PIXELS)
    if flat.dtype == torch.uint8:
        return flat
    if not flat.is_floating_point():
        raise ValueError(f"{name}: expected uint8 (0..255) or floating point (0..1) pixels, got {flat.dtype}")
    if flat.numel():
        if bool(torch.isnan(flat).any()):
            raise ValueError(f"{name}: {int(torch.isnan(flat).sum())} NaN pixels")
        low, high = float(flat.min()), float(flat.max())
        if low < 0 or high > 1:
            raise ValueError(f"{name}: floating-point pixels must lie in [0, 1] (uint8 for 0..255), "
                             f"found {low:g}..{high:g}")
    return flat


def images_to_tasks(images: torch.Tensor | MNIST, *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pixel of every image as a point: ``x [N, 784, 2]`` (coordinates), ``y [N, 784, 1]`` (grey level).

    uint8 images are divided by 255; floating-point ones must already lie in [0, 1] (so a
    0..255 float array is caught rather than silently fitted at 255 times the scale). ``x`` is
    one grid expanded over the images (a view: read it, do not write into it).
    """
    flat = _flat_pixels(images)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point dtype, got {dtype}")
    if flat.dtype == torch.uint8:
        y = flat.to(device=device).to(dtype) / 255  # convert on the target device: uint8 travels cheaper
    else:
        y = flat.to(device=device, dtype=dtype)
    x = coordinate_grid(SIDE, device=device, dtype=dtype).expand(flat.shape[0], N_PIXELS, 2)
    return x, y.unsqueeze(-1)


def moved_images(images: torch.Tensor, shift_pixels=(0.0, 0.0), angle_degrees: float = 0.0) -> torch.Tensor:
    """Digits ``[N, 784]`` (grey levels in [0, 1]) moved by ``shift_pixels = (right, up)`` and turned by
    ``angle_degrees`` anticlockwise about the centre, bilinear, black outside: I'(x) = I(R⁻¹(x − t)) on the
    coordinate grid (the test set of shifted and rotated digits; :func:`.codes.edited_coordinates` makes the
    same move on a class model's picture). Whole-pixel shifts move pixels exactly."""
    flat = _flat_pixels(images)
    n = flat.shape[0]
    shifts = torch.as_tensor(shift_pixels, dtype=torch.float64).reshape(1, 2).expand(n, 2)
    return moved_each(flat, shifts, torch.full((n,), float(angle_degrees), dtype=torch.float64))


def moved_each(images: torch.Tensor, shift_pixels: torch.Tensor, angle_degrees: torch.Tensor) -> torch.Tensor:
    """:func:`moved_images` with a move per image: ``shift_pixels [N, 2]`` (right, up) and ``angle_degrees [N]``,
    in one batched resampling (random moves for training on deformed copies of a few digits)."""
    flat = _flat_pixels(images)
    if not flat.is_floating_point():
        raise ValueError(f"images: expected floating-point grey levels in [0, 1], got {flat.dtype}")
    n = flat.shape[0]
    if tuple(shift_pixels.shape) != (n, 2) or tuple(angle_degrees.shape) != (n,):
        raise ValueError(f"shift_pixels, angle_degrees: expected [{n}, 2] and [{n}] for {n} images, got "
                         f"{tuple(shift_pixels.shape)} and {tuple(angle_degrees.shape)}")
    dtype, device = flat.dtype, flat.device
    grid = coordinate_grid(dtype=dtype, device=device)
    step = 2 / (SIDE - 1)
    t = shift_pixels.to(dtype=dtype, device=device) * step  # [N, 2]
    a = torch.deg2rad(angle_degrees.to(dtype=torch.float64)).to(dtype=dtype, device=device)
    c, s = torch.cos(a), torch.sin(a)
    inverse = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [N, 2, 2]: x ↦ R⁻¹x (rows)
    source = (grid.unsqueeze(0) - t[:, None, :]) @ inverse  # where each moved pixel comes from, [N, 784, 2]
    # grid_sample reads (x, y) with y pointing down the rows: our y is up
    sample = torch.stack([source[..., 0], -source[..., 1]], -1).reshape(n, SIDE, SIDE, 2)
    out = torch.nn.functional.grid_sample(flat.reshape(-1, 1, SIDE, SIDE), sample, mode="bilinear",
                                          padding_mode="zeros", align_corners=True)
    return out.reshape(-1, N_PIXELS).clamp(0, 1)


def moved_copies(images: torch.Tensor, copies: int, max_shift: float, max_angle: float, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``copies`` versions of every image ``[N, 784]``, ``[N · copies, 784]`` image-major: the image itself, then
    moves by a shift uniform in ±``max_shift`` pixels per axis and a turn uniform in ±``max_angle`` degrees
    (the deformations a code class model trains on, given to a pixel classifier as extra training images)."""
    flat = _flat_pixels(images)
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies: expected a positive int, got {copies!r}")
    if not (max_shift >= 0 and max_angle >= 0):
        raise ValueError(f"max_shift, max_angle: expected non-negative numbers, got {max_shift!r}, {max_angle!r}")
    g = generator or torch.Generator().manual_seed(0)
    n = flat.shape[0]
    shifts = (torch.rand(n, copies, 2, generator=g, dtype=torch.float64) * 2 - 1) * max_shift
    angles = (torch.rand(n, copies, generator=g, dtype=torch.float64) * 2 - 1) * max_angle
    shifts[:, 0], angles[:, 0] = 0.0, 0.0  # the first copy is the image
    return moved_each(flat.repeat_interleave(copies, 0), shifts.reshape(-1, 2), angles.reshape(-1))


def tasks_to_images(y: torch.Tensor) -> torch.Tensor:
    """Values on the grid, ``[N, 784, 1]`` or ``[N, 784]``, as pictures ``[N, 28, 28]`` clipped to [0, 1].

    The inverse of :func:`images_to_tasks` for targets; for a network's predictions the clip keeps
    the picture in the range of an image. The result is detached: it is for looking at, not a loss.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"y: expected a tensor [N, {N_PIXELS}, 1] or [N, {N_PIXELS}], got {type(y).__name__}")
    shape = tuple(y.shape)
    if not ((len(shape) == 3 and shape[1:] == (N_PIXELS, 1)) or (len(shape) == 2 and shape[1] == N_PIXELS)):
        raise ValueError(f"y: expected shape [N, {N_PIXELS}, 1] or [N, {N_PIXELS}] (the grid's points in "
                         f"row-major order), got {shape}")
    if not y.is_floating_point():
        raise ValueError(f"y: expected floating-point values in [0, 1], got {y.dtype}")
    return y.detach().reshape(shape[0], SIDE, SIDE).clamp(0, 1)


# eq=False: pixels is a tensor, whose == has no single truth value.
@dataclass(frozen=True, eq=False)
class ImageTasks(TaskFamily):
    """A task family whose tasks are images: task t is image ``i_t`` seen at a few random pixels.

    ``pixels`` is ``[M, 784]`` floating point in [0, 1], on any device. :meth:`sample` draws the
    images uniformly with replacement and, within each image, distinct pixels (a fresh random
    order per image), so support and query never share a pixel. ``truth`` is the image index.
    """

    pixels: torch.Tensor
    name: str = "images"

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, torch.Tensor) or not p.is_floating_point():
            raise ValueError(f"pixels: expected a floating-point tensor [M, {N_PIXELS}] in [0, 1], got "
                             f"{p.dtype if isinstance(p, torch.Tensor) else type(p).__name__}")
        if p.dim() != 2 or p.shape[1] != N_PIXELS or p.shape[0] < 1:
            raise ValueError(f"pixels: expected shape [M, {N_PIXELS}] with M >= 1, got {tuple(p.shape)}")
        _flat_pixels(p, "pixels")  # NaN and range checks

    @classmethod
    def from_mnist(cls, data: MNIST, digit: int | None = None, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> "ImageTasks":
        """The images of ``data`` (only those of ``digit`` if given) as a task family on ``device``."""
        if not isinstance(data, MNIST):
            raise ValueError(f"data: expected an MNIST, got {type(data).__name__}")
        if digit is None:
            return cls(data.pixels(dtype, device), name="all digits")
        if not isinstance(digit, int) or isinstance(digit, bool) or not 0 <= digit <= 9:
            raise ValueError(f"digit: expected None or an int in 0..9, got {digit!r}")
        chosen = data.subset(data.labels == digit)
        if len(chosen) == 0:
            raise ValueError(f"digit: no images of digit {digit} in data ({data!r})")
        return cls(chosen.pixels(dtype, device), name=f"digit {digit}")

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def __repr__(self) -> str:  # the default would print every pixel
        return f"ImageTasks(name={self.name!r}, n_images={len(self)}, device={self.pixels.device})"

    def _draw(self, n_tasks, n_points, *, generator, gen_device, device, dtype):
        # distinct pixels per image, support then query
        if n_points > N_PIXELS:
            raise ValueError(f"n_support + n_query: an image has {N_PIXELS} pixels, asked for {n_points} distinct ones")
        image = torch.randint(len(self), (n_tasks,), generator=generator, device=gen_device)
        # One random order of the pixels per image, all at once. float64 noise: ties (which would
        # bias the order slightly, never repeat a pixel) are practically impossible, and the draw
        # is the same whatever the output dtype.
        noise = torch.rand(n_tasks, N_PIXELS, generator=generator, device=gen_device, dtype=torch.float64)
        order = noise.argsort(dim=1)[:, :n_points]
        home = self.pixels.device
        values = self.pixels[image.to(home).unsqueeze(1), order.to(home)]  # [T, n]
        y = values.to(device=device, dtype=dtype).unsqueeze(-1)
        x = coordinate_grid(SIDE, device=device, dtype=dtype)[order.to(device)]  # [T, n, 2]
        return x, y, image.to(device)
