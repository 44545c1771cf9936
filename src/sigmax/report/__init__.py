"""Calibration reports: before/after metrics tables and a self-contained HTML page with plots.

:func:`calibration_report` (arrays in memory) and :func:`stream_calibration_report` (a ``.npy`` file,
memory-mapped) are the two doors of one streaming pipeline (:func:`evaluate`): it fits a calibrator on
some rows and measures the others before and after, chunk by chunk, within a memory budget in bytes
(:func:`plan_memory`, default 1 GiB);
:func:`write_html` writes one page for one or several reports (reliability diagrams, confidence
histograms, per-class calibration error, threshold curves, ROC and precision-recall curves, the findings of
:func:`sigmax.check`, the conformal sets' coverage),
with every figure inlined as a PNG and also written beside the page.

Example:
    >>> from sigmax.datasets import digits_scores
    >>> from sigmax.report import calibration_report
    >>> d = digits_scores("multiclass")
    >>> rep = calibration_report(d.test_logits, d.test_labels, "multiclass",
    ...                          fit=(d.calib_logits, d.calib_labels), check=False)
    >>> [row[0] for row in rep.table()[1]]
    ['NLL', 'Brier', 'accuracy', 'top-5 accuracy', 'F1 macro', 'ECE', 'ECE (equal-mass bins)', 'smooth ECE', 'MCE (bins ≥ 10 rows)', 'class-wise ECE', 'AUROC (one-vs-rest, macro)', 'AP (one-vs-rest, macro)']
    >>> rep.intervals["change"]["ece"]["significant"]  # the paired 95% interval of the change holds 0
    False
    >>> rep.after.metrics["ece"] < rep.before.metrics["ece"]
    True

    Then ``write_html([rep], "my-report")`` writes ``my-report/index.html`` and the PNG files.
"""

from ..calibration import DEFAULT_METHOD
from ._budget import DEFAULT_BUDGET, MemoryPlan, format_bytes, parse_memory, plan_memory
from ._data import Histogram, PlotAccumulator, RankingCurves, ThresholdCurves, View
from ._intervals import DEFAULT_RESAMPLES, interval_rows
from ._html import render_html, write_html
from ._dasksource import DaskSource
from ._passes import report_plan
from ._pipeline import (
    DEFAULT_IGNORE_INDEX,
    ArraySource,
    FileSource,
    calibration_report,
    evaluate,
    split_mask,
    stream_calibration_report,
)
from ._progress import Progress, progress
from ._report import METRIC_NAMES, Report

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_IGNORE_INDEX",
    "DEFAULT_METHOD",
    "DEFAULT_RESAMPLES",
    "METRIC_NAMES",
    "ArraySource",
    "DaskSource",
    "FileSource",
    "Histogram",
    "MemoryPlan",
    "PlotAccumulator",
    "RankingCurves",
    "Progress",
    "Report",
    "ThresholdCurves",
    "View",
    "calibration_report",
    "evaluate",
    "format_bytes",
    "interval_rows",
    "parse_memory",
    "plan_memory",
    "progress",
    "render_html",
    "report_plan",
    "split_mask",
    "stream_calibration_report",
    "write_html",
]
