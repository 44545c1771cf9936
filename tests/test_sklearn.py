"""scikit-learn: the calibrators' estimator conventions, check_estimator, and sigmax.sklearn.CalibratedClassifier."""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from sigmax import calibration as C  # noqa: E402
from sigmax.sklearn import CalibratedClassifier, classifier_scores  # noqa: E402

FrozenEstimator = pytest.importorskip("sklearn.frozen").FrozenEstimator

CALIBRATORS = [C.TemperatureScaling, C.VectorScaling, C.PlattScaling, C.BetaCalibration, C.IsotonicCalibration,
               C.HistogramBinning, C.DirichletCalibration]

#: the check_estimator checks a calibrator fails on purpose, and why. They concern multiclass calibrators
#: (binary ones take one score per row, so scikit-learn runs only its one-dimensional checks, which pass).
#: The root cause of most: scikit-learn's checks fit random *features* with random labels, while a
#: calibrator takes *scores of a declared task* -- (N, C) scores with labels in 0..C-1 -- so a check's
#: data is refused before the check looks at what it tests.
EXPECTED_FAILED_CHECKS = {
    # the data are not scores of the task (labels out of range for the number of score columns)
    "check_estimators_overwrite_params": "random features with 3 label values are not 2-column multiclass scores",
    "check_estimators_fit_returns_self": "random features are not scores of the task (labels out of range)",
    "check_readonly_memmap_input": "random features are not scores of the task (labels out of range)",
    "check_n_features_in": "random features are not scores of the task; n_features_in_ is not set (the width is "
                           "n_classes_)",
    "check_n_features_in_after_fitting": "n_features_in_ is not set: the score width is n_classes_, checked on "
                                         "transform with sigmax's own message",
    "check_fit2d_predict1d": "1-D multiclass scores are refused by sigmax's input layer, not with the ValueError "
                             "the check expects at that point",
    "check_requires_y_none": "labels are needed; y=None fails in sigmax's label check, not with scikit-learn's "
                             "wording",
    # sigmax's input layer (sigmax._inputs) words its own messages
    "check_complex_data": "sigmax's message, not scikit-learn's 'Complex data not supported'",
    "check_dtype_object": "object arrays are a TypeError naming the fix (sigmax._inputs), not scikit-learn's wording",
    "check_estimators_empty_data_messages": "sigmax's message for 0 columns, not scikit-learn's wording",
    "check_fit2d_1feature": "a 1-column multiclass score is refused with sigmax's message (labels out of range)",
    # scikit-learn's sample-weight checks fit 2-column features with labels 0..2: not multiclass scores (labels
    # out of range); the weighted fits are checked against repeated rows in tests/test_calibration_weights*.py
    **{name: "its 2-column features with labels 0..2 are not multiclass scores (labels out of range)"
       for name in ("check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
                    "check_sample_weights_not_overwritten", "check_sample_weights_shape",
                    "check_sample_weight_equivalence_on_dense_data", "check_all_zero_sample_weights_error")},
    "check_estimators_nan_inf": "NaN scores are refused in fit; transform keeps +-inf logits (a probability of "
                                "exactly 0 or 1 is a valid input)",
    "check_estimator_sparse_array": "sparse scores are refused by sigmax's input layer, in its own words",
    "check_estimator_sparse_matrix": "sparse scores are refused by sigmax's input layer, in its own words",
    "check_estimator_sparse_tag": "sparse scores are refused by sigmax's input layer, in its own words",
    # deliberate differences, kept for backward compatibility
    "check_do_not_raise_errors_in_init_or_set_params": "the constructor checks its arguments, as it always has "
                                                       "(VectorScaling('binary') is an error before any data is read)",
    "check_estimators_unfitted": "sigmax raises ValueError('... not fitted yet ...'); scikit-learn's NotFittedError "
                                 "would need scikit-learn in the core",
    "check_fit_score_takes_y": "fit's arguments are named (scores, labels), sigmax's names for X and y (renaming them "
                               "would break callers passing them by keyword)",
    "check_transformer_general": "no fit_transform: a calibrator is fitted on a calibration set, then applied",
    "check_transformer_data_not_an_array": "no fit_transform (see check_transformer_general)",
    "check_transformer_preserve_dtypes": "no fit_transform (transform does keep float32 and float64)",
}

#: scikit-learn's convention checks: every calibrator must pass these
MUST_PASS = {"check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
             "check_parameters_default_constructible", "check_get_params_invariance", "check_set_params",
             "check_dont_overwrite_parameters", "check_dict_unchanged", "check_fit_check_is_fitted",
             "check_fit_idempotent", "check_estimators_pickle", "check_pipeline_consistency",
             "check_methods_subset_invariance", "check_methods_sample_order_invariance", "check_mixin_order"}


def _run_checks(estimator, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, expected_failed_checks=expected, on_fail="raise", on_skip=None)
    return {r["check_name"]: r["status"] for r in results}


# --------------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("cls", CALIBRATORS, ids=lambda c: c.__name__)
def test_params_come_from_the_constructor_and_clone(cls):
    est = cls()
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert sorted(est.get_params()) == sorted(names)
    assert "space" in names and "task" in names
    twin = clone(est)  # clone itself checks that the new object stores what it was given
    assert twin is not est and twin.get_params() == est.get_params()
    assert not [k for k in vars(est) if k.endswith("_")]  # nothing fitted set by the constructor


def test_set_params_checks_like_the_constructor():
    ts = C.TemperatureScaling("multilabel")
    assert ts.set_params(per_class=True) is ts and ts.per_class is True
    with pytest.raises(ValueError, match="per_class=True is for task='multilabel'"):
        ts.set_params(task="multiclass")
    assert ts.task == "multilabel" and ts.per_class is True  # unchanged on error
    with pytest.raises(ValueError, match="invalid parameter 'temp'"):
        ts.set_params(temp=2.0)
    with pytest.raises(ValueError, match="per_class must be True or False"):
        C.TemperatureScaling("multilabel", per_class="yes")
    hb = C.HistogramBinning(binning="equal-mass")
    assert hb.binning == "equal_mass" and clone(hb).binning == "equal_mass"  # normalised once, then kept


def test_fitted_attributes_end_in_underscore(rng):
    z = rng.normal(size=(400, 3)) * 2
    y = np.argmax(z + rng.gumbel(size=z.shape), axis=1)
    for cls in (C.TemperatureScaling, C.VectorScaling, C.IsotonicCalibration, C.DirichletCalibration):
        est = cls("multiclass")
        before = set(vars(est))
        est.fit(z, y)
        learnt = [k for k in vars(est) if k not in before and not k.startswith("_")]
        assert learnt and all(k.endswith("_") for k in learnt), learnt


def test_space_in_the_constructor_and_in_fit(rng):
    z = rng.normal(size=600) * 3
    y = (rng.uniform(size=600) < 1 / (1 + np.exp(-z / 3))).astype(int)
    p = 1 / (1 + np.exp(-z))
    a = C.TemperatureScaling("binary", space="probs").fit(p, y)
    b = C.TemperatureScaling("binary").fit(p, y, space="probs")  # the older spelling still works
    assert a.space_ == b.space_ == "probs" and a.temperature == pytest.approx(b.temperature, rel=1e-12)
    np.testing.assert_allclose(a.predict_proba(p[:5]), b.predict_proba(p[:5]))
    back = C.from_dict(a.to_dict())
    assert back.space == "probs" and back.get_params() == a.get_params()
    with pytest.raises(ValueError, match="unknown space"):
        C.TemperatureScaling(space="prob-ish")


@pytest.mark.parametrize("est", [C.TemperatureScaling(), C.TemperatureScaling("binary"), C.VectorScaling(),
                                 C.PlattScaling(), C.BetaCalibration(), C.IsotonicCalibration(),
                                 C.HistogramBinning(), C.DirichletCalibration(reg=0.01)],
                         ids=lambda e: f"{type(e).__name__}-{e.task}")
def test_check_estimator(est):
    status = _run_checks(est, EXPECTED_FAILED_CHECKS)
    assert not [k for k, v in status.items() if v == "failed"]
    failed_on_purpose = {k for k, v in status.items() if v == "xfail"}
    assert failed_on_purpose <= set(EXPECTED_FAILED_CHECKS)
    ran = MUST_PASS & set(status)
    assert ran and all(status[k] == "passed" for k in ran), {k: status[k] for k in ran}


def test_check_estimator_calibrated_classifier():
    expected = {"check_fit2d_1feature": "the fit cross-validates: 10 rows of 3 classes cannot make 5 stratified "
                                        "folds, and the error says so rather than naming the feature count"}
    status = _run_checks(CalibratedClassifier(LogisticRegression()), expected)
    assert not [k for k, v in status.items() if v == "failed"]
    assert status["check_estimators_unfitted"] == "passed" and status["check_classifiers_train"] == "passed"


def test_core_does_not_import_sklearn():
    code = "import sys, sigmax, sigmax.calibration; sys.exit('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------------- CalibratedClassifier
def _binary(n=3000, seed=0):
    X, y = make_classification(n_samples=n, n_features=10, n_informative=4, flip_y=0.05, random_state=seed)
    return X, y


def _split(X, y):
    return (X[:1000], y[:1000]), (X[1000:2000], y[1000:2000]), X[2000:]


# the same method on the same scores: sigmoid (Platt, with Platt's smoothed targets) and temperature are
# the same convex problems, so they agree to the optimisers' tolerances; isotonic agrees at the calibration
# points up to sigmax's clip eps = 1e-6, and between them it interpolates in probability (sigmax) rather
# than in decision_function units (scikit-learn): a few 1e-4 on held-out rows
TOLERANCE = {"platt": 1e-7, "temperature": 1e-6, "isotonic": 1e-3}


def _close(ours, theirs, method):
    """Equal within TOLERANCE; for isotonic on held-out rows, on average (a row between two far-apart
    thresholds can differ by up to ~1e-2: interpolated in probability vs in decision_function units)."""
    if method != "isotonic":
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE[method], rtol=0)
        return
    diff = np.abs(ours - theirs)
    assert diff.mean() < TOLERANCE["isotonic"] and diff.max() < 0.03, (diff.mean(), diff.max())
SKLEARN_NAME = {"platt": "sigmoid", "temperature": "temperature", "isotonic": "isotonic"}


@pytest.mark.parametrize("make", [LogisticRegression, LinearSVC], ids=["LogisticRegression", "LinearSVC"])
@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_matches_calibrated_classifier_cv_on_a_frozen_estimator(make, method):
    X, y = _binary()
    (Xtr, ytr), (Xc, yc), Xt = _split(X, y)
    est = make().fit(Xtr, ytr)
    theirs = CalibratedClassifierCV(FrozenEstimator(est), method=SKLEARN_NAME[method]).fit(Xc, yc)
    ours = CalibratedClassifier(FrozenEstimator(est), method=method).fit(Xc, yc)
    assert ours.response_ == "decision_function" and ours.space_ == "logits"
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    on_cal = 2e-6 if method == "isotonic" else TOLERANCE[method]
    np.testing.assert_allclose(ours.predict_proba(Xc), theirs.predict_proba(Xc), atol=on_cal, rtol=0)
    _close(ours.predict_proba(Xt), theirs.predict_proba(Xt), method)
    agree = np.mean(ours.predict(Xt) == theirs.predict(Xt))
    assert agree > 0.995


@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_matches_calibrated_classifier_cv_with_folds(method, ensemble):
    X, y = _binary()
    theirs = CalibratedClassifierCV(LogisticRegression(), method=SKLEARN_NAME[method], cv=3,
                                    ensemble=ensemble).fit(X[:2000], y[:2000])
    ours = CalibratedClassifier(LogisticRegression(), method=method, cv=3, ensemble=ensemble).fit(X[:2000], y[:2000])
    assert len(ours.calibrated_classifiers_) == (3 if ensemble else 1)
    _close(ours.predict_proba(X[2000:]), theirs.predict_proba(X[2000:]), method)


def test_multiclass_temperature_matches_scikit_learn():
    X, y = make_classification(n_samples=3000, n_features=10, n_informative=5, n_classes=4, random_state=0)
    est = LogisticRegression().fit(X[:1000], y[:1000])
    theirs = CalibratedClassifierCV(FrozenEstimator(est), method="temperature").fit(X[1000:2000], y[1000:2000])
    ours = CalibratedClassifier(FrozenEstimator(est), method="temperature").fit(X[1000:2000], y[1000:2000])
    np.testing.assert_allclose(ours.predict_proba(X[2000:]), theirs.predict_proba(X[2000:]), atol=1e-6, rtol=0)
    t = ours.calibrated_classifiers_[0].calibrator.scaler.temperature
    beta = float(theirs.calibrated_classifiers_[0].calibrators[0].beta_)
    assert t == pytest.approx(1 / beta, rel=1e-5)


def test_probabilities_of_a_predict_proba_only_classifier_match_isotonic():
    X, y = _binary()
    (Xtr, ytr), (Xc, yc), Xt = _split(X, y)
    knn = KNeighborsClassifier(n_neighbors=25).fit(Xtr, ytr)
    ours = CalibratedClassifier(FrozenEstimator(knn), method="isotonic").fit(Xc, yc)
    theirs = CalibratedClassifierCV(FrozenEstimator(knn), method="isotonic").fit(Xc, yc)
    assert (ours.response_, ours.space_) == ("predict_proba", "probs")
    # the same pairs (p, y) on both sides: equal up to the clip eps
    np.testing.assert_allclose(ours.predict_proba(Xt), theirs.predict_proba(Xt), atol=2e-6, rtol=0)
    nb = CalibratedClassifier(FrozenEstimator(GaussianNB().fit(Xtr, ytr))).fit(Xc, yc)
    assert (nb.response_, nb.space_) == ("predict_log_proba", "log_probs")


@pytest.mark.parametrize("method", ["temperature", "vector", "beta", "isotonic", "histogram", "dirichlet", "auto"])
def test_every_multiclass_method(method):
    X, y = make_classification(n_samples=1500, n_features=8, n_informative=5, n_classes=3, random_state=1)
    labels = np.array(["ant", "bee", "cat"])[y]
    cal = CalibratedClassifier(LinearSVC(), method=method, cv=3).fit(X[:1000], labels[:1000])
    p = cal.predict_proba(X[1000:])
    assert p.shape == (500, 3) and np.allclose(p.sum(axis=1), 1.0) and np.all(p >= 0)
    assert set(cal.predict(X[1000:])) <= set(cal.classes_) and list(cal.classes_) == ["ant", "bee", "cat"]
    assert cal.score(X[1000:], labels[1000:]) > 0.5


@pytest.mark.parametrize("method", ["temperature", "platt", "beta", "isotonic", "histogram", "auto"])
def test_every_binary_method(method):
    X, y = _binary(1500)
    cal = CalibratedClassifier(LogisticRegression(), method=method, cv=3, ensemble=True).fit(X[:1000], y[:1000])
    p = cal.predict_proba(X[1000:])
    assert p.shape == (500, 2) and np.allclose(p.sum(axis=1), 1.0)


def test_prefit_pipeline_clone_and_grid_search():
    X, y = _binary(1500)
    pipe = make_pipeline(StandardScaler(), CalibratedClassifier(LogisticRegression(), cv=3))
    assert pipe.fit(X[:1000], y[:1000]).score(X[1000:], y[1000:]) > 0.7
    twin = clone(pipe)
    assert twin.get_params()["calibratedclassifier__method"] == "temperature"
    search = GridSearchCV(CalibratedClassifier(LogisticRegression(), cv=3),
                          {"method": ["temperature", "platt", "isotonic"], "estimator__C": [0.1, 1.0]},
                          scoring="neg_log_loss", cv=3).fit(X[:1000], y[:1000])
    assert search.best_params_["method"] in ("temperature", "platt", "isotonic")
    fitted = LogisticRegression().fit(X[:500], y[:500])
    a = CalibratedClassifier(fitted, cv="prefit").fit(X[500:1000], y[500:1000])
    b = CalibratedClassifier(FrozenEstimator(fitted)).fit(X[500:1000], y[500:1000])
    np.testing.assert_allclose(a.predict_proba(X[1000:]), b.predict_proba(X[1000:]))
    assert a.calibrated_classifiers_[0].estimator is fitted  # not refitted


def test_errors_name_the_fix():
    X, y = make_classification(n_samples=300, n_classes=3, n_informative=4, random_state=0)
    with pytest.raises(ValueError, match="method='platt' is for task='binary'"):
        CalibratedClassifier(LogisticRegression(), method="platt").fit(X, y)
    with pytest.raises(ValueError, match="unknown method"):
        CalibratedClassifier(LogisticRegression(), method="sigmoid").fit(X, y)
    fitted = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="ensemble=True needs classifiers fitted per fold"):
        CalibratedClassifier(FrozenEstimator(fitted), ensemble=True).fit(X, y)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        CalibratedClassifier(LogisticRegression(), cv="prefit").fit(X, y)
    with pytest.raises(ValueError, match="labels the classifier was not fitted on"):
        CalibratedClassifier(FrozenEstimator(fitted)).fit(X, y + 5)
    with pytest.raises(ValueError, match="expected"):
        classifier_scores(np.zeros((4, 3)), 2, "probs")


@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_sample_weight_matches_calibrated_classifier_cv(method, ensemble):
    """sample_weight weights each fold's classifier (cut to its rows: with ensemble=True every fold got all N
    weights before, a crash) and the calibration map's fit (it was ignored), as scikit-learn does."""
    X, y = _binary()
    w = np.random.default_rng(0).uniform(0.2, 3.0, 2000)
    theirs = CalibratedClassifierCV(LogisticRegression(), method=SKLEARN_NAME[method], cv=3,
                                    ensemble=ensemble).fit(X[:2000], y[:2000], sample_weight=w)
    ours = CalibratedClassifier(LogisticRegression(), method=method, cv=3, ensemble=ensemble).fit(
        X[:2000], y[:2000], sample_weight=w)
    for a, b in zip(ours.calibrated_classifiers_, theirs.calibrated_classifiers_):
        np.testing.assert_allclose(a.estimator.coef_, b.estimator.coef_, rtol=1e-6)
    _close(ours.predict_proba(X[2000:]), theirs.predict_proba(X[2000:]), method)
    unweighted = CalibratedClassifier(LogisticRegression(), method=method, cv=3, ensemble=ensemble).fit(
        X[:2000], y[:2000])
    assert np.abs(ours.predict_proba(X[2000:]) - unweighted.predict_proba(X[2000:])).max() > 1e-4  # it matters
    with pytest.raises(ValueError, match="one weight per row of X"):
        CalibratedClassifier(LogisticRegression(), cv=3).fit(X[:2000], y[:2000], sample_weight=w[:10])
