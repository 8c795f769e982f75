"""The few-shot baselines: exact against slow references where they have one, accurate on easy data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backprop2lib.recognition.baselines import (
    BASELINES,
    KNearestNeighbours,
    LogisticRegressionBaseline,
    NearestClassMean,
    SmallMLP,
)


def random_set(n: int, seed: int, *, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Uniform [0, 1] images with labels cycling through ``classes`` digits (every one present)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)), np.arange(n) % classes


def clusters(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """10 well-separated Gaussian clusters in [0, 1]^784 (centres U[0.25, 0.75], noise std 0.1)."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.25 + 0.5 * torch.rand(10, 784, generator=torch.Generator().manual_seed(1234))
    labels = torch.arange(10).repeat(per_class)
    noise = 0.1 * torch.randn(labels.numel(), 784, generator=g)
    return (centres[labels] + noise).clamp(0, 1), labels


# ----------------------------------------------------------------------------- nearest class mean

def slow_nearest_class_mean(x_train, y_train, x, temperature):
    present = sorted(set(y_train.tolist()))
    proba = np.zeros((len(x), 10))
    for i, image in enumerate(x):
        d2 = {c: sum((image[j] - x_train[y_train == c].mean(0)[j]) ** 2 for j in range(784)) for c in present}
        z = sum(np.exp(-(d - min(d2.values())) / temperature) for d in d2.values())
        for c, d in d2.items():
            proba[i, c] = np.exp(-(d - min(d2.values())) / temperature) / z
    return proba


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_nearest_class_mean_matches_a_slow_reference(temperature):
    x_train, y_train = random_set(40, seed=0, classes=7)  # digits 7, 8, 9 never seen
    x, _ = random_set(6, seed=1)
    model = NearestClassMean().fit(torch.from_numpy(x_train).float(), y_train)
    model.temperature = temperature
    expected = slow_nearest_class_mean(x_train.astype(np.float32).astype(np.float64), y_train,
                                       x.astype(np.float32).astype(np.float64), temperature)
    np.testing.assert_allclose(model.predict_proba(torch.from_numpy(x).float()), expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(model.predict(torch.from_numpy(x).float()), expected.argmax(1))
    if temperature == 1.0:  # a soft case, so the comparison above checks more than one-hot rows
        assert 0.2 < expected.max(1).min() and expected.max(1).max() < 0.9


def test_nearest_class_mean_distances():
    x_train, y_train = random_set(20, seed=2)
    model = NearestClassMean().fit(x_train, y_train)
    d2 = model.squared_distances(x_train[:3])
    means = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    np.testing.assert_allclose(d2, ((x_train[:3, None] - means[None]) ** 2).sum(-1), rtol=1e-10)
    with pytest.raises(ValueError, match="temperature"):
        model.temperature = 0
        model.predict_proba(x_train)


# ----------------------------------------------------------------------------- nearest neighbours

def test_one_nearest_neighbour_is_brute_force_nearest_neighbour():
    x_train, y_train = random_set(50, seed=3)
    x, _ = random_set(30, seed=4)
    model = KNearestNeighbours(k=1).fit(x_train, y_train)
    np.testing.assert_array_equal(model.predict(x_train), y_train)
    d2 = ((x[:, None, :] - x_train[None]) ** 2).sum(-1)
    expected = y_train[d2.argmin(1)]
    np.testing.assert_array_equal(model.predict(x), expected)
    proba = model.predict_proba(x)
    np.testing.assert_array_equal(proba, np.eye(10)[expected])


def test_k_is_clipped_to_the_number_of_training_images():
    x_train, y_train = random_set(10, seed=5)  # one image per digit
    model = KNearestNeighbours(k=50).fit(x_train, y_train)
    assert model.k_ == 10
    np.testing.assert_allclose(model.predict_proba(x_train[:2]), np.full((2, 10), 0.1))


# ----------------------------------------------------------------------------- trained classifiers

@pytest.mark.parametrize("make", [LogisticRegressionBaseline, lambda: SmallMLP(steps=200, lr=3e-3)],
                         ids=["logistic regression", "MLP"])
def test_trained_classifiers_learn_separable_clusters(make):
    x_train, y_train = clusters(5, seed=0)
    x_test, y_test = clusters(10, seed=1)
    model = make().fit(x_train, y_train)
    assert (model.predict(x_train) == y_train.numpy()).mean() > 0.9
    assert (model.predict(x_test) == y_test.numpy()).mean() > 0.5  # chance is 0.1
    # an untrained MLP (one tiny step) fails the same bar, so passing it means learning
    if isinstance(model, SmallMLP):
        weak = SmallMLP(steps=1, lr=1e-6).fit(x_train, y_train)
        assert (weak.predict(x_test) == y_test.numpy()).mean() < 0.5


def test_small_mlp_is_deterministic_given_the_seed():
    x, y = random_set(20, seed=6)
    a = SmallMLP(steps=20, seed=1).fit(x, y).predict_proba(x)
    b = SmallMLP(steps=20, seed=1).fit(x, y).predict_proba(x)
    c = SmallMLP(steps=20, seed=2).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_logistic_regression_on_a_single_digit_answers_that_digit():
    x, _ = random_set(3, seed=7)
    model = LogisticRegressionBaseline().fit(x, [4, 4, 4])
    np.testing.assert_array_equal(model.predict_proba(x[:2]), np.eye(10)[[4, 4]])


# ----------------------------------------------------------------------------- every baseline

@pytest.mark.parametrize("name", list(BASELINES))
def test_one_image_per_class_and_missing_classes(name):
    x_train, y_train = random_set(10, seed=8)  # one image per digit
    model = BASELINES[name]().fit(torch.from_numpy(x_train).float(), torch.from_numpy(y_train))
    np.testing.assert_array_equal(model.predict(x_train), y_train)

    # digits 0 and 5 have one example, 2 has two, the other seven none
    model = BASELINES[name]().fit(x_train[[0, 2, 2, 5]], np.array([0, 2, 2, 5]))
    x, _ = random_set(7, seed=9)
    proba = model.predict_proba(x)
    assert proba.shape == (7, 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    absent = [1, 3, 4, 6, 7, 8, 9]
    assert (proba[:, absent] == 0).all()
    assert set(model.predict(x).tolist()) <= {0, 2, 5}
    np.testing.assert_array_equal(model.predict(x), proba.argmax(1))


@pytest.mark.parametrize("name", list(BASELINES))
def test_bad_arguments_raise(name):
    x, y = random_set(10, seed=10)
    model = BASELINES[name]()
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(x)
    with pytest.raises(ValueError, match=r"labels.*0\.\.9"):
        model.fit(x, np.r_[y[:9], 10])
    with pytest.raises(ValueError, match=r"labels.*0\.\.9"):
        model.fit(x, np.r_[y[:9], -1])
    with pytest.raises(ValueError, match="labels.*integer"):
        model.fit(x, y.astype(float))
    with pytest.raises(ValueError, match=r"labels.*\[10\]"):
        model.fit(x, y[:9])
    for bad in (x[:, :783], x[0], x.reshape(10, 28, 28, 1)):
        with pytest.raises(ValueError, match="pixels.*shape"):
            model.fit(bad, y)
    with pytest.raises(ValueError, match=r"pixels.*\[0, 1\]"):
        model.fit(x * 255, y)
    model.fit(x, y)
    with pytest.raises(ValueError, match="pixels.*shape"):
        model.predict_proba(x[:, :700])
    with pytest.raises(ValueError, match="at least one image"):
        model.predict(x[:0])


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="k"):
        KNearestNeighbours(k=0)
    with pytest.raises(ValueError, match="C"):
        LogisticRegressionBaseline(C=0)
    for kwargs in (dict(hidden=0), dict(steps=0), dict(lr=0.0), dict(weight_decay=-1.0), dict(seed=-1)):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            SmallMLP(**kwargs)


def test_uint8_and_square_images_are_accepted():
    x, y = random_set(10, seed=11)
    as_uint8 = np.rint(x * 255).astype(np.uint8)
    model = NearestClassMean().fit(as_uint8.reshape(10, 28, 28), y)
    np.testing.assert_allclose(model.means_, as_uint8 / 255, rtol=1e-6)
