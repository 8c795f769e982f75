"""What one stored learned-optimiser job does: meta-train, then evaluate (:func:`train`).

A job's configuration (a :class:`~backprop2lib.store.ModelSpec`'s ``config``, listed per profile
by :mod:`.catalogue`) names a problem family, the optimiser, the meta-training budget, the
training seed (the optimiser's initial weights and the meta-training episodes' instances) and,
for the improved recipe, the random scaling of Lv et al. (2017)
(:class:`~backprop2lib.learned.problems.RandomlyScaled`). After meta-training, the early-stopped
optimiser runs on the evaluations the configuration lists: test instances from :mod:`.families`,
so a chapter's baselines later run on the same ones. The job makes those runs because on a
2-core CPU they take as long as a chapter's whole budget. This module's code, and what it
imports, is what a stored model's stamp covers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .families import TRAINING_SEED_STRIDE, Family, mnist_family, quadratic_family
from .meta_train import MetaTrainConfig, meta_train, unrolled_losses
from .optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig
from .problems import RandomlyScaled

EVALUATION_COORDINATES = 16_384  # coordinates a learned optimiser steps at once in evaluation


def family_of(entry: dict, device: torch.device | str = "cpu") -> Family:
    """The family a configuration entry names: ``{"problem": "quadratic", "draw", "dim"}`` or
    ``{"problem": "mnist", "hidden", "activation"}``, its instances on ``device``."""
    if entry["problem"] == "quadratic":
        return quadratic_family(entry.get("draw", "gaussian"), entry.get("dim", 10), device=device)
    if entry["problem"] == "mnist":
        return mnist_family(hidden=tuple(entry["hidden"]), activation=entry["activation"], device=device)
    raise ValueError(f"problem: unknown family {entry['problem']!r}; valid: quadratic, mnist")


def evaluate(net: CoordinatewiseOptimiser, problems, n_steps: int) -> np.ndarray:
    """The loss ``[n_steps + 1, B]`` of ``net`` run on every instance: on a CPU in chunks of about 16k
    coordinates (the same numbers as one batch; a chunk's recurrent state stays in cache), on a GPU at once."""
    on_gpu = problems.init().device.type == "cuda"
    chunk = problems.n_instances if on_gpu else max(1, EVALUATION_COORDINATES // problems.n_params)
    parts = [unrolled_losses(net, problems.chunk(a, min(a + chunk, problems.n_instances)), n_steps)
             for a in range(0, problems.n_instances, chunk)]
    return torch.cat(parts, dim=1).double().cpu().numpy()


def train(spec, checkpoint: Path | None, progress: bool | None = None,
          device: torch.device | str = "cpu") -> tuple[dict, dict]:
    """Meta-train the optimiser ``spec.config`` describes on ``device``, then run its evaluations: ``(parameters,
    record)``; each evaluation's losses are a float32 array ``[recorded steps, instances]`` (NaN where a run
    diverged). The instances and the optimiser's initial weights are drawn on the CPU, whatever the device."""
    c = spec.config
    device = torch.device(device)
    family = family_of(c["family"], device)
    net = CoordinatewiseOptimiser(LearnedOptimiserConfig(**c["optimiser"]), seed=c["training_seed"]).to(device)
    if c["compile"]:
        net.compile()
    sample = family.train(c["instances_per_episode"], c["training_seed"])
    if c["random_scaling"] > 0:
        base, r, offset = sample, c["random_scaling"], c["training_seed"] * TRAINING_SEED_STRIDE
        sample = lambda episode: RandomlyScaled(base(episode), r, seed=offset + episode)  # noqa: E731
    result = meta_train(net, sample, family.validation(c["validation_instances"]), MetaTrainConfig(**c["meta"]),
                        checkpoint=checkpoint, progress=progress)
    record = {
        "episode_losses": [float(f"{x:.6g}") for x in result.episode_losses],
        "validation": [[e, float(f"{v:.6g}")] for e, v in result.validation],
        "best_episode": result.best_episode, "best_validation": result.best_validation,
        "bad_truncations": [list(t) for t in result.bad_truncations],
        "meta_training_seconds": result.seconds, "optimisee_steps": result.optimisee_steps,
        "evaluations": {},
    }
    seconds = result.seconds
    for entry in c["evaluations"]:
        started = time.perf_counter()
        losses = evaluate(result.net, family_of(entry, device).test(entry["n"]), entry["steps"])
        steps = list(range(0, entry["steps"] + 1, entry["record_every"]))
        if steps[-1] != entry["steps"]:
            steps.append(entry["steps"])
        record["evaluations"][entry["label"]] = {"steps": steps, "losses": losses[steps].astype(np.float32),
                                                 "seconds": time.perf_counter() - started}
        seconds += time.perf_counter() - started
    record["seconds"] = seconds
    return {k: v.cpu() for k, v in result.net.state_dict().items()}, record
