"""Chapter 2's comparison: every method meta-trained on the same task family from the same start,
then adapted to the same held-out tasks (paired) and scored by query MSE.

Methods: the initialisation-only learners (MAML, FOMAML, Reptile), Meta-SGD, the meta-gradient
scale, and the backprop2 meta-learner with no scale ("mean only": batch Reptile with its line
search), the quadratic and the quartic regulariser. Each adapts with its own inner loop: the
MAML family and Meta-SGD with the k SGD steps they were trained for, the backprop2 learners with
their line-searched inner loop, the meta-gradient scale with its k regularised steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .. import methods as registry
from ..meta.backprop2 import train_backprop2
from ..meta.fewshot import Adapter, evaluate_few_shot, sgd_adapter
from ..meta.maml import train_maml
from ..meta.meta_sgd import train_meta_sgd
from ..meta.reptile import train_reptile
from ..meta.scale_gradient import train_scale_gradient
from ..models.mlp import MLP
from ..scale.adapt import InnerLoop, adapt
from ..stats import permutation_p_value, rank_correlation

METHODS = registry.names("maml", "fomaml", "reptile", "meta_sgd", "scale_gradient", "mean_only", "quadratic",
                         "quartic")
"""The methods chapter 2 compares, by display name (ids, names and colours: :mod:`backprop2lib.methods`)."""


@dataclass(frozen=True)
class ComparisonSettings:
    iterations: int = 4000  # Adam meta-iterations of the gradient-based learners
    meta_batch: int = 25
    k_shot: int = 10  # support points per task, in training and at test
    k_query: int = 40  # query points per training task (the statistics learners adapt on all 50)
    inner_steps: int = 5  # SGD steps of MAML, FOMAML, Reptile, Meta-SGD, meta-gradient scale
    # inner steps on E (backprop2lib.meta's one convention). The chapter's runs used 0.1 for all five,
    # on the MSE for the MAML family, so their step on E is twice the others':
    inner_lr: float = 0.1  # Meta-SGD's initial rate and the meta-gradient scale's step
    maml_inner_lr: float = 0.2  # MAML, FOMAML, Reptile: 0.1 on the MSE (one output) = 0.2 on E
    meta_lr: float = 1e-3
    outer_iterations: int = 10  # backprop2 learners
    tasks_per_iteration: int = 100
    adapt_steps: int = 100  # line-searched steps of the backprop2 inner loop
    strength_quadratic: float = 1e-4
    strength_quartic: float = 1e-4
    strength_gradient: float = 1e-2
    floor: float = 1e-6  # variance floor of the quadratic

    @property
    def loop(self) -> InnerLoop:
        return InnerLoop(max_steps=self.adapt_steps)


@dataclass
class TrainedMethod:
    name: str
    adapter: Adapter
    scale: torch.Tensor | None  # the per-parameter scale it learned, if it learns one
    seconds: float
    start: torch.Tensor  # the learned initialisation (mean), flat [P]
    extra: dict = field(default_factory=dict)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def train_backprop2_method(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, rule: str, *,
                           strength: float | None = None, seed: int = 0, device="cpu") -> TrainedMethod:
    """One backprop2 learner (``rule``: mean_only, quadratic, quartic) as a :class:`TrainedMethod`."""
    if strength is None:
        strength = settings.strength_quartic if rule == "quartic" else settings.strength_quadratic
    learned = train_backprop2(model, tasks, rule=rule, outer_iterations=settings.outer_iterations,
                              tasks_per_iteration=settings.tasks_per_iteration,
                              points_per_task=settings.k_shot + settings.k_query, loop=settings.loop, strength=strength,
                              floor=settings.floor, init=init, generator=_seeded(seed), device=device)
    return TrainedMethod(registry.name(rule), lambda x, y: learned.adapt(model, x, y).params, learned.scale,
                         learned.seconds, learned.mean, {"model": learned})


def train_methods(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, *,
                  methods=METHODS, seed: int = 0, device="cpu", progress: bool | None = None) -> dict[str, TrainedMethod]:
    """Meta-train every method in ``methods`` on ``tasks`` from the flat start ``init [P]``."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods: unknown method(s) {sorted(unknown)}; valid: {', '.join(METHODS)}")
    s = settings
    common = dict(iterations=s.iterations, meta_batch=s.meta_batch, k_shot=s.k_shot, k_query=s.k_query,
                  device=device, progress=progress)
    out: dict[str, TrainedMethod] = {}
    for i, name in enumerate(methods):
        g = _seeded(seed + i)
        if name in ("MAML", "FOMAML"):
            r = train_maml(model, tasks, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, meta_lr=s.meta_lr,
                           first_order=name == "FOMAML", init=init, generator=g, **common)
            out[name] = TrainedMethod(name, sgd_adapter(model, r.params, steps=s.inner_steps, lr=s.maml_inner_lr),
                                      None, r.seconds, r.params)
        elif name == "Reptile":
            r = train_reptile(model, tasks, inner_steps=s.inner_steps, inner_lr=s.maml_inner_lr, init=init,
                              generator=g, **common)
            out[name] = TrainedMethod(name, sgd_adapter(model, r.params, steps=s.inner_steps, lr=s.maml_inner_lr),
                                      None, r.seconds, r.params)
        elif name == "Meta-SGD":
            r = train_meta_sgd(model, tasks, inner_steps=s.inner_steps, init_rate=s.inner_lr, meta_lr=s.meta_lr,
                               init=init, generator=g, **common)
            out[name] = TrainedMethod(name, lambda x, y, r=r: r.adapt(model, x, y).params, r.rates, r.seconds,
                                      r.params)
        elif name == "meta-gradient scale":
            r = train_scale_gradient(model, tasks, inner_steps=s.inner_steps, inner_lr=s.inner_lr,
                                     strength=s.strength_gradient, meta_lr=s.meta_lr, init=init, generator=g, **common)
            out[name] = TrainedMethod(name, lambda x, y, r=r: r.adapt(model, x, y).params, r.scale, r.seconds,
                                      r.params)
        else:  # the backprop2 learners: their registry id is their rule
            out[name] = train_backprop2_method(model, tasks, init, s, registry.get(name).id, seed=seed + i,
                                               device=device)
    return out


def evaluate_methods(model: MLP, trained: dict[str, TrainedMethod], batch) -> dict[str, np.ndarray]:
    """Query MSE per held-out task for every trained method, on the same tasks."""
    return evaluate_few_shot(model, {name: m.adapter for name, m in trained.items()}, batch)


def evaluate_starts(model: MLP, trained: dict[str, TrainedMethod], batch, loop: InnerLoop) -> dict[str, np.ndarray]:
    """Query MSE when every method's learned *start* is adapted with the same inner loop (no
    regulariser, no learned rates): separates what the initialisation is worth from the inner loop."""
    return evaluate_few_shot(model, {name: (lambda x, y, m=m: adapt(model, m.start, x, y, loop=loop).params)
                                     for name, m in trained.items()}, batch)


def adapted_spread(model: MLP, method: TrainedMethod, batch) -> torch.Tensor:
    """Per-parameter std over tasks of the adapted parameters: the scale a method *uses*, learned or not."""
    with torch.enable_grad():
        adapted = method.adapter(batch.x_support, batch.y_support).detach()
    return adapted.std(0, unbiased=False)


@dataclass(frozen=True)
class ScaleRecovery:
    correlation: float  # Spearman's rho of the method's scale with the true s*
    p_value: float  # one-sided permutation test against "no relation"
    source: str  # "learned" (a meta-parameter) or "adapted" (spread of adapted parameters)


def scale_recovery(model: MLP, method: TrainedMethod, true_scale: torch.Tensor, batch, *,
                   n_permutations: int = 10_000) -> ScaleRecovery:
    """How well a method's per-parameter scale ranks the parameters like the true scale s*.

    Methods that learn a scale are scored on it (σ, the quartic's 1/√a, Meta-SGD's rates);
    the others on the spread of their adapted parameters over the held-out ``batch``.
    """
    if method.scale is not None:
        scale, source = method.scale, "learned"
    else:
        scale, source = adapted_spread(model, method, batch), "adapted"
    a, b = scale.double().cpu().numpy(), true_scale.double().cpu().numpy()
    return ScaleRecovery(rank_correlation(a, b), permutation_p_value(a, b, n_permutations=n_permutations), source)


def sweep_strength(model: MLP, tasks, init: torch.Tensor, settings: ComparisonSettings, rule: str,
                   strengths, *, seed: int = 0, device="cpu") -> dict[float, TrainedMethod]:
    """Train the backprop2 ``rule`` at each regulariser strength (to choose c on validation tasks)."""
    return {c: train_backprop2_method(model, tasks, init, settings, rule, strength=c, seed=seed, device=device)
            for c in strengths}
