"""Meta-training a learned optimiser by truncated back-propagation through time.

One *episode* draws fresh optimisee instances and runs the learned optimiser on them for
``episode_length`` steps (100 in the paper). The meta-loss is the sum over steps of the optimisee
loss after each update (all weights 1). Every ``unroll`` steps (20) it is back-propagated into the
optimiser's parameters φ, meta-Adam takes a step, and the optimisee parameters and the
optimiser's state carry on *detached*. Gradients never flow across a truncation, so the cost per
step is constant. The optimisee gradient fed to the optimiser is a constant input (no
second-order terms), as in the paper.

Every ``validate_every`` episodes the optimiser runs, without gradients, on fixed validation
instances. The parameters with the lowest mean validation loss are kept (early stopping). With
a ``checkpoint`` path the whole training state goes to disk every ``checkpoint_every`` episodes:
φ, meta-Adam, the best φ and the history. Problems are drawn from the episode number, so a run
that is interrupted and resumed gives the same numbers as one that never stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..optim.errors import DivergenceError
from ..progress import progress_bar
from .optimiser import CoordinatewiseOptimiser, detach_state


@dataclass(frozen=True)
class MetaTrainConfig:
    episodes: int = 100
    episode_length: int = 100
    unroll: int = 20
    meta_lr: float = 1e-3
    clip_grad: float | None = 1.0  # global norm of the meta-gradient
    validate_every: int = 10
    checkpoint_every: int = 10
    max_bad_truncations: int = 10  # NaN/inf meta-losses tolerated (skipped, counted) before giving up
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("episodes", "episode_length", "unroll", "validate_every", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.episode_length % self.unroll:
            raise ValueError(f"unroll: must divide episode_length ({self.episode_length}), got {self.unroll}")
        if not self.meta_lr > 0:
            raise ValueError(f"meta_lr: expected a positive number, got {self.meta_lr!r}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"clip_grad: expected a positive number or None, got {self.clip_grad!r}")


@dataclass
class MetaTrainResult:
    net: CoordinatewiseOptimiser  # the best parameters on validation (early stopping)
    best_episode: int
    best_validation: float
    episode_losses: list[float] = field(default_factory=list)  # mean meta-loss per step, per episode
    validation: list[tuple[int, float]] = field(default_factory=list)  # (episode, mean validation loss)
    bad_truncations: list[tuple[int, int]] = field(default_factory=list)  # (episode, step) of NaN/inf
    seconds: float = 0.0  # wall time of meta-training (this process and any run it resumed)
    optimisee_steps: int = 0


def unrolled_losses(net: CoordinatewiseOptimiser, problems, n_steps: int) -> torch.Tensor:
    """Run ``net`` on ``problems`` without gradients; the loss ``[n_steps + 1, B]`` at every step."""
    theta = problems.init()
    state = net.initial_state(theta.shape[0], theta.shape[1], device=theta.device, dtype=theta.dtype)
    out = []
    with torch.no_grad():
        for step in range(n_steps + 1):
            loss, grad = problems.loss_and_grad(theta, step)
            out.append(loss)
            if step < n_steps:
                update, state = net(grad, state)
                theta = theta + update
    return torch.stack(out)


def validation_loss(net: CoordinatewiseOptimiser, problems, n_steps: int) -> float:
    """Mean over steps 1..n and instances of the loss (the meta-objective); inf if anything diverged."""
    losses = unrolled_losses(net, problems, n_steps)[1:]
    if not bool(torch.isfinite(losses).all()):
        return math.inf
    return float(losses.mean())


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a half-written checkpoint


def meta_train(
    net: CoordinatewiseOptimiser,
    sample_problems: Callable[[int], object],
    validation_problems,
    config: MetaTrainConfig = MetaTrainConfig(),
    *,
    checkpoint: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> MetaTrainResult:
    """Train ``net`` in place; ``sample_problems(episode)`` gives that episode's instances.

    ``checkpoint``: a file to save to and, if it exists, to resume from (its config must match).
    ``stop_after``: return after this many episodes of *this call* (simulates an interruption).
    """
    meta_opt = torch.optim.Adam(net.parameters(), lr=config.meta_lr)
    result = MetaTrainResult(net.copy(), -1, math.inf)
    start_episode = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        try:
            saved = torch.load(path, weights_only=False, map_location="cpu")  # any device resumes any
        except Exception as err:  # a corrupt file must not silently restart training
            raise ValueError(f"checkpoint: could not read {path} ({err}); delete it to start afresh") from err
        if saved.get("config") != asdict(config) or saved.get("net_config") != asdict(net.config):
            raise ValueError(f"checkpoint: {path} was written with another configuration; "
                             f"saved {saved.get('config')}, now {asdict(config)}")
        net.load_state_dict(saved["net"])
        meta_opt.load_state_dict(saved["meta_opt"])
        result.net.load_state_dict(saved["best_net"])
        for key in ("best_episode", "best_validation", "episode_losses", "validation", "bad_truncations",
                    "seconds", "optimisee_steps"):
            setattr(result, key, saved[key])
        start_episode = saved["episode"] + 1

    def save(episode: int) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, {
            "config": asdict(config), "net_config": asdict(net.config), "episode": episode,
            "net": net.state_dict(), "meta_opt": meta_opt.state_dict(), "best_net": result.net.state_dict(),
            **{key: getattr(result, key) for key in ("best_episode", "best_validation", "episode_losses",
                                                      "validation", "bad_truncations", "seconds",
                                                      "optimisee_steps")},
        })

    end = config.episodes if stop_after is None else min(config.episodes, start_episode + stop_after)
    bar = progress_bar(end - start_episode, "meta-training", progress)
    for episode in range(start_episode, end):
        started = time.perf_counter()
        problems = sample_problems(episode)
        theta = problems.init()
        B, P = theta.shape
        state = net.initial_state(B, P, device=theta.device, dtype=theta.dtype)
        total = 0.0
        for first in range(0, config.episode_length, config.unroll):
            meta_loss = theta.new_zeros(())
            for step in range(first, first + config.unroll):
                _, grad = problems.loss_and_grad(theta.detach(), step)  # a constant input: no 2nd order
                update, state = net(grad, state)
                theta = theta + update
                meta_loss = meta_loss + problems.loss(theta, step + 1).mean()
            if not bool(torch.isfinite(meta_loss)):
                result.bad_truncations.append((episode, first + config.unroll))
                if len(result.bad_truncations) > config.max_bad_truncations:
                    raise DivergenceError(
                        f"meta-loss not finite {len(result.bad_truncations)} times; last at episode {episode}, "
                        f"steps {first + 1}-{first + config.unroll}; where: {result.bad_truncations}")
                break  # skip the update and the rest of this episode: its optimisees blew up
            meta_opt.zero_grad(set_to_none=True)
            meta_loss.backward()
            if config.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip_grad)
            meta_opt.step()
            total += float(meta_loss.detach()) / config.unroll
            theta = theta.detach()  # the truncation: values carry on, gradients stop here
            state = detach_state(state)
        result.episode_losses.append(total / (config.episode_length // config.unroll))
        result.optimisee_steps += B * config.episode_length
        result.seconds += time.perf_counter() - started
        if (episode + 1) % config.validate_every == 0 or episode == config.episodes - 1:
            value = validation_loss(net, validation_problems, config.episode_length)
            result.validation.append((episode, value))
            if value < result.best_validation:
                result.best_validation, result.best_episode = value, episode
                result.net.load_state_dict(net.state_dict())
        if (episode + 1) % config.checkpoint_every == 0 or episode == end - 1:
            save(episode)
        bar.update(1)
    bar.close()
    if result.best_episode < 0:  # never validated yet (e.g. stopped early): the current parameters
        result.net.load_state_dict(net.state_dict())
    return result


def episode_history(result: MetaTrainResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(episodes, meta-loss per episode), and the validation curve as [(episode, loss)] array."""
    episodes = np.arange(len(result.episode_losses))
    return episodes, np.asarray(result.episode_losses), np.asarray(result.validation, dtype=float)
