r"""Conformal prediction sets: decisions with a coverage guarantee (split conformal, LAC / APS / RAPS).

A classifier's top class is a point decision without a guarantee. A *conformal prediction set* is a set
of classes :math:`C(x)` that contains the true class with probability at least :math:`1 - \alpha`,
whatever the model, as long as the calibration rows and the new rows are exchangeable (split conformal
prediction, Vovk et al. 2005; Angelopoulos and Bates 2021):

1. on ``n`` held-out calibration rows compute a *non-conformity score* :math:`s(x_i, y_i)` of the true
   class (large when the model disagrees with the label);
2. take the order statistic :math:`\hat q = s_{(k)}`, the ``k``-th smallest score with
   :math:`k = \lceil (n + 1)(1 - \alpha) \rceil` (``quantile_``);
3. predict :math:`C(x) = \{\, y : s(x, y) \le \hat q + \epsilon \,\}`, where :math:`\epsilon` =
   :data:`TIE_SLACK` = ``1e-8`` (MAPIE's): a score that equals the quantile up to rounding (the same
   probability computed two ways) counts as a tie, and ties are in the set.

Then :math:`1 - \alpha \le P(y \in C(x))`, and, when the scores have no ties,
:math:`P(y \in C(x)) \le 1 - \alpha + 1/(n + 1)`. If :math:`k > n` (``alpha < 1/(n + 1)``: too few
calibration rows for the level asked) the quantile is :math:`+\infty` and every set holds every class;
:meth:`ConformalClassifier.fit` warns.

=========  =====================================================================================
method     score of class ``y`` (``p``: the model's probabilities, ``o(y)``: the 1-based rank of ``y``
           by decreasing probability, ties: lower class index first)
=========  =====================================================================================
``lac``    :math:`1 - p_y` (Sadinle, Lei and Wasserman 2019): the smallest sets on average
``aps``    :math:`\sum_{o(j) < o(y)} p_j + u\,p_y` (Romano, Sesia and Candès 2020): the mass of the
           classes ranked above ``y`` plus ``y``'s own, adaptive to how uncertain the row is
``raps``   the APS score :math:`+\ \lambda \max(0, o(y) - k_\mathrm{reg})` (Angelopoulos et al. 2021):
           a penalty on classes ranked below ``k_reg``, for smaller, more stable sets
=========  =====================================================================================

APS and RAPS are deterministic by default (:math:`u = 1`: the label's full mass); with
``randomized=True`` :math:`u \sim U(0, 1)` is drawn, seeded (one ``u`` per row, shared by the row's
classes, so each set is a prefix of the classes by decreasing probability and may be empty), which makes
the coverage exactly :math:`1 - \alpha` on average instead of at least. ``mondrian=True`` (class-
conditional conformal prediction, Vovk 2012) takes one quantile per class from the calibration rows
of that class, so the guarantee holds for each class separately: :math:`P(y \in C(x) \mid y = c) \ge
1 - \alpha`.

Tasks: ``multiclass`` (sets over the ``C`` classes) and ``binary`` (one score per sample; the sets are
over the two classes ``{0, 1}``: column 0 is "negative", column 1 "positive"). ``multilabel`` is
refused: its labels are not one class per sample; fit one ``ConformalClassifier("binary")`` per label
column instead (a set per label, each with its own guarantee).

The sets are boolean arrays with the classes last, of the input's array library and device (NumPy in,
NumPy out; a PyTorch tensor in, a ``torch.bool`` tensor on the same device out; JAX likewise). A row of
scores that holds NaN gets the full set (every class: the model said nothing about that row) and a
``UserWarning`` saying how many rows. The computation runs in float64 NumPy.

The quantile is exact: :meth:`~ConformalClassifier.fit` takes the calibration scores in one array and
sorts them (no sketch); on a Dask array it is found by an exact distributed selection, randomized draws
included (each block jumps the seeded generator ahead to its first kept row), and ``predict_sets`` /
``conformity_scores`` stay lazy, block by block, equal to the in-memory results. Equality with MAPIE 1.6 (``SplitConformalClassifier`` on the same probabilities)
is tested, ties included: see :class:`ConformalClassifier` for the conventions.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import os
import warnings
from typing import Any

import numpy as np

from ._array import device_of, is_numpy, namespace
from ._inputs import canonical, is_dask, spell, to_numpy, validate_ignore_index, validate_space, validate_task
from .interpret import to_probs, validate_log_probs
from . import _persist as persist

__all__ = ["METHODS", "FORMAT_VERSION", "TIE_SLACK", "ConformalClassifier", "conformal_quantile", "coverage",
           "set_size", "load", "from_dict"]

#: the non-conformity scores :class:`ConformalClassifier` offers
METHODS = ("lac", "aps", "raps")
#: the version of the JSON file written by :meth:`ConformalClassifier.save`
FORMAT_VERSION = 1
#: a score at most this far above the quantile is a tie, and in the set (MAPIE's ``EPSILON``)
TIE_SLACK = 1e-8
#: RAPS defaults: the penalty per rank beyond ``k_reg`` and ``k_reg`` itself
DEFAULT_RAPS_LAMBDA = 0.01
DEFAULT_RAPS_K_REG = 1


def conformal_quantile(scores: Any, alpha: float) -> float:
    r"""The split-conformal quantile: the ``k``-th smallest of ``n`` scores, :math:`k = \lceil (n+1)(1-\alpha) \rceil`.

    The rank is computed as MAPIE computes it (``ceil((n + 1) * (1 - alpha))`` in float64). When
    :math:`k > n` the result is ``+inf`` (no calibration score is large enough: every class is in
    every set); :class:`ConformalClassifier` warns there, this function does not.

    Args:
        scores: ``n >= 0`` non-conformity scores (any array; NaN is refused).
        alpha: the miscoverage level, in (0, 1).

    Returns:
        A Python float (``+inf`` when ``k > n``, in particular for ``n = 0``).

    Example:
        >>> conformal_quantile([0.3, 0.1, 0.2, 0.5], alpha=0.5)  # k = ceil(5 * 0.5) = 3
        0.3
        >>> conformal_quantile([0.3, 0.1, 0.2, 0.5], alpha=0.1)  # k = 5 > n = 4
        inf
    """
    alpha = _alpha(alpha)
    if is_dask(scores):  # exact, by a distributed radix selection (sigmax._dask_select.kth_smallest)
        from ._dask_select import kth_smallest

        return kth_smallest(list(scores.reshape(-1).to_delayed().reshape(-1)), rank=lambda n: _rank(n, alpha),
                            on_nan=lambda _: ValueError(_NAN_SCORES))[0]
    s = to_numpy(scores, "scores").astype(np.float64, copy=False).reshape(-1)
    if np.isnan(s).any():
        raise ValueError(_NAN_SCORES)
    k = _rank(s.size, alpha)
    if k > s.size:
        return math.inf
    return float(np.partition(s, k - 1)[k - 1])


def _warn_short(short: list, counts: np.ndarray, alpha: float, stacklevel: int) -> None:
    warnings.warn(f"mondrian: class(es) {short} have too few calibration rows for alpha={alpha:g} "
                  f"(a class needs at least {math.ceil(1 / alpha) - 1} rows, it has "
                  f"{[int(counts[j]) for j in short]}): their quantile is +inf and they are in every set; "
                  f"add calibration rows of those classes or raise alpha", UserWarning, stacklevel=stacklevel)


def _warn_too_few(n: int, alpha: float, stacklevel: int) -> None:
    warnings.warn(f"{n} calibration row(s) are too few for alpha={alpha:g}: the rank "
                  f"ceil((n+1)(1-alpha)) = {_rank(n, alpha)} exceeds n, so the quantile is +inf and "
                  f"every set holds every class; give at least {math.ceil(1 / alpha) - 1} rows or "
                  "raise alpha", UserWarning, stacklevel=stacklevel)


_NAN_SCORES = "scores hold NaN; a conformal quantile needs a number for every calibration row"


def _rank(n: int, alpha: float) -> int:
    return max(1, int(math.ceil((n + 1) * (1.0 - alpha))))


def _alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), the share of sets allowed to miss the true class "
                         f"(0.1 for 90% coverage), got {alpha!r}")
    return float(alpha)


class ConformalClassifier:
    r"""Split-conformal prediction sets for ``binary`` or ``multiclass`` scores (see the module docstring).

    Args:
        task: ``"multiclass"`` or ``"binary"`` (``"multilabel"`` is refused: fit one binary classifier per
            label).
        method: ``"lac"`` (default), ``"aps"`` or ``"raps"``.
        alpha: miscoverage level in (0, 1): the sets hold the true class in at least ``1 - alpha`` of
            the rows (default 0.1).
        randomized: APS/RAPS only: draw :math:`u \sim U(0, 1)` (exact coverage, sets may be empty)
            instead of :math:`u = 1` (the label's full mass; coverage at least ``1 - alpha``).
        seed: the seed of the draws (an integer >= 0). ``fit`` draws ``numpy.random.default_rng([seed,
            0]).random(n)`` for its ``n`` rows (after ``ignore_index``); each ``predict_sets`` call draws
            ``default_rng([seed, 1]).random(N)`` afresh, so the same scores give the same sets on every
            call, and a row's draw is fixed by its position in the batch. On a Dask array each block
            draws its own share of that same sequence (PCG64 jumped ahead by the rows before it, kept
            rows for ``fit``), so Dask and in-memory results are equal whatever the chunks.
        mondrian: one quantile per class, from that class's calibration rows (class-conditional
            coverage); a class with too few rows gets ``+inf`` (always in the set), with a warning.
        raps_lambda: RAPS penalty :math:`\lambda \ge 0` per rank beyond ``raps_k_reg`` (default 0.01).
        raps_k_reg: RAPS: the number of top-ranked classes without a penalty (default 1).

    Attributes (after :meth:`fit` or :func:`load`):
        quantile_: :math:`\hat q` (a float), or one per class (a float64 array ``(C,)``) with
            ``mondrian``; ``inf`` where the calibration rows are too few.
        n_classes_: ``C`` (2 for binary). n_calibration_: calibration rows used (after ``ignore_index``).
        class_counts_: calibration rows per class (an int64 array ``(C,)``). space_: the space ``fit``
            was given (the default of :meth:`predict_sets`).

    Agreement with MAPIE 1.6 (``SplitConformalClassifier(prefit=True)`` on the same probabilities,
    tested): the quantile is the same order statistic, and a score within :data:`TIE_SLACK` above it
    is in the set, as in MAPIE. Sets:
    ``lac`` equals MAPIE's ``"lac"``; deterministic ``aps`` equals MAPIE's ``"aps"`` with calibration
    draws of 0 (its score is ``cumsum - u * p_y``, so MAPIE's ``u = 0`` is this ``u = 1``) and
    ``include_last_label="randomized"`` with draws of 0; randomized ``aps`` equals MAPIE's
    ``include_last_label="randomized"`` when MAPIE is given the draws ``1 - u`` of these. MAPIE
    refuses fewer than ``1/alpha`` calibration rows; sigmax gives ``+inf`` with a warning. MAPIE's default
    ``include_last_label=True`` adds the class that crosses the quantile (larger sets, coverage above
    ``1 - alpha + 1/(n+1)``); sigmax gives the conformal set :math:`\{y : s(x, y) \le \hat q\}`.
    MAPIE breaks ties between equal probabilities by its sort; sigmax ranks the lower class index first.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> logits = rng.normal(size=(2000, 4)) * 2
        >>> probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        >>> labels = (rng.random((2000, 1)) > probs.cumsum(axis=1)).sum(axis=1)  # drawn from the model
        >>> cc = ConformalClassifier("multiclass", method="lac", alpha=0.1).fit(logits[:1000], labels[:1000])
        >>> sets = cc.predict_sets(logits[1000:])
        >>> sets.shape, sets.dtype
        ((1000, 4), dtype('bool'))
        >>> round(coverage(sets, labels[1000:]), 2), round(float(set_size(sets).mean()), 2)
        (0.9, 1.7)
    """

    def __init__(self, task: str = "multiclass", *, method: str = "lac", alpha: float = 0.1,
                 randomized: bool = False, seed: int = 0, mondrian: bool = False, raps_lambda: float | None = None,
                 raps_k_reg: int | None = None):
        task = validate_task(task)
        if task == "multilabel":
            raise ValueError(f"ConformalClassifier covers one true class per sample ({spell('task', 'binary')} or "
                             f"{spell('task', 'multiclass')}); for multilabel scores fit one "
                             "ConformalClassifier('binary') per label column (a set per label)")
        if not isinstance(method, str) or method.strip().lower() not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(map(repr, METHODS))}")
        method = method.strip().lower()
        if not isinstance(randomized, bool):
            raise TypeError(f"randomized must be True or False, got {randomized!r}")
        if randomized and method == "lac":
            raise ValueError("randomized applies to method='aps' and method='raps' (the LAC score has no "
                             "randomised form); drop randomized=True or choose another method")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(mondrian, bool):
            raise TypeError(f"mondrian must be True or False, got {mondrian!r}")
        if method != "raps" and (raps_lambda is not None or raps_k_reg is not None):
            raise ValueError(f"raps_lambda and raps_k_reg apply to method='raps' only, not method={method!r}; "
                             "drop them or use method='raps'")
        lam = DEFAULT_RAPS_LAMBDA if raps_lambda is None else raps_lambda
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"raps_lambda must be a finite number >= 0 (0 makes RAPS equal APS), got {raps_lambda!r}")
        k_reg = DEFAULT_RAPS_K_REG if raps_k_reg is None else raps_k_reg
        if isinstance(k_reg, bool) or not isinstance(k_reg, numbers.Integral) or k_reg < 0:
            raise ValueError(f"raps_k_reg must be an integer >= 0 (classes ranked 1..k_reg get no penalty), "
                             f"got {raps_k_reg!r}")
        self.task, self.method, self.alpha = task, method, _alpha(alpha)
        self.randomized, self.seed, self.mondrian = randomized, int(seed), mondrian
        self.raps_lambda, self.raps_k_reg = float(lam), int(k_reg)
        self.quantile_: Any = None
        self.n_classes_: int | None = None
        self.n_calibration_: int | None = None
        self.class_counts_: np.ndarray | None = None
        self.space_: str | None = None

    # ------------------------------------------------------------------ fitting
    def fit(self, scores: Any, labels: Any, *, space: str = "logits", axis: int = -1,
            ignore_index: int | None = None) -> "ConformalClassifier":
        r"""Compute the conformal quantile(s) from held-out calibration scores and their labels.

        Args:
            scores: binary: one score per sample; multiclass: ``(..., C)`` with the classes along ``axis``.
                Any array library; rows that hold NaN are refused (unless their label is ignored).
            labels: class indices (binary: 0/1), one per row.
            space: what ``scores`` are: ``"logits"`` (default), ``"probs"`` or ``"log_probs"``
                (declared probabilities are validated).
            axis: the class axis (multiclass).
            ignore_index: a label value whose rows are left out (as in PyTorch's losses).

        Returns:
            ``self``, with ``quantile_`` set. Warns (``UserWarning``) where a quantile is ``+inf``.

        The calibration rows must not have been used to train the model, and must be exchangeable with
        the rows the sets are for; the scores come in one array (or a Dask array: the same quantile,
        ``randomized`` included, by a distributed selection) and the quantile is exact.
        """
        space = validate_space(space)
        if is_dask(scores) or is_dask(labels):
            return self._fit_dask(scores, labels, space, axis, ignore_index)
        c = canonical(scores, labels, self.task, axis=axis, ignore_index=ignore_index)
        n, k = c.scores.shape[0], (2 if self.task == "binary" else c.scores.shape[1])
        s = self.conformity_scores(c.scores, c.labels, space=space)  # the canonical record: already validated
        counts = np.bincount(c.labels, minlength=k).astype(np.int64)
        if self.mondrian:
            q = np.array([conformal_quantile(s[c.labels == j], self.alpha) for j in range(k)])
            short = [j for j in range(k) if math.isinf(q[j])]
            if short:
                _warn_short(short, counts, self.alpha, 3)
            quantile: Any = q
        else:
            quantile = conformal_quantile(s, self.alpha)
            if math.isinf(quantile):
                _warn_too_few(n, self.alpha, 3)
        return self._set(quantile, k, n, counts, space)

    def _set(self, quantile: Any, k: int, n: int, counts: np.ndarray, space: str) -> "ConformalClassifier":
        self.quantile_, self.n_classes_, self.n_calibration_ = quantile, k, n
        self.class_counts_, self.space_ = counts, space
        return self

    def _fit_dask(self, scores: Any, labels: Any, space: str, axis: Any, ignore_index: Any) -> "ConformalClassifier":
        """The fit on Dask arrays: conformity scores per block, then the exact quantile by distributed selection.

        Only the per-block counts, histograms and the final candidates travel; the quantile equals the
        in-memory one. Randomized: a first pass counts each block's kept rows from the labels alone, and
        each block draws ``u`` from its first kept row's position in the whole calibration set.
        """
        from dask import delayed

        from ._dask import persist_blocks, tree_reduce
        from ._dask_select import kth_smallest

        k, part, _ = self._dask_parts(scores, labels, space, axis, ignore_index, self.randomized)
        part = persist_blocks(part)
        counts = tree_reduce(lambda b: np.bincount(b[1], minlength=k).astype(np.int64), [(b,) for b in part])
        n = int(counts.sum())
        if n == 0:
            raise ValueError("every label equals ignore_index (or there are no rows): conformal sets need "
                             "calibration rows")
        if self.mondrian:
            q = np.array([kth_smallest([delayed(lambda b, j=j: b[0][b[1] == j])(b) for b in part],
                                       rank=lambda m: _rank(m, self.alpha))[0] for j in range(k)])
            short = [j for j in range(k) if math.isinf(q[j])]
            if short:
                _warn_short(short, counts, self.alpha, 4)
            return self._set(q, k, n, counts, space)
        quantile, _ = kth_smallest([delayed(lambda b: b[0])(b) for b in part], rank=lambda m: _rank(m, self.alpha))
        if math.isinf(quantile):
            _warn_too_few(n, self.alpha, 4)
        return self._set(quantile, k, n, counts, space)

    def _dask_parts(self, scores: Any, labels: Any, space: str, axis: Any, ignore_index: Any, count: bool):
        """``(C, parts, kept)``: ``parts`` the ``Delayed`` ``(scores, labels)`` of each block's kept rows;
        ``kept`` (with ``count``; ``None`` without) each block's number of kept rows, from a first pass over
        the labels alone: its running sum is where each block's randomized draws start."""
        from dask import delayed

        from ._dask import delayed_blocks, row_layout, row_starts

        s, y, _ = row_layout(scores, labels, self.task, axis=axis)
        k = 2 if self.task == "binary" else int(s.shape[1])
        kept = _kept_rows(y, ignore_index) if count else [None] * len(s.chunks[0])
        starts = np.concatenate([[0], np.cumsum(kept[:-1])]).astype(np.int64) if count else kept
        part = [delayed(self._block_scores, pure=False)(sb, yb, space, ignore_index, first, None if m is None
                                                         else (int(k0), int(m)))
                for (sb, yb, _), first, k0, m in zip(delayed_blocks(s, y, None), row_starts(s), starts, kept)]
        return k, part, (kept if count else None)

    def _block_scores(self, sb: np.ndarray, yb: np.ndarray, space: str, ignore_index: Any, first: int,
                      kept: tuple[int, int] | None):
        """``(conformity scores, labels)`` of one block's kept rows (``first``: its first row's number, for
        the messages; ``kept``: the number of its first kept row among all kept rows and its kept rows,
        where its randomized draws start)."""
        c = canonical(sb, yb, self.task, axis=-1, ignore_index=ignore_index, allow_empty=True,
                      row_numbers=np.arange(first, first + np.shape(sb)[0]))
        if kept is not None and c.n != kept[1]:  # the labels were not the same array in both passes
            raise ValueError(f"the labels of the block of rows {first}.. keep {c.n} rows now but kept {kept[1]} when "
                             "counted; give labels that compute the same every time (persist or save them first)")
        if c.n == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        p = _class_probs(c.scores, self.task, space)
        u = _draws(self.seed, 0, kept[0], c.n) if self.randomized else None
        return np.take_along_axis(self._scores(p, u), c.labels[:, None], axis=1)[:, 0], c.labels

    def _conformity_dask(self, scores: Any, labels: Any, space: str, axis: Any, ignore_index: Any) -> Any:
        """:meth:`conformity_scores` on Dask arrays: lazy, block by block (with labels: one first pass over the
        labels gives each block's kept rows, the chunks of the result)."""
        from ._dask import dask_array, row_layout

        da = dask_array()
        if labels is None:
            s, _, _ = row_layout(scores, None, self.task, axis=axis)
            k = 2 if self.task == "binary" else int(s.shape[1])
            fn = functools.partial(_block_all_scores, copy.copy(self), space)  # this fit, whatever comes next
            return s.map_blocks(fn, dtype=np.float64, chunks=(s.chunks[0], (k,)),
                                **({"new_axis": 1} if self.task == "binary" else {}))
        _, part, kept = self._dask_parts(scores, labels, space, axis, ignore_index, True)
        return da.concatenate([da.from_delayed(b[0], shape=(int(m),), dtype=np.float64) for b, m in zip(part, kept)])

    def _predict_dask(self, scores: Any, space: str, axis: Any) -> Any:
        """:meth:`predict_sets` on a Dask array: a lazy boolean Dask array, each block's sets where it lives,
        its draws from its first row's number in the whole array; NaN rows warn where their block runs."""
        from ._dask import row_layout

        x, row_shape = self._rows(scores, axis)  # the class count checked before any block runs
        s, _, _ = row_layout(x, None, self.task, axis=-1)
        k = self.n_classes_
        fn = functools.partial(_block_sets, copy.copy(self), space)  # this fit, whatever comes next
        sets = s.map_blocks(fn, dtype=np.bool_, chunks=(s.chunks[0], (k,)),
                            **({"new_axis": 1} if self.task == "binary" else {}))
        return sets.reshape(tuple(row_shape) + (k,)) if len(row_shape) != 1 else sets

    def conformity_scores(self, scores: Any, labels: Any = None, *, space: str | None = None, axis: int = -1,
                          ignore_index: int | None = None) -> np.ndarray:
        r"""The non-conformity scores :math:`s(x, y)` this classifier sorts (with labels) or compares (without).

        With ``labels``: the score of each row's true class, a float64 NumPy array ``(n,)`` (after
        ``ignore_index``), exactly what :meth:`fit` takes the quantile of (with ``fit``'s draws when
        randomized). Without: the score of every class, ``(N, C)``, exactly what :meth:`predict_sets`
        compares with ``quantile_`` (with its draws). ``space`` defaults to ``space_`` once fitted,
        else ``"logits"``. Useful to pool calibration scores from several sources (the quantile is
        :func:`conformal_quantile` of them). On Dask arrays the result is a lazy Dask array (rows
        flattened, as in memory) with the same values, the draws included; with labels a first pass
        over the labels counts each block's kept rows (the result's chunks).

        Example:
            >>> cc = ConformalClassifier("multiclass", method="aps")
            >>> cc.conformity_scores([[0.7, 0.2, 0.1]], space="probs").round(3)
            array([[0.7, 0.9, 1. ]])
        """
        space = validate_space(space if space is not None else (self.space_ or "logits"))
        if is_dask(scores) or is_dask(labels):
            return self._conformity_dask(scores, labels, space, axis, ignore_index)
        if labels is None:
            x = to_numpy(scores, "scores").astype(np.float64, copy=False)
            if self.task == "multiclass" and x.ndim >= 2:
                from ._array import normalize_axis  # the one axis rule

                x = np.moveaxis(x, normalize_axis(axis, x.ndim), -1)
            return self._all_scores(x, space, 0)
        c = canonical(scores, labels, self.task, axis=axis, ignore_index=ignore_index)
        p = _class_probs(c.scores, self.task, space)
        u = _draws(self.seed, 0, 0, p.shape[0]) if self.randomized else None
        return np.take_along_axis(self._scores(p, u), c.labels[:, None], axis=1)[:, 0]

    def _all_scores(self, x: np.ndarray, space: str, first: Any) -> np.ndarray:
        """Every class's score of rows ``x`` (classes last), ``first``: the number of the first row in
        the whole array (where its predict-time draws start), or every row's number (an array)."""
        numbers = (np.arange(first, first + x.shape[0]) if first else None) if np.ndim(first) == 0 else first
        c = canonical(x, None, self.task, axis=-1, allow_empty=True, row_numbers=numbers)
        p = _class_probs(c.scores, self.task, space)
        return self._scores(p, _draws_at(self.seed, 1, first, p.shape[0]) if self.randomized else None)

    def _scores(self, p: np.ndarray, u: np.ndarray | None) -> np.ndarray:
        """The non-conformity score of every class of every row, ``(N, C)`` float64."""
        if self.method == "lac":
            return 1.0 - p
        order = np.argsort(-p, axis=1, kind="stable")  # decreasing probability; ties: lower index first
        ps = np.take_along_axis(p, order, axis=1)
        cum = np.cumsum(ps, axis=1)  # the mass up to and including each rank: the deterministic score
        if u is None:
            sorted_scores = cum
        else:
            before = np.concatenate([np.zeros((p.shape[0], 1)), cum[:, :-1]], axis=1)  # the mass ranked above
            sorted_scores = before + u[:, None] * ps
        if self.method == "raps" and self.raps_lambda > 0:
            ranks = np.arange(1, p.shape[1] + 1, dtype=np.float64)
            sorted_scores = sorted_scores + self.raps_lambda * np.maximum(0.0, ranks - self.raps_k_reg)
        out = np.empty_like(sorted_scores)
        np.put_along_axis(out, order, sorted_scores, axis=1)
        return out

    def _check_fitted(self) -> None:
        if self.quantile_ is None:
            raise ValueError("this ConformalClassifier is not fitted yet: call .fit(scores, labels) on held-out "
                             "calibration rows first (or load a saved one with sigmax.conformal.load)")

    # ------------------------------------------------------------------ prediction
    def predict_sets(self, scores: Any, *, space: str | None = None, axis: int = -1, rows: Any = None) -> Any:
        r"""The sets :math:`\{y : s(x, y) \le \hat q + \epsilon\}` (per class :math:`\hat q_y` with ``mondrian``).

        Args:
            scores: as in :meth:`fit`, with the same number of classes.
            space: what ``scores`` are; by default the space ``fit`` was given (``space_``).
            axis: the class axis (multiclass).
            rows: ``randomized`` only: each row's number in the sequence of draws (one per row of a 1-D batch of
                rows; default ``0..N-1``, the row's position in ``scores``). A chunk of a larger set passes its
                rows' numbers in the whole so that its sets are the whole's (the calibration report does).

        Returns:
            A boolean array of shape ``rows + (C,)`` (the rows in the input's order, the classes last;
            binary: ``(N, 2)``, column 1 is the positive class), of the input's array library and
            device. A row holding NaN gets every class, with a ``UserWarning``. A Dask array gives a
            lazy boolean Dask array, equal to the in-memory sets (each block draws from its first row's
            number in the whole array); its NaN warning is raised where the block is computed.
        """
        self._check_fitted()
        space = self.space_ if space is None else validate_space(space)
        if is_dask(scores):
            if rows is not None:
                raise ValueError("rows= is for a chunk of rows in memory; a Dask array's blocks draw by their rows' "
                                 "numbers in the whole array already: leave rows=None")
            return self._predict_dask(scores, space, axis)
        x = to_numpy(scores, "scores").astype(np.float64, copy=False)
        x, row_shape = self._rows(x, axis)
        first = 0
        if rows is not None:
            if not self.randomized:
                rows = None  # the sets of a row do not depend on its place without draws
            elif len(row_shape) != 1 or np.shape(rows) != (x.shape[0],) or np.any(np.asarray(rows) < 0):
                raise ValueError(f"rows must give one non-negative row number per row of scores ({x.shape[0]} "
                                 f"rows), got shape {np.shape(rows)}; or leave rows=None (rows 0..N-1)")
            else:
                first = np.asarray(rows, dtype=np.int64)
        sets = self._sets(x, space, first, 3)
        return _like_input(sets.reshape(tuple(row_shape) + (sets.shape[1],)), scores)

    def _rows(self, x: Any, axis: Any) -> tuple[Any, tuple]:
        """``x`` (NumPy or Dask) with the class axis last (binary: one score per row), and the rows' shape."""
        if self.task == "multiclass":
            if x.ndim < 2:
                raise ValueError(f"multiclass scores need a class axis, got shape {tuple(x.shape)}; for one "
                                 f"score per sample use {spell('task', 'binary')}")
            from ._array import normalize_axis  # the one axis rule

            x = np.moveaxis(x, normalize_axis(axis, x.ndim), -1)
            if x.shape[-1] != self.n_classes_:
                raise ValueError(f"scores have {x.shape[-1]} classes along axis {axis} but this ConformalClassifier "
                                 f"was fitted on {self.n_classes_}; give scores of the model it was calibrated for")
            return x, tuple(x.shape[:-1])
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]  # one score column
        return x, tuple(x.shape)

    def _sets(self, x: np.ndarray, space: str, first: Any, stacklevel: int) -> np.ndarray:
        """The ``(M, C)`` sets of rows ``x`` (classes last); ``first``: the number of its first row in the
        whole array (where its draws start), or every row's number (an array; see :meth:`_all_scores`)."""
        nan = np.isnan(x).any(axis=-1) if self.task == "multiclass" else np.isnan(x)
        n_nan = int(nan.sum())
        if n_nan:  # a neutral score there (validated like any other), replaced by the full set below
            neutral = {"logits": 0.0, "probs": 0.5 if self.task == "binary" else 1.0 / self.n_classes_,
                       "log_probs": -math.log(2.0 if self.task == "binary" else self.n_classes_)}[space]
            x = np.where(nan[..., None] if self.task == "multiclass" else nan, neutral, x)
        q = self.quantile_ if not self.mondrian else self.quantile_[None, :]
        sets = self._all_scores(x, space, first) <= q + TIE_SLACK  # a tie up to rounding is in
        if n_nan:
            sets[nan.reshape(-1)] = True
            warnings.warn(f"{n_nan} row(s) of scores contain NaN: their prediction set holds every class; find "
                          "where the model produced NaN", UserWarning, stacklevel=stacklevel)
        return sets

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: the settings and the fitted quantile(s) (``+inf`` kept as ``Infinity``)."""
        self._check_fitted()
        q = self.quantile_
        return {"sigmax": "conformal", "format": FORMAT_VERSION, "type": type(self).__name__, "task": self.task,
                "method": self.method, "alpha": self.alpha, "randomized": self.randomized, "seed": self.seed,
                "mondrian": self.mondrian, "raps_lambda": self.raps_lambda, "raps_k_reg": self.raps_k_reg,
                "space": self.space_, "n_classes": self.n_classes_, "n_calibration": self.n_calibration_,
                "class_counts": [int(v) for v in self.class_counts_],
                "quantile": [float(v) for v in q] if self.mondrian else float(q)}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` through :func:`sigmax.io.atomic_write` (read it: :func:`load`)."""
        d = self.to_dict()
        persist.write_json(path, d)  # floats round-trip exactly; +inf is written Infinity

    def __repr__(self) -> str:
        fitted = "not fitted" if self.quantile_ is None else (
            f"quantile_={np.round(self.quantile_, 4).tolist()}" if self.mondrian else f"quantile_={self.quantile_:.4g}")
        extra = (", randomized=True" if self.randomized else "") + (", mondrian=True" if self.mondrian else "")
        return (f"ConformalClassifier(task={self.task!r}, method={self.method!r}, alpha={self.alpha:g}{extra}, "
                f"{fitted})")


def _kept_rows(y: Any, ignore_index: Any) -> np.ndarray:
    """The rows each block of the Dask labels ``y`` keeps (label != ``ignore_index``): one int per block."""
    ignore = validate_ignore_index(ignore_index)
    if ignore is None:
        return np.asarray(y.chunks[0], dtype=np.int64)
    one = y.map_blocks(lambda b: np.array([np.count_nonzero(np.asarray(b) != ignore)], dtype=np.int64),
                       dtype=np.int64, chunks=((1,) * len(y.chunks[0]),))
    return np.asarray(one.compute(), dtype=np.int64)


def _first_row(block_info: Any) -> int:
    return int(block_info[0]["array-location"][0][0])


def _block_all_scores(cc: ConformalClassifier, space: str, x: np.ndarray, block_info: Any = None) -> np.ndarray:
    return cc._all_scores(x, space, _first_row(block_info))


def _block_sets(cc: ConformalClassifier, space: str, x: np.ndarray, block_info: Any = None) -> np.ndarray:
    return cc._sets(x, space, _first_row(block_info), 2)


def _draws_at(seed: int, stream: int, rows: Any, n: int) -> np.ndarray:
    """The draws of ``n`` rows: ``rows`` the number of the first (a run of ``n``) or each row's number."""
    if np.ndim(rows) == 0:
        return _draws(seed, stream, int(rows), n)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.zeros(0)
    lo = int(rows.min())
    return _draws(seed, stream, lo, int(rows.max()) - lo + 1)[rows - lo]


def _draws(seed: int, stream: int, first: int, n: int) -> np.ndarray:
    """Draws ``first .. first + n - 1`` of ``default_rng([seed, stream]).random(...)``, without the ones before.

    PCG64's ``advance(k)`` jumps exactly ``k`` 64-bit outputs ahead, and ``random`` (float64) takes one
    output per value: so a Dask block draws its own rows' share of the whole sequence (tested).
    """
    g = np.random.default_rng([seed, stream])
    g.bit_generator.advance(first)
    return g.random(n)


def _class_probs(s: np.ndarray, task: str, space: str) -> np.ndarray:
    """``(N, C)`` float64 class probabilities from canonical scores (binary: the columns ``[P(0), P(1)]``)."""
    # contiguous: the C kernels' path for every input, so a strided view gives the bits its Dask blocks give
    s = np.ascontiguousarray(s)
    if space == "log_probs":
        validate_log_probs(s, task)
    with np.errstate(all="ignore"):
        if task == "multiclass":
            return np.asarray(to_probs(s, task, space=space))  # validates declared probabilities
        p1 = np.asarray(to_probs(s, task, space=space))
        if space == "logits":
            p0 = np.asarray(to_probs(-s, task, space="logits"))  # sigmoid(-z): exact where p1 rounds to 1
        elif space == "probs":
            p0 = 1.0 - s
        else:
            p0 = -np.expm1(np.minimum(s, 0.0))  # 1 - exp(lp) without cancellation
    return np.stack([p0, p1], axis=1)


def _like_input(sets: np.ndarray, ref: Any) -> Any:
    """NumPy (for NumPy input and lists), else the input's library and device."""
    if isinstance(ref, (np.ndarray, np.generic, list, tuple, numbers.Number)):
        return sets
    try:
        xp = namespace(ref)
    except TypeError:
        return sets
    if is_numpy(xp):
        return sets
    return xp.asarray(sets, device=device_of(ref))


# ---------------------------------------------------------------------- evaluating sets
def coverage(sets: Any, labels: Any, *, ignore_index: int | None = None, by_class: bool = False) -> Any:
    r"""The share of rows whose set holds the true class: :math:`\frac1N \sum_i [\,y_i \in C(x_i)\,]`.

    Args:
        sets: boolean ``rows + (C,)`` (from :meth:`ConformalClassifier.predict_sets`), any library.
        labels: the true class of each row (binary: 0/1), the rows' shape.
        ignore_index: a label value whose rows are left out.
        by_class: one coverage per class (a float64 array ``(C,)``; NaN for a class without rows)
            instead of one number: the quantity ``mondrian=True`` guarantees.

    Returns:
        A float in [0, 1] (or the per-class array).

    Example:
        >>> coverage([[True, False], [True, True], [False, True]], [0, 1, 0])
        0.6666666666666666
    """
    c = canonical(_check_sets(sets), labels, "multiclass", ignore_index=ignore_index, scores_name="sets")
    hit = c.scores[np.arange(c.n), c.labels] > 0
    if not by_class:
        return float(hit.mean())
    k = c.scores.shape[1]
    n = np.bincount(c.labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(c.labels, weights=hit.astype(np.float64), minlength=k) / n


def set_size(sets: Any) -> np.ndarray:
    """The number of classes in each set: an int64 NumPy array of the rows' shape (``.mean()`` for the average).

    Example:
        >>> set_size([[True, False, True], [False, False, False]])
        array([2, 0])
    """
    return _check_sets(sets).sum(axis=-1).astype(np.int64)


def _check_sets(sets: Any) -> np.ndarray:
    s = to_numpy(sets, "sets")
    if s.ndim < 2:
        raise ValueError(f"sets must have a class axis last, shape (N, C), got shape {tuple(s.shape)}; give the "
                         "output of ConformalClassifier.predict_sets")
    if s.dtype != np.bool_:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("sets must be boolean (or 0/1): one True per class in the set; give the output of "
                             "ConformalClassifier.predict_sets")
        s = s.astype(np.bool_)
    return s


# ---------------------------------------------------------------------- loading
def load(path: str | os.PathLike) -> ConformalClassifier:
    """Load a :class:`ConformalClassifier` saved with ``.save(path)``, every field validated (:func:`from_dict`).

    Example:
        >>> import numpy as np, tempfile, os
        >>> cc = ConformalClassifier("binary", alpha=0.2).fit(np.linspace(-3, 3, 50), np.arange(50) % 2)
        >>> path = os.path.join(tempfile.mkdtemp(), "conformal.json")
        >>> cc.save(path)
        >>> load(path).quantile_ == cc.quantile_
        True
    """
    return from_dict(persist.read_json(path, "conformal", "ConformalClassifier.save()"))


def _field(field: str, problem: str) -> ValueError:
    return ValueError(f"conformal field {field!r} {problem}; the file is damaged or was edited by hand: fit the "
                      "ConformalClassifier again and save it")


def from_dict(d: Any) -> ConformalClassifier:
    """A :class:`ConformalClassifier` from :meth:`~ConformalClassifier.to_dict`'s description, every field checked."""
    persist.check_header(d, "conformal", FORMAT_VERSION, "ConformalClassifier.save()")
    for key in ("type", "task", "method", "alpha", "randomized", "seed", "mondrian", "raps_lambda", "raps_k_reg",
                "space", "n_classes", "n_calibration", "class_counts", "quantile"):
        if key not in d:
            raise _field(key, "is missing")
    if d["type"] != "ConformalClassifier":
        raise _field("type", f"must be 'ConformalClassifier', got {d['type']!r}")
    if d["space"] not in ("logits", "probs", "log_probs"):
        raise _field("space", f"must be 'logits', 'probs' or 'log_probs', got {d['space']!r}")
    for key in ("n_classes", "n_calibration"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "n_classes" else 0):
            raise _field(key, f"must be a non-negative integer, got {v!r}")
    k = d["n_classes"]
    try:
        cc = ConformalClassifier(d["task"], method=d["method"], alpha=d["alpha"], randomized=d["randomized"],
                                 seed=d["seed"], mondrian=d["mondrian"],
                                 raps_lambda=d["raps_lambda"] if d["method"] == "raps" else None,
                                 raps_k_reg=d["raps_k_reg"] if d["method"] == "raps" else None)
    except (TypeError, ValueError) as exc:
        raise _field("settings", f"are invalid ({exc})") from None
    if cc.task == "binary" and k != 2:
        raise _field("n_classes", f"must be 2 for a binary task, got {k}")
    counts = d["class_counts"]
    if (not isinstance(counts, list) or len(counts) != k
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in counts)
            or sum(counts) != d["n_calibration"]):
        raise _field("class_counts", f"must be {k} non-negative integers summing to n_calibration")
    q = d["quantile"]
    values = q if cc.mondrian else [q]
    if not isinstance(values, list) or len(values) != (k if cc.mondrian else 1):
        raise _field("quantile", f"must be a list of {k} numbers (mondrian)" if cc.mondrian else "must be a number")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) or v == -math.inf:
            raise _field("quantile", f"must hold numbers or +Infinity (not NaN or -Infinity), got {v!r}")
    cc.quantile_ = np.array(values, dtype=np.float64) if cc.mondrian else float(q)
    cc.n_classes_, cc.n_calibration_ = k, d["n_calibration"]
    cc.class_counts_, cc.space_ = np.array(counts, dtype=np.int64), d["space"]
    return cc
