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
from ._output import add_fail_on, add_memory_budget, exit_status, space_arg, task_arg

HELP = "check that scores (and labels) are wired right: softmax twice, wrong axis, label mismatches, ..."

EPILOG = """examples:
  sigmax check logits.npy labels.npy --task multiclass
  sigmax check outputs.npz:probs outputs.npz:labels --task multiclass --space probs
  sigmax check scores.pt --loss BCEWithLogitsLoss --json
  sigmax check 'shards/logits-*.npy' 'shards/labels-*.npy' --task multiclass --dask local:2
exit status: 0 no error found, 1 a finding is an error (or a warning with --fail-on warning; never with
--fail-on never), 2 usage error (one line on stderr: sigmax check: error: ...)"""


def ignore_index_arg(text: str) -> int | None:
    """``--ignore-index``: an integer label value, or ``none`` to skip nothing."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer label value (PyTorch uses -100) or 'none', "
                                         f"got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("check", help=HELP, description=HELP, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scores", metavar="SCORES",
                   help="score file: .npy, .npz, .csv, .txt or .pt (weights-only); FILE:KEY picks an array of an "
                        ".npz/.pt dict or a .csv column")
    p.add_argument("targets", metavar="TARGETS", nargs="?",
                   help="optional label file (class indices, multi-hot rows or 0/1 labels), same formats")
    p.add_argument("--task", type=task_arg, metavar="{binary,multiclass,multilabel}",
                   help="binary (one score per sample), multiclass (exactly one true class: softmax) or multilabel "
                        "(any number: one sigmoid each); default: inferred from the shapes where possible")
    p.add_argument("--space", type=space_arg, metavar="{logits,probs,log_probs}",
                   help="what the scores are declared to be, i.e. what consumes them (default logits)")
    p.add_argument("--loss", help="instead of --space: the loss they go to (cross_entropy, nll_loss, "
                                  "binary_cross_entropy, binary_cross_entropy_with_logits, or PyTorch's class names)")
    p.add_argument("--axis", type=int, default=-1, help="the class axis of the scores (default -1)")
    p.add_argument("--ignore-index", type=ignore_index_arg, default=-100, metavar="N",
                   help="class-index targets equal to N are skipped, as in PyTorch's losses (default -100; "
                        "'none' to skip nothing)")
    add_fail_on(p)
    add_memory_budget(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    p.add_argument("--dask", type=dask_arg, metavar="CLUSTER",
                   help="check .npy shards (SCORES and TARGETS may be quoted globs) on a Dask cluster: local, "
                        "local:N (N worker processes here) or tcp://HOST:PORT (a running scheduler); without it "
                        "shards are checked one block at a time in this process")
    p.add_argument("--chunk-rows", type=int, default=65536, metavar="N",
                   help="rows per block of sharded input (default 65536)")
    p.set_defaults(func=run)


def dask_arg(text: str):
    """``--dask``: where the work runs (see :func:`sigmax._dask.parse_cluster`)."""
    from .._dask import parse_cluster

    try:
        return parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sharded(args) -> bool:
    """On Dask: ``--dask`` given, a glob of shards, or a Zarr array."""
    import glob

    from ._distributed import wants_dask

    return (wants_dask(args, args.scores, args.targets) or glob.has_magic(args.scores)
            or bool(args.targets and glob.has_magic(args.targets)))


def _split_key(spec: str) -> tuple[str, str | None]:
    """``FILE:KEY`` -> (FILE, KEY) unless FILE:KEY is itself an existing file."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, key = spec.rsplit(":", 1)
    if not key or "/" in key or "\\" in key:
        return spec, None
    return path, key


def _load(spec: str, what: str, labels: bool = False, memory_budget: int = 2**30) -> Any:
    from ..io import load_labels, load_scores

    path, key = _split_key(spec)
    try:
        load = load_labels if labels else load_scores
        return load(path, key=key, memory_budget=memory_budget)
    except (ValueError, TypeError) as exc:  # ScoreFileError is a ValueError: one line naming the file
        raise CLIError(f"{what}: {exc}") from None


def _describe(a: Any) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


def _task_text(findings) -> str:
    task = getattr(findings, "task", None)
    if task is None:
        return "task not inferred (give --task to run the task-specific checks)"
    return f"task {task} (inferred from the shapes)" if getattr(findings, "task_inferred", False) else f"task {task}"


def _open_shards(args):
    """Scores (and targets) shards or Zarr arrays as Dask arrays, every input checked before any work starts."""
    from .._io_dask import check_rows
    from ._distributed import open_input

    if args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    scores = open_input(args.scores, "SCORES", args.chunk_rows)
    targets = open_input(args.targets, "TARGETS", args.chunk_rows) if args.targets else None
    try:
        check_rows(scores, targets, args.scores, args.targets)
    except ValueError as exc:
        raise CLIError(str(exc).replace("LABELS", "TARGETS")) from None
    return scores, targets


def check_blocks(scores: Any, targets: Any, *, task: str | None, space: str | None, axis: int = -1,
                 loss: str | None = None, ignore_index: int | None = -100):
    """``check`` on every row block of Dask arrays where it lives; the findings merged (each code once, the
    first block's), as a :class:`sigmax.check.Findings`. Used by ``check``, ``calibrate fit`` and ``report``
    on a cluster."""
    from .._dask import delayed_blocks, tree_reduce
    from ..check import Findings, check

    ii = ignore_index
    if targets is not None:
        targets = targets.rechunk((scores.chunks[0],) + (-1,) * (targets.ndim - 1))

    def part(sb, yb):
        return [check(sb, yb, task=task, space=space, axis=axis, loss=loss, ignore_index=ii)]

    found = tree_reduce(part, delayed_blocks(scores, targets), lambda a, b: a + b)
    seen, merged = set(), []
    for f in (f for fs in found for f in fs):
        if f.code not in seen:
            seen.add(f.code)
            merged.append(f)
    first = found[0]
    order = {"error": 0, "warning": 1, "info": 2}
    return Findings(sorted(merged, key=lambda f: order.get(f.severity, 3)), task=first.task,
                    task_inferred=first.task_inferred, space=first.space, loss=first.loss,
                    ignore_index=first.ignore_index)


def run(args: argparse.Namespace) -> int:
    from ..check import check

    if _sharded(args):
        from .._dask import cluster

        scores, targets = _open_shards(args)
        try:
            with cluster(args.dask):
                findings = check_blocks(scores, targets, task=args.task, space=args.space, axis=args.axis,
                                        loss=args.loss, ignore_index=args.ignore_index)
        except (ValueError, ImportError) as exc:
            raise CLIError(str(exc)) from None
    else:
        scores = _load(args.scores, "SCORES", memory_budget=args.memory_budget)
        targets = (_load(args.targets, "TARGETS", labels=True, memory_budget=args.memory_budget)
                   if args.targets else None)
        findings = check(scores, targets, task=args.task, space=args.space, axis=args.axis, loss=args.loss,
                         ignore_index=args.ignore_index)  # a ValueError/TypeError: one line, exit 2 (main)
    code = exit_status(findings, args.fail_on)
    n = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    if args.json:
        from ._output import print_json

        print_json({
            "scores": {"path": args.scores, **_describe(scores)},
            "targets": {"path": args.targets, **_describe(targets)} if targets is not None else None,
            "task": getattr(findings, "task", args.task),
            "task_inferred": bool(getattr(findings, "task_inferred", False)),
            "space": getattr(findings, "space", args.space), "loss": args.loss, "axis": args.axis,
            "ignore_index": args.ignore_index, "fail_on": args.fail_on,
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
    space = getattr(findings, "space", None) or args.space or "logits"
    declared = [_task_text(findings), f"space {space}" + ("" if args.space or args.loss else " (the default)")]
    if args.loss:
        declared.append(f"loss {args.loss}")
    print_note(f"sigmax check: {what}; {', '.join(declared)}")
    if not findings:
        print_note("no findings: the wiring looks right", style="bold green")
        return
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 110)) - 4
    for f in findings:
        style = {"error": "bold red", "warning": "bold yellow"}.get(f.severity, "bold")
        print()
        print_note(f"{f.severity.upper()} [{f.code}]", style=style)  # escaped: rich would eat [code]
        print(textwrap.fill(f.message, width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False))
        print(textwrap.fill("fix: " + f.fix, width, initial_indent="  ", subsequent_indent="       ",
                            break_on_hyphens=False))
    counts = ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in n.items() if v)
    print()
    print_note(counts, style="bold red" if n["error"] else "")
