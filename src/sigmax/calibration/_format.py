"""The calibrator file format: its header, the atomic JSON write, and the validation of every loaded field.

A calibrator file is JSON written by ``.save()``: ``{"sigmax": "calibration", "format": 1, "type": ...}``
and the fields of that type. Loading checks every field (type, shape, finiteness, range) and names
the one that is wrong, so a damaged or hand-edited file is refused instead of giving wrong answers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from .._persist import check_header as check_saved_header, read_json as read_saved, write_json as write_saved

__all__ = ["FORMAT_VERSION", "FieldError", "check_header", "choice", "integer", "number", "numbers_of",
           "read_json", "write_json"]

FORMAT_VERSION = 1


class FieldError(ValueError):
    """A field of a calibrator description that is missing or invalid (a ``ValueError``)."""

    def __init__(self, field: str, problem: str, value: Any = ...):
        got = "" if value is ... else f", got {_short_repr(value)}"
        super().__init__(f"calibrator field {field!r} {problem}{got}; the file is damaged or was edited by hand: "
                         "fit the calibrator again and save it")
        self.field = field


def _short_repr(v: Any, most: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= most else r[:most - 3] + "..."


def write_json(path: Any, d: dict[str, Any]) -> None:
    """``d`` as JSON at ``path``, atomically (:func:`sigmax._persist.write_json`)."""
    write_saved(path, d)


#: what writes a calibration description, for the messages
WRITER = "Calibrator.save() or a scaler's save()"


def check_header(d: Any) -> str:
    """The ``type`` of a calibrator description, after checking its ``sigmax`` and ``format`` fields."""
    return check_saved_header(d, "calibration", FORMAT_VERSION, WRITER)


def read_json(path: Any) -> Any:
    """The description in ``path``, or one error naming the file (not valid JSON)."""
    return read_saved(path, "calibrator", WRITER.replace(" or a", ", a") + " or `sigmax calibrate fit`")


def _get(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise FieldError(where.rsplit(".", 1)[0] if "." in where else where, "must be a JSON object", d)
    if key not in d:
        raise FieldError(where, "is missing")
    return d[key]


def choice(d: dict, key: str, options: Sequence[Any], where: str | None = None) -> Any:
    """``d[key]``, which must be one of ``options`` exactly."""
    where = where or key
    v = _get(d, key, where)
    if not any(v is o or (isinstance(v, str) and v == o) for o in options):
        raise FieldError(where, f"must be one of {', '.join(map(repr, options))}", v)
    return v


def integer(d: dict, key: str, where: str | None = None, *, lo: int | None = None,
            optional: bool = False) -> int | None:
    """``d[key]`` as an ``int`` (``None`` allowed with ``optional``), at least ``lo``."""
    where = where or key
    if optional and d.get(key) is None:
        return None
    v = _get(d, key, where)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise FieldError(where, "must be an integer", v)
    if lo is not None and v < lo:
        raise FieldError(where, f"must be at least {lo}", v)
    return int(v)


def _check_number(v: Any, where: str, positive: bool, lo: float | None, hi: float | None) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise FieldError(where, "must be a number", v)
    v = float(v)
    if not math.isfinite(v):
        raise FieldError(where, "must be finite (not NaN or infinite)", v)
    if positive and not v > 0:
        raise FieldError(where, "must be > 0", v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise FieldError(where, f"must lie in [{lo:g}, {hi:g}]", v)
    return v


def number(value: Any, where: str, *, positive: bool = False, lo: float | None = None,
           hi: float | None = None) -> float:
    """A finite float (``> 0`` with ``positive``, within ``[lo, hi]``), or a :class:`FieldError`."""
    return _check_number(value, where, positive, lo, hi)


def numbers_of(value: Any, where: str, length: int | None, *, positive: bool = False, lo: float | None = None,
               hi: float | None = None) -> np.ndarray:
    """A list of ``length`` finite floats (each as in :func:`number`) as a float64 array."""
    if not isinstance(value, list):
        raise FieldError(where, "must be a list of numbers" + (f" (one per class, {length})" if length else ""),
                         value)
    if length is not None and len(value) != length:
        raise FieldError(where, f"must have one number per class ({length}), but has {len(value)}")
    if not value:
        raise FieldError(where, "must not be empty")
    return np.array([_check_number(v, f"{where}[{i}]", positive, lo, hi) for i, v in enumerate(value)],
                    dtype=np.float64)
