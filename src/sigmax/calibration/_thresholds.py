r"""Decision thresholds: per-class cuts of calibrated probabilities that maximise F1 or meet a target."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from .._array import resolve_axis
from .._inputs import canonical, validate_space, validate_task
from ..interpret import to_probs

__all__ = ["check_targets", "tune_thresholds", "tune_canonical"]


def _between(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """A threshold ``t`` with ``below <= t < above``: the midpoint, or ``below`` where the midpoint rounds up."""
    mid = 0.5 * (above + below)
    return np.where(mid < above, mid, below)


def _tune_one(p: np.ndarray, y: np.ndarray, objective: str, target_precision, target_recall, name: str,
              w: np.ndarray | None = None) -> float:
    if w is not None:  # a row of weight w counts w times; a row of weight 0 is left out (no cut of its own)
        keep = w > 0
        p, y, w = p[keep], y[keep], w[keep]
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(np.float64)
    ws = np.ones_like(ys) if w is None else w[order]
    n_pos = float(np.sum(ws * ys))
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last index of each group of equal scores
    tp = np.r_[0.0, np.cumsum(ws * ys)[ends]]  # candidate 0 predicts nothing; candidate j the top j groups
    fp = np.r_[0.0, np.cumsum(ws)[ends]] - tp
    fn = n_pos - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
        recall = tp / n_pos if n_pos > 0 else np.zeros_like(tp)
    # thresholds: p > t keeps exactly the candidate's groups; midpoints between neighbouring scores
    lower = np.r_[ps[ends[:-1] + 1], 0.0]
    thr = np.r_[_between(np.array([1.0]), ps[:1]), _between(ps[ends], lower)]
    if n_pos == 0:
        warnings.warn(f"{name} has no positive labels in the calibration set; its threshold predicts no positives",
                      UserWarning, stacklevel=4)
        return float(thr[0])
    if target_precision is not None:
        ok = (precision >= target_precision) & (tp + fp > 0)
        if not ok.any():
            j = int(np.argmax(precision))
            warnings.warn(f"{name}: no threshold reaches precision {target_precision:g} on the calibration set "
                          f"(best {precision[j]:.3g}); using the most precise one", UserWarning, stacklevel=4)
            return float(thr[j])
        best = np.max(recall[ok])
        return float(thr[np.flatnonzero(ok & (recall == best))[0]])
    if target_recall is not None:
        # a candidate whose threshold cannot sit below its lowest score (a probability of exactly 0:
        # no t in [0, 1] has 0 > t) is out of reach
        real = np.r_[True, thr[1:] < ps[ends]]
        ok = (recall >= target_recall) & real
        if not ok.any():
            j = int(np.argmax(np.where(real, recall, -1.0)))
            warnings.warn(f"{name}: no threshold reaches recall {target_recall:g} on the calibration set "
                          f"(best {recall[j]:.3g}: scores of exactly 0 are never above a threshold); using "
                          f"the one of highest recall", UserWarning, stacklevel=4)
            return float(thr[j])
        best = np.max(precision[ok])
        return float(thr[np.flatnonzero(ok & (precision == best))[0]])
    return float(thr[int(np.argmax(f1))])  # the highest threshold among ties


def _check_target(v: Any, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    return float(v)


def check_targets(target_precision: Any, target_recall: Any) -> tuple[float | None, float | None]:
    """``(target_precision, target_recall)`` checked (numbers in [0, 1], at most one given), as floats.

    Example:
        >>> check_targets(0.9, None)
        (0.9, None)
    """
    tp, tr = _check_target(target_precision, "target_precision"), _check_target(target_recall, "target_recall")
    if tp is not None and tr is not None:
        raise ValueError("give at most one of target_precision and target_recall")
    return tp, tr


def tune_thresholds(scores: Any, labels: Any, task: str, *, space: str = "logits", objective: str = "f1",
                    target_precision: float | None = None, target_recall: float | None = None,
                    axis: int = -1, dim: int | None = None, ignore_index: int | None = None,
                    sample_weight: Any = None) -> np.ndarray:
    r"""Per-class decision thresholds on probabilities that maximise F1 or meet a precision/recall target.

    Decisions are ``p > t`` (as in :func:`sigmax.interpret.interpret` and :mod:`sigmax.metrics`). For each
    class every distinct cut of the sorted probabilities is tried:

    .. math:: t^* = \arg\max_t F_1(t), \quad F_1 = \frac{2\,TP}{2\,TP + FP + FN}; \qquad
              \text{or } \arg\max_{t:\,P(t) \ge P_0} R(t); \qquad \text{or } \arg\max_{t:\,R(t) \ge R_0} P(t)

    The returned threshold lies midway between the last probability kept and the next one below it,
    so it does not sit on a calibration sample; ties go to the higher threshold.

    Args:
        scores: binary ``(N,)`` or multilabel scores with classes along ``axis``, in the declared ``space``.
        labels: 0/1 labels of the scores' shape.
        task: ``"binary"`` or ``"multilabel"`` (multiclass decisions are the argmax: no thresholds).
        space: ``"logits"``, ``"probs"`` or ``"log_probs"``.
        objective: ``"f1"`` (used when no target is given).
        target_precision: pick the threshold with the highest recall among those with precision at least
            this (a warning, and the most precise threshold, if none reaches it).
        target_recall: pick the threshold with the highest precision among those with recall at least this.
        ignore_index: a label value whose entries are left out (as in PyTorch's losses).
        sample_weight: one non-negative weight per sample: TP, FP and FN count each sample that many
            times (as repeating it would); a sample of weight 0 is left out.

    Returns:
        Thresholds in [0, 1]: a 0-d float64 array for binary, shape ``(C,)`` for multilabel.

    Note:
        A class without positive labels gets a threshold that predicts nothing (with a warning).
        Thresholds tuned on the calibration set are optimistic there; evaluate on held-out data.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import tune_thresholds
        >>> p = np.array([0.9, 0.8, 0.35, 0.3, 0.2, 0.1]); y = np.array([1, 1, 1, 0, 1, 0])
        >>> float(tune_thresholds(p, y, "binary", space="probs"))
        0.15
        >>> float(tune_thresholds(p, y, "binary", space="probs", target_precision=1.0))
        0.325
    """
    task = validate_task(task)
    if task == "multiclass":
        raise ValueError("tune_thresholds is for task='binary' or 'multilabel'; multiclass decisions are the "
                         "argmax (use top-k or abstention in sigmax.interpret instead of thresholds)")
    if objective != "f1":
        raise ValueError(f"unknown objective {objective!r}; use 'f1', or give target_precision / target_recall")
    tp, tr = check_targets(target_precision, target_recall)
    c = canonical(scores, labels, task, axis=resolve_axis(axis, dim), ignore_index=ignore_index,
                  sample_weight=sample_weight)
    p = np.asarray(to_probs(c.scores, task, space=validate_space(space)), dtype=np.float64)
    return tune_canonical(p, c.labels, task, valid=c.valid, weight=c.weight, objective=objective,
                          target_precision=tp, target_recall=tr)


def tune_canonical(p: np.ndarray, y: np.ndarray, task: str, *, valid: np.ndarray | None = None,
                   weight: np.ndarray | None = None, objective: str = "f1", target_precision: float | None = None,
                   target_recall: float | None = None) -> np.ndarray:
    """:func:`tune_thresholds` on float64 probabilities and labels already in the canonical layout
    (``valid``: the multilabel entries kept; ``weight``: one per row or ``None``; see ``sigmax._inputs``)."""
    if task == "binary":
        return np.asarray(_tune_one(p, y, objective, target_precision, target_recall, "the positive class", weight))
    cols = []
    for k in range(p.shape[1]):
        pk, yk, wk = p[:, k], y[:, k], weight
        if valid is not None:
            pk, yk = pk[valid[:, k]], yk[valid[:, k]]
            wk = None if weight is None else weight[valid[:, k]]
        cols.append(_tune_one(pk, yk, objective, target_precision, target_recall, f"label {k}", wk))
    return np.array(cols)
