"""The ``sigmax`` command: one module per subcommand, assembled here.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args)`` returns the exit code. Heavy imports (matplotlib, torch) stay inside
``run`` so ``sigmax --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
import warnings

__all__ = ["main", "build_parser", "CLIError", "cli_spelling"]

#: subcommands, in the order ``sigmax --help`` lists them
COMMANDS = ("explain", "check", "report", "calibrate", "demo")


class CLIError(Exception):
    """A user error: printed as one line ``sigmax <command>: error: ...``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``sigmax report: error: argument --space: ... (see sigmax
    report --help)`` and exit status 2, instead of the usage block followed by the message."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="sigmax",
        description="Logits to probabilities, decisions and losses: explain, check, report, calibrate.",
    )
    parser.add_argument("--version", action="version", version=f"sigmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


#: settings whose Python spelling (``space='probs'``) may be left in a message from the library; the
#: CLI says ``--space probs``. Only spellings outside parentheses are translated (code such as
#: ``softmax(x, axis=1)`` in advice stays code).
CLI_SETTINGS = ("space", "task", "ignore_index", "axis", "n_bins", "loss", "threshold", "temperature",
                "memory_budget", "chunk_rows", "fail_on", "method", "seed", "min_bin_count")

_SETTING = re.compile(r"(?<![\w.-])(" + "|".join(CLI_SETTINGS) + r")=('[^']*'|\"[^\"]*\"|[-+\w.]+)")


def cli_spelling(message: str) -> str:
    """``space='probs'`` → ``--space probs`` (and so on for :data:`CLI_SETTINGS`), outside parentheses.

    Example:
        >>> cli_spelling("declare space='probs' or task='multiclass'; ignore_index=-100 skips rows")
        'declare --space probs or --task multiclass; --ignore-index -100 skips rows'
        >>> cli_spelling("use softmax(x, axis=1) or axis=0 (or n_bins=10)")
        'use softmax(x, axis=1) or --axis 0 (or --n-bins 10)'
    """
    out, calls, last = [], [], 0  # calls: for each open parenthesis, whether it opens a call f(...)
    marks = iter(list(_SETTING.finditer(message)) + [None])
    m = next(marks)
    for pos, ch in enumerate(message):
        while m is not None and m.start() == pos:
            if not any(calls) and m.start() >= last:
                value = m.group(2)
                if value[:1] in "'\"":
                    value = value[1:-1]
                out.append(message[last:m.start()] + f"--{m.group(1).replace('_', '-')} {value}")
                last = m.end()
            m = next(marks)
        if ch == "(":
            calls.append(pos > 0 and (message[pos - 1].isalnum() or message[pos - 1] in "_."))
        elif ch == ")" and calls:
            calls.pop()
    out.append(message[last:])
    return "".join(out)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{str(exc.filename) + ': ' if exc.filename else ''}{exc.strerror}"
    return cli_spelling(text)


def _note_warnings(command: str):
    """Show warnings raised while a command runs as one line each: ``sigmax <cmd>: note: ...``."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"sigmax {command}: note: {cli_spelling(text)}", file=sys.stderr)

    return show


def _protect_numbers(argv: list[str]) -> list[str]:
    """``sigmax explain -inf -2`` : logits that start with ``-`` are values, not options.

    argparse reads ``-inf`` (and ``-1e5``) as an unknown option; a leading space makes it a value
    (``float(" -inf")`` still parses, and option values such as ``--temperature -1`` are read the same).
    """
    out = list(argv)
    try:
        at = next(i for i, a in enumerate(out) if not a.startswith("-"))
    except StopIteration:
        return out
    if out[at] != "explain":
        return out
    for i in range(at + 1, len(out)):
        a = out[i]
        if a.startswith("-") and a != "-" and not a.startswith("--") and _numbers(a):
            out[i] = " " + a
    return out


def _numbers(token: str) -> bool:
    try:
        [float(t) for t in token.replace(",", " ").split()]
    except ValueError:
        return False
    return bool(token.replace(",", " ").split())


def main(argv: list[str] | None = None) -> int:
    """Run the ``sigmax`` command; returns the exit status (0 ok, 1 a check failed, 2 a usage error).

    Every command runs with messages spelled for the command line (``--space probs``); a
    ``ValueError``, ``TypeError``, :class:`~sigmax.io.ScoreFileError` or ``OSError`` from a command
    becomes one line ``sigmax <command>: error: ...`` on stderr and exit status 2, never a traceback.
    """
    from .._inputs import interface

    argv = _protect_numbers(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with interface("cli"), warnings.catch_warnings():
            warnings.showwarning = _note_warnings(args.command)
            return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"sigmax {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sigmax ... | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # no second error when Python flushes stdout at exit
        return 0
    except (ValueError, TypeError, OSError) as exc:  # ScoreFileError is a ValueError
        print(f"sigmax {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sigmax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
