"""A provider of one tiny stored model (a few meta-training episodes on 4-dimensional quadratics):
the store's and the runner's tests train it for real, in seconds. Registered for a child process
through ``BACKPROP2_STORE_PROVIDERS=store.tiny_provider`` with ``tests/`` on ``PYTHONPATH``."""

from dataclasses import asdict

from backprop2lib.learned.meta_train import MetaTrainConfig
from backprop2lib.learned.optimiser import LearnedOptimiserConfig
from backprop2lib.store import ModelSpec


def tiny_spec(name="t-quadratic", episodes=4, **changes):
    quad = {"problem": "quadratic", "draw": "gaussian", "dim": 4}
    config = {
        "family": quad,
        "optimiser": asdict(LearnedOptimiserConfig(preprocess=None, output_scale=1.0)),
        "meta": asdict(MetaTrainConfig(episodes=episodes, episode_length=10, unroll=5, meta_lr=3e-3, validate_every=2,
                                       checkpoint_every=1)),
        "training_seed": 1, "instances_per_episode": 8, "validation_instances": 6, "random_scaling": 0.0,
        "compile": False, "evaluations": [{"label": "quadratic", **quad, "n": 5, "steps": 12, "record_every": 5}],
        **changes,
    }
    return ModelSpec(name, "99", "backprop2lib.learned.jobs", config, estimate_s=1.0)


def trained_models(profile: str) -> list[ModelSpec]:
    return [tiny_spec("t-runner-a"), tiny_spec("t-runner-b", episodes=6)]
