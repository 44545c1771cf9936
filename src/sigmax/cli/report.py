"""``sigmax report``: metrics before and after calibration on held-out rows, and an HTML report with plots.

The rows of SCORES/LABELS are split at random (``--fit-fraction``, ``--seed``): one part fits the
calibrator, the other is evaluated before and after, so the "after" column is honest. With
``--calibrator FILE`` an already fitted calibrator is applied to every row instead. A ``.npy`` score file
is always read memory-mapped, chunk by chunk, so the command stays within ``--memory-budget`` (1 GiB by
default) whatever the number of rows and classes; other formats (``.csv``, ``.npz``, ``.pt``) are read
whole, and refused with a one-line error before reading when their estimated size is over the budget. With
``--dask CLUSTER`` (or a Zarr array, ``DIR.zarr[:group/array]``) the inputs are opened as Dask arrays in blocks
of the memory plan's rows, every shard checked first, and each pass runs on the workers. Exit status: 0,
1 when a check() finding reaches ``--fail-on`` (error by default; the findings are printed first), 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from . import CLIError
from ._distributed import wants_dask
from ._output import (
    space_arg,
    task_arg,
    add_fail_on,
    escape,
    exit_status,
    is_terminal,
    print_json,
    print_note,
    print_table,
    rich_available,
)

HELP = "calibrate held-out scores and report metrics before/after, with an HTML report of plots"


def register(sub) -> None:
    p = sub.add_parser(
        "report", help=HELP, description=HELP + ".",
        epilog="examples:\n"
               "  sigmax report logits.npy labels.npy --task multiclass --space logits\n"
               "  sigmax report probs.csv y.csv --task multilabel --space probs --out my-report\n"
               "  sigmax report scores.npz:val_logits scores.npz:val_labels --task binary --space logits \\\n"
               "      --save-calibrator calib.json\n"
               "  sigmax report big.npy labels.npy --task multiclass --space logits --memory-budget 2G\n"
               "  sigmax report 'shards/logits-*.npy' 'shards/labels-*.npy' --task multiclass --space logits\n"
               "  sigmax report 'shards/logits-*.npy' 'shards/labels-*.npy' --task multiclass --space logits --dask local:4\n"
               "  sigmax report val.zarr:logits val.zarr:labels --task multiclass --space logits --dask tcp://10.0.0.5:8786\n"
               "exit status: 0 ok, 1 a check() finding reaches --fail-on (default: an error), 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scores", metavar="SCORES", help="score file: .npy, .npz, .csv, .txt, .pt (FILE:KEY picks an "
                   "array), or a quoted glob of .npy shards, read in sorted order as one file")
    p.add_argument("labels", metavar="LABELS",
                   help="label file: class indices (binary, multiclass) or multi-hot rows (multilabel); or a "
                        "quoted glob of .npy shards")
    add_task_space(p)
    add_dask(p)
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
    p.add_argument("--memory-budget", default="1G", metavar="SIZE",
                   help="memory for the chunks and the calibrator's fitting sample, e.g. 512M, 2G (default 1G); "
                        "the report says the chunk and fit rows it used")
    p.add_argument("--chunk-rows", type=int, metavar="N",
                   help="at most N rows per chunk (default: as many as --memory-budget allows)")
    p.add_argument("--ignore-index", type=int, default=-100, metavar="N",
                   help="labels equal to N are left out (rows; multilabel: entries), as in `sigmax check` and "
                        "PyTorch's losses (default -100)")
    p.add_argument("--min-bin-count", type=int, default=None, metavar="N",
                   help="the MCE takes bins holding at least N rows (default 10)")
    p.add_argument("--resamples", type=int, default=200, metavar="N",
                   help="bootstrap resamples of the 95%% intervals (default 200; metrics re-run per resample use at "
                        "most 100, the smooth ECE 40; 0 = no intervals); each change gets its paired interval")
    p.add_argument("--conformal", type=float, default=None, metavar="ALPHA",
                   help="fit conformal prediction sets (miscoverage ALPHA, e.g. 0.1) on the fitting rows after "
                        "calibration and report their held-out coverage and mean set size (binary, multiclass)")
    p.add_argument("--conformal-method", default="lac", choices=("lac", "aps", "raps"),
                   help="the conformal score (default lac; see sigmax.conformal)")
    p.add_argument("--no-check", action="store_true", help="skip sigmax.check() on the scores")
    add_fail_on(p)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    p.set_defaults(func=run)


def add_task_space(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, type=task_arg, metavar="{binary,multiclass,multilabel}",
                   help="binary: one score per sample; multiclass: one true class (softmax); "
                        "multilabel: any number of true classes (one sigmoid each)")
    p.add_argument("--space", required=True, type=space_arg, metavar="{logits,probs,log_probs}",
                   help="what the numbers are: raw model outputs, softmax/sigmoid outputs, or their logs")
    p.add_argument("--axis", type=int, default=-1, help="the class axis of SCORES (default -1, the last)")


def add_dask(p: argparse.ArgumentParser) -> None:
    from .check import dask_arg

    p.add_argument("--dask", metavar="CLUSTER", default=None, type=dask_arg,
                   help="run on a Dask cluster: local, local:N (N worker processes here) or tcp://HOST:PORT (a "
                        "running scheduler; the files must be visible to its workers). SCORES/LABELS: .npy shards "
                        "(a quoted glob), one .npy, or a Zarr array (DIR.zarr or DIR.zarr:group/array, which "
                        "always runs on Dask). Without it .npy shards stream in this process")


def is_shards(*specs: str) -> bool:
    """Whether any of SCORES/LABELS is a glob of .npy shards."""
    import glob

    return any(s is not None and glob.has_magic(s) for s in specs)


def add_method(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="temperature",
                   choices=("temperature", "vector", "platt", "beta", "isotonic", "histogram", "dirichlet", "auto",
                            "none"),
                   help="calibration: temperature scaling (the default; one temperature per class for multilabel), "
                        "vector scaling (multiclass), Platt or beta scaling (binary, multilabel), isotonic "
                        "regression or histogram binning (one-vs-rest for multiclass), Dirichlet calibration "
                        "(multiclass); auto picks the simplest method within one standard error of the best "
                        "cross-validated NLL and says why; none fits nothing")
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


def _say(text: str, *, stream=None, style: str = "") -> None:
    """print_note with text shown as written: escaped where rich draws it (``[double-softmax]`` is no markup)."""
    rich = style and is_terminal(stream or sys.stdout) and rich_available()
    print_note(escape(text) if rich else text, stream=stream, style=style)


def print_report(rep, *, stream=None) -> None:
    """The findings of check() (first: they may make the numbers meaningless), the before/after table
    and its notes; rich in a terminal, plain text when piped."""
    order = {"error": 0, "warning": 1}
    for f in sorted(rep.findings or (), key=lambda f: order.get(str(f.get("severity")), 2)):
        sev = str(f.get("severity", "info"))
        _say((f"check: {sev} [{f.get('code', '')}]: {f.get('message', '')}"), stream=stream,
                   style="bold red" if sev == "error" else "yellow")
        if f.get("fix"):
            _say((f"  fix: {f['fix']}"), stream=stream)
    errors = rep.errors
    if errors:
        print_note("the numbers below cannot be right until the error(s) above are fixed", stream=stream,
                   style="bold red")
    headers, rows = rep.formatted_table()
    ece_row = [i for i, r in enumerate(rows) if r[0] == "ECE"]
    print_table(headers, rows, title=f"{rep.title} · {rep.n_eval:,} held-out rows", highlight_rows=ece_row,
                stream=stream)
    if rep.after is not None and not errors and "ece" in rep.before.metrics:
        b, a = rep.before.metrics["ece"], rep.after.metrics["ece"]
        ch = (rep.intervals or {}).get("change", {}).get("ece")
        good = a < b if ch is None else (ch["significant"] and ch["estimate"] < 0)
        style = "bold green" if good else ("yellow" if ch is not None and not ch["significant"] else "bold red")
        _say(rep.headline(), stream=stream, style=style)
    for n in rep.notes:
        _say(("  " + n), stream=stream)


def figure_count(out_dir) -> int:
    return len([f for f in os.listdir(out_dir) if f.endswith(".png")])


def run(args: argparse.Namespace) -> int:
    from ..io import ScoreFileError, is_streamed, load_labels, load_scores
    from ..report import calibration_report, parse_memory, stream_calibration_report

    t0 = time.perf_counter()
    if not 0 < args.fit_fraction <= 1:
        raise CLIError(f"--fit-fraction must be in (0, 1], got {args.fit_fraction}; e.g. --fit-fraction 0.5")
    if args.bins < 1:
        raise CLIError(f"--bins must be a positive integer, got {args.bins}")
    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    if args.min_bin_count is not None and args.min_bin_count < 1:
        raise CLIError(f"--min-bin-count must be a positive integer, got {args.min_bin_count}; e.g. --min-bin-count 10")
    try:
        budget = parse_memory(args.memory_budget, "--memory-budget")
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if not args.no_html and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out}: is a file, not a folder; the report writes index.html and PNG files into "
                       "a folder: give a new or existing folder name, e.g. --out sigmax-report")
    if args.calibrator and args.save_calibrator:
        raise CLIError("--calibrator applies a saved calibrator, so there is nothing to --save-calibrator; drop one")
    if args.method == "none" and args.save_calibrator:
        raise CLIError("--method none fits no calibrator, so there is nothing to --save-calibrator")
    if args.resamples < 0 or args.resamples == 1:
        raise CLIError(f"--resamples must be 0 (no intervals) or at least 2, got {args.resamples}; e.g. --resamples 200")
    conformal = None
    if args.conformal is not None:
        if not 0 < args.conformal < 1:
            raise CLIError(f"--conformal must be a miscoverage level in (0, 1), got {args.conformal:g}; e.g. "
                           "--conformal 0.1 for sets that hold the true class 90% of the time")
        if args.calibrator or args.method == "none":
            why = "--calibrator applies a fitted calibrator to every row" if args.calibrator else \
                "--method none fits nothing"
            raise CLIError(f"--conformal fits its sets on the fitting rows after calibration, but {why}, so there "
                           "are none; drop --conformal, or let the report fit a calibrator (--method ...)")
        if args.task == "multilabel":
            conformal = args.conformal  # the report says that multilabel sets are not supported
        else:
            from ..conformal import ConformalClassifier

            conformal = ConformalClassifier(args.task, method=args.conformal_method, alpha=args.conformal)
    if not args.calibrator and args.method != "none":  # --method/--tune that the task has no use for: before any read
        from ..calibration import resolve_method

        try:
            resolve_method(args.task, args.method, tune_value(args.tune))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    show = None if is_terminal(sys.stderr) else False
    if wants_dask(args, args.scores, args.labels):  # on the workers: every input checked before any work
        rep = _report_on_dask(args, budget, conformal, show)
        return _finish(args, rep, t0, show, args.scores)
    shards = is_shards(args.scores, args.labels)  # globs of .npy shards: streamed as one file, in order
    if shards:
        (spath, skey), (lpath, lkey) = (args.scores, None), (args.labels, None)
    else:
        spath, skey = split_key(args.scores, "SCORES")
        lpath, lkey = split_key(args.labels, "LABELS")
    cal = load_calibrator(args.calibrator) if args.calibrator else None
    stream = shards or is_streamed(spath, skey)  # a .npy is memory-mapped: within the budget at any size
    common = _common(args, cal, budget, conformal, show)
    try:
        if stream:
            rep = stream_calibration_report(spath, lpath, chunk_rows=args.chunk_rows, scores_key=skey,
                                            labels_key=lkey, title=f"{args.task} report: {os.path.basename(spath)}",
                                            **common)
        else:
            # read whole: refused before reading when the estimate is over the budget (sigmax.io.estimate_bytes)
            scores = load_scores(spath, key=skey, memory_budget=budget)
            labels = load_labels(lpath, key=lkey, memory_budget=budget)
            rep = calibration_report(scores, labels, source=spath, chunk_rows=args.chunk_rows,
                                     title=f"{args.task} report: {os.path.basename(spath)}", **common)
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{exc} (SCORES {args.scores}, LABELS {args.labels}, --task {args.task}, "
                       f"--space {args.space})") from None
    return _finish(args, rep, t0, show, spath)


def _common(args: argparse.Namespace, cal: Any, budget: int, conformal: Any, show: Any) -> dict:
    """The keyword arguments every door of the report pipeline takes from the flags."""
    return {"task": args.task, "space": args.space, "axis": args.axis, "calibrator": cal, "method": args.method,
            "tune": tune_value(args.tune), "fit_fraction": args.fit_fraction, "seed": args.seed,
            "n_bins": args.bins, "class_names": class_names(args.class_names), "check": not args.no_check,
            "show_progress": show, "memory_budget": budget, "ignore_index": args.ignore_index,
            "min_bin_count": args.min_bin_count, "n_resamples": args.resamples, "conformal": conformal}


def _report_on_dask(args: argparse.Namespace, budget: int, conformal: Any, show: Any):
    """The report over Dask arrays (shards, a .npy or Zarr), on the cluster --dask names (or the local
    scheduler for Zarr without --dask); blocks of the rows the memory plan gives."""
    from ..io import ScoreFileError
    from ..report import calibration_report
    from ._distributed import on_cluster, open_pair, plan_rows

    cal = load_calibrator(args.calibrator) if args.calibrator else None
    fitting = cal is None and args.method != "none"
    rows, _ = plan_rows(args.scores, "SCORES", budget, fitting=fitting, chunk_rows=args.chunk_rows,
                        n_resamples=args.resamples)
    scores, labels = open_pair(args.scores, args.labels, rows)
    common = _common(args, cal, budget, conformal, show)
    title = f"{args.task} report: {os.path.basename(str(args.scores).rstrip('/'))}"
    try:
        return on_cluster(args, lambda: calibration_report(scores, labels, source=str(args.scores), chunk_rows=rows,
                                                           title=title, **common))
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{exc} (SCORES {args.scores}, LABELS {args.labels}, --task {args.task}, "
                       f"--space {args.space}, --dask {_cluster_text(args)})") from None


def _cluster_text(args: argparse.Namespace) -> str:
    spec = getattr(args, "dask", None)
    return "none (the local scheduler)" if spec is None else (spec[1] if spec[0] == "address" else f"local:{spec[1]}")


def _finish(args: argparse.Namespace, rep, t0: float, show: Any, spath: Any) -> int:
    """Save, write the page and print: the same for every door."""
    from ..io import ScoreFileError
    from ..report import write_html

    spath = str(spath).rstrip("/")
    if args.save_calibrator and rep.calibrator is not None:
        rep.calibrator.save(args.save_calibrator)
    page = None
    if not args.no_html:
        try:
            page = write_html([rep], args.out, title=f"sigmax report: {os.path.basename(spath)}", show_progress=show)
        except (NotADirectoryError, ScoreFileError, FileExistsError) as exc:
            raise CLIError(f"--out {args.out}: {exc}") from None
    code = exit_status(rep.findings, args.fail_on)
    if args.json:
        d = rep.to_dict()
        d["html"] = None if page is None else str(page)
        d["calibrator_file"] = args.save_calibrator
        d["exit_code"] = code
        print_json(d)
        return code
    print_report(rep)
    if args.save_calibrator and rep.calibrator is not None:
        print_note(f"calibrator saved to {args.save_calibrator} (apply it: sigmax calibrate apply "
                   f"{args.save_calibrator} SCORES -o calibrated.npy)")
    if page is not None:
        print_note(f"report: {page} ({figure_count(args.out)} figures, also as PNG files in {args.out}/)",
                   style="bold")
    print_note(f"done in {time.perf_counter() - t0:.1f} s")
    if code:
        print_note(f"exit status 1: a check() finding reaches --fail-on {args.fail_on} (see the top)",
                   stream=sys.stderr)
    return code


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
