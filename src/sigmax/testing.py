"""Test helpers: the one per-dtype tolerance table, array backends, and comparisons.

Every test in the project compares numbers through :func:`assert_close`, whose tolerances come from
:data:`TOLERANCES` (derived from ``finfo(dtype).eps``), never a hand-picked ``1e-8``. Users can use
the same helpers to test their own code against sigmax.

Example:
    >>> import numpy as np
    >>> from sigmax.testing import assert_close, tolerance
    >>> tolerance("float32")["rtol"] == 16 * float(np.finfo(np.float32).eps)
    True
    >>> assert_close(np.float32(1.0) + np.float32(1e-7), 1.0)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["TOLERANCES", "tolerance", "assert_close", "to_numpy", "Backend", "available_backends", "ulp_error"]

_EPS = {
    "float64": float(np.finfo(np.float64).eps),
    "float32": float(np.finfo(np.float32).eps),
    "float16": float(np.finfo(np.float16).eps),
    "bfloat16": 2.0**-7,
}

#: rtol = 16 eps (a few roundings in a fused chain of operations), atol = rtol times the typical
#: magnitude 1 of probabilities and log-probabilities. Loosen per call with ``factor=`` only where a
#: test states why (for example a sum over many terms).
TOLERANCES: dict[str, dict[str, float]] = {
    name: {"rtol": 16 * eps, "atol": 16 * eps} for name, eps in _EPS.items()
}


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).replace("torch.", "").replace("dtype(", "").replace(")", "").strip("'\"")
    return name


def tolerance(dtype: Any, factor: float = 1.0) -> dict[str, float]:
    """``{"rtol", "atol"}`` for ``dtype`` (a dtype object or its name), optionally scaled."""
    name = _dtype_name(dtype)
    if name not in TOLERANCES:
        raise KeyError(f"no tolerance for dtype {dtype!r}; known: {sorted(TOLERANCES)}")
    t = TOLERANCES[name]
    return {"rtol": t["rtol"] * factor, "atol": t["atol"] * factor}


def to_numpy(x: Any) -> np.ndarray:
    """Any array (NumPy, torch on any device, JAX, lists) as a float64-or-native NumPy array."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    if type(x).__module__.startswith("jax"):
        if "bfloat16" in str(x.dtype):
            import jax.numpy as jnp

            x = x.astype(jnp.float32)
    return np.asarray(x)


def assert_close(actual: Any, expected: Any, dtype: Any = None, *, factor: float = 1.0,
                 equal_nan: bool = True, err_msg: str = "") -> None:
    """Assert ``actual`` equals ``expected`` within the tolerance of ``dtype`` (default: ``actual``'s).

    Infinities must match exactly; NaN equals NaN unless ``equal_nan=False``.
    """
    a = to_numpy(actual)
    e = to_numpy(expected)
    if dtype is None:
        dtype = getattr(actual, "dtype", a.dtype)
    tol = tolerance(dtype, factor)
    np.testing.assert_allclose(a.astype(np.float64), np.asarray(e, dtype=np.float64), equal_nan=equal_nan,
                               err_msg=err_msg, **tol)


def ulp_error(actual: Any, exact: Any, dtype: Any) -> np.ndarray:
    """Error of ``actual`` against high-precision ``exact`` (float64 array or mpmath values), in
    units in the last place of ``dtype`` at the exact value (subnormal spacing below the normal range).

    Equal infinities and matching NaNs count as 0 ulp.
    """
    np_dtype = np.dtype(_dtype_name(dtype)) if _dtype_name(dtype) != "bfloat16" else np.dtype(np.float32)
    a = to_numpy(actual).astype(np.float64)
    e = np.asarray([float(v) for v in np.ravel(exact)], dtype=np.float64).reshape(np.shape(exact))
    with np.errstate(all="ignore"):
        spacing = np.abs(np.spacing(np.abs(e).astype(np_dtype))).astype(np.float64)
        err = np.abs(a - e) / spacing
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    return np.where(same, 0.0, err)


@dataclass(frozen=True)
class Backend:
    """An array library the tests run on."""

    name: str
    asarray: Callable[..., Any]  # asarray(values, dtype="float32") -> native array
    xp: Any

    def __repr__(self) -> str:
        return self.name


def _numpy_backend() -> Backend:
    def asarray(v, dtype="float64"):
        return np.asarray(v, dtype=np.dtype(dtype) if dtype != "bfloat16" else np.float32)

    return Backend("numpy", asarray, np)


def _torch_backend() -> Backend:
    import torch

    def asarray(v, dtype="float64", requires_grad=False):
        t = torch.as_tensor(np.asarray(v), dtype=getattr(torch, dtype))
        return t.requires_grad_(requires_grad) if requires_grad else t

    return Backend("torch", asarray, torch)


def _jax_backend() -> Backend:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def asarray(v, dtype="float64"):
        return jnp.asarray(np.asarray(v), dtype=getattr(jnp, dtype))

    return Backend("jax", asarray, jnp)


def available_backends() -> list[Backend]:
    """NumPy always; PyTorch and JAX where installed (JAX with 64-bit floats enabled)."""
    out = [_numpy_backend()]
    if importlib.util.find_spec("torch") is not None:
        out.append(_torch_backend())
    if importlib.util.find_spec("jax") is not None:
        out.append(_jax_backend())
    return out
