r"""Evaluation metrics: NLL, Brier, accuracy, precision / recall / F1, calibration error, reliability data,
ranking metrics (:func:`roc_auc`, :func:`average_precision`), :func:`confusion_matrix`, the smooth ECE
(:func:`smooth_calibration_error`) and bootstrap intervals for any of them (:func:`bootstrap_ci`,
:func:`paired_bootstrap`).

:func:`summary` and :class:`MetricAccumulator` keep to the metrics that stream exactly (sums over
chunks); ROC AUC and average precision need every score sorted at once, so they are not in the summary.

Every metric takes the scores in a *declared* space (``space="logits" | "probs" | "log_probs"``) and a
declared ``task``; nothing is guessed from value ranges. Scores and labels are validated once, by
the canonical-input layer (:func:`sigmax._inputs.canonical`, the same rules as ``check``, the report
and the calibrators), and probabilities come from :func:`sigmax.interpret.to_probs` and
:func:`sigmax.interpret.to_log_probs` (one implementation of each primitive).

Metrics are evaluation code, not training code: they accept NumPy arrays, PyTorch tensors (any
device, with or without ``requires_grad``), JAX arrays and lists, compute in float64 NumPy, and return
Python floats (or NumPy arrays for per-bin / per-class data). Every metric also takes **Dask arrays**
chunked along rows and gives the in-memory result to float rounding without bringing the scores
together: per-block sums added in a tree (:mod:`sigmax._dask_metrics`), equal-mass bins by exact
distributed selection, ROC AUC and average precision bucket by bucket at exact order statistics
(:mod:`sigmax._dask_metrics_ranking`), the smooth ECE from per-block grids (:mod:`sigmax._dask_metrics_smooth`).

==========  ============================  ========================================================
task        scores                        labels
==========  ============================  ========================================================
binary      any shape, one logit each     same shape, 0/1 (ints, bools or floats exactly 0/1)
multiclass  class axis ``axis`` (``C``)    class indices ``0..C-1``, the scores' shape without ``axis``
multilabel  class axis ``axis`` (``C``)    multi-hot 0/1, the scores' shape
==========  ============================  ========================================================

Every metric takes ``ignore_index`` (default ``None``: nothing ignored) and ``sample_weight``:

* ``ignore_index=v``: binary and multiclass rows whose label is ``v`` are left out; multilabel entries
  equal to ``v`` are masked out (the rest of their row counts), as in PyTorch's losses and
  torchmetrics' ``ignore_index``. ``-100`` is PyTorch's convention.
* ``sample_weight``: one non-negative weight per sample (per row; a multilabel row's weight applies to
  each of its entries). Means become weighted means and counts become sums of weights, as in
  scikit-learn's ``sample_weight``; a sample of weight 0 counts for nothing.

NaN scores are an error (a metric over them cannot be right): drop those rows, or mark their labels
with ``ignore_index`` (NaN in ignored rows and masked entries is allowed).

Binary and multi-label decisions are ``p > threshold`` (the rule of :func:`sigmax.interpret.interpret`, for
which :func:`sigmax.calibration.tune_thresholds` picks thresholds); multi-class decisions are the argmax
(the first maximum on ties). ``top_k`` larger than the number of classes is an error, here as in
``interpret``.

Calibration error follows Guo et al. (2017), "On Calibration of Modern Neural Networks": confidences are
cut into ``n_bins`` equal-width bins :math:`B_b = (b/n, (b+1)/n]` (a confidence of exactly 0 joins the
first bin) and

.. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|,
          \quad \mathrm{MCE} = \max_{b: |B_b| \ge n_\min} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|,
          \quad \mathrm{RMSCE} = \Big(\sum_b \frac{|B_b|}{N} (\mathrm{acc}(B_b) - \mathrm{conf}(B_b))^2\Big)^{1/2}

The MCE takes only bins holding at least :math:`n_\min` = ``min_bin_count`` samples (default
:data:`DEFAULT_MIN_BIN_COUNT` = 10; ``min_bin_count=1`` is the textbook MCE over every non-empty bin,
torchmetrics' ``norm="max"``): the gap of a one-sample bin is noise, not miscalibration. It is NaN when
no bin holds that many samples.

Example:
    >>> import numpy as np
    >>> from sigmax import metrics
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [1.2, 1.0, -0.5], [-1.0, 0.0, 2.5]])
    >>> labels = np.array([0, 1, 1, 2])
    >>> round(metrics.nll(logits, labels, "multiclass"), 4), metrics.accuracy(logits, labels, "multiclass")
    (0.4196, 0.75)
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import numpy as np

from ._array import resolve_axis
from ._binning import (
    DEFAULT_MIN_BIN_COUNT,
    Reliability,
    bin_sums,
    check_bins,
    check_min_bin_count,
    check_mode,
    check_norm,
    debiased_error,
    errors_from_sums,
    from_sums,
)
from ._dask import is_dask
from ._dask_metrics import (accumulate as dask_accumulate, accuracy as dask_accuracy, brier as dask_brier,
                            calibration_error as dask_calibration_error,
                            confusion_matrix as dask_confusion_matrix, nll as dask_nll,
                            precision_recall_f1 as dask_precision_recall_f1, reliability as dask_reliability,
                            with_dask)
from ._dask_metrics_ranking import ranking as dask_ranking
from ._dask_metrics_smooth import smooth_calibration_error as dask_smooth_calibration_error
from ._inputs import Canonical, spell, validate_space, validate_task, validate_top_k
from ._metrics_bootstrap import Interval, PairedInterval, bootstrap_ci, paired_bootstrap, register
from ._metrics_ranking import (average_precision as _average_precision, confusion_matrix as _confusion_matrix,
                               roc_auc as _roc_auc)
from ._metrics_smooth import smooth_calibration_error as _smooth_calibration_error
from ._metrics_terms import (
    check_average,
    MetricData,
    add_sums,
    brier_terms,
    class_column,
    classwise,
    confusion,
    decisions,
    from_canonical,
    mean_over_classes,
    n_columns,
    nll_terms,
    prepare,
    prf_from_counts,
    reliability_data,
    top_label,
    topk_correct,
    weighted_mean,
    weighted_sum,
)

__all__ = [
    "DEFAULT_MIN_BIN_COUNT",
    "Interval",
    "MetricAccumulator",
    "MetricData",
    "PairedInterval",
    "Reliability",
    "accuracy",
    "average_precision",
    "bootstrap_ci",
    "brier",
    "calibration_error",
    "confusion_matrix",
    "nll",
    "paired_bootstrap",
    "precision_recall_f1",
    "prepare_canonical",
    "reliability",
    "roc_auc",
    "smooth_calibration_error",
    "summary",
]

_AVERAGES = ("micro", "macro", "weighted", None)


def _on_dask(*arrays: Any) -> bool:
    """Whether any input is a Dask array: the metric then reduces per-chunk sums where the chunks live."""
    return any(is_dask(a) for a in arrays)


# Dask arrays: exact on the workers too (ranking bucket by bucket, sigmax._dask_metrics_ranking; the smooth ECE from
# grids per block, sigmax._dask_metrics_smooth; confusion counts added block by block)
roc_auc = with_dask(_roc_auc, functools.partial(dask_ranking, "roc_auc"))
average_precision = with_dask(_average_precision, functools.partial(dask_ranking, "average_precision"))
smooth_calibration_error = with_dask(_smooth_calibration_error, dask_smooth_calibration_error)
confusion_matrix = with_dask(_confusion_matrix,
                             lambda axis, dim, **kw: dask_confusion_matrix(axis=resolve_axis(axis, dim), **kw))


# --------------------------------------------------------------------------------------------
# proper scores and accuracy
# --------------------------------------------------------------------------------------------


def nll(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
        dim: int | None = None, ignore_index: int | None = None, sample_weight: Any = None) -> float:
    r"""The mean negative log-likelihood of the labels (cross-entropy, log loss).

    .. math::
        \text{multiclass: } -\frac1{\sum_i w_i} \sum_i w_i \log p_{i, y_i}, \qquad
        \text{binary / multilabel: } -\frac1{\sum_j w_j} \sum_{j} w_j \big[y_j \log p_j + (1 - y_j) \log(1 - p_j)\big]

    where the binary/multi-label mean runs over all (sample, class) entries, like
    ``binary_cross_entropy_with_logits(reduction="mean")``, and :math:`w = 1` without ``sample_weight``
    (scikit-learn's ``log_loss(..., sample_weight=w)``).

    Args:
        scores: scores in the declared ``space``; see the module table for shapes.
        labels: class indices (multiclass) or 0/1 labels (binary, multilabel).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        space: what ``scores`` are: ``"logits"``, ``"probs"`` or ``"log_probs"``.
        axis: the class axis (``dim=`` is an alias).
        ignore_index: a label value to leave out (rows; multilabel entries); ``None``: none.
        sample_weight: one non-negative weight per sample; ``None``: all 1.

    Returns:
        A float >= 0.

    Note:
        Computed from log-probabilities (``log_softmax`` / ``log_sigmoid``), so a confident mistake
        costs its true, finite log-loss. A probability of exactly 0 on the true label (``space="probs"``)
        gives ``inf``.

    Example:
        >>> import sigmax.metrics as M
        >>> round(M.nll([[1000.0, 0.0], [0.0, 1000.0]], [0, 0], "multiclass"), 1)
        500.0
        >>> round(M.nll([0.9, 0.2], [1, 0], "binary", space="probs"), 6)
        0.164252
        >>> round(M.nll([0.9, 0.2, 0.5], [1, 0, -100], "binary", space="probs", ignore_index=-100), 6)
        0.164252
    """
    if _on_dask(scores, labels, sample_weight):  # per-chunk sums on the workers (sigmax._dask_metrics)
        return dask_nll(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                ignore_index=ignore_index, sample_weight=sample_weight)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight)
    return weighted_mean(nll_terms(d), d.w)


def brier(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
          dim: int | None = None, ignore_index: int | None = None, sample_weight: Any = None) -> float:
    r"""The Brier score: mean squared error between probabilities and one-hot (or 0/1) labels.

    .. math::
        \text{multiclass: } \frac1N \sum_i \sum_c (p_{ic} - [y_i = c])^2 \in [0, 2], \qquad
        \text{binary / multilabel: } \frac1M \sum_j (p_j - y_j)^2 \in [0, 1]

    The multi-class form is Brier's original (1950) sum over classes; binary and multi-label average
    over all (sample, class) entries. With ``sample_weight`` the means are weighted (scikit-learn's
    ``brier_score_loss``).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll`.

    Returns:
        A float.

    Example:
        >>> import sigmax.metrics as M
        >>> round(M.brier([[0.7, 0.2, 0.1]], [0], "multiclass", space="probs"), 4)
        0.14
        >>> round(M.brier([0.9, 0.2], [1, 0], "binary", space="probs"), 4)
        0.025
    """
    if _on_dask(scores, labels, sample_weight):
        return dask_brier(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                  ignore_index=ignore_index, sample_weight=sample_weight)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight, need_log=False)
    return weighted_mean(brier_terms(d), d.w)


def _check_top_k(top_k: Any, d: MetricData) -> int:
    if d.task == "multiclass":
        return validate_top_k(top_k, d.n_classes)  # the one rule, shared with interpret
    if isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k == 1:
        return 1
    raise ValueError(f"{spell('top_k', top_k)} applies to {spell('task', 'multiclass')} only; binary and "
                     "multilabel accuracy compare thresholded decisions")


def accuracy(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1, top_k: int = 1,
             threshold: Any = None, dim: int | None = None, ignore_index: int | None = None,
             sample_weight: Any = None) -> float:
    r"""The fraction of correct decisions (top-k for multi-class).

    .. math::
        \text{multiclass: } \frac1N \sum_i [\,y_i \in \operatorname{top}_k(p_i)\,], \qquad
        \text{binary / multilabel: } \frac1M \sum_j [\,[p_j > t] = y_j\,]

    Multi-label accuracy is per (sample, class) entry (one minus the Hamming loss), not exact match.
    With ``sample_weight`` it is the weighted fraction (scikit-learn's ``accuracy_score``).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll`.
        top_k: count a multi-class sample as correct when its label is among the ``top_k`` most
            probable classes (ties rank the lower class index first, so ``top_k=1`` is the argmax).
            More than the number of classes is a ``ValueError`` (as in ``interpret``).
        threshold: decision threshold on probabilities for binary/multilabel; a number or one per class
            (``None``: 0.5). Not for multiclass.

    Returns:
        A float in [0, 1].

    Example:
        >>> import sigmax.metrics as M
        >>> M.accuracy([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]], [2, 0], "multiclass", space="probs")
        0.5
        >>> M.accuracy([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]], [2, 0], "multiclass", space="probs", top_k=2)
        1.0
    """
    if _on_dask(scores, labels, sample_weight):
        return dask_accuracy(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                     ignore_index=ignore_index, sample_weight=sample_weight, top_k=top_k,
                                     threshold=threshold, check_top_k=_check_top_k)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight, need_log=False)
    k = _check_top_k(top_k, d)
    if d.task == "multiclass":
        return weighted_mean(topk_correct(d, k).astype(np.float64), d.w)
    return weighted_mean((decisions(d, threshold) == d.y).astype(np.float64), d.w)


# --------------------------------------------------------------------------------------------
# precision / recall / F1
# --------------------------------------------------------------------------------------------


def _check_average(average: Any) -> Any:
    return check_average(average, _AVERAGES)


def precision_recall_f1(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
                        threshold: Any = None, average: str | None = "micro", dim: int | None = None,
                        ignore_index: int | None = None, sample_weight: Any = None) -> dict[str, Any]:
    r"""Precision, recall and F1 of the decisions, micro-, macro- or support-weighted-averaged over classes.

    .. math::
        P = \frac{TP}{TP + FP}, \quad R = \frac{TP}{TP + FN}, \quad F_1 = \frac{2\,TP}{2\,TP + FP + FN}

    * binary: of the positive class (``average`` makes no difference);
    * multilabel: decisions ``p > threshold`` per class; ``"micro"`` pools the counts of all classes,
      ``"macro"`` averages the per-class values;
    * multiclass: decisions are the argmax; ``"micro"`` equals accuracy, ``"macro"`` averages over classes;
    * ``"weighted"`` (multiclass, multilabel): the per-class values weighted by each class's support
      :math:`TP_c + FN_c` (the weight of its true samples), scikit-learn's ``average="weighted"``; a
      class without true samples weighs 0, and with no support at all the result is 0.

    With ``sample_weight`` the counts are sums of weights (scikit-learn's ``precision_recall_fscore_support``).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll`.
        threshold: binary/multilabel decision threshold on probabilities, a number or one per class
            (e.g. ``Calibrator.thresholds``; ``None``: 0.5; not for multiclass).
        average: ``"micro"``, ``"macro"``, ``"weighted"``, or ``None`` for per-class NumPy arrays.

    Returns:
        ``{"precision": ..., "recall": ..., "f1": ...}``.

    Note:
        An undefined ratio (0/0: nothing predicted, or no positives) counts as 0, like scikit-learn's
        ``zero_division=0``. The macro mean leaves out classes that are neither present nor predicted
        (like torchmetrics).

    Example:
        >>> import sigmax.metrics as M
        >>> probs = [[0.9, 0.2], [0.6, 0.7], [0.1, 0.6]]
        >>> labels = [[1, 0], [0, 1], [0, 1]]
        >>> r = M.precision_recall_f1(probs, labels, "multilabel", space="probs")
        >>> {k: round(v, 4) for k, v in r.items()}
        {'precision': 0.75, 'recall': 1.0, 'f1': 0.8571}
        >>> round(M.precision_recall_f1(probs, labels, "multilabel", space="probs", average="macro")["f1"], 4)
        0.8333
    """
    average = _check_average(average)
    if _on_dask(scores, labels, sample_weight):
        return dask_precision_recall_f1(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                                ignore_index=ignore_index, sample_weight=sample_weight,
                                                threshold=threshold, average=average)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight, need_log=False)
    tp, fp, fn = confusion(d, threshold)
    if d.task == "binary" and average is not None:
        average = "micro"
    return prf_from_counts(tp, fp, fn, average)


# --------------------------------------------------------------------------------------------
# calibration error and reliability data (the binning itself: sigmax._binning)
# --------------------------------------------------------------------------------------------


def reliability(scores: Any, labels: Any, task: str, *, space: str = "logits", n_bins: int = 15,
                binning: str = "equal_width", mode: str = "top_label", class_index: int | None = None,
                axis: int = -1, dim: int | None = None, ignore_index: int | None = None, sample_weight: Any = None,
                min_bin_count: int = DEFAULT_MIN_BIN_COUNT) -> Reliability:
    r"""Reliability-diagram data: bin the confidences, compare mean confidence with observed accuracy.

    .. math:: \mathrm{conf}(B_b) = \frac{1}{|B_b|} \sum_{i \in B_b} \hat p_i, \qquad
              \mathrm{acc}(B_b) = \frac{1}{|B_b|} \sum_{i \in B_b} o_i

    ``mode="top_label"``: :math:`\hat p_i` is the probability of the predicted label and :math:`o_i`
    whether it is right (multiclass: the argmax; binary/multilabel: the decision ``p > 0.5``, confidence
    ``max(p, 1 - p)``, every (sample, class) entry pooled). ``mode="classwise"``: :math:`\hat p` is a class's
    probability and :math:`o` its 0/1 outcome — class ``class_index`` only, or all classes pooled when
    it is ``None`` (binary: the positive class, as torchmetrics' ``binary_calibration_error``).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll` (with
            weights, the per-bin means are weighted and ``Reliability.weight`` holds each bin's weight).
        n_bins: number of bins.
        binning: ``"equal_width"`` (bins ``(b/n, (b+1)/n]``; 0 joins the first) or ``"equal_mass"``
            (sorted confidences split into bins of equal size, differing by at most one; tied
            confidences may straddle a bin edge).
        mode: ``"top_label"`` or ``"classwise"``.
        class_index: with ``mode="classwise"``, the class to diagram (multiclass and multilabel).
        min_bin_count: the smallest bin the MCE (``Reliability.mce``) takes (default
            :data:`DEFAULT_MIN_BIN_COUNT`); kept on the result as ``Reliability.min_bin_count``.

    Returns:
        A :class:`Reliability` (NumPy arrays ``bin_edges``, ``confidence``, ``accuracy``, ``count``).

    Example:
        >>> import sigmax.metrics as M
        >>> r = M.reliability([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], [0, 0, 0], "multiclass", n_bins=4)
        >>> r.count.tolist(), r.min_bin_count
        ([0, 0, 1, 2], 10)
    """
    n_bins, binning = check_bins(n_bins, binning)
    mode = check_mode(mode)
    min_bin_count = check_min_bin_count(min_bin_count)
    if _on_dask(scores, labels, sample_weight):
        return dask_reliability(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                        ignore_index=ignore_index, sample_weight=sample_weight, n_bins=n_bins,
                                        binning=binning, mode=mode, class_index=class_index,
                                        min_bin_count=min_bin_count)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight, need_log=False)
    return reliability_data(d, n_bins, binning, mode, class_index, min_bin_count)


def _debiased(d: MetricData, n_bins: int, binning: str, mode: str) -> float:
    if mode == "top_label":
        conf, out, w = top_label(d)
        return debiased_error(conf, out, n_bins, binning, w)
    return float(np.mean([debiased_error(*class_column(d, c)[:2], n_bins, binning, class_column(d, c)[2])
                          for c in range(n_columns(d))]))


def _calibration_error(d: MetricData, n_bins: int, binning: str, norm: str, mode: str, min_bin_count: int,
                       debias: bool = False) -> float:
    if debias:
        return _debiased(d, n_bins, binning, mode)
    if mode == "top_label":
        return reliability_data(d, n_bins, binning, mode, None, min_bin_count).error(norm)
    if binning == "equal_width":
        _, count, wsum, sconf, sacc = classwise(d, n_bins)
        return mean_over_classes(errors_from_sums(count, wsum, sconf, sacc, norm, min_bin_count), norm)
    errs = []
    for c in range(n_columns(d)):
        conf, out, w = class_column(d, c)
        errs.append(from_sums(*bin_sums(conf, out, n_bins, binning, w), min_bin_count).error(norm))
    return mean_over_classes(np.array(errs), norm)


def calibration_error(scores: Any, labels: Any, task: str, *, space: str = "logits", n_bins: int = 15,
                      binning: str = "equal_width", norm: str = "l1", mode: str = "top_label",
                      axis: int = -1, dim: int | None = None, ignore_index: int | None = None,
                      sample_weight: Any = None, min_bin_count: int = DEFAULT_MIN_BIN_COUNT,
                      debias: bool = False) -> float:
    r"""Calibration error: ECE (``norm="l1"``), MCE (``"max"``) or RMS calibration error (``"l2"``).

    .. math::
        \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|

    With the defaults (15 equal-width bins ``(lo, hi]``, top-label confidence) this is exactly the ECE of
    Guo et al. (2017). ``mode="classwise"`` is the mean over classes of each class's error (Kull et al.
    2019, "classwise-ECE"); for binary it is the error of the positive-class probability (torchmetrics'
    ``binary_calibration_error``). See :func:`reliability` for the confidences and bins.

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll`.
        n_bins, binning, mode: as in :func:`reliability`.
        norm: ``"l1"`` (ECE), ``"max"`` (MCE) or ``"l2"`` (RMS).
        min_bin_count: ``norm="max"`` takes the bins holding at least this many samples (default
            :data:`DEFAULT_MIN_BIN_COUNT` = 10; ``1``: every non-empty bin, as torchmetrics). The other
            norms weigh bins by their size and take every bin.
        debias: ``norm="l2"`` only: the debiased estimator of Kumar, Liang and Ma (2019, "Verified
            Uncertainty Calibration"), which subtracts from each bin's squared gap the part expected
            from sampling noise alone,

            .. math:: \widehat{\mathrm{CE}^2} = \sum_b \frac{W_b}{W} \Big[(\mathrm{acc}_b -
                      \mathrm{conf}_b)^2 - \frac{\mathrm{acc}_b (1 - \mathrm{acc}_b)}{n_b - 1}\Big],
                      \qquad \text{result} = \sqrt{\max(0, \widehat{\mathrm{CE}^2})}

            (:math:`n_b` the bin's size; with ``sample_weight`` Kish's effective size
            :math:`W_b^2 / \sum_{i \in B_b} w_i^2`; a bin of fewer than 2 samples contributes 0, as in
            the authors' code). The squared estimate is unbiased for the binned squared error, so a
            perfectly calibrated model scores about 0 instead of a positive noise floor; ``classwise``
            averages the per-class values. ``debias=True`` with ``"l1"`` or ``"max"`` is a
            ``ValueError``: the absolute value has no such closed-form correction (the authors' l1
            version resamples from a normal approximation; use ``"l2"`` or
            :func:`smooth_calibration_error`).

    Returns:
        A float in [0, 1]; the MCE is NaN when no bin holds ``min_bin_count`` samples.

    Note:
        Binning estimates are biased upwards on small samples (an empty bin contributes nothing, a bin
        with one sample contributes its whole gap); compare models on the same data and binning.

    Example:
        >>> import sigmax.metrics as M
        >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> round(M.calibration_error(probs, [0, 1, 1, 1], "multiclass", space="probs"), 4)
        0.5
        >>> round(M.calibration_error(probs, [0, 1, 1, 1], "multiclass", space="probs", norm="max",
        ...                           min_bin_count=1), 4)
        0.8
    """
    n_bins, binning = check_bins(n_bins, binning)
    norm, mode = check_norm(norm), check_mode(mode)
    min_bin_count = check_min_bin_count(min_bin_count)
    if debias not in (True, False):
        raise ValueError(f"debias must be True or False, got {debias!r}")
    if debias and norm != "l2":
        raise ValueError(f"debias=True applies to norm='l2' (the squared error of Kumar, Liang and Ma 2019), not "
                         f"norm={norm!r}; use norm='l2', or smooth_calibration_error for a consistent l1-type error")
    if _on_dask(scores, labels, sample_weight):
        return dask_calibration_error(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                              ignore_index=ignore_index, sample_weight=sample_weight, n_bins=n_bins,
                                              binning=binning, norm=norm, mode=mode, min_bin_count=min_bin_count,
                                              debias=bool(debias))
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                 sample_weight=sample_weight, need_log=False)
    return _calibration_error(d, n_bins, binning, norm, mode, min_bin_count, bool(debias))


# --------------------------------------------------------------------------------------------
# summary and streaming
# --------------------------------------------------------------------------------------------


def prepare_canonical(c: Canonical, *, space: str = "logits") -> MetricData:
    """Probabilities, log-probabilities and term weights of a validated chunk, computed once.

    ``c`` comes from :func:`sigmax._inputs.canonical` (the one validator; ``ignore_index`` and
    ``sample_weight`` already applied); ``space`` says what its scores are. The result feeds
    :meth:`MetricAccumulator.update_prepared` (as many accumulators as needed) and, through its ``p``
    (probabilities, float64, classes last), anything else that needs the chunk's probabilities, so a
    chunk is validated once and turned into probabilities once.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> from sigmax._inputs import canonical
        >>> c = canonical(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 1]), "multiclass")
        >>> d = M.prepare_canonical(c, space="logits")
        >>> d.p.shape, M.MetricAccumulator("multiclass").update_prepared(d).compute()["accuracy"]
        ((2, 2), 1.0)
    """
    if not isinstance(c, Canonical):
        raise TypeError(f"prepare_canonical takes a Canonical record (sigmax._inputs.canonical), got {type(c).__name__}")
    return from_canonical(c, space)


class MetricAccumulator:
    r"""Streaming metrics: feed chunks with :meth:`update`, read the :func:`summary` dict with :meth:`compute`.

    .. math:: \mathrm{metric}(X_1 \cup \dots \cup X_k) = F\Big(\sum_j S(X_j)\Big)

    where :math:`S` are additive sufficient statistics and :math:`F` finishes them.

    Every metric in :func:`summary` is a function of per-chunk sums (log-losses, squared errors,
    correct counts, confusion counts, equal-width bin sums — weighted by ``sample_weight``), so the
    result of any split into chunks equals :func:`summary` on all the data at once, with memory
    bounded by one chunk. A chunk whose labels are all ``ignore_index`` adds nothing.

    Args:
        task, space, axis, threshold, ignore_index: as in :func:`summary`.
        n_bins: equal-width bins for ECE/MCE (equal-mass bins need all data at once).
        min_bin_count: the smallest bin the ``"mce"`` takes (:data:`DEFAULT_MIN_BIN_COUNT`).

    Attributes:
        n: rows (samples) kept so far; n_ignored: rows (multilabel: entries) left out by ``ignore_index``.
        rows_seen: rows given to :meth:`update` so far; an error names a row by its number in the whole
            stream (the chunks one after another), not within its chunk.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> z = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 0.1]]); y = np.array([0, 1, 1, 0])
        >>> acc = M.MetricAccumulator("multiclass")
        >>> for s in (slice(0, 3), slice(3, 4)):
        ...     _ = acc.update(z[s], y[s])
        >>> acc.compute() == M.summary(z, y, "multiclass")
        True
    """

    def __init__(self, task: str, *, space: str = "logits", axis: int = -1, threshold: Any = None,
                 n_bins: int = 15, ignore_index: int | None = None, min_bin_count: int = DEFAULT_MIN_BIN_COUNT):
        self.task = validate_task(task)
        self.space = validate_space(space)
        self.axis = axis
        self.threshold = threshold
        self.ignore_index = ignore_index
        self.n_bins, _ = check_bins(n_bins, "equal_width")
        self.min_bin_count = check_min_bin_count(min_bin_count)
        self.n = 0
        self.n_ignored = 0
        self.rows_seen = 0
        self._weight = 0.0  # total weight of the nll/brier/accuracy terms
        self._sums: dict[str, float] = {"nll": 0.0, "brier": 0.0, "correct": 0.0, "top5": 0.0}
        self._conf: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # per-class tp, fp, fn
        self._rel: Reliability | None = None
        self._cls = None  # per-class bin sums (count, weight, sconf, sacc)
        self._n_classes: int | None = None

    def update(self, scores: Any, labels: Any, sample_weight: Any = None) -> MetricAccumulator:
        """Add a chunk of scores and labels (and optionally one weight per sample); returns ``self``.

        A Dask array is reduced where its blocks live: one accumulator per block, merged in a tree on the
        workers (:meth:`merge`); only the accumulators' fixed-size sums travel."""
        return self._update(scores, labels, sample_weight, part=True)

    def _update(self, scores: Any, labels: Any, sample_weight: Any, *, part: bool) -> MetricAccumulator:
        """:meth:`update`; ``part=False``: the chunk is the whole input (:func:`summary`), so its errors are the
        in-memory ones, without the note that they count one part."""
        rows = self._rows(scores)
        if _on_dask(scores, labels, sample_weight):
            self.merge(dask_accumulate(lambda first: self._fresh(self.rows_seen + first), MetricAccumulator.merge,
                                       scores, labels, self.task, axis=self.axis, sample_weight=sample_weight))
        else:
            self.update_prepared(prepare(scores, labels, self.task, self.space, self.axis,
                                         ignore_index=self.ignore_index, sample_weight=sample_weight,
                                         allow_empty=True,
                                         row_numbers=np.arange(self.rows_seen, self.rows_seen + rows) if part else None))
        self.rows_seen += rows
        return self

    def _rows(self, scores: Any) -> int:
        """The rows (samples) of a chunk, from its shape alone (the class axis left out)."""
        shape = tuple(np.shape(scores)) if not _on_dask(scores) else tuple(scores.shape)
        size = int(np.prod(shape)) if shape else 1
        if self.task == "binary" or not shape:
            return size
        try:
            c = shape[self.axis]
        except IndexError:  # the canonical layer says what is wrong with the shape
            return size
        return size // c if c else 0

    def update_canonical(self, c: Canonical) -> MetricAccumulator:
        """Add a chunk already validated by :func:`sigmax._inputs.canonical` (scores in this accumulator's
        ``space``, ``ignore_index`` already applied): nothing is validated again; returns ``self``."""
        return self.update_prepared(prepare_canonical(c, space=self.space))

    def update_prepared(self, d: MetricData) -> MetricAccumulator:
        """Add a chunk prepared by :func:`prepare_canonical` (its probabilities are used as they are, so
        one preparation can feed several accumulators and the report's figures); returns ``self``."""
        if not isinstance(d, MetricData):
            raise TypeError(f"update_prepared takes a MetricData from prepare_canonical, got {type(d).__name__}")
        if d.task != self.task:
            raise ValueError(f"this chunk was prepared for task {d.task!r} but the accumulator is for {self.task!r}")
        if self._n_classes is not None and d.n_classes != self._n_classes:
            raise ValueError(f"this chunk has {d.n_classes} classes but earlier chunks had {self._n_classes}")
        self._n_classes = d.n_classes
        self.n_ignored += d.n_ignored
        if d.n == 0:
            return self
        self.n += d.n
        nll_sum, weight = weighted_sum(nll_terms(d), d.w)
        self._weight += weight
        self._sums["nll"] += nll_sum
        self._sums["brier"] += weighted_sum(brier_terms(d), d.w)[0]
        if d.task == "multiclass":
            self._sums["correct"] += weighted_sum(topk_correct(d, 1).astype(np.float64), d.w)[0]
            self._sums["top5"] += weighted_sum(topk_correct(d, 5).astype(np.float64), d.w)[0]
        else:
            self._sums["correct"] += weighted_sum((decisions(d, self.threshold) == d.y).astype(np.float64), d.w)[0]
        counts = confusion(d, self.threshold)
        self._conf = counts if self._conf is None else tuple(a + b for a, b in zip(self._conf, counts))
        rel = reliability_data(d, self.n_bins, "equal_width", "top_label", None, self.min_bin_count)
        self._rel = rel if self._rel is None else self._rel + rel
        self._cls = add_sums(self._cls, classwise(d, self.n_bins)[1:])
        return self

    def _fresh(self, first: int = 0) -> MetricAccumulator:
        """An empty accumulator with these settings (class axis last: a block of :func:`sigmax._dask.row_layout`)
        whose rows are numbered from ``first``."""
        acc = MetricAccumulator(self.task, space=self.space, axis=-1, threshold=self.threshold, n_bins=self.n_bins,
                                ignore_index=self.ignore_index, min_bin_count=self.min_bin_count)
        acc.rows_seen = first
        return acc

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        """Add the sums of ``other`` (same task, space, threshold and bins; e.g. from another chunk or worker)
        to this accumulator; returns ``self`` (``rows_seen`` stays this accumulator's own count)."""
        if not isinstance(other, MetricAccumulator):
            raise TypeError(f"merge takes a MetricAccumulator, got {type(other).__name__}")
        if (other.task, other.space, other.n_bins, other.min_bin_count) != \
                (self.task, self.space, self.n_bins, self.min_bin_count):
            raise ValueError("can only merge accumulators with the same task, space, n_bins and min_bin_count")
        if other._n_classes is not None:
            if self._n_classes is not None and other._n_classes != self._n_classes:
                raise ValueError(f"this accumulator has {self._n_classes} classes but the other {other._n_classes}")
            self._n_classes = other._n_classes
        self.n += other.n
        self.n_ignored += other.n_ignored
        self._weight += other._weight
        for k, v in other._sums.items():
            self._sums[k] += v
        if other._conf is not None:
            self._conf = other._conf if self._conf is None else tuple(a + b for a, b in zip(self._conf, other._conf))
        if other._rel is not None:
            self._rel = other._rel if self._rel is None else self._rel + other._rel
        if other._cls is not None:
            self._cls = add_sums(self._cls, other._cls)
        return self

    @property
    def reliability(self) -> Reliability:
        """The top-label reliability data of everything seen so far."""
        if self._rel is None:
            raise ValueError("no data yet: call update() first")
        return self._rel

    def compute(self) -> dict[str, float]:
        """The :func:`summary` dict of everything seen so far."""
        if self.n == 0:
            why = (f" (all {self.n_ignored} labels seen equal ignore_index={self.ignore_index!r})"
                   if self.n_ignored else "")
            raise ValueError(f"no data yet: call update() first{why}")
        if not self._weight > 0:
            raise ValueError("sample_weight sums to 0 over the samples kept; give some sample a positive weight")
        out = {
            "nll": self._sums["nll"] / self._weight,
            "brier": self._sums["brier"] / self._weight,
            "accuracy": self._sums["correct"] / self._weight,
        }
        if self.task == "multiclass" and self._n_classes > 5:
            out["top5_accuracy"] = self._sums["top5"] / self._weight
        out["ece"] = self._rel.error("l1")
        out["mce"] = self._rel.error("max")
        out["rmsce"] = self._rel.error("l2")
        out["classwise_ece"] = float(np.mean(errors_from_sums(*self._cls, "l1")))
        tp, fp, fn = self._conf
        if self.task == "multiclass":
            out["f1_macro"] = prf_from_counts(tp, fp, fn, "macro")["f1"]
        else:
            out["f1_micro"] = prf_from_counts(tp, fp, fn, "micro")["f1"]
            out["f1_macro"] = prf_from_counts(tp, fp, fn, "macro")["f1"] if self.task == "multilabel" \
                else out["f1_micro"]
            out["precision_micro"] = prf_from_counts(tp, fp, fn, "micro")["precision"]
            out["recall_micro"] = prf_from_counts(tp, fp, fn, "micro")["recall"]
        return {k: float(v) for k, v in out.items()}


def summary(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
            threshold: Any = None, n_bins: int = 15, dim: int | None = None, ignore_index: int | None = None,
            sample_weight: Any = None, min_bin_count: int = DEFAULT_MIN_BIN_COUNT) -> dict[str, float]:
    r"""The standard metrics in one dict of floats, for tables and reports.

    Keys, every task: ``"nll"``, ``"brier"``, ``"accuracy"``, ``"ece"``, ``"mce"``, ``"rmsce"`` (top-label,
    ``n_bins`` equal-width bins; the MCE over bins of at least ``min_bin_count`` samples, NaN if there
    is none) and ``"classwise_ece"``. Multiclass adds ``"f1_macro"`` and, when there are more than 5
    classes, ``"top5_accuracy"``; binary and multilabel add ``"f1_micro"``, ``"f1_macro"``,
    ``"precision_micro"`` and ``"recall_micro"`` (decisions ``p > threshold``).

    .. math:: \mathrm{NLL} = -\frac1N \sum_i \log p_{i,y_i}, \quad
              \mathrm{ECE} = \sum_b \frac{|B_b|}{N} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|, \quad \dots

    (each as in :func:`nll`, :func:`brier`, :func:`accuracy`, :func:`precision_recall_f1`,
    :func:`calibration_error`).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`nll`.
        threshold: binary/multilabel decision threshold(s) on probabilities (e.g.
            ``Calibrator.thresholds``; ``None``: 0.5; must be ``None`` for multiclass).
        n_bins: equal-width bins for the calibration errors.
        min_bin_count: the smallest bin the ``"mce"`` takes (:data:`DEFAULT_MIN_BIN_COUNT`).

    Returns:
        ``dict[str, float]``; each value equals the single-metric function's.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> s = M.summary(np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), np.array([0, 1, 1]), "multiclass")
        >>> sorted(s)
        ['accuracy', 'brier', 'classwise_ece', 'ece', 'f1_macro', 'mce', 'nll', 'rmsce']
        >>> round(s["accuracy"], 4), round(s["nll"], 4)
        (0.6667, 0.4714)
    """
    acc = MetricAccumulator(task, space=space, axis=resolve_axis(axis, dim), threshold=threshold, n_bins=n_bins,
                            ignore_index=ignore_index, min_bin_count=min_bin_count)
    return acc._update(scores, labels, sample_weight, part=False).compute()


# which direction is better, and the fast bootstrap path of each metric (sigmax._metrics_bootstrap)
register(nll, "nll", False, "nll")
register(brier, "brier", False, "brier")
register(accuracy, "accuracy", True, "accuracy")
register(calibration_error, "calibration_error", False, "calibration_error")
register(smooth_calibration_error, "smooth_calibration_error", False)
register(precision_recall_f1, "precision_recall_f1", True)
register(roc_auc, "roc_auc", True, "roc_auc")
register(average_precision, "average_precision", True, "average_precision")
