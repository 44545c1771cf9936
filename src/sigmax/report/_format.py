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

__all__ = ["format_table", "mce_text", "undefined_mce"]


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


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, min_bin_count: int = 10,
                 digits: int = 4) -> list[list[str]]:
    """The cells of :meth:`sigmax.report.Report.table` as text.

    A ``"change"`` column is recomputed from the two columns it compares (the one before it against the
    number column before that: "after" against "before", "tuned thresholds" against "after"), so the
    whole column keeps one notation (:func:`sigmax._format.format_changes`); every other number column
    is one :func:`sigmax._format.format_column`. A NaN MCE (no bin holds ``min_bin_count`` rows) reads
    :func:`undefined_mce`, and its change is empty.
    """
    def number(v: Any) -> Any:
        return None if v is None or isinstance(v, str) else v

    cols: list[list[str]] = []
    for j, h in enumerate(headers):
        col = [r[j] for r in rows]
        if h == "change" and j >= 2:
            ref = j - 2 if headers[j - 2] != "change" else j - 3
            cols.append(format_changes([number(r[j - 1]) for r in rows], [number(r[ref]) for r in rows],
                                       digits=digits))
        elif any(not isinstance(v, str) for v in col):
            text = format_column(col, digits)
            cols.append([undefined_mce(min_bin_count) if _is_mce(r[0]) and not isinstance(v, str)
                         and v is not None and math.isnan(float(v)) else t for r, v, t in zip(rows, col, text)])
        else:
            cols.append([str(v) for v in col])
    return [[cols[j][i] for j in range(len(headers))] for i in range(len(rows))]
