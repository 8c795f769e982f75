"""Learned optimizers: the coordinatewise LSTM (and GRU) of "learning to learn by gradient descent".

- :mod:`.preprocess`: the log/sign gradient preprocessing;
- :mod:`.optimizer`: the coordinatewise recurrent optimizer, all coordinates flattened into one batch;
- :mod:`.problems`: batched optimizee families (random quadratics, MNIST MLPs and their variants);
- :mod:`.meta_train`: truncated-BPTT meta-training with validation, early stopping and resumable checkpoints;
- :mod:`.baselines`: SGD, NAG, RMSprop and Adam on flat parameters, and a stepper wrapping a learned optimizer;
- :mod:`.evaluate`: paired runs, learning-rate tuning on validation instances, confidence intervals.
"""

from .baselines import BASELINES, LR_GRID, NAG, SGD, Adam, LearnedStepper, RMSprop
from .evaluate import Curve, LRChoice, final, mean_ci, paired_difference, run, steps_to_reach, tune_lr
from .meta_train import (MetaDivergenceError, MetaTrainConfig, MetaTrainResult, meta_train, unrolled_losses,
                         validation_loss)
from .optimizer import CoordinatewiseOptimizer, LearnedOptimizerConfig, detach_state
from .preprocess import preprocess_gradients
from .problems import MNISTNets, Quadratics

__all__ = [
    "BASELINES", "LR_GRID", "NAG", "SGD", "Adam", "LearnedStepper", "RMSprop", "Curve", "LRChoice", "final",
    "mean_ci", "paired_difference", "run", "steps_to_reach", "tune_lr", "MetaDivergenceError", "MetaTrainConfig",
    "MetaTrainResult", "meta_train", "unrolled_losses", "validation_loss", "CoordinatewiseOptimizer",
    "LearnedOptimizerConfig", "detach_state", "preprocess_gradients", "MNISTNets", "Quadratics",
]
