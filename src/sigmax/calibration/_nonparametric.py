r"""Non-parametric calibrators: isotonic regression and histogram binning (per class, one-vs-rest).

Both learn a map from a column's probability :math:`p` to a calibrated probability :math:`q` with no
assumed shape; both are fitted per column and renormalised for multiclass as described in
``_columns`` (:class:`~sigmax.calibration.IsotonicCalibration` and
:class:`~sigmax.calibration.HistogramBinning` document the details).
"""

from __future__ import annotations

import numbers
import warnings
from functools import partial
from typing import Any

import numpy as np

from . import _format as F
from ._columns import DEFAULT_EPS, ColumnCalibrator, column_logs, column_targets
from ._params import as_given

__all__ = ["HistogramBinning", "IsotonicCalibration", "isotonic_fit", "pool_adjacent_violators"]

#: sklearn's ``_make_unique`` merges inputs closer than this (``np.finfo(np.float64).resolution``)
_UNIQUE_RESOLUTION = float(np.finfo(np.float64).resolution)


def pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""The weighted least-squares non-decreasing fit of ``y`` (pool adjacent violators, O(n)).

    .. math:: \hat y = \arg\min_{\hat y_1 \le \dots \le \hat y_n} \sum_i w_i (y_i - \hat y_i)^2

    A block is pooled with its predecessor while the predecessor's value is ``>=`` its own (as
    scikit-learn's ``_inplace_contiguous_isotonic_regression``); each block takes its weighted mean.

    Example:
        >>> pool_adjacent_violators(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)).tolist()
        [1.0, 2.5, 2.5, 4.0]
    """
    sums: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
        s, ww, k = yi * wi, wi, 1
        while sums and sums[-1] / weights[-1] >= s / ww:
            s, ww, k = s + sums.pop(), ww + weights.pop(), k + sizes.pop()
        sums.append(s)
        weights.append(ww)
        sizes.append(k)
    return np.repeat(np.array(sums) / np.array(weights), sizes)


def _make_unique(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted ``x`` merged into groups closer than 1e-15 (to the group's first value):
    ``(x, weighted mean y, weight sum)``, as scikit-learn's ``_make_unique``."""
    ux, start = np.unique(x, return_index=True)
    sy, sw = np.add.reduceat(y * w, start), np.add.reduceat(w, start)
    if ux.size > 1 and np.min(np.diff(ux)) < _UNIQUE_RESOLUTION:  # rare: merge as scikit-learn does
        gx, gy, gw = [ux[0]], [sy[0]], [sw[0]]
        for xv, yv, wv in zip(ux[1:].tolist(), sy[1:].tolist(), sw[1:].tolist()):
            if xv - gx[-1] >= _UNIQUE_RESOLUTION:
                gx.append(xv)
                gy.append(yv)
                gw.append(wv)
            else:
                gy[-1] += yv
                gw[-1] += wv
        ux, sy, sw = np.array(gx), np.array(gy), np.array(gw)
    return ux, sy / sw, sw


def isotonic_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x_thresholds, y_thresholds)`` of the increasing isotonic fit of ``y`` on ``x``, as scikit-learn's.

    The steps of ``IsotonicRegression(increasing=True).fit(x, y, sample_weight=w)``: leave out weights
    of 0, sort by ``(x, y)``, take the weighted mean label of equal inputs, pool adjacent violators
    weighted by those groups' weight sums (``w=None``: counts), and keep only the first and last point
    of every constant run (the thresholds that ``np.interp`` needs). Integer weights give the fit of
    the rows repeated that many times.

    Example:
        >>> isotonic_fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.0, 1.0, 0.0, 1.0]))
        (array([0.1, 0.2, 0.3, 0.4]), array([0. , 0.5, 0.5, 1. ]))
    """
    if w is None:
        w = np.ones(x.shape)
    else:
        x, y, w = x[w > 0], y[w > 0], w[w > 0]
    order = np.lexsort((y, x))
    ux, uy, uw = _make_unique(x[order], y[order], w[order])
    fy = pool_adjacent_violators(uy, uw)
    keep = np.ones(fy.size, dtype=bool)
    keep[1:-1] = (fy[:-2] != fy[1:-1]) | (fy[1:-1] != fy[2:])
    return ux[keep], fy[keep]


class IsotonicCalibration(ColumnCalibrator):
    r"""Isotonic regression (Zadrozny & Elkan 2002), per class: the best non-decreasing map :math:`p \mapsto q`.

    .. math:: q = g(p), \qquad g = \arg\min_{g \text{ non-decreasing}} \sum_i \big(y_i - g(p_i)\big)^2

    fitted by pool adjacent violators on the column's probability :math:`p` (:math:`\sigma(z)`, or
    softmax for multiclass) and applied by linear interpolation between the fitted thresholds,
    clipped outside them: exactly scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` on the
    same pairs (:meth:`calibrated_columns` returns those values). Multiclass: one map per class
    against the rest, rows renormalised (:math:`q_c / \sum_k q_k`). scikit-learn is not needed.
    ``sample_weight`` weights each squared error (scikit-learn's ``sample_weight``): pool adjacent
    violators on weighted means, rows of weight 0 left out.

    A step function reaches 0 and 1 exactly; ``transform`` keeps :math:`q` in
    :math:`[\varepsilon, 1 - \varepsilon]` (multiclass: :math:`q \ge \varepsilon`) before taking
    logits, ``eps`` = :data:`~sigmax.calibration.DEFAULT_EPS` (``1e-6``), so a held-out surprise costs
    at most :math:`-\log \varepsilon \approx 13.8` nats instead of infinity. It can change the argmax
    (multiclass) and ties many scores (probabilities become steps), which lowers ranking metrics.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        eps: the clip above, in (0, 0.5).

    Attributes (after :meth:`fit`):
        x_thresholds_, y_thresholds_: one array per column (binary: one): the increasing inputs and
            the non-decreasing outputs of the step function.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import IsotonicCalibration
        >>> z = np.array([-3.0, -1.0, 0.0, 1.0, 2.0, 3.0] * 10); y = np.array([0, 1, 0, 1, 1, 1] * 10)
        >>> iso = IsotonicCalibration("binary").fit(z, y)
        >>> iso.y_thresholds_[0].round(3).tolist()   # the first and last point of each step
        [0.0, 0.5, 0.5, 1.0, 1.0]
        >>> iso.predict_proba(np.array([-5.0, -0.5, 5.0])).round(6)
        array([1.00000e-06, 5.00000e-01, 9.99999e-01])
    """

    _params = ("x_thresholds", "y_thresholds")
    method = "isotonic"

    x_thresholds_: Any = None
    y_thresholds_: Any = None

    def __init__(self, task: str = "binary", *, eps: float = DEFAULT_EPS, space: str = "logits"):
        super().__init__(task, eps=eps, space=space)

    def describe(self) -> str:
        steps = [int(np.asarray(x).size) for x in self.x_thresholds_]
        return f"isotonic regression, {min(steps)}-{max(steps)} thresholds per class" if len(steps) > 1 else \
            f"isotonic regression, {steps[0]} thresholds"

    def _fit_column(self, lp, l1mp, t, w=None):
        return isotonic_fit(np.exp(lp), t, w)

    def _predict(self, k, lp, l1mp):
        x, y = self.x_thresholds_[k], self.y_thresholds_[k]
        p = np.clip(np.exp(lp), x[0], x[-1])  # out_of_bounds="clip"
        return np.full(p.shape, y[0]) if x.size == 1 else np.interp(p, x, y)

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        out = []
        for c, v in enumerate(self._columns_of(value, where)):
            at = f"{where}[{c}]"
            a = F.numbers_of(v, at, None, lo=0.0, hi=1.0)
            if name == "x_thresholds" and np.any(np.diff(a) <= 0):
                raise F.FieldError(at, "must be strictly increasing (the inputs of the isotonic steps)")
            if name == "y_thresholds":
                if a.size != self.x_thresholds_[c].size:
                    raise F.FieldError(at, f"must have one value per x threshold ({self.x_thresholds_[c].size}), "
                                       f"but has {a.size}")
                if np.any(np.diff(a) < 0):
                    raise F.FieldError(at, "must be non-decreasing (isotonic regression is monotone)")
            out.append(a)
        return out


class HistogramBinning(ColumnCalibrator):
    r"""Histogram binning (Zadrozny & Elkan 2001), per class: each bin's probability is its share of positives.

    .. math:: q = \frac{\#\{i : p_i \in B_b,\ y_i = 1\}}{\#\{i : p_i \in B_b\}} \quad \text{for } p \in B_b

    Bins are right-closed, :math:`B_b = (e_b, e_{b+1}]` (0 joins the first), over the column's
    probability :math:`p` (as in :func:`sigmax.metrics.calibration_error`). ``binning="equal_width"``:
    edges :math:`b / n`; ``"equal_mass"``: the sorted calibration probabilities split into ``n_bins``
    runs of equal size (differing by at most one), each edge halfway between neighbouring runs; equal
    probabilities never straddle an edge, so bins whose edges would coincide are merged (fewer bins).
    **Empty bins** (equal-width only: a bin no calibration probability falls in) have no evidence and
    keep the probability of their midpoint, :math:`(e_b + e_{b+1}) / 2`; ``info_["empty_bins"]`` counts
    them. Bins holding only negatives (positives) give exactly 0 (1): ``transform`` clips to
    :math:`[\varepsilon, 1 - \varepsilon]` as :class:`IsotonicCalibration` does. Multiclass: one
    histogram per class against the rest, rows renormalised.

    With ``sample_weight`` a row of weight :math:`w` counts as :math:`w` repeated rows: each bin's value
    is its weighted share of positives, and equal-mass runs split the sorted probabilities by
    cumulative weight (an edge is halfway between the last row the cut reaches and the first row past
    it: that row's own probability when the cut falls inside its weight), so integer weights give
    exactly the bins of the repeated rows. Weights summing to fewer than ``n_bins`` therefore give
    fewer equal-mass bins (a ``UserWarning`` says so).

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        n_bins: the number of bins (default 10).
        binning: ``"equal_width"`` (default) or ``"equal_mass"``.
        eps: the clip above, in (0, 0.5).

    Attributes (after :meth:`fit`):
        bin_edges_, bin_values_: one array per column: ``n + 1`` increasing edges from 0 to 1, and the
            ``n`` calibrated probabilities.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import HistogramBinning
        >>> p = np.array([0.05, 0.15, 0.3, 0.35, 0.8, 0.9] * 10); y = np.array([0, 0, 1, 0, 1, 1] * 10)
        >>> hb = HistogramBinning("binary", n_bins=4).fit(p, y, space="probs")
        >>> hb.bin_values_[0].tolist(), hb.info_["empty_bins"]
        ([0.0, 0.5, 0.625, 1.0], 1)
    """

    _params = ("bin_edges", "bin_values")
    needs_entries = False
    _option_types = {"n_bins": numbers.Integral, "binning": str, "eps": numbers.Real}
    method = "histogram"

    bin_edges_: Any = None
    bin_values_: Any = None

    def __init__(self, task: str = "binary", *, n_bins: int = 10, binning: str = "equal_width",
                 eps: float = DEFAULT_EPS, space: str = "logits"):
        super().__init__(task, eps=eps, space=space)
        if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        b = binning.strip().lower().replace("-", "_") if isinstance(binning, str) else binning
        if b not in ("equal_width", "equal_mass"):
            raise ValueError(f"unknown binning {binning!r}; use 'equal_width' (n_bins bins of width 1/n_bins) or "
                             "'equal_mass' (bins holding equally many calibration samples)")
        self.n_bins, self.binning = as_given(n_bins, int(n_bins)), as_given(binning, b)

    def _options(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "binning": self.binning, "eps": self.eps}

    def describe(self) -> str:
        return f"histogram binning, {self.n_bins} {self.binning.replace('_', '-')} bins"

    def _cuts(self, total: float) -> np.ndarray:
        r"""The masses at which equal-mass bins are cut, for ``total`` rows (or total weight), increasing.

        ``np.array_split`` of ``n`` sorted values into ``min(n_bins, n)`` runs ends its ``j``-th run at
        rank :math:`j q + \min(j, r)` with :math:`n = q\,n_{bins} + r`; the same formula holds for a real
        ``total`` (it is continuous in it), and cuts with no mass after them are dropped, so an integer
        ``total`` gives exactly ``array_split``'s ends.
        """
        q, r = divmod(total, self.n_bins)  # exact for an integer total
        j = np.arange(1, self.n_bins)
        e = q * j + np.minimum(j, r)
        return e[e < total]

    def _edges(self, p: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        if self.binning == "equal_width" or p.size == 0:
            return np.linspace(0.0, 1.0, self.n_bins + 1)
        order = np.argsort(p, kind="stable")
        s = p[order]
        # row i covers the ranks (cw[i-1], cw[i]] of the rows repeated w times: exact for integer weights
        cw = np.arange(1.0, s.size + 1.0) if w is None else np.cumsum(w[order])
        cuts = self._cuts(float(cw[-1]))
        if w is not None and cw[-1] < min(self.n_bins, s.size):
            warnings.warn(f"sample_weight sums to {cw[-1]:.3g} over a column's rows, fewer than its "
                          f"{min(self.n_bins, s.size)} rows or n_bins: equal-mass binning counts a weight as that "
                          f"many repeated rows, so it forms only {cuts.size + 1} bin(s); scale the weights up (e.g. "
                          "to a mean of 1) for more", UserWarning, stacklevel=7)
        # each edge is halfway between the last value at or before its cut and the first value after it
        left = s[np.searchsorted(cw, cuts, side="left")]
        right = s[np.searchsorted(cw, cuts, side="right")]  # in range: every cut has mass after it
        return np.unique(np.clip(np.r_[0.0, 0.5 * (left + right), 1.0], 0.0, 1.0))

    @staticmethod
    def _bin(edges: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, p, side="left") - 1, 0, edges.size - 2)  # (e_b, e_b+1]; 0 in bin 0

    def _fit_column(self, lp, l1mp, t, w=None):
        p = np.exp(lp)
        edges = self._edges(p, w)
        idx = self._bin(edges, p)
        nb = edges.size - 1
        count = np.bincount(idx, weights=w, minlength=nb).astype(np.float64)  # weighted: each bin's weight sum
        pos = np.bincount(idx, weights=t if w is None else t * w, minlength=nb)
        mid = 0.5 * (edges[:-1] + edges[1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(count > 0, pos / np.where(count > 0, count, 1.0), mid)
        self.info_["empty_bins"] = self.info_.get("empty_bins", 0) + int(np.sum(count == 0))
        return edges, values

    def _fit(self, z, y, valid, weight=None):
        self.info_ = {}
        info = super()._fit(z, y, valid, weight)
        return {**info, "empty_bins": self.info_.get("empty_bins", 0)}

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> HistogramBinning:
        """Exact on Dask arrays: per-block bin counts and positives (one reduction); equal-mass edges are
        the order statistics of each column's probabilities, every column's and every edge's found at once
        by the distributed multi-rank selection :func:`sigmax._dask_select.kth_smallest_many`, so they equal
        the in-memory edges."""
        if getattr(data, "weighted", False) and self.binning == "equal_mass":
            # weighted equal-mass edges are weighted quantiles, which the distributed selection does not
            # give: the bounded uniform sample carries the weights, fitted in memory (a warning says so)
            return super().fit_distributed(data, space=space, axis=axis, max_rows=max_rows)
        k = 1 if self.task == "binary" else int(data.n_classes)
        edges = self._distributed_edges(data, k)
        count, pos = data.reduce(partial(_histogram_part, task=self.task, edges=edges))
        self.space_, self.axis_, self.n_classes_ = space, axis, data.n_classes
        values, empty = [], 0
        for c in range(k):
            self.warn_few(c, int(pos[c].sum()), int(count[c].sum() - pos[c].sum()), stacklevel=4)
            mid = 0.5 * (edges[c][:-1] + edges[c][1:])
            values.append(np.where(count[c] > 0, pos[c] / np.where(count[c] > 0, count[c], 1.0), mid))
            empty += int(np.sum(count[c] == 0))
        self.bin_edges_, self.bin_values_ = edges, values
        return self._record(data.n, data.nll(), data.nll(self._apply_np), {"converged": True, "empty_bins": empty})

    def _ends(self, n: int) -> np.ndarray:
        """The last rank (1-based) of each but the last of ``np.array_split``'s runs of ``n`` sorted values."""
        return self._cuts(n).astype(np.int64)

    def _distributed_edges(self, data: Any, k: int) -> list[np.ndarray]:
        if self.binning == "equal_width":
            return [np.linspace(0.0, 1.0, self.n_bins + 1) for _ in range(k)]
        from .._dask_select import kth_smallest_many

        def ranks(sizes):  # the two middle order statistics of every inner edge, per column
            return [[r for e in (self._ends(int(n)) if n else []) for r in (int(e), int(e) + 1)] for n in sizes]

        values, sizes = kth_smallest_many(data.delayed(_columns_probs, self.task, k), ranks, n_sets=k)
        out = []
        for v, n in zip(values, sizes):
            if n == 0:
                out.append(np.linspace(0.0, 1.0, self.n_bins + 1))
                continue
            inner = 0.5 * (v[0::2] + v[1::2])
            out.append(np.unique(np.clip(np.r_[0.0, inner, 1.0], 0.0, 1.0)))
        return out

    def _predict(self, k, lp, l1mp):
        edges = self.bin_edges_[k]
        return self.bin_values_[k][self._bin(edges, np.exp(lp))]

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        out = []
        for c, v in enumerate(self._columns_of(value, where)):
            at = f"{where}[{c}]"
            a = F.numbers_of(v, at, None, lo=0.0, hi=1.0)
            if name == "bin_edges":
                if a.size < 2 or a[0] != 0.0 or a[-1] != 1.0 or np.any(np.diff(a) <= 0):
                    raise F.FieldError(at, "must be at least 2 strictly increasing bin edges from 0 to 1", v)
            elif a.size != self.bin_edges_[c].size - 1:
                raise F.FieldError(at, f"must have one value per bin ({self.bin_edges_[c].size - 1}), "
                                   f"but has {a.size}")
            out.append(a)
        return out


def _columns_probs(blk, task, k):
    """Every column's calibration probabilities (its kept entries) of one Dask block: ``k`` 1-D arrays."""
    if blk is None:
        return [np.zeros(0) for _ in range(k)]
    z, y, valid, _ = blk
    zz = z.reshape(z.shape[0], -1)
    lp, _ = column_logs(zz, task)
    if valid is None:
        return [np.exp(lp[:, c]) for c in range(k)]
    vv = valid.reshape(zz.shape)
    return [np.exp(lp[vv[:, c], c]) for c in range(k)]


def _histogram_part(blk, task, edges):
    """``(count, positives)``: per column, its bins' counts of one Dask block's kept entries."""
    if blk is None:
        return None
    from .._dask_calibration import block_weight

    z, y, valid, _ = blk
    w = block_weight(blk)
    zz = z.reshape(z.shape[0], -1)
    k = zz.shape[1]
    lp, _ = column_logs(zz, task)
    t, v = column_targets(y, valid, task, k)
    count, pos = [], []
    for c in range(k):
        keep = slice(None) if v is None else v[:, c]
        nb = edges[c].size - 1
        idx = HistogramBinning._bin(edges[c], np.exp(lp[keep, c]))
        wc = None if w is None else np.asarray(w, dtype=np.float64)[keep]  # the rows' weights: weighted bins
        count.append(np.bincount(idx, weights=wc, minlength=nb).astype(np.float64))
        pos.append(np.bincount(idx, weights=t[keep, c] if wc is None else t[keep, c] * wc, minlength=nb))
    return count, pos
