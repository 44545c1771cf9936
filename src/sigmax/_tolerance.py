r"""The one tolerance table: how far a number may be from what it should be, per dtype.

Every check in the library (declared probabilities, probability targets, log-probabilities, the
diagnostics of :func:`sigmax.check`) and every comparison in the tests draws from here;
:mod:`sigmax.testing` re-exports it. Nothing else in sigmax writes an ``eps`` or a ``1e-6``.

Two kinds of tolerance:

* **Comparisons** (:func:`tolerance`, :data:`TOLERANCES`): ``rtol = atol = 16 eps`` of the dtype, a few
  roundings in a fused chain of operations. Tests loosen them per call with ``factor=`` only where they
  say why.
* **"Is this a distribution?"** (:func:`sum_tolerance`): how far a row of ``n`` probabilities may sum
  from 1 (or a log-sum-exp from 0, or a probability lie below 0 or above 1) and still be accepted:

  .. math::
      \tau(\text{dtype}, n) = \max\big(10^{-3},\; 4\,\varepsilon_\text{dtype},\;
                                 4\sqrt{n}\,\varepsilon_\text{acc}\big)

  where :math:`\varepsilon_\text{dtype}` is the machine epsilon of the dtype the values are *stored* in
  (each stored probability carries a relative rounding of :math:`\varepsilon/2`, so the row's sum is off
  by at most :math:`\varepsilon/2`), :math:`\varepsilon_\text{acc}` that of the dtype the sum is
  accumulated in (float32 for half and single precision, float64 for double), and :math:`10^{-3}` the
  floor for data people really pass: rows rounded to 4 decimals (summing to 0.9999), probabilities
  written to a CSV with a few digits, gradcheck's perturbations of a target. A row off by more than
  that (0.99, 1.1, a negative entry of -0.01) is clearly not a distribution and is refused.

Example:
    >>> from sigmax._tolerance import sum_tolerance, eps
    >>> sum_tolerance("float32", 10)
    0.001
    >>> round(sum_tolerance("bfloat16", 1000), 6)   # 4 eps of bfloat16
    0.03125
    >>> eps("float16") == 2.0 ** -10
    True
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["EPS", "TOLERANCES", "ROUNDED_DATA_FLOOR", "dtype_name", "eps", "tolerance", "sum_tolerance", "spacing"]

#: machine epsilon (the gap between 1 and the next number) per dtype name
EPS: dict[str, float] = {
    "float64": 2.0**-52,
    "float32": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
}

#: comparisons: rtol = 16 eps (a few roundings in a fused chain of operations), atol = rtol times the
#: typical magnitude 1 of probabilities and log-probabilities
TOLERANCES: dict[str, dict[str, float]] = {name: {"rtol": 16 * e, "atol": 16 * e} for name, e in EPS.items()}

#: the smallest tolerance of a "sums to 1" check: rows rounded to 4 decimals sum to 0.9999
ROUNDED_DATA_FLOOR = 1e-3


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``np.float32``, ``torch.float32``, ``jnp.float32``, ``"float32"``, ...;
    integer and boolean dtypes (computed in the default float) give ``"float64"``."""
    name = str(getattr(dtype, "name", dtype))
    name = name.replace("torch.", "").replace("dtype(", "").replace(")", "").strip("'\" ")
    if name.startswith("<class"):  # np.float32 itself
        name = name.rsplit(".", 1)[-1].strip("'>")
    return name if name in EPS else "float64"


def eps(dtype: Any) -> float:
    """The machine epsilon of ``dtype`` (:data:`EPS`; non-floating dtypes count as float64)."""
    return EPS[dtype_name(dtype)]


def tolerance(dtype: Any, factor: float = 1.0) -> dict[str, float]:
    """``{"rtol", "atol"}`` for comparing results of ``dtype`` (a dtype object or its name)."""
    name = str(getattr(dtype, "name", dtype)).replace("torch.", "").replace("dtype(", "").replace(")", "")
    name = name.strip("'\" ")
    if name not in TOLERANCES:
        raise KeyError(f"no tolerance for dtype {dtype!r}; known: {sorted(TOLERANCES)}")
    t = TOLERANCES[name]
    return {"rtol": t["rtol"] * factor, "atol": t["atol"] * factor}


def sum_tolerance(dtype: Any, n: int = 1) -> float:
    """How far ``n`` probabilities stored in ``dtype`` may sum from 1 (and a probability lie outside
    [0, 1], a log-probability above 0, a log-sum-exp from 0) and still be accepted; see the module."""
    name = dtype_name(dtype)
    acc = EPS["float64"] if name == "float64" else EPS["float32"]
    return max(ROUNDED_DATA_FLOOR, 4 * EPS[name], 4 * math.sqrt(max(int(n), 1)) * acc)


def spacing(dtype: Any, magnitude: float) -> float:
    """The gap between representable numbers of ``dtype`` near ``magnitude`` (0 for 0, inf, NaN)."""
    if not magnitude > 0 or not math.isfinite(magnitude):
        return 0.0
    return 2.0 ** math.floor(math.log2(magnitude)) * eps(dtype)
