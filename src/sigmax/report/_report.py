"""The :class:`Report` record: what one evaluation found, and its tables (numbers formatted once, here).

The pipeline that fills it is :mod:`sigmax.report._pipeline` (it imports this module; this module
imports neither it nor the HTML writer at import time, so there is no cycle).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import DEFAULT_MIN_BIN_COUNT
from ._budget import format_bytes
from ._data import View
from .._format import format_change, format_column, format_count
from ._format import change_bounds, format_table

__all__ = ["METRIC_NAMES", "Report"]

#: rows of the metrics table, in order, with their display names and whether lower is better
METRIC_NAMES = {
    "nll": ("NLL", True),
    "brier": ("Brier", True),
    "accuracy": ("accuracy", False),
    "top5_accuracy": ("top-5 accuracy", False),
    "f1_micro": ("F1 micro", False),
    "f1_macro": ("F1 macro", False),
    "ece": ("ECE", True),
    "ece_equal_mass": ("ECE (equal-mass bins)", True),
    "smooth_ece": ("smooth ECE", True),
    "mce": ("MCE", True),
    "classwise_ece": ("class-wise ECE", True),
    "roc_auc": ("AUROC", False),
    "average_precision": ("AP", False),
}
#: metrics that depend on the decision threshold (shown again at the tuned thresholds)
DECISION_METRICS = ("accuracy", "f1_micro", "f1_macro")


def ci_header(iv: dict | None) -> str:
    """The header of an interval column, e.g. ``"95% CI"``."""
    return f"{float((iv or {}).get('level', 0.95)):.0%} CI"


def change_ci_header(iv: dict | None) -> str:
    return ci_header(iv) + " of change"


def _ci(iv: dict, side: str, key: str) -> tuple[float, float] | None:
    v = iv.get(side, {}).get(key)
    return None if v is None else (float(v[0]), float(v[1]))


def _rows_for(task: str) -> list[tuple[str, str]]:
    """``(key, display name)`` of the table's rows for ``task``: binary has one F1 (of the positive
    class) and no class-wise ECE (its one column is the positive class: the same as ECE's bins)."""
    out = []
    for key, (name, _lower) in METRIC_NAMES.items():
        if task == "binary" and key in ("f1_macro", "classwise_ece"):
            continue
        if task == "binary" and key == "f1_micro":
            name = "F1"
        if task != "binary" and key in ("roc_auc", "average_precision"):
            name += " (one-vs-rest, macro)" if task == "multiclass" else " (macro)"
        out.append((key, name))
    return out


@dataclass
class Report:
    """One task's calibration report: the before/after metrics, the plot data and the findings.

    ``table()`` gives the metrics table (numbers), ``formatted_table()`` the same as text (one notation
    per column), ``to_text()`` prints it, ``write_html(dir)`` writes the page. ``memory`` is the
    :class:`sigmax.report.MemoryPlan` the pipeline used (budget, chunk rows, fit rows).
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
    memory: Any = None
    min_bin_count: int = DEFAULT_MIN_BIN_COUNT
    n_ignored: int = 0
    intervals: dict | None = None  # see sigmax.report._intervals.sample_intervals
    conformal: dict | None = None
    n_interval_rows: int = 0

    # ------------------------------------------------------------------ findings
    @property
    def errors(self) -> list[dict]:
        """The error-level findings of :func:`sigmax.check`: while there is one, the numbers cannot be trusted."""
        return [f for f in self.findings or () if str(f.get("severity")) == "error"]

    # ------------------------------------------------------------------ tables
    @property
    def tuned(self) -> dict[str, float] | None:
        """The decision metrics after calibration at the tuned thresholds (``None`` without tuning)."""
        return None if self.after is None else self.after.extra.get("tuned")

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """``(headers, rows)``: one row per metric: before, after (calibrated, default threshold) and the
        change; with tuned thresholds, the decision metrics at those thresholds and their change from
        "after" (so calibration and threshold effects show apart). Numbers are floats; changes text.

        With intervals, each number column is followed by its ``"95% CI"`` column (``(low, high)``) and each
        change by its paired ``"95% CI of change"`` (a dict: ``estimate``, ``low``, ``high``,
        ``share_not_better``, ``significant``); ``None`` where a metric has no interval."""
        b = self.before.metrics
        a = self.after.metrics if self.after is not None else None
        tuned = self.tuned
        iv = self.intervals
        ci = [ci_header(iv)] if iv else []
        cc = [change_ci_header(iv)] if iv else []
        headers = ["metric", "before"] + ci + (["after"] + ci + ["change"] + cc if a is not None else []) + \
            (["tuned thresholds"] + ci + ["change"] + cc if tuned else [])
        rows = []
        for key, name in _rows_for(self.task):
            if key not in b:
                continue
            if key == "mce":
                name = f"MCE (bins ≥ {self.min_bin_count:,} rows)"
            row: list[Any] = [name, float(b[key])] + ([_ci(iv, "before", key)] if iv else [])
            if a is not None:
                va = float(a.get(key, float("nan")))
                row += [va] + ([_ci(iv, "after", key)] if iv else []) + [format_change(va, float(b[key]))]
                row += [iv["change"].get(key)] if iv else []
            if tuned:
                if key in tuned:
                    row += [float(tuned[key])] + ([_ci(iv, "tuned", key)] if iv else []) + \
                        [format_change(float(tuned[key]), float(a[key]))] + \
                        ([iv["tuned_change"].get(key)] if iv else [])
                else:
                    row += ["", ""] + (["", ""] if iv else [])
            rows.append(row)
        return headers, rows

    def headline(self) -> str:
        """The one-line verdict on the calibration: the ECE before and after and, with intervals, whether
        the change is significant, e.g. ``ECE 0.0226 → 0.0205, not significant (95% CI of the change
        -0.0135…+0.0128)``; empty without an "after" side."""
        if self.after is None or "ece" not in self.before.metrics:
            return ""
        b, a = float(self.before.metrics["ece"]), float(self.after.metrics["ece"])
        tb, ta = format_column([b, a])  # one notation for the two numbers
        seen = "on rows it never saw" if self.n_fit else "on every row"
        ch = (self.intervals or {}).get("change", {}).get("ece")
        if ch is None:
            word = "lowered" if a < b else "did not lower"
            return f"{self.calibrator_text}: {word} ECE {tb} -> {ta} {seen}"
        lo, hi = change_bounds(ch, [b, a])
        verdict = "not significant" if not ch["significant"] else \
            ("significantly lower" if ch["estimate"] < 0 else "significantly higher")
        return (f"{self.calibrator_text}: ECE {tb} → {ta}, {verdict} ({ci_header(self.intervals)} of the change "
                f"{lo}…{hi}) {seen}")

    def formatted_table(self) -> tuple[list[str], list[list[str]]]:
        """:meth:`table` as text: each number column in one notation, each change column recomputed in one
        notation, an undefined MCE (no bin of ``min_bin_count`` rows) as ``n/a`` (see
        :func:`sigmax.report._format.format_table`)."""
        headers, rows = self.table()
        return headers, format_table(headers, rows, min_bin_count=self.min_bin_count)

    def subtitle(self) -> str:
        what = {"binary": "binary (one sigmoid)", "multiclass": "multi-class (softmax)",
                "multilabel": "multi-label (one sigmoid per class)"}[self.task]
        classes = "2 classes (one positive class scored)" if self.task == "binary" else \
            f"{format_count(self.n_classes)} class{'es' if self.n_classes != 1 else ''}"
        parts = [what, classes, f"scores declared space={self.space!r}", f"{format_count(self.n_eval)} evaluated rows"]
        if self.after is not None:
            parts.append(f"calibrator fitted on {format_count(self.n_fit)} other rows: {self.calibrator_text}"
                         if self.n_fit else f"calibrator: {self.calibrator_text}")
        if self.memory is not None:
            parts.append(f"memory budget {format_bytes(self.memory.budget)}, chunks of "
                         f"{format_count(self.memory.chunk_rows)} rows")
        if self.source:
            parts.append(self.source)
        return " · ".join(parts)

    def to_text(self) -> str:
        """The metrics table as plain text (the CLI draws it with rich in a terminal)."""
        headers, cells = self.formatted_table()
        widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]
        line = lambda r: "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
        out = [self.title, line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
        return "\n".join(s.rstrip() for s in out)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the metrics, the calibrator summary, the findings, the counts, the memory used."""
        mem = None if self.memory is None else {"budget_bytes": int(self.memory.budget),
                                                "chunk_rows": int(self.memory.chunk_rows),
                                                "fit_rows_max": int(self.memory.fit_rows)}
        return {
            "title": self.title, "task": self.task, "space": self.space, "n_classes": self.n_classes,
            "n_fit": self.n_fit, "n_eval": self.n_eval, "n_ignored": self.n_ignored, "method": self.method,
            "calibrator": self.calibrator_text,
            "thresholds": None if self.thresholds is None else np.asarray(self.thresholds).tolist(),
            "before": {k: float(v) for k, v in self.before.metrics.items()},
            "after": None if self.after is None else {k: float(v) for k, v in self.after.metrics.items()},
            "after_tuned_thresholds": self.tuned,
            "intervals": self.intervals, "n_interval_rows": self.n_interval_rows, "conformal": self.conformal,
            "headline": self.headline() or None,
            "min_bin_count": self.min_bin_count, "memory": mem,
            "findings": self.findings, "notes": self.notes, "streamed": self.streamed,
        }

    def calibrator_table(self, most: int = 20) -> tuple[list[str], list[list[Any]]]:
        """Per-class parameters of the calibrator and the tuned thresholds: ``(headers, rows)``
        (empty when there is no calibrator or nothing per class to show)."""
        cal = self.calibrator
        if cal is None or self.task == "binary":
            return [], []  # binary: one number of each kind, said in the one-line description
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
        if not cols or all(v.size == 1 for v in cols.values()):
            return [], []  # one number for all classes: the one-line description says it
        rows = []
        for i, name in enumerate(self.class_names[:most]):
            rows.append([name] + [float(v[i] if v.size > 1 else v[0]) for v in cols.values()])
        return ["class"] + list(cols), rows

    # ------------------------------------------------------------------ figures and the page
    def n_figures(self) -> int:
        """How many figures :meth:`figures` draws."""
        from ._plots import figure_keys

        return len(figure_keys(self))

    def figures(self, progress=None) -> dict[str, tuple[str, str, bytes]]:
        """Draw the figures: ``{key: (title, how-to-read caption, PNG bytes)}`` (see :mod:`sigmax.report._plots`)."""
        from ._plots import draw_figures

        return draw_figures(self, progress=progress)

    def write_html(self, out_dir: str | os.PathLike, **kwargs: Any) -> Path:
        """Write this report (see :func:`sigmax.report.write_html`); returns the HTML path."""
        from ._html import write_html

        return write_html([self], out_dir, **kwargs)
