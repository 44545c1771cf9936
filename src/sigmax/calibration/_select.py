r"""The calibration methods by name, and ``method="auto"``: the choice by cross-validated NLL.

``method="auto"`` fits every method the task has a use for on ``folds - 1`` folds of the calibration
set and scores it on the held-out fold, so each calibration row gets an out-of-fold NLL under every
method. The method with the lowest mean out-of-fold NLL is the *best*; the method chosen is the
**simplest** (fewest parameters, in the order of :data:`COMPLEXITY`) whose CV NLL is within one
standard error of the best's (the one-standard-error rule; the error is that of the paired per-row
difference from the best). A more flexible method is therefore taken only when the calibration set
shows it is better by more than the noise of that comparison. Dirichlet calibration enters once per
value of its ODIR grid, with its best value's NLL (a slightly optimistic figure: the grid value is
chosen on the same folds) and is left out above :data:`MAX_DIRICHLET_CLASSES` classes; with fewer
than :data:`MIN_AUTO_ROWS` calibration rows there is no selection and temperature scaling is used.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..activations import log_sigmoid, log_softmax
from ._beta import BetaCalibration
from ._columns import cv_folds
from ._dirichlet import DEFAULT_GRID, DirichletCalibration
from ._nonparametric import HistogramBinning, IsotonicCalibration
from ._scalers import PlattScaling, Scaler, TemperatureScaling, VectorScaling

__all__ = ["COMPLEXITY", "MAX_DIRICHLET_CLASSES", "METHODS", "MIN_AUTO_ROWS", "candidates", "make_scaler",
           "select_method"]

#: the scaler of each method (``None``: no rescaling)
METHODS: dict[str | None, type[Scaler] | None] = {
    "temperature": TemperatureScaling, "vector": VectorScaling, "platt": PlattScaling, "beta": BetaCalibration,
    "histogram": HistogramBinning, "isotonic": IsotonicCalibration, "dirichlet": DirichletCalibration, None: None}
#: the methods from the fewest parameters to the most (the one-standard-error rule prefers the first)
COMPLEXITY = ("temperature", "platt", "beta", "vector", "histogram", "isotonic", "dirichlet")
#: Dirichlet calibration fits C^2 + C parameters: ``"auto"`` leaves it out above this many classes
MAX_DIRICHLET_CLASSES = 100
#: fewer calibration rows than this: ``"auto"`` uses temperature scaling without a selection
MIN_AUTO_ROWS = 50


def make_scaler(method: str, task: str, **options: Any) -> Scaler:
    """A new scaler of ``method`` for ``task`` (temperature scaling: one temperature per label for multilabel)."""
    cls = METHODS[method]
    if cls is TemperatureScaling:
        return TemperatureScaling(task, per_class=(task == "multilabel"))
    return cls(task, **options)


def candidates(task: str) -> tuple[str, ...]:
    """The methods ``"auto"`` chooses among for ``task``, simplest first."""
    return tuple(m for m in COMPLEXITY if task in METHODS[m].tasks)


def _row_losses(z: np.ndarray, y: np.ndarray, valid: np.ndarray | None, task: str) -> np.ndarray:
    """Each row's NLL (binary/multilabel: summed over its kept entries)."""
    if task == "multiclass":
        return -np.asarray(log_softmax(z, axis=1))[np.arange(z.shape[0]), y]
    per = -(y * np.asarray(log_sigmoid(z)) + (1 - y) * np.asarray(log_sigmoid(-z)))
    if task == "binary":
        return per
    return np.sum(per if valid is None else np.where(valid, per, 0.0), axis=1)


def select_method(z: np.ndarray, y: np.ndarray, valid: np.ndarray | None, task: str, *,
                  weight: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """The ``"auto"`` choice on canonical float64 logits (see the module): a JSON-ready record.

    ``weight``: one per row or ``None``: each fold's fit is weighted, and so are the out-of-fold NLLs (a row
    counts as that many rows); the folds themselves are drawn over rows.

    Returns ``{"chosen", "best", "rule", "folds", "seed", "n_samples", "cv_nll", "se", "skipped",
    "options", "reason"}``: ``cv_nll[m]`` is method ``m``'s mean out-of-fold NLL, ``se[m]`` the standard
    error of its paired difference from the best, ``options`` the chosen method's settings (the
    Dirichlet ``reg``), ``reason`` one sentence saying why.
    """
    n = z.shape[0]
    cands = list(candidates(task))
    skipped: dict[str, str] = {}
    record: dict[str, Any] = {"rule": "one-standard-error", "folds": folds, "seed": seed, "n_samples": int(n),
                              "cv_nll": {}, "se": {}, "skipped": skipped, "options": {}}
    if n < MIN_AUTO_ROWS:
        record.update(chosen="temperature", best=None,
                      reason=f"method='auto' used temperature scaling without a selection: {n} calibration rows "
                             f"are fewer than the {MIN_AUTO_ROWS} a {folds}-fold comparison needs")
        return record
    if task == "multiclass" and z.shape[1] > MAX_DIRICHLET_CLASSES and "dirichlet" in cands:
        cands.remove("dirichlet")
        skipped["dirichlet"] = f"{z.shape[1]} classes > {MAX_DIRICHLET_CLASSES}: C^2 + C parameters"
    fold = cv_folds(y if task != "multilabel" else np.zeros(n), task, folds, seed)
    yy = y.astype(np.float64) if task != "multiclass" else y
    count = np.ones(n) if task != "multilabel" else (
        np.full(n, float(z.shape[1])) if valid is None else valid.sum(axis=1).astype(np.float64))
    rw = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    count = count * rw
    losses: dict[str, np.ndarray] = {}
    dir_reg = None
    for m in cands:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small folds warn about themselves; the comparison says enough
            if m == "dirichlet":
                dc = DirichletCalibration(grid=DEFAULT_GRID, folds=folds, seed=seed)
                per = dc.fold_losses(z, y, fold) if weight is None else dc.fold_losses(z, y, fold, weight=weight)
                per = {v: rw * loss for v, loss in per.items()}
                dir_reg = min(per, key=lambda v: (float(np.mean(per[v])), -v))
                losses[m] = per[dir_reg]
                continue
            out = np.zeros(n)
            for f in range(folds):
                tr, va = fold != f, fold == f
                if not va.any():
                    continue
                s = make_scaler(m, task).fit_canonical(z[tr], yy[tr], valid=None if valid is None else valid[tr],
                                                       weight=None if weight is None else rw[tr])
                out[va] = rw[va] * _row_losses(s.transform_canonical(z[va]), yy[va],
                                               None if valid is None else valid[va], task)
            losses[m] = out
    total = float(np.sum(count))
    cv = {m: float(np.sum(v) / total) for m, v in losses.items()}
    best = min(cv, key=lambda m: (cv[m], COMPLEXITY.index(m)))
    se = {m: float(np.sqrt(n) * np.std(losses[m] - losses[best], ddof=1) / total) if n > 1 else 0.0 for m in cv}
    chosen = next(m for m in cands if m in cv and cv[m] <= cv[best] + se[m])
    record.update(cv_nll=cv, se=se, best=best, chosen=chosen,
                  options={"reg": dir_reg} if chosen == "dirichlet" else {})
    table = ", ".join(f"{m} {cv[m]:.4f}" for m in cands if m in cv)
    if chosen == best:
        why = "the lowest"
    else:
        why = (f"within one standard error of the lowest, {best} {cv[best]:.4f} (difference "
               f"{cv[chosen] - cv[best]:.4f} <= SE {se[chosen]:.4f}), and simpler")
    record["reason"] = (f"method='auto' chose {chosen}: its {folds}-fold cross-validated NLL on the calibration set, "
                        f"{cv[chosen]:.4f}, is {why} (CV NLL: {table})")
    return record
