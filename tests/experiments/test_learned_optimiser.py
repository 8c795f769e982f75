"""The learned-optimiser chapter's driver: families draw disjoint instances, tables and verdicts; its
settings per profile, each section at a tiny size, run(), the tables and the claim checks."""

import dataclasses
import os

import numpy as np
import pytest
import torch

from backprop2lib.experiments import learned_optimiser as ch6
from backprop2lib.experiments.learned_optimiser import (Generalisation, MNISTResults, PaperComparison,
                                                        QuadraticResults, Results, Settings, adam_steps_to_match,
                                                        comparison, mnist_family, quadratic_family, results_rows,
                                                        verdict)
from backprop2lib.learned import LearnedOptimiserConfig, MetaTrainConfig
from backprop2lib.optim import Curve
from backprop2lib.profiles import Profile
from backprop2lib.stats import compare


def _curve(name, losses):
    losses = np.asarray(losses, dtype=float)
    return Curve(name, losses, np.full(losses.shape[1], -1))


def _rows(*tensors):
    """Every instance (row) of the tensors as bytes, to count distinct instances across sets."""
    return [t[i].numpy().tobytes() for t in tensors for i in range(t.shape[0])]


def test_seeds_give_disjoint_instance_sets():
    quad = quadratic_family()
    sets = [quad.train(8)(episode).W for episode in range(5)]
    sets += [quad.validation(8).W, quad.tuning(8).W, quad.test(8).W]
    rows = _rows(*sets)
    assert len(rows) == 64 and len(set(rows)) == 64  # no instance in two sets, nor twice in one
    assert torch.equal(quad.test(8).W, quad.test(8).W)  # and the test set is drawn the same every time


def test_mnist_sets_start_from_different_nets_and_train_on_disjoint_images():
    mnist = mnist_family(hidden=(40,))
    train, val, tuning, test = mnist.train(2)(0), mnist.validation(2), mnist.tuning(2), mnist.test(2)
    assert test.model.sizes == (784, 40, 10)
    assert len(set(_rows(train.theta0, val.theta0, tuning.theta0, test.theta0))) == 8
    # meta-training on the train split's 3000 images, validation and tuning on the validation
    # split's 1000, test on the test split's 1000: no image is in two of these pools
    assert (train.images.x.shape[0], val.images.x.shape[0], test.images.x.shape[0]) == (3000, 1000, 1000)
    assert torch.equal(tuning.images.x, val.images.x)
    pools = [set(_rows(p.images.x)) for p in (train, val, test)]
    assert not (pools[0] & pools[1]) and not (pools[0] & pools[2]) and not (pools[1] & pools[2])


def test_verdict_uses_the_paired_difference():
    base = np.linspace(1.0, 2.0, 50)
    a = _curve("LSTM", [base, base - 0.1])  # consistently 0.1 lower at step 1
    b = _curve("Adam", [base, base])
    assert verdict(a, b, 1) == "lower" and verdict(b, a, 1) == "higher"
    noisy = _curve("noisy", [base, base + np.where(np.arange(50) % 2, 0.1, -0.1)])
    assert verdict(noisy, b, 1) == "not distinguishable"
    # unpaired, the same 0.1 is lost in the spread of the instances (0.29): pairing is the test
    assert compare(a.at(1), b.at(1), paired=False).verdict == "not distinguishable"


def test_comparison_leaves_out_diverged_instances_and_checks_its_runs():
    base = np.linspace(1.0, 2.0, 50)
    lower = base - 0.1
    lower[[3, 9]] = np.nan  # two instances diverged by step 1
    a = Curve("LSTM", np.stack([base, lower]), np.where(np.isin(np.arange(50), [3, 9]), 1, -1))
    b = _curve("Adam", [base, base])
    c = comparison(a, b, 1)
    assert c.verdict == "lower" and c.paired
    assert (c.difference.n, c.difference.n_diverged) == (48, 2)
    assert c.difference.mean == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="same instances"):
        verdict(a, _curve("Adam", [base[:10], base[:10]]), 1)
    with pytest.raises(ValueError, match="different problems"):
        verdict(Curve("x", a.losses, problem="quadratic"), Curve("y", b.losses, problem="MNIST"), 1)
    with pytest.raises(ValueError, match="step"):
        verdict(a, b, 5)


def test_results_rows_ratio_and_steps_to_match():
    adam = _curve("Adam", [[4.0, 4.0], [2.0, 2.0], [1.0, 1.0]])
    lstm = _curve("LSTM", [[4.0, 4.0], [1.5, 1.5], [0.5, 0.5]])
    rows = results_rows({"LSTM": lstm, "Adam": adam}, [1, 2, 5])
    assert rows[0][0] == "LSTM" and rows[0][2] == "0.75" and rows[0][4] == "0.50"
    assert rows[0][5:7] == ["–", "–"] and rows[0][-1] == "0"
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 1) == 2
    assert adam_steps_to_match({"LSTM": lstm, "Adam": adam}, "LSTM", 2) is None


# ------------------------------------------------------------------------------------ settings

def test_settings_per_profile_are_the_notebooks_cfg():
    smoke, paper, full = (Settings.for_profile(p) for p in ("smoke", "paper", "full"))
    sizes = ("quad_episodes", "quad_instances", "quad_test", "mnist_episodes", "mnist_instances",
             "mnist_gru_episodes", "mnist_test", "mnist_horizon", "shift_test", "shift_horizon", "tuning_instances",
             "shift_tuning_instances")
    # the values of the cfg dict the notebook held before it had a driver
    assert [getattr(smoke, n) for n in sizes] == [60, 64, 200, 2, 1, 2, 4, 40, 4, 20, 4, 4]
    assert [getattr(paper, n) for n in sizes] == [150, 128, 200, 50, 1, 20, 100, 200, 100, 100, 10, 5]
    # full meta-trains longer and is otherwise paper
    assert (full.quad_episodes, full.mnist_episodes, full.mnist_gru_episodes) == (1000, 10000, 10000)
    assert dataclasses.replace(full, quad_episodes=150, mnist_episodes=50, mnist_gru_episodes=20,
                               profile="paper") == paper
    for s in (smoke, paper):
        assert s.lr_grid == (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
        assert (s.meta_lr, s.validate_every, s.quad_validation_instances,
                s.quad_tuning_instances) == (3e-3, 10, 100, 100)
        assert (s.quad_horizon, s.quad_eval_steps, s.mnist_validation_instances) == (100, 200, 4)
        assert s.shifts == (("40 units", (40,), "sigmoid"), ("2 layers", (20, 20), "sigmoid"), ("ReLU", (20,), "relu"))
    assert smoke.mnist_steps == [40] and paper.mnist_steps == [100, 200]
    assert Settings.for_profile(Profile("smoke")) == smoke
    with pytest.raises(ValueError, match="unknown profile"):
        Settings.for_profile("huge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.quad_episodes = 1


def test_settings_follow_the_environment_and_name_checkpoints_by_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKPROP2_PROFILE", "smoke")
    monkeypatch.delenv("BACKPROP2_CHECKPOINT_DIR", raising=False)
    assert Settings.for_profile(None) == Settings.for_profile("smoke")
    assert Settings.for_profile(None).checkpoint("mnist_lstm") is None
    monkeypatch.setenv("BACKPROP2_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.delenv("BACKPROP2_PROFILE")
    paper = Settings.for_profile(None)
    assert paper.profile == "paper" and paper.checkpoint_dir == str(tmp_path)
    assert paper.checkpoint("mnist_lstm") == os.path.join(str(tmp_path), "06_mnist_lstm_paper.pt")


def test_settings_build_the_notebooks_optimisers_and_meta_training():
    # the configurations the notebook built (a checkpoint written by it must still be accepted)
    s = Settings.for_profile("paper")
    assert s.optimiser_config("quadratic", "gru") == LearnedOptimiserConfig(cell="gru", preprocess=None,
                                                                            output_scale=1.0)
    assert s.optimiser_config("mnist", "lstm") == LearnedOptimiserConfig()  # p = 10, output scale 0.1
    assert s.meta_train_config(50) == MetaTrainConfig(episodes=50, meta_lr=3e-3, validate_every=10)


# ------------------------------------------------------------------------------------ sections at a tiny size

TINY = dataclasses.replace(
    Settings.for_profile("smoke"), checkpoint_dir=None,
    episode_length=10, unroll=5, validate_every=2, lr_grid=(0.01, 0.1, 1.0),
    quad_episodes=3, quad_instances=4, quad_validation_instances=4, quad_tuning_instances=4, quad_horizon=10,
    quad_test=8, quad_eval_steps=20,
    mnist_episodes=2, mnist_gru_episodes=1, mnist_validation_instances=2, tuning_instances=2, mnist_test=3,
    mnist_horizon=12, mnist_report_steps=(5, 12),
    shifts=(("40 units", (40,), "sigmoid"), ("ReLU", (20,), "relu")), shift_test=3, shift_horizon=6,
    shift_tuning_instances=2,
)
BASELINES = ["SGD", "NAG", "RMSprop", "Adam"]
CLAIMS = ["The LSTM beats every tuned baseline on held-out quadratics at step 100 (paired 95% CI)",
          "No learned-optimiser test instance diverged on quadratics or MNIST",
          "The tuned quadratic learning rates are inside the grid"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="module")
def results(checkpoints) -> Results:
    return ch6.run(dataclasses.replace(TINY, checkpoint_dir=str(checkpoints)))


def _table_rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_run_returns_every_section_and_keeps_checkpoints(results, checkpoints):
    assert [f.name for f in dataclasses.fields(Results)] == ["settings", "quadratics", "mnist", "generalisation",
                                                              "paper"]
    assert isinstance(results.quadratics, QuadraticResults) and isinstance(results.mnist, MNISTResults)
    assert isinstance(results.generalisation, Generalisation) and isinstance(results.paper, PaperComparison)
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"06_{n}_smoke.pt" for n in
                                                              ("mnist_gru", "mnist_lstm", "quadratic_gru",
                                                               "quadratic_lstm")]
    quad = results.quadratics
    assert [len(quad.training[c].episode_losses) for c in ("LSTM", "GRU")] == [3, 3]
    assert [(n, c.n_instances, c.n_steps) for n, c in quad.curves.items()] == [
        (n, 8, 20) for n in ["LSTM", "GRU", *BASELINES]]
    assert {n: c.grid for n, c in quad.choices.items()} == {n: (0.01, 0.1, 1.0) for n in BASELINES}
    assert [(len(r.episode_losses), r.optimisee_steps) for r in results.mnist.training.values()] == [(2, 20), (1, 10)]
    # a section gives the same numbers alone (and without checkpoints) as inside run()
    alone = ch6.compare_on_quadratics(TINY)
    for name, curve in quad.curves.items():
        np.testing.assert_array_equal(alone.curves[name].losses, curve.losses)


def test_quadratic_tables(results):
    quad = results.quadratics
    rows = _table_rows(ch6.baselines_table(quad))
    assert [r[0] for r in rows] == BASELINES
    assert [r[1] for r in rows] == [f"{quad.choices[n].best:g}" for n in BASELINES]
    table = ch6.quadratic_table(quad)
    assert table.splitlines()[0] == "| optimiser | loss at 10 | ÷ Adam | loss at 20 | ÷ Adam | diverged |"
    rows = _table_rows(table)
    assert [r[0] for r in rows] == ["LSTM", "GRU", *BASELINES]
    lstm, adam = quad.curves["LSTM"].summary(20).mean, quad.curves["Adam"].summary(20).mean
    assert rows[0][4] == f"{lstm / adam:.2f}" and rows[-1][2] == "1.00"


def test_mnist_table_puts_the_gru_last_up_to_its_step(results):
    mnist = results.mnist
    assert (mnist.steps, mnist.gru_step, mnist.gru.n_steps) == ((5, 12), 10, 10)
    rows = _table_rows(ch6.mnist_table(mnist))
    assert [r[0] for r in rows] == ["LSTM", *BASELINES, "GRU"]
    assert rows[-1][3:5] == ["–", "–"] and rows[0][3] != "–"  # the GRU ran to step 10, not 12
    assert all(c.n_instances == 3 for c in mnist.all_curves.values())


def test_generalisation_and_paper_tables(results):
    shifts = results.generalisation
    rows = _table_rows(ch6.generalisation_table(shifts))
    assert [r[:2] for r in rows] == [[label, n] for label in ("40 units", "ReLU") for n in ["LSTM", *BASELINES]]
    assert shifts.curves["40 units"]["LSTM"].losses.shape == (7, 3)  # steps 0..6, 3 networks
    # MNIST ran for 12 steps: no MNIST row; the others at their last step
    paper = results.paper
    assert [(r.setting, r.step) for r in paper.rows] == [("quadratic, 100", 20), ("40 units, 100", 6),
                                                         ("ReLU, 100", 6)]
    relu = paper.rows[-1]
    curves = shifts.curves["ReLU"]
    assert relu.ratio == curves["LSTM"].summary(6).mean / curves["Adam"].summary(6).mean
    assert relu.verdict == verdict(curves["LSTM"], curves["Adam"], 6)
    assert _table_rows(ch6.paper_table(paper))[-1] == ["ReLU, 100", f"{2.5 / 0.37:.2f}", f"{relu.ratio:.2f} (step 6)",
                                                       relu.verdict]


def test_cost_table_has_one_row_per_meta_training_run(results):
    rows = _table_rows(ch6.cost_table(results.quadratics, results.mnist))
    assert [r[0] for r in rows] == ["quadratic, LSTM", "quadratic, GRU", "MNIST, LSTM", "MNIST, GRU"]
    assert [r[3] for r in rows] == ["3", "3", "2", "1"] and [r[4] for r in rows] == ["120", "120", "20", "10"]


def test_comparisons_text(results):
    lines = ch6.comparisons_text(results).splitlines()
    assert len(lines) == 2 + 2 + 4 + 3
    assert lines[0].startswith("MNIST, step 5: LSTM vs tuned Adam: ")
    assert "tuned Adam needs" in lines[1] and lines[1].endswith("steps to reach the LSTM's mean loss at step 12")
    assert [line.split(":")[0] for line in lines[2:4]] == ["40 units, step 6", "ReLU, step 6"]
    assert lines[4] == ("quadratics, step 20 (beyond the training horizon): LSTM vs tuned SGD: "
                        + verdict(results.quadratics.curves["LSTM"], results.quadratics.curves["SGD"], 20))
    assert lines[8].startswith("quadratics, step 10: GRU vs LSTM: ")
    assert lines[9].startswith("MNIST, step 10: GRU vs LSTM: ")
    edge = [f"{where}: {n}" for where, ch in [("MNIST", results.mnist.choices), *results.generalisation.choices.items()]
            for n, c in ch.items() if c.at_edge]
    assert lines[10] == f"tuned learning rates at the grid edge: {edge or 'none'}"


def test_check_claims_prints_the_notebooks_lines(results, capsys):
    claims = ch6.check_claims(results)
    lines = capsys.readouterr().out.splitlines()
    assert [s for s, _ in claims.verdicts] == CLAIMS
    assert lines == ["quadratic test instances: 8; baselines: SGD, NAG, RMSprop, Adam",
                     *(f"{s}: {v}" for s, v in claims.verdicts)]
    quad = results.quadratics
    assert dict(claims.verdicts)[CLAIMS[2]] == (not any(c.at_edge for c in quad.choices.values()))


def test_check_claims_fails_when_a_learned_run_diverged(results, capsys):
    lstm = results.mnist.curves["LSTM"]
    diverged = dataclasses.replace(lstm, diverged_at=np.where(np.arange(lstm.n_instances) == 0, 3, -1))
    wrong = dataclasses.replace(results, mnist=dataclasses.replace(results.mnist,
                                                                   curves={**results.mnist.curves, "LSTM": diverged}))
    claims = ch6.check_claims(wrong)
    assert dict(claims.verdicts)[CLAIMS[1]] is False
    with pytest.raises(AssertionError, match="No learned-optimiser test instance diverged"):
        claims.assert_all()
