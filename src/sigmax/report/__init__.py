"""Calibration reports: before/after metrics tables and a self-contained HTML page with plots.

:func:`calibration_report` (arrays in memory) and :func:`stream_calibration_report` (a ``.npy`` file
read in bounded memory) fit a calibrator on some rows and measure the others before and after;
:func:`write_html` writes one page for one or several reports (reliability diagrams, confidence
histograms, per-class calibration error, threshold curves, the findings of :func:`sigmax.check`),
with every figure inlined as a PNG and also written beside the page.

Example:
    >>> from sigmax.datasets import digits_scores
    >>> from sigmax.report import calibration_report
    >>> d = digits_scores("multiclass")
    >>> rep = calibration_report(d.test_logits, d.test_labels, "multiclass",
    ...                          fit=(d.calib_logits, d.calib_labels), check=False)
    >>> [row[0] for row in rep.table()[1]]
    ['NLL', 'Brier', 'accuracy', 'top-5 accuracy', 'F1 macro', 'ECE', 'MCE', 'class-wise ECE']
    >>> rep.after.metrics["ece"] < rep.before.metrics["ece"]
    True

    Then ``write_html([rep], "my-report")`` writes ``my-report/index.html`` and the PNG files.
"""

from ._data import Histogram, PlotAccumulator, ThresholdCurves, View
from ._html import render_html, write_html
from ._progress import Progress, progress
from ._report import (
    DEFAULT_METHOD,
    METRIC_NAMES,
    Report,
    calibration_report,
    split_mask,
    stream_calibration_report,
)

__all__ = [
    "DEFAULT_METHOD",
    "METRIC_NAMES",
    "Histogram",
    "PlotAccumulator",
    "Progress",
    "Report",
    "ThresholdCurves",
    "View",
    "calibration_report",
    "progress",
    "render_html",
    "split_mask",
    "stream_calibration_report",
    "write_html",
]
