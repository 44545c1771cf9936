"""Terminal output shared by the subcommands: tables, notes and JSON.

In a terminal, with ``rich`` installed (the ``cli`` extra), tables are drawn with box characters and
colour; when the output is piped or redirected (or ``rich`` is absent, or ``NO_COLOR`` is set) the
same table is printed as aligned plain text, so scripts and ``grep`` see stable lines.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

import numpy as np

__all__ = [
    "is_terminal",
    "print_table",
    "print_note",
    "print_json",
    "format_number",
    "format_count",
    "format_change",
    "format_percent",
    "format_column",
    "escape",
    "rich_available",
    "FAIL_ON",
    "add_fail_on",
    "exit_status",
    "parse_bytes",
    "add_memory_budget",
]

#: ``--fail-on`` choices, strictest last: the severities that make a command exit 1
FAIL_ON = {"error": ("error",), "warning": ("error", "warning"), "never": ()}


def add_fail_on(parser: Any, *, default: str = "error") -> None:
    """Add the ``--fail-on {error,warning,never}`` option every command that runs checks shares.

    Exit status 1 when a finding has that severity or worse (``error`` by default; ``never``: findings
    never change the exit status). Read it back with :func:`exit_status`.
    """
    parser.add_argument("--fail-on", choices=list(FAIL_ON), default=default,
                        help=f"exit 1 when a check finding has this severity or worse; 'never' to only "
                             f"report them (default {default})")


def exit_status(findings: Any, fail_on: str | None = "error") -> int:
    """1 when a finding (objects with ``.severity``, or dicts with ``"severity"``) reaches ``fail_on``, else 0.

    Example:
        >>> from types import SimpleNamespace as F
        >>> exit_status([F(severity="warning")]), exit_status([F(severity="warning")], "warning")
        (0, 1)
        >>> exit_status([{"severity": "error"}]), exit_status([{"severity": "error"}], "never")
        (1, 0)
    """
    failing = FAIL_ON[fail_on or "error"]
    for f in findings or ():
        sev = f.get("severity") if isinstance(f, dict) else getattr(f, "severity", None)
        if sev in failing:
            return 1
    return 0


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``--memory-budget`` values: bytes, or a size with a unit (``512MiB``, ``2GB``, ``1.5GiB``).

    Example:
        >>> parse_bytes("1073741824"), parse_bytes("1GiB"), parse_bytes("512 MB"), parse_bytes("1.5kib")
        (1073741824, 1073741824, 512000000, 1536)
    """
    import argparse
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not m or m.group(2) not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a number of bytes such as 1073741824, 512MiB or 2GB, got {text!r}")
    n = int(float(m.group(1)) * _UNITS[m.group(2)])
    if n < 1:
        raise argparse.ArgumentTypeError(f"the memory budget must be at least 1 byte, got {text!r}")
    return n


def _setting(validate, name):
    def convert(text: str) -> str:
        import argparse

        try:
            return validate(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(". ")[0]) from None

    convert.__name__ = name  # argparse names the type in its messages
    return convert


def task_arg(text: str) -> str:
    """``--task``: the library's one list of spellings (``multi-class`` and ``multiclass`` alike).

    Example:
        >>> task_arg("multi-class")
        'multiclass'
    """
    from .._inputs import validate_task

    return _setting(validate_task, "task")(text)


def space_arg(text: str) -> str:
    """``--space``: the library's one list of spellings (``logit``, ``probabilities``, ...).

    Example:
        >>> space_arg("logit"), space_arg("probabilities")
        ('logits', 'probs')
    """
    from .._inputs import validate_space

    return _setting(validate_space, "space")(text)


def add_memory_budget(parser: Any, *, default: int = 2**30) -> None:
    """Add ``--memory-budget BYTES`` (default 1 GiB), the same knob as the API's ``memory_budget=``."""
    parser.add_argument("--memory-budget", type=parse_bytes, default=default, metavar="BYTES",
                        help="memory the command may use for the scores, in bytes or with a unit "
                             "(512MiB, 2GB; default 1GiB)")


def escape(text: Any) -> str:
    """``text`` safe to hand to rich: ``[double-softmax]`` is shown, not read as a markup tag."""
    text = str(text)
    try:
        from rich.markup import escape as _rich_escape
    except ImportError:  # pragma: no cover - rich is optional
        return text
    return _rich_escape(text)


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


from .._format import format_change, format_column, format_count, format_number, format_percent  # noqa: E402


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                align: Sequence[str] | None = None, highlight_rows: Sequence[int] = (), stream=None) -> None:
    """Print a table: rich in a terminal, aligned plain text when piped.

    ``align`` is one of ``"l"``/``"r"`` per column (default: first column left, others right);
    ``highlight_rows`` are shown in bold in a terminal and marked with ``*`` in plain text.
    """
    stream = stream or sys.stdout
    columns = [format_column([row[j] if j < len(row) else "" for row in rows]) for j in range(len(headers))]
    cells = [[columns[j][i] for j in range(len(headers))] for i in range(len(rows))]
    align = list(align or (["l"] + ["r"] * (len(headers) - 1)))
    if is_terminal(stream) and rich_available():
        from rich.console import Console
        from rich.table import Table

        # every cell, header and title is text (finding codes such as [double-softmax]), never markup
        table = Table(title=escape(title) if title else None, title_justify="left", header_style="bold cyan")
        for h, a in zip(headers, align):
            table.add_column(escape(h), justify="left" if a == "l" else "right")
        for i, row in enumerate(cells):
            table.add_row(*map(escape, row), style="bold" if i in highlight_rows else None)
        Console(file=stream).print(table)
        return
    marks = ["*" if i in highlight_rows else " " for i in range(len(cells))] if highlight_rows else None
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def fmt(row):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        return "  ".join(parts).rstrip()

    if title:
        print(title, file=stream)
    prefix = "  " if marks else ""
    print(prefix + fmt(headers), file=stream)
    print(prefix + "  ".join("-" * w for w in widths), file=stream)
    for i, row in enumerate(cells):
        print((marks[i] + " " if marks else "") + fmt(row), file=stream)


def print_note(text: str, *, stream=None, style: str = "") -> None:
    """A line of prose under a table (styled in a terminal)."""
    stream = stream or sys.stdout
    if style and is_terminal(stream) and rich_available():
        from rich.console import Console

        Console(file=stream, highlight=False).print(escape(text), style=style)
    else:
        print(text, file=stream)


def print_json(obj: Any, *, stream=None) -> None:
    """JSON for scripts: strict JSON, one type per field whatever the values.

    Numbers stay JSON numbers; a NaN or an infinity (which strict JSON cannot hold) is written as
    ``null``, so a field is always a number or ``null``, never a number here and a string there.
    Commands that must tell ``inf`` from ``nan`` add a ``*_text`` field beside it (``sigmax explain``).
    NumPy scalars and arrays are written as numbers and lists.
    """
    stream = stream or sys.stdout

    def clean(o):
        if isinstance(o, np.generic):
            o = o.item()
        elif isinstance(o, np.ndarray):
            o = o.tolist()
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    json.dump(clean(obj), stream, indent=2, allow_nan=False)
    stream.write("\n")
