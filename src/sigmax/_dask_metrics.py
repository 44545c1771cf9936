r"""The metrics of :mod:`sigmax.metrics` on Dask arrays: per-block sufficient statistics, added in a tree.

Each metric is :math:`F(\sum_j S(X_j))`: :math:`S` runs on each row block where it lives (the same
per-sample terms, confusion counts and equal-width bin sums as in memory, from
:mod:`sigmax._metrics_terms`), the states are added on the workers (:func:`sigmax._dask.tree_reduce`),
and :math:`F` finishes them here. Equal to the in-memory metric up to the order of float additions.

Equal-mass bins are exact too (:func:`equal_mass_sums`):
the bin edges are order statistics of the confidences, found by the exact distributed selection
:func:`sigmax._dask_select.kth_smallest_many`, and each sample's bin is its position in the stable sort
(ties at an edge split by the samples' order, as ``np.argsort(kind="stable")`` does in memory), so the
edges and counts equal the in-memory ones and the sums equal them up to the order of float additions.
ROC AUC and average precision (:mod:`sigmax._dask_metrics_ranking`: buckets cut at exact order
statistics, one task per bucket) and the smooth ECE (:mod:`sigmax._dask_metrics_smooth`: grids of
data-independent sizes) are exact too; :func:`with_dask` hands a public metric's Dask inputs to its path.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from ._binning import assign, debiased_squared, equal_width_edges, errors_from_sums, from_sums
from ._dask import add, delayed_blocks, is_dask, persist_blocks, row_layout, row_starts, tree_reduce
from ._dask_select import kth_smallest_many
from ._inputs import spell, validate_space, validate_task
from ._metrics_ranking import confusion_of, normalize_confusion
from ._metrics_terms import (MetricData, add_sums, brier_terms, class_column, classwise, confusion, decisions,
                             mean_over_classes, n_columns, nll_terms, prepare, prf_from_counts, reliability_data,
                             top_label, topk_correct, weighted_sum)

__all__ = ["EQUAL_MASS_LIMIT", "accumulate", "accuracy", "brier", "calibration_error", "confusion_matrix",
           "empty_error", "equal_mass_sums", "kept_entries", "nll", "precision_recall_f1", "reduce_metric", "reliability", "with_dask"]

#: the most (sets of confidences x n_bins) one equal-mass call may bin on Dask (classwise: classes x n_bins)
EQUAL_MASS_LIMIT = 1 << 14


def empty_error(n_ignored: int, ignore_index: Any) -> ValueError:
    """The in-memory error of no sample kept (everything ignored, or nothing given), for Dask inputs."""
    what = (f"every label equals {spell('ignore_index', ignore_index)}" if n_ignored else
            "scores and labels are empty")
    return ValueError(f"{what}; metrics need at least one sample")


def reduce_metric(part: Callable[[MetricData], Any], scores: Any, labels: Any, task: str, *, space: str, axis: Any,
                  ignore_index: Any, sample_weight: Any, need_log: bool = True, combine: Callable = add):
    """``(sum over blocks of part(d), samples kept)``, where ``d`` is each block's :class:`MetricData` (a block
    that keeps no sample gives no part; multilabel: the entries not masked count)."""
    task, space = validate_task(task), validate_space(space)
    if labels is None:
        raise ValueError("metrics need labels: the canonical record holds scores only")
    s, y, w = row_layout(scores, labels, task, axis=axis, sample_weight=sample_weight)

    def block(sb, yb, wb, first):
        d = prepare(sb, yb, task, space, -1, ignore_index=ignore_index, sample_weight=wb, need_log=need_log,
                    allow_empty=True, row_numbers=np.arange(first, first + np.shape(sb)[0]))
        kept = kept_entries(d)
        return (part(d) if kept else None), kept, d.n_ignored

    def comb(a, b):
        return (combine(a[0], b[0]) if a[0] is not None and b[0] is not None else
                (a[0] if b[0] is None else b[0])), a[1] + b[1], a[2] + b[2]

    state, n, n_ignored = tree_reduce(block, _numbered(s, y, w), comb)
    if n == 0:
        raise empty_error(n_ignored, ignore_index)
    return state, n


def _numbered(s: Any, y: Any, w: Any) -> list[tuple]:
    """The row blocks of :func:`sigmax._dask.delayed_blocks`, each with the number of its first row."""
    return [(*b, first) for b, first in zip(delayed_blocks(s, y, w), row_starts(s))]


def kept_entries(d: MetricData) -> int:
    """The samples a block keeps after ``ignore_index``: rows, or (multilabel) the entries not masked, so that
    a multilabel set whose every entry is masked is refused as in memory (its rows are all still there)."""
    return d.p.size - d.n_ignored if d.task == "multilabel" else d.n


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


def _probe(task: str, c: int) -> MetricData:
    """A zero-row record of ``c`` classes: runs the in-memory argument checks (and their messages) once."""
    if task == "binary":
        return MetricData(task, np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    y = np.zeros((0,) if task == "multiclass" else (0, c), dtype=np.int64)
    return MetricData(task, np.zeros((0, c)), np.zeros((0, c)), None, y)


def _problems(d: MetricData, mode: str, class_index: Any, per_class: bool) -> list[list[tuple]]:
    """Each set of confidences to bin on its own, as its ordered segments ``(conf, outcome, weight)``
    (the in-memory order of the samples: classes pooled one after another, rows in order)."""
    if mode == "top_label":
        return [[top_label(d)]]
    if class_index is not None:
        return [[class_column(d, int(class_index) % n_columns(d))]]
    cols = [class_column(d, c) for c in range(n_columns(d))]
    return [[c] for c in cols] if per_class else [cols]


def _kept(seg: tuple) -> tuple:
    """A segment without its entries of weight 0 (equal-mass bins split the samples that carry weight)."""
    conf, out, w = seg
    if w is None:
        return conf, out, None
    w = np.broadcast_to(w, conf.shape)
    keep = w > 0
    return conf[keep], out[keep], w[keep]


def _starts(m: int, n_bins: int) -> np.ndarray:
    """Sorted positions where each bin starts (``np.array_split``: the first ``m % n_bins`` one larger)."""
    sizes = np.full(n_bins, m // n_bins, dtype=np.int64)
    sizes[:m % n_bins] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def equal_mass_sums(scores, labels, task, *, space, axis, ignore_index, sample_weight, n_bins, mode, class_index,
                    per_class):
    """Exact equal-mass bins of Dask arrays: per set of confidences ``(edges, count, wsum, sconf, sacc, w2sum)``
    (``wsum`` ``None`` without weights), equal to :func:`sigmax._binning.bin_index` on the data in memory.

    Passes over the blocks: the rows kept; the exact order statistics at the bin starts
    (:func:`kth_smallest_many`); per block the counts below and at each start value (which place the ties
    at a bin start in the stable order); the per-bin sums.

    Example:
        >>> import dask.array as da
        >>> z = da.from_array(np.array([0.9, 0.8, 0.8, 0.3, 0.8, 0.1]), chunks=2)
        >>> ((edges, count, wsum, *_),) = equal_mass_sums(z, np.array([1, 0, 1, 0, 1, 0]), "binary", space="probs",
        ...     axis=-1, ignore_index=None, sample_weight=None, n_bins=2, mode="classwise", class_index=None,
        ...     per_class=True)
        >>> edges.tolist(), count.tolist(), wsum
        ([0.1, 0.8, 0.9], [3, 3], None)
    """
    task, space = validate_task(task), validate_space(space)
    if labels is None:
        raise ValueError("metrics need labels: the canonical record holds scores only")
    c = _n_classes(scores, task, axis)
    if class_index is not None:  # the in-memory checks of class_index, and their messages
        reliability_data(_probe(task, c), n_bins, "equal_width", mode, class_index, 1)
    n_sets = c if (per_class and mode == "classwise" and class_index is None and task != "binary") else 1
    if n_sets * n_bins > EQUAL_MASS_LIMIT:
        raise ValueError(f"classwise equal-mass bins of {n_sets} classes x {n_bins} bins on a Dask array need "
                         f"{n_sets * n_bins} exact order statistics, more than the {EQUAL_MASS_LIMIT} sigmax bounds "
                         "a reduction to; use binning='equal_width' (fixed-size bin sums), fewer n_bins, or "
                         "mode='top_label'")
    s, y, w = row_layout(scores, labels, task, axis=axis, sample_weight=sample_weight)
    from dask import compute as dcompute, delayed

    def prep(sb, yb, wb, first):
        d = prepare(sb, yb, task, space, -1, ignore_index=ignore_index, sample_weight=wb, need_log=False,
                    allow_empty=True, row_numbers=np.arange(first, first + np.shape(sb)[0]))
        probs = ([[_kept(g) for g in p] for p in _problems(d, mode, class_index, n_sets > 1)]
                 if kept_entries(d) else None)
        return probs, kept_entries(d), d.n_ignored, d.w is not None

    blocks = persist_blocks([delayed(prep, pure=True)(*b) for b in _numbered(s, y, w)])
    n, n_ignored, weighted = tree_reduce(lambda b: b[1:], [(b,) for b in blocks],
                                         lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] or b[2]))
    if n == 0:
        raise empty_error(n_ignored, ignore_index)

    def confs(b):
        if b[0] is None:
            return [np.zeros(0)] * n_sets
        return [np.concatenate([g[0] for g in p]) for p in b[0]]

    def ranks(sizes):
        out = []
        for m in np.atleast_1d(sizes):
            st = _starts(int(m), n_bins)
            out.append([1, int(m)] + [int(x) for t in st[1:-1] for x in (t, t + 1)])
        return out

    vals, sizes = kth_smallest_many([delayed(confs, pure=True)(b) for b in blocks], ranks, n_sets=n_sets)
    edges, tvals, starts = [], [], []
    for v, m in zip(vals, sizes):
        m, st = int(m), _starts(int(m), n_bins)
        if m == 0:
            edges.append(np.zeros(n_bins + 1))
        else:
            inner = [(v[2 + 2 * j] + v[3 + 2 * j]) / 2 if 0 < t < m else (v[1] if t >= m else v[0])
                     for j, t in enumerate(st[1:-1])]
            edges.append(np.concatenate([[v[0]], inner, [v[1]]]))
        # the value at each bin start (sorted position t, rank t + 1); a start at m or beyond opens an empty bin
        tvals.append(np.array([v[3 + 2 * j] if t < m else np.nan for j, t in enumerate(st[1:-1])]))  # NaN: never met
        starts.append(st[1:-1])

    def ties(b):
        if b[0] is None:
            return None
        return [np.array([[[np.count_nonzero(g[0] < t), np.count_nonzero(g[0] == t)] for t in tv] for g in p],
                         dtype=np.int64).reshape(len(p), len(tv), 2) for p, tv in zip(b[0], tvals)]

    per_block = dcompute(*[delayed(ties, pure=True)(b) for b in blocks])
    present = [t for t in per_block if t is not None]
    quota, offsets = [], [[] for _ in per_block]
    for j, st in enumerate(starts):
        counts = np.stack([t[j] for t in present])  # (blocks, segments, starts, 2)
        quota.append(st - counts[..., 0].sum(axis=(0, 1)))  # ties at a start that sort before it
        eq = counts[..., 1]
        before = np.cumsum(eq.sum(axis=0), axis=0) - eq.sum(axis=0)  # the earlier segments' ties
        within = np.cumsum(eq, axis=0) - eq  # this segment's ties in the earlier blocks
        k = 0
        for i, t in enumerate(per_block):
            offsets[i].append(None if t is None else before + within[k])
            k += t is not None

    def sums(b, off):
        out = []
        for j, p in enumerate(b[0] if b[0] is not None else [[] for _ in tvals]):
            acc = np.zeros((5, n_bins))
            for g, (conf, o, wt) in enumerate(p):
                idx = np.zeros(conf.shape, dtype=np.int64)
                for a, t in enumerate(tvals[j]):
                    eq = conf == t
                    tie_rank = off[j][g, a] + np.cumsum(eq) - eq
                    idx += (conf > t) | (eq & (tie_rank >= quota[j][a]))
                ww = np.ones(conf.shape) if wt is None else wt
                acc += np.stack([np.bincount(idx, x, n_bins) for x in ((ww > 0) * 1.0, ww, conf * ww, o * ww, ww * ww)])
            out.append(acc)
        return out

    total = tree_reduce(sums, [(b, delayed(o)) for b, o in zip(blocks, offsets)])
    return [(e, a[0].astype(np.int64), a[1] if weighted else None, a[2], a[3], a[4] if weighted else a[0])
            for e, a in zip(edges, total)]


def reliability(scores, labels, task, *, space, axis, ignore_index, sample_weight, n_bins, binning, mode,
                class_index, min_bin_count):
    if binning != "equal_width":
        ((edges, count, wsum, sconf, sacc, _),) = equal_mass_sums(
            scores, labels, task, space=space, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight,
            n_bins=n_bins, mode=mode, class_index=class_index, per_class=False)
        return from_sums(edges, count, wsum, sconf, sacc, min_bin_count)
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


def _equal_mass_error(scores, labels, task, *, norm, mode, min_bin_count, debias, **kw) -> float:
    sets = equal_mass_sums(scores, labels, task, mode=mode, class_index=None, per_class=True, **kw)
    if debias:
        errs = [float(np.sqrt(max(0.0, float(debiased_squared(count, count.astype(np.float64) if wsum is None
                                                                    else wsum, sconf, sacc, w2)))))
                for _, count, wsum, sconf, sacc, w2 in sets]
        return float(np.mean(errs))
    errs = [from_sums(e, count, wsum, sconf, sacc, min_bin_count).error(norm) for e, count, wsum, sconf, sacc, _ in sets]
    return errs[0] if mode == "top_label" else mean_over_classes(np.array(errs), norm)


def calibration_error(scores, labels, task, *, space, axis, ignore_index, sample_weight, n_bins, binning, norm,
                      mode, min_bin_count, debias) -> float:
    kw = dict(space=space, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight)
    if binning != "equal_width":
        return _equal_mass_error(scores, labels, task, norm=norm, mode=mode, min_bin_count=min_bin_count,
                                 debias=debias, n_bins=n_bins, **kw)
    kw["need_log"] = False
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
    """One accumulator per block (``make(first)`` then ``.update(block)``, ``first`` the number of the block's
    first row), merged in a tree; the merged one."""
    s, y, w = row_layout(scores, labels, validate_task(task), axis=axis, sample_weight=sample_weight)
    return tree_reduce(lambda sb, yb, wb, first: make(first).update(sb, yb, wb), _numbered(s, y, w), merge)



def confusion_matrix(scores, labels, task, *, space, threshold, normalize, axis, ignore_index, sample_weight):
    """:func:`sigmax.metrics.confusion_matrix` of Dask arrays: the counts of every block, added in a tree."""
    normalize_confusion(np.zeros((2, 2)), normalize)  # a bad normalize is refused before any block is read
    cm, _ = reduce_metric(lambda d: confusion_of(d, threshold), scores, labels, task, space=space, axis=axis,
                          ignore_index=ignore_index, sample_weight=sample_weight, need_log=False)
    return normalize_confusion(cm, normalize)


def with_dask(fn: Callable, on_dask: Callable) -> Callable:
    """``fn`` (an in-memory metric), handing its call to ``on_dask(**arguments)`` — every parameter bound,
    ``fn``'s defaults filled in — when ``scores``, ``labels`` or ``sample_weight`` is a Dask array. A wrong
    call is ``fn``'s own ``TypeError``; the docstring and signature are ``fn``'s.

    Example:
        >>> import dask.array as da
        >>> def metric(scores, labels, task, *, space="logits"):
        ...     return "memory"
        >>> both = with_dask(metric, lambda **kw: f"dask, space={kw['space']}")
        >>> both([0.2], [1], "binary"), both(da.zeros(3, chunks=2), [1, 0, 1], "binary")
        ('memory', 'dask, space=logits')
    """
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        bound = sig.bind(*args, **kwargs)
        if any(is_dask(bound.arguments.get(k)) for k in ("scores", "labels", "sample_weight")):
            bound.apply_defaults()
            return on_dask(**bound.arguments)
        return fn(*args, **kwargs)
    return wrapper
