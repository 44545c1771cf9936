r"""Bootstrap confidence intervals for the metrics (the private half of :func:`sigmax.metrics.bootstrap_ci`).

The method: the :math:`n` samples (rows; a multilabel row with all its entries) are drawn with
replacement :math:`R` times; resample :math:`r` gives each row a count :math:`K_{ri}` (a multinomial
draw, :math:`\sum_i K_{ri} = n`) and the metric of the resample is the metric with every row repeated
:math:`K_{ri}` times. The interval is the percentile interval of the :math:`R` values, or Efron's
BCa interval (bias-corrected and accelerated; the acceleration from a jackknife).

Fast paths evaluate every resample at once from the count matrix, never re-running the metric:

* the means (``nll``, ``brier``, ``accuracy``): per-row numerators :math:`a_i` and denominators
  :math:`b_i`, so the values are :math:`(K a) / (K b)`, two matrix-vector products;
* equal-width binned calibration errors (``calibration_error`` with ``mode="top_label"``, or binary
  ``"classwise"``; every norm, ``min_bin_count`` and ``debias``): the per-row bin sums :math:`X`
  (``n × 5·n_bins``: count, weight, weighted confidence, weighted outcome, squared weight), so the bin
  sums of every resample are one matrix product :math:`K X` (``R × 5·n_bins``);
* ``roc_auc`` and ``average_precision``: the entries are sorted once; the tied-group sums of every
  resample are segment sums of :math:`K` times the positive and negative weights.

Every other metric (and option) is re-run on each resample, from the same row indices, so the two
routes give the same numbers. Rows are drawn in blocks of ``chunk`` resamples as
``rng.integers(0, n, size=(chunk, n))`` with ``rng = numpy.random.default_rng(seed)``
(:func:`resample_indices`).

The Poisson bootstrap (``resampling="poisson"``, the one Dask arrays use): row :math:`i` enters
resample :math:`r` :math:`K_{ri} \sim \mathrm{Poisson}(1)` times, independently, the count a hash of
``(seed, i, r)`` alone (:func:`poisson_counts`; :math:`i` is the row's index in the input, before
``ignore_index`` drops rows), so any chunking of the rows draws the same counts. For the metrics with
a per-row state :math:`X` (:func:`poisson_plan`: the means, equal-width calibration errors,
precision/recall/F1 from counts) the resamples are :math:`F(K X)`; on Dask each block adds its
:math:`K_b X_b` (``n_resamples x state``) in the reduction tree. Other metrics (in memory only) are
re-run on the rows repeated by their counts.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from statistics import NormalDist
from typing import Any, Callable

import numpy as np

from ._binning import assign, debiased_squared, equal_width_edges, errors_from_sums
from ._dask import delayed_blocks, row_layout, tree_reduce
from ._inputs import canonical, is_dask, to_numpy, validate_space, validate_task
from ._metrics_ranking import ap_from_groups, auc_from_groups, group_sums, sorted_groups
from ._metrics_terms import (Interval, PairedInterval, brier_terms, check_average, class_column, decisions, from_canonical, nll_terms, prepare,
                             prf_from_counts, top_label, topk_correct)

__all__ = ["Interval", "PairedInterval", "POISSON_STATE", "RESAMPLINGS", "bootstrap_ci", "paired_bootstrap",
           "poisson_counts", "poisson_dask", "poisson_key", "poisson_plan", "refuse_poisson", "register",
           "resample_indices"]

#: metric function -> (name, higher_is_better, fast kind or None)
_REGISTRY: dict[Any, tuple[str, bool, str | None]] = {}
_CELLS = 4_000_000  # rows x resamples per block of the count matrix (32 MB of float64)
_JACKKNIFE_GROUPS = 1000


def register(fn: Callable, name: str, higher_is_better: bool, fast: str | None = None) -> None:
    """Declare a metric function: its name, its direction, and the fast path that evaluates it (if any)."""
    _REGISTRY[fn] = (name, bool(higher_is_better), fast)


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------


def _chunk(n: int, n_resamples: int) -> int:
    return max(1, min(n_resamples, _CELLS // max(n, 1)))


def resample_indices(n: int, n_resamples: int, seed: Any):
    """Yield blocks ``(chunk, n)`` of row indices, the resamples in order (the one draw of every route)."""
    rng = np.random.default_rng(seed)
    step = _chunk(n, n_resamples)
    done = 0
    while done < n_resamples:
        r = min(step, n_resamples - done)
        yield rng.integers(0, n, size=(r, n))
        done += r


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """The count matrix ``K`` (``r × n``) of a block of resample indices."""
    r = idx.shape[0]
    flat = (idx + n * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n).astype(np.float64)


def _jackknife_weights(n: int, seed: Any):
    """Yield blocks of delete-one (n <= 1000) or delete-a-group (1000 random groups) weight rows."""
    g = min(n, _JACKKNIFE_GROUPS)
    group = np.arange(n) if g == n else np.random.default_rng(seed).permutation(n) % g
    step = _chunk(n, g)
    for s in range(0, g, step):
        ids = np.arange(s, min(g, s + step))
        yield (group[None, :] != ids[:, None]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# the statistics: a function of a block of row weights -> one value per row of the block
# --------------------------------------------------------------------------------------------


def _defaults(metric: Callable, kwargs: dict) -> dict:
    out = {k: p.default for k, p in inspect.signature(metric).parameters.items()
           if p.default is not inspect.Parameter.empty}
    out.update(kwargs)
    return out


def _row_sum(values: np.ndarray, w: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row weighted sums of term values and of the weights (multilabel: over the row's entries)."""
    ww = np.ones(values.shape) if w is None else np.broadcast_to(w, values.shape)
    prod = np.multiply(values, ww, out=np.zeros(values.shape), where=ww > 0)  # weight 0 drops even inf
    return prod.reshape(n, -1).sum(axis=1), np.asarray(ww, dtype=np.float64).reshape(n, -1).sum(axis=1)


def _mean_terms(d, kind: str, kw: dict) -> np.ndarray:
    """The per-sample terms of a mean metric (``nll``, ``brier``, ``accuracy``) of one MetricData."""
    if kind == "nll":
        return nll_terms(d)
    if kind == "brier":
        return brier_terms(d)
    if d.task == "multiclass":
        return topk_correct(d, int(kw.get("top_k", 1))).astype(np.float64)
    return (decisions(d, kw.get("threshold")) == d.y).astype(np.float64)


def _mean_stat(d, kind: str, kw: dict):
    a, b = _row_sum(_mean_terms(d, kind, kw), d.w, d.n)
    if not np.all(np.isfinite(a)):
        return None  # an infinite term (p = 0 on a label): K @ a would turn 0 * inf into NaN; re-run instead
    return lambda k: _ratio(k @ a, k @ b)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _binned_stat(d, kw: dict):
    mode = str(kw.get("mode", "top_label")).lower().replace("-", "_")
    binning = str(kw.get("binning", "equal_width")).lower().replace("-", "_")
    if binning not in ("equal_width", "uniform", "width"):
        return None  # equal-mass edges depend on the resample: re-run
    if mode in ("top_label", "top", "toplabel"):
        conf, out, w = top_label(d)
    elif d.task == "binary":
        conf, out, w = class_column(d, 0)
    else:
        return None  # classwise over many classes: re-run
    n_bins = int(kw.get("n_bins", 15))
    norm = {"ece": "l1", "mce": "max", "inf": "max", "rms": "l2", "rmsce": "l2"}.get(str(kw.get("norm", "l1")).lower(),
                                                                                     str(kw.get("norm", "l1")).lower())
    mbc, debias = int(kw.get("min_bin_count", 10)), bool(kw.get("debias", False))
    ww = np.ones(conf.shape) if w is None else np.asarray(w, dtype=np.float64)
    bins = assign(conf, equal_width_edges(n_bins))
    # per entry: count, weight, weighted confidence, weighted outcome, squared weight (without sample
    # weights the first, second and last are the same column: computed once)
    cols = np.stack([ww, ww * conf, ww * out] if w is None else
                    [(ww > 0).astype(np.float64), ww, ww * conf, ww * out, ww * ww], axis=1)
    q = cols.shape[1]
    if conf.size == d.n:  # one entry per row: rows sorted by bin, one small product per bin (R x n_b x 5)
        order = np.argsort(bins, kind="stable")
        edges = np.searchsorted(bins[order], np.arange(n_bins + 1))
        xs = cols[order]

        def sums(k: np.ndarray) -> np.ndarray:
            ks = k[:, order]
            return np.stack([ks[:, a:b] @ xs[a:b] for a, b in zip(edges[:-1], edges[1:])], axis=2)
    else:  # several entries per row (multilabel): the per-row bin sums, one product K X
        cell = np.repeat(np.arange(d.n), conf.size // d.n) * n_bins + bins
        x = np.stack([np.bincount(cell, weights=cols[:, j], minlength=d.n * n_bins).reshape(d.n, n_bins)
                      for j in range(q)], axis=1).reshape(d.n, q * n_bins)

        def sums(k: np.ndarray) -> np.ndarray:
            return (k @ x).reshape(k.shape[0], q, n_bins)

    def stat(k: np.ndarray) -> np.ndarray:
        s = sums(k)
        if q == 3:
            count = wsum = w2 = s[:, 0]
            sconf, sacc = s[:, 1], s[:, 2]
        else:
            count, wsum, sconf, sacc, w2 = (s[:, j] for j in range(5))
        if debias:
            return np.sqrt(np.maximum(0.0, debiased_squared(count, wsum, sconf, sacc, w2)))
        return errors_from_sums(count, wsum, sconf, sacc, norm, mbc)
    return stat


def _ranking_stat(d, kind: str, kw: dict):
    fn = auc_from_groups if kind == "roc_auc" else ap_from_groups
    average = kw.get("average", "macro")
    average = None if isinstance(average, str) and average.lower() == "none" else \
        (average.lower() if isinstance(average, str) else average)
    if average is None and d.task != "binary":
        return None  # one value per class: not an interval
    if d.task == "binary" or average == "micro":
        if d.task == "binary":
            cols = [(d.p, d.y.astype(np.float64), d.w, np.arange(d.n))]
        else:
            k = d.p.shape[1]
            if d.task == "multiclass":
                o = np.zeros(d.p.shape)
                o[np.arange(d.n), d.y] = 1.0
                w = None if d.w is None else np.repeat(d.w, k)
            else:
                o, w = d.y.astype(np.float64), None if d.w is None else d.w.reshape(-1)
            cols = [(d.p.reshape(-1), o.reshape(-1), w, np.repeat(np.arange(d.n), k))]
    else:
        cols = [(*class_column(d, c), np.arange(d.n)) for c in range(d.p.shape[1])]
    prepared = []
    for s, o, w, rows in cols:
        ww = np.ones(s.shape) if w is None else np.asarray(w, dtype=np.float64)
        order, starts = sorted_groups(s)
        prepared.append((order, starts, ww * o, ww * (1.0 - o), rows))

    def stat(kmat: np.ndarray) -> np.ndarray:
        vals, sups = [], []
        for order, starts, pos, neg, rows in prepared:
            ke = kmat[:, rows]
            p, q = ke * pos, ke * neg
            vals.append(fn(group_sums(p, order, starts), group_sums(q, order, starts)))
            sups.append(p.sum(axis=1))
        v, sup = np.stack(vals, axis=1), np.stack(sups, axis=1)
        if len(prepared) == 1:
            return v[:, 0]
        if average == "macro":
            return v.mean(axis=1)  # a class undefined in a resample makes the resample undefined
        bad = np.any(np.isnan(v) & (sup > 0), axis=1)
        total = sup.sum(axis=1)
        val = _ratio(np.sum(np.where(sup > 0, v, 0.0) * sup, axis=1), total)
        return np.where(bad, np.nan, val)
    return stat


def _fast_stat(metric: Callable, d, kw: dict):
    entry = _REGISTRY.get(metric)
    if entry is None or entry[2] is None:
        return None
    kind = entry[2]
    kw = _defaults(metric, kw)
    if kind in ("nll", "brier", "accuracy"):
        return _mean_stat(d, kind, kw)
    if kind == "calibration_error":
        return _binned_stat(d, kw)
    return _ranking_stat(d, kind, kw)


# --------------------------------------------------------------------------------------------
# the loop route: re-run the metric on each resample
# --------------------------------------------------------------------------------------------


class _Data:
    """One set of scores, validated once: the canonical rows, their MetricData, and how to re-run a metric."""

    def __init__(self, scores, labels, task, space, axis, ignore_index, sample_weight):
        self.c = c = canonical(scores, labels, task, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight)
        self.d = from_canonical(c, space)
        self.space = space
        if c.valid is not None:  # masked multilabel entries travel as ignore_index labels
            self.labels, self.ignore = np.where(c.valid, c.labels, ignore_index), ignore_index
        else:
            self.labels, self.ignore = c.labels, None

    def call(self, metric, key, kw, rows=None):
        s, y, w = self.c.scores, self.labels, self.c.weight
        if rows is not None:
            s, y, w = s[rows], y[rows], None if w is None else w[rows]
        return _scalar(metric(s, y, self.c.task, space=self.space, axis=-1, ignore_index=self.ignore,
                              sample_weight=w, **kw), key)


def _scalar(value: Any, key: str | None) -> float:
    if isinstance(value, dict):
        if key is None:
            raise TypeError(f"the metric returns a dict (keys {sorted(value)}); say which value to bootstrap with "
                            "key=..., e.g. key='f1'")
        value = value[key]
    elif key is not None:
        raise TypeError(f"key={key!r} is for metrics that return a dict; this one returns {type(value).__name__}")
    a = np.asarray(value)
    if a.ndim != 0:
        raise TypeError(f"the metric returns an array of shape {a.shape}; bootstrap a single number "
                        "(e.g. average='macro' rather than None)")
    return float(a)


def _safe(data: _Data, metric, key, kw, rows) -> float:
    try:
        return data.call(metric, key, kw, rows)
    except ValueError:  # the metric is undefined on this resample (one class only, zero weight, ...)
        return math.nan


def _values(datas, metric, key, kw, n, n_resamples, seed) -> list[np.ndarray]:
    """The metric of each resample, for each data set (same resamples)."""
    stats = [_fast_stat(metric, x.d, kw) if key is None else None for x in datas]
    out = [[] for _ in datas]
    for idx in resample_indices(n, n_resamples, seed):
        k = _counts(idx, n) if any(s is not None for s in stats) else None
        for j, (x, st) in enumerate(zip(datas, stats)):
            if st is not None:
                out[j].append(np.asarray(st(k), dtype=np.float64))
            else:
                out[j].append(np.array([_safe(x, metric, key, kw, row) for row in idx]))
    return [np.concatenate(v) for v in out]


def _jackknife(datas, metric, key, kw, n, seed) -> list[np.ndarray]:
    stats = [_fast_stat(metric, x.d, kw) if key is None else None for x in datas]
    out = [[] for _ in datas]
    for wblock in _jackknife_weights(n, seed):
        for j, (x, st) in enumerate(zip(datas, stats)):
            if st is not None:
                out[j].append(np.asarray(st(wblock), dtype=np.float64))
            else:
                out[j].append(np.array([_safe(x, metric, key, kw, np.flatnonzero(row)) for row in wblock]))
    return [np.concatenate(v) for v in out]


# --------------------------------------------------------------------------------------------
# the Poisson bootstrap: per-row Poisson(1) counts from (seed, row), states summed over chunks
# --------------------------------------------------------------------------------------------

#: the Poisson(1) distribution function at 0, 1, 2, ... (the last entry closes the tail at 1)
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(j) for j in range(24)])
_POISSON_CDF[-1] = 1.0
#: the most numbers one Poisson state may hold (n_resamples x per-row state: 128 MiB of float64)
POISSON_STATE = 1 << 24
RESAMPLINGS = ("multinomial", "poisson")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scrambles every bit (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def poisson_key(seed: Any) -> int:
    """The 64-bit key of a seed (an int, a sequence of ints or ``None`` for fresh entropy)."""
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        raise ValueError("resampling='poisson' draws each row's counts from the seed and the row's index, so "
                         "seed must be an int (or None), not a Generator")
    return int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])


def poisson_counts(key: int, rows: np.ndarray, resamples: np.ndarray) -> np.ndarray:
    """``(len(resamples), len(rows))`` Poisson(1) counts of the given global row indices: a function of
    ``(key, row, resample)`` only, so any chunking of the rows draws the same counts.

    Example:
        >>> k = poisson_counts(poisson_key(0), np.arange(100_000), np.arange(2))
        >>> k.shape, round(float(k.mean()), 2), bool(np.array_equal(k[:, 5:9], poisson_counts(poisson_key(0),
        ...                                          np.arange(5, 9), np.arange(2))))
        ((2, 100000), 1.0, True)
    """
    with np.errstate(over="ignore"):
        r = np.asarray(resamples, dtype=np.uint64)[:, None]
        x = _mix(np.asarray(rows, dtype=np.uint64)[None, :] * np.uint64(0x9E3779B97F4A7C15) + _mix(r + np.uint64(key)))
        u = (_mix(x) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53  # uniform on [0, 1)
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)


def _entry_sums(conf, out, w, n_rows: int, n_bins: int) -> np.ndarray:
    """Per row: equal-width ``(count, weight, sconf, sacc, w2)`` bin sums of its entries, ``(n, 5 * n_bins)``."""
    ww = np.ones(conf.shape) if w is None else np.broadcast_to(np.asarray(w, dtype=np.float64), conf.shape)
    cell = np.repeat(np.arange(n_rows), conf.size // max(n_rows, 1)) * n_bins + assign(conf, equal_width_edges(n_bins))
    cols = ((ww > 0) * 1.0, ww, ww * conf, ww * out, ww * ww)
    return np.concatenate([np.bincount(cell, weights=c, minlength=n_rows * n_bins).reshape(n_rows, n_bins)
                           for c in cols], axis=1)


def _norm(kw: dict) -> str:
    n = str(kw.get("norm", "l1")).lower()
    return {"ece": "l1", "mce": "max", "inf": "max", "rms": "l2", "rmsce": "l2"}.get(n, n)


def poisson_plan(metric: Callable, kw: dict, key: str | None):
    """``(rows, finish)`` for a metric whose resample value is a function of per-row sums, else ``None``:
    ``rows(d)`` is the ``(n, m)`` per-row state of a :class:`MetricData`, and ``finish(S)`` turns the
    ``(R, m)`` count-weighted sums ``S = K @ rows`` into the ``R`` values."""
    entry = _REGISTRY.get(metric)
    if entry is None:
        return None
    name, _, kind = entry
    kw = _defaults(metric, kw)
    if kind in ("nll", "brier", "accuracy") and key is None:
        def rows(d):
            a, b = _row_sum(_mean_terms(d, kind, kw), d.w, d.n)
            inf = np.isinf(a)  # an infinite term: infinite in every resample that draws its row
            return np.stack([np.where(inf, 0.0, a), b, inf * 1.0], axis=1)
        return rows, lambda s: np.where(s[:, 2] > 0, np.inf, _ratio(s[:, 0], s[:, 1]))
    if kind == "calibration_error" and key is None:
        binning = str(kw.get("binning", "equal_width")).lower().replace("-", "_")
        if binning not in ("equal_width", "uniform", "width"):
            return None
        mode = str(kw.get("mode", "top_label")).lower().replace("-", "_")
        top = mode in ("top_label", "top", "toplabel")
        n_bins, norm = int(kw.get("n_bins", 15)), _norm(kw)
        mbc, debias = int(kw.get("min_bin_count", 10)), bool(kw.get("debias", False))

        def rows(d):
            if top:
                return _entry_sums(*top_label(d), d.n, n_bins)
            cols = [class_column(d, c) for c in range(1 if d.task == "binary" else d.p.shape[1])]
            return np.concatenate([_entry_sums(conf, out, w, d.n, n_bins) for conf, out, w in cols], axis=1)

        def finish(s):
            s = s.reshape(s.shape[0], -1, 5, n_bins)  # (R, sets, 5, bins)
            count, wsum, sconf, sacc, w2 = (s[:, :, j] for j in range(5))
            if debias:
                return np.sqrt(np.maximum(0.0, debiased_squared(count, wsum, sconf, sacc, w2))).mean(axis=1)
            e = errors_from_sums(count, wsum, sconf, sacc, norm, mbc)
            if norm != "max":
                return e.mean(axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: undefined resamples
                return np.nanmean(e, axis=1)
        return rows, finish
    if name == "precision_recall_f1" and key in ("precision", "recall", "f1"):
        threshold, average = kw.get("threshold"), check_average(kw.get("average", "micro"))
        if average is None:
            return None

        def rows(d):
            pred = decisions(d, threshold)
            if d.task == "multiclass":
                c = d.p.shape[1]
                onehot_y, onehot_p = np.eye(c)[d.y], np.eye(c)[pred]
                w = np.ones(d.n) if d.w is None else d.w
                tp = onehot_y * onehot_p * w[:, None]
                return np.concatenate([tp, onehot_p * w[:, None] - tp, onehot_y * w[:, None] - tp], axis=1)
            pred, y = pred.reshape(d.n, -1), d.y.reshape(d.n, -1)
            w = np.ones(y.shape) if d.w is None else d.w.reshape(d.n, -1)
            return np.concatenate([w * ((pred == 1) & (y == 1)), w * ((pred == 1) & (y == 0)),
                                   w * ((pred == 0) & (y == 1))], axis=1)

        def finish(s):
            tp, fp, fn = np.split(s, 3, axis=1)
            return np.array([prf_from_counts(a, b, c, average if tp.shape[1] > 1 else "micro")[key]
                             for a, b, c in zip(tp, fp, fn)])
        return rows, finish
    return None


def refuse_poisson(metric: Callable, key: str | None, why: str = "") -> ValueError:
    return ValueError(f"bootstrap_ci of {_name(metric)}{'' if key is None else f' (key={key!r})'} on a Dask array: "
                      f"{why or 'its resample value is not a function of per-row sums'}, so the Poisson bootstrap "
                      "cannot add it up chunk by chunk; Dask arrays support nll, brier, accuracy, calibration_error "
                      "(equal-width bins) and precision_recall_f1 (key='precision'/'recall'/'f1', an average); "
                      "for another metric bootstrap a bounded sample in memory: bootstrap_ci(metric, "
                      "scores[idx].compute(), labels[idx].compute(), ...) with idx a sorted random choice of rows")


def _kept_rows(labels: Any, task: str, ignore_index: Any, m: int) -> np.ndarray:
    """The input row indices that ``ignore_index`` keeps (multilabel masks entries, never rows)."""
    if ignore_index is None or task == "multilabel":
        return np.arange(m)
    lab = to_numpy(labels, "labels").reshape(-1)
    return np.flatnonzero(lab != ignore_index)


def _poisson_memory(data: _Data, metric, key, kw, labels, ignore_index, n_resamples, seed) -> np.ndarray:
    """The Poisson-bootstrap values of in-memory data: the same counts as a Dask array of the same rows."""
    c, n = data.c, data.d.n
    rows_all = _kept_rows(labels, c.task, ignore_index, n + (0 if c.task == "multilabel" else c.n_ignored))
    if rows_all.size != n:  # pragma: no cover - canonical drops exactly these rows
        raise RuntimeError("the rows kept by ignore_index do not match the canonical record")
    k = poisson_key(seed)
    plan = poisson_plan(metric, kw, key)
    if plan is not None:
        rows, finish = plan
        x = rows(data.d)
        _check_state(n_resamples, x.shape[1])
        total = np.zeros((n_resamples, x.shape[1]))
        step = max(1, _CELLS // n_resamples)
        for a in range(0, n, step):
            total += poisson_counts(k, rows_all[a:a + step], np.arange(n_resamples)) @ x[a:a + step]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(finish(total), dtype=np.float64)
    out = np.empty(n_resamples)
    for r in range(n_resamples):  # any other metric: re-run on the rows repeated by their counts
        out[r] = _safe(data, metric, key, kw, np.repeat(np.arange(n), poisson_counts(k, rows_all, [r])[0].astype(int)))
    return out


def _check_state(n_resamples: int, m: int) -> None:
    if n_resamples * m > POISSON_STATE:
        raise ValueError(f"the Poisson bootstrap state of {n_resamples} resamples x {m} per-row sums exceeds "
                         f"{POISSON_STATE} numbers; use fewer n_resamples, fewer n_bins, or mode='top_label'")


def poisson_dask(metric, key, kw, scores, labels, task, space, axis, ignore_index, sample_weight,
                 n_resamples, seed) -> np.ndarray:
    """The Poisson-bootstrap values of Dask arrays: one tree reduction of ``(n_resamples, m)`` sums.

    Example:
        >>> import dask.array as da, sigmax.metrics as M
        >>> z, y = np.linspace(-2, 2, 50), np.arange(50) % 2
        >>> v = poisson_dask(M.nll, None, {}, da.from_array(z, chunks=7), y, "binary", "logits", -1, None, None, 5, 0)
        >>> v.shape, bool(np.all(v > 0))
        ((5,), True)
    """
    plan = poisson_plan(metric, kw, key)
    if plan is None:
        raise refuse_poisson(metric, key)
    rows, finish = plan
    s, y, w = row_layout(scores, labels, task, axis=axis, sample_weight=sample_weight)
    offsets = np.concatenate([[0], np.cumsum(s.chunks[0])])
    k = poisson_key(seed)

    def part(sb, yb, wb, start):
        d = prepare(sb, yb, task, space, -1, ignore_index=ignore_index, sample_weight=wb, need_log=True,
                    allow_empty=True)
        if not d.n:
            return None
        x = rows(d)
        _check_state(n_resamples, x.shape[1])
        kept = start + _kept_rows(np.asarray(yb), task, ignore_index, int(np.shape(sb)[0]))
        return poisson_counts(k, kept, np.arange(n_resamples)) @ x

    blocks = [(*b, int(o)) for b, o in zip(delayed_blocks(s, y, w), offsets[:-1])]
    total = tree_reduce(part, blocks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(finish(total), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# intervals
# --------------------------------------------------------------------------------------------


def _check(metric, n_resamples, level, method) -> str:
    if not callable(metric):
        raise TypeError(f"metric must be a metric function of sigmax.metrics (or any callable), got {metric!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2, got {n_resamples!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), e.g. 0.95, got {level!r}")
    m = method.lower() if isinstance(method, str) else method
    if m not in ("percentile", "bca"):
        raise ValueError(f"unknown method {method!r}; use 'percentile' or 'bca' (bias-corrected and accelerated)")
    return m


def _check_resampling(resampling: Any, on_dask: bool, method: str, metric: Callable, kw: dict, key: Any) -> str:
    r = resampling.lower() if isinstance(resampling, str) else resampling
    if r is None:
        r = "poisson" if on_dask else "multinomial"
    if r not in RESAMPLINGS:
        raise ValueError(f"unknown resampling {resampling!r}; use 'multinomial' (n rows drawn with replacement) or "
                         "'poisson' (a Poisson(1) count per row, the one Dask arrays use)")
    if on_dask and r == "multinomial":
        raise ValueError("resampling='multinomial' on a Dask array needs the whole index set at once; use "
                         "resampling='poisson' (the default for Dask arrays: per-row counts drawn on the workers)")
    if on_dask and method == "bca":
        raise ValueError("method='bca' on a Dask array needs a jackknife over the rows in memory; use "
                         "method='percentile' (the Poisson bootstrap), or bootstrap a bounded sample in memory")
    if on_dask and poisson_plan(metric, kw, key) is None:
        raise refuse_poisson(metric, key)
    return r


def _defined(values: np.ndarray, name: str, extra: np.ndarray | None = None) -> np.ndarray:
    ok = ~np.isnan(values) if extra is None else ~(np.isnan(values) | np.isnan(extra))
    bad = int(np.sum(~ok))
    if bad == values.size:
        raise ValueError(f"{name} is undefined on every resample; no interval can be given")
    if bad:
        warnings.warn(f"{name} is undefined on {bad} of {values.size} resamples (e.g. a resample without "
                      f"positives, or no bin of min_bin_count rows); the interval uses the other {values.size - bad}",
                      RuntimeWarning, stacklevel=3)
    return ok


def _interval(theta: float, boot: np.ndarray, jack: np.ndarray | None, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2
    if jack is None:  # percentile
        lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
        return float(lo), float(hi)
    nd = NormalDist()
    r = boot.size
    share = (np.sum(boot < theta) + 0.5 * np.sum(boot == theta)) / r
    z0 = nd.inv_cdf(min(max(share, 0.5 / r), 1.0 - 0.5 / r))
    jack = jack[~np.isnan(jack)]
    dev = jack.mean() - jack if jack.size else np.zeros(1)
    ss = float(np.sum(dev * dev))
    a = float(np.sum(dev ** 3)) / (6.0 * ss ** 1.5) if ss > 0 else 0.0
    qs = []
    for z in (nd.inv_cdf(alpha), nd.inv_cdf(1.0 - alpha)):
        t = z0 + z
        qs.append(nd.cdf(z0 + t / (1.0 - a * t)) if 1.0 - a * t > 0 else (0.0 if z < 0 else 1.0))
    lo, hi = np.quantile(boot, qs)
    return float(lo), float(hi)


def _name(metric) -> str:
    entry = _REGISTRY.get(metric)
    return entry[0] if entry else getattr(metric, "__name__", "the metric")


def bootstrap_ci(metric: Callable, scores: Any, labels: Any, task: str, *, n_resamples: int = 1000,
                 level: float = 0.95, seed: Any = 0, method: str = "percentile", key: str | None = None,
                 space: str = "logits", axis: int = -1, ignore_index: Any = None, sample_weight: Any = None,
                 resampling: str | None = None, **metric_kwargs) -> Interval:
    r"""A bootstrap confidence interval for any metric of :mod:`sigmax.metrics`.

    The rows (samples; a multilabel row with all its entries) are resampled with replacement
    ``n_resamples`` times; :math:`\hat\theta^*_r` is the metric of resample :math:`r` and
    :math:`\hat\theta` the metric on the data. ``method="percentile"``: the interval is the
    :math:`\alpha/2` and :math:`1-\alpha/2` quantiles of :math:`\hat\theta^*` (:math:`\alpha = 1 -`
    ``level``). ``method="bca"`` (Efron 1987): the quantiles are moved to

    .. math:: \alpha_{1,2} = \Phi\Big(z_0 + \frac{z_0 + z_{\alpha/2,\,1-\alpha/2}}{1 - a (z_0 + z_{\alpha/2,\,1-\alpha/2})}\Big),
              \quad z_0 = \Phi^{-1}\big(\#\{\hat\theta^*_r < \hat\theta\} / R\big),
              \quad a = \frac{\sum_g (\bar\theta_{(\cdot)} - \theta_{(g)})^3}{6 \big(\sum_g (\bar\theta_{(\cdot)} - \theta_{(g)})^2\big)^{3/2}}

    with :math:`\theta_{(g)}` the jackknife values (delete one row; above 1000 rows, delete one of
    1000 random groups). Means, equal-width binned calibration errors and the ranking metrics are
    evaluated on all resamples at once from the resample count matrix; other metrics are re-run per
    resample on the same rows (see :mod:`sigmax._metrics_bootstrap`).

    Args:
        metric: a metric function, e.g. :func:`sigmax.metrics.nll`, :func:`calibration_error`,
            :func:`roc_auc` (or any callable with their signature, re-run on each resample).
        scores, labels, task, space, axis, ignore_index, sample_weight: as in :func:`sigmax.metrics.nll`.
            Rows dropped by ``ignore_index`` are not resampled; sample weights travel with their rows.
        n_resamples: number of resamples ``R`` (>= 2).
        level: the coverage of the interval, in (0, 1).
        seed: seed of ``numpy.random.default_rng`` (the same seed gives the same resamples).
        method: ``"percentile"`` or ``"bca"``.
        key: for a metric returning a dict (:func:`precision_recall_f1`): which value, e.g. ``"f1"``.
        resampling: ``"multinomial"`` (the default in memory: ``n`` rows drawn with replacement) or
            ``"poisson"`` (the Poisson bootstrap: each row enters resample ``r`` with an independent
            Poisson(1) count drawn from ``(seed, row index, r)`` alone, so the resample sizes vary around
            ``n``). Dask arrays always use ``"poisson"`` (the default there; ``"multinomial"`` is refused):
            a multinomial draw needs the whole index set at once, whereas Poisson counts are drawn on the
            workers, row by row, and each resample's per-row sums are added in the tree (one reduction of
            ``n_resamples x state`` numbers; the metrics whose resample value is a function of per-row sums:
            ``nll``, ``brier``, ``accuracy``, ``calibration_error`` with equal-width bins and
            ``precision_recall_f1`` with ``key``; ``method="percentile"`` only). The same seed gives the
            same interval in memory and on Dask, for any chunking, up to the order of float additions.
        **metric_kwargs: passed to the metric (``n_bins``, ``norm``, ``average``, ``threshold``, ...).

    Returns:
        ``Interval(estimate, low, high)`` of floats; ``estimate`` is the metric on the data.

    Note:
        A resample on which the metric is undefined (no positives for ``roc_auc``, no bin of
        ``min_bin_count`` rows for the MCE) is left out with a ``RuntimeWarning`` saying how many;
        undefined on the data or on every resample is a ``ValueError``.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(500, 3)) * 2; y = rng.integers(0, 3, 500)
        >>> ci = M.bootstrap_ci(M.accuracy, z, y, "multiclass", n_resamples=200)
        >>> ci.low < ci.estimate < ci.high
        True
    """
    method = _check(metric, n_resamples, level, method)
    task, space = validate_task(task), validate_space(space)
    axis = metric_kwargs.pop("dim", None) if metric_kwargs.get("dim") is not None else axis
    metric_kwargs.pop("dim", None)
    on_dask = any(is_dask(a) for a in (scores, labels, sample_weight))
    resampling = _check_resampling(resampling, on_dask, method, metric, metric_kwargs, key)
    theta = _scalar(metric(scores, labels, task, space=space, axis=axis, ignore_index=ignore_index,
                           sample_weight=sample_weight, **metric_kwargs), key)
    name = _name(metric)
    if math.isnan(theta):
        raise ValueError(f"{name} is undefined on these data (NaN); no interval can be given")
    if on_dask:
        boot = poisson_dask(metric, key, metric_kwargs, scores, labels, task, space, axis, ignore_index,
                            sample_weight, n_resamples, seed)
        return Interval(theta, *_interval(theta, boot[_defined(boot, name)], None, level))
    data = _Data(scores, labels, task, space, axis, ignore_index, sample_weight)
    n = data.d.n
    if resampling == "poisson":
        boot = _poisson_memory(data, metric, key, metric_kwargs, labels, ignore_index, n_resamples, seed)
    else:
        (boot,) = _values([data], metric, key, metric_kwargs, n, n_resamples, seed)
    boot = boot[_defined(boot, name)]
    jack = _jackknife([data], metric, key, metric_kwargs, n, seed)[0] if method == "bca" else None
    return Interval(theta, *_interval(theta, boot, jack, level))


def paired_bootstrap(metric: Callable, scores_a: Any, scores_b: Any, labels: Any, task: str, *,
                     n_resamples: int = 1000, level: float = 0.95, seed: Any = 0, method: str = "percentile",
                     key: str | None = None, higher_is_better: bool | None = None, space: str = "logits",
                     space_b: str | None = None, axis: int = -1, ignore_index: Any = None, sample_weight: Any = None,
                     resampling: str | None = None, **metric_kwargs) -> PairedInterval:
    r"""The paired bootstrap of ``metric(b) - metric(a)``: is model ``b`` really better than ``a``?

    Both score sets are evaluated on the *same* resamples of the rows (as :func:`bootstrap_ci`), so the
    noise they share cancels: :math:`\Delta^*_r = \theta_b^{*r} - \theta_a^{*r}` and the interval is
    the percentile (or BCa, jackknifing the difference) interval of :math:`\Delta^*`. Which direction
    is better is known for the metrics of :mod:`sigmax.metrics`: lower for ``nll``, ``brier``,
    ``calibration_error``, ``smooth_calibration_error``; higher for ``accuracy``,
    ``precision_recall_f1``, ``roc_auc``, ``average_precision``. ``share_not_better`` is the share of
    resamples in which b is not better (:math:`\Delta^* \ge 0` for a loss, :math:`\le 0` for a
    score): a one-sided bootstrap p-value; an interval that contains 0 means the change is not
    significant at ``level``.

    Args:
        metric, labels, task, n_resamples, level, seed, method, key, axis, ignore_index, sample_weight,
            **metric_kwargs: as in :func:`bootstrap_ci`.
        scores_a, scores_b: the two models' scores of the same samples (e.g. before and after calibration).
        higher_is_better: the direction, needed for a metric that sigmax does not know.
        space: the space of ``scores_a``; ``space_b``: that of ``scores_b`` (default: ``space``).
        resampling: as in :func:`bootstrap_ci` (Dask arrays: ``"poisson"``; both score sets get the same
            per-row counts, so the difference is paired on the workers too).

    Returns:
        ``PairedInterval(estimate, low, high, share_not_better)``; ``estimate = metric(b) - metric(a)``.

    Example:
        >>> import numpy as np, sigmax.metrics as M
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=1000) * 2; y = (rng.uniform(size=1000) < 1 / (1 + np.exp(-z))).astype(int)
        >>> r = M.paired_bootstrap(M.nll, 3 * z, z, y, "binary", n_resamples=200)  # b: the calibrated logits
        >>> r.high < 0, r.share_not_better
        (True, 0.0)
    """
    method = _check(metric, n_resamples, level, method)
    task, space = validate_task(task), validate_space(space)
    axis = metric_kwargs.pop("dim", None) if metric_kwargs.get("dim") is not None else axis
    metric_kwargs.pop("dim", None)
    space_b = space if space_b is None else validate_space(space_b)
    if higher_is_better is None:
        entry = _REGISTRY.get(metric)
        if entry is None:
            raise ValueError("paired_bootstrap needs to know which direction is better for this metric: pass "
                             "higher_is_better=True (accuracy-like) or False (loss-like)")
        higher_is_better = entry[1]
    elif higher_is_better not in (True, False):
        raise ValueError(f"higher_is_better must be True, False or None, got {higher_is_better!r}")
    on_dask = any(is_dask(a) for a in (scores_a, scores_b, labels, sample_weight))
    resampling = _check_resampling(resampling, on_dask, method, metric, metric_kwargs, key)
    if on_dask and tuple(scores_a.shape) != tuple(scores_b.shape):
        raise ValueError(f"scores_a and scores_b must score the same samples: shapes {tuple(scores_a.shape)} and "
                         f"{tuple(scores_b.shape)}")
    common = dict(axis=axis, ignore_index=ignore_index, sample_weight=sample_weight, **metric_kwargs)
    ta = _scalar(metric(scores_a, labels, task, space=space, **common), key)
    tb = _scalar(metric(scores_b, labels, task, space=space_b, **common), key)
    name = _name(metric)
    if math.isnan(ta) or math.isnan(tb):
        raise ValueError(f"{name} is undefined on these data (NaN); no interval can be given")
    if on_dask:  # the same per-row counts for both: one reduction each, differenced here
        ba, bb = (poisson_dask(metric, key, metric_kwargs, s, labels, task, sp, axis, ignore_index, sample_weight,
                               n_resamples, seed) for s, sp in ((scores_a, space), (scores_b, space_b)))
    else:
        da = _Data(scores_a, labels, task, space, axis, ignore_index, sample_weight)
        db = _Data(scores_b, labels, task, space_b, axis, ignore_index, sample_weight)
        if da.d.n != db.d.n:
            raise ValueError(f"scores_a and scores_b must score the same samples: {da.d.n} rows against {db.d.n}")
        n = da.d.n
        if resampling == "poisson":
            ba, bb = (_poisson_memory(x, metric, key, metric_kwargs, labels, ignore_index, n_resamples, seed)
                      for x in (da, db))
        else:
            ba, bb = _values([da, db], metric, key, metric_kwargs, n, n_resamples, seed)
    ok = _defined(ba, name, bb)
    diff = bb[ok] - ba[ok]
    jack = None
    if method == "bca":
        ja, jb = _jackknife([da, db], metric, key, metric_kwargs, n, seed)
        jack = jb - ja
    theta = tb - ta
    lo, hi = _interval(theta, diff, jack, level)
    not_better = np.mean(diff <= 0) if higher_is_better else np.mean(diff >= 0)
    return PairedInterval(theta, lo, hi, float(not_better))
