import os

import torch

# Library tests never draw progress bars.
os.environ.setdefault("BACKPROP2_PROGRESS", "0")
# The test models are tiny: one thread is as fast, and immune to OpenMP stalls on shared cores.
torch.set_num_threads(1)
