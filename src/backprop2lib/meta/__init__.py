"""Meta-learners on batched functional models, and how we evaluate them.

Two conventions hold for every meta-learner in the library (the README repeats them):

* **Parameters are flat vectors.** Every ``train_*`` takes its start as ``init: [P]`` and returns
  its learned start flat (``TrainResult.params``, ``ScaleModel.mean``), in the layout of
  :meth:`MLP.flatten`; per-task parameters are ``[T, P]``. Flat is what :mod:`backprop2lib.scale`,
  :mod:`backprop2lib.optim` and backprop2's own learner work on, and what per-parameter scales,
  regularisers and rates act on elementwise. The tuple ``(W1, b1, ...)`` is the model's internal
  view: MAML's inner loop runs on it (:func:`.adapt.descend`), nothing public takes or returns it.
* **Every inner learning rate is a step on backprop2's error** E = mean over points of
  ½‖f − y‖² (:mod:`backprop2lib.scale.objective`), for the MAML family (``inner_lr`` of MAML,
  Reptile, the evaluations, ``sgd_adapter``) as for the scale learners, Meta-SGD's rates, Eve
  and the recognition chapter. E is the objective of backprop2 and of every regulariser, whose
  strengths c are stated relative to it. A step size stated on the MSE (mean over points and
  outputs; the MAML papers' α) converts with :func:`.adapt.from_mse_lr`: ∇E = (O/2)·∇MSE for O
  outputs, so it is 2α/O on E — MAML's α = 0.01 is 0.02 for one output, a power of two, so every
  step is the same in floating point. What is *measured* (query and grid errors, MAML's meta-loss)
  stays the MSE.
"""

from .adapt import from_mse_lr, sgd_adapt
from .evaluate import evaluate_adaptation, predict_after_adaptation
from .maml import maml_loss, train_maml
from .pretrained import train_pretrained
from .reptile import reptile_update, train_reptile
from ..optim.errors import DivergenceError
from .training import TrainResult

__all__ = [
    "DivergenceError",
    "TrainResult",
    "evaluate_adaptation",
    "from_mse_lr",
    "maml_loss",
    "predict_after_adaptation",
    "reptile_update",
    "sgd_adapt",
    "train_maml",
    "train_pretrained",
    "train_reptile",
]
