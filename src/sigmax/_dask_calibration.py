r"""Calibration over Dask arrays: the temperature's Newton steps from per-block partial sums.

The NLL of a temperature :math:`T = 1/b` is a sum over rows, and so are its derivatives in :math:`b`:

.. math:: \frac{d\,\mathrm{NLL}}{db} = \frac1N \sum_i \big(\mathbb E_{p_i}[z] - z_{i,y_i}\big), \qquad
          \frac{d^2\mathrm{NLL}}{db^2} = \frac1N \sum_i \mathrm{Var}_{p_i}(z)

(multiclass; binary and multilabel: :math:`\sum (\sigma(bz) - y) z` and :math:`\sum \sigma(bz)\sigma(-bz)
z^2` over the kept entries). :class:`TemperatureSums` computes these per block where the block lives
and adds them in a tree (:func:`sigmax._dask.tree_reduce`): one reduction of ``3`` (or ``3 K``, per
class) numbers per Newton step; :class:`~sigmax.calibration.TemperatureScaling` runs the same
safeguarded Newton iteration as in memory on them. The canonical logits of each block are computed once
and kept on the workers when a ``distributed.Client`` is active (otherwise recomputed per step, so this
process never holds them all).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ._dask import add, delayed_blocks, persist_blocks, row_layout, tree_reduce
from ._inputs import validate_space, validate_task
from .activations import log_sigmoid, log_softmax, sigmoid, softmax
from .calibration._logits import fit_logits

__all__ = ["TemperatureSums"]


def _logits_block(sb, yb, task, space, ignore_index):
    z, c = fit_logits(sb, yb, task, space, -1, ignore_index=ignore_index) if sb.shape[0] else (None, None)
    if z is None or z.shape[0] == 0:
        return None
    return z, c.labels, c.valid


def _columns(z, y, valid, task, per_class):
    """``(zz, yy, weight)`` columns as in ``TemperatureScaling._fit`` (weight ``None``: every entry)."""
    n = z.shape[0]
    zz, yy = z.reshape(n, -1), y.reshape(n, -1).astype(np.float64)
    vv = None if valid is None else valid.reshape(n, -1)
    if task == "multilabel" and not per_class:
        zz, yy = (zz.reshape(-1, 1), yy.reshape(-1, 1)) if vv is None else (zz[vv][:, None], yy[vv][:, None])
        vv = None
    return zz, yy, (np.ones(zz.shape) if vv is None else vv.astype(np.float64))


class TemperatureSums:
    """The per-block sums a temperature fit needs, over a Dask array of scores (and labels).

    ``n``: rows kept; ``k``: temperatures (1, or the classes with ``per_class``); ``separable``: whether
    the scores classify every kept row right (for some column); ``n_classes``: ``C`` (``None`` binary).
    """

    def __init__(self, scores: Any, labels: Any, task: str, space: str, axis: Any, ignore_index: Any,
                 per_class: bool = False):
        from dask import delayed

        self.task, self.space, self.per_class = validate_task(task), validate_space(space), bool(per_class)
        s, y, _ = row_layout(scores, labels, self.task, axis=axis)
        self.n_classes = None if self.task == "binary" else int(s.shape[1])
        z = [delayed(_logits_block, pure=False)(sb, yb, self.task, self.space, ignore_index)
             for sb, yb, _ in delayed_blocks(s, y, None)]
        self._blocks = [(b,) for b in persist_blocks(z)]
        self.n, sep = tree_reduce(partial(_stats, task=self.task, per_class=self.per_class), self._blocks,
                                  _add_stats)
        if self.n == 0:
            raise ValueError("every label equals ignore_index (or there are no rows): a temperature needs at "
                             "least one calibration sample")
        self.separable = bool(np.any(sep))
        self.k = 1 if self.task == "multiclass" else int(np.size(sep))

    def deriv(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dNLL/db, d2NLL/db2)`` at ``b = 1/T`` (length ``k``): one reduction over the blocks."""
        part = partial(_part, b=np.asarray(b, dtype=np.float64), task=self.task, per_class=self.per_class)
        g, h, m = tree_reduce(part, self._blocks, _add_none)
        m = np.maximum(m, 1e-300)  # a column with no entries has mean 0, not NaN
        return g / m, h / m

    def nll(self, temperature: Any) -> float:
        """The mean NLL at ``temperature`` (as ``mean_nll`` in memory): one reduction."""
        part = partial(_nll_part, t=np.asarray(temperature, dtype=np.float64), task=self.task)
        total, count = tree_reduce(part, self._blocks, _add_none)
        return total / max(count, 1.0)


def _stats(blk, task, per_class):
    if blk is None:
        return 0, None
    z, y, valid = blk
    if task == "multiclass":
        zy = z[np.arange(z.shape[0]), y]
        others = np.where(np.arange(z.shape[1])[None, :] == y[:, None], -np.inf, z).max(axis=1)
        return z.shape[0], np.array([bool(np.all(zy > others))])
    zz, yy, w = _columns(z, y, valid, task, per_class)
    right = (((zz > 0) == (yy == 1)) & (zz != 0)) | (w == 0)
    return z.shape[0], np.all(right, axis=0)


def _add_stats(a, b):
    sep = a[1] if b[1] is None else (b[1] if a[1] is None else a[1] & b[1])
    return a[0] + b[0], sep


def _part(blk, b, task, per_class):
    if blk is None:
        return None
    z, y, valid = blk
    if task == "multiclass":
        zy = z[np.arange(z.shape[0]), y]
        p = np.asarray(softmax(b[0] * z, axis=1))
        ez = np.sum(p * z, axis=1)
        var = np.sum(p * (z - ez[:, None]) ** 2, axis=1)  # Var_p(z), without E[z^2] - E[z]^2 cancellation
        return np.array([np.sum(ez - zy)]), np.array([np.sum(var)]), np.array([float(z.shape[0])])
    zz, yy, w = _columns(z, y, valid, task, per_class)
    bz = zz * b
    q = np.asarray(sigmoid(bz))
    qq = q * np.asarray(sigmoid(-bz))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
    return np.sum(w * (q - yy) * zz, axis=0), np.sum(w * qq * zz * zz, axis=0), np.sum(w, axis=0)


def _nll_part(blk, t, task):
    if blk is None:
        return None
    z, y, valid = blk
    if t.ndim:  # one temperature per class (multilabel, per_class)
        z = z / t.reshape((1,) * (z.ndim - 1) + (-1,))
    else:
        z = z / t
    if task == "multiclass":
        return float(-np.sum(np.asarray(log_softmax(z, axis=1))[np.arange(z.shape[0]), y])), float(z.shape[0])
    per = -(y * np.asarray(log_sigmoid(z)) + (1 - y) * np.asarray(log_sigmoid(-z)))
    return (float(np.sum(per)), float(per.size)) if valid is None else (float(np.sum(per[valid])), float(valid.sum()))


def _add_none(a, b):
    return b if a is None else (a if b is None else add(a, b))
