"""Numbers as the report shows them: one notation per column, counts with separators, honest changes.

Example:
    >>> format_column([0.0009396, 0.1234, 1.5])
    ['0.00094', '0.12340', '1.50000']
    >>> format_column([0.25, 0.1234, 1.5])
    ['0.2500', '0.1234', '1.5000']
    >>> format_column([9.4e-08, 0.1234])
    ['9.400e-08', '1.234e-01']
    >>> format_change(0.2, 0.1994), format_change(0.2, 0.2), format_change(0.5, 0.02)
    ('-0.00060 (-0.3%)', '0', '-0.4800 (-96%)')
    >>> format_changes([0.2, 0.5, 1.0], [0.1994, 0.02, 1.0])
    ['-0.00060 (-0.3%)', '-0.48000 (-96%)', '0']
    >>> format_count(200000000)
    '200,000,000'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["format_change", "format_changes", "format_column", "format_count", "format_percent", "format_value"]


def format_count(n: Any) -> str:
    """A count with thousands separators (``1,998,752``)."""
    return f"{int(n):,}"


def _finite(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _special(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return "" if v is None else v
    v = float(v)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return None


def format_column(values: Sequence[Any], digits: int = 4, *, sign: bool = False) -> list[str]:
    """Format a column of numbers in one notation: fixed point with ``digits`` decimals, or up to
    ``digits + 2`` so that the smallest non-zero value keeps two significant digits; scientific for the
    whole column when even that is not enough or a value is 10⁶ or more. Integers are counts
    (separators); strings pass through; ``sign`` writes ``+`` on positive numbers."""
    nums = [abs(float(v)) for v in values if _finite(v) and not isinstance(v, numbers.Integral) and v != 0]
    small = min(nums, default=1.0)
    sci = any(v >= 1e6 for v in nums) or small < 10 ** (-1 - digits)
    dec = digits if sci else min(digits + 2, max(digits, math.ceil(-math.log10(small) - 1e-9) + 1))
    plus = "+" if sign else ""
    out = []
    for v in values:
        s = _special(v)
        if s is not None:
            out.append(s)
        elif isinstance(v, numbers.Integral):
            out.append(format_count(v))
        elif float(v) == 0 and sign:
            out.append("0")
        elif sci:
            out.append(f"{float(v):{plus}.{digits - 1}e}")
        else:
            out.append(f"{float(v):{plus}.{dec}f}")
    return out


def format_value(v: Any, digits: int = 4) -> str:
    """One number alone (:func:`format_column` of one value)."""
    return format_column([v], digits)[0]


def format_percent(rel: float) -> str:
    """A relative change in percent, never ``-0%`` for a change that is not zero."""
    if rel == 0:
        return "0%"
    a = abs(rel) * 100
    for d in (0, 1, 2, 3):
        if round(a, d) != 0 and (d > 0 or a >= 1):
            break
    else:
        return ("+" if rel > 0 else "-") + "<0.001%"
    d = 0 if a >= 1 else d
    return f"{'+' if rel > 0 else '-'}{a:.{d}f}%"


def format_changes(befores: Sequence[Any], afters: Sequence[Any], digits: int = 4) -> list[str]:
    """A column of changes ``after - before`` in one notation, each with its relative size
    (:func:`format_percent`); ``0`` when nothing changed, empty where a side is not a number."""
    deltas = [float(a) - float(b) if _finite(a) and _finite(b) else None for b, a in zip(befores, afters)]
    texts = format_column([d for d in deltas if d is not None], digits, sign=True)
    out, it = [], iter(texts)
    for b, d in zip(befores, deltas):
        if d is None:
            out.append("")
            continue
        t = next(it)
        out.append(t if d == 0 else t + (f" ({format_percent(d / abs(float(b)))})" if float(b) else ""))
    return out


def format_change(before: Any, after: Any, digits: int = 4) -> str:
    """One change (:func:`format_changes` of one pair)."""
    return format_changes([before], [after], digits)[0]
