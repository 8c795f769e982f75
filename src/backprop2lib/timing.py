"""Wall-clock timing that is honest about noise: warm up, repeat, report the median."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def _sync(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(fn: Callable[[], object], *, repeats: int = 50, warmup: int = 5, rounds: int = 5,
                  device=None) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``fn`` (``repeats`` calls per round)."""
    if repeats < 1 or rounds < 1 or warmup < 0:
        raise ValueError("repeats and rounds must be >= 1 and warmup >= 0")
    for _ in range(warmup):
        fn()
    _sync(device)
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(device)
        per_round.append((time.perf_counter() - start) / repeats)
    return statistics.median(per_round)
