"""Intervals for the report: a bounded uniform sample of the evaluated rows, bootstrapped before and after.

The report streams its rows, but a bootstrap resamples rows, so it needs each row's scores. The
pipeline keeps a uniform sample of the evaluated rows (:class:`RowSample`), at most
:func:`interval_rows` rows: what the memory budget allows for the bootstrap's copies (at most
:data:`MAX_INTERVAL_ROWS` rows and :data:`MAX_INTERVAL_CELLS` scores, so the work stays in seconds).
When the evaluated rows are fewer, the sample is all of them and the intervals are those of
:func:`sigmax.metrics.bootstrap_ci` on the evaluated rows.

:func:`sample_intervals` then gives, for every metric of the table, a percentile bootstrap interval
before and after calibration and the *paired* interval of the change (the same resamples on both
sides, :func:`sigmax.metrics.paired_bootstrap`): the metrics with a fast route in
:mod:`sigmax.metrics` (the means, the equal-width binned errors, the ranking metrics) go through
``bootstrap_ci`` / ``paired_bootstrap``; the others are re-run on the rows of the same resamples
(:func:`sigmax._metrics_bootstrap.resample_indices`, the one draw), both sides at once, so every route
gives the intervals ``bootstrap_ci`` would. A change whose interval holds 0 is not significant.

It also holds what needs every score of the sample at once: the equal-mass and smooth ECE, AUROC and
average precision (the report's values of these are the sample's) and the ROC / precision-recall
curves (:class:`sigmax.report.RankingCurves`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import metrics as M
from .._metrics_bootstrap import resample_indices
from ._data import RankingCurves
from ._report import METRIC_NAMES

__all__ = ["DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "INTERVAL_COPIES", "LOOP_RESAMPLES", "MAX_INTERVAL_CELLS", "MAX_INTERVAL_ROWS",
           "MAX_RANKING_CLASSES", "RowSample", "SMOOTH_RESAMPLES", "interval_rows", "mean_interval",
           "ranking_curves", "sample_intervals", "sample_metrics"]

#: resamples of the report's intervals (the CLI's --resamples)
DEFAULT_RESAMPLES = 200
#: metrics without a fast route are re-run on each resample: at most this many resamples
LOOP_RESAMPLES = 100
#: the smooth ECE re-runs a kernel smoothing per resample (about 10 ms each): at most this many resamples
SMOOTH_RESAMPLES = 25
#: coverage of the intervals
DEFAULT_LEVEL = 0.95
#: at most this many rows in the interval sample (the intervals of a sample are wider, never narrower)
MAX_INTERVAL_ROWS = 20_000
#: at most this many scores (rows x scores per row) in the interval sample
MAX_INTERVAL_CELLS = 1_000_000
#: float64 copies of a sample row alive while it is bootstrapped (both sides' scores, the metrics' copies)
INTERVAL_COPIES = 24
#: float64 values per row and resample of the count matrices (indices, counts, their reordered copies)
COUNT_COPIES = 6
#: AUROC and AP (one-vs-rest, per class) are left out above this many classes
MAX_RANKING_CLASSES = 100
_SAMPLE_SEED = 0x5157  # the sample's draws: a stream of its own, apart from the split's


def interval_rows(budget: int, scores_per_row: int, n_resamples: int) -> int:
    """Rows of the interval sample that ``budget`` bytes allow (0: too few for intervals).

    Example:
        >>> interval_rows(1 << 30, 10, 200), interval_rows(256 << 20, 2048, 200)
        (20000, 488)
    """
    spr = max(int(scores_per_row), 1)
    per_row = 8 * (INTERVAL_COPIES * spr + COUNT_COPIES * max(int(n_resamples), 1))
    return int(max(0, min(int(budget) // per_row, MAX_INTERVAL_ROWS, MAX_INTERVAL_CELLS // spr)))


def _uniform(start: int, n: int, seed: int) -> np.ndarray:
    """A uniform number per source row ``start .. start + n - 1``, the same whichever chunks ask."""
    block = 4096
    if n <= 0:
        return np.zeros(0)
    first, last = start // block, (start + n - 1) // block
    u = np.concatenate([np.random.default_rng([seed, _SAMPLE_SEED, b]).random(block) for b in range(first, last + 1)])
    return u[start - first * block:start - first * block + n]


class RowSample:
    """A uniform sample of the evaluated rows, at most ``cap``: each source row is kept when its own seeded
    uniform number is below ``cap / expected`` (so any chunking keeps the same rows), and the sample stops
    at ``cap`` rows."""

    def __init__(self, cap: int, expected: int, seed: int) -> None:
        self.cap, self.seed = int(cap), int(seed)
        self.share = 1.0 if expected <= cap else cap / max(expected, 1)
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.valid: list[np.ndarray | None] = []  # one per part (None: every entry kept)
        self.rows = 0
        self.offered = 0  # rows the draw took, before the cap
        self.seen = 0

    @property
    def full(self) -> bool:
        """Whether the cap left out some rows the draw took."""
        return self.offered > self.rows

    def keep(self, start: int, n: int) -> np.ndarray:
        """Which of the source rows ``start .. start + n - 1`` the sample takes (before the cap)."""
        if self.share >= 1.0:
            return np.ones(n, dtype=bool)
        return _uniform(start, n, self.seed) < self.share

    def add(self, c: Any, take: np.ndarray | None = None) -> None:
        """Add the rows ``take`` of a validated chunk (a :class:`sigmax._inputs.Canonical` record)."""
        self.seen += c.n
        if c.n == 0:
            return
        idx = np.arange(c.n) if take is None else np.flatnonzero(take)
        self.offered += int(idx.size)
        idx = idx[:max(self.cap - self.rows, 0)]
        if not idx.size:
            return
        self.scores.append(np.array(c.scores[idx], dtype=np.float64))  # a copy, never a view of a chunk
        self.labels.append(np.array(c.labels[idx]))
        self.valid.append(None if c.valid is None else np.array(c.valid[idx]))
        self.rows += int(idx.size)

    def merge(self, other: RowSample) -> RowSample:
        """Add the sample of the rows right after this one's (the same cap, share and seed): its rows
        after these, up to the cap, as adding its chunks here would; returns ``self``."""
        for s, y, v in zip(other.scores, other.labels, other.valid):
            room = self.cap - self.rows
            if room <= 0:
                break
            self.scores.append(s[:room])
            self.labels.append(y[:room])
            self.valid.append(None if v is None else v[:room])
            self.rows += min(room, int(s.shape[0]))
        self.offered += other.offered
        self.seen += other.seen
        return self

    def arrays(self, ignore: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The sample's scores and labels (masked multilabel entries carry ``ignore`` again), or ``None``."""
        if not self.rows:
            return None
        s, y = np.concatenate(self.scores), np.concatenate(self.labels)
        if any(v is not None for v in self.valid):
            keep = np.concatenate([np.ones(p.shape, dtype=bool) if v is None else v
                                   for p, v in zip(self.labels, self.valid)])
            y = np.where(keep, y, ignore)
        self.scores.clear()
        self.labels.clear()
        self.valid.clear()
        return s, y


# ------------------------------------------------------------------------------------ the metrics
def _specs(task: str, n_classes: int, n_bins: int, mbc: int) -> dict[str, tuple[Any, dict, str | None, bool]]:
    """``key -> (metric function, kwargs, dict key, fast route)`` for the rows of the table."""
    binned = {"n_bins": n_bins}
    out: dict[str, tuple[Any, dict, str | None, bool]] = {
        "nll": (M.nll, {}, None, True),
        "brier": (M.brier, {}, None, True),
        "accuracy": (M.accuracy, {}, None, True),
    }
    if task == "multiclass" and n_classes > 5:
        out["top5_accuracy"] = (M.accuracy, {"top_k": 5}, None, True)
    if task != "multiclass":
        out["f1_micro"] = (M.precision_recall_f1, {"average": "micro"}, "f1", False)
    if task != "binary":
        out["f1_macro"] = (M.precision_recall_f1, {"average": "macro"}, "f1", False)
    out["ece"] = (M.calibration_error, binned, None, True)
    out["mce"] = (M.calibration_error, {**binned, "norm": "max", "min_bin_count": mbc}, None, True)
    out["ece_equal_mass"] = (M.calibration_error, {**binned, "binning": "equal_mass"}, None, False)
    out["smooth_ece"] = (M.smooth_calibration_error, {}, None, False)
    if task != "binary":
        out["classwise_ece"] = (M.calibration_error, {**binned, "mode": "classwise"}, None, False)
    if task == "binary" or n_classes <= MAX_RANKING_CLASSES:
        out["roc_auc"] = (M.roc_auc, {"average": "macro"}, None, True)
        out["average_precision"] = (M.average_precision, {"average": "macro"}, None, True)
    return out


#: the metrics only the sample gives (they need every score at once)
SAMPLE_ONLY = ("ece_equal_mass", "smooth_ece", "roc_auc", "average_precision")
_LOWER_IS_BETTER = {"nll", "brier", "ece", "mce", "classwise_ece", "ece_equal_mass", "smooth_ece"}


def _value(fn, s, y, task, space, ignore, kw, key) -> float:
    try:
        v = fn(s, y, task, space=space, ignore_index=ignore, **kw)
    except ValueError:  # undefined on these rows (one class only, ...)
        return math.nan
    v = v[key] if key is not None else v
    return float(v)


def sample_metrics(task: str, n_classes: int, s: np.ndarray, y: np.ndarray, space: str, ignore: int | None,
                   n_bins: int, mbc: int, notes: list[str]) -> dict[str, float]:
    """The metrics that need every score at once (:data:`SAMPLE_ONLY`), on the sample; undefined ones are
    left out, with a note."""
    out = {}
    for k, (fn, kw, key, _fast) in _specs(task, n_classes, n_bins, mbc).items():
        if k in SAMPLE_ONLY:
            v = _value(fn, s, y, task, space, ignore, kw, key)
            if math.isnan(v):
                note = f"{k}: undefined on these rows (a class without positives or without negatives); left out."
                if note not in notes:
                    notes.append(note)
                continue
            out[k] = v
    return out


def _percentile(values: np.ndarray, level: float) -> tuple[float, float] | None:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return None
    a = (1.0 - level) / 2
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)


def _joint(fn, sides, y, task, ignore, key, n, n_resamples, seed) -> list[np.ndarray]:
    """The metric on the rows of each resample, for each side ``(scores, space, kwargs)`` (the same rows)."""
    out: list[list[float]] = [[] for _ in sides]
    for idx in resample_indices(n, n_resamples, seed):
        for row in idx:
            yr = y[row]
            for j, (s, space, kw) in enumerate(sides):
                out[j].append(_value(fn, s[row], yr, task, space, ignore, kw, key))
    return [np.asarray(v, dtype=np.float64) for v in out]


def _undefined(name: str, bad: int, total: int, notes: list[str]) -> None:
    if bad:
        note = (f"{name}: undefined on {bad:,} of {total:,} resamples (e.g. no bin of min_bin_count rows, or a "
                "class missing); its interval uses the others.")
        if note not in notes:
            notes.append(note)


def _change(diff: np.ndarray, lower: bool, level: float, estimate: float) -> dict[str, Any] | None:
    ci = _percentile(diff, level)
    if ci is None:
        return None
    d = diff[~np.isnan(diff)]
    not_better = float(np.mean(d >= 0) if lower else np.mean(d <= 0))
    return _change_dict(estimate, ci[0], ci[1], not_better)


def _change_dict(estimate: float, low: float, high: float, not_better: float) -> dict[str, Any]:
    return {"estimate": float(estimate), "low": float(low), "high": float(high),
            "share_not_better": float(not_better), "significant": not (low <= 0.0 <= high)}


def sample_intervals(task: str, n_classes: int, before: np.ndarray, space: str, after: np.ndarray | None,
                     y: np.ndarray, *, ignore: int | None, n_bins: int, mbc: int, thresholds: Any = None,
                     n_resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = 0,
                     estimates: tuple[dict, dict | None] | None = None, notes: list[str]) -> dict[str, Any]:
    """Intervals of every metric of the table on the sample ``(before, after, y)``.

    Returns ``{"before": {key: [low, high]}, "after": {...}, "change": {key: {estimate, low, high,
    share_not_better, significant}}, "tuned": {...}, "tuned_change": {...}, "resamples": {key: R}}``;
    ``estimates`` (the table's values, before and after) are the centres of the changes.
    """
    n = int(before.shape[0])
    out: dict[str, Any] = {"before": {}, "after": {}, "change": {}, "tuned": {}, "tuned_change": {}, "resamples": {}}
    specs = _specs(task, n_classes, n_bins, mbc)
    common = {"task": task, "n_resamples": n_resamples, "level": level, "seed": seed, "ignore_index": ignore}
    for k, (fn, kw, key, fast) in specs.items():
        r = resamples_for(k, fast and key is None, n_resamples)
        out["resamples"][k] = r
        eb = None if estimates is None else estimates[0].get(k)
        ea = None if estimates is None or estimates[1] is None else estimates[1].get(k)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fast and key is None:
                _fast(out, k, fn, kw, before, space, after, y, eb, ea, dict(common, n_resamples=r))
            else:
                sides = [(before, space, kw)] + ([(after, "logits", kw)] if after is not None else [])
                vals = _joint(fn, sides, y, task, ignore, key, n, r, seed)
                _undefined(k, int(np.sum(np.isnan(vals[0]) | (np.isnan(vals[1]) if after is not None else False))),
                           r, notes)
                ci = _percentile(vals[0], level)
                if ci is not None:
                    out["before"][k] = list(ci)
                if after is not None:
                    ci = _percentile(vals[1], level)
                    if ci is not None:
                        out["after"][k] = list(ci)
                    if eb is not None and ea is not None:
                        ch = _change(vals[1] - vals[0], k in _LOWER_IS_BETTER, level, ea - eb)
                        if ch is not None:
                            out["change"][k] = ch
        for w in caught:
            text = str(w.message)
            if "undefined on" in text and "resamples" in text:
                _undefined(k, int(text.split("undefined on ")[1].split(" of ")[0].replace(",", "")), r, notes)
    if after is not None and thresholds is not None and task != "multiclass":
        _tuned(out, task, after, y, ignore, thresholds, n, n_resamples, level, seed, estimates, notes)
    _off_centre(out, estimates, notes)
    return out


def _off_centre(out: dict[str, Any], estimates: tuple[dict, dict | None] | None, notes: list[str]) -> None:
    """A note naming the metrics whose interval does not hold the table's value (so nobody reads it as an
    error): binned calibration errors grow on resamples, whose repeated rows make every bin noisier."""
    if estimates is None:
        return
    off = []
    for side, est in zip(("before", "after"), estimates):
        for k, ci in out[side].items():
            v = None if est is None else est.get(k)
            if v is not None and np.isfinite(v) and not ci[0] <= v <= ci[1]:
                name = METRIC_NAMES.get(k, (k,))[0]
                off.append(f"{name} ({side})")
    if off:
        what = f"interval of {off[0]} does" if len(off) == 1 else f"intervals of {', '.join(off)} do"
        notes.append(f"The {what} not hold the value in the table: a binned "
                     "calibration error is biased upward, more so on a bootstrap resample (repeated rows make "
                     "each bin noisier), so the resamples' spread sits above it. Read the interval as that "
                     "spread; calibration_error(..., debias=True) estimates the error with less bias.")


def resamples_for(key: str, fast: bool, n_resamples: int) -> int:
    """Resamples of one metric: ``n_resamples`` through a fast route, at most :data:`LOOP_RESAMPLES` for a
    metric re-run per resample, :data:`SMOOTH_RESAMPLES` for the smooth ECE.

    Example:
        >>> resamples_for("nll", True, 200), resamples_for("f1_macro", False, 200), resamples_for("smooth_ece", False, 200)
        (200, 100, 25)
    """
    if key == "smooth_ece":
        return min(n_resamples, SMOOTH_RESAMPLES)
    return n_resamples if fast else min(n_resamples, LOOP_RESAMPLES)


def _fast(out, k, fn, kw, before, space, after, y, eb, ea, common) -> None:
    task = common["task"]
    rest = {key: v for key, v in common.items() if key != "task"}
    try:
        out["before"][k] = list(M.bootstrap_ci(fn, before, y, task, space=space, **rest, **kw)[1:])
    except ValueError:
        pass
    if after is None:
        return
    try:
        out["after"][k] = list(M.bootstrap_ci(fn, after, y, task, space="logits", **rest, **kw)[1:])
    except ValueError:
        pass
    if eb is None or ea is None:
        return
    try:
        p = M.paired_bootstrap(fn, before, after, y, task, space=space, space_b="logits", **rest, **kw)
    except ValueError:
        return
    # centred on the table's change; the interval and the share are the paired bootstrap's
    out["change"][k] = _change_dict(ea - eb, p.low, p.high, p.share_not_better)


def _tuned(out, task, after, y, ignore, thr, n, n_resamples, level, seed, estimates, notes) -> None:
    """The decision metrics at the tuned thresholds, and their change from the 'after' column (the same
    calibrated scores at 0.5): the same resamples, two thresholds."""
    t = np.asarray(thr, dtype=np.float64)
    tuned_est = {} if estimates is None or len(estimates) < 3 or estimates[2] is None else estimates[2]
    after_est = {} if estimates is None or estimates[1] is None else estimates[1]
    for k, (fn, kw, key) in {"accuracy": (M.accuracy, {}, None),
                             "f1_micro": (M.precision_recall_f1, {"average": "micro"}, "f1"),
                             "f1_macro": (M.precision_recall_f1, {"average": "macro"}, "f1")}.items():
        if task == "binary" and k == "f1_macro":
            continue
        vals = _joint(fn, [(after, "logits", kw), (after, "logits", {**kw, "threshold": t})], y, task, ignore, key,
                      n, resamples_for(k, False, n_resamples), seed)
        ci = _percentile(vals[1], level)
        if ci is not None:
            out["tuned"][k] = list(ci)
        if k in tuned_est and k in after_est:
            ch = _change(vals[1] - vals[0], False, level, tuned_est[k] - after_est[k])
            if ch is not None:
                out["tuned_change"][k] = ch


def mean_interval(values: np.ndarray, n_resamples: int, level: float, seed: int) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of per-row ``values`` (the same resamples as the metrics).

    Example:
        >>> lo, hi = mean_interval(np.r_[np.ones(90), np.zeros(10)], 200, 0.95, 0)
        >>> lo < 0.9 < hi
        True
    """
    v = np.asarray(values, dtype=np.float64)
    means = np.concatenate([v[idx].mean(axis=1) for idx in resample_indices(v.size, n_resamples, seed)])
    return _percentile(means, level)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ curves
def _columns(task: str, s: np.ndarray, y: np.ndarray, space: str, ignore: int | None):
    """``(probabilities (n, K), outcomes (n, K), kept (n, K))`` of the one-vs-rest columns."""
    from ..interpret import to_probs

    if task == "binary":
        p = np.asarray(to_probs(s.reshape(-1), "binary", space=space), dtype=np.float64).reshape(-1, 1)
        return p, (y.reshape(-1, 1) == 1), np.ones(p.shape, dtype=bool)
    p = np.asarray(to_probs(s, task, space=space), dtype=np.float64)
    if task == "multiclass":
        o = np.zeros(p.shape, dtype=bool)
        o[np.arange(p.shape[0]), y.astype(np.int64)] = True
        return p, o, np.ones(p.shape, dtype=bool)
    keep = np.ones(p.shape, dtype=bool) if ignore is None else (y != ignore)
    return p, (y == 1) & keep, keep


def _curve(p: np.ndarray, o: np.ndarray, most: int = 400) -> tuple[np.ndarray, ...]:
    """ROC (fpr, tpr) and precision-recall (recall, precision) points at the distinct thresholds."""
    order = np.argsort(-p, kind="stable")
    ps, os_ = p[order], o[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(ps)), ps.size - 1]  # the last row of each tied group
    tp = np.cumsum(os_)[last]
    fp = (last + 1) - tp
    pos, neg = max(tp[-1], 1.0), max(fp[-1], 1.0)
    tpr, fpr = np.r_[0.0, tp / pos], np.r_[0.0, fp / neg]
    recall = np.r_[0.0, tp / pos]
    precision = np.r_[1.0, tp / (tp + fp)]
    if tpr.size > most:  # thin for drawing: keep the ends
        keep = np.unique(np.r_[np.linspace(0, tpr.size - 1, most).astype(np.int64), tpr.size - 1])
        tpr, fpr, recall, precision = tpr[keep], fpr[keep], recall[keep], precision[keep]
    return fpr, tpr, recall, precision


def ranking_curves(task: str, s: np.ndarray, y: np.ndarray, space: str, ignore: int | None,
                   names: list[str], max_classes: int = 8) -> RankingCurves | None:
    """ROC and precision-recall curves on the sample: binary, or one-vs-rest per class (the classes with the
    most positives, at most ``max_classes``)."""
    p, o, keep = _columns(task, s, y, space, ignore)
    support = o.sum(axis=0)
    negatives = (keep & ~o).sum(axis=0)
    ok = np.flatnonzero((support > 0) & (negatives > 0))
    if ok.size == 0:
        return None
    classes = sorted(int(c) for c in ok[np.argsort(-support[ok], kind="stable")[:max_classes]])
    fpr, tpr, rec, prec = [], [], [], []
    for c in classes:
        m = keep[:, c]
        a, b, r, q = _curve(p[m, c], o[m, c])
        fpr.append(a)
        tpr.append(b)
        rec.append(r)
        prec.append(q)
    auc = np.array([float(M.roc_auc(p[keep[:, c], c], o[keep[:, c], c].astype(int), "binary", space="probs"))
                    for c in classes])
    ap = np.array([float(M.average_precision(p[keep[:, c], c], o[keep[:, c], c].astype(int), "binary",
                                             space="probs")) for c in classes])
    prevalence = support[classes] / np.maximum(keep[:, classes].sum(axis=0), 1)
    return RankingCurves(classes=classes, names=[names[c] if task != "binary" else names[0] for c in classes],
                         fpr=fpr, tpr=tpr, recall=rec, precision=prec, auc=auc, ap=ap,
                         prevalence=np.asarray(prevalence, dtype=np.float64), support=support[classes].astype(np.int64),
                         n_classes=int(p.shape[1]))
