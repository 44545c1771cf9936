"""Exact metrics on Dask arrays: the multi-rank selection, equal-mass bins, the Poisson bootstrap, refusals."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
hyp = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import sigmax.metrics as M  # noqa: E402
import sigmax._dask_select as S  # noqa: E402
from sigmax._metrics_bootstrap import poisson_counts, poisson_key  # noqa: E402


def _blocks(x: np.ndarray, cuts: list[int]):
    parts = np.split(x, sorted(set(min(max(c, 0), x.size) for c in cuts)))
    return [dask.delayed(p) for p in parts]


def _expected(x: np.ndarray, ranks: list[int]) -> np.ndarray:
    srt = np.sort(x)
    return np.array([srt[r - 1] if 1 <= r <= x.size else np.inf for r in ranks])


# ------------------------------------------------------------------------- the selection
_special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 2.2e-308, 1e308, -1e308, 1.0, 1.0])
_values = st.lists(st.one_of(_special, st.floats(allow_nan=False)), min_size=0, max_size=60)


@settings(max_examples=60, deadline=None)
@given(_values, st.lists(st.integers(0, 60), max_size=5), st.lists(st.integers(-2, 64), min_size=1, max_size=8))
def test_kth_smallest_many_equals_sort(values, cuts, ranks):
    x = np.array(values, dtype=np.float64)
    got, n = S.kth_smallest_many(_blocks(x, cuts), ranks)
    assert n == x.size
    np.testing.assert_array_equal(got, _expected(x, ranks))  # -0.0 == 0.0


@pytest.mark.parametrize("gather", [S.GATHER, 1])
def test_radix_passes_and_ties_exact(monkeypatch, gather):
    """Many ties, subnormals and infinities through every radix pass (a gather of 1 key forces 64 bits)."""
    monkeypatch.setattr(S, "GATHER", gather)
    monkeypatch.setattr(S, "GATHER_FLOOR", 1)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=3000), np.full(500, 0.25), [np.inf, -np.inf, -0.0, 5e-324, -5e-324]])
    rng.shuffle(x)
    ranks = [1, 2, 3, 1500, 1700, 3001, 3200, 3505, 3504]
    got, _ = S.kth_smallest_many(_blocks(x, [0, 0, 7, 8, 2000]), ranks)  # blocks of 0 and 1 values
    np.testing.assert_array_equal(got, np.partition(x, np.array(ranks) - 1)[np.array(ranks) - 1])
    v, n = S.kth_smallest(_blocks(x, [100]), rank=lambda n: n // 2)
    assert n == x.size and v == np.sort(x)[n // 2 - 1]


def test_many_sets_and_errors():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.uniform(size=20)
    blocks = [dask.delayed([a[:30], b[:5]]), dask.delayed([a[30:], b[5:]])]
    (va, vb), sizes = S.kth_smallest_many(blocks, lambda ns: [[1, int(ns[0])], [10]], n_sets=2)
    assert sizes.tolist() == [50, 20]
    np.testing.assert_array_equal(va, [a.min(), a.max()])
    assert vb[0] == np.sort(b)[9]
    with pytest.raises(ValueError, match="NaN"):
        S.kth_smallest_many([dask.delayed(np.array([1.0, np.nan]))], [1])
    with pytest.raises(ValueError, match="integers"):
        S.kth_smallest_many([dask.delayed(np.array([1.0]))], [1.5])
    with pytest.raises(ValueError, match="one sequence of ranks per set"):
        S.kth_smallest_many(blocks, [[1]], n_sets=2)


def test_too_many_groups_is_refused(monkeypatch):
    monkeypatch.setattr(S, "MAX_GROUPS", 2)
    monkeypatch.setattr(S, "GATHER", 1)
    monkeypatch.setattr(S, "GATHER_FLOOR", 1)
    x = np.repeat([1.0, 2.0, 3.0], 300)  # tied keys stay in their buckets: three groups after one pass
    with pytest.raises(ValueError, match="fewer ranks"):
        S.kth_smallest_many(_blocks(x, [500]), [1, 400, 900])


# ------------------------------------------------------------------------- equal-mass bins
def _data(task, n, c=4, seed=0, ignore=None, weights=False):
    rng = np.random.default_rng(seed)
    shape = (n,) if task == "binary" else (n, c)
    z = np.round(rng.normal(size=shape), 1)  # many ties at the bin starts
    y = rng.integers(0, 2, shape) if task != "multiclass" else rng.integers(0, c, n)
    if ignore is not None:
        y[rng.random(y.shape) < 0.2] = ignore
    w = np.where(rng.random(n) < 0.2, 0.0, rng.random(n)) if weights else None
    return z, y, w


def _chunk(z, chunks):
    return da.from_array(z, chunks=(chunks,) + z.shape[1:])


CASES = [("binary", {}), ("multiclass", {}), ("multilabel", {}), ("multiclass", {"weights": True}),
         ("multilabel", {"weights": True}), ("multiclass", {"ignore": -100}), ("multilabel", {"ignore": -1}),
         ("binary", {"ignore": -1, "weights": True})]


@pytest.mark.parametrize("task,opts", CASES)
@pytest.mark.parametrize("chunks", [(37, 7, 200), (1, 4, 6), (3, 15, 8)])  # uneven; 1-row blocks; bins > rows
def test_equal_mass_matches_memory(task, opts, chunks):
    rows, n_bins, n = chunks
    z, y, w = _data(task, n, ignore=opts.get("ignore"), weights=opts.get("weights", False))
    zd = _chunk(z, rows)
    common = dict(binning="equal_mass", n_bins=n_bins, ignore_index=opts.get("ignore"), sample_weight=w)
    for mode in ("top_label", "classwise"):
        a = M.reliability(z, y, task, mode=mode, min_bin_count=2, **common)
        b = M.reliability(zd, y, task, mode=mode, min_bin_count=2, **common)
        np.testing.assert_array_equal(b.bin_edges, a.bin_edges)
        np.testing.assert_array_equal(b.count, a.count)
        assert (a.weight is None) == (b.weight is None)
        np.testing.assert_allclose(b.confidence, a.confidence, rtol=1e-12)
        np.testing.assert_allclose(b.accuracy, a.accuracy, rtol=1e-12)
        for norm, debias in (("l1", False), ("max", False), ("l2", False), ("l2", True)):
            kw = dict(mode=mode, norm=norm, debias=debias, min_bin_count=2, **common)
            np.testing.assert_allclose(M.calibration_error(zd, y, task, **kw), M.calibration_error(z, y, task, **kw),
                                       rtol=1e-12)


def test_equal_mass_class_index_and_refusals():
    z, y, _ = _data("multiclass", 150, c=5)
    a = M.reliability(z, y, "multiclass", binning="equal_mass", mode="classwise", class_index=-2, n_bins=6)
    b = M.reliability(_chunk(z, 40), y, "multiclass", binning="equal_mass", mode="classwise", class_index=-2, n_bins=6)
    np.testing.assert_array_equal(a.bin_edges, b.bin_edges)
    np.testing.assert_array_equal(a.count, b.count)
    with pytest.raises(ValueError, match="class_index must be an integer in 0..4"):
        M.reliability(_chunk(z, 40), y, "multiclass", binning="equal_mass", mode="classwise", class_index=7)
    big = np.zeros((4, 2000))
    with pytest.raises(ValueError, match="equal_width"):  # classes x bins above the bound: the fix is named
        M.calibration_error(_chunk(big, 2), np.zeros(4, int), "multiclass", binning="equal_mass", mode="classwise",
                            n_bins=15)
    with pytest.raises(ValueError, match="every label equals"):
        M.calibration_error(_chunk(z, 40), np.full(150, -1), "multiclass", binning="equal_mass", ignore_index=-1)


# ------------------------------------------------------------------------- the Poisson bootstrap
def test_poisson_counts_are_chunk_free_and_poisson():
    k = poisson_key(7)
    rows = np.arange(200_000)
    full = poisson_counts(k, rows, np.arange(3))
    np.testing.assert_array_equal(full[:, 123:456], poisson_counts(k, rows[123:456], np.arange(3)))
    np.testing.assert_array_equal(full[1:2], poisson_counts(k, rows, [1]))
    assert abs(full.mean() - 1) < 0.01 and abs(full.var() - 1) < 0.02
    assert abs(np.mean(full == 0) - np.exp(-1)) < 0.005
    assert not np.array_equal(full[0], full[1]) and not np.array_equal(full, poisson_counts(poisson_key(8), rows,
                                                                                            np.arange(3)))
    with pytest.raises(ValueError, match="seed must be an int"):
        poisson_key(np.random.default_rng(0))


BOOT = [(M.nll, {}), (M.brier, {}), (M.accuracy, {"top_k": 2}), (M.calibration_error, {"n_bins": 6}),
        (M.calibration_error, {"mode": "classwise", "norm": "max", "min_bin_count": 3}),
        (M.calibration_error, {"norm": "l2", "debias": True}),
        (M.precision_recall_f1, {"key": "f1", "average": "macro"})]


@pytest.mark.parametrize("metric,kw", BOOT, ids=lambda v: getattr(v, "__name__", str(v)))
def test_poisson_bootstrap_dask_equals_memory(metric, kw):
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(300, 4)) * 2, rng.integers(0, 4, 300)
    y[rng.random(300) < 0.1] = -100
    w = rng.random(300)
    common = dict(n_resamples=40, seed=5, ignore_index=-100, sample_weight=w, **kw)
    mem = M.bootstrap_ci(metric, z, y, "multiclass", resampling="poisson", **common)
    d1 = M.bootstrap_ci(metric, _chunk(z, 23), y, "multiclass", **common)
    d2 = M.bootstrap_ci(metric, _chunk(z, 300), da.from_array(y, chunks=300), "multiclass", **common)
    np.testing.assert_allclose(d1, mem, rtol=1e-10)
    np.testing.assert_allclose(d2, d1, rtol=1e-10)  # chunking does not change the result
    assert mem != M.bootstrap_ci(metric, z, y, "multiclass", **common)  # the multinomial default differs


def test_poisson_multilabel_and_binary_and_loop_route():
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(120, 3)), rng.integers(0, 2, (120, 3))
    y[rng.random(y.shape) < 0.1] = -1
    for metric in (M.nll, M.calibration_error):
        a = M.bootstrap_ci(metric, z, y, "multilabel", ignore_index=-1, resampling="poisson", n_resamples=30)
        b = M.bootstrap_ci(metric, _chunk(z, 1 + 120 // 7), y, "multilabel", ignore_index=-1, n_resamples=30)
        np.testing.assert_allclose(b, a, rtol=1e-10)
    zb, yb = z[:, 0], y[:, 0].clip(0, 1)
    a = M.bootstrap_ci(M.accuracy, zb, yb, "binary", resampling="poisson", n_resamples=30, seed=2)
    b = M.bootstrap_ci(M.accuracy, _chunk(zb, 1), yb, "binary", n_resamples=30, seed=2)
    np.testing.assert_allclose(b, a, rtol=1e-10)
    # a metric without a per-row state re-runs on the rows repeated by the same counts: the same numbers
    a = M.bootstrap_ci(M.nll, zb, yb, "binary", resampling="poisson", n_resamples=20, seed=2)
    c = M.bootstrap_ci(lambda *s, **k: M.nll(*s, **k), zb, yb, "binary", resampling="poisson", n_resamples=20, seed=2)
    np.testing.assert_allclose(c, a, rtol=1e-10)
    assert M.bootstrap_ci(M.roc_auc, zb, yb, "binary", resampling="poisson", n_resamples=20).low <= 1


def test_bootstrap_refusals_name_the_fix():
    rng = np.random.default_rng(5)
    z, y = rng.normal(size=100), rng.integers(0, 2, 100)
    zd = _chunk(z, 30)
    for metric, kw in ((M.roc_auc, {}), (M.calibration_error, {"binning": "equal_mass"}),
                       (M.precision_recall_f1, {"key": "f1", "average": None}), (lambda *a, **k: 0.0, {})):
        with pytest.raises(ValueError, match="bounded sample in memory"):
            M.bootstrap_ci(metric, zd, y, "binary", **kw)
    with pytest.raises(ValueError, match="method='percentile'"):
        M.bootstrap_ci(M.nll, zd, y, "binary", method="bca")
    with pytest.raises(ValueError, match="resampling='poisson'"):
        M.bootstrap_ci(M.nll, zd, y, "binary", resampling="multinomial")
    with pytest.raises(ValueError, match="unknown resampling"):
        M.bootstrap_ci(M.nll, z, y, "binary", resampling="jackknife")


# ------------------------------------------------------------------------- one real cluster
def test_on_a_local_cluster(dask_client):
    z, y, w = _data("multiclass", 300, weights=True)
    kw = dict(binning="equal_mass", n_bins=8, sample_weight=w)
    a, b = M.reliability(z, y, "multiclass", **kw), M.reliability(_chunk(z, 41), y, "multiclass", **kw)
    np.testing.assert_array_equal(a.bin_edges, b.bin_edges)
    np.testing.assert_array_equal(a.count, b.count)
    common = dict(n_resamples=30, seed=1, sample_weight=w)
    np.testing.assert_allclose(M.bootstrap_ci(M.nll, _chunk(z, 41), y, "multiclass", **common),
                               M.bootstrap_ci(M.nll, z, y, "multiclass", resampling="poisson", **common), rtol=1e-10)


@pytest.mark.parametrize("metric,kw", BOOT[:4], ids=lambda v: getattr(v, "__name__", str(v)))
def test_paired_poisson_bootstrap_dask_equals_memory(metric, kw):
    """Both score sets get the same per-row counts: the paired difference on Dask is the in-memory one."""
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(300, 4)) * 3, rng.integers(0, 4, 300)
    y[rng.random(300) < 0.1] = -100
    common = dict(n_resamples=40, seed=5, ignore_index=-100, **kw)
    mem = M.paired_bootstrap(metric, z, z / 3, y, "multiclass", resampling="poisson", **common)
    dsk = M.paired_bootstrap(metric, _chunk(z, 37), _chunk(z / 3, 37), y, "multiclass", **common)
    np.testing.assert_allclose(dsk, mem, rtol=1e-10, atol=1e-12)
    a = M.bootstrap_ci(metric, z, y, "multiclass", resampling="poisson", **common)
    b = M.bootstrap_ci(metric, z / 3, y, "multiclass", resampling="poisson", **common)
    assert mem.estimate == pytest.approx(b.estimate - a.estimate)
    with pytest.raises(ValueError, match="method='percentile'"):
        M.paired_bootstrap(metric, _chunk(z, 37), _chunk(z, 37), y, "multiclass", method="bca", **common)
    with pytest.raises(ValueError, match="same samples"):
        M.paired_bootstrap(metric, _chunk(z, 37), _chunk(z[:200], 37), y, "multiclass", **common)


# ------------------------------------------------------------------------- confusion counts, nothing kept
@pytest.mark.parametrize("task,opts", CASES)
@pytest.mark.parametrize("normalize", [None, "true", "all"])
def test_confusion_matrix_matches_memory(task, opts, normalize):
    z, y, w = _data(task, 90, ignore=opts.get("ignore"), weights=opts.get("weights", False))
    kw = dict(ignore_index=opts.get("ignore"), sample_weight=w, normalize=normalize)
    if task != "multiclass":
        kw["threshold"] = 0.4
    a = M.confusion_matrix(z, y, task, **kw)
    b = M.confusion_matrix(_chunk(z, 13), y, task, **kw)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    if a.dtype == np.int64:
        np.testing.assert_array_equal(b, a)  # counts: exact
    with pytest.raises(ValueError, match="unknown normalize 'rows'"):
        M.confusion_matrix(_chunk(z, 13), y, task, normalize="rows")


@pytest.mark.parametrize("metric", [M.nll, M.brier, M.accuracy, M.calibration_error, M.precision_recall_f1,
                                    M.confusion_matrix, M.roc_auc, M.average_precision, M.smooth_calibration_error,
                                    lambda *a, **k: M.calibration_error(*a, binning="equal_mass", **k)])
def test_every_multilabel_entry_masked_is_the_memory_error(metric):
    """The rows are all there but no entry is kept: the in-memory error, never a number (the binned ECE
    on Dask said 0.0 before)."""
    z = np.random.default_rng(3).normal(size=(12, 3))
    y = np.full((12, 3), -1)
    with pytest.raises(ValueError) as a:
        metric(z, y, "multilabel", ignore_index=-1)
    with pytest.raises(ValueError) as b:
        metric(_chunk(z, 5), y, "multilabel", ignore_index=-1)
    assert str(b.value) == str(a.value) and "every label equals ignore_index=-1" in str(a.value)


@pytest.mark.parametrize("metric", [M.nll, M.brier, M.accuracy, M.calibration_error, M.confusion_matrix,
                                    M.roc_auc, M.smooth_calibration_error,
                                    lambda *a, **k: M.calibration_error(*a, binning="equal_mass", **k)])
def test_a_nan_is_named_by_its_row_in_the_whole_array(metric, part_error):
    """A block's message names the row in the whole array (row 33 in the fourth block, not its row 3), and
    the rows it was counted in."""
    z, y, _ = _data("multiclass", 50)
    z[33, 1] = np.nan
    with pytest.raises(ValueError) as a:
        metric(z, y, "multiclass")
    with pytest.raises(ValueError) as b:
        metric(_chunk(z, 10), y, "multiclass")
    assert "(first: [33])" in str(a.value)
    part_error(b.value, a.value, (30, 39))


def test_the_accumulator_names_a_row_by_its_number_in_the_stream(part_error):
    """Chunk by chunk or block by block, the NaN of row 33 is named row 33 (its chunk's row 3 before)."""
    z, y, _ = _data("multiclass", 50)
    z[33, 1] = np.nan
    with pytest.raises(ValueError) as a:
        M.summary(z, y, "multiclass")
    acc = M.MetricAccumulator("multiclass")
    for i in range(0, 30, 10):
        acc.update(z[i:i + 10], y[i:i + 10])
    assert acc.rows_seen == 30
    with pytest.raises(ValueError) as b:
        acc.update(z[30:40], y[30:40])
    assert acc.rows_seen == 30  # a refused chunk is not counted
    with pytest.raises(ValueError) as c:
        M.MetricAccumulator("multiclass").update(_chunk(z, 10), y)
    acc = M.MetricAccumulator("multiclass").update(_chunk(z[:20], 10), y[:20])  # a Dask chunk after another
    with pytest.raises(ValueError) as d:
        acc.update(_chunk(z[20:], 10), y[20:])
    assert "(first: [33])" in str(a.value)
    for got in (b, c, d):
        part_error(got.value, a.value, (30, 39))
    # classes first, and batched rows: the rows are counted from the shape without the class axis
    acc = M.MetricAccumulator("multiclass", axis=0).update(np.moveaxis(z[:20], 1, 0), y[:20])
    assert acc.rows_seen == 20
    assert M.MetricAccumulator("multiclass").update(z[:20].reshape(4, 5, 4), y[:20].reshape(4, 5)).rows_seen == 20
