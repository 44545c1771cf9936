r"""Triton row kernels: the softmax family, cross-entropy and BCE with logits (kernel sources).

The functions below are the *sources* of Triton kernels, left undecorated on purpose: :func:`build`
wraps them with ``triton.jit`` on first use, so that importing this module never compiles or decides
anything, and ``TRITON_INTERPRET=1`` set later (by a test, before the first call) still makes them
run in Triton's interpreter on CPU tensors. The pieces several kernels share (:func:`lse_scan`, the
online log-sum-exp of a row; :func:`log1p_`) are device functions, ``triton.jit`` -ed by :func:`build`
first, so the kernels call them by their module names (:data:`DEVICE`).

Every kernel reads its rows in their own dtype and computes in float32 (float16/bfloat16 input is
accumulated in float32, docs/ARCHITECTURE.md "Dtypes"). One program handles one row (classes on the
last axis, contiguous), in blocks of ``BLOCK`` columns.

The online log-sum-exp keeps, per row, the largest finite entry ``m``, ``t = sum_j exp(x_j - m) - 1``
(the sum *minus one*: the max's own term is left out exactly, so ``lse = m + log1p(t)`` and
``lse - x_max = log1p(t)`` keep their digits for a confident row, as the CPU kernel's split does), the
count ``k`` of ``+inf`` entries and the count of NaNs. Merging a block whose max ``b`` exceeds ``m``:
``t <- t a + a + t_b`` with ``a = exp(m - b)``, ``t_b`` the block's own sum minus one (its entries
equal to ``b`` counted exactly); otherwise ``t <- t + sum exp(x - m)``. ``log1p(u)`` is written as
``log(1 + u) * u / ((1 + u) - 1)`` (exact where ``1 + u`` rounds; Goldberg's identity), since Triton
has no portable ``log1p``.
"""

from __future__ import annotations

import functools

#: ``triton.language``, bound by :func:`build` on first use: importing this module never imports Triton
#: (which must be imported after ``TRITON_INTERPRET`` is set for its interpreter to work).
tl = None

__all__ = ["build"]


def log1p_(u):
    """``log1p(u)`` for ``u >= -1`` as ``log(1 + u) * u / ((1 + u) - 1)`` (exact where ``1 + u`` rounds;
    Goldberg's identity): ``-inf`` at ``u = -1``."""
    w = 1.0 + u
    out = tl.where(w == 1.0, u, tl.log(w) * (u / (w - 1.0)))
    return tl.where(w == 0.0, -float("inf"), out)


def lse_scan(base, C, inv_t, BLOCK: tl.constexpr):
    """The online log-sum-exp of the row at ``base`` (``C`` entries, times ``inv_t``) in blocks of ``BLOCK``:
    ``(m, t, k)``: the max of the finite entries (-inf if none), ``t = sum exp(x - m) - 1`` (the max's own
    term left out exactly) and the count of +inf entries (NaN where the row holds a NaN)."""
    mv = tl.full([BLOCK], -float("inf"), tl.float32)  # per lane: the running finite max,
    tv = tl.full([BLOCK], -1.0, tl.float32)  # and sum exp(x - max) - 1 (-1: nothing summed yet)
    kv = tl.zeros([BLOCK], tl.float32)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < C, other=-float("inf")).to(tl.float32) * inv_t
        kv += tl.where(x == float("inf"), 1.0, tl.where(x != x, float("nan"), 0.0))
        xf = tl.where((x == float("inf")) | (x != x), -float("inf"), x)  # the finite part
        up = xf > mv
        # a new lane max: the old sum rescaled, the new max's own term (1) left out exactly
        tv = tl.where(up, (tv + 1.0) * tl.exp(mv - xf),
                      tl.where(mv == -float("inf"), tv, tv + tl.exp(xf - mv)))
        mv = tl.where(up, xf, mv)
    m = tl.max(mv, 0)
    a = tl.where(mv == -float("inf"), 0.0, tl.exp(mv - m))
    top = mv == m  # all lanes when the row is empty: t = -1
    t = tl.sum(tl.where(top, tv, (tv + 1.0) * a), 0) + (tl.sum(top.to(tl.float32), 0) - 1.0)
    return m, t, tl.sum(kv, 0)


def row_stats(X, stride, C, inv_t, M, T, K,
              BLOCK: tl.constexpr):
    """Per row: ``M`` max of the finite entries (-inf if none), ``T`` = sum exp(x - M) - 1, ``K`` the
    count of +inf entries, or NaN in ``K`` where the row holds a NaN."""
    row = tl.program_id(0).to(tl.int64)
    m, t, k = lse_scan(X + row * stride, C, inv_t, BLOCK)
    tl.store(M + row, m)
    tl.store(T + row, t)
    tl.store(K + row, k)


def row_write(X, Y, stride, C, inv_t, LSE, K,
              LOG: tl.constexpr, BLOCK: tl.constexpr):
    """``Y = softmax`` (``LOG``: ``log_softmax``) of each row from its log-sum-exp ``LSE`` and +inf
    count ``K``: rows with +inf share the mass among them; empty rows (lse -inf) give 0 / -inf."""
    row = tl.program_id(0).to(tl.int64)
    lse = tl.load(LSE + row)
    k = tl.load(K + row)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < C
        x = tl.load(X + row * stride + cols, mask=mask, other=0.0).to(tl.float32) * inv_t
        hit = x == float("inf")
        kk = tl.where(k > 0, k, 1.0)
        # k > 0: the +inf entries share the mass equally among them (the limit)
        if LOG:
            y = tl.where(lse == -float("inf"), -float("inf"), x - lse)
            y = tl.where(k > 0, tl.where(hit, -tl.log(tl.zeros_like(x) + kk), -float("inf")), y)
        else:
            y = tl.where(lse == -float("inf"), 0.0, tl.exp(x - lse))
            y = tl.where(k > 0, tl.where(hit, 1.0 / kk, 0.0), y)
        tl.store(Y + row * stride + cols, y.to(Y.dtype.element_ty), mask=mask)


def row_backward(Y, G, GX, stride, C, inv_t, LOG: tl.constexpr, BLOCK: tl.constexpr):
    """Gradient of softmax (``gx = y (g - sum g y)``) or log_softmax (``gx = g - e^y sum g``) from the
    output ``Y``, times ``inv_t``. Empty rows (all ``y`` 0, or -inf) get 0."""
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK], tl.float32)
    alive = tl.zeros([BLOCK], tl.float32)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < C
        y = tl.load(Y + row * stride + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(G + row * stride + cols, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            acc += g
            alive += tl.where(mask & (y > -float("inf")), 1.0, 0.0)
        else:
            acc += g * y
            alive += tl.where(y > 0, 1.0, 0.0)
    acc_s = tl.sum(acc, 0)
    alive_s = tl.sum(alive, 0)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < C
        y = tl.load(Y + row * stride + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(G + row * stride + cols, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            gx = g - tl.exp(y) * acc_s
        else:
            gx = y * (g - acc_s)
        gx = tl.where(alive_s > 0, gx * inv_t, 0.0)
        tl.store(GX + row * stride + cols, gx.to(GX.dtype.element_ty), mask=mask)


def lse_backward(X, G, LSE, GX, stride, C, inv_t, BLOCK: tl.constexpr):
    """Gradient of the log-sum-exp: ``gx = g exp(x/T - lse) / T`` (0 for empty rows; +inf rows share)."""
    row = tl.program_id(0).to(tl.int64)
    lse = tl.load(LSE + row)
    g = tl.load(G + row).to(tl.float32)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < C
        x = tl.load(X + row * stride + cols, mask=mask, other=-float("inf")).to(tl.float32) * inv_t
        p = tl.where(lse == -float("inf"), 0.0, tl.exp(x - lse))
        tl.store(GX + row * stride + cols, (g * p * inv_t).to(GX.dtype.element_ty), mask=mask)


def ce_forward(X, stride, TGT, TSTRIDE, W, C, ignore_index, eps, LOSS, LSE,
               HAS_W: tl.constexpr, PROBS: tl.constexpr, SMOOTH: tl.constexpr, BLOCK: tl.constexpr):
    """Cross-entropy per row. Class indices: ``(1-eps) w_y (lse - x_y) + eps/C sum_j w_j (lse - x_j)``
    (0 for ``ignore_index``); probabilities ``q = (1-eps) t + eps/C``: ``sum_j w_j q_j (lse - x_j)``.
    ``lse - x`` is formed as ``(m - x) + log1p(t)``. Writes ``LOSS`` and ``LSE`` per row."""
    row = tl.program_id(0).to(tl.int64)
    base = X + row * stride
    m, t, k = lse_scan(base, C, 1.0, BLOCK)
    l1p = log1p_(t)
    shift = tl.where(m > -float("inf"), m, 0.0)
    lse = shift + l1p
    lse = tl.where(k > 0, float("inf"), lse)
    lse = tl.where(k != k, float("nan"), lse)  # a NaN in the row
    tl.store(LSE + row, lse)
    if PROBS:
        acc = tl.zeros([BLOCK], tl.float32)
        for start in range(0, C, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < C
            x = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32)
            q = tl.load(TGT + row * TSTRIDE + cols, mask=mask, other=0.0).to(tl.float32)
            q = q * (1.0 - eps) + eps / C
            if HAS_W:
                q = q * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            d = (shift - x) + l1p  # lse - x, split so the confident class keeps its digits
            acc += tl.where(mask & (q != 0.0), q * d, 0.0)
        tl.store(LOSS + row, tl.sum(acc, 0))
    else:
        y = tl.load(TGT + row)
        valid = y != ignore_index
        ys = tl.where(valid, y, 0)
        xy = tl.load(base + ys).to(tl.float32)
        wy = 1.0
        if HAS_W:
            wy = tl.load(W + ys).to(tl.float32)
        loss = (1.0 - eps) * wy * ((shift - xy) + l1p)
        if SMOOTH:
            acc = tl.zeros([BLOCK], tl.float32)
            for start in range(0, C, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = cols < C
                x = tl.load(base + cols, mask=mask, other=0.0).to(tl.float32)
                w = 1.0
                if HAS_W:
                    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
                acc += tl.where(mask, w * ((shift - x) + l1p), 0.0)
            loss += eps / C * tl.sum(acc, 0)
        tl.store(LOSS + row, tl.where(valid, loss, 0.0))


def ce_backward(X, stride, TGT, TSTRIDE, W, G, LSE, GX, C, ignore_index, eps,
                HAS_W: tl.constexpr, PROBS: tl.constexpr, BLOCK: tl.constexpr):
    """Gradient of :func:`ce_forward` with upstream ``G`` per row: indices
    ``g (c p_j - (1-eps) w_y [j=y] - eps/C w_j)``, ``c = (1-eps) w_y + eps/C sum w``; probabilities
    ``g ((sum_j w_j q_j) p_j - w_j q_j)``. Ignored rows get 0."""
    row = tl.program_id(0).to(tl.int64)
    base = X + row * stride
    lse = tl.load(LSE + row)
    g = tl.load(G + row).to(tl.float32)
    acc = tl.zeros([BLOCK], tl.float32)
    hot = 0.0
    ys = 0
    if PROBS:
        for start in range(0, C, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < C
            q = tl.load(TGT + row * TSTRIDE + cols, mask=mask, other=0.0).to(tl.float32)
            q = q * (1.0 - eps) + eps / C
            if HAS_W:
                q = q * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            acc += tl.where(mask, q, 0.0)
        coef = tl.sum(acc, 0)
    else:
        y = tl.load(TGT + row)
        valid = y != ignore_index
        ys = tl.where(valid, y, 0)
        wy = 1.0
        if HAS_W:
            wy = tl.load(W + ys).to(tl.float32)
        if HAS_W:
            for start in range(0, C, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                acc += tl.load(W + cols, mask=cols < C, other=0.0).to(tl.float32)
            wsum = tl.sum(acc, 0)
        else:
            wsum = C * 1.0
        hot = tl.where(valid, (1.0 - eps) * wy, 0.0)
        coef = tl.where(valid, hot + eps / C * wsum, 0.0)
        eps = tl.where(valid, eps, 0.0)
    for start in range(0, C, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        mask = cols < C
        x = tl.load(base + cols, mask=mask, other=-float("inf")).to(tl.float32)
        p = tl.where(lse == -float("inf"), 0.0, tl.exp(x - lse))
        if PROBS:
            q = tl.load(TGT + row * TSTRIDE + cols, mask=mask, other=0.0).to(tl.float32)
            q = q * (1.0 - eps) + eps / C
            if HAS_W:
                q = q * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            gx = coef * p - q
        else:
            w = 1.0
            if HAS_W:
                w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
            gx = coef * p - tl.where(cols == ys, hot, 0.0) - (eps / C) * w
        tl.store(GX + row * stride + cols, (g * gx).to(GX.dtype.element_ty), mask=mask)


def bce_forward(X, Y, W, PW, LOSS, N, HAS_W: tl.constexpr, HAS_PW: tl.constexpr, BLOCK: tl.constexpr):
    """``w [c |x| - (1 + (p_w - 1) y) log sigmoid(|x|)]``, ``c = 1 - y`` (x > 0) or ``p_w y``: every term
    of one sign, ``c |x|`` taken as 0 where ``c = 0`` (the limits at +-inf), ``log sigmoid(|x|) =
    -log1p(exp(-|x|))``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(Y + offs, mask=mask, other=0.0).to(tl.float32)
    pw = 1.0
    if HAS_PW:
        pw = tl.load(PW + offs, mask=mask, other=1.0).to(tl.float32)
    a = tl.abs(x)
    sp = log1p_(tl.exp(-a))  # log1p(exp(-|x|)) = -log sigmoid(|x|)
    c = tl.where(x > 0, 1.0 - y, pw * y)
    lin = tl.where(c == 0.0, 0.0, c * a)
    loss = lin + (pw * y + (1.0 - y)) * sp
    if HAS_W:
        loss = loss * tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(LOSS + offs, loss.to(LOSS.dtype.element_ty), mask=mask)


def bce_backward(X, Y, W, PW, G, GX, GY, N, G_SCALAR: tl.constexpr, HAS_W: tl.constexpr,
                 HAS_PW: tl.constexpr, WANT_Y: tl.constexpr, BLOCK: tl.constexpr):
    """``d/dx = g w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)``, finite at +-inf;
    ``d/dy = g w ((p_w - 1) softplus(-x) - x)``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(Y + offs, mask=mask, other=0.0).to(tl.float32)
    if G_SCALAR:
        g = tl.load(G).to(tl.float32)
    else:
        g = tl.load(G + offs, mask=mask, other=0.0).to(tl.float32)
    pw = 1.0
    if HAS_PW:
        pw = tl.load(PW + offs, mask=mask, other=1.0).to(tl.float32)
    if HAS_W:
        g = g * tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.exp(-tl.abs(x))
    sig = tl.where(x >= 0, 1.0 / (1.0 + v), v / (1.0 + v))  # no overflow on either side
    gx = g * ((1.0 + (pw - 1.0) * y) * sig - pw * y)
    tl.store(GX + offs, gx.to(GX.dtype.element_ty), mask=mask)
    if WANT_Y:
        sp = log1p_(v) + tl.maximum(-x, 0.0)  # softplus(-x)
        gy = g * ((pw - 1.0) * sp - x)
        tl.store(GY + offs, gy.to(GY.dtype.element_ty), mask=mask)


SOURCES = (row_stats, row_write, row_backward, lse_backward, ce_forward, ce_backward, bce_forward, bce_backward)
#: the device functions the kernels call, by name: jitted first, bound in this module's namespace
DEVICE = {"log1p_": log1p_, "lse_scan": lse_scan}


def jit_device(namespace: dict, sources: dict) -> None:
    """Bind each device function of ``sources`` in ``namespace`` (a module's globals), ``triton.jit`` -ed.

    Triton resolves a kernel's calls through the kernel's globals when it compiles (or, in the
    interpreter, when it runs), so the names must refer to jitted functions before the first launch.
    """
    import triton

    for name, fn in sources.items():
        namespace[name] = triton.jit(fn)


@functools.lru_cache(maxsize=2)
def build(interpret: bool):
    """The kernels of this module, ``triton.jit`` -ed now (``interpret``: under ``TRITON_INTERPRET=1``,
    which ``triton.jit`` reads when it wraps a function), as ``{name: kernel}``."""
    global tl
    import triton
    import triton.language as tl

    jit_device(globals(), DEVICE)
    return {f.__name__: triton.jit(f) for f in SOURCES}
