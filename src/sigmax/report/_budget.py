"""Memory as a budget in bytes: how many rows a chunk holds and how many rows the calibrator is fitted on.

The report never holds more than one chunk of scores plus the fitting sample. Both sizes follow from
one number, the budget (default :data:`DEFAULT_BUDGET`, 1 GiB), and the number of scores per row, so
the bound holds for any number of rows and classes:

* a chunk's working set is about :data:`CHUNK_FACTOR` float64 copies of the chunk (the canonical
  scores, the probabilities, the calibrated logits and the metrics' temporaries);
* the fitting sample is kept as float64, and fitting it needs about :data:`FIT_FACTOR` more copies
  (the fitters' per-iteration temporaries);
* the two never coexist with more than their share: while the sample is gathered, a chunk takes at
  most a third of the budget (:data:`CHUNK_SHARE`); the sample and its fitting take the rest.

The factors are measured (``tests/test_report_memory.py`` checks the resident memory of the
``sigmax report`` process against the budget).

Example:
    >>> parse_memory("512M"), parse_memory("2G"), parse_memory(1 << 30)
    (536870912, 2147483648, 1073741824)
    >>> p = plan_memory(1 << 30, scores_per_row=2048, n_rows=10**6, fitting=True)
    >>> p.chunk_rows, p.fit_rows
    (682, 3971)
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Any

from .._format import format_bytes  # the one formatter of sizes (sigmax.report.format_bytes, as before)

__all__ = ["CHUNK_FACTOR", "CHUNK_SHARE", "DEFAULT_BUDGET", "FIT_FACTOR", "MIN_BUDGET", "MemoryPlan",
           "format_bytes", "parse_memory", "plan_memory"]

#: the default memory budget: 1 GiB
DEFAULT_BUDGET = 1 << 30
#: the smallest budget accepted (the interpreter alone needs more than this)
MIN_BUDGET = 16 << 20
#: float64 copies of a chunk alive at its peak (canonical scores, probabilities, calibrated logits, metrics)
CHUNK_FACTOR = 32
#: float64 copies of the fitting sample alive while a calibrator is fitted on it (besides the sample)
FIT_FACTOR = 10
#: the part of the budget a chunk may use while the fitting sample is being gathered
CHUNK_SHARE = 1 / 3

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_memory(value: Any, name: str = "memory_budget") -> int:
    """A memory size in bytes from an integer or a string such as ``"512M"``, ``"2G"``, ``"1.5GiB"``.

    Units are binary (``K`` = 1024 bytes, ``M`` = 1024², ``G`` = 1024³); ``B``, ``iB`` are optional.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a size in bytes (e.g. 1073741824) or a string like '512M' or '2G'")
    if isinstance(value, numbers.Integral):
        n = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(value):
        n = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", value)
        if not m:
            raise ValueError(f"{name} {value!r} is not a size: write e.g. 512M, 2G or a number of bytes")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise TypeError(f"{name} must be a size in bytes or a string like '512M' or '2G', got {type(value).__name__}")
    if n < MIN_BUDGET:
        raise ValueError(f"{name} {value!r} is below the minimum of {format_bytes(MIN_BUDGET)}; "
                         "give e.g. 256M or more")
    return n


@dataclass(frozen=True)
class MemoryPlan:
    """What a budget allows: rows per chunk and rows in the calibrator's fitting sample."""

    budget: int
    chunk_rows: int
    fit_rows: int
    scores_per_row: int

    def describe(self) -> str:
        fit = f", calibrator fitted on at most {self.fit_rows:,} rows" if self.fit_rows else ""
        return f"memory budget {format_bytes(self.budget)}: chunks of {self.chunk_rows:,} rows{fit}"


def plan_memory(budget: Any, *, scores_per_row: int, n_rows: int | None = None, fitting: bool = True,
                chunk_rows: int | None = None, name: str = "memory_budget") -> MemoryPlan:
    """Chunk and fitting-sample sizes (in rows) that keep the report within ``budget`` bytes.

    Args:
        budget: bytes (or a string for :func:`parse_memory`).
        scores_per_row: scores in one row (the number of classes; 1 for binary).
        n_rows: rows in the data, when known (a chunk never needs more).
        fitting: whether a calibrator is fitted (else the whole budget goes to the chunks).
        chunk_rows: a requested chunk size; it is lowered to what the budget allows.
    """
    budget = parse_memory(budget, name)
    row = 8 * max(int(scores_per_row), 1)  # one float64 row
    share = budget * (CHUNK_SHARE if fitting else 1.0)
    most = int(share // (CHUNK_FACTOR * row))
    fit_rows = int((budget - share) // ((1 + FIT_FACTOR) * row)) if fitting else 0
    if most < 1 or (fitting and fit_rows < 1):
        need = CHUNK_FACTOR * row / (CHUNK_SHARE if fitting else 1.0)
        raise ValueError(f"{name} {format_bytes(budget)} is too small for rows of {scores_per_row:,} scores; "
                         f"give at least {format_bytes(need)}")
    rows = most if chunk_rows is None else max(1, min(int(chunk_rows), most))
    if n_rows is not None:
        rows = max(1, min(rows, int(n_rows)))
    return MemoryPlan(budget, rows, fit_rows, int(scores_per_row))
