"""The calls into the C module shared by the kernel entry points (:mod:`._ops`) and the autograd
Functions (:mod:`._autograd`): row/column dispatch, the fused cross-entropy and BCE forwards."""

from __future__ import annotations

import math
import sys

import numpy as np

from . import _switches as sw
from ._buffers import new, ptr
from ._switches import ck as _ck

__all__ = ["split", "run_rows", "ce_forward", "bce_forward"]


def _torch():
    return sys.modules.get("torch")


def split(shape, ax):
    """(A, C, B): the sizes before, along and after axis ``ax``."""
    return math.prod(shape[:ax]), int(shape[ax]), math.prod(shape[ax + 1:])


def run_rows(op, code, x, target, shape, ax, flags):
    A, C, B = split(shape, ax)
    if B == 1:
        _ck.rows(op, code, ptr(x), ptr(target), A, C, sw.STATE.threads, flags)
    else:
        _ck.cols(op, code, ptr(x), ptr(target), A, C, B, sw.STATE.threads, flags)


def ce_forward(kind, code, x3, t, ignore_index, reduction):
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
            count, total = _ck.ce(code, xn.reshape(A, C), t, ignore_index, loss, lse, A, C, sw.STATE.threads, flags)
        else:  # the column kernel gives (m, L) per column; the losses from the picked entries
            parts = np.empty((A, B, 2), dtype=xn.dtype)
            _ck.cols(sw.OP_LSE_PARTS, code, xn, parts, A, C, B, sw.STATE.threads, flags)
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


def bce_forward(kind, code, x, y, reduction):
    n = math.prod(tuple(x.shape))
    if reduction == "none":
        out = new(kind, x.shape, x.dtype)
        _ck.bce(sw.BCE_NONE, code, ptr(x), ptr(y), ptr(out), n, 1.0, sw.STATE.threads)
        return out
    total = _ck.bce(sw.BCE_SUM, code, ptr(x), ptr(y), None, n, 1.0, sw.STATE.threads)
    if reduction == "mean":
        total /= n
    if kind == "numpy":
        return x.dtype.type(total)
    return _torch().tensor(total, dtype=x.dtype)
