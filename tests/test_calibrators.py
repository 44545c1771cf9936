"""Isotonic, histogram, beta and Dirichlet calibration, method="auto", and their persistence."""

import re

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit, log_softmax, softmax
from scipy.special import logit as scipy_logit

import sigmax.calibration as C
from sigmax.calibration._select import select_method


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _binary(rng, n=600, scale=3.0):
    z = rng.normal(size=n) * 2
    y = (rng.uniform(size=n) < expit(z)).astype(int)
    return scale * z, y


def _multiclass(rng, n=600, c=4, scale=2.0):
    z = rng.normal(size=(n, c)) * 1.5
    y = np.argmax(z + rng.gumbel(size=(n, c)), axis=1)
    return scale * z, y


def _multilabel(rng, n=500, c=3):
    z = rng.normal(size=(n, c)) * 2
    y = (rng.uniform(size=(n, c)) < expit(z)).astype(int)
    return 2.5 * z, y


# ------------------------------------------------------------------------------------------ isotonic
def test_isotonic_equals_scikit_learn_per_class(rng):
    from sklearn.isotonic import IsotonicRegression

    z, y = _binary(rng)
    p = expit(z)
    iso = C.IsotonicCalibration("binary").fit(p, y, space="probs")
    ref = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    np.testing.assert_allclose(iso.x_thresholds_[0], ref.X_thresholds_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(iso.y_thresholds_[0], ref.y_thresholds_, rtol=1e-12, atol=1e-15)
    t = np.r_[expit(rng.normal(size=300) * 6), 0.0, 1.0]
    with np.errstate(divide="ignore"):
        zt = scipy_logit(t)[:, None]  # the step function itself, before any clip
    np.testing.assert_allclose(iso.calibrated_columns(zt)[:, 0], ref.predict(t), rtol=1e-9, atol=1e-12)
    eps = C.DEFAULT_EPS  # predict_proba: the same values, kept in [eps, 1 - eps]
    np.testing.assert_allclose(iso.predict_proba(t, space="probs"), np.clip(ref.predict(t), eps, 1 - eps),
                               rtol=1e-9, atol=1e-12)
    # multiclass: one-vs-rest on the softmax columns, rows renormalised
    zm, ym = _multiclass(rng)
    pm, tm = softmax(zm, axis=1), softmax(_multiclass(rng, 200)[0], axis=1)
    isom = C.IsotonicCalibration("multiclass").fit(zm, ym)
    q = np.stack([IsotonicRegression(out_of_bounds="clip").fit(pm[:, k], ym == k).predict(tm[:, k])
                  for k in range(4)], axis=1)
    q = np.maximum(q, eps)
    np.testing.assert_allclose(isom.predict_proba(np.log(tm)), q / q.sum(1, keepdims=True), rtol=1e-8, atol=1e-12)


def test_pool_adjacent_violators_matches_scikit_learn(rng):
    from sklearn.isotonic import isotonic_regression

    from sigmax.calibration._nonparametric import pool_adjacent_violators

    for _ in range(20):
        y, w = rng.normal(size=50).round(1), rng.uniform(0.5, 2, size=50)
        np.testing.assert_allclose(pool_adjacent_violators(y, w), isotonic_regression(y, sample_weight=w),
                                   rtol=1e-12, atol=1e-12)


def test_multilabel_ignore_index_masks_entries(rng):
    z, y = _multilabel(rng)
    y = y.copy()
    y[:50, 1] = -100
    iso = C.IsotonicCalibration("multilabel").fit(z, y, ignore_index=-100)
    ref = C.IsotonicCalibration("multilabel").fit(z[50:], y[50:])
    np.testing.assert_array_equal(iso.x_thresholds_[0], C.IsotonicCalibration("multilabel").fit(z, np.where(
        y < 0, 0, y)).x_thresholds_[0])
    np.testing.assert_allclose(iso.y_thresholds_[1], ref.y_thresholds_[1])


# ------------------------------------------------------------------------------------------ histogram
@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
def test_histogram_bins_are_the_frequencies(rng, binning):
    z, y = _binary(rng, 2000)
    p = expit(z)
    hb = C.HistogramBinning("binary", n_bins=8, binning=binning).fit(p, y, space="probs")
    e, v = hb.bin_edges_[0], hb.bin_values_[0]
    assert e[0] == 0 and e[-1] == 1 and np.all(np.diff(e) > 0)
    idx = np.clip(np.searchsorted(e, p, side="left") - 1, 0, e.size - 2)
    for b in range(e.size - 1):
        inside = idx == b
        assert v[b] == (pytest.approx(y[inside].mean()) if inside.any() else pytest.approx(0.5 * (e[b] + e[b + 1])))
        if binning == "equal_mass":
            assert abs(inside.sum() - 2000 / 8) <= 1
    q = hb.predict_proba(p, space="probs")
    np.testing.assert_allclose(q, np.clip(v[idx], C.DEFAULT_EPS, 1 - C.DEFAULT_EPS), rtol=1e-9)


def test_histogram_empty_bins_and_ties():
    p = np.array([0.05, 0.15, 0.7, 0.9] * 10)
    y = np.array([0, 1, 1, 1] * 10)
    hb = C.HistogramBinning("binary", n_bins=5).fit(p, y, space="probs")
    assert hb.info_["empty_bins"] == 2 and hb.bin_values_[0][2] == pytest.approx(0.5)  # (0.4, 0.6]: its midpoint
    assert hb.bin_values_[0][0] == pytest.approx(0.5) and hb.bin_values_[0][3] == 1.0
    tied = C.HistogramBinning("binary", n_bins=10, binning="equal_mass").fit(np.full(40, 0.3), y, space="probs")
    assert tied.bin_edges_[0].size < 11  # bins with coinciding edges merged


# ------------------------------------------------------------------------------------------ beta
def _beta_reference(lp, l1mp, y):
    def f(x):
        s = x[0] * lp - x[1] * l1mp + x[2]
        return -np.mean(y * -np.logaddexp(0, -s) + (1 - y) * -np.logaddexp(0, s))

    r = optimize.minimize(f, [1.0, 1.0, 0.0], method="L-BFGS-B", bounds=[(0, None), (0, None), (None, None)],
                          options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000})
    return r.x, r.fun


@pytest.mark.parametrize("shape", ["free", "a_at_zero"])
def test_beta_matches_a_bounded_scipy_fit(rng, shape):
    z, y = _binary(rng, 3000)
    if shape == "a_at_zero":  # the labels fall as p rises near 0: the unconstrained a is negative
        y = np.where(expit(z) < 0.2, rng.uniform(size=z.size) < 0.5, y).astype(int)
    bc = C.BetaCalibration("binary").fit(z, y)
    lp, l1mp = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    (a, b, c), fun = _beta_reference(lp, l1mp, y)
    assert bc.a_ >= 0 and bc.b_ >= 0
    assert bc.info_["nll_after"] <= fun + 1e-9
    np.testing.assert_allclose([bc.a_, bc.b_, bc.c_], [a, b, c], atol=2e-4)
    if shape == "a_at_zero":
        assert bc.a_ == 0.0


def test_beta_multiclass_and_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    zm, ym = _multiclass(rng)
    bc = C.BetaCalibration("multiclass").fit(zm, ym)
    t = torch.tensor(zm[:5], requires_grad=True)
    out = bc.transform(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    out.sum().backward()
    assert t.grad is not None
    q = bc.predict_proba(zm[:5])
    np.testing.assert_allclose(q.sum(1), 1.0)
    lp = log_softmax(zm[:5], axis=1)
    raw = expit(bc.a_ * lp - bc.b_ * np.log1p(-np.exp(lp)) + bc.c_)
    np.testing.assert_allclose(q, raw / raw.sum(1, keepdims=True), rtol=1e-10)


# ------------------------------------------------------------------------------------------ Dirichlet
def test_dirichlet_matches_scipy_at_a_fixed_strength(rng):
    zm, ym = _multiclass(rng, 400, c=3)
    lam = 0.05
    dc = C.DirichletCalibration(reg=lam).fit(zm, ym)
    lp = log_softmax(zm, axis=1)
    c = 3

    def f(x):
        w, b = x[:9].reshape(3, 3), x[9:]
        s = log_softmax(lp @ w.T + b, axis=1)
        off = w[~np.eye(3, dtype=bool)]
        return -np.mean(s[np.arange(len(ym)), ym]) + lam / (c * (c - 1)) * np.sum(off ** 2) + lam / c * np.sum(b * b)

    r = optimize.minimize(f, np.r_[np.eye(3).ravel(), np.zeros(3)], method="BFGS", options={"gtol": 1e-10})
    assert f(np.r_[dc.weight_.ravel(), dc.bias_]) <= r.fun + 1e-10
    np.testing.assert_allclose(dc.weight_, r.x[:9].reshape(3, 3), atol=1e-4)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(dc.transform(torch.tensor(zm)).detach().numpy(), dc.transform(zm), rtol=1e-12)


def test_dirichlet_cross_validates_its_strength(rng):
    zm, ym = _multiclass(rng, 300, c=3)
    dc = C.DirichletCalibration(grid=[1.0, 0.01], folds=3).fit(zm, ym)
    cv = dict(zip(dc.info_["grid"], dc.info_["cv_nll"]))
    assert dc.reg_ == min(cv, key=cv.get) and set(cv) == {1.0, 0.01}
    with pytest.raises(ValueError, match="DirichletCalibration is for task='multiclass'"):
        C.DirichletCalibration("binary")
    with pytest.raises(ValueError, match="grid must be"):
        C.DirichletCalibration(grid=[])


# ------------------------------------------------------------------------------------------ auto
def test_auto_keeps_temperature_when_it_is_the_truth(rng):
    zm, ym = _multiclass(rng, 800)
    notes = []
    cal = C.fit_calibrator(zm, ym, "multiclass", method="auto", notes=notes)
    sel = cal.selection_
    assert cal.method == sel["chosen"] == "temperature"
    assert set(sel["cv_nll"]) == set(C.candidates("multiclass"))
    assert any(n.startswith("Calibration method: method='auto' chose temperature") for n in notes)
    # the rule: the simplest method within one SE of the best
    best = sel["best"]
    assert sel["cv_nll"]["temperature"] <= sel["cv_nll"][best] + sel["se"]["temperature"]


def test_auto_moves_away_from_temperature_when_the_data_say_so(rng):
    # a binary model whose miscalibration is not a temperature: over-confident for negatives only
    n = 3000
    z = rng.normal(size=n) * 2
    y = (rng.uniform(size=n) < expit(z)).astype(int)
    s = np.where(z < 0, 4 * z, z) + 1.0
    sel = select_method(s, y.astype(float), None, "binary")
    assert sel["chosen"] not in ("temperature",) and sel["cv_nll"][sel["chosen"]] < sel["cv_nll"]["temperature"]
    assert sel["reason"].startswith(f"method='auto' chose {sel['chosen']}")


def test_auto_with_few_rows_uses_temperature(rng):
    z, y = _binary(rng, 30)
    cal = C.Calibrator().fit(z, y, "binary", method="auto")
    assert cal.method == "temperature" and "fewer than" in cal.selection_["reason"]


# ------------------------------------------------------------------------------------------ persistence
CASES = [("isotonic", "binary"), ("isotonic", "multiclass"), ("isotonic", "multilabel"),
         ("histogram", "binary"), ("histogram", "multiclass"), ("beta", "binary"), ("beta", "multilabel"),
         ("beta", "multiclass"), ("dirichlet", "multiclass")]
DATA = {"binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel}


def _fit(rng, method, task):
    z, y = DATA[task](rng)
    options = {"reg": 0.1} if method == "dirichlet" else {}
    return C._select.make_scaler(method, task, **options).fit(z, y), z, y


@pytest.mark.parametrize("method,task", CASES)
def test_round_trip(tmp_path, rng, method, task):
    sc, z, y = _fit(rng, method, task)
    sc.save(tmp_path / "s.json")
    back = C.load(tmp_path / "s.json")
    assert type(back) is type(sc)
    np.testing.assert_array_equal(back.transform(z), sc.transform(z))
    cal = C.Calibrator().fit(z, y, task, method=method, tune=None)
    cal.save(tmp_path / "c.json")
    np.testing.assert_array_equal(C.load(tmp_path / "c.json").predict_proba(z), cal.predict_proba(z))


def test_auto_round_trip_keeps_the_selection(tmp_path, rng):
    z, y = _binary(rng, 400)
    cal = C.fit_calibrator(z, y, "binary", method="auto")
    cal.save(tmp_path / "a.json")
    back = C.load(tmp_path / "a.json")
    assert back.selection_ == cal.selection_ and back.method == cal.method
    d = cal.to_dict()
    d["selection"]["chosen"] = "isotonic" if cal.method != "isotonic" else "beta"
    with pytest.raises(ValueError, match="'selection.chosen' must equal"):
        C.from_dict(d)


def _edit(d, path, value):
    *head, last = path
    for k in head:
        d = d[k]
    d[last] = value


BAD = [
    ("isotonic", "binary", ("params", "x_thresholds", 0, 1), -0.5, "params.x_thresholds[0][1]"),
    ("isotonic", "binary", ("params", "y_thresholds", 0, 0), 0.99, "params.y_thresholds[0]"),  # not monotone
    ("isotonic", "binary", ("params", "x_thresholds"), [[0.1, 0.2], [0.3]], "params.x_thresholds"),
    ("isotonic", "multiclass", ("params", "y_thresholds", 2, 0), float("nan"), "params.y_thresholds[2][0]"),
    ("histogram", "binary", ("params", "bin_edges", 0, 0), 0.1, "params.bin_edges[0]"),
    ("histogram", "binary", ("params", "bin_edges", 0, 3), 0.01, "params.bin_edges[0]"),  # not sorted
    ("histogram", "binary", ("params", "bin_values", 0, 0), 1.5, "params.bin_values[0][0]"),
    ("histogram", "binary", ("options", "n_bins"), 0, "options"),
    ("beta", "binary", ("params", "a"), -0.1, "params.a"),
    ("beta", "multilabel", ("params", "b", 1), -1.0, "params.b[1]"),
    ("beta", "binary", ("params", "c"), float("inf"), "params.c"),
    ("dirichlet", "multiclass", ("params", "weight", 1), [1.0, 2.0], "params.weight[1]"),
    ("dirichlet", "multiclass", ("params", "weight"), [[1.0]], "params.weight"),
    ("dirichlet", "multiclass", ("params", "bias"), [0.0], "params.bias"),
    ("dirichlet", "multiclass", ("params", "reg"), -1.0, "params.reg"),
]


@pytest.mark.parametrize("method,task,path,value,field", BAD)
def test_every_loaded_parameter_is_validated(rng, method, task, path, value, field):
    sc, _, _ = _fit(rng, method, task)
    d = sc.to_dict()
    if path[-1] == 1 and path[1] == "x_thresholds":
        d["params"]["x_thresholds"][0] = [0.1, -0.5, 0.7]
        d["params"]["y_thresholds"][0] = [0.1, 0.2, 0.3]
    elif path[1] == "y_thresholds" and task == "binary":
        d["params"]["y_thresholds"][0] = [0.99] + d["params"]["y_thresholds"][0][1:]
        d["params"]["y_thresholds"][0][-1] = 0.5
    else:
        _edit(d, path, value)
    with pytest.raises(ValueError, match="calibrator field " + re.escape(repr(field)[:-1])):
        C.from_dict(d)
