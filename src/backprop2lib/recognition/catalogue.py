"""Which class models chapter 5 stores, per profile (:func:`trained_models`; the jobs are :mod:`.jobs`).

Four families of jobs:

- **method maps** (one per method of the earlier chapters, and the two-hidden-layer reconstructor for
  :data:`WIDER_METHODS`): full-parameter class models meta-trained on the train split at three budgets
  (1,000, 3,000 and 10,000 images seen per class model), every knob value × held-out fraction on
  validation images, the choice tested once; 3 training seeds;
- **method cells** of the data-efficiency curve for :data:`FULL_PARAMETER_METHOD` on
  :data:`FULL_PARAMETER_HIDDEN` (what the maps choose at their shared budget; chapter 5 checks that they still
  do), meta-trained with that budget: n = 1, 5, 10, 50 images per digit × 3 draws, 3 seeds, the knob and
  held-out fraction chosen on validation images in every cell;
- **code maps**: code class models for every code dimension in :data:`CODE_DIMS` on the (32, 32) Fourier
  reconstructor, and d = 8 on backprop2's 2-20-1 network, trained on the train split (3 seeds), with the
  validation curve during training and the map over held-out fraction × prior weight; the one matching
  :func:`code_experiment` also runs the shifted-and-rotated test sets;
- **code cells** of the data-efficiency curve for :func:`code_experiment` (the code maps' choice; checked by
  the chapter): n = 1, 5, 10, 50 × 3 draws, 3 seeds.

``paper``: as above, 300 test images. ``full``: 10 seeds, 5 draws, 1,000 test images. ``smoke``: one tiny job
of each kind, trained afresh and never stored.
"""

from __future__ import annotations

from dataclasses import asdict

from ..store.artifacts import ModelSpec
from .class_models import METHODS, MetaSettings
from .codes import CodeReconstructor, CodeSettings
from .few_shot import CodeExperiment
from .tuning import KNOBS

JOB = "backprop2lib.recognition.jobs"
CHAPTER = "05"
BASELINE_NAMES = ("nearest class mean", "kNN (k=1)", "logistic regression")
FULL_PARAMETER_METHOD = "reptile"
FULL_PARAMETER_HIDDEN = (20, 20)
"""The full-parameter class models whose data-efficiency cells are stored: the method and reconstructor the maps
choose at the budget they all share (chapter 5 checks that they still do). Its map also runs one budget further
(:data:`EXTRA_BUDGETS`), to show whether its validation accuracy still rises there."""
EXTRA_BUDGETS = {"smoke": (8,), "paper": (30_000, 100_000), "full": (30_000, 100_000)}
"""Budgets beyond the shared ones (images seen per class model), for the maps that run further."""
STILL_RISING: dict[tuple[str, tuple[int, ...]], int] = {
    ("meta_sgd", (20,)): 2,
    ("quadratic", (20,)): 1,
    ("quartic", (20,)): 1,
    ("quadratic", (20, 20)): 1,
}
"""Maps that run further than the shared budget because their best validation accuracy still rose into it, and
how many of :data:`EXTRA_BUDGETS` each runs. The ``paper`` run of 2026-12-02 found Meta-SGD, quadratic and
quartic (2-20-1) and quadratic 2-(20, 20)-1 still rising from 3,000 to 10,000 images (chapter 5 prints each rise).
Meta-SGD still rose from 10,000 to 30,000 (2026-12-03), so it runs to 100,000 too: its count of 2 splits its map
into one job per seed (:func:`split_by_seed`; each about an hour at one thread), stored as
``trained/05-map-meta_sgd-20-seed{0,1,2}-paper`` and joined along the seed axis when chapter 5 loads them."""
WIDER_METHODS = ("reptile", "quadratic")
"""Methods also mapped with the 2-(20, 20)-1 reconstructor."""
CODE_DIMS = (2, 4, 8, 16, 32)
KNOB_VALUES = {"steps": (0, 1, 2, 5, 10, 20), "strength": (0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
               "decay": (0.0, 0.2, 1.0, 5.0, 25.0)}
HELD_FRACTIONS = (0.0, 0.5, 0.75)

SIZES = {
    "smoke": {"sizes": (1, 5), "draws": 1, "seeds": 3, "test_images": 20, "iterations": 3, "starts": 2, "refine": 2,
              "budgets": (2, 4), "validation_per_digit": 1, "curve_per_digit": 1, "validate_every": 2,
              "robustness_images": 10},
    "paper": {"sizes": (1, 5, 10, 50), "draws": 3, "seeds": 3, "test_images": 300, "iterations": 600, "starts": 8,
              "refine": 20, "budgets": (1000, 3000, 10000), "validation_per_digit": 10, "curve_per_digit": 5,
              "validate_every": 100, "robustness_images": 100},
}
SIZES["full"] = {**SIZES["paper"], "draws": 5, "seeds": 10, "test_images": 1000}


def _check_profile(profile: str) -> dict:
    if profile not in SIZES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid: {', '.join(SIZES)}")
    return SIZES[profile]


def code_experiment(profile: str, code_dim: int = 8, hidden: tuple[int, ...] | None = None,
                    fourier: int | None = None) -> CodeExperiment:
    """The code class models: by default 8-dimensional codes, a (32, 32) Gaussian network on 16 random Fourier
    features, trained for the profile's iterations on moved copies (±2 pixels, ±15°) of the drawn images, scored
    on the half of each test image's pixels not adapted on. ``smoke`` shrinks the network ((8,) on 4
    frequencies) and every count, so that CI runs the code paths in seconds."""
    z = _check_profile(profile)
    smoke = profile == "smoke"
    hidden = ((8,) if smoke else (32, 32)) if hidden is None else tuple(hidden)
    fourier = (4 if smoke else 16) if fourier is None else fourier
    points = 32 if smoke else 128
    return CodeExperiment(
        CodeReconstructor(code_dim, hidden, "gaussian", fourier=fourier),
        CodeSettings(iterations=z["iterations"], meta_batch=2 if smoke else 16, points=points, augment_shift=2.0,
                     augment_angle=15.0),
        starts=z["starts"], steps=5, refine=z["refine"], points=points, augment_copies=2 if smoke else 20)


def meta_settings(profile: str) -> MetaSettings:
    """The full-parameter class models' meta-training, apart from its budget (set per job in images seen);
    ``smoke`` takes two images per meta-iteration and two inner steps."""
    _check_profile(profile)
    if profile == "smoke":
        return MetaSettings(meta_batch=2, inner_steps=2, tasks_per_iteration=4)
    return MetaSettings()


def model_name(n: int, draw: int, profile: str) -> str:
    """A code cell's store name."""
    return f"{CHAPTER}-codes-n{n}-draw{draw}-{profile}"


def _map_stem(method: str, hidden: tuple[int, ...]) -> str:
    return f"{CHAPTER}-map-{method}-{'x'.join(map(str, hidden))}"


def method_map_name(method: str, hidden: tuple[int, ...], profile: str) -> str:
    return f"{_map_stem(method, hidden)}-{profile}"


def method_map_seed_name(method: str, hidden: tuple[int, ...], seed: int, profile: str) -> str:
    """The store name of one training seed's share of a map trained one seed per job
    (:func:`split_by_seed`)."""
    return f"{_map_stem(method, hidden)}-seed{seed}-{profile}"


def split_by_seed(profile: str, method: str, hidden: tuple[int, ...]) -> bool:
    """Whether a map is trained one job per training seed: those that run to the second of
    :data:`EXTRA_BUDGETS` (each seed then takes over an hour at one thread, so seeds train on separate cores
    and each is stored as soon as it is done; chapter 5 joins them along the seed axis)."""
    return len(extra_budgets(profile, method, hidden)) >= 2


def method_cell_name(n: int, draw: int, profile: str) -> str:
    return f"{CHAPTER}-{FULL_PARAMETER_METHOD}-n{n}-draw{draw}-{profile}"


def code_map_name(code_dim: int, hidden: tuple[int, ...], fourier: int, profile: str) -> str:
    inputs = f"fourier{fourier}" if fourier else "xy"
    return f"{CHAPTER}-code-map-d{code_dim}-{'x'.join(map(str, hidden))}-{inputs}-{profile}"


def code_map_variants(profile: str) -> list[tuple[int, tuple[int, ...], int]]:
    """``(code_dim, hidden, fourier)`` of every code map."""
    if profile == "smoke":
        return [(8, (8,), 4)]
    return [(d, (32, 32), 16) for d in CODE_DIMS] + [(8, (20,), 0)]


def method_map_variants(profile: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(method, hidden)`` of every method map."""
    if profile == "smoke":
        return [("reptile", (20,)), ("maml", (20,)), (FULL_PARAMETER_METHOD, FULL_PARAMETER_HIDDEN)]
    return [(m, (20,)) for m in METHODS] + [(m, (20, 20)) for m in WIDER_METHODS]


def _tuning(profile: str, method: str) -> dict:
    z = SIZES[profile]
    values = KNOB_VALUES[KNOBS[method]]
    return {"meta": asdict(meta_settings(profile)), "seeds": list(range(z["seeds"])),
            "knob_values": list(values if profile != "smoke" else values[:2]),
            "held_fractions": list(HELD_FRACTIONS if profile != "smoke" else (0.0, 0.5)),
            "validation_per_digit": z["validation_per_digit"], "test_images": z["test_images"]}


def _robustness(profile: str) -> dict:
    z = SIZES[profile]
    smoke = profile == "smoke"
    return {"shifts": [0, 2, 4, 6] if not smoke else [0, 3], "angles": [10, 20, 30] if not smoke else [20],
            "test_images": z["robustness_images"], "baselines": list(BASELINE_NAMES),
            "edit_shifts": [-4, 0, 4] if not smoke else [0, 3], "edit_angles": [-20, 0, 20] if not smoke else [0],
            "search_seeds": 1, "search_adaptation": {"starts": 4 if not smoke else 2, "refine": 10 if not smoke else 1,
                                                     "points": 64}}


def extra_budgets(profile: str, method: str, hidden: tuple[int, ...]) -> tuple[int, ...]:
    """The budgets a map runs beyond the shared ones: one for the chosen full-parameter class models, as many as
    :data:`STILL_RISING` lists (``paper`` and ``full``) for the maps that still rose into the shared budget, none
    for the others."""
    _check_profile(profile)
    key = (method, tuple(hidden))
    count = STILL_RISING.get(key, 0) if profile != "smoke" else 0
    if key == (FULL_PARAMETER_METHOD, FULL_PARAMETER_HIDDEN):
        count = max(1, count)
    return tuple(EXTRA_BUDGETS[profile][:count])


def trained_models(profile: str) -> list[ModelSpec]:
    z = _check_profile(profile)
    smoke = profile == "smoke"
    persist = not smoke
    specs = []
    for method, hidden in method_map_variants(profile):
        budgets = list(z["budgets"]) + list(extra_budgets(profile, method, hidden))
        config = {"kind": "method-map", "method": method, "hidden": list(hidden), "budgets": budgets,
                  **_tuning(profile, method)}
        # training time grows with the images seen over all budgets (each budget trains afresh)
        estimate = 1000 * len(hidden) * sum(budgets) / sum(z["budgets"])
        if split_by_seed(profile, method, hidden):
            specs += [ModelSpec(method_map_seed_name(method, hidden, seed, profile), CHAPTER, JOB,
                                {**config, "seeds": [seed]}, estimate_s=round(estimate / len(config["seeds"])),
                                persist=persist) for seed in config["seeds"]]
            continue
        specs.append(ModelSpec(method_map_name(method, hidden, profile), CHAPTER, JOB, config,
                               estimate_s=5 if smoke else round(estimate), persist=persist))
    for n in z["sizes"]:
        for draw in range(z["draws"]):
            config = {"kind": "method-cell", "method": FULL_PARAMETER_METHOD, "hidden": list(FULL_PARAMETER_HIDDEN),
                      "budgets": [z["budgets"][-1]], "n": n, "draw": draw, **_tuning(profile, FULL_PARAMETER_METHOD)}
            specs.append(ModelSpec(method_cell_name(n, draw, profile), CHAPTER, JOB, config,
                                   estimate_s=5 if smoke else 500, persist=persist))
    chosen = code_experiment(profile)
    for code_dim, hidden, fourier in code_map_variants(profile):
        experiment = code_experiment(profile, code_dim, hidden, fourier)
        config = {"kind": "code-map", "experiment": asdict(experiment), "seeds": list(range(z["seeds"])),
                  "validation_per_digit": z["validation_per_digit"], "curve_per_digit": z["curve_per_digit"],
                  "validate_every": z["validate_every"], "test_images": z["test_images"],
                  "train_per_digit": 5 if smoke else None,  # None: the whole train split
                  "held_fractions": [0.25, 0.5, 0.75], "prior_weights": [0.0, 1.0],
                  "robustness": _robustness(profile) if experiment == chosen else None}
        specs.append(ModelSpec(code_map_name(code_dim, hidden, fourier, profile), CHAPTER, JOB, config,
                               estimate_s=5 if smoke else (2400 if experiment == chosen else 900), persist=persist))
    experiment = asdict(chosen)
    for n in z["sizes"]:
        for draw in range(z["draws"]):
            config = {"kind": "codes-cell", "experiment": experiment, "n": n, "draw": draw,
                      "seeds": list(range(z["seeds"])), "test_images": z["test_images"],
                      "baselines": list(BASELINE_NAMES)}
            specs.append(ModelSpec(model_name(n, draw, profile), CHAPTER, JOB, config,
                                   estimate_s=5 if smoke else 600, persist=persist))
    return specs
