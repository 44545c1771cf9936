r"""Exact order statistics of values spread over Dask blocks: many ranks at once, bounded states.

:func:`kth_smallest_many` gives the exact :math:`k`-th smallest value for many ranks :math:`k` of
one or several *sets* of values, each spread over the same row blocks, without bringing the values
together. Each float64 value maps to an order-preserving 64-bit key (:func:`keys`; ``-0.0`` as
``0.0``). The search:

1. one tree-reduced pass for each set's size, NaN count and smallest and largest key (the bits all of
   a set's keys share are known from these two);
2. radix passes: the ranks still unresolved are grouped by the bucket of keys they lie in (ranks of
   the same set that share a bucket are one *group*); each block's state is one histogram of the next
   ``bits`` bits per group (``groups x 2**bits`` counts, ``bits`` = :data:`RADIX_BITS` or fewer so the
   state stays within :data:`STATE_COUNTS` counts), the states are added in a tree, and each rank
   moves to the bucket that holds it;
3. once every group's bucket holds few enough keys (at most :data:`GATHER` in all), one pass gathers
   them and each rank is read off with ``np.partition``.

The answer is the float ``np.partition`` (or ``np.sort``) gives in memory, ties and ``+-inf``
included (``-0.0`` comes back as ``0.0``, which compares equal). More than :data:`MAX_GROUPS`
unresolved groups at once is refused (the state would not be bounded).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np

from ._dask import persist_blocks, tree_reduce

__all__ = ["GATHER", "MAX_GROUPS", "RADIX_BITS", "STATE_COUNTS", "from_keys", "keys", "kth_smallest",
           "kth_smallest_many"]

#: the most bits resolved per radix pass (a per-group histogram of 2**RADIX_BITS counts)
RADIX_BITS = 12
#: the most counts in one block's radix state (groups x 2**bits int64: 8 MiB)
STATE_COUNTS = 1 << 20
#: the fewest bits per pass; with it, STATE_COUNTS bounds the groups resolved at once
MIN_BITS = 4
#: the most groups (distinct buckets of unresolved ranks) one call may hold
MAX_GROUPS = STATE_COUNTS >> MIN_BITS
#: the keys gathered at the end, over every group together (8 bytes each)
GATHER = 1 << 17
#: a group's bucket is gathered once it holds at most max(GATHER_FLOOR, GATHER // groups) keys
GATHER_FLOOR = 64

_SIGN = np.uint64(1 << 63)


def keys(v: Any) -> np.ndarray:
    """Order-preserving uint64 keys of float64 values (``-0.0`` as ``0.0``; NaN must be removed first).

    Example:
        >>> k = keys([-1.0, -0.0, 0.0, 2.5])
        >>> bool(k[0] < k[1] == k[2] < k[3])
        True
    """
    b = (np.asarray(v, dtype=np.float64).reshape(-1) + 0.0).view(np.uint64)
    return np.where(b & _SIGN, ~b, b | _SIGN)


def from_keys(k: Any) -> np.ndarray:
    """The float64 values of keys made by :func:`keys` (its inverse).

    Example:
        >>> from_keys(keys([3.0, -2.0])).tolist()
        [3.0, -2.0]
    """
    k = np.asarray(k, dtype=np.uint64).reshape(-1)
    return np.where(k & _SIGN, k & ~_SIGN, ~k).view(np.float64)


def _sets(value: Any, multi: bool) -> list[np.ndarray]:
    """A block's value(s) as a list of 1-D float64 arrays (one per set)."""
    vals = value if multi else [value]
    return [np.asarray(v, dtype=np.float64).reshape(-1) for v in vals]


def _stats(value, multi: bool):
    """Per set: ``[n, NaN count, smallest key or None, largest key or None]``."""
    out = []
    for v in _sets(value, multi):
        nan = int(np.count_nonzero(np.isnan(v)))
        k = keys(v[~np.isnan(v)]) if nan else keys(v)
        out.append([int(k.size), nan, int(k.min()) if k.size else None, int(k.max()) if k.size else None])
    return out


def _add_stats(a, b):
    def pick(x, y, f):
        return y if x is None else (x if y is None else f(x, y))
    return [[p[0] + q[0], p[1] + q[1], pick(p[2], q[2], min), pick(p[3], q[3], max)] for p, q in zip(a, b)]


def _sorted_keys(value, multi: bool) -> list[np.ndarray]:
    return [np.sort(keys(v[~np.isnan(v)])) for v in _sets(value, multi)]


def _bounds(prefix: int, length: int) -> tuple[int, int]:
    """The smallest and largest key whose first ``length`` bits are ``prefix``."""
    lo = prefix << (64 - length) if length else 0
    return lo, lo + (1 << (64 - length)) - 1


def _hist(value, groups: tuple, bits: int, multi: bool) -> np.ndarray:
    """``(groups, 2**bits)`` counts: for each group ``(set, prefix, length)``, the keys of its bucket by
    their next ``min(bits, 64 - length)`` bits."""
    sk = _sorted_keys(value, multi)
    out = np.zeros((len(groups), 1 << bits), dtype=np.int64)
    for g, (s, prefix, length) in enumerate(groups):
        b = min(bits, 64 - length)
        lo, _ = _bounds(prefix, length)
        width = 1 << (64 - length - b)
        starts = np.uint64(lo) + np.arange(1 << b, dtype=np.uint64) * np.uint64(width)
        ends = starts + np.uint64(width - 1)
        out[g, :1 << b] = np.searchsorted(sk[s], ends, side="right") - np.searchsorted(sk[s], starts, side="left")
    return out


def _gather(value, groups: tuple, multi: bool) -> list[np.ndarray]:
    sk = _sorted_keys(value, multi)
    out = []
    for s, prefix, length in groups:
        lo, hi = _bounds(prefix, length)
        a = np.searchsorted(sk[s], np.uint64(lo), side="left")
        z = np.searchsorted(sk[s], np.uint64(hi), side="right")
        out.append(sk[s][a:z])
    return out


def _concat(a, b):
    return [np.concatenate([x, y]) for x, y in zip(a, b)]


def _check_ranks(ranks: Any, n_sets: int | None) -> list[list[int]]:
    per = [ranks] if n_sets is None else list(ranks)
    if n_sets is not None and len(per) != n_sets:
        raise ValueError(f"ranks must give one sequence of ranks per set ({n_sets} sets), got {len(per)}")
    out = []
    for r in per:
        r = np.asarray(r).reshape(-1)
        if r.size and not (np.issubdtype(r.dtype, np.integer) or np.all(np.mod(r, 1) == 0)):
            raise ValueError(f"ranks must be integers (1-based), got {r.tolist()[:5]}")
        out.append([int(x) for x in r])
    return out


def kth_smallest_many(block_list: Sequence, ranks: Any, *, n_sets: int | None = None,
                      on_nan: Callable[[int], Exception] | None = None):
    """The exact order statistics of the values in ``block_list`` (Delayed blocks) for many ranks at once.

    With ``n_sets=None`` each block is a 1-D array of values; ``ranks`` is a sequence of 1-based ranks
    or a callable ``ranks(n)`` returning one once ``n`` is known; the result is ``(values, n)`` with
    ``values`` a float64 array in the order of the ranks. With ``n_sets=S`` each block is a sequence of
    ``S`` 1-D arrays (``S`` independent sets sharing the blocks); ``ranks`` is ``S`` sequences (or a
    callable of the ``S`` sizes returning them) and the result is ``(list of S arrays, sizes)``. A rank
    outside ``1..n`` gives ``+inf``; ``on_nan(count)`` builds the error raised when a value is NaN.

    Example:
        >>> import dask, numpy as np
        >>> parts = [np.array([5.0, 1.0]), np.array([3.0, 3.0, -np.inf])]
        >>> vals, n = kth_smallest_many([dask.delayed(p) for p in parts], [1, 3, 4, 5, 9])
        >>> vals.tolist(), n
        ([-inf, 3.0, 3.0, 5.0, inf], 5)
    """
    multi = n_sets is not None
    blk = [(b,) for b in persist_blocks(block_list)]
    if not blk:
        raise ValueError("no blocks to select from")
    stats = tree_reduce(functools.partial(_stats, multi=multi), blk, _add_stats)
    if multi and len(stats) != n_sets:
        raise ValueError(f"each block must hold {n_sets} sets of values, got {len(stats)}")
    nan = sum(s[1] for s in stats)
    if nan:
        raise (on_nan(nan) if on_nan else ValueError(f"{nan} value(s) are NaN; the k-th smallest needs numbers"))
    sizes = [s[0] for s in stats]
    if callable(ranks):
        ranks = ranks(sizes[0] if not multi else np.array(sizes))
    per = _check_ranks(ranks, n_sets)
    results = [np.full(len(r), math.inf) for r in per]
    # one query per in-range rank: [set, position in results, rank within the bucket, prefix, length, inside]
    queries = []
    for s, rs in enumerate(per):
        n, lo, hi = sizes[s], stats[s][2], stats[s][3]
        if n == 0:
            continue
        length = 64 - int(lo ^ hi).bit_length()  # the leading bits every key of the set shares
        prefix = lo >> (64 - length) if length else 0
        queries += [[s, i, k, prefix, length, n] for i, k in enumerate(rs) if 1 <= k <= n]
    while True:
        groups = sorted({(q[0], q[3], q[4]) for q in queries})
        limit = max(GATHER_FLOOR, GATHER // max(1, len(groups)))
        open_ = sorted({(q[0], q[3], q[4]) for q in queries if q[4] < 64 and q[5] > limit})
        if not open_:
            break
        if len(open_) > MAX_GROUPS:
            raise ValueError(f"{len(open_)} ranks lie in distinct buckets, more than the {MAX_GROUPS} whose "
                             "histograms fit a bounded state; ask for fewer ranks (fewer bins or classes) per call")
        bits = max(MIN_BITS, min(RADIX_BITS, (STATE_COUNTS // len(open_)).bit_length() - 1))
        counts = tree_reduce(functools.partial(_hist, groups=tuple(open_), bits=bits, multi=multi), blk)
        where = {g: j for j, g in enumerate(open_)}
        for q in queries:
            j = where.get((q[0], q[3], q[4]))
            if j is None:
                continue
            b = min(bits, 64 - q[4])
            cum = np.cumsum(counts[j, :1 << b])
            d = int(np.searchsorted(cum, q[2]))  # the first bucket whose cumulative count reaches the rank
            q[2] -= int(cum[d - 1]) if d else 0
            q[5] = int(counts[j, d])
            q[3], q[4] = (q[3] << b) | d, q[4] + b
    done = [q for q in queries if q[4] >= 64]
    for q in done:
        results[q[0]][q[1]] = from_keys([q[3]])[0]
    rest = sorted({(q[0], q[3], q[4]) for q in queries if q[4] < 64})
    if rest:
        got = tree_reduce(functools.partial(_gather, groups=tuple(rest), multi=multi), blk, _concat)
        where = {g: j for j, g in enumerate(rest)}
        for q in queries:
            j = where.get((q[0], q[3], q[4]))
            if j is not None:
                results[q[0]][q[1]] = from_keys([np.partition(got[j], q[2] - 1)[q[2] - 1]])[0]
    if multi:
        return results, np.array(sizes, dtype=np.int64)
    return results[0], sizes[0]


def kth_smallest(block_list: Sequence, k: int | None = None, *, rank: Callable[[int], int] | None = None,
                 on_nan: Callable[[int], Exception] | None = None) -> tuple[float, int]:
    """The ``k``-th smallest (1-based) of the values in ``block_list`` (Delayed 1-D blocks), exactly; ``(value, n)``.

    ``rank(n)`` gives ``k`` once ``n`` is known (instead of ``k``); a ``k`` outside ``1..n`` gives
    ``+inf``. ``on_nan(count)`` builds the error raised when some value is NaN.

    Example:
        >>> import dask, numpy as np
        >>> kth_smallest([dask.delayed(np.array([4.0, 2.0])), dask.delayed(np.array([3.0]))], 2)
        (3.0, 3)
    """
    many = (lambda n: [rank(n)]) if rank is not None else [k]
    vals, n = kth_smallest_many(block_list, many, on_nan=on_nan)
    return float(vals[0]), n
