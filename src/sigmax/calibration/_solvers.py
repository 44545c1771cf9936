r"""The optimisers of the calibrators: safeguarded Newton on log T, L-BFGS, Newton for logistic fits.

All work on float64 NumPy, stop at a gradient tolerance (not a fixed iteration count) and need no SciPy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..activations import log_sigmoid, sigmoid

__all__ = ["LOG_T_BOUND", "column_mean", "lbfgs", "newton_logistic", "newton_logistic_on", "solve_log_temperature"]

LOG_T_BOUND = 20.0  # |log T| <= 20: T in [2e-9, 5e8]


def column_mean(weight: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """``f(x)``: the mean of each column of ``x`` (axis 0), weighted by ``weight`` when given.

    Example:
        >>> m = column_mean(np.array([[1.0, 0.0], [1.0, 1.0]]))
        >>> m(np.array([[2.0, 5.0], [4.0, 7.0]])).tolist()
        [3.0, 7.0]
    """
    if weight is None:
        return lambda x: np.mean(x, axis=0)
    w = np.asarray(weight, dtype=np.float64)
    total = np.maximum(np.sum(w, axis=0), 1e-300)  # a column with no entries has mean 0, not NaN
    return lambda x: np.sum(w * x, axis=0) / total


def solve_log_temperature(deriv, k: int, *, gtol: float, max_iter: int = 200):
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
    lo, hi = np.full(k, -LOG_T_BOUND), np.full(k, LOG_T_BOUND)
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
    at_bound = np.abs(u) > LOG_T_BOUND - 1e-6
    return u, g, it, bool(np.all(np.abs(g) < gtol) or np.all(done)), at_bound


def lbfgs(fg, x0: np.ndarray, *, gtol: float, max_iter: int = 1000, memory: int = 10):
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


def newton_logistic(z: np.ndarray, t: np.ndarray, *, gtol: float, max_iter: int = 100,
                    weight: np.ndarray | None = None):
    r"""Fit :math:`\sigma(a_k z_k + b_k)` to targets :math:`t_k` for every column ``k`` independently.

    Newton's method on each column's 2-parameter convex NLL (exact 2x2 Hessian), vectorised over the
    columns, with a per-column backtracking line search; quadratic convergence to ``max|grad| < gtol``.
    ``weight`` (the shape of ``z``, 0/1 or non-negative) weights the entries of each column's mean
    (entries left out by ``ignore_index`` have weight 0). Returns ``(a, b, grad, n_iter)``.

    Example:
        >>> z = np.array([[-2.0], [-1.0], [1.0], [2.0]]); t = np.array([[0.0], [1.0], [0.0], [1.0]])
        >>> a, b, g, _ = newton_logistic(z, t, gtol=1e-12); round(float(a[0]), 4), bool(np.all(abs(g) < 1e-12))
        (0.4196, True)
    """
    mean = column_mean(weight)

    def loss(a, b):
        x = z * a + b
        # -[t log sigma(x) + (1 - t) log sigma(-x)]: both logs exact for large |x|
        return -mean(t * np.asarray(log_sigmoid(x)) + (1 - t) * np.asarray(log_sigmoid(-x)))

    def derivs(a, b, hessian):
        x = z * a + b
        q = np.asarray(sigmoid(x))
        r = q - t
        if not hessian:
            return mean(r * z), mean(r)
        s = q * np.asarray(sigmoid(-x))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
        return mean(s * z * z), mean(s * z), mean(s)

    return newton_logistic_on(derivs, loss, z.shape[1], gtol=gtol, max_iter=max_iter)


def newton_logistic_on(derivs, loss, k: int, *, gtol: float, max_iter: int = 100):
    """:func:`newton_logistic` on callbacks, so that the means may be sums over Dask blocks.

    ``derivs(a, b, False)`` returns the column means ``(d/da, d/db)`` of the NLL at ``(a, b)``,
    ``derivs(a, b, True)`` the Hessian's ``(haa, hab, hbb)``; ``loss(a, b)`` the column NLLs (each
    array of length ``k``). Returns ``(a, b, grad, n_iter)``.
    """
    a, b = np.ones(k), np.zeros(k)  # the identity
    f = loss(a, b)
    it = 0
    for it in range(max_iter + 1):
        ga, gb = derivs(a, b, False)
        if max(np.max(np.abs(ga)), np.max(np.abs(gb))) < gtol or it == max_iter:
            break
        haa, hab, hbb = derivs(a, b, True)
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
