"""Shared by chapter 5's library tests: the bundled split, a few training images per digit, a tiny reconstructor
and a tiny meta-training budget."""

import pytest

from backprop2lib.data.mnist import bundled_split
from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.class_models import MetaSettings

MODEL = MLP((2, 4, 1), activation="gaussian")
TINY = MetaSettings(iterations=3, meta_batch=2, inner_steps=2, outer_iterations=2, tasks_per_iteration=3)


@pytest.fixture(scope="module")
def split():
    return bundled_split()


@pytest.fixture(scope="module")
def few(split):
    return split.train.per_class(3, seed=0)
