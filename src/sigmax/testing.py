"""Test helpers: the one per-dtype tolerance table, array backends, and comparisons.

Every test in the project compares numbers through :func:`assert_close`, whose tolerances come from
:data:`TOLERANCES` (:mod:`sigmax._tolerance`, derived from ``finfo(dtype).eps``), never a hand-picked ``1e-8``. Users can use
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

__all__ = ["TOLERANCES", "tolerance", "assert_close", "to_numpy", "Backend", "available_backends", "ulp_error",
           "PeakMemory", "peak_memory"]

from ._tolerance import TOLERANCES, tolerance  # the one tolerance table, re-exported for tests


def _dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "").replace("dtype(", "").replace(")", "").strip("'\"")


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


# ---------------------------------------------------------------------------------------------
# accuracy against mpmath
# ---------------------------------------------------------------------------------------------

#: functions measured by :func:`measure_accuracy`, with how their error is scaled:
#: "result" = ulps of the exact result; "input" = ulps of max(|exact result|, max |x| of the row), the
#: conditioning of log-sum-exp and log-softmax (rounding an input by half an ulp moves the result that
#: much); "log" = ulps of the result divided by max(1, |log p|, max |x|): the same conditioning seen
#: through exp (p = exp(log p), so an absolute error d in log p is a relative error d in p).
ACCURACY_FUNCTIONS = {
    "sigmoid": "result",
    "log_sigmoid": "result",
    "softplus": "result",
    "logit": "result",
    "softmax": "log",
    "log_softmax": "input",
    "logsumexp": "input",
}


def accuracy_grid(name: str, dtype: str, n: int = 1500, seed: int = 0) -> np.ndarray:
    """Inputs spanning the finite range of ``dtype``: both signs, subnormals to the largest finite
    value for elementwise functions; (0, 1) from the smallest subnormal to 1 - eps/2 for ``logit``;
    rows of 6 logits whose scale runs over the whole exponent range for the row functions."""
    np_dtype = np.dtype(dtype)
    fi = np.finfo(np_dtype)
    rng = np.random.default_rng(seed)
    tiny = float(fi.smallest_subnormal)
    if name == "logit":
        small = np.geomspace(tiny, 0.5, n // 2)
        near_one = 1.0 - np.geomspace(float(fi.epsneg), 0.5, n // 4)
        near_half = 0.5 + rng.uniform(-0.2, 0.2, n // 4) * np.geomspace(1e-15, 1, n // 4)
        x = np.concatenate([small, near_one, near_half])
        return np.unique(x.astype(np_dtype))
    if ACCURACY_FUNCTIONS[name] == "result" and name not in ("softmax", "log_softmax"):
        with np.errstate(over="ignore"):
            mag = np.minimum(np.geomspace(tiny, float(fi.max) / 2, n), float(fi.max))
        x = np.concatenate([-mag, [0.0], mag, rng.normal(scale=30.0, size=n)])
        return x.astype(np_dtype)
    rows = n // 3
    scale = np.geomspace(1e-3, float(fi.max) / 16, rows)
    x = rng.normal(size=(rows, 6)) * scale[:, None]
    x = np.concatenate([x, rng.normal(scale=20, size=(rows, 6)), rng.normal(scale=1e-3, size=(rows, 6))])
    return x.astype(np_dtype)


_REFERENCE_CACHE: dict = {}


def _cached_reference(name: str, dtype: str, n: int) -> np.ndarray:
    key = (name, dtype, n)
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = mp_reference(name, accuracy_grid(name, dtype, n))
    return _REFERENCE_CACHE[key]


def mp_reference(name: str, x: np.ndarray, dps: int = 60) -> np.ndarray:
    """The exact value of ``name`` at ``x`` (rounded to float64 at the end), computed with mpmath."""
    import mpmath

    with mpmath.workdps(dps):
        def lse(row):
            vals = [mpmath.mpf(float(v)) for v in row]
            m = max(vals)
            return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in vals))

        if name in ("softmax", "log_softmax", "logsumexp"):
            out = []
            for row in np.asarray(x, dtype=np.float64):
                L = lse(row)
                if name == "logsumexp":
                    out.append(float(L))
                elif name == "log_softmax":
                    out.append([float(mpmath.mpf(float(v)) - L) for v in row])
                else:
                    out.append([float(mpmath.exp(mpmath.mpf(float(v)) - L)) for v in row])
            return np.asarray(out, dtype=np.float64)
        f = {
            "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
            "log_sigmoid": lambda v: -mpmath.log1p(mpmath.exp(-v)),
            "softplus": lambda v: mpmath.log1p(mpmath.exp(v)),
            "logit": lambda v: mpmath.log(v / (1 - v)),
        }[name]
        return np.asarray([float(f(mpmath.mpf(float(v)))) for v in np.ravel(x)], dtype=np.float64).reshape(np.shape(x))


def measure_accuracy(name: str, backend: Backend, dtype: str, n: int = 1500, fn: Callable | None = None) -> float:
    """Maximum error of ``sigmax.<name>`` (or of ``fn``, a peer's version of it) against mpmath over
    :func:`accuracy_grid`, in ulps (scaled as :data:`ACCURACY_FUNCTIONS` says)."""
    import sigmax

    x = accuracy_grid(name, dtype, n)
    exact = _cached_reference(name, dtype, n)
    fn = fn or getattr(sigmax, name)
    with np.errstate(all="ignore"):
        got = to_numpy(fn(backend.asarray(x, dtype))).astype(np.float64)
    mode = ACCURACY_FUNCTIONS[name]
    xmax = np.max(np.abs(x.astype(np.float64)), axis=-1, keepdims=name != "logsumexp") if x.ndim == 2 else 0.0
    with np.errstate(all="ignore"):
        if mode == "input":
            scale = np.maximum(np.abs(exact), xmax)
            spacing = np.spacing(scale.astype(np.dtype(dtype))).astype(np.float64)
            err = np.where(got == exact, 0.0, np.abs(got - exact) / spacing)
        elif mode == "log":
            kappa = np.maximum(1.0, np.maximum(np.abs(np.log(exact)), xmax))
            err = ulp_error(got, exact, dtype) / kappa
        else:
            err = ulp_error(got, exact, dtype)
    if backend.name == "jax":  # XLA flushes subnormals to zero: measure the normal range only
        tiny = float(np.finfo(np.dtype(dtype)).tiny)
        normal = (np.abs(exact) >= tiny) | (exact == 0)
        if x.shape == exact.shape:
            normal &= (np.abs(x.astype(np.float64)) >= tiny) | (x == 0)
        err = np.where(normal, err, 0.0)
    return float(np.nanmax(err))


# ------------------------------------------------------------------------------------ memory of a process
@dataclass
class PeakMemory:
    """What :func:`peak_memory` saw of a child process: its exit status, its peak anonymous resident memory
    (``RssAnon``: heap, NumPy buffers; not the page cache of memory-mapped files), its peak resident set
    (``VmHWM``, file pages included), the wall seconds and its output."""

    returncode: int
    rss_anon: int
    vm_hwm: int
    seconds: float
    stdout: str
    stderr: str


def peak_memory(argv: list[str], *, env: dict | None = None, interval: float = 0.002) -> PeakMemory:
    """Run ``argv`` as a child process and poll its ``/proc/PID/status`` every ``interval`` seconds (Linux).

    Measured on the process, not with ``tracemalloc`` (which sees only Python's allocator): the peak of
    ``RssAnon`` is what a memory budget bounds.

    Example:
        >>> import sys
        >>> run = peak_memory([sys.executable, "-c", "import numpy as np; a = np.ones(50_000_000)"])  # doctest: +SKIP
        >>> run.returncode, run.rss_anon > 350e6  # doctest: +SKIP
        (0, True)
    """
    import subprocess
    import time

    t0 = time.perf_counter()
    p = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    status, anon, hwm = f"/proc/{p.pid}/status", 0, 0
    while p.poll() is None:
        try:
            with open(status) as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]) * 1024)
                    elif line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) * 1024)
        except OSError:  # the child is exiting
            break
        time.sleep(interval)
    out, err = p.communicate()
    return PeakMemory(p.returncode, anon, hwm, time.perf_counter() - t0, out.decode(errors="replace"),
                      err.decode(errors="replace"))
