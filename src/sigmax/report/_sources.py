"""Arrays in memory as a source of the report's chunks (:func:`sigmax.report.evaluate`).

The one shape check of the report's inputs: :class:`sigmax.report.DaskSource` runs it on zero-stride
stand-ins of its Dask arrays' shapes, so both sources refuse the same shapes with the same messages.

Example:
    >>> import numpy as np
    >>> src = ArraySource(np.zeros((5, 3)), np.zeros(5, dtype=int), "multiclass")
    >>> src.n_rows, src.n_classes, [start for start, _, _ in src.chunks(2)]
    (5, 3, [0, 2, 4])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .._array import normalize_axis
from .._inputs import canonical, to_numpy

__all__ = ["ArraySource"]


class ArraySource:
    """Chunks of arrays in memory (NumPy, PyTorch, JAX, lists), sliced along the rows without copying.

    The class axis is moved last (a view); a chunk is a block of leading rows.
    """

    streamed = False
    chunk_axis = -1  # chunks have the class axis last

    def __init__(self, scores: Any, labels: Any, task: str, axis: Any = -1, *, names=("scores", "labels")) -> None:
        s = to_numpy(scores, names[0])
        y = to_numpy(labels, names[1])
        self.names = names
        if s.ndim == 0:
            canonical(s, y, task)  # the canonical error for a scalar
        if task != "binary":
            if s.ndim < 2:
                canonical(s, y, task, axis=axis)  # raises: the class axis is missing
            ax = normalize_axis(axis, s.ndim, name="axis")
            if task == "multilabel" and y.shape == s.shape:
                y = np.moveaxis(y, ax, -1)
            s = np.moveaxis(s, ax, -1)
            want = s.shape if task == "multilabel" else s.shape[:-1]
            self.n_classes = int(s.shape[-1])
        else:
            want = s.shape
            if s.ndim == 2 and s.shape[1] == 1 and y.shape == (s.shape[0],):
                y = y.reshape(-1, 1)
            self.n_classes = 2
        if tuple(y.shape) != tuple(want):
            canonical(scores, labels, task, axis=axis, scores_name=names[0], labels_name=names[1])  # its message
            raise ValueError(f"{names[1]} have shape {tuple(y.shape)} but {names[0]} need {names[1]} of shape "
                             f"{tuple(want)}")  # pragma: no cover - canonical raises first
        self.scores, self.labels = s, y
        self.n_rows = int(s.shape[0])
        inner = int(np.prod(s.shape[1:])) if s.ndim > 1 else 1
        self.scores_per_row = max(inner, 1)
        self.row_shape = s.shape[1:]

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for i in range(0, self.n_rows, rows):
            yield i, self.scores[i:i + rows], self.labels[i:i + rows]

    def first(self, rows: int) -> tuple[Any, Any]:
        return self.scores[:rows], self.labels[:rows]

    def rows(self, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows ``take`` (sorted) of the scores (class axis last) and the labels."""
        return self.scores[take], self.labels[take]
