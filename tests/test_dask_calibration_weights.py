"""Sample weights in calibration fits on Dask arrays: weighted per-block sums, weights carried by the sample.

References: the in-memory weighted ``mean_nll``; for integer weights, the *unweighted* Dask sums on the rows
repeated ``w_i`` times (``np.repeat``), which tests the weighted sums independently of the in-memory fits.
"""

import re

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from sigmax._dask_calibration import (DaskLogits, PlattSums, TemperatureSums, VectorSums,  # noqa: E402
                                      sample_of)
from sigmax.calibration import (BetaCalibration, HistogramBinning, PlattScaling, TemperatureScaling,  # noqa: E402
                                VectorScaling)
from sigmax.calibration._logits import fit_logits  # noqa: E402
from sigmax.calibration._scalers import mean_nll  # noqa: E402

N, C = 400, 3
CHUNKS = (120, 1, 150, 129)  # uneven, one block of a single row (row 120)
II = -100


def _data(task, seed=3, n=N):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, C)) * 2.0 + np.array([0.0, 0.4, -0.3])
    if task == "multiclass":
        y = np.argmax(z / 2 + rng.gumbel(size=z.shape), axis=1)
    elif task == "binary":
        z = z[:, 0]
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z / 2))).astype(int)
    else:
        y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z / 2))).astype(int)
        y[rng.uniform(size=y.shape) < 0.15] = II  # entries left out by ignore_index
    return z, y


def _chunked(x, chunks=CHUNKS):
    return da.from_array(x, chunks=(chunks,) + x.shape[1:])


def _int_weights(n, seed=5):
    w = np.random.default_rng(seed).integers(0, 4, size=n)
    w[:3] = [0, 3, 1]
    return w


CASES = [("binary", None), ("multiclass", None), ("multiclass", II), ("multilabel", II), ("multilabel", None)]


def _labels(task, ii, y):
    if ii is None and task == "multilabel":
        return np.where(y == II, 0, y)
    if ii is not None and task == "multiclass":
        y = y.copy()
        y[::9] = II  # whole rows left out
    return y


@pytest.mark.parametrize("task,ii", CASES)
def test_nll_equals_weighted_in_memory_mean_nll(task, ii):
    z, y = _data(task)
    y = _labels(task, ii, y)
    w = np.random.default_rng(1).uniform(0, 3, size=N)
    w[5:20] = 0.0
    wd = da.from_array(w, chunks=97)  # chunked unlike the scores: cut to their row blocks
    d = DaskLogits(_chunked(z), y, task, "logits", -1, ii, sample_weight=wd)
    zm, c = fit_logits(z, y, task, "logits", -1, ignore_index=ii, sample_weight=w)
    assert d.weighted and d.n == zm.shape[0] and d.n_positive == np.count_nonzero(c.weight)
    assert d.weight_sum == pytest.approx(float(np.sum(c.weight)), rel=1e-12)
    ref = mean_nll(zm, c.labels, task, c.valid, c.weight)
    assert d.nll() == pytest.approx(ref, rel=1e-12)
    assert d.nll() != pytest.approx(mean_nll(zm, c.labels, task, c.valid), rel=1e-6)  # the weights matter
    t = 1.7
    assert d.nll(lambda x: x / t) == pytest.approx(mean_nll(zm / t, c.labels, task, c.valid, c.weight), rel=1e-12)


def test_weights_of_rows_beyond_two_axes():
    """(M, K, C) scores: one weight per (M, K) row, given as (M, K) or flattened."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(60, 4, C))
    y = rng.integers(0, C, size=(60, 4))
    w = rng.uniform(0.1, 2.0, size=(60, 4))
    zm, c = fit_logits(z, y, "multiclass", "logits", -1, sample_weight=w)
    ref = mean_nll(zm, c.labels, "multiclass", None, c.weight)
    for given in (w, w.reshape(-1)):
        d = DaskLogits(da.from_array(z, chunks=(25, 4, C)), y, "multiclass", "logits", -1, None, sample_weight=given)
        assert d.n == 240 and d.nll() == pytest.approx(ref, rel=1e-12)


def _pair(task, ii, chunks=CHUNKS):
    """The weighted data and the unweighted data of its rows repeated w_i times, both on Dask."""
    z, y = _data(task, seed=11)
    y = _labels(task, ii, y)
    w = _int_weights(N)
    weighted = DaskLogits(_chunked(z, chunks), y, task, "logits", -1, ii, sample_weight=_chunked(w, 64))
    zr, yr = np.repeat(z, w, axis=0), np.repeat(y, w, axis=0)
    repeated = DaskLogits(_chunked(zr, 333), yr, task, "logits", -1, ii)
    return weighted, repeated


@pytest.mark.parametrize("task,ii,per_class", [("binary", None, False), ("multiclass", None, False),
                                              ("multiclass", II, False), ("multilabel", II, False),
                                              ("multilabel", II, True), ("multilabel", None, True)])
def test_temperature_sums_equal_repeated_rows(task, ii, per_class):
    weighted, repeated = _pair(task, ii)
    a = TemperatureSums(None, None, task, "logits", -1, None, per_class=per_class, data=weighted)
    b = TemperatureSums(None, None, task, "logits", -1, None, per_class=per_class, data=repeated)
    assert a.k == b.k and a.separable == b.separable
    assert a.n == weighted.n < b.n  # n stays the row count; the weight sum is the repeated rows' count
    assert weighted.weight_sum == repeated.n
    for bb in (0.3, 1.0, 2.2):
        g, h = a.deriv(np.full(a.k, bb))
        gr, hr = b.deriv(np.full(b.k, bb))
        np.testing.assert_allclose(g, gr, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(h, hr, rtol=1e-11, atol=1e-13)
    assert a.nll(1.3) == pytest.approx(b.nll(1.3), rel=1e-12)


def test_vector_sums_equal_repeated_rows():
    weighted, repeated = _pair("multiclass", II)
    x = np.random.default_rng(4).normal(size=2 * C) * 0.5 + np.r_[np.ones(C), np.zeros(C)]
    f, g = VectorSums(weighted).fg(x)
    fr, gr = VectorSums(repeated).fg(x)
    assert f == pytest.approx(fr, rel=1e-12)
    np.testing.assert_allclose(g, gr, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("task,ii", [("binary", None), ("multilabel", II), ("multilabel", None)])
@pytest.mark.parametrize("prior", [True, False])
def test_platt_sums_equal_repeated_rows(task, ii, prior):
    weighted, repeated = _pair(task, ii)
    a, b = PlattSums(weighted), PlattSums(repeated)
    np.testing.assert_allclose(a.npos, b.npos, rtol=1e-12)  # weighted counts: Platt's prior correction
    np.testing.assert_allclose(a.ncol, b.ncol, rtol=1e-12)
    a.targets(prior)
    b.targets(prior)
    k = np.size(a.npos)
    sa, sb = np.linspace(0.6, 1.4, k), np.linspace(-0.2, 0.3, k)
    for hessian in (False, True):
        for u, v in zip(a.derivs(sa, sb, hessian), b.derivs(sa, sb, hessian)):
            np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(a.loss(sa, sb), b.loss(sa, sb), rtol=1e-12)


def test_weights_do_not_depend_on_the_chunks():
    one, _ = _pair("multilabel", II, chunks=(N,))
    many, _ = _pair("multilabel", II)
    assert one.nll() == pytest.approx(many.nll(), rel=1e-12) and one.weight_sum == many.weight_sum
    for u, v in zip(PlattSums(one).npos, PlattSums(many).npos):
        assert u == pytest.approx(v, rel=1e-12)


def test_sample_carries_the_sampled_rows_weights():
    z, y = _data("multiclass")
    w = np.arange(N) + 0.5  # a row's weight names the row
    d = DaskLogits(_chunked(z), y, "multiclass", "logits", -1, None, sample_weight=da.from_array(w, chunks=77))
    plain = DaskLogits(_chunked(z), y, "multiclass", "logits", -1, None)
    with pytest.warns(UserWarning, match=f"uniform sample of 90 of {N} rows"):
        zs, ys, valid, ws = sample_of(d, 90, "X")
    rows = (ws - 0.5).astype(int)
    assert valid is None and ws.shape == (90,) and np.all(np.diff(rows) > 0)  # in row order
    np.testing.assert_array_equal(zs, z[rows])
    np.testing.assert_array_equal(ys, y[rows])
    zp, _, _, wp = plain.sample(90)
    assert wp is None
    np.testing.assert_array_equal(zp, zs)  # the weights are carried, not used to sample
    _, _, _, wall = sample_of(d, N, "X")  # every row: no warning, every weight
    np.testing.assert_array_equal(wall, w)


def test_sample_weights_after_ignore_index():
    z, y = _data("multilabel")
    w = np.arange(N) + 1.0
    d = DaskLogits(_chunked(z), y, "multilabel", "logits", -1, II, sample_weight=w)
    zs, ys, valid, ws = d.sample(N)
    np.testing.assert_array_equal(ws, w)
    np.testing.assert_array_equal(valid, y != II)
    z2, y2 = _data("multiclass")
    y2 = _labels("multiclass", II, y2)
    d2 = DaskLogits(_chunked(z2), y2, "multiclass", "logits", -1, II, sample_weight=w)
    np.testing.assert_array_equal(d2.sample(N)[3], w[y2 != II])  # the kept rows' weights


def test_negative_weight_is_the_in_memory_error_naming_the_rows():
    z, y = _data("binary")
    w = np.ones(N)
    w[200] = -1.0  # in the block of rows 121 to 270
    with pytest.raises(ValueError) as mem:
        fit_logits(z, y, "binary", "logits", -1, sample_weight=w)
    with pytest.raises(ValueError, match=re.escape(str(mem.value)) + r".*rows 121 to 270 of the input"):
        DaskLogits(_chunked(z), y, "binary", "logits", -1, None, sample_weight=da.from_array(w, chunks=50))
    w[200] = np.nan
    with pytest.raises(ValueError, match=r"sample_weight must be finite and >= 0.*rows 121 to 270"):
        DaskLogits(_chunked(z), y, "binary", "logits", -1, None, sample_weight=w)


def test_bad_weights_are_errors():
    z, y = _data("multilabel")
    with pytest.raises(ValueError, match="sample_weight sums to 0 over the rows kept"):
        DaskLogits(_chunked(z), y, "multilabel", "logits", -1, II, sample_weight=np.zeros(N))
    with pytest.raises(ValueError, match="sample_weight"):
        DaskLogits(_chunked(z), y, "multilabel", "logits", -1, II, sample_weight=np.ones(N - 1))


@pytest.mark.parametrize("make,task,ii", [(lambda: TemperatureScaling(), "multiclass", None),
                                          (lambda: TemperatureScaling("multilabel"), "multilabel", II),
                                          (lambda: VectorScaling(), "multiclass", II),
                                          (lambda: PlattScaling("binary"), "binary", None),
                                          (lambda: PlattScaling("multilabel"), "multilabel", II),
                                          (lambda: BetaCalibration("binary"), "binary", None),
                                          (lambda: BetaCalibration("multilabel"), "multilabel", II),
                                          (lambda: BetaCalibration("multiclass"), "multiclass", None),
                                          (lambda: HistogramBinning("binary"), "binary", None),
                                          (lambda: HistogramBinning("multilabel"), "multilabel", II),
                                          (lambda: HistogramBinning("binary", binning="equal_mass"), "binary",
                                           None)])
def test_weighted_fits_equal_in_memory(make, task, ii):
    z, y = _data(task, seed=8)
    y = _labels(task, ii, y)
    w = np.random.default_rng(9).uniform(0, 2, size=N)
    ref = make().fit(z, y, ignore_index=ii, sample_weight=w)
    # (weighted equal-mass histogram edges are weighted quantiles: fitted on the sample, every row here)
    got = make().fit(_chunked(z), y, ignore_index=ii, sample_weight=_chunked(w, 111))
    unweighted = make().fit(z, y, ignore_index=ii)
    for k, v in ref._param_dict().items():
        np.testing.assert_allclose(got._param_dict()[k], v, rtol=1e-8, atol=1e-9)
    assert not all(np.allclose(unweighted._param_dict()[k], v, rtol=1e-4) for k, v in ref._param_dict().items())
    assert got.info_["nll_before"] == pytest.approx(ref.info_["nll_before"], rel=1e-12)
    assert got.info_["nll_after"] == pytest.approx(ref.info_["nll_after"], rel=1e-9)
    assert got.info_["n_samples"] == ref.info_["n_samples"]


@pytest.mark.parametrize("make,task", [(lambda: TemperatureScaling(), "multiclass"),
                                       (lambda: VectorScaling(), "multiclass"),
                                       (lambda: PlattScaling("binary"), "binary")])
def test_small_sample_warnings_count_rows_of_positive_weight_as_in_memory(make, task):
    import warnings

    z, y = _data(task, seed=10)
    w = np.zeros(N)
    w[:12] = 1.0  # a dozen rows of weight: the small-sample warning, in memory and on Dask alike

    def said(scores, weights):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make().fit(scores, y, sample_weight=weights)
        return sorted(str(c.message) for c in caught if "calibration" in str(c.message) or "sample" in str(c.message))

    mem = said(z, w)
    assert mem and said(_chunked(z), _chunked(w, 111)) == mem
