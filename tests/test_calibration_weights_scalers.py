"""Per-row sample weights in temperature, vector and Platt scaling: a weight counts a row that many times.

The reference for a weighted fit is the unweighted fit on the rows repeated (``np.repeat``); a weight of 0
is the row left out; Platt scaling's weighted fit is also checked against scikit-learn's weighted
``LogisticRegression`` on the prior-corrected targets.
"""

import warnings

import numpy as np
import pytest
from scipy.special import expit

import sigmax.calibration as C

IGNORE = -100

# (scaler class, task, constructor options): every task each scaler fits
CASES = [
    (C.TemperatureScaling, "binary", {}),
    (C.TemperatureScaling, "multiclass", {}),
    (C.TemperatureScaling, "multilabel", {}),
    (C.TemperatureScaling, "multilabel", {"per_class": True}),
    (C.VectorScaling, "multiclass", {}),
    (C.PlattScaling, "binary", {}),
    (C.PlattScaling, "binary", {"prior_correction": False}),
    (C.PlattScaling, "multilabel", {}),
    (C.PlattScaling, "multilabel", {"prior_correction": False}),
]
IDS = [f"{cls.__name__}-{task}{'-' + '-'.join(opts) if opts else ''}" for cls, task, opts in CASES]


def _data(task, ignore, n=240, seed=0):
    """Mis-calibrated scores and labels of ``task``; with ``ignore`` some labels (entries) are ``IGNORE``."""
    rng = np.random.default_rng(seed)
    if task == "binary":
        z = rng.normal(size=n) * 2
        y = (rng.uniform(size=n) < expit(z)).astype(int)
        z = z - 0.5
    elif task == "multiclass":
        z = rng.normal(size=(n, 3)) * 1.5
        y = np.argmax(z + rng.gumbel(size=(n, 3)), axis=1)
        z = z + [0.0, 0.7, 0.0]
    else:
        z = rng.normal(size=(n, 3)) * 2
        y = (rng.uniform(size=(n, 3)) < expit(z)).astype(int)
        z = z + [0.0, -0.5, 0.5]
    # the first half over-confident by 1, the second by 3: a fit weighting the halves unequally differs
    z = z * np.where(np.arange(n) < n // 2, 1.0, 3.0).reshape((n,) + (1,) * (z.ndim - 1))
    if ignore:
        y = np.where(rng.uniform(size=y.shape) < 0.1, IGNORE, y)
    return z, y


def _fit(cls, task, opts, z, y, ignore, w=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small-sample notes are not what is tested here
        return cls(task, **opts).fit(z, y, ignore_index=IGNORE if ignore else None, sample_weight=w)


def _params(s):
    if isinstance(s, C.TemperatureScaling):
        return np.atleast_1d(s.temperature_)
    return np.concatenate([np.atleast_1d(s.weight_), np.atleast_1d(s.bias_)])


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("cls,task,opts", CASES, ids=IDS)
def test_integer_weights_equal_repeated_rows(cls, task, opts, ignore):
    z, y = _data(task, ignore)
    n = z.shape[0]
    # 0..3 (some rows left out), the first half's weights 0..1: the weighted fit leans to the second half
    w = np.random.default_rng(1).integers(0, 4, size=n) // np.where(np.arange(n) < n // 2, 2, 1)
    weighted = _fit(cls, task, opts, z, y, ignore, w.astype(np.float64))
    repeated = _fit(cls, task, opts, np.repeat(z, w, axis=0), np.repeat(y, w, axis=0), ignore)
    plain = _fit(cls, task, opts, z, y, ignore)
    np.testing.assert_allclose(_params(weighted), _params(repeated), rtol=1e-6, atol=1e-9)
    assert not np.allclose(_params(weighted), _params(plain), rtol=1e-3)  # the weights did change the fit
    assert weighted.info_["nll_after"] == pytest.approx(repeated.info_["nll_after"], rel=1e-9)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("cls,task,opts", CASES, ids=IDS)
def test_zero_weight_equals_dropping_the_row(cls, task, opts, ignore):
    z, y = _data(task, ignore, seed=2)
    keep = np.random.default_rng(3).uniform(size=z.shape[0]) < 0.7
    weighted = _fit(cls, task, opts, z, y, ignore, keep.astype(np.float64))
    dropped = _fit(cls, task, opts, z[keep], y[keep], ignore)
    np.testing.assert_allclose(_params(weighted), _params(dropped), rtol=1e-6, atol=1e-9)


# Platt's prior correction counts positives and negatives as weighted sums (as repetition would), so a
# constant weight changes its targets: only the fits without it are invariant to a constant weight
SCALE_FREE = [case for case in CASES if not (case[0] is C.PlattScaling and case[2].get("prior_correction", True))]


@pytest.mark.parametrize("cls,task,opts", SCALE_FREE, ids=[IDS[CASES.index(c)] for c in SCALE_FREE])
def test_constant_weights_give_the_unweighted_fit(cls, task, opts):
    z, y = _data(task, ignore=task == "multilabel", seed=4)
    weighted = _fit(cls, task, opts, z, y, task == "multilabel", np.full(z.shape[0], 2.5))
    plain = _fit(cls, task, opts, z, y, task == "multilabel")
    np.testing.assert_allclose(_params(weighted), _params(plain), rtol=1e-6, atol=1e-9)


def test_platt_prior_correction_uses_weighted_counts():
    z, y = _data("binary", ignore=False, seed=5)
    twice = _fit(C.PlattScaling, "binary", {}, z, y, False, np.full(z.shape[0], 2.0))
    repeated = _fit(C.PlattScaling, "binary", {}, np.repeat(z, 2), np.repeat(y, 2), False)
    plain = _fit(C.PlattScaling, "binary", {}, z, y, False)
    np.testing.assert_allclose(_params(twice), _params(repeated), rtol=1e-6)
    assert not np.allclose(_params(twice), _params(plain), rtol=1e-6, atol=0)  # targets moved toward 0/1


@pytest.mark.parametrize("prior_correction", [True, False])
def test_weighted_platt_equals_scikit_learn_logistic_regression(prior_correction):
    from sklearn.linear_model import LogisticRegression

    z, y = _data("binary", ignore=False, seed=6)
    w = np.random.default_rng(7).uniform(0.0, 3.0, size=z.shape[0])
    ps = _fit(C.PlattScaling, "binary", {"prior_correction": prior_correction}, z, y, False, w)
    npos, nneg = np.sum(w * y), np.sum(w * (1 - y))
    t = np.where(y == 1, (npos + 1) / (npos + 2), 1 / (nneg + 2)) if prior_correction else y.astype(float)
    # a soft target t as a positive copy of weight w t and a negative copy of weight w (1 - t)
    lr = LogisticRegression(C=1e12, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(
        np.r_[z, z][:, None], np.r_[np.ones_like(y), np.zeros_like(y)], sample_weight=np.r_[w * t, w * (1 - t)])
    np.testing.assert_allclose([ps.weight_, ps.bias_], [lr.coef_[0, 0], lr.intercept_[0]], rtol=1e-5)


@pytest.mark.parametrize("cls,task,opts", CASES, ids=IDS)
def test_weights_summing_to_zero_are_an_error(cls, task, opts):
    z, y = _data(task, ignore=False)
    with pytest.raises(ValueError, match="sample_weight sums to 0 over the rows kept; give some row a positive"):
        cls(task, **opts).fit(z, y, sample_weight=np.zeros(z.shape[0]))


@pytest.mark.parametrize("cls,task,opts", CASES, ids=IDS)
def test_weight_only_on_ignored_labels_is_an_error(cls, task, opts):
    z, y = _data(task, ignore=False)
    y = y.copy()
    y[:10] = IGNORE  # rows 0..9 (multilabel: every entry of them) left out, and only they have weight
    w = np.r_[np.ones(10), np.zeros(z.shape[0] - 10)]
    with pytest.raises(ValueError, match="sample_weight sums to 0 over the rows kept"):
        cls(task, **opts).fit(z, y, ignore_index=IGNORE, sample_weight=w)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_temperature_separable_check_ignores_zero_weight_rows(task):
    z, y = _data(task, ignore=False, seed=8)
    right = (z > 0) == (y == 1) if task != "multiclass" else np.argmax(z, axis=1) == y
    if task == "multilabel":
        right = right[:, 0]  # label 0 separable on the weighted rows is enough (one temperature per label)
    w = right.astype(np.float64)
    with pytest.warns(UserWarning, match="classify every calibration sample correctly"):
        C.TemperatureScaling(task, per_class=task == "multilabel").fit(z, y, sample_weight=w)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # every row counted: not separable, no warning
        C.TemperatureScaling(task, per_class=task == "multilabel").fit(z, y)
