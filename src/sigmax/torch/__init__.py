"""PyTorch-only power (docs/ARCHITECTURE.md, "Floors"): fused large-vocabulary losses with their own backward
and the vocabulary-parallel loss over ``torch.distributed``.

Only re-exports live here; the code is in the modules beside this file.
"""

from ._guard import GuardedLoss, WiringWarning, guard
from .distributed import (
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)
from .linear_cross_entropy import linear_cross_entropy

__all__ = [
    "GuardedLoss",
    "WiringWarning",
    "guard",
    "linear_cross_entropy",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]
