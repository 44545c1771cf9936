"""``sigmax report``: metrics before and after calibration on held-out rows, and an HTML report with plots.

The rows of SCORES/LABELS are split at random (``--fit-fraction``, ``--seed``): one part fits the
calibrator, the other is evaluated before and after, so the "after" column is honest. With
``--calibrator FILE`` an already fitted calibrator is applied to every row instead. A ``.npy`` score file
given ``--chunk-rows`` (or larger than 1 GiB) is streamed from disk in bounded memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from . import CLIError
from ._output import is_terminal, print_json, print_note, print_table

HELP = "calibrate held-out scores and report metrics before/after, with an HTML report of plots"

#: .npy files larger than this are streamed even without --chunk-rows
STREAM_BYTES = 1 << 30


def register(sub) -> None:
    p = sub.add_parser(
        "report", help=HELP, description=HELP + ".",
        epilog="examples:\n"
               "  sigmax report logits.npy labels.npy --task multiclass --space logits\n"
               "  sigmax report probs.csv y.csv --task multilabel --space probs --out my-report\n"
               "  sigmax report scores.npz:val_logits scores.npz:val_labels --task binary --space logits \\\n"
               "      --save-calibrator calib.json\n"
               "  sigmax report big.npy labels.npy --task multiclass --space logits --chunk-rows 65536",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scores", metavar="SCORES", help="score file: .npy, .npz, .csv, .txt, .pt (FILE:KEY picks an array)")
    p.add_argument("labels", metavar="LABELS",
                   help="label file: class indices (binary, multiclass) or multi-hot rows (multilabel)")
    add_task_space(p)
    p.add_argument("--out", default="sigmax-report", metavar="DIR",
                   help="directory for index.html and the PNG plots (default: sigmax-report)")
    p.add_argument("--no-html", action="store_true", help="print the table only; write no files")
    add_method(p)
    p.add_argument("--calibrator", metavar="FILE",
                   help="apply this fitted calibrator (from --save-calibrator or `sigmax calibrate fit`) to every "
                        "row instead of fitting one")
    p.add_argument("--save-calibrator", metavar="FILE", help="write the fitted calibrator as JSON")
    p.add_argument("--fit-fraction", type=float, default=0.5, metavar="F",
                   help="fraction of rows (at random) that fits the calibrator; the rest is evaluated "
                        "(default 0.5; 1 = fit and evaluate on the same rows, in-sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    p.add_argument("--bins", type=int, default=15, help="equal-width bins for ECE and the diagrams (default 15)")
    p.add_argument("--class-names", metavar="A,B,...", help="class names for the plots, comma-separated")
    p.add_argument("--chunk-rows", type=int, metavar="N",
                   help="stream a .npy SCORES file N rows at a time (bounded memory; automatic above 1 GiB)")
    p.add_argument("--no-check", action="store_true", help="skip sigmax.check() on the scores")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    p.set_defaults(func=run)


def add_task_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=("binary", "multiclass", "multilabel"),
                   help="binary: one score per sample; multiclass: one true class (softmax); "
                        "multilabel: any number of true classes (one sigmoid each)")
    p.add_argument("--space", required=True, choices=("logits", "probs", "log_probs"),
                   help="what the numbers are: raw model outputs, softmax/sigmoid outputs, or their logs")
    p.add_argument("--axis", type=int, default=-1, help="the class axis of SCORES (default -1, the last)")


def add_method(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="auto", choices=("auto", "temperature", "vector", "platt", "none"),
                   help="calibration: temperature scaling (default; one temperature per class for multilabel), "
                        "vector scaling (multiclass), Platt scaling (binary, multilabel), or none")
    p.add_argument("--tune", default="auto", choices=("auto", "f1", "none"),
                   help="tune per-class decision thresholds for F1 (default for binary and multilabel)")


def split_key(arg: str, what: str) -> tuple[str, str | None]:
    """``FILE`` or ``FILE:KEY`` (an array inside an .npz/.pt, a .csv column); the file must exist."""
    if os.path.exists(arg):
        return arg, None
    if ":" in arg:
        path, key = arg.rsplit(":", 1)
        if key and os.path.exists(path):
            return path, key
    raise CLIError(f"{what} {arg}: no such file; check the path (current directory is {os.getcwd()}; "
                   "FILE:KEY picks an array in an .npz/.pt)")


def class_names(arg: str | None) -> list[str] | None:
    return None if arg is None else [s.strip() for s in arg.split(",")]


def tune_value(arg: str) -> Any:
    return None if arg == "none" else arg


def print_report(rep, *, stream=None) -> None:
    """The findings of check() (first: they may make the numbers meaningless), the before/after table
    and its notes; rich in a terminal, plain text when piped."""
    for f in rep.findings or ():
        sev = str(f.get("severity", "info"))
        print_note(f"check: {sev} {f.get('code', '')}: {f.get('message', '')}", stream=stream,
                   style="bold red" if sev == "error" else "yellow")
        if f.get("fix"):
            print_note(f"  fix: {f['fix']}", stream=stream)
    headers, rows = rep.table()
    ece_row = [i for i, r in enumerate(rows) if r[0] == "ECE"]
    print_table(headers, rows, title=f"{rep.title} · {rep.n_eval:,} held-out rows", highlight_rows=ece_row,
                stream=stream)
    if rep.after is not None:
        b, a = rep.before.metrics["ece"], rep.after.metrics["ece"]
        word = "lowered" if a < b else "did not lower"
        print_note(f"{rep.calibrator_text}: {word} ECE {b:.4f} -> {a:.4f} on rows it never saw", stream=stream,
                   style="bold green" if a < b else "bold red")
    for n in rep.notes:
        print_note("  " + n, stream=stream)


def figure_count(out_dir) -> int:
    return len([f for f in os.listdir(out_dir) if f.endswith(".png")])


def run(args: argparse.Namespace) -> int:
    from ..io import ScoreFileError, load_labels, load_scores
    from ..report import calibration_report, stream_calibration_report, write_html

    t0 = time.perf_counter()
    if not 0 < args.fit_fraction <= 1:
        raise CLIError(f"--fit-fraction must be in (0, 1], got {args.fit_fraction}; e.g. --fit-fraction 0.5")
    if args.bins < 1:
        raise CLIError(f"--bins must be a positive integer, got {args.bins}")
    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    if args.calibrator and args.save_calibrator:
        raise CLIError("--calibrator applies a saved calibrator, so there is nothing to --save-calibrator; drop one")
    if args.method == "none" and args.save_calibrator:
        raise CLIError("--method none fits no calibrator, so there is nothing to --save-calibrator")
    spath, skey = split_key(args.scores, "SCORES")
    lpath, lkey = split_key(args.labels, "LABELS")
    cal = load_calibrator(args.calibrator) if args.calibrator else None
    stream = args.chunk_rows is not None or (
        spath.lower().endswith(".npy") and skey is None and os.path.getsize(spath) > STREAM_BYTES)
    show = None if is_terminal(sys.stderr) else False
    common = {"task": args.task, "space": args.space, "axis": args.axis, "calibrator": cal, "method": args.method,
              "tune": tune_value(args.tune), "fit_fraction": args.fit_fraction, "seed": args.seed,
              "n_bins": args.bins, "class_names": class_names(args.class_names), "check": not args.no_check,
              "show_progress": show}
    try:
        if stream:
            if not spath.lower().endswith(".npy"):
                print_note(f"note: {spath} is not a .npy file, so it is read whole and then processed in chunks",
                           stream=sys.stderr)
            rep = stream_calibration_report(spath, lpath, chunk_rows=args.chunk_rows, scores_key=skey,
                                            labels_key=lkey, title=f"{args.task} report: {os.path.basename(spath)}",
                                            **common)
        else:
            scores = load_scores(spath, key=skey)
            labels = load_labels(lpath, key=lkey)
            rep = calibration_report(scores, labels, source=spath,
                                     title=f"{args.task} report: {os.path.basename(spath)}", **common)
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"{exc} (SCORES {args.scores}, LABELS {args.labels}, --task {args.task}, "
                       f"--space {args.space})") from None
    if args.save_calibrator and rep.calibrator is not None:
        rep.calibrator.save(args.save_calibrator)
    page = None
    if not args.no_html:
        page = write_html([rep], args.out, title=f"sigmax report: {os.path.basename(spath)}", show_progress=show)
    if args.json:
        d = rep.to_dict()
        d["html"] = None if page is None else str(page)
        d["calibrator_file"] = args.save_calibrator
        print_json(d)
        return 0
    print_report(rep)
    if args.save_calibrator and rep.calibrator is not None:
        print_note(f"calibrator saved to {args.save_calibrator} (apply it: sigmax calibrate apply "
                   f"{args.save_calibrator} SCORES -o calibrated.npy)")
    if page is not None:
        print_note(f"report: {page} ({figure_count(args.out)} figures, also as PNG files in {args.out}/)",
                   style="bold")
    print_note(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def load_calibrator(path: str):
    """A saved calibrator, or a one-line error naming the file and the fix."""
    from ..calibration import load

    if not os.path.exists(path):
        raise CLIError(f"--calibrator {path}: no such file; write one with --save-calibrator or "
                       "`sigmax calibrate fit SCORES LABELS --task ... --space ... -o calib.json`")
    try:
        return load(path)
    except (ValueError, KeyError, OSError) as exc:
        raise CLIError(f"--calibrator {path}: not a sigmax calibrator file ({exc}); "
                       "write one with `sigmax calibrate fit`") from None
