"""The learned-optimiser chapter's experiments: instance sets, meta-training runs, tuned baselines, tables.

Instances are drawn from seeds that never overlap: meta-training episodes use seeds 0, 1, 2, ...;
validation instances use ``VALIDATION_SEED`` and test instances ``TEST_SEED``. MNIST optimisees
train on images from different splits of the bundled subset: meta-training on the train split,
validation on the validation split, test on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..data.mnist import N_CLASSES, N_PIXELS, Split, bundled_split
from ..learned.stepper import LearnedStepper
from ..learned.meta_train import MetaTrainConfig, MetaTrainResult, meta_train
from ..learned.optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig
from ..learned.problems import MNISTNets, Quadratics
from ..optim import STEPPERS, Curve, LRChoice, run, tune_lr
from ..stats import Comparison, compare

VALIDATION_SEED = 1_000_000
TEST_SEED = 2_000_000
TUNING_SEED = 3_000_000
EVALUATION_COORDINATES = 16_384  # coordinates a learned optimiser steps at once in evaluation


@dataclass(frozen=True)
class Family:
    """How to draw instances of one optimisee family for meta-training, validation and test."""

    name: str
    sample: Callable[[int, int, str], object]  # (n, seed, split name) -> instances

    def train(self, n: int) -> Callable[[int], object]:
        return lambda episode: self.sample(n, episode, "train")

    def validation(self, n: int) -> object:
        return self.sample(n, VALIDATION_SEED, "validation")

    def tuning(self, n: int) -> object:
        return self.sample(n, TUNING_SEED, "validation")

    def test(self, n: int) -> object:
        return self.sample(n, TEST_SEED, "test")


def quadratic_family(draw: str = "gaussian", dim: int = 10) -> Family:
    return Family(f"quadratic ({draw})", lambda n, seed, split: Quadratics.sample(n, dim=dim, draw=draw, seed=seed))


def mnist_family(*, hidden: tuple[int, ...] = (20,), activation: str = "sigmoid", split: Split | None = None) -> Family:
    data = split if split is not None else bundled_split(seed=0)
    pools = {"train": data.train, "validation": data.validation, "test": data.test}
    label = f"MNIST {'-'.join(map(str, (N_PIXELS, *hidden, N_CLASSES)))} {activation}"
    return Family(label, lambda n, seed, name: MNISTNets.sample(n, pools[name], hidden=hidden, activation=activation,
                                                                 seed=seed))


def train_optimiser(family: Family, net_config: LearnedOptimiserConfig, config: MetaTrainConfig, *,
                    instances_per_episode: int, validation_instances: int, checkpoint: str | Path | None = None,
                    seed: int = 0) -> MetaTrainResult:
    """Meta-train a fresh optimiser on ``family``; resumes from ``checkpoint`` if it exists."""
    net = CoordinatewiseOptimiser(net_config, seed=seed)
    return meta_train(net, family.train(instances_per_episode), family.validation(validation_instances), config,
                      checkpoint=checkpoint)


def tuned_baselines(family: Family, horizon: int, grid: Sequence[float], *, tuning_instances: int,
                    names: Sequence[str] = ("SGD", "NAG", "RMSprop", "Adam")) -> dict[str, LRChoice]:
    """Every baseline's learning rate, tuned on validation-split instances by the final loss at ``horizon``."""
    problems = family.tuning(tuning_instances)
    return {name: tune_lr(lambda lr, cls=STEPPERS[name]: cls(lr), grid, problems, horizon) for name in names}


def evaluate(family: Family, learned: Mapping[str, CoordinatewiseOptimiser], choices: Mapping[str, LRChoice],
             n_instances: int, horizon: int) -> dict[str, Curve]:
    """Paired runs on the same test instances (same initialisations and minibatches) for every optimiser."""
    problems = family.test(n_instances)
    # learned optimisers on about 16k coordinates at a time: the same numbers, several times faster
    # on MNIST nets (one net's per-coordinate state stays in cache), and quadratics (10 coordinates
    # each) stay in one batch, where per-call overheads would dominate
    chunk = max(1, EVALUATION_COORDINATES // problems.init().shape[1])
    curves = {name: run(LearnedStepper(net, name=name), problems, horizon, chunk_size=chunk)
              for name, net in learned.items()}
    for name, choice in choices.items():
        curves[name] = run(STEPPERS[name](choice.best), problems, horizon)
    return curves


def results_rows(curves: Mapping[str, Curve], steps: Sequence[int], reference: str = "Adam") -> list[list[str]]:
    """Loss ± 95% CI at each step, the ratio to ``reference`` (mean over instances) and diverged counts."""
    rows = []
    for name, curve in curves.items():
        row = [name]
        for step in steps:
            if step > curve.n_steps:
                row += ["–", "–"]
                continue
            s = curve.summary(step)
            ref = curves[reference].summary(step).mean if reference in curves else np.nan
            row += [f"{s.mean:.3g} ± {s.ci95:.2g}", f"{s.mean / ref:.2f}"]
        row.append(str(int(curve.diverged.sum())))
        rows.append(row)
    return rows


def comparison(a: Curve, b: Curve, step: int) -> Comparison:
    """a against b at ``step``: the paired difference a − b over the shared test instances, normal 95% CI.

    An instance where either run diverged by ``step`` is left out and counted.
    """
    if a.n_instances != b.n_instances:
        raise ValueError(f"a, b: expected runs on the same instances, got {a.n_instances} and {b.n_instances}")
    if a.problem and b.problem and a.problem != b.problem:
        raise ValueError(f"a, b: runs on different problems ({a.problem!r} and {b.problem!r})")
    return compare(a.at(step), b.at(step), paired=True, diverged_above=min(a.diverged_above, b.diverged_above))


def verdict(a: Curve, b: Curve, step: int) -> str:
    """'lower' / 'higher' / 'not distinguishable': the paired difference a − b and its 95% CI."""
    return comparison(a, b, step).verdict


def adam_steps_to_match(curves: Mapping[str, Curve], learned: str, step: int) -> int | None:
    """Steps tuned Adam needs to reach the learned optimiser's mean loss at ``step`` (None: never)."""
    target = curves[learned].summary(step).mean
    return curves["Adam"].steps_to_reach(target)
