"""The learned-optimizer chapter's experiments: instance sets, meta-training runs, tuned baselines, tables.

Instances are drawn from seeds that never overlap: meta-training episodes use seeds 0, 1, 2, ...;
validation instances use ``VALIDATION_SEED`` and test instances ``TEST_SEED``. MNIST optimizees
train on images from different splits of the bundled subset: meta-training on the train split,
validation on the validation split, test on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..data.mnist import Split, bundled_split
from ..learned.baselines import BASELINES, LearnedStepper
from ..learned.evaluate import Curve, LRChoice, mean_ci, paired_difference, run, steps_to_reach, tune_lr
from ..learned.meta_train import MetaTrainConfig, MetaTrainResult, meta_train
from ..learned.optimizer import CoordinatewiseOptimizer, LearnedOptimizerConfig
from ..learned.problems import MNISTNets, Quadratics

VALIDATION_SEED = 1_000_000
TEST_SEED = 2_000_000
TUNING_SEED = 3_000_000
EVALUATION_COORDINATES = 16_384  # coordinates a learned optimizer steps at once in evaluation


@dataclass(frozen=True)
class Family:
    """How to draw instances of one optimizee family for meta-training, validation and test."""

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
    label = f"MNIST {'-'.join(map(str, (784, *hidden, 10)))} {activation}"
    return Family(label, lambda n, seed, name: MNISTNets.sample(n, pools[name], hidden=hidden, activation=activation,
                                                                 seed=seed))


def train_optimizer(family: Family, net_config: LearnedOptimizerConfig, config: MetaTrainConfig, *,
                    instances_per_episode: int, validation_instances: int, checkpoint: str | Path | None = None,
                    seed: int = 0) -> MetaTrainResult:
    """Meta-train a fresh optimizer on ``family``; resumes from ``checkpoint`` if it exists."""
    net = CoordinatewiseOptimizer(net_config, seed=seed)
    return meta_train(net, family.train(instances_per_episode), family.validation(validation_instances), config,
                      checkpoint=checkpoint)


def tuned_baselines(family: Family, horizon: int, grid: Sequence[float], *, tuning_instances: int,
                    names: Sequence[str] = ("SGD", "NAG", "RMSprop", "Adam")) -> dict[str, LRChoice]:
    """Every baseline's learning rate, tuned on validation-split instances by the final loss at ``horizon``."""
    problems = family.tuning(tuning_instances)
    return {name: tune_lr(lambda lr, cls=BASELINES[name]: cls(lr), grid, problems, horizon) for name in names}


def evaluate(family: Family, learned: Mapping[str, CoordinatewiseOptimizer], choices: Mapping[str, LRChoice],
             n_instances: int, horizon: int) -> dict[str, Curve]:
    """Paired runs on the same test instances (same initialisations and minibatches) for every optimizer."""
    problems = family.test(n_instances)
    # learned optimizers on about 16k coordinates at a time: the same numbers, several times faster
    # on MNIST nets (one net's per-coordinate state stays in cache), and quadratics (10 coordinates
    # each) stay in one batch, where per-call overheads would dominate
    chunk = max(1, EVALUATION_COORDINATES // problems.init().shape[1])
    curves = {name: run(LearnedStepper(net, name=name), problems, horizon, chunk_size=chunk)
              for name, net in learned.items()}
    for name, choice in choices.items():
        curves[name] = run(BASELINES[name](choice.best), problems, horizon)
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
            s = mean_ci(curve, step)
            ref = mean_ci(curves[reference], step).mean if reference in curves else np.nan
            row += [f"{s.mean:.3g} ± {s.ci95:.2g}", f"{s.mean / ref:.2f}"]
        row.append(str(int(curve.diverged.sum())))
        rows.append(row)
    return rows


def verdict(a: Curve, b: Curve, step: int) -> str:
    """'lower' / 'higher' / 'not distinguishable': the paired difference a − b and its 95% CI."""
    d = paired_difference(a, b, step)
    if d.mean + d.ci95 < 0:
        return "lower"
    if d.mean - d.ci95 > 0:
        return "higher"
    return "not distinguishable"


def adam_steps_to_match(curves: Mapping[str, Curve], learned: str, step: int) -> int | None:
    """Steps tuned Adam needs to reach the learned optimizer's mean loss at ``step`` (None: never)."""
    target = mean_ci(curves[learned], step).mean
    return steps_to_reach(curves["Adam"], target)
