"""Learned optimisers: the coordinatewise LSTM (and GRU) of "learning to learn by gradient descent".

- :mod:`.preprocess`: the log/sign gradient preprocessing;
- :mod:`.optimiser`: the coordinatewise recurrent optimiser, all coordinates flattened into one batch;
- :mod:`.problems`: batched optimisee families (random quadratics, MNIST MLPs and their variants) and
  the random rescaling used to meta-train for generalisation;
- :mod:`.meta_train`: truncated-BPTT meta-training with validation, early stopping and resumable checkpoints;
- :mod:`.stepper`: a trained optimiser behind the stepper protocol of :mod:`backprop2lib.optim`, which
  also holds the hand-designed baselines, the loop that runs them, their tuning and the curves.
"""

from .meta_train import (MetaTrainConfig, MetaTrainResult, meta_train, unrolled_losses,
                         validation_loss)
from .optimiser import CoordinatewiseOptimiser, LearnedOptimiserConfig, detach_state
from .preprocess import preprocess_gradients
from .problems import MNISTNets, Quadratics, RandomlyScaled
from .stepper import LearnedStepper

__all__ = [
    "LearnedStepper", "MetaTrainConfig",
    "MetaTrainResult", "meta_train", "unrolled_losses", "validation_loss", "CoordinatewiseOptimiser",
    "LearnedOptimiserConfig", "detach_state", "preprocess_gradients", "MNISTNets", "Quadratics", "RandomlyScaled",
]
