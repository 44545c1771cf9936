"""The smooth ECE on Dask arrays: grids of every possible size per block, added in a tree, equal to memory."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import sigmax.metrics as M  # noqa: E402
import sigmax._metrics_smooth as S  # noqa: E402
from sigmax._dask_metrics_smooth import FIRST_STATE, STATE_SIZE, block_state  # noqa: E402
from sigmax._metrics_terms import prepare  # noqa: E402
from sigmax._tolerance import tolerance  # noqa: E402

# the grids are sums over up to 1e5 entries, added block by block here and row by row in memory: a few
# hundred roundings of the float64 sums apart, never more
TOL = tolerance("float64", factor=64)


def _data(task, n, c=4, seed=0, ignore=None, weights=False):
    rng = np.random.default_rng(seed)
    shape = (n,) if task == "binary" else (n, c)
    z = rng.normal(size=shape) * 2
    y = rng.integers(0, 2, shape) if task != "multiclass" else rng.integers(0, c, n)
    if ignore is not None:
        y[rng.random(y.shape) < 0.2] = ignore
    w = np.where(rng.random(n) < 0.2, 0.0, rng.exponential(size=n)) if weights else None
    return z, y, w


def _uneven(n, sizes):
    """Row chunks of the given sizes, repeated, the last one cut to fit ``n``."""
    out, i = [], 0
    while sum(out) < n:
        out.append(min(sizes[i % len(sizes)], n - sum(out)))
        i += 1
    return tuple(out)


def _chunk(x, rows):
    return None if x is None else da.from_array(x, chunks=(rows,) + x.shape[1:])


def _assert_same(got, ref):
    (value, sigma), (ref_value, ref_sigma) = got, ref
    assert sigma == ref_sigma  # the same bisection path
    np.testing.assert_allclose(value, ref_value, **TOL)


OPTIONS = [{}, {"weights": True}, {"ignore": -100}, {"ignore": -1, "weights": True}]


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("sizes", [(37, 5, 120), (1, 2, 300)], ids=["uneven", "tiny-then-rest"])
@pytest.mark.parametrize("chunked", ["scores", "all"])
def test_equal_to_memory(task, opts, sizes, chunked):
    n = 301
    z, y, w = _data(task, n, ignore=opts.get("ignore"), weights=opts.get("weights", False))
    rows = _uneven(n, sizes)
    kw = dict(ignore_index=opts.get("ignore"), return_bandwidth=True)
    ref = M.smooth_calibration_error(z, y, task, sample_weight=w, **kw)
    yd, wd = (_chunk(y, rows), _chunk(w, rows)) if chunked == "all" else (y, w)
    _assert_same(M.smooth_calibration_error(_chunk(z, rows), yd, task, sample_weight=wd, **kw), ref)


def test_labels_or_weights_alone_on_dask_and_the_class_axis():
    """Only the labels (or the weights) chunked; a class axis in the middle, named with axis= or dim=."""
    z, y, w = _data("multiclass", 250, weights=True, seed=3)
    ref = M.smooth_calibration_error(z, y, "multiclass", sample_weight=w, return_bandwidth=True)
    _assert_same(M.smooth_calibration_error(z, _chunk(y, 40), "multiclass", sample_weight=w, return_bandwidth=True),
                 ref)
    _assert_same(M.smooth_calibration_error(z, y, "multiclass", sample_weight=_chunk(w, 33), return_bandwidth=True),
                 ref)
    z3 = np.moveaxis(np.random.default_rng(1).normal(size=(60, 5, 3)) * 2, 2, 1)  # (60, 3 classes, 5)
    y3 = np.random.default_rng(2).integers(0, 3, (60, 5))
    ref3 = M.smooth_calibration_error(z3, y3, "multiclass", axis=1, return_bandwidth=True)
    zd = da.from_array(z3, chunks=(7, 2, 5))  # chunked along the class axis too: rechunked whole
    _assert_same(M.smooth_calibration_error(zd, y3, "multiclass", axis=1, return_bandwidth=True), ref3)
    _assert_same(M.smooth_calibration_error(zd, _chunk(y3, 11), "multiclass", dim=1, return_bandwidth=True), ref3)


def test_value_alone_and_weights_of_any_scale():
    z, y, w = _data("binary", 400, weights=True, seed=5)
    value = M.smooth_calibration_error(_chunk(z, 64), y, "binary", sample_weight=w)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, M.smooth_calibration_error(z, y, "binary", sample_weight=w), **TOL)
    # weights are rescaled to mean 1 over the kept entries: scaling them changes nothing
    np.testing.assert_allclose(M.smooth_calibration_error(_chunk(z, 64), y, "binary", sample_weight=w * 1e6),
                               value, **TOL)


def test_a_small_bandwidth_uses_the_big_grids():
    """A well-calibrated large sample: sigma < 0.01, so grids larger than the 1001-point floor are used."""
    rng = np.random.default_rng(0)
    n = 50_000
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    ref = M.smooth_calibration_error(p, y, "binary", space="probs", return_bandwidth=True)
    assert ref[1] < 0.01 and S.grid_size(ref[1]) > 1001
    _assert_same(M.smooth_calibration_error(_chunk(p, 7001), _chunk(y, 7001), "binary", space="probs",
                                            return_bandwidth=True), ref)


def test_the_smallest_bandwidth_the_bisection_reaches():
    """Predictions equal to the outcomes: smECE 0 at every bandwidth, so the bisection goes down to its
    last step (below 1e-3 it stops evaluating) and ends on 2/1024, the largest grid (5121 points)."""
    y = np.random.default_rng(1).integers(0, 2, 900)
    ref = M.smooth_calibration_error(y.astype(float), y, "binary", space="probs", return_bandwidth=True)
    assert ref == (0.0, 2 / 1024) and S.grid_size(ref[1]) == max(S.grid_sizes())
    assert M.smooth_calibration_error(_chunk(y.astype(float), 100), y, "binary", space="probs",
                                      return_bandwidth=True) == ref


def test_the_bisection_asks_only_for_the_enumerated_sizes():
    """Whatever the data, every grid the estimator asks for is one the Dask blocks build."""
    rng = np.random.default_rng(2)
    asked = set()
    for n, power in [(30, 1.0), (500, 3.0), (5000, 1.0), (20_000, 1.0), (3000, 0.2)]:
        p = rng.uniform(size=n)
        y = (rng.uniform(size=n) < p ** power).astype(float)
        grids = S.memory_grids(p, y, np.ones(n))

        def recording(e, grids=grids):
            asked.add(e)
            return grids(e)

        assert S.smooth_ece_from_grids(recording) == S.smooth_ece(p, y)
    assert asked <= set(S.grid_sizes()) and len(asked) > 1


def test_the_state_per_block_has_a_fixed_size():
    assert STATE_SIZE == 2 * sum(S.grid_sizes()) == 41_524  # the sizes the docstrings state
    assert FIRST_STATE == 2 * 1001 and S.grid_size(0.01) == S.grid_size(1.0) == 1001  # every sigma >= 0.01
    for n in (1, 10, 10_000):
        z, y, w = _data("multilabel", n, weights=True, seed=n)
        d = prepare(z, y, "multilabel", "logits", sample_weight=w, need_log=False)
        grids, kept, wsum, n_valid = block_state(d)
        assert grids.shape == (STATE_SIZE,) and grids.dtype == np.float64
        assert kept == np.count_nonzero(w > 0) * 4 and n_valid == 4 * n
        # each weight grid carries the whole weight (linear spreading loses no mass)
        at = 0
        for e in S.grid_sizes():
            np.testing.assert_allclose(grids[at + e:at + 2 * e].sum(), wsum, **TOL)
            at += 2 * e


def _error(fn, *args, **kw) -> str:
    with pytest.raises((ValueError, TypeError)) as info:
        fn(*args, **kw)
    return f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("case", ["zero-weights", "all-ignored-binary", "all-ignored-multiclass",
                                  "all-masked-multilabel", "bad-return_bandwidth", "probs-out-of-range",
                                  "labels-shape", "no-labels"])
def test_errors_are_the_in_memory_ones(case):
    z, y, _ = _data("binary", 40, seed=4)
    task, w, kw = "binary", None, {}
    if case == "zero-weights":
        w = np.zeros(40)
    elif case == "all-ignored-binary":
        y, kw = np.full(40, -100), {"ignore_index": -100}
    elif case == "all-ignored-multiclass":
        z, task, kw = np.ones((40, 3)), "multiclass", {"ignore_index": -1}
        y = np.full(40, -1)
    elif case == "all-masked-multilabel":
        z, task, kw = np.ones((40, 3)), "multilabel", {"ignore_index": -1}
        y = np.full((40, 3), -1)
    elif case == "bad-return_bandwidth":
        kw = {"return_bandwidth": "yes"}
    elif case == "probs-out-of-range":
        z, kw = np.linspace(0, 1.5, 40), {"space": "probs"}
    elif case == "labels-shape":
        y = y[:30]
    else:
        y = None
    want = _error(M.smooth_calibration_error, z, y, task, sample_weight=w, **kw)
    got = [_error(M.smooth_calibration_error, _chunk(z, 9), y, task, sample_weight=w, **kw)]
    if y is not None and y.shape[0] == 40:
        got.append(_error(M.smooth_calibration_error, _chunk(z, 9), _chunk(y, 9), task, sample_weight=_chunk(w, 9),
                          **kw))
    if case == "probs-out-of-range":  # validated block by block, as every Dask metric: the count and the range
        def cut(text):  # in the message are the first bad block's; the rest of it is the in-memory text
            return text.split(" but ")[0] + text.split(":")[-1]
        got, want = [cut(g) for g in got], cut(want)
    assert got == [want] * len(got)


def test_on_a_local_cluster(dask_client):
    """Blocks spread on worker processes, the states added there: the in-memory value and bandwidth."""
    for task in ("multiclass", "multilabel"):
        z, y, w = _data(task, 2000, weights=True, ignore=-1, seed=7)
        rows = _uneven(2000, (300, 170))
        ref = M.smooth_calibration_error(z, y, task, sample_weight=w, ignore_index=-1, return_bandwidth=True)
        _assert_same(M.smooth_calibration_error(_chunk(z, rows), _chunk(y, rows), task, sample_weight=_chunk(w, rows),
                                                ignore_index=-1, return_bandwidth=True), ref)
