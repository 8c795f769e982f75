"""The committed book is current: every chapter notebook carries `paper` outputs stamped with the code that now
produces them, and every stored model the `paper` chapters load is fresh. nbval (smoke) compares the claim
cells but not whether the committed outputs came from today's library; a chapter whose code changed after its
last `paper` run, or a stored model whose job changed after training, fails here with the command that fixes it."""

from pathlib import Path

import pytest

from backprop2lib.run import is_stale
from backprop2lib.run.runner import NOTEBOOK_GLOB
from backprop2lib.store import stale_models

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(NOTEBOOK_GLOB))


def test_there_are_chapters_to_check():
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_stamped_in_paper_with_the_current_code(path):
    assert not is_stale(path, profile="paper"), (
        f"{path.name}: its committed outputs are not from the current code in the paper profile; re-run it with "
        f"`python -m backprop2lib.run notebooks/{path.name} --profile paper` and commit the outputs")


def test_every_stored_paper_model_is_fresh():
    stale = [f"{spec.name} ({state})" for spec, state in stale_models("paper")]
    assert not stale, (f"stored models not fresh: {', '.join(stale)}; retrain them with "
                       f"`python -m backprop2lib.store train --profile paper` (default: every stale one) and commit trained/")
