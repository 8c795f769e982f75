"""The one error every training or adaptation loop raises when its numbers blow up."""

from __future__ import annotations

from typing import Iterable


class DivergenceError(FloatingPointError):
    """A loss, gradient, Hessian or parameter became NaN or inf (or passed a divergence bound).

    The message always says where: which method or loop, which step or iteration, and which rows
    (tasks, models, instances, (image, class) pairs) of the batch. It is a ``FloatingPointError``
    so that code written against Python's own overflow errors still catches it.
    """


def rows_text(rows: Iterable[int], limit: int = 10) -> str:
    """``[3, 17, 40]`` or ``[0, 1, ..., 9] (+25 more)``: the rows an error message names."""
    rows = [int(r) for r in rows]
    shown = str(rows[:limit])
    return shown + (f" (+{len(rows) - limit} more)" if len(rows) > limit else "")
