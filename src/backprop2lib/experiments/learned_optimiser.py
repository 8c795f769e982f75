"""Chapter 6's experiments: the LSTM learned optimiser of Andrychowicz et al. (2016), meta-trained and
compared with tuned SGD, NAG, RMSprop and Adam on held-out instances.

The chapter's sections, one function each: :func:`compare_on_quadratics` (LSTM and GRU
meta-trained on random quadratics, baselines tuned, all evaluated on the same test instances),
:func:`compare_on_mnist` (the same on a small MNIST network), :func:`generalisation` (the
MNIST-trained LSTM on other networks) and :func:`paper_comparison` (ratios to tuned Adam next to
the paper's). :func:`run` runs them all; the ``*_table``, ``*_text`` and ``*_figure`` functions
present a section's result; :func:`check_claims` checks the chapter's findings.

Instances are drawn from seeds that never overlap: meta-training episodes use seeds 0, 1, 2, ...;
validation instances use ``VALIDATION_SEED``, tuning instances ``TUNING_SEED`` and test instances
``TEST_SEED``. MNIST optimisees train on images from different splits of the bundled subset:
meta-training on the train split, validation and tuning on the validation split, test on the test
split. Every draw (instances, minibatches, the optimiser's initial weights) comes from an explicit
seed, so a section gives the same numbers alone as in the notebook, in any order.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..claims import Claims
from ..data.mnist import N_CLASSES, N_PIXELS, Split, bundled_split
from ..learned.meta_train import MetaTrainConfig, MetaTrainResult, meta_train
from ..learned.optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig
from ..learned.problems import MNISTNets, Quadratics
from ..learned.stepper import LearnedStepper
from ..optim import LR_GRID, STEPPERS, Curve, LRChoice, run as run_optimiser, tune_lr
from ..profiles import Profile, resolve_profile
from ..stats import Comparison, compare
from ..tables import markdown_table

VALIDATION_SEED = 1_000_000
TEST_SEED = 2_000_000
TUNING_SEED = 3_000_000
EVALUATION_COORDINATES = 16_384  # coordinates a learned optimiser steps at once in evaluation
CHECKPOINT_ENV = "BACKPROP2_CHECKPOINT_DIR"
"""With this environment variable set, meta-training keeps checkpoints there and resumes from them."""

PAPER_LOSSES: dict[str, tuple[float, float]] = {
    "quadratic, 100": (0.040, 0.051), "MNIST, 100": (0.25, 0.36), "MNIST, 200": (0.21, 0.30),
    "40 units, 100": (0.19, 0.33), "2 layers, 100": (0.33, 0.70), "ReLU, 100": (2.5, 0.37),
}
"""(LSTM, Adam) loss at a step, digitised from the paper's figures (``shared/reference/learned-optimizer.md``)."""


# ---------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Settings:
    """Every size, grid and seed of chapter 6.

    Against the published setting (Andrychowicz et al. 2016 and the authors' released code;
    ``shared/reference/learned-optimizer.md``). As published in every profile: a two-layer LSTM
    with 20 units per layer shared by every coordinate; episodes of 100 optimisee steps unrolled
    20 at a time, fresh instances every episode; quadratics ‖Wθ − y‖² with W 10 × 10 and y
    Gaussian, raw gradients, output scale 1, 128 functions per episode; a 784-20-10 sigmoid MNIST
    network, N(0, 0.01²) initialisation, minibatches of 128, log/sign preprocessing with p = 10
    and output scale 0.1 (the paper's; the released code used p = 5 and 0.01); generalisation to
    40 hidden units, two hidden layers and ReLU.

    Reductions in ``paper`` (a 2-core CPU): 150 quadratic meta-training episodes and 50 MNIST
    episodes of one network each (20 for the GRU), where the released code runs 10,000 of 100
    steps; MNIST is the library's bundled 5,000-image subset (3,000 / 1,000 / 1,000 images for
    train / validation / test) in every profile, not the 70,000 images of MNIST; the
    generalisation tests run 100 steps (the paper: 200) on 100 test networks, with rates tuned
    on 5 validation networks (MNIST itself: 10). ``full`` meta-trains for 1,000 quadratic and
    10,000 MNIST episodes (LSTM and GRU), otherwise as ``paper``. Reductions in ``smoke`` (CI):
    60 quadratic episodes of 64 functions, 2 MNIST episodes per cell, 4 MNIST test networks
    over 40 steps, 4 networks over 20 steps per generalisation test, 4 tuning instances.

    Not published settings, ours: meta-Adam's learning rate 3e-3 (the released code 1e-3;
    reimplementations found 3e-3 to 1e-2 to work), validation every 10 episodes on 100 quadratics
    or 4 MNIST networks (the released code: every 1,000), the GRU variant, the half-decade
    learning-rate grid 1e-4 … 10 and every tuning and test size (200 test quadratics evaluated
    to step 200, twice the training horizon; rates tuned on 100 quadratics at step 100).

    Seeds. Instances come from the episode number (meta-training) and from the module's
    ``VALIDATION_SEED``, ``TUNING_SEED`` and ``TEST_SEED``; the optimiser's initial weights from
    ``init_seed``; the bundled MNIST split from seed 0.

    Checkpoints. ``checkpoint_dir`` (:meth:`for_profile` reads it from ``$BACKPROP2_CHECKPOINT_DIR``;
    None: no checkpoints) keeps each meta-training run in ``06_<problem>_<cell>_<profile>.pt``,
    and a run that finds its file resumes from it with the same numbers.
    """

    # -- sizes that depend on the profile
    quad_episodes: int  # quadratic meta-training episodes (LSTM and GRU)
    quad_instances: int  # optimisees per quadratic meta-training episode
    mnist_episodes: int  # MNIST meta-training episodes, LSTM
    mnist_gru_episodes: int  # … GRU
    mnist_test: int  # MNIST test networks
    mnist_horizon: int  # MNIST evaluation and tuning horizon
    shift_test: int  # test networks per generalisation test
    shift_horizon: int  # evaluation and tuning horizon of the generalisation tests
    tuning_instances: int  # MNIST validation-split networks the baselines' rates are tuned on
    shift_tuning_instances: int  # … per generalisation test
    profile: str = "paper"  # names the checkpoint files
    checkpoint_dir: str | None = None
    # -- the learned optimiser and its meta-training
    cells: tuple[str, ...] = ("lstm", "gru")
    hidden: int = 20
    layers: int = 2
    quad_preprocess: float | None = None  # raw gradients
    quad_output_scale: float = 1.0
    mnist_preprocess: float | None = 10.0  # p of the log/sign preprocessing
    mnist_output_scale: float = 0.1
    episode_length: int = 100  # the training horizon
    unroll: int = 20
    meta_lr: float = 3e-3
    validate_every: int = 10
    init_seed: int = 0
    # -- quadratics
    quad_dim: int = 10
    quad_draw: str = "gaussian"
    quad_validation_instances: int = 100
    quad_tuning_instances: int = 100
    quad_horizon: int = 100  # baselines tuned by the loss here; the claims compare here
    quad_test: int = 200
    quad_eval_steps: int = 200  # evaluated beyond the training horizon
    # -- MNIST
    mnist_instances: int = 1  # networks per meta-training episode
    mnist_validation_instances: int = 4
    mnist_report_steps: tuple[int, ...] = (100, 200)  # reported where within the horizon
    # -- generalisation: label, hidden layers, activation
    shifts: tuple[tuple[str, tuple[int, ...], str], ...] = (
        ("40 units", (40,), "sigmoid"),
        ("2 layers", (20, 20), "sigmoid"),
        ("ReLU", (20,), "relu"),
    )
    # -- the baselines' learning rates
    lr_grid: tuple[float, ...] = (*LR_GRID, 3.0, 10.0)  # half-decades 1e-4 … 10

    @classmethod
    def for_profile(cls, profile: str | Profile | None) -> "Settings":
        """The chapter's settings in ``profile`` (``smoke``, ``paper`` or ``full``; None: the environment's),
        with ``checkpoint_dir`` from ``$BACKPROP2_CHECKPOINT_DIR``."""
        p = resolve_profile(profile)
        return cls(
            quad_episodes=p.select(smoke=60, paper=150, full=1000),
            quad_instances=p.select(smoke=64, paper=128),
            mnist_episodes=p.select(smoke=2, paper=50, full=10000),
            mnist_gru_episodes=p.select(smoke=2, paper=20, full=10000),
            mnist_test=p.select(smoke=4, paper=100),
            mnist_horizon=p.select(smoke=40, paper=200),
            shift_test=p.select(smoke=4, paper=100),
            shift_horizon=p.select(smoke=20, paper=100),
            tuning_instances=p.select(smoke=4, paper=10),
            shift_tuning_instances=p.select(smoke=4, paper=5),
            profile=p.name,
            checkpoint_dir=os.environ.get(CHECKPOINT_ENV) or None,
        )

    def optimiser_config(self, problem: str, cell: str) -> LearnedOptimiserConfig:
        """The learned optimiser for ``problem`` (``"quadratic"`` or ``"mnist"``) with ``cell``."""
        preprocess, scale = ((self.quad_preprocess, self.quad_output_scale) if problem == "quadratic"
                             else (self.mnist_preprocess, self.mnist_output_scale))
        return LearnedOptimiserConfig(cell=cell, hidden=self.hidden, layers=self.layers, preprocess=preprocess,
                                      output_scale=scale)

    def meta_train_config(self, episodes: int) -> MetaTrainConfig:
        return MetaTrainConfig(episodes=episodes, episode_length=self.episode_length, unroll=self.unroll,
                               meta_lr=self.meta_lr, validate_every=self.validate_every)

    def checkpoint(self, name: str) -> str | None:
        """The checkpoint file of meta-training run ``name`` (None without ``checkpoint_dir``)."""
        return None if self.checkpoint_dir is None else os.path.join(self.checkpoint_dir,
                                                                     f"06_{name}_{self.profile}.pt")

    @property
    def mnist_steps(self) -> list[int]:
        """The steps the MNIST results are reported at: ``mnist_report_steps`` within the horizon, else the horizon."""
        return [s for s in self.mnist_report_steps if s <= self.mnist_horizon] or [self.mnist_horizon]


# ---------------------------------------------------------------------------------------- families and helpers

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
    curves = {name: run_optimiser(LearnedStepper(net, name=name), problems, horizon, chunk_size=chunk)
              for name, net in learned.items()}
    for name, choice in choices.items():
        curves[name] = run_optimiser(STEPPERS[name](choice.best), problems, horizon)
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


def _meta_train_cells(settings: Settings, family: Family, problem: str, episodes: Mapping[str, int], *,
                      instances: int, validation_instances: int
                      ) -> tuple[dict[str, MetaTrainResult], dict[str, float]]:
    """Each cell meta-trained on ``family`` for its episodes: results and wall seconds (with validation),
    by display name (``"LSTM"``, ``"GRU"``)."""
    runs, walls = {}, {}
    for cell, n in episodes.items():
        start = time.perf_counter()
        runs[cell.upper()] = train_optimiser(family, settings.optimiser_config(problem, cell),
                                             settings.meta_train_config(n), instances_per_episode=instances,
                                             validation_instances=validation_instances,
                                             checkpoint=settings.checkpoint(f"{problem}_{cell}"),
                                             seed=settings.init_seed)
        walls[cell.upper()] = time.perf_counter() - start
    return runs, walls


# ---------------------------------------------------------------------------------------- sections

@dataclass(frozen=True, eq=False)
class QuadraticResults:
    """Meta-training on quadratics (by cell), the tuned baselines and every optimiser on the test instances."""

    training: dict[str, MetaTrainResult]  # "LSTM", "GRU"
    wall_seconds: dict[str, float]  # meta-training with validation, by cell
    choices: dict[str, LRChoice]  # the baselines' tuned learning rates
    curves: dict[str, Curve]  # LSTM, GRU, then the baselines, on the same test instances
    n_test: int
    horizon: int  # the training horizon: tuning and the claims
    eval_steps: int  # evaluated up to here


def compare_on_quadratics(settings: Settings) -> QuadraticResults:
    """LSTM and GRU meta-trained on quadratics, baselines tuned at ``quad_horizon``, everything evaluated on
    ``quad_test`` test quadratics for ``quad_eval_steps`` steps."""
    family = quadratic_family(settings.quad_draw, settings.quad_dim)
    training, walls = _meta_train_cells(settings, family, "quadratic",
                                        {cell: settings.quad_episodes for cell in settings.cells},
                                        instances=settings.quad_instances,
                                        validation_instances=settings.quad_validation_instances)
    choices = tuned_baselines(family, settings.quad_horizon, settings.lr_grid,
                              tuning_instances=settings.quad_tuning_instances)
    curves = evaluate(family, {k: r.net for k, r in training.items()}, choices, settings.quad_test,
                      settings.quad_eval_steps)
    return QuadraticResults(training, walls, choices, curves, settings.quad_test, settings.quad_horizon,
                            settings.quad_eval_steps)


@dataclass(frozen=True, eq=False)
class MNISTResults:
    """Meta-training on MNIST networks (by cell), the tuned baselines and the test curves."""

    training: dict[str, MetaTrainResult]  # "LSTM", "GRU"
    wall_seconds: dict[str, float]
    choices: dict[str, LRChoice]
    curves: dict[str, Curve]  # LSTM, then the baselines, on the same test networks
    gru: Curve  # the GRU on the same test networks, up to ``gru_step``
    n_test: int
    horizon: int
    steps: tuple[int, ...]  # the steps the results are reported at
    gru_step: int  # the GRU is compared with the LSTM here
    training_horizon: int  # the meta-training episodes' length

    @property
    def all_curves(self) -> dict[str, Curve]:
        return {**self.curves, "GRU": self.gru}


def compare_on_mnist(settings: Settings) -> MNISTResults:
    """LSTM and GRU meta-trained on the 784-20-10 sigmoid network (train split), baselines tuned on the
    validation split, everything evaluated on ``mnist_test`` networks on the test split."""
    family = mnist_family()
    training, walls = _meta_train_cells(settings, family, "mnist",
                                        dict(zip(settings.cells, (settings.mnist_episodes,
                                                                  settings.mnist_gru_episodes))),
                                        instances=settings.mnist_instances,
                                        validation_instances=settings.mnist_validation_instances)
    choices = tuned_baselines(family, settings.mnist_horizon, settings.lr_grid,
                              tuning_instances=settings.tuning_instances)
    curves = evaluate(family, {"LSTM": training["LSTM"].net}, choices, settings.mnist_test, settings.mnist_horizon)
    gru_step = min(settings.episode_length, settings.mnist_horizon)
    gru = evaluate(family, {"GRU": training["GRU"].net}, {}, settings.mnist_test, gru_step)["GRU"]
    return MNISTResults(training, walls, choices, curves, gru, settings.mnist_test, settings.mnist_horizon,
                        tuple(settings.mnist_steps), gru_step, settings.episode_length)


@dataclass(frozen=True, eq=False)
class Generalisation:
    """The MNIST-trained LSTM and re-tuned baselines on other networks: by label, curves and choices."""

    curves: dict[str, dict[str, Curve]]
    choices: dict[str, dict[str, LRChoice]]
    n_test: int
    horizon: int
    training_horizon: int  # the MNIST optimiser's meta-training episodes' length


def generalisation(settings: Settings, mnist: MNISTResults) -> Generalisation:
    """For each of ``shifts``: baselines re-tuned on that network, then the unchanged LSTM and the baselines on
    ``shift_test`` test networks for ``shift_horizon`` steps."""
    curves, choices = {}, {}
    for label, hidden, activation in settings.shifts:
        family = mnist_family(hidden=hidden, activation=activation)
        choices[label] = tuned_baselines(family, settings.shift_horizon, settings.lr_grid,
                                         tuning_instances=settings.shift_tuning_instances)
        curves[label] = evaluate(family, {"LSTM": mnist.training["LSTM"].net}, choices[label], settings.shift_test,
                                 settings.shift_horizon)
    return Generalisation(curves, choices, settings.shift_test, settings.shift_horizon, settings.episode_length)


@dataclass(frozen=True)
class PaperRow:
    """One setting of the paper's figures next to ours: LSTM ÷ Adam there and here, and the paired verdict."""

    setting: str
    paper_lstm: float
    paper_adam: float
    ratio: float  # here: mean LSTM loss ÷ mean tuned-Adam loss at ``step``
    step: int
    verdict: str  # here: LSTM vs tuned Adam, paired

    @property
    def paper_ratio(self) -> float:
        return self.paper_lstm / self.paper_adam


@dataclass(frozen=True)
class PaperComparison:
    rows: tuple[PaperRow, ...]


def paper_comparison(quadratics: QuadraticResults, mnist: MNISTResults, generalisation: Generalisation,
                     paper: Mapping[str, tuple[float, float]] = PAPER_LOSSES) -> PaperComparison:
    """Each setting of ``paper`` that was run here: the ratio LSTM ÷ tuned Adam at the paper's step (at the
    last step evaluated when that is shorter; MNIST only at the steps evaluated)."""
    ours = {"quadratic, 100": (quadratics.curves, min(100, quadratics.eval_steps))}
    for s in (100, 200):
        if s <= mnist.horizon:
            ours[f"MNIST, {s}"] = (mnist.curves, s)
    for label in generalisation.curves:
        ours[f"{label}, 100"] = (generalisation.curves[label], min(100, generalisation.horizon))
    rows = []
    for key, (lstm, adam) in paper.items():
        if key not in ours:
            continue
        curves, step = ours[key]
        mine = curves["LSTM"].summary(step).mean / curves["Adam"].summary(step).mean
        rows.append(PaperRow(key, lstm, adam, mine, step, verdict(curves["LSTM"], curves["Adam"], step)))
    return PaperComparison(tuple(rows))


# ---------------------------------------------------------------------------------------- run

@dataclass(frozen=True, eq=False)
class Results:
    settings: Settings
    quadratics: QuadraticResults
    mnist: MNISTResults
    generalisation: Generalisation
    paper: PaperComparison


def run(settings: Settings) -> Results:
    """Every section of the chapter, in the notebook's order."""
    quadratics = compare_on_quadratics(settings)
    mnist = compare_on_mnist(settings)
    shifts = generalisation(settings, mnist)
    return Results(settings, quadratics, mnist, shifts, paper_comparison(quadratics, mnist, shifts))


# ---------------------------------------------------------------------------------------- tables, text

def baselines_table(result: QuadraticResults | MNISTResults) -> str:
    """Each baseline's tuned learning rate and whether it sits at the grid's edge."""
    return markdown_table(["baseline", "tuned lr", "at grid edge"],
                          [[n, f"{c.best:g}", str(c.at_edge)] for n, c in result.choices.items()])


def _loss_header(steps: Sequence[int]) -> list[str]:
    return ["optimiser"] + [x for s in steps for x in (f"loss at {s}", "÷ Adam")] + ["diverged"]


def quadratic_table(quadratics: QuadraticResults) -> str:
    """Loss ± 95% CI at the training horizon and at the end, the ratio to tuned Adam, diverged instances."""
    steps = [quadratics.horizon, quadratics.eval_steps]
    return markdown_table(_loss_header(steps), results_rows(quadratics.curves, steps))


def mnist_table(mnist: MNISTResults) -> str:
    """As :func:`quadratic_table` at the reported steps, with the GRU (evaluated to ``gru_step``) last."""
    return markdown_table(_loss_header(mnist.steps), results_rows(mnist.all_curves, mnist.steps))


def generalisation_table(result: Generalisation) -> str:
    """Every network and optimiser: loss ± 95% CI at the horizon, the ratio to tuned Adam, diverged networks."""
    s = result.horizon
    rows = [[label] + r for label, curves in result.curves.items() for r in results_rows(curves, [s])]
    return markdown_table(["network", "optimiser", f"loss at {s}", "÷ Adam", "diverged"], rows)


def paper_table(result: PaperComparison) -> str:
    return markdown_table(["setting", "paper: LSTM ÷ Adam", "here: LSTM ÷ tuned Adam", "here: LSTM vs Adam (paired)"],
                          [[r.setting, f"{r.paper_ratio:.2f}", f"{r.ratio:.2f} (step {r.step})", r.verdict]
                           for r in result.rows])


def cost_table(quadratics: QuadraticResults, mnist: MNISTResults) -> str:
    """Each meta-training run's cost: seconds (training alone and with validation), episodes, optimisee steps."""
    runs = [(f"{problem}, {cell}", r, section.wall_seconds[cell])
            for problem, section in (("quadratic", quadratics), ("MNIST", mnist))
            for cell, r in section.training.items()]
    rows = [[name, f"{r.seconds:.0f}", f"{wall:.0f}", str(len(r.episode_losses)), f"{r.optimisee_steps:,}",
             f"{r.optimisee_steps / max(r.seconds, 1e-9):.0f}", str(r.best_episode), str(len(r.bad_truncations))]
            for name, r, wall in runs]
    return markdown_table(["meta-training", "seconds (training)", "seconds (with validation)", "episodes",
                           "optimisee steps", "optimisee steps / s", "best episode", "skipped truncations"], rows)


def comparisons_text(results: Results) -> str:
    """The paired comparisons that can differ between profiles: MNIST, generalisation, quadratics beyond the
    horizon, GRU against LSTM, and which tuned rates sit at the grid's edge."""
    quad, mnist, shifts = results.quadratics, results.mnist, results.generalisation
    lines = []
    for step in mnist.steps:
        need = adam_steps_to_match(mnist.curves, "LSTM", step)
        need = f"more than {mnist.horizon}" if need is None else need
        against_adam = verdict(mnist.curves["LSTM"], mnist.curves["Adam"], step)
        lines.append(f"MNIST, step {step}: LSTM vs tuned Adam: {against_adam}; "
                     f"tuned Adam needs {need} steps to reach the LSTM's mean loss at step {step}")
    s = shifts.horizon
    for label, curves in shifts.curves.items():
        lines.append(f"{label}, step {s}: LSTM vs tuned Adam: {verdict(curves['LSTM'], curves['Adam'], s)}")
    for n in quad.choices:
        lines.append(f"quadratics, step {quad.eval_steps} (beyond the training horizon): LSTM vs tuned {n}: "
                     f"{verdict(quad.curves['LSTM'], quad.curves[n], quad.eval_steps)}")
    lines.append(f"quadratics, step {quad.horizon}: GRU vs LSTM: "
                 f"{verdict(quad.curves['GRU'], quad.curves['LSTM'], quad.horizon)}")
    lines.append(f"MNIST, step {mnist.gru_step}: GRU vs LSTM: "
                 f"{verdict(mnist.gru, mnist.curves['LSTM'], mnist.gru_step)}")
    edge = [f"{where}: {n}" for where, ch in [("MNIST", mnist.choices), *shifts.choices.items()]
            for n, c in ch.items() if c.at_edge]
    lines.append(f"tuned learning rates at the grid edge: {edge or 'none'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- figures

_HORIZON_LINE = dict(color="#bbbbbb", lw=0.8, ls=":")


def quadratics_figure(quadratics: QuadraticResults):
    """Left: the test curves (mean and 95% CI), the training horizon dotted. Right: meta-training, the
    meta-loss of each episode and the validation loss."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_curves

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_curves(axes[0], quadratics.curves.values(), xlabel="optimisee steps",
                title=f"held-out quadratics ({quadratics.n_test} instances)")
    axes[0].axvline(quadratics.horizon, **_HORIZON_LINE)
    axes[0].legend(fontsize=8)
    for name, r in quadratics.training.items():
        axes[1].plot(np.asarray(r.episode_losses), lw=0.8, label=f"{name}: meta-loss per step")
        v = np.asarray(r.validation)
        axes[1].plot(v[:, 0], v[:, 1], "o-", ms=3, label=f"{name}: validation")
    axes[1].set(yscale="log", xlabel="meta-training episode", ylabel="mean loss over the episode",
                title="meta-training")
    axes[1].legend(fontsize=8)
    return fig


def mnist_figure(mnist: MNISTResults):
    """The MNIST test curves, the GRU's last (mean and 95% CI over networks), the training horizon dotted."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_curves

    fig, ax = plt.subplots()
    plot_curves(ax, list(mnist.all_curves.values()), xlabel="optimisee steps",
                title=f"MNIST 784-20-10 sigmoid, {mnist.n_test} test instances")
    ax.axvline(mnist.training_horizon, **_HORIZON_LINE)
    ax.legend(fontsize=8)
    return fig


def generalisation_figure(result: Generalisation):
    """One panel per network: the test curves (mean and 95% CI), the training horizon dotted."""
    import matplotlib.pyplot as plt

    from ..plotting import plot_curves

    fig, axes = plt.subplots(1, len(result.curves), figsize=(13, 3.8), sharey=True, squeeze=False)
    for ax, (label, curves) in zip(axes[0], result.curves.items()):
        plot_curves(ax, curves.values(), xlabel="optimisee steps", title=label)
        ax.axvline(result.training_horizon, **_HORIZON_LINE)
    axes[0, 0].legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------- claims

def check_claims(results: Results) -> Claims:
    """Print one verdict line per claim of the chapter (statements without measured numbers) and return them."""
    quad, mnist = results.quadratics, results.mnist
    claims = Claims()
    print(f"quadratic test instances: {quad.n_test}; baselines: {', '.join(quad.choices)}")
    claims.check("The LSTM beats every tuned baseline on held-out quadratics at step 100 (paired 95% CI)",
                 all(verdict(quad.curves["LSTM"], quad.curves[n], quad.horizon) == "lower" for n in quad.choices))
    claims.check("No learned-optimiser test instance diverged on quadratics or MNIST",
                 not quad.curves["LSTM"].diverged.any() and not mnist.curves["LSTM"].diverged.any())
    claims.check("The tuned quadratic learning rates are inside the grid",
                 not any(c.at_edge for c in quad.choices.values()))
    return claims
