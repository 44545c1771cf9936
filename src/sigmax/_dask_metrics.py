r"""The metrics of :mod:`sigmax.metrics` on Dask arrays: per-block sufficient statistics, added in a tree.

Each metric is :math:`F(\sum_j S(X_j))`: :math:`S` runs on each row block where it lives (the same
per-sample terms, confusion counts and equal-width bin sums as in memory, from
:mod:`sigmax._metrics_terms`), the states are added on the workers (:func:`sigmax._dask.tree_reduce`),
and :math:`F` finishes them here. Equal to the in-memory metric up to the order of float additions.

Equal-mass bins need every confidence sorted at once and are refused, with the fix; ROC AUC and average
precision likewise (they are not sums over rows).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._binning import assign, debiased_squared, equal_width_edges, errors_from_sums
from ._dask import add, delayed_blocks, row_layout, tree_reduce
from ._inputs import spell, validate_space, validate_task
from ._metrics_terms import (MetricData, add_sums, brier_terms, class_column, classwise, confusion, decisions,
                             mean_over_classes, n_columns, nll_terms, prepare, prf_from_counts, reliability_data,
                             top_label, topk_correct, weighted_sum)

__all__ = ["accumulate", "accuracy", "brier", "calibration_error", "nll", "precision_recall_f1", "reduce_metric",
           "reliability", "refuse_equal_mass"]


def refuse_equal_mass(what: str) -> ValueError:
    return ValueError(f"{what} with binning='equal_mass' needs every confidence sorted at once, which a Dask array "
                      "spread over workers does not give; use binning='equal_width' (the bin sums add up over "
                      "chunks), or compute it on a bounded sample brought into memory (scores[:n].compute())")


def _empty_error(n_ignored: int, ignore_index: Any) -> ValueError:
    what = (f"every label equals {spell('ignore_index', ignore_index)}" if n_ignored else
            "scores and labels are empty")
    return ValueError(f"{what}; metrics need at least one sample")


def reduce_metric(part: Callable[[MetricData], Any], scores: Any, labels: Any, task: str, *, space: str, axis: Any,
                  ignore_index: Any, sample_weight: Any, need_log: bool = True, combine: Callable = add):
    """``(sum over blocks of part(d), rows kept)``, where ``d`` is each block's :class:`MetricData`."""
    task, space = validate_task(task), validate_space(space)
    if labels is None:
        raise ValueError("metrics need labels: the canonical record holds scores only")
    s, y, w = row_layout(scores, labels, task, axis=axis, sample_weight=sample_weight)

    def block(sb, yb, wb):
        d = prepare(sb, yb, task, space, -1, ignore_index=ignore_index, sample_weight=wb, need_log=need_log,
                    allow_empty=True)
        return (part(d) if d.n else None), d.n, d.n_ignored

    def comb(a, b):
        return (combine(a[0], b[0]) if a[0] is not None and b[0] is not None else
                (a[0] if b[0] is None else b[0])), a[1] + b[1], a[2] + b[2]

    state, n, n_ignored = tree_reduce(block, delayed_blocks(s, y, w), comb)
    if n == 0:
        raise _empty_error(n_ignored, ignore_index)
    return state, n


def _mean(state) -> float:
    total, weight = state
    if not weight > 0:
        raise ValueError("sample_weight sums to 0 over the samples kept; give some sample a positive weight")
    return total / weight


def nll(scores, labels, task, *, space, axis, ignore_index, sample_weight) -> float:
    state, _ = reduce_metric(lambda d: weighted_sum(nll_terms(d), d.w), scores, labels, task, space=space,
                             axis=axis, ignore_index=ignore_index, sample_weight=sample_weight)
    return _mean(state)


def brier(scores, labels, task, *, space, axis, ignore_index, sample_weight) -> float:
    state, _ = reduce_metric(lambda d: weighted_sum(brier_terms(d), d.w), scores, labels, task, space=space,
                             axis=axis, ignore_index=ignore_index, sample_weight=sample_weight, need_log=False)
    return _mean(state)


def _n_classes(scores: Any, task: str, axis: Any) -> int:
    from ._array import normalize_axis

    if task == "binary":
        return 2
    return int(scores.shape[normalize_axis(axis, scores.ndim, name="axis")]) if scores.ndim >= 2 else 0


def accuracy(scores, labels, task, *, space, axis, ignore_index, sample_weight, top_k, threshold,
             check_top_k: Callable) -> float:
    task = validate_task(task)
    c = _n_classes(scores, task, axis)
    probe = MetricData(task, np.zeros((0,) if task == "binary" else (0, c)), np.zeros(0), None, np.zeros(0))
    k = check_top_k(top_k, probe)

    def part(d):
        hit = topk_correct(d, k) if d.task == "multiclass" else decisions(d, threshold) == d.y
        return weighted_sum(hit.astype(np.float64), d.w)

    state, _ = reduce_metric(part, scores, labels, task, space=space, axis=axis, ignore_index=ignore_index,
                             sample_weight=sample_weight, need_log=False)
    return _mean(state)


def precision_recall_f1(scores, labels, task, *, space, axis, ignore_index, sample_weight, threshold, average):
    (tp, fp, fn), _ = reduce_metric(lambda d: confusion(d, threshold), scores, labels, task, space=space, axis=axis,
                                    ignore_index=ignore_index, sample_weight=sample_weight, need_log=False)
    if validate_task(task) == "binary" and average is not None:
        average = "micro"
    return prf_from_counts(tp, fp, fn, average)


def reliability(scores, labels, task, *, space, axis, ignore_index, sample_weight, n_bins, binning, mode,
                class_index, min_bin_count):
    if binning != "equal_width":
        raise refuse_equal_mass("reliability")
    state, _ = reduce_metric(lambda d: reliability_data(d, n_bins, binning, mode, class_index, min_bin_count),
                             scores, labels, task, space=space, axis=axis, ignore_index=ignore_index,
                             sample_weight=sample_weight, need_log=False)
    return state


def _debias_sums(conf, out, w, n_bins):
    """Equal-width ``(count, wsum, sconf, sacc, w2sum)`` of one set of confidences."""
    idx = assign(conf, equal_width_edges(n_bins))
    if w is None:
        count = np.bincount(idx, minlength=n_bins).astype(np.float64)
        return (count, count, np.bincount(idx, conf, n_bins), np.bincount(idx, out, n_bins), count)
    return (np.bincount(idx, (w > 0).astype(np.float64), n_bins), np.bincount(idx, w, n_bins),
            np.bincount(idx, conf * w, n_bins), np.bincount(idx, out * w, n_bins), np.bincount(idx, w * w, n_bins))


def calibration_error(scores, labels, task, *, space, axis, ignore_index, sample_weight, n_bins, binning, norm,
                      mode, min_bin_count, debias) -> float:
    if binning != "equal_width":
        raise refuse_equal_mass("calibration_error")
    kw = dict(space=space, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight, need_log=False)
    if debias:
        def part(d):
            if mode == "top_label":
                return tuple(a[None] for a in _debias_sums(*top_label(d), n_bins))
            cols = [_debias_sums(*class_column(d, c), n_bins) for c in range(n_columns(d))]
            return tuple(np.stack(x) for x in zip(*cols))

        (count, wsum, sconf, sacc, w2sum), _ = reduce_metric(part, scores, labels, task, **kw)
        sq = debiased_squared(count, wsum, sconf, sacc, w2sum)
        return float(np.mean(np.sqrt(np.maximum(0.0, sq))))
    if mode == "top_label":
        rel, _ = reduce_metric(lambda d: reliability_data(d, n_bins, binning, mode, None, min_bin_count),
                               scores, labels, task, **kw)
        return rel.error(norm)
    sums, _ = reduce_metric(lambda d: classwise(d, n_bins)[1:], scores, labels, task, combine=add_sums, **kw)
    return mean_over_classes(errors_from_sums(*sums, norm, min_bin_count), norm)


def accumulate(make: Callable[[], Any], merge: Callable[[Any, Any], Any], scores: Any, labels: Any, task: str, *,
               axis: Any, sample_weight: Any = None):
    """One accumulator per block (``make()`` then ``.update(block)``), merged in a tree; the merged one."""
    s, y, w = row_layout(scores, labels, validate_task(task), axis=axis, sample_weight=sample_weight)
    return tree_reduce(lambda sb, yb, wb: make().update(sb, yb, wb), delayed_blocks(s, y, w), merge)

