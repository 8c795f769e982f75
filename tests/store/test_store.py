"""The store of trained models: round trip, stamps, refusals, resuming, and the runner's stale listing."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

import backprop2lib.learned.jobs as jobs
from backprop2lib.learned.meta_train import meta_train
from backprop2lib.run.notebooks import PACKAGE_ROOT
from backprop2lib.store import (ModelSpec, StoreError, code_modules, compute_stamp, load, model_paths, obtain,
                                registered_models, save, stale_models, status)
from backprop2lib.store.registry import partial_checkpoint, train_and_save

from .tiny_provider import tiny_spec


def quiet(_line):
    pass


def test_save_and_load_round_trip(tmp_path):
    spec = tiny_spec()
    assert status(spec, tmp_path) == "missing"
    stored = train_and_save(spec, tmp_path, progress=False, log=quiet)
    assert status(spec, tmp_path) == "fresh"
    loaded = load(spec, tmp_path)
    assert loaded.stamp == stored.stamp == compute_stamp(spec)
    assert loaded.state.keys() == stored.state.keys()
    assert all(torch.equal(loaded.state[k], stored.state[k]) for k in stored.state)
    assert loaded.record["evaluations"]["quadratic"]["steps"] == [0, 5, 10, 12]  # every 5th step and the last
    losses = loaded.record["evaluations"]["quadratic"]["losses"]  # an array kept in the .pt, named in the JSON
    assert isinstance(losses, np.ndarray) and losses.shape == (4, 5) and losses.dtype == np.float32
    assert np.array_equal(losses, stored.record["evaluations"]["quadratic"]["losses"])
    assert json.loads(model_paths(spec, tmp_path)[1].read_text())["record"]["evaluations"]["quadratic"]["losses"] == {
        "array": "record/evaluations/quadratic/losses", "shape": [4, 5], "dtype": "float32"}
    assert len(loaded.record["episode_losses"]) == 4 and loaded.record["best_episode"] in (1, 3)
    assert {"finished", "host", "device", "seconds", "threads"} <= set(loaded.info)
    assert "loaded from the store" in loaded.describe() and loaded.stamp[:12] in loaded.describe()
    assert not list((tmp_path / "partial").glob("*.pt"))  # the finished run's checkpoint is gone
    # obtain() loads it (no training) and says where it came from
    lines = []
    again = obtain(spec, tmp_path, progress=False, log=lines.append)
    assert torch.equal(again.state["head.weight"], stored.state["head.weight"]) and "loaded" in lines[0]


def test_a_changed_configuration_or_code_makes_the_model_stale(tmp_path, monkeypatch):
    spec = tiny_spec()
    train_and_save(spec, tmp_path, progress=False, log=quiet)
    other = tiny_spec(training_seed=2)
    assert status(other, tmp_path) == "stale"
    with pytest.raises(StoreError, match="another configuration"):
        load(other, tmp_path)
    # code: a copy of the library where the optimiser's file changed by one byte
    copy = tmp_path / "lib" / "backprop2lib"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr("backprop2lib.run.notebooks.PACKAGE_ROOT", copy)
    assert compute_stamp(spec) == load(spec, tmp_path).stamp  # the same files: the same stamp
    for unrelated in ("run/runner.py", "store/registry.py", "experiments/learned_optimiser.py", "stats.py"):
        (copy / unrelated).write_text((copy / unrelated).read_text() + "\n# edited\n")
    assert compute_stamp(spec) == load(spec, tmp_path).stamp  # not the model's code
    path = copy / "learned" / "optimiser.py"
    path.write_text(path.read_text() + "\n# edited\n")
    assert status(spec, tmp_path) == "stale"
    with pytest.raises(StoreError, match="stale, trained from other code"):
        load(spec, tmp_path)
    assert "backprop2lib/learned/optimiser.py" in code_modules(spec.module)


def test_corrupt_or_half_missing_files_are_refused_with_their_name(tmp_path):
    spec = tiny_spec()
    train_and_save(spec, tmp_path, progress=False, log=quiet)
    pt, js = model_paths(spec, tmp_path)
    good_pt = pt.read_bytes()
    pt.write_bytes(b"not a model")
    with pytest.raises(StoreError, match=str(pt.name)):
        load(spec, tmp_path)
    pt.write_bytes(good_pt)
    js.write_text("{ truncated")
    assert status(spec, tmp_path) == "corrupt"
    with pytest.raises(StoreError, match=str(js.name)):
        load(spec, tmp_path)
    js.unlink()
    assert status(spec, tmp_path) == "corrupt"
    with pytest.raises(StoreError, match="missing"):
        load(spec, tmp_path)
    # a .pt from another model under this name: the stamps disagree
    train_and_save(spec, tmp_path, progress=False, log=quiet)
    other = tiny_spec("t-other", training_seed=3)
    train_and_save(other, tmp_path, progress=False, log=quiet)
    shutil.copy(model_paths(other, tmp_path)[0], pt)
    with pytest.raises(StoreError, match="does not match"):
        load(spec, tmp_path)


def test_an_interrupted_job_resumes_to_identical_parameters(tmp_path, monkeypatch):
    spec = tiny_spec(episodes=6)
    straight = train_and_save(spec, tmp_path / "straight", progress=False, log=quiet)

    def interrupted(*args, **kwargs):  # the process dies after 3 episodes, its checkpoint on disk
        meta_train(*args, **kwargs, stop_after=3)
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "meta_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_and_save(spec, tmp_path / "resumed", progress=False, log=quiet)
    checkpoint = partial_checkpoint(spec, compute_stamp(spec), tmp_path / "resumed")
    assert checkpoint.exists() and status(spec, tmp_path / "resumed") == "missing"
    monkeypatch.setattr(jobs, "meta_train", meta_train)
    lines = []
    resumed = train_and_save(spec, tmp_path / "resumed", progress=False, log=lines.append)
    assert any("resuming" in line for line in lines)
    assert all(torch.equal(resumed.state[k], straight.state[k]) for k in straight.state)
    assert resumed.record["episode_losses"] == straight.record["episode_losses"]
    assert np.array_equal(resumed.record["evaluations"]["quadratic"]["losses"],
                          straight.record["evaluations"]["quadratic"]["losses"])
    assert not checkpoint.exists()


def test_a_checkpoint_of_other_code_is_never_resumed(tmp_path):
    spec = tiny_spec()
    stale = partial_checkpoint(spec, "0" * 64, tmp_path)
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from other code")
    lines = []
    train_and_save(spec, tmp_path, progress=False, log=lines.append)
    assert not stale.exists() and any("other code" in line for line in lines)


def test_smoke_trains_afresh_and_never_writes(tmp_path):
    spec = replace(tiny_spec(), persist=False)
    first = obtain(spec, tmp_path, progress=False, log=quiet)
    assert not any(tmp_path.iterdir()) and first.source.startswith("trained now")
    assert all(not s.persist for s in registered_models("smoke"))
    assert all(s.persist for s in registered_models("paper"))


def test_the_catalogue_and_its_errors():
    paper = registered_models("paper")
    names = [s.name for s in paper]
    assert len(names) == len(set(names))
    mnist = [s for s in paper if "-mnist-" in s.name]
    assert len(mnist) == 12 and all(s.config["meta"]["episodes"] * s.config["meta"]["episode_length"] >= 100_000
                                   for s in mnist)  # 4 recipes × 3 seeds, at least 10^5 optimisee steps per run
    assert {s.config["training_seed"] for s in mnist} == {0, 1, 2}
    assert all(s.config["validation_instances"] >= 20 for s in mnist)
    with pytest.raises(ValueError, match="profile"):
        registered_models("huge")
    with pytest.raises(ValueError, match="name"):
        ModelSpec("a/b", "06", "backprop2lib.learned.jobs", {})
    with pytest.raises(ValueError, match="config"):
        ModelSpec("a", "06", "backprop2lib.learned.jobs", {"x": object()})


def test_the_runner_lists_and_the_store_command_reports_stale_models(tmp_path, monkeypatch, capsys):
    from backprop2lib.run.__main__ import main as run_main
    from backprop2lib.store.__main__ import main as store_main

    monkeypatch.setenv("BACKPROP2_STORE", str(tmp_path))  # an empty store: every paper model is missing
    assert stale_models("paper") and all(state == "missing" for _, state in stale_models("paper"))
    import nbformat

    nb_dir = tmp_path / "repo" / "notebooks"
    nb_dir.mkdir(parents=True)
    for name in ("01_a.ipynb", "06_b.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), nb_dir / name)
    assert run_main(["--list-stale", "--profile", "paper", "--root", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("01_a.ipynb") and out[1].endswith("06_b.ipynb")  # unstamped: stale
    # only the selected chapters' models (chapter 5's are not listed: no 05 notebook is selected)
    assert out[2:] == [f"trained model {spec.name} (missing)" for spec in registered_models("paper")
                       if spec.chapter in ("01", "06")]
    # a selection without chapter 6 has no stored models to list (or to train with --stale)
    assert run_main(["--list-stale", "--profile", "paper", str(nb_dir / "01_a.ipynb")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(nb_dir / "01_a.ipynb")]
    assert store_main(["stale", "--profile", "paper"]) == 0
    assert "06-mnist-lstm-seed0-paper (missing)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        store_main(["train", "no-such-model", "--profile", "paper"])
