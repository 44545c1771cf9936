"""The losses' arithmetic on any Array-API library, and the losses' dispatch tables.

Each ``*_core(xp, *arrays, **options)`` is the generic implementation of one operation, written in
terms of :mod:`sigmax.activations` (``log_softmax``, ``log_sigmoid``): nothing here forms
``log(softmax(x))`` or re-derives ``exp(x - max)``. Every operation is registered with
:mod:`sigmax._dispatch` here: the ``jax`` row runs the core as one compiled function, the ``generic``
row runs it as is (on PyTorch, with the torch-only selections of :mod:`sigmax._losses_torch`); the
kernel rows come from :mod:`sigmax._kernels`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import _dispatch
from ._array import is_jax, is_torch
from ._dispatch import decline
from ._kernels import _ops as _kernel_ops
from .activations import log_sigmoid, log_softmax

#: The accepted values of ``reduction``.
REDUCTIONS = ("none", "mean", "sum")

LOG_CLAMP = -100.0  # PyTorch's binary_cross_entropy clamps log(p) and log(1 - p) at -100


def along(xp, v, ndim: int, ax: int):
    """A length-C vector reshaped to broadcast along axis ``ax`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[ax] = v.shape[0]
    return xp.reshape(v, tuple(shape))


def run(xp, core, *arrays, **static):
    """``core(xp, *arrays, **static)``: the arithmetic of a loss, after its arguments were checked.

    On JAX the core runs as one compiled function (cached per options and shapes) instead of
    dispatching, and compiling, each of its few dozen operations one by one; inside a caller's
    ``jit``/``grad`` it is simply inlined.
    """
    if is_jax(xp):
        return _jax_jitted(core, tuple(sorted(static.items())))(*arrays)
    return core(xp, *arrays, **static)


@functools.lru_cache(maxsize=256)
def _jax_jitted(core, static_items):
    import jax
    import jax.numpy as jnp

    return jax.jit(functools.partial(core, jnp, **dict(static_items)))


def reduce(xp, loss, reduction: str, denom: Any = None):
    """``none`` / ``sum`` / ``mean``; ``mean`` divides the sum by ``denom`` (default: the count)."""
    if reduction == "none":
        return loss
    total = xp.sum(loss)
    if reduction == "sum":
        return total
    if denom is None:
        denom = float(np.prod(tuple(loss.shape), dtype=np.float64))
    return total / denom  # no entries: 0 / 0 = NaN, as in PyTorch


# --------------------------------------------------------------------------------------------
# negative log-likelihood and cross-entropy
# --------------------------------------------------------------------------------------------


def pick(xp, logp, idx, ax: int):
    """``logp[..., idx, ...]`` along the class axis ``ax``: one entry per row.

    ``take_along_axis`` reads one entry per row. On JAX its gradient would be a scatter, slow on a
    GPU; a custom JVP writes the derivative as a one-hot masked sum, whose transpose is a ``where``
    that XLA fuses with the log-softmax's gradient (2-3x faster forward+backward on an H100, same
    forward; forward mode and higher derivatives keep working).
    """
    if is_jax(xp):
        return _jax_pick(ax)(logp, idx)
    return xp.squeeze(xp.take_along_axis(logp, xp.expand_dims(idx, axis=ax), axis=ax), axis=ax)


@functools.cache
def _jax_pick(ax: int):
    import jax
    import jax.numpy as jnp

    @jax.custom_jvp
    def pick(logp, idx):
        return jnp.squeeze(jnp.take_along_axis(logp, jnp.expand_dims(idx, axis=ax), axis=ax), axis=ax)

    @pick.defjvp
    def pick_jvp(primals, tangents):
        logp, idx = primals
        classes = jnp.arange(logp.shape[ax], dtype=idx.dtype).reshape(
            tuple(-1 if i == ax else 1 for i in range(logp.ndim)))
        onehot = jnp.expand_dims(idx, axis=ax) == classes
        # the same selection written as a masked sum: linear in the tangent, and its transpose (the
        # reverse-mode gradient) is an elementwise where, not a scatter
        return pick(logp, idx), jnp.sum(jnp.where(onehot, tangents[0], 0.0), axis=ax)

    return pick


def nll_indices(xp, logp, t, ax: int, w, ignore_index: int, smoothing: float = 0.0):
    """Per-entry loss and the mean's denominator for class-index targets.

    ``loss_n = -w[y_n] ((1 - eps) log p[n, y_n] + eps / C * sum_c w_c log p[n, c] / w[y_n])`` (PyTorch's
    label smoothing), 0 where ``y_n == ignore_index``; the denominator is ``sum_n w[y_n]`` over kept
    entries (their count without ``weight``).
    """
    valid = t != ignore_index
    safe = xp.where(valid, t, xp.zeros_like(t))  # ignored entries gather class 0, then get masked out
    picked = pick(xp, logp, safe, ax)
    if w is None:
        wn = None
        per = -picked
        denom = xp.sum(xp.astype(valid, logp.dtype))
    else:
        wn = xp.reshape(xp.take(w, xp.reshape(safe, (-1,)), axis=0), tuple(safe.shape))
        wn = xp.where(valid, wn, 0.0)
        per = -(wn * picked)
        denom = xp.sum(wn)
    if smoothing > 0:
        c = logp.shape[ax]
        # PyTorch's smoothing term: -sum_c w_c log p_c (the uniform target's cross-entropy), weighted
        # per class, not by the target's weight.
        smooth = -xp.sum(logp if w is None else logp * along(xp, w, logp.ndim, ax), axis=ax)
        per = (1.0 - smoothing) * per + (smoothing / c) * smooth
    per = xp.where(valid, per, 0.0)  # ignored entries contribute exactly 0 (even if log p is -inf)
    return per, denom


def nll_probs(xp, logp, t, ax: int, w, smoothing: float = 0.0):
    """Per-row loss for class-probability targets: ``-sum_c w_c t_c log p_c``."""
    c = logp.shape[ax]
    if smoothing > 0:
        t = t * (1.0 - smoothing) + smoothing / c  # PyTorch smooths the target itself
    # 0 * log 0 = 0: a class with probability 0 in the target adds nothing, even where its logit is
    # -inf (a masked class). PyTorch gives NaN there; everywhere else the values are PyTorch's.
    term = t * xp.where(t == 0, 0.0, logp)
    if w is not None:
        term = term * along(xp, w, logp.ndim, ax)
    return -xp.sum(term, axis=ax)


def rows(shape, ax: int) -> float:
    """The number of rows (entries other than the class axis): PyTorch's mean denominator for
    probability targets."""
    return float(np.prod(tuple(shape[:ax]) + tuple(shape[ax + 1:]), dtype=np.float64))


def ce_indices_core(xp, x, t, w, *, ax, ignore_index, smoothing, reduction, from_logits):
    logp = log_softmax(x, axis=ax) if from_logits else x  # the one log-softmax (shift by the max inside)
    if is_torch(xp):
        from . import _losses_torch  # selection and weighted mean by torch.nn.functional.nll_loss

        return _losses_torch.nll_indices_torch(logp, t, ax, w, ignore_index, smoothing, reduction)
    per, denom = nll_indices(xp, logp, t, ax, w, ignore_index, smoothing)
    return reduce(xp, per, reduction, denom)


def ce_probs_core(xp, x, t, w, *, ax, smoothing, reduction):
    logp = log_softmax(x, axis=ax)
    return reduce(xp, nll_probs(xp, logp, t, ax, w, smoothing), reduction, rows(x.shape, ax))


def bce_core(xp, x, y, w, *, reduction):
    pos = x > 0
    less = x < 1
    # Safe arguments where a log is not taken, so neither log(0) = -inf nor its infinite gradient
    # reaches autograd; then clamp at -100 as PyTorch does. (clip's bound is the literal: under
    # torch.compile(dynamic=True) a float global becomes symbolic, and array_api_compat's clip tests
    # its bound with math.isnan, which would break the graph.)
    log_p = xp.clip(xp.where(pos, xp.log(xp.where(pos, x, 1.0)), LOG_CLAMP), min=-100.0)
    # log(1 - p) as log1p(-p): exact for small p, and 1 - p is exact for p >= 1/2 anyway.
    log_q = xp.clip(xp.where(less, xp.log1p(-xp.where(less, x, 0.0)), LOG_CLAMP), min=-100.0)
    loss = -(y * log_p + (1.0 - y) * log_q)
    if w is not None:
        loss = loss * w
    return reduce(xp, loss, reduction)


def abs_log_sigmoid(xp, x):
    """``(|x|, log sigmoid(|x|), x > 0)``: the pieces every binary loss on logits is built from.

    ``log sigmoid(|x|) = -log(1 + exp(-|x|))`` lies in ``[-log 2, 0]`` and keeps full relative accuracy
    (it is :func:`sigmax.log_sigmoid`); ``log sigmoid(-|x|) = log sigmoid(|x|) - |x|`` adds two terms of
    the same sign, so neither ``log sigmoid(x)`` nor ``log sigmoid(-x) = log(1 - sigmoid(x))`` cancels.
    ``|x|`` is written as a ``where`` so that its derivative at 0 is -1 and the loss's gradient at
    ``x = 0`` is exactly ``sigmoid(0) - y`` (``abs`` has derivative 0 there).
    """
    pos = x > 0
    a = xp.where(pos, x, -x)
    return a, log_sigmoid(a), pos


def bce_logits_core(xp, x, y, w, pw, *, reduction):
    a, ls_a, pos = abs_log_sigmoid(xp, x)
    # -(p_w y ls(x) + (1-y) ls(-x)) = c |x| - (1 + (p_w - 1) y) ls(|x|), c = 1-y (x > 0) or p_w y (x <= 0);
    # c |x| is 0 where c = 0, also at |x| = inf (the limit), by the safe-where idiom (no 0 * inf, in the
    # value or in the gradient)
    py = y if pw is None else pw * y
    c = xp.where(pos, 1.0 - y, py)
    lin = c * xp.where(c == 0, 0.0, a)
    loss = lin - ls_a if pw is None else lin - (py + (1.0 - y)) * ls_a
    if w is not None:
        loss = loss * w
    return reduce(xp, loss, reduction)


def sigmoid_focal_core(xp, x, y, *, alpha, gamma, reduction):
    g = gamma
    a, ls_a, pos = abs_log_sigmoid(xp, x)
    c = xp.where(pos, 1.0 - y, y)
    ce = c * xp.where(c == 0, 0.0, a) - ls_a  # binary cross-entropy with logits, see bce_logits_core
    loss = ce
    if g != 0:
        ls_b = ls_a - a  # log sigmoid(-|x|): both terms <= 0, no cancellation
        ls_pos = xp.where(pos, ls_a, ls_b)  # log sigmoid(x)
        ls_neg = xp.where(pos, ls_b, ls_a)  # log sigmoid(-x) = log(1 - sigmoid(x))
        one_minus_pt = y * xp.exp(ls_neg) + (1.0 - y) * xp.exp(ls_pos)  # no 1 - p_t cancellation
        loss = loss * one_minus_pt**g
    if alpha >= 0:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return reduce(xp, loss, reduction)


def focal_probs_core(xp, x, t, a, *, ax, gamma, reduction):
    logp = log_softmax(x, axis=ax)  # the one log-softmax
    term = t * xp.where(t == 0, 0.0, logp)  # 0 * log 0 = 0 (masked classes)
    if gamma != 0:
        term = term * (-xp.expm1(logp)) ** gamma  # 1 - p = -expm1(log p): exact near p = 1
    if a is not None:
        term = term * along(xp, a, x.ndim, ax)
    return reduce(xp, -xp.sum(term, axis=ax), reduction, rows(x.shape, ax))


def focal_indices_core(xp, x, t, a, *, ax, ignore_index, gamma, reduction):
    logp = log_softmax(x, axis=ax)  # the one log-softmax
    valid = t != ignore_index
    safe = xp.where(valid, t, xp.zeros_like(t))  # ignored entries gather class 0, then get masked out
    lp = pick(xp, logp, safe, ax)
    per = -lp
    if gamma != 0:
        per = per * (-xp.expm1(lp)) ** gamma  # 1 - p_t = -expm1(log p_t): exact near p_t = 1
    if a is not None:
        per = per * xp.reshape(xp.take(a, xp.reshape(safe, (-1,)), axis=0), tuple(safe.shape))
    per = xp.where(valid, per, 0.0)
    return reduce(xp, per, reduction, xp.sum(xp.astype(valid, x.dtype)))


# --------------------------------------------------------------------------------------------
# the dispatch tables (docs/ARCHITECTURE.md, "Dispatch"): every operation takes (xp, *arrays, **options)
# --------------------------------------------------------------------------------------------


def _jax_row(core):
    def impl(xp, *arrays, **static):
        if not is_jax(xp):
            return decline("not a JAX array")
        return _jax_jitted(core, tuple(sorted(static.items())))(*arrays)

    return impl


def _generic_row(core):
    def impl(xp, *arrays, **static):
        return core(xp, *arrays, **static)

    return impl


def _kernel_rows(op, kernel):
    def numpy_kernel(xp, *arrays, **static):
        return kernel("numpy", *arrays, **static)

    def torch_kernel(xp, *arrays, **static):
        return kernel("torch", *arrays, **static)

    _dispatch.register(op, "numpy-kernel", numpy_kernel)
    _dispatch.register(op, "torch-cpu-kernel", torch_kernel)


def _bce_logits_generic(xp, x, y, w, pw, *, reduction):
    if is_torch(xp):
        from . import _losses_torch  # one autograd node with the analytic backward, where it may run

        out = _losses_torch.bce_with_logits_torch(x, y, w, pw, reduction)
        if out is not None:
            return out
    return bce_logits_core(xp, x, y, w, pw, reduction=reduction)


_kernel_rows("cross_entropy_indices", _kernel_ops.cross_entropy_indices)
_kernel_rows("bce_with_logits", _kernel_ops.bce_with_logits)
for _op, _core in (("cross_entropy_indices", ce_indices_core), ("cross_entropy_probs", ce_probs_core),
                   ("binary_cross_entropy", bce_core), ("bce_with_logits", bce_logits_core),
                   ("sigmoid_focal_loss", sigmoid_focal_core), ("softmax_focal_indices", focal_indices_core),
                   ("softmax_focal_probs", focal_probs_core)):
    _dispatch.register(_op, "jax", _jax_row(_core))
    _dispatch.register(_op, "generic", _bce_logits_generic if _core is bce_logits_core else _generic_row(_core))
del _op, _core
