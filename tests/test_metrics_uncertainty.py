"""Issue 13 (metrics side): bootstrap intervals, debiased and smooth calibration error, ranking metrics.

Every value is checked against an independent reference: scikit-learn (roc_auc_score,
average_precision_score, confusion_matrix, precision_recall_fscore_support, all with sample_weight),
relplot.smECE, the closed-form debiased estimator, and a direct resampling loop for the bootstrap.
"""

import math
import warnings

import numpy as np
import pytest

from sigmax import metrics as M
from sigmax._metrics_bootstrap import resample_indices

skm = pytest.importorskip("sklearn.metrics")
relplot = pytest.importorskip("relplot")


def _expit(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _data(rng, n=300, c=4):
    z = np.round(rng.normal(size=(n, c)) * 2, 1)  # rounded: many ties
    y = rng.integers(0, c, n)
    zb = np.round(rng.normal(size=n), 1)
    yb = (rng.uniform(size=n) < _expit(zb)).astype(np.int64)
    zl = np.round(rng.normal(size=(n, c)), 1)
    yl = (rng.uniform(size=(n, c)) < _expit(zl)).astype(np.int64)
    w = rng.uniform(0, 2, n)
    return z, y, zb, yb, zl, yl, w


# ---------------------------------------------------------------------------------------------
# ranking and decision metrics against scikit-learn
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_ranking_equals_sklearn(rng, weighted):
    z, y, zb, yb, zl, yl, w = _data(rng)
    sw = w if weighted else None
    # binary (ties included)
    assert math.isclose(M.roc_auc(zb, yb, "binary", sample_weight=sw), skm.roc_auc_score(yb, zb, sample_weight=sw),
                        rel_tol=1e-12)
    assert math.isclose(M.average_precision(zb, yb, "binary", sample_weight=sw),
                        skm.average_precision_score(yb, _expit(zb), sample_weight=sw), rel_tol=1e-12)
    # multiclass one-vs-rest on the probabilities
    p = _softmax(z)
    onehot = np.eye(4)[y]
    for avg in ("macro", "weighted"):
        assert math.isclose(M.roc_auc(z, y, "multiclass", average=avg, sample_weight=sw),
                            skm.roc_auc_score(y, p, multi_class="ovr", average=avg, sample_weight=sw), rel_tol=1e-12)
    for avg in ("macro", "weighted", "micro"):
        assert math.isclose(M.average_precision(z, y, "multiclass", average=avg, sample_weight=sw),
                            skm.average_precision_score(onehot, p, average=avg, sample_weight=sw), rel_tol=1e-12)
    assert math.isclose(M.roc_auc(z, y, "multiclass", average="micro", sample_weight=sw),
                        skm.roc_auc_score(onehot, p, average="micro", sample_weight=sw), rel_tol=1e-12)
    np.testing.assert_allclose(M.roc_auc(z, y, "multiclass", average=None, sample_weight=sw),
                               skm.roc_auc_score(onehot, p, average=None, sample_weight=sw), rtol=1e-12)
    # multilabel per class, macro, micro, weighted
    pl = _expit(zl)
    for avg in ("macro", "weighted", "micro", None):
        np.testing.assert_allclose(M.roc_auc(zl, yl, "multilabel", average=avg, sample_weight=sw),
                                   skm.roc_auc_score(yl, pl, average=avg, sample_weight=sw), rtol=1e-12)
        np.testing.assert_allclose(M.average_precision(zl, yl, "multilabel", average=avg, sample_weight=sw),
                                   skm.average_precision_score(yl, pl, average=avg, sample_weight=sw), rtol=1e-12)


def test_ranking_backends_and_ignore_index(backend, rng):
    z, y, zb, yb, zl, yl, w = _data(rng, n=120)
    yi = yb.copy()
    yi[:10] = -100
    keep = yi != -100
    got = M.roc_auc(backend.asarray(zb), backend.asarray(yi, dtype="int64"), "binary", ignore_index=-100)
    assert math.isclose(got, skm.roc_auc_score(yb[keep], zb[keep]), rel_tol=1e-12)
    # multilabel: a masked entry leaves its class's ranking only
    yl2 = yl.copy()
    yl2[:7, 1] = -100
    ref1 = skm.roc_auc_score(yl[7:, 1], zl[7:, 1])
    got = M.roc_auc(zl, yl2, "multilabel", average=None, ignore_index=-100)
    assert math.isclose(got[1], ref1, rel_tol=1e-12)
    assert math.isclose(got[0], skm.roc_auc_score(yl[:, 0], zl[:, 0]), rel_tol=1e-12)


@pytest.mark.filterwarnings("ignore:No positive class found")
def test_ranking_undefined_is_clear():
    with pytest.raises(ValueError, match="both positives and negatives"):
        M.roc_auc([0.1, 0.5], [1, 1], "binary", space="probs")
    with pytest.raises(ValueError, match="at least one positive"):
        M.average_precision([0.1, 0.5], [0, 0], "binary", space="probs")
    s = np.array([[0.9, 0.1], [0.3, 0.2], [0.6, 0.7]])
    y = np.array([[1, 0], [0, 0], [1, 0]])  # class 1 has no positives
    with pytest.raises(ValueError, match="class 1"):
        M.roc_auc(s, y, "multilabel", space="probs")
    per = M.roc_auc(s, y, "multilabel", space="probs", average=None)
    assert per[0] == 1.0 and np.isnan(per[1])
    # weighted: a class without positives weighs 0, as scikit-learn's average precision
    assert math.isclose(M.average_precision(s, y, "multilabel", space="probs", average="weighted"),
                        skm.average_precision_score(y, s, average="weighted"), rel_tol=1e-12)
    with pytest.raises(ValueError, match="unknown average"):
        M.roc_auc(s, y, "multilabel", space="probs", average="samples")


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matrix_equals_sklearn(rng, normalize):
    z, y, zb, yb, zl, yl, w = _data(rng, n=80, c=5)
    y[y == 3] = 0  # class 3 never true: an empty row stays 0
    pred = z.argmax(1)
    for sw in (None, w):
        np.testing.assert_allclose(M.confusion_matrix(z, y, "multiclass", normalize=normalize, sample_weight=sw),
                                   skm.confusion_matrix(y, pred, labels=range(5), normalize=normalize,
                                                        sample_weight=sw), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(M.confusion_matrix(zb, yb, "binary", normalize=normalize, sample_weight=sw),
                                   skm.confusion_matrix(yb, (zb > 0).astype(int), labels=[0, 1], normalize=normalize,
                                                        sample_weight=sw), rtol=1e-12, atol=1e-15)
    ml = M.confusion_matrix(zl[:, :4], yl[:, :4], "multilabel", sample_weight=w)
    np.testing.assert_allclose(ml, skm.multilabel_confusion_matrix(yl[:, :4], (zl[:, :4] > 0).astype(int),
                                                                   sample_weight=w), rtol=1e-12)
    assert M.confusion_matrix(z, y, "multiclass").dtype == np.int64
    with pytest.raises(ValueError, match="unknown normalize"):
        M.confusion_matrix(z, y, "multiclass", normalize="rows")


def test_prf_weighted_average_equals_sklearn(rng):
    z, y, zb, yb, zl, yl, w = _data(rng, n=200, c=5)
    for sw in (None, w):
        ref = skm.precision_recall_fscore_support(y, z.argmax(1), average="weighted", sample_weight=sw,
                                                  labels=range(5), zero_division=0)
        got = M.precision_recall_f1(z, y, "multiclass", average="weighted", sample_weight=sw)
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], ref[:3], rtol=1e-12)
        ref = skm.precision_recall_fscore_support(yl, (zl > 0).astype(int), average="weighted", sample_weight=sw,
                                                  zero_division=0)
        got = M.precision_recall_f1(zl, yl, "multilabel", average="weighted", sample_weight=sw)
        np.testing.assert_allclose([got["precision"], got["recall"], got["f1"]], ref[:3], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# debiased and smooth calibration error
# ---------------------------------------------------------------------------------------------


def _debiased_reference(conf, out, n_bins=15):
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf <= hi)
        k = int(m.sum())
        if k < 2:
            continue
        a, c = out[m].mean(), conf[m].mean()
        total += k / conf.size * ((a - c) ** 2 - a * (1 - a) / (k - 1))
    return math.sqrt(max(total, 0.0))


def test_debiased_l2(rng):
    z, y, zb, yb, zl, yl, w = _data(rng, n=400)
    p = _softmax(z)
    conf, out = p.max(1), (p.argmax(1) == y).astype(float)
    got = M.calibration_error(z, y, "multiclass", norm="l2", debias=True)
    assert math.isclose(got, _debiased_reference(conf, out), rel_tol=1e-12)
    assert got < M.calibration_error(z, y, "multiclass", norm="l2")
    # unit weights change nothing; binary classwise is the positive-class probability
    assert math.isclose(M.calibration_error(z, y, "multiclass", norm="l2", debias=True, sample_weight=np.ones(400)),
                        got, rel_tol=1e-12)
    pb = _expit(zb)
    assert math.isclose(M.calibration_error(zb, yb, "binary", norm="l2", debias=True, mode="classwise"),
                        _debiased_reference(pb, yb.astype(float)), rel_tol=1e-12)
    # a calibrated model: the debiased error is much nearer 0 than the plug-in one
    q = rng.uniform(size=3000)
    yq = (rng.uniform(size=3000) < q).astype(int)
    assert M.calibration_error(q, yq, "binary", space="probs", norm="l2", debias=True, mode="classwise") < \
        0.5 * M.calibration_error(q, yq, "binary", space="probs", norm="l2", mode="classwise")
    for norm in ("l1", "max"):
        with pytest.raises(ValueError, match="debias=True applies to norm='l2'"):
            M.calibration_error(z, y, "multiclass", norm=norm, debias=True)


@pytest.mark.parametrize("n", [40, 3000])
def test_smooth_ece_equals_relplot(rng, n):
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p ** 1.5).astype(int)
    assert M.smooth_calibration_error(p, y, "binary", space="probs") == pytest.approx(
        relplot.smECE(p, y.astype(float)), rel=1e-12, abs=1e-15)
    z = rng.normal(size=(n, 5)) * 2
    yc = rng.integers(0, 5, n)
    f, o = relplot.multiclass_logits_to_confidences(z, yc)
    value, sigma = M.smooth_calibration_error(z, yc, "multiclass", return_bandwidth=True)
    ref, ref_sigma = relplot.smECE(f, o, return_width=True)
    assert value == pytest.approx(ref, rel=1e-12, abs=1e-15) and sigma == ref_sigma
    # unit weights, and weights of any scale, change nothing
    assert M.smooth_calibration_error(p, y, "binary", space="probs", sample_weight=np.full(n, 3.0)) == \
        pytest.approx(M.smooth_calibration_error(p, y, "binary", space="probs"), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the bootstrap
# ---------------------------------------------------------------------------------------------


def _reference_percentile(metric, scores, labels, task, n_resamples, seed, level=0.95, **kw):
    """The bootstrap written out: re-run the metric on each resample's rows (the same draws)."""
    n = scores.shape[0]
    vals = [metric(scores[r], labels[r], task, **kw) for block in resample_indices(n, n_resamples, seed)
            for r in block]
    a = (1 - level) / 2
    return np.quantile(vals, [a, 1 - a])


@pytest.mark.parametrize("metric,kw", [
    (M.nll, {}), (M.brier, {}), (M.accuracy, {}), (M.calibration_error, {}),
    (M.calibration_error, {"norm": "max", "min_bin_count": 3}), (M.calibration_error, {"norm": "l2", "debias": True}),
    (M.roc_auc, {}), (M.average_precision, {"average": "weighted"}),
])
def test_bootstrap_fast_path_equals_direct_loop(rng, metric, kw):
    z, y, *_ = _data(rng, n=150)
    got = M.bootstrap_ci(metric, z, y, "multiclass", n_resamples=120, seed=3, **kw)
    lo, hi = _reference_percentile(metric, z, y, "multiclass", 120, 3, **kw)
    assert got.estimate == metric(z, y, "multiclass", **kw)
    assert got.low == pytest.approx(lo, rel=1e-10, abs=1e-13) and got.high == pytest.approx(hi, rel=1e-10, abs=1e-13)


@pytest.mark.parametrize("task", ["binary", "multilabel"])
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_fast_equals_rerun_with_weights_and_ignore(rng, task, method):
    z, y, zb, yb, zl, yl, w = _data(rng, n=120)
    s, lab = (zb, yb.copy()) if task == "binary" else (zl, yl.copy())
    lab[:6] = -100
    for metric, kw in ((M.nll, {}), (M.accuracy, {}), (M.calibration_error, {"norm": "max", "min_bin_count": 2}),
                       (M.roc_auc, {}), (M.average_precision, {"average": "micro"})):
        common = dict(n_resamples=60, method=method, ignore_index=-100, sample_weight=w, **kw)
        fast = M.bootstrap_ci(metric, s, lab, task, **common)
        rerun = M.bootstrap_ci(lambda *a, **k: metric(*a, **k), s, lab, task, **common)  # unknown: re-run
        np.testing.assert_allclose(fast, rerun, rtol=1e-10, atol=1e-13)


def test_bootstrap_coverage_of_a_known_accuracy():
    """95% intervals of a model that is right with probability 0.8 cover 0.8 in about 95% of experiments."""
    rng = np.random.default_rng(20240613)
    n, experiments, truth = 200, 200, 0.8
    covered = {"percentile": 0, "bca": 0}
    for e in range(experiments):
        y = rng.integers(0, 3, n)
        right = rng.uniform(size=n) < truth
        z = np.zeros((n, 3))
        z[np.arange(n), np.where(right, y, (y + 1) % 3)] = 1.0  # argmax is the label exactly when right
        for method in covered:
            ci = M.bootstrap_ci(M.accuracy, z, y, "multiclass", n_resamples=400, seed=e, method=method)
            covered[method] += ci.low <= truth <= ci.high
    for method, k in covered.items():
        assert 0.90 <= k / experiments <= 0.99, (method, k)


def test_paired_bootstrap(rng):
    zb = rng.normal(size=400) * 2
    yb = (rng.uniform(size=400) < _expit(zb)).astype(int)
    worse = zb * 0.2  # under-confident: higher NLL
    r = M.paired_bootstrap(M.nll, worse, zb, yb, "binary", n_resamples=300)
    assert r.estimate == pytest.approx(M.nll(zb, yb, "binary") - M.nll(worse, yb, "binary"))
    assert r.high < 0 and r.share_not_better == 0.0  # b (the calibrated one) is better: lower NLL
    # the direct loop on the same draws
    diffs = np.array([M.nll(zb[i], yb[i], "binary") - M.nll(worse[i], yb[i], "binary")
                      for block in resample_indices(400, 300, 0) for i in block])
    assert (r.low, r.high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), rel=1e-10)
    same = M.paired_bootstrap(M.accuracy, zb, zb, yb, "binary", n_resamples=50)
    assert (same.estimate, same.low, same.high, same.share_not_better) == (0.0, 0.0, 0.0, 1.0)
    up = M.paired_bootstrap(M.roc_auc, worse * 0 + rng.normal(size=400), zb, yb, "binary", n_resamples=100)
    assert up.low > 0 and up.share_not_better == 0.0  # higher AUC is better
    with pytest.raises(ValueError, match="higher_is_better"):
        M.paired_bootstrap(lambda *a, **k: M.nll(*a, **k), worse, zb, yb, "binary", n_resamples=10)
    with pytest.raises(ValueError, match="labels have shape"):
        M.paired_bootstrap(M.nll, worse[:10], zb, yb, "binary", n_resamples=10)


def test_bootstrap_other_metrics_and_errors(rng):
    z, y, *_ = _data(rng, n=100)
    f1 = M.bootstrap_ci(M.precision_recall_f1, z, y, "multiclass", key="f1", average="macro", n_resamples=40)
    assert f1.low <= f1.estimate <= f1.high
    sm = M.bootstrap_ci(M.smooth_calibration_error, z, y, "multiclass", n_resamples=20)
    assert 0 <= sm.low <= sm.high <= 1
    with pytest.raises(TypeError, match="key="):
        M.bootstrap_ci(M.precision_recall_f1, z, y, "multiclass", n_resamples=10)
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci(M.nll, z, y, "multiclass", level=95)
    with pytest.raises(ValueError, match="method"):
        M.bootstrap_ci(M.nll, z, y, "multiclass", method="basic")
    with pytest.raises(ValueError, match="n_resamples"):
        M.bootstrap_ci(M.nll, z, y, "multiclass", n_resamples=1)
    # undefined resamples (no bin of min_bin_count rows in some) are dropped with a warning, never silently
    biggest = int(M.reliability(z[:45], y[:45], "multiclass").count.max())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        M.bootstrap_ci(M.calibration_error, z[:45], y[:45], "multiclass", norm="max", min_bin_count=biggest,
                       n_resamples=100)
    assert any("undefined on" in str(c.message) for c in caught)
