r"""Per-sample terms and additive statistics of the metrics (the private half of :mod:`sigmax.metrics`).

:func:`prepare` is every metric's entry point: it validates scores and labels once through the
canonical-input layer (:func:`sigmax._inputs.canonical`) and :func:`from_canonical` turns the record into a
:class:`MetricData`
record of float64 probabilities, log-probabilities, labels and term weights. The functions here
compute, from such a record, the per-sample terms (log-loss, squared error, top-k hits), the
(weighted) confusion counts and the confidence / outcome pairs that :mod:`sigmax._binning` bins;
:mod:`sigmax.metrics` sums and finishes them.

Weights: ``MetricData.w`` is ``None`` when every term weighs 1; otherwise one weight per term —
``(M,)`` for binary and multiclass (the sample weights), ``(M, C)`` for multilabel (the row's sample
weight on each entry, 0 for entries masked by ``ignore_index``). A term of weight 0 is dropped, even an
infinite one.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ._binning import Reliability, bin_sums, classwise_sums, from_sums
from ._inputs import Canonical, canonical, spell, to_numpy, validate_space, validate_task
from .activations import log1mexp
from .interpret import to_log_probs, to_probs, validate_log_probs

__all__ = [
    "Interval",
    "PairedInterval",
    "check_average",
    "MetricData",
    "add_sums",
    "brier_terms",
    "class_column",
    "classwise",
    "confusion",
    "decisions",
    "from_canonical",
    "mean_over_classes",
    "n_columns",
    "nll_terms",
    "prepare",
    "prf_from_counts",
    "reliability_data",
    "threshold_array",
    "top_label",
    "topk_correct",
    "weighted_mean",
    "weighted_sum",
]


#: the results of sigmax.metrics.bootstrap_ci and paired_bootstrap (here, beside the terms they come from)
class Interval(NamedTuple):
    """A metric with its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float


class PairedInterval(NamedTuple):
    """``metric(b) - metric(a)`` with its paired bootstrap interval, and the share of resamples in which
    ``b`` is not better than ``a`` (a one-sided bootstrap p-value for "b is better")."""

    estimate: float
    low: float
    high: float
    share_not_better: float



#: what each ``average=`` means, for the messages of :func:`check_average`
AVERAGE_MEANINGS = {
    "micro": "every (sample, class) decision or entry pooled",
    "macro": "the mean over classes",
    "weighted": "the mean weighted by each class's support",
    None: "one value per class",
}


def check_average(average: Any, allowed: tuple = ("micro", "macro", "weighted", None)) -> Any:
    """``average`` normalised (case, ``"none"`` for ``None``) and checked against ``allowed``: the one rule of
    every ``average=`` in sigmax's metrics (precision/recall/F1, ROC AUC and AP, the torchmetrics classes).

    Example:
        >>> check_average("Macro"), check_average("none")
        ('macro', None)
    """
    if isinstance(average, str):
        average = average.lower()
        if average == "none":
            average = None
    if average not in allowed:
        choices = ", ".join(f"{a!r} ({AVERAGE_MEANINGS[a]})" for a in allowed)
        raise ValueError(f"unknown average {average!r}; use {choices}")
    return average

#: a neutral score per space for masked multilabel entries (they carry weight 0 but must not be NaN)
_NEUTRAL = {"logits": 0.0, "probs": 0.5, "log_probs": -math.log(2.0)}


@dataclass(frozen=True)
class MetricData:
    """Scores and labels in a canonical layout (float64 NumPy).

    binary: ``p``, ``logp``, ``log1mp`` of shape (M,), ``y`` (M,) in {0, 1}.
    multiclass: ``p``, ``logp`` of shape (M, C), ``y`` (M,) class indices.
    multilabel: ``p``, ``logp``, ``log1mp`` of shape (M, C), ``y`` (M, C) in {0, 1}.
    ``w``: the weight of each term — (M,) for binary and multiclass, (M, C) for multilabel (the row's
    sample weight, 0 for masked entries) — or ``None`` when every term weighs 1.
    """

    task: str
    p: np.ndarray
    logp: np.ndarray
    log1mp: np.ndarray | None
    y: np.ndarray
    w: np.ndarray | None = None
    n_ignored: int = 0

    @property
    def n(self) -> int:
        return int(self.p.shape[0])

    @property
    def n_classes(self) -> int:
        return 2 if self.task == "binary" else int(self.p.shape[1])

    @property
    def row_w(self) -> np.ndarray | None:
        """One weight per row (multiclass and binary: ``w``)."""
        return self.w


def prepare(scores: Any, labels: Any, task: Any, space: Any, axis: Any = -1, *, ignore_index: Any = None,
             sample_weight: Any = None, need_log: bool = True, allow_empty: bool = False,
             row_numbers: Any = None) -> MetricData:
    """Validate (:func:`sigmax._inputs.canonical`) and convert to :class:`MetricData` (every metric's entry point);
    ``row_numbers``: the rows' numbers in the whole input, for the messages (a block of a Dask array)."""
    task = validate_task(task)
    space = validate_space(space)
    c = canonical(scores, labels, task, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight,
                  allow_empty=allow_empty, row_numbers=row_numbers)
    return from_canonical(c, space, need_log=need_log)


def from_canonical(c: Canonical, space: Any, *, need_log: bool = True) -> MetricData:
    """A validated record (:class:`sigmax._inputs.Canonical`) as :class:`MetricData`: probabilities once.

    The scores are turned into probabilities (and log-probabilities) here and nowhere else; callers that
    hold a :class:`Canonical` already (the report's pipeline) come in here without validating again.
    """
    space = validate_space(space)
    task = c.task
    if c.labels is None:
        raise ValueError("metrics need labels: the canonical record holds scores only")
    s, y = c.scores, c.labels
    w = c.weight
    if c.valid is not None:  # multilabel entries masked by ignore_index: weight 0, a neutral score
        s = np.where(c.valid, s, _NEUTRAL[space])
        w = c.valid.astype(np.float64) if w is None else w[:, None] * c.valid
    elif w is not None and task == "multilabel":
        w = np.broadcast_to(w[:, None], s.shape)
    if space == "log_probs":
        validate_log_probs(s, task)  # <= 0, and rows that logsumexp to 0 for multiclass
        if task != "multiclass":
            s = np.minimum(s, 0.0)  # the rounding above 0 that validation allows would make log(1 - p) NaN
    with np.errstate(all="ignore"):
        p = np.asarray(to_probs(s, task, space=space))
        logp = np.asarray(to_log_probs(s, task, space=space, validate=False)) if need_log else p
        log1mp = None
        if task != "multiclass" and need_log:
            if space == "logits":
                log1mp = np.asarray(to_log_probs(-s, task, space="logits"))  # log(1 - sigmoid(z)) = log_sigmoid(-z)
            elif space == "probs":
                log1mp = np.log1p(-s)  # log(1 - p) without forming 1 - p for tiny p
            else:
                log1mp = np.asarray(log1mexp(s))  # log(1 - exp(lp)) without cancellation
    return MetricData(task, p, logp, log1mp, y, w, c.n_ignored)


def weighted_sum(terms: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
    """``(sum of w * terms, sum of w)``; a term of weight 0 is dropped, even an infinite one."""
    if w is None:
        return float(np.sum(terms)), float(terms.size)
    prod = np.multiply(terms, w, out=np.zeros(terms.shape), where=w > 0)
    return float(np.sum(prod)), float(np.sum(w))


def weighted_mean(terms: np.ndarray, w: np.ndarray | None) -> float:
    total, weight = weighted_sum(terms, w)
    if not weight > 0:
        raise ValueError("sample_weight sums to 0 over the samples kept; give some sample a positive weight")
    return total / weight


def threshold_array(threshold: Any, data: MetricData) -> np.ndarray:
    if data.task == "multiclass":
        if threshold is not None:
            raise ValueError(f"threshold does not apply to {spell('task', 'multiclass')} (decisions are the argmax); "
                             "leave it None")
        return np.asarray(0.5)
    t = to_numpy(0.5 if threshold is None else threshold, "threshold").astype(np.float64)
    c = 1 if data.task == "binary" else data.n_classes
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, c)):
        raise ValueError(f"threshold must be a number or one per class ({c} values), got shape {t.shape}")
    if np.any(np.isnan(t)):
        raise ValueError("threshold must not be NaN")
    if data.task == "binary":
        t = t.reshape(-1)
        if t.size != 1:
            raise ValueError(f"binary takes a single threshold, got {t.size}")
        return t[0]
    return t


def decisions(data: MetricData, threshold: Any) -> np.ndarray:
    """Predicted labels: argmax (multiclass) or ``p > threshold`` (binary, multilabel)."""
    t = threshold_array(threshold, data)
    if data.task == "multiclass":
        return np.argmax(data.p, axis=1)
    return (data.p > t).astype(np.int64)


def nll_terms(d: MetricData) -> np.ndarray:
    if d.task == "multiclass":
        return -d.logp[np.arange(d.n), d.y]
    # pick the log-probability of the observed outcome (never 0 * -inf)
    return -np.where(d.y == 1, d.logp, d.log1mp)


def brier_terms(d: MetricData) -> np.ndarray:
    if d.task == "multiclass":
        sq = d.p * d.p  # (p_c - 0)^2 for the wrong classes ...
        rows = np.arange(d.n)
        sq[rows, d.y] = (1.0 - d.p[rows, d.y]) ** 2  # ... and (1 - p_y)^2 for the true one: no one-hot matrix
        return np.sum(sq, axis=1)
    return (d.p - d.y) ** 2


def topk_correct(d: MetricData, k: int) -> np.ndarray:
    """Whether each label is among the ``k`` highest probabilities (ties: the lower index ranks first,
    so ``k=1`` agrees with the argmax)."""
    py = d.p[np.arange(d.n), d.y][:, None]
    idx = np.arange(d.p.shape[1])[None, :]
    rank = np.sum(d.p > py, axis=1) + np.sum((d.p == py) & (idx < d.y[:, None]), axis=1)
    return rank < k


def confusion(d: MetricData, threshold: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (weighted) true positives, false positives, false negatives (binary: the positive class)."""
    pred = decisions(d, threshold)
    if d.task == "multiclass":
        c = d.p.shape[1]
        hit = pred == d.y
        w = d.w
        tp = np.bincount(d.y[hit], weights=None if w is None else w[hit], minlength=c).astype(np.float64)
        fp = np.bincount(pred, weights=w, minlength=c) - tp
        fn = np.bincount(d.y, weights=w, minlength=c) - tp
        return tp, fp.astype(np.float64), fn.astype(np.float64)
    pred = pred.reshape(d.n, -1)
    y = d.y.reshape(d.n, -1)
    w = np.ones(y.shape) if d.w is None else d.w.reshape(d.n, -1)
    tp = np.sum(w * ((pred == 1) & (y == 1)), axis=0)
    fp = np.sum(w * ((pred == 1) & (y == 0)), axis=0)
    fn = np.sum(w * ((pred == 0) & (y == 1)), axis=0)
    return tp, fp, fn


def _div(a, b):
    """a / b with 0/0 = 0 (scikit-learn's ``zero_division=0``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def prf_from_counts(tp, fp, fn, average) -> dict[str, Any]:
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        return {"precision": float(_div(tp, tp + fp)), "recall": float(_div(tp, tp + fn)),
                "f1": float(_div(2 * tp, 2 * tp + fp + fn))}
    prec, rec, f1 = _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return {"precision": prec, "recall": rec, "f1": f1}
    if average == "weighted":  # scikit-learn's: each class weighs its support (tp + fn), absent classes 0
        support = np.asarray(tp + fn, dtype=np.float64)
        total = support.sum()
        if not total > 0:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        return {k: float(np.sum(v * support) / total) for k, v in (("precision", prec), ("recall", rec), ("f1", f1))}
    present = (tp + fp + fn) > 0  # classes never predicted nor present carry no information: left out
    if not present.any():
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return {"precision": float(prec[present].mean()), "recall": float(rec[present].mean()),
            "f1": float(f1[present].mean())}


def _entry_w(d: MetricData) -> np.ndarray | None:
    return None if d.w is None else d.w.reshape(-1)


def top_label(d: MetricData) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Confidence of the predicted label, whether it is right and its weight, one per sample (or entry)."""
    if d.task == "multiclass":
        pred = np.argmax(d.p, axis=1)
        return d.p[np.arange(d.n), pred], (pred == d.y).astype(np.float64), d.w
    p = d.p.reshape(-1)
    y = d.y.reshape(-1)
    pred = p > 0.5  # the default decision of sigmax.interpret
    return np.where(pred, p, 1.0 - p), (pred == (y == 1)).astype(np.float64), _entry_w(d)


def n_columns(d: MetricData) -> int:
    """Classes with a probability column: C, or 1 for binary (the positive class)."""
    return 1 if d.task == "binary" else int(d.p.shape[1])


def class_column(d: MetricData, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Class ``c``'s probability, its 0/1 outcome and weight (binary: the positive class)."""
    if d.task == "binary":
        return d.p, d.y.astype(np.float64), d.w
    if d.task == "multiclass":
        return d.p[:, c], (d.y == c).astype(np.float64), d.w
    return d.p[:, c], d.y[:, c].astype(np.float64), None if d.w is None else d.w[:, c]


def classwise(d: MetricData, n_bins: int):
    """Equal-width bin sums of every class: ``(edges, count, weight, sconf, sacc)``, each ``(K, n_bins)``."""
    p = d.p.reshape(d.n, -1)
    if d.task == "multiclass":
        return classwise_sums(p, n_bins, index=d.y, weight=d.w)
    w = None if d.w is None else d.w.reshape(d.n, -1)
    return classwise_sums(p, n_bins, hits=d.y.reshape(d.n, -1), weight=w)


def reliability_data(d: MetricData, n_bins: int, binning: str, mode: str, class_index: Any,
                      min_bin_count: int) -> Reliability:
    if mode == "top_label":
        if class_index is not None:
            raise ValueError("class_index applies to mode='classwise' only")
        conf, out, w = top_label(d)
    elif class_index is not None:
        c = n_columns(d)
        if d.task == "binary":
            raise ValueError(f"class_index does not apply to {spell('task', 'binary')} "
                             "(classwise is the positive class)")
        if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral) \
                or not -c <= class_index < c:
            raise ValueError(f"class_index must be an integer in 0..{c - 1}, got {class_index!r}")
        conf, out, w = class_column(d, int(class_index) % c)
    elif binning == "equal_width":  # every class pooled
        edges, count, wsum, sconf, sacc = classwise(d, n_bins)
        return from_sums(edges, count.sum(axis=0), None if wsum is None else wsum.sum(axis=0),
                         sconf.sum(axis=0), sacc.sum(axis=0), min_bin_count)
    else:
        cols = [class_column(d, c) for c in range(n_columns(d))]
        conf, out = np.concatenate([a for a, _, _ in cols]), np.concatenate([b for _, b, _ in cols])
        w = None if d.w is None else np.concatenate([np.broadcast_to(x, a.shape) for a, _, x in cols])
    return from_sums(*bin_sums(conf, out, n_bins, binning, w), min_bin_count)


def mean_over_classes(errs: np.ndarray, norm: str) -> float:
    if norm == "max":  # classes without a bin of min_bin_count samples have no MCE: left out
        errs = np.asarray(errs, dtype=np.float64)
        return float(np.mean(errs[~np.isnan(errs)])) if not np.all(np.isnan(errs)) else math.nan
    return float(np.mean(errs))


def add_sums(a, b):
    """Add ``(count, weight, sconf, sacc)`` bin sums (a ``None`` weight is the counts)."""
    if a is None:
        return b
    ca, wa, *ra = a
    cb, wb, *rb = b
    w = None if wa is None and wb is None else \
        (ca.astype(np.float64) if wa is None else wa) + (cb.astype(np.float64) if wb is None else wb)
    return (ca + cb, w, *(x + y for x, y in zip(ra, rb)))

