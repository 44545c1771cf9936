"""Sample weights through Calibrator.fit / fit_calibrator / tune_thresholds: a weight w counts a sample w times,
so integer weights must give what repeating the rows gives (the reference), weight 0 what dropping them gives;
the thresholds, method='auto' and every array library's weights."""

import numpy as np
import pytest

from sigmax.calibration import Calibrator, fit_calibrator, tune_thresholds

torch = pytest.importorskip("torch")


def _binary(n=400, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) * 2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-0.6 * z))).astype(int)
    return z, y, rng.integers(0, 4, size=n)


def _multilabel(n=300, c=3, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 2
    y = (rng.uniform(size=(n, c)) < 1 / (1 + np.exp(-0.7 * z))).astype(int)
    return z, y, rng.integers(0, 4, size=n)


def test_thresholds_with_integer_weights_are_those_of_repeated_rows():
    p = np.random.default_rng(2).uniform(size=200)
    y = (np.random.default_rng(3).uniform(size=200) < p).astype(int)
    w = np.random.default_rng(4).integers(0, 4, size=200)
    for kw in ({}, {"target_precision": 0.8}, {"target_recall": 0.7}):
        got = tune_thresholds(p, y, "binary", space="probs", sample_weight=w, **kw)
        want = tune_thresholds(np.repeat(p, w), np.repeat(y, w), "binary", space="probs", **kw)
        assert float(got) == float(want), kw
    # equal weights: the unweighted thresholds; fractional weights scale away
    assert float(tune_thresholds(p, y, "binary", space="probs", sample_weight=np.full(200, 0.3))) == \
        float(tune_thresholds(p, y, "binary", space="probs"))


def test_multilabel_thresholds_with_weights_and_ignored_entries():
    z, y, w = _multilabel()
    y = y.copy()
    y[::7, 1] = -100
    got = tune_thresholds(z, y, "multilabel", ignore_index=-100, sample_weight=w)
    want = tune_thresholds(np.repeat(z, w, axis=0), np.repeat(y, w, axis=0), "multilabel", ignore_index=-100)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibrator_fit_with_weights_equals_repeated_rows(method):
    z, y, w = _binary()
    got = Calibrator().fit(z, y, "binary", method=method, tune="f1", sample_weight=w)
    want = Calibrator().fit(np.repeat(z, w), np.repeat(y, w), "binary", method=method, tune="f1")
    grid = np.linspace(-6, 6, 41)
    np.testing.assert_allclose(got.predict_proba(grid), want.predict_proba(grid), rtol=1e-5, atol=1e-7)
    assert float(got.thresholds) == pytest.approx(float(want.thresholds), abs=1e-9)
    # the weights matter, and weights of another library are taken as NumPy's
    plain = Calibrator().fit(z, y, "binary", method=method, tune="f1")
    assert np.abs(plain.predict_proba(grid) - got.predict_proba(grid)).max() > 1e-4
    tw = Calibrator().fit(z, y, "binary", method=method, tune="f1", sample_weight=torch.tensor(w))
    np.testing.assert_allclose(tw.predict_proba(grid), got.predict_proba(grid), rtol=1e-12)


def test_auto_selection_and_fit_calibrator_take_the_weights():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(600, 4)) * 3
    y = np.argmax(z + rng.gumbel(size=z.shape) * 2, axis=1)
    w = rng.uniform(0.5, 2.0, size=600)
    cal = fit_calibrator(z, y, "multiclass", method="auto", sample_weight=w)
    assert cal.selection_["chosen"] in cal.selection_["cv_nll"]
    plain = fit_calibrator(z, y, "multiclass", method="auto")
    assert cal.selection_["cv_nll"] != plain.selection_["cv_nll"]  # the comparison itself is weighted
    # all weights equal: the unweighted selection, to rounding
    same = fit_calibrator(z, y, "multiclass", method="auto", sample_weight=np.full(600, 2.0))
    for m, v in plain.selection_["cv_nll"].items():
        assert same.selection_["cv_nll"][m] == pytest.approx(v, rel=1e-6)


@pytest.mark.parametrize("bad,match", [(-1.0, "negative|non-negative|>= 0"), (np.nan, "NaN|finite")])
def test_bad_weights_are_the_one_line_errors(bad, match):
    z, y, w = _binary(50)
    w = w.astype(float)
    w[7] = bad
    with pytest.raises(ValueError, match=match):
        fit_calibrator(z, y, "binary", method="temperature", sample_weight=w)
    with pytest.raises(ValueError, match="one weight per|shape"):
        fit_calibrator(z, y, "binary", method="temperature", sample_weight=w[:10])
