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

Sample weights (``sample_weight``, one per row) travel with their rows: every block is
``(z, labels, valid, kept)`` with ``kept`` a :class:`KeptRows` ``(rows, weight)`` (the kept rows' global
numbers and weights, ``weight`` ``None`` when none were given), so a consumer unpacking
``z, y, valid, _ = blk`` sees the same four fields with or without weights. A weight :math:`w_i` counts
row :math:`i` as repeated :math:`w_i` times: every mean is a weighted sum over the weight sum, e.g. the
temperature's derivatives in :math:`b = 1/T`

.. math:: \frac{d\,\mathrm{NLL}}{db} = \frac{1}{W} \sum_i w_i \big(\mathbb E_{p_i}[z] - z_{i,y_i}\big), \qquad
          \frac{d^2\mathrm{NLL}}{db^2} = \frac{1}{W} \sum_i w_i \mathrm{Var}_{p_i}(z), \qquad W = \sum_i w_i

(multiclass; binary and multilabel: :math:`\sum w (\sigma(bz) - y) z` and :math:`\sum w \sigma(bz)\sigma(-bz)
z^2` over the kept entries, each entry weighted by its row's weight, over the kept entries' weight sum).
:class:`TemperatureSums` reduces ``3`` (or ``3 K``, per class) numbers per Newton step;
:class:`~sigmax.calibration.TemperatureScaling` runs the same safeguarded Newton iteration as in memory on them.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import numpy as np

from ._dask import add, delayed_blocks, persist_blocks, row_layout, row_starts, tree_reduce
from ._dask_select import kth_smallest
from ._inputs import canonical, validate_space, validate_task
from .activations import log_sigmoid, log_softmax, sigmoid, softmax
from .calibration._logits import check_weight_total, fit_logits

__all__ = ["SAMPLE_BYTES", "DaskLogits", "KeptRows", "PlattSums", "TemperatureSums", "VectorSums", "block_weight",
           "entry_weights", "row_uniforms", "sample_note", "sample_of"]

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


class KeptRows(NamedTuple):
    """The 4th field of a block: the kept rows' global numbers ``(n,)`` int64 and weights ``(n,)`` float64
    (``None``: no ``sample_weight`` given, every row weighs 1)."""

    rows: np.ndarray
    weight: np.ndarray | None


def _logits_block(sb, yb, wb, start, task, space, ignore_index):
    m = sb.shape[0]
    rows = np.arange(start, start + m, dtype=np.int64)
    # the in-memory validator on the block: weights non-negative and finite, its message naming these rows
    z, c = fit_logits(sb, yb, task, space, -1, ignore_index=ignore_index, allow_empty=True, row_numbers=rows,
                      sample_weight=wb)
    if ignore_index is not None and task != "multilabel":
        rows = rows[np.asarray(yb).reshape(m) != ignore_index]  # the rows canonical kept, in order
    valid = c.valid
    if valid is None and ignore_index is not None and task == "multilabel":
        valid = np.ones(z.shape, dtype=bool)  # a block without ignored entries: every block has a mask alike
    if z.shape[0] == 0 or (valid is not None and not valid.any()):
        return None
    return z, c.labels, valid, KeptRows(rows, c.weight)  # c.weight: the kept rows' weights (or None)


def block_weight(blk) -> np.ndarray | None:
    """The kept rows' sample weights ``(n,)`` of a block, or ``None`` (no weights given: every row weighs 1)."""
    return blk[3].weight


def entry_weights(blk) -> np.ndarray:
    """``(n, k)`` float64 weights of a block's entries, ``k`` its columns (1 binary): the row's sample
    weight (1 without weights), 0 where the multilabel mask leaves the entry out."""
    z, _, valid, kept = blk
    n = z.shape[0]
    shape = z.reshape(n, -1).shape
    w = np.ones(shape) if kept.weight is None else np.broadcast_to(kept.weight[:, None], shape)
    return np.array(w, dtype=np.float64) if valid is None else np.where(valid.reshape(shape), w, 0.0)


def _kept(blk) -> int:
    """Rows kept (binary, multiclass) or entries kept (multilabel with ``ignore_index``)."""
    return 0 if blk is None else (int(blk[0].shape[0]) if blk[2] is None else int(blk[2].sum()))


def _counts(blk) -> tuple:
    """``(rows kept, _kept, rows of positive weight, the kept rows' weight sum, the kept entries' weight sum)``
    of a block."""
    if blk is None:
        return 0, 0, 0, 0.0, 0.0
    w = block_weight(blk)
    rows = int(blk[0].shape[0])
    positive, total = (rows, float(rows)) if w is None else (int(np.count_nonzero(w)), float(np.sum(w)))
    entries = total if blk[2] is None else float(np.sum(entry_weights(blk)))
    return rows, _kept(blk), positive, total, entries


class DaskLogits:
    """Canonical logits of a Dask array of scores, block by block on the workers (see the module).

    ``n``: rows kept; ``n_rows``: rows given; ``n_classes``: ``C`` (``None`` binary); ``task``, ``space``;
    ``weighted``: whether ``sample_weight`` was given; ``weight_sum``: the kept rows' weight sum (``n``
    without weights); ``n_positive``: the kept rows of positive weight (what the small-sample warnings
    count in memory; ``n`` without weights). ``sample_weight``: one weight per row of the scores' rows
    (a NumPy or Dask array, chunked in any way: it is cut to the scores' row blocks). An invalid input is
    the in-memory error, raised when the first pass reaches its block; weights summing to 0 over the kept
    entries are an error.

    Example:
        >>> import dask.array as da
        >>> z = da.from_array(np.array([1.0, -2.0, 3.0, 0.5]), chunks=2)
        >>> d = DaskLogits(z, np.array([1, 0, 0, 1]), "binary", "logits", -1, None)
        >>> d.n, round(d.nll(), 4)
        (4, 0.9907)
    """

    def __init__(self, scores: Any, labels: Any, task: str, space: str, axis: Any, ignore_index: Any,
                 sample_weight: Any = None):
        from dask import delayed

        self.task, self.space = validate_task(task), validate_space(space)
        s, y, w = row_layout(scores, labels, self.task, axis=axis, sample_weight=sample_weight)
        self.n_classes = None if self.task == "binary" else int(s.shape[1])
        self.n_rows = int(s.shape[0])
        self.weighted = w is not None
        z = [delayed(_logits_block, pure=False)(sb, yb, wb, st, self.task, self.space, ignore_index)
             for (sb, yb, wb), st in zip(delayed_blocks(s, y, w), row_starts(s))]
        self._blocks = [(b,) for b in persist_blocks(z)]
        self.n, kept, self.n_positive, self.weight_sum, entry_sum = self.reduce(_counts, add)
        if kept > 0:
            check_weight_total(entry_sum)
        if kept == 0:  # the in-memory message for nothing to fit on
            m = 1 if ignore_index is not None else 0
            shape = (m,) if self.task == "binary" else (m, max(self.n_classes, 1))
            yshape = shape if self.task == "multilabel" else (m,)
            canonical(np.zeros(shape), np.full(yshape, 0 if ignore_index is None else ignore_index), self.task,
                      ignore_index=ignore_index)
            raise ValueError("there are no rows to fit a calibrator on")  # pragma: no cover - canonical raised

    def reduce(self, part: Callable, combine: Callable | None = None) -> Any:
        """``combine`` of ``part(block)`` over the blocks (``block``: ``(z, labels, valid, kept)`` or ``None``;
        ``kept``: a :class:`KeptRows`)."""
        return tree_reduce(part, self._blocks, _add_none if combine is None else combine)

    def delayed(self, fn: Callable, *args: Any) -> list:
        """``fn(block, *args)`` of every block, as ``Delayed`` values (e.g. values for :func:`kth_smallest`)."""
        from dask import delayed

        return [delayed(fn, pure=False)(b, *args) for (b,) in self._blocks]

    def nll(self, calibrate: Callable | None = None) -> float:
        """The (weighted) mean NLL of ``calibrate(z)`` (default: the logits themselves), as ``mean_nll`` in memory."""
        total, count = self.reduce(partial(_nll_part, task=self.task, calibrate=calibrate))
        return total / max(count, 1e-300)  # count > 0: a zero weight sum was refused when the data was built

    def sample(self, max_rows: int, seed: int = 0) -> tuple:
        """``(z, labels, valid, weight)``: at most ``max_rows`` of the kept rows, uniformly, in row order
        (``weight``: their sample weights, ``None`` when none were given; weights do not steer the sampling).

        A row is kept when its uniform number (:func:`row_uniforms`) is among the ``max_rows`` smallest
        (the exact order statistic by :func:`sigmax._dask_select.kth_smallest`): chunking never changes the sample.
        """
        from dask import delayed

        if self.n > max_rows:
            u = [delayed(_uniforms, pure=False)(b, seed) for (b,) in self._blocks]
            cut, _ = kth_smallest(u, int(max_rows))
        else:
            cut = np.inf
        z, y, valid, weight = self.reduce(partial(_pick, seed=seed, cut=cut), _concat)
        return z, y, valid, weight


def _uniforms(blk, seed):
    return np.zeros(0) if blk is None else row_uniforms(blk[3].rows, seed)


def _pick(blk, seed, cut):
    if blk is None:
        return None
    z, y, valid, kept = blk
    keep = row_uniforms(kept.rows, seed) <= cut
    return (z[keep], y[keep], None if valid is None else valid[keep],
            None if kept.weight is None else kept.weight[keep])


def _concat(a, b):
    if a is None or b is None:
        return b if a is None else a
    return tuple(None if x is None else np.concatenate([x, w]) for x, w in zip(a, b))


def _nll_part(blk, task, calibrate):
    if blk is None:
        return None
    z, y, _, _ = blk
    z = z if calibrate is None else calibrate(z)
    n = z.shape[0]
    if task == "multiclass":
        per = -np.asarray(log_softmax(z, axis=1))[np.arange(n), y]
        w = block_weight(blk)
        return (float(np.sum(per)), float(n)) if w is None else (float(np.sum(w * per)), float(np.sum(w)))
    per = -(y * np.asarray(log_sigmoid(z)) + (1 - y) * np.asarray(log_sigmoid(-z)))
    w = entry_weights(blk)  # row weight x kept mask, (n, k)
    return float(np.sum(w * per.reshape(w.shape))), float(np.sum(w))


def _add_none(a, b):
    return b if a is None else (a if b is None else add(a, b))


def _columns(blk, task, per_class):
    """``(zz, yy, weight)`` columns as in ``TemperatureScaling._fit``: ``weight`` per entry, the row's sample
    weight (1 without weights) and 0 where the mask leaves the entry out (one shared column: kept entries only)."""
    z, y, valid, _ = blk
    n = z.shape[0]
    zz, yy, ww = z.reshape(n, -1), y.reshape(n, -1).astype(np.float64), entry_weights(blk)
    if task == "multilabel" and not per_class:
        vv = np.ones(zz.shape, dtype=bool) if valid is None else valid.reshape(n, -1)
        zz, yy, ww = zz[vv][:, None], yy[vv][:, None], ww[vv][:, None]
    return zz, yy, ww


class TemperatureSums:
    """The per-block sums a temperature fit needs, over a Dask array of scores (and labels).

    ``n``: rows kept; ``k``: temperatures (1, or the classes with ``per_class``); ``separable``: whether
    the scores classify every kept row of positive weight right (for some column); ``n_classes``: ``C``
    (``None`` binary). ``data``: a :class:`DaskLogits` already built for these scores (instead of ``scores``,
    ``labels``, ...), carrying any sample weights; the derivatives are weighted means.
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
        """``(dNLL/db, d2NLL/db2)`` at ``b = 1/T`` (length ``k``, weighted means): one reduction over the blocks."""
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
    z, y, _, _ = blk
    if task == "multiclass":
        zy = z[np.arange(z.shape[0]), y]
        others = np.where(np.arange(z.shape[1])[None, :] == y[:, None], -np.inf, z).max(axis=1)
        w = block_weight(blk)
        right = (zy > others) if w is None else (zy > others) | (w == 0)  # a row of weight 0 is as if dropped
        return z.shape[0], np.array([bool(np.all(right))])
    zz, yy, w = _columns(blk, task, per_class)
    right = (((zz > 0) == (yy == 1)) & (zz != 0)) | (w == 0)  # masked entries and weight 0: as if dropped
    return z.shape[0], np.all(right, axis=0)


def _add_stats(a, b):
    sep = a[1] if b[1] is None else (b[1] if a[1] is None else a[1] & b[1])
    return a[0] + b[0], sep


def _part(blk, b, task, per_class):
    if blk is None:
        return None
    z, y, _, _ = blk
    if task == "multiclass":
        n = z.shape[0]
        zy = z[np.arange(n), y]
        p = np.asarray(softmax(b[0] * z, axis=1))
        ez = np.sum(p * z, axis=1)
        var = np.sum(p * (z - ez[:, None]) ** 2, axis=1)  # Var_p(z), without E[z^2] - E[z]^2 cancellation
        w = np.ones(n) if block_weight(blk) is None else block_weight(blk)
        return np.array([np.sum(w * (ez - zy))]), np.array([np.sum(w * var)]), np.array([float(np.sum(w))])
    zz, yy, w = _columns(blk, task, per_class)
    bz = zz * b
    q = np.asarray(sigmoid(bz))
    qq = q * np.asarray(sigmoid(-bz))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
    return np.sum(w * (q - yy) * zz, axis=0), np.sum(w * qq * zz * zz, axis=0), np.sum(w, axis=0)


# ------------------------------------------------------------------------- the bounded sample
def sample_of(data: DaskLogits, max_rows: int | None, what: str, stacklevel: int = 3, verb: str = "was fitted"):
    """``(z, labels, valid, weight)``: :meth:`DaskLogits.sample` at ``max_rows`` (default: :data:`SAMPLE_BYTES`
    of float64 scores), with the ``UserWarning`` of :func:`sample_note` when it is not every kept row
    (``weight``: the sampled rows' sample weights, ``None`` when none were given)."""
    import warnings

    if max_rows is None:
        max_rows = max(1, SAMPLE_BYTES // (8 * (data.n_classes or 1)))
    elif isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer (the rows of the bounded sample), got {max_rows!r}")
    z, y, valid, weight = data.sample(int(max_rows))
    if z.shape[0] < data.n:
        warnings.warn(sample_note(what, int(z.shape[0]), data.n, verb), UserWarning, stacklevel=stacklevel)
    return z, y, valid, weight


# ------------------------------------------------------------------------- vector and Platt scaling
class VectorSums:
    """Vector scaling's data term on a :class:`DaskLogits`: ``fg(x)`` is ``(mean NLL, its gradient)``
    at ``x = (w, b)`` (weighted means with sample weights), one reduction of ``1 + 2C`` numbers (the
    L-BFGS of the in-memory fit runs on it)."""

    def __init__(self, data: DaskLogits):
        self.data, self.c = data, int(data.n_classes)

    def fg(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, gw, gb = self.data.reduce(partial(_vector_part, x=np.asarray(x, dtype=np.float64), c=self.c))
        total = float(self.data.weight_sum)  # the row count without weights; > 0 (checked by DaskLogits)
        return f / total, np.concatenate([gw, gb]) / total


def _vector_part(blk, x, c):
    if blk is None:
        return None
    z, y, _, _ = blk
    n = z.shape[0]
    lp = np.asarray(log_softmax(z * x[:c] + x[c:], axis=1))
    r = np.exp(lp)
    r[np.arange(n), y] -= 1.0  # softmax - onehot
    w = block_weight(blk)
    if w is None:
        return float(-np.sum(lp[np.arange(n), y])), np.sum(r * z, axis=0), np.sum(r, axis=0)
    r *= w[:, None]  # each row's d(NLL)/d(logit), weighted
    return float(-np.sum(w * lp[np.arange(n), y])), np.sum(r * z, axis=0), np.sum(r, axis=0)


class PlattSums:
    """Platt scaling's column sums on a :class:`DaskLogits` (see ``newton_logistic_on``).

    ``npos``, ``ncol``: the kept positives and entries of every column (their weight sums, with sample
    weights: Platt's prior correction counts a row of weight ``w`` ``w`` times). :meth:`targets` sets the
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
    z, y, _, _ = blk
    n = z.shape[0]
    return z.reshape(n, -1), y.reshape(n, -1).astype(np.float64), entry_weights(blk)


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
