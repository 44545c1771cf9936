"""Number formatting for tables, notes and the report: one notation per column, no ``-0%``, thousands
separators on counts. The CLI (``cli/_output.py``) and the report (``report/``) both format through here.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

__all__ = ["format_bytes", "format_count", "format_number", "format_column", "format_percent", "format_change",
           "format_changes"]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def format_count(n: Any) -> str:
    """A count with thousands separators: ``200,000,000``.

    Example:
        >>> format_count(200000000), format_count(np.int64(1998752)), format_count(7)
        ('200,000,000', '1,998,752', '7')
    """
    return f"{int(n):,}"


def format_bytes(n: float) -> str:
    """A size in bytes with a binary unit: ``1073741824`` → ``'1 GiB'``, ``536870912`` → ``'512 MiB'``.

    Example:
        >>> format_bytes(1 << 30), format_bytes(3 << 19), format_bytes(1000)
        ('1 GiB', '1.5 MiB', '1,000 B')
    """
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f} {unit}"
    return f"{int(n):,} B"


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return None


def format_number(v: Any, digits: int = 4) -> str:
    """Numbers for tables: fixed point where readable, scientific for the very large or small.

    Integers get thousands separators (:func:`format_count`); for a whole column use
    :func:`format_column`, which keeps one notation for every cell.

    Example:
        >>> format_number(0.123456), format_number(9.396e-4), format_number(2.5e7), format_number(1234567)
        ('0.1235', '9.396e-04', '2.500e+07', '1,234,567')
    """
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if _is_int(v):
        return format_count(v)
    v = float(v)
    special = _special(v)
    if special is not None:
        return special
    a = abs(v)
    if 1e-3 <= a < 1e6:
        return f"{v:.{digits}f}"
    return f"{v:.{digits - 1}e}"


def format_column(values: Sequence[Any], digits: int = 4) -> list[str]:
    """Format one column of numbers in one notation: all fixed point, or all scientific.

    Fixed point with ``digits`` decimals when every non-zero magnitude lies in [1e-3, 1e6); fixed
    point with more decimals (up to 8) when the smallest would otherwise lose its digits; scientific
    for every cell otherwise. Strings, ``None``, booleans and integers are formatted as by
    :func:`format_number`.

    Example:
        >>> format_column([9.396e-4, 0.0009, 0.25])
        ['0.0009396', '0.0009000', '0.2500000']
        >>> format_column([1e-12, 0.5])
        ['1.000e-12', '5.000e-01']
    """
    floats = [float(v) for v in values if isinstance(v, (float, np.floating)) and not isinstance(v, bool)]
    mags = [abs(v) for v in floats if math.isfinite(v) and v != 0]
    if not mags:
        return [format_number(v, digits) for v in values]
    lo, hi = min(mags), max(mags)
    if lo >= 1e-3 and hi < 1e6:
        fmt = f"{{:.{digits}f}}"
    else:
        decimals = digits - 1 - math.floor(math.log10(lo))
        fmt = f"{{:.{decimals}f}}" if hi < 1e6 and decimals <= 8 else f"{{:.{digits - 1}e}}"

    def one(v: Any) -> str:
        if isinstance(v, (float, np.floating)) and not isinstance(v, bool):
            return _special(float(v)) or fmt.format(float(v))
        return format_number(v, digits)

    return [one(v) for v in values]


def format_percent(p: float, *, signed: bool = True) -> str:
    """A percentage (``p`` in percent units) that never shows a non-zero value as ``0%``.

    Example:
        >>> format_percent(-0.04), format_percent(12.34), format_percent(-1.26), format_percent(0.0)
        ('-0.04%', '+12%', '-1.3%', '0%')
        >>> format_percent(3e-7)
        '+<0.0001%'
    """
    p = float(p)
    if not math.isfinite(p):
        return format_number(p) + "%"
    if p == 0:
        return "0%"
    sign = ("+" if p > 0 else "-") if signed else ("-" if p < 0 else "")
    a = abs(p)
    if a >= 10:
        body = f"{a:.0f}"
    elif a >= 0.1:
        body = f"{a:.1f}"
    elif a >= 1e-4:
        body = f"{a:.{-math.floor(math.log10(a))}f}"
    else:
        body = "<0.0001"
    return f"{sign}{body}%"


def format_change(after: Any, before: Any, *, digits: int = 4) -> str:
    """The change from ``before`` to ``after``: the signed difference and, where defined, the relative change.

    A change that is not zero never reads as zero: ``-0.04%`` rather than ``(-0%)``, and a difference
    too small for ``digits`` decimals is written in scientific notation.

    Example:
        >>> format_change(0.0412, 0.0845)
        '-0.0433 (-51%)'
        >>> format_change(0.50002, 0.5)
        '+2.000e-05 (+0.004%)'
        >>> format_change(0.3, 0.3), format_change(0.1, 0.0)
        ('0', '+0.1000')
    """
    a, b = float(after), float(before)
    d = a - b
    if not math.isfinite(d):
        return format_number(d)
    if d == 0:
        return "0"
    mag = abs(d)
    body = f"{mag:.{digits}f}" if mag >= 10 ** -digits and mag < 1e6 else f"{mag:.{digits - 1}e}"
    text = ("+" if d > 0 else "-") + body
    if b != 0 and math.isfinite(b):
        text += f" ({format_percent(d / abs(b) * 100)})"
    return text


def format_changes(afters: Sequence[Any], befores: Sequence[Any], *, digits: int = 4) -> list[str]:
    """A column of changes ``after - before``: the signed differences in one notation, each with its relative change.

    The differences are written with ``digits`` decimals, like the before/after columns beside them; a
    difference that is not zero but rounds to zero at that precision is written ``<0.0001`` (never
    ``0.0000`` or ``-0%``). Each is followed by :func:`format_percent` of the change relative to
    ``before`` (left out when ``before`` is 0). A change of exactly zero is ``0``; a pair where either
    side is missing (``None``, a string) or not finite is ``""`` (the change is undefined).

    Example:
        >>> format_changes([0.1994, 0.02, 1.0, None], [0.2, 0.5, 1.0, 0.3])
        ['-0.0006 (-0.3%)', '-0.4800 (-96%)', '0', '']
        >>> format_changes([0.2499, 0.30001], [0.25, 0.3])
        ['-0.0001 (-0.04%)', '+<0.0001 (+0.003%)']
        >>> format_changes([float("nan"), 0.5], [0.1, 0.4])
        ['', '+0.1000 (+25%)']
    """
    def num(v: Any) -> float | None:
        if v is None or isinstance(v, (str, bool, np.bool_)):
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    pairs = [(num(a), num(b)) for a, b in zip(afters, befores)]
    deltas = [a - b if a is not None and b is not None else None for a, b in pairs]
    floor = 0.5 * 10.0 ** -digits

    def magnitude(d: float) -> str:
        return f"{abs(d):.{digits}f}" if abs(d) >= floor else "<" + f"{10.0 ** -digits:.{digits}f}"

    out = []
    for (_a, b), d in zip(pairs, deltas):
        if d is None:
            out.append("")
        elif d == 0:
            out.append("0")
        else:
            text = ("+" if d > 0 else "-") + magnitude(d)
            out.append(text + (f" ({format_percent(d / abs(b) * 100)})" if b else ""))
    return out
