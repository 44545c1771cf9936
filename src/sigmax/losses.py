r"""Losses with the semantics of ``torch.nn.functional``, on every array library.

=====================================  =============================  ===================================
loss                                   input                          target
=====================================  =============================  ===================================
:func:`nll_loss`                       log-probabilities ``(N, C)``    class indices ``(N,)``
:func:`cross_entropy`                  logits ``(N, C)``               class indices ``(N,)`` or
                                                                      class probabilities ``(N, C)``
:func:`binary_cross_entropy`           probabilities, any shape       probabilities, same shape
:func:`binary_cross_entropy_with_logits`  logits, any shape            probabilities, same shape
:func:`sigmoid_focal_loss`             logits, any shape              probabilities, same shape
:func:`softmax_focal_loss`             logits ``(N, C)``               as :func:`cross_entropy`
=====================================  =============================  ===================================

Arguments and values are PyTorch's (``weight``, ``ignore_index=-100``, ``label_smoothing``,
``pos_weight``, ``reduction``, K-dimensional ``(N, C, d1, ..., dK)`` input, 1-D ``(C,)`` input), and the
focal losses are torchvision's. On top, ``axis=`` (alias ``dim=``) names the class axis, so
``(batch, sequence, vocabulary)`` logits need no transpose; the default is PyTorch's rule (axis 1, or
0 for 1-D input).

Every loss is written in terms of the primitives of :mod:`sigmax.activations` (``log_softmax``,
``log_sigmoid``): nothing here forms ``log(softmax(x))`` or re-derives ``exp(x - max)``. Inputs may be
NumPy arrays, PyTorch tensors (autograd gives PyTorch's gradients) or JAX arrays (``jax.grad``
works); results keep the input's array type, device and floating dtype, and float16/bfloat16 are
computed in float32.

Speed: on JAX each loss runs as one compiled function. On PyTorch tensors, after sigmax's
``log_softmax``, picking ``log p[n, y_n]`` and PyTorch's weighted mean are ``torch.nn.functional.nll_loss``
(selection and averaging, not a re-derived primitive), and ``binary_cross_entropy_with_logits`` makes as
few passes over memory as PyTorch's own, with an analytic backward. ``benchmarks/losses.py`` measures
both against ``torch.nn.functional`` and optax.

Where PyTorch is silent or cryptic, sigmax raises a ``ValueError``/``TypeError`` that names the
argument and the fix: class indices out of range (naming them), probability targets that are
negative or do not sum to 1, multi-hot targets given to a softmax loss, integer logits, shapes that do
not fit. These checks read the target's values, so they are skipped when the target is being traced
by ``jax.jit`` (there, out-of-range indices are not detected).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import array_api_compat
import numpy as np

from . import _kernels
from ._array import (
    _device,
    _is_integer,
    finish,
    is_floating,
    is_jax,
    is_numpy,
    is_torch,
    namespace,
    normalize_axis,
    prepare,
    resolve_axis,
)
from ._array import quiet as _quiet
from .activations import log_sigmoid, log_softmax, sigmoid

__all__ = [
    "REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]

#: The accepted values of ``reduction``.
REDUCTIONS = ("none", "mean", "sum")

_LOG_CLAMP = -100.0  # PyTorch's binary_cross_entropy clamps log(p) and log(1 - p) at -100



# --------------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------------


def _check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'mean' or 'sum'; got {reduction!r}")
    return reduction


def _float_input(x: Any, *, fn: str, name: str = "input", what: str = "logits"):
    """``x`` prepared for computation; integer and boolean arrays are refused (a loss needs real
    scores: promoting class indices or 0/1 labels given by mistake would hide the bug)."""
    if isinstance(x, (list, tuple, numbers.Number)) and not isinstance(x, bool):
        arr = np.asarray(x)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.float64)  # a list of whole numbers is still a list of numbers
        x = arr
    if array_api_compat.is_array_api_obj(x):
        xp = namespace(x)
        if not is_floating(xp, x.dtype):
            raise TypeError(
                f"{fn}: {name} must be floating-point {what}, got dtype {x.dtype}; convert it first "
                f"(x.float() in PyTorch, x.astype(np.float32) in NumPy). If this array holds class "
                f"indices or labels, it is the target, not the {name}"
            )
    return prepare(x, name=name)


def _is_traced(a: Any) -> bool:
    """Whether ``a`` is a JAX tracer (inside ``jit``/``grad``): its values cannot be read."""
    if type(a).__module__.startswith("jax"):
        import jax

        return isinstance(a, jax.core.Tracer)
    return False


def _to_numpy(a: Any) -> np.ndarray:
    """Values for an error message (only ever called on the error path)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        return (a.float() if a.dtype.is_floating_point and a.element_size() == 2 else a).numpy()
    return np.asarray(a)


def _range_text(a: Any) -> str:
    """'values from lo to hi (and NaN)' for an error message."""
    v = _to_numpy(a).astype(np.float64).ravel()
    nan = np.isnan(v)
    text = f"values from {v[~nan].min():.4g} to {v[~nan].max():.4g}" if (~nan).any() else "only NaN"
    return text + (" and NaN" if nan.any() and (~nan).any() else "")


def _array_of(xp, value: Any, ref: Any, *, name: str, fn: str):
    """``value`` as an array of ``ref``'s library and device, dtype unchanged. Lists and numbers are
    converted; NumPy arrays are accepted for JAX input; other mixes are an error."""
    if array_api_compat.is_array_api_obj(value):
        vxp = namespace(value)
        if vxp is xp and is_torch(xp) and value.device != ref.device:
            raise ValueError(
                f"{fn}: {name} is on {value.device} but input is on {ref.device}; move it first "
                f"({name}.to(input.device))"
            )
        if vxp is xp or (is_numpy(vxp) and is_numpy(xp)):
            return value
        if is_jax(xp) and is_numpy(vxp):
            return xp.asarray(value)
        raise TypeError(
            f"{fn}: {name} is a {type(value).__module__.split('.')[0]} array but input is a "
            f"{type(ref).__module__.split('.')[0]} array; give {name} as the same kind of array "
            f"(and on the same device)"
        )
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{fn}: {name} must be numbers or an array, got {value!r}")
    if not is_numpy(xp):
        arr = xp.asarray(arr, device=_device(ref))
    return arr


def _float_like(xp, value: Any, ref: Any, *, name: str, fn: str):
    """A float array (weights, probability targets) in ``ref``'s compute dtype."""
    v = _array_of(xp, value, ref, name=name, fn=fn)
    if not is_floating(xp, v.dtype):
        if v.dtype == xp.bool or _is_integer(xp, v.dtype):
            v = xp.astype(v, ref.dtype)  # 0/1 labels or integer weights are numbers too
        else:
            raise TypeError(f"{fn}: {name} must be real numbers, got dtype {v.dtype}")
    return xp.astype(v, ref.dtype) if v.dtype != ref.dtype else v


def _class_axis(axis: Any, dim: Any, ndim: int, *, fn: str) -> int:
    ax = resolve_axis(axis, dim, default=None)
    if ndim == 0:
        raise ValueError(f"{fn}: input is a 0-d scalar; it needs a class axis (shape (C,), (N, C) or "
                         f"(N, C, d1, ...))")
    if ax is None:
        return 0 if ndim == 1 else 1  # PyTorch's rule: classes on axis 1, or axis 0 for 1-D input
    return normalize_axis(ax, ndim)


def _along(xp, v, ndim: int, ax: int):
    """A length-C vector reshaped to broadcast along axis ``ax`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[ax] = v.shape[0]
    return xp.reshape(v, tuple(shape))


def _class_weight(xp, weight: Any, x, ax: int, *, fn: str, name: str = "weight"):
    """PyTorch's per-class ``weight``: a 1-D array with one entry per class."""
    if weight is None:
        return None
    w = _float_like(xp, weight, x, name=name, fn=fn)
    c = x.shape[ax]
    if w.ndim != 1 or w.shape[0] != c:
        raise ValueError(
            f"{fn}: {name} has shape {tuple(w.shape)} but input has {c} classes along axis {ax} "
            f"(input shape {tuple(x.shape)}); give one {name} per class, shape ({c},)"
        )
    return w


def _split_target(xp, x, target: Any, ax: int, *, fn: str, axis_given: bool, allow_probs: bool = True):
    """Decide PyTorch's way between class-index targets (input's shape without the class axis) and
    class-probability targets (input's shape); return ``(target, is_probs)``."""
    t = _array_of(xp, target, x, name="target", fn=fn)
    shape, tshape = tuple(x.shape), tuple(t.shape)
    expected = shape[:ax] + shape[ax + 1:]
    if allow_probs and tshape == shape:
        if not is_floating(xp, t.dtype):
            raise TypeError(
                f"{fn}: target has input's shape {shape}, so it is read as class probabilities, and "
                f"must be floating-point (got {t.dtype}). For one-hot labels pass class indices "
                f"(target.argmax({ax})) instead, or cast the target to float"
            )
        return t, True
    if tshape == expected:
        if is_floating(xp, t.dtype):
            raise TypeError(
                f"{fn}: target has shape {tshape} (input's shape without the class axis {ax}), so it "
                f"holds class indices and must be an integer array, got {t.dtype}. Cast it "
                f"(target.long() in PyTorch, target.astype(int) in NumPy)"
                + (f", or give class probabilities of input's shape {shape}" if allow_probs else "")
            )
        if t.dtype == xp.bool or not _is_integer(xp, t.dtype):
            raise TypeError(f"{fn}: target must hold integer class indices, got dtype {t.dtype}")
        if is_torch(xp) and t.dtype != xp.int64:
            t = xp.astype(t, xp.int64)  # torch.gather takes int64 indices only (uint8/int32 are valid too)
        return t, False
    hint = ""
    if len(tshape) == len(shape) and tshape == expected[:ax] + (1,) + expected[ax:]:
        hint = f" The target keeps a class axis of size 1: remove it (target.squeeze({ax}))."
    elif not axis_given and len(shape) >= 3 and tshape == shape[:-1]:
        hint = " The classes seem to be on the last axis: pass axis=-1 (no transpose needed)."
    kinds = f"class indices of shape {expected}" + (f" or class probabilities of shape {shape}"
                                                       if allow_probs else "")
    raise ValueError(
        f"{fn}: target has shape {tshape}, which does not fit input of shape {shape} with classes on "
        f"axis {ax}; expected {kinds}.{hint}"
    )


def _check_indices(xp, t, c: int, ignore_index: int, *, fn: str) -> None:
    """Class indices must lie in [0, C) unless they equal ``ignore_index`` (PyTorch: 'Target 7 is out of
    bounds', or a device-side assert on CUDA)."""
    if _is_traced(t) or 0 in tuple(t.shape):
        return
    lo, hi = _two_numbers(xp, _run(xp, _min_max_core, t))
    if lo >= 0 and hi < c:
        return  # the common case, from two read-only reductions
    if bool(_run(xp, _bad_index_core, t, c=c, ignore_index=ignore_index)):
        tn = _to_numpy(t)
        bn = ((tn < 0) | (tn >= c)) & (tn != ignore_index)
        values = np.unique(tn[bn])
        shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if values.size > 10 else "")
        raise ValueError(
            f"{fn}: target has class indices outside [0, {c}) at {int(bn.sum())} position(s): {shown}. "
            f"input has {c} classes, so valid indices are 0..{c - 1}; entries to skip must equal "
            f"ignore_index (now {ignore_index})"
        )


def _min_max_core(xp, t):
    if hasattr(t, "detach"):  # PyTorch: one pass for both, and no autograd graph (a check, not the loss)
        import torch

        if type(t) is torch.Tensor and t.device.type == "cpu" and not t.is_neg() and not t.is_conj() and \
                t.dtype in (torch.float32, torch.float64, torch.int64, torch.int32):
            # NumPy on the same memory: single-threaded, so PyTorch's OpenMP threads are not woken to
            # spin on the cores the loss kernel is about to use
            try:
                a = t.detach().numpy()
            except RuntimeError:  # no storage (a functorch or fake tensor): PyTorch's own reduction
                pass
            else:
                return np.min(a), np.max(a)
        return torch.aminmax(t.detach())
    return xp.min(t), xp.max(t)  # NaN propagates into both


def _in_unit_interval(xp, t) -> bool:
    """All values in [0, 1] (NaN is not), from two read-only reductions."""
    if _is_traced(t) or 0 in tuple(t.shape):
        return True
    lo, hi = _two_numbers(xp, _run(xp, _min_max_core, t))
    return lo >= 0 and hi <= 1


def _two_numbers(xp, pair):
    """Two 0-d arrays as Python numbers, with a single device synchronisation on PyTorch."""
    if isinstance(pair[0], np.generic):
        return [pair[0].item(), pair[1].item()]
    if is_torch(xp):
        import torch

        return torch.stack(list(pair)).tolist()
    return [v.item() if hasattr(v, "item") else v for v in pair]


def _bad_index_core(xp, t, *, c, ignore_index):
    return xp.any(((t < 0) | (t >= c)) & (t != ignore_index))


def _prob_flags_core(xp, t, *, ax, tol):
    """(any negative, any row not summing to 1 within ``tol``); NaN sums count as not summing to 1."""
    return xp.min(t) < 0, xp.any(~(xp.abs(xp.sum(t, axis=ax) - 1.0) <= tol))


def _eps(xp, dtype) -> float:
    return float(xp.finfo(dtype).eps)


def _check_prob_targets(xp, t, ax: int, eps: float, *, fn: str) -> None:
    """Class-probability targets must be >= 0 and sum to 1 along the class axis (within ``C`` roundings
    of ``eps``, the epsilon of the coarser of the target's and the input's dtypes)."""
    if _is_traced(t) or 0 in tuple(t.shape):
        return
    c = t.shape[ax]
    tol = max(1e-6, 4 * eps, min(8 * c * eps, 1e-2))  # a few roundings per class, dtype-aware
    negative, off_any = (bool(v) for v in _run(xp, _prob_flags_core, t, ax=ax, tol=tol))
    if negative:
        raise ValueError(
            f"{fn}: target has input's shape, so it holds class probabilities, but it has negative "
            f"values (min {float(np.nanmin(_to_numpy(t))):.4g}); probabilities must be >= 0"
        )
    if off_any:
        tn = _to_numpy(t).astype(np.float64)
        sums = tn.sum(axis=ax)
        off = ~(np.abs(sums - 1.0) <= tol)
        if np.all((tn == 0) | (tn == 1)) and np.any(sums > 1):
            raise ValueError(
                f"{fn}: target looks multi-hot (several 1s along the class axis {ax}): more than one "
                f"class is true at once, which a softmax loss cannot express. For multi-label data use "
                f"binary_cross_entropy_with_logits(input, target) (one sigmoid per class)"
            )
        raise ValueError(
            f"{fn}: target holds class probabilities (it has input's shape) but {int(off.sum())} of "
            f"{off.size} rows along the class axis {ax} do not sum to 1 (row sums: "
            f"{_range_text(sums)}). Normalize them "
            f"(target / target.sum({ax}, keepdims=True)); if several classes can be true at once, "
            f"use binary_cross_entropy_with_logits"
        )


def _check_label_smoothing(label_smoothing: Any, *, fn: str) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _check_ignore_index(ignore_index: Any, *, fn: str) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{fn}: ignore_index must be an integer, got {ignore_index!r}")
    return int(ignore_index)


def _same_shape_target(xp, x, target: Any, *, fn: str, name: str = "input"):
    """The elementwise (binary) losses' target: same shape as the input, values in [0, 1]."""
    t = _float_like(xp, target, x, name="target", fn=fn)
    if tuple(t.shape) != tuple(x.shape):
        raise ValueError(
            f"{fn}: target has shape {tuple(t.shape)} but {name} has shape {tuple(x.shape)}; they must "
            f"be equal (one target per score). If the target holds class indices of a multi-class "
            f"problem, use cross_entropy"
        )
    if not _in_unit_interval(xp, t):
        raise ValueError(
            f"{fn}: target must hold probabilities in [0, 1] (0/1 labels or soft labels); got "
            f"{_range_text(t)}. For labels in {{-1, 1}} use (target + 1) / 2"
        )
    return t


def _elementwise_weight(xp, weight: Any, x, axis: Any, dim: Any, *, fn: str, name: str):
    """A rescaling weight broadcast to the input's shape (PyTorch broadcasts it like NumPy); with
    ``axis=`` a 1-D weight lies along that axis instead of the last one."""
    if weight is None:
        return None
    w = _float_like(xp, weight, x, name=name, fn=fn)
    ax = resolve_axis(axis, dim, default=None)
    if ax is not None:
        ax = normalize_axis(ax, x.ndim)
        if w.ndim != 1 or w.shape[0] != x.shape[ax]:
            raise ValueError(
                f"{fn}: with axis={ax}, {name} must be 1-D with one entry per class ({x.shape[ax]}), "
                f"got shape {tuple(w.shape)}"
            )
        w = _along(xp, w, x.ndim, ax)
    try:
        ok = np.broadcast_shapes(tuple(w.shape), tuple(x.shape)) == tuple(x.shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{fn}: {name} has shape {tuple(w.shape)}, which does not broadcast to input's shape "
            f"{tuple(x.shape)}; give one entry per class (aligned with the last axis, or along axis=) "
            f"or an array of input's shape"
        )
    return w


def _run(xp, core, *arrays, **static):
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


def _reduce(xp, loss, reduction: str, denom: Any = None):
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


def _pick(xp, logp, idx, ax: int):
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


def _nll_indices(xp, logp, t, ax: int, w, ignore_index: int, smoothing: float = 0.0):
    """Per-entry loss and the mean's denominator for class-index targets.

    ``loss_n = -w[y_n] ((1 - eps) log p[n, y_n] + eps / C * sum_c w_c log p[n, c] / w[y_n])`` (PyTorch's
    label smoothing), 0 where ``y_n == ignore_index``; the denominator is ``sum_n w[y_n]`` over kept
    entries (their count without ``weight``).
    """
    valid = t != ignore_index
    safe = xp.where(valid, t, xp.zeros_like(t))  # ignored entries gather class 0, then get masked out
    picked = _pick(xp, logp, safe, ax)
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
        smooth = -xp.sum(logp if w is None else logp * _along(xp, w, logp.ndim, ax), axis=ax)
        per = (1.0 - smoothing) * per + (smoothing / c) * smooth
    per = xp.where(valid, per, 0.0)  # ignored entries contribute exactly 0 (even if log p is -inf)
    return per, denom


def _nll_probs(xp, logp, t, ax: int, w, smoothing: float = 0.0):
    """Per-row loss for class-probability targets: ``-sum_c w_c t_c log p_c``."""
    c = logp.shape[ax]
    if smoothing > 0:
        t = t * (1.0 - smoothing) + smoothing / c  # PyTorch smooths the target itself
    # 0 * log 0 = 0: a class with probability 0 in the target adds nothing, even where its logit is
    # -inf (a masked class). PyTorch gives NaN there; everywhere else the values are PyTorch's.
    term = t * xp.where(t == 0, 0.0, logp)
    if w is not None:
        term = term * _along(xp, w, logp.ndim, ax)
    return -xp.sum(term, axis=ax)


def _rows(shape, ax: int) -> float:
    """The number of rows (entries other than the class axis): PyTorch's mean denominator for
    probability targets."""
    return float(np.prod(tuple(shape[:ax]) + tuple(shape[ax + 1:]), dtype=np.float64))


def _ce_indices_core(xp, x, t, w, *, ax, ignore_index, smoothing, reduction, from_logits):
    logp = log_softmax(x, axis=ax) if from_logits else x  # the one log-softmax (shift by the max inside)
    if is_torch(xp):
        return _nll_indices_torch(logp, t, ax, w, ignore_index, smoothing, reduction)
    per, denom = _nll_indices(xp, logp, t, ax, w, ignore_index, smoothing)
    return _reduce(xp, per, reduction, denom)


def _nll_indices_torch(logp, t, ax, w, ignore_index, smoothing, reduction):
    """:func:`_nll_indices` and its reduction on PyTorch tensors: the selection of ``log p[n, y_n]``
    and PyTorch's weighted mean are ``torch.nn.functional.nll_loss`` (one kernel with its own backward
    instead of a dozen small operations; the indices were checked before), and label smoothing adds
    PyTorch's smoothing term exactly as ``cross_entropy`` does in ATen."""
    import torch
    import torch.nn.functional as F

    if logp.ndim > 2 and ax == logp.ndim - 1:
        # (batch, sequence, vocabulary): rows of a 2-D view, no copy (a moved axis would be copied)
        nll = F.nll_loss(logp.reshape(-1, logp.shape[ax]), t.reshape(-1), weight=w,
                         ignore_index=ignore_index, reduction=reduction)
        if reduction == "none":
            nll = nll.reshape(t.shape)
    else:
        lp = torch.movedim(logp, ax, 1) if logp.ndim > 1 and ax != 1 else logp  # nll_loss's class axis: 1
        nll = F.nll_loss(lp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if smoothing == 0:
        return nll
    c = logp.shape[ax]
    valid = t != ignore_index
    smooth = -(logp if w is None else logp * _along(torch, w, logp.ndim, ax)).sum(dim=ax)
    smooth = torch.where(valid, smooth, 0.0)  # ignored entries add nothing
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":  # PyTorch divides by the summed weight of the kept targets
        if w is None:
            denom = valid.sum()
        else:
            denom = torch.where(valid, w[torch.where(valid, t, 0)], 0.0).sum()
        smooth = smooth.sum() / denom
    return (1.0 - smoothing) * nll + (smoothing / c) * smooth


def _ce_probs_core(xp, x, t, w, *, ax, smoothing, reduction):
    logp = log_softmax(x, axis=ax)
    return _reduce(xp, _nll_probs(xp, logp, t, ax, w, smoothing), reduction, _rows(x.shape, ax))


@_quiet
def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean", *, axis: int | None = None, dim: int | None = None) -> Any:
    r"""The negative log-likelihood of class indices under given log-probabilities.

    .. math:: \ell_n = -w_{y_n} \log p_{n, y_n}, \qquad
              \text{mean} = \frac{\sum_{n: y_n \ne \text{ignore}} \ell_n}{\sum_{n: y_n \ne \text{ignore}} w_{y_n}}

    The same as ``torch.nn.functional.nll_loss``: pair it with :func:`sigmax.log_softmax` (or use
    :func:`cross_entropy`, which does both).

    Args:
        input: log-probabilities, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` (classes on
            ``axis``).
        target: integer class indices, input's shape without the class axis.
        weight: optional per-class weights, shape ``(C,)``.
        ignore_index: target value whose entries are skipped (loss 0, left out of the mean).
        reduction: ``"none"`` (one loss per entry), ``"mean"`` (weighted mean, as above) or ``"sum"``.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: a scalar, or target's shape for ``reduction="none"``; input's array type, device and
        floating dtype.

    Note:
        If every entry is ignored, ``"mean"`` is NaN (0/0) and ``"sum"`` is 0, as in PyTorch. Indices
        outside ``[0, C)`` other than ``ignore_index`` raise a ``ValueError`` naming them.

    Example:
        >>> import numpy as np, sigmax
        >>> logp = sigmax.log_softmax(np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]]), axis=1)
        >>> float(sigmax.nll_loss(logp, np.array([2, 0])).round(4))
        0.552
        >>> sigmax.nll_loss(logp, np.array([2, -100]), reduction="none").round(4)
        array([0.6997, 0.    ])
    """
    fn = "nll_loss"
    reduction = _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index, fn=fn)
    p = _float_input(input, fn=fn, what="log-probabilities")
    xp, x = p.xp, p.x
    ax = _class_axis(axis, dim, x.ndim, fn=fn)
    t, _ = _split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None,
                         allow_probs=False)
    _check_indices(xp, t, x.shape[ax], ignore_index, fn=fn)
    w = _class_weight(xp, weight, x, ax, fn=fn)
    out = _run(xp, _ce_indices_core, x, t, w, ax=ax, ignore_index=ignore_index, smoothing=0.0,
               reduction=reduction, from_logits=False)
    return finish(p._replace(numpy_scalar=False), out)


@_quiet
def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0, *, axis: int | None = None,
                  dim: int | None = None) -> Any:
    r"""The cross-entropy between the softmax of logits and a target: one true class per row.

    .. math:: \ell_n = -\sum_c w_c\, q_{n,c} \log \operatorname{softmax}(x_n)_c, \qquad
              q = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    where the target is one-hot for class indices (``y_n``) or given class probabilities, and
    ``\varepsilon`` is ``label_smoothing``. Values and gradients are those of
    ``torch.nn.functional.cross_entropy``; ``log softmax`` comes from :func:`sigmax.log_softmax`, so
    logits of any size are safe.

    Args:
        input: logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; any class axis with
            ``axis=``, e.g. ``axis=-1`` for ``(batch, sequence, vocabulary)``.
        target: integer class indices (input's shape without the class axis) or class probabilities
            (input's shape, rows summing to 1).
        weight: optional per-class weights, shape ``(C,)``.
        ignore_index: class-index target value whose entries are skipped (index targets only).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``. With class indices ``"mean"`` divides by the
            summed weight of the kept entries ``sum_n w[y_n]``; with probabilities by the number of rows
            (PyTorch's rules).
        label_smoothing: ``\varepsilon`` in [0, 1]: mix the target with the uniform distribution.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: a scalar, or input's shape without the class axis for ``reduction="none"``.

    Note:
        All entries ignored: ``"mean"`` is NaN, ``"sum"`` 0 (as PyTorch). With probability targets,
        a class of target probability 0 adds nothing even where its logit is ``-inf`` (PyTorch: NaN).
        Raises ``ValueError`` for indices out of range, negative or unnormalised probability targets,
        multi-hot targets (use :func:`binary_cross_entropy_with_logits`) and shapes that do not fit;
        ``TypeError`` for integer logits or float class indices.

    Example:
        >>> import numpy as np, sigmax
        >>> x = np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]])
        >>> float(sigmax.cross_entropy(x, np.array([2, 0])).round(4))
        0.552
        >>> float(sigmax.cross_entropy(x, np.array([2, 0]), label_smoothing=0.1).round(4))
        0.6236
        >>> float(sigmax.cross_entropy(x, np.array([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0]])).round(4))
        0.642
        >>> logits = np.zeros((2, 5, 10))  # (batch, sequence, vocabulary): no transpose needed
        >>> float(sigmax.cross_entropy(logits, np.zeros((2, 5), dtype=int), axis=-1).round(4))
        2.3026
    """
    fn = "cross_entropy"
    reduction = _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index, fn=fn)
    smoothing = _check_label_smoothing(label_smoothing, fn=fn)
    p = _float_input(input, fn=fn)
    xp, x = p.xp, p.x
    ax = _class_axis(axis, dim, x.ndim, fn=fn)
    t, probs = _split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None)
    w = _class_weight(xp, weight, x, ax, fn=fn)
    if probs:
        if ignore_index >= 0:
            raise ValueError(
                f"{fn}: ignore_index={ignore_index} applies to class-index targets only, but target has "
                f"input's shape (class probabilities); leave ignore_index at its default, or give "
                f"rows to skip zero weight by passing class indices"
            )
        eps = max(_eps(xp, t.dtype), _eps(xp, p.out_dtype))
        t = _float_like(xp, t, x, name="target", fn=fn)
        _check_prob_targets(xp, t, ax, eps, fn=fn)
        out = _run(xp, _ce_probs_core, x, t, w, ax=ax, smoothing=smoothing, reduction=reduction)
    else:
        if w is None and smoothing == 0.0:
            # float32/64 CPU arrays: the fused kernel (one pass over the logits forward, one backward;
            # same values within the tested tolerances); NotImplemented where it does not apply, for
            # instance a target out of range, which the check below then reports
            fast = _kernels.cross_entropy_indices(x, t, ax, ignore_index, reduction)
            if fast is not NotImplemented:
                return finish(p._replace(numpy_scalar=False), fast)
        _check_indices(xp, t, x.shape[ax], ignore_index, fn=fn)
        out = _run(xp, _ce_indices_core, x, t, w, ax=ax, ignore_index=ignore_index, smoothing=smoothing,
                   reduction=reduction, from_logits=True)
    return finish(p._replace(numpy_scalar=False), out)


# --------------------------------------------------------------------------------------------
# binary cross-entropy
# --------------------------------------------------------------------------------------------


@_quiet
def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean", *,
                         axis: int | None = None, dim: int | None = None) -> Any:
    r"""The binary cross-entropy of probabilities, elementwise, with PyTorch's clamp of the log at -100.

    .. math:: \ell = -w\,\bigl[y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\bigr]

    Prefer :func:`binary_cross_entropy_with_logits` on the logits: it is exact where ``p`` has
    rounded to 0 or 1. This one is ``torch.nn.functional.binary_cross_entropy``, for when only
    probabilities exist.

    Args:
        input: probabilities in [0, 1], any shape.
        target: probabilities in [0, 1] (0/1 labels or soft labels), input's shape.
        weight: optional rescaling weight broadcastable to input (e.g. one per class, aligned with the
            last axis, or along ``axis=``).
        reduction: ``"none"``, ``"mean"`` (over all entries; the weight does not enter the
            denominator) or ``"sum"``.
        axis: with a 1-D ``weight``, the axis it lies along (``dim=`` is an alias); default: NumPy
            broadcasting (the last axis).

    Returns:
        The loss: a scalar, or input's shape for ``reduction="none"``.

    Note:
        ``log(0)`` is clamped to -100 as in PyTorch, so ``p = 0`` with ``y = 1`` costs 100, not inf; at
        such saturated inputs the gradient is 0 (PyTorch's is ``±1e12``). Raises ``ValueError`` for
        inputs outside [0, 1] (they are logits: use :func:`binary_cross_entropy_with_logits`); NaN
        inputs propagate.

    Example:
        >>> import numpy as np, sigmax
        >>> p = np.array([0.9, 0.2, 0.6])
        >>> float(sigmax.binary_cross_entropy(p, np.array([1.0, 0.0, 1.0])).round(4))
        0.2798
        >>> sigmax.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="none")
        array([100., 100.])
    """
    fn = "binary_cross_entropy"
    reduction = _check_reduction(reduction)
    p = _float_input(input, fn=fn, what="probabilities")
    xp, x = p.xp, p.x
    if not _in_unit_interval(xp, x):
        raise ValueError(
            f"{fn}: input must hold probabilities in [0, 1], got {_range_text(x)}; if these are logits "
            f"use binary_cross_entropy_with_logits(input, target)"
        )
    y = _same_shape_target(xp, x, target, fn=fn)
    w = _elementwise_weight(xp, weight, x, axis, dim, fn=fn, name="weight")
    return finish(p, _run(xp, _bce_core, x, y, w, reduction=reduction))


def _bce_core(xp, x, y, w, *, reduction):
    pos = x > 0
    less = x < 1
    # Safe arguments where a log is not taken, so neither log(0) = -inf nor its infinite gradient
    # reaches autograd; then clamp at -100 as PyTorch does.
    log_p = xp.clip(xp.where(pos, xp.log(xp.where(pos, x, 1.0)), _LOG_CLAMP), min=_LOG_CLAMP)
    # log(1 - p) as log1p(-p): exact for small p, and 1 - p is exact for p >= 1/2 anyway.
    log_q = xp.clip(xp.where(less, xp.log1p(-xp.where(less, x, 0.0)), _LOG_CLAMP), min=_LOG_CLAMP)
    loss = -(y * log_p + (1.0 - y) * log_q)
    if w is not None:
        loss = loss * w
    return _reduce(xp, loss, reduction)


def _abs_log_sigmoid(xp, x):
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


@_quiet
def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None, *, axis: int | None = None,
                                     dim: int | None = None) -> Any:
    r"""The binary cross-entropy of logits, elementwise: one sigmoid per entry, never formed.

    .. math:: \ell = -w\,\bigl[p_w\, y \log\sigma(x) + (1 - y) \log\sigma(-x)\bigr]
              = -w\,\bigl[(1 + (p_w - 1) y) \log\sigma(|x|) - c\,|x|\bigr]

    with ``c = 1 - y`` for ``x > 0`` and ``c = p_w y`` otherwise: every term has the same sign, so the
    loss keeps its relative accuracy for any finite logit (``|x|`` up to 1e4 and beyond in float32),
    where ``log(sigmoid(x))`` gives ``-inf``. Values and gradients are those of
    ``torch.nn.functional.binary_cross_entropy_with_logits``. Use it for binary and multi-label tasks.

    On PyTorch tensors without ``pos_weight`` the first term is computed as ``max(x, 0) - x y`` (as
    many passes over memory as PyTorch's own): still exact for 0/1 targets at any logit, while for a
    soft target the product ``x y`` rounds, a relative error of about ``eps y / (1 - y)`` (PyTorch's
    formula has the same). When only the logits need a gradient, autograd records one node whose
    backward is the analytic ``w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)`` (twice differentiable).

    Args:
        input: logits, any shape.
        target: probabilities in [0, 1] (0/1 labels or soft labels), input's shape.
        weight: optional rescaling weight broadcastable to input.
        reduction: ``"none"``, ``"mean"`` (over all entries) or ``"sum"``.
        pos_weight: optional weight ``p_w`` of the positive term, broadcastable to input: one per class
            (aligned with the last axis, or along ``axis=``). ``p_w > 1`` raises recall.
        axis: the class axis a 1-D ``weight``/``pos_weight`` lies along (``dim=`` is an alias); default:
            NumPy broadcasting (the last axis). For ``(N, C, H, W)`` pass ``axis=1``.

    Returns:
        The loss: a scalar, or input's shape for ``reduction="none"``.

    Note:
        Infinite logits are outside the domain: like PyTorch's, the result can be NaN (``0 * inf``).
        Targets outside [0, 1] raise a ``ValueError``.

    Example:
        >>> import numpy as np, sigmax
        >>> x, y = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 1.0])
        >>> float(sigmax.binary_cross_entropy_with_logits(x, y).round(4))
        0.3048
        >>> sigmax.binary_cross_entropy_with_logits(np.array([-1e4, 1e4], dtype=np.float32),
        ...                                          np.array([1.0, 1.0], dtype=np.float32), reduction="none")
        array([10000.,     0.], dtype=float32)
        >>> float(sigmax.binary_cross_entropy_with_logits(x, y, pos_weight=np.array(3.0)).round(4))
        0.7054
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = _check_reduction(reduction)
    p = _float_input(input, fn=fn)
    xp, x = p.xp, p.x
    y = _same_shape_target(xp, x, target, fn=fn)
    w = _elementwise_weight(xp, weight, x, axis, dim, fn=fn, name="weight")
    pw = _elementwise_weight(xp, pos_weight, x, axis, dim, fn=fn, name="pos_weight")
    if w is None and pw is None:
        # float32/64 CPU arrays: the fused kernel (one pass forward, one backward), else NotImplemented
        fast = _kernels.bce_with_logits(x, y, reduction)
        if fast is not NotImplemented:
            return finish(p, fast)
    if is_torch(xp) and _torch_function_ok(x, y, w, pw):
        return finish(p, _reduce(xp, _bce_logits_torch(x, y, w, pw), reduction))
    return finish(p, _run(xp, _bce_logits_core, x, y, w, pw, reduction=reduction))


def _torch_function_ok(x, *others) -> bool:
    """Whether the PyTorch path with its own backward may run: no gradient wanted for the target or
    weights, and no torch.compile tracing or functorch transform (vmap, grad) around the call."""
    import torch

    if any(v is not None and v.requires_grad for v in others):
        return False
    try:
        if torch.compiler.is_compiling() or torch._C._functorch.maybe_current_level() is not None:
            return False
    except AttributeError:  # pragma: no cover - older torch
        return False
    return True


def _bce_logits_torch(x, y, w, pw):
    """The elementwise loss on PyTorch tensors: the formula of :func:`_bce_logits_core` in few
    passes over memory (in place where nothing needs the intermediate), and, under autograd, one
    node whose backward is the analytic ``w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)`` instead of a
    dozen recorded operations."""
    import torch

    if torch.is_grad_enabled() and x.requires_grad:
        return _BCEWithLogits.apply(x, y, w, pw)
    return _bce_logits_forward_torch(x, y, w, pw)


def _bce_logits_forward_torch(x, y, w, pw):
    # log sigmoid(|x|) = -log(1 + e^-|x|) in [-log 2, 0], full relative accuracy; |x| needs no care
    # at 0 here: the derivative comes from the analytic backward.
    ls_a = log_sigmoid(x.abs())
    r = x.clamp(min=0.0)  # max(x, 0)
    if pw is None:
        # max(x, 0) - x y - log sigmoid(|x|): five passes over memory, like PyTorch's own. Exact for 0/1
        # targets at any logit (x - x = 0 and x - 0 are exact); for a soft target the product x y
        # rounds, a relative error of about eps y / (1 - y) on the first term, as in PyTorch.
        loss = r.addcmul_(x, y, value=-1.0).sub_(ls_a)
        return loss if w is None else _times(loss, w)
    # (1 - y) max(x, 0) + p_w y max(-x, 0) - (1 + (p_w - 1) y) log sigmoid(|x|): terms of one sign
    py = pw * y
    loss = (1.0 - y).mul_(r).addcmul_(py, r - x)  # r - x = max(-x, 0), exact
    loss = loss.sub_(py.sub_(y).add_(1.0).mul_(ls_a))
    return loss if w is None else _times(loss, w)


def _times(loss, w):
    """``loss * w``, in place when ``w`` broadcasts to ``loss``'s shape."""
    import torch

    if tuple(torch.broadcast_shapes(loss.shape, w.shape)) == tuple(loss.shape):
        return loss.mul_(w)
    return loss * w


def _bce_logits_backward_torch(x, y, w, pw, g):
    import torch

    s = sigmoid(x)  # the one sigmoid
    if torch.is_grad_enabled():  # create_graph=True: stay out of place, so this is differentiable too
        grad = s - y if pw is None else s * (1.0 + (pw - 1.0) * y) - pw * y
        grad = grad if w is None else grad * w
        return grad * g
    grad = s.sub_(y) if pw is None else s.mul_((pw - 1.0) * y + 1.0).sub_(pw * y)
    if w is not None:
        grad = grad.mul_(w)
    return grad.mul_(g)


def _make_bce_function():
    import torch

    class BCEWithLogits(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, w, pw):
            ctx.save_for_backward(x, y, w, pw)
            return _bce_logits_forward_torch(x, y, w, pw)

        @staticmethod
        def backward(ctx, g):
            x, y, w, pw = ctx.saved_tensors
            return _bce_logits_backward_torch(x, y, w, pw, g), None, None, None

    return BCEWithLogits


class _LazyFunction:
    """Build the torch.autograd.Function on first use, so importing sigmax never imports torch."""

    def __init__(self, make):
        self._make, self._fn = make, None

    def apply(self, *args):
        if self._fn is None:
            self._fn = self._make()
        return self._fn.apply(*args)


_BCEWithLogits = _LazyFunction(_make_bce_function)


def _bce_logits_core(xp, x, y, w, pw, *, reduction):
    a, ls_a, pos = _abs_log_sigmoid(xp, x)
    if pw is None:
        # -(y ls(x) + (1-y) ls(-x)) = -ls(|x|) + c |x|, c = 1-y (x > 0) or y (x <= 0)
        loss = xp.where(pos, 1.0 - y, y) * a - ls_a
    else:
        py = pw * y
        loss = xp.where(pos, 1.0 - y, py) * a - (py + (1.0 - y)) * ls_a
    if w is not None:
        loss = loss * w
    return _reduce(xp, loss, reduction)


# --------------------------------------------------------------------------------------------
# focal losses
# --------------------------------------------------------------------------------------------


def _check_gamma(gamma: Any, *, fn: str) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not (float(gamma) >= 0) \
            or not np.isfinite(float(gamma)):
        raise ValueError(f"{fn}: gamma must be a finite number >= 0 (0 gives the plain cross-entropy), "
                         f"got {gamma!r}")
    return float(gamma)


@_quiet
def sigmoid_focal_loss(inputs: Any, targets: Any, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> Any:
    r"""The focal loss of Lin et al. (2017) on binary logits, as ``torchvision.ops.sigmoid_focal_loss``.

    .. math:: \ell = \alpha_t\, (1 - p_t)^\gamma\, \operatorname{BCE}(x, y), \qquad
              1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x), \qquad
              \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    ``BCE`` is :func:`binary_cross_entropy_with_logits`, and ``sigma(±x)`` are the exponentials of
    its ``log_sigmoid`` terms, so nothing is formed from a rounded probability.

    Args:
        inputs: logits, any shape.
        targets: probabilities in [0, 1] (0/1 labels), inputs' shape.
        alpha: weight of the positive class in [0, 1]; a negative value (torchvision's ``-1``) turns the
            weighting off.
        gamma: focusing exponent >= 0 (0 gives the weighted binary cross-entropy).
        reduction: ``"none"`` (torchvision's default), ``"mean"`` or ``"sum"``.

    Returns:
        The loss: inputs' shape for ``"none"``, else a scalar.

    Note:
        Same values and gradients as torchvision for finite logits; exact for large ``|x|`` where
        torchvision's ``sigmoid`` rounds to 0 or 1.

    Example:
        >>> import numpy as np, sigmax
        >>> x, y = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 1.0])
        >>> sigmax.sigmoid_focal_loss(x, y).round(4)
        array([0.0005, 0.017 , 0.0169])
    """
    fn = "sigmoid_focal_loss"
    reduction = _check_reduction(reduction)
    g = _check_gamma(gamma, fn=fn)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or float(alpha) > 1:
        raise ValueError(f"{fn}: alpha must be a number <= 1 (a negative value turns it off), got {alpha!r}")
    p = _float_input(inputs, fn=fn, name="inputs")
    xp, x = p.xp, p.x
    y = _same_shape_target(xp, x, targets, fn=fn, name="inputs")
    return finish(p, _run(xp, _sigmoid_focal_core, x, y, alpha=float(alpha), gamma=g, reduction=reduction))


def _sigmoid_focal_core(xp, x, y, *, alpha, gamma, reduction):
    g = gamma
    a, ls_a, pos = _abs_log_sigmoid(xp, x)
    ce = xp.where(pos, 1.0 - y, y) * a - ls_a  # binary cross-entropy with logits, see above
    loss = ce
    if g != 0:
        ls_b = ls_a - a  # log sigmoid(-|x|): both terms <= 0, no cancellation
        ls_pos = xp.where(pos, ls_a, ls_b)  # log sigmoid(x)
        ls_neg = xp.where(pos, ls_b, ls_a)  # log sigmoid(-x) = log(1 - sigmoid(x))
        one_minus_pt = y * xp.exp(ls_neg) + (1.0 - y) * xp.exp(ls_pos)  # no 1 - p_t cancellation
        loss = loss * one_minus_pt**g
    if alpha >= 0:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return _reduce(xp, loss, reduction)


@_quiet
def softmax_focal_loss(input: Any, target: Any, alpha: Any = None, gamma: float = 2.0, reduction: str = "none",
                       *, ignore_index: int = -100, axis: int | None = None, dim: int | None = None) -> Any:
    r"""The multi-class focal loss on logits: cross-entropy down-weighted on well-classified rows.

    .. math:: \ell_n = -\sum_c \alpha_c\, q_{n,c}\, (1 - p_{n,c})^\gamma \log p_{n,c}, \qquad
              p = \operatorname{softmax}(x), \quad 1 - p = -\operatorname{expm1}(\log p)

    For class indices ``q`` is one-hot, so ``l_n = -alpha_{y_n} (1 - p_{n,y_n})^gamma log p_{n,y_n}``.
    ``log p`` is :func:`sigmax.log_softmax`; ``1 - p`` comes from ``expm1`` so it keeps its digits when
    ``p`` is close to 1.

    Args:
        input: logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; classes on ``axis``.
        target: class indices (input's shape without the class axis) or class probabilities (input's
            shape), as in :func:`cross_entropy`.
        alpha: ``None`` (no weighting), a number, or one weight per class (shape ``(C,)``).
        gamma: focusing exponent >= 0; ``gamma=0`` with ``alpha=None`` is :func:`cross_entropy`.
        reduction: ``"none"`` (default, like the focal losses of torchvision and kornia), ``"mean"``
            (over kept entries; ``alpha`` does not enter the denominator) or ``"sum"``.
        ignore_index: class-index target value whose entries are skipped.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: input's shape without the class axis for ``"none"``, else a scalar.

    Note:
        All entries ignored: ``"mean"`` is NaN, ``"sum"`` 0. Targets are checked as in
        :func:`cross_entropy`.

    Example:
        >>> import numpy as np, sigmax
        >>> x = np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]])
        >>> sigmax.softmax_focal_loss(x, np.array([2, 0])).round(4)
        array([0.1772, 0.0447])
        >>> float(sigmax.softmax_focal_loss(x, np.array([2, 0]), gamma=0.0, reduction="mean").round(4))
        0.552
    """
    fn = "softmax_focal_loss"
    reduction = _check_reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index, fn=fn)
    g = _check_gamma(gamma, fn=fn)
    p = _float_input(input, fn=fn)
    xp, x = p.xp, p.x
    ax = _class_axis(axis, dim, x.ndim, fn=fn)
    t, probs = _split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None)
    a = None
    if alpha is not None:
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            a = xp.full((x.shape[ax],), float(alpha), dtype=x.dtype, device=_device(x))
        else:
            a = _class_weight(xp, alpha, x, ax, fn=fn, name="alpha")
    if probs:
        if ignore_index >= 0:
            raise ValueError(f"{fn}: ignore_index={ignore_index} applies to class-index targets only, but "
                             f"target has input's shape (class probabilities)")
        eps = max(_eps(xp, t.dtype), _eps(xp, p.out_dtype))
        t = _float_like(xp, t, x, name="target", fn=fn)
        _check_prob_targets(xp, t, ax, eps, fn=fn)
        out = _run(xp, _focal_probs_core, x, t, a, ax=ax, gamma=g, reduction=reduction)
    else:
        _check_indices(xp, t, x.shape[ax], ignore_index, fn=fn)
        out = _run(xp, _focal_indices_core, x, t, a, ax=ax, ignore_index=ignore_index, gamma=g,
                   reduction=reduction)
    return finish(p._replace(numpy_scalar=False), out)


def _focal_probs_core(xp, x, t, a, *, ax, gamma, reduction):
    logp = log_softmax(x, axis=ax)  # the one log-softmax
    term = t * xp.where(t == 0, 0.0, logp)  # 0 * log 0 = 0 (masked classes)
    if gamma != 0:
        term = term * (-xp.expm1(logp)) ** gamma  # 1 - p = -expm1(log p): exact near p = 1
    if a is not None:
        term = term * _along(xp, a, x.ndim, ax)
    return _reduce(xp, -xp.sum(term, axis=ax), reduction, _rows(x.shape, ax))


def _focal_indices_core(xp, x, t, a, *, ax, ignore_index, gamma, reduction):
    logp = log_softmax(x, axis=ax)  # the one log-softmax
    valid = t != ignore_index
    safe = xp.where(valid, t, xp.zeros_like(t))  # ignored entries gather class 0, then get masked out
    lp = _pick(xp, logp, safe, ax)
    per = -lp
    if gamma != 0:
        per = per * (-xp.expm1(lp)) ** gamma  # 1 - p_t = -expm1(log p_t): exact near p_t = 1
    if a is not None:
        per = per * xp.reshape(xp.take(a, xp.reshape(safe, (-1,)), axis=0), tuple(safe.shape))
    per = xp.where(valid, per, 0.0)
    return _reduce(xp, per, reduction, xp.sum(xp.astype(valid, x.dtype)))
