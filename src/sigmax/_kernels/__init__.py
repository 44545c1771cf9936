"""Fast CPU paths for the core functions, and the ``out=`` plumbing they share with the generic code.

The generic Array-API code in :mod:`sigmax.activations` is the reference and the fallback; this module
only decides, per call, whether a compiled kernel (``_ck``, built from C at install time by
``setup.py``; optional) can give the same results faster, and runs it. It can when:

* ``x`` is a NumPy array, or a PyTorch tensor on the CPU (with or without autograd: the row
  functions get a ``torch.autograd.Function`` whose backward also runs a kernel), of dtype float32 or
  float64, C-contiguous and not empty;
* the call uses no mask (``where``), no temperature, no weights ``b``, no ``return_sign``, and one
  reduction axis (any axis: non-last axes run a column kernel, without a transpose).

Everything else (JAX, CUDA, half precision, integers, masks, tuple axes, other layouts, torch.compile
tracing, functorch transforms) returns ``NotImplemented`` and the generic code runs. Results agree with
the generic code within the tolerances of :mod:`sigmax.testing` and the 4-ulp accuracy bound, edge
cases included (all ``-inf`` rows, ``+inf`` entries, NaN rows, subnormals).

Switches: ``SIGMAX_DISABLE_KERNELS=1`` in the environment (read at import) or :func:`set_enabled`
force the generic path; ``SIGMAX_NUM_THREADS`` caps the threads (default: the CPUs this process may
run on). Nothing is compiled at run time.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Any

import numpy as np

try:  # the compiled kernels are optional: without a compiler at install time, generic code only
    from . import _ck
except ImportError:  # pragma: no cover - depends on the build
    _ck = None

__all__ = ["AVAILABLE", "enabled", "set_enabled", "use_kernels", "num_threads", "variant", "check_out",
           "write_out", "elementwise", "softmax", "logsumexp"]

#: whether the compiled kernels were built and import
AVAILABLE = _ck is not None

_ENABLED = AVAILABLE and os.environ.get("SIGMAX_DISABLE_KERNELS", "").strip().lower() not in ("1", "true", "yes", "on")


def _default_threads() -> int:
    env = os.environ.get("SIGMAX_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_THREADS = _default_threads()

_EW = {"sigmoid": 0, "log_sigmoid": 1, "softplus": 2}
_OP_LSE, _OP_SOFTMAX, _OP_LOG_SOFTMAX = 0, 1, 2
_ROW_OPS = {"softmax": _OP_SOFTMAX, "log_softmax": _OP_LOG_SOFTMAX}
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def enabled() -> bool:
    """Whether calls may take the compiled path (built, and not switched off)."""
    return _ENABLED


def set_enabled(flag: bool) -> bool:
    """Switch the compiled path on or off for this process; returns the previous setting."""
    global _ENABLED
    previous = _ENABLED
    _ENABLED = bool(flag) and AVAILABLE
    return previous


@contextlib.contextmanager
def use_kernels(flag: bool):
    """``with use_kernels(False): ...`` runs the generic code (tests compare the two paths)."""
    previous = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(previous)


def num_threads(n: int | None = None) -> int:
    """The number of threads the kernels use; ``num_threads(n)`` sets it (returns the old value)."""
    global _THREADS
    old = _THREADS
    if n is not None:
        _THREADS = max(1, int(n))
    return old


def variant() -> str | None:
    """The instruction-set variant of the kernels in use (``"avx2"``, ``"base"``), ``None`` if not built."""
    return _ck.variant() if _ck is not None else None


# --------------------------------------------------------------------------------------------
# which inputs the kernels take
# --------------------------------------------------------------------------------------------


def _torch():
    return sys.modules.get("torch")


def _dtype_code(dtype) -> int:
    if dtype == _F32:
        return 0
    if dtype == _F64:
        return 1
    return -1


class _In:
    """A kernel-ready view of ``x``: the library, the dtype code, a pointer source."""

    __slots__ = ("kind", "x", "code", "ptr", "grad")

    def __init__(self, kind, x, code, ptr, grad):
        self.kind, self.x, self.code, self.ptr, self.grad = kind, x, code, ptr, grad


def _accept(x) -> _In | None:
    """``x`` as an :class:`_In` if a kernel can read it, else ``None``."""
    if type(x) is np.ndarray:
        code = _dtype_code(x.dtype)
        if code < 0 or not x.flags.c_contiguous or x.size == 0 or x.ndim == 0 or not x.dtype.isnative:
            return None  # (0-d: NumPy's own operations return a scalar there, the generic code too)
        return _In("numpy", x, code, x, False)
    torch = _torch()
    if torch is None or not isinstance(x, torch.Tensor):
        return None
    if type(x) is not torch.Tensor and type(x) is not torch.nn.Parameter:
        return None  # subclasses (FakeTensor, DTensor, ...) have their own semantics
    if x.device.type != "cpu" or x.layout is not torch.strided or x.numel() == 0:
        return None
    if x.dtype is torch.float32:
        code = 0
    elif x.dtype is torch.float64:
        code = 1
    else:
        return None
    if not x.is_contiguous() or x.is_neg() or _in_transform(torch):
        return None  # (a lazily negated view's memory holds -x)
    grad = x.requires_grad and torch.is_grad_enabled()
    return _In("torch", x, code, None, grad)


_TRANSFORM_CHECKS = None


def _in_transform(torch) -> bool:
    """Inside torch.compile tracing or a functorch transform (vmap, grad): no raw pointers there."""
    global _TRANSFORM_CHECKS
    if _TRANSFORM_CHECKS is None:
        checks = []
        compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
        if compiling is not None:
            checks.append(compiling)
        level = getattr(getattr(torch._C, "_functorch", None), "maybe_current_level", None)
        if level is not None:
            checks.append(lambda: level() is not None)
        _TRANSFORM_CHECKS = tuple(checks)
    return any(check() for check in _TRANSFORM_CHECKS)


def _ptr(a):
    """What the C module accepts for an array: the NumPy array itself (buffer protocol) or an address."""
    return a if type(a) is np.ndarray else a.data_ptr()


def _empty(inp: _In, shape):
    return _new(inp.kind, shape, inp.x.dtype)


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


def _new(kind: str, shape, dtype):
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


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------


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


def _kernel_out(inp: _In, out, shape):
    """The array the kernel writes: ``out`` if given (validated) and usable, else a fresh one.

    Returns ``(target, copy_back)``: when ``out`` overlaps ``x`` other than exactly, or is not
    contiguous, the kernel writes a fresh array that is then copied into ``out``.
    """
    if out is None:
        return _empty(inp, shape), None
    check_out(out, like=inp.x, shape=shape, dtype=inp.x.dtype, x=inp.x)
    if inp.kind == "numpy":
        ok = out.flags.c_contiguous and (out is inp.x or not np.may_share_memory(out, inp.x)
                                         or (out.ctypes.data == inp.x.ctypes.data and out.shape == inp.x.shape))
    else:
        ok = out.is_contiguous() and (not _overlaps(out, inp.x) or
                                      (out.data_ptr() == inp.x.data_ptr() and out.shape == inp.x.shape))
    return (out, None) if ok else (_empty(inp, shape), out)


def _overlaps(a, b) -> bool:
    a0, b0 = a.data_ptr(), b.data_ptr()
    a1 = a0 + a.numel() * a.element_size()
    b1 = b0 + b.numel() * b.element_size()
    return a0 < b1 and b0 < a1


def _finish_out(target, copy_back):
    if copy_back is None:
        return target
    if isinstance(copy_back, np.ndarray):
        np.copyto(copy_back, target)
    else:
        copy_back.copy_(target)
    return copy_back


# --------------------------------------------------------------------------------------------
# elementwise: sigmoid, log_sigmoid, softplus
# --------------------------------------------------------------------------------------------


def elementwise(name: str, x: Any, out: Any = None):
    """``sigmoid`` / ``log_sigmoid`` / ``softplus`` of ``x`` by a kernel, or ``NotImplemented``."""
    if not _ENABLED:
        return NotImplemented
    inp = _accept(x)
    if inp is None or inp.grad:
        return NotImplemented  # autograd: the generic code's graph (its gradients are exact at 0)
    shape = tuple(x.shape)
    target, copy_back = _kernel_out(inp, out, shape)
    _ck.elementwise(_EW[name], inp.code, _ptr(x), _ptr(target), math.prod(shape), _THREADS)
    return _finish_out(target, copy_back)


# --------------------------------------------------------------------------------------------
# row functions: softmax, log_softmax, logsumexp
# --------------------------------------------------------------------------------------------


def _split(shape, ax):
    """(A, C, B): the sizes before, along and after axis ``ax``."""
    return math.prod(shape[:ax]), int(shape[ax]), math.prod(shape[ax + 1:])


def _run_rows(op, code, x, target, shape, ax, flags):
    A, C, B = _split(shape, ax)
    if B == 1:
        _ck.rows(op, code, _ptr(x), _ptr(target), A, C, _THREADS, flags)
    else:
        _ck.cols(op, code, _ptr(x), _ptr(target), A, C, B, _THREADS, flags)


def _int_axis(axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or ndim == 0:
        return None
    axis = int(axis)
    if not -ndim <= axis < ndim:
        return None  # the generic code raises the error
    return axis % ndim


def softmax(name: str, x: Any, axis: Any, dim: Any, temperature: Any, where: Any, out: Any):
    """``softmax`` / ``log_softmax`` by a kernel, or ``NotImplemented``."""
    if not _ENABLED or where is not None:
        return NotImplemented
    if dim is not None:
        if axis != -1 and axis != dim:
            return NotImplemented  # the generic code raises the error
        axis = dim
    if not (temperature is None or (type(temperature) in (int, float) and temperature == 1)):
        return NotImplemented
    inp = _accept(x)
    if inp is None:
        return NotImplemented
    shape = tuple(x.shape)
    ax = _int_axis(axis, len(shape))
    if ax is None or shape[ax] >= 1 << 24:
        return NotImplemented
    op = _ROW_OPS[name]
    if inp.grad:
        if out is not None:
            check_out(out, like=x, shape=shape, dtype=x.dtype, x=x)  # raises: autograd with out=
        return _torch_row_function().apply(x, op, ax)
    target, copy_back = _kernel_out(inp, out, shape)
    _run_rows(op, inp.code, x, target, shape, ax, None)
    return _finish_out(target, copy_back)


def logsumexp(x: Any, axis: Any, dim: Any, b: Any, keepdims: bool, return_sign: bool, where: Any, out: Any):
    """``logsumexp`` by a kernel (one axis or all, no weights/sign/mask), or ``NotImplemented``."""
    if not _ENABLED or where is not None or b is not None or return_sign:
        return NotImplemented
    if dim is not None:
        if axis != -1 and axis != dim:
            return NotImplemented
        axis = dim
    inp = _accept(x)
    if inp is None:
        return NotImplemented
    shape = tuple(x.shape)
    if axis is None:
        if len(shape) == 0:
            return NotImplemented
        xs, ax = (x.reshape(-1), 0)  # a contiguous reshape is a view
        rshape = (1,) * len(shape) if keepdims else ()
    else:
        ax = _int_axis(axis, len(shape))
        if ax is None:
            return NotImplemented
        xs = x
        rshape = shape[:ax] + ((1,) if keepdims else ()) + shape[ax + 1:]
    if tuple(xs.shape)[ax] >= 1 << 24:
        return NotImplemented
    if inp.grad:
        if out is not None:
            check_out(out, like=x, shape=rshape, dtype=x.dtype, x=x)
        res = _torch_row_function().apply(xs, _OP_LSE, ax)
        return res.reshape(rshape)
    target, copy_back = _kernel_out(inp, out, rshape)
    _run_rows(_OP_LSE, inp.code, xs, target, tuple(xs.shape), ax, None)
    return _finish_out(target, copy_back)


# --------------------------------------------------------------------------------------------
# autograd (PyTorch): forward and backward by kernels; double backward through torch operations
# --------------------------------------------------------------------------------------------

_ROW_FUNCTION = None


def _torch_row_function():
    """The ``torch.autograd.Function`` of the row kernels (built on first use: torch is optional)."""
    global _ROW_FUNCTION
    if _ROW_FUNCTION is not None:
        return _ROW_FUNCTION
    import torch

    class RowFunction(torch.autograd.Function):
        """softmax / log_softmax / logsumexp (reduced axis kept out of the result for logsumexp).

        Backward: softmax ``p * (g - sum(g p))``, log_softmax ``g - exp(y) sum(g)``, logsumexp
        ``g exp(x - lse)``; rows whose maximum is infinite (all ``-inf``, or ``+inf`` entries) get a
        zero gradient, as the generic code's graph gives (their result does not depend on finite
        changes of x).
        """

        @staticmethod
        def forward(ctx, x, op, ax):
            shape = tuple(x.shape)
            A, C, B = _split(shape, ax)
            rshape = shape[:ax] + shape[ax + 1:] if op == _OP_LSE else shape
            out = _new("torch", rshape, x.dtype)
            flags = np.empty(A * B, dtype=np.uint8)
            _run_rows(op, 0 if x.dtype is torch.float32 else 1, x, out, shape, ax, flags)
            ctx.op, ctx.ax, ctx.shape = op, ax, shape
            ctx.flags = flags if flags.any() else None
            ctx.save_for_backward(x if op == _OP_LSE else out, out if op == _OP_LSE else None)
            return out

        @staticmethod
        def backward(ctx, g):
            a, lse = ctx.saved_tensors
            op, ax, shape = ctx.op, ctx.ax, ctx.shape
            A, C, B = _split(shape, ax)
            fast = (B == 1 and not torch.is_grad_enabled() and g.dtype == a.dtype and g.device.type == "cpu"
                    and type(g) is torch.Tensor)
            if fast:
                g = g.contiguous()
                grad = _new("torch", shape, a.dtype)
                code = 0 if a.dtype is torch.float32 else 1
                if op == _OP_LSE:
                    _ck.rows_bwd(op, code, a.data_ptr(), None, lse.contiguous().data_ptr(), g.data_ptr(),
                                 grad.data_ptr(), A, C, _THREADS, ctx.flags)
                else:
                    _ck.rows_bwd(op, code, a.data_ptr(), g.data_ptr(), None, None, grad.data_ptr(), A, C,
                                 _THREADS, ctx.flags)
                return grad, None, None
            # the same formulas in torch operations (any layout; differentiable for double backward)
            if op == _OP_SOFTMAX:
                grad = a * (g - (g * a).sum(ax, keepdim=True))
            elif op == _OP_LOG_SOFTMAX:
                grad = g - torch.exp(a) * g.sum(ax, keepdim=True)
            else:
                grad = g.unsqueeze(ax) * torch.exp(a - lse.unsqueeze(ax))
            if ctx.flags is not None:
                zero_rows = torch.from_numpy(ctx.flags.astype(bool)).reshape(shape[:ax] + (1,) + shape[ax + 1:])
                grad = torch.where(zero_rows, torch.zeros((), dtype=grad.dtype), grad)
            return grad, None, None

    _ROW_FUNCTION = RowFunction
    return _ROW_FUNCTION


# --------------------------------------------------------------------------------------------
# cross-entropy with class-index targets (classes on the last, contiguous axis): one pass over the
# logits forward (the log-sum-exp kernel, split as (m, log1p(rest + k - 1)) so that a confident
# row's loss L - (x_t - m) keeps its digits), and one backward pass writing exp(x - lse) scaled,
# minus the target entries; no (N, C) log-probabilities are formed
# --------------------------------------------------------------------------------------------

_OP_LSE_PARTS = 3


def cross_entropy_indices(x: Any, target: Any, ax: int, ignore_index: int, reduction: str):
    """``cross_entropy(x, target)`` for class indices, no weight, no smoothing, or ``NotImplemented``.

    Classes on any axis ``ax``: the last one goes to the row kernel, another one to the column
    kernel. Targets outside ``[0, C)`` other than ``ignore_index`` give ``NotImplemented`` (the
    caller's check then raises its error). The small per-row work around the kernels (targets,
    reductions, the gradient's target entries) is done in NumPy on views of the tensors: PyTorch's
    own parallel operations would wake its OpenMP workers, which then spin on the cores the kernel
    is about to use.
    """
    if not _ENABLED or reduction not in ("none", "mean", "sum"):
        return NotImplemented
    inp = _accept(x)
    if inp is None or x.ndim < 1 or not 0 <= ax < x.ndim:
        return NotImplemented
    shape = tuple(x.shape)
    if shape[ax] >= 1 << 24 or tuple(getattr(target, "shape", ())) != shape[:ax] + shape[ax + 1:]:
        return NotImplemented
    A, C, B = _split(shape, ax)
    t = _target_indices(inp, target, A * B, C, int(ignore_index))
    if t is None:
        return NotImplemented
    x3 = x.reshape(A, C, B)
    if inp.grad:
        loss = _torch_ce_function().apply(x3, t, int(ignore_index), reduction)
    else:
        loss = _ce_forward(inp.kind, inp.code, x3, t, int(ignore_index), reduction)[0]
    return loss.reshape(shape[:ax] + shape[ax + 1:]) if reduction == "none" else loss


def _target_indices(inp, target, n, C, ignore_index):
    """``target`` as a contiguous int64 NumPy array of ``n`` entries (a view where possible), or
    ``None`` where the kernels do not apply (another library, a float or bool dtype, an index out of
    range)."""
    if inp.kind == "torch":
        torch = _torch()
        if not isinstance(target, torch.Tensor) or target.device.type != "cpu" or \
                target.dtype.is_floating_point or target.dtype is torch.bool or target.dtype.is_complex:
            return None
        t = target.detach().reshape(n).resolve_conj().resolve_neg().numpy()
    elif type(target) is np.ndarray and target.dtype.kind in "iu":
        t = target.reshape(n)
    else:
        return None
    t = np.ascontiguousarray(t, dtype=np.int64)
    if n and (t.min() < 0 or t.max() >= C):
        bad = (t < 0) | (t >= C)
        if (t[bad] != ignore_index).any():
            return None
    return t


def _ce_forward(kind, code, x3, t, ignore_index, reduction):
    """The fused forward: ``(out, lse, flags, count, valid, safe_targets)`` as NumPy arrays (``out``
    in ``x3``'s library); ``x3`` is (A, C, B) contiguous, ``t`` int64 (A*B,)."""
    with np.errstate(all="ignore"):  # inf - inf in the special columns, replaced there
        A, C, B = x3.shape
        xn = x3.detach().numpy() if kind == "torch" else x3
        flags = np.empty(A * B, dtype=np.uint8)
        fl = flags.view(np.bool_)  # written by the kernel below
        valid = t != ignore_index
        tc = np.where(valid, t, 0)  # ignored entries point at class 0 (masked out)
        if B == 1:  # classes last: the row kernel also forms the losses
            loss = np.empty(A, dtype=xn.dtype)
            lse = np.empty(A, dtype=xn.dtype)
            count, total = _ck.ce(code, xn.reshape(A, C), t, ignore_index, loss, lse, A, C, _THREADS, flags)
        else:  # the column kernel gives (m, L) per column; the losses from the picked entries
            parts = np.empty((A, B, 2), dtype=xn.dtype)
            _ck.cols(_OP_LSE_PARTS, code, xn, parts, A, C, B, _THREADS, flags)
            xt = np.take_along_axis(xn, tc.reshape(A, 1, B), axis=1).reshape(A * B)
            m, L = parts[..., 0].reshape(A * B), parts[..., 1].reshape(A * B)
            loss = L - (xt - m)
            if fl.any():  # all -inf columns: inf; +inf entries share the mass: log k on them, inf elsewhere
                k = (xn == np.inf).sum(1).reshape(A * B).astype(xn.dtype)
                special = np.where(m == np.inf, np.where(xt == np.inf, np.log(k), np.inf), np.inf)
                loss = np.where(fl, special, loss).astype(xn.dtype, copy=False)
            loss = np.where(valid, loss, xn.dtype.type(0))
            lse = m + L
            count = int(np.count_nonzero(valid))
            total = float(loss.sum(dtype=np.float64)) if reduction != "none" else 0.0
        if reduction == "none":
            out = _torch().from_numpy(loss) if kind == "torch" else loss
        else:
            value = total if reduction == "sum" else (total / count if count else float("nan"))  # 0/0: NaN
            out = _torch().tensor(value, dtype=x3.dtype) if kind == "torch" else xn.dtype.type(value)
        return out, lse, fl, count, valid, tc


_CE_FUNCTION = None


def _torch_ce_function():
    global _CE_FUNCTION
    if _CE_FUNCTION is not None:
        return _CE_FUNCTION
    import torch

    class CrossEntropyFunction(torch.autograd.Function):
        """Fused cross-entropy of (A, C, B) logits (classes in the middle; B = 1 for classes last) and
        A*B class indices. Backward ``g (softmax(x) - onehot(t))`` over the class axis, 0 on ignored
        entries and where the maximum is infinite (as the generic graph gives); double backward
        through torch operations."""

        @staticmethod
        def forward(ctx, x3, t, ignore_index, reduction):
            code = 0 if x3.dtype is torch.float32 else 1
            out, lse, fl, count, valid, tc = _ce_forward("torch", code, x3, t, ignore_index, reduction)
            ctx.save_for_backward(x3)
            ctx.lse, ctx.fl, ctx.count, ctx.reduction, ctx.valid, ctx.tc = lse, fl, count, reduction, valid, tc
            return out

        @staticmethod
        def backward(ctx, g):
            (x3,) = ctx.saved_tensors
            A, C, B = x3.shape
            n = A * B
            if not torch.is_grad_enabled() and g.dtype == x3.dtype and type(g) is torch.Tensor and \
                    g.device.type == "cpu":
                dt = ctx.lse.dtype
                if ctx.reduction == "none":
                    gs = g.detach().reshape(n).numpy()
                else:
                    gv = g if ctx.reduction == "sum" else g / ctx.count  # in g's dtype, as PyTorch rounds it
                    gs = np.full(n, float(gv), dtype=dt)
                gs = np.where(ctx.valid & ~ctx.fl, gs, dt.type(0))
                grad = _new("torch", x3.shape, x3.dtype)
                code = 0 if x3.dtype is torch.float32 else 1
                if B == 1:  # the kernel also subtracts g at the targets
                    flags = ctx.fl.view(np.uint8) if ctx.fl.any() else None
                    _ck.rows_bwd(_OP_LSE, code, x3.data_ptr(), None, ctx.lse, gs, grad.data_ptr(), A, C,
                                 _THREADS, flags, ctx.tc)
                else:
                    _ck.cols_lse_bwd(code, x3.data_ptr(), ctx.lse, gs, grad.data_ptr(), A, C, B, _THREADS)
                    gn = grad.numpy()
                    if ctx.fl.any():  # an infinite maximum: no gradient (x - lse is not finite there)
                        gn.transpose(0, 2, 1)[ctx.fl.reshape(A, B)] = 0
                    j = np.arange(n)  # entry (a, t, b) of the flat gradient, a = j // B, b = j % B
                    gn.reshape(-1)[(j - j % B) * C + ctx.tc * B + j % B] -= gs  # minus the one-hot target
                return grad, None, None, None
            # differentiable form (double backward): the softmax recomputed from x, whose graph it keeps
            if ctx.reduction == "none":
                gs = g.reshape(A, B)
            elif ctx.reduction == "sum":
                gs = g.expand(A, B)
            else:
                gs = (g / ctx.count).expand(A, B)
            keep = torch.from_numpy(ctx.valid & ~ctx.fl).reshape(A, B)
            gs = torch.where(keep, gs, torch.zeros((), dtype=gs.dtype))
            tc = torch.from_numpy(ctx.tc).reshape(A, 1, B)
            p = torch.softmax(x3, 1)
            onehot = torch.zeros_like(x3).scatter_(1, tc, 1)
            return gs.unsqueeze(1) * (p - onehot), None, None, None

    _CE_FUNCTION = CrossEntropyFunction
    return _CE_FUNCTION


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits (no weight, no pos_weight): one pass forward, one backward
# --------------------------------------------------------------------------------------------

_BCE_NONE, _BCE_SUM, _BCE_GRAD = 0, 1, 2


def bce_with_logits(x: Any, y: Any, reduction: str):
    """``binary_cross_entropy_with_logits(x, y)`` without weights, or ``NotImplemented``.

    ``y`` must be an array of ``x``'s library, dtype, shape and layout (validated by the caller).
    """
    if not _ENABLED or reduction not in ("none", "mean", "sum"):
        return NotImplemented
    inp = _accept(x)
    if inp is None or type(y) is not type(x) or y.dtype != x.dtype or tuple(y.shape) != tuple(x.shape):
        return NotImplemented
    if inp.kind == "numpy":
        if not y.flags.c_contiguous:
            return NotImplemented
    elif not y.is_contiguous() or y.device.type != "cpu" or (y.requires_grad and _torch().is_grad_enabled()):
        return NotImplemented
    n = math.prod(tuple(x.shape))
    if inp.grad:
        return _torch_bce_function().apply(x, y, reduction)
    return _bce_forward(inp.kind, inp.code, x, y, n, reduction)


def _bce_forward(kind, code, x, y, n, reduction):
    if reduction == "none":
        out = _new(kind, x.shape, x.dtype)
        _ck.bce(_BCE_NONE, code, _ptr(x), _ptr(y), _ptr(out), n, 1.0, _THREADS)
        return out
    total = _ck.bce(_BCE_SUM, code, _ptr(x), _ptr(y), None, n, 1.0, _THREADS)
    if reduction == "mean":
        total /= n
    if kind == "numpy":
        return x.dtype.type(total)
    return _torch().tensor(total, dtype=x.dtype)


_BCE_FUNCTION = None


def _torch_bce_function():
    global _BCE_FUNCTION
    if _BCE_FUNCTION is not None:
        return _BCE_FUNCTION
    import torch

    class BCEWithLogitsFunction(torch.autograd.Function):
        """Fused binary cross-entropy of logits; backward ``(sigmoid(x) - y) g`` (over n for the
        mean); double backward through torch operations."""

        @staticmethod
        def forward(ctx, x, y, reduction):
            code = 0 if x.dtype is torch.float32 else 1
            n = x.numel()
            ctx.save_for_backward(x, y)
            ctx.reduction, ctx.n = reduction, n
            return _bce_forward("torch", code, x, y, n, reduction)

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            scale = 1.0 / ctx.n if ctx.reduction == "mean" else 1.0
            if ctx.reduction != "none" and not torch.is_grad_enabled() and type(g) is torch.Tensor:
                grad = _new("torch", x.shape, x.dtype)
                code = 0 if x.dtype is torch.float32 else 1
                _ck.bce(_BCE_GRAD, code, x.data_ptr(), y.data_ptr(), grad.data_ptr(), ctx.n,
                        float(g) * scale, _THREADS)
                return grad, None, None
            return (torch.sigmoid(x) - y) * (g * scale), None, None

    _BCE_FUNCTION = BCEWithLogitsFunction
    return _BCE_FUNCTION
