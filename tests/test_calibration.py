"""sigmax.calibration: fits against SciPy/scikit-learn optimisers, invariants, thresholds, JSON, real data."""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sigmax
from sigmax import calibration as C
from sigmax import metrics as M
from sigmax.testing import assert_close, to_numpy

scipy_special = pytest.importorskip("scipy.special")
scipy_optimize = pytest.importorskip("scipy.optimize")


def _sample_multiclass(rng, n, c=5, scale=2.0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    z = rng.normal(size=(n, c)) * scale
    p = scipy_special.softmax(z, axis=1)
    y = np.minimum((rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), c - 1)
    return z, y


def _sample_sigmoid(rng, shape, scale=2.0):
    z = rng.normal(size=shape) * scale
    return z, (rng.uniform(size=shape) < scipy_special.expit(z)).astype(np.int64)


def _scipy_log_t(nll_of_t):
    res = scipy_optimize.minimize_scalar(lambda u: nll_of_t(np.exp(u)), bounds=(-6, 6), method="bounded",
                                         options={"xatol": 1e-12})
    return res.x


def _ml_nll(z, y, t):
    return -np.mean(scipy_special.log_softmax(z / t, axis=1)[np.arange(len(y)), y])


def _bce(z, y):
    return -np.mean(y * scipy_special.log_expit(z) + (1 - y) * scipy_special.log_expit(-z))


# ---------------------------------------------------------------------------------------------
# temperature scaling
# ---------------------------------------------------------------------------------------------


def test_temperature_matches_scipy_and_converges(rng):
    z, y = _sample_multiclass(rng, 3000)
    zs = 2.5 * z  # an over-confident model
    ts = C.TemperatureScaling().fit(zs, y)
    u_ref = _scipy_log_t(lambda t: _ml_nll(zs, y, t))
    assert abs(np.log(ts.temperature) - u_ref) < 1e-6
    assert ts.info_["converged"] and ts.info_["grad_max"] < 1e-10 and ts.info_["n_iter"] < 30
    assert ts.info_["nll_after"] < ts.info_["nll_before"]
    assert_close(ts.info_["nll_after"], _ml_nll(zs, y, ts.temperature), "float64")
    assert 2.2 < ts.temperature < 2.8


def test_temperature_near_one_on_calibrated_data(rng):
    z, y = _sample_multiclass(rng, 20000)
    assert abs(C.TemperatureScaling().fit(z, y).temperature - 1) < 0.05
    zb, yb = _sample_sigmoid(rng, 20000)
    assert abs(C.TemperatureScaling("binary").fit(zb, yb).temperature - 1) < 0.05


def test_temperature_sharpens_underconfident_models(rng):
    z, y = _sample_multiclass(rng, 3000)
    assert 0.3 < C.TemperatureScaling().fit(z / 2.5, y).temperature < 0.5


def test_temperature_keeps_argmax_and_lowers_nll(backend, rng):
    z, y = _sample_multiclass(rng, 500)
    ts = C.TemperatureScaling().fit(3 * z, y)
    zb = backend.asarray(3 * z)
    out = ts.transform(zb)
    assert type(out) is type(zb)
    np.testing.assert_array_equal(np.argmax(to_numpy(out), 1), np.argmax(3 * z, 1))
    assert M.nll(out, y, "multiclass") < M.nll(zb, y, "multiclass")
    assert_close(ts.predict_proba(zb), scipy_special.softmax(3 * z / ts.temperature, axis=1), "float64")


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10.0), shift=st.floats(-50.0, 50.0))
def test_temperature_properties(seed, scale, shift):
    rng = np.random.default_rng(seed)
    z, y = _sample_multiclass(rng, 200, c=4)
    zs = scale * z
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # separable draws warn
        ts = C.TemperatureScaling().fit(zs, y)
        # softmax is shift-invariant per row, so the fitted temperature is too
        shifted = C.TemperatureScaling().fit(zs + shift * rng.uniform(size=(200, 1)), y)
    assert ts.temperature > 0
    assert_close(shifted.temperature, ts.temperature, "float64", factor=1e5)
    np.testing.assert_array_equal(np.argmax(ts.transform(zs), axis=1), np.argmax(zs, axis=1))
    assert ts.info_["nll_after"] <= ts.info_["nll_before"] + 1e-12


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_sigmoid_temperatures_match_scipy(rng, task):
    shape = (2000,) if task == "binary" else (2000, 3)
    z, y = _sample_sigmoid(rng, shape)
    scales = 2.0 if task == "binary" else np.array([0.5, 1.0, 3.0])
    zs = z * scales
    if task == "binary":
        ts = C.TemperatureScaling("binary").fit(zs, y)
        assert abs(np.log(ts.temperature) - _scipy_log_t(lambda t: _bce(zs / t, y))) < 1e-6
        return
    per = C.TemperatureScaling("multilabel", per_class=True).fit(zs, y)
    assert per.temperature.shape == (3,)
    for c in range(3):
        assert abs(np.log(per.temperature[c]) - _scipy_log_t(lambda t, c=c: _bce(zs[:, c] / t, y[:, c]))) < 1e-6
    shared = C.TemperatureScaling("multilabel").fit(zs, y)
    assert isinstance(shared.temperature, float)
    assert abs(np.log(shared.temperature) - _scipy_log_t(lambda t: _bce(zs / t, y))) < 1e-6


def test_fit_from_probs_and_log_probs_gives_the_same_temperature(rng):
    z, y = _sample_multiclass(rng, 1000)
    t = C.TemperatureScaling().fit(2 * z, y).temperature
    p = scipy_special.softmax(2 * z, axis=1)
    assert_close(C.TemperatureScaling().fit(p, y, space="probs").temperature, t, "float64", factor=1e4)
    assert_close(C.TemperatureScaling().fit(np.log(p), y, space="log_probs").temperature, t, "float64", factor=1e4)
    zb, yb = _sample_sigmoid(rng, 1000)
    tb = C.TemperatureScaling("binary").fit(zb, yb).temperature
    ts_p = C.TemperatureScaling("binary").fit(scipy_special.expit(zb), yb, space="probs")
    assert_close(ts_p.temperature, tb, "float64", factor=1e6)
    ts_lp = C.TemperatureScaling("binary").fit(scipy_special.log_expit(zb), yb, space="log_probs")
    assert_close(ts_lp.temperature, tb, "float64", factor=1e4)
    # transform of probabilities gives logits whose sigmoid is the calibrated probability
    assert_close(ts_p.predict_proba(scipy_special.expit(zb)), scipy_special.expit(zb / tb), "float64", factor=1e6)


def test_masked_classes_do_not_break_the_fit(rng):
    z, y = _sample_multiclass(rng, 500, c=4)
    masked = np.concatenate([2 * z, np.full((500, 1), -np.inf)], axis=1)  # a class that can never occur
    t = C.TemperatureScaling().fit(masked, y).temperature
    assert_close(t, C.TemperatureScaling().fit(2 * z, y).temperature, "float64", factor=1e3)
    out = C.TemperatureScaling().fit(masked, y).transform(masked)
    assert np.all(out[:, -1] == -np.inf) and np.all(np.isfinite(out[:, :4]))


def test_transform_in_probability_spaces_on_torch(rng):
    torch = pytest.importorskip("torch")
    zb, yb = _sample_sigmoid(rng, (400, 3))
    ps = C.PlattScaling("multilabel").fit(zb, yb)
    p = scipy_special.expit(zb)
    for space, s in (("probs", p), ("log_probs", scipy_special.log_expit(zb))):
        out = ps.predict_proba(torch.tensor(s, dtype=torch.float32), space=space)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        assert_close(out, ps.predict_proba(zb), "float32", factor=64)
    z, y = _sample_multiclass(rng, 400, c=3)
    ts = C.TemperatureScaling().fit(z, y)
    lp = scipy_special.log_softmax(z, axis=1)
    out = ts.predict_proba(torch.tensor(lp), space="log_probs")
    assert_close(out, ts.predict_proba(z), "float64", factor=16)
    with pytest.raises(ValueError, match="log_probs"):
        ts.transform(torch.tensor(np.exp(lp)), space="log_probs")


def test_transform_keeps_array_type_dtype_and_autograd(rng):
    torch = pytest.importorskip("torch")
    z, y = _sample_multiclass(rng, 300, c=4)
    for scaler in (C.TemperatureScaling(), C.VectorScaling()):
        scaler.fit(z, y)
        zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
        out = scaler.transform(zt)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        out.sum().backward()
        assert zt.grad is not None and torch.isfinite(zt.grad).all()
        half = scaler.transform(torch.tensor(z, dtype=torch.bfloat16))
        assert half.dtype == torch.bfloat16
        np.testing.assert_allclose(scaler.transform(z.astype(np.float32)), scaler.transform(z), rtol=1e-5,
                                   atol=1e-5)
    # class axis other than the last
    vs = C.VectorScaling().fit(z, y)
    vs_t = C.VectorScaling().fit(z.T, y, axis=0)
    assert_close(vs_t.transform(z.T).T, vs.transform(z), "float64", factor=1e6)


def test_jax_transform(rng):
    jnp = pytest.importorskip("jax.numpy")
    z, y = _sample_sigmoid(rng, (200, 3))
    ps = C.PlattScaling("multilabel").fit(z, y)
    out = ps.transform(jnp.asarray(z))
    assert "jax" in type(out).__module__
    assert_close(out, ps.transform(z), "float64")


# ---------------------------------------------------------------------------------------------
# vector and Platt scaling
# ---------------------------------------------------------------------------------------------


def test_vector_scaling_matches_scipy(rng):
    z, y = _sample_multiclass(rng, 2000, c=4)
    zs = z * np.array([2.0, 1.0, 0.5, 1.5]) + np.array([0.0, 1.0, -1.0, 0.5])
    for l2 in (0.0, 1e-2):
        vs = C.VectorScaling(l2=l2).fit(zs, y)
        x0 = np.r_[np.ones(4), np.zeros(4)]

        def f(x, l2=l2, x0=x0):
            return _ml_nll(zs * x[:4] + x[4:], y, 1.0) + 0.5 * l2 * np.sum((x - x0) ** 2)

        ref = scipy_optimize.minimize(f, x0, method="BFGS", options={"gtol": 1e-10})
        ours = np.r_[vs.weight_, vs.bias_]
        assert f(ours) <= ref.fun + 1e-10
        # softmax ignores a common shift of the biases: compare weights and centred biases
        np.testing.assert_allclose(vs.weight_, ref.x[:4], atol=1e-5)
        np.testing.assert_allclose(vs.bias_ - vs.bias_.mean(), ref.x[4:] - ref.x[4:].mean(), atol=1e-5)
        assert vs.info_["converged"]
    # the recovered scales undo the distortion (roughly: 2000 samples)
    np.testing.assert_allclose(C.VectorScaling(l2=0).fit(zs, y).weight_ * [2.0, 1.0, 0.5, 1.5], 1.0, atol=0.2)


def test_platt_matches_unregularised_logistic_regression(rng):
    lm = pytest.importorskip("sklearn.linear_model")
    z, y = _sample_sigmoid(rng, (3000, 2))
    zs = 3 * z - 1
    ps = C.PlattScaling("multilabel", prior_correction=False).fit(zs, y)
    for c in range(2):
        lr = lm.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(zs[:, [c]], y[:, c])
        assert ps.weight_[c] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
        assert ps.bias_[c] == pytest.approx(lr.intercept_[0], rel=1e-5, abs=1e-6)
    # with Platt's smoothed targets the fit is close, and stays finite on separable data
    assert C.PlattScaling("multilabel").fit(zs, y).weight_ == pytest.approx(ps.weight_, rel=0.02)
    sep = C.PlattScaling("binary").fit(np.r_[-np.arange(1, 41.0), np.arange(1, 41.0)], np.r_[np.zeros(40), np.ones(40)])
    assert np.isfinite(sep.weight_) and sep.weight_ > 0


# ---------------------------------------------------------------------------------------------
# warnings and errors
# ---------------------------------------------------------------------------------------------


def test_small_calibration_set_warns(rng):
    z, y = _sample_multiclass(rng, 20, c=10)
    with pytest.warns(UserWarning, match="1 parameter"):
        C.TemperatureScaling().fit(z, y)
    z, y = _sample_multiclass(rng, 200, c=10)
    with pytest.warns(UserWarning, match="20 parameter"):
        C.VectorScaling().fit(z, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.TemperatureScaling().fit(z, y)  # 200 samples for 1 parameter: no warning


def test_separable_data_warns():
    z = np.r_[-np.arange(1, 41.0), np.arange(1, 41.0)]
    y = np.r_[np.zeros(40), np.ones(40)]
    with pytest.warns(UserWarning, match="every calibration sample correctly"):
        ts = C.TemperatureScaling("binary").fit(z, y)
    assert 0 < ts.temperature < 0.1
    with pytest.warns(UserWarning, match="every calibration sample correctly"):
        C.TemperatureScaling().fit(np.stack([-z, z], axis=1), y.astype(int))


def test_errors_name_the_fix(rng):
    z, y = _sample_multiclass(rng, 100, c=3)
    with pytest.raises(ValueError, match="PlattScaling"):
        C.VectorScaling("binary")
    with pytest.raises(ValueError, match="VectorScaling"):
        C.PlattScaling("multiclass")
    with pytest.raises(ValueError, match="per_class"):
        C.TemperatureScaling("multiclass", per_class=True)
    with pytest.raises(ValueError, match="unknown task"):
        C.TemperatureScaling("multi-class-ish")
    with pytest.raises(ValueError, match="not fitted"):
        C.TemperatureScaling().transform(z)
    with pytest.raises(ValueError, match="fitted on 3"):
        C.VectorScaling().fit(np.r_[z, z], np.r_[y, y]).transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="out of range"):
        C.TemperatureScaling().fit(z, y + 1)
    with pytest.raises(ValueError, match="space='logits'"):
        C.TemperatureScaling().fit(z, y, space="probs")
    with pytest.raises(ValueError, match="unknown method"):
        C.Calibrator().fit(z, y, "multiclass", method="isotonicity")
    with pytest.raises(ValueError, match="unknown tune"):
        C.Calibrator().fit(z, y, "multiclass", tune="accuracy")
    with pytest.raises(ValueError, match="VectorScaling is for"):
        C.Calibrator().fit(z[:, 0], (y > 0).astype(int), "binary", method="vector")
    with pytest.raises(ValueError, match="not fitted"):
        C.Calibrator().predict_proba(z)
    with pytest.raises(ValueError, match="gtol"):
        C.TemperatureScaling(gtol=0)
    with pytest.raises(ValueError, match="l2"):
        C.VectorScaling(l2=-1.0)


# ---------------------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------------------


def _prf(p, y, t):
    pred = p > t
    tp = np.sum(pred & (y == 1))
    fp = np.sum(pred & (y == 0))
    fn = np.sum(~pred & (y == 1))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return prec, rec, f1


def _all_cuts(p):
    u = np.unique(p)
    # p > u_k for every k, and everything positive (p > u_0 / 2; a probability of exactly 0 can never be
    # positive under p > t with t in [0, 1], so no cut below 0 is offered)
    return np.r_[u, u[0] / 2]


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 60), ties=st.booleans())
def test_tuned_threshold_is_optimal(seed, n, ties):
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    if ties:
        p = np.round(p, 1)
    y = (rng.uniform(size=n) < p).astype(np.int64)
    if y.sum() == 0:
        y[0] = 1
    t = C.tune_thresholds(p, y, "binary", space="probs")
    assert t.shape == () and 0 <= t <= 1
    best = max(_prf(p, y, c)[2] for c in _all_cuts(p))
    assert _prf(p, y, float(t))[2] == pytest.approx(best)
    # the threshold sits strictly between calibration scores, so p > t and p >= t agree
    assert not np.any(p == t) or t == 0
    for target in (0.5, 0.8):
        reachable = [c for c in _all_cuts(p) if _prf(p, y, c)[1] >= target]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out of reach where a positive scores exactly 0
            tp_ = C.tune_thresholds(p, y, "binary", space="probs", target_recall=target)
        prec, rec, _ = _prf(p, y, float(tp_))
        if reachable:
            assert rec >= target
            assert prec == pytest.approx(max(_prf(p, y, c)[0] for c in reachable))
        else:  # the highest recall any threshold gives
            assert rec == pytest.approx(max(_prf(p, y, c)[1] for c in _all_cuts(p)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the target may be out of reach
            tq = C.tune_thresholds(p, y, "binary", space="probs", target_precision=target)
        prec, rec, _ = _prf(p, y, float(tq))
        feasible = [c for c in _all_cuts(p) if _prf(p, y, c)[0] >= target and np.any(p > c)]
        if feasible:
            assert prec >= target
            assert rec == pytest.approx(max(_prf(p, y, c)[1] for c in feasible))


def test_thresholds_multilabel_and_edge_cases(rng):
    z, y = _sample_sigmoid(rng, (300, 3))
    y[:, 2] = 0
    with pytest.warns(UserWarning, match="label 2 has no positive"):
        t = C.tune_thresholds(z, y, "multilabel")
    assert t.shape == (3,) and np.all((t >= 0) & (t <= 1))
    assert not np.any(scipy_special.expit(z[:, 2]) > t[2])  # no positives: predict none
    for c in range(2):  # each class is tuned on its own column
        assert t[c] == C.tune_thresholds(z[:, c], y[:, c], "binary")
    with pytest.warns(UserWarning, match="no threshold reaches precision"):
        C.tune_thresholds([0.9, 0.8], [0, 1], "binary", space="probs", target_precision=0.9)
    with pytest.raises(ValueError, match="argmax"):
        C.tune_thresholds(np.zeros((3, 3)), [0, 1, 2], "multiclass")
    with pytest.raises(ValueError, match="at most one"):
        C.tune_thresholds(z, y, "multilabel", target_precision=0.9, target_recall=0.9)
    with pytest.raises(ValueError, match="target_recall"):
        C.tune_thresholds(z, y, "multilabel", target_recall=1.5)
    with pytest.raises(ValueError, match="objective"):
        C.tune_thresholds(z, y, "multilabel", objective="accuracy")


# ---------------------------------------------------------------------------------------------
# Calibrator, interpret, JSON
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,method", [("multiclass", "temperature"), ("multiclass", "vector"),
                                         ("multiclass", None), ("binary", "temperature"), ("binary", "platt"),
                                         ("multilabel", "temperature"), ("multilabel", "platt")])
def test_calibrator_round_trip_and_interpret(tmp_path, rng, task, method):
    if task == "multiclass":
        z, y = _sample_multiclass(rng, 600, c=4)
    else:
        z, y = _sample_sigmoid(rng, (600,) if task == "binary" else (600, 3))
    cal = C.Calibrator().fit(2 * z, y, task, method=method)
    if task == "multiclass":
        assert cal.thresholds is None
    else:
        assert isinstance(cal.thresholds, np.ndarray)
        assert cal.thresholds.shape == (() if task == "binary" else (3,))
        # tuned F1 on the calibration set is at least that of 0.5
        probs = cal.predict_proba(2 * z)
        assert M.precision_recall_f1(probs, y, task, space="probs", threshold=cal.thresholds)["f1"] >= \
            M.precision_recall_f1(probs, y, task, space="probs")["f1"] - 1e-12
    path = tmp_path / "cal.json"
    cal.save(path)
    assert json.loads(path.read_text())["type"] == "Calibrator"
    back = C.load(path)
    np.testing.assert_array_equal(back.transform(2 * z), cal.transform(2 * z))  # floats round-trip exactly
    np.testing.assert_array_equal(back.predict(2 * z), cal.predict(2 * z))
    # predict is interpret() on the calibrated logits with the tuned thresholds, i.e. p > t
    p = to_numpy(cal.predict_proba(2 * z))
    expected = p.argmax(1) if task == "multiclass" else (p > (0.5 if cal.thresholds is None else cal.thresholds))
    np.testing.assert_array_equal(to_numpy(cal.predict(2 * z)), expected.astype(np.int64))
    if cal.scaler is not None:
        cal.scaler.save(tmp_path / "scaler.json")
        s2 = C.load(tmp_path / "scaler.json")
        assert type(s2) is type(cal.scaler)
        np.testing.assert_array_equal(s2.transform(2 * z), cal.scaler.transform(2 * z))


def test_thresholds_feed_interpret_and_metrics(rng):
    z, y = _sample_sigmoid(rng, (500, 3))
    cal = C.Calibrator().fit(z, y, "multilabel", method="platt")
    logits = cal.transform(z)
    decided = sigmax.interpret(logits, "multilabel", threshold=cal.thresholds).predictions
    np.testing.assert_array_equal(decided, cal.predict(z))
    acc = M.accuracy(logits, y, "multilabel", threshold=cal.thresholds)
    assert acc == pytest.approx(np.mean(decided == y))


def test_calibrator_targets_and_torch(rng):
    torch = pytest.importorskip("torch")
    z, y = _sample_sigmoid(rng, (800, 2))
    cal = C.Calibrator().fit(torch.tensor(z), torch.tensor(y), "multilabel", method="platt", target_recall=0.9)
    assert cal.tune == "recall>=0.9"
    rec = M.precision_recall_f1(cal.predict_proba(torch.tensor(z)), y, "multilabel", space="probs",
                                threshold=cal.thresholds, average=None)["recall"]
    assert np.all(rec >= 0.9)
    out = cal.predict(torch.tensor(z))
    assert isinstance(out, torch.Tensor)


def test_load_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not a sigmax calibration"):
        C.load(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        C.load(bad)
    bad.write_text(json.dumps({"sigmax": "calibration", "format": 99, "type": "Calibrator"}))
    with pytest.raises(ValueError, match="format 99"):
        C.load(bad)
    bad.write_text(json.dumps({"sigmax": "calibration", "format": 1, "type": "Isotonic"}))
    with pytest.raises(ValueError, match="unknown calibrator type"):
        C.load(bad)


# ---------------------------------------------------------------------------------------------
# real data: scikit-learn digits (sigmax.datasets)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,method", [("multiclass", "temperature"), ("multiclass", "vector"),
                                         ("multilabel", "temperature"), ("multilabel", "platt"),
                                         ("binary", "temperature")])
def test_calibration_lowers_held_out_ece_on_digits(task, method):
    pytest.importorskip("sklearn")
    datasets = pytest.importorskip("sigmax.datasets")
    d = datasets.digits_scores(task)
    cal = C.Calibrator().fit(d.calib_logits, d.calib_labels, task, method=method)
    before = M.summary(d.test_logits, d.test_labels, task)
    after = M.summary(cal.predict_proba(d.test_logits), d.test_labels, task, space="probs", threshold=cal.thresholds)
    assert after["nll"] < before["nll"]
    assert after["ece"] < before["ece"]
    if method == "temperature" and task == "multiclass":
        assert cal.scaler.temperature > 1  # the weakly regularised model is over-confident
        assert after["accuracy"] == before["accuracy"]  # argmax unchanged


# ---------------------------------------------------------------------------------------------
# loaded files are validated field by field; saves are atomic
# ---------------------------------------------------------------------------------------------


def _fitted(rng, task, method):
    if task == "multiclass":
        z, y = _sample_multiclass(rng, 400, c=3)
    else:
        z, y = _sample_sigmoid(rng, (400,) if task == "binary" else (400, 3))
    return C.Calibrator().fit(2 * z, y, task, method=method), z, y


@pytest.mark.parametrize("task, method, edit, field", [
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].update(temperature=-2.0), "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].update(temperature=0), "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].update(temperature=float("nan")),
     "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].update(temperature=float("inf")),
     "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].update(temperature=True), "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"]["params"].pop("temperature"), "scaler.params.temperature"),
    ("multiclass", "temperature", lambda d: d["scaler"].update(type="VectorScaling"), "scaler.type"),
    ("multiclass", "temperature", lambda d: d["scaler"].update(task="multilabel"), "scaler.task"),
    ("multiclass", "temperature", lambda d: d["scaler"].update(space="probs"), "scaler.space"),
    ("multiclass", "temperature", lambda d: d.update(n_classes=5), "n_classes"),
    ("multiclass", "temperature", lambda d: d.update(method="isotonic"), "method"),
    ("multiclass", "temperature", lambda d: d.update(method=None), "scaler"),
    ("multiclass", "temperature", lambda d: d.update(space="logit"), "space"),
    ("multiclass", "temperature", lambda d: d.update(axis="last"), "axis"),
    ("multiclass", "temperature", lambda d: d.update(thresholds=0.5), "thresholds"),
    ("multiclass", "temperature", lambda d: d["scaler"]["options"].update(fast=True), "scaler.options"),
    ("multiclass", "temperature", lambda d: d["scaler"]["options"].update(per_class=1), "scaler.options.per_class"),
    ("multiclass", "vector", lambda d: d["scaler"]["params"].update(weight=[1.0, 2.0]), "scaler.params.weight"),
    ("multiclass", "vector", lambda d: d["scaler"]["params"].update(bias=[0.0, None, 0.0]), "scaler.params.bias[1]"),
    ("multiclass", "vector", lambda d: d["scaler"]["params"].update(weight=1.0), "scaler.params.weight"),
    ("multiclass", "vector", lambda d: d["scaler"].update(n_classes=1), "scaler.n_classes"),
    ("multilabel", "temperature", lambda d: d["scaler"]["params"].update(temperature=[1.0, -1.0, 1.0]),
     "scaler.params.temperature[1]"),
    ("multilabel", "platt", lambda d: d["scaler"]["params"].update(weight=[1.0, 1.0]), "scaler.params.weight"),
    ("multilabel", "platt", lambda d: d.update(thresholds=[0.5, 1.5, 0.5]), "thresholds[1]"),
    ("multilabel", "platt", lambda d: d.update(thresholds=[0.5, 0.5]), "thresholds"),
    ("binary", "platt", lambda d: d["scaler"]["params"].update(bias=float("nan")), "scaler.params.bias"),
    ("binary", "temperature", lambda d: d.update(thresholds=-0.1), "thresholds"),
    ("binary", None, lambda d: d.update(scaler={}), "scaler"),
    ("binary", None, lambda d: d.update(format=True), "format True"),
])
def test_from_dict_validates_every_field(rng, task, method, edit, field):
    cal, z, _ = _fitted(rng, task, method)
    d = json.loads(json.dumps(cal.to_dict()))
    edit(d)
    with pytest.raises(ValueError) as e:
        C.from_dict(d)
    assert field in str(e.value)


def test_scaler_descriptions_are_validated_too(rng):
    z, y = _sample_multiclass(rng, 300, c=3)
    d = C.TemperatureScaling().fit(z, y).to_dict()
    d["params"]["temperature"] = -1.0
    with pytest.raises(ValueError, match="'params.temperature' must be > 0"):
        C.from_dict(d)
    d = C.VectorScaling().fit(z, y).to_dict()
    d["n_classes"] = 4
    with pytest.raises(ValueError, match="'params.weight' must have one number per class"):
        C.from_dict(d)


def test_valid_files_still_round_trip_without_the_new_field(rng, tmp_path):
    cal, z, _ = _fitted(rng, "multilabel", "platt")
    d = cal.to_dict()
    d.pop("n_classes")  # files saved before n_classes was stored
    back = C.from_dict(json.loads(json.dumps(d)))
    assert back.n_classes_ == 3
    np.testing.assert_array_equal(back.predict(2 * z), cal.predict(2 * z))


def test_save_is_atomic_and_creates_folders(rng, tmp_path, monkeypatch):
    cal, _, _ = _fitted(rng, "binary", "temperature")
    path = tmp_path / "a" / "b" / "cal.json"
    cal.save(path)
    good = path.read_text()
    assert C.load(path).task == "binary"
    monkeypatch.setattr(C.Calibrator, "to_dict", lambda self: {"sigmax": "calibration", "bad": object()})
    with pytest.raises(TypeError):
        cal.save(path)  # json.dump fails half-way
    assert path.read_text() == good
    assert [p.name for p in path.parent.iterdir()] == ["cal.json"]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="is a directory"):
        cal.save(tmp_path / "a")


# ---------------------------------------------------------------------------------------------
# fit_calibrator and ignore_index
# ---------------------------------------------------------------------------------------------


def test_fit_calibrator_resolves_method_and_tune(rng):
    zb, yb = _sample_sigmoid(rng, (500,))
    zm, ym = _sample_multiclass(rng, 500, c=3)
    cal = C.fit_calibrator(2 * zb, yb, "binary")
    assert cal.method == "temperature" and cal.thresholds is None and cal.space_ == "logits"
    assert C.fit_calibrator(2 * zb, yb, "binary", tune="auto").thresholds.shape == ()
    assert C.fit_calibrator(2 * zb, yb, "binary", method="none", tune="f1").scaler is None
    assert C.fit_calibrator(2 * zm, ym, "multiclass", tune="auto").thresholds is None
    assert C.fit_calibrator(2 * zm, ym, "multiclass", method="auto").method == "temperature"
    same = C.Calibrator().fit(2 * zm, ym, "multiclass", method="vector")
    got = C.fit_calibrator(2 * zm, ym, "multiclass", method="Vector")
    np.testing.assert_array_equal(got.transform(zm), same.transform(zm))
    p = C.fit_calibrator(scipy_special.expit(zb), yb, "binary", space="probs", method="platt", tune="f1")
    assert p.space_ == "probs" and p.describe().startswith("Platt scaling, weight ")
    with pytest.raises(ValueError, match="tune='f1' is for binary and multilabel"):
        C.fit_calibrator(zm, ym, "multiclass", tune="f1")
    with pytest.raises(ValueError, match="target_recall is for binary and multilabel"):
        C.fit_calibrator(zm, ym, "multiclass", target_recall=0.9)
    with pytest.raises(ValueError, match="unknown method"):
        C.fit_calibrator(zm, ym, "multiclass", method="isotonicity")
    with pytest.raises(ValueError, match="unknown tune"):
        C.fit_calibrator(zb, yb, "binary", tune="accuracy")
    with pytest.raises(ValueError, match="method='platt' is for task='binary' or task='multilabel' only"):
        C.fit_calibrator(zm, ym, "multiclass", method="platt")


def test_fit_calibrator_collects_warnings_as_notes(rng):
    z, y = _sample_multiclass(rng, 20, c=3)
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C.fit_calibrator(z, y, "multiclass", method="vector", notes=notes)
    assert notes and all(n.startswith("Calibration warning: ") for n in notes)
    with pytest.warns(UserWarning, match="parameter"):
        C.fit_calibrator(z, y, "multiclass", method="vector")


def test_describe_and_check_compatible(rng):
    cal, _, _ = _fitted(rng, "multiclass", "temperature")
    assert cal.describe().startswith("temperature scaling, T = ")
    assert C.Calibrator().fit(np.zeros((40, 3)), np.arange(40) % 3, "multiclass", method=None).describe() == \
        "no rescaling"
    cal.check_compatible("multiclass", 3)
    with pytest.raises(ValueError, match="fitted for task='multiclass'"):
        cal.check_compatible("multilabel", 3)
    with pytest.raises(ValueError, match="fitted on 3 classes but the scores have 4"):
        cal.check_compatible("multiclass", 4)
    ml, _, _ = _fitted(rng, "multilabel", "temperature")
    assert ml.describe().endswith("(one per class)")


def test_ignore_index_drops_rows_and_masks_entries(rng):
    z, y = _sample_multiclass(rng, 600, c=3)
    y2 = y.copy()
    y2[::5] = -100
    keep = y2 != -100
    a = C.fit_calibrator(z, y2, "multiclass", ignore_index=-100)
    b = C.fit_calibrator(z[keep], y[keep], "multiclass")
    assert a.scaler.temperature == b.scaler.temperature
    # multilabel: an ignored entry leaves out that (sample, label) only; per-label fits use their kept rows
    zm, ym = _sample_sigmoid(rng, (600, 3))
    ym2 = ym.copy()
    mask = rng.uniform(size=ym.shape) < 0.2
    ym2[mask] = -100
    for method in ("temperature", "platt"):
        cal = C.fit_calibrator(zm, ym2, "multilabel", method=method, tune="f1", ignore_index=-100)
        for k in range(3):
            kk = ~mask[:, k]
            one = C.fit_calibrator(zm[kk, k], ym[kk, k], "binary", method=method, tune="f1")
            if method == "temperature":
                assert cal.scaler.temperature[k] == pytest.approx(one.scaler.temperature, rel=1e-9)
            else:
                assert cal.scaler.weight_[k] == pytest.approx(one.scaler.weight_, rel=1e-7)
                assert cal.scaler.bias_[k] == pytest.approx(one.scaler.bias_, rel=1e-7, abs=1e-9)
            assert cal.thresholds[k] == pytest.approx(float(one.thresholds), rel=1e-6)
    shared = C.TemperatureScaling("multilabel").fit(zm, ym2, ignore_index=-100)
    flat = C.TemperatureScaling("binary").fit(zm[~mask], ym[~mask])
    assert shared.temperature == pytest.approx(flat.temperature, rel=1e-9)
    with pytest.raises(ValueError, match="ignore_index"):
        C.fit_calibrator(zm, ym2, "multilabel")


def test_calibration_modules_are_small_and_import_no_private_names():
    import ast
    import pathlib

    folder = pathlib.Path(C.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert text.count("\n") <= 800, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                inside = node.level == 1  # the package's own private modules
                for alias in node.names:
                    assert inside or not alias.name.startswith("_"), (path.name, node.module, alias.name)


def test_resolve_method_is_the_one_rule_and_runs_before_any_work():
    import numpy as np

    from sigmax.calibration import DEFAULT_METHOD, fit_calibrator, resolve_method
    from sigmax.report import calibration_report

    assert resolve_method("multilabel") == (DEFAULT_METHOD["multilabel"], "f1")
    assert resolve_method("multiclass", "none", "auto") == (None, None)
    with pytest.raises(ValueError, match="method='platt' is for task='binary' or task='multilabel' only"):
        resolve_method("multiclass", "platt")
    with pytest.raises(ValueError, match="unknown method 'isotonicity'"):
        resolve_method("binary", "isotonicity")
    assert resolve_method("binary", "auto") == ("auto", "f1")
    for m in ("isotonic", "histogram", "beta"):
        assert resolve_method("multilabel", m) == (m, "f1")
    assert resolve_method("multiclass", "Dirichlet") == ("dirichlet", None)
    with pytest.raises(ValueError, match="method='dirichlet' is for task='multiclass' only"):
        resolve_method("binary", "dirichlet")
    with pytest.raises(ValueError, match="unknown tune 'f2'"):
        resolve_method("binary", tune="f2")
    z, y = np.zeros((4, 3)), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="method='platt' is for"):
        fit_calibrator(z, y, "multiclass", method="platt")

    class Unread:  # a report must refuse the method before it reads a single score
        def __array__(self, *a, **k):
            raise AssertionError("the scores were read")

    with pytest.raises(ValueError, match="method='vector' is for task='multiclass' only"):
        calibration_report(Unread(), Unread(), "binary", method="vector")
