"""Class models of every method, meta-trained per digit; the pictures a class model draws."""

import numpy as np
import pytest
import torch

from backprop2lib.meta.adapt import from_mse_lr, sgd_adapt
from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.class_models import METHODS, MetaSettings, train_class_models
from backprop2lib.recognition.images import coordinate_grid, images_to_tasks
from backprop2lib.recognition.pictures import calibration, hidden_maps, reconstructions

from .conftest import MODEL, TINY  # noqa: E402  (and the split, few fixtures)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_ten_class_models_from_one_start(method, few):
    models = train_class_models(method, MODEL, few, TINY, seed=1)
    p = models.priors
    assert p.mean.shape == (10, MODEL.n_params) and bool(torch.isfinite(p.mean).all())
    expected = {"reptile": "initialisation", "maml": "initialisation", "fomaml": "initialisation",
                "mean_only": "initialisation", "meta_sgd": "rates", "scale_gradient": "quadratic"}
    assert p.method == expected.get(method, method)
    # the reported training time covers all ten trainers, not only the last one
    assert len(models.per_class) == 10 and models.seconds >= sum(r.seconds for r in models.per_class)
    # the classes saw different images, so they learned different things
    assert not torch.allclose(p.mean[0], p.mean[1])
    again = train_class_models(method, MODEL, few, TINY, seed=1)
    torch.testing.assert_close(again.priors.mean, p.mean)  # seeded: reproducible


def test_class_model_training_rejects_bad_arguments(few):
    with pytest.raises(ValueError, match="method"):
        train_class_models("bayes", MODEL, few, TINY)
    with pytest.raises(ValueError, match="2 inputs"):
        train_class_models("reptile", MLP((3, 4, 1)), few, TINY)
    with pytest.raises(ValueError, match="no images of digit"):
        train_class_models("reptile", MODEL, few.subset(few.labels != 7), TINY)
    with pytest.raises(ValueError, match="support"):
        MetaSettings(support=784)


def test_reconstructions_and_hidden_maps_evaluate_the_net_on_the_pixel_grid():
    model = MLP((2, 5, 3, 1), activation="gaussian")
    g = torch.Generator().manual_seed(0)
    w = model.flatten(model.init(2, scheme="normal", generator=g, dtype=torch.float64))
    pics = reconstructions(model, w)
    grid = coordinate_grid(dtype=torch.float64)
    direct = model.forward(model.unflatten(w), grid.expand(2, -1, -1))[..., 0]
    torch.testing.assert_close(pics.reshape(2, -1), direct)
    # top-left pixel is the grid point (-1, +1)
    p = model.unflatten(w)
    h = torch.exp(-((torch.tensor([-1.0, 1.0], dtype=torch.float64) @ p[0][1] + p[1][1]) ** 2))
    maps = hidden_maps(model, w)
    assert maps.shape == (2, 5, 28, 28)
    torch.testing.assert_close(maps[1, :, 0, 0], h)
    assert hidden_maps(model, w, layer=1).shape == (2, 3, 28, 28)
    with pytest.raises(ValueError, match="layer"):
        hidden_maps(model, w, layer=2)
    assert reconstructions(model, w[0]).shape == (1, 28, 28)


def test_calibration_bins_and_expected_calibration_error():
    # four images: confidences 0.95 (right), 0.95 (wrong), 0.55 (right), 0.55 (right)
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    y = np.array([0, 1, 0, 1])
    cal = calibration(p, y, bins=10)
    assert cal.counts.sum() == 4 and cal.counts[9] == 2 and cal.counts[5] == 2
    assert cal.accuracy[9] == 0.5 and cal.confidence[9] == pytest.approx(0.95)
    assert cal.accuracy[5] == 1.0 and cal.confidence[5] == pytest.approx(0.55)
    assert cal.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    with pytest.raises(ValueError, match="sum to 1"):
        calibration(p * 2, y)
    with pytest.raises(ValueError, match="probabilities"):
        calibration(p[:3], y)


def test_reconstructing_an_images_own_pixels_round_trips():
    # a net whose output is exactly the target is the identity picture; here: the grid's y coordinate
    x, _ = images_to_tasks(torch.zeros(1, 28, 28, dtype=torch.uint8), dtype=torch.float64)
    model = MLP((2, 1, 1), activation="relu")
    w = torch.tensor([0.0, 1.0, 2.0, 1.0, -2.0], dtype=torch.float64)  # relu(y + 2) - 2 = y on [-1, 1]
    pic = reconstructions(model, w)[0]
    torch.testing.assert_close(pic[:, 0], torch.linspace(1, -1, 28, dtype=torch.float64))


def test_reptile_and_maml_meta_train_with_the_published_step_converted_to_e(few):
    """The chapter's runs passed inner_lr = 0.3 to Reptile and MAML when it was a step on the MSE:
    0.6 on E, bit for bit the same step (the classification-time adaptation keeps inner_lr on E)."""
    s = MetaSettings()
    assert s.maml_inner_lr == from_mse_lr(s.inner_lr) == 0.6
    g = torch.Generator().manual_seed(0)
    model = MLP((2, 4, 1), activation="gaussian")
    theta = torch.randn(model.n_params, generator=g, dtype=torch.float64)
    x = torch.rand(3, 20, 2, generator=g, dtype=torch.float64)
    y = torch.rand(3, 20, 1, generator=g, dtype=torch.float64)
    old = tuple(p.clone() for p in model.unflatten(theta))
    for _ in range(5):  # the old inner step: the explicit MSE gradient, step s.inner_lr
        _, grads = model.loss_and_grad(old, x, y)
        old = tuple(torch.add(p, gr, alpha=-s.inner_lr) for p, gr in zip(old, grads))
    new = sgd_adapt(model, theta, x, y, steps=5, lr=s.maml_inner_lr)
    assert torch.equal(new, model.flatten(old))
    # and the trainers get it: Reptile and MAML the converted step, the scale-gradient learner inner_lr
    for method, lr in (("reptile", TINY.maml_inner_lr), ("maml", TINY.maml_inner_lr),
                       ("scale_gradient", TINY.inner_lr)):
        trained = train_class_models(method, MODEL, few, TINY.with_(iterations=1), seed=1)
        assert {r.config["inner_lr"] for r in trained.per_class} == {lr}
