"""Second-order optimisation: backprop2's block-diagonal generalised Newton and its baselines.

- :mod:`.blocks`: random within-layer parameter blocks;
- :mod:`.hessian`: exact within-block Hessians of an MLP's loss (and the full one, for checks);
- :mod:`.steps`: step rules per eigendirection (|λ| Newton, Newton, damped, saddle-free);
- :mod:`.optimisers`: GD with line search and block Newton as steppers of :mod:`backprop2lib.optim`
  (whose SGD and Adam are the first-order baselines), and the MLP problem they act on;
- :mod:`.toy`: low-dimensional test functions and the cubic model behind the inflection-point argument.
"""

from .blocks import BlockGroup, BlockPartition, block_partition
from .hessian import LOSSES, full_hessian, loss_and_grad, loss_grad_and_block_hessians, mean_loss
from .optimisers import BlockNewton, GradientDescentLineSearch, MLPProblem
from .steps import RULES, block_step, eigen_step

__all__ = [
    "BlockGroup", "BlockPartition", "block_partition", "LOSSES", "full_hessian", "loss_and_grad",
    "loss_grad_and_block_hessians", "mean_loss", "BlockNewton",
    "GradientDescentLineSearch", "MLPProblem", "RULES", "block_step", "eigen_step",
]
