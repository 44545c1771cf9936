r"""Smooth ECE (Błasiok and Nakkiran 2023), the private half of :func:`sigmax.metrics.smooth_calibration_error`.

The estimator, as in the authors' reference implementation (``relplot.smECE``, reflected Gaussian
kernel): the residuals :math:`r_i = f_i - y_i` and the unit masses are spread linearly onto a grid of
:math:`E` points of [0, 1], convolved with a Gaussian kernel of bandwidth :math:`\sigma` reflected at
0 and 1, and interpolated at :math:`T` evaluation points :math:`t_k`; with the smoothed residual
:math:`\hat r_\sigma(t) = \frac{\sum_i w_i K_\sigma(t, f_i) r_i}{\sum_i w_i K_\sigma(t, f_i) + 10^{-4}}`
and density :math:`\hat\delta_\sigma(t) = \sum_i w_i K_\sigma(t, f_i) + 10^{-4}`,

.. math:: \mathrm{smECE}_\sigma = \frac{\sum_k |\hat r_\sigma(t_k)|\, \hat\delta_\sigma(t_k)}{\sum_k \hat\delta_\sigma(t_k)}

and the bandwidth is the fixed point :math:`\sigma^* = \mathrm{smECE}_{\sigma^*}` (found by ten
bisection steps on (0, 1]; :math:`\sigma = 1` when already :math:`1 < \mathrm{smECE}_1`, never).
Grid sizes: :math:`E = \lfloor \max(2000, \mathrm{round}(20/\sigma)) / 2 \rfloor + 1`,
:math:`T = \max(200, \mathrm{round}(10/\sigma))`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._array import resolve_axis
from ._metrics_terms import prepare, top_label

__all__ = ["smooth_calibration_error", "smooth_ece", "smooth_ece_sigma", "smooth_pairs"]

_DENSITY_FLOOR = 1e-4  # the reference implementation's floor on the smoothed density
_MESH = 200  # the reference implementation's smallest number of evaluation points


def _to_grid(f: np.ndarray, v: np.ndarray, e: int) -> np.ndarray:
    """Spread ``v`` at positions ``f`` linearly onto ``e`` equally spaced points of [0, 1]."""
    out = np.zeros(e)
    pos = f * (e - 1)
    b = np.clip(pos.astype(np.int64), 0, e - 2)
    frac = pos - b
    np.add.at(out, b, (1.0 - frac) * v)
    np.add.at(out, b + 1, frac * v)
    return out


def _smooth(f: np.ndarray, v: np.ndarray, sigma: float, x_eval: np.ndarray) -> np.ndarray:
    """Reflected-Gaussian convolution of the masses ``v`` at ``f``, evaluated at ``x_eval``."""
    e = max(2000, round(20 / sigma)) // 2 + 1
    values = _to_grid(f, v, e)
    t = np.linspace(0.0, 1.0, e)
    ker = np.exp(-(t - 0.5) * (t - 0.5) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    ext = np.concatenate([values[::-1][:-1], values, values[::-1][1:]])  # reflect at 0 and 1: no mass lost
    smoothed = np.convolve(ext, ker, "valid")[e // 2: e // 2 + e]
    # linear interpolation of the grid values at x_eval
    bucket = 1 / (e - 1)
    inds = np.clip((x_eval * (e - 1)).astype(np.int64), 0, e - 2)
    res = (x_eval - inds * bucket) / bucket
    return smoothed[inds] * (1.0 - res) + smoothed[inds + 1] * res


def smooth_ece_sigma(f: np.ndarray, y: np.ndarray, w: np.ndarray, sigma: float) -> float:
    """smECE at a fixed bandwidth ``sigma`` of predictions ``f`` in [0, 1], outcomes ``y`` and weights ``w``
    (scaled to mean 1 by the caller)."""
    t = np.linspace(0.0, 1.0, max(round(10 / sigma), _MESH))
    num = _smooth(f, w * (f - y), sigma, t)
    dens = _smooth(f, w, sigma, t) + _DENSITY_FLOOR
    return float(np.sum(np.abs(num / dens) * dens) / np.sum(dens))


def smooth_ece(f: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, *, eps: float = 1e-3) -> tuple[float, float]:
    """``(smECE, sigma)`` with the bandwidth of Błasiok and Nakkiran: the fixed point ``sigma = smECE_sigma``."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if w is None:
        w = np.ones(f.shape)
    else:
        keep = w > 0
        f, y, w = f[keep], y[keep], w[keep]
        w = w * (w.size / w.sum())  # mean 1: the density floor weighs as in the unweighted estimator

    def big_enough(s: float) -> bool:
        return s < eps or s < smooth_ece_sigma(f, y, w, s)

    if big_enough(1.0):
        sigma = 1.0
    else:
        hi, lo = 1.0, 0.0  # big_enough(hi) is False; bisect towards the fixed point
        for _ in range(10):
            mid = (hi + lo) / 2
            if big_enough(mid):
                lo = mid
            else:
                hi = mid
        sigma = hi
    return smooth_ece_sigma(f, y, w, sigma), sigma


def smooth_pairs(d) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The (prediction, outcome, weight) pairs the smooth ECE of a task is taken on."""
    if d.task == "multiclass":
        return top_label(d)  # confidence of the argmax, whether it is right
    w = None if d.w is None else d.w.reshape(-1)
    return d.p.reshape(-1), d.y.reshape(-1).astype(np.float64), w


def smooth_calibration_error(scores: Any, labels: Any, task: str, *, space: str = "logits", axis: int = -1,
                             dim: int | None = None, ignore_index: int | None = None, sample_weight: Any = None,
                             return_bandwidth: bool = False) -> Any:
    r"""Smooth ECE (Błasiok and Nakkiran 2023, "Smooth ECE: Principled Reliability Diagrams via Kernel
    Smoothing"): a calibration error without bins, consistent and continuous in the predictions.

    .. math:: \mathrm{smECE}_\sigma = \int_0^1 |\hat r_\sigma(t)|\, \hat\delta_\sigma(t)\, dt, \qquad
              \hat r_\sigma(t) = \frac{\sum_i w_i K_\sigma(t, f_i)(f_i - y_i)}{\sum_i w_i K_\sigma(t, f_i)}

    the kernel-smoothed residual weighted by the kernel density of the predictions, with a Gaussian
    kernel :math:`K_\sigma` reflected at 0 and 1 and the bandwidth chosen by the authors' rule: the fixed
    point :math:`\sigma^* = \mathrm{smECE}_{\sigma^*}` (ten bisection steps). Discretised exactly as
    their reference implementation, so it equals ``relplot.smECE(f, y)`` on the same pairs:

    * binary: :math:`f` the positive-class probability, :math:`y` the 0/1 label;
    * multilabel: every (sample, class) entry pooled, as binary (masked entries left out);
    * multiclass: top-label, :math:`f` the probability of the argmax and :math:`y` whether it is right
      (``relplot.multiclass_logits_to_confidences``).

    With ``sample_weight`` the kernel sums are weighted (weights rescaled to mean 1, so that the
    reference's density floor of :math:`10^{-4}` weighs as without weights).

    Args:
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`sigmax.metrics.nll`.
        return_bandwidth: also return the bandwidth :math:`\sigma^*`.

    Returns:
        A float in [0, 1]; ``(smece, sigma)`` with ``return_bandwidth=True``.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> rng = np.random.default_rng(0)
        >>> p = rng.uniform(size=2000)
        >>> y = (rng.uniform(size=2000) < p ** 2).astype(int)  # over-confident about the positives
        >>> round(M.smooth_calibration_error(p, y, "binary", space="probs"), 2)
        0.17
    """
    if return_bandwidth not in (True, False):
        raise ValueError(f"return_bandwidth must be True or False, got {return_bandwidth!r}")
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                sample_weight=sample_weight, need_log=False)
    f, y, w = smooth_pairs(d)
    if w is not None and not np.sum(w) > 0:
        raise ValueError("sample_weight sums to 0 over the samples kept; give some sample a positive weight")
    value, sigma = smooth_ece(f, y, w)
    return (value, sigma) if return_bandwidth else value
