"""The MAML family's inner loop: k SGD steps for every task at once.

The step size is a step on backprop2's error E (the library's one convention, see
:mod:`backprop2lib.meta`). The model's explicit backward pass differentiates the MSE, and
∇E = (O/2)·∇MSE for O outputs, so a step ``lr`` on E is applied as the step ``lr·O/2`` on the
MSE gradient: for one output that is ``lr/2``, a power of two, so the parameters are bit for bit
those of an MSE step of ``lr/2``.

:func:`sgd_adapt` takes and returns flat parameters like every public function of ``meta``; the
steps themselves run on the model's tuple view (:func:`descend`), which MAML differentiates.
"""

from __future__ import annotations

import torch

from ..models.mlp import MLP, Params


def from_mse_lr(mse_lr: float, outputs: int = 1) -> float:
    """The step on E equal to the step ``mse_lr`` on the MSE (how the MAML papers state α).

    ∇E = (O/2)·∇MSE for ``outputs`` = O, so the same step is ``2·mse_lr/O`` on E; MAML's
    α = 0.01 on a one-output MSE is 0.02 on E (exact in floating point for O = 1 and 2).
    """
    if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
        raise ValueError(f"outputs: expected a positive int, got {outputs!r}")
    return mse_lr * 2 / outputs


def mse_step(model: MLP, lr: float) -> float:
    """The step on the MSE gradient (what ``MLP.loss_and_grad`` returns) that is the step ``lr`` on E."""
    return lr * (model.sizes[-1] / 2)


def sgd_step(model: MLP, params: Params, x: torch.Tensor, y: torch.Tensor, lr: float, *,
             first_order: bool = False) -> Params:
    """One SGD step of size ``lr`` on E for every task's ``(x, y)``, on the tuple view."""
    if first_order:
        with torch.no_grad():
            _, grads = model.loss_and_grad(params, x, y, check=False, need_loss=False)
    else:
        _, grads = model.loss_and_grad(params, x, y, check=False, need_loss=False)
    step = mse_step(model, lr)
    return tuple(torch.add(p, g, alpha=-step) for p, g in zip(params, grads))


def _check_steps(steps: int, lr: float) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")


def descend(model: MLP, params: Params, x: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float,
            first_order: bool = False) -> Params:
    """:func:`sgd_adapt` on the tuple view: ``params`` shared or per task, the result per task.

    With ``first_order=False`` the steps stay differentiable in ``params`` (second-order MAML);
    with ``first_order=True`` each gradient is a constant (first-order MAML), which also skips
    building its graph.
    """
    _check_steps(steps, lr)
    model._check_batch(params, x, y)
    if steps == 0:
        return model.expand(params, x.shape[0])
    for _ in range(steps):
        params = sgd_step(model, params, x, y, lr, first_order=first_order)
    return params


def as_tuple(model: MLP, flat: torch.Tensor) -> Params:
    """The tuple view of flat parameters as separate tensors (copies, each its own allocation),
    so the MLP's kernels see the same memory layout whether the parameters came flat or not."""
    return tuple(p.clone() for p in model.unflatten(flat))


def sgd_adapt(
    model: MLP,
    start: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> torch.Tensor:
    """``steps`` SGD steps of size ``lr`` on E from flat ``start`` (``[P]`` shared or ``[T, P]``) on every
    task's ``(x, y)``; the adapted parameters ``[T, P]``, differentiable in ``start`` unless ``first_order``."""
    if start.dim() not in (1, 2) or start.shape[-1] != model.n_params:
        raise ValueError(f"start: expected flat parameters [P] or [T, P] with P = {model.n_params}, "
                         f"got {tuple(start.shape)}")
    return model.flatten(descend(model, model.unflatten(start), x, y, steps=steps, lr=lr, first_order=first_order))
