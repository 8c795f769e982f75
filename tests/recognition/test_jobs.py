"""Chapter 5's store jobs: the catalogue's configurations round-trip, and a smoke job of each kind trains for real."""

import numpy as np
import pytest
import torch

from backprop2lib.recognition import catalogue, jobs
from backprop2lib.recognition.class_models import METHODS
from backprop2lib.recognition.few_shot import MOVED, pool_and_test
from backprop2lib.recognition.robustness import Robustness
from backprop2lib.recognition.tuning import MethodMap
from backprop2lib.store import obtain


CHOSEN = (catalogue.FULL_PARAMETER_METHOD, catalogue.FULL_PARAMETER_HIDDEN)


def _kinds(specs):
    out = {}
    for s in specs:
        out.setdefault(s.config["kind"], []).append(s)
    return out


@pytest.mark.parametrize("profile", ["smoke", "paper", "full"])
def test_each_profile_has_its_jobs_and_configurations_round_trip(profile):
    specs = catalogue.trained_models(profile)
    z = catalogue.SIZES[profile]
    kinds = _kinds(specs)
    assert set(kinds) == set(jobs.KINDS)
    cells = len(z["sizes"]) * z["draws"]
    assert len(kinds["codes-cell"]) == len(kinds["method-cell"]) == cells
    if profile != "smoke":
        assert {s.config["method"] for s in kinds["method-map"]} == set(METHODS)
        assert {s.config["experiment"]["reconstructor"]["code_dim"] for s in kinds["code-map"]} == \
            set(catalogue.CODE_DIMS)
    # exactly one code map is the stored cells' experiment, and it runs the moved test sets
    chosen = [s for s in kinds["code-map"] if s.config["robustness"]]
    assert len(chosen) == 1
    assert jobs.experiment_from_config(chosen[0].config["experiment"]) == catalogue.code_experiment(profile)
    assert jobs.experiment_from_config(kinds["codes-cell"][0].config["experiment"]) == \
        catalogue.code_experiment(profile)
    assert all(s.config["method"] == catalogue.FULL_PARAMETER_METHOD and
               tuple(s.config["hidden"]) == catalogue.FULL_PARAMETER_HIDDEN for s in kinds["method-cell"])
    # the cells' class models are meta-trained with the budget every map shares; their map runs one further
    shared = set.intersection(*(set(s.config["budgets"]) for s in kinds["method-map"]))
    assert all(s.config["budgets"] == [max(shared)] for s in kinds["method-cell"])
    extended = {(s.config["method"], tuple(s.config["hidden"])): s.config["budgets"][len(shared):]
                for s in kinds["method-map"] if len(s.config["budgets"]) > len(shared)}
    extra = list(catalogue.EXTRA_BUDGETS[profile])
    if profile == "smoke":  # only the chosen one (smoke lists no maps still rising)
        assert extended == {CHOSEN: extra[:1]}
    else:  # the chosen one, and the maps still rising into the shared budget, as many as listed
        expected = {key: extra[:count] for key, count in catalogue.STILL_RISING.items()}
        expected.setdefault(CHOSEN, extra[:1])
        assert extended == expected
        assert min(extra) > max(shared)
    assert all(s.config["budgets"] == sorted(set(s.config["budgets"])) for s in kinds["method-map"])
    # a map split by seed is one job per training seed, its configurations otherwise the same
    maps = {}
    for s in kinds["method-map"]:
        maps.setdefault((s.config["method"], tuple(s.config["hidden"])), []).append(s)
    for key, parts in maps.items():
        assert sorted(seed for s in parts for seed in s.config["seeds"]) == list(range(z["seeds"]))
        assert len(parts) == (z["seeds"] if catalogue.split_by_seed(profile, *key) else 1)
        assert all({**s.config, "seeds": None} == {**parts[0].config, "seeds": None} for s in parts)
    assert all(s.chapter == "05" and s.persist == (profile != "smoke") for s in specs)
    assert len({s.name for s in specs}) == len(specs)
    with pytest.raises(ValueError, match="profile"):
        catalogue.trained_models("huge")


def test_a_map_run_to_the_second_extra_budget_is_one_job_per_seed(monkeypatch):
    def meta_sgd_maps():
        return [s for s in catalogue.trained_models("paper")
                if s.config["kind"] == "method-map" and s.config["method"] == "meta_sgd"]
    monkeypatch.setitem(catalogue.STILL_RISING, ("meta_sgd", (20,)), 1)
    assert [s.name for s in meta_sgd_maps()] == ["05-map-meta_sgd-20-paper"]
    monkeypatch.setitem(catalogue.STILL_RISING, ("meta_sgd", (20,)), 2)
    split = meta_sgd_maps()
    assert [s.name for s in split] == [f"05-map-meta_sgd-20-seed{seed}-paper" for seed in range(3)]
    assert [s.config["seeds"] for s in split] == [[0], [1], [2]]
    assert all(s.config["budgets"] == [1000, 3000, 10_000, 30_000, 100_000] for s in split)


def test_the_two_families_draw_the_same_training_images_per_cell():
    pool, _ = pool_and_test()
    a = pool.per_class(5, seed=2)
    b = pool.per_class(5, seed=2)
    assert torch.equal(a.images, b.images)  # a method cell and a code cell of one (n, draw) pair up


@pytest.fixture(scope="module")
def smoke():
    return _kinds(catalogue.trained_models("smoke"))


def test_a_smoke_method_map_maps_every_budget_seed_knob_and_fraction(smoke):
    spec = smoke["method-map"][0]
    stored = obtain(spec, log=lambda line: None)
    m = MethodMap.from_record(stored.record["map"])
    c = spec.config
    assert m.validation.shape == (len(c["seeds"]), len(c["budgets"]), len(c["knob_values"]), len(c["held_fractions"]))
    assert np.isfinite(m.test).all() and len(m.chosen) == len(c["seeds"])
    assert stored.state["mean"].shape[:2] == (len(c["seeds"]), 10)


def test_a_smoke_method_cell_trains_on_its_draw(smoke):
    stored = obtain(smoke["method-cell"][0], log=lambda line: None)
    m = MethodMap.from_record(stored.record["map"])
    assert m.validation.shape[1] == 1 and np.isfinite(m.test).all()


def test_a_smoke_code_map_records_the_curve_the_map_and_the_moved_digits(smoke):
    spec = smoke["code-map"][0]
    stored = obtain(spec, log=lambda line: None)
    r, c = stored.record, spec.config
    S = len(c["seeds"])
    assert [it for it, _ in r["curve"]] == [2, 3] and all(len(v) == S for _, v in r["curve"])
    assert np.asarray(r["validation"]).shape == (S, len(c["held_fractions"]), len(c["prior_weights"]))
    assert len(r["test"]) == S and len(r["chosen"]) == S
    rob = Robustness.from_record(r["robustness"])
    names = set(catalogue.BASELINE_NAMES)
    assert set(rob.accuracy) == {"code class models", "code class models + edit search"} | names | \
        {n + MOVED for n in names}
    conditions = len(c["robustness"]["shifts"]) + len(c["robustness"]["angles"])
    assert rob.accuracy["code class models"].shape == (S, conditions)
    assert rob.accuracy["code class models + edit search"].shape == (1, conditions)
    assert stored.state["w"].shape[0] == S * 10


def test_a_smoke_code_cell_trains_every_seed_and_every_baseline(smoke):
    spec = smoke["codes-cell"][0]
    stored = obtain(spec, log=lambda line: None)
    record = stored.record
    S = len(spec.config["seeds"])
    assert len(record["code_accuracy"]) == S and all(0 <= a <= 1 for a in record["code_accuracy"])
    names = set(catalogue.BASELINE_NAMES)
    assert set(record["baselines"]) == names | {n + MOVED for n in names}
    rec = catalogue.code_experiment("smoke").reconstructor
    assert stored.state["w"].shape == (S * 10, rec.mlp.n_params) and stored.state["mu"].shape == (S * 10, 8)
    assert len(record["meta_loss"]) == catalogue.SIZES["smoke"]["iterations"]
    bad = type(spec)(spec.name, spec.chapter, spec.module, {**spec.config, "baselines": ["oracle"]},
                     persist=False)
    with pytest.raises(ValueError, match="baselines: unknown oracle"):
        obtain(bad, log=lambda line: None)
    worse = type(spec)(spec.name, spec.chapter, spec.module, {**spec.config, "kind": "guess"}, persist=False)
    with pytest.raises(ValueError, match="config kind: unknown 'guess'"):
        obtain(worse, log=lambda line: None)
