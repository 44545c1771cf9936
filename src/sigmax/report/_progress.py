"""A progress bar for long work: rich in a terminal, a plain stderr line without rich, nothing when piped.

Example:
    >>> import io
    >>> with progress(3, "reading", stream=io.StringIO()) as bar:  # not a terminal: silent
    ...     for _ in range(3):
    ...         bar.advance()
    >>> bar.done
    3
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["Progress", "progress"]


class Progress:
    """Counts steps towards ``total`` and draws them when ``stream`` is a terminal.

    Use through :func:`progress` as a context manager; ``advance(n)`` adds ``n`` steps and
    ``describe(text)`` changes the label.
    """

    def __init__(self, total: float | None, description: str, *, stream: Any = None,
                 enabled: bool | None = None, use_rich: bool | None = None) -> None:
        self.total = total
        self.description = description
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)()) and not os.environ.get("SIGMAX_NO_PROGRESS")
        self.enabled = enabled
        self.use_rich = use_rich is not False
        self._rich = None
        self._task = None
        self._last = 0.0
        self._start = time.perf_counter()

    def __enter__(self) -> Progress:  # noqa: PYI034 (typing.Self needs Python 3.11)
        if not self.enabled or not self.use_rich:
            return self
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=True,
            )
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total)
        except ImportError:  # rich is the `cli` extra: fall back to a plain line
            self._rich = None
        return self

    def advance(self, n: float = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n)
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and (self.total is None or self.done < self.total):
            return
        self._last = now
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(30 * frac)
            text = f"\r{self.description} [{bar:<30}] {100 * frac:3.0f}%  {now - self._start:5.1f}s"
        else:
            text = f"\r{self.description} {self.done:g}  {now - self._start:5.1f}s"
        self.stream.write(text)
        self.stream.flush()

    def describe(self, description: str) -> None:
        self.description = description
        if self.enabled and self._rich is not None:
            self._rich.update(self._task, description=description)

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.__exit__(*exc)
        else:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def progress(total: float | None, description: str, *, stream: Any = None, enabled: bool | None = None,
             use_rich: bool | None = None) -> Progress:
    """A :class:`Progress` over ``total`` steps, drawn on ``stream`` (default stderr) only if it is a terminal
    (or ``enabled=True``); with rich when it is installed, unless ``use_rich=False``."""
    return Progress(total, description, stream=stream, enabled=enabled, use_rich=use_rich)
