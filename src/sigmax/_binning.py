r"""Confidence binning for calibration errors and reliability diagrams (the private half of :mod:`sigmax.metrics`).

Bins are cut as in Guo et al. (2017): ``n_bins`` equal-width bins :math:`B_b = (b/n, (b+1)/n]` (a
confidence of exactly 0 joins the first bin), or equal-mass bins (sorted confidences split into bins
of equal size). Per bin it keeps additive sums — the number of samples, their total weight, the
weighted sums of confidence and of outcome — so bins of chunks add up to the bins of all the data.

.. math:: \mathrm{ECE} = \sum_b \frac{W_b}{W} \left|\mathrm{acc}_b - \mathrm{conf}_b\right|, \quad
          \mathrm{MCE} = \max_{b:\, n_b \ge n_\min} \left|\mathrm{acc}_b - \mathrm{conf}_b\right|, \quad
          \mathrm{RMSCE} = \Big(\sum_b \frac{W_b}{W} (\mathrm{acc}_b - \mathrm{conf}_b)^2\Big)^{1/2}

with :math:`n_b` the number of samples and :math:`W_b` their total weight (:math:`W_b = n_b` without
``sample_weight``). The MCE only looks at bins holding at least :math:`n_\min` =
``min_bin_count`` samples (default :data:`DEFAULT_MIN_BIN_COUNT`): the gap of a bin of one sample is
0 or 1 minus its confidence, noise rather than miscalibration. When no bin holds that many samples
the MCE is NaN (undefined), never the gap of a near-empty bin.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MIN_BIN_COUNT",
    "BINNINGS",
    "NORMS",
    "MODES",
    "Reliability",
    "bin_sums",
    "check_bins",
    "check_min_bin_count",
    "check_mode",
    "check_norm",
    "bin_index",
    "classwise_sums",
    "debiased_error",
    "debiased_squared",
    "equal_width_edges",
    "assign",
    "errors_from_sums",
    "from_sums",
]

#: the MCE (``norm="max"``) only takes bins holding at least this many samples
DEFAULT_MIN_BIN_COUNT = 10

BINNINGS = ("equal_width", "equal_mass")
NORMS = ("l1", "max", "l2")
MODES = ("top_label", "classwise")


# --------------------------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------------------------


def check_bins(n_bins: Any, binning: Any) -> tuple[int, str]:
    """``(n_bins, binning)`` validated; binning aliases (``"uniform"``, ``"quantile"``, ...) normalised."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    b = binning.lower().replace("-", "_") if isinstance(binning, str) else binning
    b = {"uniform": "equal_width", "width": "equal_width", "quantile": "equal_mass", "mass": "equal_mass",
         "equal_frequency": "equal_mass", "adaptive": "equal_mass"}.get(b, b)
    if b not in BINNINGS:
        raise ValueError(f"unknown binning {binning!r}; use 'equal_width' (Guo et al.: n_bins bins of width 1/n) "
                         "or 'equal_mass' (bins holding equally many samples)")
    return int(n_bins), b


def check_mode(mode: Any) -> str:
    m = mode.lower().replace("-", "_") if isinstance(mode, str) else mode
    m = {"top": "top_label", "toplabel": "top_label", "class_wise": "classwise", "marginal": "classwise"}.get(m, m)
    if m not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use 'top_label' (confidence of the predicted label) or "
                         "'classwise' (every class's probability against its 0/1 outcome)")
    return m


def check_norm(norm: Any) -> str:
    n = norm.lower() if isinstance(norm, str) else norm
    n = {"ece": "l1", "mce": "max", "inf": "max", "rms": "l2", "rmsce": "l2"}.get(n, n)
    if n not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; use 'l1' (ECE), 'max' (MCE) or 'l2' (RMS calibration error)")
    return n


def check_min_bin_count(min_bin_count: Any) -> int:
    if isinstance(min_bin_count, bool) or not isinstance(min_bin_count, numbers.Integral) or min_bin_count < 1:
        raise ValueError(f"min_bin_count must be a positive integer (the MCE's smallest bin; default "
                         f"{DEFAULT_MIN_BIN_COUNT}, 1 takes every non-empty bin), got {min_bin_count!r}")
    return int(min_bin_count)


# --------------------------------------------------------------------------------------------
# bin sums
# --------------------------------------------------------------------------------------------


def equal_width_edges(n_bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n_bins + 1)  # the same edges as Guo et al.'s reference code


def assign(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each confidence for bins (lo, hi] (Guo et al.); 0 joins the first bin."""
    # searchsorted(side="left") gives the first edge >= conf, so conf in (e_b, e_{b+1}] -> b + 1
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, len(edges) - 2)


def _sums(idx: np.ndarray, conf: np.ndarray, outcome: np.ndarray, weight: np.ndarray | None, size: int):
    """``(count, weight sum, weighted conf sum, weighted outcome sum)`` per bin index."""
    if weight is None:
        count = np.bincount(idx, minlength=size).astype(np.int64)
        return (count, None, np.bincount(idx, weights=conf, minlength=size),
                np.bincount(idx, weights=outcome, minlength=size))
    # a sample of weight 0 (or a masked multilabel entry) is not in any bin: it counts for nothing
    count = np.bincount(idx, weights=(weight > 0).astype(np.float64), minlength=size).astype(np.int64)
    return (count, np.bincount(idx, weights=weight, minlength=size),
            np.bincount(idx, weights=conf * weight, minlength=size),
            np.bincount(idx, weights=outcome * weight, minlength=size))


def bin_sums(conf: np.ndarray, outcome: np.ndarray, n_bins: int, binning: str, weight: np.ndarray | None = None):
    """``(edges, count, weight, sum of confidence, sum of outcome)`` per bin for one set of confidences
    (``weight`` is ``None`` without sample weights; the sums are then unweighted)."""
    edges, idx, conf, outcome, weight = bin_index(conf, outcome, n_bins, binning, weight)
    return (edges, *_sums(idx, conf, outcome, weight, n_bins))


def bin_index(conf: np.ndarray, outcome: np.ndarray, n_bins: int, binning: str, weight: np.ndarray | None = None):
    """``(edges, bin of each sample, conf, outcome, weight)``; equal-mass binning first drops the samples of
    weight 0 (so the returned arrays may be shorter than the inputs)."""
    if binning == "equal_width":
        edges = equal_width_edges(n_bins)
        idx = assign(conf, edges)
    else:
        if weight is not None:  # equal-mass bins split the samples that carry weight
            keep = weight > 0
            conf, outcome, weight = conf[keep], outcome[keep], weight[keep]
        order = np.argsort(conf, kind="stable")
        idx = np.empty(conf.shape[0], dtype=np.int64)
        groups = np.array_split(order, n_bins)  # sizes differ by at most one
        for b, g in enumerate(groups):
            idx[g] = b
        sc = conf[order]
        starts = np.cumsum([0] + [len(g) for g in groups])
        inner = [(sc[s - 1] + sc[s]) / 2 if 0 < s < len(sc) else (sc[-1] if s >= len(sc) else sc[0])
                 for s in starts[1:-1]]
        edges = np.concatenate([[sc[0]], inner, [sc[-1]]]) if len(sc) else np.zeros(n_bins + 1)
    return edges, idx, conf, outcome, weight


def debiased_squared(count: np.ndarray, wsum: np.ndarray, sconf: np.ndarray, sacc: np.ndarray,
                     w2sum: np.ndarray) -> np.ndarray:
    r"""The debiased squared calibration error (Kumar, Liang and Ma 2019) of ``(..., n_bins)`` bin sums.

    .. math:: \widehat{\mathrm{CE}^2} = \sum_b \frac{W_b}{W} \Big[(\bar o_b - \bar p_b)^2
              - \frac{\bar o_b (1 - \bar o_b)}{n_b - 1}\Big]

    with :math:`n_b = W_b^2 / \sum_{i \in B_b} w_i^2` (Kish's effective size: the bin's count without
    weights); a bin with :math:`n_b \le 1` (or fewer than 2 samples) contributes 0, as in the authors'
    code. ``wsum`` and ``w2sum`` are the per-bin sums of the weights and of their squares (the counts
    without weights). The result may be negative (it is unbiased, not clipped).
    """
    wb = np.asarray(wsum, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(w2sum > 0, wb * wb / np.where(w2sum > 0, w2sum, 1.0), 0.0)
        ok = (count >= 2) & (n_eff > 1.0 + 1e-12)
        den = np.where(ok, wb, 1.0)
        acc, conf = sacc / den, sconf / den
        term = np.where(ok, (acc - conf) ** 2 - acc * (1.0 - acc) / np.where(ok, n_eff - 1.0, 1.0), 0.0)
        total = wb.sum(axis=-1)
        return np.where(total > 0, np.sum(wb * term, axis=-1) / np.where(total > 0, total, 1.0), 0.0)


def debiased_error(conf: np.ndarray, outcome: np.ndarray, n_bins: int, binning: str,
                   weight: np.ndarray | None = None) -> float:
    """The debiased RMS calibration error of one set of confidences: ``sqrt(max(0, debiased_squared))``."""
    edges, idx, conf, outcome, weight = bin_index(conf, outcome, n_bins, binning, weight)
    count, wsum, sconf, sacc = _sums(idx, conf, outcome, weight, n_bins)
    if weight is None:
        wsum = w2sum = count.astype(np.float64)
    else:
        w2sum = np.bincount(idx, weights=weight * weight, minlength=n_bins)
    return float(np.sqrt(max(0.0, float(debiased_squared(count, wsum, sconf, sacc, w2sum)))))


def classwise_sums(p: np.ndarray, n_bins: int, *, index: np.ndarray | None = None, hits: np.ndarray | None = None,
                   weight: np.ndarray | None = None):
    """Equal-width bin sums of every class at once: ``(edges, count, weight, sum conf, sum outcome)``,
    each ``(K, n_bins)``, in O(N K) time and without a one-hot matrix (large vocabularies).

    ``p`` is ``(N, K)``; the outcome is 1 at the class ``index`` of each row (multiclass) or where
    ``hits`` is 1 (``(N, K)``, binary and multilabel); ``weight`` is ``None``, one weight per row
    ``(N,)`` or one per entry ``(N, K)``.
    """
    n, k = p.shape
    edges = equal_width_edges(n_bins)
    flat = assign(p, edges) + n_bins * np.arange(k)  # (class, bin) as one index
    size = k * n_bins
    w = None if weight is None else np.broadcast_to(weight if weight.ndim == 2 else weight[:, None], (n, k))
    if w is None:
        count = np.bincount(flat.ravel(), minlength=size).astype(np.int64)
        wsum = None
        sconf = np.bincount(flat.ravel(), weights=p.ravel(), minlength=size)
    else:
        count = np.bincount(flat.ravel(), weights=(w > 0).ravel().astype(np.float64), minlength=size).astype(np.int64)
        wsum = np.bincount(flat.ravel(), weights=w.ravel(), minlength=size)
        sconf = np.bincount(flat.ravel(), weights=(p * w).ravel(), minlength=size)
    if index is not None:  # the outcome is 1 only at the true class
        at = flat[np.arange(n), index]
        sacc = np.bincount(at, weights=None if w is None else w[np.arange(n), index], minlength=size)
    else:
        o = hits.astype(np.float64) if w is None else hits * w
        sacc = np.bincount(flat.ravel(), weights=o.ravel(), minlength=size)
    shape = (k, n_bins)
    return (edges, count.reshape(shape), None if wsum is None else wsum.reshape(shape),
            sconf.reshape(shape), sacc.reshape(shape))


def errors_from_sums(count: np.ndarray, wsum: np.ndarray | None, sconf: np.ndarray, sacc: np.ndarray, norm: str,
                     min_bin_count: int = DEFAULT_MIN_BIN_COUNT) -> np.ndarray:
    """Calibration error of each row of ``(..., n_bins)`` bin sums (``|sacc - sconf| = W_b |acc - conf|``).

    ``norm="max"`` takes bins with ``count >= min_bin_count`` only and is NaN for a row without one.
    """
    wb = count.astype(np.float64) if wsum is None else wsum
    total = wb.sum(axis=-1)
    full = (count > 0) & (wb > 0)
    den = np.where(full, wb, 1.0)
    diff = np.abs(sacc - sconf)
    with np.errstate(invalid="ignore", divide="ignore"):
        if norm == "l1":
            e = diff.sum(axis=-1) / total
        elif norm == "max":
            big = full & (count >= min_bin_count)
            e = np.max(np.where(big, diff / den, -np.inf), axis=-1)
            return np.where(np.any(big, axis=-1), e, np.nan)
        else:
            e = np.sqrt(np.sum(np.where(full, diff * diff / den, 0.0), axis=-1) / total)
    return np.where(total > 0, e, 0.0)


# --------------------------------------------------------------------------------------------
# the reliability record
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # numpy fields: compare with np.array_equal, not ==
class Reliability:
    r"""Reliability-diagram data: per-bin mean confidence, observed accuracy (frequency) and count.

    .. math:: \mathrm{conf}_b = \frac{1}{W_b} \sum_{i \in B_b} w_i \hat p_i, \quad
              \mathrm{acc}_b = \frac{1}{W_b} \sum_{i \in B_b} w_i o_i, \quad
              \mathrm{ECE} = \sum_b \frac{W_b}{W} |\mathrm{acc}_b - \mathrm{conf}_b|

    (:math:`w_i = 1` and :math:`W_b = n_b` without sample weights).

    Attributes:
        bin_edges: ``(n_bins + 1,)`` bin edges; bins are ``(lo, hi]`` for equal-width binning.
        confidence: ``(n_bins,)`` mean confidence in each bin (NaN for an empty bin).
        accuracy: ``(n_bins,)`` fraction correct (top-label) or of positives (class-wise); NaN if empty.
        count: ``(n_bins,)`` number of samples in each bin (int64).
        weight: ``(n_bins,)`` total sample weight in each bin, or ``None`` without sample weights.
        min_bin_count: the MCE (:attr:`mce`, ``error("max")``) takes bins holding at least this many
            samples (default :data:`DEFAULT_MIN_BIN_COUNT`; 1 takes every non-empty bin).

    Two :class:`Reliability` objects with the same bin edges add up (``a + b``) to the reliability of
    the two sets of samples together, so chunks of a large file can be binned one at a time.

    Example:
        >>> import sigmax.metrics as M
        >>> r = M.reliability([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 0], "binary", space="probs", n_bins=2,
        ...                   mode="classwise", min_bin_count=2)
        >>> r.count.tolist(), r.confidence.round(3).tolist(), r.accuracy.tolist()
        ([2, 2], [0.25, 0.85], [0.0, 0.5])
        >>> round(r.ece, 4), round(r.mce, 4)
        (0.3, 0.35)
    """

    bin_edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    weight: np.ndarray | None = None
    min_bin_count: int = DEFAULT_MIN_BIN_COUNT

    @property
    def n(self) -> int:
        """Number of samples binned."""
        return int(self.count.sum())

    @property
    def bin_weight(self) -> np.ndarray:
        """Total weight per bin (the counts, as floats, without sample weights)."""
        return self.count.astype(np.float64) if self.weight is None else self.weight

    @property
    def gap(self) -> np.ndarray:
        """``accuracy - confidence`` per bin (NaN for empty bins): > 0 under-confident, < 0 over-confident."""
        return self.accuracy - self.confidence

    def error(self, norm: str = "l1", *, min_bin_count: int | None = None) -> float:
        """The calibration error of these bins: ``"l1"`` (ECE), ``"max"`` (MCE) or ``"l2"`` (RMS).

        The MCE takes bins holding at least ``min_bin_count`` samples (default: :attr:`min_bin_count`)
        and is NaN when no bin holds that many.
        """
        norm = check_norm(norm)
        mbc = self.min_bin_count if min_bin_count is None else check_min_bin_count(min_bin_count)
        wb = self.bin_weight
        full = (self.count > 0) & (wb > 0)
        if norm == "max":
            big = full & (self.count >= mbc)
            return float(np.max(np.abs(self.gap[big]))) if big.any() else math.nan
        if not full.any():
            return 0.0
        g = np.abs(self.gap[full])
        w = wb[full] / wb[full].sum()
        if norm == "l1":
            return float(np.sum(w * g))
        return float(np.sqrt(np.sum(w * g * g)))

    @property
    def ece(self) -> float:
        """Expected calibration error (the ``"l1"`` norm)."""
        return self.error("l1")

    @property
    def mce(self) -> float:
        """Maximum calibration error over bins holding at least :attr:`min_bin_count` samples (NaN if none)."""
        return self.error("max")

    def __add__(self, other: Reliability) -> Reliability:
        if not isinstance(other, Reliability):
            return NotImplemented
        if self.bin_edges.shape != other.bin_edges.shape or not np.array_equal(self.bin_edges, other.bin_edges):
            raise ValueError("can only add reliabilities with the same bin edges (equal-width binning with the "
                             "same n_bins); equal-mass bins depend on the data and do not merge")
        if self.min_bin_count != other.min_bin_count:
            raise ValueError(f"can only add reliabilities with the same min_bin_count "
                             f"({self.min_bin_count} != {other.min_bin_count})")
        wa, wb = self.bin_weight, other.bin_weight
        count = self.count + other.count
        weight = None if self.weight is None and other.weight is None else wa + wb
        sconf = np.nan_to_num(self.confidence * wa) + np.nan_to_num(other.confidence * wb)
        sacc = np.nan_to_num(self.accuracy * wa) + np.nan_to_num(other.accuracy * wb)
        return from_sums(self.bin_edges, count, weight, sconf, sacc, self.min_bin_count)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (NaN for empty bins becomes ``None``), for JSON."""
        def clean(a):
            return [None if (isinstance(v, float) and math.isnan(v)) else v for v in a.tolist()]
        out = {"bin_edges": self.bin_edges.tolist(), "confidence": clean(self.confidence),
               "accuracy": clean(self.accuracy), "count": self.count.tolist(), "min_bin_count": self.min_bin_count}
        if self.weight is not None:
            out["weight"] = self.weight.tolist()
        return out


def from_sums(edges, count, wsum, sconf, sacc, min_bin_count: int = DEFAULT_MIN_BIN_COUNT) -> Reliability:
    """A :class:`Reliability` from per-bin sums (``wsum`` ``None``: unweighted, the counts are the weights)."""
    count = np.asarray(count, dtype=np.int64)
    wb = count.astype(np.float64) if wsum is None else np.asarray(wsum, dtype=np.float64)
    full = (count > 0) & (wb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(full, sconf / np.where(full, wb, 1.0), np.nan)
        acc = np.where(full, sacc / np.where(full, wb, 1.0), np.nan)
    return Reliability(np.asarray(edges, dtype=np.float64), conf, acc, count,
                       None if wsum is None else wb, int(min_bin_count))
