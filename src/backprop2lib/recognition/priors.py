"""What each class model brings to adaptation, stacked over the classes.

A class model is whatever a meta-learner of the earlier chapters learned from the images of one
digit: a start μ_c (every method) and, for backprop2's learner, a per-parameter scale used as a
regulariser (quadratic: variance σ²; quartic: inverse scale a) or as Eve's learning rates
(variance σ²). To classify an image, every class model adapts to it; doing that for all classes
and many images in ONE batched call needs the regulariser and the rates for a stack of tasks
``[T, P]`` whose rows belong to different classes. :meth:`ClassPriors.rows` returns the library's
``QuadraticRegulariser``, ``QuarticRegulariser`` or ``EveRates`` built on such ``[T, P]`` tensors
(one row per task); :meth:`ClassPriors.one_class` returns them for one class with ``[P]``
tensors, the reference the stacked ones are tested against.

One ``strength`` (c) and one ``decay`` (κ) hold for every class: they are the knobs the chapter
sweeps (``priors.with_(strength=...)``), not something learned per class.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from ..meta.backprop2 import ScaleModel
from ..meta.meta_sgd import MetaSGDResult
from ..meta.scale_gradient import ScaleGradientResult
from ..meta.training import TrainResult
from ..scale.eve import EveRates
from ..scale.regularisers import QuadraticRegulariser, QuarticRegulariser

__all__ = ["KINDS", "ClassPriors"]

KINDS = ("initialisation", "quadratic", "quartic", "eve", "rates")
"""What a class model brings to adaptation: its start only (MAML, first-order MAML, Reptile,
backprop2 mean only), a quadratic (backprop2 quadratic, meta-gradient scale) or quartic
regulariser about it, Eve's per-parameter learning rates, or learned per-parameter step sizes
α (Meta-SGD: a step is −α ⊙ ∇E, so it adapts with ``lr=1``). Kinds of prior, not methods: several methods give one kind, so they
are not in :mod:`backprop2lib.methods`."""

DEFAULT_STRENGTH = 1e-2  # backprop2's c
DEFAULT_DECAY = 0.2  # backprop2's κ


def _check_knob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


# eq=False: the fields are tensors, whose == has no single truth value.
@dataclass(frozen=True, eq=False)
class ClassPriors:
    """The class models' starts ``mean [C, P]`` and, except for ``"initialisation"``, their scales.

    ``spread``: the variance σ² (``"quadratic"``, ``"eve"``), the inverse scale a (``"quartic"``),
    the step sizes α (``"rates"``), None (``"initialisation"``). ``strength``: the regulariser's c (unused by Eve and
    initialisation); ``decay``: Eve's κ (unused by the others). ``names``: class labels (default
    ``"0"``, ``"1"``, ...).
    """

    method: str
    mean: torch.Tensor
    spread: torch.Tensor | None = None
    strength: float = DEFAULT_STRENGTH
    decay: float = DEFAULT_DECAY
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in KINDS:
            raise ValueError(f"method: unknown kind of prior {self.method!r}; valid: {', '.join(KINDS)}")
        if not isinstance(self.mean, torch.Tensor) or self.mean.dim() != 2 or min(self.mean.shape) < 1:
            shape = tuple(self.mean.shape) if isinstance(self.mean, torch.Tensor) else type(self.mean).__name__
            raise ValueError(f"mean: expected a tensor [C, P] (one flat start per class), got {shape}")
        if not self.mean.is_floating_point():
            raise ValueError(f"mean: expected floating-point parameters, got {self.mean.dtype}")
        bad = (~torch.isfinite(self.mean)).any(-1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(f"mean: the start of class(es) {bad[:10]} contains NaN or inf")
        if self.method == "initialisation":
            if self.spread is not None:
                raise ValueError("spread: must be None for method 'initialisation' (a start only, no scale)")
        else:
            self._check_spread()
        object.__setattr__(self, "strength", _check_knob("strength", self.strength))
        object.__setattr__(self, "decay", _check_knob("decay", self.decay))
        C = self.mean.shape[0]
        names = tuple(str(c) for c in range(C)) if self.names is None else tuple(self.names)
        if len(names) != C or not all(isinstance(n, str) for n in names) or len(set(names)) != C:
            raise ValueError(f"names: expected {C} distinct strings (one per class), got {self.names!r}")
        object.__setattr__(self, "names", names)

    def _check_spread(self) -> None:
        what = {"quadratic": "variance σ²", "quartic": "inverse scale a", "eve": "variance σ²",
                "rates": "step sizes α"}[self.method]
        if not isinstance(self.spread, torch.Tensor):
            raise ValueError(f"spread: method {self.method!r} needs a tensor [C, P] (the {what}), "
                             f"got {type(self.spread).__name__}")
        if tuple(self.spread.shape) != tuple(self.mean.shape):
            raise ValueError(f"spread: expected shape {tuple(self.mean.shape)} (like mean), "
                             f"got {tuple(self.spread.shape)}")
        if self.spread.dtype != self.mean.dtype or self.spread.device != self.mean.device:
            raise ValueError(f"spread: expected dtype {self.mean.dtype} on {self.mean.device} (like mean), got "
                             f"{self.spread.dtype} on {self.spread.device}")
        # Meta-SGD's step sizes are learned without a sign constraint (Li et al. 2017): a negative α is a
        # legitimate learned value, so for "rates" only finiteness is required.
        ok = torch.isfinite(self.spread)
        if self.method != "rates":
            ok = ok & (self.spread > 0)
        bad = ~ok
        if bool(bad.any()):
            c, i = (int(v) for v in bad.nonzero()[0])
            need = "finite" if self.method == "rates" else "positive and finite"
            raise ValueError(f"spread: the {what} must be {need}; {int(bad.sum())} entries are not, "
                             f"first class {c}, parameter {i}: {float(self.spread[c, i])!r}")

    # ------------------------------------------------------------ structure
    @property
    def n_classes(self) -> int:
        return self.mean.shape[0]

    @property
    def n_params(self) -> int:
        return self.mean.shape[1]

    def with_(self, **changes) -> "ClassPriors":
        """A copy with some fields changed, e.g. ``with_(strength=1e-3)``; checked like a new one."""
        return replace(self, **changes)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "ClassPriors":
        """The same priors with the tensors on ``device`` and/or in ``dtype``."""
        move = dict(device=device, dtype=dtype)
        return replace(self, mean=self.mean.to(**move),
                       spread=None if self.spread is None else self.spread.to(**move))

    # ------------------------------------------------------------ building
    @classmethod
    def from_models(cls, models: Sequence, *, strength: float | None = None, decay: float | None = None,
                    names: Sequence[str] | None = None) -> "ClassPriors":
        """Stack one trained object per class.

        Each is a ``ScaleModel`` (rule quadratic, quartic or eve; ``mean_only`` counts as
        initialisation), a ``MetaSGDResult`` (rates), a ``ScaleGradientResult`` (quadratic, its ``.regulariser``), a
        ``TrainResult`` (MAML, Reptile, pretrained: initialisation at ``.params``) or a flat tensor
        ``[P]`` (initialisation). All must give the same method and P. ``strength`` and
        ``decay`` replace what the models were trained with; without them the models must agree.
        The tensors take the first model's dtype and device.
        """
        if isinstance(models, (torch.Tensor, str)) or not isinstance(models, Sequence) or len(models) < 1:
            raise ValueError(f"models: expected a non-empty sequence with one trained model per class, "
                             f"got {type(models).__name__}")
        parts = [_describe(m, i) for i, m in enumerate(models)]
        methods = {p[0] for p in parts}
        if len(methods) != 1:
            found = ", ".join(f"class {i}: {p[0]}" for i, p in enumerate(parts))
            raise ValueError(f"models: expected one method for every class, got {found}")
        method = parts[0][0]
        sizes = {p[1].shape[0] for p in parts}
        if len(sizes) != 1:
            found = ", ".join(f"class {i}: {p[1].shape[0]}" for i, p in enumerate(parts))
            raise ValueError(f"models: expected the same number of parameters P for every class, got {found}")
        like = dict(device=parts[0][1].device, dtype=parts[0][1].dtype)
        mean = torch.stack([p[1].detach().to(**like) for p in parts])
        spread = None if method == "initialisation" else torch.stack([p[2].detach().to(**like) for p in parts])
        knobs = {}
        for k, (name, given) in enumerate((("strength", strength), ("decay", decay))):
            if given is not None:
                knobs[name] = given
                continue
            values = [p[3 + k] for p in parts if p[3 + k] is not None]
            if len(set(values)) > 1:
                raise ValueError(f"models: the classes were trained with different {name}s "
                                 f"{sorted(set(values))[:5]}; pass {name}= to choose one for all")
            knobs[name] = values[0] if values else (DEFAULT_STRENGTH if k == 0 else DEFAULT_DECAY)
        return cls(method, mean, spread, knobs["strength"], knobs["decay"],
                   None if names is None else tuple(names))

    # ------------------------------------------------------------ adapting
    def rows(self, class_index: torch.Tensor) -> tuple[torch.Tensor, QuadraticRegulariser | QuarticRegulariser | None,
                                                       EveRates | torch.Tensor | None]:
        """``(start [T, P], regulariser or None, rates or None)`` for tasks ``t`` of class ``class_index[t]``;
        Meta-SGD's rates are the tensor α ``[T, P]``.

        The regulariser and rates hold one row per task (``[T, P]`` tensors): pass them to
        ``scale.adapt.adapt`` for exactly those T tasks, in that order (it cuts them to the rows
        it needs with ``take``).
        """
        if not isinstance(class_index, torch.Tensor) or class_index.dim() != 1 or class_index.dtype != torch.long:
            what = (f"{class_index.dtype} {tuple(class_index.shape)}" if isinstance(class_index, torch.Tensor)
                    else type(class_index).__name__)
            raise ValueError(f"class_index: expected a LongTensor [T] of class numbers, got {what}")
        if class_index.numel() and not (0 <= int(class_index.min()) and int(class_index.max()) < self.n_classes):
            raise ValueError(f"class_index: expected classes in 0..{self.n_classes - 1}, got "
                             f"{int(class_index.min())}..{int(class_index.max())}")
        idx = class_index.to(self.mean.device)
        start = self.mean[idx]
        if self.method == "initialisation":
            return start, None, None
        spread = self.spread[idx]
        if self.method == "quadratic":
            return start, QuadraticRegulariser(start, spread, self.strength), None
        if self.method == "quartic":
            return start, QuarticRegulariser(start, spread, self.strength), None
        if self.method == "rates":
            return start, None, spread
        return start, None, EveRates(start, spread, self.decay)

    def one_class(self, c: int) -> tuple[torch.Tensor, QuadraticRegulariser | QuarticRegulariser | None,
                                         EveRates | torch.Tensor | None]:
        """``(start [P], regulariser or None, rates or None)`` of class ``c``, as the library's own objects."""
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < self.n_classes:
            raise ValueError(f"c: expected a class number in 0..{self.n_classes - 1}, got {c!r}")
        start = self.mean[c]
        if self.method == "initialisation":
            return start, None, None
        if self.method == "quadratic":
            return start, QuadraticRegulariser(start, self.spread[c], self.strength), None
        if self.method == "quartic":
            return start, QuarticRegulariser(start, self.spread[c], self.strength), None
        if self.method == "rates":
            return start, None, self.spread[c]
        return start, None, EveRates(start, self.spread[c], self.decay)


def _scalar(value, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{what}: expected one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    return float(value)


def _same_centre(start: torch.Tensor, centre: torch.Tensor, i: int) -> None:
    if not torch.allclose(start, centre.to(start), rtol=1e-6, atol=1e-8):
        raise ValueError(f"models[{i}]: its regulariser or rates are centred away from its start; ClassPriors "
                         "adapts from the centre, so it would change what the model does")


def _describe(model, i: int):
    """``(method, start [P], spread [P] or None, strength or None, decay or None)`` of one trained model."""
    if isinstance(model, ScaleModel):
        if model.rule == "mean_only":
            return "initialisation", model.mean, None, None, None
        if model.rule in ("quadratic", "quartic"):
            reg = model.regulariser
            if reg is None:
                raise ValueError(f"models[{i}]: a {model.rule} ScaleModel without a regulariser")
            _same_centre(model.mean, reg.mean, i)
            spread = reg.variance if model.rule == "quadratic" else reg.inverse_scale
            return model.rule, model.mean, spread, _scalar(reg.strength, f"models[{i}].regulariser.strength"), None
        if model.rule == "eve":
            if model.rates is None:
                raise ValueError(f"models[{i}]: an eve ScaleModel without rates")
            _same_centre(model.mean, model.rates.mean, i)
            return "eve", model.mean, model.rates.variance, None, float(model.rates.decay)
        raise ValueError(f"models[{i}]: ScaleModel with unknown rule {model.rule!r}")
    if isinstance(model, MetaSGDResult):  # before TrainResult: it is one
        if model.rates is None or model.rates.dim() != 1:
            raise ValueError(f"models[{i}]: a Meta-SGD result needs its rates α [P] (one seed)")
        return "rates", model.params, model.rates, None, None
    if isinstance(model, ScaleGradientResult):  # before TrainResult: it is one
        reg = model.regulariser
        return "quadratic", reg.mean, reg.variance, _scalar(reg.strength, f"models[{i}].strength"), None
    if isinstance(model, TrainResult):
        return "initialisation", model.params, None, None, None
    if isinstance(model, torch.Tensor):
        if model.dim() != 1 or not model.is_floating_point():
            raise ValueError(f"models[{i}]: a tensor must be a flat floating-point start [P], got "
                             f"{model.dtype} {tuple(model.shape)}")
        return "initialisation", model, None, None, None
    raise ValueError(f"models[{i}]: expected a ScaleModel, MetaSGDResult, ScaleGradientResult, TrainResult or flat "
                     f"tensor [P], "
                     f"got {type(model).__name__}")
