"""The one optimisation core: steppers on flat ``[B, P]`` parameters, the loop that runs them,
the curve it records, the learning-rate tuner, step-size and stopping rules, and the divergence
error.

- :mod:`.steppers`: SGD, NAG, RMSprop, Adam (``init(theta)``, ``step(theta, grad, state)``);
- :mod:`.loop`: :func:`run`, any stepper on any batched problem, divergence counted per row;
- :mod:`.curve`: :class:`Curve`, the one record of a batched run;
- :mod:`.tune`: :func:`tune_lr` (and :func:`tune_lr_at`, several horizons at once) with one grid rule and
  one ``at_edge``;
- :mod:`.line_search`, :mod:`.terminator`: backprop2's warm-started line search and dynamic
  terminator, batched over rows;
- :mod:`.errors`: :class:`DivergenceError`, which always says where.
"""

from .curve import Curve, compare_curves
from .errors import DivergenceError
from .line_search import LineSearch, line_search
from .loop import run
from .steppers import NAG, SGD, STEPPERS, Adam, RMSprop, Stepper
from .terminator import DynamicTerminator
from .tune import LR_GRID, LRChoice, half_decades, tune_lr, tune_lr_at

__all__ = [
    "Curve", "compare_curves", "DivergenceError", "LineSearch", "line_search", "run", "NAG", "SGD", "STEPPERS", "Adam", "RMSprop",
    "Stepper", "DynamicTerminator", "LR_GRID", "LRChoice", "half_decades", "tune_lr", "tune_lr_at",
]
