"""Learned optimizers: the coordinatewise LSTM (and GRU) of "learning to learn by gradient descent".

- :mod:`.preprocess`: the log/sign gradient preprocessing;
- :mod:`.optimizer`: the coordinatewise recurrent optimizer, all coordinates flattened into one batch;
- :mod:`.problems`: batched optimizee families (random quadratics, MNIST MLPs and their variants);
- :mod:`.meta_train`: truncated-BPTT meta-training with validation, early stopping and resumable checkpoints;
- :mod:`.stepper`: a trained optimizer behind the stepper protocol of :mod:`backprop2lib.optim`, which
  also holds the hand-designed baselines, the loop that runs them, their tuning and the curves.
"""

from .meta_train import (MetaTrainConfig, MetaTrainResult, meta_train, unrolled_losses,
                         validation_loss)
from .optimizer import CoordinatewiseOptimizer, LearnedOptimizerConfig, detach_state
from .preprocess import preprocess_gradients
from .problems import MNISTNets, Quadratics
from .stepper import LearnedStepper

__all__ = [
    "LearnedStepper", "MetaTrainConfig",
    "MetaTrainResult", "meta_train", "unrolled_losses", "validation_loss", "CoordinatewiseOptimizer",
    "LearnedOptimizerConfig", "detach_state", "preprocess_gradients", "MNISTNets", "Quadratics",
]
