"""Continual learning: tasks learned one after another, and quadratic priors that remember old ones.

* ``tasks``     - permuted and split MNIST task sequences, per seed, from the bundled data
* ``fisher``    - the diagonal Fisher information (true and empirical), batched; the Fisher overlap
* ``penalties`` - consolidation penalties (L2, EWC, online EWC, backprop2's learned scale) as one
                  quadratic regulariser, and the proximal step that applies it
* ``trainer``   - the sequential trainer: every method, strength and seed as rows of one batch
* ``metrics``   - average accuracy, learning accuracy, backward transfer, forgetting
"""

from .fisher import FISHER_KINDS, diagonal_fisher, fisher_overlap, layer_slices
from .metrics import average_accuracy, backward_transfer, forgetting, learning_accuracy
from .penalties import CONSOLIDATION, ConsolidationState, learned_scale_prior, proximal_step
from .tasks import TaskSequence, permuted_mnist, split_mnist, square_pixels
from .trainer import RowPlan, SequenceRun, TrainSettings, accuracy, train_sequence

__all__ = ["CONSOLIDATION", "ConsolidationState", "FISHER_KINDS", "RowPlan", "SequenceRun", "TaskSequence",
           "TrainSettings", "accuracy", "average_accuracy", "backward_transfer", "diagonal_fisher",
           "fisher_overlap", "forgetting", "layer_slices", "learned_scale_prior", "learning_accuracy",
           "permuted_mnist", "proximal_step", "split_mnist", "square_pixels", "train_sequence"]
