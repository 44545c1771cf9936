"""The one evaluation pipeline: split, fit, measure before and after, chunk by chunk, within a memory budget.

Scores come from a *source* of chunks: :class:`ArraySource` slices arrays already in memory,
:class:`FileSource` reads a ``.npy`` file memory-mapped (other formats are read whole, once their
estimated size is found within the budget, then sliced). :func:`calibration_report` is the in-memory
case and :func:`stream_calibration_report` the file case of :func:`evaluate`, which does everything else
once:

0. ``method`` and ``tune`` are checked against the task (:func:`sigmax.calibration.resolve_method`)
   before any source reads a row;
1. the plan (:func:`sigmax.report.plan_memory`): rows per chunk and rows of the fitting sample, from the
   budget in bytes and the number of scores per row;
2. pass 1, per chunk: each row's seeded uniform number (:func:`split_mask`, independent of the chunking)
   sends it to the fitting rows or the evaluation rows; evaluation rows are validated once
   (:func:`sigmax._inputs.canonical`) and each side turns the record into probabilities once
   (:func:`sigmax.metrics.prepare_canonical`), shared by its metrics (at the default and the tuned
   thresholds) and its figures; a uniform sample of the fitting rows, at most the plan's fit rows, is kept;
3. the calibrator is fitted on that sample (:func:`fit_calibrator`);
4. pass 2: the evaluation rows again, calibrated, summed into the "after" side (at the default
   threshold, and at the tuned thresholds when there are some, so the two effects show apart).

With a calibrator given (or none to fit), the "after" side is summed in pass 1 and there is no pass 2.

The per-chunk work of a pass is one mergeable state (:class:`sigmax.report._passes.PassState`): a
streamed source adds its chunks to one state; a Dask source (:class:`sigmax.report.DaskSource`) builds a
state per row block on the workers and merges them in row order (:func:`sigmax._dask.tree_reduce`), so
both give the same report.
See ``docs/ARCHITECTURE.md`` for the route of a score file from ``sigmax report`` to the HTML.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .. import io as sio
from .._inputs import canonical, is_dask, to_numpy, validate_ignore_index, validate_space, validate_task
from ..calibration import fit_calibrator, resolve_method
from ..metrics import DEFAULT_MIN_BIN_COUNT
from ._budget import DEFAULT_BUDGET, MemoryPlan, parse_memory
from ._passes import PassConfig, interval_sample_rows, report_plan, run_pass, split_mask
from ._intervals import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, LOOP_RESAMPLES, SMOOTH_RESAMPLES, mean_interval,
                         ranking_curves, sample_intervals, sample_metrics)
from ._progress import progress as _progress
from ._report import Report
from ._dasksource import DaskSource
from ._sources import ArraySource
from ._shards import ShardSource, is_sharded, streamed_classes

__all__ = ["DEFAULT_IGNORE_INDEX", "ArraySource", "FileSource", "calibration_report", "evaluate", "split_mask",
           "stream_calibration_report"]

#: PyTorch's ignore_index default, as in :func:`sigmax.check`
DEFAULT_IGNORE_INDEX = -100


# ------------------------------------------------------------------------------------ sources
class FileSource:
    """Chunks of a score file and its label file, read in order.

    A ``.npy`` (no key) is memory-mapped and read chunk by chunk (``streamed``, :func:`sigmax.io.is_streamed`);
    other formats are read whole, once the size they would take is found to fit ``memory_budget``
    (:func:`sigmax.io.estimate_bytes`), then sliced.
    """

    def __init__(self, scores_path: Any, labels_path: Any, task: str, axis: Any = -1, *,
                 scores_key: str | None = None, labels_key: str | None = None,
                 memory_budget: Any = DEFAULT_BUDGET) -> None:
        self.scores_path, self.labels_path = scores_path, labels_path
        self.scores_key, self.labels_key = scores_key, labels_key
        self.budget = parse_memory(memory_budget)
        self.streamed = sio.is_streamed(scores_path, scores_key)
        self._labels_streamed = sio.is_streamed(labels_path, labels_key)
        self._whole: np.ndarray | None = None  # a score file read whole (not a .npy): read once
        if self.streamed:
            self.n_rows = sio.count_rows(scores_path)
        else:
            self._whole = sio.load_array(scores_path, key=scores_key, memory_budget=self.budget)
            self.n_rows = int(self._whole.shape[0])
        n_labels = self._count_labels()
        if n_labels != self.n_rows:
            raise ValueError(f"LABELS has {n_labels} rows but SCORES has {self.n_rows}; give one label per score row, "
                             "in the same order")
        first = next(iter(self._score_chunks(1)), None)
        if first is None:
            raise ValueError(f"SCORES {os.fspath(scores_path)} holds no rows; metrics need at least one sample")
        self.n_classes = streamed_classes(task, axis, first.shape, self.n_rows, "the file holds")
        self.axis = self.chunk_axis = axis  # chunks are rows of the file as stored
        self.scores_per_row = max(int(np.prod(first.shape[1:])), 1)  # the product of no axes is 1
        self.names = ("SCORES", "LABELS")

    def _count_labels(self) -> int:
        if self._labels_streamed:
            return sio.count_rows(self.labels_path)
        return int(sio.load_labels(self.labels_path, key=self.labels_key, memory_budget=self.budget).shape[0])

    def _score_chunks(self, rows: int) -> Iterator[np.ndarray]:
        if self._whole is None:
            yield from sio.iter_chunks(self.scores_path, rows, memory_budget=self.budget)
            return
        for i in range(0, self._whole.shape[0], rows):
            yield self._whole[i:i + rows]

    def _label_chunks(self, rows: int) -> Iterator[np.ndarray]:
        if self._labels_streamed:
            yield from sio.iter_chunks(self.labels_path, rows)
            return
        y = sio.load_labels(self.labels_path, key=self.labels_key, memory_budget=self.budget)
        for i in range(0, y.shape[0], rows):
            yield y[i:i + rows]

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        ys = self._label_chunks(rows)
        start = 0
        for s in self._score_chunks(rows):
            y = next(ys)
            yield start, s, y
            start += s.shape[0]

    def first(self, rows: int) -> tuple[Any, Any]:
        return next(iter(self.chunks(rows)))[1:]


# ------------------------------------------------------------------------------------ fitting
def _fit(scores: np.ndarray, labels: np.ndarray, task: str, space: str, method: Any, tune: Any,
         ignore_index: int | None, notes: list[str]):
    """:func:`sigmax.calibration.fit_calibrator` on the sample; its warnings become notes of the report."""
    return fit_calibrator(scores, labels, task, space=space, method=method, tune=tune, axis=-1,
                          ignore_index=ignore_index, notes=notes)


def _fit_set(fit: tuple[Any, Any], task: str, axis: Any, n_classes: int, fit_cap: int,
             seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A uniform sample (at most ``fit_cap`` rows, in order) of a separate calibration set: its scores (class
    axis last), labels and number of rows. Dask arrays: only the sampled rows are computed."""
    names = ("fit scores", "fit labels")
    if is_dask(fit[0]) or is_dask(fit[1]):
        fsrc: Any = DaskSource(fit[0], fit[1], task, axis, names=names)
    else:
        fsrc = ArraySource(fit[0], fit[1], task, axis, names=names)
    if fsrc.n_classes != n_classes:
        raise ValueError(f"the fit scores have {fsrc.n_classes} classes but the scores have {n_classes}")
    take = np.arange(fsrc.n_rows)
    if fsrc.n_rows > fit_cap:
        take = np.sort(np.random.default_rng(seed).choice(fsrc.n_rows, fit_cap, replace=False))
    s, y = fsrc.rows(take)
    return s, y, fsrc.n_rows


def _thresholds(cal: Any) -> Any:
    t = getattr(cal, "thresholds", None) if cal is not None else None
    return None if t is None else np.asarray(t, dtype=np.float64)


def _findings(scores: Any, labels: Any, task: str, space: str, axis: Any, ignore_index: Any) -> list[dict] | None:
    """The findings of :func:`sigmax.check` as plain dicts (code, severity, message, fix)."""
    try:
        from ..check import check
    except ImportError:  # pragma: no cover - check ships with sigmax
        return None
    out = []
    kw = {} if ignore_index is None else {"ignore_index": ignore_index}
    for f in check(scores, labels, task=task, space=space, axis=axis, **kw):
        d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
        d.pop("details", None)
        d["severity"] = str(d.get("severity") or "info")
        out.append(d)
    return out


def _names(class_names: Sequence[str] | None, n: int, task: str) -> list[str]:
    """The names the figures use: one per class, or for binary the positive class's name."""
    if class_names is not None:
        names = [str(c) for c in class_names]
        if task == "binary" and len(names) in (1, 2):
            return names[-1:]
        if len(names) != n:
            raise ValueError(f"class_names has {len(names)} names but the scores have {n} class(es)")
        return names
    return ["positive"] if task == "binary" else [f"class {i}" for i in range(n)]


def _threshold_note(thr: Any, names: Sequence[str], most: int = 8) -> str:
    t = np.atleast_1d(np.asarray(thr, dtype=np.float64))
    pairs = ", ".join(f"{n} {v:.2f}" for n, v in zip(list(names)[:most], t[:most])) + (", ..." if t.size > most else "")
    return (f"Tuned thresholds ({pairs}): the 'after' column decides at 0.5, so it shows calibration alone; "
            "the 'tuned thresholds' column shows the decisions at the tuned thresholds.")


def _resolve(task: str, calibrator: Any, method: Any, tune: Any) -> tuple[Any, Any]:
    """``method`` and ``tune`` checked (:func:`sigmax.calibration.resolve_method`) before any row is read."""
    if isinstance(method, str) and method.strip().lower() == "none":
        return None, tune
    if calibrator is None and method is not None:
        return resolve_method(task, method, tune)
    return method, tune


# ------------------------------------------------------------------------------------ the pipeline
def evaluate(source: Any, task: str, *, space: str = "logits", axis: Any = -1, fit: tuple[Any, Any] | None = None,
             calibrator: Any = None, method: str | None = "temperature", tune: Any = "auto", fit_fraction: float = 0.5,
             max_fit_rows: int | None = None, seed: int = 0, n_bins: int = 15, min_bin_count: int | None = None,
             class_names: Sequence[str] | None = None, title: str | None = None, source_name: str = "",
             check: bool = True, show_progress: bool | None = None, memory_budget: Any = DEFAULT_BUDGET,
             chunk_rows: int | None = None, ignore_index: Any = DEFAULT_IGNORE_INDEX,
             n_resamples: int | None = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, conformal: Any = None,
             max_interval_rows: int | None = None) -> Report:
    """The report of a source of chunks (:class:`ArraySource`, :class:`FileSource`); see the module."""
    t0 = time.perf_counter()
    task, space = validate_task(task), validate_space(space)
    method, tune = _resolve(task, calibrator, method, tune)
    n_resamples = _check_resamples(n_resamples, level)
    conformal_spec = _check_conformal(conformal, task, calibrator, method)
    ignore = validate_ignore_index(ignore_index)
    mbc = DEFAULT_MIN_BIN_COUNT if min_bin_count is None else int(min_bin_count)
    if mbc < 1:
        raise ValueError(f"min_bin_count must be a positive integer, got {min_bin_count!r}")
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if source.n_rows == 0:  # every source (arrays, Dask; the file sources refuse it as they open)
        raise ValueError(f"{source.names[0]} hold no rows; metrics need at least one sample")
    C = source.n_classes
    names = _names(class_names, C, task)
    if calibrator is not None:
        calibrator.check_compatible(task, C)
    split = calibrator is None and method is not None and fit is None  # fit on some rows of the source
    if split and not 0 < fit_fraction <= 1:
        raise ValueError(f"fit_fraction must be in (0, 1], got {fit_fraction!r}")
    fitting = calibrator is None and method is not None
    plan: MemoryPlan = report_plan(memory_budget, scores_per_row=source.scores_per_row, n_rows=source.n_rows,
                                   fitting=fitting, chunk_rows=chunk_rows, n_resamples=n_resamples,
                                   max_interval_rows=max_interval_rows)
    fit_cap = plan.fit_rows if max_fit_rows is None else max(1, min(plan.fit_rows, int(max_fit_rows)))
    # the interval sample (also the rows of AUROC, AP, the equal-mass and smooth ECE and the curves)
    cap = interval_sample_rows(plan, source.scores_per_row, n_resamples, max_interval_rows)
    rows = plan.chunk_rows
    notes: list[str] = []
    frac = fit_fraction if split else 0.0
    n_lead = source.n_rows
    keep = min(1.0, fit_cap / max(frac * n_lead, 1.0)) if split else 0.0
    cal = calibrator
    cax = source.chunk_axis  # the class axis of the chunks the source yields
    cname = dict(scores_name=source.names[0], labels_name=source.names[1])
    if fit is not None and fitting:  # a separate calibration set: a uniform sample of it
        fs, fy, n_fit_rows = _fit_set(fit, task, axis, C, fit_cap, seed)
        cal = _fit(fs, fy, task, space, method, tune, ignore, notes)
        cc = _fit_conformal(conformal_spec, task, cal, fs, fy, space, -1, ignore, notes)
        n_fit = int(fs.shape[0])
        del fs, fy
    else:
        n_fit = n_fit_rows = 0
        cc = None
    thr = _thresholds(cal)
    passes = 2 if split else 1
    base = PassConfig(task, space, C, ignore=ignore, n_bins=n_bins, mbc=mbc, chunk_axis=cax,
                      names=tuple(source.names), frac=frac, seed=seed)
    findings: list[dict] | None = []
    label = getattr(source, "label", "report" + (" (streaming)" if source.streamed else ""))
    with _progress(passes * n_lead, label, enabled=show_progress) as bar:
        if check:
            s0, y0 = source.first(rows)
            findings = _findings(s0, y0, task, space, cax, ignore)
            if findings and s0.shape[0] < n_lead:
                notes.append(f"check() ran on the first {s0.shape[0]:,} rows.")
            del s0, y0
        first = run_pass(source, replace(base, collect=split, keep=keep, fit_cap=fit_cap, calibrator=cal,
                                          thresholds=thr, conformal=cc, sample_cap=0 if split else cap,
                                          sample_expected=n_lead), rows, bar.advance)
        before, after, covered, rowsample, n_ignored = (first.before, first.after, first.covered, first.sample,
                                                        first.n_ignored)
        if split:
            n_fit_rows = first.n_fit_rows
            sample = first.fit_sample()
            if sample is None:
                raise ValueError(f"{n_lead:,} row(s) are too few to split into fitting and evaluation rows; give "
                                 "more rows, a larger fit_fraction or a separate calibration set")
            fs, fy, fr = sample
            # validated with the rows' numbers in the source (a NaN row is named where the user finds it)
            canonical(fs, fy, task, axis=cax, ignore_index=ignore, row_numbers=fr, **cname)
            n_fit = int(fs.shape[0])
            cal = _fit(fs, fy, task, space, method, tune, ignore, notes)
            cc = _fit_conformal(conformal_spec, task, cal, fs, fy, space, cax, ignore, notes)
            del fs, fy, fr, sample
            thr = _thresholds(cal)
            # the interval sample is gathered now: the fitting sample is gone
            second = run_pass(source, replace(base, first_pass=False, calibrator=cal, thresholds=thr, conformal=cc,
                                              sample_cap=cap, sample_expected=before.rows), rows, bar.advance)
            after, covered, rowsample = second.after, second.covered, second.sample
    if before.rows == 0:
        what = f"every evaluated label equals ignore_index={ignore}" if n_ignored else "no rows were evaluated"
        raise ValueError(f"{what}; metrics need at least one sample (give more rows or a smaller fit_fraction)")
    # notes: how the rows were used
    if calibrator is not None:
        notes.append("Calibrator given (already fitted): every row is evaluated.")
    elif fit is not None and fitting:
        sample = f"a uniform sample of {n_fit:,} of its {n_fit_rows:,} rows" if n_fit < n_fit_rows else \
            f"all its {n_fit:,} rows"
        notes.append(f"The calibrator was fitted on the separate calibration set ({sample}); every row is evaluated.")
    elif split:
        sample = (f"a uniform sample of {n_fit:,} of the {n_fit_rows:,} fitting rows" if n_fit < n_fit_rows
                  else f"{n_fit:,} rows")
        if frac >= 1:
            notes.append(f"In-sample: the calibrator was fitted on {sample} of the rows it is evaluated on; "
                         "the 'after' numbers are optimistic.")
        else:
            notes.append(f"Rows split at random (seed {seed}): the calibrator was fitted on {sample}; "
                         f"{before.rows:,} held out for evaluation.")
    if n_ignored:
        what = ("entry" if n_ignored == 1 else "entries") if task == "multilabel" else ("row" if n_ignored == 1 else "rows")
        notes.append(f"{n_ignored:,} {what} with label {ignore} (ignore_index) left out.")
    if thr is not None and task != "multiclass":
        notes.append(_threshold_note(thr, names))
    notes.append(f"MCE: the largest gap over bins holding at least {mbc:,} rows (smaller bins are noise).")
    bview, aview = before.view(), None if after is None else after.view(thr)
    extra = _uncertainty(task, C, names, rowsample, cal, cc, covered, bview, aview, thr, space=space, ignore=ignore,
                         n_bins=n_bins, mbc=mbc, n_resamples=n_resamples, level=level, seed=seed, cap=cap,
                         n_eval=before.rows, notes=notes, conformal_spec=conformal_spec)
    where = getattr(source, "note", " (the score file memory-mapped)" if source.streamed else "")
    notes.append(plan.describe() + where + ".")
    return Report(title=title or f"{task} calibration report", task=task, space=space, n_classes=C,
                  class_names=names, before=bview, after=aview, intervals=extra["intervals"],
                  conformal=extra["conformal"], n_interval_rows=extra["rows"],
                  method=getattr(cal, "method", method) if cal is not None else None, calibrator=cal,
                  calibrator_text=cal.describe() if cal is not None else "", thresholds=thr,
                  findings=findings, notes=notes, n_fit=n_fit, n_eval=before.rows, source=source_name,
                  streamed=source.streamed, seconds=time.perf_counter() - t0, memory=plan, min_bin_count=mbc,
                  n_ignored=n_ignored)


def _check_resamples(n_resamples: Any, level: Any) -> int:
    """``n_resamples`` (0 or ``None``: no intervals) and ``level`` checked before any row is read."""
    if n_resamples is None:
        return 0
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 0 \
            or n_resamples == 1:
        raise ValueError(f"n_resamples must be 0 (no intervals) or an integer >= 2, got {n_resamples!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), e.g. 0.95, got {level!r}")
    return int(n_resamples)


def _check_conformal(conformal: Any, task: str, calibrator: Any, method: Any) -> Any:
    """``conformal``: ``None``, a miscoverage ``alpha`` in (0, 1), or an unfitted
    :class:`sigmax.conformal.ConformalClassifier`; checked before any row is read. Multilabel: ``"multilabel"``
    (the report says the sets are not supported there)."""
    if conformal is None:
        return None
    from ..conformal import ConformalClassifier

    if task == "multilabel":
        return "multilabel"
    if isinstance(conformal, ConformalClassifier):
        if conformal.task != task:
            raise ValueError(f"the conformal classifier is for task={conformal.task!r}, the report for task={task!r}")
        spec = conformal
    elif isinstance(conformal, bool) or not isinstance(conformal, (int, float, np.floating)):
        raise TypeError(f"conformal must be a miscoverage level alpha in (0, 1) (e.g. 0.1 for sets holding the true "
                        f"class 90% of the time) or a ConformalClassifier, got {conformal!r}")
    else:
        spec = ConformalClassifier(task, alpha=float(conformal))  # validates alpha
    if calibrator is not None or method is None:
        why = "a fitted calibrator is applied to every row" if calibrator is not None else "method='none' fits nothing"
        raise ValueError(f"conformal sets are fitted on the fitting rows, after calibration, but {why}, so there "
                         "are none; let the report fit a calibrator (a method, no calibrator)")
    return spec


def _fit_conformal(spec: Any, task: str, cal: Any, scores: Any, labels: Any, space: str, axis: Any,
                   ignore: Any, notes: list[str]) -> Any:
    """The conformal classifier fitted on the fitting rows, after calibration (``None`` without one)."""
    if spec is None or isinstance(spec, str) or cal is None:
        return None
    import copy

    cc = copy.deepcopy(spec)  # the caller's classifier stays unfitted
    c = canonical(scores, labels, task, axis=axis, ignore_index=ignore)
    z = np.asarray(to_numpy(cal.transform(c.scores, space=space), "calibrated scores"), dtype=np.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cc.fit(z, c.labels, space="logits")
    notes.extend(f"conformal: {w.message}" for w in caught)
    return cc


def _uncertainty(task, C, names, sample, cal, cc, covered, bview, aview, thr, *, space, ignore, n_bins, mbc,
                 n_resamples, level, seed, cap, n_eval, notes, conformal_spec) -> dict[str, Any]:
    """The intervals, the sample-only metrics, the ranking curves and the conformal summary (see
    :mod:`sigmax.report._intervals`); every number of the sample, said so in the notes."""
    out: dict[str, Any] = {"intervals": None, "conformal": None, "rows": 0}
    arrays = None if sample is None else sample.arrays(ignore)
    if n_resamples and arrays is None:
        notes.append("No intervals: the memory budget leaves no room for a sample of rows to bootstrap; "
                     "raise the budget." if not cap else "No intervals: no evaluated rows to resample.")
    if arrays is not None:
        sb, y = arrays
        n = int(sb.shape[0])
        out["rows"] = n
        sa = None if aview is None else np.asarray(to_numpy(cal.transform(sb, space=space), "calibrated scores"),
                                                   dtype=np.float64)
        bview.metrics.update(sample_metrics(task, C, sb, y, space, ignore, n_bins, mbc, notes))
        if aview is not None:
            aview.metrics.update(sample_metrics(task, C, sa, y, "logits", ignore, n_bins, mbc, notes))
        try:
            rb = ranking_curves(task, sb, y, space, ignore, names)
            bview.extra["ranking"] = rb
            if aview is not None:
                aview.extra["ranking"] = ranking_curves(task, sa, y, "logits", ignore, names)
        except ValueError:  # pragma: no cover - the sample was validated
            pass
        if n >= 2 and n_resamples:
            est = (bview.metrics, None if aview is None else aview.metrics,
                   None if aview is None else aview.extra.get("tuned"))
            iv = sample_intervals(task, C, sb, space, sa, y, ignore=ignore, n_bins=n_bins, mbc=mbc, thresholds=thr,
                                  n_resamples=n_resamples, level=level, seed=seed, estimates=est, notes=notes)
            iv.update({"n_resamples": n_resamples, "level": level, "method": "percentile", "seed": seed,
                       "rows": n, "of_rows": n_eval, "sampled": n < n_eval})
            out["intervals"] = iv
            outside = sorted({k for side, view in (("before", bview), ("after", aview)) if view is not None
                              for k, (lo, hi) in iv[side].items() if k in view.metrics
                              and not lo <= view.metrics[k] <= hi})
            if outside:
                notes.append(f"{', '.join(outside)}: the estimate lies outside its interval on one side. Binned and "
                             "smoothed calibration errors grow on resamples (a resample repeats rows), so their "
                             "percentile intervals sit high; the paired intervals of the changes cancel most of it.")
            smooth = (f" ({min(n_resamples, LOOP_RESAMPLES):,} for F1, the class-wise and equal-mass ECE and the "
                      f"decisions at tuned thresholds, {min(n_resamples, SMOOTH_RESAMPLES):,} for the smooth ECE: "
                      "they are re-run on every resample)" if n_resamples > SMOOTH_RESAMPLES else "")
            rows = f"the {n:,} evaluated rows" if n >= n_eval else f"a uniform sample of {n:,} of the {n_eval:,} evaluated rows"
            notes.append(f"{level:.0%} intervals: percentile bootstrap, {n_resamples:,} resamples of {rows}{smooth}; "
                         "each change has its paired interval (the same resamples before and after) and is marked "
                         "'not significant' when that interval holds 0.")
            if n < n_eval:
                notes.append(f"The intervals, AUROC, AP and the equal-mass and smooth ECE come from that sample (at "
                             f"most {cap:,} rows: the memory budget and the time of the bootstrap allow no more); the "
                             "other numbers from every evaluated row. A sample's intervals are wider than all "
                             "rows' would be.")
        if cc is not None and sa is not None and covered is not None and covered.n:
            sets = covered.sets(sa)
            hit = sets[np.arange(n), y.astype(np.int64)].astype(np.float64)
            size = sets.sum(axis=1).astype(np.float64)
            out["conformal"] = _conformal_summary(cc, covered, hit, size, n_resamples, level, seed)
    elif cc is not None and covered is not None and covered.n:
        out["conformal"] = _conformal_summary(cc, covered, None, None, 0, level, seed)
    if conformal_spec == "multilabel":
        out["conformal"] = {"supported": False,
                            "reason": "conformal prediction sets cover one true class per row (binary, multiclass); "
                                      "for multilabel scores fit one binary ConformalClassifier per label"}
        notes.append("Conformal sets: not supported for multilabel scores (they cover one true class per row); "
                     "fit one binary conformal classifier per label.")
    elif out["conformal"] is not None:
        notes.append(_conformal_note(out["conformal"]))
    return out


def _conformal_summary(cc, covered, hit, size, n_resamples, level, seed) -> dict[str, Any]:
    q = cc.quantile_
    d = {"supported": True, "method": cc.method, "alpha": cc.alpha, "target": 1.0 - cc.alpha,
         "n_calibration": int(cc.n_calibration_), "quantile": np.asarray(q).tolist(),
         "coverage": covered.hits / covered.n, "mean_set_size": covered.sizes / covered.n, "n_eval": covered.n,
         "coverage_ci": None, "mean_set_size_ci": None, "level": level}
    if hit is not None and n_resamples and hit.size >= 2:
        d["coverage_ci"] = list(mean_interval(hit, n_resamples, level, seed))
        d["mean_set_size_ci"] = list(mean_interval(size, n_resamples, level, seed))
    return d


def _conformal_note(d: dict[str, Any]) -> str:
    from .._format import format_number

    def ci(key: str) -> str:
        v = d.get(key)
        return "" if not v else f" ({d['level']:.0%} CI {format_number(v[0])}…{format_number(v[1])})"

    return (f"Conformal sets ({d['method'].upper()}, alpha {d['alpha']:g}, fitted on {d['n_calibration']:,} fitting "
            f"rows after calibration): held-out coverage {format_number(d['coverage'])}{ci('coverage_ci')}, target "
            f"at least {format_number(d['target'])}; mean set size {format_number(d['mean_set_size'])}"
            f"{ci('mean_set_size_ci')} classes.")


# ------------------------------------------------------------------------------------ the two doors
def calibration_report(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
                       fit: tuple[Any, Any] | None = None, calibrator: Any = None, method: str | None = "temperature",
                       tune: Any = "auto", fit_fraction: float = 0.5, seed: int = 0, n_bins: int = 15,
                       min_bin_count: int | None = None, ignore_index: int | None = DEFAULT_IGNORE_INDEX,
                       memory_budget: Any = DEFAULT_BUDGET, max_fit_rows: int | None = None,
                       chunk_rows: int | None = None, class_names: Sequence[str] | None = None, title: str | None = None, source: str = "",
                       check: bool = True, show_progress: bool | None = None,
                       n_resamples: int | None = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL,
                       conformal: Any = None, max_interval_rows: int | None = None) -> Report:
    """Calibrate on some rows and report the metrics before and after on the others.

    Arrays in memory are the one-source case of the streaming pipeline (:mod:`sigmax.report`): they are
    read in chunks, so the report's own memory stays within ``memory_budget`` whatever their size.
    Dask arrays chunked along the rows (e.g. :func:`sigmax.io.open_shards`) are reduced where their
    blocks live, on the current scheduler (:class:`sigmax.report.DaskSource`): each pass is one tree
    reduction of per-block states, and the report equals the one over the same rows in memory; open them
    with ``chunk_rows=report_plan(memory_budget, scores_per_row=C).chunk_rows``
    (:func:`sigmax.report.report_plan`) so that a worker holds one block's worth.

    Args:
        scores: ``(N,)`` (binary) or ``(N, C)`` scores in the declared ``space`` (any array library, or a
            Dask array; more dimensions are fine, ``axis`` names the class axis).
        labels: class indices ``(N,)`` (binary, multiclass) or multi-hot ``(N, C)`` (multilabel).
        task, space, axis: as in :func:`sigmax.interpret.to_probs`.
        fit: ``(scores, labels)`` of a separate calibration set; then every row of ``scores`` is evaluated.
        calibrator: an already fitted calibrator (from :func:`sigmax.calibration.load`); nothing is fitted.
        method: ``"temperature"`` (the default; one temperature per class for multilabel), ``"vector"``
            (multiclass), ``"platt"`` (binary, multilabel) or ``"none"`` (report the scores as they are).
        tune: ``"f1"`` to tune per-class thresholds (default for binary and multilabel) or ``None``.
        fit_fraction: without ``fit``, the fraction of rows (chosen at random with ``seed``) that fits
            the calibrator; the rest is evaluated. ``1.0`` fits and evaluates on the same rows (in-sample,
            said so in the report).
        n_bins: equal-width bins of the calibration error and the reliability diagram.
        min_bin_count: the MCE is taken over bins with at least this many rows (default 10).
        ignore_index: rows (multilabel: entries) with this label are left out (PyTorch's -100 by default,
            as in :func:`sigmax.check`; ``None`` keeps every label).
        memory_budget: bytes (or ``"512M"``, ``"2G"``) for the chunks and the fitting sample.
        max_fit_rows: at most this many rows fit the calibrator (default: what the budget allows).
        chunk_rows: at most this many rows per chunk (default: what the budget allows).
        class_names: one name per class, for the figures (binary: the positive class's name).
        check: run :func:`sigmax.check` on the first chunk and list its findings.
        show_progress: draw a progress bar (default: when stderr is a terminal).
        n_resamples: bootstrap resamples of the intervals (default 200; ``0`` or ``None``: no intervals).
            Every metric gets a percentile interval before and after, every change its paired interval
            (the same resamples on both sides; "not significant" when it holds 0), from the evaluated rows
            or, above what the memory budget allows (:func:`sigmax.report.interval_rows`), from a uniform
            sample of them, said so in the notes.
        level: the intervals' coverage (default 0.95).
        conformal: a miscoverage level ``alpha`` (e.g. ``0.1``) or an unfitted
            :class:`sigmax.conformal.ConformalClassifier`: fitted on the fitting rows after calibration,
            the report gives its held-out coverage and mean set size with intervals (binary and
            multiclass; multilabel: the notes say it is not supported).
        max_interval_rows: at most this many rows in the interval sample (default: the budget's).

    Returns:
        A :class:`Report`.

    Example:
        >>> from sigmax.datasets import digits_scores
        >>> d = digits_scores("multiclass")
        >>> rep = calibration_report(d.test_logits, d.test_labels, "multiclass",
        ...                          fit=(d.calib_logits, d.calib_labels), check=False)
        >>> rep.after.metrics["ece"] < rep.before.metrics["ece"]
        True
    """
    task = validate_task(task)
    _resolve(task, calibrator, method, tune)  # before the source reads anything
    src = DaskSource(scores, labels, task, axis) if is_dask(scores) or is_dask(labels) else \
        ArraySource(scores, labels, task, axis)
    return evaluate(src, task, space=space, axis=axis, fit=fit, calibrator=calibrator, method=method, tune=tune,
                    fit_fraction=fit_fraction, max_fit_rows=max_fit_rows, seed=seed, n_bins=n_bins,
                    min_bin_count=min_bin_count, class_names=class_names, title=title, source_name=source,
                    check=check, show_progress=show_progress, memory_budget=memory_budget,
                    chunk_rows=chunk_rows, ignore_index=ignore_index, n_resamples=n_resamples, level=level,
                    conformal=conformal, max_interval_rows=max_interval_rows)


def stream_calibration_report(scores_path: Any, labels_path: Any, task: str, *, space: str = "logits",
                              axis: int = -1, chunk_rows: int | None = None, calibrator: Any = None,
                              method: str | None = "temperature", tune: Any = "auto", fit_fraction: float = 0.5,
                              max_fit_rows: int | None = None, seed: int = 0, n_bins: int = 15,
                              min_bin_count: int | None = None, ignore_index: int | None = DEFAULT_IGNORE_INDEX,
                              scores_key: str | None = None, labels_key: str | None = None,
                              class_names: Sequence[str] | None = None, title: str | None = None,
                              check: bool = True, show_progress: bool | None = None,
                              memory_budget: Any = DEFAULT_BUDGET, n_resamples: int | None = DEFAULT_RESAMPLES,
                              level: float = DEFAULT_LEVEL, conformal: Any = None,
                              max_interval_rows: int | None = None) -> Report:
    """:func:`calibration_report` for a score file read chunk by chunk, within ``memory_budget`` bytes.

    A ``.npy`` file is memory-mapped (:func:`sigmax.io.iter_chunks`; other formats are read whole, once
    :func:`sigmax.io.estimate_bytes` finds them within ``memory_budget``). ``scores_path`` and
    ``labels_path`` may be globs (or lists) of ``.npy`` shards (``sigmax.report._shards.ShardSource``), read
    in order as one file: the report equals that of the concatenated file. The rows are read twice: once for the
    "before" sums and a uniform sample of the fitting rows (as many as the budget allows), once more
    for the "after" sums. ``chunk_rows`` (default: from the budget) is lowered to what the budget allows.

    Returns:
        A :class:`Report` whose metrics equal those of :func:`calibration_report` on the same rows
        (up to floating-point summation order) when the fitting sample is all the fitting rows.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from sigmax.datasets import digits_scores
        >>> d, tmp = digits_scores("multiclass"), tempfile.mkdtemp()
        >>> np.save(os.path.join(tmp, "s.npy"), d.test_logits); np.save(os.path.join(tmp, "y.npy"), d.test_labels)
        >>> rep = stream_calibration_report(os.path.join(tmp, "s.npy"), os.path.join(tmp, "y.npy"), "multiclass",
        ...                                 chunk_rows=100, check=False)
        >>> rep.streamed, rep.n_fit + rep.n_eval, rep.memory.chunk_rows
        (True, 697, 100)
    """
    task = validate_task(task)
    _resolve(task, calibrator, method, tune)  # before the source reads anything
    if is_sharded(scores_path) or is_sharded(labels_path):  # .npy shards (globs or lists), read as one file
        src: Any = ShardSource(scores_path, labels_path, task, axis, memory_budget=memory_budget)
        name = ", ".join(map(os.fspath, scores_path)) if isinstance(scores_path, (list, tuple)) else os.fspath(scores_path)
    else:
        src = FileSource(scores_path, labels_path, task, axis, scores_key=scores_key, labels_key=labels_key,
                         memory_budget=memory_budget)
        name = os.fspath(scores_path)
    return evaluate(src, task, space=space, axis=axis, calibrator=calibrator, method=method, tune=tune,
                    fit_fraction=fit_fraction, max_fit_rows=max_fit_rows, seed=seed, n_bins=n_bins,
                    min_bin_count=min_bin_count, class_names=class_names, title=title,
                    source_name=name, check=check, show_progress=show_progress,
                    memory_budget=memory_budget, chunk_rows=chunk_rows, ignore_index=ignore_index,
                    n_resamples=n_resamples, level=level, conformal=conformal, max_interval_rows=max_interval_rows)
