"""What a report shows, as plain NumPy data, and the accumulator that gathers it chunk by chunk.

The table's metrics and the top-label reliability data come from :class:`sigmax.metrics.MetricAccumulator`
(the one implementation of the metrics); :class:`PlotAccumulator` adds what only the figures need: the
confidence histogram, the one-vs-rest calibration error of each class and the threshold curves.
Everything is a sum or a count over rows, so arrays in memory and files streamed from disk give the same
report whichever ``chunk_rows`` reads them.

Example:
    >>> import numpy as np
    >>> acc = PlotAccumulator("multiclass", n_classes=2, n_bins=4)
    >>> acc.add(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]))
    >>> {k: int(np.argmax(v)) for k, v in acc.histogram().groups.items()}  # bins of 0.05: 0.9 right, 0.7 wrong
    {'right': 18, 'wrong': 14}
    >>> acc.classwise_ece().round(3).tolist()
    [0.4, 0.4]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Histogram", "PlotAccumulator", "RankingCurves", "ThresholdCurves", "View", "bin_index"]


def bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each value in [0, 1]: bins ``(lo, hi]``, 0 joins the first (Guo et al. 2017).

    The same rule as :func:`sigmax.metrics.reliability`.

    Example:
        >>> bin_index(np.array([0.0, 0.1, 0.5, 0.51, 1.0]), 2).tolist()
        [0, 0, 0, 1, 1]
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


@dataclass
class Histogram:
    """Counts of the top-label confidence over equal-width bins of [0, 1], split into right and wrong."""

    edges: np.ndarray
    groups: dict[str, np.ndarray]
    mean_confidence: float = float("nan")
    accuracy: float = float("nan")


@dataclass
class ThresholdCurves:
    """Precision, recall and F1 of one-vs-rest decisions ``p > t`` over a grid of thresholds."""

    thresholds: np.ndarray  # (T,)
    classes: list[int]
    precision: np.ndarray  # (K, T), NaN where nothing is predicted
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # (K,) positives per class
    chosen: np.ndarray | None = None  # (K,) thresholds chosen by tuning, if any


@dataclass
class RankingCurves:
    """ROC and precision-recall curves of one set of scores: binary, or one-vs-rest per class (``classes``).

    Each list holds one array per class; ``auc`` and ``ap`` are :func:`sigmax.metrics.roc_auc` and
    :func:`sigmax.metrics.average_precision` of that column; ``prevalence`` its share of positives (the
    precision of a random ranking).
    """

    classes: list[int]
    names: list[str]
    fpr: list[np.ndarray]
    tpr: list[np.ndarray]
    recall: list[np.ndarray]
    precision: list[np.ndarray]
    auc: np.ndarray
    ap: np.ndarray
    prevalence: np.ndarray
    support: np.ndarray
    n_classes: int = 1


@dataclass
class View:
    """Everything the report shows about one set of scores (before or after calibration).

    ``reliability`` is a :class:`sigmax.metrics.Reliability` (top-label, the bins of the table's ECE).
    """

    metrics: dict[str, float]
    reliability: Any
    histogram: Histogram
    classwise_ece: np.ndarray | None = None  # (C,) one-vs-rest ECE per class
    class_support: np.ndarray | None = None  # (C,) positives per class
    curves: ThresholdCurves | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PlotAccumulator:
    """Sums and counts over chunks of probabilities, for the figures.

    Args:
        task: ``"binary"`` (probabilities ``(n,)``), ``"multiclass"`` or ``"multilabel"`` (``(n, C)``).
        n_classes: ``C`` (1 for binary).
        n_bins: equal-width bins of the per-class calibration error.
        hist_bins: bins of the confidence histogram.
        curve_grid: thresholds of the precision/recall/F1 curves (binary and multilabel).
        max_classwise: above this many classes, no per-class data is kept (memory).
    """

    def __init__(self, task: str, n_classes: int, *, n_bins: int = 15, hist_bins: int = 20,
                 curve_grid: int = 200, max_classwise: int = 2048) -> None:
        self.task = task
        self.C = int(n_classes)
        self.n_bins = int(n_bins)
        self.hist_bins = int(hist_bins)
        self.grid = int(curve_grid)
        self.rows = 0
        self.hist_right = np.zeros(self.hist_bins, dtype=np.int64)
        self.hist_wrong = np.zeros(self.hist_bins, dtype=np.int64)
        self.conf_total = 0.0
        self.hit_total = 0.0
        self.entries = 0
        nc = 1 if task == "binary" else self.C
        self.classwise = nc <= max_classwise
        if self.classwise:
            self.cw_conf = np.zeros((nc, self.n_bins))
            self.cw_hit = np.zeros((nc, self.n_bins))
            self.cw_count = np.zeros((nc, self.n_bins), dtype=np.int64)
        self.support = np.zeros(nc, dtype=np.int64)
        self.curves = task in ("binary", "multilabel") and self.classwise
        if self.curves:
            self.pos_hist = np.zeros((nc, self.grid), dtype=np.int64)
            self.neg_hist = np.zeros((nc, self.grid), dtype=np.int64)

    def add(self, probs: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add a chunk: probabilities ``(n,)`` (binary) or ``(n, C)``; labels class indices ``(n,)``
        (binary, multiclass) or multi-hot ``(n, C)`` (multilabel); ``valid``: for multilabel, the
        ``(n, C)`` entries to count (``None``: all; the others carry an ignored label)."""
        probs = np.asarray(probs, dtype=np.float64)
        n = int(probs.shape[0])
        if n == 0:
            return
        self.rows += n
        if self.task == "multiclass":
            y = np.asarray(labels).astype(np.int64).reshape(-1)
            pc = probs
            onehot = None
            if self.classwise:  # (n, C) only where per-class data is kept (not for huge vocabularies)
                onehot = np.zeros_like(probs)
                onehot[np.arange(n), y] = 1.0
            pred = np.argmax(probs, axis=1)
            conf = probs[np.arange(n), pred]
            hit = pred == y
        else:  # binary / multilabel: top-label is the decision p > 0.5 (sigmax.metrics), confidence max(p, 1 - p)
            pc = probs.reshape(n, -1)
            onehot = (np.asarray(labels, dtype=np.float64).reshape(n, -1) == 1).astype(np.float64)
            dec = pc > 0.5
            keep = None if valid is None else np.asarray(valid, dtype=bool).reshape(n, -1)
            conf = np.where(dec, pc, 1.0 - pc)
            hit = dec == (onehot == 1)
            conf, hit = (conf.reshape(-1), hit.reshape(-1)) if keep is None else (conf[keep], hit[keep])
        self.conf_total += float(conf.sum())
        self.hit_total += float(hit.sum())
        self.entries += conf.size
        h = np.clip((conf * self.hist_bins).astype(np.int64), 0, self.hist_bins - 1)
        self.hist_right += np.bincount(h[hit], minlength=self.hist_bins)
        self.hist_wrong += np.bincount(h[~hit], minlength=self.hist_bins)
        nc = pc.shape[1]
        if onehot is None:
            self.support += np.bincount(y, minlength=nc)
            return
        keep = None if self.task == "multiclass" or valid is None else np.asarray(valid, dtype=bool).reshape(n, -1)
        if keep is not None:
            onehot = onehot * keep  # an ignored entry is no positive
        self.support += onehot.sum(axis=0).astype(np.int64)
        if self.classwise:
            bi = bin_index(pc, self.n_bins) + (np.arange(nc) * self.n_bins)[None, :]
            w = pc if keep is None else pc * keep
            if keep is not None:
                bi = np.where(keep, bi, nc * self.n_bins)  # ignored entries land in a discarded bin
            size = nc * self.n_bins + 1
            self.cw_conf += np.bincount(bi.ravel(), weights=w.ravel(), minlength=size)[:-1].reshape(nc, -1)
            self.cw_hit += np.bincount(bi.ravel(), weights=onehot.ravel(), minlength=size)[:-1].reshape(nc, -1)
            self.cw_count += np.bincount(bi.ravel(), minlength=size)[:-1].reshape(nc, -1)
            del bi, w
        if self.curves:
            g = np.clip((pc * self.grid).astype(np.int64), 0, self.grid - 1) + (np.arange(nc) * self.grid)[None, :]
            pos = onehot > 0.5
            neg = ~pos if keep is None else ~pos & keep
            size = nc * self.grid
            self.pos_hist += np.bincount(g[pos], minlength=size).reshape(nc, -1)
            self.neg_hist += np.bincount(g[neg], minlength=size).reshape(nc, -1)

    def merge(self, other: PlotAccumulator) -> PlotAccumulator:
        """Add the sums and counts of ``other`` (the same task, classes and bins; e.g. another chunk's or
        worker's); returns ``self``.

        Example:
            >>> a, b, ab = (PlotAccumulator("binary", 1) for _ in range(3))
            >>> a.add(np.array([0.9, 0.2]), np.array([1, 0])); b.add(np.array([0.6]), np.array([0]))
            >>> ab.add(np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0]))
            >>> bool(np.array_equal(a.merge(b).pos_hist, ab.pos_hist)), a.rows
            (True, 3)
        """
        if not isinstance(other, PlotAccumulator):
            raise TypeError(f"merge takes a PlotAccumulator, got {type(other).__name__}")
        if (other.task, other.C, other.n_bins, other.hist_bins, other.grid, other.classwise) != \
                (self.task, self.C, self.n_bins, self.hist_bins, self.grid, self.classwise):
            raise ValueError("can only merge plot accumulators with the same task, classes and bins")
        self.rows += other.rows
        self.hist_right = self.hist_right + other.hist_right
        self.hist_wrong = self.hist_wrong + other.hist_wrong
        self.conf_total += other.conf_total
        self.hit_total += other.hit_total
        self.entries += other.entries
        self.support = self.support + other.support
        if self.classwise:
            self.cw_conf = self.cw_conf + other.cw_conf
            self.cw_hit = self.cw_hit + other.cw_hit
            self.cw_count = self.cw_count + other.cw_count
        if self.curves:
            self.pos_hist = self.pos_hist + other.pos_hist
            self.neg_hist = self.neg_hist + other.neg_hist
        return self

    def histogram(self) -> Histogram:
        return Histogram(np.linspace(0, 1, self.hist_bins + 1),
                         {"right": self.hist_right.copy(), "wrong": self.hist_wrong.copy()},
                         mean_confidence=self.conf_total / max(self.entries, 1),
                         accuracy=self.hit_total / max(self.entries, 1))

    def classwise_ece(self) -> np.ndarray | None:
        """One-vs-rest ECE of each class's probability (the terms of ``summary``'s ``classwise_ece``)."""
        if not self.classwise:
            return None
        gap = np.abs(self.cw_hit - self.cw_conf)  # per bin: |sum y - sum p| = count * |acc - conf|
        return gap.sum(axis=1) / np.maximum(self.cw_count.sum(axis=1), 1)

    def threshold_curves(self, chosen: Any = None, max_classes: int = 12) -> ThresholdCurves | None:
        if not self.curves:
            return None
        nc = self.pos_hist.shape[0]
        order = np.argsort(-self.support, kind="stable")[:max_classes]
        classes = sorted(int(c) for c in order)
        t = np.arange(self.grid) / self.grid  # deciding p > t counts the grid bins from t's bin up
        tp = np.cumsum(self.pos_hist[classes][:, ::-1], axis=1)[:, ::-1].astype(np.float64)
        fp = np.cumsum(self.neg_hist[classes][:, ::-1], axis=1)[:, ::-1].astype(np.float64)
        pos = self.pos_hist[classes].sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
            recall = np.where(pos > 0, tp / pos, np.nan)
            f1 = np.where(pos + tp + fp > 0, 2 * tp / (pos + tp + fp), np.nan)
        ch = None
        if chosen is not None:
            ch = np.broadcast_to(np.asarray(chosen, dtype=np.float64).reshape(-1), (nc,))[classes]
        return ThresholdCurves(t, classes, precision, recall, f1, self.support[classes].copy(), ch)

    def view(self, metrics: dict[str, float], reliability: Any, chosen: Any = None) -> View:
        return View(metrics=dict(metrics), reliability=reliability, histogram=self.histogram(),
                    classwise_ece=self.classwise_ece(), class_support=self.support.copy(),
                    curves=self.threshold_curves(chosen))
