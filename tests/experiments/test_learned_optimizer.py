"""The learned-optimizer chapter's driver: families draw disjoint instances, tables and verdicts."""

import numpy as np
import pytest
import torch

from backprop2lib.experiments.learned_optimizer import (TEST_SEED, VALIDATION_SEED, adam_steps_to_match,
                                                        mnist_family, quadratic_family, results_rows, verdict)
from backprop2lib.learned.evaluate import Curve


def _curve(name, losses):
    losses = np.asarray(losses, dtype=float)
    return Curve(name, losses, np.zeros(losses.shape[1], bool), np.full(losses.shape[1], -1))


def test_families_draw_distinct_instances_and_mnist_splits():
    quad = quadratic_family()
    train0, train1 = quad.train(3)(0), quad.train(3)(1)
    assert not torch.equal(train0.W, train1.W)
    assert not torch.equal(quad.validation(3).W, quad.test(3).W)
    assert torch.equal(quad.test(3).W, quad.test(3).W)
    assert VALIDATION_SEED != TEST_SEED
    mnist = mnist_family(hidden=(40,))
    test, val = mnist.test(2), mnist.validation(2)
    assert test.model.sizes == (784, 40, 10)
    # test instances train on the test split's images, validation on the validation split's
    assert test.data_x.shape[0] == val.data_x.shape[0] == 1000
    assert not torch.equal(test.data_x, val.data_x)
    assert mnist.train(1)(0).data_x.shape[0] == 3000


def test_verdict_uses_the_paired_difference():
    base = np.linspace(1.0, 2.0, 50)
    a = _curve("LSTM", [base, base - 0.1])  # consistently 0.1 lower at step 1
    b = _curve("Adam", [base, base])
    assert verdict(a, b, 1) == "lower" and verdict(b, a, 1) == "higher"
    noisy = _curve("noisy", [base, base + np.where(np.arange(50) % 2, 0.1, -0.1)])
    assert verdict(noisy, b, 1) == "not distinguishable"


def test_results_rows_ratio_and_steps_to_match():
    adam = _curve("Adam", [[4.0, 4.0], [2.0, 2.0], [1.0, 1.0]])
    lstm = _curve("LSTM", [[4.0, 4.0], [1.5, 1.5], [0.5, 0.5]])
    rows = results_rows({"LSTM": lstm, "Adam": adam}, [1, 2, 5])
    assert rows[0][0] == "LSTM" and rows[0][2] == "0.75" and rows[0][4] == "0.50"
    assert rows[0][5:7] == ["–", "–"] and rows[0][-1] == "0"
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 1) == 2
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 2) is None
