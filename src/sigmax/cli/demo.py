"""``sigmax demo``: the whole pipeline, offline, on real data that ships with scikit-learn.

A logistic regression trained in well under a second on scikit-learn's bundled handwritten digits
(:func:`sigmax.datasets.digits_scores`) gives held-out logits for a multi-class task (which digit) and a
multi-label task (even, greater than 4, prime, closed loop). For each, a calibrator is fitted on the
calibration part and the test part is measured before and after; the tables are printed and an HTML
report with the plots is written.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import CLIError
from ._output import is_terminal, print_json, print_note
from .report import figure_count, print_report

HELP = "calibrate a small model on scikit-learn's digits (offline) and write the HTML report"
TASKS = ("multiclass", "multilabel")


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help=HELP, description=HELP + ": multi-class (the digit) and multi-label (attributes of it).",
        epilog="examples:\n  sigmax demo\n  sigmax demo --out /tmp/report\n  sigmax demo --tasks multiclass,binary",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="sigmax-report", metavar="DIR",
                   help="directory for index.html and the PNG plots (default: sigmax-report)")
    p.add_argument("--tasks", default=",".join(TASKS), metavar="T,T",
                   help="comma-separated tasks among multiclass, multilabel, binary (default multiclass,multilabel)")
    p.add_argument("--seed", type=int, default=0, help="seed of the digits split (default 0)")
    p.add_argument("--no-html", action="store_true", help="print the tables only; write no files")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in tasks if t not in ("multiclass", "multilabel", "binary")]
    if bad or not tasks:
        raise CLIError(f"--tasks {args.tasks!r}: use multiclass, multilabel and/or binary, comma-separated")
    if args.seed < 0:
        raise CLIError(f"--seed must be a non-negative integer, got {args.seed}")
    try:
        from ..datasets import digits_scores
        from ..report import calibration_report, write_html
    except ImportError as exc:
        raise CLIError(f"{exc}") from None
    if not args.json:
        print_note("sigmax demo: a logistic regression on scikit-learn's handwritten digits (offline); calibrated "
                   "on one part, measured on held-out test images", style="bold")
    show = None if is_terminal(sys.stderr) else False
    reports = []
    for task in tasks:
        try:
            d = digits_scores(task, seed=args.seed)
        except ImportError as exc:
            raise CLIError(f"{exc}") from None
        what = {"multiclass": "which digit (10 classes, softmax)",
                "multilabel": "attributes of the digit: " + ", ".join(d.class_names) + " (one sigmoid each)",
                "binary": "is the digit 5 or more (one sigmoid)"}[task]
        rep = calibration_report(d.test_logits, d.test_labels, task, space="logits",
                                 fit=(d.calib_logits, d.calib_labels), class_names=d.class_names,
                                 title=f"digits, {task}: {what}", source="scikit-learn digits, held-out test part",
                                 show_progress=show)
        rep.key = task
        reports.append(rep)
        if not args.json:
            print()
            print_report(rep)
    page = None
    if not args.no_html:
        page = write_html(reports, args.out, title="sigmax demo: calibrating a model of handwritten digits",
                          show_progress=show)
    elapsed = time.perf_counter() - t0
    if args.json:
        print_json({"reports": [r.to_dict() for r in reports], "html": None if page is None else str(page),
                    "seconds": round(elapsed, 2)})
        return 0
    print()
    if page is not None:
        print_note(f"report: {page} ({figure_count(args.out)} figures, also as PNG files in {args.out}/); "
                   f"open it in a browser", style="bold")
    print_note(f"done in {elapsed:.1f} s")
    return 0
