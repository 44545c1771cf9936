"""Calibration fits on Dask arrays (issue 15): exact from per-block sums, or on a documented bounded sample."""

import re
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from sigmax.calibration import (BetaCalibration, DirichletCalibration, HistogramBinning,  # noqa: E402
                                IsotonicCalibration, PlattScaling, TemperatureScaling, VectorScaling,
                                fit_calibrator)

RNG = np.random.default_rng(7)
N, C = 900, 4
CHUNKS = (250, 1, 300, 149, 200)  # uneven, one block of a single row


def _data(task, n=N):
    z = RNG.normal(size=(n, C)) * 2.5 + np.array([0.0, 0.5, -0.5, 0.2])
    if task == "multiclass":
        return z, np.argmax(z / 2.5 + RNG.gumbel(size=z.shape), axis=1)
    if task == "binary":
        z = z[:, 0]
        return z, (RNG.uniform(size=n) < 1 / (1 + np.exp(-z / 2))).astype(int)
    y = (RNG.uniform(size=z.shape) < 1 / (1 + np.exp(-z / 2))).astype(int)
    y[:60, 1] = -100  # some entries left out by ignore_index
    return z, y


def _chunked(x, chunks=CHUNKS):
    return da.from_array(x, chunks=(chunks,) + x.shape[1:])


def _params(s):
    return {k: np.asarray(v, dtype=object if isinstance(v, list) else float) for k, v in s._param_dict().items()}


def _close(a, b, rtol=1e-9, atol=1e-9):
    """Equal to the solvers' tolerance (gtol 1e-10): the sums are added in another order than in memory."""
    pa, pb = a._param_dict(), b._param_dict()
    assert pa.keys() == pb.keys()
    for k in pa:
        va, vb = pa[k], pb[k]
        if isinstance(va, list) and va and isinstance(va[0], list):
            for x, y in zip(va, vb):
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        else:
            np.testing.assert_allclose(va, vb, rtol=rtol, atol=atol)
    for k in ("nll_before", "nll_after"):
        assert a.info_[k] == pytest.approx(b.info_[k], rel=1e-12)
    assert a.info_["n_samples"] == b.info_["n_samples"]


EXACT = [
    (lambda: VectorScaling(), "multiclass"),
    (lambda: VectorScaling(l2=0.0), "multiclass"),
    (lambda: PlattScaling("binary"), "binary"),
    (lambda: PlattScaling("binary", prior_correction=False), "binary"),
    (lambda: PlattScaling("multilabel"), "multilabel"),
    (lambda: TemperatureScaling("multilabel", per_class=True), "multilabel"),
    (lambda: HistogramBinning("multiclass"), "multiclass"),
    (lambda: HistogramBinning("binary", n_bins=7), "binary"),
    (lambda: HistogramBinning("multilabel", n_bins=15), "multilabel"),
    (lambda: HistogramBinning("multiclass", binning="equal_mass"), "multiclass"),
    (lambda: HistogramBinning("multilabel", n_bins=7, binning="equal_mass"), "multilabel"),
    (lambda: BetaCalibration("binary"), "binary"),
    (lambda: BetaCalibration("multilabel"), "multilabel"),
]


@pytest.mark.parametrize("make,task", EXACT)
def test_exact_fits_equal_in_memory(make, task, monkeypatch):
    z, y = _data(task)
    ii = -100 if task == "multilabel" else None
    with warnings.catch_warnings(record=True) as mem_w:
        warnings.simplefilter("always")
        ref = make().fit(z, y, ignore_index=ii)

    def refuse(*a, **k):
        raise AssertionError("the scores were pulled into this process")

    monkeypatch.setattr(da.Array, "compute", refuse)
    monkeypatch.setattr(da.Array, "__array__", refuse)
    with warnings.catch_warnings(record=True) as dask_w:
        warnings.simplefilter("always")
        got = make().fit(_chunked(z), y, ignore_index=ii)
    _close(ref, got)
    assert [str(w.message) for w in mem_w] == [str(w.message) for w in dask_w]  # the same warnings
    if isinstance(ref, HistogramBinning):  # sums of counts: bit for bit
        assert all(np.array_equal(a, b) for a, b in zip(ref.bin_values_, got.bin_values_))
        assert all(np.array_equal(a, b) for a, b in zip(ref.bin_edges_, got.bin_edges_))  # order statistics
        assert ref.info_["empty_bins"] == got.info_["empty_bins"]


def test_ignore_index_rows_and_probability_space():
    z, y = _data("binary")
    y = y.copy()
    y[::7] = -1
    p = 1 / (1 + np.exp(-z))
    ref = PlattScaling("binary").fit(p, y, space="probs", ignore_index=-1)
    got = PlattScaling("binary").fit(_chunked(p), _chunked(y), space="probs", ignore_index=-1)
    _close(ref, got)
    assert got.space_ == "probs"
    zc, yc = _data("multiclass")
    yc = yc.copy()
    yc[:100] = -100  # the first block is entirely ignored
    _close(VectorScaling().fit(zc, yc, ignore_index=-100), VectorScaling().fit(_chunked(zc), yc, ignore_index=-100))


def test_warnings_match_in_memory():
    z, y = _data("binary", n=40)
    y = np.r_[np.ones(3, int), np.zeros(37, int)]  # 3 positives: Platt's few-examples warning
    for make in (lambda: PlattScaling("binary"), lambda: VectorScaling()):
        if isinstance(make(), VectorScaling):
            z, y = _data("multiclass", n=40)  # 40 < 30 * 2C: the small-sample warning
        with pytest.warns(UserWarning) as mem:
            ref = make().fit(z, y)
        with pytest.warns(UserWarning) as got_w:
            got = make().fit(_chunked(z, (10, 25, 5)), y)
        assert [str(w.message) for w in mem] == [str(w.message) for w in got_w]
        _close(ref, got)


@pytest.mark.parametrize("case", ["label out of range", "all ignored", "shape", "probs"])
def test_errors_are_the_in_memory_ones(case, part_error):
    z, y = _data("multiclass")
    kw = {}
    if case == "label out of range":
        y = y.copy()
        y[500] = C
    elif case == "all ignored":
        y, kw = np.full(N, -100), {"ignore_index": -100}
    elif case == "shape":
        y = y[:-1]
    else:
        kw = {"space": "probs"}  # logits declared as probabilities
    for make in (VectorScaling, lambda: IsotonicCalibration("multiclass")):
        with pytest.raises(ValueError) as mem:
            make().fit(z, y, **kw)
        with pytest.raises(ValueError) as got:
            make().fit(_chunked(z), y, **kw)
        if case == "probs":  # the message of the first block found wrong: its counts are that block's
            assert re.sub(r"[-\d.]+", "#", str(got.value)) == re.sub(r"[-\d.]+", "#", str(mem.value))
        elif case == "label out of range":  # found in a block: the message says which rows it counted
            part_error(got.value, mem.value)
        else:
            assert str(got.value) == str(mem.value)
    with pytest.raises(ValueError, match="max_rows must be a positive integer"):
        IsotonicCalibration("multiclass").fit(_chunked(z), _data("multiclass")[1], max_rows=0)


@pytest.mark.parametrize("make,task", [
    (lambda: IsotonicCalibration("binary"), "binary"),
    (lambda: IsotonicCalibration("multilabel"), "multilabel"),
    (lambda: DirichletCalibration(reg=1e-3), "multiclass"),
])
def test_sampled_fits_say_so_and_do_not_depend_on_chunks(make, task):
    z, y = _data(task)
    ii = -100 if task == "multilabel" else None
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        whole = make().fit(_chunked(z), y, ignore_index=ii)  # max_rows above N: every row, no note
    assert not any("uniform sample" in str(x.message) for x in w)
    _close(make().fit(z, y, ignore_index=ii), whole)
    with pytest.warns(UserWarning, match=rf"fitted on a uniform sample of 300 of {N} rows"):
        a = make().fit(_chunked(z), y, ignore_index=ii, max_rows=300)
    with pytest.warns(UserWarning, match="uniform sample of 300"):
        b = make().fit(_chunked(z, (N // 2, N - N // 2)), y, ignore_index=ii, max_rows=300)
    _close(a, b, rtol=0, atol=0)  # the same rows, whatever the chunking
    assert a.info_["n_samples"] == 300


def test_fit_calibrator_routes_and_tunes():
    z, y = _data("multilabel")
    ref = fit_calibrator(z, y, "multilabel", method="platt", tune="f1", ignore_index=-100)
    got = fit_calibrator(_chunked(z), y, "multilabel", method="platt", tune="f1", ignore_index=-100)
    _close(ref.scaler, got.scaler)
    np.testing.assert_allclose(ref.thresholds, got.thresholds, rtol=1e-9)  # the sample is every row
    p = got.predict_proba(_chunked(z))
    assert isinstance(p, da.Array)  # transform stays lazy
    np.testing.assert_allclose(p.compute(), ref.predict_proba(z), rtol=1e-9)
    zb, yb = _data("binary")
    ref = fit_calibrator(zb, yb, "binary", method="none", target_precision=0.8)
    got = fit_calibrator(_chunked(zb), yb, "binary", method="none", target_precision=0.8)
    assert got.scaler is None and got.tune == ref.tune and float(got.thresholds) == float(ref.thresholds)
    notes = []
    fit_calibrator(_chunked(zb), yb, "binary", method="temperature", tune="f1", max_rows=200, notes=notes)
    assert notes == [f"Calibration warning: the decision thresholds were tuned on a uniform sample of 200 of {N} "
                     "rows of the Dask array (its fit is not a sum of per-block partials; raise max_rows to use "
                     "more)"]
    with pytest.raises(ValueError, match="at most one of target_precision"):
        fit_calibrator(_chunked(zb), yb, "binary", target_precision=0.8, target_recall=0.5)


def test_auto_selects_on_the_sample_then_fits_exactly():
    z, y = _data("multiclass")
    ref = fit_calibrator(z, y, "multiclass", method="auto")
    got = fit_calibrator(_chunked(z), y, "multiclass", method="auto")
    assert got.selection_ == ref.selection_  # every row fits in the default sample
    _close(ref.scaler, got.scaler)
    notes = []
    cal = fit_calibrator(_chunked(z), y, "multiclass", method="auto", max_rows=400, notes=notes)
    assert cal.selection_["n_samples"] == 400
    assert "selected on a uniform sample of 400 of 900 rows" in notes[0]
    assert any("method='auto' (its cross-validated selection) was fitted on a uniform sample" in n for n in notes)
    if cal.method in ("temperature", "vector"):  # exact on every row
        assert cal.scaler.info_["n_samples"] == N


@pytest.mark.slow
def test_on_a_local_cluster(dask_client):
    z, y = _data("multiclass")
    _close(VectorScaling().fit(z, y), VectorScaling().fit(_chunked(z), y))
    _close(HistogramBinning("multiclass").fit(z, y), HistogramBinning("multiclass").fit(_chunked(z), y))
    zl, yl = _data("multilabel")
    _close(PlattScaling("multilabel").fit(zl, yl, ignore_index=-100),
           PlattScaling("multilabel").fit(_chunked(zl), yl, ignore_index=-100))
    with pytest.warns(UserWarning, match="uniform sample of 250"):
        a = IsotonicCalibration("multiclass").fit(_chunked(z), y, max_rows=250)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = IsotonicCalibration("multiclass").fit(_chunked(z, (N,)), y, max_rows=250)
    _close(a, b, rtol=0, atol=0)
