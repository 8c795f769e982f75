import math
from collections import deque

import pytest
import torch

from backprop2lib.optim import DynamicTerminator

D = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class _SlowTerminator:
    """The specification written out for one task: three deques of the last `window` values, starting full of 1s."""

    def __init__(self, initial_error: float, window: int, p_lim: float):
        self.r = deque([1.0] * window, maxlen=window)
        self.s = deque([1.0] * window, maxlen=window)
        self.p = deque([1.0] * window, maxlen=window)
        self.prev, self.p_lim = initial_error, p_lim

    def update(self, errors: list[float]) -> bool:
        n = len(errors)
        mean = sum(errors) / n
        std = math.sqrt(sum((e - mean) ** 2 for e in errors) / n)
        self.r.append(self.prev - mean)
        self.s.append(std)
        ma_r, ma_s = sum(self.r) / len(self.r), sum(self.s) / len(self.s)
        self.p.append(ma_r / ma_s if ma_s > 0 else 0.0)
        self.prev = mean
        return self.snr < self.p_lim

    @property
    def snr(self) -> float:
        return sum(self.p) / len(self.p)


def test_matches_the_specification_written_out_per_task():
    T, W = 3, 7
    g = gen(0)
    initial = torch.tensor([2.0, 1.0, 5.0], dtype=D)
    term = DynamicTerminator(initial, window=W, p_lim=0.05)
    slow = [_SlowTerminator(float(initial[t]), W, 0.05) for t in range(T)]
    level = initial.clone()
    for k in range(40):
        level = level * torch.tensor([0.9, 1.0, 0.99], dtype=D)
        errors = level[:, None] + 0.2 * torch.randn(T, 9, generator=g, dtype=D)
        flags = term.update(errors)
        for t in range(T):
            expected = slow[t].update(errors[t].tolist())
            assert float(term.signal_to_noise[t]) == pytest.approx(slow[t].snr, rel=1e-10, abs=1e-12)
            assert bool(flags[t]) == expected
    assert term.checks == 40


@pytest.mark.parametrize("window", [5, 20, 50])
def test_converged_problem_stops_but_never_within_the_first_window_checks(window):
    g = gen(window)
    term = DynamicTerminator(torch.tensor([1.0], dtype=D), window=window)
    first_stop = None
    for k in range(1, 6 * window + 1):
        errors = 1.0 + 0.3 * torch.randn(1, 40, generator=g, dtype=D)  # constant mean, noisy batches
        if bool(term.update(errors)[0]) and first_stop is None:
            first_stop = k
    assert first_stop is not None, "a converged task must stop"
    assert first_stop > window


def test_a_rising_error_stops_at_once_as_documented():
    # backprop2's rule: a negative improvement is no progress, so MA(p) drops below p_lim at once
    term = DynamicTerminator(torch.tensor([1.0], dtype=D), window=50)
    assert bool(term.update(torch.full((1, 10), 1e4, dtype=D))[0])  # the error jumps from 1 to 1e4
    small = DynamicTerminator(torch.tensor([1.0], dtype=D), window=50)
    assert not bool(small.update(torch.full((1, 10), 1.5, dtype=D))[0])  # a small rise is averaged away


def test_improving_problem_does_not_stop_within_many_checks():
    g = gen(1)
    start = 1000.0
    term = DynamicTerminator(torch.tensor([start], dtype=D), window=20)
    for k in range(1, 301):
        mean = start - 2.0 * k  # falls by 2 per check, batch spread 0.5
        errors = mean + 0.5 * torch.randn(1, 30, generator=g, dtype=D)
        assert not bool(term.update(errors)[0]), k
    assert float(term.signal_to_noise[0]) > 1.0


def test_per_task_flags_are_independent_in_one_batched_terminator():
    g = gen(2)
    W = 10
    both = DynamicTerminator(torch.tensor([1.0, 500.0], dtype=D), window=W)
    alone = DynamicTerminator(torch.tensor([1.0], dtype=D), window=W)
    stopped_at = None
    for k in range(1, 200):
        converged = 1.0 + 0.3 * torch.randn(1, 25, generator=g, dtype=D)
        improving = (500.0 - 2.0 * k) + 0.3 * torch.randn(1, 25, generator=g, dtype=D)
        flags = both.update(torch.cat([converged, improving]))
        assert bool(flags[0]) == bool(alone.update(converged)[0])
        assert not bool(flags[1])
        if bool(flags[0]) and stopped_at is None:
            stopped_at = k
    assert stopped_at is not None and stopped_at > W
    torch.testing.assert_close(both.signal_to_noise[:1], alone.signal_to_noise)


def test_zero_spread_batches_give_no_nan_and_stop():
    term = DynamicTerminator(torch.tensor([0.5, 0.0], dtype=D), window=4)
    flags = None
    for _ in range(12):
        flags = term.update(torch.stack([torch.full((6,), 0.5, dtype=D), torch.zeros(6, dtype=D)]))
        assert bool(torch.isfinite(term.signal_to_noise).all())
    assert bool(flags.all())  # an exactly fitted batch has no noise and no improvement: converged


def test_due_every_few_iterations():
    term = DynamicTerminator(torch.zeros(2), every=5)
    assert [i for i in range(16) if term.due(i)] == [0, 5, 10, 15]
    assert DynamicTerminator(torch.zeros(1), every=1).due(7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(every=0), "every"),
        (dict(every=2.5), "every"),
        (dict(window=0), "window"),
        (dict(window=3.0), "window"),
        (dict(p_lim=0.0), "p_lim"),
        (dict(p_lim=-1.0), "p_lim"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DynamicTerminator(torch.ones(2), **kwargs)


def test_shape_errors():
    with pytest.raises(ValueError, match="initial_error"):
        DynamicTerminator(torch.ones(2, 3))
    with pytest.raises(ValueError, match="initial_error"):
        DynamicTerminator(torch.tensor(1.0))
    term = DynamicTerminator(torch.ones(2))
    with pytest.raises(ValueError, match=r"point_errors: expected shape \[2, B\]"):
        term.update(torch.ones(3, 4))
    with pytest.raises(ValueError, match="point_errors"):
        term.update(torch.ones(2))
