"""Calibration reports: metrics before and after calibration on held-out rows, plot data, findings.

Two ways in, one :class:`Report` out:

* :func:`calibration_report` takes arrays in memory (NumPy, PyTorch, JAX);
* :func:`stream_calibration_report` reads a ``.npy`` score file chunk by chunk (memory-mapped), so a
  file larger than memory is reported in bounded memory. The calibrator is then fitted on a bounded
  uniform sample of the fitting rows (the report says how many).

Both split the rows the same way (a seeded uniform draw per row, independent of the chunk size): a
fraction ``fit_fraction`` fits the calibrator and the rest is evaluated, so the "after" numbers are on
data the calibrator never saw.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..interpret import to_probs, validate_space, validate_task
from ._data import PlotAccumulator, View
from ._progress import progress as _progress

__all__ = [
    "DEFAULT_METHOD",
    "METRIC_NAMES",
    "Report",
    "calibration_report",
    "split_mask",
    "stream_calibration_report",
]

#: rows of the metrics table, in order, with their display names and whether lower is better
METRIC_NAMES = {
    "nll": ("NLL", True),
    "brier": ("Brier", True),
    "accuracy": ("accuracy", False),
    "top5_accuracy": ("top-5 accuracy", False),
    "f1_micro": ("F1 micro", False),
    "f1_macro": ("F1 macro", False),
    "ece": ("ECE", True),
    "mce": ("MCE", True),
    "classwise_ece": ("class-wise ECE", True),
}
#: the calibration method used when none is named
DEFAULT_METHOD = {"binary": "temperature", "multiclass": "temperature", "multilabel": "temperature"}
_SPLIT_BLOCK = 4096


# ----------------------------------------------------------------------------------------- Report
@dataclass
class Report:
    """One task's calibration report: the before/after metrics, the plot data and the findings.

    ``table()`` gives the metrics table, ``to_text()`` prints it, ``write_html(dir)`` writes the page.
    """

    title: str
    task: str
    space: str
    n_classes: int
    class_names: list[str]
    before: View
    after: View | None = None
    method: str | None = None
    calibrator: Any = None
    calibrator_text: str = ""
    thresholds: Any = None
    findings: list[dict] | None = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_fit: int = 0
    n_eval: int = 0
    source: str = ""
    streamed: bool = False
    seconds: float = 0.0
    key: str = ""  # short name for the page's anchors and the PNG file names (default: from the title)

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """``(headers, rows)``: one row per metric, with before, after and the change."""
        b = self.before.metrics
        a = self.after.metrics if self.after is not None else None
        headers = ["metric", "before"] + (["after", "change"] if a is not None else [])
        rows = []
        for key, (name, _lower) in METRIC_NAMES.items():
            if key not in b:
                continue
            row: list[Any] = [name, float(b[key])]
            if a is not None:
                va = float(a.get(key, float("nan")))
                row += [va, _change(float(b[key]), va)]
            rows.append(row)
        return headers, rows

    def subtitle(self) -> str:
        what = {"binary": "binary (one sigmoid)", "multiclass": "multi-class (softmax)",
                "multilabel": "multi-label (one sigmoid per class)"}[self.task]
        parts = [what, f"{self.n_classes} class{'es' if self.n_classes != 1 else ''}",
                 f"scores declared space={self.space!r}", f"{self.n_eval:,} evaluated rows"]
        if self.after is not None:
            parts.append(f"calibrator fitted on {self.n_fit:,} other rows: {self.calibrator_text}")
        if self.source:
            parts.append(self.source)
        return " · ".join(parts)

    def to_text(self) -> str:
        """The metrics table as plain text (the CLI draws it with rich in a terminal)."""
        headers, rows = self.table()
        cells = [[c if isinstance(c, str) else f"{c:.4f}" for c in r] for r in rows]
        widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]
        line = lambda r: "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
        out = [self.title, line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
        return "\n".join(s.rstrip() for s in out)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the metrics, the calibrator summary, the findings, the counts."""
        return {
            "title": self.title, "task": self.task, "space": self.space, "n_classes": self.n_classes,
            "n_fit": self.n_fit, "n_eval": self.n_eval, "method": self.method,
            "calibrator": self.calibrator_text,
            "thresholds": None if self.thresholds is None else np.asarray(self.thresholds).tolist(),
            "before": {k: float(v) for k, v in self.before.metrics.items()},
            "after": None if self.after is None else {k: float(v) for k, v in self.after.metrics.items()},
            "findings": self.findings, "notes": self.notes, "streamed": self.streamed,
        }

    def calibrator_table(self, most: int = 20) -> tuple[list[str], list[list[Any]]]:
        """Per-class parameters of the calibrator and the tuned thresholds: ``(headers, rows)``
        (empty when there is no calibrator or nothing per class to show)."""
        cal = self.calibrator
        if cal is None:
            return [], []
        scaler = getattr(cal, "scaler", None)
        cols: dict[str, np.ndarray] = {}
        t = getattr(scaler, "temperature", None) if getattr(cal, "method", None) == "temperature" else None
        if t is not None:
            cols["temperature"] = np.atleast_1d(np.asarray(t, dtype=np.float64))
        for attr, name in (("weight_", "weight"), ("bias_", "bias")):
            v = getattr(scaler, attr, None) if getattr(cal, "method", None) == "platt" else None
            if v is not None:
                cols[name] = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if self.thresholds is not None:
            cols["threshold"] = np.atleast_1d(np.asarray(self.thresholds, dtype=np.float64))
        cols = {k: v for k, v in cols.items() if v.size in (1, self.n_classes)}
        if not cols or (self.n_classes > 1 and all(v.size == 1 for v in cols.values())):
            return [], []  # one number for all classes: the one-line description says it
        rows = []
        for i, name in enumerate(self.class_names[:most]):
            rows.append([name] + [float(v[i] if v.size > 1 else v[0]) for v in cols.values()])
        return ["class"] + list(cols), rows

    def n_figures(self) -> int:
        """How many figures :meth:`figures` draws."""
        return 2 + (self.before.classwise_ece is not None and self.n_classes > 1) + \
            ((self.after or self.before).curves is not None)

    def figures(self, progress=None) -> dict[str, tuple[str, str, bytes]]:
        """Draw the figures: ``{key: (title, how-to-read caption, PNG bytes)}``."""
        from . import _plots

        binary_like = self.task != "multiclass"
        after = self.after
        figs: dict[str, tuple[str, str, bytes]] = {}
        what = ("for every (sample, class) decision p > 0.5, its confidence max(p, 1 - p) against how often "
                "it is right" if binary_like else
                "the confidence of the predicted class against how often it is right")
        figs["reliability"] = (
            "Reliability diagram",
            (f"Bars show, per confidence bin, {what}; a calibrated model sits on the dashed diagonal. "
            "Shaded: the gap between claimed and observed confidence. ECE is the count-weighted mean gap "
            "(the table's ECE)."),
            _plots.reliability_png(self.before.reliability, after.reliability if after else None,
                                   binary_like=binary_like))
        _tick(progress)
        figs["confidence"] = (
            "Confidence histogram",
            ("How confident the decisions are, split into right (green) and wrong (red). When the mean "
            "confidence line sits right of the accuracy line the model is over-confident; calibration "
            "moves them together."),
            _plots.histogram_png(self.before.histogram, after.histogram if after else None,
                                 binary_like=binary_like))
        _tick(progress)
        if self.before.classwise_ece is not None and self.n_classes > 1:
            figs["classwise"] = (
                "Calibration error per class",
                "One-vs-rest ECE of each class's probability (the worst 20 before calibration).",
                _plots.classwise_png(self.before.classwise_ece, after.classwise_ece if after else None,
                                     self.class_names))
            _tick(progress)
        curves = (after or self.before).curves
        if curves is not None:
            which = "after calibration" if after is not None else "as given"
            tuned = (" The green dashed line marks the tuned threshold, the dotted line 0.5."
                     if curves.chosen is not None else " The dotted line marks 0.5.")
            figs["thresholds"] = (
                "Decision thresholds",
                f"Precision, recall and F1 of deciding 'present' when p > threshold, per class, {which}."
                + tuned + (" The 12 classes with most positives are shown." if len(curves.classes) < self.n_classes else ""),
                _plots.threshold_curves_png(curves, self.class_names))
            _tick(progress)
        return figs

    def write_html(self, out_dir: str | os.PathLike, **kwargs: Any) -> Path:
        """Write this report (see :func:`sigmax.report.write_html`); returns the HTML path."""
        from ._html import write_html

        return write_html([self], out_dir, **kwargs)


def _tick(progress) -> None:
    if progress is not None:
        progress.advance(1)


def _change(before: float, after: float) -> str:
    if not (math.isfinite(before) and math.isfinite(after)):
        return ""
    d = after - before
    rel = f" ({d / abs(before) * 100:+.0f}%)" if before else ""
    return f"{d:+.4f}{rel}"


# ------------------------------------------------------------------------------------ helpers
def _numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic array types
        raise TypeError(f"{name} must be an array, got {type(x).__name__}") from exc


def _rows(scores: np.ndarray, task: str, axis: int) -> np.ndarray:
    """Scores as ``(n,)`` (binary) or ``(n, C)`` with the class axis last and other axes flattened."""
    if task == "binary":
        if scores.ndim == 2 and scores.shape[1] == 1:
            return scores[:, 0]
        return scores.reshape(-1)
    if scores.ndim < 2:
        raise ValueError(f"{task} scores need a class axis: got shape {scores.shape}; give (samples, classes)"
                         " or use task='binary' for one score per sample")
    ax = axis % scores.ndim
    s = np.moveaxis(scores, ax, -1)
    return s.reshape(-1, s.shape[-1])


def _label_rows(labels: np.ndarray, task: str, axis: int, ndim: int) -> np.ndarray:
    if task == "multilabel":
        if labels.ndim != ndim:
            raise ValueError(f"multilabel labels must be multi-hot rows shaped like the scores ({ndim} dimensions), "
                             f"got shape {labels.shape}; for one class index per sample use task='multiclass'")
        y = np.moveaxis(labels, axis % ndim, -1)
        return y.reshape(-1, y.shape[-1])
    if task == "multiclass" and labels.ndim == ndim and ndim > 1:
        raise ValueError(f"multiclass labels must be class indices, one per sample, but they have the scores' "
                         f"{ndim} dimensions (shape {labels.shape}): for one-hot rows give labels.argmax(axis), "
                         "for multi-hot rows use task='multilabel'")
    return labels.reshape(-1)


def _validate_labels(y: np.ndarray, s: np.ndarray, task: str, name: str = "labels") -> None:
    n = s.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"{name} have {y.shape[0]} rows but the scores have {n}; give one label per sample "
                         "(in the same order as the scores)")
    if task == "multilabel":
        if y.shape != s.shape:
            raise ValueError(f"multilabel {name} must be multi-hot with the scores' shape {s.shape}, got {y.shape}")
        return
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
        raise ValueError(f"{name} must be class indices (whole numbers); for probability targets use another tool")
    hi = 2 if task == "binary" else s.shape[1]
    if y.size and (y.min() < 0 or y.max() >= hi):
        raise ValueError(f"{name} hold class index {int(y.max()) if y.max() >= hi else int(y.min())}, outside "
                         f"[0, {hi - 1}] for {task} scores with {hi} class(es); check the labels file and --task")


def split_mask(start: int, n: int, fraction: float, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row ``start .. start + n - 1``, the same whichever chunks ask.

    Row ``i`` fits the calibrator when its number is below ``fit_fraction``; the numbers come from
    blocks of 4096 rows seeded by ``(seed, block)``, so chunked and whole-array reports split alike.

    Example:
        >>> u = split_mask(0, 10_000, 0.5, seed=0)
        >>> bool(np.array_equal(u[5000:6000], split_mask(5000, 1000, 0.5, seed=0)))
        True
    """
    if n <= 0:
        return np.zeros(0)
    first, last = start // _SPLIT_BLOCK, (start + n - 1) // _SPLIT_BLOCK
    u = np.concatenate([np.random.default_rng([seed, b]).random(_SPLIT_BLOCK) for b in range(first, last + 1)])
    off = start - first * _SPLIT_BLOCK
    return u[off:off + n]


class _Side:
    """The metrics (:class:`sigmax.metrics.MetricAccumulator`) and the plot data of one set of scores."""

    def __init__(self, task: str, space: str, n_classes: int, n_bins: int, threshold: Any = None) -> None:
        from ..metrics import MetricAccumulator

        self.task, self.space = task, space
        thr = None if task == "multiclass" else threshold  # None: the metrics' default decision rule
        self.metrics = MetricAccumulator(task, space=space, threshold=thr, n_bins=n_bins)
        self.plots = PlotAccumulator(task, n_classes, n_bins=n_bins)
        self.rows = 0

    def add(self, scores: np.ndarray, labels: np.ndarray, chunk: int | None = None, bar=None) -> None:
        n = scores.shape[0]
        step = chunk or max(n, 1)
        for i in range(0, n, step):
            s, y = scores[i:i + step], labels[i:i + step]
            self.metrics.update(s, y)
            self.plots.add(np.asarray(to_probs(s, self.task, space=self.space, axis=-1), dtype=np.float64), y)
            self.rows += s.shape[0]
            if bar is not None:
                bar.advance(s.shape[0])

    def view(self, chosen: Any = None) -> View:
        return self.plots.view(self.metrics.compute(), self.metrics.reliability, chosen)


def _fit(scores: np.ndarray, labels: np.ndarray, task: str, space: str, method: str, tune: Any,
         notes: list[str]):
    """A :class:`sigmax.calibration.Calibrator` fitted on rows in the declared space; its warnings
    (a small calibration set, no convergence) become notes of the report instead of vanishing."""
    import warnings

    from ..calibration import Calibrator

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cal = Calibrator().fit(scores, labels, task, method=method, tune=tune, space=space)
    for w in caught:
        if issubclass(w.category, UserWarning):
            notes.append(f"Calibration warning: {w.message}")
        else:  # pragma: no cover - other warnings are passed on as they are
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return cal


def _transform(cal: Any, scores: np.ndarray, space: str) -> np.ndarray:
    """Calibrated logits of rows in the declared space, as float64 NumPy."""
    return np.asarray(_numpy(cal.transform(scores, space=space), "calibrated scores"), dtype=np.float64)


_METHOD_NAMES = {"temperature": "temperature scaling", "vector": "vector scaling", "platt": "Platt scaling"}


def _numbers(v: Any, digits: int = 2, most: int = 6) -> str:
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if v.size == 1:
        return f"{v[0]:.{digits + 1}f}"
    return ", ".join(f"{x:.{digits}f}" for x in v[:most]) + (", ..." if v.size > most else "")


def _describe(cal: Any) -> str:
    """A one-line summary of a fitted calibrator: its method and its parameters, rounded.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import Calibrator
        >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]] * 10); y = np.array([0, 1, 1, 0] * 10)
        >>> _describe(Calibrator().fit(z, y, "multiclass"))  # doctest: +ELLIPSIS
        'temperature scaling, T = ...'
    """
    scaler = getattr(cal, "scaler", cal)
    method = getattr(cal, "method", None)
    name = _METHOD_NAMES.get(method, str(method) if method else "no rescaling")
    if scaler is None:
        return name
    t = getattr(scaler, "temperature", None) if method == "temperature" else None
    if t is not None:
        return f"{name}, T = {_numbers(t)}" + (" (one per class)" if np.size(t) > 1 else "")
    w, b = getattr(scaler, "weight_", None), getattr(scaler, "bias_", None)
    if method == "platt" and w is not None:
        per = " per class" if np.size(w) > 1 else ""
        return f"{name}{per}, weight {_numbers(w)}, bias {_numbers(b)}"
    return name


def _check_calibrator(cal: Any, task: str, n_classes: int) -> None:
    if cal is None:
        return
    ctask = getattr(cal, "task", None)
    if ctask is not None and ctask != task:
        raise ValueError(f"the calibrator was fitted for task={ctask!r} but the report is for task={task!r}; "
                         f"use task={ctask!r} or fit a calibrator for {task!r}")
    fitted = getattr(getattr(cal, "scaler", None), "n_classes_", None)
    if fitted is not None and task != "binary" and fitted != n_classes:
        raise ValueError(f"the calibrator was fitted on {fitted} classes but the scores have {n_classes}; "
                         "use the calibrator of the same model")


def _thresholds(cal: Any) -> Any:
    t = getattr(cal, "thresholds", None) if cal is not None else None
    if t is None:
        return None
    t = np.asarray(t, dtype=np.float64)
    return t


def _findings(scores: Any, labels: Any, task: str, space: str, axis: int) -> list[dict] | None:
    """The findings of :func:`sigmax.check` as plain dicts (code, severity, message, fix); ``None``
    where this install has no ``check``."""
    try:
        from ..check import check
    except ImportError:  # pragma: no cover - check ships with sigmax
        return None
    out = []
    for f in check(scores, labels, task=task, space=space, axis=axis):
        d = f.as_dict() if hasattr(f, "as_dict") else dict(f)
        d.pop("details", None)
        d["severity"] = str(d.get("severity") or "info")
        out.append(d)
    return out


def _resolve(task: str, space: str, method: str | None, tune: Any) -> tuple[str, str, str | None, Any]:
    task, space = validate_task(task), validate_space(space)
    if method in (None, "auto"):
        method = DEFAULT_METHOD[task]
    if method not in ("temperature", "vector", "platt", "none"):
        raise ValueError(f"unknown calibration method {method!r}; use 'temperature', 'vector', 'platt' or 'none'")
    if method == "none":
        method = None
    if tune == "auto":
        tune = "f1" if task != "multiclass" else None
    if task == "multiclass" and tune is not None:
        raise ValueError("threshold tuning is for binary and multilabel tasks; multiclass decides by argmax (tune=None)")
    return task, space, method, tune


def _threshold_note(thr: Any, names: Sequence[str], most: int = 8) -> str:
    t = np.atleast_1d(np.asarray(thr, dtype=np.float64))
    pairs = ", ".join(f"{n} {v:.2f}" for n, v in zip(list(names)[:most], t[:most])) + (", ..." if t.size > most else "")
    return f"F1 after calibration uses the tuned thresholds ({pairs}); before, 0.5."


def _names(class_names: Sequence[str] | None, n: int, task: str) -> list[str]:
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != n:
            raise ValueError(f"class_names has {len(names)} names but the scores have {n} class(es)")
        return names
    return ["positive"] if task == "binary" else [f"class {i}" for i in range(n)]


# ---------------------------------------------------------------------------------- in memory
def calibration_report(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
                       fit: tuple[Any, Any] | None = None, calibrator: Any = None, method: str | None = "auto",
                       tune: Any = "auto", fit_fraction: float = 0.5, seed: int = 0, n_bins: int = 15,
                       class_names: Sequence[str] | None = None, title: str | None = None, source: str = "",
                       check: bool = True, show_progress: bool | None = None) -> Report:
    """Calibrate on some rows and report the metrics before and after on the others.

    Args:
        scores: ``(N,)`` (binary) or ``(N, C)`` scores in the declared ``space`` (any array library;
            more dimensions are fine, ``axis`` names the class axis).
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
        class_names: one name per class, for the figures.
        check: run :func:`sigmax.check` on the scores and list its findings.
        show_progress: draw a progress bar (default: when stderr is a terminal).

    Returns:
        A :class:`Report`.

    Example:
        >>> import numpy as np
        >>> from sigmax.datasets import digits_scores
        >>> d = digits_scores("multiclass")
        >>> rep = calibration_report(d.test_logits, d.test_labels, "multiclass",
        ...                          fit=(d.calib_logits, d.calib_labels), check=False)
        >>> rep.after.metrics["ece"] < rep.before.metrics["ece"]
        True
    """
    t0 = time.perf_counter()
    task, space, method, tune = _resolve(task, space, method, tune)
    raw = _numpy(scores, "scores")
    s = _rows(raw, task, axis)
    y = _label_rows(_numpy(labels, "labels"), task, axis, raw.ndim)
    _validate_labels(y, s, task)
    C = 1 if task == "binary" else s.shape[1]
    names = _names(class_names, C, task)
    notes: list[str] = []
    n_fit = 0
    if calibrator is not None:
        _check_calibrator(calibrator, task, C)
        cal, ev = calibrator, np.ones(s.shape[0], dtype=bool)
        method = getattr(calibrator, "method", method)
        notes.append("Calibrator given (already fitted): every row is evaluated.")
    elif method is None:
        cal, ev = None, np.ones(s.shape[0], dtype=bool)
    elif fit is not None:
        fraw = _numpy(fit[0], "fit scores")
        fs = _rows(fraw, task, axis)
        fy = _label_rows(_numpy(fit[1], "fit labels"), task, axis, fraw.ndim)
        _validate_labels(fy, fs, task, "fit labels")
        cal = _fit(fs, fy, task, space, method, tune, notes)
        ev = np.ones(s.shape[0], dtype=bool)
        n_fit = fs.shape[0]
    else:
        if not 0 < fit_fraction <= 1:
            raise ValueError(f"fit_fraction must be in (0, 1], got {fit_fraction!r}")
        u = split_mask(0, s.shape[0], fit_fraction, seed)
        fm = u < fit_fraction
        ev = ~fm if fit_fraction < 1 else np.ones_like(fm)
        if fm.sum() == 0 or ev.sum() == 0:
            raise ValueError(f"{s.shape[0]} row(s) are too few to split into fitting and evaluation rows; "
                             "give more rows or a separate calibration set")
        cal = _fit(s[fm], y[fm], task, space, method, tune, notes)
        n_fit = int(fm.sum())
        if fit_fraction >= 1:
            notes.append("In-sample: the calibrator was fitted on the same rows it is evaluated on; "
                         "the 'after' numbers are optimistic.")
        else:
            notes.append(f"Rows split at random (seed {seed}): {n_fit:,} fit the calibrator, "
                         f"{int(ev.sum()):,} held out for evaluation.")
    es, ey = s[ev], y[ev]
    thr = _thresholds(cal)
    n_steps = es.shape[0] * (2 if cal is not None else 1)
    chunk = max(16, min(65536, (1 << 22) // max(C, 1)))  # about 32 MB per float64 temporary
    with _progress(n_steps + 4, "report", enabled=show_progress) as bar:
        side = _Side(task, space, C, n_bins)
        side.add(es, ey, chunk, bar)
        before = side.view()
        after = None
        if cal is not None:
            z = _transform(cal, es, space)
            side2 = _Side(task, "logits", C, n_bins, thr)
            side2.add(z, ey, chunk, bar)
            after = side2.view(chosen=thr)
        findings = _findings(scores, labels, task, space, axis) if check else []
    if thr is not None and task != "multiclass":
        notes.append(_threshold_note(thr, names))
    rep = Report(title=title or f"{task} calibration report", task=task, space=space, n_classes=C,
                 class_names=names, before=before, after=after, method=method,
                 calibrator=cal, calibrator_text=_describe(cal) if cal is not None else "", thresholds=thr,
                 findings=findings, notes=notes, n_fit=n_fit, n_eval=int(es.shape[0]), source=source,
                 seconds=time.perf_counter() - t0)
    return rep


# ---------------------------------------------------------------------------------- streaming
def _label_chunks(path: Any, chunk_rows: int, key: str | None) -> Iterator[np.ndarray]:
    from .. import io as sio

    if str(path).lower().endswith(".npy") and key is None:
        yield from sio.iter_chunks(path, chunk_rows)
        return
    y = sio.load_labels(path, key=key)
    for i in range(0, y.shape[0], chunk_rows):
        yield y[i:i + chunk_rows]


def _pairs(scores_path, labels_path, chunk_rows, scores_key, labels_key):
    from .. import io as sio

    ys = _label_chunks(labels_path, chunk_rows, labels_key)
    start = 0
    for s in sio.iter_chunks(scores_path, chunk_rows, key=scores_key):
        y = next(ys)
        yield start, s, y
        start += s.shape[0]


def _count_labels(path: Any, key: str | None) -> int:
    from .. import io as sio

    if str(path).lower().endswith(".npy") and key is None:
        return sio.count_rows(path)
    return int(sio.load_labels(path, key=key).shape[0])


def stream_calibration_report(scores_path: Any, labels_path: Any, task: str, *, space: str = "logits",
                              axis: int = -1, chunk_rows: int | None = None, calibrator: Any = None,
                              method: str | None = "auto", tune: Any = "auto", fit_fraction: float = 0.5,
                              max_fit_rows: int = 200_000, seed: int = 0, n_bins: int = 15,
                              scores_key: str | None = None, labels_key: str | None = None,
                              class_names: Sequence[str] | None = None, title: str | None = None,
                              check: bool = True, show_progress: bool | None = None,
                              memory_budget: int = 64 << 20) -> Report:
    """:func:`calibration_report` for a score file read chunk by chunk, in bounded memory.

    The ``.npy`` file is memory-mapped (:func:`sigmax.io.iter_chunks`) and read twice: once to collect
    the calibrator's fitting sample (at most ``max_fit_rows`` rows, drawn uniformly among the fitting
    rows) and the "before" sums, once more for the "after" sums. Only sums and counts are kept, so the
    memory used is about ``chunk_rows`` rows times a small factor, plus the fitting sample.

    Args:
        scores_path, labels_path: the files (labels may be any format :func:`sigmax.io.load_labels` reads;
            a ``.npy`` is streamed too).
        chunk_rows: rows per chunk; default from ``memory_budget`` bytes and the number of classes.
        max_fit_rows: the most rows the calibrator is fitted on.
        Other arguments: as in :func:`calibration_report`. The class axis must not be the row axis.

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
        >>> rep.streamed, rep.n_fit + rep.n_eval
        (True, 697)
    """
    from .. import io as sio

    t0 = time.perf_counter()
    task, space, method, tune = _resolve(task, space, method, tune)
    n_rows = sio.count_rows(scores_path) if scores_key is None else int(sio.load_array(scores_path, key=scores_key).shape[0])
    n_labels = _count_labels(labels_path, labels_key)
    if n_labels != n_rows:
        raise ValueError(f"LABELS has {n_labels} rows but SCORES has {n_rows}; give one label per score row, "
                         "in the same order")
    first = next(iter(sio.iter_chunks(scores_path, 1, key=scores_key)))
    ndim = first.ndim
    if task != "binary":
        if ndim < 2:
            raise ValueError(f"{task} scores need a class axis: the file holds shape ({n_rows},); "
                             "use task='binary' for one score per sample")
        if axis % ndim == 0:
            raise ValueError("streaming reads rows along the first axis, so the class axis cannot be axis 0; "
                             "save the scores as (samples, classes) or drop --chunk-rows")
    C = 1 if task == "binary" else int(first.shape[axis % ndim])
    names = _names(class_names, C, task)
    per_row = max(C, 1) * int(np.prod(first.shape[1:]) // max(C, 1) or 1) * 8 * 12
    if chunk_rows is None:
        chunk_rows = int(max(16, min(65536, memory_budget // per_row)))
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if method is not None and calibrator is None and not 0 < fit_fraction <= 1:
        raise ValueError(f"fit_fraction must be in (0, 1], got {fit_fraction!r}")
    fitting = method is not None and calibrator is None
    frac = fit_fraction if fitting else 0.0
    keep = min(1.0, max_fit_rows / max(frac * n_rows, 1.0)) if fitting else 0.0
    passes = 2 if fitting else 1  # a given calibrator is applied in the same pass
    _check_calibrator(calibrator, task, C)
    thr = _thresholds(calibrator)
    side2 = _Side(task, "logits", C, n_bins, thr) if calibrator is not None else None
    notes: list[str] = [f"Streamed from disk in chunks of {chunk_rows:,} rows (memory-mapped)."]
    findings: list[dict] | None = []
    side = _Side(task, space, C, n_bins)
    fit_s: list[np.ndarray] = []
    fit_y: list[np.ndarray] = []
    n_fit_rows = 0

    def rows_of(start, s, y):
        sr = _rows(s, task, axis)
        yr = _label_rows(np.asarray(y), task, axis, s.ndim)
        if task != "multilabel":
            yr = yr.astype(np.int64)
        _validate_labels(yr, sr, task, "LABELS")
        per = sr.shape[0] // max(s.shape[0], 1)  # rows of the flattened view per file row
        u = np.repeat(split_mask(start, s.shape[0], frac, seed), per)
        return sr, yr, u

    with _progress(passes * n_rows, "report (streaming)", enabled=show_progress) as bar:
        for start, s, y in _pairs(scores_path, labels_path, chunk_rows, scores_key, labels_key):
            if start == 0 and check:
                findings = _findings(s, y, task, space, axis)
                if findings:
                    notes.append(f"check() ran on the first {s.shape[0]:,} rows.")
            sr, yr, u = rows_of(start, s, y)
            fm = u < frac
            ev = ~fm if frac < 1 else np.ones_like(fm)
            if fitting:
                take = u < frac * keep
                n_fit_rows += int(fm.sum())
                if take.any():
                    fit_s.append(sr[take])
                    fit_y.append(yr[take])
            if ev.any():
                side.add(sr[ev], yr[ev])
                if side2 is not None:
                    side2.add(_transform(calibrator, sr[ev], space), yr[ev])
            bar.advance(s.shape[0])
        cal = calibrator
        n_fit = 0
        if fitting:
            if not fit_s:
                raise ValueError("no rows fell in the fitting part; give more rows or a larger fit_fraction")
            fs, fy = np.concatenate(fit_s), np.concatenate(fit_y)
            fit_s.clear()
            fit_y.clear()
            n_fit = int(fs.shape[0])
            cal = _fit(fs, fy, task, space, method, tune, notes)
            del fs, fy
            sample = f"a uniform sample of {n_fit:,} of the {n_fit_rows:,} fitting rows" if n_fit < n_fit_rows \
                else f"{n_fit:,} rows"
            if frac >= 1:
                notes.append(f"In-sample: the calibrator was fitted on {sample} of the rows it is evaluated on; "
                             "the 'after' numbers are optimistic.")
            else:
                notes.append(f"Rows split at random (seed {seed}): the calibrator was fitted on {sample}; "
                             f"{side.rows:,} held out for evaluation.")
        elif calibrator is not None:
            notes.append("Calibrator given (already fitted): every row is evaluated.")
        before = side.view()
        after = None
        if fitting:
            thr = _thresholds(cal)
            side2 = _Side(task, "logits", C, n_bins, thr)
            for start, s, y in _pairs(scores_path, labels_path, chunk_rows, scores_key, labels_key):
                sr, yr, u = rows_of(start, s, y)
                ev = ~(u < frac) if frac < 1 else np.ones(u.shape, dtype=bool)
                if ev.any():
                    z = _transform(cal, sr[ev], space)
                    side2.add(z, yr[ev])
                bar.advance(s.shape[0])
        if side2 is not None:
            after = side2.view(chosen=thr)
    if thr is not None and task != "multiclass":
        notes.append(_threshold_note(thr, names))
    return Report(title=title or f"{task} calibration report", task=task, space=space, n_classes=C,
                  class_names=names, before=before, after=after, method=method,
                  calibrator=cal, calibrator_text=_describe(cal) if cal is not None else "", thresholds=thr,
                  findings=findings, notes=notes, n_fit=n_fit, n_eval=side.rows,
                  source=os.fspath(scores_path), streamed=True, seconds=time.perf_counter() - t0)
