"""Fast CPU paths for the core functions, in rooms by responsibility (docs/ARCHITECTURE.md, "Dispatch").

The generic Array-API code in :mod:`sigmax.activations` and :mod:`sigmax.losses` is the reference and
the fallback; the compiled kernels (``_ck``, built from C at install time by ``setup.py``; optional)
give the same results faster where they apply, as the ``numpy-kernel`` and ``torch-cpu-kernel`` rows
of the dispatch tables (:mod:`sigmax._dispatch`):

* :mod:`._switches`: built? on? threads, instruction-set variant, the C module's op codes;
* :mod:`._buffers`: result arrays (large ones from the kernels' cached memory) and ``out=``;
* :mod:`._ops`: which inputs each kernel takes (or why it declines) and the calls into C;
* :mod:`._autograd`: the ``torch.autograd.Function`` s, one per operation.

They apply to float32/float64 NumPy arrays and contiguous CPU torch tensors (with or without
autograd), not empty, without masks, temperatures, weights, and outside torch.compile, functorch
transforms and forward-mode AD. Results agree with the generic code within the tolerances of
:mod:`sigmax.testing` and the 4-ulp accuracy bound, edge cases included (all ``-inf`` rows, ``+inf``
entries, NaN rows, subnormals).

Switches: ``SIGMAX_DISABLE_KERNELS=1`` in the environment (read at import) or :func:`set_enabled`
force the generic path; ``SIGMAX_NUM_THREADS`` caps the threads; ``SIGMAX_OUTPUT_CACHE_MB`` caps the
output cache. Nothing is compiled at run time.
"""

from __future__ import annotations

from typing import Any

from . import _ops
from ._buffers import check_out, write_out
from ._switches import AVAILABLE, enabled, num_threads, set_enabled, use_kernels, variant
from ._switches import ck as _ck  # noqa: F401 (the C module, for tests)

__all__ = ["AVAILABLE", "enabled", "set_enabled", "use_kernels", "num_threads", "variant", "check_out",
           "write_out", "elementwise", "softmax", "logsumexp"]


def _kind(x) -> str:
    return "numpy" if type(x).__module__ == "numpy" else "torch"


def _or_not_implemented(r):
    return NotImplemented if type(r) is _ops._dispatch.Declined else r


# The activations' calls of today (a kernel result, or NotImplemented for the generic code). They go
# once sigmax.activations calls sigmax._dispatch.call("softmax", ...), whose tables hold these kernels.
def elementwise(name: str, x: Any, out: Any = None):
    """``sigmoid`` / ``log_sigmoid`` / ``softplus`` by a kernel, or ``NotImplemented``."""
    return _or_not_implemented(_ops.elementwise(_kind(x), name, x, out))


def softmax(name: str, x: Any, axis: Any, dim: Any, temperature: Any, where: Any, out: Any):
    """``softmax`` / ``log_softmax`` by a kernel, or ``NotImplemented``."""
    return _or_not_implemented(_ops.softmax(_kind(x), name, x, axis, dim, temperature, where, out))


def logsumexp(x: Any, axis: Any, dim: Any, b: Any, keepdims: bool, return_sign: bool, where: Any, out: Any):
    """``logsumexp`` by a kernel, or ``NotImplemented``."""
    return _or_not_implemented(_ops.logsumexp(_kind(x), x, axis, dim, b, keepdims, return_sign, where, out))
