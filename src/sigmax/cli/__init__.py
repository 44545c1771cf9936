"""The ``sigmax`` command: one module per subcommand, assembled here.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args)`` returns the exit code. Heavy imports (matplotlib, torch) stay inside
``run`` so ``sigmax --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "CLIError"]

#: subcommands, in the order ``sigmax --help`` lists them
COMMANDS = ("explain", "check", "report", "calibrate", "demo")


class CLIError(Exception):
    """A user error: printed as one line ``sigmax <command>: error: ...``, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="sigmax",
        description="Logits to probabilities, decisions and losses: explain, check, report, calibrate.",
    )
    parser.add_argument("--version", action="version", version=f"sigmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"sigmax {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sigmax ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
