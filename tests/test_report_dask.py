"""The calibration report over Dask arrays: per-block pass states merged in row order on the workers equal the
streamed report (split, samples, metrics); the merge is order-preserving; progress follows the blocks."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from sigmax._dask import delayed_blocks, tree_reduce  # noqa: E402
from sigmax.calibration import fit_calibrator  # noqa: E402
from sigmax.report import DaskSource, calibration_report, report_plan, split_mask  # noqa: E402
from sigmax.report._passes import PassConfig, PassState  # noqa: E402

N = 1400
BLOCKS = (333, 1, 500, 77, 489)  # uneven, unlike the streamed chunks of 250 rows
KW = {"chunk_rows": 250, "n_resamples": 20, "show_progress": False, "max_fit_rows": 300, "max_interval_rows": 400}


def _data(task, n=N, seed=1, c=4):
    rng = np.random.default_rng(seed)
    if task == "binary":
        y = rng.integers(0, 2, n)
        return rng.normal(size=n) + 2.5 * (y - 0.5) * 3, y
    if task == "multiclass":
        y = rng.integers(0, c, n)
        s = rng.normal(size=(n, c)) * 3
        s[np.arange(n), y] += 4.0
        return s, y
    y = rng.integers(0, 2, (n, c))
    return rng.normal(size=(n, c)) * 3 + 4.0 * (y - 0.5), y


def _dask(x, blocks=BLOCKS):
    return da.from_array(x, chunks=(blocks,) + x.shape[1:])


def _close(a, b, path="report"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), path
    else:
        assert a == b, path


def _same(streamed, dasked):
    a, b = streamed.to_dict(), dasked.to_dict()
    # the last note describes the plan and where the rows were; the rest is the same report
    assert b["notes"][-1].endswith("row blocks, each reduced where it lives).")
    for d in (a, b):
        d["notes"] = d["notes"][:-1]
        d.pop("streamed")
    _close(a, b)
    np.testing.assert_array_equal(streamed.before.histogram.groups["right"], dasked.before.histogram.groups["right"])


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_dask_report_equals_the_streamed_report(task):
    s, y = _data(task)
    a = calibration_report(s, y, task, **KW)
    b = calibration_report(_dask(s), _dask(y), task, **KW)
    assert b.streamed and 0 < b.n_fit <= 300 and b.n_interval_rows == 400  # the interval sample cut at its cap
    _same(a, b)


def test_dask_report_with_a_given_calibrator_and_numpy_labels():
    s, y = _data("multiclass")
    cal = fit_calibrator(*_data("multiclass", 500, seed=9), "multiclass", method="vector")
    a = calibration_report(s, y, "multiclass", calibrator=cal, **KW)
    b = calibration_report(_dask(s), y, "multiclass", calibrator=cal, **KW)
    assert b.n_eval == N and b.n_fit == 0
    _same(a, b)


def test_dask_report_with_conformal_sets():
    s, y = _data("multiclass")
    a = calibration_report(s, y, "multiclass", conformal=0.1, **KW)
    b = calibration_report(_dask(s), _dask(y, (700, 700)), "multiclass", conformal=0.1, **KW)
    assert b.conformal["n_eval"] == b.n_eval and b.conformal["coverage"] > 0.5
    _same(a, b)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_dask_report_with_ignore_index(task):
    s, y = _data(task)
    y = y.copy()
    if task == "multilabel":
        y[100:130, 1] = -100  # entries ignored only in some blocks
    else:
        y[::17] = -100
    a = calibration_report(s, y, task, **KW)
    b = calibration_report(_dask(s), _dask(y), task, **KW)
    assert b.n_ignored == a.n_ignored > 0
    _same(a, b)


def test_dask_report_with_a_dask_calibration_set_and_the_class_axis_first():
    s, y = _data("multiclass")
    fs, fy = _data("multiclass", 600, seed=4)
    kw = dict(KW, check=False)
    a = calibration_report(s.T, y, "multiclass", axis=0, fit=(fs.T, fy), **kw)
    b = calibration_report(da.from_array(s.T, chunks=(-1, BLOCKS)), _dask(y), "multiclass", axis=0,
                           fit=(da.from_array(fs.T, chunks=(-1, (100, 500))), fy), **kw)
    assert b.n_fit == 300 and b.n_eval == N  # a uniform sample of the calibration set
    _same(a, b)


def _states(task, cfg, s, y, cuts):
    out = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        st = PassState(cfg)
        st.add(lo, s[lo:hi], y[lo:hi])
        out.append(st)
    return out


def _summary(st):
    fs = st.fit_sample()
    sample = st.sample.arrays(-100) if st.sample is not None else None
    return {"rows": st.rows, "n_fit_rows": st.n_fit_rows, "n_fit": st.n_fit, "n_ignored": st.n_ignored,
            "fit": None if fs is None else [x.tolist() for x in fs],
            "sample": None if sample is None else [x.tolist() for x in sample],
            "metrics": {k: float(v) for k, v in st.before.metrics.compute().items()},
            "hist": st.before.plots.hist_right.tolist(), "cw": st.before.plots.cw_conf.round(9).tolist(),
            "after": {k: float(v) for k, v in st.after.metrics.compute().items()},
            "coverage": None if st.covered is None else (st.covered.n, st.covered.hits, st.covered.sizes)}


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_merging_consecutive_states_in_order_equals_adding_their_chunks_in_order(task):
    rng = np.random.default_rng(3)
    s, y = _data(task, 900)
    y = y.copy()
    y[rng.choice(900, 40, replace=False)] = -100
    cal = fit_calibrator(*_data(task, 400, seed=8), task)
    cfg = PassConfig(task, "logits", 1 if task == "binary" else 4, ignore=-100, frac=0.5, seed=2, collect=True,
                     keep=0.5, fit_cap=120, calibrator=cal, thresholds=getattr(cal, "thresholds", None),
                     sample_cap=150, sample_expected=400)
    chunks = np.unique(np.r_[0, rng.integers(1, 900, 12), 900])
    streamed = PassState(cfg)
    for lo, hi in zip(chunks[:-1], chunks[1:]):
        streamed.add(int(lo), s[lo:hi], y[lo:hi])
    want = _summary(streamed)
    assert want["n_fit"] == 120 and len(want["sample"][0]) == 150  # both caps bite
    for trial in range(3):  # the chunk list split into consecutive groups at random points, merged in order
        groups = np.unique(np.r_[0, rng.integers(1, len(chunks) - 1, 3), len(chunks) - 1])
        states = []
        for g0, g1 in zip(groups[:-1], groups[1:]):
            st = PassState(cfg)
            for lo, hi in zip(chunks[g0:g1], chunks[g0 + 1:g1 + 1]):
                st.add(int(lo), s[lo:hi], y[lo:hi])
            states.append(st)
        merged = states[0]
        for st in states[1:]:
            merged.merge(st)
        _close(want, _summary(merged), f"trial {trial}")


def test_an_empty_state_is_the_identity_of_the_merge():
    s, y = _data("multiclass", 300)
    cfg = PassConfig("multiclass", "logits", 4, frac=0.5, collect=True, keep=1.0, fit_cap=1000, sample_cap=50,
                     sample_expected=300)
    a = _states("multiclass", cfg, s, y, [0, 300])[0]
    b = PassState(cfg).merge(_states("multiclass", cfg, s, y, [0, 300])[0]).merge(PassState(cfg))
    assert a.rows == b.rows == 300
    np.testing.assert_array_equal(a.fit_rows(), b.fit_rows())
    assert a.before.metrics.compute() == b.before.metrics.compute()


def test_tree_reduce_tells_progress_of_every_block_once():
    x = da.arange(1000, chunks=(1, 99, 400, 500))
    done = []
    assert int(tree_reduce(lambda b: b.sum(), delayed_blocks(x), progress=done.append)) == 499500
    assert sorted(done) == [0, 1, 2, 3]


def test_the_report_bar_advances_by_the_rows_of_every_block_of_both_passes(monkeypatch):
    from sigmax.report import _pipeline

    s, y = _data("binary")
    bars = []
    real = _pipeline._progress

    def spy(*args, **kwargs):
        bars.append(real(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(_pipeline, "_progress", spy)
    calibration_report(_dask(s), _dask(y), "binary", **KW)
    assert bars[0].total == bars[0].done == 2 * N and bars[0].description == "report (dask)"
    advanced = []
    src = DaskSource(_dask(s), y, "binary")
    src.reduce(PassConfig("binary", "logits", 2), advanced.append)
    assert sorted(advanced) == sorted(BLOCKS)


def test_nan_in_the_fitting_sample_is_named_by_its_row_in_the_data():
    s, y = _data("multiclass")
    fitting = np.flatnonzero(split_mask(0, N, 0.5, 0) < 0.5)
    row = int(fitting[fitting > 900][0])  # a fitting row far from the sample's start
    s = s.copy()
    s[row, 2] = np.nan
    for scores in (s, _dask(s)):
        with pytest.raises(ValueError, match=rf"first: \[{row}\]"):
            calibration_report(scores, y, "multiclass", n_resamples=0, show_progress=False, check=False)


def test_dask_input_errors_are_one_line():
    s, y = _data("multiclass")
    with pytest.raises(ValueError, match="labels have 1,399 rows but scores have 1,400"):
        calibration_report(_dask(s), y[:-1], "multiclass")
    unknown = _dask(s)[_dask(s)[:, 0] > -100]  # row blocks of unknown size
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        calibration_report(unknown, y, "multiclass")
    with pytest.raises(ValueError, match="axis"):
        calibration_report(_dask(s), y, "multiclass", axis=5)


def test_report_plan_gives_the_block_size_of_the_report():
    s, y = _data("multiclass")
    for method, fitting in (("temperature", True), ("none", False)):
        plan = report_plan("256M", scores_per_row=4, n_rows=N, fitting=fitting, n_resamples=20)
        rep = calibration_report(_dask(s), _dask(y), "multiclass", method=method, memory_budget="256M",
                                 n_resamples=20, show_progress=False, check=False)
        assert rep.memory.chunk_rows == plan.chunk_rows == (N if fitting else N * 2 // 3)


@pytest.mark.slow
def test_on_a_local_cluster_the_report_equals_the_streamed_one_and_progress_follows_the_workers(dask_client):
    s, y = _data("multilabel")
    a = calibration_report(s, y, "multilabel", conformal=None, **KW)
    done = []
    x = da.arange(1000, chunks=250)
    assert int(tree_reduce(np.sum, delayed_blocks(x), progress=done.append)) == 499500
    assert sorted(done) == [0, 1, 2, 3]
    b = calibration_report(_dask(s), _dask(y), "multilabel", **KW)
    _same(a, b)
    row = int(np.flatnonzero(split_mask(0, N, 0.5, 0) >= 0.5)[-1])  # an evaluated row, in the last block
    bad = s.copy()
    bad[row, 0] = np.nan
    with pytest.raises(ValueError, match=rf"NaN .*first: \[{row}\]"):  # a worker's error reaches the client as is
        calibration_report(_dask(bad), _dask(y), "multilabel", **KW)


def test_no_rows_is_the_one_message_of_every_source():
    """Empty arrays and empty Dask arrays are refused before any pass, as empty files are."""
    for scores in (np.zeros((0, 4)), da.zeros((0, 4), chunks=(1, 4))):
        with pytest.raises(ValueError, match="^scores hold no rows; metrics need at least one sample$"):
            calibration_report(scores, np.zeros(0, dtype=int), "multiclass")



def test_light_states_and_fit_heads_give_the_merged_fitting_sample():
    """What the cluster path does (the tree over light states, then each block's head of its fitting sample
    attached in row order) is exactly the order-preserving merge of the full states."""
    from sigmax.report._passes import PassState, combine_states, fit_takes

    s, y = _data("multiclass")
    for cap in (0, 1, 150, 300, 10_000):
        config = PassConfig("multiclass", "logits", 4, frac=0.5, seed=2, collect=True, keep=0.5, fit_cap=cap)
        states = []
        for start, stop in zip(np.cumsum((0,) + BLOCKS[:-1]), np.cumsum(BLOCKS)):
            st = PassState(config)
            st.add(int(start), s[start:stop], y[start:stop])
            states.append(st)
        full = functools.reduce(combine_states, states)
        light = functools.reduce(combine_states, [st.light() for st in states])
        assert light.n_fit == 0 and all(st.n_fit == len(st.fit_rows()) for st in states)  # light leaves them be
        takes = fit_takes([st.n_fit for st in states], cap)
        got = light.attach_fit([st.fit_head(k) for st, k in zip(states, takes) if k])
        assert got.n_fit == full.n_fit == min(cap, sum(st.n_fit for st in states))
        a, b = full.fit_sample(), got.fit_sample()
        assert (a is None) == (b is None)
        if a is not None:
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
        assert got.before.view().metrics == full.before.view().metrics
