r"""The sigmoid family, the softmax family, log-sum-exp and the two-class conversions.

Each primitive exists once, here (docs/ARCHITECTURE.md); losses, calibration, metrics, the CLI and
the torch extensions call these. Every function takes NumPy arrays, PyTorch tensors (autograd flows
through, devices are kept), JAX arrays or any Array-API array, and lists or numbers (which become
NumPy). Results keep the input's array type, device and floating dtype; float16 and bfloat16 are
computed in float32; integer input is promoted to the library's default float.

Every numerical trick is commented on the line that uses it.

Speed: sigmoid, log_sigmoid, softplus, softmax, log_softmax and logsumexp are one dispatch step each,
:func:`sigmax._dispatch.call` (docs/ARCHITECTURE.md, "Dispatch"): the ``numpy-kernel`` and
``torch-cpu-kernel`` rows (compiled C kernels for float32/float64 NumPy arrays and CPU torch tensors,
built at install time, optional) run where they apply; when they decline (JAX, CUDA, half precision,
masks, temperatures, autograd transforms, ...) the ``generic`` row, the Array-API code below, runs.
``SIGMAX_TRACE_DISPATCH=1`` prints which ran and why. The generic code is the reference: the kernels
give the same results within the tested tolerances. These six functions also take ``out=``, an array
of the result's library, shape and dtype to write into (no fresh allocation when the kernel runs; not
with autograd, as in PyTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import (
    as_mask,
    check_temperature,
    device_of,
    empty_reduction,
    finish,
    is_jax,
    like,
    normalize_axis,
    prepare,
    reduced_shape,
    resolve_axis,
)
from ._array import quiet as _quiet
from ._dispatch import call, is_traced, register
from ._kernels import write_out  # (importing _kernels registers the kernel rows of the tables)

__all__ = [
    "sigmoid",
    "log_sigmoid",
    "logit",
    "softplus",
    "softmax",
    "log_softmax",
    "logsumexp",
    "binary_to_two_class",
    "two_class_to_binary",
    "log1mexp",
]

_INF = float("inf")



# --------------------------------------------------------------------------------------------
# sigmoid family
# --------------------------------------------------------------------------------------------


def _neg_abs(xp, x):
    # -|x| written as a `where`, so the derivative at x == 0 comes from the x branch (+1) and
    # softplus'(0) = log_sigmoid'(0) = 1/2 exactly (abs() has derivative 0 at 0 in autograd).
    return xp.where(x > 0, -x, x)


def _log1p_exp_neg_abs(xp, x):
    # log(1 + exp(-|x|)): the argument of exp is <= 0, so exp never overflows, and log1p keeps
    # full relative accuracy when exp(-|x|) is tiny (log(1 + tiny) would round to 0).
    return xp.log1p(xp.exp(_neg_abs(xp, x)))


@_quiet
def sigmoid(x: Any, *, out: Any = None) -> Any:
    r"""The logistic sigmoid, elementwise.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}}

    Args:
        x: logits, any shape.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch). Returned.

    Returns:
        Probabilities in [0, 1], same shape, array type, device and floating dtype as ``x``.

    Note:
        Never overflows and never underflows spuriously: ``sigmoid(-100)`` in float32 is the
        correctly rounded subnormal ``3.8e-44`` (``torch.sigmoid`` returns 0). ``sigmoid(inf) == 1``,
        ``sigmoid(-inf) == 0``, NaN stays NaN.

    Example:
        >>> import sigmax
        >>> sigmax.sigmoid([-0.3, 0.0, 0.1, 2.0]).round(4)
        array([0.4256, 0.5   , 0.525 , 0.8808])
        >>> float(sigmax.sigmoid(np.float32(-100)))
        3.783505853677006e-44
    """
    return call("sigmoid", x, out)  # the C kernel where it applies (contiguous input), else _sigmoid: the same
    # formula; their exp implementations (libm, NumPy's SIMD loop) may differ in the last bit


@register("sigmoid", "generic")
def _sigmoid(x: Any, out: Any = None) -> Any:
    p = prepare(x)
    xp, xv = p.xp, p.x
    e = xp.exp(_neg_abs(xp, xv))  # exp(-|x|) <= 1: no overflow for either sign
    # x >= 0: 1 / (1 + e^-x); x < 0: e^x / (1 + e^x). The second form keeps tiny results exact
    # instead of computing 1 / (1 + huge) = 0.
    return write_out(finish(p, xp.where(xv > 0, 1.0, e) / (1.0 + e)), out, x)


@_quiet
def log_sigmoid(x: Any, *, out: Any = None) -> Any:
    r"""The log of the sigmoid, elementwise, without forming the sigmoid.

    .. math:: \log\sigma(x) = -\operatorname{softplus}(-x) = \min(x, 0) - \log(1 + e^{-|x|})

    Use it for ``log(p)`` of a binary logit; ``log(1 - p)`` is ``log_sigmoid(-x)``.

    Args:
        x: logits, any shape.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch). Returned.

    Returns:
        Values in (-inf, 0], same shape, array type, device and dtype as ``x``.

    Note:
        ``log_sigmoid(-1000) == -1000`` exactly (``log(sigmoid(-1000))`` is ``-inf``);
        ``log_sigmoid(inf) == 0``; ``log_sigmoid(-inf) == -inf``. The gradient at 0 is 1/2.

    Example:
        >>> import sigmax
        >>> sigmax.log_sigmoid([-1000.0, -1.0, 0.0, 40.0])
        array([-1.00000000e+03, -1.31326169e+00, -6.93147181e-01, -4.24835426e-18])
    """
    return call("log_sigmoid", x, out)


@register("log_sigmoid", "generic")
def _log_sigmoid(x: Any, out: Any = None) -> Any:
    p = prepare(x)
    xp, xv = p.xp, p.x
    # min(x, 0) as a where (gradient 1 at x == 0, matching _neg_abs); both terms are <= 0, so the
    # subtraction below never cancels.
    return write_out(finish(p, xp.where(xv > 0, 0.0, xv) - _log1p_exp_neg_abs(xp, xv)), out, x)


@_quiet
def softplus(x: Any, *, out: Any = None) -> Any:
    r"""The softplus function, elementwise: a smooth ``max(x, 0)``.

    .. math:: \operatorname{softplus}(x) = \log(1 + e^{x}) = \max(x, 0) + \log(1 + e^{-|x|})

    Args:
        x: any shape.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch). Returned.

    Returns:
        Values in [0, inf), same shape, array type, device and dtype as ``x``.

    Note:
        Exact for every finite ``x`` in every dtype: unlike ``torch.nn.functional.softplus`` there is
        no ``threshold`` above which ``x`` is returned unchanged. ``softplus(-inf) == 0``.

    Example:
        >>> import sigmax
        >>> sigmax.softplus([-50.0, 0.0, 1.0, 50.0])
        array([1.92874985e-22, 6.93147181e-01, 1.31326169e+00, 5.00000000e+01])
    """
    return call("softplus", x, out)


@register("softplus", "generic")
def _softplus(x: Any, out: Any = None) -> Any:
    p = prepare(x)
    xp, xv = p.xp, p.x
    # max(x, 0) + log1p(exp(-|x|)): both terms >= 0, exp never overflows.
    return write_out(finish(p, xp.where(xv > 0, xv, 0.0) + _log1p_exp_neg_abs(xp, xv)), out, x)


@_quiet
def logit(p: Any, eps: float | None = None) -> Any:
    r"""The log-odds of a probability, the inverse of :func:`sigmoid`, elementwise.

    .. math:: \operatorname{logit}(p) = \log\frac{p}{1 - p}

    Args:
        p: probabilities in [0, 1], any shape.
        eps: if given, ``p`` is first clamped to ``[eps, 1 - eps]`` (as ``torch.logit`` does), so
            the result is finite. Must be in [0, 0.5).

    Returns:
        Logits, same shape, array type, device and dtype as ``p``. ``logit(0) = -inf``,
        ``logit(1) = inf``, values outside [0, 1] give NaN.

    Note:
        Accurate everywhere: near 0 and near 1 through ``log(p / (1 - p))`` (``1 - p`` is exact for
        p >= 1/2), near 1/2 through ``log1p(2 (p - 1/2) / (1 - p))``, which keeps the relative accuracy of
        the small result (SciPy's ``special/_logit.h`` uses the same split).

    Example:
        >>> import sigmax
        >>> sigmax.logit([0.1, 0.5, 0.9]).round(6)
        array([-2.197225,  0.      ,  2.197225])
        >>> float(sigmax.logit(0.5 + 1e-12))
        3.999911513119514e-12
    """
    if eps is not None:
        if not (isinstance(eps, (int, float)) and 0.0 <= float(eps) < 0.5):
            raise ValueError(f"eps must be a number in [0, 0.5), got {eps!r}")
    pp = prepare(p, name="p")
    xp, x = pp.xp, pp.x
    if eps is not None and eps > 0:
        x = xp.clip(x, float(eps), 1.0 - float(eps))  # torch.logit's eps: clamp, then log-odds
    mid = (x > 0.3) & (x < 0.65)
    # Each branch gets a safe input where it is not selected, so neither produces inf/NaN that
    # autograd would multiply by the zero gradient of the unselected branch.
    xm = xp.where(mid, x, 0.5)
    xf = xp.where(mid, 0.25, x)
    near_half = xp.log1p(2.0 * (xm - 0.5) / (1.0 - xm))  # 2(p - 1/2) is exact near 1/2: no cancellation
    far = xp.log(xf / (1.0 - xf))  # 1 - p is exact for p >= 1/2 (Sterbenz); tiny p keeps its digits
    return finish(pp, xp.where(mid, near_half, far))


_LN2 = 0.6931471805599453  # log(2)


def _log1mexp(xp, x):
    """``log(1 - exp(x))`` on an array of ``xp`` already in its compute dtype (see :func:`log1mexp`)."""
    near = x > -_LN2
    # safe-where: each branch sees only arguments it is accurate (and finite) for, so neither the
    # discarded branch nor its gradient produces a NaN or inf that `where` would then have to drop.
    a = xp.where(near, x, -1.0)
    b = xp.where(near, -1.0, x)
    # near 0, 1 - exp(x) cancels: -expm1(x) keeps its digits; below -ln 2, exp(x) < 1/2 and
    # log1p(-exp(x)) keeps the digits of a tiny exp(x) that log(1 - tiny) would round away.
    return xp.where(near, xp.log(-xp.expm1(a)), xp.log1p(-xp.exp(b)))


@_quiet
def log1mexp(x: Any) -> Any:
    r"""``log(1 - exp(x))`` for ``x <= 0``, accurately: the log of a complementary probability.

    .. math:: \operatorname{log1mexp}(x) = \log(1 - e^{x}) =
              \begin{cases} \log(-\operatorname{expm1}(x)) & x > -\ln 2 \\
                             \operatorname{log1p}(-e^{x}) & x \le -\ln 2 \end{cases}

    Given a log-probability ``log p`` it returns ``log(1 - p)`` without forming ``1 - p`` (which
    cancels near ``p = 1`` and rounds to 1 for tiny ``p``).

    Args:
        x: values ``<= 0`` (log-probabilities), any shape; NumPy, PyTorch, JAX or any Array-API
            array, a list or a number.

    Returns:
        Same shape, array type, device and floating dtype as ``x`` (half precision computed in float32).

    Note:
        ``log1mexp(0) == -inf``, ``log1mexp(-inf) == 0`` (gradient 0), ``x > 0`` gives NaN (the log of
        a negative number), NaN stays NaN.

    Reference:
        M. Maechler, "Accurately Computing log(1 - exp(-|a|))", the Rmpfr package vignette (2012).

    Example:
        >>> import sigmax.activations as act
        >>> act.log1mexp([-1e-20, -0.5, -50.0])
        array([-4.60517019e+01, -9.32752130e-01, -1.92874985e-22])
        >>> float(act.log1mexp(0.0)), float(act.log1mexp(-np.inf))
        (-inf, 0.0)
    """
    p = prepare(x)
    return finish(p, _log1mexp(p.xp, p.x))


# --------------------------------------------------------------------------------------------
# softmax family and log-sum-exp
# --------------------------------------------------------------------------------------------


def _any_nonfinite(xp, m) -> bool:
    """Whether any reduced maximum is +-inf or NaN: then the (rarer) exact edge path runs.

    On abstract values (JAX tracers; torch under ``torch.compile``, ``torch.func.vmap`` / ``grad``) a
    data-dependent branch is impossible, so they always take the edge path (it is branch-free and gives
    the same results on finite input); so does JAX outside tracing (no device-to-host sync).
    """
    if is_jax(xp) or is_traced(m):
        return True
    return bool(xp.any(~xp.isfinite(m)))


def _shift(xp, x, m, edge: bool):
    """``(z, m, empty)``: ``z = x - m`` shifted by the row maximum ``m`` so ``exp(z) <= 1``.

    On the edge path, rows containing ``+inf`` are replaced by their limit (0 at the ``+inf``
    entries, ``-inf`` elsewhere: the mass is shared equally among the ``+inf`` entries), and rows
    whose entries are all ``-inf`` are shifted by 0 instead of ``-inf`` (``-inf - -inf`` is NaN).
    ``empty`` marks those all-``-inf`` rows (``None`` off the edge path).
    """
    if not edge:
        return x - m, m, None  # shift by the max: exp(x - m) <= 1 never overflows
    pos_inf = m == _INF
    # +inf in a row: the limit of softmax puts equal mass on the +inf entries, none elsewhere.
    # Safe-where: -inf is produced only in rows that hold +inf (never an all -inf temporary that a
    # `where` then discards, which trips jax_debug_infs on finite input).
    x = xp.where(pos_inf & (x != _INF), -_INF, xp.where(pos_inf, 0.0, x))
    empty = m == -_INF
    # An all -inf row (or all masked) is shifted by 0, keeping exp(z) = 0 and its gradient 0;
    # +inf rows (now 0 / -inf) are shifted by 0 too; NaN rows stay NaN through x itself.
    m = xp.where(xp.isfinite(m), m, 0.0)
    return x - m, m, empty


def _row_max(xp, x, ax):
    """``max(x, axis=ax, keepdims=True)``, and ``-inf`` (the maximum of nothing) for a reduction over
    no entries, where NumPy, PyTorch and JAX raise. The check is shape inspection, O(1); the rest of
    the edge path then gives ``logsumexp = -inf`` and an empty softmax, with (empty) gradients."""
    if empty_reduction(x.shape, ax):
        return xp.full(reduced_shape(x.shape, ax), -_INF, dtype=x.dtype, device=device_of(x))
    return xp.max(x, axis=ax, keepdims=True)


def _log_sum_exp_shifted(xp, z, axis, empty=None):
    """``log(sum(exp(z)))`` for ``z = x - max(x)``, accurate also when the result is tiny.

    The maximum entries contribute exactly 1 each, so the sum is ``k + t`` with ``k`` ties and ``t``
    the rest. ``log1p(t + k - 1)`` keeps the digits of a small ``t`` that ``log(1 + t)`` would round
    away (``logsumexp([0, -50])`` is 1.9e-22, not 0; SciPy >= 1.15 does the same). Written as
    ``where(is_max, e - 1, e)`` the max entries keep their gradient ``e`` (so ties are exact too).
    """
    e = xp.exp(z)  # z <= 0: no overflow
    is_max = z == 0.0
    rest = xp.sum(xp.where(is_max, e - 1.0, e), axis=axis, keepdims=True)  # exact: e == 1 at the max
    k = xp.sum(xp.astype(is_max, z.dtype), axis=axis, keepdims=True)
    arg = rest + (k - 1.0)
    if empty is not None:
        # all -inf rows would give log1p(-1) = -inf, whose infinite derivative times the zero
        # gradient of the caller's `where` is NaN: give them a safe 0 here, callers put -inf.
        arg = xp.where(empty, 0.0, arg)
    return xp.log1p(arg)


def _prepare_rows(x, axis, dim, temperature, where, *, name="x"):
    """Shared argument handling of softmax / log_softmax: ``(p, xp, xv, ax, scalar)``.

    A 0-d ``x`` is one distribution over one entry (axis ``0``, ``-1``, ``None`` or ``()``, as in
    PyTorch and SciPy): it is computed as shape ``(1,)`` and ``scalar`` says to reshape back. The
    axis is checked after ``temperature`` and ``where`` have broadcast ``x``.
    """
    p = prepare(x, name=name)
    xp, xv = p.xp, p.x
    axis = resolve_axis(axis, dim)
    scalar = xv.ndim == 0
    if scalar:
        xv = xp.reshape(xv, (1,))
    t = check_temperature(xp, temperature, xv, values=not is_traced(temperature))  # no reads when traced
    if t is not None:
        xv = xv / t  # temperature scaling: softmax(x / T)
    mask = as_mask(xp, where, xv)
    if mask is not None:
        xv = xp.where(mask, xv, -_INF)  # masked entries take no mass: exp(-inf) = 0
    if scalar:
        if axis not in (0, -1, None, (), (0,), (-1,)) or isinstance(axis, bool):
            raise ValueError(f"axis={axis!r} is not valid for a 0-d (scalar) input; use 0, -1 or None "
                             "(one distribution over the single entry)")
        axis = 0
    ax = normalize_axis(axis, xv.ndim, allow_tuple=True, allow_none=True)
    return p, xp, xv, ax, scalar and tuple(xv.shape) == (1,)


@_quiet
def softmax(x: Any, axis: int = -1, *, temperature: Any = 1.0, where: Any = None,
            dim: int | None = None, out: Any = None) -> Any:
    r"""The softmax along ``axis``: one probability distribution per row.

    .. math:: \operatorname{softmax}(x)_i = \frac{e^{x_i / T}}{\sum_j e^{x_j / T}}
              = \frac{e^{x_i/T - m}}{\sum_j e^{x_j/T - m}}, \quad m = \max_j x_j / T

    Use it when exactly one class is true (multi-class); for many labels use :func:`sigmoid`.

    Args:
        x: logits.
        axis: the class axis (``dim=`` is accepted as an alias, as in PyTorch). Default: last. A
            tuple of axes, or ``None`` for all, makes one distribution over the joint axes (SciPy).
        temperature: divide the logits by ``T > 0`` first (a number, or an array broadcastable to
            ``x``, e.g. one temperature per class).
        where: boolean mask broadcastable to ``x``; ``False`` entries get probability 0 and the rest
            are renormalised.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch). Returned.

    Returns:
        Probabilities, same shape, array type, device and dtype as ``x``; rows sum to 1.

    Note:
        Shifting by the row maximum means no overflow: ``softmax([0.1, 0.2, 100])`` is exact. A row
        that is all ``-inf`` (or all masked) gives 0 everywhere, with zero gradient. ``+inf``
        entries share the row's mass equally (the limit). NaN anywhere makes its row NaN. A
        zero-size class axis gives an empty array of ``x``'s shape; a 0-d ``x`` gives 1 (PyTorch
        with ``dim=0`` or ``-1``, SciPy).

    Example:
        >>> import sigmax
        >>> sigmax.softmax([0.1, 0.2, 0.3]).round(4)
        array([0.3006, 0.3322, 0.3672])
        >>> sigmax.softmax([0.1, 0.2, 100.0])
        array([4.11131978e-44, 4.54371106e-44, 1.00000000e+00])
        >>> sigmax.softmax([[-0.3, -0.7], [1.1, -0.7]], axis=1).round(4)
        array([[0.5987, 0.4013],
               [0.8581, 0.1419]])
        >>> sigmax.softmax([[0.0, 0.0], [0.0, 0.0]], axis=None)   # one distribution over all entries
        array([[0.25, 0.25],
               [0.25, 0.25]])
    """
    return call("softmax", x, axis, dim, temperature, where, out)  # the C kernel where it applies


@register("softmax", "generic")
def _softmax(x: Any, axis: Any, dim: Any, temperature: Any, where: Any, out: Any) -> Any:
    p, xp, xv, ax, scalar = _prepare_rows(x, axis, dim, temperature, where)
    m = _row_max(xp, xv, ax)
    z, _, _ = _shift(xp, xv, m, _any_nonfinite(xp, m))
    e = xp.exp(z)
    s = xp.sum(e, axis=ax, keepdims=True)
    # An all -inf row has s == 0: divide by 1 instead, giving 0 (not 0/0 = NaN) and zero gradient.
    res = e / xp.where(s == 0, 1.0, s)
    if scalar:
        res = xp.reshape(res, ())
    return write_out(finish(p, res), out, x)


@_quiet
def log_softmax(x: Any, axis: int = -1, *, temperature: Any = 1.0, where: Any = None,
                dim: int | None = None, out: Any = None) -> Any:
    r"""The log of the softmax along ``axis``, computed without forming the softmax.

    .. math:: \operatorname{log\_softmax}(x)_i = x_i - \operatorname{logsumexp}(x)
              = (x_i - m) - \log \sum_j e^{x_j - m}

    Use it instead of ``log(softmax(x))``, which gives ``-inf`` (and NaN gradients) as soon as a
    probability underflows.

    Args:
        x: logits.
        axis: the class axis (``dim=`` is an alias). Default: last. A tuple of axes, or ``None``
            for all: one distribution over the joint axes (SciPy).
        temperature: divide the logits by ``T > 0`` first.
        where: boolean mask; ``False`` entries give ``-inf``.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch). Returned.

    Returns:
        Log-probabilities, same shape, array type, device and dtype as ``x``.

    Note:
        Finite for any finite logit gap: ``log_softmax([0, 1e4])`` is ``[-1e4, 0]`` in float32.
        An all ``-inf`` (or all masked) row gives ``-inf`` with zero gradient, never NaN. A
        zero-size class axis gives an empty array of ``x``'s shape; a 0-d ``x`` gives 0.

    Example:
        >>> import sigmax
        >>> sigmax.log_softmax([0.1, 0.2, 0.3]).round(4)
        array([-1.2019, -1.1019, -1.0019])
        >>> sigmax.log_softmax(np.array([0.0, 1e4], dtype=np.float32))
        array([-10000.,      0.], dtype=float32)
    """
    return call("log_softmax", x, axis, dim, temperature, where, out)


@register("log_softmax", "generic")
def _log_softmax(x: Any, axis: Any, dim: Any, temperature: Any, where: Any, out: Any) -> Any:
    p, xp, xv, ax, scalar = _prepare_rows(x, axis, dim, temperature, where)
    m = _row_max(xp, xv, ax)
    edge = _any_nonfinite(xp, m)
    z, _, empty = _shift(xp, xv, m, edge)
    res = z - _log_sum_exp_shifted(xp, z, ax, empty)
    if edge:
        res = xp.where(empty, -_INF, res)  # all -inf rows: -inf with zero gradient
    if scalar:
        res = xp.reshape(res, ())
    return write_out(finish(p, res), out, x)


@_quiet
def logsumexp(x: Any, axis: Any = -1, *, b: Any = None, keepdims: bool = False,
              return_sign: bool = False, where: Any = None, dim: Any = None, out: Any = None) -> Any:
    r"""The log of the sum of exponentials along ``axis``, without overflow.

    .. math:: \operatorname{logsumexp}(x) = \log \sum_i b_i e^{x_i} = m + \log \sum_i b_i e^{x_i - m},
              \quad m = \max_i x_i

    Args:
        x: values.
        axis: an axis, a tuple of axes, or ``None`` for all (``dim=`` is an alias). Default: last.
        b: optional weights broadcastable with ``x`` (may be negative, as in SciPy). Entries with
            ``b == 0`` are left out, even where ``x`` is ``inf``. ``x``, ``b`` and ``where`` are
            broadcast together first, and ``axis`` refers to the broadcast shape (SciPy, JAX).
        keepdims: keep the reduced axes with size 1.
        return_sign: also return the sign of the sum (``+1``, ``-1``, or ``0`` for a zero sum); then
            the first result is ``log|sum|``. Without it, a negative sum gives NaN (as in SciPy).
        where: boolean mask; only ``True`` entries are summed.
        out: optional array to write the result into (keyword-only): same library, shape and dtype
            as the result, writable; not with autograd (as in PyTorch), nor with
            ``return_sign``. Returned.

    Returns:
        ``lse``, or ``(lse, sign)`` with ``return_sign=True``; the array type, device and dtype of ``x``.

    Note:
        An empty (all ``-inf``, all masked, or zero-size) reduction gives ``-inf`` with zero
        gradient; any ``+inf`` entry gives ``+inf``; NaN propagates. On NumPy a reduction to 0-d
        returns a NumPy scalar (``np.float64``, ...), as NumPy and SciPy do.

    Example:
        >>> import sigmax
        >>> float(sigmax.logsumexp([0.1, 0.2, 0.3]))
        1.3019428482292442
        >>> float(sigmax.logsumexp([1000.0, 1000.0]))
        1000.6931471805599
        >>> lse, sign = sigmax.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
        >>> float(lse), float(sign)
        (1.5413248546129181, -1.0)
    """
    if out is not None and return_sign:
        raise TypeError("out= is not supported with return_sign=True (two results); call without out=")
    return call("logsumexp", x, axis, dim, b, keepdims, return_sign, where, out)  # the C kernel where it applies


@register("logsumexp", "generic")
def _logsumexp(x: Any, axis: Any, dim: Any, b: Any, keepdims: bool, return_sign: bool, where: Any,
               out: Any) -> Any:
    p = prepare(x)
    xp, xv = p.xp, p.x
    mask = as_mask(xp, where, xv)
    bv = None
    if b is not None:
        bv = like(xp, b, xv, name="b")
        try:
            np.broadcast_shapes(tuple(bv.shape), tuple(xv.shape))
        except ValueError:
            raise ValueError(f"b has shape {tuple(bv.shape)}, which does not broadcast with x's shape "
                             f"{tuple(xv.shape)}") from None
    # x, b and where broadcast first, then the axis refers to the broadcast shape (SciPy, JAX)
    if bv is not None or mask is not None:
        shape = np.broadcast_shapes(*(tuple(a.shape) for a in (xv, bv, mask) if a is not None))
        if shape != tuple(xv.shape):
            xv = xp.broadcast_to(xv, shape)
    ax = normalize_axis(resolve_axis(axis, dim), xv.ndim, allow_tuple=True, allow_none=True) \
        if xv.ndim else None
    if bv is not None:
        nonzero = bv != 0  # b == 0 drops the entry (avoids 0 * exp(inf) = NaN), as SciPy does
        mask = nonzero if mask is None else (mask & nonzero)
    if mask is not None:
        xv = xp.where(mask, xv, -_INF)
    m = _row_max(xp, xv, ax)
    edge = _any_nonfinite(xp, m)
    had_pos_inf = (m == _INF) if edge else None
    z, m, empty = _shift(xp, xv, m, edge)
    if bv is None:
        s = None
        lse = m + _log_sum_exp_shifted(xp, z, ax, empty)
        ok = True if empty is None else ~empty
        if empty is not None:
            lse = xp.where(empty, -_INF, lse)  # empty sum: log 0 = -inf, gradient 0
    else:
        s = xp.sum(bv * xp.exp(z), axis=ax, keepdims=True)  # exp(z) <= 1 after the shift
        mag = xp.abs(s)
        ok = mag != 0  # NaN sums stay NaN
        # log of a zero sum is -inf; log(1) on those entries keeps the gradient 0 instead of NaN.
        lse = xp.where(ok, m + xp.log(xp.where(ok, mag, 1.0)), -_INF)
    if edge:
        # rows with +inf: the sum is +inf (unless +inf entries' weights cancel: NaN); safe-where:
        # inf and NaN are produced only in those rows, never as a discarded temporary
        lse = xp.where(had_pos_inf & ok, _INF, xp.where(had_pos_inf, float("nan"), lse))
    if s is None:  # no weights: the sum is positive, or 0 for an empty row, or NaN
        sign = xp.where(lse == -_INF, 0.0, xp.where(xp.isnan(lse), lse, 1.0))
    else:
        # sign(s) as wheres (NaN stays NaN): array_api_compat's torch sign writes through a boolean
        # mask, which torch.func.vmap cannot batch
        sign = xp.where(s > 0, 1.0, xp.where(s < 0, -1.0, xp.where(s == 0, 0.0, s)))
    if not return_sign and s is not None:
        lse = xp.where(sign < 0, float("nan"), lse)  # log of a negative number (SciPy gives NaN)
    if not keepdims:
        squeeze = tuple(range(xv.ndim)) if ax is None else (ax if isinstance(ax, tuple) else (ax,))
        lse = xp.squeeze(lse, axis=squeeze) if squeeze else lse
        sign = xp.squeeze(sign, axis=squeeze) if squeeze else sign
    if return_sign:
        return finish(p, lse), finish(p, sign)
    return write_out(finish(p, lse), out, x)


# --------------------------------------------------------------------------------------------
# two-class conversions
# --------------------------------------------------------------------------------------------


def binary_to_two_class(z: Any) -> Any:
    r"""Turn binary logits into two-class logits ``[0, z]`` on a new last axis.

    .. math:: z \mapsto [0, z], \qquad \operatorname{softmax}([0, z])_1 = \frac{e^z}{1 + e^z} = \sigma(z)

    So ``softmax(binary_to_two_class(z))[..., 1] == sigmoid(z)``: a binary classifier is a two-class
    softmax classifier whose first logit is pinned at 0.

    Args:
        z: binary logits, any shape ``S``.

    Returns:
        Logits of shape ``S + (2,)``; class 0 is the negative class.

    Example:
        >>> import sigmax
        >>> sigmax.binary_to_two_class([0.1, -2.0])
        array([[ 0. ,  0.1],
               [ 0. , -2. ]])
        >>> float(sigmax.softmax(sigmax.binary_to_two_class(0.1))[1].round(4))
        0.525
    """
    p = prepare(z, name="z")
    xp, zv = p.xp, p.x
    out = xp.stack([xp.zeros_like(zv), zv], axis=-1)
    return finish(p._replace(numpy_scalar=False), out)


def two_class_to_binary(x: Any, axis: int = -1, *, dim: int | None = None) -> Any:
    r"""Turn two-class logits into one binary logit per row: ``x[..., 1] - x[..., 0]``.

    .. math:: [x_0, x_1] \mapsto x_1 - x_0, \qquad \sigma(x_1 - x_0) = \operatorname{softmax}(x)_1

    Args:
        x: logits with exactly two entries along ``axis`` (``dim=`` is an alias).

    Returns:
        Binary logits with ``axis`` removed.

    Example:
        >>> import sigmax
        >>> sigmax.two_class_to_binary([[-0.3, -0.7], [1.1, -0.7]]).round(4)
        array([-0.4, -1.8])
    """
    p = prepare(x)
    xv = p.x
    ax = normalize_axis(resolve_axis(axis, dim), xv.ndim)
    if xv.shape[ax] != 2:
        raise ValueError(
            f"two_class_to_binary needs exactly 2 classes along axis {ax}, got {xv.shape[ax]} "
            f"(shape {tuple(xv.shape)}); for C > 2 classes there is no single binary logit"
        )
    idx0 = tuple(0 if i == ax else slice(None) for i in range(xv.ndim))
    idx1 = tuple(1 if i == ax else slice(None) for i in range(xv.ndim))
    return finish(p, xv[idx1] - xv[idx0])  # log-odds of class 1 against class 0
