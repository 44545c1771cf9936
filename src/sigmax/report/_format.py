"""The report's metrics table as text: report-specific assembly over the one set of formatters.

Every number is formatted by :mod:`sigmax._format` (one notation per column, counts with thousands
separators, changes that never read ``(-0%)``); this module only knows the report's columns: which
column is a change of which, and how an undefined MCE reads.

Example:
    >>> headers = ["metric", "before", "after", "change"]
    >>> rows = [["NLL", 0.4, 0.2, None], ["ECE", 0.0009396, 0.0009, None],
    ...         ["MCE", float("nan"), 0.25, None]]
    >>> for r in format_table(headers, rows, min_bin_count=10):
    ...     print(r)
    ['NLL', '0.4000000', '0.2000000', '-0.2000000 (-50%)']
    ['ECE', '0.0009396', '0.0009000', '-0.0000396 (-4.2%)']
    ['MCE', 'n/a (no bin with ≥ 10 rows)', '0.2500000', '']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._format import format_changes, format_column, format_number

__all__ = ["change_bounds", "change_ci_text", "format_table", "mce_text", "undefined_mce"]


def undefined_mce(min_bin_count: int) -> str:
    """What an MCE reads when no bin holds ``min_bin_count`` rows (the metric is NaN: undefined).

    Example:
        >>> undefined_mce(10)
        'n/a (no bin with ≥ 10 rows)'
    """
    return f"n/a (no bin with ≥ {int(min_bin_count):,} rows)"


def mce_text(value: Any, min_bin_count: int, digits: int = 4) -> str:
    """An MCE as text: its value, or :func:`undefined_mce` when it is NaN (the reliability panels use it).

    Example:
        >>> mce_text(0.12345, 10), mce_text(float("nan"), 5)
        ('0.1235', 'n/a (no bin with ≥ 5 rows)')
    """
    if value is None or math.isnan(float(value)):
        return undefined_mce(min_bin_count)
    return format_number(float(value), digits)


def _is_mce(name: Any) -> bool:
    return isinstance(name, str) and name.startswith("MCE")


def _is_ci(h: str) -> bool:
    return h.endswith(" CI")


def _is_change_ci(h: str) -> bool:
    return h.endswith(" CI of change")


def _decimals(texts: Sequence[str], digits: int) -> int:
    """The decimals of a fixed-point column (``digits`` when it is scientific or has none)."""
    most = [len(s.split(".")[1]) for s in texts if "." in s and "e" not in s and s[:1] in "-+0123456789"]
    if any("e" in s for s in texts if s[:1] in "-+0123456789"):
        return digits
    return max(most) if most else digits


def _signed(v: float, decimals: int) -> str:
    """A bound of a change: signed, ``decimals`` decimals; a non-zero bound that rounds to 0 reads ``<0.0…1``."""
    if v == 0:
        return "0"
    sign = "+" if v > 0 else "-"
    if abs(v) < 0.5 * 10.0 ** -decimals:
        return sign + "<" + f"{10.0 ** -decimals:.{decimals}f}"
    return sign + f"{abs(v):.{decimals}f}"


def change_bounds(change: dict, values: Sequence[float], digits: int = 4) -> tuple[str, str]:
    """The bounds of a change's interval as text, in the precision of the numbers it compares.

    Example:
        >>> change_bounds({"low": -0.0135, "high": 0.01276}, [0.0226, 0.0205])
        ('-0.0135', '+0.0128')
    """
    dec = _decimals(format_column(list(values), digits), digits)
    return _signed(float(change["low"]), dec), _signed(float(change["high"]), dec)


def change_ci_text(change: Any, decimals: int) -> str:
    """A change's paired interval: ``-0.0135…+0.0128, not significant`` (it holds 0) or ``-0.0458…-0.0197``.

    Example:
        >>> change_ci_text({"low": -0.0458, "high": -0.0197, "significant": True}, 4)
        '-0.0458…-0.0197'
        >>> change_ci_text({"low": 0.0, "high": 0.0, "significant": False}, 4)
        '0…0, not significant'
    """
    if not isinstance(change, dict):
        return ""
    text = f"{_signed(float(change['low']), decimals)}…{_signed(float(change['high']), decimals)}"
    return text if change.get("significant") else text + ", not significant"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, min_bin_count: int = 10,
                 digits: int = 4) -> list[list[str]]:
    """The cells of :meth:`sigmax.report.Report.table` as text.

    A ``"change"`` column is recomputed from the two number columns it compares (the nearest number
    column before it against the one before that: "after" against "before", "tuned thresholds" against
    "after"), in their precision, so the whole column keeps one notation
    (:func:`sigmax._format.format_changes`); every other number column is one
    :func:`sigmax._format.format_column`, and its interval column (``"95% CI"``, cells ``(low, high)``)
    is written in the same notation as the numbers it bounds: ``low…high``. A change's interval column
    (``"95% CI of change"``) reads :func:`change_ci_text`. A NaN MCE (no bin holds ``min_bin_count``
    rows) reads :func:`undefined_mce`, and its change is empty.
    """
    def number(v: Any) -> Any:
        return None if v is None or isinstance(v, str) else v

    def is_value(j: int) -> bool:
        h = headers[j]
        return j > 0 and h != "change" and not _is_ci(h) and not _is_change_ci(h)

    cols: list[list[str]] = [[] for _ in headers]
    decimals: dict[int, int] = {}
    for j, h in enumerate(headers):
        col = [r[j] for r in rows]
        if is_value(j):
            bounds = [(v[0], v[1]) if isinstance(v, tuple) else (None, None)
                      for v in ([r[j + 1] for r in rows] if j + 1 < len(headers) and _is_ci(headers[j + 1])
                                else [None] * len(rows))]
            lows, highs = [b[0] for b in bounds], [b[1] for b in bounds]
            text = format_column(col + [v for v in lows if v is not None] + [v for v in highs if v is not None], digits)
            k = len(col)
            vals, rest = text[:k], text[k:]
            nb = sum(v is not None for v in lows)
            lo_t, hi_t = iter(rest[:nb]), iter(rest[nb:])
            cols[j] = [undefined_mce(min_bin_count) if _is_mce(r[0]) and not isinstance(v, str) and v is not None
                       and math.isnan(float(v)) else t for r, v, t in zip(rows, col, vals)]
            decimals[j] = _decimals([t for v, t in zip(col, vals) if not isinstance(v, str)], digits)
            if j + 1 < len(headers) and _is_ci(headers[j + 1]):
                cols[j + 1] = [f"{next(lo_t)}…{next(hi_t)}" if lo is not None else "" for lo in lows]
        elif h == "change" and j >= 2:
            values = [i for i in range(j) if is_value(i)]
            cur, ref = values[-1], values[-2]
            dec = max(decimals.get(cur, digits), decimals.get(ref, digits))
            decimals[j] = dec
            cols[j] = format_changes([number(r[cur]) for r in rows], [number(r[ref]) for r in rows], digits=dec)
        elif _is_change_ci(h):
            dec = decimals.get(j - 1, digits)
            cols[j] = [change_ci_text(v, dec) if text else "" for v, text in zip(col, cols[j - 1])]
        elif _is_ci(h):
            continue  # written with its number column
        elif any(not isinstance(v, str) for v in col):
            cols[j] = format_column(col, digits)
        else:
            cols[j] = [str(v) for v in col]
    return [[cols[j][i] for j in range(len(headers))] for i in range(len(rows))]
