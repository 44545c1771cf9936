"""ROC AUC and average precision of Dask arrays: exactly the in-memory values, bucket by bucket."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
hyp = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import sigmax.metrics as M  # noqa: E402
import sigmax._dask_metrics_ranking as R  # noqa: E402
from sigmax._tolerance import tolerance  # noqa: E402

#: the two sides add the same float terms in another order (per bucket, then the buckets): a few
#: thousand roundings at most
TOL = tolerance("float64", 1000)
APPROX = {"rel": TOL["rtol"], "abs": TOL["atol"]}
AVERAGES = ("macro", "weighted", "micro", None)
METRICS = (M.roc_auc, M.average_precision)
UNEVEN = (13, 50, 1, 100, 36)  # 200 rows in uneven blocks, one of a single row


@pytest.fixture
def small_buckets(monkeypatch):
    """Buckets of at most 8 entries: every problem is cut at many splitters, ties straddle them."""
    monkeypatch.setattr(R, "BUCKET_ROWS", 8)
    return 8


def _data(task: str, n: int = 200, c: int = 4, seed: int = 0, decimals: int = 1, weights: bool = False,
          ignore: int | None = None):
    """Scores rounded to ``decimals`` (heavy ties), labels, weights with zeros, labels set to ``ignore``."""
    rng = np.random.default_rng(seed)
    shape = (n,) if task == "binary" else (n, c)
    z = np.round(rng.normal(size=shape) * 2, decimals)
    if task == "multiclass":
        y = rng.integers(0, c, n)
    else:
        y = rng.integers(0, 2, shape)
    w = rng.integers(0, 4, n).astype(np.float64) if weights else None  # a quarter of the weights are 0
    if ignore is not None:
        y = np.where(rng.uniform(size=y.shape) < 0.15, ignore, y)
    return z, y, w


def _chunk(x, rows=None):
    x = np.asarray(x)
    rows = rows or (UNEVEN if len(x) == sum(UNEVEN) else 7)
    return da.from_array(x, chunks=(rows,) + x.shape[1:])


def _same(fn, z, y, task, dask_labels=False, **kw):
    """``fn`` on Dask blocks equals ``fn`` in memory (value, or the very same error); ``dask_labels``: the
    labels and weights on Dask too, in other blocks than the scores'."""
    w = kw.pop("sample_weight", None)
    yd = _chunk(y, 11) if dask_labels else y
    wd = _chunk(w, 30) if dask_labels and w is not None else w
    try:
        want = fn(z, y, task, sample_weight=w, **kw)
    except ValueError as exc:
        with pytest.raises(ValueError) as got:
            fn(_chunk(z), yd, task, sample_weight=wd, **kw)
        # the very same error, or (found in a block) the same followed by the rows it was counted in
        assert str(got.value) == str(exc) or str(got.value).startswith(f"{exc} [found in rows ")
        return None
    got = fn(_chunk(z), yd, task, sample_weight=wd, **kw)
    assert type(got) is type(want)
    np.testing.assert_allclose(got, want, **TOL)
    return got


# ------------------------------------------------------------------------- equal to memory
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("ignore,dask_labels", [(None, False), (-1, True)])
def test_equal_to_memory(small_buckets, task, weights, ignore, dask_labels):
    z, y, w = _data(task, weights=weights, ignore=ignore)
    for fn in METRICS:
        for average in AVERAGES:
            _same(fn, z, y, task, dask_labels, average=average, sample_weight=w, ignore_index=ignore)


def test_equal_to_scikit_learn(small_buckets):
    skm = pytest.importorskip("sklearn.metrics")
    z, y, w = _data("binary", decimals=0, weights=True)
    p = 1.0 / (1.0 + np.exp(-z))
    assert M.roc_auc(_chunk(z), y, "binary", sample_weight=w) == pytest.approx(
        skm.roc_auc_score(y, p, sample_weight=w), **APPROX)
    assert M.average_precision(_chunk(z), y, "binary", sample_weight=w) == pytest.approx(
        skm.average_precision_score(y, p, sample_weight=w), **APPROX)
    z, y, _ = _data("multilabel", decimals=0)
    p = 1.0 / (1.0 + np.exp(-z))
    for average in ("macro", "micro", "weighted"):
        assert M.average_precision(_chunk(z), y, "multilabel", average=average) == pytest.approx(
            skm.average_precision_score(y, p, average=average), **APPROX)
        assert M.roc_auc(_chunk(z), y, "multilabel", average=average) == pytest.approx(
            skm.roc_auc_score(y, p, average=average), **APPROX)


def test_default_bucket_rows_one_task_per_problem():
    """Without the monkeypatch every problem here fits one bucket: one pass of sums, one task."""
    z, y, w = _data("multiclass", weights=True)
    r = R.ranking_sums(_chunk(z), y, "multiclass", sample_weight=w)
    assert r.n_buckets == 4 and r.n_tasks == 1 and r.max_task_entries == int(np.count_nonzero(w)) * 4
    for fn in METRICS:
        _same(fn, z, y, "multiclass", sample_weight=w)


# ------------------------------------------------------------------------- ties, extremes, bounds
def test_task_entries_stay_within_the_bound(small_buckets):
    """A tie group larger than a bucket (one value, 60 copies) is finished from its sums; no task
    sorts more than BUCKET_ROWS entries, however the ties sit against the splitters."""
    rng = np.random.default_rng(3)
    z = np.concatenate([np.full(60, 0.25), rng.integers(0, 30, 300) / 30.0, rng.uniform(size=140)])
    rng.shuffle(z)
    y = rng.integers(0, 2, z.size)
    zd = da.from_array(z, chunks=37)
    r = R.ranking_sums(zd, y, "binary", space="probs")
    assert r.count[0] == z.size and r.n_tasks > 20 and r.n_buckets > 60
    assert 0 < r.max_task_entries <= small_buckets
    for fn in METRICS:
        np.testing.assert_allclose(fn(zd, y, "binary", space="probs"), fn(z, y, "binary", space="probs"), **TOL)


def test_bucket_ranks_bound_every_gap():
    """The splitters' ranks leave at most BUCKET_ROWS entries strictly between two of them (or outside)."""
    for m in (9, 10, 17, 64, 65, 1000, 12345):
        for limit in (1, 2, 3, 8, 63):
            if m <= limit:
                continue
            r = R._ranks(m, limit)
            gaps = np.diff(np.concatenate([[0], r, [m + 1]])) - 1
            assert gaps.max() <= limit, (m, limit, r)


def test_all_scores_equal(small_buckets):
    z = np.full(100, 0.3)
    y = np.arange(100) % 3 == 0
    assert M.roc_auc(_chunk(z, 7), y.astype(int), "binary", space="probs") == 0.5
    assert M.average_precision(_chunk(z, 7), y.astype(int), "binary", space="probs") == pytest.approx(34 / 100)
    r = R.ranking_sums(_chunk(z, 7), y.astype(int), "binary", space="probs")
    assert r.n_tasks == 0 and r.max_task_entries == 0  # one tied group, larger than a bucket: from its sums


def test_infinite_logits_rank_as_zero_and_one(small_buckets):
    rng = np.random.default_rng(4)
    for task in ("binary", "multiclass", "multilabel"):
        z, y, w = _data(task, seed=4, weights=True)
        mask = rng.uniform(size=z.shape) < 0.2
        z = np.where(mask, rng.choice([np.inf, -np.inf], size=z.shape), z)
        if task == "multiclass":
            z[:, 0] = np.where(np.isinf(z).all(axis=1) & (z < 0).all(axis=1), 0.0, z[:, 0])  # no all--inf row
        for fn in METRICS:
            for average in AVERAGES:
                _same(fn, z, y, task, True, average=average, sample_weight=w)


def test_undefined_is_the_in_memory_error(small_buckets):
    z = np.round(np.random.default_rng(5).normal(size=(200, 4)), 1)
    # binary: one class only (roc_auc), no positive at all (average_precision)
    for fn in METRICS:
        _same(fn, z[:, 0], np.zeros(200, dtype=int), "binary")
        _same(fn, z[:, 0], np.ones(200, dtype=int), "binary")
    # multiclass: class 2 never a label: macro names it, weighted gives it weight 0, None gives NaN
    y = np.random.default_rng(6).choice([0, 1, 3], 200)
    for fn in METRICS:
        for average in AVERAGES:
            _same(fn, z, y, "multiclass", average=average)
    got = M.roc_auc(_chunk(z), y, "multiclass", average=None)
    assert np.isnan(got[2]) and np.isfinite(got[[0, 1, 3]]).all()
    # every weight 0 but one class's: the classes without weight are undefined
    w = np.where(y == 0, 1.0, 0.0)
    for fn in METRICS:
        for average in AVERAGES:
            _same(fn, z, y, "multiclass", average=average, sample_weight=w)
    # multilabel: a column all positive
    ym = np.random.default_rng(7).integers(0, 2, (200, 4))
    ym[:, 1] = 1
    for fn in METRICS:
        for average in AVERAGES:
            _same(fn, z, ym, "multilabel", average=average)


def test_a_class_never_predicted(small_buckets):
    """A class whose logit is always -inf (probability 0, one tied group) but that is sometimes the label."""
    z, y, w = _data("multiclass", seed=8, weights=True)
    z[:, 3] = -np.inf
    for fn in METRICS:
        for average in AVERAGES:
            _same(fn, z, y, "multiclass", True, average=average, sample_weight=w)
    assert M.roc_auc(_chunk(z), y, "multiclass", average=None)[3] == 0.5


def test_empty_after_ignore_index_and_empty_input():
    for task in ("binary", "multiclass", "multilabel"):
        z, y, _ = _data(task, n=30)
        for fn in METRICS:
            _same(fn, z, np.full(y.shape, -100), task, True, ignore_index=-100)
    for fn in METRICS:
        with pytest.raises(ValueError) as a:
            fn(np.zeros(0), np.zeros(0, dtype=int), "binary")
        with pytest.raises(ValueError) as b:
            fn(da.zeros(0, chunks=1), np.zeros(0, dtype=int), "binary")
        assert str(a.value) == str(b.value)


def test_nan_scores_are_the_in_memory_error():
    """The in-memory message, naming the row in the whole array (not in its block)."""
    z, y, _ = _data("binary")
    z[57] = np.nan
    for fn in METRICS:
        _same(fn, z, y, "binary")
        with pytest.raises(ValueError, match=r"\(first: \[57\]\)"):
            fn(_chunk(z), y, "binary")


def test_axis_dim_positional_and_checks(small_buckets):
    z, y, w = _data("multiclass", weights=True)
    zt = np.ascontiguousarray(z.T)  # classes first, rows chunked along axis 1
    zd = da.from_array(zt, chunks=(4, UNEVEN))
    for fn in METRICS:
        want = fn(z, y, "multiclass", average="weighted", sample_weight=w)
        np.testing.assert_allclose(fn(zd, y, "multiclass", average="weighted", axis=0, sample_weight=w), want, **TOL)
        np.testing.assert_allclose(fn(zd, y, "multiclass", average="weighted", dim=0, sample_weight=w), want, **TOL)
        # labels alone on Dask: the scores follow the labels' path
        np.testing.assert_allclose(fn(z, _chunk(y), "multiclass", average="weighted", sample_weight=w), want, **TOL)
    # K-dimensional: (N, C, d) with the class axis 1, as in memory
    z3 = np.round(np.random.default_rng(9).normal(size=(50, 3, 4)), 1)
    y3 = np.random.default_rng(10).integers(0, 3, (50, 4))
    got = M.roc_auc(da.from_array(z3, chunks=(7, 3, 4)), y3, "multiclass", axis=1, average=None)
    np.testing.assert_allclose(got, M.roc_auc(z3, y3, "multiclass", axis=1, average=None), **TOL)
    with pytest.raises(ValueError, match="unknown average"):
        M.roc_auc(_chunk(z), y, "multiclass", average="samples")
    with pytest.raises(TypeError):
        M.roc_auc(_chunk(z), y, "multiclass", "probs")  # space is keyword-only, as in memory
    with pytest.raises(ValueError, match="metrics need labels"):
        M.average_precision(_chunk(z), None, "multiclass")
    assert M.roc_auc.__name__ == "roc_auc" and "Dask" in M.roc_auc.__doc__


# ------------------------------------------------------------------------- any blocks, any buckets
@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 80), limit=st.integers(1, 12), levels=st.integers(1, 6), seed=st.integers(0, 2**16),
       cuts=st.lists(st.integers(1, 79), max_size=6), weighted=st.booleans(),
       task=st.sampled_from(["binary", "multilabel"]), average=st.sampled_from(AVERAGES))
def test_property_any_chunks_any_buckets(n, limit, levels, seed, cuts, weighted, task, average):
    rng = np.random.default_rng(seed)
    shape = (n,) if task == "binary" else (n, 2)
    z = rng.integers(0, levels, shape) / max(1, levels - 1)
    y = rng.integers(0, 2, shape)
    w = rng.integers(0, 3, n).astype(np.float64) if weighted else None
    edges = sorted({c for c in cuts if c < n})
    rows = tuple(np.diff([0, *edges, n]).tolist())
    old = R.BUCKET_ROWS
    R.BUCKET_ROWS = limit
    try:
        for fn in METRICS:
            try:
                want = fn(z, y, task, space="probs", average=average, sample_weight=w)
            except ValueError as exc:
                with pytest.raises(ValueError, match="undefined") as got:
                    fn(da.from_array(z, chunks=(rows,) + shape[1:]), y, task, space="probs", average=average,
                       sample_weight=w)
                assert str(got.value) == str(exc)
                continue
            got = fn(da.from_array(z, chunks=(rows,) + shape[1:]), y, task, space="probs", average=average,
                     sample_weight=w)
            np.testing.assert_allclose(got, want, **TOL)
        r = R.ranking_sums(da.from_array(z, chunks=(rows,) + shape[1:]), y, task, space="probs", average=average,
                           sample_weight=w)
        assert r.max_task_entries <= limit
    finally:
        R.BUCKET_ROWS = old


# ------------------------------------------------------------------------- one real cluster
def test_on_a_local_cluster(dask_client, monkeypatch):
    """Worker processes: the blocks persisted there, the splitters, the bucket tasks (BUCKET_ROWS travels
    in the plan, not in a module global the workers would not see)."""
    monkeypatch.setattr(R, "BUCKET_ROWS", 16)
    for task in ("binary", "multiclass"):
        z, y, w = _data(task, n=300, weights=True, ignore=-1)
        zd, yd, wd = _chunk(z, 41), _chunk(y, 41), _chunk(w, 41)
        for fn in METRICS:
            for average in ("macro", "micro"):
                want = fn(z, y, task, average=average, sample_weight=w, ignore_index=-1)
                got = fn(zd, yd, task, average=average, sample_weight=wd, ignore_index=-1)
                np.testing.assert_allclose(got, want, **TOL)
        r = R.ranking_sums(zd, yd, task, sample_weight=wd, ignore_index=-1)
        assert r.n_tasks > 1 and r.max_task_entries <= 16
