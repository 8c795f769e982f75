"""The line-search sweep (experiments/line_search_sweep.py): its settings per profile and step budget, the
published entries, the minibatch streams, batched repeats against one-at-a-time runs, the table, the
verdicts and claims (which must flip when the numbers do), and clear errors for bad settings."""

import dataclasses

import numpy as np
import pytest
import torch

from backprop2lib.experiments import line_search_sweep as sweep
from backprop2lib.experiments.line_search_sweep import (HEADLINE_GRID, PUBLISHED, PUBLISHED_GRID, RepeatMinibatches,
                                                        Settings, Setup, SweepResult, check_claims, initial_parameters,
                                                        line_search_sweep, reproduction, reproduction_table,
                                                        sweep_data, sweep_table, train_setup)

TINY = Settings(repeats=3, reference_steps=40, swept=HEADLINE_GRID, record_every=10, timing_steps=20,
                timing_record_every=5, n_train=120, n_test=80, best=Setup(units=6), dtype="float64")

CLAIMS = [
    "No swept setting ends with a test error distinguishably lower than backprop2's best "
    "(2 x 20 Gaussian units, batches of 50)",
    "ReLU units end with a higher test error than Gaussian units",
    "Logistic units end with a higher test error than Gaussian units",
    "Full-batch steps, given as many steps as their cost allows in the same time, end with a higher test error "
    "than batches of 50",
]


@pytest.fixture(scope="module")
def result() -> SweepResult:
    return line_search_sweep(TINY, device="cpu")


def _without(text: str, parts) -> str:
    for part in parts:
        text = text.replace(part, "")
    return text


def with_errors(result: SweepResult, errors: dict) -> SweepResult:
    """The result with the final errors of some rows replaced: {(parameter, value): errors}."""
    rows = tuple(dataclasses.replace(r, errors=np.asarray(errors[(r.parameter, r.value)], dtype=float))
                 if (r.parameter, r.value) in errors else r for r in result.rows)
    return dataclasses.replace(result, rows=rows)


# ------------------------------------------------------------------------------------------------ settings

def test_profiles_full_is_the_published_scale_paper_and_smoke_the_headline_comparisons():
    full, paper, smoke = (Settings.for_profile(p) for p in ("full", "paper", "smoke"))
    assert full.repeats == 20 and full.reference_steps == 10_000 and (full.n_train, full.n_test) == (2500, 2500)
    assert full.swept == PUBLISHED_GRID and full.best == Setup()
    swept_values = sum(len(values) for _, values in PUBLISHED_GRID)
    assert len(full.rows()) == 1 + swept_values - len(PUBLISHED_GRID) == 39  # each grid holds the best's value once
    assert dict(PUBLISHED_GRID)["alpha"] == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert [(p, v) for p, v, _ in paper.rows()] == [("", None), ("batch_size", None), ("activation", "sigmoid"),
                                                    ("activation", "relu")]
    assert paper.reference_steps == full.reference_steps and paper.repeats < full.repeats
    assert smoke.reference_steps < paper.reference_steps and smoke.repeats <= paper.repeats
    with pytest.raises(ValueError, match="valid profiles: smoke, paper, full"):
        Settings.for_profile("huge")


def test_step_budget_charges_each_step_for_its_points():
    s = Settings.for_profile("full")
    assert s.steps_for(Setup()) == 10_000
    for batch, points in ((25, 25), (300, 300), (None, 2500), (5000, 2500)):
        expected = round(10_000 * (300 + 50) / (300 + points))
        assert s.steps_for(Setup(batch_size=batch)) == expected
    assert s.steps_for(Setup(batch_size=None)) == 1250
    # other parameters cost the same per step
    assert s.steps_for(Setup(activation="relu", layers=3, max_its=20)) == 10_000


def test_bad_settings_name_the_argument():
    good = dict(repeats=2, reference_steps=10, swept=HEADLINE_GRID, record_every=5, timing_steps=0)
    for change, match in ((dict(repeats=0), "repeats: expected an int >= 1"),
                          (dict(reference_steps=2.5), "reference_steps"),
                          (dict(record_every=0), "record_every"),
                          (dict(timing_steps=-1), "timing_steps"),
                          (dict(swept=(("bogus", (1,)),)), "swept: bogus = 1 is not a valid setting"),
                          (dict(swept=(("alpha", (1.5,)),)), r"swept: alpha = 1.5 .*alpha: expected a number in \(0, 1\)"),
                          (dict(swept=(("alpha", ()),)), "swept: parameter 'alpha' has no values"),
                          (dict(swept=(("alpha", (0.2,)), ("alpha", (0.3,)))), "listed twice"),
                          (dict(swept=5), "swept: expected"),
                          (dict(dtype="float16"), "dtype"),
                          (dict(wall_seconds=0.0), "wall_seconds"),
                          (dict(overhead_points=-1.0), "overhead_points"),
                          (dict(best="best"), "best: expected a Setup")):
        with pytest.raises(ValueError, match=match):
            Settings(**{**good, **change})
    for change, match in ((dict(activation="cauchy"), "activation: unknown 'cauchy'; valid: relu"),
                          (dict(units=0), "units"), (dict(layers=1.5), "layers"), (dict(beta=1.0), "beta"),
                          (dict(max_its=0), "max_its"), (dict(batch_size=0), "batch_size"),
                          (dict(replace="yes"), "replace"), (dict(log10_s0=float("inf")), "log10_s0")):
        with pytest.raises(ValueError, match=match):
            Setup(**change)
    with pytest.raises(ValueError, match="parameter: unknown 'num_units'"):
        Setup().varied("num_units", 5)
    with pytest.raises(ValueError, match="repeats: expected a non-empty list"):
        train_setup(Setup(), TINY, repeats=[], device="cpu")
    with pytest.raises(ValueError, match="n_steps"):
        train_setup(Setup(), TINY, n_steps=-1, device="cpu")


# ------------------------------------------------------------------------------------------ published data

def test_published_entries_give_the_quoted_numbers_as_mean_and_population_sd():
    best = PUBLISHED[("", None)]
    assert len(best.errors) == 20 and f"{best.mean:.3f} ± {best.std:.3f}" == best.quoted
    assert f"{np.std(best.errors, ddof=1):.3f}" != "0.054"  # the ± is the population sd, not the sample sd
    for key in (("activation", "relu"), ("activation", "sigmoid"), ("batch_size", None)):
        assert len(PUBLISHED[key].errors) == 20 and f"{PUBLISHED[key].mean:.2f}" == PUBLISHED[key].quoted


def test_reproduction_verdict_reads_the_published_runs():
    row = sweep.SweepRow("", None, Setup(), 10, np.array(PUBLISHED[("", None)].errors))
    assert reproduction(row).verdict == "not distinguishable"
    assert reproduction(dataclasses.replace(row, errors=row.errors + 0.2)).verdict == "higher"
    assert reproduction(dataclasses.replace(row, errors=row.errors - 0.1)).verdict == "lower"
    with pytest.raises(ValueError, match="published no number for alpha = 0.2"):
        reproduction(sweep.SweepRow("alpha", 0.2, Setup(alpha=0.2), 10, np.ones(3)))


# ------------------------------------------------------------------------------------------ data, batches

def test_data_is_the_legacy_draw_and_batches_are_per_repeat_streams():
    data = sweep_data(TINY)
    assert data.x_support.shape == (1, 120, 2) and data.y_query.shape == (1, 80, 3)
    assert data.x_support.dtype == torch.float64
    x = data.x_support[0]
    three = RepeatMinibatches(data, 50, True, [0, 1, 2], batch_seed=7, chunk=8)
    alone = RepeatMinibatches(data, 50, True, [1], batch_seed=7, chunk=8)
    later_first = RepeatMinibatches(data, 50, True, [0, 1, 2], batch_seed=7, chunk=8)
    late = later_first(30)  # another chunk first: random access gives the same batches
    assert torch.equal(later_first(3)[0], three(3)[0]) and torch.equal(late[0], three(30)[0])
    for k in (1, 9, 30):
        xb, yb = three(k)
        assert xb.shape == (3, 50, 2) and yb.shape == (3, 50, 3)
        assert torch.equal(xb[1], alone(k)[0][0])  # repeat 1 draws the same batch alone
        # every batch row is a training point with its own target
        match = (xb[0][:, None, :] == x[None]).all(-1)
        assert bool(match.any(1).all())
        assert torch.equal(yb[0], data.y_support[0][match.float().argmax(1)])
    assert not torch.equal(three(1)[0][0], three(1)[0][1]) and not torch.equal(three(1)[0], three(2)[0])
    distinct = RepeatMinibatches(data, 100, False, [0, 1], batch_seed=7)
    for k in (1, 2):
        rows = distinct(k)[0]
        assert all(torch.unique(rows[r], dim=0).shape[0] == 100 for r in range(2))
    with_replacement = RepeatMinibatches(data, 100, True, [0], batch_seed=7)(1)[0][0]
    assert torch.unique(with_replacement, dim=0).shape[0] < 100  # 100 draws from 120 points repeat some
    full = RepeatMinibatches(data, None, True, [0, 1], batch_seed=7)
    assert torch.equal(full(5)[0][1], x) and torch.equal(RepeatMinibatches(data, 500, True, [0], 7)(1)[0][0], x)
    assert torch.equal(full(0)[1][0], data.y_query[0])  # step 0: the test set


def test_starts_are_normal_and_shared_by_settings_with_the_same_network():
    model = Setup().model(2, 3)
    w = initial_parameters(model, [0, 1, 2], Settings.for_profile("full"))
    assert w.shape == (3, model.n_params) and w.dtype == torch.float32
    again = initial_parameters(Setup(activation="relu").model(2, 3), [2], Settings.for_profile("full"))
    assert torch.equal(again[0], w[2]) and not torch.equal(w[0], w[1])
    big = initial_parameters(model, range(40), Settings.for_profile("full"))
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05


# ------------------------------------------------------------------------------------------ runs

def test_batched_repeats_equal_one_at_a_time_runs():
    data = sweep_data(TINY)
    for setup in (TINY.best, TINY.best.varied("batch_size", None), TINY.best.varied("replace", False)):
        together = train_setup(setup, TINY, repeats=[0, 1, 2], data=data, device="cpu")
        for r in range(3):
            alone = train_setup(setup, TINY, repeats=[r], data=data, device="cpu")
            np.testing.assert_array_equal(alone.steps, together.steps)
            np.testing.assert_allclose(alone.losses[:, 0], together.losses[:, r], rtol=1e-9, atol=1e-12)


def test_training_lowers_the_test_error_within_the_budget(result):
    best = result.best
    assert best.n_steps == TINY.steps_for(TINY.best) == 40
    assert result.row("batch_size", None).n_steps == TINY.steps_for(TINY.best.varied("batch_size", None)) < 40
    curve = best.curve
    assert curve.losses.shape == (5, 3) and list(curve.steps) == [0, 10, 20, 30, 40]
    assert (curve.final < curve.losses[0]).all()  # from the N(0, 1) start the error falls
    np.testing.assert_array_equal(best.errors, curve.final)
    # every setting is recorded at the same modelled times: a costlier step, a shorter record interval
    full = result.row("batch_size", None).curve
    assert full.steps[1] == round(TINY.record_every * full.n_steps / TINY.reference_steps) < TINY.record_every


def test_time_reading_is_read_from_the_best_curve(result):
    t = result.timing  # 20 steps take far less than 3 s: the reading is a lower bound
    assert t.seconds == TINY.wall_seconds and not t.reached and t.steps == TINY.timing_steps == t.step_read
    np.testing.assert_array_equal(t.errors, result.best.curve.at(t.step_read))
    assert np.isfinite(t.single_error) and t.seconds_per_step > 0
    # a budget the timed run does reach: read at the last record within it, from the batched curve
    short = sweep.time_reading(dataclasses.replace(TINY, wall_seconds=1e-9), result.best.curve, device="cpu")
    assert short.reached and short.steps == 0 and short.step_read == 0
    np.testing.assert_array_equal(short.errors, result.best.curve.at(0))


# ------------------------------------------------------------------------------------------ tables, claims

def test_sweep_table_has_one_row_per_setting_and_the_published_numbers(result):
    lines = sweep_table(result).splitlines()
    assert len(lines) == 2 + len(TINY.rows()) + 1  # header, rule, settings, the wall-clock row
    body = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert list(body)[1:4] == ["batch_size = full", "activation = logistic", "activation = ReLU"]
    assert list(body)[0].startswith("best: 2×6 Gaussian")
    assert body["batch_size = full"].endswith("| 1.28 |") and body["activation = ReLU"].endswith("| 2.75 |")
    assert body["activation = logistic"].endswith("| 1.30 |") and lines[2].endswith("| 0.191 ± 0.054 |")
    assert "machine dependent" in lines[-1]
    rep = reproduction_table(result).splitlines()
    assert len(rep) == 2 + 4
    for line, row in zip(rep[2:], [r for r in result.rows if r.published is not None]):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[5] == reproduction(row).verdict
        reached = row.curve.steps_to_reach(row.published.mean)
        assert cells[6] == ("not within the budget" if reached is None else f"step {reached:,}")


def test_claims_follow_the_numbers(result, capsys):
    published_like = {("", None): [0.19, 0.2, 0.18], ("activation", "relu"): [2.7, 2.9, 2.8],
                      ("activation", "sigmoid"): [1.3, 1.25, 1.35], ("batch_size", None): [1.2, 1.3, 1.25]}
    good = with_errors(result, published_like)
    claims = check_claims(good)
    assert [s for s, _ in claims.verdicts] == CLAIMS and all(v for _, v in claims.verdicts)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{s}: True" for s in CLAIMS]
    fixed = ("backprop2", "2 x 20", "of 50")  # the published setting's own numbers; nothing measured
    assert not any(ch.isdigit() for line in printed for ch in _without(line, fixed))
    # ReLU better than Gaussian: the first two claims flip, the logistic one does not
    relu_wins = with_errors(good, {("activation", "relu"): [0.09, 0.1, 0.08]})
    v = dict(check_claims(relu_wins).verdicts)
    assert not v[CLAIMS[0]] and not v[CLAIMS[1]] and v[CLAIMS[2]] and v[CLAIMS[3]]
    # full batch no different from batches of 50: only its claim flips
    tie = with_errors(good, {("batch_size", None): [0.2, 0.17, 0.2]})
    v = dict(check_claims(tie).verdicts)
    assert not v[CLAIMS[3]] and v[CLAIMS[0]] and v[CLAIMS[1]] and v[CLAIMS[2]]
    # logistic as good as Gaussian
    v = dict(check_claims(with_errors(good, {("activation", "sigmoid"): [0.2, 0.18, 0.2]})).verdicts)
    assert not v[CLAIMS[2]] and v[CLAIMS[0]]
    # a diverged repeat is left out of the paired comparison, not averaged in
    v = dict(check_claims(with_errors(good, {("activation", "relu"): [np.nan, 2.9, 2.8]})).verdicts)
    assert v[CLAIMS[1]]


def test_claims_need_the_published_comparisons(result):
    only_best = dataclasses.replace(result, rows=result.rows[:2])
    with pytest.raises(ValueError, match="the claims need the rows activation = 'relu'"):
        check_claims(only_best)
    with pytest.raises(ValueError, match="no row alpha = 0.3; rows: best setting, batch_size = full"):
        result.row("alpha", 0.3)


def test_figure_has_one_tick_per_setting(result):
    import matplotlib.pyplot as plt

    fig = sweep.sweep_figure(result)
    right = fig.axes[1]
    assert [t.get_text() for t in right.get_xticklabels()] == [r.label for r in result.rows]
    plt.close(fig)


def test_findings_quote_every_published_row_with_its_reproduction_verdict(result):
    values = sweep.findings(result)
    assert values["ls_repeats"] == "3" and values["ls_steps"] == "40"
    for key, (parameter, value) in {"best": ("", None), "full_batch": ("batch_size", None),
                                    "logistic": ("activation", "sigmoid"), "relu": ("activation", "relu")}.items():
        row = result.row(parameter, value)
        assert values[f"ls_{key}_published"] == PUBLISHED[(parameter, value)].quoted
        assert values[f"ls_{key}"] == f"{row.errors.mean():.3g} ± {np.std(row.errors):.2g}"
        phrase = {"lower": "lower than", "higher": "higher than", "not distinguishable": "not distinguishable from"}
        assert values[f"ls_{key}_vs_published"] == phrase[reproduction(row).verdict]
    t = result.timing
    assert values["ls_time_steps"] == f"{t.steps:,}" and values["ls_time_best"] == \
        f"{t.errors.mean():.3g} ± {np.std(t.errors):.2g}"
    assert values["ls_time_vs_published"] in phrase.values()
    # the published runs themselves reproduce: a row holding them reads "not distinguishable from"
    published = with_errors(result, {(r.parameter, r.value): PUBLISHED[(r.parameter, r.value)].errors[:3]
                                     for r in result.rows})
    assert sweep.findings(published)["ls_best_vs_published"] == "not distinguishable from"
