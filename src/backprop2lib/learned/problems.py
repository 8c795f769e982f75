"""Optimisee problems for learned optimisers, many instances at once.

An *instance set* holds B problems of one family with flat parameters ``θ: [B, P]``. It gives

* ``init()``: the starting parameters ``[B, P]`` (fixed per instance, so runs are paired);
* ``loss(θ, step)``: the loss per instance ``[B]``, differentiable in θ (the meta-loss path);
* ``loss_and_grad(θ, step)``: loss and gradient ``[B, P]`` with no graph (the optimiser's input).

``step`` picks the minibatch for stochastic problems: step t of instance b always sees the same
images, whichever optimiser runs, so every comparison is paired.

Families (Andrychowicz et al. 2016): random quadratics f(θ) = ‖Wθ − y‖² with W 10×10 and y drawn
Gaussian (the paper) or U[0, 1) (the released code); and an MNIST MLP (784 → 20 sigmoid → 10,
cross-entropy, minibatches of 128 drawn fresh each step, weights N(0, 0.01²)), with variants
(40 units, two hidden layers, ReLU) for the generalisation tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data.mnist import MNIST, N_CLASSES, N_PIXELS, Minibatches
from ..models.mlp import MLP
from ..second_order.hessian import loss_and_grad, mean_loss

QUADRATIC_DRAWS = ("gaussian", "uniform")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@dataclass(frozen=True)
class Quadratics:
    """B instances of f(θ) = ‖Wθ − y‖² (sum of squares), θ₀ ~ N(0, I)."""

    W: torch.Tensor  # [B, d, d]
    y: torch.Tensor  # [B, d]
    theta0: torch.Tensor  # [B, d]
    name: str = "quadratic"

    @classmethod
    def sample(cls, n: int, *, dim: int = 10, draw: str = "gaussian", seed: int = 0,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "Quadratics":
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive number of instances, got {n!r}")
        if draw not in QUADRATIC_DRAWS:
            raise ValueError(f"draw: unknown draw {draw!r}; valid: {', '.join(QUADRATIC_DRAWS)}")
        g = _generator(seed)
        rand = torch.randn if draw == "gaussian" else torch.rand
        W = rand(n, dim, dim, generator=g, dtype=torch.float64)
        y = rand(n, dim, generator=g, dtype=torch.float64)
        theta0 = torch.randn(n, dim, generator=g, dtype=torch.float64)
        return cls(*(t.to(device=device, dtype=dtype) for t in (W, y, theta0)), name=f"quadratic ({draw})")

    @property
    def n_instances(self) -> int:
        return self.W.shape[0]

    @property
    def n_params(self) -> int:
        return self.W.shape[-1]

    def init(self) -> torch.Tensor:
        return self.theta0.clone()

    def loss(self, theta: torch.Tensor, step: int = 0) -> torch.Tensor:
        r = torch.einsum("bij,bj->bi", self.W, theta) - self.y
        return r.pow(2).sum(-1)

    def loss_and_grad(self, theta: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            r = torch.einsum("bij,bj->bi", self.W, theta) - self.y
            return r.pow(2).sum(-1), 2 * torch.einsum("bij,bi->bj", self.W, r)

    def subset(self, index: slice) -> "Quadratics":
        return Quadratics(self.W[index], self.y[index], self.theta0[index], self.name)

    def chunk(self, start: int, stop: int) -> "Quadratics":
        """Instances ``start:stop`` (evaluation in chunks)."""
        return self.subset(slice(start, stop))


@dataclass(frozen=True)
class MNISTNets:
    """B MLP optimisees on MNIST images; instance b at step t trains on its own minibatch t.

    ``images`` is the image set the minibatches come from (meta-training, validation and test
    instances use different splits); ``seed`` fixes every instance's initialisation and its
    minibatch sequence, so two optimisers run on the same instances see the same data.
    The second-order chapter's MNIST problem
    (:func:`backprop2lib.experiments.second_order.mnist_problem`) draws from the same
    :class:`~backprop2lib.data.mnist.Minibatches` with the same loss, but is a different problem:
    PyTorch's initialisation instead of N(0, 0.01²), one minibatch shared by all its models
    instead of one per instance, and a fixed evaluation set.
    """

    model: MLP
    images: Minibatches
    theta0: torch.Tensor  # [B, P]
    seed: int
    batch_size: int = 128
    name: str = "MNIST MLP"
    start: int = 0  # a chunk's first instance in the set it was cut from
    n_total: int | None = None  # instances in that set: the minibatch draws are made for all of them
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def sample(cls, n: int, data: MNIST, *, hidden: tuple[int, ...] = (20,), activation: str = "sigmoid",
               batch_size: int = 128, init_std: float = 0.01, seed: int = 0,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "MNISTNets":
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive number of instances, got {n!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        model = MLP((N_PIXELS, *hidden, N_CLASSES), activation=activation)
        g = _generator(seed)
        theta0 = init_std * torch.randn(n, model.n_params, generator=g, dtype=torch.float64)
        name = f"MNIST {'-'.join(map(str, model.sizes))} {activation}"
        return cls(model, Minibatches.of(data, dtype=dtype, device=device), theta0.to(device, dtype), int(seed),
                   batch_size, name)

    @property
    def n_instances(self) -> int:
        return self.theta0.shape[0]

    @property
    def n_params(self) -> int:
        return self.model.n_params

    def init(self) -> torch.Tensor:
        return self.theta0.clone()

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Minibatch ``step`` of every instance: images ``[B, batch, 784]``, labels ``[B, batch]``."""
        if step not in self._cache:
            if len(self._cache) > 4:  # the loss and the gradient of one step share it
                self._cache.clear()
            # drawn for the whole set and cut to this chunk, so a chunk sees its instances' minibatches
            total = self.n_total if self.n_total is not None else self.n_instances
            self._cache[step] = self.images.draw(self.seed * 1_000_003 + 7919 * step + 1, (total, self.batch_size),
                                                 rows=slice(self.start, self.start + self.n_instances))
        return self._cache[step]

    def loss(self, theta: torch.Tensor, step: int = 0) -> torch.Tensor:
        """Mean cross-entropy per instance ``[B]`` on minibatch ``step``, differentiable in ``theta``."""
        return mean_loss(self.model, theta, *self.batch(step), loss="cross_entropy")

    def loss_and_grad(self, theta: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return loss_and_grad(self.model, theta, *self.batch(step), loss="cross_entropy")

    def chunk(self, start: int, stop: int) -> "MNISTNets":
        """Instances ``start:stop``, with the same initialisations and minibatches as in the whole set."""
        if not 0 <= start < stop <= self.n_instances:
            raise ValueError(f"start, stop: expected 0 <= start < stop <= {self.n_instances}, got {start}, {stop}")
        total = self.n_total if self.n_total is not None else self.n_instances
        return MNISTNets(self.model, self.images, self.theta0[start:stop], self.seed, self.batch_size,
                         self.name, self.start + start, total)


@dataclass(frozen=True)
class RandomlyScaled:
    """Instances of ``problems`` with each coordinate's objective rescaled: f̃(θ) = f(c ⊙ θ), c = exp(U(−r, r)).

    The generalisation trick of Lv et al. (2017, RNNprop), used in meta-training only: the same
    optimisee seen through a random diagonal change of variables, so a learned optimiser cannot
    tie its steps to one scale of gradients. The start is ``θ₀ / c``, the same point of the
    original problem, and the gradient is ``c ⊙ ∇f(c ⊙ θ)``. ``c`` is drawn per instance and
    coordinate from ``seed``.
    """

    problems: object
    log_range: float
    seed: int
    c: torch.Tensor = field(init=False, repr=False, compare=False)  # the scales [B, P]

    def __post_init__(self) -> None:
        if not self.log_range >= 0:
            raise ValueError(f"log_range: expected r >= 0, got {self.log_range!r}")
        theta0 = self.problems.init()
        u = torch.rand(theta0.shape, generator=_generator(self.seed), dtype=torch.float64) * 2 - 1
        object.__setattr__(self, "c", torch.exp(self.log_range * u).to(device=theta0.device, dtype=theta0.dtype))

    @property
    def n_instances(self) -> int:
        return self.problems.n_instances

    @property
    def n_params(self) -> int:
        return self.problems.n_params

    def init(self) -> torch.Tensor:
        return self.problems.init() / self.c

    def loss(self, theta: torch.Tensor, step: int = 0) -> torch.Tensor:
        return self.problems.loss(self.c * theta, step)

    def loss_and_grad(self, theta: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        loss, grad = self.problems.loss_and_grad(self.c * theta, step)
        return loss, self.c * grad
