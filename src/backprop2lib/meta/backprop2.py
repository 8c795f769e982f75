"""The backprop2 meta-learner: a mean and a scale for every parameter, set from task statistics.

Meta-parameters: the mean μ and a per-parameter scale, held as a regulariser (quadratic or
quartic) or as Eve's learning rates. One outer iteration:

1. adapt from μ to each of this iteration's training tasks with the inner loop
   (:func:`backprop2lib.scale.adapt`; the regulariser is part of the inner objective);
2. REPLACE μ by the mean of the adapted parameters (batch Reptile with outer step 1) and
   the scale by their statistics over tasks.

Initialisation from two tasks, as in backprop2: adapt from the start to task 0 (w1), from w1
(not reset) to task 1 (w2), and fit the meta-parameters to [w1, w2].
``mode="batched"`` adapts all tasks of an iteration at once; ``mode="faithful"`` one after
another, as the original did (same results for the same random draws).

With ``seeds=[s_0, …]`` one call trains one learner per seed: seed s draws its start and tasks
from ``torch.Generator().manual_seed(s)``, every task of every seed adapts in one batched call
(``[S·T, P]``, each task from its own seed's μ and scale), and the scale is fitted per seed, so
seed s equals the run with that generator. The returned :class:`ScaleModel` holds ``[S, P]``
tensors; ``model.seed(row)`` is one seed's learner.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..models.mlp import MLP
from ..progress import progress_bar
from ..scale.adapt import AdaptResult, InnerLoop, adapt, adapt_one_at_a_time
from ..scale.eve import EveRates
from ..scale.regularisers import QuadraticRegulariser, QuarticRegulariser
from ..optim.errors import DivergenceError

RULES = ("quadratic", "quartic", "eve", "mean_only")
ERROR_SCALES = ("constant", "dE")
MODES = ("batched", "faithful")


@dataclass
class ScaleModel:
    """What the backprop2 meta-learner learned, and how it adapts to a new task."""

    rule: str
    mean: torch.Tensor  # μ [P]
    regulariser: QuadraticRegulariser | QuarticRegulariser | None
    rates: EveRates | None
    loop: InnerLoop  # the inner loop used in training, the default for adaptation
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    seeds: list[int] | None = None  # with seeds, every tensor above has a leading seed axis [S, P]

    @property
    def scale(self) -> torch.Tensor | None:
        """The learned per-parameter scale: σ (quadratic, Eve) or the quartic's 1/√a."""
        source = self.regulariser if self.regulariser is not None else self.rates
        return None if source is None else source.scale

    def seed(self, row: int) -> "ScaleModel":
        """Seed ``row``'s learner alone, as a single run returns it (``history`` entries become floats)."""
        if self.seeds is None:
            raise ValueError("seed: this learner is a single run (trained without seeds)")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(self.seeds):
            raise ValueError(f"row: expected a seed row 0..{len(self.seeds) - 1}, got {row!r}")
        return ScaleModel(self.rule, self.mean[row], _row_of(self.regulariser, row), _row_of(self.rates, row), self.loop,
                          {k: [v[row] for v in values] for k, values in self.history.items()}, self.seconds)

    def adapt(self, model: MLP, x: torch.Tensor, y: torch.Tensor, *, loop: InnerLoop | None = None,
              generator: torch.Generator | None = None, regularise: bool = True) -> AdaptResult:
        """Adapt from μ to every task's ``(x, y)``; ``regularise=False`` drops the regulariser."""
        if self.seeds is not None:
            raise ValueError(f"adapt: this learner holds {len(self.seeds)} seeds; take one with model.seed(row)")
        return adapt(model, self.mean, x, y, loop=loop or self.loop,
                     regulariser=self.regulariser if regularise else None, rates=self.rates, generator=generator)


def fit_scale(rule: str, adapted: torch.Tensor, *, strength, variant: str, floor: float, decay: float):
    """(regulariser, rates) fitted to adapted task parameters ``[T, P]``."""
    if rule == "quadratic":
        return QuadraticRegulariser.fit(adapted, strength=strength, floor=floor), None
    if rule == "quartic":
        return QuarticRegulariser.fit(adapted, strength=strength, variant=variant), None
    if rule == "eve":
        return None, EveRates.fit(adapted, decay=decay)
    return None, None


def train_backprop2(
    model: MLP,
    tasks,
    *,
    rule: str = "quartic",
    outer_iterations: int = 10,
    tasks_per_iteration: int = 100,
    points_per_task: int = 50,
    loop: InnerLoop = InnerLoop(),
    init_loop: InnerLoop | None = None,
    strength: float = 1e-2,
    error_scale: str = "constant",
    variant: str = "consistent",
    floor: float = 0.0,
    decay: float = 0.2,
    mode: str = "batched",
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seeds: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> ScaleModel:
    """Meta-train μ and the per-parameter scale on tasks from ``tasks`` (a family with ``sample``).

    ``error_scale="constant"``: the regulariser strength is ``strength`` (backprop2's c = 1e-2);
    ``"dE"``: ``strength * max(mean_t dE_t, 0)`` from the previous iteration (an older variant;
    the first iteration, with no dE yet, uses ``strength`` itself). ``history`` has one entry for
    the two-task initialisation, then one per outer iteration; ``history["strength"][i]`` is the
    strength set at that point, used by the next outer iteration.
    ``init``: flat start ``[P]`` (default: backprop2's N(0, 1) initialisation; with ``seeds`` also
    ``[S, P]``, one start per seed). ``seeds``: one learner per seed in one batch (see the module
    docstring); it needs full-batch inner loops, the constant error scale and the batched mode.
    """
    for name, value, valid in (("rule", rule, RULES), ("error_scale", error_scale, ERROR_SCALES),
                               ("mode", mode, MODES)):
        if value not in valid:
            raise ValueError(f"{name}: unknown value {value!r}; valid: {', '.join(valid)}")
    for name, value in (("outer_iterations", outer_iterations), ("tasks_per_iteration", tasks_per_iteration),
                        ("points_per_task", points_per_task)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if tasks_per_iteration < 2:
        raise ValueError("tasks_per_iteration: need at least 2 tasks to measure a spread")
    if seeds is not None:
        return _train_seeds(model, tasks, seeds, rule=rule, outer_iterations=outer_iterations,
                            tasks_per_iteration=tasks_per_iteration, points_per_task=points_per_task, loop=loop,
                            init_loop=init_loop, strength=strength, error_scale=error_scale, mode=mode,
                            settings=dict(variant=variant, floor=floor, decay=decay), init=init, generator=generator,
                            device=device, progress=progress)
    if init is None:
        init = model.flatten(model.init(scheme="normal", generator=generator, device=device))
    init = init.detach().to(device)
    dtype = init.dtype
    run = adapt if mode == "batched" else adapt_one_at_a_time
    settings = dict(variant=variant, floor=floor, decay=decay)

    start = time.perf_counter()
    first = tasks.sample(2, points_per_task, generator=generator, device=device, dtype=dtype)
    w1 = adapt(model, init, first.x_support[:1], first.y_support[:1], loop=init_loop or loop,
               generator=generator).params
    w2 = adapt(model, w1[0], first.x_support[1:], first.y_support[1:], loop=init_loop or loop,
               generator=generator).params
    c = strength
    pair = torch.cat([w1, w2])
    try:
        regulariser, rates = fit_scale(rule, pair, strength=c, **settings)
    except ValueError as err:
        raise ValueError(f"backprop2 ({rule}): initialisation from two tasks: {err}") from err
    mean = pair.mean(0)

    # history[...][0] describes the two-task initialisation, [i + 1] outer iteration i
    history: dict[str, list[float]] = {k: [] for k in ("scale_mean", "scale_median", "error_before",
                                                        "error_after", "steps", "stopped", "strength")}
    _record(history, _scale_of(regulariser, rates, pair), None, c)
    with progress_bar(outer_iterations, f"backprop2 ({rule})", progress) as bar:
        for it in range(outer_iterations):
            batch = tasks.sample(tasks_per_iteration, points_per_task, generator=generator, device=device,
                                 dtype=dtype)
            with torch.no_grad():
                res = run(model, mean, batch.x_support, batch.y_support, loop=loop, regulariser=regulariser,
                          rates=rates, generator=generator)
            bad = res.diverged.nonzero().flatten().tolist()
            if bad:
                raise DivergenceError(f"backprop2 ({rule}): outer iteration {it}: adaptation to task(s) {bad[:10]} "
                                      "produced NaN or inf parameters; lower the step size or use the line search")
            mean = res.params.mean(0)
            if error_scale == "dE":
                c = strength * max(float(res.improvement.mean()), 0.0)
            try:
                regulariser, rates = fit_scale(rule, res.params, strength=c, **settings)
            except ValueError as err:
                raise ValueError(f"backprop2 ({rule}): outer iteration {it}: {err}") from err
            _record(history, _scale_of(regulariser, rates, res.params), res, c)
            bar.update(1)
    return ScaleModel(rule, mean, regulariser, rates, loop, history, time.perf_counter() - start)


def _tensor_fields(obj) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), torch.Tensor) and getattr(obj, f.name).dim() >= 1]


def _row_of(obj, row: int):
    """Row ``row`` of a regulariser or rates whose tensors are ``[S, P]`` (None stays None)."""
    return None if obj is None else dataclasses.replace(obj, **{n: getattr(obj, n)[row] for n in _tensor_fields(obj)})


def stack_rows(objs: list, repeats: int):
    """Per-seed fitted regularisers or rates (shared ``[P]`` tensors) as one object whose tensors are
    ``[S·repeats, P]``, seed-major: each seed's row repeated for its ``repeats`` tasks."""
    if objs[0] is None:
        return None
    first = objs[0]
    names = _tensor_fields(first)
    return dataclasses.replace(first, **{n: torch.stack([getattr(o, n) for o in objs]).repeat_interleave(repeats, 0)
                                         for n in names})


def _train_seeds(model: MLP, tasks, seeds, *, rule: str, outer_iterations: int, tasks_per_iteration: int,
                 points_per_task: int, loop: InnerLoop, init_loop: InnerLoop | None, strength: float,
                 error_scale: str, mode: str, settings: dict, init, generator, device, progress) -> ScaleModel:
    """:func:`train_backprop2` for S seeds at once (one batched inner loop for every seed's tasks)."""
    from .training import check_seeds  # one rule for valid seeds

    seeds = check_seeds(seeds)
    if generator is not None:
        raise ValueError("generator, seeds: give one or the other (each seed makes its own generator)")
    if mode != "batched" or error_scale != "constant":
        raise ValueError(f"seeds: need mode='batched' and error_scale='constant' (got {mode!r}, {error_scale!r}); "
                         "train those variants one seed at a time")
    if any(lp is not None and lp.batch_size is not None for lp in (loop, init_loop)):
        raise ValueError("seeds: need full-batch inner loops (batch_size None); minibatches would share one generator")
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    S, P, T = len(seeds), model.n_params, tasks_per_iteration
    if init is None:
        starts = torch.stack([model.flatten(model.init(scheme="normal", generator=g, device=device))
                              for g in generators])
    elif isinstance(init, torch.Tensor) and tuple(init.shape) in ((P,), (S, P)):
        starts = init.detach().expand(S, P).clone().to(device)
    else:
        got = tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
        raise ValueError(f"init: expected a flat start [{P}] or one per seed [{S}, {P}], got {got}")
    dtype = starts.dtype

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n tasks of every seed from its own generator, seed-major ``[S·n, ...]`` (S draws, not S·n)."""
        batches = [tasks.sample(n, points_per_task, generator=g, device=device, dtype=dtype) for g in generators]
        return torch.cat([b.x_support for b in batches]), torch.cat([b.y_support for b in batches])

    def fit_all(adapted: torch.Tensor, where: str):  # adapted [S, n, P]: one fit per seed (S small calls)
        try:
            fits = [fit_scale(rule, adapted[s], strength=strength, **settings) for s in range(S)]
        except ValueError as err:
            raise ValueError(f"backprop2 ({rule}): {where}: {err}") from err
        return [f[0] for f in fits], [f[1] for f in fits]

    start = time.perf_counter()
    x, y = draw(2)
    w1 = adapt(model, starts, x[0::2], y[0::2], loop=init_loop or loop).params
    w2 = adapt(model, w1, x[1::2], y[1::2], loop=init_loop or loop).params
    pairs = torch.stack([w1, w2], dim=1)  # [S, 2, P]
    regs, rates = fit_all(pairs, "initialisation from two tasks")
    mean = pairs.mean(1)
    keys = ("scale_mean", "scale_median", "error_before", "error_after", "steps", "stopped", "strength")
    history: dict[str, list[list[float]]] = {k: [] for k in keys}
    _record_seeds(history, [_scale_of(r, q, pairs[s]) for s, (r, q) in enumerate(zip(regs, rates))], None, strength)
    with progress_bar(outer_iterations, f"backprop2 ({rule}, {S} seeds)", progress) as bar:
        for it in range(outer_iterations):
            x, y = draw(T)
            with torch.no_grad():
                res = adapt(model, mean.repeat_interleave(T, 0), x, y, loop=loop,
                            regulariser=stack_rows(regs, T), rates=stack_rows(rates, T))
            bad = res.diverged.nonzero().flatten().tolist()
            if bad:
                where = [(b // T, b % T) for b in bad[:10]]
                raise DivergenceError(f"backprop2 ({rule}): outer iteration {it}: adaptation to (seed row, task) "
                                      f"{where} produced NaN or inf parameters; lower the step size or use the "
                                      "line search")
            adapted = res.params.reshape(S, T, P)
            mean = adapted.mean(1)
            regs, rates = fit_all(adapted, f"outer iteration {it}")
            _record_seeds(history, [_scale_of(r, q, adapted[s]) for s, (r, q) in enumerate(zip(regs, rates))],
                          res, strength)
            bar.update(1)
    return ScaleModel(rule, mean, stack_rows(regs, 1), stack_rows(rates, 1), loop, history,
                      time.perf_counter() - start, seeds)


def _record_seeds(history, scales: list[torch.Tensor], res: AdaptResult | None, strength) -> None:
    """:func:`_record` for S seeds: every entry is a list of S floats."""
    nan = float("nan")
    S = len(scales)

    def per_seed(v: torch.Tensor) -> list[float]:
        return v.double().reshape(S, -1).mean(1).tolist()

    history["scale_mean"].append([float(s.mean()) for s in scales])
    history["scale_median"].append([float(s.median()) for s in scales])
    for key in ("error_before", "error_after", "steps", "stopped"):
        history[key].append([nan] * S if res is None else per_seed(getattr(res, key)))
    history["strength"].append([float(strength)] * S)


def _scale_of(regulariser, rates, adapted: torch.Tensor) -> torch.Tensor:
    """The learned scale, or for ``mean_only`` the spread of the adapted parameters."""
    source = regulariser if regulariser is not None else rates
    return adapted.std(0, unbiased=False) if source is None else source.scale


def _record(history: dict[str, list[float]], scale: torch.Tensor, res: AdaptResult | None, strength) -> None:
    nan = float("nan")
    history["scale_mean"].append(float(scale.mean()))
    history["scale_median"].append(float(scale.median()))
    history["error_before"].append(nan if res is None else float(res.error_before.mean()))
    history["error_after"].append(nan if res is None else float(res.error_after.mean()))
    history["steps"].append(nan if res is None else float(res.steps.float().mean()))
    history["stopped"].append(nan if res is None else float(res.stopped.float().mean()))
    history["strength"].append(float(strength))


def history_array(model: ScaleModel, key: str) -> np.ndarray:
    """One history entry as an array: ``[entries]``, or ``[entries, S]`` for a seeded learner."""
    if key not in model.history:
        raise ValueError(f"key: unknown history entry {key!r}; valid: {', '.join(model.history)}")
    return np.asarray(model.history[key], dtype=float)
