r"""The smooth ECE of :func:`sigmax.metrics.smooth_calibration_error` on Dask arrays, exact, with a fixed-size state.

The estimator (:mod:`sigmax._metrics_smooth`) sees the data only through two grids per grid size
:math:`E`: the masses :math:`w_i (f_i - y_i)` and :math:`w_i` spread linearly onto :math:`E` points of
[0, 1], sums over the samples. :math:`E` depends on the bandwidth, but the bisection visits only
bandwidths of a fixed, data-independent set (1 and the dyadic mids :math:`k/2^j`, :math:`j \le 10`),
so the sizes it can ask for are known before the data are seen (:func:`sigmax._metrics_smooth.grid_sizes`:
ten sizes, 20,762 points in all). Every bandwidth of at least 0.01 uses the same 1,001 points; the nine
finer grids are needed only when the bisection goes below 0.01 (a smooth ECE under about 0.01). So:

* pass 1: each block (where it lives) spreads its (prediction, outcome, weight) pairs onto the 1,001-point
  grids, unscaled, after dropping its entries of weight 0, with the number of entries kept, their weight
  sum and the number of entries not ignored (:func:`block_state`: :data:`FIRST_STATE` = 2,002 floats and
  three numbers, whatever the number of rows); the states are added in a tree on the workers
  (:func:`sigmax._dask_metrics.reduce_metric`);
* the bisection runs here on the sums, the grids scaled by :math:`n / \sum_i w_i` (the in-memory
  rescaling of the weights to mean 1: spreading is linear, so scaling the grids is scaling the masses),
  through the one estimator :func:`sigmax._metrics_smooth.smooth_ece_from_grids`;
* pass 2, only if it asks for a finer grid: every block spreads onto all nine finer sizes at once
  (:data:`STATE_SIZE` - :data:`FIRST_STATE` = 39,522 floats, 316 KB), added the same way, and the
  bisection goes on.

The bandwidth is the in-memory one and the value equals it up to the order of the float additions
(the grids are summed block by block).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._array import resolve_axis
from ._dask_metrics import reduce_metric
from ._metrics_smooth import (check_return_bandwidth, grid_sizes, smooth_ece_from_grids, smooth_pairs, to_grids,
                              zero_weight_error)
from ._metrics_terms import MetricData

__all__ = ["FIRST_STATE", "STATE_SIZE", "block_state", "smooth_calibration_error", "smooth_ece_dask"]

#: floats of grids in one block's states over both passes (the residual and weight grids of every size)
STATE_SIZE = 2 * sum(grid_sizes())
#: floats of grids in one block's first-pass state (the grids of every bandwidth >= 0.01)
FIRST_STATE = 2 * grid_sizes()[0]


def block_state(d: MetricData, sizes: tuple[int, ...] = grid_sizes()) -> tuple[np.ndarray, int, float, int]:
    """One block's state: ``(grids, entries kept, weight sum, entries not ignored)``, ``grids`` the residual
    and weight grids of each size in ``sizes``, one after another (unscaled weights; entries of weight 0
    dropped, as in memory; multilabel entries masked by ``ignore_index`` weigh 0).

    Example:
        >>> from sigmax._metrics_terms import prepare
        >>> d = prepare([0.2, 0.9, 0.6], [0, 1, 1], "binary", "probs", sample_weight=[1.0, 0.0, 3.0], need_log=False)
        >>> grids, n, wsum, n_valid = block_state(d, (1001,))
        >>> grids.shape, FIRST_STATE, n, wsum, n_valid
        ((2002,), 2002, 2, 4.0, 3)
        >>> block_state(d)[0].shape == (STATE_SIZE,)  # every size
        True
    """
    f, y, w = smooth_pairs(d)
    f, y = np.asarray(f, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if w is None:
        w = np.ones(f.shape)
    else:
        keep = w > 0
        f, y, w = f[keep], y[keep], np.asarray(w, dtype=np.float64)[keep]
    grids = np.concatenate([g for e in sizes for g in to_grids(f, y, w, e)])
    n_valid = d.p.size - d.n_ignored if d.task == "multilabel" else d.n  # multilabel: n_ignored counts entries
    return grids, int(f.size), float(np.sum(w)), int(n_valid)


def _split(flat: np.ndarray, sizes: tuple[int, ...]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The grids of each size back out of :func:`block_state`'s layout."""
    out, at = {}, 0
    for e in sizes:
        out[e] = (flat[at:at + e], flat[at + e:at + 2 * e])
        at += 2 * e
    return out


def smooth_ece_dask(scores: Any, labels: Any, task: str, *, space: str, axis: Any, ignore_index: Any,
                    sample_weight: Any) -> tuple[float, float]:
    """``(smECE, sigma)`` of Dask arrays: grids per block, added in a tree, the bisection on their sum (a
    second pass for the finer grids only when the bisection asks for one).

    Example:
        >>> import dask.array as da
        >>> from sigmax._metrics_smooth import smooth_ece
        >>> rng = np.random.default_rng(0)
        >>> p = rng.uniform(size=500)
        >>> y = (rng.uniform(size=500) < p ** 2).astype(float)
        >>> value, sigma = smooth_ece_dask(da.from_array(p, chunks=120), y, "binary", space="probs", axis=-1,
        ...                                ignore_index=None, sample_weight=None)
        >>> ref, ref_sigma = smooth_ece(p, y)
        >>> sigma == ref_sigma, bool(np.isclose(value, ref, rtol=1e-12, atol=0))
        (True, True)
    """
    first, rest = grid_sizes()[:1], grid_sizes()[1:]

    def reduce(sizes):
        return reduce_metric(functools.partial(block_state, sizes=sizes), scores, labels, task, space=space,
                             axis=axis, ignore_index=ignore_index, sample_weight=sample_weight, need_log=False)[0]

    flat, n, wsum, _ = reduce(first)  # no sample kept at all (every entry ignored): reduce_metric's error
    if not wsum > 0:
        raise zero_weight_error()
    scale = n / wsum  # weights to mean 1 over the entries kept (exactly 1 without weights)
    grids = _split(flat * scale, first)

    def grid(e: int):
        if e not in grids:  # a bandwidth under 0.01: one more pass, for every finer size at once
            grids.update(_split(reduce(rest)[0] * scale, rest))
        return grids[e]

    return smooth_ece_from_grids(grid)


def smooth_calibration_error(scores: Any, labels: Any, task: str, *, space: str, axis: Any, dim: Any,
                             ignore_index: Any, sample_weight: Any, return_bandwidth: Any) -> Any:
    """:func:`sigmax.metrics.smooth_calibration_error` of inputs of which some are Dask arrays (its arguments,
    checks and result, through :func:`smooth_ece_dask`)."""
    check_return_bandwidth(return_bandwidth)
    value, sigma = smooth_ece_dask(scores, labels, task, space=space, axis=resolve_axis(axis, dim),
                                   ignore_index=ignore_index, sample_weight=sample_weight)
    return (value, sigma) if return_bandwidth else value

