"""Parameter edits of a reconstructor equal transforming its picture (exactly, in float64)."""

import math

import pytest
import torch

from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.invariance import (brighten, linear_map, rotate, rotation_matrix, shift_background,
                                                 translate, zoom)

D = torch.float64
MODELS = [MLP((2, 6, 1), activation="gaussian"), MLP((2, 4, 3, 1), activation="tanh")]


def setup(model, tasks=None):
    g = torch.Generator().manual_seed(0)
    w = model.flatten(model.init(tasks, scheme="normal", generator=g, dtype=D))
    x = torch.rand(1 if tasks is None else tasks, 50, 2, generator=g, dtype=D) * 2 - 1
    return w, x


def f(model, w, x):
    return model.forward(model.unflatten(w if w.dim() == 2 else w[None]), x)


@pytest.mark.parametrize("model", MODELS, ids=str)
@pytest.mark.parametrize("tasks", [None, 3])
def test_translation_moves_the_picture(model, tasks):
    w, x = setup(model, tasks)
    shift = torch.tensor([0.3, -0.2], dtype=D)
    torch.testing.assert_close(f(model, translate(model, w, shift), x + shift), f(model, w, x))


@pytest.mark.parametrize("model", MODELS, ids=str)
@pytest.mark.parametrize("tasks", [None, 3])
def test_linear_maps_rotate_and_zoom_the_picture(model, tasks):
    w, x = setup(model, tasks)
    for edited, a in [(rotate(model, w, 30.0), rotation_matrix(30.0)), (zoom(model, w, 1.5), 1.5 * torch.eye(2, dtype=D)),
                      (linear_map(model, w, [[1.0, 0.4], [0.0, 1.2]]), torch.tensor([[1.0, 0.4], [0.0, 1.2]], dtype=D))]:
        moved = x @ a.T  # the point A x carries what x carried before
        torch.testing.assert_close(f(model, edited, moved), f(model, w, x))


def test_rotation_is_anticlockwise_with_the_row_axis_up():
    r = rotation_matrix(90.0)
    torch.testing.assert_close(r @ torch.tensor([1.0, 0.0], dtype=D), torch.tensor([0.0, 1.0], dtype=D))
    assert math.isclose(float(torch.linalg.det(rotation_matrix(17.0))), 1.0)


@pytest.mark.parametrize("model", MODELS, ids=str)
def test_output_edits_change_contrast_and_background(model):
    w, x = setup(model, 2)
    p = model.unflatten(w)
    background = p[-1][:, None, :]
    base = f(model, w, x)
    torch.testing.assert_close(f(model, brighten(model, w, 2.0), x), background + 2.0 * (base - background))
    torch.testing.assert_close(f(model, shift_background(model, w, 0.25), x), base + 0.25)


def test_edits_copy_and_check_their_arguments():
    model = MODELS[0]
    w, _ = setup(model)
    before = w.clone()
    translate(model, w, (0.1, 0.1))
    assert torch.equal(w, before)
    with pytest.raises(ValueError, match="shift"):
        translate(model, w, (0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="invertible"):
        linear_map(model, w, [[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="factor"):
        zoom(model, w, 0.0)
    with pytest.raises(ValueError, match="w: expected"):
        brighten(model, w[:-1], 2.0)
    with pytest.raises(ValueError, match="2 inputs"):
        translate(MLP((3, 4, 1)), torch.zeros(MLP((3, 4, 1)).n_params), (0.1, 0.1))
