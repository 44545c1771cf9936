"""The losses' argument and target checks: every error message about a loss's inputs is written here.

Checks that read values (class indices in range, probabilities in [0, 1], probability targets that
are distributions) step aside when any operand is abstract (:func:`sigmax._dispatch.is_traced`: JAX
tracers, ``torch.compile``, ``torch.func``, ``vmap``), and also when the check's own result comes back
traced (a concrete array closed over by ``jax.jit`` is staged too): tracing never breaks, and there
out-of-range indices are not detected. "Is this a distribution?" uses the one tolerance rule,
:func:`sigmax._tolerance.sum_tolerance`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import array_api_compat
import numpy as np

from array_api_compat import device as _device

from ._array import is_floating, is_jax, is_numpy, is_torch, namespace, normalize_axis, prepare
from ._array import resolve_axis
from ._dispatch import is_traced
from ._inputs import to_numpy
from ._losses_core import REDUCTIONS, along, run
from ._tolerance import sum_tolerance

def _is_integer(xp, dtype) -> bool:
    if is_torch(xp):
        return not dtype.is_floating_point and not dtype.is_complex and dtype != xp.bool
    return xp.isdtype(dtype, "integral")


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'none', 'mean' or 'sum'; got {reduction!r}")
    return reduction


def float_input(x: Any, *, fn: str, name: str = "input", what: str = "logits"):
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


def range_text(a: Any) -> str:
    """'values from lo to hi (and NaN)' for an error message."""
    v = to_numpy(a).astype(np.float64).ravel()
    nan = np.isnan(v)
    text = f"values from {v[~nan].min():.4g} to {v[~nan].max():.4g}" if (~nan).any() else "only NaN"
    return text + (" and NaN" if nan.any() and (~nan).any() else "")


def array_of(xp, value: Any, ref: Any, *, name: str, fn: str):
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


def float_like(xp, value: Any, ref: Any, *, name: str, fn: str):
    """A float array (weights, probability targets) in ``ref``'s compute dtype."""
    v = array_of(xp, value, ref, name=name, fn=fn)
    if not is_floating(xp, v.dtype):
        if v.dtype == xp.bool or _is_integer(xp, v.dtype):
            v = xp.astype(v, ref.dtype)  # 0/1 labels or integer weights are numbers too
        else:
            raise TypeError(f"{fn}: {name} must be real numbers, got dtype {v.dtype}")
    return xp.astype(v, ref.dtype) if v.dtype != ref.dtype else v


def class_axis(axis: Any, dim: Any, ndim: int, *, fn: str) -> int:
    ax = resolve_axis(axis, dim, default=None)
    if ndim == 0:
        raise ValueError(f"{fn}: input is a 0-d scalar; it needs a class axis (shape (C,), (N, C) or "
                         f"(N, C, d1, ...))")
    if ax is None:
        return 0 if ndim == 1 else 1  # PyTorch's rule: classes on axis 1, or axis 0 for 1-D input
    return normalize_axis(ax, ndim)


def class_weight(xp, weight: Any, x, ax: int, *, fn: str, name: str = "weight"):
    """PyTorch's per-class ``weight``: a 1-D array with one entry per class."""
    if weight is None:
        return None
    w = float_like(xp, weight, x, name=name, fn=fn)
    c = x.shape[ax]
    if w.ndim != 1 or w.shape[0] != c:
        raise ValueError(
            f"{fn}: {name} has shape {tuple(w.shape)} but input has {c} classes along axis {ax} "
            f"(input shape {tuple(x.shape)}); give one {name} per class, shape ({c},)"
        )
    return w


def split_target(xp, x, target: Any, ax: int, *, fn: str, axis_given: bool, allow_probs: bool = True):
    """Decide PyTorch's way between class-index targets (input's shape without the class axis) and
    class-probability targets (input's shape); return ``(target, is_probs)``."""
    t = array_of(xp, target, x, name="target", fn=fn)
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


def check_indices(xp, x, t, c: int, ignore_index: int, *, fn: str) -> None:
    """Class indices must lie in [0, C) unless they equal ``ignore_index`` (PyTorch: 'Target 7 is out of
    bounds', or a device-side assert on CUDA). The kernels rely on it: they take validated targets."""
    if 0 in tuple(t.shape) or is_traced(x, t):
        return
    pair = _two_numbers(xp, run(xp, _min_max_core, t))
    if pair is None:
        return  # staged by an enclosing jax.jit: step aside
    lo, hi = pair
    if lo >= 0 and hi < c:
        return  # the common case, from two read-only reductions
    tn = to_numpy(t)
    bn = ((tn < 0) | (tn >= c)) & (tn != ignore_index)
    if bn.any():
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


def in_unit_interval(xp, t, *others) -> bool:
    """All values in [0, 1] (NaN is not), from two read-only reductions; ``True`` (not checked) when
    ``t`` or any of ``others`` is traced."""
    if 0 in tuple(t.shape) or is_traced(t, *others):
        return True
    pair = _two_numbers(xp, run(xp, _min_max_core, t))
    if pair is None:
        return True  # staged by an enclosing jax.jit
    lo, hi = pair
    return lo >= 0 and hi <= 1


def _two_numbers(xp, pair):
    """Two 0-d arrays as Python numbers, with a single device synchronisation on PyTorch; ``None`` if
    they are JAX tracers (the check ran inside an enclosing ``jit``)."""
    if isinstance(pair[0], np.generic):
        return [pair[0].item(), pair[1].item()]
    if is_torch(xp):
        import torch

        return torch.stack(list(pair)).tolist()
    if is_jax(xp) and is_traced(*pair):
        return None
    return [v.item() if hasattr(v, "item") else v for v in pair]


def _prob_flags_core(xp, t, *, ax, tol):
    """(any value below -tol, any row not summing to 1 within ``tol``); NaN sums count as not summing to 1."""
    return xp.min(t) < -tol, xp.any(~(xp.abs(xp.sum(t, axis=ax) - 1.0) <= tol))


def check_prob_targets(xp, x, t, ax: int, dtypes, *, fn: str) -> None:
    """Class-probability targets must be >= 0 and sum to 1 along the class axis, within
    ``sum_tolerance(dtype, C)`` for the coarser of ``dtypes`` (the target's and the input's): rows
    rounded to 4 decimals, float16 softmax outputs and gradcheck's perturbations pass, tiny negatives
    within the tolerance too."""
    if 0 in tuple(t.shape) or is_traced(x, t):
        return
    c = t.shape[ax]
    tol = max(sum_tolerance(d, c) for d in dtypes)
    flags = run(xp, _prob_flags_core, t, ax=ax, tol=tol)
    if is_jax(xp) and is_traced(*flags):
        return  # staged by an enclosing jax.jit
    negative, off_any = (bool(v) for v in flags)
    if negative:
        raise ValueError(
            f"{fn}: target has input's shape, so it holds class probabilities, but it has negative "
            f"values (min {float(np.nanmin(to_numpy(t))):.4g}, beyond the tolerance {tol:.2g}); "
            f"probabilities must be >= 0"
        )
    if off_any:
        tn = to_numpy(t).astype(np.float64)
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
            f"{off.size} rows along the class axis {ax} do not sum to 1 within {tol:.2g} (row sums: "
            f"{range_text(sums)}). Normalize them "
            f"(target / target.sum({ax}, keepdims=True)); if several classes can be true at once, "
            f"use binary_cross_entropy_with_logits"
        )


def check_label_smoothing(label_smoothing: Any, *, fn: str) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def check_ignore_index(ignore_index: Any, *, fn: str) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{fn}: ignore_index must be an integer, got {ignore_index!r}")
    return int(ignore_index)


def same_shape_target(xp, x, target: Any, *, fn: str, name: str = "input"):
    """The elementwise (binary) losses' target: same shape as the input, values in [0, 1]."""
    t = float_like(xp, target, x, name="target", fn=fn)
    if tuple(t.shape) != tuple(x.shape):
        raise ValueError(
            f"{fn}: target has shape {tuple(t.shape)} but {name} has shape {tuple(x.shape)}; they must "
            f"be equal (one target per score). If the target holds class indices of a multi-class "
            f"problem, use cross_entropy"
        )
    if not in_unit_interval(xp, t, x):
        raise ValueError(
            f"{fn}: target must hold probabilities in [0, 1] (0/1 labels or soft labels); got "
            f"{range_text(t)}. For labels in {{-1, 1}} use (target + 1) / 2"
        )
    return t


def elementwise_weight(xp, weight: Any, x, axis: Any, dim: Any, *, fn: str, name: str):
    """A rescaling weight broadcast to the input's shape (PyTorch broadcasts it like NumPy); with
    ``axis=`` a 1-D weight lies along that axis instead of the last one."""
    if weight is None:
        return None
    w = float_like(xp, weight, x, name=name, fn=fn)
    ax = resolve_axis(axis, dim, default=None)
    if ax is not None:
        ax = normalize_axis(ax, x.ndim)
        if w.ndim != 1 or w.shape[0] != x.shape[ax]:
            raise ValueError(
                f"{fn}: with axis={ax}, {name} must be 1-D with one entry per class ({x.shape[ax]}), "
                f"got shape {tuple(w.shape)}"
            )
        w = along(xp, w, x.ndim, ax)
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


def check_gamma(gamma: Any, *, fn: str) -> float:
    # (comparisons, not np.isfinite: torch.compile traces them, also for a symbolic float)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 <= float(gamma) < math.inf:
        raise ValueError(f"{fn}: gamma must be a finite number >= 0 (0 gives the plain cross-entropy), "
                         f"got {gamma!r}")
    return float(gamma)


