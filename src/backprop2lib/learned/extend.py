"""Meta-training stored learned optimisers further: ``python -m backprop2lib.learned.extend [--profile paper]``.

The recipe :data:`~.catalogue.LONGER` is the LSTM recipe with twice the MNIST episodes. Episode ``e`` of any run
draws its instances from the training seed and ``e`` alone, so the first half of a 2,000-episode run is the stored
1,000-episode run. Instead of repeating it, :func:`seed_checkpoints` writes each longer run's resume checkpoint
from the stored shorter one (its parameters, history and validation curve), and ``python -m backprop2lib.store
train`` then trains the second half.

What an uninterrupted run would have and the store does not keep:

- the parameters at the last episode: the store keeps the best on validation, so a seed is continued only when
  its best was its last validation (the message says which seeds cannot be, and they train from scratch);
- Adam's moment estimates: they restart at zero at the continuation (bias correction re-estimates them within a
  few hundred updates). This is the one way a continued run differs from an uninterrupted one; chapter 6 says so.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from ..store.artifacts import compute_stamp, load, status
from ..store.registry import partial_checkpoint
from .catalogue import LONGER, RECIPES, model_name, recipe_of, trained_models
from .meta_train import MetaTrainConfig
from .optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig


def _source_name(spec) -> str:
    """The stored run a longer run continues: the same problem, cell, scaling and seed at the base budget."""
    cell, r, _ = RECIPES[recipe_of(spec)]
    base = next(name for name, (c, rr, times) in RECIPES.items() if (c, rr, times) == (cell, r, 1))
    profile = spec.name.rsplit("-", 1)[1]
    return model_name(spec.config["family"]["problem"], base, spec.config["training_seed"], profile)


def continuation(spec, source) -> dict:
    """The resume checkpoint of ``spec``'s run (:func:`~.meta_train.meta_train`'s format) from the stored run
    ``source`` of the same recipe at fewer episodes. Raises ValueError if ``source`` cannot be continued."""
    c, s = spec.config, source.spec.config
    same = {k: v for k, v in c.items() if k != "meta"} == {k: v for k, v in s.items() if k != "meta"}
    meta, short = dict(c["meta"]), dict(s["meta"])
    if not same or {**meta, "episodes": 0} != {**short, "episodes": 0} or short["episodes"] >= meta["episodes"]:
        raise ValueError(f"{spec.name}: {source.spec.name} is not the same run with fewer episodes")
    record = source.record
    last = len(record["episode_losses"]) - 1
    if last != short["episodes"] - 1:
        raise ValueError(f"{source.spec.name}: its record has {last + 1} episodes, its configuration "
                         f"{short['episodes']}")
    if record["best_episode"] != last:
        raise ValueError(f"{source.spec.name}: its stored parameters are from episode {record['best_episode'] + 1}, "
                         f"not its last ({last + 1}), so the run cannot be continued; {spec.name} trains from "
                         "scratch")
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(**c["optimiser"]), seed=c["training_seed"])
    net.load_state_dict(source.state)  # also checks the parameters fit the configuration
    fresh_adam = torch.optim.Adam(net.parameters(), lr=meta["meta_lr"]).state_dict()  # no moments: they restart
    params = {k: v.clone() for k, v in net.state_dict().items()}
    return {"config": asdict(MetaTrainConfig(**meta)), "net_config": asdict(net.config), "episode": last,
            "net": params, "meta_opt": fresh_adam, "best_net": {k: v.clone() for k, v in params.items()},
            "best_episode": record["best_episode"], "best_validation": record["best_validation"],
            "episode_losses": list(record["episode_losses"]),
            "validation": [(int(e), float(v)) for e, v in record["validation"]],
            "bad_truncations": [tuple(t) for t in record["bad_truncations"]],
            "seconds": record["meta_training_seconds"], "optimisee_steps": record["optimisee_steps"]}


def seed_checkpoints(profile: str, root: Path | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Write the resume checkpoint of every :data:`LONGER` run that is neither stored nor started, from its fresh
    stored shorter run; returns the names seeded. Runs whose shorter run is missing, stale or cannot be continued
    are left to train from scratch, saying why."""
    seeded = []
    for spec in trained_models(profile):
        if recipe_of(spec) != LONGER or not spec.persist:
            continue
        stamp = compute_stamp(spec)
        target = partial_checkpoint(spec, stamp, root)
        if status(spec, root, stamp=stamp) == "fresh" or target.exists():
            continue
        source_spec = next(s for s in trained_models(profile) if s.name == _source_name(spec))
        state = status(source_spec, root)
        if state != "fresh":
            log(f"{spec.name}: {source_spec.name} is {state}; nothing to continue")
            continue
        try:
            payload = continuation(spec, load(source_spec, root))
        except ValueError as err:
            log(str(err))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(target)
        log(f"{spec.name}: continues {source_spec.name} from episode {payload['episode'] + 1} "
            f"({target.parent.name}/{target.name})")
        seeded.append(spec.name)
    return seeded


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="paper", help="smoke, paper or full (default paper)")
    args = p.parse_args(argv)
    seeded = seed_checkpoints(args.profile)
    print(f"{len(seeded)} run(s) ready to continue; train them with python -m backprop2lib.store train "
          f"--profile {args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
