"""backprop2's dynamic terminator: stop an inner loop when progress drowns in noise.

Every ``every`` iterations, on the freshly drawn batch (before it is used for a step), with
``e`` the per-point errors of that batch:

    r = prev_mean - mean(e)        (how much the error fell since the last check)
    s = std(e)                     (how noisy one batch is)
    p = MA(r) / MA(s)              (a signal-to-noise ratio of the improvement)

where MA is a moving average over the last ``window`` values whose buffer starts full of
ones, and p is itself smoothed the same way. The loop stops when MA(p) < ``p_lim``.
``prev_mean`` starts as the mean error over the task's full data. Because the buffers
start at 1, a task whose error keeps falling cannot stop before ``window`` checks
(``every * window`` iterations). A *rising* error makes r, and so p, negative: the task stops
at once, as in backprop2 (no progress is no progress). A stop therefore means "no longer
improving", not "converged"; callers that care check the error itself.

Batched: one terminator tracks T tasks; ``update`` returns a stop flag per task.
"""

from __future__ import annotations

import torch


class DynamicTerminator:
    def __init__(self, initial_error: torch.Tensor, *, every: int = 5, window: int = 50, p_lim: float = 1e-3):
        if initial_error.dim() != 1:
            raise ValueError(f"initial_error: expected a vector [T], got shape {tuple(initial_error.shape)}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a positive int, got {every!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected a positive int, got {window!r}")
        if not p_lim > 0:
            raise ValueError(f"p_lim: expected a positive threshold, got {p_lim!r}")
        self.every, self.window, self.p_lim = every, window, p_lim
        n = initial_error.shape[0]
        ones = torch.ones(n, window, device=initial_error.device, dtype=initial_error.dtype)
        self.r_buffer, self.s_buffer, self.p_buffer = ones.clone(), ones.clone(), ones.clone()
        self.prev_mean = initial_error.detach().clone()
        self.position = 0
        self.checks = 0

    def due(self, iteration: int) -> bool:
        """Whether iteration ``iteration`` (0-based) is a check."""
        return iteration % self.every == 0

    @torch.no_grad()
    def update(self, point_errors: torch.Tensor) -> torch.Tensor:
        """Record one check from per-point batch errors ``[T, B]``; return the stop flags ``[T]``."""
        if point_errors.dim() != 2 or point_errors.shape[0] != self.prev_mean.shape[0]:
            raise ValueError(f"point_errors: expected shape [{self.prev_mean.shape[0]}, B], "
                             f"got {tuple(point_errors.shape)}")
        mean = point_errors.mean(-1)
        spread = point_errors.std(-1, unbiased=False)
        i = self.position
        self.r_buffer[:, i] = self.prev_mean - mean
        self.s_buffer[:, i] = spread
        ma_r, ma_s = self.r_buffer.mean(-1), self.s_buffer.mean(-1)
        # a batch fitted exactly has no noise left: call that converged rather than divide by 0
        self.p_buffer[:, i] = torch.where(ma_s > 0, ma_r / ma_s.clamp_min(torch.finfo(ma_s.dtype).tiny),
                                          torch.zeros_like(ma_r))
        self.position = (i + 1) % self.window
        self.checks += 1
        self.prev_mean = mean
        return self.p_buffer.mean(-1) < self.p_lim

    @property
    def signal_to_noise(self) -> torch.Tensor:
        """The smoothed ratio MA(p) per task, the quantity compared with ``p_lim``."""
        return self.p_buffer.mean(-1)
