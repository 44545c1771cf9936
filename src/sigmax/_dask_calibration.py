r"""Calibration over Dask arrays: canonical logits kept where the blocks live, per-block partial sums, samples.

:class:`DaskLogits` turns each row block of a Dask array of scores (and labels) into canonical float64
logits once (``fit_logits`` of ``sigmax.calibration``, on the one validator: every error is the in-memory
one) and keeps them on the workers when a ``distributed.Client`` is active (otherwise they are
recomputed per pass, so this process never holds them all). Everything a calibrator needs from them
is a reduction of fixed-size per-block states (:func:`sigmax._dask.tree_reduce`) or a bounded sample:

* :meth:`DaskLogits.reduce`: any per-block state, added in a tree (gradients, Hessians, counts);
* :meth:`DaskLogits.nll`: the mean NLL of (calibrated) logits, as ``mean_nll`` in memory;
* :meth:`DaskLogits.sample`: a uniform sample of at most ``max_rows`` rows, each kept row chosen by its
  own seeded uniform number (a hash of its global row index), so the chunking never changes which rows.

The temperature's derivatives in :math:`b = 1/T` are sums over rows:

.. math:: \frac{d\,\mathrm{NLL}}{db} = \frac1N \sum_i \big(\mathbb E_{p_i}[z] - z_{i,y_i}\big), \qquad
          \frac{d^2\mathrm{NLL}}{db^2} = \frac1N \sum_i \mathrm{Var}_{p_i}(z)

(multiclass; binary and multilabel: :math:`\sum (\sigma(bz) - y) z` and :math:`\sum \sigma(bz)\sigma(-bz)
z^2` over the kept entries). :class:`TemperatureSums` reduces ``3`` (or ``3 K``, per class) numbers per
Newton step; :class:`~sigmax.calibration.TemperatureScaling` runs the same safeguarded Newton iteration
as in memory on them.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np

from ._dask import add, delayed_blocks, persist_blocks, row_layout, tree_reduce
from ._dask_select import kth_smallest
from ._inputs import canonical, validate_space, validate_task
from .activations import log_sigmoid, log_softmax, sigmoid, softmax
from .calibration._logits import fit_logits

__all__ = ["SAMPLE_BYTES", "DaskLogits", "PlattSums", "TemperatureSums", "VectorSums", "row_uniforms", "sample_note",
           "sample_of"]

#: the default bounded sample of the fits that are not sums: this many bytes of float64 scores
SAMPLE_BYTES = 256 << 20


def row_uniforms(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in ``[0, 1)`` per global row index: splitmix64 of ``(row, seed)``, chunk-independent.

    Example:
        >>> u = row_uniforms(np.arange(5), 0)
        >>> bool(np.all((0 <= u) & (u < 1))), row_uniforms(np.arange(2, 4), 0).tolist() == u[2:4].tolist()
        (True, True)
    """
    with np.errstate(over="ignore"):  # the hash's multiplications wrap modulo 2**64 by design
        x = np.asarray(rows, dtype=np.uint64) + np.uint64((int(seed) * 0x9E3779B97F4A7C15 + 1) % (1 << 64))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def sample_note(what: str, n: int, total: int, verb: str = "was fitted") -> str:
    """The one sentence that says a fit used a bounded sample (the ``UserWarning`` of every sampled fit)."""
    return (f"{what} {verb} on a uniform sample of {n} of {total} rows of the Dask array (its fit is not a sum "
            "of per-block partials; raise max_rows to use more)")


def _logits_block(sb, yb, start, task, space, ignore_index):
    m = sb.shape[0]
    rows = np.arange(start, start + m, dtype=np.int64)
    z, c = fit_logits(sb, yb, task, space, -1, ignore_index=ignore_index, allow_empty=True, row_numbers=rows)
    if ignore_index is not None and task != "multilabel":
        rows = rows[np.asarray(yb).reshape(m) != ignore_index]  # the rows canonical kept, in order
    valid = c.valid
    if valid is None and ignore_index is not None and task == "multilabel":
        valid = np.ones(z.shape, dtype=bool)  # a block without ignored entries: every block has a mask alike
    if z.shape[0] == 0 or (valid is not None and not valid.any()):
        return None
    return z, c.labels, valid, rows


def _kept(blk) -> int:
    """Rows kept (binary, multiclass) or entries kept (multilabel with ``ignore_index``)."""
    return 0 if blk is None else (int(blk[0].shape[0]) if blk[2] is None else int(blk[2].sum()))


class DaskLogits:
    """Canonical logits of a Dask array of scores, block by block on the workers (see the module).

    ``n``: rows kept; ``n_rows``: rows given; ``n_classes``: ``C`` (``None`` binary); ``task``, ``space``.
    An invalid input is the in-memory error, raised when the first pass reaches its block.

    Example:
        >>> import dask.array as da
        >>> z = da.from_array(np.array([1.0, -2.0, 3.0, 0.5]), chunks=2)
        >>> d = DaskLogits(z, np.array([1, 0, 0, 1]), "binary", "logits", -1, None)
        >>> d.n, round(d.nll(), 4)
        (4, 0.9907)
    """

    def __init__(self, scores: Any, labels: Any, task: str, space: str, axis: Any, ignore_index: Any):
        from dask import delayed

        self.task, self.space = validate_task(task), validate_space(space)
        s, y, _ = row_layout(scores, labels, self.task, axis=axis)
        self.n_classes = None if self.task == "binary" else int(s.shape[1])
        self.n_rows = int(s.shape[0])
        starts = np.r_[0, np.cumsum(s.chunks[0])[:-1]].astype(int).tolist()
        z = [delayed(_logits_block, pure=False)(sb, yb, st, self.task, self.space, ignore_index)
             for (sb, yb, _), st in zip(delayed_blocks(s, y, None), starts)]
        self._blocks = [(b,) for b in persist_blocks(z)]
        self.n, kept = self.reduce(lambda b: (0, 0) if b is None else (int(b[0].shape[0]), _kept(b)), add)
        if kept == 0:  # the in-memory message for nothing to fit on
            m = 1 if ignore_index is not None else 0
            shape = (m,) if self.task == "binary" else (m, max(self.n_classes, 1))
            yshape = shape if self.task == "multilabel" else (m,)
            canonical(np.zeros(shape), np.full(yshape, 0 if ignore_index is None else ignore_index), self.task,
                      ignore_index=ignore_index)
            raise ValueError("there are no rows to fit a calibrator on")  # pragma: no cover - canonical raised

    def reduce(self, part: Callable, combine: Callable | None = None) -> Any:
        """``combine`` of ``part(block)`` over the blocks (``block``: ``(z, labels, valid, rows)`` or ``None``)."""
        return tree_reduce(part, self._blocks, _add_none if combine is None else combine)

    def delayed(self, fn: Callable, *args: Any) -> list:
        """``fn(block, *args)`` of every block, as ``Delayed`` values (e.g. values for :func:`kth_smallest`)."""
        from dask import delayed

        return [delayed(fn, pure=False)(b, *args) for (b,) in self._blocks]

    def nll(self, calibrate: Callable | None = None) -> float:
        """The mean NLL of ``calibrate(z)`` (default: the logits themselves), as ``mean_nll`` in memory."""
        total, count = self.reduce(partial(_nll_part, task=self.task, calibrate=calibrate))
        return total / max(count, 1.0)

    def sample(self, max_rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(z, labels, valid)``: at most ``max_rows`` of the kept rows, uniformly, in row order.

        A row is kept when its uniform number (:func:`row_uniforms`) is among the ``max_rows`` smallest
        (the exact order statistic by :func:`sigmax._dask_select.kth_smallest`): chunking never changes the sample.
        """
        from dask import delayed

        if self.n > max_rows:
            u = [delayed(_uniforms, pure=False)(b, seed) for (b,) in self._blocks]
            cut, _ = kth_smallest(u, int(max_rows))
        else:
            cut = np.inf
        got = self.reduce(partial(_pick, seed=seed, cut=cut), _concat)
        z, y, valid = got
        return z, y, valid


def _uniforms(blk, seed):
    return np.zeros(0) if blk is None else row_uniforms(blk[3], seed)


def _pick(blk, seed, cut):
    if blk is None:
        return None
    z, y, valid, rows = blk
    keep = row_uniforms(rows, seed) <= cut
    return z[keep], y[keep], None if valid is None else valid[keep]


def _concat(a, b):
    if a is None or b is None:
        return b if a is None else a
    return tuple(None if x is None else np.concatenate([x, w]) for x, w in zip(a, b))


def _nll_part(blk, task, calibrate):
    if blk is None:
        return None
    z, y, valid, _ = blk
    z = z if calibrate is None else calibrate(z)
    if task == "multiclass":
        return float(-np.sum(np.asarray(log_softmax(z, axis=1))[np.arange(z.shape[0]), y])), float(z.shape[0])
    per = -(y * np.asarray(log_sigmoid(z)) + (1 - y) * np.asarray(log_sigmoid(-z)))
    return (float(np.sum(per)), float(per.size)) if valid is None else (float(np.sum(per[valid])), float(valid.sum()))


def _add_none(a, b):
    return b if a is None else (a if b is None else add(a, b))


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
    ``data``: a :class:`DaskLogits` already built for these scores (instead of ``scores``, ``labels``, ...).
    """

    def __init__(self, scores: Any, labels: Any, task: str, space: str, axis: Any, ignore_index: Any,
                 per_class: bool = False, data: DaskLogits | None = None):
        self.data = DaskLogits(scores, labels, task, space, axis, ignore_index) if data is None else data
        self.task, self.space, self.per_class = self.data.task, self.data.space, bool(per_class)
        self.n_classes = self.data.n_classes
        self.n, sep = self.data.reduce(partial(_stats, task=self.task, per_class=self.per_class), _add_stats)
        self.separable = bool(np.any(sep))
        self.k = 1 if self.task == "multiclass" else int(np.size(sep))

    def deriv(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(dNLL/db, d2NLL/db2)`` at ``b = 1/T`` (length ``k``): one reduction over the blocks."""
        part = partial(_part, b=np.asarray(b, dtype=np.float64), task=self.task, per_class=self.per_class)
        g, h, m = self.data.reduce(part)
        m = np.maximum(m, 1e-300)  # a column with no entries has mean 0, not NaN
        return g / m, h / m

    def nll(self, temperature: Any) -> float:
        """The mean NLL at ``temperature`` (as ``mean_nll`` in memory): one reduction."""
        t = np.asarray(temperature, dtype=np.float64)
        return self.data.nll(partial(_divide, t=t))


def _divide(z, t):
    return z / (t.reshape((1,) * (z.ndim - 1) + (-1,)) if t.ndim else t)


def _stats(blk, task, per_class):
    if blk is None:
        return 0, None
    z, y, valid, _ = blk
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
    z, y, valid, _ = blk
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


# ------------------------------------------------------------------------- the bounded sample
def sample_of(data: DaskLogits, max_rows: int | None, what: str, stacklevel: int = 3, verb: str = "was fitted"):
    """``(z, labels, valid)``: :meth:`DaskLogits.sample` at ``max_rows`` (default: :data:`SAMPLE_BYTES` of
    float64 scores), with the ``UserWarning`` of :func:`sample_note` when it is not every kept row."""
    import warnings

    if max_rows is None:
        max_rows = max(1, SAMPLE_BYTES // (8 * (data.n_classes or 1)))
    elif isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer (the rows of the bounded sample), got {max_rows!r}")
    z, y, valid = data.sample(int(max_rows))
    if z.shape[0] < data.n:
        warnings.warn(sample_note(what, int(z.shape[0]), data.n, verb), UserWarning, stacklevel=stacklevel)
    return z, y, valid


# ------------------------------------------------------------------------- vector and Platt scaling
class VectorSums:
    """Vector scaling's data term on a :class:`DaskLogits`: ``fg(x)`` is ``(mean NLL, its gradient)``
    at ``x = (w, b)``, one reduction of ``1 + 2C`` numbers (the L-BFGS of the in-memory fit runs on it)."""

    def __init__(self, data: DaskLogits):
        self.data, self.c = data, int(data.n_classes)

    def fg(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, gw, gb = self.data.reduce(partial(_vector_part, x=np.asarray(x, dtype=np.float64), c=self.c))
        n = float(self.data.n)
        return f / n, np.concatenate([gw, gb]) / n


def _vector_part(blk, x, c):
    if blk is None:
        return None
    z, y, _, _ = blk
    lp = np.asarray(log_softmax(z * x[:c] + x[c:], axis=1))
    r = np.exp(lp)
    r[np.arange(z.shape[0]), y] -= 1.0  # softmax - onehot
    return float(-np.sum(lp[np.arange(z.shape[0]), y])), np.sum(r * z, axis=0), np.sum(r, axis=0)


class PlattSums:
    """Platt scaling's column sums on a :class:`DaskLogits` (see ``newton_logistic_on``).

    ``npos``, ``ncol``: the kept positives and entries of every column. :meth:`targets` sets the
    targets (Platt's prior correction or the labels); :meth:`derivs` and :meth:`loss` are one reduction each.
    """

    def __init__(self, data: DaskLogits):
        self.data = data
        _, self.npos, self.ncol = data.reduce(_platt_counts)
        self.tpos, self.tneg, self.prior = None, None, False

    def targets(self, prior_correction: bool) -> None:
        nneg = self.ncol - self.npos
        self.prior = bool(prior_correction)
        self.tpos, self.tneg = (self.npos + 1) / (self.npos + 2), 1.0 / (nneg + 2)

    def _reduce(self, a, b, what):
        out = self.data.reduce(partial(_platt_part, a=a, b=b, tpos=self.tpos, tneg=self.tneg, prior=self.prior,
                                       what=what))
        total = np.maximum(out[-1], 1e-300)  # a column with no entries has mean 0, not NaN
        return tuple(v / total for v in out[:-1])

    def derivs(self, a, b, hessian: bool):
        return self._reduce(a, b, "hessian" if hessian else "grad")

    def loss(self, a, b):
        return self._reduce(a, b, "loss")[0]


def _platt_cols(blk):
    z, y, valid, _ = blk
    n = z.shape[0]
    w = np.ones(z.reshape(n, -1).shape) if valid is None else valid.reshape(n, -1).astype(np.float64)
    return z.reshape(n, -1), y.reshape(n, -1).astype(np.float64), w


def _platt_counts(blk):
    if blk is None:
        return None
    zz, yy, w = _platt_cols(blk)
    return float(zz.shape[0]), np.sum(yy * w, axis=0), np.sum(w, axis=0)


def _platt_part(blk, a, b, tpos, tneg, prior, what):
    if blk is None:
        return None
    zz, yy, w = _platt_cols(blk)
    t = np.where(yy == 1, tpos, tneg) if prior else yy
    x = zz * a + b
    if what == "loss":  # -[t log sigma(x) + (1 - t) log sigma(-x)]: both logs exact for large |x|
        per = -(t * np.asarray(log_sigmoid(x)) + (1 - t) * np.asarray(log_sigmoid(-x)))
        return np.sum(w * per, axis=0), np.sum(w, axis=0)
    q = np.asarray(sigmoid(x))
    if what == "grad":
        r = q - t
        return np.sum(w * r * zz, axis=0), np.sum(w * r, axis=0), np.sum(w, axis=0)
    s = q * np.asarray(sigmoid(-x))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
    return np.sum(w * s * zz * zz, axis=0), np.sum(w * s * zz, axis=0), np.sum(w * s, axis=0), np.sum(w, axis=0)
