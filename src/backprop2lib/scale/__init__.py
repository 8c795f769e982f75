"""Parameter scale: flat-vector objectives, regularisers, Eve's learning rates and the inner loop
that uses them (line search, terminator, batched or one task at a time)."""

from .adapt import AdaptResult, InnerLoop, adam_adapt, adapt, adapt_one_at_a_time
from .eve import EveRates
from .objective import error, error_and_grad, point_errors
from .regularisers import (QUARTIC_VARIANTS, QuadraticRegulariser, QuarticRegulariser, quartic_inverse_scale,
                           quartic_minimum_distance)

__all__ = [
    "AdaptResult",
    "EveRates",
    "InnerLoop",
    "QUARTIC_VARIANTS",
    "QuadraticRegulariser",
    "QuarticRegulariser",
    "adam_adapt",
    "adapt",
    "adapt_one_at_a_time",
    "error",
    "error_and_grad",
    "point_errors",
    "quartic_inverse_scale",
    "quartic_minimum_distance",
]
