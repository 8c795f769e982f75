import numpy as np
import pytest
import torch

from backprop2lib.claims import Claims
from backprop2lib.profiles import ENV_VAR, Profile, resolve_profile
from backprop2lib.runtime import pick_device, seed_everything
from backprop2lib.stats import summarise


def test_profile_from_argument_then_environment_then_default(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_profile(None).name == "paper"
    monkeypatch.setenv(ENV_VAR, "smoke")
    assert resolve_profile(None).name == "smoke"
    assert resolve_profile("full").name == "full"  # the argument (papermill parameter) wins


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke, paper, full"):
        resolve_profile("huge")
    monkeypatch.setenv(ENV_VAR, "tiny")
    with pytest.raises(ValueError, match=f"environment variable {ENV_VAR}"):
        resolve_profile(None)


def test_select():
    assert Profile("smoke").select(smoke=1, paper=2) == 1
    assert Profile("full").select(smoke=1, paper=2) == 2
    assert Profile("full").select(smoke=1, paper=2, full=3) == 3
    with pytest.raises(ValueError, match="unknown profile"):
        Profile("paper").select(papr=1)
    with pytest.raises(ValueError, match="no value for profile 'paper'"):
        Profile("paper").select(smoke=1)


def test_seed_everything_reproduces_every_generator():
    seed_everything(3)
    a = (torch.randn(5), np.random.rand(3), __import__("random").random())
    seed_everything(3)
    b = (torch.randn(5), np.random.rand(3), __import__("random").random())
    torch.testing.assert_close(a[0], b[0])
    assert np.array_equal(a[1], b[1]) and a[2] == b[2]
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_pick_device(monkeypatch):
    monkeypatch.delenv("BACKPROP2_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_summarise_counts_diverged_values_instead_of_averaging_them():
    s = summarise([1.0, 3.0, float("nan"), float("inf")])
    assert s.mean == 2.0 and s.n == 2 and s.n_diverged == 2
    assert "2 diverged" in str(s)
    assert abs(s.ci95 - 1.959963984540054 * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)) < 1e-12
    assert summarise([np.nan]).n == 0
    with pytest.raises(ValueError, match="empty"):
        summarise([])


def test_claims_print_verdicts_and_fail_loudly(capsys):
    claims = Claims()
    claims.check("A holds", 1 < 2)
    claims.check("B holds", 2 < 1)
    assert capsys.readouterr().out == "A holds: True\nB holds: False\n"
    with pytest.raises(AssertionError, match="B holds"):
        claims.assert_all()
    with pytest.raises(ValueError, match="twice"):
        claims.check("A holds", True)


def test_summarise_counts_blown_up_values_as_diverged():
    s = summarise([1.0, 2.0, 3.0, 1e30], diverged_above=1e6)
    assert s.mean == 2.0 and s.n_diverged == 1
    with pytest.raises(ValueError, match="diverged_above"):
        summarise([1.0], diverged_above=0)
