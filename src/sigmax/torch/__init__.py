"""PyTorch-only power (docs/ARCHITECTURE.md, "Floors"): fused large-vocabulary losses with their own backward
and the vocabulary-parallel loss over ``torch.distributed``.

Only re-exports live here; the code is in the modules beside this file. ``sigmax.torch.hf`` (the Hugging
Face patch) is imported on first use.
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


#: submodules imported on first access (``sigmax.torch.hf``), so importing sigmax.torch costs nothing for them
LAZY_SUBMODULES = ("hf", "metrics")


def __getattr__(name):
    if name in LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
