"""Array plumbing shared by every module: namespaces, the dtype policy, axis handling, validation.

Everything that touches "which array library is this, and in which dtype do we compute" lives
here, so that the math modules read like math.

Policy (docs/ARCHITECTURE.md, the dtype policy):

* NumPy arrays, PyTorch tensors, JAX arrays and any Array-API array are accepted and the result
  has the input's array type and device. Python lists and scalars become NumPy.
* Floating input keeps its dtype. float16 and bfloat16 are *computed* in float32 and the result
  is cast back. Integer and boolean input is promoted to the library's default floating dtype
  (float64 for NumPy, ``torch.get_default_dtype()`` for PyTorch, float32 for JAX unless x64).
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
from typing import Any, NamedTuple, Sequence

import array_api_compat
import numpy as np

__all__ = [
    "Prepared",
    "prepare",
    "finish",
    "namespace",
    "is_torch",
    "is_jax",
    "is_numpy",
    "resolve_axis",
    "normalize_axis",
    "default_float",
    "is_floating",
    "is_half",
    "device_of",
    "empty_reduction",
    "reduced_shape",
]


def quiet(fn):
    """Decorator: silence NumPy's floating-point warnings inside ``fn``. The infinities (log 0), NaNs
    (NaN in, or a mean over no entries as in PyTorch) and underflows that sigmax returns are intended.

    Under ``torch.compile`` tracing the NumPy state is left alone (``np.errstate`` is not traceable, and
    no NumPy arithmetic runs there): the call is traced as it is, without a graph break."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        compiling = _IS_COMPILING[0]
        if compiling is None:
            compiling = _is_compiling()
        if compiling():
            return fn(*args, **kwargs)
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _false() -> bool:
    return False


_IS_COMPILING: list = [None]  # torch.compiler.is_compiling, once torch is imported


def _is_compiling():
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "compiler"):
        return _false  # (looked up again on the next call: torch may be imported later)
    _IS_COMPILING[0] = torch.compiler.is_compiling
    return _IS_COMPILING[0]


def namespace(*arrays: Any):
    """The Array-API namespace shared by ``arrays`` (``None`` entries are skipped)."""
    present = [a for a in arrays if a is not None]
    try:
        return array_api_compat.array_namespace(*present)
    except TypeError as exc:
        kinds = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in present})
        raise TypeError(
            f"sigmax got arrays from different libraries ({', '.join(kinds)}); "
            "convert them to one library (for example all torch tensors) before calling"
        ) from exc


def is_torch(xp) -> bool:
    return array_api_compat.is_torch_namespace(xp)


def is_jax(xp) -> bool:
    return array_api_compat.is_jax_namespace(xp)


def is_numpy(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def default_float(xp, device=None):
    """The library's default floating dtype (float64 NumPy, torch default, float32/64 JAX)."""
    if is_torch(xp):
        import torch

        return torch.get_default_dtype()
    try:
        info = xp.__array_namespace_info__()
        return info.default_dtypes(device=device)["real floating"]
    except (AttributeError, TypeError):  # pragma: no cover - very old namespaces
        return xp.float64


def _is_numpy_bfloat16(dtype) -> bool:
    # ml_dtypes.bfloat16 (what JAX hands NumPy) is a NumPy extension dtype of kind "V": NumPy's own
    # isdtype/issubdtype do not know it as floating, so it is recognised by name (O(1), no import).
    return getattr(dtype, "name", None) == "bfloat16"


def is_floating(xp, dtype) -> bool:
    if is_torch(xp):
        return dtype.is_floating_point
    if is_numpy(xp) and _is_numpy_bfloat16(dtype):
        return True
    try:
        return xp.isdtype(dtype, "real floating")
    except (AttributeError, TypeError):  # pragma: no cover
        return np.issubdtype(np.dtype(dtype), np.floating)


def is_half(xp, dtype) -> bool:
    """float16 or bfloat16: stored narrow, computed in float32."""
    half = getattr(xp, "float16", None)  # array_api_compat's Dask namespace has none (the standard does not)
    if half is not None and dtype == half:
        return True
    if is_torch(xp):
        import torch

        return dtype == torch.bfloat16
    name = str(dtype)
    return "bfloat16" in name


class Prepared(NamedTuple):
    """An input converted for computation, and what is needed to give the result back."""

    xp: Any
    x: Any  # in the compute dtype (float32 for half input)
    out_dtype: Any  # the dtype the caller gets back
    numpy_scalar: bool  # NumPy input: a 0-d result is returned as a NumPy scalar, as NumPy does


def prepare(x: Any, *, name: str = "x", xp=None) -> Prepared:
    """Convert ``x`` to an array of a floating compute dtype.

    Lists and scalars become NumPy; integer/bool input is promoted to the default float; float16
    and bfloat16 (PyTorch's, JAX's and NumPy's ``ml_dtypes.bfloat16``) are upcast to float32 for
    computation (``finish`` casts back). For NumPy input ``numpy_scalar`` is set: ``finish`` then
    returns a 0-d result as a NumPy scalar (``np.float64``, ...), as NumPy's own reductions do.
    """
    if xp is None:
        if isinstance(x, (numbers.Number, np.generic)) or isinstance(x, (list, tuple)):
            try:
                x = np.asarray(x)
            except ValueError as exc:
                raise ValueError(f"{name} must be a rectangular array of numbers: {exc}") from exc
        if isinstance(x, np.ndarray) and x.dtype == object:
            raise TypeError(f"{name} must hold numbers, got an array of Python objects")
        if isinstance(x, str) or not array_api_compat.is_array_api_obj(x):
            raise TypeError(
                f"{name} must be an array (NumPy, PyTorch, JAX, ...), a list or a number; "
                f"got {type(x).__name__}"
            )
        xp = namespace(x)
    dtype = x.dtype
    if is_floating(xp, dtype):
        out_dtype = dtype
        if is_half(xp, dtype):
            x = xp.astype(x, xp.float32)  # half precision: compute in float32, cast back by finish
    elif dtype == xp.bool or _is_integer(xp, dtype):
        out_dtype = default_float(xp, _device(x))
        x = xp.astype(x, out_dtype)
    else:
        raise TypeError(f"{name} must be real-valued (float, int or bool), got dtype {dtype}")
    return Prepared(xp, x, out_dtype, is_numpy(xp))


def _is_integer(xp, dtype) -> bool:
    if is_torch(xp):
        return not dtype.is_floating_point and not dtype.is_complex and dtype != xp.bool
    try:
        return xp.isdtype(dtype, "integral")
    except (AttributeError, TypeError):  # pragma: no cover
        return np.issubdtype(np.dtype(dtype), np.integer)


def _device(x):
    try:
        return array_api_compat.device(x)
    except Exception:  # pragma: no cover - libraries without devices
        return None


def finish(p: Prepared, out: Any) -> Any:
    """Cast ``out`` back to the caller's dtype (half precision: from float32 to float16/bfloat16).

    NumPy: a 0-d result becomes a NumPy scalar (``np.float64``, ``ml_dtypes.bfloat16``, ...), as
    NumPy's and SciPy's own reductions return; PyTorch and JAX keep their 0-d arrays. A caller that
    needs a 0-d NumPy array passes ``p._replace(numpy_scalar=False)``.
    """
    if out.dtype != p.out_dtype:
        out = p.xp.astype(out, p.out_dtype)
    if p.numpy_scalar and type(out) is np.ndarray and out.ndim == 0:
        return out[()]
    return out


def like(xp, value: Any, ref: Any, *, name: str):
    """``value`` (an array of ``ref``'s library, a NumPy array, a list or a number) as an array of
    ``ref``'s library, device and dtype. NumPy values are host data (thresholds, weights) and are
    moved to ``ref``'s library; an array of a third library is refused."""
    if array_api_compat.is_array_api_obj(value) and not isinstance(value, (np.ndarray, np.generic)):
        if namespace(value) is not xp:
            raise TypeError(
                f"{name} is a {type(value).__module__.split('.')[0]} array but x is a "
                f"{type(ref).__module__.split('.')[0]} array; give {name} as the same kind of array"
            )
    else:
        try:
            value = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numbers or an array, got {value!r}") from exc
        if not is_numpy(xp):
            value = xp.asarray(value, device=_device(ref))
    return xp.astype(value, ref.dtype) if value.dtype != ref.dtype else value


def as_mask(xp, where: Any, x: Any, *, name: str = "where"):
    """``where`` as a boolean array of ``x``'s library and device, broadcastable to ``x``."""
    if where is None:
        return None
    if not array_api_compat.is_array_api_obj(where):
        where = np.asarray(where)  # a list of booleans
        if not is_numpy(xp):
            where = xp.asarray(where, device=_device(x))
    elif namespace(where) is not xp and not (is_numpy(xp) and is_numpy(namespace(where))):
        raise TypeError(f"{name} must be an array of the same library as x, got {type(where).__name__}")
    if where.dtype != xp.bool:
        raise TypeError(f"{name} must be a boolean mask (True = keep), got dtype {where.dtype}")
    try:
        np.broadcast_shapes(tuple(where.shape), tuple(x.shape))
    except ValueError:
        raise ValueError(
            f"{name} has shape {tuple(where.shape)}, which does not broadcast to x's shape "
            f"{tuple(x.shape)}; give a mask of x's shape (True = keep)"
        ) from None
    return where


def device_of(x: Any) -> Any:
    """The device of array ``x`` (``None`` for libraries without devices)."""
    return _device(x)


def empty_reduction(shape: Sequence[int], axis: Any) -> bool:
    """Whether reducing an array of ``shape`` over ``axis`` (normalized: an int, a tuple or ``None``
    for all) reduces over no entries at all. O(1) in the data: shape inspection only."""
    if axis is None:
        return 0 in tuple(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return any(shape[a] == 0 for a in axes)


def reduced_shape(shape: Sequence[int], axis: Any) -> tuple:
    """The shape of a ``keepdims=True`` reduction of ``shape`` over ``axis`` (normalized)."""
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(1 if i in axes else int(d) for i, d in enumerate(shape))


def resolve_axis(axis: Any, dim: Any, *, default: Any = -1) -> Any:
    """Accept PyTorch's ``dim=`` as an alias of ``axis=``; passing both (differently) is an error."""
    if dim is None:
        return axis
    if axis is not None and axis != default and axis != dim:
        raise TypeError(f"got axis={axis!r} and dim={dim!r}; pass only one of them (dim is an alias of axis)")
    return dim


def normalize_axis(axis: Any, ndim: int, *, name: str = "axis", allow_tuple: bool = False,
                   allow_none: bool = False) -> Any:
    """Check ``axis`` against ``ndim`` and make it non-negative (a tuple stays a sorted tuple)."""
    if axis is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be an integer, not None")
    if isinstance(axis, Sequence) and not isinstance(axis, str):
        if not allow_tuple:
            raise TypeError(f"{name} must be a single integer, got {axis!r}")
        axes = tuple(normalize_axis(a, ndim, name=name) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name}={axis!r} repeats an axis")
        return tuple(sorted(axes))
    if isinstance(axis, bool) or not isinstance(axis, (numbers.Integral,)):
        raise TypeError(f"{name} must be an integer, got {axis!r}")
    axis = int(axis)
    if ndim == 0:
        raise ValueError(f"{name}={axis} is not valid for a 0-d (scalar) input; give at least a 1-d array")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{name}={axis} is out of range for an input with {ndim} dimension(s); "
            f"use a value in [{-ndim}, {ndim - 1}]"
        )
    return axis % ndim


def check_temperature(xp, temperature: Any, x: Any, *, values: bool = True):
    """Validate a softmax temperature: a positive finite number (or positive array broadcastable).

    ``values=False`` skips reading an array temperature's values: the caller passes it for abstract
    values (``jax.jit``, ``torch.func``, ``torch.compile``: :func:`sigmax._dispatch.is_traced`)."""
    if temperature is None:
        return None
    if isinstance(temperature, numbers.Real) and not isinstance(temperature, bool):
        t = float(temperature)
        if not 0.0 < t < math.inf:  # (comparisons, not np.isfinite: torch.compile traces them)
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        return None if t == 1.0 else t
    if not array_api_compat.is_array_api_obj(temperature):
        raise TypeError(f"temperature must be a positive number or array, got {type(temperature).__name__}")
    t = xp.asarray(temperature)
    if values and (not bool(xp.all(t > 0)) or not bool(xp.all(xp.isfinite(t)))):
        raise ValueError("temperature must be positive and finite everywhere")
    return xp.astype(t, x.dtype) if t.dtype != x.dtype else t
