"""Dask arrays (issue 15): metrics, calibration, conformal quantiles and `sigmax check` over chunks.

Most checks run on Dask's thread scheduler (fast); the multi-process ones start a LocalCluster of two
worker processes of one thread each, on the loopback interface, and stop it.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import sigmax._dask_select as S  # noqa: E402
import sigmax.metrics as M  # noqa: E402
from sigmax.calibration import Calibrator, TemperatureScaling, VectorScaling  # noqa: E402
from sigmax.conformal import ConformalClassifier, conformal_quantile  # noqa: E402
from sigmax.io import ScoreFileError, check_shards, open_shards  # noqa: E402

RNG = np.random.default_rng(15)


def _data(task, n=1200, c=5):
    z = RNG.normal(size=(n, c)) * 2
    if task == "binary":
        z = z[:, 0]
        y = (z + RNG.normal(size=n) * 2 > 0).astype(np.int64)
    elif task == "multiclass":
        y = np.argmax(z + RNG.gumbel(size=z.shape) * 2, axis=1)
    else:
        y = (z + RNG.normal(size=z.shape) * 3 > 0).astype(np.int64)
    return z, y


def _chunked(x, rows=170):
    return da.from_array(x, chunks=(rows,) + np.shape(x)[1:])


def _close(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k])
        return
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, equal_nan=True)


# ------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("weighted", [False, True])
def test_metrics_equal_in_memory(task, weighted):
    z, y = _data(task)
    y = y.copy()
    if task != "multilabel":
        y[::23] = -100
    w = RNG.random(z.shape[0]) if weighted else None
    kw = dict(ignore_index=-100, sample_weight=w)
    Z, Y = _chunked(z), _chunked(y, 111)  # labels chunked differently: realigned to the scores' rows
    _close(M.summary(z, y, task, **kw), M.summary(Z, Y, task, **kw))
    _close(M.nll(z, y, task, **kw), M.nll(Z, y, task, **kw))
    _close(M.brier(z, y, task, **kw), M.brier(Z, Y, task, **kw))
    _close(M.accuracy(z, y, task, **kw), M.accuracy(Z, Y, task, **kw))
    for average in ("micro", "macro", "weighted", None):
        _close(M.precision_recall_f1(z, y, task, average=average, **kw),
               M.precision_recall_f1(Z, Y, task, average=average, **kw))
    for extra in ({}, {"norm": "max", "min_bin_count": 1}, {"norm": "l2", "debias": True}, {"mode": "classwise"},
                  {"mode": "classwise", "norm": "l2", "debias": True}):
        _close(M.calibration_error(z, y, task, **kw, **extra), M.calibration_error(Z, Y, task, **kw, **extra))
    r1, r2 = M.reliability(z, y, task, **kw), M.reliability(Z, Y, task, **kw)
    assert np.array_equal(r1.count, r2.count)
    _close(r1.confidence, r2.confidence)
    if task == "multiclass":
        _close(M.accuracy(z, y, task, top_k=3, **kw), M.accuracy(Z, Y, task, top_k=3, **kw))


def test_accumulator_mixes_dask_and_numpy_chunks():
    z, y = _data("multiclass")
    acc = M.MetricAccumulator("multiclass").update(_chunked(z[:700]), y[:700]).update(z[700:], y[700:])
    _close(M.summary(z, y, "multiclass"), acc.compute())
    assert acc.n == z.shape[0]


def test_class_axis_and_row_axes():
    z, y = _data("multiclass", n=240)
    z3 = np.moveaxis(z.reshape(12, 20, 5), -1, 1)  # (12, C, 20): classes on axis 1, rows over two axes
    y3 = y.reshape(12, 20)
    Z3 = da.from_array(z3, chunks=(5, 5, 20))
    _close(M.summary(z3, y3, "multiclass", axis=1), M.summary(Z3, y3, "multiclass", axis=1))


def test_errors_are_the_in_memory_ones():
    z, y = _data("multiclass", n=100)
    with pytest.raises(ValueError) as a:
        M.nll(z, y[:50], "multiclass")
    with pytest.raises(ValueError) as b:
        M.nll(_chunked(z), y[:50], "multiclass")
    assert str(a.value) == str(b.value)
    with pytest.raises(ValueError, match="every label equals"):
        M.nll(_chunked(z), np.full(100, -100), "multiclass", ignore_index=-100)
    em = M.calibration_error(_chunked(z), y, "multiclass", binning="equal_mass")  # exact: distributed selection
    assert em == pytest.approx(M.calibration_error(z, y, "multiclass", binning="equal_mass"), rel=1e-12, abs=1e-15)
    yb = (y > 2).astype(int)  # exact too: bucket by bucket (tests/test_dask_ranking.py)
    assert M.roc_auc(_chunked(z[:, 0]), yb, "binary") == pytest.approx(M.roc_auc(z[:, 0], yb, "binary"), rel=1e-12)
    with pytest.raises(ValueError, match="top_k"):
        M.accuracy(_chunked(z), y, "multiclass", top_k=9)


def test_lazy_transforms_keep_dtype_and_match():
    z, y = _data("multiclass")
    ts = TemperatureScaling().fit(z, y)
    z16 = z.astype(np.float16)
    out = ts.transform(_chunked(z16))
    assert isinstance(out, da.Array) and out.dtype == np.float16  # array_api_compat.dask has no float16
    np.testing.assert_array_equal(out.compute(), ts.transform(z16))
    _close(ts.predict_proba(z), ts.predict_proba(_chunked(z)).compute())
    cal = Calibrator().fit(z, y, "multiclass")
    pred = cal.predict(_chunked(z))
    assert isinstance(pred, da.Array) and pred.shape == (z.shape[0],)
    np.testing.assert_array_equal(pred.compute(), cal.predict(z))
    _close(cal.predict_proba(z), cal.predict_proba(_chunked(z)).compute())


# ------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("task,kw", [("multiclass", {}), ("binary", {}), ("multilabel", {}),
                                     ("multilabel", {"per_class": True})])
def test_temperature_fit_equals_in_memory(task, kw):
    z, y = _data(task)
    ii = None if task == "multilabel" else -100
    if ii is not None:
        y = y.copy()
        y[::17] = ii
    a = TemperatureScaling(task, **kw).fit(z, y, ignore_index=ii)
    b = TemperatureScaling(task, **kw).fit(_chunked(z), _chunked(y, 90), ignore_index=ii)
    _close(a.temperature_, b.temperature_)
    _close({k: a.info_[k] for k in ("nll_before", "nll_after", "n_samples", "n_iter")},
           {k: b.info_[k] for k in ("nll_before", "nll_after", "n_samples", "n_iter")})


def test_temperature_warns_as_in_memory():
    z = np.array([[3.0, 0.0], [0.0, 3.0]] * 10)
    y = np.array([0, 1] * 10)
    with warnings.catch_warnings(record=True) as a:
        warnings.simplefilter("always")
        TemperatureScaling().fit(z, y)
    with warnings.catch_warnings(record=True) as b:
        warnings.simplefilter("always")
        TemperatureScaling().fit(_chunked(z, 7), y)
    assert [str(w.message) for w in a] == [str(w.message) for w in b] and a


def test_what_needs_memory_names_the_fix():
    """Fits that are not exact by sums run on a bounded sample, said in a warning."""
    z, y = _data("multiclass", n=100)
    with pytest.warns(UserWarning, match="uniform sample of 40 of 100 rows"):
        Calibrator().fit(_chunked(z), y, "multiclass", method="isotonic", max_rows=40)
    v = VectorScaling().fit(_chunked(z), y)  # exact: per-block sums
    np.testing.assert_allclose(v.transform(z), VectorScaling().fit(z, y).transform(z), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------- conformal
@pytest.mark.parametrize("values", ["uniform", "ties", "tiny", "inf"])
def test_conformal_quantile_exact(values, monkeypatch):
    x = {"uniform": RNG.random(4000), "ties": np.round(RNG.random(4000), 2),
         "tiny": RNG.normal(size=4000) * 1e-300,
         "inf": np.r_[np.zeros(2000), -np.inf, np.inf, -0.0, RNG.random(50)]}[values]
    for gather in (S.GATHER, 3):  # 3: force every radix pass
        monkeypatch.setattr(S, "GATHER", gather)
        monkeypatch.setattr(S, "GATHER_FLOOR", min(gather, S.GATHER_FLOOR))
        for alpha in (0.001, 0.1, 0.5, 0.95):
            assert conformal_quantile(_chunked(x, 333), alpha) == conformal_quantile(x, alpha)
    assert conformal_quantile(_chunked(x[:3]), 0.1) == math.inf
    with pytest.raises(ValueError, match="NaN"):
        conformal_quantile(_chunked(np.r_[x, np.nan]), 0.1)


@pytest.mark.parametrize("method", ["lac", "aps", "raps"])
@pytest.mark.parametrize("mondrian", [False, True])
def test_conformal_fit_equals_in_memory(method, mondrian):
    z, y = _data("multiclass")
    y = y.copy()
    y[::19] = -100
    a = ConformalClassifier(method=method, mondrian=mondrian).fit(z, y, ignore_index=-100)
    b = ConformalClassifier(method=method, mondrian=mondrian).fit(_chunked(z), y, ignore_index=-100)
    assert np.array_equal(a.quantile_, b.quantile_) and np.array_equal(a.class_counts_, b.class_counts_)
    assert a.n_calibration_ == b.n_calibration_
    if method != "lac":  # randomized draws: each block's share of the in-memory sequence
        a = ConformalClassifier(method=method, mondrian=mondrian, randomized=True).fit(z, y, ignore_index=-100)
        b = ConformalClassifier(method=method, mondrian=mondrian, randomized=True).fit(_chunked(z), y,
                                                                                      ignore_index=-100)
        assert np.array_equal(a.quantile_, b.quantile_) and np.array_equal(a.class_counts_, b.class_counts_)


# ------------------------------------------------------------------------- shards and the CLI
def _shards(tmp_path, n=3, rows=200, c=4):
    z, y = _data("multiclass", n=n * rows, c=c)
    for i in range(n):
        np.save(tmp_path / f"s-{i}.npy", z[i * rows:(i + 1) * rows])
        np.save(tmp_path / f"y-{i}.npy", y[i * rows:(i + 1) * rows])
    return z, y


def test_open_shards_is_the_concatenation(tmp_path):
    z, y = _shards(tmp_path)
    Z = open_shards(str(tmp_path / "s-*.npy"), chunk_rows=150)
    assert Z.shape == z.shape and max(Z.chunks[0]) <= 150
    np.testing.assert_array_equal(Z.compute(), z)
    _close(M.summary(z, y, "multiclass"), M.summary(Z, open_shards(str(tmp_path / "y-*.npy")), "multiclass"))


def test_bad_shards_are_named_before_work(tmp_path):
    _shards(tmp_path)
    np.save(tmp_path / "s-3.npy", np.zeros((5, 7)))
    with pytest.raises(ScoreFileError, match="s-3.npy.*does not match"):
        check_shards(str(tmp_path / "s-*.npy"))
    (tmp_path / "s-3.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ScoreFileError, match="s-3.npy"):
        open_shards(str(tmp_path / "s-*.npy"))
    with pytest.raises(ScoreFileError, match="no file matches"):
        check_shards(str(tmp_path / "q-*.npy"))


def test_cli_check_on_shards(tmp_path, capsys):
    from sigmax.cli import main

    _shards(tmp_path)
    code = main(["check", str(tmp_path / "s-*.npy"), str(tmp_path / "y-*.npy"), "--task", "multiclass",
                 "--chunk-rows", "128", "--json"])
    assert code == 0 and '"findings": []' in capsys.readouterr().out
    np.save(tmp_path / "y-9.npy", np.zeros(7, dtype=np.int64))
    assert main(["check", str(tmp_path / "s-*.npy"), str(tmp_path / "y-*.npy"), "--task", "multiclass"]) == 2
    assert "y-*.npy hold 607 rows but SCORES" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing-*.npy"), "--dask", "local:1"]) == 2
    assert "missing-*.npy: no file matches" in capsys.readouterr().err


# ------------------------------------------------------------------------- a multi-process cluster
def test_on_a_local_cluster(dask_client, tmp_path):
    z, y = _shards(tmp_path, n=4, rows=300)
    Z = open_shards(str(tmp_path / "s-*.npy"), chunk_rows=100)
    Y = open_shards(str(tmp_path / "y-*.npy"), chunk_rows=100)
    _close(M.summary(z, y, "multiclass"), M.summary(Z, Y, "multiclass"))
    a, b = TemperatureScaling().fit(z, y), TemperatureScaling().fit(Z, Y)
    _close(a.temperature_, b.temperature_)
    assert ConformalClassifier().fit(z, y).quantile_ == ConformalClassifier().fit(Z, Y).quantile_
    assert len(dask_client.scheduler_info()["workers"]) == 2


def test_cli_check_with_dask_local(tmp_path, capsys):
    from sigmax.cli import main

    _shards(tmp_path)
    assert main(["check", str(tmp_path / "s-*.npy"), str(tmp_path / "y-*.npy"), "--task", "multiclass",
                 "--dask", "local:2"]) == 0
    assert "no findings" in capsys.readouterr().out


@pytest.mark.slow
def test_a_worker_killed_mid_computation_is_retried(dask_client):
    """A worker process killed while it computes: Dask reruns its tasks elsewhere; the numbers are the same."""
    import threading
    import time

    z, y = _data("multiclass", n=4000, c=8)
    expected = M.summary(z, y, "multiclass")

    def slow_identity(b):
        time.sleep(0.05)
        return b

    Z = _chunked(z, 100).map_blocks(slow_identity, dtype=z.dtype)  # 40 blocks of ~50 ms: time to kill one
    pids = list(dask_client.run(os.getpid).values())

    def kill():
        time.sleep(0.5)
        os.kill(pids[0], 9)

    t = threading.Thread(target=kill)
    t.start()
    got = M.summary(Z, _chunked(y, 100), "multiclass")
    t.join()
    _close(expected, got)
    dask_client.wait_for_workers(2, timeout=30)  # the nanny restarted the killed process
    assert pids[0] not in dask_client.run(os.getpid).values()


def test_interpret_and_the_core_functions_stay_lazy_on_dask():
    """softmax, to_probs and interpret take a Dask array (float16 too: the Dask namespace has no float16
    attribute) and return Dask arrays equal to the in-memory results."""
    import sigmax
    from sigmax.interpret import to_probs

    z = np.random.default_rng(3).normal(size=(120, 5))
    x = da.from_array(z, chunks=(40, 5))
    for got, want in [(sigmax.softmax(x), sigmax.softmax(z)), (to_probs(x, "multiclass"), to_probs(z, "multiclass")),
                      (sigmax.interpret(x, "multiclass").predictions, sigmax.interpret(z, "multiclass").predictions)]:
        assert isinstance(got, da.Array)
        np.testing.assert_allclose(got.compute(), want, rtol=1e-12)
    half = sigmax.softmax(da.from_array(z.astype(np.float16), chunks=(40, 5)))
    assert isinstance(half, da.Array) and half.dtype == np.float16


@pytest.mark.parametrize("fit", [lambda z, y: TemperatureScaling().fit(z, y),
                                 lambda z, y: Calibrator().fit(z, y, "multiclass", method="isotonic"),
                                 lambda z, y: ConformalClassifier(alpha=0.2).fit(z, y)])
def test_a_nan_in_a_fit_is_named_by_its_row_in_the_whole_array(fit, part_error):
    """Calibrators and conformal sets on Dask name the row in the whole array (they said the block's row)."""
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(50, 3)), rng.integers(0, 3, 50)
    z[33, 1] = np.nan
    with pytest.raises(ValueError) as a:
        fit(z, y)
    with pytest.raises(ValueError) as b:
        fit(_chunked(z, 10), y)
    assert "(first: [33])" in str(a.value)
    part_error(b.value, a.value, (30, 39))
