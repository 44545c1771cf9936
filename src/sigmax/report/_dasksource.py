"""Dask arrays as a source of the report: each pass is one tree reduction of per-block pass states, on the workers.

:class:`DaskSource` is a source of :func:`sigmax.report.evaluate`, as :class:`sigmax.report.ArraySource`
is for arrays in memory, but instead of yielding chunks it *reduces* a pass: every row block becomes a
:class:`sigmax.report._passes.PassState` where it lives (``state.add(block_start, scores, labels)``, the
same code the streamed report runs per chunk), and the states are merged in row order in a tree of
fan-in :data:`sigmax._dask.FANIN` (:func:`sigmax._dask.tree_reduce`). Only states travel: the sums of
both sides, the coverage counts, and the bounded samples (the fitting sample, at most the memory plan's
fit rows, and the interval sample), which reach the client, where the calibrator is fitted; the second
pass ships the fitted calibrator to the workers once (one task holding the pass's config).

Because the split and both samples are drawn per source row (seeded by the row's number) and the merge is
order-preserving, the report over a Dask array equals the report over the same rows in memory, whatever
the blocks (metrics to floating-point summation order). A block's rows are all a worker holds: open
shards with ``chunk_rows=report_plan(...).chunk_rows`` (:func:`sigmax.report.report_plan`).

The graph runs on the current scheduler: an active ``distributed.Client``, else Dask's local threads.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .._array import normalize_axis
from .._dask import active_client, dask_array, delayed_blocks, is_dask, reduce_holding, tree_reduce
from ._passes import PassConfig, PassState, combine_states, fit_takes
from ._sources import ArraySource  # the one shape check (and its messages)

__all__ = ["DaskSource", "block_state"]


def block_state(config: PassConfig, start: int, scores: Any, labels: Any) -> PassState:
    """The pass state of one row block (source rows ``start ..``), built where the block lives."""
    state = PassState(config)
    state.add(start, np.asarray(scores), np.asarray(labels))
    return state


class DaskSource:
    """Dask arrays (scores, and labels as a Dask or NumPy array) chunked along the rows, reduced per pass.

    The class axis is moved last and made whole; labels are cut to the scores' row blocks. Shapes are
    checked as :class:`sigmax.report.ArraySource` checks them (the same messages), without computing
    anything; the values are validated per block on the workers.

    Example:
        >>> import dask.array as da
        >>> from sigmax.datasets import digits_scores
        >>> d = digits_scores("multiclass")
        >>> src = DaskSource(da.from_array(d.test_logits, chunks=(250, -1)), d.test_labels, "multiclass")
        >>> src.n_rows, src.n_classes, src.block_rows
        (697, 10, (250, 250, 197))
    """

    streamed = True  # the rows are never all in this process
    chunk_axis = -1  # blocks have the class axis last
    label = "report (dask)"

    def __init__(self, scores: Any, labels: Any, task: str, axis: Any = -1, *,
                 names: tuple[str, str] = ("scores", "labels")) -> None:
        da = dask_array()
        self.names = names
        s = scores if is_dask(scores) else np.asarray(scores)
        y = labels if is_dask(labels) else np.asarray(labels)
        shapes = (tuple(s.shape), tuple(y.shape))
        moved = task != "binary" and s.ndim >= 2
        if moved:  # the class axis last, as ArraySource has it
            ax = normalize_axis(axis, s.ndim, name="axis")
            if task == "multilabel" and shapes[1] == shapes[0]:
                y = da.moveaxis(y, ax, -1) if is_dask(y) else np.moveaxis(y, ax, -1)
            s = da.moveaxis(s, ax, -1) if is_dask(s) else np.moveaxis(s, ax, -1)
        ref = s if is_dask(s) else y  # the row blocks to follow
        if any(math.isnan(r) for r in (ref.chunks[0] if ref.ndim else ())):
            raise ValueError(f"{names[0] if ref is s else names[1]} have row blocks of unknown size; call "
                             ".compute_chunk_sizes() on the Dask array first")
        if s.ndim and y.ndim and s.shape[0] != y.shape[0]:
            raise ValueError(f"{names[1]} have {y.shape[0]:,} rows but {names[0]} have {s.shape[0]:,}; give one "
                             "label per score row, in the same order")
        # every other shape rule, with its message, on zero-stride stand-ins (nothing is computed)
        stand_in = ArraySource(np.broadcast_to(np.zeros((), dtype=s.dtype), shapes[0]),
                               np.broadcast_to(np.zeros((), dtype=y.dtype), shapes[1]), task, axis, names=names)
        self.n_classes, self.scores_per_row = stand_in.n_classes, stand_in.scores_per_row
        if not is_dask(s):
            s = da.from_array(s, chunks=(ref.chunks[0],) + s.shape[1:])
        if task == "binary" and s.ndim == 2 and s.shape[1] == 1 and y.shape == (s.shape[0],):
            y = y.reshape(-1, 1)
        s = s.rechunk((s.chunks[0],) + (-1,) * (s.ndim - 1))
        rows = s.chunks[0]
        if is_dask(y):
            y = y.rechunk((rows,) + (-1,) * (y.ndim - 1))
        else:
            y = da.from_array(y, chunks=(rows,) + y.shape[1:])
        self.scores, self.labels = s, y
        self.n_rows = int(s.shape[0])
        self.block_rows = tuple(int(r) for r in rows)
        self.starts = tuple(int(v) for v in np.concatenate([[0], np.cumsum(self.block_rows)[:-1]]))
        self.note = f" (on Dask: {len(self.block_rows):,} row blocks, each reduced where it lives)"

    def first(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``rows`` rows, computed (for :func:`sigmax.check`; at most a chunk's worth)."""
        import dask

        return tuple(np.asarray(a) for a in dask.compute(self.scores[:rows], self.labels[:rows]))  # type: ignore

    def rows(self, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows ``take`` (sorted), computed."""
        import dask

        return tuple(np.asarray(a) for a in dask.compute(self.scores[take], self.labels[take]))  # type: ignore

    def reduce(self, config: PassConfig, advance: Any) -> PassState:
        """One pass: a state per block on the workers, merged in row order; ``advance(rows)`` per block done."""
        import dask

        cfg = dask.delayed(config, traverse=False)  # one task: the config (and calibrator) travels once
        blk = [(cfg, start, s, y) for start, (s, y) in zip(self.starts, delayed_blocks(self.scores, self.labels))]
        progress = functools.partial(_advance_rows, advance, self.block_rows)
        client = active_client()
        if client is None or not (config.collect and config.fit_cap > 0):
            return tree_reduce(block_state, blk, combine_states, progress=progress)
        # on a cluster the fitting sample is not merged up the tree: the block states stay on their workers,
        # the tree merges them without it, and its rows come here from the blocks that hold them
        state, held = reduce_holding(block_state, blk, combine_states, PassState.light, progress=progress)
        where = client.who_has(held)  # each task below runs where its block's state is: it never moves

        def on_holder(fn, f, *args):
            return client.submit(fn, f, *args, pure=False, workers=list(where.get(f.key, ())) or None,
                                 allow_other_workers=not where.get(f.key))

        counts = client.gather([on_holder(_fit_count, f) for f in held])
        takes = fit_takes(counts, config.fit_cap)
        heads = client.gather([on_holder(PassState.fit_head, f, k) for f, k in zip(held, takes) if k])
        del held  # the block states are released on the workers
        return state.attach_fit(heads)


def _fit_count(state: PassState) -> int:
    """The rows of a block state's fitting sample."""
    return state.n_fit


def _advance_rows(advance: Any, sizes: tuple[int, ...], block: int) -> None:
    advance(sizes[block])
