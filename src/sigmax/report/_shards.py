"""Several ``.npy`` shards read as one score file: in order, memory-mapped, chunk by chunk, in one process.

:class:`ShardSource` is a source of :func:`sigmax.report.evaluate` (as :class:`FileSource` is for one
file). Its chunks hold exactly the rows that chunks of the concatenated file would hold (a chunk may
cross a shard boundary: its rows are copied out of each shard's memory map), so the split, the samples
and every number of the report over the shards equal the report over the concatenated file. Every
shard is checked from its header (:func:`sigmax.io.check_shards`) before any row is read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .. import io as sio
from .._array import normalize_axis
from ._budget import DEFAULT_BUDGET, parse_memory

__all__ = ["ShardSource", "is_sharded", "streamed_classes", "iter_shard_chunks", "shard_dtype", "shard_rows"]


def is_sharded(spec: Any) -> bool:
    """Whether ``spec`` names shards: a glob (``'shards/logits-*.npy'``) or a list of paths."""
    if isinstance(spec, (list, tuple)):
        return True
    return glob.has_magic(os.fspath(spec))


def shard_dtype(shards: Sequence[tuple[str, tuple[int, ...], np.dtype]]) -> np.dtype:
    """The dtype of the chunks, as :func:`sigmax.io.iter_chunks` gives for one file (integers become float64)."""
    dt = np.result_type(*[d for _, _, d in shards])
    return dt if dt.kind == "f" else np.dtype(np.float64)


def shard_rows(shards: Sequence[tuple[str, tuple[int, ...], np.dtype]]) -> int:
    """The total rows of checked shards."""
    return int(sum(shape[0] for _, shape, _ in shards))


def iter_shard_chunks(shards: Sequence[tuple[str, tuple[int, ...], np.dtype]], rows: int) -> Iterator[np.ndarray]:
    """Blocks of exactly ``rows`` rows (the last one shorter) over checked shards, in order.

    A block is what ``iter_chunks`` would give for the concatenated file: it may take rows from several
    shards; each shard is memory-mapped and only the block's rows are copied out.
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {rows!r}")
    rows = int(rows)
    dtype = shard_dtype(shards)
    parts: list[np.ndarray] = []
    have = 0
    for path, shape, _ in shards:
        if shape[0] == 0:
            continue
        arr = sio.load_array(path, mmap=True)
        if tuple(arr.shape) != tuple(shape):
            raise sio.ScoreFileError(f"{path}: shape {arr.shape} changed since it was checked ({shape}); was it "
                                     "being written?")
        pos = 0
        while pos < shape[0]:
            take = min(rows - have, shape[0] - pos)
            parts.append(np.array(arr[pos:pos + take], dtype=dtype, copy=True))  # out of the memory map
            have += take
            pos += take
            if have == rows:
                yield parts[0] if len(parts) == 1 else np.concatenate(parts)
                parts, have = [], 0
        del arr
    if parts:
        yield parts[0] if len(parts) == 1 else np.concatenate(parts)


def streamed_classes(task: str, axis: Any, shape: Sequence[int], n_rows: int, held: str) -> int:
    """The number of classes of scores streamed by rows (chunks split the first axis), from a row
    block's ``shape``; the class axis cannot be the row axis. ``held`` names the source in messages."""
    if task == "binary":
        return 2
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"{task} scores need a class axis: {held} shape ({n_rows},); "
                         "use task='binary' for one score per sample")
    ax = normalize_axis(axis, ndim, name="axis")
    if ax == 0:
        raise ValueError("streaming reads rows along the first axis, so the class axis cannot be axis 0; "
                         "save the scores as (samples, classes)")
    return int(shape[ax])


class ShardSource:
    """Chunks of score shards and their label shards (globs or lists of ``.npy`` paths), read in order.

    Both sets are checked before any row is read (:func:`sigmax.io.check_shards`: a missing,
    unreadable or mis-shaped shard is a one-line :class:`sigmax.io.ScoreFileError` naming it), and
    must hold the same number of rows in total.
    """

    streamed = True

    def __init__(self, scores: Any, labels: Any, task: str, axis: Any = -1, *,
                 memory_budget: Any = DEFAULT_BUDGET) -> None:
        self.scores_spec, self.labels_spec = scores, labels
        self.budget = parse_memory(memory_budget)
        self.score_shards = sio.check_shards(scores, "SCORES")
        self.label_shards = sio.check_shards(labels, "LABELS")
        self.n_rows = shard_rows(self.score_shards)
        n_labels = shard_rows(self.label_shards)
        if n_labels != self.n_rows:
            raise ValueError(f"LABELS shards hold {n_labels} rows but SCORES shards {self.n_rows}; give one label "
                             "row per score row (the shards are taken in sorted order)")
        if self.n_rows == 0:
            raise ValueError(f"SCORES {_spec(scores)} hold no rows; metrics need at least one sample")
        self.n_classes = streamed_classes(task, axis, self.score_shards[0][1], self.n_rows, "the shards hold")
        self.axis = self.chunk_axis = axis  # chunks are rows of the shards as stored
        self.scores_per_row = max(int(np.prod(self.score_shards[0][1][1:])), 1)  # the product of no axes is 1
        self.names = ("SCORES", "LABELS")
        self.n_shards = len(self.score_shards)

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        ys = iter_shard_chunks(self.label_shards, rows)
        start = 0
        for s in iter_shard_chunks(self.score_shards, rows):
            y = next(ys)
            yield start, s, y
            start += s.shape[0]

    def first(self, rows: int) -> tuple[Any, Any]:
        return next(iter(self.chunks(rows)))[1:]


def _spec(spec: Any) -> str:
    return ", ".join(os.fspath(p) for p in spec) if isinstance(spec, (list, tuple)) else os.fspath(spec)
