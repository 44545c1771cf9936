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

The data enter only through the two grids of each size :math:`E` (the masses :math:`w_i r_i` and
:math:`w_i` spread onto the grid: sums over the samples), so the estimator runs on grids
(:func:`smooth_ece_from_grids`): in memory they are spread from the pairs when the bisection first
asks for a size (:func:`memory_grids`); on Dask arrays every block spreads its pairs onto the grids of
every size the bisection can ask for (:func:`grid_sizes`: the bisection only visits
:math:`\sigma \in \{1\} \cup \{k/1024\}` and evaluates those from :math:`2/1024` up, ten sizes from 1001
to 5121 points, 20,762 in all), the grids are added in a tree, and the same estimator runs on the sums
(:mod:`sigmax._dask_metrics_smooth`; per block :math:`2 \times 1{,}001` floats, and the finer sizes in a
second pass only when the bisection asks for them).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from ._array import resolve_axis
from ._metrics_terms import prepare, top_label

__all__ = ["check_return_bandwidth", "grid_size", "grid_sizes", "memory_grids", "smooth_calibration_error",
           "smooth_ece", "smooth_ece_from_grids", "smooth_ece_sigma", "smooth_pairs", "to_grids", "zero_weight_error"]

_DENSITY_FLOOR = 1e-4  # the reference implementation's floor on the smoothed density
_MESH = 200  # the reference implementation's smallest number of evaluation points
_STEPS = 10  # bisection steps of the reference implementation
EPS = 1e-3  # bandwidths below this are taken as big enough without evaluating them (the reference's eps)

#: ``grids(E)``: the residual grid and the weight grid of size ``E`` (each of shape ``(E,)``)
Grids = Callable[[int], "tuple[np.ndarray, np.ndarray]"]


def grid_size(sigma: float) -> int:
    """The number of grid points :math:`E` the reference implementation spreads the masses on at bandwidth ``sigma``."""
    return max(2000, round(20 / sigma)) // 2 + 1


def _spread(f: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Each position ``f`` as its grid cell ``b`` (of ``e`` equally spaced points of [0, 1]) and its fraction
    ``frac`` towards point ``b + 1``."""
    pos = f * (e - 1)
    b = np.clip(pos.astype(np.int64), 0, e - 2)
    return b, pos - b


def _to_grid(b: np.ndarray, frac: np.ndarray, v: np.ndarray, e: int) -> np.ndarray:
    """Spread ``v`` linearly onto the grid: ``(1 - frac) v`` to point ``b``, ``frac v`` to ``b + 1``."""
    return np.bincount(b, (1.0 - frac) * v, e) + np.bincount(b + 1, frac * v, e)


def to_grids(f: np.ndarray, y: np.ndarray, w: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """The residual grid (masses ``w * (f - y)``) and the weight grid (masses ``w``) of size ``e``."""
    b, frac = _spread(f, e)
    return _to_grid(b, frac, w * (f - y), e), _to_grid(b, frac, w, e)


def _smooth(values: np.ndarray, sigma: float, x_eval: np.ndarray) -> np.ndarray:
    """Reflected-Gaussian convolution of the grid ``values``, evaluated at ``x_eval``."""
    e = values.size
    t = np.linspace(0.0, 1.0, e)
    ker = np.exp(-(t - 0.5) * (t - 0.5) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    ext = np.concatenate([values[::-1][:-1], values, values[::-1][1:]])  # reflect at 0 and 1: no mass lost
    smoothed = np.convolve(ext, ker, "valid")[e // 2: e // 2 + e]
    # linear interpolation of the grid values at x_eval
    bucket = 1 / (e - 1)
    inds = np.clip((x_eval * (e - 1)).astype(np.int64), 0, e - 2)
    res = (x_eval - inds * bucket) / bucket
    return smoothed[inds] * (1.0 - res) + smoothed[inds + 1] * res


def _ece_at(grids: Grids, sigma: float) -> float:
    """smECE at the bandwidth ``sigma``, from the grids of size :func:`grid_size` (``sigma``)."""
    t = np.linspace(0.0, 1.0, max(round(10 / sigma), _MESH))
    num_grid, w_grid = grids(grid_size(sigma))
    num = _smooth(num_grid, sigma, t)
    dens = _smooth(w_grid, sigma, t) + _DENSITY_FLOOR
    return float(np.sum(np.abs(num / dens) * dens) / np.sum(dens))


def _bandwidth(ece_at: Callable[[float], float], eps: float) -> float:
    """The reference's bisection for the fixed point ``sigma = ece_at(sigma)`` on (0, 1]."""
    def big_enough(s: float) -> bool:
        return s < eps or s < ece_at(s)

    if big_enough(1.0):
        return 1.0
    hi, lo = 1.0, 0.0  # big_enough(hi) is False; bisect towards the fixed point
    for _ in range(_STEPS):
        mid = (hi + lo) / 2
        if big_enough(mid):
            lo = mid
        else:
            hi = mid
    return hi


def smooth_ece_from_grids(grids: Grids, *, eps: float = EPS) -> tuple[float, float]:
    """``(smECE, sigma)`` from the grids alone: ``grids(E)`` gives the residual and weight grids of size ``E``
    (weights scaled to mean 1 over the samples), asked only for sizes in :func:`grid_sizes` (``eps``).

    Example:
        >>> f, y, w = np.array([0.1, 0.8, 0.9]), np.array([0.0, 1.0, 0.0]), np.ones(3)
        >>> smooth_ece_from_grids(lambda e: to_grids(f, y, w, e)) == smooth_ece(f, y)
        True
    """
    sigma = _bandwidth(lambda s: _ece_at(grids, s), eps)
    return _ece_at(grids, sigma), sigma


@functools.lru_cache(maxsize=None)
def grid_sizes(eps: float = EPS) -> tuple[int, ...]:
    """Every grid size the estimator can ask for, whatever the data: the bisection run down each of its
    :math:`2^{11}` paths (each step's answer either way), the sizes of the bandwidths it evaluates.

    Example:
        >>> grid_sizes()
        (1001, 1025, 1139, 1281, 1464, 1707, 2049, 2561, 3414, 5121)
    """
    seen: set[float] = set()
    for path in range(2 ** (_STEPS + 1)):
        answers = iter(range(_STEPS + 1))

        def ece_at(s: float) -> float:
            seen.add(s)
            return 2.0 if (path >> next(answers)) & 1 else 0.0  # above every s (big enough) or below

        seen.add(_bandwidth(ece_at, eps))  # the final evaluation
    return tuple(sorted({grid_size(s) for s in seen}))


def memory_grids(f: np.ndarray, y: np.ndarray, w: np.ndarray) -> Grids:
    """``grids(E)`` of the pairs in memory, each size spread once when first asked for."""
    return functools.lru_cache(maxsize=None)(lambda e: to_grids(f, y, w, e))


def smooth_ece_sigma(f: np.ndarray, y: np.ndarray, w: np.ndarray, sigma: float) -> float:
    """smECE at a fixed bandwidth ``sigma`` of predictions ``f`` in [0, 1], outcomes ``y`` and weights ``w``
    (scaled to mean 1 by the caller)."""
    return _ece_at(lambda e: to_grids(f, y, w, e), sigma)


def smooth_ece(f: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, *, eps: float = EPS) -> tuple[float, float]:
    """``(smECE, sigma)`` with the bandwidth of Błasiok and Nakkiran: the fixed point ``sigma = smECE_sigma``."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if w is None:
        w = np.ones(f.shape)
    else:
        keep = w > 0
        f, y, w = f[keep], y[keep], w[keep]
        w = w * (w.size / w.sum())  # mean 1: the density floor weighs as in the unweighted estimator
    return smooth_ece_from_grids(memory_grids(f, y, w), eps=eps)


def check_return_bandwidth(return_bandwidth: Any) -> None:
    """``return_bandwidth`` must be a bool (in memory and on Dask)."""
    if return_bandwidth not in (True, False):
        raise ValueError(f"return_bandwidth must be True or False, got {return_bandwidth!r}")


def zero_weight_error() -> ValueError:
    """The error of weights that sum to 0 over the samples kept (in memory and on Dask)."""
    return ValueError("sample_weight sums to 0 over the samples kept; give some sample a positive weight")


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

    Dask arrays (scores, labels or weights chunked along the rows) give the same value and bandwidth:
    the data enter the estimator only as sums over the samples onto grids of ten data-independent sizes,
    so each block is spread onto them where it lives (a fixed state: 2,002 floats for every bandwidth of at
    least 0.01, and 39,522 more in a second pass only when the bisection goes below 0.01), the states are
    added in a tree, and the bisection runs here on the summed grids
    (:func:`sigmax._dask_metrics_smooth.smooth_ece_dask`). Equal to the in-memory result up to the order of
    the float additions.

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
    check_return_bandwidth(return_bandwidth)
    d = prepare(scores, labels, task, space, resolve_axis(axis, dim), ignore_index=ignore_index,
                sample_weight=sample_weight, need_log=False)
    f, y, w = smooth_pairs(d)
    if w is not None and not np.sum(w) > 0:
        raise zero_weight_error()
    value, sigma = smooth_ece(f, y, w)
    return (value, sigma) if return_bandwidth else value
