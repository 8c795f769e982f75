"""Continuing a stored meta-training run to a longer budget: the longer run's first half is the stored run, the
continuation resumes exactly there, and runs that cannot be continued are refused by name."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from backprop2lib.learned.catalogue import LONGER, recipe_of, trained_models
from backprop2lib.learned.extend import continuation
from backprop2lib.store import compute_stamp
from backprop2lib.store.registry import partial_checkpoint, train_and_save


def quiet(_line):
    pass


def _pair(seed=0):
    specs = {(recipe_of(s), s.config["training_seed"]): s for s in trained_models("smoke")
             if s.config["family"]["problem"] == "mnist"}
    short, longer = specs[("LSTM", seed)], specs[(LONGER, seed)]
    assert longer.config["meta"]["episodes"] == 2 * short.config["meta"]["episodes"]
    return replace(short, persist=True), replace(longer, persist=True)


def test_a_continued_run_is_the_stored_run_then_its_second_half(tmp_path):
    short, longer = _pair()
    stored = train_and_save(short, tmp_path, progress=False, log=quiet)
    payload = continuation(longer, stored)
    path = partial_checkpoint(longer, compute_stamp(longer), tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    continued = train_and_save(longer, tmp_path, progress=False, log=quiet)
    n = len(stored.record["episode_losses"])
    r, s = continued.record, stored.record
    assert len(r["episode_losses"]) == 2 * n and r["episode_losses"][:n] == s["episode_losses"]
    assert r["validation"][:len(s["validation"])] == s["validation"]
    assert r["optimisee_steps"] == 2 * s["optimisee_steps"]
    # the premise: an uninterrupted longer run's first half is the stored run (episode e's instances depend on e)
    straight = train_and_save(longer, tmp_path / "straight", progress=False, log=quiet)
    np.testing.assert_allclose(straight.record["episode_losses"][:n], s["episode_losses"], rtol=1e-5)
    # the second half differs from the uninterrupted run only through Adam's restarted moments: same length, finite
    assert np.isfinite(r["episode_losses"]).all() and len(straight.record["episode_losses"]) == 2 * n


def test_runs_that_cannot_be_continued_are_refused(tmp_path):
    short, longer = _pair()
    stored = train_and_save(short, tmp_path, progress=False, log=quiet)
    not_last = replace(stored, record={**stored.record, "best_episode": -5})
    with pytest.raises(ValueError, match="cannot be continued"):
        continuation(longer, not_last)
    other_seed = _pair(seed=1)[1]
    with pytest.raises(ValueError, match="not the same run with fewer episodes"):
        continuation(other_seed, stored)
    with pytest.raises(ValueError, match="not the same run"):
        continuation(short, stored)  # not more episodes
