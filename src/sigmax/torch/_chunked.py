r"""The chunked cross-entropy engine behind :mod:`sigmax.torch` (private).

Everything here works on a *logits source*: an object that hands out the float32 (compute dtype)
logits of a slice of rows on demand and takes back their gradient. Two sources exist:

* :class:`LinearSource` computes ``hidden[rows] @ weight.T + bias`` chunk by chunk (the fused loss;
  the N x V logits never exist) and accumulates the gradients of hidden, weight and bias;
* :class:`LogitsSource` slices logits the caller already holds (the vocabulary-parallel loss on a
  logits shard) and writes their gradient.

The per-row quantities the loss needs are all sums over the vocabulary, so one pass over the rows
gives them, and a vocabulary shard gives its part of each (which is what makes the
vocabulary-parallel loss a pair of all-reduces):

.. math::
    m_i = \max_j z_{ij}, \quad s_i = \sum_j e^{z_{ij} - m_i}, \quad
    z_{i,y_i}, \quad \textstyle\sum_j w_j z_{ij}

and the gradient of the loss with respect to the logits has the form

.. math:: \frac{\partial L}{\partial z_{ij}} = c_i\, p_{ij} - b_i\,[j = y_i] - e_i\, w_j,
          \qquad p_{ij} = e^{z_{ij} - \operatorname{lse}_i}

with per-row coefficients :math:`c, b, e` (:func:`grad_coefficients`), so one more pass over the rows
produces it. This is the one place in sigmax that re-derives ``exp(z - max)`` instead of calling
:func:`sigmax.logsumexp`: the fused loss must reuse the exponentials as probabilities for its own
backward (docs/ARCHITECTURE.md, "Floors"). Every pass holds one chunk of logits (two with ``softcap``), in the
compute dtype: the extra memory is ``O(chunk x V)``, never ``O(N x V)``.

No pass synchronizes with the host: chunk bounds are Python integers from shapes, and every
data-dependent quantity (the mean's denominator, the masks) stays a tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "LinearSource",
    "LogitsSource",
    "Spec",
    "TokenPlan",
    "compute_dtype",
    "default_chunk_rows",
    "grad_coefficients",
    "grad_pass",
    "reduce_losses",
    "stats_pass",
    "token_losses",
]

#: Elements of one chunk of logits when the caller gives no ``chunk_size``: 2**21 float32 = 8 MiB, so a
#: chunk (and its softcap twin) stays in the last-level cache of a server CPU.
CHUNK_ELEMENTS = 2**21

#: But never fewer rows than this: every chunk reads and writes the whole V x d weight-gradient
#: accumulator once (``dW += g^T h``), so with C rows that update does C/4 flops per byte and stays
#: memory-bound for small C, and small products run below the BLAS peak. Measured (1 thread, process
#: CPU time, fwd+bwd): at (N, d, V) = (512, 512, 64000), 16 rows 3.3 s, 32 rows 2.0 s, 128 rows 1.7 s;
#: at (1024, 1024, 32000), 128 rows 3.3 s, 256 rows 2.9-3.2 s, 1024 rows 2.9 s (plain PyTorch 3.0-3.2 s).
#: 256 rows of a 128k vocabulary are 128 MiB of float32 logits, ~1% of plain PyTorch's N x V buffers
#: at 8192 tokens.
MIN_CHUNK_ROWS = 256


@dataclass(frozen=True)
class Spec:
    """The loss options, validated (see :func:`sigmax.torch.linear_cross_entropy`)."""

    ignore_index: int = -100
    label_smoothing: float = 0.0
    reduction: str = "mean"
    z_loss: float = 0.0
    softcap: float | None = None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (docs/ARCHITECTURE.md, "Dtypes"); float32/64 as they are."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def default_chunk_rows(n_rows: int, n_cols: int) -> int:
    """Rows per chunk: about :data:`CHUNK_ELEMENTS` logits, at least :data:`MIN_CHUNK_ROWS` rows."""
    rows = max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(1, n_cols))
    rows -= rows % 8  # a multiple of 8 keeps the matrix products on their fast paths
    return max(1, min(rows, n_rows))


# --------------------------------------------------------------------------------------------
# logits sources
# --------------------------------------------------------------------------------------------


class LinearSource:
    """Logits ``hidden @ weight.T + bias``, one slice of rows at a time, in the compute dtype.

    Half-precision inputs are upcast to float32 once, before the loop (weight: one V x d float32
    copy). Measured on a CPU without bf16 matrix units, a bfloat16 ``mm`` of 256 x 1024 by
    1024 x 32000 took 19 s against 0.29 s in float32; a GPU kernel (the dispatch point in
    ``linear_cross_entropy.py``) would use the native tensor cores instead.
    """

    def __init__(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        self.cdt = compute_dtype(hidden.dtype)
        self.device = hidden.device
        self.h = hidden
        self.w = weight.to(self.cdt)
        self.b = None if bias is None else bias.to(self.cdt)
        self.n_cols = weight.shape[0]
        self.gh = self.gw = self.gb = None

    def logits(self, rows: slice) -> torch.Tensor:
        h = self.h[rows].to(self.cdt)
        if self.b is None:
            return torch.mm(h, self.w.t())
        return torch.addmm(self.b, h, self.w.t())  # bias broadcast over rows, fused into the product

    def want_grads(self, hidden: bool, weight: bool, bias: bool) -> None:
        """Allocate the gradient accumulators that are needed (in the compute dtype: float32 for
        half input, so the weight gradient is summed over all chunks in float32)."""
        n, d = self.h.shape
        # every row of hidden's gradient is written by exactly one chunk: no zero fill needed
        self.gh = torch.empty(n, d, dtype=self.cdt, device=self.device) if hidden else None
        # The weight gradient is accumulated as d x V for small d: there the skinny V x d update
        # (V x C times C x d) is 5-25x slower in BLAS than its transpose (measured at d = 2-8, C = 256,
        # V = 32769); for d >= 64 both take the same time and V x d needs no transposing copy at the end.
        self._gw_t = weight and d < 64
        if not weight:
            self.gw = None
        elif self._gw_t:
            self.gw = torch.zeros(d, self.n_cols, dtype=self.cdt, device=self.device)
        else:
            self.gw = torch.zeros_like(self.w)
        self.gb = torch.zeros(self.n_cols, dtype=self.cdt, device=self.device) if (bias and self.b is not None) else None

    def accumulate(self, rows: slice, g: torch.Tensor) -> None:
        """Add the contribution of ``g = dL/dlogits[rows]`` to the input gradients."""
        if self.gh is not None:
            torch.mm(g, self.w, out=self.gh[rows])  # rows are disjoint: written, not summed
        if self.gw is not None:
            h = self.h[rows].to(self.cdt)
            if self._gw_t:
                self.gw.addmm_(h.t(), g)  # dW^T += h^T g
            else:
                self.gw.addmm_(g.t(), h)  # dW += g^T h, accumulated over chunks in the compute dtype
        if self.gb is not None:
            self.gb.add_(g.sum(0))

    def grads(self):
        """``(d hidden, d weight, d bias)`` in the compute dtype (``None`` where not wanted)."""
        gw = self.gw
        if gw is not None and self._gw_t:
            gw = gw.t().contiguous()
        return self.gh, gw, self.gb


class LogitsSource:
    """Slices of logits the caller holds (a vocabulary shard), copied to the compute dtype."""

    def __init__(self, logits: torch.Tensor):
        self.x = logits
        self.cdt = compute_dtype(logits.dtype)
        self.device = logits.device
        self.n_cols = logits.shape[1]
        self.gx = None

    def logits(self, rows: slice) -> torch.Tensor:
        # A fresh buffer: the passes below work in place on it.
        return self.x[rows].to(self.cdt, copy=True)

    def want_grads(self, logits: bool, *unused: bool) -> None:
        self.gx = torch.empty_like(self.x) if logits else None

    def accumulate(self, rows: slice, g: torch.Tensor) -> None:
        if self.gx is not None:
            self.gx[rows] = g  # cast to the logits' dtype on the copy


# --------------------------------------------------------------------------------------------
# per-token bookkeeping
# --------------------------------------------------------------------------------------------


@dataclass
class TokenPlan:
    """Where each token's target is, relative to the vocabulary slice ``[start, start + n_cols)``.

    ``valid``: target is not ``ignore_index``; ``hit``: valid and inside this slice; ``index``: the
    target's column in the slice (0 where not hit, so gathers stay in range); ``w_t``: the class
    weight of the target where hit (1 without class weights), else 0.
    """

    valid: torch.Tensor
    hit: torch.Tensor
    index: torch.Tensor
    w_t: torch.Tensor

    @classmethod
    def build(cls, target: torch.Tensor, *, ignore_index: int, start: int, n_cols: int,
              class_weight: torch.Tensor | None, dtype: torch.dtype) -> TokenPlan:
        valid = target != ignore_index
        local = target - start
        hit = valid & (local >= 0) & (local < n_cols)
        index = torch.where(hit, local, torch.zeros_like(local))
        if class_weight is None:
            w_t = hit.to(dtype)
        else:
            w_t = torch.where(hit, class_weight.to(dtype).gather(0, index), 0.0)
        return cls(valid, hit, index, w_t)


def _softcap_(z: torch.Tensor, softcap: float, keep_tanh: bool) -> torch.Tensor | None:
    """``z <- softcap * tanh(z / softcap)`` in place; returns ``tanh(z / softcap)`` if asked (for
    the derivative ``1 - tanh^2``)."""
    z.div_(softcap).tanh_()
    t = z.clone() if keep_tanh else None
    z.mul_(softcap)
    return t


def _finish_grad_(g: torch.Tensor, plan_index: torch.Tensor, b: torch.Tensor | None,
                  e: torch.Tensor | None, class_weight: torch.Tensor | None,
                  tanh: torch.Tensor | None) -> torch.Tensor:
    """Turn ``g = c * p`` into ``c p - b [j = y] - e w`` (and through the softcap), in place."""
    if b is not None:
        g.scatter_add_(1, plan_index[:, None], -b[:, None])  # the one-hot term, one entry per row
    if e is not None:
        if class_weight is None:
            g.sub_(e[:, None])
        else:
            g.addr_(e, class_weight, alpha=-1)  # rank-1 update e w^T, no C x V temporary
    if tanh is not None:
        # d(softcap * tanh(r / softcap)) / dr = 1 - tanh^2(r / softcap)
        g.mul_(tanh.square_().neg_().add_(1))
    return g


# --------------------------------------------------------------------------------------------
# the two passes
# --------------------------------------------------------------------------------------------


def stats_pass(src, plan: TokenPlan, *, class_weight: torch.Tensor | None, softcap: float | None,
               smoothing: bool, chunk: int, coefficients=None):
    """One pass over the rows: per-row max, sum of exponentials, target logit, weighted logit sum.

    Returns ``(mx, s, zt, zw)``: ``mx`` the row max of this slice (``-inf`` for an all ``-inf``
    row), ``s = sum_j exp(z_ij - shift_i)`` with ``shift = mx`` where finite else 0 (so an all
    ``-inf`` row gives ``s = 0``, never NaN), ``zt`` the target logit where ``plan.hit`` else 0,
    ``zw = sum_j w_j z_ij`` (``None`` unless ``smoothing``).

    With ``coefficients`` (a callable ``(rows, lse_rows) -> (c, b, e)``), the same pass also turns
    each chunk into its gradient and hands it to ``src.accumulate`` (gradients in forward): the
    exponentials already computed become the probabilities, so nothing is recomputed.
    """
    n = plan.valid.shape[0]
    cdt, dev = src.cdt, src.device
    mx = torch.empty(n, dtype=cdt, device=dev)
    s = torch.empty(n, dtype=cdt, device=dev)
    zt = torch.empty(n, dtype=cdt, device=dev)
    zw = torch.empty(n, dtype=cdt, device=dev) if smoothing else None
    cw = None if class_weight is None else class_weight.to(cdt)
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        z = src.logits(rows)
        tanh = _softcap_(z, softcap, coefficients is not None) if softcap is not None else None
        idx = plan.index[rows]
        zt[rows] = z.gather(1, idx[:, None]).squeeze(1).masked_fill_(~plan.hit[rows], 0.0)
        if smoothing:
            if cw is None:
                torch.sum(z, 1, out=zw[rows])
            else:
                torch.mv(z, cw, out=zw[rows])
        m = z.amax(1)
        mx[rows] = m
        # Shift by the row max so exp never overflows; an all -inf row is shifted by 0 instead, so
        # exp(-inf - 0) = 0 rather than exp(-inf + inf) = NaN.
        shift = torch.where(torch.isfinite(m), m, 0.0)
        z.sub_(shift[:, None]).exp_()
        torch.sum(z, 1, out=s[rows])
        if coefficients is not None:
            sr = s[rows]
            c, b, e = coefficients(rows, shift + sr.log())
            z.mul_((c / sr)[:, None])  # p * c with p = exp(z - shift) / s, reusing the exponentials
            src.accumulate(rows, _finish_grad_(z, idx, b, e, cw, tanh))
        del z, tanh  # free this chunk before the next is allocated: one chunk alive, not two
    return mx, s, zt, zw


def local_lse(mx: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``log sum_j exp(z_ij)`` from :func:`stats_pass`'s ``mx`` and ``s`` (``-inf`` for empty rows)."""
    return torch.where(torch.isfinite(mx), mx, 0.0) + s.log()


def grad_pass(src, plan: TokenPlan, lse: torch.Tensor, c: torch.Tensor, b: torch.Tensor | None,
              e: torch.Tensor | None, *, class_weight: torch.Tensor | None, softcap: float | None,
              chunk: int) -> None:
    """Recompute the logits chunk by chunk and hand ``dL/dz = c p - b [j = y] - e w`` to the source."""
    n = plan.valid.shape[0]
    cw = None if class_weight is None else class_weight.to(src.cdt)
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        z = src.logits(rows)
        tanh = _softcap_(z, softcap, True) if softcap is not None else None
        # p = exp(z - lse): lse >= max, so the exponent is <= 0 and exp never overflows.
        z.sub_(lse[rows, None]).exp_().mul_(c[rows, None])
        src.accumulate(rows, _finish_grad_(z, plan.index[rows], None if b is None else b[rows],
                                           None if e is None else e[rows], cw, tanh))
        del z, tanh  # free this chunk before the next is allocated


# --------------------------------------------------------------------------------------------
# loss and gradient formulas, per token (O(N), outside the hot loops)
# --------------------------------------------------------------------------------------------


def token_losses(spec: Spec, valid, w_t, lse, zt, zw, w_sum, n_classes):
    r"""Per-token loss, 0 for ignored tokens.

    .. math:: \ell_i = (1-\varepsilon)\, w_{y_i} (\operatorname{lse}_i - z_{i,y_i})
              + \frac{\varepsilon}{V}\Big(\operatorname{lse}_i \sum_j w_j - \sum_j w_j z_{ij}\Big)
              + \lambda_z \operatorname{lse}_i^2

    The smoothing term is ``-(eps/V) sum_j w_j log p_ij``, PyTorch's ``label_smoothing`` with class
    weights.
    """
    eps = spec.label_smoothing
    loss = (1.0 - eps) * w_t * (lse - zt)
    if eps > 0.0:
        loss = loss + (eps / n_classes) * (w_sum * lse - zw)
    if spec.z_loss:
        loss = loss + spec.z_loss * lse.square()
    return torch.where(valid, loss, 0.0)


def reduce_losses(spec: Spec, loss: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    """``"none"``: per token; ``"sum"``; ``"mean"``: sum / (sum of target class weights over
    non-ignored tokens), which is 0/0 = NaN when every token is ignored, as in PyTorch."""
    if spec.reduction == "none":
        return loss
    total = loss.sum()
    return total / denom if spec.reduction == "mean" else total


def upstream(spec: Spec, grad_loss: torch.Tensor | None, denom: torch.Tensor, like: torch.Tensor):
    """Per-token (or scalar) upstream gradient ``g_i`` of the token losses."""
    if grad_loss is None:
        return torch.zeros((), dtype=like.dtype, device=like.device)
    g = grad_loss.to(like.dtype)
    return g / denom if spec.reduction == "mean" else g


def grad_coefficients(spec: Spec, g, valid, hit, w_t, lse, w_sum, n_classes, grad_lse=None):
    r"""``(c, b, e)`` of :math:`\partial L/\partial z_{ij} = c_i p_{ij} - b_i [j=y_i] - e_i w_j`.

    .. math:: c_i = g_i \big((1-\varepsilon) w_{y_i} + \tfrac{\varepsilon}{V}\textstyle\sum_j w_j
              + 2\lambda_z \operatorname{lse}_i\big) + \bar g^{\,\mathrm{lse}}_i, \quad
              b_i = g_i (1-\varepsilon) w_{y_i}, \quad e_i = g_i \tfrac{\varepsilon}{V}

    for non-ignored tokens (0 for ignored ones, by ``where`` so an infinite ``g`` from an empty
    mean never meets a zero); ``b`` only where the target lies in this vocabulary slice.
    """
    eps = spec.label_smoothing
    a = (1.0 - eps) * w_t
    if eps > 0.0:
        a = a + (eps / n_classes) * w_sum
    if spec.z_loss:
        a = a + (2.0 * spec.z_loss) * lse
    c = torch.where(valid, g * a, 0.0)
    if grad_lse is not None:
        c = c + grad_lse.to(c.dtype)
    b = torch.where(hit, g * ((1.0 - eps) * w_t), 0.0) if eps < 1.0 else None
    e = torch.where(valid, g * (eps / n_classes), 0.0) if eps > 0.0 else None
    return c, b, e
