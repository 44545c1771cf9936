"""The ``jax`` rows of ``cross_entropy_indices`` and ``bce_with_logits``: optax's speed, sigmax's values.

The generic cores of :mod:`sigmax._losses_core`, compiled as they are, cost JAX several extra passes over
the logits under ``jax.jit``: the edge handling of ``log_softmax`` (``isinf`` / ``where`` rewrites of
every entry, a count of ties), the full ``log p`` array, and autodiff of all of it, whose residuals
(``exp(x - m)``, masks) XLA writes out and reads back. Here the two losses are written per row instead:

* **cross-entropy on the CPU** (class indices on the last axis, float32/float64, no label smoothing): the
  C row kernel that NumPy arrays take, called inside the jitted program through XLA's FFI
  (:mod:`sigmax._kernels._jax`): one pass over the logits on all the kernels' threads, the gradient
  written in the pass that forms the loss. :func:`jax.lax.platform_dependent` picks it when the program
  is lowered for the CPU; on GPUs and TPUs, and for the other calls, the rows below run.
* **cross-entropy** (class indices): a :func:`jax.custom_jvp` function of the logits gives, per row,
  ``-log p[y]`` and (with label smoothing) ``-sum_c v_c log p_c``. Without derivatives it is one pass
  over the logits: shifted by the target's logit, ``-log p[y] = log1p(r)`` with ``r = sum_{c != y}
  exp(x_c - x_y)`` (the target's own term left out, so the tiny loss of a confident row keeps its digits
  where ``log(sum exp)`` rounds it to 0, as in ``sigmax.log_softmax``); no pass for the max. Where that
  shift overflows (a loss above ~88 in float32) the batch is shifted by the row max instead. Under
  differentiation the forward pass is optax's (the max, then ``e = exp(x - m)`` written once, off the
  target, and summed) and the derivative ``softmax - onehot = e / sum e - onehot`` is formed in one pass
  over ``e`` (a :func:`jax.checkpoint` keeps ``e`` as the one residual: no scatter, no second exp);
  forward mode, ``jax.hessian`` and ``vmap`` work as for any JAX function. Rows whose max is infinite
  (all ``-inf``, or holding ``+inf``) or that hold NaN make the batch take the exact ``sigmax.log_softmax``
  path for its values (one ``lax.cond`` on a per-row test), so values and gradients there are the
  generic path's: the loss of an all ``-inf`` row is ``inf`` (0 if ignored), a ``+inf`` target among
  ``k`` ``+inf`` logits costs ``log k``, and those rows' gradient is 0.
* **binary cross-entropy with logits**: ``c |x| + log1p(exp(-|x|))`` (``c = 1 - y`` for ``x > 0``, else
  ``y``: terms of one sign, no cancellation for soft targets), as arithmetic only for the reductions (one
  fused pass), with the exact form (the limits at infinite logits: ``[0, inf, 0, inf]`` for logits
  ``[inf, inf, -inf, -inf]`` against ``[1, 0, 0, 1]``) taken by a ``lax.cond`` when the sum is not
  finite; the analytic derivatives ``sigmoid(x) - y`` (logits) and ``-x`` (target), recomputed from
  ``x`` and ``y`` in the backward pass.

On XLA's CPU backend the reductions run in YNNPACK, which fuses arithmetic but not selects: the
"not the target" mask of the forward pass is therefore ``min(|c - y|, 1)`` (on GPUs a ``where``).
``weight``, ``ignore_index``, ``label_smoothing`` and the reductions are per-row arithmetic around these
cores, with PyTorch's semantics. Calls these rows do not cover (``nll_loss``'s log-probability input,
empty arrays, ``pos_weight``) run the previous ``jax`` row (the generic core under ``jax.jit``).
The value checks stay outside: they run in :mod:`sigmax.losses` before the call, and step aside on
traced values.
"""

from __future__ import annotations

import functools

from . import _dispatch
from ._array import is_jax
from ._dispatch import decline
from ._losses_core import along
from .activations import log_softmax

__all__ = ["bce_with_logits_jax", "cross_entropy_indices_jax"]

# the rows registered before this module (the generic cores under jax.jit): the fallback
_PREVIOUS = {op: dict(_dispatch.table(op))["jax"] for op in ("cross_entropy_indices", "bce_with_logits")}


def cross_entropy_indices_jax(xp, x, t, w, *, ax, ignore_index, smoothing, reduction, from_logits):
    if not is_jax(xp):
        return decline("not a JAX array")
    if not from_logits or 0 in tuple(x.shape):
        return _PREVIOUS["cross_entropy_indices"](xp, x, t, w, ax=ax, ignore_index=ignore_index,
                                                  smoothing=smoothing, reduction=reduction,
                                                  from_logits=from_logits)
    return _ce_jitted(ax, ignore_index, float(smoothing), reduction, _kernels_on())(x, t, w)


def bce_with_logits_jax(xp, x, y, w, pw, *, reduction):
    if not is_jax(xp):
        return decline("not a JAX array")
    if pw is not None or 0 in tuple(x.shape):
        return _PREVIOUS["bce_with_logits"](xp, x, y, w, pw, reduction=reduction)
    return _bce_jitted(reduction)(x, y, w)


# --------------------------------------------------------------------------------------------
# cross-entropy with class indices
# --------------------------------------------------------------------------------------------


def _kernels_on() -> bool:
    from ._kernels import _switches

    return _switches.STATE.on


@functools.lru_cache(maxsize=256)
def _ce_jitted(ax, ignore_index, smoothing, reduction, kernels):
    import jax

    return jax.jit(functools.partial(_ce_loss, ax=ax, ignore_index=ignore_index, smoothing=smoothing,
                                     reduction=reduction, kernels=kernels))


def _ce_loss(x, t, w, *, ax, ignore_index, smoothing, reduction, kernels=False):
    import jax.numpy as jnp
    from jax import lax

    valid = t != ignore_index
    safe = jnp.where(valid, t, jnp.zeros_like(t))  # ignored entries read class 0, then get masked out
    smooth = smoothing > 0
    rows = _ce_rows(ax, smooth, w is not None)
    v = w if (smooth and w is not None) else jnp.zeros((), x.dtype)
    if kernels and not smooth and _kernels_jax().applies(x, ax):
        # on the CPU the C row kernel through XLA's FFI (sigmax._kernels._jax); elsewhere (GPU, TPU)
        # the JAX rows below. The platform is chosen when the program is lowered.
        fast = _kernels_jax().ce_rows()
        out = (lax.platform_dependent(x, safe, v, cpu=lambda a, b, c: fast(a, b)[0],
                                      default=lambda a, b, c: rows(a, b, c)[0]),)
    else:
        out = rows(x, safe, v)
    nll = out[0]
    if w is None:
        per = nll
        denom = jnp.sum(valid.astype(x.dtype))
    else:
        wn = jnp.where(valid, jnp.take(w, safe, axis=0), 0.0)
        per = wn * nll
        denom = jnp.sum(wn)
    if smooth:
        per = (1.0 - smoothing) * per + (smoothing / x.shape[ax]) * out[1]
    per = jnp.where(valid, per, 0.0)  # ignored entries contribute exactly 0 (even where log p is -inf)
    if reduction == "none":
        return per
    total = jnp.sum(per)
    return total if reduction == "sum" else total / denom  # nothing kept: 0 / 0 = NaN, as in PyTorch


@functools.lru_cache(maxsize=64)
def _ce_rows(ax, smooth, weighted):
    """``rows(x, y, v) -> (nll,)`` or ``(nll, sm)``: ``nll = -log softmax(x)[y]`` per row and
    ``sm = -sum_c v_c log softmax(x)_c`` (``v = 1`` unless ``weighted``), along axis ``ax``."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.custom_derivatives import SymbolicZero

    def hot(x, y):
        classes = lax.broadcasted_iota(y.dtype, tuple(1 if i != ax else x.shape[ax] for i in range(x.ndim)),
                                       ax)
        return jnp.expand_dims(y, ax) == classes

    def not_hot(x, y):
        """1 off the target class, 0 on it (as x's dtype), from arithmetic only."""
        c = x.shape[ax]
        if c >= 2 ** 24 or x.dtype == jnp.float16:  # class numbers would round
            return (~hot(x, y)).astype(x.dtype)
        classes = lax.broadcasted_iota(x.dtype, tuple(1 if i != ax else c for i in range(x.ndim)), ax)
        return jnp.minimum(jnp.abs(classes - jnp.expand_dims(y, ax).astype(x.dtype)), 1.0)

    def picked(x, y):
        return jnp.take_along_axis(x, jnp.expand_dims(y, ax), axis=ax)

    def sum_others(e, y):
        """``sum_{c != y} e_c`` per row (keepdims): the one pass over the logits."""
        if _select_fuses(e):
            return jnp.sum(jnp.where(hot(e, y), 0.0, e), axis=ax, keepdims=True)
        # XLA's CPU backend fuses only arithmetic into a large reduction (a select would write the
        # array out): the mask min(|c - y|, 1) is 0 at y and 1 elsewhere
        return jnp.sum(e * not_hot(e, y), axis=ax, keepdims=True)

    def smoothing_term(x, v, s, l1):
        # -sum_c v_c log p_c = sum_c v_c (s - x_c) + (sum_c v_c) log1p(r), log p_c = x_c - s - log1p(r)
        if weighted:
            return jnp.sum(along(jnp, v, x.ndim, ax) * (s - x), axis=ax) + jnp.sum(v) * jnp.squeeze(l1, ax)
        return jnp.sum(s - x, axis=ax) + x.shape[ax] * jnp.squeeze(l1, ax)

    def by_max(x, y, v):
        """The values shifted by the row max (finite wherever the max is), and the softmax's pieces:
        ``e = exp(x - m)`` off the target (0 on it), ``p_y`` and ``1 / sum_c exp(x_c - m)``."""
        m = jnp.max(x, axis=ax, keepdims=True)
        xt = picked(x, y)
        e0 = jnp.where(hot(x, y), 0.0, jnp.exp(x - m))
        # r = sum_{c != y} e_c + (e_y - 1) = sum_c e_c - 1, exactly the other classes' sum when y holds
        # the max (expm1(0) = 0): log1p(r) keeps the tiny loss of a confident row (log(sum e) rounds it)
        r = jnp.sum(e0, axis=ax, keepdims=True) + jnp.expm1(xt - m)
        l1 = jnp.log1p(r)
        outs = (jnp.squeeze((m - xt) + l1, ax),)
        if smooth:
            outs += (smoothing_term(x, v, m, l1),)
        # a row whose max is +-inf (or that holds NaN) gives r = NaN; then, and only then, the whole batch
        # takes the exact path for its values (one lax.cond on a per-row test: no extra pass)
        outs = lax.cond(jnp.any(jnp.isnan(r)), lambda ops: exact(*ops[0]), lambda ops: ops[1],
                        ((x, y, v), outs))
        inv = 1.0 / (1.0 + r)
        return outs, (e0, inv, jnp.exp(xt - m) * inv, jnp.isinf(m))

    def by_target(x, y, v):
        """The values alone, shifted by the target's logit: no pass for the max. ``exp(x - x_y)``
        overflows only where the loss exceeds ~88 (float32); then the batch is shifted by the max."""
        xt = picked(x, y)
        r = sum_others(jnp.exp(x - xt), y)  # the target's own term is exp(0) = 1: the loss is log1p(r)
        l1 = jnp.log1p(r)
        outs = (jnp.squeeze(l1, ax),)
        if smooth:
            outs += (smoothing_term(x, v, xt, l1),)
        return lax.cond(jnp.all(jnp.isfinite(r)), lambda ops: ops[1], lambda ops: by_max(*ops[0])[0],
                        ((x, y, v), outs))

    def exact(x, y, v):
        # some row's max is +-inf: sigmax.log_softmax's edge path gives the generic row's values
        logp = log_softmax(x, axis=ax)
        outs = (-jnp.squeeze(picked(logp, y), ax),)
        if smooth:
            outs += (-jnp.sum(logp * along(jnp, v, x.ndim, ax) if weighted else logp, axis=ax),)
        return outs

    def tangent(y, v, e0, inv, pt, dead, dx):
        # d nll = sum_c (p_c - [c == y]) dx_c, d sm = sum_c (V p_c - v_c) dx_c, p = e / sum e: linear in
        # dx. The checkpoint keeps e (written by the forward pass anyway, for its sum) as the one
        # residual, so reverse mode forms the gradient in one pass over it, with no further exp
        h = hot(e0, y)
        g = jnp.where(dead, 0.0, jnp.where(h, pt - 1.0, e0 * inv))
        outs = (jnp.sum(g * dx, axis=ax),)
        if smooth:
            p = jnp.where(h, pt, e0 * inv)
            if weighted:
                gs = jnp.where(dead, 0.0, jnp.sum(v) * p - along(jnp, v, e0.ndim, ax))
            else:
                gs = jnp.where(dead, 0.0, e0.shape[ax] * p - 1.0)
            outs += (jnp.sum(gs * dx, axis=ax),)
        return outs

    lin = jax.checkpoint(tangent, prevent_cse=False)

    @jax.custom_jvp
    def rows(x, y, v):
        return by_target(x, y, v)

    @functools.partial(rows.defjvp, symbolic_zeros=True)
    def rows_jvp(primals, tangents):
        x, y, v = primals
        dx, _, dv = tangents
        outs, res = by_max(x, y, v)
        if type(dx) is SymbolicZero:
            touts = tuple(jnp.zeros_like(o) for o in outs)
        else:
            touts = lin(y, v, *res, dx)
        if smooth and weighted and type(dv) is not SymbolicZero:
            # the smoothing term's derivative in its class weights: -sum_c dv_c log p_c
            logp = log_softmax(x, axis=ax)
            touts = (touts[0], touts[1] - jnp.sum(logp * along(jnp, dv, x.ndim, ax), axis=ax))
        return outs, touts

    return rows


def _kernels_jax():
    from ._kernels import _jax

    return _jax


def _select_fuses(a) -> bool:
    """Whether a ``where`` feeding a reduction fuses with it: on GPUs it does; XLA's CPU backend hands
    reductions to YNNPACK, which fuses arithmetic only, so a select there writes the whole array out and
    reads it back (and above glibc's mmap threshold, 32 MiB, each call faults the buffer's pages in)."""
    import jax

    return jax.default_backend() != "cpu"


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _bce_jitted(reduction):
    import jax

    return jax.jit(functools.partial(_bce_loss, reduction=reduction))


def _bce_loss(x, y, w, *, reduction):
    exact, total = _bce_functions(w is not None)
    if reduction == "none":
        loss = exact(x, y)  # one elementwise pass either way
        return loss if w is None else loss * w
    s = total(x, y, w)
    return s if reduction == "sum" else s / float(x.size)  # no entries: 0 / 0 = NaN, as in PyTorch


@functools.lru_cache(maxsize=4)
def _bce_functions(weighted):
    """``(exact, total)``: ``exact(x, y)`` is ``-(y log sigmoid(x) + (1 - y) log sigmoid(-x))``
    elementwise, with the limits at infinite logits; ``total(x, y, w)`` its (``w``-weighted) sum. Both
    have the analytic derivatives ``sigmoid(x) - y`` (logits) and ``-x`` (target), computed in the
    backward pass from ``x`` and ``y`` (nothing of the input's size is stored in between)."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.custom_derivatives import SymbolicZero

    def exact_value(x, y):
        pos = x > 0
        a = jnp.where(pos, x, -x)  # |x|
        c = jnp.where(pos, 1.0 - y, y)
        # c |x| is 0 where c = 0, also at |x| = inf (the limit); log1p(exp(-|x|)) = -log sigmoid(|x|)
        return c * jnp.where(c == 0, 0.0, a) + jnp.log1p(jnp.exp(-a))

    def fast_value(x, y):
        # c |x| = max(x, 0) (1 - y) + max(-x, 0) y: terms >= 0, no cancellation (PyTorch's
        # max(x, 0) - x y rounds for soft targets); arithmetic only, so XLA's CPU backend fuses it into
        # the reduction. Infinite logits make it inf or NaN (0 * inf).
        return jnp.maximum(x, 0.0) * (1.0 - y) + jnp.maximum(-x, 0.0) * y + jnp.log1p(jnp.exp(-jnp.abs(x)))

    def sigmoid_minus(x, y):
        pos = x > 0
        e = jnp.exp(-jnp.where(pos, x, -x))  # |x| as a where: the second derivative at 0 is sigmoid'(0)
        return jnp.where(pos, 1.0, e) / (1.0 + e) - y  # sigmoid(x) - y, no overflow, exact limits

    def tangent(x, y, w, dx, dy, dw, reduce):
        t = 0.0
        if dx is not None:
            t = t + sigmoid_minus(x, y) * dx
        if dy is not None:
            t = t - x * dy  # d/dy of c |x|
        if w is not None:
            t = t * w
        if dw is not None:
            t = t + exact_value(x, y) * dw
        return jnp.sum(t) if reduce else t

    lin = jax.checkpoint(tangent, static_argnums=(6,))

    def tangents(ts):
        return tuple(None if type(d) is SymbolicZero else d for d in ts)

    @jax.custom_jvp
    def exact(x, y):
        return exact_value(x, y)

    @functools.partial(exact.defjvp, symbolic_zeros=True)
    def exact_jvp(primals, ts):
        x, y = primals
        dx, dy = tangents(ts)
        return exact_value(x, y), lin(x, y, None, dx, dy, None, False)

    def total_value(x, y, w):
        def f(value):
            loss = value(x, y)
            return jnp.sum(loss if w is None else loss * w)

        # the fused arithmetic form; where it is not finite (infinite logits, NaN), the exact one
        s = f(fast_value)
        return lax.cond(jnp.isfinite(s), lambda: s, lambda: f(exact_value))

    @jax.custom_jvp
    def total(x, y, w):
        return total_value(x, y, w)

    @functools.partial(total.defjvp, symbolic_zeros=True)
    def total_jvp(primals, ts):
        x, y, w = primals
        dx, dy, dw = tangents(ts)
        return total_value(x, y, w), lin(x, y, w, dx, dy, dw, True)

    return exact, total


_dispatch.register("cross_entropy_indices", "jax", cross_entropy_indices_jax)
_dispatch.register("bce_with_logits", "jax", bce_with_logits_jax)
