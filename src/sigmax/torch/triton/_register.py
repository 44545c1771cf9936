"""The ``cuda`` rows of sigmax's dispatch tables (docs/ARCHITECTURE.md, "Dispatch"): the Triton kernels.

Each implementation takes the arguments of its operation's table and either runs the kernel or
declines with the reason (Triton not installed, not a CUDA tensor, a dtype or an option the kernels
do not take, inside ``torch.compile`` / a functorch transform). Nothing here imports Triton: the
kernels are built on the first call that reaches them. :func:`register_all` runs when
:mod:`sigmax.torch` (and so this package) is imported, where :func:`wanted` (Triton and a CUDA device).
"""

from __future__ import annotations

import importlib.util
import numbers

from ... import _dispatch
from ..._dispatch import decline
from . import _ops

__all__ = ["ACCEPT_INTERPRETED", "OPS", "register_all", "wanted", "why_not"]

#: Tests only: let CPU tensors through while ``TRITON_INTERPRET=1`` (the interpreter), so the
#: dispatch rows themselves can be checked without a GPU. Never set in normal use.
ACCEPT_INTERPRETED = False
_FLOATS = ("torch.float16", "torch.bfloat16", "torch.float32")
_HAVE_TRITON: list = []


def _triton_installed() -> bool:
    if not _HAVE_TRITON:
        _HAVE_TRITON.append(importlib.util.find_spec("triton") is not None)
    return _HAVE_TRITON[0]


def why_not(x, *others) -> str | None:
    """Why the Triton kernels do not take ``x`` (and the other tensors), or ``None`` if they do."""
    import torch

    if not isinstance(x, torch.Tensor):
        return "not a torch tensor"
    if x.device.type != "cuda" and not (ACCEPT_INTERPRETED and _ops.interpreting()):
        return "not a CUDA tensor"
    if not _triton_installed():
        return "Triton is not installed (pip install 'sigmax[gpu]')"
    if str(x.dtype) not in _FLOATS:
        return f"dtype {x.dtype} (the Triton kernels take float16, bfloat16 and float32)"
    if x.ndim == 0 or x.numel() == 0:
        return "0-d or empty input"
    if _dispatch.torch_transform_active() or _dispatch.is_traced(x, *others):
        return "inside torch.compile, a functorch transform or forward-mode AD"
    for o in others:
        if o is not None and (not isinstance(o, torch.Tensor) or o.device != x.device):
            return "an operand that is not a tensor on the input's device"
    return None


def _axis(axis, dim, ndim):
    a = dim if dim is not None else axis
    if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
        return None
    return int(a) % ndim


def _rows_impl(fn):
    def impl(x, axis, dim, temperature, where, out):
        why = why_not(x, where)
        if why:
            return decline(why)
        if out is not None:
            return decline("out= given")
        ax = _axis(axis, dim, x.ndim)
        if ax is None:
            return decline("axis not a single integer in range")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
            return decline("temperature not a positive number (the generic path checks it)")
        if where is not None:
            import torch

            if where.dtype != torch.bool or torch.broadcast_shapes(where.shape, x.shape) != x.shape:
                return decline("where not a boolean mask broadcastable to x")
        return fn(x, ax, temperature=float(temperature), where=where)

    return impl


def _logsumexp(x, axis, dim, b, keepdims, return_sign, where, out):
    why = why_not(x, where)
    if why:
        return decline(why)
    if b is not None or return_sign or out is not None:
        return decline("b=, return_sign= or out= given")
    if where is not None:
        return decline("where= given (its broadcasting rule is the generic path's)")
    ax = None if (axis is None and dim is None) else _axis(axis, dim, x.ndim)
    if ax is None and not (axis is None and dim is None):
        return decline("axis not a single integer or None")
    return _ops.logsumexp(x, ax, bool(keepdims))


def _ce_indices(xp, x, t, w, *, ax, ignore_index, smoothing, reduction, from_logits):
    if not from_logits:
        return decline("input is log-probabilities (nll_loss)")
    why = why_not(x, t, w)
    if why:
        return decline(why)
    if w is not None and w.requires_grad:
        return decline("weight needs a gradient")
    return _ops.cross_entropy(x, t, w, ignore_index, reduction, smoothing, dim=ax)


def _ce_probs(xp, x, t, w, *, ax, smoothing, reduction):
    why = why_not(x, t, w)
    if why:
        return decline(why)
    if t.requires_grad or (w is not None and w.requires_grad):
        return decline("target or weight needs a gradient")
    return _ops.cross_entropy(x, t, w, -100, reduction, smoothing, dim=ax)


def _bce(xp, x, y, w, pw, *, reduction):
    why = why_not(x, y, w, pw)
    if why:
        return decline(why)
    return _ops.binary_cross_entropy_with_logits(x, y, w, reduction, pw)


#: operation -> its ``cuda`` implementation
OPS = {
    "softmax": _rows_impl(_ops.softmax),
    "log_softmax": _rows_impl(_ops.log_softmax),
    "logsumexp": _logsumexp,
    "cross_entropy_indices": _ce_indices,
    "cross_entropy_probs": _ce_probs,
    "bce_with_logits": _bce,
}


def wanted() -> bool:
    """Whether this process has what the ``cuda`` rows need: Triton installed and a CUDA device."""
    if not _triton_installed():
        return False
    import torch

    return torch.cuda.is_available()


def register_all() -> None:
    """Register every implementation of :data:`OPS` as its operation's ``cuda`` backend."""
    for op, fn in OPS.items():
        _dispatch.register(op, "cuda", fn)
