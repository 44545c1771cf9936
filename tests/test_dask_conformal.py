"""Conformal sets on Dask arrays, randomized APS / RAPS included: equal to the in-memory results.

In memory, ``fit`` draws ``u = default_rng([seed, 0]).random(n_kept)`` over the rows kept after
``ignore_index`` and ``predict_sets`` draws ``default_rng([seed, 1]).random(N)`` over the rows given. On
Dask each block draws its own share of those sequences: PCG64 jumped ahead (``advance``) by the kept rows
(fit) or the rows (predict) before the block. Every comparison here is exact (``array_equal``): the
per-row arithmetic is the same, only the cut into blocks differs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from sigmax.conformal import ConformalClassifier, _draws  # noqa: E402

RNG = np.random.default_rng(2024)
N = 400
#: uneven row blocks: 1-row blocks, a block that is all ignored (rows 40..69, see _data), a large one
CHUNKS = (1, 1, 38, 30, 1, 7, 122, 1, 199)


def _data(task: str, c: int = 5, ignore: bool = True):
    z = RNG.normal(size=(N, c)) * 2
    if task == "binary":
        z = z[:, 0]
        y = (z + RNG.normal(size=N) * 2 > 0).astype(np.int64)
    else:
        y = np.argmax(z + RNG.gumbel(size=z.shape) * 2, axis=1)
    if ignore:
        y[::9] = -100  # ignored rows: the kept offsets differ from the row offsets
        y[40:70] = -100  # the block of rows 40..69 keeps no row
        y[0] = -100  # so does the first 1-row block
    return z, y


def _dask(x, chunks=CHUNKS):
    return da.from_array(x, chunks=(chunks,) + np.shape(x)[1:])


# ------------------------------------------------------------------------- the identity the blocks rely on
@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
@pytest.mark.parametrize("stream", [0, 1])
def test_pcg64_advance_is_the_tail_of_the_sequence(seed, stream):
    """``advance(k)`` then ``random(m)`` is draws ``k .. k+m-1`` of the whole sequence: offsets 0, odd, large."""
    full = np.random.default_rng([seed, stream]).random(2**20 + 64)
    for k0, m in [(0, 0), (0, 9), (1, 1), (3, 17), (12345, 100), (2**20 + 1, 63)]:
        g = np.random.default_rng([seed, stream])
        g.bit_generator.advance(k0)
        assert np.array_equal(g.random(m), full[k0:k0 + m])
        assert np.array_equal(_draws(seed, stream, k0, m), full[k0:k0 + m])
    # far beyond what can be drawn whole: jumps compose (k then 7 draws = k - 5 then the last 7 of 12)
    big = 10**15 + 1
    assert np.array_equal(_draws(seed, stream, big, 7), _draws(seed, stream, big - 5, 12)[5:])
    assert not np.array_equal(_draws(seed, stream, big, 7), full[:7])


# ------------------------------------------------------------------------- fit
@pytest.mark.parametrize("method", ["aps", "raps"])
@pytest.mark.parametrize("mondrian", [False, True])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("ignore", [False, True])
def test_randomized_fit_equals_in_memory(method, mondrian, task, ignore):
    z, y = _data(task, ignore=ignore)
    ii = -100 if ignore else None

    def cc():
        return ConformalClassifier(task, method=method, alpha=0.15, randomized=True, seed=11, mondrian=mondrian)

    a = cc().fit(z, y, ignore_index=ii)
    for chunks in (CHUNKS, (N,), (1,) * 20 + (N - 20,)):
        for labels in (y, _dask(y, chunks), _dask(y, (N // 2, N - N // 2))):  # NumPy, aligned, other chunks
            b = cc().fit(_dask(z, chunks), labels, ignore_index=ii)
            assert np.array_equal(a.quantile_, b.quantile_), (chunks, type(labels))
            assert np.array_equal(a.class_counts_, b.class_counts_) and a.n_calibration_ == b.n_calibration_
    # the draws matter: another seed gives another quantile (the comparison above can fail)
    other = ConformalClassifier(task, method=method, alpha=0.15, randomized=True, seed=12, mondrian=mondrian)
    assert not np.array_equal(other.fit(_dask(z), y, ignore_index=ii).quantile_, a.quantile_)


def test_randomized_fit_with_the_class_axis_first():
    z, y = _data("multiclass")
    a = ConformalClassifier(method="aps", randomized=True).fit(z, y, ignore_index=-100)
    b = ConformalClassifier(method="aps", randomized=True).fit(da.from_array(z.T, chunks=(5, 37)), y, axis=0,
                                                               ignore_index=-100)
    assert a.quantile_ == b.quantile_


def test_labels_that_change_between_passes_are_an_error():
    """The kept offsets come from a first pass over the labels: labels that compute differently the second
    time would shift every draw, so they are refused, not used."""
    z, y = _data("multiclass")
    calls = []

    def drifting(b):
        calls.append(1)
        return b if len(calls) <= len(CHUNKS) else np.full_like(b, -100)

    labels = _dask(y).map_blocks(drifting, dtype=y.dtype)
    with pytest.raises(ValueError, match="labels that compute the same every time"):
        ConformalClassifier(method="aps", randomized=True).fit(_dask(z), labels, ignore_index=-100)


# ------------------------------------------------------------------------- predict side
@pytest.mark.parametrize("method,randomized", [("lac", False), ("aps", False), ("aps", True), ("raps", True)])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("mondrian", [False, True])
def test_predict_sets_are_lazy_and_equal_in_memory(method, randomized, task, mondrian):
    z, y = _data(task, ignore=False)
    cc = ConformalClassifier(task, method=method, alpha=0.2, randomized=randomized, seed=3,
                             mondrian=mondrian).fit(z[:200], y[:200])
    want = cc.predict_sets(z)
    for chunks in (CHUNKS, (N,), (100,) * 4):
        got = cc.predict_sets(_dask(z, chunks))
        assert isinstance(got, da.Array) and got.dtype == np.bool_ and got.shape == want.shape
        assert np.array_equal(got.compute(), want), chunks
        every = cc.conformity_scores(_dask(z, chunks))
        assert isinstance(every, da.Array) and np.array_equal(every.compute(), cc.conformity_scores(z))
    if task == "binary":
        assert np.array_equal(cc.predict_sets(_dask(z[:, None])).compute(), want)  # one score column


def test_equal_blocks_do_not_share_draws():
    """Blocks of the same rows would give the same sets if each drew from position 0; they draw by row number."""
    z = np.tile(RNG.normal(size=(50, 4)), (4, 1))  # four copies of the same 50 rows
    cc = ConformalClassifier(method="aps", randomized=True, alpha=0.2).fit(z, np.argmax(z, axis=1))
    s = cc.conformity_scores(da.from_array(z, chunks=(50, 4))).compute()
    assert not np.array_equal(s[:50], s[50:100])
    assert np.array_equal(s, cc.conformity_scores(z))


def test_true_class_scores_on_dask_equal_in_memory():
    """conformity_scores with labels: the fit's draws (kept-row offsets), lazily, the blocks' kept rows as chunks."""
    z, y = _data("multiclass")
    cc = ConformalClassifier(method="raps", randomized=True, seed=5)
    got = cc.conformity_scores(_dask(z), _dask(y), ignore_index=-100)
    assert isinstance(got, da.Array) and sum(got.chunks[0]) == int((y != -100).sum())
    assert np.array_equal(got.compute(), cc.conformity_scores(z, y, ignore_index=-100))


def test_predict_sets_batched_rows_and_class_axis():
    z, y = _data("multiclass", ignore=False)
    cc = ConformalClassifier(method="aps", randomized=True, alpha=0.2).fit(z[:200], y[:200])
    x = z.reshape(20, 20, 5)
    want = cc.predict_sets(x)
    got = cc.predict_sets(da.from_array(x, chunks=(3, 7, 5)))
    assert got.shape == (20, 20, 5) and np.array_equal(got.compute(), want)
    t = np.moveaxis(x, -1, 0)  # classes first
    assert np.array_equal(cc.predict_sets(da.from_array(t, chunks=(5, 6, 20)), axis=0).compute(),
                          cc.predict_sets(t, axis=0))


def test_predict_sets_on_dask_nan_rows_and_wrong_classes(part_error):
    z, y = _data("multiclass", ignore=False)
    cc = ConformalClassifier(method="aps", randomized=True, alpha=0.2).fit(z[:200], y[:200])
    x = z.copy()
    x[[5, 250], 2] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cc.predict_sets(_dask(x)).compute()  # the threads scheduler: the blocks' warnings reach us
    assert got[[5, 250]].all()
    assert sum(int(str(w.message).split()[0]) for w in caught if "NaN" in str(w.message)) == 2
    with pytest.warns(UserWarning, match="NaN"):
        assert np.array_equal(got, cc.predict_sets(x))
    one = z.copy()
    one[250, 1] = np.nan
    with pytest.raises(ValueError) as a:
        cc.conformity_scores(one)
    with pytest.raises(ValueError) as b:
        cc.conformity_scores(_dask(one)).compute()
    assert "(first: [250])" in str(a.value)  # the row in the whole array, and the block it was counted in
    part_error(b.value, a.value)
    with pytest.raises(ValueError, match="fitted on 5"):
        cc.predict_sets(_dask(z[:, :4]))  # refused before any block runs


# ------------------------------------------------------------------------- a multi-process cluster
def test_randomized_on_a_local_cluster(dask_client):
    """Worker processes each draw their blocks' share: the same quantiles and sets as in memory."""
    z, y = _data("multiclass")
    for mondrian in (False, True):
        cc = ConformalClassifier(method="aps", alpha=0.2, randomized=True, seed=9, mondrian=mondrian)
        a = cc.fit(z, y, ignore_index=-100)
        b = ConformalClassifier(method="aps", alpha=0.2, randomized=True, seed=9, mondrian=mondrian).fit(
            _dask(z), _dask(y), ignore_index=-100)
        assert np.array_equal(a.quantile_, b.quantile_)
        assert np.array_equal(b.predict_sets(_dask(z)).compute(), a.predict_sets(z))
    assert len(dask_client.scheduler_info()["workers"]) == 2
