"""Chapter 5's store jobs: the catalogue's configurations round-trip, and a smoke cell trains for real."""

from dataclasses import asdict

import pytest
import torch

from backprop2lib.recognition import catalogue, jobs
from backprop2lib.recognition.few_shot import MOVED
from backprop2lib.store import obtain


@pytest.mark.parametrize("profile", ["smoke", "paper", "full"])
def test_each_profile_has_its_cells_and_configurations_round_trip(profile):
    specs = catalogue.trained_models(profile)
    z = catalogue.SIZES[profile]
    assert len(specs) == len(z["sizes"]) * z["draws"]
    assert all(s.chapter == "05" and s.persist == (profile != "smoke") for s in specs)
    assert jobs.experiment_from_config(specs[0].config["experiment"]) == catalogue.code_experiment(profile)
    assert len({s.name for s in specs}) == len(specs)
    with pytest.raises(ValueError, match="profile"):
        catalogue.trained_models("huge")


def test_a_smoke_cell_trains_every_seed_and_every_baseline(capsys):
    spec = catalogue.trained_models("smoke")[1]  # n = 5
    stored = obtain(spec, log=lambda line: None)
    record = stored.record
    assert len(record["code_accuracy"]) == 3 and all(0 <= a <= 1 for a in record["code_accuracy"])
    names = set(catalogue.BASELINE_NAMES)
    assert set(record["baselines"]) == names | {n + MOVED for n in names}
    rec = catalogue.code_experiment("smoke").reconstructor
    assert stored.state["w"].shape == (30, rec.mlp.n_params) and stored.state["mu"].shape == (30, 8)
    assert len(record["meta_loss"]) == catalogue.SIZES["smoke"]["iterations"]
    bad = type(spec)(spec.name, spec.chapter, spec.module, {**spec.config, "baselines": ["oracle"]},
                     persist=False)
    with pytest.raises(ValueError, match="baselines: unknown oracle"):
        obtain(bad, log=lambda line: None)
