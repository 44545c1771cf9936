r"""Calibration: temperature, vector and Platt scaling, threshold tuning; fit, transform, save, load.

A model is *calibrated* when, among the samples it gives probability 0.7, 70% are positive. Most
trained networks are over-confident; a one-parameter temperature fitted on held-out data usually fixes
most of it (Guo et al. 2017, "On Calibration of Modern Neural Networks").

==================================  ===============  ============================================
calibrator                          tasks            calibrated logits
==================================  ===============  ============================================
``TemperatureScaling()``            multiclass,      :math:`z / T` (one :math:`T > 0`; argmax kept)
                                    binary,
                                    multilabel
``TemperatureScaling(per_class=     multilabel       :math:`z_c / T_c` (one :math:`T_c > 0` per label)
True)``
``VectorScaling()``                 multiclass       :math:`w \odot z + b` (per-class scale and bias)
``PlattScaling()``                  binary,          :math:`a_c z_c + b_c` (per label)
                                    multilabel
==================================  ===============  ============================================

Every calibrator is fitted by minimising the negative log-likelihood on a calibration set in float64
NumPy, to a gradient tolerance (not a fixed iteration count), with probabilities from sigmax's own
``softmax`` / ``log_softmax`` / ``sigmoid`` / ``log_sigmoid``. Temperatures are fitted on
:math:`u = \log T`, so :math:`T > 0`, by a safeguarded Newton iteration (a Newton step when it stays
inside the bracket of the minimum, bisection otherwise). Platt scaling uses Newton's method per label
(two parameters each) and vector scaling a small built-in L-BFGS; both problems are convex. SciPy is
not needed.

``transform`` works on NumPy, PyTorch (autograd flows through) and JAX arrays and returns calibrated
*logits* of the input's array type, device and dtype; ``predict_proba`` returns probabilities.
:func:`tune_thresholds` picks per-class decision thresholds, and :class:`Calibrator` bundles a scaler
with thresholds. Everything saves to and loads from JSON (:func:`load`).

Example:
    >>> import numpy as np
    >>> from sigmax.calibration import TemperatureScaling
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(size=(2000, 4)) * 2
    >>> labels = (rng.uniform(size=(2000, 1)) > np.cumsum(np.exp(true_logits) /
    ...           np.exp(true_logits).sum(1, keepdims=True), axis=1)).sum(1)
    >>> ts = TemperatureScaling().fit(3.0 * true_logits, labels)   # a model 3x over-confident
    >>> round(ts.temperature, 1)
    2.9
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from typing import Any

import numpy as np

from ._array import finish, like, normalize_axis, prepare, resolve_axis
from .activations import log_sigmoid, log_softmax, logit, sigmoid, softmax
from .interpret import (
    to_log_probs,
    to_probs,
    validate_log_probs,
    validate_probs,
    validate_space,
    validate_task,
)
from .metrics import _canonical, _log1mexp, nll

__all__ = [
    "Calibrator",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "from_dict",
    "load",
    "tune_thresholds",
]

FORMAT_VERSION = 1
#: fewer calibration samples than this per fitted parameter gives a UserWarning
MIN_SAMPLES_PER_PARAMETER = 30
#: logits from probabilities of exactly 0 or 1 (+-inf) are clipped here: exp(-745) is 0 in float64
_LOGIT_CLIP = 745.0
_LOG_T_BOUND = 20.0  # |log T| <= 20: T in [2e-9, 5e8]


# --------------------------------------------------------------------------------------------
# scores -> logits
# --------------------------------------------------------------------------------------------


def _fit_logits(scores: Any, labels: Any, task: str, space: str, axis: Any) -> tuple[np.ndarray, np.ndarray]:
    """Float64 NumPy logits and labels in the canonical layout (class axis last, rows flattened)."""
    s, y = _canonical(scores, labels, task, axis)
    with np.errstate(all="ignore"):
        if space == "logits":
            z = s
        elif task == "multiclass":
            if space == "log_probs":
                validate_log_probs(s, task)
            z = np.asarray(to_log_probs(s, task, space=space))  # log p are logits: softmax(log p) = p
        elif space == "probs":
            validate_probs(s, task)
            z = np.asarray(logit(s))
        else:
            validate_log_probs(s, task)
            s = np.minimum(s, 0.0)  # validation allows a rounding above 0
            z = s - _log1mexp(s)  # logit = log p - log(1 - p), with log(1 - p) from log p accurately
    bad = ~np.isfinite(z)
    if bad.any():
        # masked classes (-inf logits) and probabilities of exactly 0 or 1 (+-inf): a finite stand-in
        # 745 beyond every finite logit has probability exactly 0 (exp(-745) underflows), as +-inf has,
        # and keeps the gradients finite (0 * inf would be NaN)
        big = _LOGIT_CLIP + (float(np.max(np.abs(z[~bad]))) if (~bad).any() else 0.0)
        z = np.where(bad, np.sign(z) * big, z)
    if z.ndim == 2 and task == "binary":  # pragma: no cover - _canonical flattens binary
        z = z.reshape(-1)
    return z, y


def _log1mexp_xp(xp, a):
    # log(1 - exp(a)) for a <= 0 (Maechler 2012): -expm1 near 0, log1p(-exp) far from 0
    near = a > -math.log(2.0)
    return xp.where(near, xp.log(-xp.expm1(xp.where(near, a, -1.0))), xp.log1p(-xp.exp(xp.where(near, -1.0, a))))


def _logits_xp(scores: Any, task: str, space: str, axis: Any):
    """``(prepared, logits)`` in the input's library and compute dtype (for ``transform``)."""
    if space == "logits":
        p = prepare(scores, name="scores")
        return p, p.x
    if task == "multiclass":
        if space == "log_probs":
            validate_log_probs(scores, task, axis=axis)
        lp = to_log_probs(scores, task, space=space, axis=axis)  # validates declared probabilities
        p = prepare(lp, name="scores")
        z = p.x
    else:
        p = prepare(scores, name="scores")
        if space == "probs":
            validate_probs(scores, task)
            z = logit(p.x)
        else:
            validate_log_probs(scores, task, axis=axis)
            lp = p.xp.where(p.x > 0, 0.0, p.x)  # validation allows a rounding above 0
            z = lp - _log1mexp_xp(p.xp, lp)
    return p, p.xp.clip(z, -_LOGIT_CLIP, _LOGIT_CLIP)


# --------------------------------------------------------------------------------------------
# solvers
# --------------------------------------------------------------------------------------------


def _solve_log_temperature(deriv, k: int, *, gtol: float, max_iter: int = 200):
    r"""Minimise ``k`` independent 1-D NLLs over :math:`u = \log T` by safeguarded Newton.

    ``deriv(b)`` returns ``(dNLL/db, d2NLL/db2)`` at :math:`b = 1/T` (arrays of length ``k``). The NLL is
    convex in :math:`b`, so :math:`g(u) = dNLL/du = -b\,NLL'(b)` changes sign once, from negative to
    positive: the minimum is bracketed, a Newton step in :math:`u` is taken when it stays inside the
    bracket and bisection otherwise, until :math:`|g| <` ``gtol``.

    Returns ``(u, g, n_iter, converged, at_bound)``.
    """

    def g_h(u):
        b = np.exp(-u)
        f1, f2 = deriv(b)
        return -b * f1, b * f1 + b * b * f2  # chain rule for u = log T = -log b

    u = np.zeros(k)  # start at T = 1: the identity
    lo, hi = np.full(k, -_LOG_T_BOUND), np.full(k, _LOG_T_BOUND)
    g, h = g_h(u)
    done = np.abs(g) < gtol
    it = 0
    for it in range(1, max_iter + 1):
        lo = np.where(g < 0, np.maximum(lo, u), lo)  # g < 0: the minimum lies at larger u
        hi = np.where(g > 0, np.minimum(hi, u), hi)
        if done.all():
            it -= 1
            break
        with np.errstate(all="ignore"):
            newton = u - g / h
        ok = (h > 0) & np.isfinite(newton) & (newton > lo) & (newton < hi)
        u = np.where(done, u, np.where(ok, newton, 0.5 * (lo + hi)))
        g, h = g_h(u)
        done = done | (np.abs(g) < gtol) | (hi - lo < 1e-13)
    at_bound = np.abs(u) > _LOG_T_BOUND - 1e-6
    return u, g, it, bool(np.all(np.abs(g) < gtol) or np.all(done)), at_bound


def _lbfgs(fg, x0: np.ndarray, *, gtol: float, max_iter: int = 1000, memory: int = 10):
    """Minimise a smooth convex ``f`` with L-BFGS and a backtracking (Armijo) line search.

    ``fg(x)`` returns ``(f, grad)``. Stops when ``max|grad| < gtol``. Returns ``(x, f, grad, n_iter)``.
    (Nocedal & Wright, *Numerical Optimization*, algorithm 7.4 and 7.5.)
    """
    x = x0.astype(np.float64).copy()
    f, g = fg(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    it = 0
    for it in range(max_iter):
        if np.max(np.abs(g)) < gtol:
            return x, f, g, it
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist)):  # two-loop recursion
            rho = 1.0 / (y @ s)
            a = rho * (s @ q)
            q -= a * y
            alphas.append((rho, a, s, y))
        gamma = (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1]) if s_hist else 1.0 / max(1.0, np.linalg.norm(g))
        r = gamma * q
        for rho, a, s, y in reversed(alphas):
            r += s * (a - rho * (y @ r))
        d = -r
        gd = g @ d
        if not gd < 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g / max(1.0, np.linalg.norm(g))
            gd = g @ d
        t = 1.0
        while True:
            xn = x + t * d
            fn, gn = fg(xn)
            # Armijo, with 4 eps |f| of slack so that rounding noise near the optimum does not stall it
            if np.isfinite(fn) and fn <= f + 1e-4 * t * gd + 4e-16 * abs(f):
                break
            t *= 0.5
            if t < 1e-16:  # no decrease possible at float64 resolution
                return x, f, g, it
        if np.max(np.abs(xn - x)) <= 1e-15 * (1.0 + np.max(np.abs(x))):  # the step no longer moves x
            return xn, fn, gn, it + 1
        s, y = xn - x, gn - g
        if s @ y > 1e-12 * (y @ y):  # keep the curvature pairs that keep the Hessian estimate positive
            s_hist.append(s)
            y_hist.append(y)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        x, f, g = xn, fn, gn
    return x, f, g, it + 1


def _newton_logistic(z: np.ndarray, t: np.ndarray, *, gtol: float, max_iter: int = 100):
    r"""Fit :math:`\sigma(a_k z_k + b_k)` to targets :math:`t_k` for every column ``k`` independently.

    Newton's method on each column's 2-parameter convex NLL (exact 2x2 Hessian), vectorised over the
    columns, with a per-column backtracking line search; quadratic convergence to ``max|grad| < gtol``.
    Returns ``(a, b, grad, n_iter)``.
    """
    k = z.shape[1]
    a, b = np.ones(k), np.zeros(k)  # the identity

    def loss(a, b):
        x = z * a + b
        # -[t log sigma(x) + (1 - t) log sigma(-x)]: both logs exact for large |x|
        return -np.mean(t * np.asarray(log_sigmoid(x)) + (1 - t) * np.asarray(log_sigmoid(-x)), axis=0)

    f = loss(a, b)
    it = 0
    for it in range(max_iter + 1):
        x = z * a + b
        q = np.asarray(sigmoid(x))
        r = q - t
        ga, gb = np.mean(r * z, axis=0), np.mean(r, axis=0)
        if max(np.max(np.abs(ga)), np.max(np.abs(gb))) < gtol or it == max_iter:
            break
        s = q * np.asarray(sigmoid(-x))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
        haa, hab, hbb = np.mean(s * z * z, axis=0), np.mean(s * z, axis=0), np.mean(s, axis=0)
        det = haa * hbb - hab * hab
        ok = det > 1e-300
        with np.errstate(all="ignore"):
            da = np.where(ok, -(hbb * ga - hab * gb) / det, -ga)  # Newton step (gradient step if singular)
            db = np.where(ok, -(haa * gb - hab * ga) / det, -gb)
        slope = ga * da + gb * db
        step = np.ones(k)
        for _ in range(60):  # backtracking; 4 eps |f| of slack lets rounding noise at the optimum through
            fn = loss(a + step * da, b + step * db)
            good = np.isfinite(fn) & (fn <= f + 1e-4 * step * slope + 4e-16 * np.abs(f))
            if good.all():
                break
            step = np.where(good, step, 0.5 * step)
        a, b, f = a + step * da, b + step * db, fn
    return a, b, np.concatenate([ga, gb]), it


def _onehot(y: np.ndarray, c: int) -> np.ndarray:
    out = np.zeros((y.shape[0], c))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


# --------------------------------------------------------------------------------------------
# scalers
# --------------------------------------------------------------------------------------------


def _warn_small(n: int, n_params: int, what: str, alternative: str = "") -> None:
    if n < MIN_SAMPLES_PER_PARAMETER * n_params:
        warnings.warn(
            f"{what} fits {n_params} parameter(s) on {n} calibration sample(s); with fewer than "
            f"{MIN_SAMPLES_PER_PARAMETER} samples per parameter (here {MIN_SAMPLES_PER_PARAMETER * n_params}) "
            f"the fit may overfit the calibration set{alternative}",
            UserWarning, stacklevel=4)


def _check_gtol(gtol: Any) -> float:
    if isinstance(gtol, bool) or not isinstance(gtol, numbers.Real) or not 0 < gtol < 1:
        raise ValueError(f"gtol must be a number in (0, 1), got {gtol!r}")
    return float(gtol)


class _Scaler:
    """Shared plumbing: fit on float64 NumPy, transform in the input's library, JSON round trip."""

    _tasks: tuple[str, ...] = ()
    _params: tuple[str, ...] = ()

    def __init__(self, task: str, *, gtol: float):
        task = validate_task(task)
        if task not in self._tasks:
            raise ValueError(self._task_error(task))
        self.task = task
        self.gtol = _check_gtol(gtol)
        self.space_: str | None = None
        self.axis_: int = -1
        self.n_classes_: int | None = None
        self.info_: dict[str, Any] = {}

    def _task_error(self, task: str) -> str:  # pragma: no cover - overridden
        return f"{type(self).__name__} does not support task={task!r}"

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, scores: Any, labels: Any, *, space: str = "logits", axis: int = -1,
            dim: int | None = None) -> _Scaler:
        """Fit on a calibration set (held out from training); returns ``self``. See the class docstring."""
        space = validate_space(space)
        axis = resolve_axis(axis, dim)
        z, y = _fit_logits(scores, labels, self.task, space, axis)
        self.space_, self.axis_ = space, axis
        self.n_classes_ = None if self.task == "binary" else int(z.shape[1])
        before = nll(z, y, self.task)
        info = self._fit(z, y)
        after = nll(self._apply_np(z), y, self.task)
        self.info_ = {"n_samples": int(z.shape[0]), "nll_before": before, "nll_after": after, **info}
        if not info.get("converged", True):
            warnings.warn(f"{type(self).__name__} did not reach the gradient tolerance {self.gtol:g} "
                          f"(gradient {info.get('grad_max', float('nan')):.3g} after {info.get('n_iter')} "
                          "iterations); the calibration set may be separable or degenerate",
                          UserWarning, stacklevel=2)
        return self

    def _fit(self, z: np.ndarray, y: np.ndarray) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- applying -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.space_ is None:
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call .fit(scores, labels) first "
                             "(or load a saved one with sigmax.calibration.load)")

    def _class_axis(self, z) -> int | None:
        if self.task == "binary":
            return None
        if z.ndim < 1:
            raise ValueError(f"{self.task} scores need a class axis, got a scalar")
        ax = normalize_axis(self.axis_, z.ndim)
        if self.n_classes_ is not None and z.shape[ax] != self.n_classes_:
            raise ValueError(f"scores have {z.shape[ax]} classes along axis {self.axis_} but this "
                             f"{type(self).__name__} was fitted on {self.n_classes_}; use the same model's scores")
        return ax

    def _per_class(self, xp, values: np.ndarray, z, ax):
        """A per-class parameter vector as an array of z's library/dtype, broadcast along the class axis."""
        v = like(xp, np.asarray(values, dtype=np.float64).tolist(), z, name="parameters")
        if ax is None or v.ndim == 0:
            return v
        return xp.reshape(v, tuple(-1 if i == ax else 1 for i in range(z.ndim)))

    def transform(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated logits of ``scores``, with the input's array type, device and dtype.

        Args:
            scores: scores of the task this was fitted for.
            space: what ``scores`` are; by default the space given to :meth:`fit`. Probabilities and
                log-probabilities are turned into logits first (``log p`` for multiclass, ``logit(p)``
                otherwise; probabilities of exactly 0 or 1 become logits of -745 / +745).

        Returns:
            Logits (feed them to ``softmax``/``sigmoid``, a loss or :func:`sigmax.interpret.interpret`).
        """
        self._check_fitted()
        space = self.space_ if space is None else validate_space(space)
        p, z = _logits_xp(scores, self.task, space, self.axis_)
        return finish(p, self._apply(p.xp, z, self._class_axis(z)))

    def predict_proba(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated probabilities: ``softmax`` (multiclass) or ``sigmoid`` of :meth:`transform`."""
        return to_probs(self.transform(scores, space=space), self.task, axis=self.axis_)

    def _apply(self, xp, z, ax):  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_np(self, z: np.ndarray) -> np.ndarray:
        p = prepare(z, name="scores")
        return np.asarray(self._apply(p.xp, p.x, None if self.task == "binary" else z.ndim - 1))

    # -- saving -------------------------------------------------------------------------------

    def _param_dict(self) -> dict[str, Any]:
        out = {}
        for name in self._params:
            v = getattr(self, name + "_")
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (type, task, fitted parameters, fit information)."""
        self._check_fitted()
        return {"sigmax": "calibration", "format": FORMAT_VERSION, "type": type(self).__name__,
                "task": self.task, "space": self.space_, "axis": self.axis_, "n_classes": self.n_classes_,
                "options": self._options(), "params": self._param_dict(), "info": self.info_}

    def _options(self) -> dict[str, Any]:
        return {"gtol": self.gtol}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> _Scaler:
        obj = cls(d["task"], **dict(d.get("options", {})))
        obj.space_, obj.axis_, obj.n_classes_ = d["space"], d["axis"], d["n_classes"]
        for name in cls._params:
            v = d["params"][name]
            setattr(obj, name + "_", np.asarray(v, dtype=np.float64) if isinstance(v, list) else float(v))
        obj.info_ = dict(d.get("info", {}))
        return obj

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (read it back with :func:`sigmax.calibration.load`)."""
        _write_json(path, self.to_dict())

    def __repr__(self) -> str:
        if self.space_ is None:
            return f"{type(self).__name__}(task={self.task!r}, not fitted)"
        params = ", ".join(f"{k}={_short(v)}" for k, v in self._param_dict().items())
        return f"{type(self).__name__}(task={self.task!r}, {params})"


def _short(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v[:6]) + (", ..." if len(v) > 6 else "") + "]"
    return f"{v:.4g}"


class TemperatureScaling(_Scaler):
    r"""Temperature scaling: divide the logits by a fitted temperature :math:`T > 0`.

    .. math::
        \text{multiclass: } p = \operatorname{softmax}(z / T), \qquad
        \text{binary / multilabel: } p = \sigma(z / T) \;\; (\text{or } \sigma(z_c / T_c) \text{ with } \texttt{per\_class})

    :math:`T` minimises the calibration set's NLL. It is fitted on :math:`u = \log T` (so :math:`T > 0`)
    by a safeguarded Newton iteration to ``|dNLL/du| < gtol``. :math:`T > 1` softens an over-confident
    model, :math:`T < 1` sharpens an under-confident one; a positive scalar keeps every argmax and every
    sign of a binary logit, so accuracy is unchanged.

    Args:
        task: ``"multiclass"`` (softmax temperature), ``"binary"`` (sigmoid temperature) or
            ``"multilabel"`` (sigmoid per label).
        per_class: multilabel only: one temperature per label (fitted independently) instead of one
            shared by all labels.
        gtol: convergence tolerance on the gradient of the mean NLL with respect to :math:`\log T`.

    Attributes (after :meth:`fit`):
        temperature_: a float, or a ``(C,)`` array with ``per_class=True``. ``temperature`` is an alias.
        info_: ``n_samples``, ``nll_before``, ``nll_after``, ``n_iter``, ``converged``, ``grad_max``.

    Note:
        If the logits classify every calibration sample correctly, the NLL keeps falling as
        :math:`T \to 0` and there is no finite optimum: a warning says so (the fit stops at the gradient
        tolerance, or at the bound :math:`T = e^{-20}`; likewise :math:`T \to \infty` for scores unrelated
        to the labels). A UserWarning says when there are fewer than
        ``MIN_SAMPLES_PER_PARAMETER`` (30) samples per fitted parameter.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import TemperatureScaling
        >>> z = np.array([4.0, -3.0, 5.0, -4.0, 3.0, -5.0, 2.0, -2.0] * 10)
        >>> y = np.array([1, 0, 0, 0, 1, 1, 1, 0] * 10)
        >>> ts = TemperatureScaling("binary").fit(z, y)
        >>> round(ts.temperature, 3)
        6.522
        >>> ts.transform(np.array([4.0])).round(3), ts.predict_proba(np.array([4.0])).round(3)
        (array([0.613]), array([0.649]))
    """

    _tasks = ("multiclass", "binary", "multilabel")
    _params = ("temperature",)

    def __init__(self, task: str = "multiclass", *, per_class: bool = False, gtol: float = 1e-10):
        super().__init__(task, gtol=gtol)
        if per_class and self.task != "multilabel":
            raise ValueError("per_class=True is for task='multilabel' (one sigmoid temperature per label); for a "
                             "per-class multiclass rescaling use VectorScaling")
        self.per_class = bool(per_class)
        self.temperature_: Any = None

    @property
    def temperature(self) -> Any:
        """The fitted temperature (float, or ``(C,)`` array with ``per_class=True``)."""
        self._check_fitted()
        return self.temperature_

    def _options(self) -> dict[str, Any]:
        return {"per_class": self.per_class, "gtol": self.gtol}

    def _fit(self, z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        n = z.shape[0]
        if self.task == "multiclass":
            zy = z[np.arange(n), y]

            def deriv(b):
                bz = b[0] * z
                p = np.asarray(softmax(bz, axis=1))
                ez = np.sum(p * z, axis=1)
                var = np.sum(p * (z - ez[:, None]) ** 2, axis=1)  # Var_p(z), without E[z^2] - E[z]^2 cancellation
                return np.array([np.mean(ez - zy)]), np.array([np.mean(var)])

            k = 1
        else:
            zz = z.reshape(n, -1)
            yy = y.reshape(n, -1).astype(np.float64)
            if self.task == "multilabel" and not self.per_class:
                zz, yy = zz.reshape(-1, 1), yy.reshape(-1, 1)  # one temperature shared by every label

            def deriv(b):
                bz = zz * b
                q = np.asarray(sigmoid(bz))
                qq = q * np.asarray(sigmoid(-bz))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
                return np.mean((q - yy) * zz, axis=0), np.mean(qq * zz * zz, axis=0)

            k = zz.shape[1]
        if self.task == "multiclass":
            others = np.where(_onehot(y, z.shape[1]) == 1, -np.inf, z).max(axis=1)
            separable = bool(np.all(zy > others))
        else:
            separable = bool(np.any(np.all((zz > 0) == (yy == 1), axis=0) & np.all(zz != 0, axis=0)))
        if separable:
            warnings.warn("the calibration scores classify every calibration sample correctly (for at least one "
                          "label): the NLL keeps falling as T -> 0, so the fitted temperature only reflects the "
                          "stopping tolerance; calibrate on held-out data on which the model makes mistakes",
                          UserWarning, stacklevel=3)
        _warn_small(n, 1, f"TemperatureScaling(task={self.task!r}{', per_class=True' if self.per_class else ''})")
        u, g, it, converged, at_bound = _solve_log_temperature(deriv, k, gtol=self.gtol)
        if at_bound.any():
            warnings.warn("the fitted temperature reached its bound (log T = +-20): the calibration scores "
                          "separate the labels perfectly (T -> 0) or carry no information about them (T -> inf); "
                          "use a larger, held-out calibration set", UserWarning, stacklevel=3)
        t = np.exp(u)
        self.temperature_ = t if self.per_class else float(t[0])
        return {"n_iter": int(it), "converged": bool(converged), "grad_max": float(np.max(np.abs(g)))}

    def _apply(self, xp, z, ax):
        t = self.temperature_
        if isinstance(t, np.ndarray):
            return z / self._per_class(xp, t, z, ax)
        return z / t


class VectorScaling(_Scaler):
    r"""Vector scaling (multiclass): a fitted scale and bias per class, :math:`z' = w \odot z + b`.

    .. math:: p = \operatorname{softmax}(w \odot z + b), \qquad
              (w, b) = \arg\min -\frac1N \sum_i \log \operatorname{softmax}(w \odot z_i + b)_{y_i}
              + \frac{\lambda}{2} \big(\|w - 1\|^2 + \|b\|^2\big)

    More flexible than :class:`TemperatureScaling` (``2C`` parameters instead of 1), and it can change
    the argmax. Fitted by L-BFGS from the identity (:math:`w = 1, b = 0`) to ``max|grad| < gtol``; the
    problem is convex (strictly, with :math:`\lambda > 0`).

    Args:
        l2: :math:`\lambda`, a small pull toward the identity. A calibration set on which some class is
            perfectly separated otherwise drives its weight and bias to infinity (on scikit-learn's digits,
            600 samples, plain maximum likelihood doubles the held-out NLL; ``l2=1e-3`` lowers it).
            ``l2=0`` is Guo et al.'s unregularised vector scaling.
        gtol: convergence tolerance on the largest gradient entry of the objective.

    Attributes (after :meth:`fit`):
        weight_, bias_: ``(C,)`` arrays. ``info_`` as in :class:`TemperatureScaling`.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import VectorScaling
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(5000, 3)); y = np.argmax(z + rng.gumbel(size=(5000, 3)), axis=1)
        >>> vs = VectorScaling().fit(2 * z + [0.0, 1.0, 0.0], y)   # over-confident, biased to class 1
        >>> vs.weight_.round(1), (vs.bias_ - vs.bias_.mean()).round(1)
        (array([0.5, 0.5, 0.5]), array([ 0.1, -0.3,  0.2]))
    """

    _tasks = ("multiclass",)
    _params = ("weight", "bias")

    def __init__(self, task: str = "multiclass", *, l2: float = 1e-3, gtol: float = 1e-8):
        super().__init__(task, gtol=gtol)
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0 or not math.isfinite(l2):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.l2 = float(l2)
        self.weight_: Any = None
        self.bias_: Any = None

    def _options(self) -> dict[str, Any]:
        return {"l2": self.l2, "gtol": self.gtol}

    def _task_error(self, task: str) -> str:
        return (f"VectorScaling is for task='multiclass' (softmax), got task={task!r}; for binary or "
                "multilabel scores use PlattScaling (per-class a*z + b) or TemperatureScaling")

    def _fit(self, z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        n, c = z.shape
        _warn_small(n, 2 * c, f"VectorScaling with {c} classes", "; TemperatureScaling fits 1 parameter")
        onehot = _onehot(y, c)
        x0 = np.concatenate([np.ones(c), np.zeros(c)])  # the identity
        lam = self.l2

        def fg(x):
            a = z * x[:c] + x[c:]
            lp = np.asarray(log_softmax(a, axis=1))
            f = -np.mean(lp[np.arange(n), y]) + 0.5 * lam * np.sum((x - x0) ** 2)
            r = (np.exp(lp) - onehot) / n  # d(mean NLL)/d(logit) = (softmax - onehot) / N
            return f, np.concatenate([np.sum(r * z, axis=0), np.sum(r, axis=0)]) + lam * (x - x0)

        x, _, g, it = _lbfgs(fg, x0, gtol=self.gtol)
        self.weight_, self.bias_ = x[:c].copy(), x[c:].copy()
        gmax = float(np.max(np.abs(g)))
        return {"n_iter": int(it), "converged": gmax < max(self.gtol, 1e-6), "grad_max": gmax}

    def _apply(self, xp, z, ax):
        return z * self._per_class(xp, self.weight_, z, ax) + self._per_class(xp, self.bias_, z, ax)


class PlattScaling(_Scaler):
    r"""Platt scaling (binary, multilabel): a fitted slope and intercept per label, :math:`z' = a z + b`.

    .. math:: p_c = \sigma(a_c z_c + b_c), \qquad
              (a_c, b_c) = \arg\min -\frac1N \sum_i \big[t_{ic} \log p_{ic} + (1 - t_{ic}) \log(1 - p_{ic})\big]

    With ``prior_correction=True`` (default, Platt 1999 and scikit-learn's ``CalibratedClassifierCV``)
    the targets are :math:`t = (N_+ + 1) / (N_+ + 2)` for positives and :math:`1 / (N_- + 2)` for negatives,
    which keeps the fit finite when the calibration set is separable; with ``False`` they are the 0/1
    labels (plain maximum likelihood). Labels are fitted independently (one 2-parameter problem each),
    by Newton's method from the identity to ``max|grad| < gtol``.

    Args:
        task: ``"binary"`` or ``"multilabel"``.
        prior_correction: use Platt's smoothed targets (see above).
        gtol: convergence tolerance on the largest gradient entry.

    Attributes (after :meth:`fit`):
        weight_, bias_: floats (binary) or ``(C,)`` arrays (multilabel): :math:`a` and :math:`b`.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import PlattScaling
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=4000) * 2; y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-z))).astype(int)
        >>> ps = PlattScaling("binary").fit(3 * z - 1, y)   # over-confident and shifted
        >>> round(ps.weight_, 1), round(ps.bias_, 1)
        (0.3, 0.3)
    """

    _tasks = ("binary", "multilabel")
    _params = ("weight", "bias")

    def __init__(self, task: str = "binary", *, prior_correction: bool = True, gtol: float = 1e-10):
        super().__init__(task, gtol=gtol)
        self.prior_correction = bool(prior_correction)
        self.weight_: Any = None
        self.bias_: Any = None

    def _task_error(self, task: str) -> str:
        return (f"PlattScaling is for task='binary' or 'multilabel' (sigmoid), got task={task!r}; for "
                "multiclass scores use TemperatureScaling or VectorScaling")

    def _options(self) -> dict[str, Any]:
        return {"prior_correction": self.prior_correction, "gtol": self.gtol}

    def _fit(self, z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        n = z.shape[0]
        zz = z.reshape(n, -1)
        yy = y.reshape(n, -1).astype(np.float64)
        _warn_small(n, 2, f"PlattScaling(task={self.task!r})", "; TemperatureScaling fits 1 parameter per label")
        npos = yy.sum(axis=0)
        for c in np.flatnonzero((npos < 5) | (n - npos < 5)):
            warnings.warn(f"label {c} has {int(npos[c])} positive and {int(n - npos[c])} negative calibration "
                          "sample(s); its Platt fit rests on very few examples", UserWarning, stacklevel=3)
        if self.prior_correction:
            t = np.where(yy == 1, (npos + 1) / (npos + 2), 1.0 / (n - npos + 2))
        else:
            t = yy

        w, b, g, it = _newton_logistic(zz, t, gtol=self.gtol)
        if self.task == "binary":
            self.weight_, self.bias_ = float(w[0]), float(b[0])
        else:
            self.weight_, self.bias_ = w, b
        gmax = float(np.max(np.abs(g)))
        return {"n_iter": int(it), "converged": gmax < max(self.gtol, 1e-6), "grad_max": gmax}

    def _apply(self, xp, z, ax):
        if self.task == "binary":
            return z * self.weight_ + self.bias_
        return z * self._per_class(xp, self.weight_, z, ax) + self._per_class(xp, self.bias_, z, ax)


_SCALERS = {cls.__name__: cls for cls in (TemperatureScaling, VectorScaling, PlattScaling)}


# --------------------------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------------------------


def _between(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """A threshold ``t`` with ``below <= t < above``: the midpoint, or ``below`` where the midpoint rounds up."""
    mid = 0.5 * (above + below)
    return np.where(mid < above, mid, below)


def _tune_one(p: np.ndarray, y: np.ndarray, objective: str, target_precision, target_recall, name: str) -> float:
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    n_pos = float(ys.sum())
    ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last index of each group of equal scores
    tp = np.r_[0.0, np.cumsum(ys)[ends]]  # candidate 0 predicts nothing; candidate j the top j groups
    fp = np.r_[0.0, ends + 1.0] - tp
    fn = n_pos - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
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


def tune_thresholds(scores: Any, labels: Any, task: str, *, space: str = "logits", objective: str = "f1",
                    target_precision: float | None = None, target_recall: float | None = None,
                    axis: int = -1, dim: int | None = None) -> np.ndarray:
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
    tp, tr = _check_target(target_precision, "target_precision"), _check_target(target_recall, "target_recall")
    if tp is not None and tr is not None:
        raise ValueError("give at most one of target_precision and target_recall")
    s, y = _canonical(scores, labels, task, resolve_axis(axis, dim))
    p = np.asarray(to_probs(s, task, space=validate_space(space)), dtype=np.float64)
    if task == "binary":
        return np.asarray(_tune_one(p, y, objective, tp, tr, "the positive class"))
    return np.array([_tune_one(p[:, c], y[:, c], objective, tp, tr, f"label {c}") for c in range(p.shape[1])])


# --------------------------------------------------------------------------------------------
# Calibrator: a scaler and thresholds
# --------------------------------------------------------------------------------------------

_METHODS = ("temperature", "vector", "platt", None)


class Calibrator:
    r"""A fitted scaler plus decision thresholds, saved and loaded as one JSON file.

    .. math:: p = \operatorname{softmax}/\sigma(\text{scaler}(z)), \qquad \hat y = [\,p > t\,] \text{ (binary, multilabel)}

    ``method`` picks the scaler: ``"temperature"`` (:class:`TemperatureScaling`; one temperature per
    label for multilabel), ``"vector"`` (:class:`VectorScaling`, multiclass) or ``"platt"``
    (:class:`PlattScaling`, binary/multilabel), or ``None`` for no rescaling. ``tune`` picks
    thresholds on the *calibrated* probabilities: ``"f1"`` (:func:`tune_thresholds`) or ``None`` (0.5).
    Thresholds apply to binary and multilabel tasks; multiclass decisions are the argmax, so there
    ``thresholds`` stays ``None``.

    Attributes (after :meth:`fit`):
        task: the task. method: the scaler's name (or ``None``). scaler: the fitted scaler (or ``None``).
        thresholds: NumPy array of probability thresholds (0-d for binary, ``(C,)`` for multilabel) or
            ``None``; pass it as ``threshold=`` to :mod:`sigmax.metrics` (any scores), and as
            ``threshold=thresholds.tolist()`` to :func:`sigmax.interpret.interpret` on :meth:`transform`'s
            logits (a float or a list works for every array library; :meth:`predict` does this).

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import Calibrator
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(3000, 3)) * 3
        >>> y = (rng.uniform(size=(3000, 3)) < 1 / (1 + np.exp(-z / 3))).astype(int)
        >>> cal = Calibrator().fit(z, y, "multilabel", method="temperature", tune="f1")
        >>> cal.scaler.temperature.round(1), cal.thresholds.shape
        (array([2.7, 3. , 3.1]), (3,))
        >>> cal.predict(z[:2])
        array([[1, 1, 1],
               [1, 0, 1]])
    """

    def __init__(self):
        self.task: str | None = None
        self.method: str | None = None
        self.scaler: _Scaler | None = None
        self.thresholds: np.ndarray | None = None
        self.tune: str | None = None
        self.space_: str | None = None
        self.axis_: int = -1
        self._fitted = False

    def fit(self, scores: Any, labels: Any, task: str, method: str | None = "temperature", tune: str | None = "f1",
            *, space: str = "logits", axis: int = -1, target_precision: float | None = None,
            target_recall: float | None = None, dim: int | None = None) -> Calibrator:
        """Fit the scaler on a calibration set, then tune thresholds on its calibrated probabilities.

        Args:
            scores, labels: the calibration set (held out from training), as in :mod:`sigmax.metrics`.
            task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
            method: ``"temperature"``, ``"vector"`` (multiclass), ``"platt"`` (binary/multilabel) or ``None``.
            tune: ``"f1"`` or ``None``; ignored for multiclass. ``target_precision``/``target_recall`` tune
                for a target instead (see :func:`tune_thresholds`).
            space: what ``scores`` are; :meth:`transform` assumes the same unless told otherwise.

        Returns:
            ``self``.
        """
        task = validate_task(task)
        space = validate_space(space)
        axis = resolve_axis(axis, dim)
        if isinstance(method, str):
            method = method.lower()
            method = None if method == "none" else method
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}; use 'temperature', 'vector' (multiclass), 'platt' "
                             "(binary/multilabel) or None")
        if tune is not None and tune != "f1":
            raise ValueError(f"unknown tune {tune!r}; use 'f1' or None (give target_precision/target_recall for a "
                             "precision or recall target)")
        if method == "temperature":
            scaler: _Scaler | None = TemperatureScaling(task, per_class=(task == "multilabel"))
        elif method == "vector":
            scaler = VectorScaling(task)
        elif method == "platt":
            scaler = PlattScaling(task)
        else:
            scaler = None
        if scaler is not None:
            scaler.fit(scores, labels, space=space, axis=axis)
        self.task, self.method, self.scaler, self.space_, self.axis_ = task, method, scaler, space, axis
        self._fitted = True
        wants = tune is not None or target_precision is not None or target_recall is not None
        self.tune = tune if task != "multiclass" and wants else None
        self.thresholds = None
        if task != "multiclass" and wants:
            probs = self.predict_proba(scores, space=space)
            self.thresholds = tune_thresholds(probs, labels, task, space="probs", axis=axis,
                                              target_precision=target_precision, target_recall=target_recall)
            if target_precision is not None:
                self.tune = f"precision>={target_precision:g}"
            elif target_recall is not None:
                self.tune = f"recall>={target_recall:g}"
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ValueError("this Calibrator is not fitted yet: call .fit(scores, labels, task) first "
                             "(or load a saved one with sigmax.calibration.load)")

    def transform(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated logits, with the input's array type, device and dtype (see :meth:`TemperatureScaling.transform`)."""
        self._check_fitted()
        space = self.space_ if space is None else validate_space(space)
        if self.scaler is not None:
            return self.scaler.transform(scores, space=space)
        p, z = _logits_xp(scores, self.task, space, self.axis_)
        return finish(p, z)

    def predict_proba(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated probabilities (``softmax`` or ``sigmoid`` of :meth:`transform`)."""
        return to_probs(self.transform(scores, space=space), self.task, axis=self.axis_)

    def predict(self, scores: Any, *, space: str | None = None) -> Any:
        """Decisions on calibrated scores with the tuned thresholds (argmax for multiclass), via
        :func:`sigmax.interpret.interpret`."""
        from .interpret import interpret

        # a float or a list: interpret() turns lists into the scores' library (NumPy arrays it does not)
        th = None if self.thresholds is None else self.thresholds.tolist()
        z = self.transform(scores, space=space)
        return interpret(z, self.task, axis=self.axis_, threshold=th).predictions

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: task, method, the scaler's :meth:`~TemperatureScaling.to_dict`, thresholds."""
        self._check_fitted()
        return {"sigmax": "calibration", "format": FORMAT_VERSION, "type": "Calibrator", "task": self.task,
                "method": self.method, "space": self.space_, "axis": self.axis_, "tune": self.tune,
                "scaler": None if self.scaler is None else self.scaler.to_dict(),
                "thresholds": None if self.thresholds is None else self.thresholds.tolist()}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Calibrator:
        obj = cls()
        obj.task, obj.method, obj.space_, obj.axis_, obj.tune = d["task"], d["method"], d["space"], d["axis"], d["tune"]
        obj.scaler = None if d["scaler"] is None else from_dict(d["scaler"])
        obj.thresholds = None if d["thresholds"] is None else np.asarray(d["thresholds"], dtype=np.float64)
        obj._fitted = True
        return obj

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (read it back with :func:`sigmax.calibration.load`)."""
        _write_json(path, self.to_dict())

    def __repr__(self) -> str:
        if not self._fitted:
            return "Calibrator(not fitted)"
        th = None if self.thresholds is None else np.round(self.thresholds, 4).tolist()
        return f"Calibrator(task={self.task!r}, scaler={self.scaler!r}, thresholds={th})"


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _write_json(path: Any, d: dict[str, Any]) -> None:
    with open(os.fspath(path), "w", encoding="utf-8") as fh:
        json.dump(d, fh, indent=2, allow_nan=True)  # floats are written with repr: they round-trip exactly
        fh.write("\n")


def from_dict(d: dict[str, Any]) -> Any:
    """A calibrator (scaler or :class:`Calibrator`) from its ``to_dict()`` description.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import TemperatureScaling, from_dict
        >>> ts = TemperatureScaling("binary").fit(np.array([3.0, -2.0, 1.0, -1.0] * 10), np.array([1, 0, 0, 1] * 10))
        >>> from_dict(ts.to_dict()).temperature == ts.temperature
        True
    """
    if not isinstance(d, dict) or d.get("sigmax") != "calibration":
        raise ValueError("not a sigmax calibration description: expected a JSON object written by "
                         "Calibrator.save() or a scaler's save() (with \"sigmax\": \"calibration\")")
    if d.get("format") != FORMAT_VERSION:
        raise ValueError(f"calibration format {d.get('format')!r} is not supported by this sigmax (format "
                         f"{FORMAT_VERSION}); re-save it with a matching sigmax version")
    kind = d.get("type")
    try:
        if kind == "Calibrator":
            return Calibrator._from_dict(d)
        if kind in _SCALERS:
            return _SCALERS[kind]._from_dict(d)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"the {kind} description is incomplete or malformed ({exc!r}); re-save it") from exc
    raise ValueError(f"unknown calibrator type {kind!r}; known: Calibrator, {', '.join(_SCALERS)}")


def load(path: str | os.PathLike) -> Any:
    """Load a calibrator saved with ``.save(path)``: a :class:`Calibrator` or a scaler.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from sigmax.calibration import Calibrator, load
        >>> cal = Calibrator().fit(np.array([3.0, -2.0, 1.0, -1.0] * 10), np.array([1, 0, 0, 1] * 10), "binary")
        >>> path = os.path.join(tempfile.mkdtemp(), "cal.json")
        >>> cal.save(path)
        >>> bool(load(path).thresholds == cal.thresholds)
        True
    """
    try:
        with open(os.fspath(path), encoding="utf-8") as fh:
            d = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON ({exc}); give a file written by .save()") from exc
    return from_dict(d)
