import torch

# Tests share a 2-core machine: one thread each keeps them predictable.
torch.set_num_threads(1)
