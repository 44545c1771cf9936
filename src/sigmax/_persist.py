"""Saved descriptions (calibrators, conformal classifiers): JSON written atomically, read back with one
header rule. Each kind checks its own fields; what every kind shares — the ``{"sigmax": KIND, "format": N}``
header, the atomic write, the "not valid JSON" message — is written once, here.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "thing.json")
    >>> write_json(path, {"sigmax": "conformal", "format": 1, "x": float("inf")})
    >>> d = read_json(path, "conformal", "ConformalClassifier.save()")
    >>> check_header(d, "conformal", 1, "ConformalClassifier.save()"), d["x"]
    (None, inf)
"""

from __future__ import annotations

import json
import os
from typing import Any

from .io import atomic_write

__all__ = ["write_json", "read_json", "check_header"]


def write_json(path: Any, d: dict[str, Any]) -> None:
    """``d`` as JSON at ``path``, through a temporary file renamed into place (parents created).

    Floats are written with ``repr``, so they round-trip exactly; ``inf`` is written ``Infinity``."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(d, fh, indent=2, allow_nan=True)
        fh.write("\n")


def read_json(path: Any, kind: str, writer: str) -> Any:
    """The JSON value in ``path``, or one ``ValueError`` naming the file, the ``kind`` and its ``writer``."""
    try:
        with open(os.fspath(path), encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a sigmax {kind} file: not valid JSON ({exc}); give a file "
                         f"written by {writer}") from None


def check_header(d: Any, kind: str, version: int, writer: str) -> Any:
    """``d["type"]`` after checking that ``d`` is a ``kind`` description of format ``version``."""
    if not isinstance(d, dict) or d.get("sigmax") != kind:
        raise ValueError(f"not a sigmax {kind} description: expected a JSON object written by {writer} "
                         f"(with \"sigmax\": \"{kind}\")")
    fmt = d.get("format")
    if isinstance(fmt, bool) or fmt != version:
        raise ValueError(f"{kind} format {fmt!r} is not supported by this sigmax (format {version}); "
                         "fit and save it again with this sigmax")
    return d.get("type")
