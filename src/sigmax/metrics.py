r"""Evaluation metrics: NLL, Brier, accuracy, precision / recall / F1, calibration error, reliability data.

Every metric takes the scores in a *declared* space (``space="logits" | "probs" | "log_probs"``) and a
declared ``task`` (DESIGN.md, principle 1); probabilities come from :func:`sigmax.interpret.to_probs`
and :func:`sigmax.interpret.to_log_probs` (one implementation of each primitive, principle 2).

Metrics are evaluation code, not training code: they accept NumPy arrays, PyTorch tensors (any
device, with or without ``requires_grad``), JAX arrays and lists, compute in float64 NumPy, and return
Python floats (or NumPy arrays for per-bin / per-class data).

==========  ============================  ========================================================
task        scores                        labels
==========  ============================  ========================================================
binary      any shape, one logit each     same shape, 0/1 (ints, bools or floats exactly 0/1)
multiclass  class axis ``axis`` (``C``)    class indices ``0..C-1``, the scores' shape without ``axis``
multilabel  class axis ``axis`` (``C``)    multi-hot 0/1, the scores' shape
==========  ============================  ========================================================

Binary and multi-label decisions are ``p > threshold`` (the rule of :func:`sigmax.interpret.interpret`, for
which :func:`sigmax.calibration.tune_thresholds` picks thresholds); multi-class decisions are the argmax
(the first maximum on ties).

Calibration error follows Guo et al. (2017), "On Calibration of Modern Neural Networks": confidences are
cut into ``n_bins`` equal-width bins :math:`B_b = (b/n, (b+1)/n]` (a confidence of exactly 0 joins the
first bin) and

.. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|,
          \quad \mathrm{MCE} = \max_{b: |B_b| > 0} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|,
          \quad \mathrm{RMSCE} = \Big(\sum_b \frac{|B_b|}{N} (\mathrm{acc}(B_b) - \mathrm{conf}(B_b))^2\Big)^{1/2}

Example:
    >>> import numpy as np
    >>> from sigmax import metrics
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [1.2, 1.0, -0.5], [-1.0, 0.0, 2.5]])
    >>> labels = np.array([0, 1, 1, 2])
    >>> round(metrics.nll(logits, labels, "multiclass"), 4), metrics.accuracy(logits, labels, "multiclass")
    (0.4196, 0.75)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ._array import normalize_axis, resolve_axis
from .interpret import (
    to_log_probs,
    to_probs,
    validate_log_probs,
    validate_space,
    validate_task,
)

__all__ = [
    "MetricAccumulator",
    "Reliability",
    "accuracy",
    "brier",
    "calibration_error",
    "nll",
    "precision_recall_f1",
    "reliability",
    "summary",
]

_BINNINGS = ("equal_width", "equal_mass")
_NORMS = ("l1", "max", "l2")
_MODES = ("top_label", "classwise")
_AVERAGES = ("micro", "macro", None)
_LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Any array (NumPy, torch on any device, JAX, a list) as a NumPy array, without copying NumPy input."""
    if isinstance(x, str) or x is None:
        raise TypeError(f"{name} must be an array (NumPy, PyTorch, JAX) or a list, got {type(x).__name__}")
    if array_api_compat.is_torch_array(x):
        x = x.detach().cpu()
        if not x.dtype.is_floating_point or x.dtype.itemsize < 4:  # bfloat16/float16/int/bool
            x = x.double() if x.dtype.is_floating_point else x
        return x.numpy()
    try:
        out = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a rectangular array of numbers: {exc}") from exc
    if out.dtype == object:
        raise TypeError(f"{name} must hold numbers, got an array of Python objects (ragged lists?)")
    if out.dtype.kind not in "biuf":
        # JAX bfloat16 arrives as a custom dtype: go through float32
        try:
            out = out.astype(np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be real-valued, got dtype {out.dtype}") from None
    return out


def _scores64(scores: Any) -> np.ndarray:
    s = _to_numpy(scores, "scores")
    if s.dtype.kind not in "biuf":  # pragma: no cover - guarded in _to_numpy
        raise TypeError(f"scores must be real-valued, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if s.size and np.isnan(s).any():
        raise ValueError(
            f"scores contain {int(np.isnan(s).sum())} NaN value(s); metrics are undefined there. "
            "Find where the model produced NaN, or drop those rows (and their labels)"
        )
    return s


def _binary_values(y: np.ndarray, task: str) -> np.ndarray:
    """0/1 labels as int64, or a ValueError naming the offending values."""
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise TypeError(f"labels must be numbers 0/1 for task={task!r}, got dtype {y.dtype}")
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        vals = np.unique(y[bad])[:5].tolist()
        hint = ("these look like class indices: use task='multiclass' with (N, C) scores"
                if task == "binary" and y.dtype.kind in "iu" else
                "give hard 0/1 labels (threshold soft labels first)")
        raise ValueError(f"labels for task={task!r} must be 0 or 1; found {int(bad.sum())} other value(s), "
                         f"e.g. {vals}: {hint}")
    return y.astype(np.int64)


@dataclass(frozen=True)
class _Data:
    """Scores and labels in a canonical layout (float64 NumPy).

    binary: ``p``, ``logp``, ``log1mp`` of shape (M,), ``y`` (M,) in {0, 1}.
    multiclass: ``p``, ``logp`` of shape (M, C), ``y`` (M,) class indices.
    multilabel: ``p``, ``logp``, ``log1mp`` of shape (M, C), ``y`` (M, C) in {0, 1}.
    """

    task: str
    p: np.ndarray
    logp: np.ndarray
    log1mp: np.ndarray | None
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.p.shape[0])

    @property
    def n_classes(self) -> int:
        return 2 if self.task == "binary" else int(self.p.shape[1])


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """``log(1 - exp(a))`` for ``a <= 0``, accurately (Maechler 2012, "Accurately computing log(1 - exp(-|a|))")."""
    with np.errstate(divide="ignore", invalid="ignore"):
        # near 0, 1 - exp(a) cancels: -expm1(a) keeps its digits; far from 0, log1p(-tiny) keeps them
        return np.where(a > -_LN2, np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


def _canonical(scores: Any, labels: Any, task: str, axis: Any = -1) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 scores and labels in the canonical layout: binary ``(M,)``, ``(M,)``;
    multiclass ``(M, C)``, ``(M,)``; multilabel ``(M, C)``, ``(M, C)`` (class axis moved last)."""
    s = _scores64(scores)
    y = _to_numpy(labels, "labels")
    if s.ndim == 0:
        raise ValueError("scores must have at least one sample; got a 0-d scalar (wrap it in a list)")
    if task == "binary":
        if tuple(y.shape) != tuple(s.shape):
            hint = (" (squeeze the trailing axis of size 1 from the scores)" if s.shape == y.shape + (1,) else
                    " (binary takes one score per sample; for (N, C) scores use task='multiclass' or 'multilabel')"
                    if s.ndim == y.ndim + 1 else "")
            raise ValueError(f"labels have shape {tuple(y.shape)} but binary scores have shape {tuple(s.shape)}; "
                             f"give one 0/1 label per score{hint}")
        s = s.reshape(-1)
        y = _binary_values(y.reshape(-1), task)
    else:
        if s.ndim < 2:
            raise ValueError(f"{task} scores need a class axis, got shape {tuple(s.shape)}; for one score per "
                             "sample use task='binary'")
        ax = normalize_axis(axis, s.ndim)
        shape = tuple(s.shape)
        s = np.moveaxis(s, ax, -1)
        c = s.shape[-1]
        if task == "multiclass":
            if tuple(y.shape) != tuple(s.shape[:-1]):
                hint = (f"; these look one-hot: pass class indices, labels.argmax(axis={axis})"
                        if tuple(y.shape) == shape else "")
                raise ValueError(f"labels have shape {tuple(y.shape)} but multiclass scores of shape "
                                 f"{shape} (class axis {axis}) need labels of "
                                 f"shape {tuple(s.shape[:-1])}: one class index per row{hint}")
            if y.dtype.kind == "f":
                if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                    raise TypeError("labels for task='multiclass' must be integer class indices; got "
                                    "non-integral floats (probability targets are not supported here)")
            elif y.dtype.kind not in "iub":
                raise TypeError(f"labels for task='multiclass' must be integer class indices, got dtype {y.dtype}")
            y = y.astype(np.int64).reshape(-1)
            if y.size and (y.min() < 0 or y.max() >= c):
                bad = y[(y < 0) | (y >= c)]
                raise ValueError(f"labels hold class index {int(bad[0])}, out of range for {c} classes "
                                 f"(axis {axis}); labels must lie in 0..{c - 1}"
                                 + ("; drop ignored rows (e.g. -100) before computing metrics" if bad[0] < 0 else ""))
        else:
            if tuple(y.shape) != shape:
                raise ValueError(f"labels have shape {tuple(y.shape)} but multilabel "
                                 f"scores have shape {shape}; give a multi-hot "
                                 "0/1 array of the scores' shape")
            y = _binary_values(np.moveaxis(y, ax, -1), task).reshape(-1, c)
        s = s.reshape(-1, c)
    if s.shape[0] == 0:
        raise ValueError("scores and labels are empty; metrics need at least one sample")
    return s, y


def _prepare(scores: Any, labels: Any, task: Any, space: Any, axis: Any = -1, *, need_log: bool = True) -> _Data:
    """Validate and convert to :class:`_Data` (the single entry point of every metric)."""
    task = validate_task(task)
    space = validate_space(space)
    s, y = _canonical(scores, labels, task, axis)
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
                log1mp = _log1mexp(s)
    return _Data(task, p, logp, log1mp, y)


def _threshold_array(threshold: Any, data: _Data) -> np.ndarray:
    if data.task == "multiclass":
        if threshold is not None:
            raise ValueError("threshold does not apply to task='multiclass' (decisions are the argmax); "
                             "leave it None")
        return np.asarray(0.5)
    t = _to_numpy(0.5 if threshold is None else threshold, "threshold").astype(np.float64)
    c = 1 if data.task == "binary" else data.n_classes
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, c)):
        raise ValueError(f"threshold must be a number or one per class ({c} values), got shape {t.shape}")
    if np.any(~np.isfinite(t)) and not np.all(np.abs(t[~np.isfinite(t)]) == np.inf):
        raise ValueError("threshold must not be NaN")
    if data.task == "binary":
        t = t.reshape(-1)
        if t.size != 1:
            raise ValueError(f"binary takes a single threshold, got {t.size}")
        return t[0]
    return t


def _decisions(data: _Data, threshold: Any) -> np.ndarray:
    """Predicted labels: argmax (multiclass) or ``p > threshold`` (binary, multilabel)."""
    t = _threshold_array(threshold, data)
    if data.task == "multiclass":
        return np.argmax(data.p, axis=1)
    return (data.p > t).astype(np.int64)


# --------------------------------------------------------------------------------------------
# proper scores and accuracy
# --------------------------------------------------------------------------------------------


def _nll_terms(d: _Data) -> np.ndarray:
    if d.task == "multiclass":
        return -d.logp[np.arange(d.n), d.y]
    # pick the log-probability of the observed outcome (never 0 * -inf)
    return -np.where(d.y == 1, d.logp, d.log1mp)


def _brier_terms(d: _Data) -> np.ndarray:
    if d.task == "multiclass":
        sq = d.p * d.p  # (p_c - 0)^2 for the wrong classes ...
        rows = np.arange(d.n)
        sq[rows, d.y] = (1.0 - d.p[rows, d.y]) ** 2  # ... and (1 - p_y)^2 for the true one: no one-hot matrix
        return np.sum(sq, axis=1)
    return (d.p - d.y) ** 2


def nll(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
        dim: int | None = None) -> float:
    r"""The mean negative log-likelihood of the labels (cross-entropy, log loss).

    .. math::
        \text{multiclass: } -\frac1N \sum_i \log p_{i, y_i}, \qquad
        \text{binary / multilabel: } -\frac1{M} \sum_{j} \big[y_j \log p_j + (1 - y_j) \log(1 - p_j)\big]

    where the binary/multi-label mean runs over all ``M`` (sample, class) entries, like
    ``binary_cross_entropy_with_logits(reduction="mean")``.

    Args:
        scores: scores in the declared ``space``; see the module table for shapes.
        labels: class indices (multiclass) or 0/1 labels (binary, multilabel).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        space: what ``scores`` are: ``"logits"``, ``"probs"`` or ``"log_probs"``.
        axis: the class axis (``dim=`` is an alias).

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
    """
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim))
    return float(np.mean(_nll_terms(d)))


def brier(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
          dim: int | None = None) -> float:
    r"""The Brier score: mean squared error between probabilities and one-hot (or 0/1) labels.

    .. math::
        \text{multiclass: } \frac1N \sum_i \sum_c (p_{ic} - [y_i = c])^2 \in [0, 2], \qquad
        \text{binary / multilabel: } \frac1M \sum_j (p_j - y_j)^2 \in [0, 1]

    The multi-class form is Brier's original (1950) sum over classes; binary and multi-label average
    over all (sample, class) entries.

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.

    Returns:
        A float.

    Example:
        >>> import sigmax.metrics as M
        >>> round(M.brier([[0.7, 0.2, 0.1]], [0], "multiclass", space="probs"), 4)
        0.14
        >>> round(M.brier([0.9, 0.2], [1, 0], "binary", space="probs"), 4)
        0.025
    """
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim), need_log=False)
    return float(np.mean(_brier_terms(d)))


def _topk_correct(d: _Data, k: int) -> np.ndarray:
    """Whether each label is among the ``k`` highest probabilities (ties: the lower index ranks first,
    so ``k=1`` agrees with the argmax)."""
    py = d.p[np.arange(d.n), d.y][:, None]
    idx = np.arange(d.p.shape[1])[None, :]
    rank = np.sum(d.p > py, axis=1) + np.sum((d.p == py) & (idx < d.y[:, None]), axis=1)
    return rank < k


def _check_top_k(top_k: Any, d: _Data) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if top_k != 1 and d.task != "multiclass":
        raise ValueError(f"top_k={top_k} applies to task='multiclass' only; binary and multilabel accuracy "
                         "compare thresholded decisions")
    return int(top_k)


def accuracy(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1, top_k: int = 1,
             threshold: Any = None, dim: int | None = None) -> float:
    r"""The fraction of correct decisions (top-k for multi-class).

    .. math::
        \text{multiclass: } \frac1N \sum_i [\,y_i \in \operatorname{top}_k(p_i)\,], \qquad
        \text{binary / multilabel: } \frac1M \sum_j [\,[p_j > t] = y_j\,]

    Multi-label accuracy is per (sample, class) entry (one minus the Hamming loss), not exact match.

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.
        top_k: count a multi-class sample as correct when its label is among the ``top_k`` most
            probable classes (ties rank the lower class index first, so ``top_k=1`` is the argmax).
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
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim), need_log=False)
    k = _check_top_k(top_k, d)
    if d.task == "multiclass":
        return float(np.mean(_topk_correct(d, k)))
    return float(np.mean(_decisions(d, threshold) == d.y))


# --------------------------------------------------------------------------------------------
# precision / recall / F1
# --------------------------------------------------------------------------------------------


def _confusion(d: _Data, threshold: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, false positives, false negatives (binary: one 'class', the positive)."""
    pred = _decisions(d, threshold)
    if d.task == "multiclass":
        c = d.p.shape[1]
        tp = np.bincount(d.y[pred == d.y], minlength=c).astype(np.float64)
        fp = np.bincount(pred, minlength=c) - tp
        fn = np.bincount(d.y, minlength=c) - tp
        return tp, fp.astype(np.float64), fn.astype(np.float64)
    pred = pred.reshape(d.n, -1)
    y = d.y.reshape(d.n, -1)
    tp = np.sum((pred == 1) & (y == 1), axis=0).astype(np.float64)
    fp = np.sum((pred == 1) & (y == 0), axis=0).astype(np.float64)
    fn = np.sum((pred == 0) & (y == 1), axis=0).astype(np.float64)
    return tp, fp, fn


def _div(a, b):
    """a / b with 0/0 = 0 (scikit-learn's ``zero_division=0``)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def _prf_from_counts(tp, fp, fn, average) -> dict[str, Any]:
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        return {"precision": float(_div(tp, tp + fp)), "recall": float(_div(tp, tp + fn)),
                "f1": float(_div(2 * tp, 2 * tp + fp + fn))}
    prec, rec, f1 = _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return {"precision": prec, "recall": rec, "f1": f1}
    present = (tp + fp + fn) > 0  # classes never predicted nor present carry no information: left out
    if not present.any():
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    return {"precision": float(prec[present].mean()), "recall": float(rec[present].mean()),
            "f1": float(f1[present].mean())}


def _check_average(average: Any) -> Any:
    if isinstance(average, str):
        average = average.lower()
        if average == "none":
            average = None
    if average not in _AVERAGES:
        raise ValueError(f"unknown average {average!r}; use 'micro' (pool all decisions), 'macro' (mean over "
                         "classes) or None (per-class arrays)")
    return average


def precision_recall_f1(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
                        threshold: Any = None, average: str | None = "micro",
                        dim: int | None = None) -> dict[str, Any]:
    r"""Precision, recall and F1 of the decisions, micro- or macro-averaged over classes.

    .. math::
        P = \frac{TP}{TP + FP}, \quad R = \frac{TP}{TP + FN}, \quad F_1 = \frac{2\,TP}{2\,TP + FP + FN}

    * binary: of the positive class (``average`` makes no difference);
    * multilabel: decisions ``p > threshold`` per class; ``"micro"`` pools the counts of all classes,
      ``"macro"`` averages the per-class values;
    * multiclass: decisions are the argmax; ``"micro"`` equals accuracy, ``"macro"`` averages over classes.

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.
        threshold: binary/multilabel decision threshold on probabilities, a number or one per class
            (e.g. ``Calibrator.thresholds``; ``None``: 0.5; not for multiclass).
        average: ``"micro"``, ``"macro"``, or ``None`` for per-class NumPy arrays.

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
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim), need_log=False)
    tp, fp, fn = _confusion(d, threshold)
    if d.task == "binary" and average is not None:
        average = "micro"
    return _prf_from_counts(tp, fp, fn, average)


# --------------------------------------------------------------------------------------------
# calibration error and reliability data
# --------------------------------------------------------------------------------------------


def _check_bins(n_bins: Any, binning: Any) -> tuple[int, str]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    b = binning.lower().replace("-", "_") if isinstance(binning, str) else binning
    b = {"uniform": "equal_width", "width": "equal_width", "quantile": "equal_mass", "mass": "equal_mass",
         "equal_frequency": "equal_mass", "adaptive": "equal_mass"}.get(b, b)
    if b not in _BINNINGS:
        raise ValueError(f"unknown binning {binning!r}; use 'equal_width' (Guo et al.: n_bins bins of width 1/n) "
                         "or 'equal_mass' (bins holding equally many samples)")
    return int(n_bins), b


def _check_mode(mode: Any) -> str:
    m = mode.lower().replace("-", "_") if isinstance(mode, str) else mode
    m = {"top": "top_label", "toplabel": "top_label", "class_wise": "classwise", "marginal": "classwise"}.get(m, m)
    if m not in _MODES:
        raise ValueError(f"unknown mode {mode!r}; use 'top_label' (confidence of the predicted label) or "
                         "'classwise' (every class's probability against its 0/1 outcome)")
    return m


def _check_norm(norm: Any) -> str:
    n = norm.lower() if isinstance(norm, str) else norm
    n = {"ece": "l1", "mce": "max", "inf": "max", "rms": "l2", "rmsce": "l2"}.get(n, n)
    if n not in _NORMS:
        raise ValueError(f"unknown norm {norm!r}; use 'l1' (ECE), 'max' (MCE) or 'l2' (RMS calibration error)")
    return n


def _top_label(d: _Data) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted label and whether it is right, one per sample (or entry)."""
    if d.task == "multiclass":
        pred = np.argmax(d.p, axis=1)
        return d.p[np.arange(d.n), pred], (pred == d.y).astype(np.float64)
    p = d.p.reshape(-1)
    y = d.y.reshape(-1)
    pred = p > 0.5  # the default decision of sigmax.interpret
    return np.where(pred, p, 1.0 - p), (pred == (y == 1)).astype(np.float64)


def _n_columns(d: _Data) -> int:
    """Classes with a probability column: C, or 1 for binary (the positive class)."""
    return 1 if d.task == "binary" else int(d.p.shape[1])


def _class_column(d: _Data, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``c``'s probability and its 0/1 outcome (binary: the positive class)."""
    if d.task == "binary":
        return d.p, d.y.astype(np.float64)
    if d.task == "multiclass":
        return d.p[:, c], (d.y == c).astype(np.float64)
    return d.p[:, c], d.y[:, c].astype(np.float64)


def _classwise_sums(d: _Data, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width bin sums of every class at once: ``(edges, count, sum conf, sum outcome)``, each
    ``(K, n_bins)``, in O(N C) time and without a one-hot matrix (large vocabularies)."""
    p = d.p.reshape(d.n, -1)
    k = p.shape[1]
    edges = _equal_width_edges(n_bins)
    flat = _assign(p, edges) + n_bins * np.arange(k)  # (class, bin) as one index
    size = k * n_bins
    count = np.bincount(flat.ravel(), minlength=size)
    sconf = np.bincount(flat.ravel(), weights=p.ravel(), minlength=size)
    if d.task == "multiclass":  # the outcome is 1 only at the true class
        sacc = np.bincount(flat[np.arange(d.n), d.y], minlength=size).astype(np.float64)
    else:
        sacc = np.bincount(flat.ravel(), weights=d.y.reshape(d.n, -1).ravel().astype(np.float64), minlength=size)
    return edges, count.reshape(k, n_bins), sconf.reshape(k, n_bins), sacc.reshape(k, n_bins)


def _errors_from_sums(count: np.ndarray, sconf: np.ndarray, sacc: np.ndarray, norm: str) -> np.ndarray:
    """Calibration error of each row of ``(..., n_bins)`` bin sums (``|sacc - sconf| = count |acc - conf|``)."""
    n = count.sum(axis=-1)
    full = count > 0
    cnt = np.maximum(count, 1)
    diff = np.abs(sacc - sconf)
    with np.errstate(invalid="ignore", divide="ignore"):
        if norm == "l1":
            e = diff.sum(axis=-1) / n
        elif norm == "max":
            e = np.max(np.where(full, diff / cnt, 0.0), axis=-1)
        else:
            e = np.sqrt(np.sum(np.where(full, diff * diff / cnt, 0.0), axis=-1) / n)
    return np.where(n > 0, e, 0.0)


def _equal_width_edges(n_bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_bins + 1)  # the same edges as Guo et al.'s reference code


def _assign(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each confidence for bins (lo, hi] (Guo et al.); 0 joins the first bin."""
    # searchsorted(side="left") gives the first edge >= conf, so conf in (e_b, e_{b+1}] -> b + 1
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, len(edges) - 2)


def _bin_sums(conf: np.ndarray, outcome: np.ndarray, n_bins: int, binning: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(edges, count, sum of confidence, sum of outcome)`` per bin for one set of confidences."""
    if binning == "equal_width":
        edges = _equal_width_edges(n_bins)
        idx = _assign(conf, edges)
    else:
        order = np.argsort(conf, kind="stable")
        idx = np.empty(conf.shape[0], dtype=np.int64)
        groups = np.array_split(order, n_bins)  # sizes differ by at most one
        for b, g in enumerate(groups):
            idx[g] = b
        sc = conf[order]
        starts = np.cumsum([0] + [len(g) for g in groups])
        inner = [(sc[s - 1] + sc[s]) / 2 if 0 < s < len(sc) else (sc[-1] if s >= len(sc) else sc[0])
                 for s in starts[1:-1]]
        edges = np.concatenate([[sc[0]], inner, [sc[-1]]]) if len(sc) else np.zeros(n_bins + 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sconf = np.bincount(idx, weights=conf, minlength=n_bins)
    sacc = np.bincount(idx, weights=outcome, minlength=n_bins)
    return edges, count, sconf, sacc


@dataclass(frozen=True, eq=False)  # numpy fields: compare with np.array_equal, not ==
class Reliability:
    r"""Reliability-diagram data: per-bin mean confidence, observed accuracy (frequency) and count.

    .. math:: \mathrm{conf}_b = \frac{1}{n_b} \sum_{i \in B_b} \hat p_i, \quad
              \mathrm{acc}_b = \frac{1}{n_b} \sum_{i \in B_b} o_i, \quad
              \mathrm{ECE} = \sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|

    Attributes:
        bin_edges: ``(n_bins + 1,)`` bin edges; bins are ``(lo, hi]`` for equal-width binning.
        confidence: ``(n_bins,)`` mean confidence in each bin (NaN for an empty bin).
        accuracy: ``(n_bins,)`` fraction correct (top-label) or of positives (class-wise); NaN if empty.
        count: ``(n_bins,)`` number of samples in each bin (int64).

    Two :class:`Reliability` objects with the same bin edges add up (``a + b``) to the reliability of
    the two sets of samples together, so chunks of a large file can be binned one at a time.

    Example:
        >>> import sigmax.metrics as M
        >>> r = M.reliability([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 0], "binary", space="probs", n_bins=2,
        ...                   mode="classwise")
        >>> r.count.tolist(), r.confidence.round(3).tolist(), r.accuracy.tolist()
        ([2, 2], [0.25, 0.85], [0.0, 0.5])
        >>> round(r.ece, 4)
        0.3
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @classmethod
    def _from_sums(cls, edges, count, sconf, sacc) -> Reliability:
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(count > 0, sconf / np.maximum(count, 1), np.nan)
            acc = np.where(count > 0, sacc / np.maximum(count, 1), np.nan)
        return cls(np.asarray(edges, dtype=np.float64), conf, acc, np.asarray(count, dtype=np.int64))

    @property
    def n(self) -> int:
        """Number of samples binned."""
        return int(self.count.sum())

    @property
    def gap(self) -> np.ndarray:
        """``accuracy - confidence`` per bin (NaN for empty bins): > 0 under-confident, < 0 over-confident."""
        return self.accuracy - self.confidence

    def error(self, norm: str = "l1") -> float:
        """The calibration error of these bins: ``"l1"`` (ECE), ``"max"`` (MCE) or ``"l2"`` (RMS)."""
        norm = _check_norm(norm)
        full = self.count > 0
        if not full.any():
            return 0.0
        g = np.abs(self.gap[full])
        w = self.count[full] / self.count.sum()
        if norm == "l1":
            return float(np.sum(w * g))
        if norm == "max":
            return float(np.max(g))
        return float(np.sqrt(np.sum(w * g * g)))

    @property
    def ece(self) -> float:
        """Expected calibration error (the ``"l1"`` norm)."""
        return self.error("l1")

    @property
    def mce(self) -> float:
        """Maximum calibration error over non-empty bins."""
        return self.error("max")

    def __add__(self, other: Reliability) -> Reliability:
        if not isinstance(other, Reliability):
            return NotImplemented
        if self.bin_edges.shape != other.bin_edges.shape or not np.array_equal(self.bin_edges, other.bin_edges):
            raise ValueError("can only add reliabilities with the same bin edges (equal-width binning with the "
                             "same n_bins); equal-mass bins depend on the data and do not merge")
        count = self.count + other.count
        sconf = np.nan_to_num(self.confidence * self.count) + np.nan_to_num(other.confidence * other.count)
        sacc = np.nan_to_num(self.accuracy * self.count) + np.nan_to_num(other.accuracy * other.count)
        return Reliability._from_sums(self.bin_edges, count, sconf, sacc)

    def to_dict(self) -> dict[str, list]:
        """Plain lists (NaN for empty bins becomes ``None``), for JSON."""
        def clean(a):
            return [None if (isinstance(v, float) and math.isnan(v)) else v for v in a.tolist()]
        return {"bin_edges": self.bin_edges.tolist(), "confidence": clean(self.confidence),
                "accuracy": clean(self.accuracy), "count": self.count.tolist()}


def _reliability_data(d: _Data, n_bins: int, binning: str, mode: str, class_index: Any) -> Reliability:
    if mode == "top_label":
        if class_index is not None:
            raise ValueError("class_index applies to mode='classwise' only")
        conf, out = _top_label(d)
    elif class_index is not None:
        c = _n_columns(d)
        if d.task == "binary":
            raise ValueError("class_index does not apply to task='binary' (classwise is the positive class)")
        if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral) \
                or not -c <= class_index < c:
            raise ValueError(f"class_index must be an integer in 0..{c - 1}, got {class_index!r}")
        conf, out = _class_column(d, int(class_index) % c)
    elif binning == "equal_width":  # every class pooled
        edges, count, sconf, sacc = _classwise_sums(d, n_bins)
        return Reliability._from_sums(edges, count.sum(axis=0), sconf.sum(axis=0), sacc.sum(axis=0))
    else:
        cols = [_class_column(d, c) for c in range(_n_columns(d))]
        conf, out = np.concatenate([a for a, _ in cols]), np.concatenate([b for _, b in cols])
    return Reliability._from_sums(*_bin_sums(conf, out, n_bins, binning))


def reliability(scores: Any, labels: Any, task: str, *, space: str = "logits", n_bins: int = 15,
                binning: str = "equal_width", mode: str = "top_label", class_index: int | None = None,
                axis: int = -1, dim: int | None = None) -> Reliability:
    r"""Reliability-diagram data: bin the confidences, compare mean confidence with observed accuracy.

    .. math:: \mathrm{conf}(B_b) = \frac{1}{|B_b|} \sum_{i \in B_b} \hat p_i, \qquad
              \mathrm{acc}(B_b) = \frac{1}{|B_b|} \sum_{i \in B_b} o_i

    ``mode="top_label"``: :math:`\hat p_i` is the probability of the predicted label and :math:`o_i`
    whether it is right (multiclass: the argmax; binary/multilabel: the decision ``p > 0.5``, confidence
    ``max(p, 1 - p)``, every (sample, class) entry pooled). ``mode="classwise"``: :math:`\hat p` is a class's
    probability and :math:`o` its 0/1 outcome — class ``class_index`` only, or all classes pooled when
    it is ``None`` (binary: the positive class, as torchmetrics' ``binary_calibration_error``).

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.
        n_bins: number of bins.
        binning: ``"equal_width"`` (bins ``(b/n, (b+1)/n]``; 0 joins the first) or ``"equal_mass"``
            (sorted confidences split into bins of equal size, differing by at most one; tied
            confidences may straddle a bin edge).
        mode: ``"top_label"`` or ``"classwise"``.
        class_index: with ``mode="classwise"``, the class to diagram (multiclass and multilabel).

    Returns:
        A :class:`Reliability` (NumPy arrays ``bin_edges``, ``confidence``, ``accuracy``, ``count``).

    Example:
        >>> import sigmax.metrics as M
        >>> r = M.reliability([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], [0, 0, 0], "multiclass", n_bins=4)
        >>> r.count.tolist()
        [0, 0, 1, 2]
    """
    n_bins, binning = _check_bins(n_bins, binning)
    mode = _check_mode(mode)
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim), need_log=False)
    return _reliability_data(d, n_bins, binning, mode, class_index)


def _calibration_error(d: _Data, n_bins: int, binning: str, norm: str, mode: str) -> float:
    if mode == "top_label":
        return _reliability_data(d, n_bins, binning, mode, None).error(norm)
    if binning == "equal_width":
        _, count, sconf, sacc = _classwise_sums(d, n_bins)
        return float(np.mean(_errors_from_sums(count, sconf, sacc, norm)))
    errs = [Reliability._from_sums(*_bin_sums(*_class_column(d, c), n_bins, binning)).error(norm)
            for c in range(_n_columns(d))]
    return float(np.mean(errs))


def calibration_error(scores: Any, labels: Any, task: str, *, space: str = "logits", n_bins: int = 15,
                      binning: str = "equal_width", norm: str = "l1", mode: str = "top_label",
                      axis: int = -1, dim: int | None = None) -> float:
    r"""Calibration error: ECE (``norm="l1"``), MCE (``"max"``) or RMS calibration error (``"l2"``).

    .. math::
        \mathrm{ECE} = \sum_b \frac{|B_b|}{N} \left|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\right|

    With the defaults (15 equal-width bins ``(lo, hi]``, top-label confidence) this is exactly the ECE of
    Guo et al. (2017). ``mode="classwise"`` is the mean over classes of each class's error (Kull et al.
    2019, "classwise-ECE"); for binary it is the error of the positive-class probability (torchmetrics'
    ``binary_calibration_error``). See :func:`reliability` for the confidences and bins.

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.
        n_bins, binning, mode: as in :func:`reliability`.
        norm: ``"l1"`` (ECE), ``"max"`` (MCE, over non-empty bins) or ``"l2"`` (RMS).

    Returns:
        A float in [0, 1].

    Note:
        Binning estimates are biased upwards on small samples (an empty bin contributes nothing, a bin
        with one sample contributes its whole gap); compare models on the same data and binning.

    Example:
        >>> import sigmax.metrics as M
        >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
        >>> round(M.calibration_error(probs, [0, 1, 1, 1], "multiclass", space="probs"), 4)
        0.5
    """
    n_bins, binning = _check_bins(n_bins, binning)
    norm, mode = _check_norm(norm), _check_mode(mode)
    d = _prepare(scores, labels, task, space, resolve_axis(axis, dim), need_log=False)
    return _calibration_error(d, n_bins, binning, norm, mode)


# --------------------------------------------------------------------------------------------
# summary and streaming
# --------------------------------------------------------------------------------------------


class MetricAccumulator:
    r"""Streaming metrics: feed chunks with :meth:`update`, read the :func:`summary` dict with :meth:`compute`.

    .. math:: \mathrm{metric}(X_1 \cup \dots \cup X_k) = F\Big(\sum_j S(X_j)\Big)

    where :math:`S` are additive sufficient statistics and :math:`F` finishes them.

    Every metric in :func:`summary` is a function of per-chunk sums (log-losses, squared errors,
    correct counts, confusion counts, equal-width bin sums), so the result of any split into chunks
    equals :func:`summary` on all the data at once, with memory bounded by one chunk.

    Args:
        task, space, axis, threshold: as in :func:`summary`.
        n_bins: equal-width bins for ECE/MCE (equal-mass bins need all data at once).

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
                 n_bins: int = 15):
        self.task = validate_task(task)
        self.space = validate_space(space)
        self.axis = axis
        self.threshold = threshold
        self.n_bins, _ = _check_bins(n_bins, "equal_width")
        self._n = 0
        self._entries = 0
        self._sums: dict[str, float] = {"nll": 0.0, "brier": 0.0, "correct": 0.0, "top5": 0.0}
        self._conf: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # per-class tp, fp, fn
        self._rel: Reliability | None = None
        self._cls: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # per-class bin sums
        self._n_classes: int | None = None

    def update(self, scores: Any, labels: Any) -> MetricAccumulator:
        """Add a chunk of scores and labels; returns ``self``."""
        d = _prepare(scores, labels, self.task, self.space, self.axis)
        if self._n_classes is not None and d.n_classes != self._n_classes:
            raise ValueError(f"this chunk has {d.n_classes} classes but earlier chunks had {self._n_classes}")
        self._n_classes = d.n_classes
        self._n += d.n
        nll_t = _nll_terms(d)
        self._entries += nll_t.size
        self._sums["nll"] += float(np.sum(nll_t))
        self._sums["brier"] += float(np.sum(_brier_terms(d)))
        if d.task == "multiclass":
            self._sums["correct"] += float(np.sum(_topk_correct(d, 1)))
            self._sums["top5"] += float(np.sum(_topk_correct(d, 5)))
        else:
            self._sums["correct"] += float(np.sum(_decisions(d, self.threshold) == d.y))
        counts = _confusion(d, self.threshold)
        self._conf = counts if self._conf is None else tuple(a + b for a, b in zip(self._conf, counts))
        rel = _reliability_data(d, self.n_bins, "equal_width", "top_label", None)
        self._rel = rel if self._rel is None else self._rel + rel
        cls = _classwise_sums(d, self.n_bins)[1:]
        self._cls = cls if self._cls is None else tuple(a + b for a, b in zip(self._cls, cls))
        return self

    @property
    def reliability(self) -> Reliability:
        """The top-label reliability data of everything seen so far."""
        if self._rel is None:
            raise ValueError("no data yet: call update() first")
        return self._rel

    def compute(self) -> dict[str, float]:
        """The :func:`summary` dict of everything seen so far."""
        if self._n == 0:
            raise ValueError("no data yet: call update() first")
        per_sample = self._n if self.task == "multiclass" else self._entries
        out = {
            "nll": self._sums["nll"] / self._entries,
            "brier": self._sums["brier"] / per_sample,
            "accuracy": self._sums["correct"] / per_sample,
        }
        if self.task == "multiclass" and self._n_classes > 5:
            out["top5_accuracy"] = self._sums["top5"] / self._n
        out["ece"] = self._rel.error("l1")
        out["mce"] = self._rel.error("max")
        out["rmsce"] = self._rel.error("l2")
        out["classwise_ece"] = float(np.mean(_errors_from_sums(*self._cls, "l1")))
        tp, fp, fn = self._conf
        if self.task == "multiclass":
            out["f1_macro"] = _prf_from_counts(tp, fp, fn, "macro")["f1"]
        else:
            out["f1_micro"] = _prf_from_counts(tp, fp, fn, "micro")["f1"]
            out["f1_macro"] = _prf_from_counts(tp, fp, fn, "macro")["f1"] if self.task == "multilabel" \
                else out["f1_micro"]
            out["precision_micro"] = _prf_from_counts(tp, fp, fn, "micro")["precision"]
            out["recall_micro"] = _prf_from_counts(tp, fp, fn, "micro")["recall"]
        return {k: float(v) for k, v in out.items()}


def summary(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
            threshold: Any = None, n_bins: int = 15, dim: int | None = None) -> dict[str, float]:
    r"""The standard metrics in one dict of floats, for tables and reports.

    Keys, every task: ``"nll"``, ``"brier"``, ``"accuracy"``, ``"ece"``, ``"mce"``, ``"rmsce"`` (top-label,
    ``n_bins`` equal-width bins) and ``"classwise_ece"``. Multiclass adds ``"f1_macro"`` and, when there
    are more than 5 classes, ``"top5_accuracy"``; binary and multilabel add ``"f1_micro"``, ``"f1_macro"``,
    ``"precision_micro"`` and ``"recall_micro"`` (decisions ``p > threshold``).

    .. math:: \mathrm{NLL} = -\frac1N \sum_i \log p_{i,y_i}, \quad
              \mathrm{ECE} = \sum_b \frac{|B_b|}{N} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|, \quad \dots

    (each as in :func:`nll`, :func:`brier`, :func:`accuracy`, :func:`precision_recall_f1`,
    :func:`calibration_error`).

    Args:
        scores, labels, task, space, axis: as in :func:`nll`.
        threshold: binary/multilabel decision threshold(s) on probabilities (e.g.
            ``Calibrator.thresholds``; ``None``: 0.5; must be ``None`` for multiclass).
        n_bins: equal-width bins for the calibration errors.

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
    return MetricAccumulator(task, space=space, axis=resolve_axis(axis, dim), threshold=threshold,
                             n_bins=n_bins).update(scores, labels).compute()
