"""The second-order chapter's training comparisons: problems, learning-rate tuning, summaries.

A :class:`Problem` is one training problem run from T random initialisations at once (the seeds
are the model axis): the plane-wave regression with backprop2's Gaussian units, or an MNIST MLP
on the bundled subset. ``problem.seeded(seed)`` gives the initialisations of one seed as a
problem of the one loop (:func:`backprop2lib.optim.run`), so every optimiser sees the same
initialisations and the same minibatches. Learning rates are tuned with
:func:`backprop2lib.optim.tune_lr` on *other* initialisations (a tuning seed) by the final
training loss; the chosen rate is reported with a flag when it sits at the edge of its grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data.mnist import N_CLASSES, N_PIXELS, Minibatches, bundled_split
from ..models.mlp import MLP
from ..optim import Curve
from ..second_order.hessian import mean_loss
from ..second_order.optimisers import MLPProblem
from ..stats import Summary, summarise
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

    def seeded(self, seed: int) -> MLPProblem:
        """The T models of ``seed`` as a problem of :func:`backprop2lib.optim.run` (the block draws use
        the same seed)."""
        return MLPProblem(self.model, self.init(seed), self.batches, self.loss, self.evaluate, seed,
                          f"{self.name}, seed {seed}")


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
    ``accuracy`` is measured on the test split. The learned-optimiser chapter's
    :class:`~backprop2lib.learned.problems.MNISTNets` draws from the same
    :class:`~backprop2lib.data.mnist.Minibatches`, but one minibatch per instance; here one
    minibatch serves all T models, which differ only in their initialisation.
    """
    split = bundled_split(seed=0)
    train, test = Minibatches.of(split.train), Minibatches.of(split.test)
    model = MLP((N_PIXELS, hidden, N_CLASSES), activation=activation)
    T = n_models

    def batches(step: int) -> Batch:
        x, y = train.draw(seed * 1_000_003 + step, (batch_size,))
        return x.expand(T, -1, -1), y.expand(T, -1)

    eval_batch = (train.x[:n_eval].expand(T, -1, -1), train.y[:n_eval].expand(T, -1))

    def evaluate(w: torch.Tensor) -> torch.Tensor:
        return mean_loss(model, w, *eval_batch, loss="cross_entropy")

    def accuracy(w: torch.Tensor) -> torch.Tensor:
        out = model.forward(model.unflatten(w), test.x.expand(w.shape[0], -1, -1))
        return (out.argmax(-1) == test.y).to(torch.float64).mean(1)

    return Problem(f"MNIST {N_PIXELS}-{hidden}-{N_CLASSES}", model, "cross_entropy", "pytorch", batches, evaluate, T,
                   accuracy)


def final_summary(curve: Curve) -> Summary:
    """Mean ± 95% CI of the final loss over the models; diverged models are counted, not averaged.

    With a handful of initialisations the interval uses Student's t, not the normal quantile.
    """
    return summarise(curve.final, interval="t")  # diverged models are NaN there


def training_rows(curves: dict[str, Curve], extra: Callable[[str, Curve], list[str]] | None = None) -> list[list[str]]:
    """One table row per optimiser: final loss ± 95% t-interval over the models, diverged models,
    ms per step, the mean fraction of plain-Newton directions (block Newton only), then ``extra``."""
    rows = []
    for name, c in curves.items():
        s = final_summary(c)
        frac = c.info.get("newton_fraction")
        row = [name, f"{s.mean:.3g} ± {s.ci95:.2g}", str(int(c.diverged.sum())), f"{1e3 * c.seconds_per_step:.2f}",
               f"{np.mean(frac):.2f}" if frac else "–"]
        rows.append(row + (extra(name, c) if extra else []))
    return rows


def step_seconds(optimiser, d_in: int, *, hidden: int = 20, n_out: int = 10, n_points: int = 64,
                 repeats: int = 3, rounds: int = 3, seed: int = 0) -> tuple[int, float]:
    """(P, seconds per step) of ``optimiser`` on one MLP d_in → hidden → n_out with random data.

    P grows with the input width at a fixed hidden width, like an MNIST MLP, so the cost of the
    block Hessians (O(N·P·b)) and eigendecompositions (O(P·b²)) is what grows.
    """
    from ..timing import time_per_call

    model = MLP((d_in, hidden, n_out), activation="sigmoid")
    g = torch.Generator().manual_seed(seed)
    w = model.flatten(model.init(1, generator=g))
    x = torch.randn(1, n_points, d_in, generator=g)
    y = torch.randint(n_out, (1, n_points), generator=g)
    problem = MLPProblem(model, w, lambda step: (x, y), "cross_entropy", seed=seed)
    state = optimiser.init(w, problem)
    loss, grad = problem.loss_and_grad(w, 0)
    # w is not updated: every call does the same work (a second-order step computes its own
    # loss, gradient and Hessians on the batch)
    seconds = time_per_call(lambda: optimiser.step(w, grad, state, loss), repeats=repeats, warmup=1, rounds=rounds)
    return model.n_params, seconds
