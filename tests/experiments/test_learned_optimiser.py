"""The learned-optimiser chapter's driver: families draw disjoint instances, tables and verdicts."""

import numpy as np
import pytest
import torch

from backprop2lib.experiments.learned_optimiser import (adam_steps_to_match, comparison, mnist_family,
                                                        quadratic_family, results_rows, verdict)
from backprop2lib.optim import Curve
from backprop2lib.stats import compare


def _curve(name, losses):
    losses = np.asarray(losses, dtype=float)
    return Curve(name, losses, np.full(losses.shape[1], -1))


def _rows(*tensors):
    """Every instance (row) of the tensors as bytes, to count distinct instances across sets."""
    return [t[i].numpy().tobytes() for t in tensors for i in range(t.shape[0])]


def test_seeds_give_disjoint_instance_sets():
    quad = quadratic_family()
    sets = [quad.train(8)(episode).W for episode in range(5)]
    sets += [quad.validation(8).W, quad.tuning(8).W, quad.test(8).W]
    rows = _rows(*sets)
    assert len(rows) == 64 and len(set(rows)) == 64  # no instance in two sets, nor twice in one
    assert torch.equal(quad.test(8).W, quad.test(8).W)  # and the test set is drawn the same every time


def test_mnist_sets_start_from_different_nets_and_train_on_disjoint_images():
    mnist = mnist_family(hidden=(40,))
    train, val, tuning, test = mnist.train(2)(0), mnist.validation(2), mnist.tuning(2), mnist.test(2)
    assert test.model.sizes == (784, 40, 10)
    assert len(set(_rows(train.theta0, val.theta0, tuning.theta0, test.theta0))) == 8
    # meta-training on the train split's 3000 images, validation and tuning on the validation
    # split's 1000, test on the test split's 1000: no image is in two of these pools
    assert (train.images.x.shape[0], val.images.x.shape[0], test.images.x.shape[0]) == (3000, 1000, 1000)
    assert torch.equal(tuning.images.x, val.images.x)
    pools = [set(_rows(p.images.x)) for p in (train, val, test)]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])


def test_verdict_uses_the_paired_difference():
    base = np.linspace(1.0, 2.0, 50)
    a = _curve("LSTM", [base, base - 0.1])  # consistently 0.1 lower at step 1
    b = _curve("Adam", [base, base])
    assert verdict(a, b, 1) == "lower" and verdict(b, a, 1) == "higher"
    noisy = _curve("noisy", [base, base + np.where(np.arange(50) % 2, 0.1, -0.1)])
    assert verdict(noisy, b, 1) == "not distinguishable"
    # unpaired, the same 0.1 is lost in the spread of the instances (0.29): pairing is the test
    assert compare(a.at(1), b.at(1), paired=False).verdict == "not distinguishable"


def test_comparison_leaves_out_diverged_instances_and_checks_its_runs():
    base = np.linspace(1.0, 2.0, 50)
    lower = base - 0.1
    lower[[3, 9]] = np.nan  # two instances diverged by step 1
    a = Curve("LSTM", np.stack([base, lower]), np.where(np.isin(np.arange(50), [3, 9]), 1, -1))
    b = _curve("Adam", [base, base])
    c = comparison(a, b, 1)
    assert c.verdict == "lower" and c.paired
    assert (c.difference.n, c.difference.n_diverged) == (48, 2)
    assert c.difference.mean == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="same instances"):
        verdict(a, _curve("Adam", [base[:10], base[:10]]), 1)
    with pytest.raises(ValueError, match="different problems"):
        verdict(Curve("x", a.losses, problem="quadratic"), Curve("y", b.losses, problem="MNIST"), 1)
    with pytest.raises(ValueError, match="step"):
        verdict(a, b, 5)


def test_results_rows_ratio_and_steps_to_match():
    adam = _curve("Adam", [[4.0, 4.0], [2.0, 2.0], [1.0, 1.0]])
    lstm = _curve("LSTM", [[4.0, 4.0], [1.5, 1.5], [0.5, 0.5]])
    rows = results_rows({"LSTM": lstm, "Adam": adam}, [1, 2, 5])
    assert rows[0][0] == "LSTM" and rows[0][2] == "0.75" and rows[0][4] == "0.50"
    assert rows[0][5:7] == ["–", "–"] and rows[0][-1] == "0"
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 1) == 2
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 2) is None
