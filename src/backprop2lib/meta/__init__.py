"""Meta-learners on batched functional models, and how we evaluate them."""

from .adapt import sgd_adapt
from .evaluate import AdaptationCurve, evaluate_adaptation, predict_after_adaptation
from .maml import maml_loss, train_maml
from .pretrained import train_pretrained
from .reptile import reptile_update, train_reptile
from .training import DivergenceError, TrainResult

__all__ = [
    "AdaptationCurve",
    "DivergenceError",
    "TrainResult",
    "evaluate_adaptation",
    "maml_loss",
    "predict_after_adaptation",
    "reptile_update",
    "sgd_adapt",
    "train_maml",
    "train_pretrained",
    "train_reptile",
]
