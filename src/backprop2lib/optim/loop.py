"""One loop that runs any stepper on any batched problem and records a :class:`~.curve.Curve`.

A *problem* holds B independent rows (optimisee instances, models from different seeds, tasks)
with flat parameters ``θ: [B, P]``:

* ``init() -> θ₀ [B, P]``;
* ``loss_and_grad(θ, t) -> (loss [B], grad [B, P])``: the loss whose gradient step t uses, with no
  graph. ``t`` picks the minibatch, so two runs on the same problem see the same data (paired);
* optionally ``evaluate(θ) -> [B]``: the loss to record (e.g. on fixed evaluation data); without
  it the recorded loss is the step's own minibatch loss;
* optionally ``name``, and ``n_instances`` with ``chunk(start, stop)`` for :func:`run`'s chunking.

A stepper (:mod:`.steppers`) maps ``(θ, grad, state)`` to the next θ. Steppers that need the
problem itself (a line search evaluates the loss along a direction, block Newton needs the
curvature of the step's minibatch) say so with ``needs_problem = True``; their ``init`` then gets
``(θ, problem)`` and they find the step's minibatch from ``state["t"]``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..progress import progress_bar
from .curve import Curve, _check_int, concatenate


def run(stepper, problem, n_steps: int, *, record_every: int = 1, diverged_above: float = math.inf,
        chunk_size: int | None = None, progress: bool | None = False, keep_params: bool = False) -> Curve:
    """Run ``stepper`` for ``n_steps`` steps on every row of ``problem``.

    At step t (0..n_steps) the loop computes ``loss_and_grad(θ_t, t)``, records the loss of θ_t
    every ``record_every`` steps and at the end, and steps to θ_{t+1}. A row whose θ or loss is
    not finite, or whose loss is above ``diverged_above`` (in float64 a blow-up can take many steps
    to overflow), is *diverged* from that step: its θ is frozen, its recorded losses are NaN from
    then on and ``Curve.diverged_at`` says when. The recorded ``seconds`` are the run's wall time
    (gradients and steps; evaluations excluded), so optimisers can be compared at equal time.

    ``chunk_size``: run the rows in groups of this many, one group after the other (the problem
    must have ``chunk(start, stop)``); rows are independent and every stepper acts per row, so the
    numbers are the same, and a large state can stay in cache.
    """
    n_steps = _check_int("n_steps", n_steps, low=0)
    record_every = _check_int("record_every", record_every, low=1)
    if isinstance(diverged_above, bool) or not isinstance(diverged_above, (int, float)) or not diverged_above > 0:
        raise ValueError(f"diverged_above: expected a positive bound (inf for none), got {diverged_above!r}")
    if not (callable(getattr(stepper, "init", None)) and callable(getattr(stepper, "step", None))):
        raise ValueError(f"stepper: expected an object with init() and step(), got {type(stepper).__name__}")
    if not callable(getattr(problem, "loss_and_grad", None)) or not callable(getattr(problem, "init", None)):
        raise ValueError(f"problem: expected an object with init() and loss_and_grad(theta, t), "
                         f"got {type(problem).__name__}")
    if chunk_size is not None:
        chunk_size = _check_int("chunk_size", chunk_size, low=1)
        if not callable(getattr(problem, "chunk", None)):
            raise ValueError(f"problem: chunk_size needs a chunk(start, stop) method, {type(problem).__name__} has none")
        total = problem.n_instances
        if total > chunk_size:
            return concatenate([run(stepper, problem.chunk(a, min(a + chunk_size, total)), n_steps,
                                    record_every=record_every, diverged_above=diverged_above, progress=False,
                                    keep_params=keep_params) for a in range(0, total, chunk_size)])
    theta = problem.init()
    if theta.dim() != 2:
        raise ValueError(f"problem: init() returned shape {tuple(theta.shape)}, expected [B, P]")
    B = theta.shape[0]
    needs_problem = bool(getattr(stepper, "needs_problem", False))
    state = stepper.init(theta, problem) if needs_problem else stepper.init(theta)
    evaluate = getattr(problem, "evaluate", None)
    cuda = theta.device.type == "cuda"
    name = getattr(stepper, "name", type(stepper).__name__)
    problem_name = getattr(problem, "name", "")

    steps, losses, seconds = [], [], []
    diverged = torch.zeros(B, dtype=torch.bool, device=theta.device)
    diverged_at = np.full(B, -1, dtype=np.int64)
    elapsed = 0.0
    blown_up = ~torch.isfinite(theta).all(dim=1)  # rows whose θ_t (or the step to it) is not finite
    with progress_bar(n_steps, f"{name} on {problem_name or 'problem'}", enabled=progress) as bar, torch.no_grad():
        for t in range(n_steps + 1):
            record = t % record_every == 0 or t == n_steps
            loss = grad = None
            started = time.perf_counter()
            if t < n_steps or evaluate is None:
                loss, grad = problem.loss_and_grad(theta, t)
                if cuda:
                    torch.cuda.synchronize(theta.device)
            gradient_seconds = time.perf_counter() - started  # belongs to step t + 1
            bad = blown_up.clone()
            if loss is not None:
                bad |= ~torch.isfinite(loss) | (loss > diverged_above)
            value = loss
            if record and evaluate is not None:
                value = evaluate(theta)
                bad |= ~torch.isfinite(value) | (value > diverged_above)
            new = bad & ~diverged
            if bool(new.any()):
                diverged_at[new.cpu().numpy()] = t
                diverged |= new
            if record:
                steps.append(t)
                losses.append(value.detach().to("cpu", torch.float64).masked_fill(diverged.cpu(), math.nan).numpy())
                seconds.append(elapsed)
            if t == n_steps:
                break
            if bool(diverged.all()):  # nothing left to run: the rest stays NaN
                bar.update(n_steps - t)
                for rest in range(t + 1, n_steps + 1):
                    if rest % record_every == 0 or rest == n_steps:
                        steps.append(rest)
                        losses.append(np.full(B, math.nan))
                        seconds.append(elapsed)
                break
            started = time.perf_counter()
            grad = grad.masked_fill(diverged[:, None], 0.0)  # keep NaNs out of the optimiser state
            stepped = stepper.step(theta, grad, state, loss) if needs_problem else stepper.step(theta, grad, state)
            # a row whose step is not finite keeps its last finite θ and is flagged at t + 1
            blown_up = ~diverged & ~torch.isfinite(stepped).all(dim=1)
            theta = torch.where((diverged | blown_up)[:, None], theta, stepped)
            if cuda:
                torch.cuda.synchronize(theta.device)
            elapsed += gradient_seconds + time.perf_counter() - started
            bar.update(1)
    info = {k: v for k, v in state.items() if k in getattr(stepper, "reports", ())}
    return Curve(name, np.stack(losses), diverged_at, np.array(steps), np.array(seconds), problem_name,
                 diverged_above, {}, info, theta if keep_params else None)
