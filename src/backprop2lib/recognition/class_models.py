"""One meta-learned reconstructor per digit class, with each method of the earlier chapters.

A class model's tasks are the images of its digit (``ImageTasks``): adapting to a task means
fitting that one image. Every method meta-learns from the same initialisation with the same inner-loop budget
(backprop2's learners with backprop2's line search, the others with a fixed step, which MAML
needs to differentiate through), so that they differ only in what they learn:

- ``reptile``, ``maml``, ``fomaml`` (first-order MAML): an initialisation μ (chapter 1);
- ``meta_sgd``: μ and per-parameter step sizes α (chapter 2's Meta-SGD);
- ``mean_only``: μ by backprop2's learner, without a scale (chapter 2's ablation);
- ``quadratic``, ``quartic``: μ and a per-parameter scale, backprop2's learner (chapter 2);
- ``scale_gradient``: μ and σ by meta-gradient (chapter 2);
- ``eve``: μ and per-parameter learning rates from the scale (chapter 3).

The ten classes are trained one after another: each call is batched over tasks, and ten is
the number of *meta-learners*, not of tasks, so the loop is not in a hot path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from .. import methods as registry
from ..data.mnist import MNIST, N_CLASSES, N_PIXELS
from ..meta.backprop2 import train_backprop2
from ..meta.maml import train_maml
from ..meta.meta_sgd import train_meta_sgd
from ..meta.reptile import train_reptile
from ..meta.scale_gradient import train_scale_gradient
from ..models.mlp import MLP
from ..scale.adapt import InnerLoop
from .images import ImageTasks
from .priors import ClassPriors

METHODS = registry.ids("reptile", "maml", "fomaml", "meta_sgd", "mean_only", "quadratic", "quartic",
                       "scale_gradient", "eve")
"""The methods chapter 5 trains class models with, by id (names and colours: :mod:`backprop2lib.methods`)."""


@dataclass(frozen=True)
class MetaSettings:
    """How much meta-training each class model gets (the same budget for every method)."""

    iterations: int = 200  # Reptile / MAML / scale-gradient meta-iterations
    meta_batch: int = 10  # images per meta-iteration
    support: int = 392  # pixels the inner loop adapts on (the rest are the query)
    inner_steps: int = 5
    # inner steps are steps on E (backprop2lib.meta's one convention)
    inner_lr: float = 0.3  # the scale-gradient learner's step, and every fixed-step adaptation when classifying
    # Reptile's and MAML's meta-training step: the chapter's runs passed them the same 0.3, then a step on the
    # MSE (one output), i.e. 0.6 on E, twice the step they adapt with when classifying (default_adaptation)
    maml_inner_lr: float = 0.6
    outer_lr: float = 1.0  # Reptile's (annealed) outer step
    meta_lr: float = 3e-3  # Adam on the MAML / scale-gradient meta-loss
    strength: float = 1e-2  # the regulariser's c during training
    decay: float = 0.2  # Eve's κ during training
    outer_iterations: int = 5  # backprop2 learner's outer iterations
    tasks_per_iteration: int = 50  # ... and images per outer iteration
    init_scheme: str = "normal"

    def __post_init__(self) -> None:
        for name in ("iterations", "meta_batch", "support", "inner_steps", "outer_iterations", "tasks_per_iteration"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.support >= N_PIXELS:
            raise ValueError(f"support: expected fewer than {N_PIXELS} pixels (the rest are the query), got {self.support}")
        if self.tasks_per_iteration < 2:
            raise ValueError("tasks_per_iteration: need at least 2 images to measure a spread")
        for name in ("inner_lr", "maml_inner_lr", "outer_lr", "meta_lr", "strength"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)!r}")

    def with_(self, **changes) -> "MetaSettings":
        return replace(self, **changes)


@dataclass
class ClassModels:
    """The ten trained class models of one method: their priors, and what training cost."""

    method: str
    priors: ClassPriors
    seconds: float
    per_class: list = field(default_factory=list)  # the trainers' own results, one per class


def _train_one(method: str, model: MLP, tasks: ImageTasks, init: torch.Tensor, s: MetaSettings,
               generator: torch.Generator, device):
    query = N_PIXELS - s.support
    common = dict(generator=generator, device=device, progress=False)
    if method == "reptile":
        return train_reptile(model, tasks, iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.support,
                             k_query=query, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, outer_lr=s.outer_lr,
                             init=init, **common)
    if method in ("maml", "fomaml"):
        return train_maml(model, tasks, iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.support,
                          k_query=query, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, meta_lr=s.meta_lr,
                          first_order=method == "fomaml", init=init, **common)
    if method == "meta_sgd":  # α starts at MAML's step, on E
        return train_meta_sgd(model, tasks, iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.support,
                              k_query=query, inner_steps=s.inner_steps, init_rate=s.maml_inner_lr, meta_lr=s.meta_lr,
                              init=init, **common)
    if method == "scale_gradient":
        return train_scale_gradient(model, tasks, iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.support,
                                    k_query=query, inner_steps=s.inner_steps, inner_lr=s.inner_lr,
                                    strength=s.strength, meta_lr=s.meta_lr, init=init, **common)
    # backprop2's own learners adapt with its line search, as the original did: Eve's per-parameter
    # rates differ by orders of magnitude, and no single fixed step suits them
    loop = InnerLoop(max_steps=s.inner_steps, lr=None)
    # σ² >= 2·lr·c: one fixed step can at most land on μ (without the floor the inner loop would
    # otherwise diverge as the scale collapses, chapter 2's feedback loop)
    return train_backprop2(model, tasks, rule=method, outer_iterations=s.outer_iterations,
                           tasks_per_iteration=s.tasks_per_iteration, points_per_task=N_PIXELS, loop=loop,
                           strength=s.strength, decay=s.decay, floor=2 * s.inner_lr * s.strength, init=init, **common)


def train_class_models(method: str, model: MLP, data: MNIST, settings: MetaSettings = MetaSettings(), *,
                       seed: int = 0, device="cpu", dtype=torch.float32) -> ClassModels:
    """Meta-train one model per digit on ``data``'s images of that digit, all from one initialisation."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid: {', '.join(METHODS)}")
    if model.sizes[0] != 2 or model.sizes[-1] != 1:
        raise ValueError(f"model: expected 2 inputs (pixel coordinates) and 1 output (brightness), "
                         f"got sizes {model.sizes}")
    counts = data.class_counts()
    if bool((counts == 0).any()):
        raise ValueError(f"data: no images of digit(s) {(counts == 0).nonzero().flatten().tolist()}")
    g = torch.Generator().manual_seed(seed)
    init = model.flatten(model.init(scheme=settings.init_scheme, generator=g, dtype=dtype)).to(device)
    start = time.perf_counter()
    trained = []
    for digit in range(N_CLASSES):
        tasks = ImageTasks.from_mnist(data, digit, dtype=dtype, device=device)
        generator = torch.Generator().manual_seed(seed * 1000 + digit + 1)
        trained.append(_train_one(method, model, tasks, init, settings, generator, device))
    priors = ClassPriors.from_models(trained)
    return ClassModels(method, priors, time.perf_counter() - start, trained)
