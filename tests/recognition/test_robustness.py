"""Shifted and rotated test digits: the moves are the ones asked for, and every classifier sees the same images."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.recognition.baselines import NearestClassMean
from backprop2lib.recognition.images import coordinate_grid
from backprop2lib.recognition.robustness import Condition, Robustness, moved_test_sets, robustness

D = torch.float64


def _blob(centre=(0.0, 0.0), width=0.15):
    grid = coordinate_grid(dtype=D)
    return torch.exp(-((grid - torch.tensor(centre, dtype=D)) ** 2).sum(-1) / (2 * width ** 2))[None]


def _centroid(image):
    grid = coordinate_grid(dtype=D)
    return (image[0, :, None] * grid).sum(0) / image.sum()


@pytest.mark.parametrize("shift", [2.0, 5.0])
def test_a_shift_moves_a_digit_that_many_pixels_in_its_direction(shift):
    images = _blob().repeat(6, 1)
    moved, = moved_test_sets(images, [Condition(shift=shift)], seed=3)
    pixel = 2 / 27
    for i in range(6):
        assert float(_centroid(moved[i:i + 1]).norm()) / pixel == pytest.approx(shift, rel=0.02)
    directions = torch.stack([torch.atan2(*_centroid(moved[i:i + 1]).flip(0)) for i in range(6)])
    assert float(directions.std()) > 0.5  # random directions, not one


def test_a_turn_rotates_about_the_centre_by_the_angle_either_way():
    images = _blob((0.4, 0.0)).repeat(8, 1)
    moved, = moved_test_sets(images, [Condition(angle=30.0)], seed=4)
    angles = [math.degrees(math.atan2(float(c[1]), float(c[0]))) for c in (_centroid(moved[i:i + 1]) for i in range(8))]
    assert all(abs(abs(a) - 30.0) < 1.0 for a in angles)
    assert {np.sign(a) for a in angles} == {-1.0, 1.0}


def test_the_conditions_share_directions_and_the_unmoved_set_is_the_images():
    split = bundled_split()
    images = split.test.pixels(dtype=D)[:5]
    unmoved, small, large = moved_test_sets(images, [Condition(), Condition(shift=2), Condition(shift=4)], seed=1)
    torch.testing.assert_close(unmoved, images)
    # the same image moves along the same direction in both conditions
    da = _centroid(small[:1]) - _centroid(images[:1])
    db = _centroid(large[:1]) - _centroid(images[:1])
    assert float(torch.nn.functional.cosine_similarity(da, db, dim=0)) > 0.95


def test_robustness_scores_every_classifier_on_the_same_moved_images():
    split = bundled_split()
    train, test = split.train.per_class(20, seed=0), split.test.subset(slice(0, 40))
    images, labels = test.pixels(), test.labels.numpy()
    ncm = NearestClassMean().fit(train.pixels(), train.labels)
    conditions = [Condition(), Condition(shift=4), Condition(angle=20)]
    seen = []

    def seeded(x):  # a classifier with two "seeds": the truth, and always class 0
        seen.append(x)
        return np.stack([labels, np.zeros_like(labels)])

    out = robustness({"NCM": ncm.predict, "seeded": seeded}, images, labels, conditions, seed=2)
    assert out.accuracy["NCM"].shape == (1, 3) and out.accuracy["seeded"].shape == (2, 3)
    np.testing.assert_allclose(out.accuracy["seeded"][0], 1.0)
    np.testing.assert_allclose(out.accuracy["seeded"][1], (labels == 0).mean())
    for j, moved in enumerate(moved_test_sets(images, conditions, seed=2)):
        torch.testing.assert_close(seen[j], moved)
        assert out.accuracy["NCM"][0, j] == pytest.approx((ncm.predict(moved) == labels).mean())
    assert out.mean("NCM")[0] > out.mean("NCM")[1]  # a pixel classifier loses accuracy on shifted digits
    again = Robustness.from_record(out.to_record())
    assert again.conditions == out.conditions
    np.testing.assert_allclose(again.accuracy["NCM"], out.accuracy["NCM"])
    assert [c.label for c in conditions] == ["unmoved", "shift 4 px", "turn 20°"]


def test_bad_input_is_named():
    images = torch.rand(3, 784)
    with pytest.raises(ValueError, match="shift, angle"):
        Condition(shift=-1)
    with pytest.raises(ValueError, match="images"):
        moved_test_sets(images[:, :10], [Condition()])
    with pytest.raises(ValueError, match="conditions"):
        moved_test_sets(images, [])
    with pytest.raises(ValueError, match="labels"):
        robustness({"a": lambda x: np.zeros(3)}, images, [0, 1], [Condition()])
    with pytest.raises(ValueError, match=r"classifiers\['a'\]"):
        robustness({"a": lambda x: np.zeros(2)}, images, [0, 1, 2], [Condition()])
