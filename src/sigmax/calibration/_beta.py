r"""Beta calibration (Kull, Silva Filho & Flach 2017), per class, fitted by constrained logistic regression."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np

from ..activations import log1mexp, log_sigmoid, log_softmax
from . import _format as F
from ._columns import column_logs, column_targets, kept_columns, require_entries
from ._logits import LOGIT_CLIP
from ._scalers import Scaler, describe_numbers, warn_small

__all__ = ["BetaCalibration", "constrained_beta_fit", "constrained_beta_on", "logistic_newton", "logistic_newton_on"]


def _nll(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float:
    # -[t log sigma(x) + (1 - t) log sigma(-x)]: both logs exact for large |x|; its mean, weighted by w
    per = -(t * np.asarray(log_sigmoid(x)) + (1 - t) * np.asarray(log_sigmoid(-x)))
    return float(np.mean(per) if w is None else np.sum(w * per) / np.sum(w))


def logistic_newton(x: np.ndarray, t: np.ndarray, *, gtol: float = 1e-10, max_iter: int = 100,
                    weight: np.ndarray | None = None):
    r"""Unregularised logistic regression :math:`\sigma(x w + c)` by Newton's method (a few features).

    Exact Hessian, backtracking line search, stops at ``max|grad| < gtol``. ``x`` is ``(n, d)``
    (``d`` may be 0: the intercept alone); ``weight`` (one per row, positive sum; ``None``: all 1)
    makes the NLL, gradient and Hessian weighted means. Returns ``(w, c, grad_max, n_iter)``.

    Example:
        >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]]); t = np.array([0.0, 1.0, 0.0, 1.0])
        >>> w, c, g, _ = logistic_newton(x, t); round(float(w[0]), 4), abs(round(float(c), 4)), g < 1e-10
        (0.4196, 0.0, True)
    """
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    # the mean's weights: 1/n each, or w / sum(w)
    m = np.full(n, 1.0 / n) if weight is None else np.asarray(weight, dtype=np.float64) / np.sum(weight)

    def grad_hess(beta, hessian):
        s = xa @ beta
        q = np.exp(np.asarray(log_sigmoid(s)))
        g = xa.T @ (m * (q - t))
        if not hessian:
            return g
        return g, (xa * (m * q * np.exp(np.asarray(log_sigmoid(-s))))[:, None]).T @ xa

    return logistic_newton_on(grad_hess, lambda beta: _nll(xa @ beta, t, weight), d, gtol=gtol, max_iter=max_iter)


def logistic_newton_on(grad_hess, nll, d: int, *, gtol: float = 1e-10, max_iter: int = 100):
    """:func:`logistic_newton` on callbacks (the means may be sums over Dask blocks).

    ``grad_hess(beta, False)`` is the mean gradient at ``beta`` (``d`` weights, then the intercept),
    ``grad_hess(beta, True)`` the gradient and the mean Hessian; ``nll(beta)`` the mean NLL.
    """
    beta = np.zeros(d + 1)
    f = nll(beta)
    g = np.zeros(d + 1)
    it = 0
    for it in range(max_iter + 1):
        g = grad_hess(beta, False)
        if np.max(np.abs(g)) < gtol or it == max_iter:
            break
        g, h = grad_hess(beta, True)
        try:
            step = -np.linalg.solve(h + 1e-300 * np.eye(d + 1), g)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(h, g, rcond=None)[0]
        if not np.all(np.isfinite(step)) or not g @ step < 0:
            step = -g
        tt = 1.0
        for _ in range(60):  # backtracking; 4 eps |f| of slack lets rounding noise at the optimum through
            fn = nll(beta + tt * step)
            if np.isfinite(fn) and fn <= f + 1e-4 * tt * (g @ step) + 4e-16 * abs(f):
                break
            tt *= 0.5
        else:
            break
        beta, f = beta + tt * step, fn
    return beta[:d], float(beta[d]), float(np.max(np.abs(g))), it


def constrained_beta_fit(lp: np.ndarray, l1mp: np.ndarray, t: np.ndarray, *, gtol: float = 1e-10,
                         weight: np.ndarray | None = None):
    r"""``(a, b, c, grad_max, n_iter)``: the maximum-likelihood beta map with :math:`a, b \ge 0`.

    The NLL of :math:`\sigma(a \ln p - b \ln(1 - p) + c)` is convex; its minimum over :math:`a, b \ge 0`
    is the best of the unconstrained minima on the four faces of the quadrant (both free,
    :math:`a = 0`, :math:`b = 0`, both 0) that satisfy the constraints (each is a logistic regression
    on the remaining features). This is the refit-without-the-negative-coefficient procedure of
    Kull et al. (2017), made exact: every face is tried, so the result is the constrained optimum.
    ``weight`` (one per entry; ``None``: all 1) makes the NLL a weighted mean.
    """
    x = np.stack([lp, -l1mp], axis=1)
    return constrained_beta_on(lambda free: logistic_newton(x[:, list(free)], t, gtol=gtol, weight=weight),
                               lambda ab, c: _nll(x @ ab + c, t, weight))


def constrained_beta_on(fit_face, nll) -> tuple[float, float, float, float, int]:
    """:func:`constrained_beta_fit` on callbacks: ``fit_face(free)`` is :func:`logistic_newton` on the
    features ``free`` (a tuple of 0 = ln p, 1 = -ln(1 - p)); ``nll(ab, c)`` the mean NLL of the map."""
    best = None
    for free in ((0, 1), (0,), (1,), ()):
        w, c, gmax, it = fit_face(free)
        if np.any(w < 0):
            continue
        ab = np.zeros(2)
        ab[list(free)] = w
        f = nll(ab, c)
        if best is None or f < best[0] - 1e-15:
            best = (f, ab, c, gmax, it)
    _, ab, c, gmax, it = best
    return float(ab[0]), float(ab[1]), float(c), gmax, it


class BetaCalibration(Scaler):
    r"""Beta calibration (Kull, Silva Filho & Flach 2017): a three-parameter map of :math:`\ln p` and :math:`\ln(1-p)`.

    .. math:: \operatorname{logit} q = a \ln p - b \ln(1 - p) + c, \qquad a, b \ge 0

    It contains the identity (:math:`a = b = 1, c = 0`) and, unlike Platt scaling, maps that are not
    sigmoids of the logit (:math:`a \ne b`: over-confident near one end and under-confident near the
    other). Fitted per column by maximum likelihood under :math:`a, b \ge 0` (which keeps the map
    non-decreasing): the paper's constrained logistic regression, solved exactly
    (:func:`constrained_beta_fit`). :math:`\ln p` and :math:`\ln(1 - p)` are computed from the logits
    as :math:`\log\sigma(\pm z)` (multiclass: ``log_softmax`` and ``log1mexp``), exact at the edges.

    Binary and multilabel: the calibrated logit of each column. Multiclass (one-vs-rest): one map per
    class against the rest; ``transform`` returns :math:`\log q_c = \log\sigma(\cdot)`, so the softmax
    of the result is the renormalised row :math:`q_c / \sum_k q_k`. ``transform`` is written in the
    input's array library (autograd flows through it). ``sample_weight`` makes each column's NLL the
    weighted mean over its kept entries (entry weight: the row's weight), as repeating the rows would.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        gtol: convergence tolerance on the largest gradient entry.

    Attributes (after :meth:`fit`):
        a_, b_, c_: floats (binary) or ``(C,)`` arrays.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import BetaCalibration
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=4000) * 2; y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-z))).astype(int)
        >>> bc = BetaCalibration("binary").fit(3 * z, y)   # over-confident by a factor 3: a = b = 1/3
        >>> round(bc.a_, 2), round(bc.b_, 2), round(bc.c_, 2)
        (0.33, 0.33, 0.0)
    """

    tasks = ("binary", "multiclass", "multilabel")
    _params = ("a", "b", "c")
    method = "beta"

    a_: Any = None
    b_: Any = None
    c_: Any = None

    def __init__(self, task: str = "binary", *, gtol: float = 1e-10, space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)

    def describe(self) -> str:
        per = " per class" if np.size(self.a_) > 1 else ""
        return (f"beta calibration{per}, a {describe_numbers(self.a_)}, b {describe_numbers(self.b_)}, "
                f"c {describe_numbers(self.c_)}")

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        bounds = {"lo": 0.0, "hi": np.inf} if name in ("a", "b") else {}  # a, b >= 0: a non-decreasing map
        if self.task == "binary":
            return F.number(value, where, **bounds)
        return F.numbers_of(value, where, self.n_classes_, **bounds)

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        warn_small(z.shape[0], 3, f"BetaCalibration(task={self.task!r})", "; TemperatureScaling fits 1 parameter")
        fits = []
        for col, (lp, l1mp, tc, wc) in enumerate(kept_columns(z, y, valid, self.task, weight)):
            require_entries(col, tc, "BetaCalibration")
            self._warn_few(col, tc.sum(), tc.size - tc.sum(), stacklevel=5)  # row counts, not weights
            fits.append(constrained_beta_fit(lp, l1mp, tc, gtol=self.gtol, weight=wc))
        return self._finish(fits)

    def _warn_few(self, col: int, npos: float, nneg: float, stacklevel: int) -> None:
        if npos < 5 or nneg < 5:
            warnings.warn(f"column {col} has {int(npos)} positive and {int(nneg)} negative "
                          "calibration sample(s); its beta fit rests on very few examples", UserWarning,
                          stacklevel=stacklevel)

    def _finish(self, fits: list) -> dict[str, Any]:
        out = np.array([f[:3] for f in fits]).T.reshape(3, -1)
        gmax, its = max(f[3] for f in fits), max(f[4] for f in fits)
        if self.task == "binary":
            self.a_, self.b_, self.c_ = (float(v[0]) for v in out)
        else:
            self.a_, self.b_, self.c_ = (v.copy() for v in out)
        return {"n_iter": int(its), "converged": gmax < max(self.gtol, 1e-6), "grad_max": gmax}

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> BetaCalibration:
        """Exact on Dask arrays: the same constrained Newton fits per column, every gradient, Hessian and
        line-search NLL one reduction of per-block sums (of ``d + 1`` and ``(d + 1)^2`` numbers)."""
        self.space_, self.axis_, self.n_classes_ = space, axis, data.n_classes
        warn_small(data.n, 3, f"BetaCalibration(task={self.task!r})", "; TemperatureScaling fits 1 parameter")
        npos, nent = data.reduce(partial(_beta_counts, task=self.task))
        fits = []
        for col in range(npos.size):
            self._warn_few(col, npos[col], nent[col] - npos[col], stacklevel=4)
            fits.append(constrained_beta_on(partial(_beta_face, data, self.task, col, gtol=self.gtol),
                                            partial(_beta_map_nll, data, self.task, col)))
        info = self._finish(fits)
        return self._record(data.n, data.nll(), data.nll(self._apply_np), info)

    def _apply(self, xp, z, ax):
        if self.task == "multiclass":
            lp = xp.clip(log_softmax(z, axis=ax), -LOGIT_CLIP, 0.0)
        else:
            lp = xp.clip(log_sigmoid(z), -LOGIT_CLIP, 0.0)
        l1mp = xp.clip(log1mexp(lp) if self.task == "multiclass" else log_sigmoid(-z), -LOGIT_CLIP, 0.0)
        if self.task == "binary":
            s = self.a_ * lp - self.b_ * l1mp + self.c_
        else:
            a, b, c = (self._per_class(xp, v, z, ax) for v in (self.a_, self.b_, self.c_))
            s = a * lp - b * l1mp + c
        # multiclass: log q_c, whose softmax is the renormalised one-vs-rest row
        return log_sigmoid(s) if self.task == "multiclass" else s



# ------------------------------------------------------------------------- the fit over Dask blocks
def _beta_columns(blk, task, col, free):
    """``(features, targets, weights)`` of column ``col``'s kept entries in one block (weights: the rows'
    sample weights, 1 without; entries of zero-weight rows left out, as in memory)."""
    from .._dask_calibration import block_weight

    z, y, valid, _ = blk
    w = block_weight(blk)
    zz = z.reshape(z.shape[0], -1)
    lp, l1mp = column_logs(zz, task)
    t, v = column_targets(y, valid, task, zz.shape[1], weight=w)
    keep = slice(None) if v is None else v[:, col]
    x = np.stack([lp[keep, col], -l1mp[keep, col]], axis=1)[:, list(free)]
    tc = t[keep, col]
    wc = np.ones(tc.shape) if w is None else np.asarray(w, dtype=np.float64)[keep]
    return np.hstack([x, np.ones((x.shape[0], 1))]), tc, wc


def _beta_counts(blk, task):
    if blk is None:
        return None
    from .._dask_calibration import entry_weights

    z, y, valid, _ = blk
    t, _ = column_targets(y, valid, task, z.reshape(z.shape[0], -1).shape[1])
    w = entry_weights(blk)  # the row's weight on each kept entry, 0 on masked ones
    return np.sum(t * w, axis=0), np.sum(w, axis=0)


def _beta_part(blk, task, col, free, beta, hessian):
    """One block's weighted sums: the NLL (``hessian`` None), or the gradient and Hessian of a column's face."""
    if blk is None:
        return None
    xa, t, w = _beta_columns(blk, task, col, free)
    s = xa @ beta
    if hessian is None:  # -[t log sigma(s) + (1 - t) log sigma(-s)]: both logs exact for large |s|
        per = t * np.asarray(log_sigmoid(s)) + (1 - t) * np.asarray(log_sigmoid(-s))
        return float(-np.sum(w * per)), float(np.sum(w))
    q = np.exp(np.asarray(log_sigmoid(s)))
    curv = w * q * np.exp(np.asarray(log_sigmoid(-s)))
    return xa.T @ (w * (q - t)), (xa * curv[:, None]).T @ xa, float(np.sum(w))


def _beta_nll(data, task, col, free, beta):
    total, n = data.reduce(partial(_beta_part, task=task, col=col, free=free, beta=beta, hessian=None))
    return total / (n if n > 0 else 1.0)


def _beta_face(data, task, col, free, *, gtol):
    """:func:`logistic_newton` on the features ``free`` of column ``col``, from Dask block sums."""
    last: dict = {}

    def grad_hess(beta, hessian):
        if last.get("beta") is None or not np.array_equal(last["beta"], beta):  # one reduction per point
            g, h, n = data.reduce(partial(_beta_part, task=task, col=col, free=free, beta=beta.copy(), hessian=True))
            n = n if n > 0 else 1.0  # a weight sum (below 1 with small weights)
            last.update(beta=beta.copy(), g=g / n, h=h / n)
        return (last["g"], last["h"]) if hessian else last["g"]

    return logistic_newton_on(grad_hess, partial(_beta_nll, data, task, col, free), len(free), gtol=gtol)


def _beta_map_nll(data, task, col, ab, c):
    return _beta_nll(data, task, col, (0, 1), np.r_[ab, c])
