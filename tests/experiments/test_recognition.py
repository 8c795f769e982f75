"""Chapter 5's driver: what it reads from the stored runs, how it pairs and compares them, and that its findings
say what the comparisons say. The stored runs here are synthetic (the real ones are the store jobs' business,
tests/recognition/test_jobs.py), so every expected verdict is known."""

import dataclasses

import numpy as np
import pytest
import torch

from backprop2lib.experiments import recognition as ch5
from backprop2lib.recognition import catalogue
from backprop2lib.recognition.codes import CodeClassModels
from backprop2lib.recognition.priors import ClassPriors
from backprop2lib.recognition.robustness import Condition, Robustness
from backprop2lib.recognition.tuning import MethodMap
from backprop2lib.stats import compare_seeds

S, D = 3, 3
SETTINGS = ch5.Settings.for_profile("smoke")
CELLS = (catalogue.FULL_PARAMETER_METHOD, catalogue.FULL_PARAMETER_HIDDEN)
P = 81  # 2-20-1: 2·20 + 20 + 20 + 1


def _map(method, best_last, best_before, *, held_gain=0.0, test=0.5):
    """A map whose best validation per seed is ``best_before`` then ``best_last`` (two budgets); the held-out
    fractions add ``held_gain`` to the every-pixel column."""
    knob = {"reptile": "steps", "maml": "steps", "quadratic": "strength"}[method]
    v = np.full((S, 2, 2, 2), 0.1)
    v[:, 0, 1, 0] = best_before
    v[:, 1, 1, 0] = best_last
    v[:, :, 1, 1] = v[:, :, 1, 0] + held_gain
    return MethodMap(method, knob, (1000, 3000), tuple(range(S)), (0, 5), (0.0, 0.5), v, v * 0.9,
                     np.ones((S, 2)), [(5, 0.5 if held_gain > 0 else 0.0)] * S, np.full(S, test))


def _priors(seed, hidden=(20,)):
    g = torch.Generator().manual_seed(seed)
    n = 2 * hidden[0] + hidden[0] + sum(a * b + b for a, b in zip(hidden, hidden[1:])) + hidden[-1] + 1
    return ClassPriors("initialisation", 0.5 * torch.randn(10, n, generator=g), None)


def _stored(code_acc, full_acc, ncm, knn):
    """Stored results with the few-shot cells' accuracies given per (size, seed, draw) and per (size, draw)."""
    sizes = (1, 5)
    maps = {("reptile", (20,)): _map("reptile", np.array([0.6, 0.62, 0.61]), np.array([0.6, 0.61, 0.62]),
                                     held_gain=0.05, test=0.58),
            ("maml", (20,)): _map("maml", np.array([0.3, 0.35, 0.32]), np.array([0.2, 0.25, 0.2]), test=0.3),
            CELLS: _map("reptile", np.array([0.7, 0.71, 0.72]), np.array([0.6, 0.6, 0.62]), test=0.6)}
    # the chosen one runs one budget further: its shared-budget column is the one compared
    wide = maps[CELLS]
    extra = np.concatenate([wide.validation, wide.validation[:, -1:] + 0.01], axis=1)
    maps[CELLS] = dataclasses.replace(wide, budgets=(1000, 3000, 10000), validation=extra,
                                      auroc=np.concatenate([wide.auroc, wide.auroc[:, -1:]], axis=1),
                                      seconds=np.ones((S, 3)))
    priors = {k: [_priors(s, k[1]) for s in range(S)] for k in maps}
    method_cells, code_cells = {}, {}
    for i, n in enumerate(sizes):
        for d in range(D):
            m = _map("reptile", np.full(S, 0.5), np.full(S, 0.5))
            method_cells[(n, d)] = dataclasses.replace(m, test=full_acc[i, :, d])
            code_cells[(n, d)] = {"code_accuracy": list(code_acc[i, :, d]),
                                  "baselines": {ch5.NCM: ncm[i, d], ch5.KNN: knn[i, d]}}
    e = catalogue.code_experiment("smoke")
    key = (8, (8,), 4)
    code_map = {"curve": [[1, [0.3, 0.3, 0.3]], [2, [0.4, 0.41, 0.39]], [3, [0.4, 0.4, 0.41]]],
                "validation": np.full((S, 3, 2), 0.4).tolist(), "chosen": [[0.5, 0.0]] * S, "test": [0.4] * S,
                "n_params": e.reconstructor.n_params,
                "robustness": Robustness((Condition(), Condition(shift=4), Condition(angle=20)),
                                         {ch5.CODE: np.array([[0.5, 0.45, 0.4], [0.52, 0.44, 0.41],
                                                              [0.5, 0.46, 0.42]]),
                                          ch5.NCM: np.array([[0.6, 0.2, 0.4]]),
                                          ch5.KNN: np.array([[0.6, 0.2, 0.4]]),
                                          ch5.NCM + ch5.MOVED: np.array([[0.6, 0.5, 0.5]]),
                                          ch5.KNN + ch5.MOVED: np.array([[0.6, 0.45, 0.5]])}).to_record()}
    models = CodeClassModels.initial(e.reconstructor, 10 * S)
    return ch5.Stored(maps, priors, method_cells, {key: code_map}, {key: models}, {key: e}, code_cells, [], S)


def test_efficiency_pairs_by_draw_and_compares_across_seeds():
    g = np.random.default_rng(0)
    code, full = g.uniform(0.3, 0.8, (2, S, D)), g.uniform(0.3, 0.8, (2, S, D))
    ncm, knn = g.uniform(0.3, 0.8, (2, D)), g.uniform(0.3, 0.8, (2, D))
    e = ch5.efficiency(_stored(code, full, ncm, knn), CELLS)
    assert e.sizes == [1, 5] and e.draws == D
    np.testing.assert_allclose(e.families[ch5.CODE], code)
    np.testing.assert_allclose(e.families["Reptile 2-(20, 20)-1"], full)
    for i, n in enumerate(e.sizes):
        for family, acc in ((ch5.CODE, code), ("Reptile 2-(20, 20)-1", full)):
            direct = compare_seeds(acc[i], np.broadcast_to(ncm[i], acc[i].shape), paired=True)
            got = e.verdict(family, ch5.NCM, n)
            assert got.verdict == direct.verdict and got.difference.mean == pytest.approx(direct.difference.mean)
            # paired by draw: each seed's difference is its mean over draws of (family − baseline)
            assert got.difference.mean == pytest.approx(float((acc[i] - ncm[i]).mean()))


def test_the_goal_is_met_only_when_every_verdict_is_higher():
    code = np.full((2, S, D), 0.7) + np.arange(S)[None, :, None] * 0.01
    full = np.full((2, S, D), 0.3) + np.arange(S)[None, :, None] * 0.01
    ncm = np.full((2, D), 0.5) + np.arange(D)[None] * 0.02
    stored = _stored(code, full, ncm, ncm - 0.01)
    results = _results(stored)
    verdicts = ch5.goal_verdicts(results.efficiency)
    assert {v.verdict for (f, _, _), v in verdicts.items() if f == ch5.CODE} == {"higher"}
    assert {v.verdict for (f, _, _), v in verdicts.items() if f == "Reptile 2-(20, 20)-1"} == {"lower"}
    text = ch5.findings_markdown(results)
    assert text.startswith("**The goal is met** by code class models:")
    assert "higher than nearest class mean" in text and "lower than kNN (k=1)" in text
    # and when the code models fall short at one size, it is not met
    code[1] -= 0.4
    text = ch5.findings_markdown(_results(_stored(code, full, ncm, ncm - 0.01)))
    assert text.startswith("**The goal is not met**")


def _results(stored):
    diagnosis = ch5.maml_diagnosis(SETTINGS, stored)
    drawing = ch5.collage(SETTINGS, stored, ch5.best_method(stored))
    return ch5.Results(SETTINGS, stored, diagnosis, ch5.moved(stored), ch5.efficiency(stored, CELLS),
                       ch5.invariance_edits(SETTINGS, drawing), ch5.best_method(stored), ch5.code_choice(stored))


def test_budget_plateau_held_out_effect_and_the_chosen_method():
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    reptile, maml = stored.method_maps[("reptile", (20,))], stored.method_maps[("maml", (20,))]
    assert ch5.plateau(reptile).verdict == "not distinguishable"  # 0.6/0.62/0.61 after 0.6/0.61/0.62
    assert ch5.plateau(maml).verdict == "higher"  # still rising by 0.1
    assert ch5.held_out_effect(reptile).verdict == "higher" and ch5.held_out_effect(maml).verdict == \
        "not distinguishable"
    # compared at the budget all maps share (10,000 here is the wide one's extra budget; 3,000 is shared)
    assert ch5.shared_budget(stored) == 3000 and ch5.best_method(stored) == CELLS
    table = ch5.budget_table(stored)
    assert "| Reptile |" in table and "| MAML |" in table and "1,000 images" in table
    assert "held-out vs every pixel" in ch5.map_table(stored)
    findings = ch5.findings_markdown(_results(stored))
    assert ("Into the budget every map shares (3,000 images per class model), the best validation accuracy still "
            "rose for MAML, Reptile 2-(20, 20)-1; these ran further: Reptile 2-(20, 20)-1 (to 10,000).") in findings
    assert "to its largest it still rose for MAML (1,000 → 3,000 images, " in findings
    assert "; Reptile 2-(20, 20)-1 (3,000 → 10,000 images, " in findings
    assert "higher best validation accuracy for 1 of the 3" in findings
    # the synthetic maps are best at their largest knob value: an end of the range, no sweet spot inside
    assert "lies inside the range for no method and at an end of it for Reptile (steps 5), MAML (steps 5)" in findings
    assert "| 10,000 images |" in ch5.budget_table(stored) and "| – |" in ch5.budget_table(stored)


def test_code_choice_plateau_and_tables():
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    key = ch5.code_choice(stored)
    assert key == (8, (8,), 4)
    np.testing.assert_allclose(ch5.code_validation(stored.code_maps[key]), 0.4)
    assert ch5.code_plateau(stored.code_maps[key]).verdict == "not distinguishable"
    assert "d = 8" in ch5.code_map_table(stored)


def test_moved_digits_verdicts_read_seeds_where_there_are_some():
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    rob = ch5.moved(stored)
    assert ch5.robustness_verdict(rob, ch5.CODE, ch5.NCM, 1) == "higher"  # 0.45 ± 0.01 against 0.2
    assert ch5.robustness_verdict(rob, ch5.CODE, ch5.NCM + ch5.MOVED, 1) == "lower"  # against 0.5
    assert ch5.robustness_verdict(rob, ch5.NCM, ch5.KNN, 1).startswith("not distinguishable")
    assert "shift 4 px" in ch5.robustness_table(rob)


def test_claims_and_verdicts_text(capsys):
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    results = _results(stored)
    claims = ch5.check_claims(results)
    out = capsys.readouterr().out
    assert out.startswith("training seeds: 3 per method map, code map and few-shot cell")
    verdicts = dict(claims.verdicts)
    assert verdicts["The stored full-parameter few-shot cells use the method and reconstructor the validation maps "
                    "choose"]
    assert verdicts[CODE_CLAIM]
    text = ch5.verdicts_text(results)
    assert "n = 1: code class models vs nearest class mean" in text and "MAML, validation accuracy" in text
    # MAML's overshoot is named where its mean error peaks after the start, with that peak
    d = results.diagnosis
    path = d.errors[d.lrs[0]].mean(axis=1)
    findings = ch5.findings_markdown(results)
    k = int(np.argmax(path))
    assert ("On the way it overshoots" in findings) == (k > 0)
    if k > 0:
        assert f"the error is {path[k]:.3f}, {path[k] / path[0]:.1f}× where it started." in findings
    flat = dataclasses.replace(d, errors={lr: np.linspace(1.0, 0.1, path.size)[:, None] * np.ones((1, 2))
                                          for lr in d.lrs})
    assert "overshoots" not in ch5.findings_markdown(dataclasses.replace(results, diagnosis=flat))
    over = dataclasses.replace(d, errors={lr: np.array([[1.0, 1.0], [2.0, 4.0], [0.5, 0.5]]) for lr in d.lrs})
    assert "On the way it overshoots: after 1 step the error is 3.000, 3.0× where it started." in \
        ch5.findings_markdown(dataclasses.replace(results, diagnosis=over))
    # a chapter whose maps chose another method than the stored cells' says so
    other = dataclasses.replace(results, full_method=("maml", (20,)))
    assert not dict(ch5.check_claims(other).verdicts)[
        "The stored full-parameter few-shot cells use the method and reconstructor the validation maps choose"]


def _extend(m, extra):
    """``m`` run one budget further (10,000 images), where its best validation per seed is ``extra`` [S]."""
    v = np.concatenate([m.validation, m.validation[:, -1:]], axis=1)
    v[:, -1, 1, 0] = extra
    v[:, -1, 1, 1] = extra
    return dataclasses.replace(m, budgets=m.budgets + (10000,), validation=v,
                               auroc=np.concatenate([m.auroc, m.auroc[:, -1:]], axis=1),
                               seconds=np.ones((S, len(m.budgets) + 1)))


def test_maps_still_rising_into_the_shared_budget_must_run_further():
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    maml = ("maml", (20,))
    # MAML rises into the shared 3,000 (by 0.10/0.10/0.12) and stops there; Reptile 2-20-1 is flat
    assert ch5.rise_into(stored) == [maml, CELLS] and ch5.unextended_rising(stored) == [maml]
    assert not dict(ch5.check_claims(_results(stored)).verdicts)[ch5.RISING_CLAIM]  # MAML stops where it rises
    assert ch5.rise(stored.method_maps[maml], 3000).difference.mean == pytest.approx(0.32 / 3)
    with pytest.raises(ValueError, match="budget: expected one of"):
        ch5.rise(stored.method_maps[maml], 1000)  # no budget before the first
    # run one budget further where it is flat: the claim holds, MAML no longer "still rises" at its largest
    flat = dataclasses.replace(stored, method_maps={**stored.method_maps,
                                                    maml: _extend(stored.method_maps[maml], [0.31, 0.34, 0.33])})
    assert ch5.shared_budget(flat) == 3000 and ch5.unextended_rising(flat) == []
    assert dict(ch5.check_claims(_results(flat)).verdicts)[ch5.RISING_CLAIM]
    assert ch5.still_rising(flat) == [CELLS]  # the chosen one gains 0.01 on every seed
    results = _results(flat)
    assert "MAML: 3,000 images vs the budget before: higher" in ch5.verdicts_text(results)
    assert "MAML: largest budget (10,000) vs the one before: not distinguishable" in ch5.verdicts_text(results)
    findings = ch5.findings_markdown(results)
    assert "these ran further: MAML (to 10,000), Reptile 2-(20, 20)-1 (to 10,000)." in findings
    assert "the most accurate on validation is still the chosen Reptile 2-(20, 20)-1." in findings
    # further training that overtakes the chosen one is reported against it, paired by seed
    overtakes = dataclasses.replace(stored, method_maps={
        **stored.method_maps, maml: _extend(stored.method_maps[maml], [0.9, 0.92, 0.91])})
    assert ch5.best_at_largest(overtakes) == maml
    diverged = _extend(stored.method_maps[maml], [0.9] * S)
    diverged.validation[:, -1] = np.nan  # every setting of every seed diverged at the largest budget
    assert np.isnan(diverged.best_validation()[:, -1]).all()
    assert ch5.best_at_largest(dataclasses.replace(stored, method_maps={**stored.method_maps, maml: diverged})) \
        == CELLS  # a map with every seed diverged at its largest budget ranks last
    v = ch5.largest_budgets_vs_choice(overtakes, CELLS)
    assert v.verdict == "higher" and v.difference.mean == pytest.approx(0.91 - 0.72)
    results = _results(overtakes)
    assert "MAML vs Reptile 2-(20, 20)-1 (chosen): higher" in ch5.verdicts_text(results)
    assert "the most accurate on validation is MAML (" in ch5.findings_markdown(results)
    assert "higher than the chosen Reptile 2-(20, 20)-1 (" in ch5.findings_markdown(results)


CODE_CLAIM = ("The stored code few-shot cells use the code class models the validation maps choose, or ones "
              "validation does not distinguish from them (paired by seed)")


def _with_second_code_map(stored, validation):
    """``stored`` plus a d = 16 code map whose best validation accuracy per seed is ``validation`` [S]."""
    key = (16, (8,), 4)
    record = dict(stored.code_maps[(8, (8,), 4)])
    record["validation"] = np.repeat(np.asarray(validation, float)[:, None, None], 2, axis=2).repeat(3, 1).tolist()
    e = catalogue.code_experiment("smoke", code_dim=16)
    return dataclasses.replace(stored, code_maps={**stored.code_maps, key: record},
                               code_models={**stored.code_models, key: stored.code_models[(8, (8,), 4)]},
                               code_experiments={**stored.code_experiments, key: e})


@pytest.mark.parametrize("validation, holds, phrase", [
    ([0.41, 0.42, 0.40], True, "not distinguishable from"),  # differences 0.01, 0.02, 0.0: wide t-interval
    ([0.50, 0.51, 0.50], False, "lower than"),  # every seed 0.1 better: the cells' models are worse
])
def test_code_cells_against_the_maps_choice(capsys, validation, holds, phrase):
    base = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    stored = _with_second_code_map(base, validation)
    assert ch5.code_choice(stored) == (16, (8,), 4)  # the maps choose d = 16 ...
    assert ch5.code_cells_key(stored, "smoke") == (8, (8,), 4)  # ... the cells use the catalogue's d = 8
    comparison = ch5.code_cells_vs_choice(stored, "smoke", ch5.code_choice(stored))
    expected = np.full(S, 0.4) - np.asarray(validation)
    assert comparison.difference.mean == pytest.approx(expected.mean())
    results = dataclasses.replace(_results(base), stored=stored, code_key=ch5.code_choice(stored))
    assert dict(ch5.check_claims(results).verdicts)[CODE_CLAIM] is holds
    assert "(the few-shot cells' class models) vs d = 16" in ch5.verdicts_text(results)
    assert f"on validation it is {phrase} the maps' choice" in ch5.findings_markdown(results)
    # no stored map with the cells' experiment: a clear error naming it
    missing = dataclasses.replace(stored, code_experiments={k: v for k, v in stored.code_experiments.items()
                                                            if k[0] == 16})
    with pytest.raises(ValueError, match="no code map has the experiment the few-shot cells use"):
        ch5.code_cells_key(missing, "smoke")


def test_maml_diagnosis_steps_one_at_a_time_at_both_step_sizes():
    stored = _stored(*(np.full((2, S, D), 0.5),) * 2, np.full((2, D), 0.5), np.full((2, D), 0.5))
    d = ch5.maml_diagnosis(SETTINGS, stored)
    trained = SETTINGS.meta.maml_inner_lr
    assert d.lrs == (trained, trained / 2)
    assert d.errors[trained].shape == (SETTINGS.diagnosis_steps + 1, SETTINGS.diagnosis_images)
    assert d.pictures[trained].shape == (SETTINGS.diagnosis_steps + 1, SETTINGS.diagnosis_images, 28, 28)
    np.testing.assert_allclose(d.errors[trained][0], d.errors[trained / 2][0])  # the same start
    assert d.accuracy[trained].shape == (S,) and d.steps == SETTINGS.meta.inner_steps
    assert d.blank_error == pytest.approx(float(0.5 * d.images.pixels().pow(2).mean()))
    assert "drawing nothing" in ch5.diagnosis_table(d)


def test_settings_follow_the_profile_and_reject_bad_values():
    smoke, paper = ch5.Settings.for_profile("smoke"), ch5.Settings.for_profile("paper")
    assert smoke.diagnosis_steps < paper.diagnosis_steps and paper.sizes == catalogue.SIZES["paper"]
    assert "10,000 images" not in ch5.scale_table(smoke) and "10,000" in ch5.scale_table(paper)
    # the maps that run further are read off the catalogue, with their own budgets
    further = "; ".join(f"{ch5._label(k)} to {', '.join(f'{b:,}' for b in catalogue.extra_budgets('paper', *k))}"
                        for k in catalogue.method_map_variants("paper") if catalogue.extra_budgets("paper", *k))
    assert f"further: {further};" in ch5.scale_table(paper) and "Reptile 2-(20, 20)-1 to 30,000" in further
    with pytest.raises(ValueError, match="rotate_degrees"):
        dataclasses.replace(paper, rotate_degrees=45.0)
    with pytest.raises(ValueError, match="collage_digit"):
        dataclasses.replace(paper, collage_digit=10)
