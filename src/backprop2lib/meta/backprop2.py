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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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

    @property
    def scale(self) -> torch.Tensor | None:
        """The learned per-parameter scale: σ (quadratic, Eve) or the quartic's 1/√a."""
        source = self.regulariser if self.regulariser is not None else self.rates
        return None if source is None else source.scale

    def adapt(self, model: MLP, x: torch.Tensor, y: torch.Tensor, *, loop: InnerLoop | None = None,
              generator: torch.Generator | None = None, regularise: bool = True) -> AdaptResult:
        """Adapt from μ to every task's ``(x, y)``; ``regularise=False`` drops the regulariser."""
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
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> ScaleModel:
    """Meta-train μ and the per-parameter scale on tasks from ``tasks`` (a family with ``sample``).

    ``error_scale="constant"``: the regulariser strength is ``strength`` (backprop2's c = 1e-2);
    ``"dE"``: ``strength * max(mean_t dE_t, 0)`` from the previous iteration (an older variant;
    the first iteration, with no dE yet, uses ``strength`` itself). ``history`` has one entry for
    the two-task initialisation, then one per outer iteration; ``history["strength"][i]`` is the
    strength set at that point, used by the next outer iteration.
    ``init``: flat start ``[P]`` (default: backprop2's N(0, 1) initialisation).
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
    if key not in model.history:
        raise ValueError(f"key: unknown history entry {key!r}; valid: {', '.join(model.history)}")
    return np.asarray(model.history[key], dtype=float)
