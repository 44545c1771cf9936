"""``sigmax calibrate``: fit a calibrator on labelled scores and save it; apply it to new scores.

``sigmax calibrate fit SCORES LABELS --task ... --space ... -o calib.json`` runs :func:`sigmax.check` on
the scores (findings first; exit 1 on an error finding, ``--fail-on`` as in ``sigmax check``), fits
any calibrator the report fits (temperature, vector, Platt, beta, isotonic, histogram binning, Dirichlet, or
``auto``; and, for binary/multilabel, per-class F1 thresholds) on *all*
the given rows — use scores the model was not trained on — with
:func:`sigmax.calibration.fit_calibrator`, and writes JSON. ``sigmax calibrate apply calib.json SCORES
-o out.npy`` reads SCORES in the space stored in the calibrator and writes the calibrated logits (or
``--probs``); a ``.npy`` input is processed in chunks, so files larger than memory work. Every output
is written to a temporary file beside the target and renamed into place, so ``-o`` may name the input.
With ``--dask CLUSTER`` (or a Zarr input) ``fit`` runs :func:`sigmax.calibration.fit_calibrator` on Dask
arrays on the workers, and ``apply`` transforms block by block on the workers, each writing its rows at
their offset into one temporary ``.npy`` beside ``-o`` (with ``tcp://``, on a filesystem the workers share).

Exit status: 0 done, 1 a check finding reached ``--fail-on`` (``fit``; the calibrator is then not
saved), 2 a usage error (one line naming the argument and the fix).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

from . import CLIError
from ._output import (add_fail_on, add_memory_budget, exit_status, is_terminal, print_json, print_note,
                      print_table, space_arg)
from ._distributed import on_cluster, open_input, open_pair, plan_rows, wants_dask
from .report import add_dask, add_method, add_task_space, is_shards, split_key

HELP = "fit a calibrator on labelled scores (fit), or apply a saved one to new scores (apply)"

def register(sub) -> None:
    p = sub.add_parser(
        "calibrate", help=HELP, description=HELP + ".",
        epilog="examples:\n"
               "  sigmax calibrate fit val_logits.npy val_labels.npy --task multiclass --space logits -o calib.json\n"
               "  sigmax calibrate apply calib.json test_logits.npy -o test_calibrated.npy\n"
               "  sigmax calibrate apply calib.json test_logits.npy -o test_probs.csv --probs\n"
               "  sigmax calibrate apply calib.json 'shards/logits-*.npy' -o calibrated.npy  (one output file)\n"
               "  sigmax calibrate fit 'shards/logits-*.npy' 'shards/labels-*.npy' --task multiclass --space logits \\\n"
               "      -o calib.json --dask local:4\n"
               "  sigmax calibrate apply calib.json val.zarr:logits -o calibrated.npy --dask tcp://10.0.0.5:8786\n"
               "exit status: 0 done, 1 a check finding reached --fail-on (fit: nothing saved), 2 usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    f = actions.add_parser("fit", help="fit on SCORES and LABELS, write the calibrator as JSON",
                           description="Check SCORES/LABELS, fit a calibrator on every row (held-out data, not "
                                       "the model's training data) and write it as JSON. Exit 1 (nothing "
                                       "saved) when a check finding reaches --fail-on.")
    f.add_argument("scores", metavar="SCORES", help="score file: .npy, .npz, .csv, .txt, .pt (FILE:KEY picks an "
                   "array), or a quoted glob of .npy shards (read in sorted order, within --memory-budget)")
    f.add_argument("labels", metavar="LABELS", help="class indices (binary, multiclass) or multi-hot rows "
                   "(multilabel); or a quoted glob of .npy shards")
    add_task_space(f)
    add_dask(f)
    add_method(f)
    f.add_argument("--ignore-index", type=int, default=-100, metavar="N",
                   help="labels equal to N are left out, as in PyTorch's losses and `sigmax check` (default -100)")
    add_fail_on(f)
    add_memory_budget(f)
    f.add_argument("--no-check", action="store_true", help="skip sigmax.check() on the scores")
    f.add_argument("-o", "--output", required=True, metavar="FILE.json",
                   help="where to write the calibrator (missing folders are created)")
    f.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    f.set_defaults(func=run_fit)
    a = actions.add_parser("apply", help="apply a saved calibrator to SCORES, write calibrated logits",
                           description="Apply a saved calibrator to SCORES and write the calibrated logits "
                                       "(or probabilities with --probs). SCORES are read in the space the "
                                       "calibrator was fitted on. A .npy input is streamed in chunks; -o may "
                                       "name the input (it is replaced only when the output is complete).")
    a.add_argument("calibrator", metavar="CALIBRATOR.json", help="from `sigmax calibrate fit` or `sigmax report --save-calibrator`")
    a.add_argument("scores", metavar="SCORES", help="score file (FILE:KEY picks an array), or a quoted glob of .npy "
                   "shards: streamed in sorted order into ONE output file holding the concatenated rows")
    a.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file: .npy (streamed for .npy input) or .csv; missing folders are created")
    a.add_argument("--space", default=None, type=space_arg, metavar="{logits,probs,log_probs}",
                   help="what SCORES hold; default, and the only value accepted: the space stored in the "
                        "calibrator. The output is logits unless --probs")
    a.add_argument("--probs", action="store_true", help="write calibrated probabilities instead of logits")
    a.add_argument("--chunk-rows", type=int, default=None, metavar="N",
                   help="rows per chunk for .npy input (default: as many as --memory-budget allows, at most 65536)")
    add_memory_budget(a)
    add_dask(a)
    a.set_defaults(func=run_apply)
    p.set_defaults(func=_no_action, _parser=p)


def _no_action(args: argparse.Namespace) -> int:
    args._parser.print_help(sys.stderr)
    raise CLIError("say what to do: `sigmax calibrate fit ...` or `sigmax calibrate apply ...`")


def _output_path(path: str, flag: str, example: str) -> None:
    if os.path.isdir(path):
        raise CLIError(f"{flag} {path}: is a directory; give a file name, e.g. {flag} "
                       f"{os.path.join(path, example)}")


# ------------------------------------------------------------------------------------------- fit
def _print_findings(findings: list[dict]) -> None:
    for f in findings:
        sev = str(f.get("severity", "info"))
        print_note(f"check: {sev} {f.get('code', '')}: {f.get('message', '')}",
                   style="bold red" if sev == "error" else "yellow")
        if f.get("fix"):
            print_note(f"  fix: {f['fix']}")


def _summaries(scores: Any, labels: Any, cal: Any, args: argparse.Namespace) -> tuple[dict, dict] | None:
    """In-sample metrics before and after, on the rows the fit used (``None`` where the metrics cannot
    leave ignored multilabel entries out)."""
    from .._inputs import canonical
    from ..metrics import summary

    c = canonical(scores, labels, args.task, axis=args.axis, ignore_index=args.ignore_index)
    if c.valid is not None:
        return None
    s, y = c.scores, c.labels
    before = summary(s, y, args.task, space=args.space)
    thr = {} if cal.thresholds is None else {"threshold": cal.thresholds}
    after = summary(np.asarray(cal.transform(s)), y, args.task, space="logits", **thr)
    return before, after


def _dask_summaries(scores: Any, labels: Any, cal: Any, args: argparse.Namespace) -> tuple[dict, dict] | None:
    """:func:`_summaries` on Dask arrays: each side one tree reduction on the workers (``None`` where
    ignored multilabel entries would have to be left out)."""
    from ..metrics import summary

    ii = args.ignore_index
    if args.task == "multilabel" and ii is not None and bool((labels == ii).any().compute()):
        return None
    keep = {} if args.task == "multilabel" else {"ignore_index": ii}
    before = summary(scores, labels, args.task, space=args.space, axis=args.axis, **keep)
    thr = {} if cal.thresholds is None else {"threshold": cal.thresholds}
    after = summary(cal.transform(scores), labels, args.task, space="logits", axis=args.axis, **keep, **thr)
    return before, after


def run_fit(args: argparse.Namespace) -> int:
    from .._inputs import interface

    with interface("cli"):  # messages spell settings as flags: --space probs, --ignore-index -100
        return _run_fit(args)


def _run_fit(args: argparse.Namespace) -> int:
    from ..calibration import fit_calibrator
    from ..io import ScoreFileError, load_labels, load_scores

    t0 = time.perf_counter()
    if args.method == "none":
        raise CLIError("--method none fits nothing; choose temperature, vector, platt, beta, isotonic, histogram, "
                       "dirichlet or auto (the ones the task has a use for)")
    if not args.output.lower().endswith(".json"):
        raise CLIError(f"-o {args.output}: a calibrator is written as JSON; name the file like calib.json")
    _output_path(args.output, "-o", "calib.json")
    from ..calibration import resolve_method

    resolve_method(args.task, args.method, args.tune)  # a bad --method/--tune stops before any file is read
    context = (f"(SCORES {args.scores}, LABELS {args.labels}, --task {args.task}, --space {args.space})")
    on_dask = wants_dask(args, args.scores, args.labels)
    try:
        if on_dask:  # Dask arrays on the workers: every shard / the Zarr metadata and the rows checked first
            rows, _ = plan_rows(args.scores, "SCORES", args.memory_budget, fitting=False, chunk_rows=None)
            scores, labels = open_pair(args.scores, args.labels, rows)
        elif is_shards(args.scores, args.labels):  # every shard checked, then read whole within the budget
            scores, labels = _read_shard_pair(args.scores, args.labels, args.memory_budget)
        else:
            spath, skey = split_key(args.scores, "SCORES")
            lpath, lkey = split_key(args.labels, "LABELS")
            scores = load_scores(spath, key=skey, memory_budget=args.memory_budget)
            labels = load_labels(lpath, key=lkey, memory_budget=args.memory_budget)
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    notes: list[str] = []

    def work():
        findings: list[dict] = []
        if not args.no_check:
            from ..check import check
            from .check import check_blocks

            try:
                found = (check_blocks(scores, labels, task=args.task, space=args.space, axis=args.axis,
                                      ignore_index=args.ignore_index) if on_dask else
                         check(scores, labels, task=args.task, space=args.space, axis=args.axis,
                               ignore_index=args.ignore_index))
            except (ValueError, TypeError) as exc:
                raise CLIError(f"{exc} {context}") from None
            for f in found:
                d = f.as_dict()
                d.pop("details", None)
                findings.append(d)
        try:
            cal = fit_calibrator(scores, labels, args.task, space=args.space, method=args.method, tune=args.tune,
                                 axis=args.axis, ignore_index=args.ignore_index, notes=notes)
            sides = (_dask_summaries if on_dask else _summaries)(scores, labels, cal, args)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{exc} {context}") from None
        return findings, cal, sides

    findings, cal, sides = on_cluster(args, work) if on_dask else work()
    code = exit_status(findings, args.fail_on)
    if code == 0:
        try:
            cal.save(args.output)
        except (ScoreFileError, OSError) as exc:
            raise CLIError(f"-o {args.output}: cannot write the calibrator ({exc}); choose another path") from None
    n_rows = int(cal.scaler.info_.get("n_samples", 0)) if cal.scaler is not None else None
    thr = cal.thresholds
    if args.json:
        print_json({"calibrator": args.output if code == 0 else None, "saved": code == 0, "method": cal.method,
                    "space": cal.space_, "summary": cal.describe(), "rows": n_rows,
                    "thresholds": None if thr is None else np.asarray(thr).tolist(),
                    "in_sample_before": None if sides is None else sides[0],
                    "in_sample_after": None if sides is None else sides[1],
                    "findings": findings, "notes": notes, "exit_code": code})
        return code
    _print_findings(findings)
    rows = f" on {n_rows:,} rows" if n_rows is not None else ""
    if sides is not None:
        before, after = sides
        keys = [k for k in ("nll", "brier", "accuracy", "f1_micro", "f1_macro", "ece") if k in before]
        print_table(["metric (fit rows, in-sample)", "before", "after"], [[k, before[k], after[k]] for k in keys],
                    title=f"fitted {cal.describe()}{rows}")
    else:
        print_note(f"fitted {cal.describe()}{rows} (in-sample metrics are not shown: labels equal to "
                   f"--ignore-index {args.ignore_index} mask multilabel entries)")
    for n in notes:
        print_note(n, stream=sys.stderr)
    if thr is not None:
        print_note("tuned thresholds: " + ", ".join(f"{v:.3f}" for v in np.atleast_1d(thr)[:12])
                   + (" ..." if np.size(thr) > 12 else ""))
    print_note("in-sample numbers are optimistic: measure on held-out rows with "
               f"`sigmax report TEST_SCORES TEST_LABELS --task {args.task} --space {args.space} --calibrator {args.output}`")
    if code:
        sev = "an error" if args.fail_on == "error" else f"a {args.fail_on} or worse"
        print_note(f"not saved: sigmax check found {sev} (above); fix the wiring, or pass --fail-on never to "
                   "save the calibrator anyway", style="bold red")
        return code
    print_note(f"calibrator saved to {args.output} in {time.perf_counter() - t0:.1f} s", style="bold")
    return 0


def _read_shard_pair(scores: str, labels: str, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """SCORES and LABELS shards: every shard of both checked (:func:`sigmax.io.check_shards`) and the row
    totals compared before any row is read; then each set read whole, in sorted order."""
    from ..io import ScoreFileError, check_shards
    from ..report._shards import shard_rows

    s, y = check_shards(scores, "SCORES"), check_shards(labels, "LABELS")
    if shard_rows(s) != shard_rows(y):
        raise ScoreFileError(f"LABELS {labels} hold {shard_rows(y)} rows but SCORES {scores} {shard_rows(s)}; give "
                             "one label row per score row (the shards are taken in sorted order)")
    return _read_shards(s, scores, "SCORES", budget), _read_shards(y, labels, "LABELS", budget, labels=True)


def _read_shards(shards: list, spec: str, what: str, budget: int, labels: bool = False) -> np.ndarray:
    """The rows of checked shards, concatenated in sorted order; refused in one line when they would not
    fit ``--memory-budget`` (a calibrator fits on rows in memory)."""
    from ..io import ScoreFileError, load_array
    from ..report._shards import shard_rows

    dtype = np.result_type(*[d for _, _, d in shards])
    n = shard_rows(shards)
    need = n * max(1, int(np.prod(shards[0][1][1:], dtype=np.int64))) * max(8, dtype.itemsize)
    if need > budget:
        raise ScoreFileError(f"{what} {spec}: {len(shards)} shard(s), {n:,} rows need about {need:,} bytes in memory "
                             f"to fit a calibrator, over --memory-budget {budget:,}; raise --memory-budget or fit "
                             "on a sample of the shards")
    arr = np.concatenate([np.asarray(load_array(p, mmap=True)) for p, _, _ in shards])
    if labels and arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


# ----------------------------------------------------------------------------------------- apply
def _load_calibrator(path: str) -> Any:
    """A saved calibrator, validated, or a one-line error naming CALIBRATOR.json and the fix."""
    from ..calibration import load

    if not os.path.exists(path):
        raise CLIError(f"CALIBRATOR.json {path}: no such file; write one with `sigmax calibrate fit SCORES LABELS "
                       "--task ... --space ... -o calib.json` or `sigmax report --save-calibrator`")
    if os.path.isdir(path):
        raise CLIError(f"CALIBRATOR.json {path}: is a directory; give the calibrator's .json file")
    try:
        cal = load(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CLIError(f"CALIBRATOR.json {path}: {exc}") from None
    if getattr(cal, "task", None) is None or getattr(cal, "space_", None) is None:  # pragma: no cover - validated
        raise CLIError(f"CALIBRATOR.json {path}: the calibrator does not say its task and space; refit it with "
                       "`sigmax calibrate fit`")
    return cal


def _npy_header(fh, shape: tuple, dtype: np.dtype) -> None:
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    try:
        np.lib.format.write_array_header_1_0(fh, d)
    except ValueError:  # pragma: no cover - a header over 64 KiB (absurdly many dimensions)
        np.lib.format.write_array_header_2_0(fh, d)


def _write_csv(fh, z: np.ndarray) -> None:
    np.savetxt(fh, z.reshape(z.shape[0], -1), delimiter=",", fmt="%.10g")


def run_apply(args: argparse.Namespace) -> int:
    from .._inputs import interface

    with interface("cli"):
        return _run_apply(args)


#: bytes a chunk row costs while it is converted: the float64 input copy, the calibrated logits and, with
#: --probs, the probabilities (and one temporary), per stored value
_APPLY_COPIES = 4 * 8


def _chunk_rows(head: np.ndarray, asked: int | None, budget: int) -> int:
    """Rows per chunk: what ``--memory-budget`` allows for rows of ``head``'s width, at most ``asked``
    (65536 when not given); a budget too small for one row is an error."""
    width = max(1, int(np.prod(head.shape[1:], dtype=np.int64)))
    fits = int(budget) // (_APPLY_COPIES * width)
    if fits < 1:
        raise CLIError(f"--memory-budget {budget:,} bytes cannot hold one row of {width:,} values while it is "
                       f"converted (about {_APPLY_COPIES * width:,} bytes); raise --memory-budget")
    return max(1, min(fits, 65536 if asked is None else asked))


def _run_apply(args: argparse.Namespace) -> int:
    from .._array import normalize_axis
    from ..interpret import to_probs
    from ..io import ScoreFileError, atomic_write, check_shards, count_rows, iter_chunks, load_array, load_scores

    cal = _load_calibrator(args.calibrator)
    task, stored = cal.task, cal.space_
    if args.space is not None and args.space != stored:
        raise CLIError(f"--space {args.space} contradicts the calibrator {args.calibrator}, fitted on --space "
                       f"{stored}: SCORES must be {stored} (drop --space; the stored space is the default), or "
                       f"fit a calibrator on {args.space} with `sigmax calibrate fit ... --space {args.space}`")
    if args.chunk_rows is not None and args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows must be a positive integer, got {args.chunk_rows}")
    out = args.output
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npy", ".csv"):
        raise CLIError(f"-o {out}: write .npy (any size) or .csv; e.g. -o calibrated.npy")
    _output_path(out, "-o", "calibrated" + (ext or ".npy"))
    shards = is_shards(args.scores)
    spath, skey = (args.scores, None) if shards else split_key(args.scores, "SCORES")

    def convert(block: np.ndarray) -> np.ndarray:
        z = np.asarray(cal.transform(np.asarray(block), space=stored))  # keeps the stored float dtype
        return np.asarray(to_probs(z, task, space="logits", axis=cal.axis_)) if args.probs else z

    context = f"(SCORES {args.scores}, read as --space {stored} as the calibrator says, calibrator task {task})"
    t0 = time.perf_counter()
    if wants_dask(args, args.scores):
        shape = _apply_on_dask(args, cal, convert, out, ext, context)
        what = "probabilities" if args.probs else "logits"
        print_note(f"wrote calibrated {what} {tuple(shape)} to {out} in {time.perf_counter() - t0:.1f} s "
                   f"(on Dask: each worker wrote its rows; SCORES read as {stored}, output space: {what})",
                   stream=sys.stdout if not is_terminal() else None)
        return 0
    try:
        stream = shards or (spath.lower().endswith(".npy") and skey is None)
        if shards:  # every shard checked before any row is read; one output holds the concatenated rows
            from ..report._shards import iter_shard_chunks, shard_rows

            found = check_shards(spath, "SCORES")
            n = shard_rows(found)
            head = np.zeros((0,) + found[0][1][1:])
            if task != "binary" and head.ndim >= 2 and normalize_axis(cal.axis_, head.ndim) == 0:
                raise CLIError(f"SCORES {spath}: the calibrator's class axis is axis 0, the axis the shards are "
                               "split along; save the shards as (samples, classes)")
            chunk_rows = _chunk_rows(head, args.chunk_rows, args.memory_budget)
        elif stream:
            n = count_rows(spath)
            head = load_array(spath, mmap=True)
            chunk_rows = _chunk_rows(head, args.chunk_rows, args.memory_budget)
            # the class axis must not be the row axis that chunks split
            if task != "binary" and head.ndim >= 2 and normalize_axis(cal.axis_, head.ndim) == 0:
                stream = False
        if stream:
            chunks = iter_shard_chunks(found, chunk_rows) if shards else iter_chunks(spath, chunk_rows)
            first = next(chunks, None)
            z0 = convert(first) if first is not None else np.zeros((0,) + head.shape[1:], dtype=np.float64)
            shape = (n,) + z0.shape[1:]
            # written beside the target and renamed into place when complete: -o may be the input
            with atomic_write(out, "wb" if ext == ".npy" else "w", encoding=None if ext == ".npy" else "utf-8") as fh:
                if ext == ".npy":
                    _npy_header(fh, shape, z0.dtype)
                write = (lambda z: fh.write(np.ascontiguousarray(z, dtype=z0.dtype).tobytes())) if ext == ".npy" \
                    else (lambda z: _write_csv(fh, z))
                done = 0
                if first is not None:
                    write(z0)
                    done = z0.shape[0]
                for block in chunks:
                    z = convert(block)
                    write(z)
                    done += z.shape[0]
                if done != n:  # pragma: no cover - the file changed while it was read
                    raise ScoreFileError(f"{spath}: read {done} rows but its header says {n}; was it being written?")
        else:
            z = convert(load_scores(spath, key=skey, memory_budget=args.memory_budget))
            shape = z.shape
            with atomic_write(out, "wb" if ext == ".npy" else "w", encoding=None if ext == ".npy" else "utf-8") as fh:
                if ext == ".npy":
                    np.save(fh, z)
                else:
                    _write_csv(fh, z)
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{exc} {context}") from None
    except OSError as exc:
        raise CLIError(f"-o {out}: cannot write ({exc}); choose another path") from None
    what = "probabilities" if args.probs else "logits"
    print_note(f"wrote calibrated {what} {tuple(shape)} to {out} in {time.perf_counter() - t0:.1f} s "
               f"(SCORES read as {stored}, the calibrator's space; output space: {what})",
               stream=sys.stdout if not is_terminal() else None)
    return 0


def _apply_on_dask(args: argparse.Namespace, cal: Any, convert, out: str, ext: str, context: str) -> tuple:
    """``calibrate apply`` on Dask: SCORES (shards, a .npy or Zarr) checked first, ``convert`` run lazily
    block by block on the workers, each block written at its row offset into one temporary ``.npy``
    beside ``-o`` and renamed onto it when every block is done (:func:`sigmax._io_dask.store_npy`)."""
    from .._array import normalize_axis
    from .._io_dask import store_npy
    from ..io import ScoreFileError

    if ext != ".npy":
        raise CLIError(f"-o {out}: on Dask the workers write their rows into one .npy at their offsets; "
                       "use -o calibrated.npy (or drop --dask for .csv)")
    head = open_input(args.scores, "SCORES", 1 << 20)  # headers / metadata only
    if cal.task != "binary" and head.ndim >= 2 and normalize_axis(cal.axis_, head.ndim) == 0:
        raise CLIError(f"SCORES {args.scores}: the calibrator's class axis is axis 0, the axis the blocks split; "
                       "save the scores as (samples, classes)")
    x = open_input(args.scores, "SCORES", _chunk_rows(np.zeros((0,) + head.shape[1:]), args.chunk_rows,
                                                      args.memory_budget))
    x = x.rechunk({i: -1 for i in range(1, x.ndim)}) if x.ndim > 1 else x

    def work():
        first = np.asarray(x[:1].compute()) if x.shape[0] else np.zeros((1,) + x.shape[1:], dtype=x.dtype)
        z0 = convert(first)  # the output's dtype and row shape, from one row
        z = x.map_blocks(convert, dtype=z0.dtype, chunks=(x.chunks[0],) + tuple((k,) for k in z0.shape[1:]),
                         meta=np.empty((0,) + z0.shape[1:], dtype=z0.dtype))
        return store_npy(z, out)

    try:
        return on_cluster(args, work)
    except ScoreFileError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{exc} {context}") from None
    except OSError as exc:
        raise CLIError(f"-o {out}: cannot write ({exc}); choose another path (with --dask tcp://..., on a "
                       "filesystem the workers share)") from None
