r"""One-vs-rest plumbing shared by the per-class calibrators (isotonic, histogram binning, beta).

A binary calibration method :math:`g` maps one probability to one probability. sigmax applies it to
every *column* of the scores:

* **binary**: the one probability :math:`p = \sigma(z)`;
* **multilabel**: each label's :math:`p_c = \sigma(z_c)` with its own :math:`g_c` (entries masked by
  ``ignore_index`` are left out of that label's fit);
* **multiclass** (one-vs-rest): each class's :math:`p_c = \operatorname{softmax}(z)_c` against the
  event "the label is :math:`c`", with its own :math:`g_c`; the calibrated row is **renormalised**,
  :math:`q_c = g_c(p_c) / \sum_k g_k(p_k)`. ``transform`` returns :math:`\log g_c(p_c)` as the
  calibrated logits, whose softmax is exactly that renormalised row.

This module also holds the deterministic cross-validation folds of the calibrators that choose a
setting (:class:`~sigmax.calibration.DirichletCalibration`) or a method (``method="auto"``).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from .._array import is_torch, like
from ..activations import log1mexp, log_sigmoid, log_softmax, logit
from . import _format as F
from ._logits import LOGIT_CLIP, check_weight_total
from ._params import as_given
from ._scalers import Scaler

__all__ = ["DEFAULT_EPS", "ColumnCalibrator", "check_weight_sum", "column_logs", "column_targets", "cv_folds",
           "kept_columns", "require_entries", "to_numpy", "from_columns", "to_columns", "n_columns"]

#: calibrated probabilities are kept in [eps, 1 - eps] before they become logits (a step function
#: such as isotonic regression or an empty-of-positives bin gives exactly 0 or 1: infinite logits)
DEFAULT_EPS = 1e-6


def n_columns(task: str, n_classes: int | None) -> int:
    """How many one-vs-rest columns a task has: 1 for binary, the class count otherwise."""
    return 1 if task == "binary" else int(n_classes)


def to_numpy(xp, z) -> np.ndarray:
    """A float64 NumPy copy of an array of any library (detached from autograd, moved to the host)."""
    if is_torch(xp):
        z = z.detach().cpu()
    return np.asarray(z, dtype=np.float64)


def to_columns(z: np.ndarray, task: str, ax: int | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(Z, shape)``: logits with the class axis last, flattened to ``(rows, K)``; ``shape`` to undo it."""
    if task == "binary":
        return z.reshape(-1, 1), z.shape
    zm = np.moveaxis(z, ax, -1)
    return zm.reshape(-1, zm.shape[-1]), zm.shape


def from_columns(xp, out: np.ndarray, shape: tuple[int, ...], task: str, ax: int | None, ref) -> Any:
    """The inverse of :func:`to_columns`, as an array of ``ref``'s library, device and dtype."""
    out = out.reshape(shape)
    if task != "binary":
        out = np.moveaxis(out, -1, ax)
    return like(xp, np.ascontiguousarray(out), ref, name="calibrated logits")


def column_logs(z: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    r"""``(log p, log(1 - p))`` of every column of ``(rows, K)`` logits, both finite and exact at the edges.

    Binary/multilabel: :math:`\log\sigma(z)` and :math:`\log\sigma(-z)`; multiclass:
    :math:`\log\operatorname{softmax}(z)_c` and ``log1mexp`` of it (no ``1 - p`` is formed). Values are
    clipped at :math:`-745` (``LOGIT_CLIP``; :math:`e^{-745}` is 0 in float64), so a probability of
    exactly 0 or 1 gives finite features.
    """
    with np.errstate(all="ignore"):
        if task == "multiclass":
            lp = np.asarray(log_softmax(z, axis=1))
            l1mp = np.asarray(log1mexp(np.minimum(lp, 0.0)))
        else:
            lp, l1mp = np.asarray(log_sigmoid(z)), np.asarray(log_sigmoid(-z))
    lp = np.clip(np.nan_to_num(lp, nan=-LOGIT_CLIP), -LOGIT_CLIP, 0.0)
    l1mp = np.clip(np.nan_to_num(l1mp, nan=-LOGIT_CLIP), -LOGIT_CLIP, 0.0)
    return lp, l1mp


def column_targets(y: np.ndarray, valid: np.ndarray | None, task: str, k: int,
                   weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(T, V)``: 0/1 targets ``(rows, K)`` of every column, and the kept entries (``None``: all kept).

    With ``weight`` (one per row) the entries of zero-weight rows are left out of ``V`` too: a weight
    of 0 is the row dropped.
    """
    n = y.shape[0]
    if task == "multiclass":
        t = np.zeros((n, k))
        t[np.arange(n), y] = 1.0
        v = None
    else:
        t = y.reshape(n, -1).astype(np.float64)
        v = None if valid is None else valid.reshape(n, -1)
    if weight is not None:
        pos = np.broadcast_to((np.asarray(weight) > 0)[:, None], t.shape)
        v = pos if v is None else v & pos
    return t, v


def check_weight_sum(weight: np.ndarray | None, valid: np.ndarray | None = None) -> None:
    """The ``ValueError`` for row weights summing to 0 over the rows kept (multilabel: rows with a kept entry)."""
    if weight is None:
        return
    w = weight if valid is None else weight[np.any(valid.reshape(valid.shape[0], -1), axis=1)]
    check_weight_total(np.sum(w))


def require_entries(c: int, t: np.ndarray, name: str) -> None:
    """The ``ValueError`` for a column (multilabel: a label) left with no entry to fit."""
    if t.size == 0:
        raise ValueError(f"label {c} has no calibration entry to fit {name} on (each is ignore_index or has "
                         "sample_weight 0); give that label some labelled, positively weighted rows")


def kept_columns(z: np.ndarray, y: np.ndarray, valid: np.ndarray | None, task: str,
                 weight: np.ndarray | None = None) -> list[tuple]:
    """Per column of canonical logits, its kept entries' ``(log p, log(1 - p), 0/1 target, weight)``.

    ``weight`` is one per row (``None``: all 1, and every column's weight is ``None``); entries masked by
    ``valid`` and rows of weight 0 are left out. Row weights summing to 0 are a ``ValueError``.
    """
    check_weight_sum(weight, valid)
    n = z.shape[0]
    zz = z.reshape(n, -1)
    k = zz.shape[1]
    lp, l1mp = column_logs(zz, task)
    t, v = column_targets(y, valid, task, k, weight)
    out = []
    for c in range(k):
        keep = slice(None) if v is None else v[:, c]
        out.append((lp[keep, c], l1mp[keep, c], t[keep, c], None if weight is None else weight[keep]))
    return out


def cv_folds(y: np.ndarray, task: str, folds: int, seed: int) -> np.ndarray:
    """The fold (``0..folds-1``) of every row: stratified by label (binary, multiclass), seeded, deterministic.

    Each label's rows are shuffled with ``numpy.random.default_rng(seed)`` and dealt round-robin, so
    every fold holds about ``1/folds`` of each class. Multilabel rows are dealt in one shuffled order.

    Example:
        >>> cv_folds(np.array([0, 0, 0, 1, 1, 1]), "binary", 3, 0).tolist()
        [1, 2, 0, 2, 1, 0]
    """
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    out = np.empty(n, dtype=np.int64)
    if task == "multilabel":
        out[rng.permutation(n)] = np.arange(n) % folds
        return out
    start = 0
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        out[idx[rng.permutation(idx.size)]] = (start + np.arange(idx.size)) % folds
        start += idx.size  # continue the deal where the last class stopped: folds stay balanced in size
    return out


class ColumnCalibrator(Scaler):
    r"""A binary calibration map fitted per column, one-vs-rest (see the module); the probability-valued base.

    Subclasses implement ``_fit_column(lp, l1mp, t, w)`` (one column's ``log p``, ``log(1 - p)``, 0/1
    targets and positive entry weights, ``None`` when unweighted; kept entries only) returning that
    column's parameters, and ``_predict(k, lp, l1mp)``
    returning its calibrated probabilities. The calibrated probability :math:`q` becomes logits as
    :math:`\operatorname{logit}(\operatorname{clip}(q, \varepsilon, 1 - \varepsilon))` (binary,
    multilabel) or :math:`\log \max(q, \varepsilon)` (multiclass; the softmax renormalises the row).
    """

    tasks = ("binary", "multiclass", "multilabel")
    _option_types = {"eps": numbers.Real}
    #: whether a column needs at least one kept entry (histogram binning falls back to its bins' midpoints)
    needs_entries = True

    def __init__(self, task: str, *, eps: float = DEFAULT_EPS, gtol: float = 1e-10, space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < 0.5 or not math.isfinite(eps):
            raise ValueError(f"eps must be a number in (0, 0.5) (calibrated probabilities are kept in [eps, 1 - eps] "
                             f"before they become logits), got {eps!r}")
        self.eps = as_given(eps, float(eps))

    def _options(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def _param_dict(self) -> dict[str, Any]:
        return {name: [np.asarray(v).tolist() for v in getattr(self, name + "_")] for name in self._params}

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        columns = []
        for c, (lp, l1mp, tc, wc) in enumerate(kept_columns(z, y, valid, self.task, weight)):
            if self.needs_entries:
                require_entries(c, tc, type(self).__name__)
            self.warn_few(c, int(tc.sum()), int(tc.size - tc.sum()), stacklevel=6)  # row counts, not weights
            columns.append(self._fit_column(lp, l1mp, tc, wc))
        for name, values in zip(self._params, zip(*columns)):
            setattr(self, name + "_", list(values))
        return {"converged": True}

    def warn_few(self, c: int, npos: int, nneg: int, stacklevel: int = 5) -> None:
        """The ``UserWarning`` for a column with fewer than 5 positives or negatives."""
        if npos < 5 or nneg < 5:
            what = "the scores" if self.task == "binary" else f"class {c}"
            warnings.warn(f"{what} has {npos} positive and {nneg} negative calibration sample(s); its "
                          f"{type(self).__name__} fit rests on very few examples", UserWarning, stacklevel=stacklevel)

    def _fit_column(self, lp: np.ndarray, l1mp: np.ndarray, t: np.ndarray,
                    w: np.ndarray | None = None) -> tuple:  # pragma: no cover
        raise NotImplementedError

    def _predict(self, k: int, lp: np.ndarray, l1mp: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def calibrated_columns(self, z: np.ndarray) -> np.ndarray:
        """The calibrated probability of every column of ``(rows, K)`` float64 logits, before any clip."""
        lp, l1mp = column_logs(z, self.task)
        return np.stack([self._predict(c, lp[:, c], l1mp[:, c]) for c in range(z.shape[1])], axis=1)

    def _apply(self, xp, z, ax):
        zz, shape = to_columns(to_numpy(xp, z), self.task, ax)
        q = self.calibrated_columns(zz)
        with np.errstate(divide="ignore"):
            if self.task == "multiclass":
                out = np.log(np.maximum(q, self.eps))  # softmax(log q) = q / sum(q): the renormalised row
            else:
                out = np.asarray(logit(np.clip(q, self.eps, 1.0 - self.eps)))
        return from_columns(xp, out, shape, self.task, ax, z)

    def _columns_of(self, value: Any, where: str) -> list:
        k = n_columns(self.task, self.n_classes_)
        if not isinstance(value, list) or len(value) != k:
            raise F.FieldError(where, f"must be a list of {k} list(s) of numbers (one per "
                               f"{'column' if k == 1 else 'class'})", value)
        return value
