"""Which learned optimisers chapter 6 stores, per profile (:func:`trained_models`).

Budgets (``paper``): MNIST 1,000 episodes of one network and 100 steps, 10⁵ optimisee steps per
run, as the PyTorch reproduction that beat tuned Adam (the released code: 10⁶), and the LSTM also for 2,000
(:data:`LONGER`, continued from the 1,000-episode runs); validation on 20 networks every 100 episodes. Quadratics: 500 episodes of 128 functions (at 150, validation was
still improving on some seeds). Seeds: 3 per MNIST
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
LONGER = "LSTM, 2× meta-training"
"""The LSTM recipe meta-trained twice as long (``paper``: 2,000 MNIST episodes): its first half is the stored LSTM's
run, continued by :mod:`.extend`, because the LSTM's validation loss was still falling at 1,000 episodes."""
RECIPES = {  # display name -> (cell, random-scaling r, MNIST meta-training episodes × the profile's)
    "LSTM": ("lstm", 0.0, 1),
    "GRU": ("gru", 0.0, 1),
    "LSTM, random scaling": ("lstm", 3.0, 1),
    LONGER: ("lstm", 0.0, 2),
}
SLUGS = {"LSTM": "lstm", "GRU": "gru", "LSTM, random scaling": "lstm-scaled", LONGER: "lstm-2x"}


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
    return f"{CHAPTER}-{problem}-{SLUGS[recipe]}-seed{seed}-{profile}"


def recipe_of(spec: ModelSpec) -> str:
    """The recipe's display name (a key of :data:`RECIPES`) of one of :func:`trained_models`' specs."""
    problem, seed = spec.config["family"]["problem"], spec.config["training_seed"]
    for profile in SIZES:
        for recipe in RECIPES:
            if model_name(problem, recipe, seed, profile) == spec.name:
                return recipe
    raise ValueError(f"spec: {spec.name!r} is not one of chapter 6's learned optimisers")


SIZES = {  # profile -> the sizes that differ between profiles
    "smoke": {"q_seeds": 5, "q_episodes": 10, "q_length": 20, "q_unroll": 10, "q_validate": 5, "q_instances": 32,
              "q_validation": 20, "q_test": (20, 40), "m_seeds": 3, "m_episodes": 1, "m_length": 10, "m_unroll": 5,
              "m_validate": 1, "m_checkpoint": 1, "m_validation": 1, "m_test": (2, 10), "m_shift": (2, 10),
              "m_long": (2, 20)},
    "paper": {"q_seeds": 5, "q_episodes": 500, "q_length": 100, "q_unroll": 20, "q_validate": 25,
              "q_instances": 128, "q_validation": 100, "q_test": (200, 200), "m_seeds": 3, "m_episodes": 1000,
              "m_length": 100, "m_unroll": 20, "m_validate": 100, "m_checkpoint": 20, "m_validation": 20,
              "m_test": (100, 200), "m_shift": (30, 200), "m_long": (10, 1000)},
}
SIZES["full"] = {**SIZES["paper"], "q_seeds": 10, "q_episodes": 1000, "m_seeds": 10, "m_episodes": 10_000,
                 "m_validate": 500}


def trained_models(profile: str) -> list[ModelSpec]:
    """Every learned optimiser chapter 6 uses in ``profile``; ``smoke`` ones train afresh each time."""
    if profile not in SIZES:
        raise ValueError(f"profile: unknown profile {profile!r}; valid: {', '.join(SIZES)}")
    z, smoke = SIZES[profile], profile == "smoke"
    specs = []
    quad = {"problem": "quadratic", "draw": "gaussian", "dim": 10}
    for recipe in ("LSTM", "GRU"):
        for seed in range(z["q_seeds"]):
            meta = MetaTrainConfig(episodes=z["q_episodes"], episode_length=z["q_length"], unroll=z["q_unroll"],
                                   meta_lr=3e-3, validate_every=z["q_validate"])
            config = {
                "family": quad,
                "optimiser": asdict(LearnedOptimiserConfig(cell=RECIPES[recipe][0], preprocess=None, output_scale=1.0)),
                "meta": asdict(meta), "training_seed": seed, "instances_per_episode": z["q_instances"],
                "validation_instances": z["q_validation"], "random_scaling": 0.0, "compile": False,
                "evaluations": [_evaluation("quadratic", quad, *z["q_test"], record_every=2)],
            }
            specs.append(ModelSpec(model_name("quadratic", recipe, seed, profile), CHAPTER, JOB, config,
                                   estimate_s=2 if smoke else 200, persist=not smoke))
    mnist = {"problem": "mnist", **MNIST_NETWORK}
    shifts = [("40 units", {"problem": "mnist", "hidden": [40], "activation": "sigmoid"}),
              ("2 layers", {"problem": "mnist", "hidden": [20, 20], "activation": "sigmoid"}),
              ("ReLU", {"problem": "mnist", "hidden": [20], "activation": "relu"})]
    evaluations = [_evaluation("MNIST", mnist, *z["m_test"])]
    generalisation = [_evaluation(label, fam, *z["m_shift"]) for label, fam in shifts]
    generalisation.append(_evaluation("MNIST, 1,000 steps", mnist, *z["m_long"], record_every=10))
    for recipe, (cell, r, times) in RECIPES.items():
        if times > 1 and profile == "full":  # full already meta-trains for the released code's budget
            continue
        for seed in range(z["m_seeds"]):
            meta = MetaTrainConfig(episodes=times * z["m_episodes"], episode_length=z["m_length"], unroll=z["m_unroll"],
                                   meta_lr=3e-3, validate_every=z["m_validate"], checkpoint_every=z["m_checkpoint"])
            config = {
                "family": mnist,
                "optimiser": asdict(LearnedOptimiserConfig(cell=cell, preprocess=10.0, output_scale=0.1)),
                "meta": asdict(meta), "training_seed": seed, "instances_per_episode": 1,
                "validation_instances": z["m_validation"], "random_scaling": r, "compile": not smoke,
                "evaluations": evaluations + (generalisation if cell == "lstm" else []),
            }
            specs.append(ModelSpec(model_name("mnist", recipe, seed, profile), CHAPTER, JOB, config,
                                   estimate_s=3 if smoke else (5000 if cell == "lstm" else 3600) * times,
                                   persist=not smoke))
    return specs
