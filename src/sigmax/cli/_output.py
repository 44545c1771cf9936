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

__all__ = ["is_terminal", "print_table", "print_note", "print_json", "format_number", "rich_available"]


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def format_number(v: Any, digits: int = 4) -> str:
    """Numbers for tables: fixed point where readable, scientific for the very large or small."""
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e6:
        return f"{v:.{digits}f}"
    return f"{v:.{digits - 1}e}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
                align: Sequence[str] | None = None, highlight_rows: Sequence[int] = (), stream=None) -> None:
    """Print a table: rich in a terminal, aligned plain text when piped.

    ``align`` is one of ``"l"``/``"r"`` per column (default: first column left, others right);
    ``highlight_rows`` are shown in bold in a terminal and marked with ``*`` in plain text.
    """
    stream = stream or sys.stdout
    cells = [[format_number(c) for c in row] for row in rows]
    align = list(align or (["l"] + ["r"] * (len(headers) - 1)))
    if is_terminal(stream) and rich_available():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold cyan")
        for h, a in zip(headers, align):
            table.add_column(h, justify="left" if a == "l" else "right")
        for i, row in enumerate(cells):
            table.add_row(*row, style="bold" if i in highlight_rows else None)
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

        Console(file=stream, highlight=False).print(text, style=style)
    else:
        print(text, file=stream)


def print_json(obj: Any, *, stream=None) -> None:
    """JSON for scripts: NaN and infinities written as strings ("nan", "inf", "-inf")."""
    stream = stream or sys.stdout

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return "nan" if math.isnan(o) else ("inf" if o > 0 else "-inf")
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    json.dump(clean(obj), stream, indent=2)
    stream.write("\n")
