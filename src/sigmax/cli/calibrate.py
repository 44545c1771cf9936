"""``sigmax calibrate``: fit a calibrator on labelled scores and save it; apply it to new scores.

``sigmax calibrate fit SCORES LABELS --task ... --space ... -o calib.json`` fits temperature, vector or
Platt scaling (and, for binary/multilabel, per-class F1 thresholds) on *all* the given rows — use
scores the model was not trained on — and writes JSON. ``sigmax calibrate apply calib.json SCORES -o
out.npy`` writes the calibrated logits (or ``--probs``); a ``.npy`` input is processed in chunks, so
files larger than memory work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from . import CLIError
from ._output import is_terminal, print_json, print_note, print_table
from .report import add_method, add_task_space, load_calibrator, split_key, tune_value

HELP = "fit a calibrator on labelled scores (fit), or apply a saved one to new scores (apply)"


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help=HELP, description=HELP + ".",
        epilog="examples:\n"
               "  sigmax calibrate fit val_logits.npy val_labels.npy --task multiclass --space logits -o calib.json\n"
               "  sigmax calibrate apply calib.json test_logits.npy -o test_calibrated.npy\n"
               "  sigmax calibrate apply calib.json test_logits.npy -o test_probs.csv --probs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    f = actions.add_parser("fit", help="fit on SCORES and LABELS, write the calibrator as JSON",
                           description="Fit a calibrator on every row of SCORES/LABELS (held-out data, not "
                                       "the model's training data) and write it as JSON.")
    f.add_argument("scores", metavar="SCORES", help="score file: .npy, .npz, .csv, .txt, .pt (FILE:KEY picks an array)")
    f.add_argument("labels", metavar="LABELS", help="class indices (binary, multiclass) or multi-hot rows (multilabel)")
    add_task_space(f)
    add_method(f)
    f.add_argument("-o", "--output", required=True, metavar="FILE.json", help="where to write the calibrator")
    f.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    f.set_defaults(func=run_fit)
    a = actions.add_parser("apply", help="apply a saved calibrator to SCORES, write calibrated logits",
                           description="Apply a saved calibrator to SCORES and write the calibrated logits "
                                       "(or probabilities with --probs). A .npy input is streamed in chunks.")
    a.add_argument("calibrator", metavar="CALIBRATOR.json", help="from `sigmax calibrate fit` or `sigmax report --save-calibrator`")
    a.add_argument("scores", metavar="SCORES", help="score file (FILE:KEY picks an array)")
    a.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file: .npy (streamed for .npy input) or .csv")
    a.add_argument("--space", default="logits", choices=("logits", "probs", "log_probs"),
                   help="what SCORES hold (default logits); the output is always logits unless --probs")
    a.add_argument("--probs", action="store_true", help="write calibrated probabilities instead of logits")
    a.add_argument("--chunk-rows", type=int, default=65536, metavar="N", help="rows per chunk for .npy input (default 65536)")
    a.set_defaults(func=run_apply)
    p.set_defaults(func=_no_action, _parser=p)


def _no_action(args: argparse.Namespace) -> int:
    args._parser.print_help(sys.stderr)
    raise CLIError("say what to do: `sigmax calibrate fit ...` or `sigmax calibrate apply ...`")


def run_fit(args: argparse.Namespace) -> int:
    from ..io import ScoreFileError, load_labels, load_scores
    from ..metrics import summary
    from ..report._report import (
        DEFAULT_METHOD,
        _describe,
        _fit,
        _label_rows,
        _rows,
        _validate_labels,
    )

    t0 = time.perf_counter()
    if args.method == "none":
        raise CLIError("--method none fits nothing; choose temperature, vector or platt (or auto)")
    if not args.output.lower().endswith(".json"):
        raise CLIError(f"-o {args.output}: a calibrator is written as JSON; name the file like calib.json")
    spath, skey = split_key(args.scores, "SCORES")
    lpath, lkey = split_key(args.labels, "LABELS")
    method = DEFAULT_METHOD[args.task] if args.method == "auto" else args.method
    tune = tune_value(args.tune)
    if tune == "auto":
        tune = "f1" if args.task != "multiclass" else None
    if args.task == "multiclass" and tune is not None:
        raise CLIError("--tune f1 is for binary and multilabel tasks (multiclass decides by argmax); drop --tune")
    try:
        raw = np.asarray(load_scores(spath, key=skey))
        s = _rows(raw, args.task, args.axis)
        y = _label_rows(np.asarray(load_labels(lpath, key=lkey)), args.task, args.axis, raw.ndim)
        _validate_labels(y, s, args.task, "LABELS")
        notes: list[str] = []
        cal = _fit(s, y, args.task, args.space, method, tune, notes)
        before = summary(s, y, args.task, space=args.space)
        after = summary(np.asarray(cal.transform(s)), y, args.task, space="logits",
                        **({"threshold": cal.thresholds} if args.task != "multiclass" and
                           getattr(cal, "thresholds", None) is not None else {}))
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"{exc} (SCORES {args.scores}, LABELS {args.labels}, --task {args.task}, "
                       f"--space {args.space})") from None
    cal.save(args.output)
    thr = getattr(cal, "thresholds", None)
    for n in notes:
        print_note(n, stream=sys.stderr)
    out = {"calibrator": args.output, "method": method, "summary": _describe(cal), "rows": int(s.shape[0]),
           "thresholds": None if thr is None else np.asarray(thr).tolist(),
           "in_sample_before": before, "in_sample_after": after}
    if args.json:
        print_json(out)
        return 0
    keys = [k for k in ("nll", "brier", "accuracy", "f1_micro", "f1_macro", "ece") if k in before]
    print_table(["metric (fit rows, in-sample)", "before", "after"], [[k, before[k], after[k]] for k in keys],
                title=f"fitted {_describe(cal)} on {s.shape[0]:,} rows")
    if thr is not None:
        print_note("tuned thresholds: " + ", ".join(f"{v:.3f}" for v in np.atleast_1d(thr)[:12])
                   + (" ..." if np.size(thr) > 12 else ""))
    print_note("in-sample numbers are optimistic: measure on held-out rows with "
               f"`sigmax report TEST_SCORES TEST_LABELS --task {args.task} --space {args.space} --calibrator {args.output}`")
    print_note(f"calibrator saved to {args.output} in {time.perf_counter() - t0:.1f} s", style="bold")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from ..interpret import to_probs
    from ..io import ScoreFileError, count_rows, iter_chunks, load_scores

    cal = load_calibrator(args.calibrator)
    task = getattr(cal, "task", None)
    if task is None:
        raise CLIError(f"{args.calibrator}: the calibrator does not say its task; refit it with `sigmax calibrate fit`")
    if args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    out = args.output
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".csv"):
        raise CLIError(f"-o {out}: write .npy (any size) or .csv; e.g. -o calibrated.npy")
    spath, skey = split_key(args.scores, "SCORES")

    def convert(block: np.ndarray) -> np.ndarray:
        z = np.asarray(cal.transform(np.asarray(block), space=args.space))  # keeps the stored float dtype
        return np.asarray(to_probs(z, task, space="logits")) if args.probs else z

    t0 = time.perf_counter()
    try:
        if spath.lower().endswith(".npy") and skey is None and ext == ".npy":
            n = count_rows(spath)
            mm = None
            done = 0
            for block in iter_chunks(spath, args.chunk_rows):
                z = convert(block)
                if mm is None:
                    mm = np.lib.format.open_memmap(out, mode="w+", dtype=z.dtype, shape=(n,) + z.shape[1:])
                mm[done:done + z.shape[0]] = z
                done += z.shape[0]
            if mm is not None:
                mm.flush()
                shape = mm.shape
                del mm
            else:
                shape = (0,)
        else:
            z = convert(load_scores(spath, key=skey))
            shape = z.shape
            if ext == ".npy":
                np.save(out, z)
            else:
                np.savetxt(out, z.reshape(z.shape[0], -1), delimiter=",", fmt="%.10g")
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:
        raise CLIError(f"{exc} (SCORES {args.scores}, --space {args.space}, calibrator task {task})") from None
    what = "probabilities" if args.probs else "logits"
    print_note(f"wrote calibrated {what} {tuple(shape)} to {out} in {time.perf_counter() - t0:.1f} s",
               stream=sys.stdout if not is_terminal() else None)
    return 0
