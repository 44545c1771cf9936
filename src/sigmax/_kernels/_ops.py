"""The kernels' entry points: which inputs they take, and the calls into the C module.

Each entry point returns its result, or :func:`sigmax._dispatch.decline` with the reason it does not
apply; the dispatch table tries the next backend then. The ``numpy-kernel`` backend takes
C-contiguous native float32/float64 NumPy arrays; the ``torch-cpu-kernel`` backend takes contiguous
float32/float64 CPU tensors (plain ``torch.Tensor`` or ``Parameter``, not batched), outside
``torch.compile``, functorch transforms and forward-mode AD (there the generic code's graph runs: it
has forward derivatives; ``torch_transform_active`` is asked first, so nothing of a traced tensor is
read). Neither takes empty inputs, masks, temperatures or weights.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from .. import _dispatch
from .._dispatch import decline
from . import _switches as sw
from ._buffers import check_out, finish_out, kernel_out, ptr
from ._autograd import readable
from ._calls import bce_forward, ce_forward, run_rows, split
from ._switches import ck as _ck

__all__ = ["elementwise", "softmax", "logsumexp", "cross_entropy_indices", "bce_with_logits"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_MAX_C = 1 << 24  # the kernels' row length limit


def _torch():
    return sys.modules.get("torch")


class _In:
    """A kernel-ready view of ``x``: the library, the dtype code, whether autograd records it."""

    __slots__ = ("kind", "x", "code", "grad")

    def __init__(self, kind, x, code, grad):
        self.kind, self.x, self.code, self.grad = kind, x, code, grad


def _accept(x, kind: str):
    """``x`` as an :class:`_In` if the ``kind`` kernel (``"numpy"`` or ``"torch"``) can read it, else the
    reason it cannot (a string)."""
    if not sw.STATE.on:
        return "kernels off (SIGMAX_DISABLE_KERNELS or set_enabled)" if sw.AVAILABLE else "kernels not built"
    if kind == "numpy":
        if type(x) is not np.ndarray:
            return "not a NumPy array"
        code = 0 if x.dtype == _F32 else 1 if x.dtype == _F64 else -1
        if code < 0:
            return f"dtype {x.dtype} (kernels: float32, float64)"
        if not x.flags.c_contiguous or not x.dtype.isnative:
            return "not C-contiguous native memory"
        if x.size == 0 or x.ndim == 0:
            return "empty or 0-d"
        return _In("numpy", x, code, False)
    torch = _torch()
    if torch is None or not isinstance(x, torch.Tensor):
        return "not a torch tensor"
    if type(x) is not torch.Tensor and type(x) is not torch.nn.Parameter:
        return f"tensor subclass {type(x).__name__}"  # (FakeTensor, DTensor, ...) have their own semantics
    if _dispatch.torch_transform_active():  # first: under tracing nothing below may be read
        return "inside torch.compile, a functorch transform or forward-mode AD"
    if torch._C._functorch.is_legacy_batchedtensor(x):  # (autograd.functional's vectorize=True)
        return "a batched tensor (no storage)"
    if not x.is_cpu:  # (is_cpu: a fifth of the time of x.device.type)
        return f"on {x.device.type}, not the CPU"
    if x.layout is not torch.strided or x.numel() == 0:
        return "not strided, or empty"
    if x.dtype is torch.float32:
        code = 0
    elif x.dtype is torch.float64:
        code = 1
    else:
        return f"dtype {x.dtype} (kernels: float32, float64)"
    if not x.is_contiguous() or x.is_neg():
        return "not contiguous (or a lazily negated view)"
    return _In("torch", x, code, x.requires_grad and torch.is_grad_enabled())


def _int_axis(axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or ndim == 0:
        return None
    axis = int(axis)
    if not -ndim <= axis < ndim:
        return None  # the generic code raises the error
    return axis % ndim


# --------------------------------------------------------------------------------------------
# activations: sigmoid, log_sigmoid, softplus; softmax, log_softmax, logsumexp
# --------------------------------------------------------------------------------------------


def elementwise(kind: str, name: str, x: Any, out: Any = None):
    """``sigmoid`` / ``log_sigmoid`` / ``softplus`` of ``x`` by the ``kind`` kernel."""
    inp = _accept(x, kind)
    if type(inp) is str:
        return decline(inp)
    if inp.grad:
        return decline("autograd: the generic graph (its gradients are exact at 0)")
    shape = tuple(x.shape)
    target, copy_back = kernel_out(inp, out, shape)
    _ck.elementwise(sw.EW[name], inp.code, ptr(x), ptr(target), math.prod(shape), sw.STATE.threads)
    return finish_out(target, copy_back)


def softmax(kind: str, name: str, x: Any, axis: Any, dim: Any, temperature: Any, where: Any, out: Any):
    """``softmax`` / ``log_softmax`` by the ``kind`` kernel."""
    if where is not None:
        return decline("a where= mask")
    if dim is not None:
        if axis != -1 and axis != dim:
            return decline("axis and dim both given")  # the generic code raises the error
        axis = dim
    if not (temperature is None or (type(temperature) in (int, float) and temperature == 1)):
        return decline("a temperature")
    inp = _accept(x, kind)
    if type(inp) is str:
        return decline(inp)
    shape = tuple(x.shape)
    ax = _int_axis(axis, len(shape))
    if ax is None:
        return decline("axis not a single integer in range")
    if shape[ax] >= _MAX_C:
        return decline("class axis of 2**24 entries or more")
    op = sw.ROW_OPS[name]
    if inp.grad:
        if out is not None:
            check_out(out, like=x, shape=shape, dtype=x.dtype, x=x)  # raises: autograd with out=
        from ._autograd import functions

        return functions().Rows.apply(x, op, ax)
    target, copy_back = kernel_out(inp, out, shape)
    run_rows(op, inp.code, x, target, shape, ax, None)
    return finish_out(target, copy_back)


def logsumexp(kind: str, x: Any, axis: Any, dim: Any, b: Any, keepdims: bool, return_sign: bool, where: Any,
              out: Any):
    """``logsumexp`` by the ``kind`` kernel (one axis or all, no weights/sign/mask)."""
    if where is not None or b is not None or return_sign:
        return decline("where=, b= or return_sign")
    if dim is not None:
        if axis != -1 and axis != dim:
            return decline("axis and dim both given")
        axis = dim
    inp = _accept(x, kind)
    if type(inp) is str:
        return decline(inp)
    shape = tuple(x.shape)
    if axis is None:
        xs, ax = (x.reshape(-1), 0)  # a contiguous reshape is a view
        rshape = (1,) * len(shape) if keepdims else ()
    else:
        ax = _int_axis(axis, len(shape))
        if ax is None:
            return decline("axis not a single integer in range")
        xs = x
        rshape = shape[:ax] + ((1,) if keepdims else ()) + shape[ax + 1:]
    if tuple(xs.shape)[ax] >= _MAX_C:
        return decline("reduced axis of 2**24 entries or more")
    if inp.grad:
        if out is not None:
            check_out(out, like=x, shape=rshape, dtype=x.dtype, x=x)
        from ._autograd import functions

        return functions().Rows.apply(xs, sw.OP_LSE, ax).reshape(rshape)
    target, copy_back = kernel_out(inp, out, rshape)
    run_rows(sw.OP_LSE, inp.code, xs, target, tuple(xs.shape), ax, None)
    res = finish_out(target, copy_back)
    if out is None and kind == "numpy" and not rshape:
        return res[()]  # a NumPy reduction to 0-d gives a NumPy scalar, as NumPy's own (and the generic) do
    return res


def _register_activations() -> None:
    """The kernel rows of the activations' dispatch tables (:mod:`sigmax.activations` registers their
    generic rows and calls :func:`sigmax._dispatch.call`). Each row takes the public function's
    arguments in order."""
    for kind, backend in (("numpy", "numpy-kernel"), ("torch", "torch-cpu-kernel")):
        for name in ("sigmoid", "log_sigmoid", "softplus"):
            _dispatch.register(name, backend,
                               lambda x, out=None, *, _k=kind, _n=name: elementwise(_k, _n, x, out))
        for name in ("softmax", "log_softmax"):
            _dispatch.register(name, backend,
                               lambda x, axis, dim, temperature, where, out, *, _k=kind, _n=name:
                               softmax(_k, _n, x, axis, dim, temperature, where, out))
        _dispatch.register("logsumexp", backend,
                           lambda x, axis, dim, b, keepdims, return_sign, where, out, *, _k=kind:
                           logsumexp(_k, x, axis, dim, b, keepdims, return_sign, where, out))


_register_activations()


# --------------------------------------------------------------------------------------------
# cross-entropy with class-index targets: one pass over the logits forward (the log-sum-exp kernel,
# split as (m, log1p(rest + k - 1)) so that a confident row's loss L - (x_t - m) keeps its digits),
# and one backward pass writing exp(x - lse) scaled, minus the target entries; no (N, C)
# log-probabilities are formed
# --------------------------------------------------------------------------------------------


def cross_entropy_indices(kind: str, x: Any, t: Any, w: Any, *, ax: int, ignore_index: int, smoothing: float,
                          reduction: str, from_logits: bool):
    """``cross_entropy(x, t)`` for class indices by the ``kind`` kernel (no weight, no smoothing).

    ``t`` holds class indices already validated by the caller (in ``[0, C)`` or ``ignore_index``):
    the kernels take only concrete tensors, on which :mod:`sigmax.losses` always runs its index
    check first. Classes on any axis ``ax``: the last one goes to the row kernel, another one to
    the column kernel. The small per-row work around the kernels (targets, reductions, the gradient's
    target entries) is done in NumPy on views of the tensors: PyTorch's own parallel operations would
    wake its OpenMP workers, which then spin on the cores the kernel is about to use.
    """
    if not from_logits:
        return decline("input is log-probabilities (nll_loss): nothing to fuse")
    if w is not None:
        return decline("weight given (the kernel has no class weights)")
    if smoothing != 0.0:
        return decline("label_smoothing given")
    inp = _accept(x, kind)
    if type(inp) is str:
        return decline(inp)
    shape = tuple(x.shape)
    if shape[ax] >= _MAX_C:
        return decline("class axis of 2**24 entries or more")
    A, C, B = split(shape, ax)
    if kind == "torch":
        if not readable(t):
            return decline("target not a plain CPU tensor (batched, wrapped, a subclass or elsewhere)")
        tn = t.detach().reshape(A * B).resolve_conj().resolve_neg().numpy()
    else:
        tn = t.reshape(A * B)
    tn = np.ascontiguousarray(tn, dtype=np.int64)
    x3 = x.reshape(A, C, B)
    if inp.grad:
        from ._autograd import functions

        loss = functions().CrossEntropy.apply(x3, tn, int(ignore_index), reduction)
    else:
        loss = ce_forward(inp.kind, inp.code, x3, tn, int(ignore_index), reduction)[0]
    return loss.reshape(shape[:ax] + shape[ax + 1:]) if reduction == "none" else loss


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits (no weight, no pos_weight): one pass forward, one backward
# --------------------------------------------------------------------------------------------


def bce_with_logits(kind: str, x: Any, y: Any, w: Any, pw: Any, reduction: str):
    """``binary_cross_entropy_with_logits(x, y)`` without weights by the ``kind`` kernel.

    ``y`` must be an array of ``x``'s library, dtype, shape and layout (validated by the caller).
    """
    if w is not None or pw is not None:
        return decline("weight or pos_weight given")
    inp = _accept(x, kind)
    if type(inp) is str:
        return decline(inp)
    if type(y) is not type(x) or y.dtype != x.dtype or tuple(y.shape) != tuple(x.shape):
        return decline("target of another type, dtype or shape")
    if kind == "numpy":
        if not y.flags.c_contiguous:
            return decline("target not C-contiguous")
    elif not readable(y) or not y.is_contiguous() or y.is_neg():
        return decline("target not a plain contiguous CPU tensor (batched, wrapped, or elsewhere)")
    elif y.requires_grad and _torch().is_grad_enabled():
        return decline("target requires grad")
    if inp.grad:
        from ._autograd import functions

        return functions().BCEWithLogits.apply(x, y, None, None, reduction)
    return bce_forward(inp.kind, inp.code, x, y, reduction)
