"""The per-chunk work of the report, as a mergeable pass state: the one code the streamed and the Dask report share.

A pass over the rows (:func:`sigmax.report.evaluate` makes one or two) is a :class:`PassState` built
from a picklable :class:`PassConfig`: :meth:`PassState.add` takes one chunk of rows (its first row's
number in the source, its scores and labels): the seeded split (:func:`split_mask`), the uniform sample
of the fitting rows (with their row numbers in the source), and the evaluation rows, validated once
(:func:`sigmax._inputs.canonical`) and summed into the "before" and "after" sides, the conformal
coverage and the interval sample (:class:`sigmax.report._intervals.RowSample`).

:meth:`PassState.merge` is exact and order-preserving: merging the states of consecutive row ranges
in order gives the state of adding their chunks in order (the samples are concatenated in row order
and cut at their caps as the loop cuts them; every other part is a sum). The streamed report adds its
chunks to one state; the Dask report builds one state per row block where the block lives and merges
them in a tree, in row order (:func:`sigmax._dask.tree_reduce`).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> s, y = rng.normal(size=(1000, 3)), rng.integers(0, 3, 1000)
    >>> cfg = PassConfig("multiclass", "logits", 3, frac=0.5, seed=0, collect=True, keep=1.0, fit_cap=10_000)
    >>> one = PassState(cfg)
    >>> for i in range(0, 1000, 300):
    ...     one.add(i, s[i:i + 300], y[i:i + 300])
    >>> a, b = PassState(cfg), PassState(cfg)
    >>> a.add(0, s[:450], y[:450]); b.add(450, s[450:], y[450:])
    >>> both = a.merge(b)
    >>> both.rows, both.n_fit_rows == one.n_fit_rows, bool(np.array_equal(both.fit_rows(), one.fit_rows()))
    (1000, True, True)
"""

from __future__ import annotations

import copy

import dataclasses
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .._inputs import canonical, to_numpy
from ..metrics import MetricAccumulator, prepare_canonical
from ._budget import DEFAULT_BUDGET, MemoryPlan, plan_memory
from ._data import PlotAccumulator, View
from ._intervals import DEFAULT_RESAMPLES, RowSample, interval_rows

__all__ = ["Coverage", "PassConfig", "PassState", "Side", "calibrated", "combine_states", "fit_takes", "interval_sample_rows",
           "report_plan", "run_pass", "split_mask"]

_SPLIT_BLOCK = 4096


def split_mask(start: int, n: int, fraction: float, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row ``start .. start + n - 1``, the same whichever chunks ask.

    Row ``i`` fits the calibrator when its number is below ``fit_fraction``; the numbers come from
    blocks of 4096 rows seeded by ``(seed, block)``, so chunked and whole-array reports split alike.

    Example:
        >>> u = split_mask(0, 10_000, 0.5, seed=0)
        >>> bool(np.array_equal(u[5000:6000], split_mask(5000, 1000, 0.5, seed=0)))
        True
    """
    if n <= 0:
        return np.zeros(0)
    first, last = start // _SPLIT_BLOCK, (start + n - 1) // _SPLIT_BLOCK
    u = np.concatenate([np.random.default_rng([seed, b]).random(_SPLIT_BLOCK) for b in range(first, last + 1)])
    off = start - first * _SPLIT_BLOCK
    return u[off:off + n]


def report_plan(memory_budget: Any = DEFAULT_BUDGET, *, scores_per_row: int, n_rows: int | None = None,
                fitting: bool = True, n_resamples: int | None = DEFAULT_RESAMPLES,
                chunk_rows: int | None = None, max_interval_rows: int | None = None) -> MemoryPlan:
    """The memory plan the report uses: its ``chunk_rows`` is the block size to read or open the rows with.

    :func:`plan_memory`, with the chunks lowered by a third when nothing is fitted and the interval
    sample shares the pass with the chunks (as :func:`sigmax.report.evaluate` does).

    Example:
        >>> report_plan("64M", scores_per_row=10).chunk_rows == plan_memory("64M", scores_per_row=10).chunk_rows
        True
        >>> report_plan("64M", scores_per_row=10, fitting=False).chunk_rows < plan_memory(
        ...     "64M", scores_per_row=10, fitting=False).chunk_rows
        True
    """
    plan = plan_memory(memory_budget, scores_per_row=scores_per_row, n_rows=n_rows, fitting=fitting,
                       chunk_rows=chunk_rows)
    cap = interval_sample_rows(plan, scores_per_row, n_resamples, max_interval_rows)
    if cap and not fitting and chunk_rows is None:  # the interval sample shares the pass with the chunks
        plan = dataclasses.replace(plan, chunk_rows=max(1, plan.chunk_rows * 2 // 3))
    return plan


def interval_sample_rows(plan: MemoryPlan, scores_per_row: int, n_resamples: int | None,
                         max_interval_rows: int | None = None) -> int:
    """The cap of the interval sample under ``plan`` (0: no intervals)."""
    cap = interval_rows(plan.budget, scores_per_row, max(int(n_resamples or 0), 2))
    if max_interval_rows is not None:
        cap = min(cap, max(0, int(max_interval_rows)))
    return cap


# ------------------------------------------------------------------------------------ one side
class Side:
    """The metrics (:class:`sigmax.metrics.MetricAccumulator`) and the plot data of one set of scores.

    With ``tuned`` thresholds, the decision metrics are summed a second time at those thresholds.
    """

    def __init__(self, task: str, space: str, n_classes: int, n_bins: int, min_bin_count: int,
                 ignore_index: int | None, tuned: Any = None) -> None:
        self.task, self.space, self.ignore = task, space, ignore_index
        kw = {"space": space, "n_bins": n_bins, "min_bin_count": min_bin_count, "ignore_index": ignore_index}
        self.metrics = MetricAccumulator(task, **kw)
        self.tuned = (MetricAccumulator(task, threshold=tuned, **kw)
                      if tuned is not None and task != "multiclass" else None)
        self.plots = PlotAccumulator(task, 1 if task == "binary" else n_classes, n_bins=n_bins)
        self.rows = 0

    def add(self, c: Any) -> None:
        """Add one validated chunk (a :class:`sigmax._inputs.Canonical` record)."""
        if c.n == 0:
            return
        d = prepare_canonical(c, space=self.space)  # probabilities once, for the metrics and the figures
        self.metrics.update_prepared(d)
        if self.tuned is not None:
            self.tuned.update_prepared(d)
        self.plots.add(d.p, c.labels, valid=c.valid)
        self.rows += c.n

    def merge(self, other: Side) -> Side:
        """Add the sums of ``other`` (the same task, space and bins); returns ``self``."""
        self.metrics.merge(other.metrics)
        if self.tuned is not None:
            self.tuned.merge(other.tuned)
        self.plots.merge(other.plots)
        self.rows += other.rows
        return self

    def view(self, chosen: Any = None) -> View:
        m = self.metrics.compute() if self.rows else {}
        rel = self.metrics.reliability if self.rows else None
        v = self.plots.view(m, rel, chosen)
        if self.tuned is not None and self.rows:
            t = self.tuned.compute()
            v.extra["tuned"] = {k: t[k] for k in ("accuracy", "f1_micro", "f1_macro", "precision_micro",
                                                  "recall_micro") if k in t}
        return v


class Coverage:
    """Held-out coverage and set size of a fitted conformal classifier, summed over chunks."""

    def __init__(self, cc: Any) -> None:
        self.cc, self.n, self.hits, self.sizes = cc, 0, 0, 0

    def sets(self, scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The sets of ``scores``; ``rows``: their row numbers in the source, where a randomized classifier's
        draws are taken (so the sets, and the coverage, do not depend on the chunks)."""
        return np.asarray(self.cc.predict_sets(scores, space="logits", rows=rows), dtype=bool)

    def add(self, c: Any, rows: np.ndarray | None = None) -> None:
        if c.n == 0:
            return
        sets = self.sets(c.scores, rows)
        self.hits += int(sets[np.arange(c.n), c.labels.astype(np.int64)].sum())
        self.sizes += int(sets.sum())
        self.n += c.n

    def merge(self, other: Coverage) -> Coverage:
        self.n, self.hits, self.sizes = self.n + other.n, self.hits + other.hits, self.sizes + other.sizes
        return self


def calibrated(cal: Any, c: Any, space: str) -> Any:
    """The chunk's calibrated logits, as a canonical record (labels already validated)."""
    z = np.asarray(to_numpy(cal.transform(c.scores, space=space), "calibrated scores"), dtype=np.float64)
    return replace(c, scores=z)


# ------------------------------------------------------------------------------------ the pass
@dataclasses.dataclass(frozen=True, eq=False)
class PassConfig:
    """What one pass needs, picklable (it travels to the workers once per pass).

    ``frac``: the split's fitting fraction (0: every row is evaluated); ``collect``: keep the uniform
    sample of the fitting rows (rows whose split number is below ``frac * keep``, at most ``fit_cap``);
    ``first_pass``: sum the "before" side and count ignored labels; ``calibrator`` (and ``thresholds``):
    sum the "after" side; ``conformal``: a fitted conformal classifier whose coverage is summed;
    ``sample_cap`` and ``sample_expected``: the interval sample (0: none) and how many evaluated rows
    it is drawn from; ``chunk_axis``: the class axis of the chunks; ``names``: the scores' and labels'
    names in messages.
    """

    task: str
    space: str
    n_classes: int
    ignore: int | None = None
    n_bins: int = 15
    mbc: int = 10
    chunk_axis: Any = -1
    names: tuple[str, str] = ("scores", "labels")
    frac: float = 0.0
    seed: int = 0
    collect: bool = False
    keep: float = 0.0
    fit_cap: int = 0
    first_pass: bool = True
    calibrator: Any = None
    thresholds: Any = None
    conformal: Any = None
    sample_cap: int = 0
    sample_expected: int = 0


class PassState:
    """The state of one pass over some consecutive rows: :meth:`add` a chunk, :meth:`merge` a later state."""

    def __init__(self, config: PassConfig) -> None:
        c = self.config = config
        side = {"n_bins": c.n_bins, "min_bin_count": c.mbc, "ignore_index": c.ignore}
        self.before = Side(c.task, c.space, c.n_classes, **side) if c.first_pass else None
        self.after = (Side(c.task, "logits", c.n_classes, tuned=c.thresholds, **side)
                      if c.calibrator is not None else None)
        self.covered = Coverage(c.conformal) if c.conformal is not None else None
        self.sample = RowSample(c.sample_cap, c.sample_expected, c.seed) if c.sample_cap else None
        self._fit: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (scores, labels, source rows)
        self.n_fit = 0  # rows in the fitting sample (at most fit_cap)
        self.n_fit_rows = 0  # fitting rows seen (the sample's population)
        self.n_ignored = 0
        self.rows = 0  # source rows seen

    # -------------------------------------------------------------------------- one chunk
    def add(self, start: int, s: np.ndarray, y: np.ndarray) -> None:
        """Add the chunk of source rows ``start .. start + len(s) - 1`` (scores ``s``, labels ``y``)."""
        c = self.config
        n = int(s.shape[0])
        self.rows += n
        u = split_mask(start, n, c.frac, c.seed)
        fm = u < c.frac
        ev = ~fm if c.frac < 1 else np.ones(fm.shape, dtype=bool)
        if c.collect:
            self.n_fit_rows += int(fm.sum())
            room = c.fit_cap - self.n_fit
            take = np.flatnonzero(u < c.frac * c.keep)[:max(room, 0)]
            if take.size:
                # copies: never views of a memory-mapped chunk
                self._fit.append((np.array(s[take]), np.array(y[take]), start + take))
                self.n_fit += int(take.size)
        if ev.any():
            self.n_ignored += self._evaluate(start, s, y, ev)

    def _evaluate(self, start: int, s: np.ndarray, y: np.ndarray, ev: np.ndarray) -> int:
        """The evaluation rows ``ev`` of a chunk: validated once, summed into the sides, the coverage and
        the interval sample; returns how many labels ``ignore_index`` removed."""
        cfg = self.config
        whole = bool(ev.all())
        c = canonical(s if whole else s[ev], y if whole else y[ev], cfg.task, axis=cfg.chunk_axis,
                      ignore_index=cfg.ignore, allow_empty=True, row_numbers=start + np.flatnonzero(ev),
                      scores_name=cfg.names[0], labels_name=cfg.names[1])  # messages: rows of the source
        if self.before is not None:
            self.before.add(c)
        if self.after is not None:
            ca = calibrated(cfg.calibrator, c, cfg.space)
            self.after.add(ca)
            if self.covered is not None:
                self.covered.add(ca, self._sample_numbers(start, y, ev))
        if self.sample is not None:
            self.sample.add(c, self._sample_take(start, s, y, ev) if self.sample.share < 1 else None)
        return c.n_ignored

    def _sample_numbers(self, start: int, y: np.ndarray, ev: np.ndarray) -> np.ndarray:
        """Each sample of the validated chunk numbered by its place in the source (row ``r``'s inner position
        ``j`` of ``T`` is ``r * T + j``; less the samples ``ignore_index`` removed): where a randomized
        conformal classifier draws, so the report's sets and coverage do not depend on the chunks."""
        cfg = self.config
        rows = start + np.flatnonzero(ev)
        yy = np.asarray(y[ev])
        inner = yy.size // max(rows.size, 1)
        numbers = (rows[:, None] * inner + np.arange(inner)).reshape(-1) if inner > 1 else rows
        if cfg.ignore is not None:
            numbers = numbers[yy.reshape(-1) != cfg.ignore]
        return numbers

    def _sample_take(self, start: int, s: np.ndarray, y: np.ndarray, ev: np.ndarray) -> np.ndarray:
        """The interval sample's draw of source rows, per sample of the validated chunk: repeated over a
        row's inner positions (scores of more than two axes), less the samples ``ignore_index`` removed."""
        cfg = self.config
        take = self.sample.keep(start, s.shape[0])[ev]  # type: ignore[union-attr]
        yy = np.asarray(y[ev])
        per = max(int(take.size) * (cfg.n_classes if cfg.task == "multilabel" else 1), 1)
        inner = yy.size // per
        if inner > 1:
            take = np.repeat(take, inner)
        if cfg.ignore is not None and cfg.task != "multilabel":
            take = take[yy.reshape(-1) != cfg.ignore]
        return take

    # -------------------------------------------------------------------------- merging
    def merge(self, other: PassState) -> PassState:
        """Add ``other``, the state of the rows right after this one's; returns ``self``.

        Exact and order-preserving: the fitting and interval samples take ``other``'s rows after this
        one's, up to their caps, as adding its chunks after this state's would.
        """
        if self.before is not None:
            self.before.merge(other.before)
        if self.after is not None:
            self.after.merge(other.after)
        if self.covered is not None:
            self.covered.merge(other.covered)
        if self.sample is not None:
            self.sample.merge(other.sample)
        for fs, fy, fr in other._fit:
            room = self.config.fit_cap - self.n_fit
            if room <= 0:
                break
            self._fit.append((fs[:room], fy[:room], fr[:room]))
            self.n_fit += min(room, int(fs.shape[0]))
        self.n_fit_rows += other.n_fit_rows
        self.n_ignored += other.n_ignored
        self.rows += other.rows
        return self

    # -------------------------------------------------------------------------- the fitting sample
    def fit_sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The fitting sample's scores, labels and row numbers in the source (``None``: no rows), in row
        order; the state lets go of it."""
        if not self._fit:
            return None
        out = tuple(np.concatenate([p[i] for p in self._fit]) for i in range(3))
        self._fit.clear()
        return out  # type: ignore[return-value]

    def fit_rows(self) -> np.ndarray:
        """The row numbers (in the source) of the fitting sample so far."""
        return np.concatenate([p[2] for p in self._fit]) if self._fit else np.zeros(0, dtype=np.int64)

    # ------------------------------------ the fitting sample gathered at the root (Dask, sigmax.report._dasksource)
    def light(self) -> PassState:
        """This state without the fitting sample's rows (what travels up a tree; ``self`` is unchanged): the
        rows stay where this state is, to be fetched by :meth:`fit_head`."""
        out = copy.copy(self)
        out._fit, out.n_fit = [], 0
        return out

    def fit_head(self, k: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The first ``k`` rows of this state's fitting sample, as its pieces."""
        out = []
        for fs, fy, fr in self._fit:
            if k <= 0:
                break
            out.append((fs[:k], fy[:k], fr[:k]))
            k -= int(fs.shape[0])
        return out

    def attach_fit(self, heads: Sequence[list]) -> PassState:
        """Give a state merged from :meth:`light` states the fitting sample merging would have built: the
        blocks' :meth:`fit_head` of :func:`fit_takes` rows each, in row order; returns ``self``."""
        for head in heads:
            for piece in head:
                self._fit.append(piece)
                self.n_fit += int(piece[0].shape[0])
        return self


def fit_takes(counts: Sequence[int], cap: int) -> list[int]:
    """How many rows of each block's fitting sample (of ``counts`` rows, blocks in row order) the merged
    sample keeps: the first ``cap`` rows in all, as :meth:`PassState.merge` takes them.

    Example:
        >>> fit_takes([3, 0, 4, 5], 6)
        [3, 0, 3, 0]
    """
    out, room = [], int(cap)
    for c in counts:
        k = max(0, min(int(c), room))
        out.append(k)
        room -= k
    return out


def combine_states(a: PassState, b: PassState) -> PassState:
    """``a`` then ``b`` merged into a new state (neither is changed): the combine step of a tree reduction."""
    return PassState(a.config).merge(a).merge(b)


def run_pass(source: Any, config: PassConfig, rows: int, advance: Any = None) -> PassState:
    """One pass over ``source``: its own reduction when it has one (a Dask source: per-block states merged
    on the workers), else one state fed every chunk of ``rows`` rows in order; ``advance(n)`` is told
    the rows of each chunk (block) done."""
    advance = advance if advance is not None else (lambda n: None)
    if hasattr(source, "reduce"):
        return source.reduce(config, advance)
    state = PassState(config)
    for start, s, y in source.chunks(rows):
        state.add(start, s, y)
        advance(s.shape[0])
    return state
