r"""ROC AUC and average precision of Dask arrays, exactly: splitters, bucket sums, one task per bucket.

Both statistics are sums over the *tied groups* of each binary problem — a class column (one-vs-rest),
the pooled ``"micro"`` entries, or the binary task — sorted by score, descending
(:mod:`sigmax._metrics_ranking`):

.. math::
    \mathrm{AUC} = \frac{1}{P N} \sum_g P_g \Big(N_{<g} + \tfrac12 N_g\Big), \qquad
    \mathrm{AP} = \frac1P \sum_g P_g \frac{T_{\ge g}}{T_{\ge g} + F_{\ge g}}

with :math:`N_{<g}` the negative weight ranked below group :math:`g` and :math:`T_{\ge g}, F_{\ge g}`
the positive and negative weight ranked at or above it. A group's term needs its own sums and the
weights ranked above and below it, nothing else, so the score line can be cut into *buckets* that are
finished one by one. The passes over the row blocks (each block prepared as in memory, persisted on
the workers of a ``distributed.Client`` when one is active):

1. per problem, its entry count :math:`m` (entries of positive weight: a sample of weight 0, or a
   multilabel entry masked by ``ignore_index``, is not ranked at all, as in memory) and its positive
   and negative weight;
2. only for a problem with :math:`m >` :data:`BUCKET_ROWS`: the exact order statistics at the ranks
   :math:`\mathrm{round}(j m / K)`, :math:`j = 1..K-1`, :math:`K = \lceil m / \mathtt{BUCKET\_ROWS}
   \rceil + 1` (:func:`sigmax._dask_select.kth_smallest_many`, every such problem at once), deduplicated
   into sorted *splitters* :math:`v`; an entry's bucket is ``searchsorted(v, x, 'left') +
   searchsorted(v, x, 'right')``: even for the open interval between two consecutive splitters, odd for
   a splitter's value itself. Then one tree-reduced pass for each bucket's count and positive and
   negative weight;
3. the buckets are packed, in order, into *tasks* of at most :data:`BUCKET_ROWS` entries (several
   small problems may share one); each block is split once into one piece per task, and each task
   gathers its pieces from every block, sorts them (:func:`sigmax._metrics_ranking.sorted_groups`),
   forms the tied groups and returns its partial sums of the two numerators, given the weights of the
   buckets above and below it (computed here from pass 2's sums). A splitter's bucket too large for a
   task is one tied group: its terms are computed here from its sums. The partial sums are added in a
   tree and :func:`sigmax._metrics_ranking.finish_values` averages them with the in-memory messages.

What travels to the client: fixed-size states (per problem three numbers, per bucket three, the
order statistics) — never the scores. Between workers each entry travels once, to its bucket task
(9 bytes, 17 with weights). What a task holds: one row block (the passes over blocks) or at most
:data:`BUCKET_ROWS` entries (a bucket task: under 80 bytes an entry at its peak, the sort included); the
selection gathers at most :data:`sigmax._dask_select.GATHER` keys. The graph has ``blocks x tasks``
pieces; a problem that fits one bucket costs no selection and no bucket pass.

Why it is exact with ties: equal scores fall in the same bucket (the bucket is a function of the
value), so every tied group is whole in one bucket and is formed exactly as in memory, and the buckets
are ordered as their values. An open interval holds only entries strictly between two consecutive
order statistics of ranks :math:`r < r'` (or beyond the first or last), so at most
:math:`\lfloor m / K + \tfrac12 \rfloor \le` :data:`BUCKET_ROWS` of them, however many ties sit *at* a
splitter (those are the splitter's own bucket). The result equals the in-memory one up to the order of
float additions. Scores are the probabilities of the declared space, as in memory: a logit of ``+-inf``
ranks as probability 1 or 0, and NaN scores are the in-memory error (naming the row in the whole array).
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import numpy as np

from ._array import resolve_axis
from ._dask import add, delayed_blocks, persist_blocks, row_layout, row_starts, tree_reduce
from ._dask_metrics import empty_error, kept_entries
from ._dask_select import kth_smallest_many
from ._inputs import validate_space, validate_task
from ._metrics_ranking import check_ranking_average, finish_values, group_sums, pooled, pools, sorted_groups
from ._metrics_terms import class_column, prepare

__all__ = ["BUCKET_ROWS", "RankingSums", "ranking", "ranking_sums"]

#: the most entries one bucket task sorts (and the size above which a problem is cut into buckets)
BUCKET_ROWS = 1 << 22


class RankingSums(NamedTuple):
    """Per binary problem: the AUC numerator :math:`\\sum_g P_g (N_{<g} + N_g / 2)`, the AP numerator
    :math:`\\sum_g P_g\\,\\mathrm{precision}_g`, the positive and negative weight and the entry count;
    with the plan: buckets in all, bucket tasks, and the most entries one bucket task held."""

    auc_num: np.ndarray
    ap_num: np.ndarray
    pos: np.ndarray
    neg: np.ndarray
    count: np.ndarray
    n_buckets: int
    n_tasks: int
    max_task_entries: int


# ------------------------------------------------------------------------- per block (on the workers)
def _entries(s: np.ndarray, o: np.ndarray, w: np.ndarray | None) -> tuple:
    """``(score, outcome, weight)`` of the entries of positive weight: float64, bool, float64 or ``None`` (all 1).

    (9 bytes an entry without weights, 17 with: what a bucket task gathers.)"""
    if w is None:
        return s, o > 0, None
    keep = w > 0  # a sample of weight 0 (or a masked multilabel entry) is not ranked at all, as in memory
    return s[keep], o[keep] > 0, w[keep]


def _weights(o: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The positive and negative weight of each entry (``w * o`` and ``w * (1 - o)``, as in memory)."""
    ww = np.ones(o.shape) if w is None else w
    return np.where(o, ww, 0.0), np.where(o, 0.0, ww)


def _prep(sb, yb, wb, first: int, task: str, space: str, ignore_index: Any, pool: bool):
    """A block as its problems' entries, with ``(rows, entries kept, entries ignored)``."""
    rows = np.arange(first, first + np.shape(sb)[0])  # NaN messages name the rows of the whole array
    d = prepare(sb, yb, task, space, -1, ignore_index=ignore_index, sample_weight=wb, need_log=False,
                allow_empty=True, row_numbers=rows)
    kept = kept_entries(d)
    cols = [pooled(d)] if pool else [class_column(d, j) for j in range(d.p.shape[1])]
    return [_entries(*col) for col in cols], d.n, kept, d.n_ignored


def _stats(b) -> tuple:
    probs, n, kept, n_ignored = b
    count = np.array([p[0].size for p in probs], dtype=np.int64)
    sums = np.array([[x.sum() for x in _weights(o, w)] for _, o, w in probs]).reshape(len(probs), 2).T
    return count, sums, n, kept, n_ignored


def _scores(b, split: tuple) -> list:
    """The scores of the problems ``split`` (the sets of the selection)."""
    return [b[0][j][0] for j in split]


def _bucket_of(x: np.ndarray, v: np.ndarray | None) -> np.ndarray:
    """Even ``2i``: strictly between splitters ``i - 1`` and ``i``; odd ``2i + 1``: equal to splitter ``i``."""
    if v is None:
        return np.zeros(x.shape, dtype=np.int64)
    return np.searchsorted(v, x, "left") + np.searchsorted(v, x, "right")


def _bucket_sums(b, split: tuple, splitters: tuple) -> list:
    out = []
    for j, v in zip(split, splitters):
        s, o, w = b[0][j]
        pos, neg = _weights(o, w)
        idx, nb = _bucket_of(s, v), 2 * v.size + 1
        out.append((np.bincount(idx, minlength=nb).astype(np.int64),
                    np.stack([np.bincount(idx, pos, nb), np.bincount(idx, neg, nb)])))
    return out


def _split(b, plan) -> list:
    """The block's entries as one piece per task: a list of ``(score, outcome, weight)`` per segment of the task."""
    splitters, seg_of, task_segs = plan
    segs = {}
    for j, (s, o, w) in enumerate(b[0]):
        if seg_of[j] is None or not s.size:
            continue
        if seg_of[j].size == 1:  # a problem of one bucket: the whole problem is one segment
            if seg_of[j][0] >= 0:
                segs[int(seg_of[j][0])] = (s, o, w)
            continue
        sid = seg_of[j][_bucket_of(s, splitters[j])]
        order = np.argsort(sid, kind="stable")
        sid_sorted = sid[order]
        ids = np.unique(sid_sorted[sid_sorted >= 0])
        lo, hi = np.searchsorted(sid_sorted, ids, "left"), np.searchsorted(sid_sorted, ids, "right")
        for k, a, z in zip(ids.tolist(), lo, hi):
            take = order[a:z]
            segs[k] = (s[take], o[take], None if w is None else w[take])
    empty = (np.zeros(0), np.zeros(0, dtype=bool), None)
    return [[segs.get(k, empty) for k in ks] for ks in task_segs]


def _task(meta: list, *pieces) -> tuple:
    """``({problem: [AUC numerator, AP numerator]}, entries held)`` of one task's segments.

    ``meta``: per segment ``(problem, positive weight above, negative weight above, negative weight
    below)`` — the buckets of the same problem ranked above and below the segment."""
    out, held = {}, 0
    for k, (j, p_above, n_above, n_below) in enumerate(meta):
        got = [p[k] for p in pieces]
        s, o = np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])
        w = None if all(g[2] is None for g in got) else \
            np.concatenate([np.ones(g[0].shape) if g[2] is None else g[2] for g in got])
        del got
        held += s.size
        order, starts = sorted_groups(s)
        del s
        pos, neg = _weights(o, w)
        del o, w
        pg = group_sums(pos, order, starts)
        del pos
        ng = group_sums(neg, order, starts)
        del neg, order, starts  # from here on, only per-group arrays
        below = n_below + (ng.sum() - np.cumsum(ng))  # negatives ranked strictly below each group
        auc = np.sum(pg * (below + 0.5 * ng))
        del below
        tp, fp = np.cumsum(pg), np.cumsum(ng)
        tp += p_above
        fp += n_above
        fp += tp  # every entry ranked at or above the group
        prec = np.divide(tp, fp, out=tp, where=fp > 0)
        prec[fp <= 0] = 0.0
        out[j] = add(out.get(j), np.array([auc, np.sum(pg * prec)]))
    return out, held


def _merge(a: tuple, b: tuple) -> tuple:
    return add(a[0], b[0]), max(a[1], b[1])


# ------------------------------------------------------------------------- the plan (here)
def _ranks(m: int, limit: int) -> list[int]:
    """The ranks of the splitters of ``m`` entries: ``round(j m / K)``, ``K = ceil(m / limit) + 1``."""
    k = -(-m // limit) + 1
    return sorted({min(m, max(1, (2 * j * m + k) // (2 * k))) for j in range(1, k)})


def _pack(buckets: list, limit: int):
    """Tasks of at most ``limit`` entries, each a list of segments ``[problem, lo, hi]`` (contiguous buckets
    of one problem), and the buckets ``(problem, bucket)`` too large for a task (one tied group each)."""
    tasks, here, cur, held = [], [], [], 0
    for j, (cnt, _) in enumerate(buckets):
        seg = None
        for bk in np.flatnonzero(cnt).tolist():
            c = int(cnt[bk])
            if c > limit:
                if bk % 2 == 0:  # an open interval never exceeds the rank gap of its splitters
                    raise RuntimeError(f"sigmax: bucket {bk} of problem {j} holds {c} > {limit} entries")
                here.append((j, bk))
                seg = None
                continue
            if held + c > limit and cur:
                tasks.append(cur)
                cur, held, seg = [], 0, None
            if seg is None:
                seg = [j, bk, bk]
                cur.append(seg)
            seg[2] = bk
            held += c
    if cur:
        tasks.append(cur)
    return tasks, here


def _around(sums: np.ndarray, lo: int, hi: int) -> tuple[float, float, float]:
    """``(positive above, negative above, negative below)`` of the buckets outside ``lo..hi``."""
    return float(sums[0, hi + 1:].sum()), float(sums[1, hi + 1:].sum()), float(sums[1, :lo].sum())


def ranking_sums(scores: Any, labels: Any, task: str, *, space: str = "logits", average: Any = "macro",
                 axis: Any = -1, ignore_index: Any = None, sample_weight: Any = None) -> RankingSums:
    """The sums behind ROC AUC and average precision of Dask arrays, per binary problem (see the module).

    The problems: one (binary, or ``average="micro"``: every entry pooled) or one per class column.

    Example:
        >>> import dask.array as da
        >>> z = da.from_array(np.array([0.1, 0.4, 0.35, 0.8]), chunks=2)
        >>> r = ranking_sums(z, np.array([0, 0, 1, 1]), "binary", space="probs")
        >>> float(r.auc_num[0] / (r.pos[0] * r.neg[0])), int(r.n_tasks)
        (0.75, 1)
    """
    task, space = validate_task(task), validate_space(space)
    average = check_ranking_average(average)
    if labels is None:
        raise ValueError("metrics need labels: the canonical record holds scores only")
    s, y, w = row_layout(scores, labels, task, axis=axis, sample_weight=sample_weight)
    pool = pools(task, average)
    from dask import delayed

    blocks = persist_blocks([delayed(_prep, pure=True)(*b, f, task, space, ignore_index, pool)
                             for b, f in zip(delayed_blocks(s, y, w), row_starts(s))])
    count, sums, n, kept, n_ignored = tree_reduce(_stats, [(b,) for b in blocks])
    if n == 0 or kept == 0:
        raise empty_error(n_ignored, ignore_index)
    limit = max(1, int(BUCKET_ROWS))
    n_prob = count.size
    # pass 2: splitters and bucket sums, for the problems too large for one task
    split = tuple(j for j in range(n_prob) if count[j] > limit)
    splitters: list = [None] * n_prob
    buckets = [(count[j:j + 1], sums[:, j:j + 1]) for j in range(n_prob)]
    if split:
        vals, _ = kth_smallest_many([delayed(_scores, pure=True)(b, split) for b in blocks],
                                    [_ranks(int(count[j]), limit) for j in split], n_sets=len(split))
        for j, v in zip(split, vals):
            splitters[j] = np.unique(v)
        got = tree_reduce(functools.partial(_bucket_sums, split=split, splitters=tuple(splitters[j] for j in split)),
                          [(b,) for b in blocks])
        for j, bs in zip(split, got):
            buckets[j] = bs
    # pass 3: the bucket tasks
    tasks, here = _pack(buckets, limit)
    auc_num, ap_num = np.zeros(n_prob), np.zeros(n_prob)
    for j, bk in here:  # a tied group too large for a task: its terms from its sums
        pg, ng = buckets[j][1][:, bk]
        p_above, n_above, n_below = _around(buckets[j][1], bk, bk)
        auc_num[j] += pg * (n_below + 0.5 * ng)
        tp, fp = p_above + pg, n_above + ng
        ap_num[j] += pg * tp / (tp + fp) if tp + fp > 0 else 0.0
    max_held = 0
    if tasks:
        seg_of: list = [None] * n_prob
        metas, task_segs, k = [], [], 0
        for t in tasks:
            metas.append([(j, *_around(buckets[j][1], lo, hi)) for j, lo, hi in t])
            task_segs.append(list(range(k, k + len(t))))
            for j, lo, hi in t:
                if seg_of[j] is None:
                    seg_of[j] = np.full(buckets[j][0].size, -1, dtype=np.int64)
                seg_of[j][lo:hi + 1] = k
                k += 1
        plan = delayed((tuple(splitters), tuple(seg_of), tuple(task_segs)), pure=True)
        parts = [delayed(_split, pure=True)(b, plan) for b in blocks]
        work = [(m, *[delayed(operator.getitem, pure=True)(p, t) for p in parts]) for t, m in enumerate(metas)]
        got, max_held = tree_reduce(_task, work, _merge)
        for j, (a, p) in got.items():
            auc_num[j] += a
            ap_num[j] += p
    n_buckets = sum(int(b[0].size) for b in buckets)
    return RankingSums(auc_num, ap_num, sums[0].copy(), sums[1].copy(), count, n_buckets, len(tasks), int(max_held))


def ranking(name: str, scores: Any, labels: Any, task: str, *, space: str = "logits", average: Any = "macro",
            axis: Any = -1, dim: Any = None, ignore_index: Any = None, sample_weight: Any = None) -> Any:
    """``name`` (``"roc_auc"`` or ``"average_precision"``) of Dask arrays, equal to the in-memory value.

    Example:
        >>> import dask.array as da
        >>> z = da.from_array(np.array([0.5, 0.5, 0.9, 0.2]), chunks=3)
        >>> ranking("roc_auc", z, np.array([0, 1, 1, 0]), "binary", space="probs")
        0.875
    """
    average = check_ranking_average(average)
    r = ranking_sums(scores, labels, task, space=space, average=average, axis=resolve_axis(axis, dim),
                     ignore_index=ignore_index, sample_weight=sample_weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "roc_auc":
            den = r.pos * r.neg
            vals = np.where(den > 0, r.auc_num / np.where(den > 0, den, 1.0), np.nan)
        else:
            vals = np.where(r.pos > 0, r.ap_num / np.where(r.pos > 0, r.pos, 1.0), np.nan)
    return finish_values(name, validate_task(task), average, vals, r.pos)

