"""Chapter 5's experiment drivers: class-model training, sweeps, intervals, the data-efficiency loop."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.data.mnist import bundled_split
from backprop2lib.experiments.recognition import KNOBS, Adaptation, data_efficiency, pool_and_test, run_setting
from backprop2lib.meta.adapt import from_mse_lr, sgd_adapt
from backprop2lib.models.mlp import MLP
from backprop2lib.recognition.baselines import NearestClassMean
from backprop2lib.recognition.class_models import METHODS, MetaSettings, train_class_models
from backprop2lib.recognition.priors import ClassPriors

MODEL = MLP((2, 4, 1), activation="gaussian")
TINY = MetaSettings(iterations=3, meta_batch=2, inner_steps=2, outer_iterations=2, tasks_per_iteration=3)


@pytest.fixture(scope="module")
def split():
    return bundled_split()


@pytest.fixture(scope="module")
def few(split):
    return split.train.per_class(3, seed=0)


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


def test_data_efficiency_uses_a_fixed_test_split_and_the_same_draws_for_every_classifier(split):
    pool, test = pool_and_test(split)
    assert len(pool) == 3000 and len(test) == 1000  # draws come from the train split only
    assert set(pool.class_counts().tolist()) == {300}
    out = data_efficiency("reptile", MODEL, TINY, Adaptation(steps=1, lr=0.3), None, [1, 2], 2,
                          baselines={"nearest class mean": NearestClassMean}, split=split)
    assert set(out.accuracy) == {"reptile", "nearest class mean"}
    for acc in out.accuracy.values():
        assert acc.shape == (2, 2) and bool(np.isfinite(acc).all()) and bool(((acc >= 0) & (acc <= 1)).all())
    # the nearest-class-mean entry for draw d equals fitting it on pool.per_class(n, seed=d) directly
    train = pool.per_class(2, seed=1)
    direct = NearestClassMean().fit(train.pixels(), train.labels).predict(test.pixels())
    assert out.accuracy["nearest class mean"][1, 1] == pytest.approx(float((direct == test.labels.numpy()).mean()))
    assert set(KNOBS) <= set(METHODS)


def test_code_data_efficiency_trains_every_seed_on_each_draw_and_compares_per_seed(split):
    from backprop2lib.experiments.recognition import CodeExperiment, code_data_efficiency  # re-exported
    from backprop2lib.recognition.codes import CodeReconstructor, CodeSettings, adapt_codes, pixel_split
    from backprop2lib.recognition.codes import train_code_models
    from backprop2lib.recognition.images import moved_copies

    experiment = CodeExperiment(CodeReconstructor(2, hidden=(4,)),
                                CodeSettings(iterations=2, meta_batch=2, points=8, augment_shift=1.0),
                                starts=2, steps=1, refine=1, points=8, augment_copies=3)
    out = code_data_efficiency(experiment, [1, 2], 2, (0, 1), baselines={"nearest class mean": NearestClassMean},
                               split=split, test_images=30)
    assert out.code.shape == (2, 2, 2) and bool(((out.code >= 0) & (out.code <= 1)).all())
    assert set(out.baselines) == {"nearest class mean", "nearest class mean, moved copies"}
    pool, test = pool_and_test(split)
    test = test.subset(slice(0, 30))
    train = pool.per_class(2, seed=1)
    # seed 1's entry for draw 1 at n = 2 is that seed trained alone on the draw, then classifying the test images
    models = train_code_models(experiment.reconstructor, [train.pixels()[train.labels == c] for c in range(10)],
                               experiment.training, seeds=(1,), progress=False)
    fit = adapt_codes(models, test.pixels(), pixel_split(30, 0.5, seed=10_000), starts=2, steps=1, refine=1, points=8,
                      generator=torch.Generator().manual_seed(1))
    assert out.code[1, 1, 1] == pytest.approx(float((fit.predict() == test.labels).double().mean()), abs=0.04)
    moved = moved_copies(train.pixels(), 3, 1.0, 0.0, generator=torch.Generator().manual_seed(1))
    direct = NearestClassMean().fit(moved, train.labels.repeat_interleave(3)).predict(test.pixels())
    assert out.baselines["nearest class mean, moved copies"][1, 1] == pytest.approx(
        float((direct == test.labels.numpy()).mean()))
    verdict = out.verdict("nearest class mean", 2)
    assert verdict.verdict in ("lower", "higher", "not distinguishable")


# ----------------------------------------------------------------------------- pictures
from backprop2lib.recognition.images import coordinate_grid, images_to_tasks  # noqa: E402
from backprop2lib.recognition.pictures import calibration, hidden_maps, reconstructions  # noqa: E402


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


def test_a_method_that_cannot_train_on_one_image_is_recorded_as_a_failure(split):
    # Eve measures each parameter's spread across the images of a digit: one image has none
    out = data_efficiency("eve", MODEL, TINY, Adaptation(steps=1), None, [1], 1, baselines={}, split=split,
                          test_images=20)
    assert np.isnan(out.accuracy["eve"][0, 0])
    assert len(out.failures) == 1 and "n = 1" in out.failures[0] and "varies" in out.failures[0]


# ----------------------------------------------------------------------------- the chapter contract
import dataclasses  # noqa: E402

from backprop2lib.experiments import recognition as chapter  # noqa: E402


def test_settings_follow_the_profile_and_reject_bad_values():
    smoke, paper, full = (chapter.Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    assert smoke.meta_iterations < paper.meta_iterations < full.meta_iterations
    assert paper.steps_values == (0, 1, 2, 5, 10, 20) and full.strength_values == paper.strength_values
    assert paper.meta == MetaSettings(iterations=100, inner_steps=5, inner_lr=0.3, outer_iterations=5,
                                      tasks_per_iteration=50)
    assert paper.knob_values("decay") == (0.0, 0.2, 1.0, 5.0, 25.0)
    with pytest.raises(ValueError, match="knob"):
        paper.knob_values("temperature")
    with pytest.raises(ValueError, match="rotate_degrees"):
        dataclasses.replace(paper, rotate_degrees=45.0)
    with pytest.raises(ValueError, match="collage_digit"):
        dataclasses.replace(paper, collage_digit=10)


TINY_CHAPTER = dataclasses.replace(
    chapter.Settings.for_profile("smoke"), hidden=(4,), meta_iterations=2, outer_iterations=2, tasks_per_iteration=3,
    sweep_images=1, steps_values=(0, 2), strength_values=(0.0, 1.0), decay_values=(0.0, 1.0), sizes=(2,), draws=1,
    test_images=30, collage_steps=2, collage_examples=2, collage_units=2)


@pytest.fixture(scope="module")
def chapter_results():
    return chapter.run(TINY_CHAPTER)


def test_the_chapter_chooses_on_validation_and_applies_the_choice_on_test(chapter_results):
    r = chapter_results
    assert set(r.tradeoff.sweeps) == set(chapter.COMPARED) and len(r.tradeoff.images) == 10
    for method, settings in r.tradeoff.sweeps.items():
        assert [s.value for s in settings] == list(TINY_CHAPTER.knob_values(KNOBS[method]))
        chosen = r.tradeoff.chosen[method]
        assert chosen.accuracy == max(s.accuracy for s in settings if not s.diverged)
        run_ = r.test.runs[method]
        assert (run_.setting.knob, run_.setting.value) == (chosen.knob, chosen.value)
        if chosen.knob == "steps":
            assert run_.adaptation.steps == chosen.value
        else:
            assert getattr(run_.priors, chosen.knob) == chosen.value
    best = r.tradeoff.best_method
    assert r.tradeoff.chosen[best].accuracy == max(s.accuracy for s in r.tradeoff.chosen.values())
    assert len(r.test.images) == 30 and set(r.test.baselines) == set(chapter.BASELINES)
    # the test run is the chosen setting classified again, on the test images
    again = run_setting(TINY_CHAPTER.model(), r.test.runs[best].priors, r.test.images, r.test.runs[best].adaptation,
                        chunk=TINY_CHAPTER.chunk)
    assert again.accuracy == r.test.runs[best].setting.accuracy
    assert r.collage.method == best and r.collage.adapted.shape == (2, TINY_CHAPTER.model().n_params)
    assert bool((r.collage.images.labels == TINY_CHAPTER.collage_digit).all()) and len(r.collage.units) == 2
    assert max(r.edits.errors.values()) < 1e-4 and len(r.edits.pictures) == 6
    assert set(r.efficiency.accuracy) == {best, *chapter.BASELINES}
    assert r.calibration.method == best and r.calibration.temperature > 0


def test_the_chapter_tables_and_texts_cover_every_method(chapter_results):
    r = chapter_results
    for table in (chapter.training_table(r.training), chapter.separation_table(r.tradeoff),
                  chapter.held_out_table(r.test, r.tradeoff)):
        assert all(f"| {m} |" in table for m in chapter.COMPARED)
    assert chapter.sweep_table(r.tradeoff).count("\n") == 1 + sum(len(s) for s in r.tradeoff.sweeps.values())
    assert chapter.summary_text(r).startswith(f"best method: {r.tradeoff.best_method} ")
    assert "translation" in chapter.edits_text(r.edits) and "temperature" in chapter.calibration_text(r.calibration)


def test_the_chapter_claims_follow_the_numbers(chapter_results, capsys):
    r = chapter_results
    best = r.test.runs[r.tradeoff.best_method].setting.accuracy
    # nearest class mean far above the best reconstruction classifier: the claim holds
    above = dataclasses.replace(r, test=dataclasses.replace(r.test, baselines={**r.test.baselines,
                                                                                "nearest class mean": 1.0}))
    # ... and at the same accuracy it does not
    level = dataclasses.replace(r, test=dataclasses.replace(r.test, baselines={**r.test.baselines,
                                                                                "nearest class mean": best}))
    assert chapter.check_claims(above).verdicts[-1][1] is True
    assert chapter.check_claims(level).verdicts[-1][1] is False
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[2].endswith(": True") and lines[5].endswith(": False")
