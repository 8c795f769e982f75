"""The learned-optimiser chapter's driver: families draw disjoint instances; stored test runs become curves over
seeds; ratios, seed-level and per-seed verdicts against baselines tuned per step; the tables, claims and findings."""

import math

import numpy as np
import pytest
import torch

from backprop2lib.experiments import learned_optimiser as ch6
from backprop2lib.learned.catalogue import model_name, trained_models
from backprop2lib.learned.families import TRAINING_SEED_STRIDE, mnist_family, quadratic_family
from backprop2lib.optim import Curve
from backprop2lib.stats import compare, compare_seeds
from backprop2lib.store import ModelSpec, StoredModel, obtain


def _rows(*tensors):
    """Every instance (row) of the tensors as bytes, to count distinct instances across sets."""
    return [t[i].numpy().tobytes() for t in tensors for i in range(t.shape[0])]


def test_seeds_give_disjoint_instance_sets():
    quad = quadratic_family()
    sets = [quad.train(8, seed)(episode).W for seed in (0, 1) for episode in range(3)]
    sets += [quad.validation(8).W, quad.tuning(8).W, quad.test(8).W]
    rows = _rows(*sets)
    assert len(rows) == 72 and len(set(rows)) == 72  # no instance in two sets, nor twice in one
    assert torch.equal(quad.test(8).W, quad.test(8).W)  # and the test set is drawn the same every time
    assert torch.equal(quad.train(8, 1)(2).W, quad.sample(8, TRAINING_SEED_STRIDE + 2, "train").W)
    with pytest.raises(ValueError, match="seed"):
        quad.train(8, 10)


def test_mnist_sets_start_from_different_nets_and_train_on_disjoint_images():
    mnist = mnist_family(hidden=(40,))
    train, val, tuning, test = mnist.train(2)(0), mnist.validation(2), mnist.tuning(2), mnist.test(2)
    assert test.model.sizes == (784, 40, 10)
    assert len(set(_rows(train.theta0, val.theta0, tuning.theta0, test.theta0))) == 8
    assert (train.images.x.shape[0], val.images.x.shape[0], test.images.x.shape[0]) == (3000, 1000, 1000)
    assert torch.equal(tuning.images.x, val.images.x)
    pools = [set(_rows(p.images.x)) for p in (train, val, test)]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])


# ------------------------------------------------------------------------------------ curves from stored runs

def _model(seed, losses, steps, label="quadratic", cell="lstm", r=0.0):
    config = {"family": {"problem": "quadratic", "draw": "gaussian", "dim": 10}, "training_seed": seed,
              "optimiser": {"cell": cell}, "random_scaling": r, "meta": {"episode_length": 2},
              "evaluations": [{"label": label, "problem": "quadratic", "draw": "gaussian", "dim": 10,
                               "n": np.asarray(losses).shape[1], "steps": steps[-1], "record_every": 1}]}
    recipe = {("lstm", 0.0): "LSTM", ("gru", 0.0): "GRU", ("lstm", 3.0): "LSTM, random scaling"}[(cell, r)]
    spec = ModelSpec(model_name("quadratic", recipe, seed, "paper"), "06", "backprop2lib.learned.jobs", config)
    record = {"evaluations": {label: {"steps": steps, "losses": np.asarray(losses, dtype=np.float32)}}}
    return StoredModel(spec, {}, "", record)


def test_stored_runs_become_a_curve_over_seeds_and_count_divergence():
    a = [[4.0, 4.0, 4.0], [2.0, np.nan, 1.0], [1.0, np.nan, 0.5]]
    b = [[4.0, 4.0, 4.0], [3.0, 2.0, 1.0], [2.0, 1.0, 0.5]]
    curve = ch6.learned_curve([_model(0, a, [0, 1, 2]), _model(1, b, [0, 1, 2])], "quadratic", "LSTM")
    assert curve.n_seeds == 2 and curve.losses.shape == (3, 6)
    assert curve.diverged_at.tolist() == [-1, 1, -1, -1, -1, -1]  # seed 0, instance 1, from step 1
    assert curve.by_seed(2)[1].tolist() == [2.0, 1.0, 0.5]
    assert ch6.recipe_of(_model(0, a, [0, 1, 2], r=3.0)) == "LSTM, random scaling"
    assert ch6.recipe_of(_model(0, a, [0, 1, 2], cell="gru")) == "GRU"
    with pytest.raises(ValueError, match="different steps"):
        ch6.learned_curve([_model(0, a, [0, 1, 2]), _model(1, b, [0, 2, 4])], "quadratic", "LSTM")


def _section(learned_by_seed, adam):
    """A section with one learned recipe (seeds × instances at step 1) and Adam (instances)."""
    S, n = learned_by_seed.shape
    start = np.full((S, n), 5.0)
    learned = Curve("LSTM", np.stack([start.reshape(-1), learned_by_seed.reshape(-1)]), n_seeds=S)
    base = Curve("Adam", np.stack([np.full(n, 5.0), adam]))
    return ch6.Section("quadratic", (1,), 1, {"LSTM": learned}, {"Adam": {}}, {("Adam", 1): base}, n, 4)


def test_ratio_and_verdicts_read_the_seeds():
    rng = np.random.default_rng(0)
    adam = 1.0 + 0.3 * rng.random(40)
    learned = np.stack([adam * f for f in (0.5, 0.6, 0.55)]) + 0.01 * rng.standard_normal((3, 40))
    section = _section(learned, adam)
    ratio = section.ratio("LSTM", 1)
    per_seed = learned.mean(1) / adam.mean()
    assert ratio.per_seed.tolist() == pytest.approx(per_seed.tolist())
    assert ratio.mean == pytest.approx(per_seed.mean()) and math.isfinite(ratio.ci95)
    by_hand = compare_seeds(learned, np.tile(adam, (3, 1)), paired=True)
    got = section.verdict("LSTM", "Adam", 1)
    assert got.verdict == by_hand.verdict == "lower" and got.difference.mean == pytest.approx(by_hand.difference.mean)
    assert section.per_seed("LSTM", "Adam", 1) == [compare(row, adam, paired=True).verdict for row in learned]
    assert section.progress("LSTM", 1) == ["lower"] * 3
    # seeds that disagree: every seed decided on its own, no seed-level verdict
    mixed = np.stack([adam * 0.5, adam * 1.5, adam * 1.0 + 0.001])
    section = _section(mixed, adam)
    assert section.per_seed("LSTM", "Adam", 1)[:2] == ["lower", "higher"]
    assert section.verdict("LSTM", "Adam", 1).verdict == "not distinguishable"


# ------------------------------------------------------------------------------------ a tiny real section

@pytest.fixture(scope="module")
def smoke_quadratics():
    models = {}
    for spec in trained_models("smoke"):
        if spec.config["family"]["problem"] == "quadratic":
            m = obtain(spec, progress=False, log=lambda _: None)
            models.setdefault(ch6.recipe_of(m), []).append(m)
    return models


def test_a_section_tunes_each_baseline_per_step_and_pairs_the_instances(smoke_quadratics):
    settings = ch6.Settings.for_profile("smoke")
    section = ch6.compare_section("quadratic", smoke_quadratics, ("SGD", "Adam"), settings.lr_grid, 8)
    assert section.steps == (20, 40) and section.training_horizon == 20
    assert {c.n_seeds for c in section.learned.values()} == {5}
    for name in ("SGD", "Adam"):
        assert sorted(section.choices[name]) == [20, 40]
        for step in (20, 40):
            assert section.choices[name][step].horizon == step
            # the baseline starts where every learned seed starts: the same test instances
            start = section.baselines[(name, step)].at(0)
            assert np.allclose(section.learned["LSTM"].by_seed(0), start[None, :], rtol=1e-5)
    table = ch6.section_table(section)
    assert table.count("LSTM (5 seeds)") == 2 and "Adam (lr " in table
    tuned = ch6.baselines_table({"quadratic": section})
    assert tuned.count("| quadratic | SGD |") == 2


def test_settings_per_profile():
    smoke, paper, full = (ch6.Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    assert (paper.quad_tuning, paper.mnist_tuning, paper.shift_tuning, paper.long_tuning) == (100, 20, 10, 5)
    assert (smoke.quad_tuning, smoke.mnist_tuning) == (20, 2)
    assert paper.lr_grid == (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    assert paper.sizes["m_episodes"] * paper.sizes["m_length"] == 100_000
    assert full.sizes["m_episodes"] == 10_000 and full.sizes["m_seeds"] == 10
    assert smoke.sizes["m_seeds"] == paper.sizes["m_seeds"] and smoke.sizes["q_seeds"] == paper.sizes["q_seeds"]
    with pytest.raises(ValueError, match="unknown profile"):
        ch6.Settings.for_profile("huge")


def test_the_paper_reference_values():
    # shared/reference/learned-optimizer.md: the ReLU LSTM made no progress; NAG beat Adam on MNIST
    assert ch6.PAPER["ReLU, 100"][0] is None and "no progress" in ch6.PAPER["ReLU, 100"][2]
    assert ch6.PAPER_NAG["MNIST, 100"] < ch6.PAPER["MNIST, 100"][1]
    assert ch6.PAPER_NAG["MNIST, 200"] < ch6.PAPER["MNIST, 200"][1]
    assert ch6.PAPER["quadratic, 100"][:2] == (0.040, 0.051)


def test_the_early_stopping_check_reads_the_validation_curve():
    model = _model(0, [[1.0]], [0])
    model.record.update(validation=[[9, 0.5], [19, 0.3], [29, 0.4]], best_episode=19, best_validation=0.3)
    assert ch6._early_stopped(model)
    model.record["best_episode"] = 29  # parameters from a later, worse check
    assert not ch6._early_stopped(model)
    model.record.update(validation=[], best_episode=-1)
    assert not ch6._early_stopped(model)
