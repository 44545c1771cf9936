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
transforms, forward-mode AD and batched tensors (no storage). Their autograd Functions' backward passes
take the kernels only for a plain CPU gradient; batched gradients (``vmap`` over a backward, PyTorch's
batched gradcheck) go to out-of-place torch operations. Results agree with the generic code within the tolerances of
:mod:`sigmax.testing` and the 4-ulp accuracy bound, edge cases included (all ``-inf`` rows, ``+inf``
entries, NaN rows, subnormals).

Switches: ``SIGMAX_DISABLE_KERNELS=1`` in the environment (read at import) or :func:`set_enabled`
force the generic path; ``SIGMAX_NUM_THREADS`` caps the threads; ``SIGMAX_OUTPUT_CACHE_MB`` caps the
output cache. Nothing is compiled at run time.
"""

from __future__ import annotations

from . import _ops  # noqa: F401 (registers the kernel rows of the dispatch tables)
from ._buffers import check_out, write_out
from ._switches import AVAILABLE, enabled, num_threads, set_enabled, use_kernels, variant
from ._switches import ck as _ck  # noqa: F401 (the C module, for tests)

__all__ = ["AVAILABLE", "enabled", "set_enabled", "use_kernels", "num_threads", "variant", "check_out",
           "write_out"]
