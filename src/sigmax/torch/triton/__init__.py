"""Triton kernels for CUDA tensors (the ``gpu`` extra: ``pip install 'sigmax[gpu]'``, Triton 3.x).

Plain functions on tensors, each with its own ``torch.autograd.Function``:

* :func:`softmax`, :func:`log_softmax`, :func:`logsumexp` (``dim``, ``temperature``, ``where``);
* :func:`cross_entropy` (class indices with ``weight``, ``ignore_index``, ``label_smoothing``, or
  class probabilities; classes on ``dim``, default the **last** axis, others moved there by a copy);
* :func:`binary_cross_entropy_with_logits` (``weight``, ``pos_weight``);
* :func:`linear_cross_entropy`: the fused loss of a language-model head, CCE-style, without the
  N x V logits (``sigmax.torch.linear_cross_entropy(..., impl="triton")`` is its checked entry).

They keep the CPU path's accuracy: float32 accumulation for float16/bfloat16, ``log1p`` where a loss is
near 0, fully masked rows (softmax 0, log-sum-exp ``-inf``, zero gradient), infinite logits at their
limits. On CUDA tensors sigmax's own functions (``sigmax.softmax``, ``sigmax.cross_entropy``, ...)
reach these kernels by themselves, through the ``cuda`` row of the dispatch tables, registered when
:mod:`sigmax.torch` is imported in a process that has Triton and a CUDA device;
``SIGMAX_TRACE_DISPATCH=1`` shows it.

Without a GPU, ``TRITON_INTERPRET=1`` (set before the first call) runs the kernels in Triton's
interpreter on CPU tensors, slowly: that is how the tests run them. Importing this package imports
neither Triton nor any kernel; they are built on the first call.
"""

from . import _register
from ._linear import fused, linear_cross_entropy
from ._ops import (
    binary_cross_entropy_with_logits,
    check_device,
    cross_entropy,
    interpreting,
    log_softmax,
    logsumexp,
    softmax,
)

__all__ = [
    "available",
    "binary_cross_entropy_with_logits",
    "check_device",
    "cross_entropy",
    "fused",
    "interpreting",
    "linear_cross_entropy",
    "log_softmax",
    "logsumexp",
    "softmax",
]


def available() -> bool:
    """Whether Triton is installed (the kernels still need a CUDA tensor, or ``TRITON_INTERPRET=1``)."""
    import importlib.util

    return importlib.util.find_spec("triton") is not None


if _register.wanted():  # a CUDA device and Triton: the tables of a CPU-only process stay as they are
    _register.register_all()
