"""sigmax's ``torch.autograd.Function`` s: one per operation, built on first use (torch is optional).

* ``Rows``: softmax / log_softmax / logsumexp by the row and column kernels;
* ``CrossEntropy``: the fused cross-entropy of class indices;
* ``BCEWithLogits``: binary cross-entropy of logits, forward by the kernel where it applies (no
  weights, a CPU float32/float64 tensor) and by torch operations elsewhere (weights, ``pos_weight``,
  CUDA), backward analytic ``w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)`` in both cases.

Backward passes run kernels when nothing records them and the incoming gradient is a plain CPU
tensor with storage (:func:`readable`), and torch operations otherwise: double backward, and batched
gradients (``torch.autograd.grad(..., is_grads_batched=True)``, PyTorch's batched gradcheck,
``vmap`` over a backward), whose gradients are batched tensors without a data pointer. The torch
operations of a backward are out of place: nothing a backward computes is written in place where
a batched tensor could meet it. None of them has a forward derivative: under forward-mode AD,
``torch.func`` and ``torch.compile`` the dispatch does not reach them
(:func:`sigmax._dispatch.torch_transform_active`) and the generic code's graph, which has one, runs
instead.
"""

from __future__ import annotations

import types

import numpy as np

from . import _switches as sw
from ._buffers import new
from ._calls import bce_forward, ce_forward, run_rows, split
from ._switches import ck as _ck

__all__ = ["functions", "bce_logits_elementwise", "readable"]

_FUNCTIONS = None


def functions():
    """The autograd Functions, as attributes ``Rows``, ``CrossEntropy``, ``BCEWithLogits``."""
    global _FUNCTIONS
    if _FUNCTIONS is None:
        _FUNCTIONS = _build()
    return _FUNCTIONS


def readable(g) -> bool:
    """Whether a backward's incoming gradient ``g`` may go to a kernel (read by its data pointer, or as
    a NumPy view): a plain CPU ``torch.Tensor``, not a batched one (``vmap``, batched gradients: they
    have no storage), not functorch-wrapped (``grad``, ``jvp``), not a subclass (a fake tensor)."""
    checks = _READABLE or _readable_checks()
    return type(g) is checks[0] and g.is_cpu and not checks[1](g) and not checks[2](g)


_READABLE = None  # (torch.Tensor, is_legacy_batchedtensor, is_functorch_wrapped_tensor)


def _readable_checks():
    global _READABLE
    import torch

    fx = torch._C._functorch
    _READABLE = (torch.Tensor, fx.is_legacy_batchedtensor, fx.is_functorch_wrapped_tensor)
    return _READABLE


def bce_logits_elementwise(x, y, w, pw):
    """The elementwise binary cross-entropy of logits in torch operations (any device):

    ``c |x| - (1 + (p_w - 1) y) log sigmoid(|x|)``, ``c = 1 - y`` where ``x > 0``, ``p_w y`` elsewhere:
    every term of one sign, no cancellation; ``c |x| = 0`` where ``c = 0``, also at ``|x| = inf`` (the
    limit: loss 0 where the sign agrees with the target, ``+inf`` otherwise). A NaN logit stays NaN
    (through ``log sigmoid``).
    """
    import torch

    a = x.abs()
    ls_a = torch.nn.functional.logsigmoid(a)  # log sigmoid(|x|) = -log(1 + e^-|x|) in [-log 2, 0], full relative accuracy
    py = y if pw is None else pw * y
    c = torch.where(x > 0, 1.0 - y, py)
    # 0 * inf (c = 0 at an infinite logit) is the limit 0; NaN logits come back through ls_a below
    lin = c.mul_(a).nan_to_num_(nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    loss = lin.sub_(ls_a) if pw is None else lin.sub_(py.sub(y).add_(1.0).mul_(ls_a))
    if w is None:
        return loss
    if tuple(torch.broadcast_shapes(loss.shape, w.shape)) == tuple(loss.shape):
        return loss.mul_(w)
    return loss * w


def _bce_grad_torch(x, y, w, pw, g):
    """``g w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)``; out of place (differentiable) under grad mode,
    and for a batched or wrapped ``g`` (an in-place product with it would have to grow ``s``)."""
    import torch

    s = torch.sigmoid(x)
    if torch.is_grad_enabled() or not readable(g):  # create_graph=True, or batched: out of place
        grad = s - y if pw is None else s * (1.0 + (pw - 1.0) * y) - pw * y
        grad = grad if w is None else grad * w
        return grad * g
    grad = s.sub_(y) if pw is None else s.mul_((pw - 1.0) * y + 1.0).sub_(pw * y)
    if w is not None:
        grad = grad.mul_(w)
    return grad.mul_(g)


def _kernel_ok(x, y, w, pw) -> bool:
    import torch

    return (w is None and pw is None and sw.STATE.on and type(x) in (torch.Tensor, torch.nn.Parameter)
            and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()
            and not x.is_neg() and type(y) is torch.Tensor and y.dtype == x.dtype and y.is_contiguous()
            and y.shape == x.shape and not y.is_neg())


def _build():
    import torch

    class Rows(torch.autograd.Function):
        """softmax / log_softmax / logsumexp (reduced axis kept out of the result for logsumexp).

        Backward: softmax ``p * (g - sum(g p))``, log_softmax ``g - exp(y) sum(g)``, logsumexp
        ``g exp(x - lse)``; rows whose maximum is infinite (all ``-inf``, or ``+inf`` entries) get a
        zero gradient, as the generic code's graph gives (their result does not depend on finite
        changes of x).
        """

        @staticmethod
        def forward(ctx, x, op, ax):
            shape = tuple(x.shape)
            A, C, B = split(shape, ax)
            rshape = shape[:ax] + shape[ax + 1:] if op == sw.OP_LSE else shape
            out = new("torch", rshape, x.dtype)
            flags = np.empty(A * B, dtype=np.uint8)
            run_rows(op, 0 if x.dtype is torch.float32 else 1, x, out, shape, ax, flags)
            ctx.op, ctx.ax, ctx.shape = op, ax, shape
            ctx.flags = flags if flags.any() else None
            ctx.save_for_backward(x if op == sw.OP_LSE else out, out if op == sw.OP_LSE else None)
            return out

        @staticmethod
        def backward(ctx, g):
            a, lse = ctx.saved_tensors
            op, ax, shape = ctx.op, ctx.ax, ctx.shape
            A, C, B = split(shape, ax)
            fast = B == 1 and not torch.is_grad_enabled() and g.dtype == a.dtype and readable(g)
            if fast:
                g = g.contiguous()
                grad = new("torch", shape, a.dtype)
                code = 0 if a.dtype is torch.float32 else 1
                if op == sw.OP_LSE:
                    _ck.rows_bwd(op, code, a.data_ptr(), None, lse.contiguous().data_ptr(), g.data_ptr(),
                                 grad.data_ptr(), A, C, sw.STATE.threads, ctx.flags)
                else:
                    _ck.rows_bwd(op, code, a.data_ptr(), g.data_ptr(), None, None, grad.data_ptr(), A, C,
                                 sw.STATE.threads, ctx.flags)
                return grad, None, None
            # the same formulas in torch operations (any layout; differentiable for double backward)
            if op == sw.OP_SOFTMAX:
                grad = a * (g - (g * a).sum(ax, keepdim=True))
            elif op == sw.OP_LOG_SOFTMAX:
                grad = g - torch.exp(a) * g.sum(ax, keepdim=True)
            else:
                grad = g.unsqueeze(ax) * torch.exp(a - lse.unsqueeze(ax))
            if ctx.flags is not None:
                zero_rows = torch.from_numpy(ctx.flags.astype(bool)).reshape(shape[:ax] + (1,) + shape[ax + 1:])
                grad = torch.where(zero_rows, torch.zeros((), dtype=grad.dtype), grad)
            return grad, None, None

    class CrossEntropy(torch.autograd.Function):
        """Fused cross-entropy of (A, C, B) logits (classes in the middle; B = 1 for classes last) and
        A*B class indices. Backward ``g (softmax(x) - onehot(t))`` over the class axis, 0 on ignored
        entries and where the maximum is infinite (as the generic graph gives); double backward
        through torch operations."""

        @staticmethod
        def forward(ctx, x3, t, ignore_index, reduction):
            code = 0 if x3.dtype is torch.float32 else 1
            out, lse, fl, count, valid, tc = ce_forward("torch", code, x3, t, ignore_index, reduction)
            ctx.save_for_backward(x3)
            ctx.lse, ctx.fl, ctx.count, ctx.reduction, ctx.valid, ctx.tc = lse, fl, count, reduction, valid, tc
            return out

        @staticmethod
        def backward(ctx, g):
            (x3,) = ctx.saved_tensors
            A, C, B = x3.shape
            n = A * B
            if not torch.is_grad_enabled() and g.dtype == x3.dtype and readable(g):
                dt = ctx.lse.dtype
                if ctx.reduction == "none":
                    gs = g.detach().reshape(n).numpy()
                else:
                    gv = g if ctx.reduction == "sum" else g / ctx.count  # in g's dtype, as PyTorch rounds it
                    gs = np.full(n, float(gv), dtype=dt)
                gs = np.where(ctx.valid & ~ctx.fl, gs, dt.type(0))
                grad = new("torch", x3.shape, x3.dtype)
                code = 0 if x3.dtype is torch.float32 else 1
                if B == 1:  # the kernel also subtracts g at the targets
                    flags = ctx.fl.view(np.uint8) if ctx.fl.any() else None
                    _ck.rows_bwd(sw.OP_LSE, code, x3.data_ptr(), None, ctx.lse, gs, grad.data_ptr(), A, C,
                                 sw.STATE.threads, flags, ctx.tc)
                else:
                    _ck.cols_lse_bwd(code, x3.data_ptr(), ctx.lse, gs, grad.data_ptr(), A, C, B, sw.STATE.threads)
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
            onehot = torch.zeros_like(x3).scatter(1, tc, 1.0)  # out of place
            return gs.unsqueeze(1) * (p - onehot), None, None, None

    class BCEWithLogits(torch.autograd.Function):
        """Binary cross-entropy of logits ``x`` against ``y`` (weights ``w``, ``pw`` or None), reduced
        by ``reduction``; gradients for ``x`` only (the dispatch sends a target or weight that
        requires grad to the generic graph)."""

        @staticmethod
        def forward(ctx, x, y, w, pw, reduction):
            ctx.kernel = _kernel_ok(x, y, w, pw)
            ctx.save_for_backward(x, y, w, pw)
            ctx.reduction, ctx.n = reduction, x.numel()
            if ctx.kernel:
                return bce_forward("torch", 0 if x.dtype is torch.float32 else 1, x, y, reduction)
            loss = bce_logits_elementwise(x, y, w, pw)
            if reduction == "none":
                return loss
            return loss.sum() if reduction == "sum" else loss.sum() / ctx.n  # no entries: 0 / 0 = NaN

        @staticmethod
        def backward(ctx, g):
            x, y, w, pw = ctx.saved_tensors
            scale = 1.0 / ctx.n if ctx.reduction == "mean" else 1.0
            if ctx.kernel and ctx.reduction != "none" and not torch.is_grad_enabled() and readable(g):
                grad = new("torch", x.shape, x.dtype)
                code = 0 if x.dtype is torch.float32 else 1
                _ck.bce(sw.BCE_GRAD, code, x.data_ptr(), y.data_ptr(), grad.data_ptr(), ctx.n,
                        float(g) * scale, sw.STATE.threads)
                return grad, None, None, None, None
            if ctx.reduction != "none":
                g = g * scale
            return _bce_grad_torch(x, y, w, pw, g), None, None, None, None

    return types.SimpleNamespace(Rows=Rows, CrossEntropy=CrossEntropy, BCEWithLogits=BCEWithLogits)
