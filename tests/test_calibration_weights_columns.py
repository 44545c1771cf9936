"""Per-row sample weights in beta, Dirichlet, isotonic and histogram-binning calibration (in memory).

The reference for a weighted fit is the unweighted fit on the rows repeated ``w_i`` times
(``np.repeat``); isotonic regression is also checked against scikit-learn's ``sample_weight``.
"""

import warnings

import numpy as np
import pytest

from sigmax.calibration import BetaCalibration, DirichletCalibration, HistogramBinning, IsotonicCalibration
from sigmax.calibration._columns import cv_folds

ZERO_SUM = "sample_weight sums to 0 over the rows kept"


def _data(rng, task, n=160, c=3):
    """Miscalibrated scores of ``task`` (multilabel with some entries ignored by ``-1``)."""
    if task == "binary":
        z = rng.normal(size=n) * 2
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-0.5 * z))).astype(int)
    elif task == "multiclass":
        z = rng.normal(size=(n, c)) * 2
        y = np.argmax(0.5 * z + rng.gumbel(size=(n, c)), axis=1)
    else:
        z = rng.normal(size=(n, c)) * 2
        y = (rng.uniform(size=(n, c)) < 1 / (1 + np.exp(-0.5 * z))).astype(int)
        y[rng.uniform(size=(n, c)) < 0.1] = -1
    return z, y


def _fit(make, z, y, task, w=None):
    kw = {"ignore_index": -1} if task == "multilabel" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample warnings are not under test here
        return make().fit(z, y, sample_weight=w, **kw)


def _probe(rng, task, c=3):
    return rng.normal(size=400) * 3 if task == "binary" else rng.normal(size=(400, c)) * 3


METHODS = {
    "beta": (lambda task: (lambda: BetaCalibration(task)), ("binary", "multiclass", "multilabel")),
    "isotonic": (lambda task: (lambda: IsotonicCalibration(task)), ("binary", "multiclass", "multilabel")),
    "histogram_width": (lambda task: (lambda: HistogramBinning(task, n_bins=8)),
                        ("binary", "multiclass", "multilabel")),
    "histogram_mass": (lambda task: (lambda: HistogramBinning(task, n_bins=8, binning="equal_mass")),
                       ("binary", "multiclass", "multilabel")),
    "dirichlet": (lambda task: (lambda: DirichletCalibration(reg=0.01)), ("multiclass",)),
}
CASES = [(m, t) for m, (_, tasks) in METHODS.items() for t in tasks]


def _params(est):
    out = []
    for name in est._params:
        v = getattr(est, name + "_")
        out.extend(np.atleast_1d(np.asarray(a, dtype=np.float64)).ravel() for a in (v if isinstance(v, list) else [v]))
    return np.concatenate(out)


@pytest.mark.parametrize("method,task", CASES)
def test_integer_weights_equal_repeated_rows(rng, method, task):
    z, y = _data(rng, task)
    w = rng.integers(0, 4, size=z.shape[0])  # 0..3: a weight of 0 drops the row
    make = METHODS[method][0](task)
    weighted = _fit(make, z, y, task, w.astype(np.float64))
    repeated = _fit(make, np.repeat(z, w, axis=0), np.repeat(y, w, axis=0), task)
    exact = method not in ("beta", "dirichlet")  # counting fits are exact; Newton fits to the solver's tolerance
    tol = {"rtol": 1e-12, "atol": 1e-12} if exact else {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(_params(weighted), _params(repeated), **tol)
    zp = _probe(rng, task)
    np.testing.assert_allclose(weighted.transform(zp), repeated.transform(zp), **tol)
    assert weighted.info_["nll_after"] == pytest.approx(repeated.info_["nll_after"], rel=1e-9)


@pytest.mark.parametrize("method,task", CASES)
def test_equal_weights_equal_unweighted(rng, method, task):
    z, y = _data(rng, task)
    make = METHODS[method][0](task)
    plain = _fit(make, z, y, task)
    # equal-mass edges count a weight as repeated rows, and repeating every row c times moves
    # np.array_split's edges too: only c = 1 is the unweighted binning there; the rest is scale-free
    c = 1.0 if method == "histogram_mass" else 2.5
    weighted = _fit(make, z, y, task, np.full(z.shape[0], c))
    np.testing.assert_allclose(_params(weighted), _params(plain), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("method,task", CASES)
def test_zero_weight_sum_is_an_error(rng, method, task):
    z, y = _data(rng, task, n=40)
    with pytest.raises(ValueError, match=ZERO_SUM):
        _fit(METHODS[method][0](task), z, y, task, np.zeros(z.shape[0]))


def test_multilabel_zero_sum_over_kept_entries_is_an_error(rng):
    z, y = _data(rng, "multilabel", n=40)
    y[:20] = -1  # the first half of the rows has no kept entry: only their weight is positive
    w = np.r_[np.ones(20), np.zeros(20)]
    with pytest.raises(ValueError, match=ZERO_SUM):
        _fit(lambda: BetaCalibration("multilabel"), z, y, "multilabel", w)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_isotonic_matches_sklearn_with_sample_weight(rng, task):
    from sklearn.isotonic import IsotonicRegression

    z, y = _data(rng, task)
    w = rng.uniform(0, 2, size=z.shape[0])
    w[::7] = 0.0
    iso = _fit(lambda: IsotonicCalibration(task), z, y, task, w)
    zp = _probe(rng, task)
    zz, zpp = (z[:, None], zp[:, None]) if task == "binary" else (z, zp)
    yy = y[:, None] if task == "binary" else y
    p = np.exp(zz) / np.exp(zz).sum(axis=1, keepdims=True) if task == "multiclass" else 1 / (1 + np.exp(-zz))
    pp = np.exp(zpp) / np.exp(zpp).sum(axis=1, keepdims=True) if task == "multiclass" else 1 / (1 + np.exp(-zpp))
    got = iso.calibrated_columns(zpp)
    for c in range(zz.shape[1]):
        t = (y == c).astype(float) if task == "multiclass" else yy[:, c].astype(float)
        keep = np.ones(len(t), bool) if task != "multilabel" else y[:, c] != -1
        ref = IsotonicRegression(out_of_bounds="clip").fit(p[keep, c], t[keep], sample_weight=w[keep])
        np.testing.assert_allclose(iso.x_thresholds_[c], ref.X_thresholds_, rtol=1e-12)
        np.testing.assert_allclose(iso.y_thresholds_[c], ref.y_thresholds_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[:, c], ref.predict(pp[:, c]), rtol=1e-10, atol=1e-12)


def test_histogram_weighted_bin_means(rng):
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(int)
    w = rng.uniform(0.5, 3.0, size=200)
    hb = HistogramBinning("binary", n_bins=5).fit(p, y, space="probs", sample_weight=w)
    idx = np.clip(np.searchsorted(np.linspace(0, 1, 6), p, side="left") - 1, 0, 4)
    ref = [np.sum(w[idx == b] * y[idx == b]) / np.sum(w[idx == b]) for b in range(5)]
    np.testing.assert_allclose(hb.bin_values_[0], ref, rtol=1e-9)


def test_histogram_equal_mass_small_total_weight_warns(rng):
    z, y = _data(rng, "binary", n=128)
    with pytest.warns(UserWarning, match="equal-mass binning counts a weight"):
        hb = HistogramBinning("binary", n_bins=10, binning="equal_mass").fit(z, y, sample_weight=np.full(128, 1 / 64))
    # a total weight of 2 (exactly, in binary): two bins, as two rows would give, cut after the first 64
    s = np.sort(1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(hb.bin_edges_[0], [0.0, 0.5 * (s[63] + s[64]), 1.0], rtol=1e-15)


def test_dirichlet_cross_validation_uses_weighted_means(rng):
    z, y = _data(rng, "multiclass", n=150)
    w = rng.uniform(0.2, 3.0, size=150)
    dc = DirichletCalibration(grid=(1.0, 0.01), folds=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = DirichletCalibration(grid=(1.0, 0.01), folds=3).fit(z, y, sample_weight=w)
    losses = dc.fold_losses(z, y, cv_folds(y, "multiclass", 3, 0), w)
    ref = [float(np.sum(w * losses[lam]) / np.sum(w)) for lam in (1.0, 0.01)]
    np.testing.assert_allclose(fitted.info_["cv_nll"], ref, rtol=1e-10)
    assert not np.allclose(ref, [float(np.mean(losses[lam])) for lam in (1.0, 0.01)], rtol=1e-6)
    # a weight of 0 is the row dropped, the folds included
    w0 = w.copy()
    w0[::5] = 0.0
    keep = w0 > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = DirichletCalibration(grid=(1.0, 0.01), folds=3).fit(z, y, sample_weight=w0)
        b = DirichletCalibration(grid=(1.0, 0.01), folds=3).fit(z[keep], y[keep], sample_weight=w0[keep])
    np.testing.assert_allclose(a.info_["cv_nll"], b.info_["cv_nll"], rtol=1e-10)
    np.testing.assert_allclose(a.weight_, b.weight_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: BetaCalibration("multilabel"), lambda: IsotonicCalibration("multilabel")])
def test_a_label_left_without_weighted_entries_is_an_error(rng, make):
    z, y = _data(rng, "multilabel", n=40)
    y[:20, 1] = -1  # label 1 is kept only on rows of weight 0
    with pytest.raises(ValueError, match="label 1 has no calibration entry"):
        _fit(make, z, y, "multilabel", np.r_[np.ones(20), np.zeros(20)])
