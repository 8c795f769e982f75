"""Choosing how class models adapt: knobs, held-out fraction, budgets, the tune-then-test protocol."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from backprop2lib.recognition.class_models import METHODS, MetaSettings, train_class_models
from backprop2lib.recognition.classifier import classify
from backprop2lib.recognition.codes import pixel_split
from backprop2lib.recognition.images import images_to_tasks
from backprop2lib.recognition.priors import ClassPriors
from backprop2lib.recognition.tuning import (HELD_OUT_SEED, KNOBS, Adaptation, MethodMap, apply_knob, best_setting,
                                             default_adaptation, meta_budget, run_setting, stable_priors, sweep,
                                             trajectory, tune_and_test)
from backprop2lib.scale.adapt import InnerLoop, adapt

from .conftest import MODEL, TINY  # noqa: E402  (and the split, few fixtures)


def _priors(method, spread_value, strength):
    mean = torch.zeros(2, 3, dtype=torch.float64)
    spread = torch.full_like(mean, spread_value)
    return ClassPriors(method, mean, spread, strength=strength)


def test_every_method_has_a_knob_and_a_default_adaptation():
    assert set(KNOBS) == set(METHODS)
    s = MetaSettings(inner_steps=7, inner_lr=0.2, maml_inner_lr=0.4)
    for method in ("reptile", "maml", "fomaml"):  # the step they meta-trained with
        assert default_adaptation(method, s) == Adaptation(steps=7, lr=0.4)
    assert default_adaptation("scale_gradient", s) == Adaptation(steps=7, lr=0.2)
    assert default_adaptation("meta_sgd", s).lr == 1.0  # the learned α are the steps
    for method in ("mean_only", "quadratic", "quartic", "eve"):
        assert default_adaptation(method, s) == Adaptation(steps=7, lr=None)  # backprop2's line search
    with pytest.raises(ValueError, match="method"):
        default_adaptation("bayes", s)
    with pytest.raises(ValueError, match="held_fraction"):
        Adaptation(held_fraction=1.0)
    with pytest.raises(ValueError, match="score"):
        Adaptation(score="likelihood")


def test_apply_knob_sets_the_right_thing():
    p = _priors("quadratic", 1.0, 0.1)
    a = Adaptation(steps=3, lr=0.1)
    q, b = apply_knob(p, a, "steps", 5.0)
    assert q is p and b.steps == 5 and isinstance(b.steps, int) and b.lr == 0.1
    assert apply_knob(p, a, "held_fraction", 0.25)[1].held_fraction == 0.25
    assert apply_knob(p, a, "strength", 2.0)[0].strength == 2.0
    with pytest.raises(ValueError, match="knob"):
        apply_knob(p, a, "temperature", 1.0)


@pytest.mark.parametrize("lr", [0.1, 1.0, 10.0])
def test_stable_priors_make_one_regulariser_step_contract(lr):
    w = torch.tensor([[0.5, -2.0, 3.0]] * 2, dtype=torch.float64)
    quad = stable_priors(_priors("quadratic", 1e-6, 0.5), lr)
    _, reg, _ = quad.rows(torch.arange(2))
    step = w - lr * reg.value_and_grad(w)[1]
    assert bool((step.abs() <= w.abs() + 1e-12).all())  # never overshoots μ = 0 by more than it started
    quartic = stable_priors(_priors("quartic", 1e6, 0.5), lr)
    assert bool((8 * lr * 0.5 * quartic.spread <= 1 + 1e-12).all())
    loose = _priors("quadratic", 100.0, 1e-3)
    assert torch.equal(stable_priors(loose, 0.1).spread, loose.spread)
    rates = _priors("rates", 5.0, 0.5)  # Meta-SGD's step sizes are not a regulariser's curvature
    assert torch.equal(stable_priors(rates, lr).spread, rates.spread)


def test_sweep_over_steps_and_the_best_setting(split, few):
    models = train_class_models("reptile", MODEL, few, TINY)
    images = split.validation.per_class(2, seed=0)
    settings = sweep(MODEL, models.priors, "reptile", images, Adaptation(lr=0.5), [0, 3])
    assert [s.value for s in settings] == [0, 3] and all(s.knob == "steps" for s in settings)
    zero = settings[0].result
    torch.testing.assert_close(zero.losses, zero.initial_losses)  # 0 steps: the start's reconstruction
    assert not torch.allclose(settings[1].result.losses, zero.losses)
    labels = images.labels.numpy()
    assert settings[0].accuracy == pytest.approx(float((zero.losses.argmin(1).numpy() == labels).mean()))
    assert best_setting(settings).accuracy == max(s.accuracy for s in settings)


def test_run_setting_scores_held_out_pixels_with_the_fixed_split(split, few):
    models = train_class_models("quadratic", MODEL, few, TINY)
    images = split.validation.per_class(1, seed=0)
    held = run_setting(MODEL, models.priors, images, Adaptation(steps=2, lr=0.3, held_fraction=0.25))
    x, y = images_to_tasks(images)
    masks = pixel_split(len(images), 0.75, seed=HELD_OUT_SEED)
    direct = classify(MODEL, stable_priors(models.priors, 0.3), x[0], y, steps=2, lr=0.3, adapt_masks=masks)
    torch.testing.assert_close(held.result.losses, direct.losses)
    plain = run_setting(MODEL, models.priors, images, Adaptation(steps=2, lr=0.3))
    assert not torch.allclose(plain.result.losses, held.result.losses)


def test_a_diverging_setting_is_recorded_not_raised(split, few):
    models = train_class_models("reptile", MODEL, few, TINY)
    s = run_setting(MODEL, models.priors, split.validation.per_class(1, seed=0), Adaptation(steps=30, lr=1e6))
    assert s.diverged and math.isnan(s.accuracy) and s.result is None
    with pytest.raises(ValueError, match="every setting diverged"):
        best_setting([s])


def test_the_objective_score_adds_the_penalty(split, few):
    models = train_class_models("quadratic", MODEL, few, TINY)
    images = split.validation.per_class(1, seed=0)
    rec = run_setting(MODEL, models.priors, images, Adaptation(steps=2, lr=0.3))
    obj = run_setting(MODEL, models.priors, images, Adaptation(steps=2, lr=0.3, score="objective"))
    torch.testing.assert_close(obj.result.losses, rec.result.losses + rec.result.penalties)


def test_meta_budget_counts_images_seen():
    s = MetaSettings(meta_batch=10, tasks_per_iteration=50)
    assert meta_budget("maml", s, 1000).iterations == 100
    assert meta_budget("reptile", s, 1001).iterations == 101  # rounded up
    assert meta_budget("quadratic", s, 1000).outer_iterations == 20
    assert meta_budget("eve", s, 1000).iterations == s.iterations  # the other unit is untouched
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="images"):
            meta_budget("maml", s, bad)


def test_tune_and_test_chooses_on_validation_and_tests_once(split, few):
    validation = split.validation.per_class(1, seed=0)
    test = split.test.subset(slice(0, 12))
    m, priors = tune_and_test("reptile", MODEL, few, validation, test, meta=TINY, budgets=(4, 6), seeds=(0, 1),
                              knob_values=(0, 2), held_fractions=(0.0, 0.5))
    assert m.validation.shape == (2, 2, 2, 2) and m.seconds.shape == (2, 2) and m.test.shape == (2,)
    assert len(priors) == 2 and m.diverged == 0
    for i, seed in enumerate((0, 1)):
        # the map's cell equals the obvious construction: train at that budget, classify at that setting
        trained = train_class_models("reptile", MODEL, few, meta_budget("reptile", TINY, 6), seed=seed)
        torch.testing.assert_close(priors[i].mean, trained.priors.mean)
        base = default_adaptation("reptile", TINY)
        for k, steps in enumerate((0, 2)):
            for f, fraction in enumerate((0.0, 0.5)):
                direct = run_setting(MODEL, trained.priors, validation,
                                     base.with_(steps=steps, held_fraction=fraction)).accuracy
                assert m.validation[i, 1, k, f] == pytest.approx(direct)
        k, f = np.unravel_index(np.argmax(m.validation[i, -1]), (2, 2))
        assert m.chosen[i] == ((0, 2)[k], (0.0, 0.5)[f])
        expected = run_setting(MODEL, trained.priors, test,
                               base.with_(steps=(0, 2)[k], held_fraction=(0.0, 0.5)[f])).accuracy
        assert m.test[i] == pytest.approx(expected)
    assert m.best_validation().shape == (2, 2)
    np.testing.assert_array_equal(m.best_validation(), np.nanmax(m.validation.reshape(2, 2, -1), -1))
    # a seed and budget where every setting diverged has no best: NaN, not −inf
    diverged = dataclasses.replace(m, validation=m.validation.copy())
    diverged.validation[1, 0] = np.nan
    best = diverged.best_validation()
    assert np.isnan(best[1, 0]) and np.isfinite(np.delete(best.ravel(), 2)).all()
    again = MethodMap.from_record(m.to_record())
    np.testing.assert_allclose(again.validation, m.validation, rtol=1e-5)
    assert again.chosen == m.chosen and again.budgets == m.budgets
    with pytest.raises(ValueError, match="budgets"):
        tune_and_test("reptile", MODEL, few, validation, None, meta=TINY, budgets=(6, 4), seeds=(0,), knob_values=(0,))


def test_trajectory_steps_one_at_a_time_like_adapt(split, few):
    models = train_class_models("maml", MODEL, few, TINY)
    images = split.validation.subset(split.validation.labels == 3).subset(slice(0, 2))
    errors, params = trajectory(MODEL, models.priors, images, 3, lr=0.3, steps=4)
    assert errors.shape == (5, 2) and params.shape == (5, 2, MODEL.n_params)
    x, y = images_to_tasks(images)
    whole = adapt(MODEL, models.priors.mean[3], x, y, loop=InnerLoop(max_steps=4, lr=0.3))
    torch.testing.assert_close(params[-1], whole.params, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(errors[0], whole.error_before)
    torch.testing.assert_close(errors[-1], whole.error_after, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="digit"):
        trajectory(MODEL, models.priors, images, 10, lr=0.3, steps=1)


def test_a_meta_training_that_diverges_is_counted_not_fatal(split, few, monkeypatch):
    import backprop2lib.recognition.tuning as tuning
    from backprop2lib.optim.errors import DivergenceError
    real = tuning.train_class_models

    def flaky(method, model, data, settings, *, seed, device):
        if seed == 1:
            raise DivergenceError("inner loop blew up")
        return real(method, model, data, settings, seed=seed, device=device)

    monkeypatch.setattr(tuning, "train_class_models", flaky)
    validation = split.validation.per_class(1, seed=0)
    m, priors = tune_and_test("reptile", MODEL, few, validation, validation, meta=TINY, budgets=(4,), seeds=(0, 1),
                              knob_values=(0, 1))
    assert priors[1] is None and priors[0] is not None
    assert np.isnan(m.validation[1]).all() and np.isfinite(m.validation[0]).all()
    assert math.isnan(m.test[1]) and math.isnan(m.chosen[1][0])
    assert m.failures == ["seed 1, 4 images: inner loop blew up"]
    assert MethodMap.from_record(m.to_record()).failures == m.failures


def test_maps_trained_one_seed_per_job_join_into_the_map_of_one_job(split, few):
    from backprop2lib.experiments.recognition import join_seeds

    validation, test = split.validation.per_class(1, seed=0), split.test.subset(slice(0, 12))

    def run(seeds):
        return tune_and_test("reptile", MODEL, few, validation, test, meta=TINY, budgets=(4, 6), seeds=seeds,
                             knob_values=(0, 2), held_fractions=(0.0, 0.5))[0]
    whole, parts = run((0, 1, 2)), [run((2,)), run((0,)), run((1,))]
    joined = join_seeds(parts)  # in any order: stacked by seed
    assert joined.seeds == whole.seeds and joined.chosen == whole.chosen
    for name in ("validation", "auroc", "test"):
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name))
    np.testing.assert_array_equal(joined.seconds[2], parts[0].seconds[0])  # each seed keeps its own timings
    with pytest.raises(ValueError, match="seed appears twice"):
        join_seeds([parts[1], parts[1]])
    with pytest.raises(ValueError, match="budgets differs"):
        join_seeds([parts[1], dataclasses.replace(parts[2], budgets=(4, 8))])
    with pytest.raises(ValueError, match="at least one"):
        join_seeds([])
