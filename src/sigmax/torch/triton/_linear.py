r"""Fused linear cross-entropy in Triton, in the manner of CCE (Wijmans et al., 2024): no N x V logits.

**Forward** (:func:`lce_forward`): the grid is (row blocks, vocabulary splits). A program computes
the logit tiles ``z = h W^T (+ b)`` of its ``BM`` rows over its share of the vocabulary, ``BV``
columns at a time (``tl.dot`` over ``D`` in steps of ``BD``, float32 accumulation; ``"ieee"``
precision for float32 input, the tensor cores' bfloat16/float16 products otherwise), and keeps per
row the online log-sum-exp statistics (the max ``m`` and ``t = sum exp(z - m) - 1``, the max's own
term left out exactly, as the row kernels of :mod:`._rows` do), the target logit and, for label
smoothing, ``sum_j w_j z_j``. The splits' statistics (O(N x splits) numbers) are merged by PyTorch;
the per-token loss, the reduction and the gradient coefficients are the chunked engine's
(:mod:`sigmax.torch._chunked`), so both paths share one set of formulas.

**Backward** (:func:`lce_backward`): the grid is (row blocks, column blocks). Each program recomputes
its logit tile, forms ``dL/dz = c p - b [j = y] - e w`` (through the softcap's derivative), and adds
``dz W`` into the hidden gradient and ``dz^T h`` into the weight gradient with float32 atomic adds
(the accumulators are float32 for every input dtype; the order of the additions, hence the last
bits, varies from run to run). With ``grad_filter = f``, a tile whose ``max |dL/dz|`` is below ``f``
is skipped (CCE's gradient filtering): each skipped entry would have added at most ``f |w_j|`` to a
hidden-gradient row and ``f |h_i|`` to a weight-gradient row, so the absolute error of
``d hidden[i]`` is at most ``f sum_{j skipped} |W_j|`` (elementwise), and likewise for ``d W``. The
default ``None`` skips nothing (exact).
"""

from __future__ import annotations

import functools

import torch

from .. import _chunked as ch
from ._ops import check_device, interpreting
from ._rows import jit_device

#: ``triton.language``, bound by :func:`build` on first use: importing this module never imports Triton
#: (which must be imported after ``TRITON_INTERPRET`` is set for its interpreter to work).
tl = None

__all__ = ["fused", "linear_cross_entropy"]


def logit_tile(H, W, B, rows64, rmask, cols, cmask, D, softcap, HAS_B: tl.constexpr, SOFTCAP: tl.constexpr,
               PREC: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr, BV: tl.constexpr, BD: tl.constexpr):
    """The ``(BM, BV)`` logit tile ``h W^T (+ b)`` of rows ``rows64`` and columns ``cols`` (``tl.dot`` over
    ``D`` in steps of ``BD``, float32 accumulation), through the softcap ``softcap tanh(z / softcap)``
    (tanh by ``exp(-2|u|)``: no overflow, absolute error ~ eps * softcap)."""
    cols64 = cols.to(tl.int64)
    acc = tl.zeros([BM, BV], tl.float32)
    for d0 in range(0, D, BD):
        ds = d0 + tl.arange(0, BD)
        dmask = ds < D
        h = tl.load(H + rows64[:, None] * D + ds[None, :], mask=rmask[:, None] & dmask[None, :], other=0.0)
        w = tl.load(W + cols64[:, None] * D + ds[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0)
        if UPCAST:  # the interpreter's bfloat16/float16 products are unreliable
            h = h.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=PREC)
    z = acc
    if HAS_B:
        z = z + tl.load(B + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    if SOFTCAP:
        u = z / softcap
        e2 = tl.exp(-2.0 * tl.abs(u))
        th = (1.0 - e2) / (1.0 + e2)
        z = softcap * tl.where(u < 0, -th, th)
    return z


def lce_forward(H, W, B, CW, TGT, MP, TP, ZTP, ZWP, N, V, D, v_per_split, softcap,
                HAS_B: tl.constexpr, HAS_CW: tl.constexpr, SMOOTH: tl.constexpr, SOFTCAP: tl.constexpr,
                PREC: tl.constexpr, UPCAST: tl.constexpr, BM: tl.constexpr, BV: tl.constexpr,
                BD: tl.constexpr):
    pid_m = tl.program_id(0)
    split = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    rmask = rows < N
    rows64 = rows.to(tl.int64)
    tgt = tl.load(TGT + rows, mask=rmask, other=-1)
    m = tl.full([BM], -float("inf"), tl.float32)
    t = tl.full([BM], -1.0, tl.float32)
    zt = tl.zeros([BM], tl.float32)
    zw = tl.zeros([BM], tl.float32)
    v_start = split * v_per_split
    for v0 in range(v_start, tl.minimum(v_start + v_per_split, V), BV):
        cols = v0 + tl.arange(0, BV)
        cmask = cols < V
        z = logit_tile(H, W, B, rows64, rmask, cols, cmask, D, softcap, HAS_B, SOFTCAP, PREC, UPCAST, BM, BV, BD)
        zt += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), 1)
        if SMOOTH:
            if HAS_CW:
                cw = tl.load(CW + cols, mask=cmask, other=0.0).to(tl.float32)
                zw += tl.sum(tl.where(cmask[None, :], z * cw[None, :], 0.0), 1)
            else:
                zw += tl.sum(tl.where(cmask[None, :], z, 0.0), 1)
        z = tl.where(cmask[None, :], z, -float("inf"))
        b = tl.max(z, 1)
        new = tl.maximum(m, b)
        up = b > m
        a = tl.exp(m - new)  # the old sum's rescaling (1 where the max stays, 0 from -inf)
        shift = tl.where(new > -float("inf"), new, 0.0)
        e = tl.exp(z - shift[:, None])
        cmp = tl.where(new > -float("inf"), new, float("nan"))  # NaN: no entry counts as the max
        is_max = z == cmp[:, None]
        n_eq = tl.sum(tl.where(is_max, 1.0, 0.0), 1)
        rest = tl.sum(tl.where(is_max, 0.0, e), 1)
        # t = sum exp(z - max) - 1 with the max's own terms counted exactly (no 1 + tiny - 1)
        t = tl.where(up, (t + 1.0) * a + (n_eq - 1.0), t + n_eq) + rest
        m = new
    out = split * N + rows
    tl.store(MP + out, m, mask=rmask)
    tl.store(TP + out, t, mask=rmask)
    tl.store(ZTP + out, zt, mask=rmask)
    if SMOOTH:
        tl.store(ZWP + out, zw, mask=rmask)


def lce_backward(H, W, B, CW, TGT, LSE, CC, BC, EC, GH, GW, GB, N, V, D, softcap, grad_filter,
                 HAS_B: tl.constexpr, HAS_CW: tl.constexpr, HAS_BC: tl.constexpr, HAS_EC: tl.constexpr,
                 SOFTCAP: tl.constexpr, WANT_H: tl.constexpr, WANT_W: tl.constexpr, WANT_B: tl.constexpr,
                 FILTER: tl.constexpr, PREC: tl.constexpr, UPCAST: tl.constexpr,
                 BM: tl.constexpr, BV: tl.constexpr, BD: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_m * BM + tl.arange(0, BM)
    cols = pid_v * BV + tl.arange(0, BV)
    rmask = rows < N
    cmask = cols < V
    rows64 = rows.to(tl.int64)
    cols64 = cols.to(tl.int64)
    z = logit_tile(H, W, B, rows64, rmask, cols, cmask, D, softcap, HAS_B, SOFTCAP, PREC, UPCAST, BM, BV, BD)
    lse = tl.load(LSE + rows, mask=rmask, other=0.0)
    c = tl.load(CC + rows, mask=rmask, other=0.0)
    p = tl.where(lse[:, None] > -float("inf"), tl.exp(z - lse[:, None]), 0.0)  # z <= lse: no overflow
    g = c[:, None] * p
    if HAS_BC:
        bc = tl.load(BC + rows, mask=rmask, other=0.0)
        tgt = tl.load(TGT + rows, mask=rmask, other=-1)
        g = g - tl.where(cols[None, :] == tgt[:, None], bc[:, None], 0.0)
    if HAS_EC:
        ec = tl.load(EC + rows, mask=rmask, other=0.0)
        if HAS_CW:
            cw = tl.load(CW + cols, mask=cmask, other=0.0).to(tl.float32)
            g = g - ec[:, None] * cw[None, :]
        else:
            g = g - ec[:, None]
    if SOFTCAP:
        th = z / softcap  # tanh(r / softcap)
        g = g * (1.0 - th * th)  # d(softcap tanh(r / softcap)) / dr
    g = tl.where(rmask[:, None] & cmask[None, :], g, 0.0)
    run = True
    if FILTER:
        run = tl.max(tl.max(tl.abs(g), 1), 0) >= grad_filter
    if run:
        if WANT_B:
            tl.atomic_add(GB + cols, tl.sum(g, 0), mask=cmask)
        for d0 in range(0, D, BD):
            ds = d0 + tl.arange(0, BD)
            dmask = ds < D
            if WANT_H:
                w = tl.load(W + cols64[:, None] * D + ds[None, :], mask=cmask[:, None] & dmask[None, :], other=0.0)
                if UPCAST:  # the interpreter's bfloat16/float16 products are unreliable
                    w = w.to(tl.float32)
                dh = tl.dot(g.to(w.dtype), w, input_precision=PREC)
                tl.atomic_add(GH + rows64[:, None] * D + ds[None, :], dh, mask=rmask[:, None] & dmask[None, :])
            if WANT_W:
                h = tl.load(H + rows64[:, None] * D + ds[None, :], mask=rmask[:, None] & dmask[None, :], other=0.0)
                if UPCAST:  # the interpreter's bfloat16/float16 products are unreliable
                    h = h.to(tl.float32)
                dw = tl.dot(tl.trans(g.to(h.dtype)), h, input_precision=PREC)
                tl.atomic_add(GW + cols64[:, None] * D + ds[None, :], dw, mask=cmask[:, None] & dmask[None, :])


@functools.lru_cache(maxsize=2)
def build(interpret: bool):
    """The two kernels, ``triton.jit`` -ed on first use (see :func:`sigmax.torch.triton._rows.build`)."""
    global tl
    import triton
    import triton.language as tl

    jit_device(globals(), {"logit_tile": logit_tile_source})
    return {f.__name__: triton.jit(f) for f in (lce_forward, lce_backward)}


#: the device function's source (the module name ``logit_tile`` is bound to its jitted form by :func:`build`)
logit_tile_source = logit_tile

#: Tile sizes (rows, vocabulary columns, features) on a GPU, and under the interpreter (tiny, so the
#: tests' ragged shapes cross several tiles). ``tl.dot`` needs at least 16 in every dimension.
GPU_TILES = dict(BM=64, BV=128, BD=64)
INTERPRET_TILES = dict(BM=16, BV=16, BD=16)


def tiles() -> dict:
    return INTERPRET_TILES if interpreting() else GPU_TILES


def _splits(n: int, v: int, bm: int, bv: int, device: torch.device) -> int:
    """Vocabulary splits of the forward: enough programs for about 4 per multiprocessor."""
    blocks_v = -(-v // bv)
    if device.type != "cuda":
        return min(2, blocks_v)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(blocks_v, -(-4 * sms // max(1, -(-n // bm)))))


def merge_splits(mp: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
    """The log-sum-exp of each row from the splits' ``(m, t)`` (shape (S, N)), ``t`` summed with
    each split's max term counted exactly (``lse = M + log1p(t)``)."""
    top = mp.amax(0)
    fin = torch.isfinite(top)
    shift = torch.where(fin, top, 0.0)
    is_top = (mp == top) & fin
    a = torch.where(torch.isfinite(mp), torch.exp(mp - shift), 0.0)
    t = torch.where(is_top, tp, (tp + 1.0) * a).sum(0) + (is_top.sum(0) - 1.0)
    return shift + torch.log1p(t)


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # tf32 is ignored for half inputs (native products)


class FusedLinearCrossEntropy(torch.autograd.Function):
    """``(loss, lse)`` of 2-D ``hidden``, ``weight`` (V, d), optional ``bias``, 1-D int64 ``target``."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, class_weight, spec, grad_filter):
        ctx.set_materialize_grads(False)
        n, d = hidden.shape
        v = weight.shape[0]
        h = hidden.contiguous()
        w = weight.contiguous()
        cw = None if class_weight is None else class_weight.to(torch.float32).contiguous()
        tl_ = tiles()
        splits = _splits(n, v, tl_["BM"], tl_["BV"], h.device)
        per = -(-(-(-v // tl_["BV"])) // splits) * tl_["BV"]
        f32 = dict(dtype=torch.float32, device=h.device)
        mp, tp, ztp = (torch.empty(splits, n, **f32) for _ in range(3))
        smooth = spec.label_smoothing > 0
        zwp = torch.empty(splits, n, **f32) if smooth else mp
        if n:
            build(interpreting())["lce_forward"][(-(-n // tl_["BM"]), splits)](
                h, w, bias if bias is not None else mp, cw if cw is not None else mp, target, mp, tp, ztp, zwp,
                n, v, d, per, float(spec.softcap or 1.0), HAS_B=bias is not None, HAS_CW=cw is not None,
                SMOOTH=smooth, SOFTCAP=spec.softcap is not None, PREC=_precision(h.dtype),
                UPCAST=interpreting() and h.dtype != torch.float32, **tl_)
        lse = merge_splits(mp, tp)
        zt = ztp.sum(0)
        zw = zwp.sum(0) if smooth else None
        plan = ch.TokenPlan.build(target, ignore_index=spec.ignore_index, start=0, n_cols=v,
                                  class_weight=cw, dtype=torch.float32)
        w_sum = float(v) if cw is None else cw.sum()
        denom = plan.w_t.sum()
        tok = ch.token_losses(spec, plan.valid, plan.w_t, lse, zt, zw, w_sum, v)
        loss = ch.reduce_losses(spec, tok, denom)
        ctx.spec, ctx.grad_filter = spec, grad_filter
        ctx.save_for_backward(h, w, bias, target, cw, lse, denom)
        return loss, lse  # float32: the caller casts the loss (hidden's dtype, or its loss_dtype)

    @staticmethod
    def backward(ctx, grad_loss, grad_lse):
        h, w, bias, target, cw, lse, denom = ctx.saved_tensors
        spec = ctx.spec
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        if grad_loss is None and grad_lse is None:
            return (None,) * 7
        n, d = h.shape
        v = w.shape[0]
        plan = ch.TokenPlan.build(target, ignore_index=spec.ignore_index, start=0, n_cols=v,
                                  class_weight=cw, dtype=torch.float32)
        w_sum = float(v) if cw is None else cw.sum()
        g = ch.upstream(spec, grad_loss, denom, lse)
        c, b, e = ch.grad_coefficients(spec, g, plan.valid, plan.hit, plan.w_t, lse, w_sum, v, grad_lse)
        c = torch.broadcast_to(c, (n,)).to(torch.float32).contiguous()
        b = None if b is None else torch.broadcast_to(b, (n,)).to(torch.float32).contiguous()
        e = None if e is None else torch.broadcast_to(e, (n,)).to(torch.float32).contiguous()
        f32 = dict(dtype=torch.float32, device=h.device)
        gh = torch.zeros(n, d, **f32) if want_h else c
        gw = torch.zeros(v, d, **f32) if want_w else c
        gb = torch.zeros(v, **f32) if (want_b and bias is not None) else c
        tl_ = tiles()
        filt = ctx.grad_filter
        if n:
            build(interpreting())["lce_backward"][(-(-n // tl_["BM"]), -(-v // tl_["BV"]))](
                h, w, bias if bias is not None else c, cw if cw is not None else c, target, lse, c,
                b if b is not None else c, e if e is not None else c, gh, gw, gb, n, v, d,
                float(spec.softcap or 1.0), float(filt or 0.0), HAS_B=bias is not None, HAS_CW=cw is not None,
                HAS_BC=b is not None, HAS_EC=e is not None, SOFTCAP=spec.softcap is not None,
                WANT_H=bool(want_h), WANT_W=bool(want_w), WANT_B=bool(want_b and bias is not None),
                FILTER=filt is not None, PREC=_precision(h.dtype),
                UPCAST=interpreting() and h.dtype != torch.float32, **tl_)
        return (gh.to(h.dtype) if want_h else None, gw.to(w.dtype) if want_w else None,
                gb.to(bias.dtype) if (want_b and bias is not None) else None, None, None, None, None)


def fused(hidden, weight, bias, target, class_weight, spec, chunk=None, in_forward=True, *, grad_filter=None):
    """The Triton kernel with the signature of ``sigmax.torch.linear_cross_entropy``'s device kernels
    (``KERNELS``): validated 2-D ``hidden``, 1-D int64 ``target``, a ``Spec``; returns ``(loss, lse)``
    (``chunk`` and ``in_forward`` are the chunked path's and are not used here)."""
    check_device(hidden, weight, bias, target, class_weight)
    if hidden.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"the Triton linear cross-entropy takes float16, bfloat16 or float32, got {hidden.dtype}"
                        "; use impl='torch' for float64")
    return FusedLinearCrossEntropy.apply(hidden, weight, bias, target, class_weight, spec, grad_filter)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *, bias=None,
                         class_weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                         reduction: str = "mean", z_loss: float = 0.0, softcap: float | None = None,
                         return_lse: bool = False, grad_filter: float | None = None):
    """The Triton fused linear cross-entropy on ``hidden`` ``(N, d)`` and ``target`` ``(N,)`` (the
    kernel itself, with shape checks only). The checked public entry, with any leading axes, is
    ``sigmax.torch.linear_cross_entropy(..., impl="triton")``; the options are its own, plus
    ``grad_filter`` (see the module docstring for the error bound)."""
    if hidden.ndim != 2 or weight.ndim != 2 or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"hidden must be (N, d) and weight (V, d); got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    if tuple(target.shape) != (hidden.shape[0],) or target.is_floating_point():
        raise ValueError(f"target must hold {hidden.shape[0]} class indices, got {tuple(target.shape)} "
                         f"{target.dtype}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    spec = ch.Spec(int(ignore_index), float(label_smoothing), reduction, float(z_loss),
                   None if softcap is None else float(softcap))
    loss, lse = fused(hidden, weight, bias, target.to(torch.int64).contiguous(), class_weight, spec,
                      grad_filter=grad_filter)
    loss = loss.to(hidden.dtype)
    return (loss, lse) if return_lse else loss
