"""Chapter 5's stored-model jobs (``backprop2lib.store``): what takes too long for a chapter's budget.

``train(spec, checkpoint, progress, device)`` dispatches on the configuration's ``kind``:

- ``"method-map"``: one method of the earlier chapters (full-parameter class models) meta-trained at several
  budgets and training seeds on the train split, its knob × held-out fraction mapped on validation images,
  the choice tested once (:func:`.tuning.tune_and_test`). State: each seed's class-model priors.
- ``"method-cell"``: the same protocol on one draw of ``n`` training images per digit (one budget): a cell of
  the data-efficiency curve for the full-parameter family.
- ``"code-map"``: code class models of one reconstructor and code dimension, trained on the train split with
  every seed in one batch, their validation accuracy during training (the budget curve) and over held-out
  fraction × prior weight after it, the choice tested once; optionally the shifted-and-rotated test sets
  (:mod:`.robustness`). State: the class models.
- ``"codes-cell"``: a cell of the data-efficiency curve for the code class models (:func:`.few_shot.code_draw`).

Every job returns ``(state, record)``: tensors and a JSON-able record of what was measured. A job takes
minutes, so there is no checkpoint to resume from: an interrupted job starts again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..data.mnist import N_CLASSES, bundled_split
from ..models.mlp import MLP
from .baselines import BASELINES
from .class_models import MetaSettings
from .codes import CodeReconstructor, CodeSettings, train_code_models
from .few_shot import CodeExperiment, code_draw, code_predictor, code_scores, fitted_baselines, pool_and_test
from .robustness import Condition, robustness
from .tuning import tune_and_test

KINDS = ("method-map", "method-cell", "code-map", "codes-cell")


def experiment_from_config(entry: dict) -> CodeExperiment:
    """The :class:`CodeExperiment` a configuration's ``experiment`` entry (``dataclasses.asdict`` of one) names."""
    entry = dict(entry)
    rec = dict(entry.pop("reconstructor"))
    rec["hidden"] = tuple(rec["hidden"])
    return CodeExperiment(CodeReconstructor(**rec), CodeSettings(**entry.pop("training")), **entry)


def _check_baselines(names) -> None:
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise ValueError(f"baselines: unknown {', '.join(unknown)}; valid: {', '.join(BASELINES)}")


def train(spec, checkpoint: Path | None, progress: bool | None = None,
          device: torch.device | str = "cpu") -> tuple[dict, dict]:
    c = spec.config
    kind = c.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{spec.name}: config kind: unknown {kind!r}; valid: {', '.join(KINDS)}")
    return {"method-map": _method_map, "method-cell": _method_cell, "code-map": _code_map,
            "codes-cell": _codes_cell}[kind](c, device)


# ----------------------------------------------------------------------------- full-parameter class models

def _tune(c: dict, train_images, device):
    split = bundled_split()
    validation = split.validation.per_class(c["validation_per_digit"], seed=0)
    test = split.test.subset(slice(0, c["test_images"]))
    model = MLP((2, *c["hidden"], 1), activation="gaussian")
    m, priors = tune_and_test(c["method"], model, train_images, validation, test, meta=MetaSettings(**c["meta"]),
                              budgets=c["budgets"], seeds=c["seeds"], knob_values=c["knob_values"],
                              held_fractions=c["held_fractions"], chunk=c.get("chunk", 16), device=device)
    # seeds whose meta-training diverged have no priors: NaN rows, named in the map's failures
    ok = next((p for p in priors if p is not None), None)
    state, record = {}, {"map": m.to_record(), "seconds": float(m.seconds.sum()), "priors": None}
    if ok is not None:
        def stacked(name):
            return torch.stack([getattr(p, name) if p is not None else torch.full_like(getattr(ok, name), float("nan"))
                                for p in priors]).detach().cpu()
        state["mean"] = stacked("mean")
        if ok.spread is not None:
            state["spread"] = stacked("spread")
        record["priors"] = {"method": ok.method, "strength": ok.strength, "decay": ok.decay}
    return state, record


def _method_map(c: dict, device) -> tuple[dict, dict]:
    return _tune(c, bundled_split().train, device)


def _method_cell(c: dict, device) -> tuple[dict, dict]:
    pool, _ = pool_and_test()
    return _tune(c, pool.per_class(c["n"], seed=c["draw"]), device)


# ----------------------------------------------------------------------------- code class models

def _code_map(c: dict, device) -> tuple[dict, dict]:
    e = experiment_from_config(c["experiment"])
    seeds = tuple(c["seeds"])
    S = len(seeds)
    split = bundled_split()
    train = split.train if c.get("train_per_digit") is None else split.train.per_class(c["train_per_digit"], seed=0)
    curve_images = split.validation.per_class(c["curve_per_digit"], seed=1)
    validation = split.validation.per_class(c["validation_per_digit"], seed=0)
    test = split.test.subset(slice(0, c["test_images"]))
    pixels, labels = train.pixels(), train.labels
    started = time.perf_counter()

    def accuracy(models, images, **scoring):  # the fit, and each seed's accuracy at a prior weight
        fit = code_scores(models, e, images.pixels(), **scoring)
        return fit, lambda weight: (fit.predict_per_seed(S, weight) == images.labels).double().mean(1).numpy()

    def validate(models):  # the budget curve: each seed's accuracy on a few validation images
        return accuracy(models, curve_images)[1](e.prior_weight).tolist()

    models = train_code_models(e.reconstructor, [pixels[labels == k].to(device) for k in range(N_CLASSES)],
                               e.training, seeds=seeds, validate=validate, validate_every=c["validate_every"],
                               progress=False)
    fractions, weights = tuple(c["held_fractions"]), tuple(c["prior_weights"])
    val = np.full((S, len(fractions), len(weights)), np.nan)
    for f, fraction in enumerate(fractions):
        _, acc = accuracy(models, validation, held_fraction=fraction)
        for w, weight in enumerate(weights):
            val[:, f, w] = acc(weight)
    chosen, test_acc = [], np.full(S, np.nan)
    test_fits = {}
    for s in range(S):
        f, w = np.unravel_index(np.argmax(val[s]), val[s].shape)  # first maximum: smaller fraction, then weight
        chosen.append((fractions[f], weights[w]))
        if f not in test_fits:
            test_fits[f] = accuracy(models, test, held_fraction=fractions[f])[1]
        test_acc[s] = test_fits[f](weights[w])[s]
    record = {"curve": [[it, value] for it, value in models.validation],
              "meta_loss": [float(f"{loss:.6g}") for _, loss in models.history],
              "held_fractions": list(fractions), "prior_weights": list(weights), "validation": val.round(6).tolist(),
              "chosen": [list(x) for x in chosen], "test": test_acc.round(6).tolist(), "n_params": e.reconstructor.n_params}
    if c.get("robustness"):
        record["robustness"] = _robustness(c["robustness"], e, models, S, pixels, labels, test)
    record["seconds"] = time.perf_counter() - started
    state = {name: getattr(models, name).detach().cpu() for name in ("w", "mu", "log_sigma", "log_alpha")}
    return state, record


def _robustness(r: dict, e: CodeExperiment, models, S: int, pixels, labels, test) -> dict:
    """Every classifier on the moved test sets: the code class models without and with a search over edits of
    their pictures (the first ``search_seeds`` seeds: the search costs one adaptation per edit), and each baseline
    trained on the unmoved training images and on their moved copies."""
    _check_baselines(r["baselines"])
    images = test.pixels()[: r["test_images"]]
    truth = test.labels[: r["test_images"]]
    pixel = 2 / 27
    edits = [((dx * pixel, dy * pixel), math.radians(a)) for dx in r["edit_shifts"] for dy in r["edit_shifts"]
             for a in r["edit_angles"]]
    k = r["search_seeds"]
    searched = models.select(list(range(k * N_CLASSES)))  # rows are seed-major
    classifiers = {"code class models": code_predictor(models, e, S),
                   "code class models + edit search": code_predictor(searched, e, k, edits=edits,
                                                                     **r["search_adaptation"])}
    fitted, _ = fitted_baselines({name: BASELINES[name] for name in r["baselines"]}, pixels, labels, e)
    classifiers.update(fitted)
    conditions = [Condition(shift, 0.0) for shift in r["shifts"]] + [Condition(0.0, a) for a in r["angles"] if a]
    return robustness(classifiers, images, truth, conditions, seed=r.get("seed", 0)).to_record()


def _codes_cell(c: dict, device) -> tuple[dict, dict]:
    _check_baselines(c["baselines"])
    pool, test = pool_and_test()
    test = test.subset(slice(0, c["test_images"]))
    result = code_draw(experiment_from_config(c["experiment"]), c["n"], c["draw"], c["seeds"],
                       {name: BASELINES[name] for name in c["baselines"]}, pool=pool, test=test, device=device)
    m = result.models
    state = {name: getattr(m, name).detach().cpu() for name in ("w", "mu", "log_sigma", "log_alpha")}
    record = {"code_accuracy": [float(a) for a in result.code], "baselines": result.baselines,
              "meta_loss": [float(f"{loss:.6g}") for _, loss in m.history], "seconds": sum(result.seconds.values()),
              "parts_seconds": result.seconds}
    return state, record
