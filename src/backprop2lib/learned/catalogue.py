"""Which learned optimisers chapter 6 stores, per profile (:func:`trained_models`).

Budgets (``paper``): MNIST 1,000 episodes of one network and 100 steps, 10⁵ optimisee steps per
run, as the PyTorch reproduction that beat tuned Adam (the released code: 10⁶); validation on
20 networks every 100 episodes. Quadratics: 150 episodes of 128 functions. Seeds: 3 per MNIST
recipe (LSTM, GRU, LSTM with random scaling), 5 per quadratic cell. ``full``: 10,000 MNIST
episodes (the released code's budget), 1,000 quadratic episodes, 10 seeds. ``smoke``: a few
episodes, trained afresh every time and never stored. Each configuration holds everything the
job (:mod:`.jobs`) depends on, so a change here changes the affected models' stamps only.
"""

from __future__ import annotations

from dataclasses import asdict

from ..store.artifacts import ModelSpec
from .meta_train import MetaTrainConfig
from .optimiser import LearnedOptimiserConfig

JOB = "backprop2lib.learned.jobs"
CHAPTER = "06"
MNIST_NETWORK = {"hidden": [20], "activation": "sigmoid"}
RECIPES = {  # display name -> (cell, random-scaling r)
    "LSTM": ("lstm", 0.0),
    "GRU": ("gru", 0.0),
    "LSTM, random scaling": ("lstm", 3.0),
}


def family_of(entry: dict) -> Family:
    """The family a configuration entry names: ``{"problem": "quadratic", "draw", "dim"}`` or
    ``{"problem": "mnist", "hidden", "activation"}``."""
    if entry["problem"] == "quadratic":
        return quadratic_family(entry.get("draw", "gaussian"), entry.get("dim", 10))
    if entry["problem"] == "mnist":
        return mnist_family(hidden=tuple(entry["hidden"]), activation=entry["activation"])
    raise ValueError(f"problem: unknown family {entry['problem']!r}; valid: quadratic, mnist")


def _evaluation(label: str, family: dict, n: int, steps: int, record_every: int = 1) -> dict:
    return {"label": label, **family, "n": n, "steps": steps, "record_every": record_every}


def model_name(problem: str, recipe: str, seed: int, profile: str) -> str:
    slug = {"LSTM": "lstm", "GRU": "gru", "LSTM, random scaling": "lstm-scaled"}[recipe]
    return f"{CHAPTER}-{problem}-{slug}-seed{seed}-{profile}"


def trained_models(profile: str) -> list[ModelSpec]:
    """Every learned optimiser chapter 6 uses in ``profile``."""
    if profile not in ("smoke", "paper", "full"):
        raise ValueError(f"profile: unknown profile {profile!r}; valid: smoke, paper, full")
    smoke, full = profile == "smoke", profile == "full"
    specs = []
    quad = {"problem": "quadratic", "draw": "gaussian", "dim": 10}
    q_seeds = 2 if smoke else 10 if full else 5
    for recipe in ("LSTM", "GRU"):
        for seed in range(q_seeds):
            config = {
                "family": quad,
                "optimiser": asdict(LearnedOptimiserConfig(cell=RECIPES[recipe][0], preprocess=None, output_scale=1.0)),
                "meta": asdict(MetaTrainConfig(episodes=60 if smoke else 1000 if full else 150, meta_lr=3e-3,
                                               validate_every=10 if smoke else 25)),
                "training_seed": seed, "instances_per_episode": 64 if smoke else 128,
                "validation_instances": 100, "random_scaling": 0.0, "compile": False,
                "evaluations": [_evaluation("quadratic", quad, 20 if smoke else 200, 100 if smoke else 200)],
            }
            specs.append(ModelSpec(model_name("quadratic", recipe, seed, profile), CHAPTER, JOB, config,
                                   estimate_s=20 if smoke else 120, persist=not smoke))
    mnist = {"problem": "mnist", **MNIST_NETWORK}
    evaluations = [_evaluation("MNIST", mnist, 4 if smoke else 100, 40 if smoke else 200)]
    shifts = [("40 units", {"problem": "mnist", "hidden": [40], "activation": "sigmoid"}),
              ("2 layers", {"problem": "mnist", "hidden": [20, 20], "activation": "sigmoid"}),
              ("ReLU", {"problem": "mnist", "hidden": [20], "activation": "relu"})]
    shift_evaluations = [_evaluation(label, fam, 4 if smoke else 30, 20 if smoke else 200) for label, fam in shifts]
    shift_evaluations.append(_evaluation("MNIST, 1,000 steps", mnist, 2 if smoke else 10, 60 if smoke else 1000,
                                         record_every=2 if smoke else 10))
    m_seeds = 2 if smoke else 10 if full else 3
    for recipe, (cell, r) in RECIPES.items():
        for seed in range(m_seeds):
            config = {
                "family": mnist,
                "optimiser": asdict(LearnedOptimiserConfig(cell=cell, preprocess=10.0, output_scale=0.1)),
                "meta": asdict(MetaTrainConfig(episodes=2 if smoke else 10_000 if full else 1000, meta_lr=3e-3,
                                               validate_every=1 if smoke else 100, checkpoint_every=1 if smoke else 20)),
                "training_seed": seed, "instances_per_episode": 1,
                "validation_instances": 2 if smoke else 20, "random_scaling": r, "compile": not smoke,
                "evaluations": evaluations + (shift_evaluations if cell == "lstm" else []),
            }
            specs.append(ModelSpec(model_name("mnist", recipe, seed, profile), CHAPTER, JOB, config,
                                   estimate_s=30 if smoke else 4000 if cell == "lstm" else 3000, persist=not smoke))
    return specs


