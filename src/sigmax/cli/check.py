"""``sigmax check``: diagnose how a file of scores (and labels) is wired; exit 1 on an error.

Reads the scores safely (``.npy``, ``.npz``, ``.csv``, ``.pt`` weights-only; see :mod:`sigmax.io`),
runs :func:`sigmax.check` with the declared task and space, prints the findings (a table in a
terminal, plain lines when piped, ``--json`` for scripts) and exits 0 when no finding is an error,
1 when one is (``--fail-on warning`` to be stricter), 2 on a usage error — so it can gate a pipeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import textwrap
from typing import Any

from . import CLIError

HELP = "check that scores (and labels) are wired right: softmax twice, wrong axis, label mismatches, ..."

EPILOG = """examples:
  sigmax check logits.npy labels.npy --task multiclass
  sigmax check outputs.npz:probs outputs.npz:labels --task multiclass --space probs
  sigmax check scores.pt --loss BCEWithLogitsLoss --json
exit status: 0 no error found, 1 a finding is an error (or a warning with --fail-on warning), 2 usage error"""


def register(sub) -> None:
    p = sub.add_parser("check", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores", metavar="SCORES",
                   help="score file: .npy, .npz, .csv, .txt or .pt (weights-only); FILE:KEY picks an array of an "
                        ".npz/.pt dict or a .csv column")
    p.add_argument("targets", metavar="TARGETS", nargs="?",
                   help="optional label file (class indices, multi-hot rows or 0/1 labels), same formats")
    p.add_argument("--task", choices=["binary", "multiclass", "multilabel"],
                   help="binary (one score per sample), multiclass (exactly one true class: softmax) or multilabel "
                        "(any number: one sigmoid each); default: inferred from the shapes where possible")
    p.add_argument("--space", choices=["logits", "probs", "log_probs"],
                   help="what the scores are declared to be, i.e. what consumes them (default logits)")
    p.add_argument("--loss", help="instead of --space: the loss they go to (cross_entropy, nll_loss, "
                                  "binary_cross_entropy, binary_cross_entropy_with_logits, or PyTorch's class names)")
    p.add_argument("--axis", type=int, default=-1, help="the class axis of the scores (default -1)")
    p.add_argument("--ignore-index", type=int, default=-100, help="class-index targets to skip (default -100)")
    p.add_argument("--fail-on", choices=["error", "warning"], default="error",
                   help="exit 1 when a finding has this severity or worse (default error)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    p.set_defaults(func=run)


def _split_key(spec: str) -> tuple[str, str | None]:
    """``FILE:KEY`` -> (FILE, KEY) unless FILE:KEY is itself an existing file."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, key = spec.rsplit(":", 1)
    if not key or "/" in key or "\\" in key:
        return spec, None
    return path, key


def _load(spec: str, what: str, labels: bool = False) -> Any:
    from ..io import load_labels, load_scores

    path, key = _split_key(spec)
    try:
        return load_labels(path, key=key) if labels else load_scores(path, key=key)
    except (ValueError, TypeError) as exc:  # ScoreFileError is a ValueError: one line naming the file
        raise CLIError(f"{what}: {exc}") from None


def _describe(a: Any) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


def run(args: argparse.Namespace) -> int:
    from ..check import check

    scores = _load(args.scores, "SCORES")
    targets = _load(args.targets, "TARGETS", labels=True) if args.targets else None
    try:
        findings = check(scores, targets, task=args.task, space=args.space, axis=args.axis, loss=args.loss,
                         ignore_index=args.ignore_index)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    failing = ("error",) if args.fail_on == "error" else ("error", "warning")
    code = 1 if any(f.severity in failing for f in findings) else 0
    n = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    if args.json:
        from ._output import print_json

        print_json({
            "scores": {"path": args.scores, **_describe(scores)},
            "targets": {"path": args.targets, **_describe(targets)} if targets is not None else None,
            "task": args.task, "space": args.space, "loss": args.loss, "axis": args.axis,
            "findings": [f.as_dict() for f in findings],
            "counts": n, "ok": findings.ok, "exit_code": code,
        })
        return code
    _print(args, scores, targets, findings, n)
    return code


def _print(args, scores, targets, findings, n) -> None:
    from ._output import print_note

    what = f"{args.scores} {tuple(scores.shape)} {scores.dtype}"
    if targets is not None:
        what += f" with targets {args.targets} {tuple(targets.shape)}"
    declared = ", ".join(f"{k}={v}" for k, v in (("task", args.task), ("space", args.space), ("loss", args.loss))
                         if v) or "nothing declared: space=logits, task inferred"
    print_note(f"sigmax check: {what}; {declared}")
    if not findings:
        print_note("no findings: the wiring looks right", style="bold green")
        return
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 110)) - 4
    for f in findings:
        style = {"error": "bold red", "warning": "bold yellow"}.get(f.severity, "bold")
        print()
        print_note(f"{f.severity.upper()} [{f.code}]", style=style)
        print(textwrap.fill(f.message, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False))
        print(textwrap.fill("fix: " + f.fix, width, initial_indent="  ", subsequent_indent="       ",
                            break_on_hyphens=False))
    counts = ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in n.items() if v)
    print()
    print_note(counts, style="bold red" if n["error"] else "")
