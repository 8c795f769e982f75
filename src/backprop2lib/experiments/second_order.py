"""The second-order chapter's training comparisons: problems, learning-rate tuning, summaries.

A :class:`Problem` is one training problem run from T random initialisations at once (the seeds
are the model axis): the plane-wave regression with backprop2's Gaussian units, or an MNIST MLP
on the bundled subset. Every optimiser sees the same initialisations and the same minibatches.
Learning rates are tuned on *other* initialisations (a tuning seed) by the final training loss;
the chosen rate is reported with a flag when it sits at the edge of its grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from ..data.mnist import bundled_split
from ..models.mlp import MLP
from ..second_order.hessian import mean_loss
from ..second_order.optimizers import Optimizer, TrainingCurve, train
from ..stats import Z_95, Summary, summarise
from ..tasks.plane_wave import plane_wave

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Problem:
    name: str
    model: MLP
    loss: str
    init_scheme: str
    batches: Callable[[int], Batch]  # step -> (x [T, N, in], y); T is the number of models
    evaluate: Callable[[torch.Tensor], torch.Tensor]  # w [T, P] -> the recorded loss [T]
    n_models: int
    accuracy: Callable[[torch.Tensor], torch.Tensor] | None = None  # w -> test accuracy [T]

    def init(self, seed: int) -> torch.Tensor:
        """T fresh parameter vectors ``[T, P]`` (seed 0, 1, ... for the comparison, others for tuning)."""
        g = torch.Generator().manual_seed(seed)
        return self.model.flatten(self.model.init(self.n_models, scheme=self.init_scheme, generator=g))


def plane_wave_problem(*, n_models: int, n_points: int = 200, hidden: int = 20, seed: int = 0) -> Problem:
    """backprop2's setting: 2-D inputs, Gaussian hidden units, N(0, 1) initialisation, ½‖f − y‖².

    Full batch: every step sees all ``n_points`` points; the recorded loss is the training loss.
    """
    model = MLP((2, hidden, 1), activation="gaussian")
    x, y = plane_wave(n_points, seed=seed)
    batch = (x.expand(n_models, -1, -1), y.expand(n_models, -1, -1))

    def evaluate(w: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, w, *batch, loss="squared")

    return Problem("plane wave", model, "squared", "normal", lambda step: batch, evaluate, n_models)


def mnist_problem(*, n_models: int, hidden: int = 20, batch_size: int = 128, n_eval: int = 1000,
                  activation: str = "sigmoid", seed: int = 0) -> Problem:
    """784 → hidden → 10 on the bundled MNIST subset's training split, cross-entropy.

    Step k trains on minibatch k, drawn with a fixed seed so every optimiser sees the same ones;
    the recorded loss is the training loss on the first ``n_eval`` training images, and
    ``accuracy`` is measured on the test split.
    """
    split = bundled_split(seed=0)
    x_train, y_train = split.train.pixels(), split.train.labels
    x_test, y_test = split.test.pixels(), split.test.labels
    model = MLP((784, hidden, 10), activation=activation)
    T = n_models

    def batches(step: int) -> Batch:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(len(y_train), (batch_size,), generator=g)
        return x_train[idx].expand(T, -1, -1), y_train[idx].expand(T, -1)

    eval_batch = (x_train[:n_eval].expand(T, -1, -1), y_train[:n_eval].expand(T, -1))

    def evaluate(w: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, w, *eval_batch, loss="cross_entropy")

    def accuracy(w: torch.Tensor) -> torch.Tensor:
        out = model.forward(model.unflatten(w), x_test.expand(w.shape[0], -1, -1))
        return (out.argmax(-1) == y_test).to(torch.float64).mean(1)

    return Problem(f"MNIST {784}-{hidden}-10", model, "cross_entropy", "pytorch", batches, evaluate, T, accuracy)


def run(problem: Problem, optimizer: Optimizer, n_steps: int, *, seed: int = 0, eval_every: int = 1,
        progress: bool | None = None) -> TrainingCurve:
    """Train from the initialisations of ``seed`` (the block draws use the same seed)."""
    return train(problem.model, problem.init(seed), optimizer, problem.batches, n_steps, loss=problem.loss,
                 evaluate=problem.evaluate, eval_every=eval_every, seed=seed, progress=progress)


@dataclass(frozen=True)
class LearningRateChoice:
    name: str
    best: float
    grid: tuple[float, ...]
    final_losses: tuple[float, ...]  # mean final training loss per rate (inf when any run diverged)

    @property
    def at_edge(self) -> bool:
        i = self.grid.index(self.best)
        return i in (0, len(self.grid) - 1)


def tune_learning_rate(problem: Problem, optimizer: Optimizer, grid: Sequence[float], n_steps: int, *,
                       tuning_seed: int = 1000, eval_every: int = 10) -> LearningRateChoice:
    """The rate of ``grid`` with the lowest mean final training loss on the tuning initialisations.

    A rate where any model diverged scores inf. The test data is never used.
    """
    if len(grid) < 2:
        raise ValueError(f"grid: expected at least two learning rates, got {list(grid)!r}")
    finals = []
    for lr in grid:
        curve = run(problem, replace(optimizer, lr=lr), n_steps, seed=tuning_seed, eval_every=eval_every,
                    progress=False)
        finals.append(float("inf") if curve.diverged.any() else float(np.mean(curve.final)))
    best = grid[int(np.argmin(finals))]
    return LearningRateChoice(optimizer.name, float(best), tuple(float(g) for g in grid), tuple(finals))


def final_summary(curve: TrainingCurve) -> Summary:
    """Mean ± 95% CI of the final loss over the models; diverged models are counted, not averaged.

    With a handful of initialisations the interval uses Student's t, not the normal quantile.
    """
    s = summarise(curve.final)  # diverged models are NaN there
    return Summary(s.mean, t_interval(s.ci95, s.n), s.n, s.n_diverged)


def t_interval(normal_ci95: float, n: int) -> float:
    """Rescale a normal-quantile 95% half-width to Student's t with n − 1 degrees of freedom."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return normal_ci95 * float(t.ppf(0.975, n - 1)) / Z_95


def loss_at_time(curve: TrainingCurve, seconds: float) -> np.ndarray:
    """Each model's recorded loss at the last evaluation within ``seconds`` of training time."""
    i = int(np.searchsorted(curve.seconds, seconds, side="right")) - 1
    return curve.losses[max(i, 0)]


def step_seconds(optimizer: Optimizer, d_in: int, *, hidden: int = 20, n_out: int = 10, n_points: int = 64,
                 repeats: int = 3, rounds: int = 3, seed: int = 0) -> tuple[int, float]:
    """(P, seconds per step) of ``optimizer`` on one MLP d_in → hidden → n_out with random data.

    P grows with the input width at a fixed hidden width, like an MNIST MLP, so the cost of the
    block Hessians (O(N·P·b)) and eigendecompositions (O(P·b²)) is what grows.
    """
    from ..timing import time_per_call

    model = MLP((d_in, hidden, n_out), activation="sigmoid")
    g = torch.Generator().manual_seed(seed)
    w = model.flatten(model.init(1, generator=g))
    x = torch.randn(1, n_points, d_in, generator=g)
    y = torch.randint(n_out, (1, n_points), generator=g)
    state = optimizer.init(model, w, g)
    seconds = time_per_call(lambda: optimizer.step(model, w, (x, y), state, "cross_entropy"),
                            repeats=repeats, warmup=1, rounds=rounds)
    return model.n_params, seconds


def fitted_exponent(n_params: Sequence[int], seconds: Sequence[float]) -> float:
    """k in seconds ∝ P^k, least squares on log-log."""
    if len(n_params) < 2:
        raise ValueError("fitted_exponent: need at least two sizes")
    return float(np.polyfit(np.log(np.asarray(n_params, float)), np.log(np.asarray(seconds, float)), 1)[0])
