"""The row kernels as plain functions on tensors, each with its ``torch.autograd.Function``.

Layout: the class axis (``dim``) is moved last and the other axes are flattened into rows (a copy
where the tensor is not already laid out so); results come back in the input's shape and dtype
(float16/bfloat16 computed in float32 inside the kernels). A ``where`` mask or a tensor
temperature is applied before the kernel by PyTorch (``masked_fill`` with ``-inf``, a division), so
autograd handles their part of the gradient.
"""

from __future__ import annotations

import numbers
import os

import torch

from . import _rows

__all__ = [
    "binary_cross_entropy_with_logits",
    "check_device",
    "cross_entropy",
    "interpreting",
    "kernels",
    "log_softmax",
    "logsumexp",
    "softmax",
]

#: Columns per block: at most this many (fewer where a row is shorter). Under the interpreter the
#: blocks are small, so tests at tiny shapes still run the multi-block paths.
MAX_BLOCK = 4096
INTERPRET_BLOCK = 32
#: Elements per program of the elementwise (BCE) kernels.
ELEMENT_BLOCK = 1024
_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET=1``: Triton then runs the kernels in its interpreter, on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


def check_device(*tensors: torch.Tensor) -> None:
    """Raise a clear error where the Triton kernels cannot run on ``tensors``: Triton missing, or a
    tensor not on CUDA (CPU tensors run only under ``TRITON_INTERPRET=1``, Triton's interpreter)."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:  # found, not imported (see _rows.build)
        raise RuntimeError("sigmax.torch.triton needs Triton 3.x: pip install 'sigmax[gpu]' "
                           "(or pip install triton)")
    for x in tensors:
        if x is None:
            continue
        if x.device.type == "cuda":
            if interpreting():
                raise RuntimeError("TRITON_INTERPRET=1 is set: Triton's interpreter runs on CPU tensors, "
                                   "not CUDA ones; unset it to run the kernels on the GPU")
        elif not interpreting():
            raise RuntimeError(
                f"the Triton kernels run on CUDA tensors; this one is on {x.device}. Use the default "
                "sigmax functions there (or set TRITON_INTERPRET=1 before the first call to run the "
                "kernels in Triton's interpreter, for testing)"
            )


def kernels() -> dict:
    """The jitted row kernels (built on first use, in the interpreter where ``TRITON_INTERPRET=1``)."""
    return _rows.build(interpreting())


def block(n: int) -> int:
    """Columns per block for rows of ``n`` entries: a power of two, at most :data:`MAX_BLOCK`."""
    cap = INTERPRET_BLOCK if interpreting() else MAX_BLOCK
    b = 16
    while b < n and b < cap:
        b *= 2
    return b


def _float_dtype(x: torch.Tensor, name: str) -> None:
    if x.dtype not in _FLOATS:
        raise TypeError(f"{name} must be float16, bfloat16 or float32 for the Triton kernels, got {x.dtype}")


def rows(x: torch.Tensor, dim: int):
    """``x`` with axis ``dim`` moved last, as a contiguous ``(R, C)`` tensor, and the moved shape."""
    if x.ndim == 0:
        x = x.reshape(1)
    d = dim % x.ndim
    moved = x.movedim(d, -1) if d != x.ndim - 1 else x
    shape = tuple(moved.shape)
    return moved.contiguous().reshape(-1, shape[-1]), shape, d


def unrows(y: torch.Tensor, shape, d: int, ndim: int) -> torch.Tensor:
    y = y.reshape(shape)
    return y.movedim(-1, d) if d != len(shape) - 1 else y


def finish_lse(m: torch.Tensor, t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``lse = m + log1p(t)`` from the row statistics (``-inf`` for empty rows, ``+inf`` with a +inf
    entry, NaN with a NaN)."""
    lse = torch.where(torch.isfinite(m), m, 0.0) + torch.log1p(t)
    lse = torch.where(k > 0, float("inf"), lse)
    return torch.where(torch.isnan(k), float("nan"), lse)


def _stats(x2: torch.Tensor, inv_t: float):
    r, c = x2.shape
    m, t, k = (torch.empty(r, dtype=torch.float32, device=x2.device) for _ in range(3))
    if r:
        kernels()["row_stats"][(r,)](x2, c, c, inv_t, m, t, k, BLOCK=block(c))
    return m, t, k


class SoftmaxRows(torch.autograd.Function):
    """softmax / log_softmax of the rows of a contiguous (R, C) tensor, times ``inv_t`` first."""

    @staticmethod
    def forward(ctx, x2, inv_t: float, log: bool):
        r, c = x2.shape
        m, t, k = _stats(x2, inv_t)
        lse = finish_lse(m, t, k)
        y = torch.empty_like(x2)
        if r:
            kernels()["row_write"][(r,)](x2, y, c, c, inv_t, lse, k, LOG=log, BLOCK=block(c))
        ctx.inv_t, ctx.log = inv_t, log
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        r, c = y.shape
        gx = torch.empty_like(y)
        if r:
            kernels()["row_backward"][(r,)](y, g.contiguous(), gx, c, c, ctx.inv_t, LOG=ctx.log, BLOCK=block(c))
        return gx, None, None


class LogSumExpRows(torch.autograd.Function):
    """log-sum-exp of the rows of a contiguous (R, C) tensor (float32 result), times ``inv_t`` first."""

    @staticmethod
    def forward(ctx, x2, inv_t: float):
        lse = finish_lse(*_stats(x2, inv_t))
        ctx.inv_t = inv_t
        ctx.save_for_backward(x2, lse)
        return lse

    @staticmethod
    def backward(ctx, g):
        x2, lse = ctx.saved_tensors
        r, c = x2.shape
        gx = torch.empty_like(x2)
        if r:
            kernels()["lse_backward"][(r,)](x2, g.contiguous(), lse, gx, c, c, ctx.inv_t, BLOCK=block(c))
        return gx, None


def _prepare(x, dim, temperature, where, fn):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: x must be a torch.Tensor, got {type(x).__name__}")
    _float_dtype(x, "x")
    check_device(x)
    inv_t = 1.0
    if isinstance(temperature, torch.Tensor):
        x = x / temperature.to(x.dtype)
    elif isinstance(temperature, numbers.Real) and not isinstance(temperature, bool) and temperature > 0:
        inv_t = 1.0 / float(temperature)
    else:
        raise ValueError(f"{fn}: temperature must be a number > 0 or a tensor, got {temperature!r}")
    if where is not None:
        x = x.masked_fill(~torch.as_tensor(where, dtype=torch.bool, device=x.device), float("-inf"))
    return x, inv_t


def softmax(x: torch.Tensor, dim: int = -1, *, temperature=1.0, where=None) -> torch.Tensor:
    """``softmax(x / temperature)`` along ``dim`` by the Triton kernel; ``where=False`` entries get 0,
    all masked (or all ``-inf``) rows give 0 with zero gradient, ``+inf`` entries share the mass."""
    x, inv_t = _prepare(x, dim, temperature, where, "softmax")
    x2, shape, d = rows(x, dim)
    return unrows(SoftmaxRows.apply(x2, inv_t, False), shape, d, x.ndim).reshape(x.shape)


def log_softmax(x: torch.Tensor, dim: int = -1, *, temperature=1.0, where=None) -> torch.Tensor:
    """``log_softmax(x / temperature)`` along ``dim`` (masked entries and empty rows: ``-inf``)."""
    x, inv_t = _prepare(x, dim, temperature, where, "log_softmax")
    x2, shape, d = rows(x, dim)
    return unrows(SoftmaxRows.apply(x2, inv_t, True), shape, d, x.ndim).reshape(x.shape)


def logsumexp(x: torch.Tensor, dim: int | None = -1, keepdim: bool = False, *, temperature=1.0,
              where=None) -> torch.Tensor:
    """``log sum exp(x / temperature)`` along ``dim`` (``None``: all entries); masked or empty: ``-inf``.
    The result has ``x``'s dtype (accumulated in float32)."""
    x, inv_t = _prepare(x, dim, temperature, where, "logsumexp")
    if dim is None:
        out = LogSumExpRows.apply(x.reshape(1, -1), inv_t).reshape(())
        return out.reshape((1,) * x.ndim if keepdim else ()).to(x.dtype)
    x2, shape, d = rows(x, dim)
    out = LogSumExpRows.apply(x2, inv_t).reshape(shape[:-1])
    if keepdim:
        out = out.unsqueeze(d)
    return out.to(x.dtype)


# --------------------------------------------------------------------------------------------
# cross-entropy (classes on ``dim``, default the last axis)
# --------------------------------------------------------------------------------------------


class CrossEntropyRows(torch.autograd.Function):
    """Per-row cross-entropy of (R, C) logits; returns (loss per row, float32)."""

    @staticmethod
    def forward(ctx, x2, target, weight, ignore_index: int, eps: float, probs: bool):
        r, c = x2.shape
        loss = torch.empty(r, dtype=torch.float32, device=x2.device)
        lse = torch.empty(r, dtype=torch.float32, device=x2.device)
        w = weight if weight is not None else loss  # a dummy pointer, never read without HAS_W
        if r:
            kernels()["ce_forward"][(r,)](x2, c, target, c if probs else 1, w, c, ignore_index, eps, loss, lse,
                                          HAS_W=weight is not None, PROBS=probs, SMOOTH=eps > 0,
                                          BLOCK=block(c))
        ctx.opts = (ignore_index, eps, probs)
        ctx.save_for_backward(x2, target, weight, lse)
        return loss

    @staticmethod
    def backward(ctx, g):
        x2, target, weight, lse = ctx.saved_tensors
        ignore_index, eps, probs = ctx.opts
        r, c = x2.shape
        gx = torch.empty_like(x2)
        w = weight if weight is not None else lse
        if r:
            kernels()["ce_backward"][(r,)](x2, c, target, c if probs else 1, w, g.to(torch.float32).contiguous(),
                                           lse, gx, c, ignore_index, eps, HAS_W=weight is not None,
                                           PROBS=probs, BLOCK=block(c))
        return gx, None, None, None, None, None


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0, *,
                  dim: int = -1) -> torch.Tensor:
    """``F.cross_entropy`` by the Triton kernels, with the classes on ``dim`` (default: the **last**
    axis, unlike PyTorch's axis 1; another axis is moved last by a transposing copy).

    ``target``: integer class indices (``input``'s shape without ``dim``; ``ignore_index`` skipped) or
    class probabilities (``input``'s shape). ``weight``: per class. ``"mean"`` divides by the summed
    target weights of the non-ignored rows (indices) or by the number of rows (probabilities), as
    PyTorch. The gradient flows to ``input`` (not to a probability target).
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    _float_dtype(input, "input")
    check_device(input, target, weight)
    x2, shape, d = rows(input, dim)
    c = shape[-1]
    probs = target.is_floating_point()
    if probs:
        if tuple(target.shape) != tuple(input.shape):
            raise ValueError(f"probability targets must have input's shape {tuple(input.shape)}, "
                             f"got {tuple(target.shape)}")
        t2 = rows(target, dim)[0]
    else:
        if tuple(target.shape) != shape[:-1]:
            raise ValueError(f"class-index targets must have shape {shape[:-1]} (input's without dim), "
                             f"got {tuple(target.shape)}")
        t2 = target.reshape(-1).to(torch.int64).contiguous()
    w = None if weight is None else weight.to(torch.float32).contiguous()
    if w is not None and tuple(w.shape) != (c,):
        raise ValueError(f"weight must have shape ({c},), got {tuple(w.shape)}")
    per = CrossEntropyRows.apply(x2, t2, w, int(ignore_index), float(label_smoothing), probs)
    if reduction == "none":
        return per.reshape(shape[:-1]).to(input.dtype)
    total = per.sum()
    if reduction == "sum":
        return total.to(input.dtype)
    if probs:
        denom = float(x2.shape[0])
    else:
        valid = t2 != ignore_index
        wt = torch.ones_like(t2, dtype=torch.float32) if w is None else w[torch.where(valid, t2, 0)]
        denom = torch.where(valid, wt, 0.0).sum()
    return (total / denom).to(input.dtype)


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits (elementwise)
# --------------------------------------------------------------------------------------------


class BCEWithLogits(torch.autograd.Function):
    """Elementwise BCE with logits on flat tensors; ``reduction`` applied here so the backward can
    take a scalar upstream gradient."""

    @staticmethod
    def forward(ctx, x, y, w, pw, reduction: str):
        n = x.numel()
        loss = torch.empty(n, dtype=torch.float32, device=x.device)
        dummy = loss
        if n:
            kernels()["bce_forward"][(triton_cdiv(n, ELEMENT_BLOCK),)](
                x, y, dummy if w is None else w, dummy if pw is None else pw, loss, n,
                HAS_W=w is not None, HAS_PW=pw is not None, BLOCK=ELEMENT_BLOCK)
        ctx.reduction = reduction
        ctx.save_for_backward(x, y, w, pw)
        if reduction == "none":
            return loss
        total = loss.sum()
        return total / n if reduction == "mean" else total

    @staticmethod
    def backward(ctx, g):
        x, y, w, pw = ctx.saved_tensors
        n = x.numel()
        need_x, need_y, need_w, need_pw = ctx.needs_input_grad[:4]
        g = g.to(torch.float32)
        if ctx.reduction == "mean":
            g = g / n
        scalar = ctx.reduction != "none"
        gx = torch.empty_like(x)
        gy = torch.empty_like(y) if need_y else gx
        dummy = gx
        if n:
            kernels()["bce_backward"][(triton_cdiv(n, ELEMENT_BLOCK),)](
                x, y, dummy if w is None else w, dummy if pw is None else pw, g.reshape(-1).contiguous(), gx, gy, n,
                G_SCALAR=scalar, HAS_W=w is not None, HAS_PW=pw is not None, WANT_Y=need_y,
                BLOCK=ELEMENT_BLOCK)
        gw = gpw = None
        if need_w or need_pw:  # rare: by PyTorch, from the unweighted pieces
            xf, yf = x.float(), y.float()
            sp = torch.nn.functional.softplus(-xf)
            p = 1.0 if pw is None else pw
            if need_w:
                gw = g * ((1 - yf) * xf + (1 + (p - 1) * yf) * sp)
            if need_pw:
                gpw = g * yf * sp * (1.0 if w is None else w)
        return gx if need_x else None, gy if need_y else None, gw, gpw, None


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor, weight=None,
                                     reduction: str = "mean", pos_weight=None) -> torch.Tensor:
    """``F.binary_cross_entropy_with_logits`` by the Triton kernels (``weight`` and ``pos_weight``
    broadcast to ``input``'s shape; ``pos_weight`` along the last axis as in PyTorch). At infinite
    logits the limits: 0 where the sign agrees with the target, ``+inf`` otherwise, finite gradients."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    _float_dtype(input, "input")
    check_device(input, target, weight, pos_weight)
    shape = input.shape

    def flat(v):
        if v is None:
            return None
        return torch.broadcast_to(v, shape).contiguous().reshape(-1)

    x = input.contiguous().reshape(-1)
    y = flat(target.to(input.dtype) if not target.is_floating_point() else target)
    w, pw = flat(weight), flat(pos_weight)
    out = BCEWithLogits.apply(x, y, w, pw, reduction)
    if reduction == "none":
        out = out.reshape(shape)
    return out.to(input.dtype)
