"""Output buffers: fresh result arrays (large ones from the kernels' cached memory) and ``out=``.

:func:`check_out` and :func:`write_out` are the ``out=`` plumbing the generic code of
:mod:`sigmax.activations` shares with the kernels; :func:`new` is where every kernel result comes from.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from ._switches import ck as _ck

__all__ = ["new", "check_out", "write_out", "kernel_out", "finish_out", "ptr"]


def _torch():
    return sys.modules.get("torch")


def ptr(a):
    """What the C module accepts for an array: the NumPy array itself (buffer protocol) or an address."""
    return a if type(a) is np.ndarray else a.data_ptr()


#: results this large take memory from the kernels' cache (see _ck.empty): no fresh pages per call
_CACHED_BYTES = 8 << 20


def _cache_limit_from_env() -> None:
    env = os.environ.get("SIGMAX_OUTPUT_CACHE_MB", "").strip()
    if env and _ck is not None:
        try:
            _ck.set_cache_limit(max(0, int(float(env) * (1 << 20))))
        except ValueError:
            pass


_cache_limit_from_env()


def new(kind: str, shape, dtype):
    """A fresh array for a kernel's result: NumPy or a CPU torch tensor of ``shape`` and ``dtype``.

    Large ones wrap a block of the kernels' output cache: 2 MiB-aligned memory with huge pages that
    returns to the cache when the array dies, so repeated calls do not fault in and zero new pages
    (a fresh half-gigabyte result costs more in page faults than the kernel's own work). The arrays
    are ordinary (writable, contiguous, of their own shape); their memory belongs to the buffer
    object in their ``base`` (NumPy) or storage (PyTorch, where it cannot be resized in place).
    ``SIGMAX_OUTPUT_CACHE_MB`` caps what the cache keeps (default 1024; 0: keep nothing).
    """
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    dtype = np.dtype(dtype) if kind == "numpy" else dtype
    nbytes = n * dtype.itemsize  # (torch.dtype has itemsize too)
    if nbytes >= _CACHED_BYTES and _ck is not None:
        block = _ck.empty(nbytes)
        if kind == "numpy":
            return np.frombuffer(block, dtype=dtype, count=n).reshape(shape)
        return _torch().frombuffer(block, dtype=dtype, count=n).reshape(shape)
    if kind == "numpy":
        return np.empty(shape, dtype=dtype)
    return _torch().empty(shape, dtype=dtype)


def check_out(out, *, like, shape, dtype, x=None) -> None:
    """Validate ``out=``: the result's array library, shape and dtype, writable, and not under autograd."""
    torch = _torch()
    lib = type(like).__module__.split(".")[0]
    if isinstance(like, np.ndarray) or lib == "numpy":
        if type(out) is not np.ndarray:
            raise TypeError(f"out must be a NumPy array (the result is one), got {type(out).__module__}."
                            f"{type(out).__name__}")
        if not out.flags.writeable:
            raise ValueError("out is read-only; give a writable array")
    elif torch is not None and isinstance(like, torch.Tensor):
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"out must be a torch.Tensor (the result is one), got {type(out).__name__}")
        if out.device != like.device:
            raise ValueError(f"out is on {out.device} but the result is on {like.device}; give out on "
                             f"{like.device}")
        if torch.is_grad_enabled() and (out.requires_grad or (x is not None and getattr(x, "requires_grad", False))):
            raise ValueError("out= does not support autograd (as in PyTorch): call without out=, or under "
                             "torch.no_grad() with an out that does not require grad")
    else:
        raise TypeError(f"out= is not supported for {lib} arrays (they are immutable or foreign); "
                        "call without out= and use the returned array")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)} but the result has shape {tuple(shape)}; "
                         "give an out of the result's shape")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype} but the result has dtype {dtype}; give an out of "
                        "the result's dtype (no casting is done)")


def write_out(result, out, x=None):
    """Copy a generic-path ``result`` into a validated ``out`` and return ``out`` (``out=None``: result)."""
    if out is None:
        return result
    check_out(out, like=result, shape=tuple(result.shape), dtype=result.dtype, x=x)
    if isinstance(out, np.ndarray):
        np.copyto(out, result)
    else:
        torch = _torch()
        with torch.no_grad():
            out.copy_(result)
    return out


def kernel_out(inp, out, shape):
    """The array the kernel writes: ``out`` if given (validated) and usable, else a fresh one.

    Returns ``(target, copy_back)``: when ``out`` overlaps ``x`` other than exactly, or is not
    contiguous, the kernel writes a fresh array that is then copied into ``out``.
    """
    if out is None:
        return new(inp.kind, shape, inp.x.dtype), None
    check_out(out, like=inp.x, shape=shape, dtype=inp.x.dtype, x=inp.x)
    if inp.kind == "numpy":
        ok = out.flags.c_contiguous and (out is inp.x or not np.may_share_memory(out, inp.x)
                                         or (out.ctypes.data == inp.x.ctypes.data and out.shape == inp.x.shape))
    else:
        ok = out.is_contiguous() and (not _overlaps(out, inp.x) or
                                      (out.data_ptr() == inp.x.data_ptr() and out.shape == inp.x.shape))
    return (out, None) if ok else (new(inp.kind, shape, inp.x.dtype), out)


def _overlaps(a, b) -> bool:
    a0, b0 = a.data_ptr(), b.data_ptr()
    a1 = a0 + a.numel() * a.element_size()
    b1 = b0 + b.numel() * b.element_size()
    return a0 < b1 and b0 < a1


def finish_out(target, copy_back):
    if copy_back is None:
        return target
    if isinstance(copy_back, np.ndarray):
        np.copyto(copy_back, target)
    else:
        copy_back.copy_(target)
    return copy_back


