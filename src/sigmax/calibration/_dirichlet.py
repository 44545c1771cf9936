r"""Dirichlet calibration (Kull et al. 2019): a linear map of the log-probabilities, ODIR-regularised."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._array import like
from ..activations import log_softmax
from . import _format as F
from ._columns import check_weight_sum, cv_folds
from ._logits import LOGIT_CLIP
from ._params import as_given
from ._scalers import Scaler, describe_numbers
from ._solvers import lbfgs

__all__ = ["DEFAULT_GRID", "NEWTON_MAX_CLASSES", "DirichletCalibration", "fit_dirichlet", "dirichlet_logits"]

#: the ODIR strengths :math:`\lambda` tried by cross-validation (largest first: each fit warm-starts the next)
DEFAULT_GRID = (100.0, 10.0, 1.0, 0.1, 0.01, 1e-3)


def dirichlet_logits(lp: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``lp @ W.T + b``: the calibrated logits of ``(rows, C)`` log-probabilities."""
    return lp @ w.T + b


def _log_probs(z: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(log_softmax(z, axis=1)), -LOGIT_CLIP, 0.0)  # finite features for p = 0


#: up to this many classes Dirichlet calibration is fitted by Newton's method (a (C^2 + C)-square Hessian)
NEWTON_MAX_CLASSES = 32


def fit_dirichlet(lp: np.ndarray, y: np.ndarray, lam: float, *, x0: np.ndarray | None = None,
                  gtol: float = 1e-7, max_iter: int = 100,
                  weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float, int]:
    r"""``(W, b, grad_max, n_iter)`` minimising the ODIR-regularised NLL of :math:`\operatorname{softmax}(W \ell + b)`.

    .. math:: -\frac1N \sum_i \log \operatorname{softmax}(W \ell_i + b)_{y_i}
              + \frac{\lambda}{C(C-1)} \sum_{j \ne k} W_{jk}^2 + \frac{\lambda}{C} \sum_j b_j^2

    with :math:`\ell = \log p`, from ``x0`` (default the identity :math:`W = I, b = 0`): Newton's method
    with the exact Hessian and a backtracking line search up to :data:`NEWTON_MAX_CLASSES` classes (the
    log-probability features are badly scaled, which first-order methods pay for in thousands of
    steps), L-BFGS above. The objective is convex, so both reach the one minimum. ``weight`` (one per
    row, positive sum; ``None``: all 1) makes the NLL the weighted mean
    :math:`\sum_i w_i \ell_i / \sum_i w_i` (the penalty unchanged), as repeating row :math:`i`
    :math:`w_i` times would.
    """
    n, c = lp.shape
    d = c + 1
    x = np.hstack([lp, np.ones((n, 1))])  # features [log p, 1]: V = [W | b] maps them to logits
    onehot = np.zeros((n, c))
    onehot[np.arange(n), y] = 1.0
    k_off = 2.0 * lam / max(c * (c - 1), 1)
    pen = np.full((c, d), k_off)  # the penalty's second derivative per entry of V
    pen[np.arange(c), np.arange(c)] = 0.0  # the diagonal of W is free
    pen[:, c] = 2.0 * lam / c  # the intercepts
    v0 = np.hstack([np.eye(c), np.zeros((c, 1))]).ravel() if x0 is None else np.asarray(x0, dtype=np.float64)
    # the mean's weights: 1/n each, or w / sum(w)
    m = np.full(n, 1.0 / n) if weight is None else np.asarray(weight, dtype=np.float64) / np.sum(weight)

    def f_g(v, hess=False):
        vm = v.reshape(c, d)
        s = np.asarray(log_softmax(x @ vm.T, axis=1))
        f = -np.sum(m * s[np.arange(n), y]) + 0.5 * np.sum(pen * vm * vm)
        p = np.exp(s)
        g = ((m[:, None] * (p - onehot)).T @ x + pen * vm).ravel()
        if not hess:
            return f, g
        q = (p[:, :, None] * x[:, None, :]).reshape(n, c * d)
        h = -(q.T @ (m[:, None] * q))  # the softmax Hessian: diag(p) - p p^T, per row, times x x^T
        for j in range(c):
            h[j * d:(j + 1) * d, j * d:(j + 1) * d] += (x * (m[:, None] * p[:, j:j + 1])).T @ x
        h[np.diag_indices_from(h)] += pen.ravel()
        return f, g, h

    if c > NEWTON_MAX_CLASSES:
        v, _, g, it = lbfgs(f_g, v0, gtol=gtol, max_iter=20 * max_iter)
        return v.reshape(c, d)[:, :c].copy(), v.reshape(c, d)[:, c].copy(), float(np.max(np.abs(g))), int(it)
    v = v0.copy()
    f, g, h = f_g(v, True)
    it = 0
    for it in range(1, max_iter + 1):
        if np.max(np.abs(g)) < gtol:
            it -= 1
            break
        # the NLL is flat along V -> V + 1 u^T (softmax ignores a shift shared by all classes): a tiny ridge
        # keeps the Newton system solvable where the penalty does not reach (lam = 0)
        h[np.diag_indices_from(h)] += 1e-10 * (1.0 + np.max(np.abs(np.diag(h))))
        try:
            step = -np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            step = -g
        if not g @ step < 0:
            step = -g
        t = 1.0
        for _ in range(60):  # backtracking; 4 eps |f| of slack lets rounding noise at the optimum through
            fn, gn = f_g(v + t * step)
            if np.isfinite(fn) and fn <= f + 1e-4 * t * (g @ step) + 4e-16 * abs(f):
                break
            t *= 0.5
        else:
            break
        v = v + t * step
        f, g, h = f_g(v, True)
    vm = v.reshape(c, d)
    return vm[:, :c].copy(), vm[:, c].copy(), float(np.max(np.abs(g))), int(it)


def _check_int(v: Any, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


class DirichletCalibration(Scaler):
    r"""Dirichlet calibration (Kull et al. 2019), multiclass: softmax of a linear map of the log-probabilities.

    .. math:: q = \operatorname{softmax}(W \log p + b), \qquad W \in \mathbb R^{C \times C},\ b \in \mathbb R^C

    with :math:`p = \operatorname{softmax}(z)`. It contains temperature scaling (:math:`W = I/T`),
    vector scaling on :math:`\log p` (diagonal :math:`W`) and the identity, and can move probability
    between particular pairs of classes. With :math:`C^2 + C` parameters it overfits without
    regularisation; ODIR (off-diagonal and intercept regularisation) adds

    .. math:: \frac{\lambda}{C(C-1)} \sum_{j \ne k} W_{jk}^2 + \frac{\lambda}{C} \sum_j b_j^2

    to the mean NLL (the diagonal is free, so strong regularisation tends to a per-class temperature;
    the paper's two strengths are tied here, :math:`\mu = \lambda`). :math:`\lambda` is chosen by
    ``folds``-fold cross-validation on the calibration set (folds stratified by label, seeded), as the
    grid value with the lowest held-out NLL; the grid is :data:`DEFAULT_GRID`
    :math:`\{100, 10, 1, 0.1, 0.01, 10^{-3}\}`, fitted from the largest down, each fit warm-started
    from the previous one. ``info_`` records the grid and each value's CV NLL. Give ``reg=`` to fix
    :math:`\lambda` and skip the search. Fitted by Newton's method from the identity (L-BFGS above 32 classes).
    ``sample_weight`` makes the NLL, in the fit and in the cross-validation, a weighted mean (rows of
    weight 0 are dropped before the folds are dealt); with a fixed ``reg``, integer weights give the
    fit of the rows repeated that many times (the folds deal rows, so a cross-validated ``reg`` can
    differ from the repeated rows' choice).

    Args:
        task: ``"multiclass"``.
        reg: a fixed :math:`\lambda \ge 0`, or ``None`` (default) to cross-validate ``grid``.
        grid: the :math:`\lambda` values to cross-validate (not saved; recorded in ``info_["grid"]``).
        folds, seed: the cross-validation folds (default 5, seed 0).
        gtol: convergence tolerance on the largest gradient entry.

    Attributes (after :meth:`fit`):
        weight_ ``(C, C)``, bias_ ``(C,)``, reg_ (the :math:`\lambda` used).

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import DirichletCalibration
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(3000, 3)); y = np.argmax(z + rng.gumbel(size=(3000, 3)), axis=1)
        >>> dc = DirichletCalibration(reg=1e-3).fit(2 * z, y)   # over-confident by 2: W close to I / 2
        >>> np.diag(dc.weight_).round(1)
        array([0.5, 0.5, 0.5])
    """

    tasks = ("multiclass",)
    _params = ("weight", "bias", "reg")
    _option_types = {"reg": numbers.Real, "folds": numbers.Integral, "seed": numbers.Integral,
                     "gtol": numbers.Real}
    method = "dirichlet"

    weight_: Any = None
    bias_: Any = None
    reg_: Any = None

    def __init__(self, task: str = "multiclass", *, reg: float | None = None, grid: Any = DEFAULT_GRID,
                 folds: int = 5, seed: int = 0, gtol: float = 1e-7, space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)
        if reg is not None and (isinstance(reg, bool) or not isinstance(reg, numbers.Real) or not reg >= 0
                                or not math.isfinite(reg)):
            raise ValueError(f"reg must be a finite number >= 0 (the ODIR strength) or None to cross-validate "
                             f"it, got {reg!r}")
        try:
            g = [float(v) for v in grid]
        except (TypeError, ValueError):
            g = []
        if not g or not all(math.isfinite(v) and v >= 0 for v in g):
            raise ValueError(f"grid must be a non-empty list of finite numbers >= 0, got {grid!r}")
        self.reg = None if reg is None else as_given(reg, float(reg))
        self.grid = as_given(grid, tuple(sorted(g, reverse=True)))
        self.folds = as_given(folds, _check_int(folds, "folds", 2))
        self.seed = as_given(seed, _check_int(seed, "seed", 0))

    def _task_error(self, task: str) -> str:
        return (f"DirichletCalibration is for task='multiclass' (softmax), got task={task!r}; for binary or "
                "multilabel scores use BetaCalibration (its one-class counterpart) or PlattScaling")

    def _options(self) -> dict[str, Any]:
        out: dict[str, Any] = {"folds": self.folds, "seed": self.seed, "gtol": self.gtol}
        if self.reg is not None:
            out["reg"] = self.reg
        return out

    def describe(self) -> str:
        return (f"Dirichlet calibration (ODIR lambda {self.reg_:.3g}), diagonal "
                f"{describe_numbers(np.diag(self.weight_))}")

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        c = self.n_classes_
        if name == "reg":
            return F.number(value, where, lo=0.0, hi=np.inf)
        if name == "bias":
            return F.numbers_of(value, where, c)
        if not isinstance(value, list) or len(value) != c:
            raise F.FieldError(where, f"must be a {c} x {c} matrix (a list of {c} rows)", value)
        return np.stack([F.numbers_of(row, f"{where}[{i}]", c) for i, row in enumerate(value)])

    def fold_losses(self, z: np.ndarray, y: np.ndarray, fold: np.ndarray,
                    weight: np.ndarray | None = None) -> dict[float, np.ndarray]:
        """Every grid value's out-of-fold NLL per row, on canonical ``(N, C)`` logits, for the given folds
        (each fold's fit weighted by the training rows' ``weight``; ``None``: all 1)."""
        lp = _log_probs(z)
        losses = {lam: np.zeros(z.shape[0]) for lam in self.grid}
        for f in np.unique(fold):
            tr, va = fold != f, fold == f
            wt = None if weight is None else weight[tr]
            x0 = None
            for lam in self.grid:  # largest first, each fit warm-started from the last
                w, b, _, _ = fit_dirichlet(lp[tr], y[tr], lam, x0=x0, gtol=self.gtol, weight=wt)
                x0 = np.hstack([w, b[:, None]]).ravel()
                s = np.asarray(log_softmax(dirichlet_logits(lp[va], w, b), axis=1))
                losses[lam][va] = -s[np.arange(s.shape[0]), y[va]]
        return losses

    def cross_validate(self, z: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> dict[float, float]:
        """The out-of-fold mean NLL of every grid value on canonical ``(N, C)`` logits ``z`` and labels ``y``
        (the weighted mean, and weighted fits, with ``weight``: one positive weight per row)."""
        losses = self.fold_losses(z, y, cv_folds(y, "multiclass", self.folds, self.seed), weight)
        return {lam: float(np.mean(v) if weight is None else np.sum(weight * v) / np.sum(weight))
                for lam, v in losses.items()}

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        info: dict[str, Any] = {}
        check_weight_sum(weight)
        if weight is not None:  # a weight of 0 is the row dropped (before the folds are dealt, too)
            keep = weight > 0
            z, y, weight = z[keep], y[keep], weight[keep]
        lam = self.reg
        if lam is None:
            if len(self.grid) == 1 or z.shape[0] < 2 * self.folds:
                lam = self.grid[-1] if len(self.grid) == 1 else max(self.grid)
                info["reg_choice"] = "too few rows to cross-validate: the largest grid value"
            else:
                cv = self.cross_validate(z, y, weight)
                lam = min(cv, key=lambda v: (cv[v], -v))  # ties: the stronger regularisation
                info.update(grid=list(self.grid), cv_nll=[cv[v] for v in self.grid],
                            reg_choice=f"{self.folds}-fold cross-validation")
        w, b, gmax, it = fit_dirichlet(_log_probs(z), y, lam, gtol=self.gtol, weight=weight)
        self.weight_, self.bias_, self.reg_ = w, b, float(lam)
        return {"n_iter": it, "converged": gmax < max(self.gtol, 1e-5), "grad_max": gmax, **info}

    def _apply(self, xp, z, ax):
        lp = xp.clip(log_softmax(z, axis=ax), -LOGIT_CLIP, 0.0)
        lp = xp.moveaxis(lp, ax, -1)
        w = like(xp, self.weight_.T, z, name="weights")
        out = lp @ w + like(xp, self.bias_, z, name="bias")
        return xp.moveaxis(out, -1, ax)
