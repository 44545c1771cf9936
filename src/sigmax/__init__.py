"""sigmax: logits to probabilities, decisions and losses, right for the task and exact at the edges.

Only re-exports live here (docs/ARCHITECTURE.md); the code is in the private and topic modules.
"""

from .activations import (
    binary_to_two_class,
    log_sigmoid,
    log_softmax,
    logit,
    logsumexp,
    sigmoid,
    softmax,
    softplus,
    two_class_to_binary,
)
from .losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
    sigmoid_focal_loss,
    softmax_focal_loss,
)
from . import calibration, metrics  # evaluation and calibration: sigmax.metrics.*, sigmax.calibration.*
from .interpret import Interpretation, interpret
from .check import Finding, check
from . import conformal  # conformal prediction sets: sigmax.conformal.ConformalClassifier
from . import datasets, io  # score files (sigmax.io.load_scores, ...), built-in data (sigmax.datasets.digits_scores)

__version__ = "0.1.0"

__all__ = [
    "sigmoid",
    "log_sigmoid",
    "logit",
    "softplus",
    "softmax",
    "log_softmax",
    "logsumexp",
    "binary_to_two_class",
    "two_class_to_binary",
    "nll_loss",
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
    "metrics",
    "calibration",
    "conformal",
    "interpret",
    "Interpretation",
    "check",
    "Finding",
    "io",
    "datasets",
]
