r"""Ranking and decision statistics: ROC AUC, average precision, confusion matrices (private half of :mod:`sigmax.metrics`).

Every ranking statistic here is computed from *tied groups*: the entries sorted by score, descending,
and cut where the score changes. Per group :math:`g` it keeps the weight of positives :math:`P_g` and
of negatives :math:`N_g`; then, with :math:`P = \sum_g P_g`, :math:`N = \sum_g N_g`,

.. math::
    \mathrm{AUC} = \frac{1}{P N} \sum_g P_g \Big(\sum_{h > g} N_h + \tfrac12 N_g\Big), \qquad
    \mathrm{AP} = \sum_g \frac{P_g}{P} \cdot \frac{\sum_{h \le g} P_h}{\sum_{h \le g} (P_h + N_h)}

— the trapezoidal area under the ROC curve through the distinct thresholds (ties count one half, the
weighted Mann-Whitney statistic) and scikit-learn's step-wise average precision
:math:`\sum_n (R_n - R_{n-1}) P_n`. Because the group sums are additive in the weights, the same
functions evaluate a whole matrix of bootstrap weights at once (:mod:`sigmax._metrics_bootstrap`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import resolve_axis
from ._metrics_terms import check_average, class_column, decisions, prepare

__all__ = ["AVERAGES", "ap_from_groups", "auc_from_groups", "average_precision", "average_values",
           "check_ranking_average", "confusion_counts", "confusion_matrix", "confusion_of", "finish_values", "group_sums",
           "normalize_confusion", "per_class", "pooled", "pools", "roc_auc", "sorted_groups"]

AVERAGES = ("macro", "weighted", "micro", None)


def check_ranking_average(average: Any) -> Any:
    """``average`` of :func:`roc_auc` / :func:`average_precision` (:func:`check_average`'s one rule)."""
    return check_average(average, AVERAGES)


def sorted_groups(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, starts)``: the entries by descending score (stable) and where each run of equal scores starts."""
    order = np.argsort(-score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, dtype=np.int64)
    return order, starts


def group_sums(values: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (``(..., n)``, the last axis the entries) over each tied group: ``(..., G)``."""
    v = values[..., order]
    if v.shape[-1] == 0:
        return np.zeros(v.shape[:-1] + (0,))
    return np.add.reduceat(v, starts, axis=-1)


def auc_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC from per-group positive and negative weights (``(..., G)``, descending score); NaN where
    there is no positive or no negative weight."""
    p_tot, n_tot = pos.sum(axis=-1), neg.sum(axis=-1)
    neg_after = n_tot[..., None] - np.cumsum(neg, axis=-1)  # negatives ranked strictly below each group
    num = np.sum(pos * (neg_after + 0.5 * neg), axis=-1)
    den = p_tot * n_tot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def ap_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision from per-group weights (``(..., G)``, descending score); NaN without positives."""
    tp, fp = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
    den = tp + fp
    prec = np.divide(tp, den, out=np.zeros(np.broadcast(tp, den).shape), where=den > 0)
    p_tot = pos.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p_tot > 0, np.sum(pos * prec, axis=-1) / np.where(p_tot > 0, p_tot, 1.0), np.nan)


def confusion_counts(y: np.ndarray, pred: np.ndarray, w: np.ndarray | None, n: int) -> np.ndarray:
    """``(n, n)`` (weighted) counts, rows the true class, columns the predicted one (scikit-learn's layout)."""
    flat = y.astype(np.int64) * n + pred.astype(np.int64)
    if w is None:
        return np.bincount(flat, minlength=n * n).reshape(n, n).astype(np.int64)
    return np.bincount(flat, weights=w, minlength=n * n).reshape(n, n)


def normalize_confusion(cm: np.ndarray, normalize: Any) -> np.ndarray:
    """scikit-learn's ``normalize``: ``"true"`` (rows sum to 1), ``"pred"`` (columns), ``"all"``, ``None``;
    an empty row or column stays 0."""
    if normalize is None:
        return cm
    if normalize not in ("true", "pred", "all"):
        raise ValueError(f"unknown normalize {normalize!r}; use 'true' (over the true labels: rows sum to 1), "
                         "'pred' (over the predictions: columns sum to 1), 'all' or None (counts)")
    cm = cm.astype(np.float64)
    if normalize == "true":
        den = cm.sum(axis=-1, keepdims=True)
    elif normalize == "pred":
        den = cm.sum(axis=-2, keepdims=True)
    else:
        den = cm.sum(axis=(-2, -1), keepdims=True)
    return np.divide(cm, den, out=np.zeros(cm.shape), where=den > 0)


# --------------------------------------------------------------------------------------------
# per-class values from MetricData
# --------------------------------------------------------------------------------------------


def _binary_values(score: np.ndarray, outcome: np.ndarray, w: np.ndarray | None, stat) -> float:
    if w is not None:  # a sample of weight 0 (or a masked multilabel entry) is not ranked at all
        keep = w > 0
        score, outcome, w = score[keep], outcome[keep], w[keep]
    ww = np.ones(score.shape) if w is None else w
    order, starts = sorted_groups(score)
    pos = group_sums(ww * outcome, order, starts)
    neg = group_sums(ww * (1.0 - outcome), order, starts)
    return float(stat(pos, neg))


def per_class(d, stat, columns) -> tuple[np.ndarray, np.ndarray]:
    """``(value, support)`` of ``stat`` (:func:`auc_from_groups` or :func:`ap_from_groups`) for every
    class column of ``d`` (``columns(d, c)`` -> score, 0/1 outcome, weight); support: positive weight."""
    k = 1 if d.task == "binary" else int(d.p.shape[1])
    vals, sup = np.empty(k), np.empty(k)
    for c in range(k):
        s, o, w = columns(d, c)
        vals[c] = _binary_values(s, o, w, stat)
        sup[c] = float(np.sum(o if w is None else o * w))
    return vals, sup


def pooled(d) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every (sample, class) entry as one binary problem (the ``"micro"`` average)."""
    if d.task == "binary":
        return d.p, d.y.astype(np.float64), d.w
    if d.task == "multiclass":
        onehot = np.zeros(d.p.shape)
        onehot[np.arange(d.n), d.y] = 1.0
        w = None if d.w is None else np.repeat(d.w, d.p.shape[1])
        return d.p.reshape(-1), onehot.reshape(-1), w
    return d.p.reshape(-1), d.y.reshape(-1).astype(np.float64), None if d.w is None else d.w.reshape(-1)


def pools(task: str, average: Any) -> bool:
    """Whether ``average`` (checked) on ``task`` is one pooled binary problem (binary, or ``"micro"``)."""
    return average == "micro" or task == "binary"


def average_values(name: str, d, stat, columns, average: Any) -> Any:
    """Finish per-class values with ``average``; an undefined value is an error unless ``average=None``."""
    if pools(d.task, average):
        return finish_values(name, d.task, average, _binary_values(*pooled(d), stat))
    vals, sup = per_class(d, stat, columns)
    return finish_values(name, d.task, average, vals, sup)


def finish_values(name: str, task: str, average: Any, vals: Any, sup: np.ndarray | None = None) -> Any:
    """The result of ``name`` (``"roc_auc"`` or ``"average_precision"``) from its value(s), in memory or on Dask.

    ``vals``: the pooled problem's value where :func:`pools` (binary, ``"micro"``), else one value per
    class with ``sup`` the classes' positive weights. NaN (undefined) is an error, naming the classes,
    unless ``average=None`` (an array, NaN for such a class) or ``"weighted"`` (a class without positives
    weighs 0).

    Example:
        >>> finish_values("roc_auc", "multiclass", "weighted", np.array([0.5, np.nan]), np.array([2.0, 0.0]))
        0.5
    """
    if pools(task, average):
        v = float(np.asarray(vals).reshape(-1)[0])
        if np.isnan(v):
            raise ValueError(_undefined(name, "the labels kept" if task == "binary" else "the pooled entries"))
        return v
    vals, sup = np.asarray(vals, dtype=np.float64), np.asarray(sup, dtype=np.float64)
    if average is None:
        return vals
    bad = np.flatnonzero(np.isnan(vals) & ((sup > 0) | (average == "macro")))
    if bad.size:
        raise ValueError(_undefined(name, f"class{'es' if bad.size > 1 else ''} {', '.join(map(str, bad[:10]))}")
                         + "; use average=None (NaN for such a class) or average='weighted' (a class without "
                         "positives weighs 0)")
    if average == "macro":
        return float(np.mean(vals))
    if not np.sum(sup) > 0:
        raise ValueError(_undefined(name, "every class (no positive weight at all)"))
    keep = sup > 0
    return float(np.sum(vals[keep] * sup[keep]) / np.sum(sup[keep]))


def _undefined(name: str, where: str) -> str:
    need = "both positives and negatives" if name == "roc_auc" else "at least one positive"
    return f"{name} is undefined for {where}: it needs {need} (with positive weight)"


# --------------------------------------------------------------------------------------------
# the public functions (re-exported by sigmax.metrics)
# --------------------------------------------------------------------------------------------


def roc_auc(scores: Any, labels: Any, task: str, *, space: str = "logits", average: str | None = "macro",
            axis: int = -1, dim: int | None = None, ignore_index: int | None = None,
            sample_weight: Any = None) -> Any:
    r"""Area under the ROC curve, equal to scikit-learn's ``roc_auc_score``.

    .. math:: \mathrm{AUC} = \frac{\sum_{i:\,y_i=1} \sum_{j:\,y_j=0} w_i w_j
              \big([s_i > s_j] + \tfrac12 [s_i = s_j]\big)}{\sum_{i:\,y_i=1} w_i \sum_{j:\,y_j=0} w_j}

    the probability that a random positive outranks a random negative, ties counting one half (the
    trapezoidal area through the distinct thresholds). Computed in O(N log N) per class from the sorted
    scores, exact with ties.

    Dask arrays (scores, labels or ``sample_weight`` chunked along rows) give the same value, to float
    rounding, without bringing the scores together: each class's score line is cut at exact order
    statistics into buckets of bounded size, one tree-reduced pass sums each bucket's positive and negative
    weight, and one task per bucket sorts its entries and adds its share (ties never straddle a bucket);
    only these fixed-size sums reach the client (:mod:`sigmax._dask_metrics_ranking`).

    * binary: of the positive-class probability (``average`` makes no difference);
    * multiclass: one-vs-rest on each class's probability (``roc_auc_score(..., multi_class="ovr")``);
    * multilabel: per class.

    ``average``: ``"macro"`` (mean over classes), ``"weighted"`` (weighted by each class's support, the
    weight of its positives), ``"micro"`` (every (sample, class) entry pooled into one binary problem;
    multiclass: the one-hot labels against the probabilities) or ``None`` (a NumPy array, one per class).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`sigmax.metrics.nll`.
        average: as above.

    Returns:
        A float in [0, 1] (an array for ``average=None`` with multiclass/multilabel).

    Raises:
        ValueError: when the AUC is undefined — binary labels (after ``ignore_index``) of one class only,
        or, with ``"macro"``, a class without positives or without negatives (``"weighted"``: a class
        with positives but no negatives). scikit-learn warns and returns NaN there; ``average=None``
        gives NaN for such a class, so nothing is silent.

    Example:
        >>> import sigmax.metrics as M
        >>> M.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], "binary", space="probs")
        0.75
        >>> M.roc_auc([0.5, 0.5, 0.9], [0, 1, 1], "binary", space="probs")  # the tie counts one half
        0.75
    """
    average = check_ranking_average(average)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                sample_weight=sample_weight, need_log=False)
    return average_values("roc_auc", d, auc_from_groups, class_column, average)


def average_precision(scores: Any, labels: Any, task: str, *, space: str = "logits",
                      average: str | None = "macro", axis: int = -1, dim: int | None = None,
                      ignore_index: int | None = None, sample_weight: Any = None) -> Any:
    r"""Average precision (area under the precision-recall steps), equal to scikit-learn's
    ``average_precision_score``.

    .. math:: \mathrm{AP} = \sum_n (R_n - R_{n-1})\, P_n

    over the distinct thresholds :math:`t_n` in decreasing order, with :math:`P_n, R_n` the (weighted)
    precision and recall of the decision ``score >= t_n`` — no interpolation; tied scores form one
    threshold. Tasks and ``average`` as in :func:`roc_auc` (multiclass: one-vs-rest). Dask arrays give the
    same value, exactly, bucket by bucket, as for :func:`roc_auc`.

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`sigmax.metrics.nll`.
        average: ``"macro"``, ``"weighted"``, ``"micro"`` or ``None``.

    Returns:
        A float in [0, 1] (an array for ``average=None`` with multiclass/multilabel).

    Raises:
        ValueError: AP is undefined without positives: binary labels without a positive, or with
        ``"macro"`` a class without positives (scikit-learn warns and counts it as 0). ``"weighted"``
        gives such a class weight 0 (as scikit-learn); ``average=None`` gives it NaN.

    Example:
        >>> import sigmax.metrics as M
        >>> round(M.average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], "binary", space="probs"), 4)
        0.8333
    """
    average = check_ranking_average(average)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                sample_weight=sample_weight, need_log=False)
    return average_values("average_precision", d, ap_from_groups, class_column, average)


def confusion_matrix(scores: Any, labels: Any, task: str, *, space: str = "logits", threshold: Any = None,
                     normalize: str | None = None, axis: int = -1, dim: int | None = None,
                     ignore_index: int | None = None, sample_weight: Any = None) -> np.ndarray:
    r"""The confusion matrix of the decisions, laid out as scikit-learn's.

    .. math:: M_{jk} = \sum_i w_i\,[y_i = j]\,[\hat y_i = k]

    rows the true class, columns the decision (argmax for multiclass; ``p > threshold`` for binary and
    multilabel, the rule of :func:`sigmax.interpret.interpret`). On Dask arrays the counts are added
    block by block where the blocks live (the same matrix).

    * multiclass: ``(C, C)``, every class ``0..C-1`` (``confusion_matrix(y, pred, labels=range(C))``);
    * binary: ``(2, 2)``, ``[[TN, FP], [FN, TP]]``;
    * multilabel: ``(C, 2, 2)``, one binary matrix per class (``multilabel_confusion_matrix``); entries
      masked by ``ignore_index`` are not counted.

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`sigmax.metrics.nll`.
        threshold: binary/multilabel decision threshold on probabilities (a number or one per class;
            ``None``: 0.5; not for multiclass).
        normalize: ``None`` (counts), ``"true"`` (each row sums to 1), ``"pred"`` (each column sums to
            1) or ``"all"`` (the matrix sums to 1), as scikit-learn; a row or column without samples is 0.

    Returns:
        An int64 array of counts, or float64 with ``sample_weight`` or ``normalize``.

    Example:
        >>> import sigmax.metrics as M
        >>> M.confusion_matrix([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]], [0, 1, 1], "multiclass").tolist()
        [[1, 0], [1, 1]]
        >>> M.confusion_matrix([0.9, 0.2, 0.7], [1, 0, 0], "binary", space="probs", normalize="true").tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    normalize_confusion(np.zeros((2, 2)), normalize)  # a bad normalize is refused before the data are read
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                sample_weight=sample_weight, need_log=False)
    return normalize_confusion(confusion_of(d, threshold), normalize)


def confusion_of(d, threshold: Any) -> np.ndarray:
    """The (weighted) counts of :func:`confusion_matrix` of one :class:`~sigmax._metrics_terms.MetricData`
    (additive over row blocks: Dask arrays add them block by block)."""
    pred = decisions(d, threshold)
    if d.task == "multiclass":
        return confusion_counts(d.y, pred, d.w, d.n_classes)
    if d.task == "binary":
        return confusion_counts(d.y, pred, d.w, 2)
    k, w = d.p.shape[1], d.w
    return np.stack([confusion_counts(d.y[:, c], pred[:, c], None if w is None else w[:, c], 2)
                     for c in range(k)]) if k else np.zeros((0, 2, 2), dtype=np.int64)
