"""sigmax.conformal: split-conformal prediction sets (LAC, APS, RAPS; randomised; Mondrian).

The coverage experiments are vectorised: the non-conformity score of every (row, class) does not depend
on the split, so R random calibration/test splits of one pool are R sorts of one score vector. MAPIE
1.6 is the reference for the sets (``SplitConformalClassifier(prefit=True)`` on fixed probabilities).
"""

import json
import math
import warnings

import numpy as np
import pytest

import sigmax
from sigmax.conformal import ConformalClassifier, conformal_quantile, coverage, load, set_size
from sigmax.testing import to_numpy


def _pool(n=3000, c=5, seed=0, scale=1.5):
    """Logits of a calibrated model and labels drawn from its probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * scale
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.minimum((rng.random((n, 1)) > p.cumsum(1)).sum(1), c - 1)
    return logits, p, y


def _split_quantiles(s_true, n_cal, alpha, n_splits, seed=1):
    """For R random splits: the calibration rows' quantile and the test rows' mask, vectorised."""
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((n_splits, s_true.size)), axis=1)
    cal = np.zeros(perm.shape, bool)
    np.put_along_axis(cal, perm[:, :n_cal], True, axis=1)
    k = math.ceil((n_cal + 1) * (1 - alpha))
    q = np.sort(s_true[perm[:, :n_cal]], axis=1)[:, k - 1]
    return q, ~cal, perm


@pytest.mark.parametrize("method, randomized", [("lac", False), ("aps", False), ("raps", False),
                                                ("aps", True), ("raps", True)])
@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_coverage_over_random_splits(method, randomized, alpha):
    logits, _, y = _pool()
    n_cal, n_splits = 400, 300
    cc = ConformalClassifier("multiclass", method=method, alpha=alpha, randomized=randomized)
    s_true = cc.conformity_scores(logits, y)
    q, test, perm = _split_quantiles(s_true, n_cal, alpha, n_splits)
    covered = (s_true[None, :] <= q[:, None]) & test
    per_split = covered.sum(1) / test.sum(1)
    mean = per_split.mean()
    se = per_split.std() / math.sqrt(n_splits)
    assert mean >= 1 - alpha - 4 * se, (mean, se)
    assert mean <= 1 - alpha + 1 / (n_cal + 1) + 4 * se + 0.002, (mean, se)
    # the class computes the same quantile as the vectorised experiment, on one split
    first = perm[0, :n_cal]
    if not randomized:
        fitted = ConformalClassifier("multiclass", method=method, alpha=alpha).fit(logits[first], y[first])
        assert fitted.quantile_ == q[0]
        sets = fitted.predict_sets(logits[test[0]])
        assert coverage(sets, y[test[0]]) == pytest.approx(per_split[0], abs=1e-12)


def test_randomized_coverage_is_exact_on_average():
    logits, _, y = _pool(seed=3)
    cc = ConformalClassifier("multiclass", method="aps", alpha=0.2, randomized=True, seed=5)
    s_true = cc.conformity_scores(logits, y)
    q, test, _ = _split_quantiles(s_true, 500, 0.2, 300)
    mean = (((s_true[None, :] <= q[:, None]) & test).sum(1) / test.sum(1)).mean()
    assert abs(mean - 0.8) < 0.004 + 1 / 501


def test_mondrian_covers_every_class():
    logits, _, y = _pool(n=4000, c=4, seed=2)
    alpha, n_cal, n_splits = 0.1, 1600, 200
    cc = ConformalClassifier("multiclass", method="lac", alpha=alpha, mondrian=True)
    s_true = cc.conformity_scores(logits, y)
    rng = np.random.default_rng(4)
    perm = np.argsort(rng.random((n_splits, y.size)), axis=1)
    cal = np.zeros(perm.shape, bool)
    np.put_along_axis(cal, perm[:, :n_cal], True, axis=1)
    for c in range(4):
        mine = cal & (y == c)[None, :]
        n_c = mine.sum(1)
        k = np.ceil((n_c + 1) * (1 - alpha)).astype(int)
        q = np.take_along_axis(np.sort(np.where(mine, s_true[None, :], np.inf), axis=1), (k - 1)[:, None], 1)[:, 0]
        test_c = ~cal & (y == c)[None, :]
        cov = ((s_true[None, :] <= q[:, None]) & test_c).sum(1) / test_c.sum(1)
        assert cov.mean() >= 1 - alpha - 0.01, (c, cov.mean())
    # the fitted classifier's per-class quantiles are the ones above, on the first split
    fitted = ConformalClassifier("multiclass", alpha=alpha, mondrian=True).fit(logits[cal[0]], y[cal[0]])
    assert fitted.quantile_.shape == (4,)
    sets = fitted.predict_sets(logits[~cal[0]])
    by_class = coverage(sets, y[~cal[0]], by_class=True)
    assert by_class.shape == (4,) and np.all(by_class > 1 - alpha - 0.05)


# ---------------------------------------------------------------------- MAPIE

def _mapie():
    mapie = pytest.importorskip("mapie", minversion="1.0")
    from mapie.classification import SplitConformalClassifier
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Fixed(ClassifierMixin, BaseEstimator):
        """A prefit classifier whose 'features' are row indices into fixed probabilities."""

        def __init__(self, probs=None):
            self.probs = probs

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return self.probs[np.asarray(X)[:, 0].astype(int)]

        def predict(self, X):
            return self.predict_proba(X).argmax(1)

        def __sklearn_is_fitted__(self):
            return True

    class Draws(np.random.RandomState):
        """MAPIE's random state, handing out the given uniform draws in the order MAPIE asks for them."""

        def __init__(self, *arrays):
            super().__init__(0)
            self.arrays = list(arrays)

        def uniform(self, low=0.0, high=1.0, size=None):
            return np.asarray(self.arrays.pop(0), dtype=float).reshape(size)

    def mapie_sets(p, cal, test, alpha, score, random_state=None, **params):
        est = Fixed(p)
        est.classes_ = np.arange(p.shape[1])
        X = np.arange(p.shape[0])[:, None]
        m = SplitConformalClassifier(est, confidence_level=1 - alpha, conformity_score=score, prefit=True,
                                     random_state=random_state)
        m.conformalize(X[cal], _pool.y[cal])
        return m.predict_set(X[test], conformity_score_params=params or None)[1][:, :, 0]

    return mapie_sets, Draws


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.5])
def test_lac_and_aps_sets_equal_mapie(alpha):
    mapie_sets, Draws = _mapie()
    _, p, y = _pool(n=700, seed=7)
    _pool.y = y
    cal, test = np.arange(300), np.arange(300, 700)
    cc = ConformalClassifier("multiclass", method="lac", alpha=alpha).fit(p[cal], y[cal], space="probs")
    np.testing.assert_array_equal(cc.predict_sets(p[test]), mapie_sets(p, cal, test, alpha, "lac"))
    # deterministic APS: MAPIE's score is cumsum - u p_y, so its draws of 0 are this u = 1
    cc = ConformalClassifier("multiclass", method="aps", alpha=alpha).fit(p[cal], y[cal], space="probs")
    zeros = Draws(np.zeros(cal.size), np.zeros(test.size))
    np.testing.assert_array_equal(cc.predict_sets(p[test]),
                                  mapie_sets(p, cal, test, alpha, "aps", zeros, include_last_label="randomized"))
    # randomised APS: MAPIE given the draws 1 - u of sigmax's (documented in ConformalClassifier)
    cc = ConformalClassifier("multiclass", method="aps", alpha=alpha, randomized=True, seed=11)
    cc.fit(p[cal], y[cal], space="probs")
    u_fit, u_predict = np.random.default_rng([11, 0]).random(cal.size), np.random.default_rng([11, 1]).random(test.size)
    draws = Draws(1 - u_fit, 1 - u_predict)
    ours = cc.predict_sets(p[test])
    np.testing.assert_array_equal(ours, mapie_sets(p, cal, test, alpha, "aps", draws, include_last_label="randomized"))
    assert (set_size(ours) == 0).any() or alpha < 0.2  # randomised sets may be empty, as MAPIE's


@pytest.mark.parametrize("n_cal", [10, 19, 20, 57, 99, 100, 333])
def test_quantile_rank_and_ties_equal_mapie(n_cal):
    mapie_sets, _ = _mapie()
    rng = np.random.default_rng(n_cal)
    p = rng.dirichlet(np.ones(3), size=n_cal + 200).round(1)  # coarse probabilities: many tied scores
    p[:, 2] = 1 - p[:, 0] - p[:, 1]
    p = np.clip(p, 0, 1)
    p /= p.sum(1, keepdims=True)
    y = rng.integers(0, 3, size=p.shape[0])
    _pool.y = y
    cal, test = np.arange(n_cal), np.arange(n_cal + 200)  # test includes the calibration rows: exact ties
    for alpha in (0.1, 0.15, 0.25, 1 / 3):
        cc = ConformalClassifier("multiclass", alpha=alpha).fit(p[cal], y[cal], space="probs")
        np.testing.assert_array_equal(cc.predict_sets(p[test]), mapie_sets(p, cal, test, alpha, "lac"))


# ---------------------------------------------------------------------- the rules


def test_quantile_rank_and_infinite_quantile_warns():
    assert conformal_quantile([0.3, 0.1, 0.2, 0.5], 0.5) == 0.3
    assert conformal_quantile([0.3, 0.1, 0.2, 0.5], 0.1) == math.inf
    assert conformal_quantile([], 0.5) == math.inf
    logits, _, y = _pool(n=20)
    with pytest.warns(UserWarning, match=r"too few for alpha=0.01.*\+inf.*every set holds every class"):
        cc = ConformalClassifier("multiclass", alpha=0.01).fit(logits[:10], y[:10])
    assert cc.quantile_ == math.inf and cc.predict_sets(logits[10:]).all()


def test_mondrian_class_without_rows_warns():
    logits, _, y = _pool(n=400, c=3)
    keep = y != 2
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\] have too few calibration rows"):
        cc = ConformalClassifier("multiclass", mondrian=True).fit(logits[keep], y[keep])
    assert math.isinf(cc.quantile_[2]) and np.isfinite(cc.quantile_[:2]).all()
    assert cc.predict_sets(logits)[:, 2].all()


def test_sets_grow_as_alpha_shrinks_and_raps_zero_is_aps():
    logits, _, y = _pool(n=1000)
    for method in ("lac", "aps", "raps"):
        small = ConformalClassifier("multiclass", method=method, alpha=0.3).fit(logits[:500], y[:500])
        large = ConformalClassifier("multiclass", method=method, alpha=0.05).fit(logits[:500], y[:500])
        a, b = small.predict_sets(logits[500:]), large.predict_sets(logits[500:])
        assert np.all(a <= b) and set_size(b).mean() > set_size(a).mean()
    aps = ConformalClassifier("multiclass", method="aps").fit(logits[:500], y[:500])
    raps0 = ConformalClassifier("multiclass", method="raps", raps_lambda=0.0).fit(logits[:500], y[:500])
    np.testing.assert_array_equal(aps.predict_sets(logits[500:]), raps0.predict_sets(logits[500:]))
    raps = ConformalClassifier("multiclass", method="raps", raps_lambda=0.5, raps_k_reg=1).fit(logits[:500], y[:500])
    assert set_size(raps.predict_sets(logits[500:])).mean() <= set_size(aps.predict_sets(logits[500:])).mean()


def test_aps_sets_are_prefixes_by_decreasing_probability():
    logits, p, y = _pool(n=600)
    for randomized in (False, True):
        cc = ConformalClassifier("multiclass", method="aps", randomized=randomized).fit(logits[:300], y[:300])
        sets = cc.predict_sets(logits[300:])
        ordered = np.take_along_axis(sets, np.argsort(-p[300:], axis=1, kind="stable"), axis=1)
        assert np.all(ordered[:, :-1] >= ordered[:, 1:])
        if not randomized:
            assert set_size(sets).min() >= 0


def test_spaces_agree_and_binary_is_two_classes():
    logits, p, y = _pool(n=800)
    fits = [ConformalClassifier("multiclass", method="aps").fit(s, y[:400], space=sp)
            for s, sp in ((logits[:400], "logits"), (p[:400], "probs"), (np.log(p[:400]), "log_probs"))]
    for cc in fits[1:]:
        assert cc.quantile_ == pytest.approx(fits[0].quantile_, abs=1e-12)
    np.testing.assert_array_equal(fits[1].predict_sets(p[400:]), fits[0].predict_sets(logits[400:], space="logits"))
    rng = np.random.default_rng(0)
    z = rng.normal(size=600) * 2
    yb = (rng.random(600) < 1 / (1 + np.exp(-z))).astype(int)
    pb = 1 / (1 + np.exp(-z))
    binary = ConformalClassifier("binary", alpha=0.2).fit(pb[:300], yb[:300], space="probs")
    multi = ConformalClassifier("multiclass", alpha=0.2).fit(np.stack([1 - pb, pb], 1)[:300], yb[:300], space="probs")
    assert binary.quantile_ == multi.quantile_ and binary.n_classes_ == 2
    sets = binary.predict_sets(pb[300:])
    assert sets.shape == (300, 2)
    np.testing.assert_array_equal(sets, multi.predict_sets(np.stack([1 - pb, pb], 1)[300:]))
    from_logits = ConformalClassifier("binary", alpha=0.2).fit(z[:300], yb[:300])
    np.testing.assert_array_equal(from_logits.predict_sets(z[300:]), sets)


def test_class_axis_and_row_shape():
    logits, _, y = _pool(n=600)
    cc = ConformalClassifier("multiclass").fit(logits[:300].T, y[:300], axis=0)
    ref = ConformalClassifier("multiclass").fit(logits[:300], y[:300])
    assert cc.quantile_ == ref.quantile_
    np.testing.assert_array_equal(cc.predict_sets(logits[300:].T, axis=0), ref.predict_sets(logits[300:]))
    batched = cc.predict_sets(logits[300:].reshape(30, 10, 5))
    assert batched.shape == (30, 10, 5)
    np.testing.assert_array_equal(batched.reshape(300, 5), ref.predict_sets(logits[300:]))
    assert cc.predict_sets(logits[:0]).shape == (0, 5)


def test_every_array_library(backend):
    logits, _, y = _pool(n=600)
    x32 = logits.astype(np.float32)
    cc = ConformalClassifier("multiclass", method="aps").fit(backend.asarray(x32[:300], "float32"),
                                                            backend.asarray(y[:300], "int64"))
    ref = ConformalClassifier("multiclass", method="aps").fit(x32[:300], y[:300])
    assert cc.quantile_ == ref.quantile_
    sets = cc.predict_sets(backend.asarray(x32[300:], "float32"))
    assert type(sets).__module__.split(".")[0] == type(backend.asarray([1.0])).__module__.split(".")[0]
    assert "bool" in str(sets.dtype)
    np.testing.assert_array_equal(to_numpy(sets), ref.predict_sets(x32[300:]))
    assert coverage(sets, backend.asarray(y[300:], "int64")) == coverage(ref.predict_sets(x32[300:]), y[300:])


def test_nan_rows_get_every_class_and_fit_refuses_nan():
    logits, _, y = _pool(n=400)
    cc = ConformalClassifier("multiclass", method="aps").fit(logits[:200], y[:200])
    x = logits[200:].copy()
    x[[3, 7], 1] = np.nan
    with pytest.warns(UserWarning, match="2 row.*contain NaN.*every class"):
        sets = cc.predict_sets(x)
    assert sets[[3, 7]].all()
    clean = cc.predict_sets(np.delete(x, [3, 7], axis=0))
    np.testing.assert_array_equal(np.delete(sets, [3, 7], axis=0), clean)
    bad = logits[:200].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ConformalClassifier("multiclass").fit(bad, y[:200])
    labels = y[:200].copy()
    labels[0] = -100
    fitted = ConformalClassifier("multiclass").fit(bad, labels, ignore_index=-100)  # the NaN row is ignored
    assert fitted.n_calibration_ == 199


def test_save_and_load_round_trip(tmp_path):
    logits, _, y = _pool(n=600, c=3)
    for kw in ({"method": "lac"}, {"method": "aps", "mondrian": True},
               {"method": "raps", "raps_lambda": 0.2, "raps_k_reg": 2, "randomized": True, "seed": 4}):
        cc = ConformalClassifier("multiclass", alpha=0.15, **kw).fit(logits[:300], y[:300], space="logits")
        path = tmp_path / "sub" / "cc.json"
        cc.save(path)
        back = load(path)
        assert repr(back) == repr(cc) and back.space_ == "logits"
        np.testing.assert_array_equal(back.predict_sets(logits[300:]), cc.predict_sets(logits[300:]))
    with pytest.warns(UserWarning):
        inf = ConformalClassifier("multiclass", alpha=0.01, mondrian=True).fit(logits[:30], y[:30])
    inf.save(tmp_path / "inf.json")
    assert "Infinity" in (tmp_path / "inf.json").read_text() and np.isinf(load(tmp_path / "inf.json").quantile_).all()


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("quantile"), "'quantile' is missing"),
    (lambda d: d.update(quantile=float("nan")), "'quantile' must hold numbers or \\+Infinity"),
    (lambda d: d.update(quantile="0.5"), "'quantile' must hold numbers"),
    (lambda d: d.update(alpha=1.5), "'settings' are invalid .*alpha must be a number in \\(0, 1\\)"),
    (lambda d: d.update(method="foo"), "'settings' are invalid .*unknown method"),
    (lambda d: d.update(n_classes=4), "'class_counts' must be 4"),
    (lambda d: d.update(space="prob"), "'space' must be"),
    (lambda d: d.update(format=2), "format 2 is not supported"),
    (lambda d: d.update(sigmax="calibration"), "not a sigmax conformal description"),
])
def test_load_refuses_a_damaged_file(tmp_path, edit, match):
    logits, _, y = _pool(n=300, c=3)
    path = tmp_path / "cc.json"
    ConformalClassifier("multiclass").fit(logits, y).save(path)
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=match):
        load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a sigmax conformal file: not valid JSON"):
        load(path)


@pytest.mark.parametrize("kwargs, match", [
    ({"task": "multilabel"}, "one ConformalClassifier\\('binary'\\) per label column"),
    ({"method": "naive"}, "unknown method 'naive'; use one of 'lac', 'aps', 'raps'"),
    ({"alpha": 0.0}, "alpha must be a number in \\(0, 1\\)"),
    ({"alpha": 1}, "alpha must be a number in \\(0, 1\\)"),
    ({"randomized": True}, "randomized applies to method='aps' and method='raps'"),
    ({"raps_lambda": 0.1}, "raps_lambda and raps_k_reg apply to method='raps' only"),
    ({"method": "raps", "raps_lambda": -1.0}, "raps_lambda must be a finite number >= 0"),
    ({"method": "raps", "raps_k_reg": 1.5}, "raps_k_reg must be an integer >= 0"),
    ({"seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_settings_are_one_line_errors(kwargs, match):
    kwargs = {"task": "multiclass", **kwargs}
    with pytest.raises((ValueError, TypeError), match=match) as info:
        ConformalClassifier(kwargs.pop("task"), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_use_is_a_clear_error():
    logits, _, y = _pool(n=300)
    with pytest.raises(ValueError, match="not fitted yet: call .fit"):
        ConformalClassifier("multiclass").predict_sets(logits)
    cc = ConformalClassifier("multiclass").fit(logits, y)
    with pytest.raises(ValueError, match="scores have 3 classes .* fitted on 5"):
        cc.predict_sets(logits[:, :3])
    with pytest.raises(ValueError, match="need a class axis"):
        cc.predict_sets(logits[:, 0])
    with pytest.raises(ValueError, match="declared space='probs'"):
        cc.predict_sets(logits, space="probs")
    with pytest.raises(ValueError, match="out of range for 5 classes"):
        ConformalClassifier("multiclass").fit(logits, y + 1)
    with pytest.raises(ValueError, match="sets must be boolean"):
        coverage(np.full((3, 2), 0.5), [0, 1, 0])
    with pytest.raises(ValueError, match="sets must have a class axis"):
        set_size([True, False])


def test_coverage_and_set_size_helpers():
    sets = np.array([[True, False, True], [False, True, False], [False, False, False], [True, True, True]])
    assert coverage(sets, [0, 0, 1, 2]) == 0.5
    assert coverage(sets, [0, 0, -1, 2], ignore_index=-1) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(coverage(sets, [0, 0, 1, 2], by_class=True), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(set_size(sets), [2, 1, 0, 3])
    assert math.isnan(coverage(sets, [0, 0, 0, 0], by_class=True)[1])


def test_exported_from_the_package():
    assert sigmax.conformal.ConformalClassifier is ConformalClassifier and "conformal" in sigmax.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repr(ConformalClassifier("binary"))
