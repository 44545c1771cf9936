"""sigmax.metrics on the canonical-input layer: ignore_index, sample_weight, NaN, top_k, min_bin_count.

References: scikit-learn (``sample_weight``), torchmetrics and PyTorch (``ignore_index``), and the
identity "an integer weight k is the sample repeated k times".
"""

import ast
import importlib
import inspect
import math
import pathlib

import numpy as np
import pytest

from sigmax import _inputs
from sigmax import metrics as M
from sigmax.testing import assert_close

scipy_special = pytest.importorskip("scipy.special")
sk = pytest.importorskip("sklearn.metrics")


def _data(task, rng, n=300, c=4):
    if task == "binary":
        z = rng.normal(size=n) * 2
        return z, (rng.uniform(size=n) < scipy_special.expit(0.7 * z)).astype(np.int64)
    z = rng.normal(size=(n, c)) * 2
    if task == "multiclass":
        return z, rng.integers(0, c, n)
    return z, (rng.uniform(size=(n, c)) < scipy_special.expit(z)).astype(np.int64)


def _with_ignored(y, rng, task, frac=0.2, ignore=-100):
    y = y.copy()
    mask = rng.uniform(size=y.shape) < frac
    y[mask] = ignore
    return y, mask


# ---------------------------------------------------------------------------------------------
# sample_weight: scikit-learn as the reference
# ---------------------------------------------------------------------------------------------


def test_sample_weight_matches_sklearn_binary(rng):
    # regression: no metric took sample_weight
    z, y = _data("binary", rng)
    w = rng.uniform(0, 3, size=y.shape)
    p = scipy_special.expit(z)
    assert_close(M.nll(z, y, "binary", sample_weight=w), sk.log_loss(y, p, sample_weight=w), "float64", factor=4)
    assert_close(M.brier(z, y, "binary", sample_weight=w), sk.brier_score_loss(y, p, sample_weight=w), "float64")
    assert_close(M.accuracy(z, y, "binary", sample_weight=w),
                 sk.accuracy_score(y, (p > 0.5).astype(int), sample_weight=w), "float64")
    prf = M.precision_recall_f1(z, y, "binary", sample_weight=w)
    ref = sk.precision_recall_fscore_support(y, (p > 0.5).astype(int), average="binary", sample_weight=w)
    assert_close([prf["precision"], prf["recall"], prf["f1"]], list(ref[:3]), "float64")


def test_sample_weight_matches_sklearn_multiclass(rng):
    z, y = _data("multiclass", rng, c=5)
    w = rng.uniform(0, 3, size=y.shape)
    p = scipy_special.softmax(z, axis=1)
    assert_close(M.nll(z, y, "multiclass", sample_weight=w), sk.log_loss(y, p, sample_weight=w, labels=range(5)),
                 "float64", factor=4)
    brier_ref = np.average(np.sum((p - np.eye(5)[y]) ** 2, axis=1), weights=w)  # Brier's sum over classes
    assert_close(M.brier(z, y, "multiclass", sample_weight=w), brier_ref, "float64")
    pred = p.argmax(1)
    assert_close(M.accuracy(z, y, "multiclass", sample_weight=w), sk.accuracy_score(y, pred, sample_weight=w),
                 "float64")
    assert_close(M.accuracy(z, y, "multiclass", top_k=2, sample_weight=w),
                 sk.top_k_accuracy_score(y, p, k=2, sample_weight=w), "float64")
    for avg in ("micro", "macro"):
        assert_close(M.precision_recall_f1(z, y, "multiclass", average=avg, sample_weight=w)["f1"],
                     sk.f1_score(y, pred, average=avg, sample_weight=w), "float64", err_msg=avg)


def test_sample_weight_matches_sklearn_multilabel(rng):
    z, y = _data("multilabel", rng)
    w = rng.uniform(0, 3, size=y.shape[0])
    pred = (scipy_special.expit(z) > 0.5).astype(int)
    for avg in ("micro", "macro"):
        assert_close(M.precision_recall_f1(z, y, "multilabel", average=avg, sample_weight=w)["f1"],
                     sk.f1_score(y, pred, average=avg, sample_weight=w), "float64", err_msg=avg)
    # per-entry accuracy is 1 - Hamming loss
    assert_close(M.accuracy(z, y, "multilabel", sample_weight=w),
                 1 - sk.hamming_loss(y, pred, sample_weight=w), "float64")


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_integer_weights_equal_repetition(task, rng):
    # an integer weight k is the sample repeated k times, for every metric of the summary (bins included)
    z, y = _data(task, rng, n=250, c=7 if task == "multiclass" else 4)
    k = rng.integers(0, 4, size=y.shape[0])
    rep = np.repeat(np.arange(y.shape[0]), k)
    weighted = M.summary(z, y, task, sample_weight=k, min_bin_count=3)
    repeated = M.summary(z[rep], y[rep], task, min_bin_count=3)
    assert weighted.keys() == repeated.keys()
    for key in weighted:
        assert_close(weighted[key], repeated[key], "float64", factor=64, err_msg=key)
    r_w = M.reliability(z, y, task, sample_weight=k, mode="classwise", binning="equal_width")
    r_r = M.reliability(z[rep], y[rep], task, mode="classwise")
    assert_close(r_w.weight, r_r.count.astype(float), "float64")
    assert_close(np.nan_to_num(r_w.accuracy), np.nan_to_num(r_r.accuracy), "float64", factor=16)
    # a zero weight is a dropped sample (even where its loss is infinite)
    zz = z.copy()
    zz[0] = 1e300 if task == "binary" else zz[0]
    assert math.isfinite(M.nll(zz, y, task, sample_weight=(np.arange(y.shape[0]) > 0) * 1.0))


def test_sample_weight_errors():
    z, y = np.array([0.1, -0.3, 2.0]), np.array([0, 1, 1])
    with pytest.raises(ValueError, match="sample_weight has shape \\(2,\\) but there are 3 samples"):
        M.nll(z, y, "binary", sample_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        M.nll(z, y, "binary", sample_weight=[1.0, -2.0, 1.0])
    with pytest.raises(ValueError, match="sums to 0"):
        M.accuracy(z, y, "binary", sample_weight=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="sums to 0"):
        M.summary(z, y, "binary", sample_weight=[0.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# ignore_index: torchmetrics and PyTorch as the reference
# ---------------------------------------------------------------------------------------------


def test_ignore_index_matches_torchmetrics_multiclass(rng):
    # regression: metrics rejected labels equal to -100 ("drop ignored rows before computing metrics")
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    z, y = _data("multiclass", rng, n=2000, c=6)
    y, _ = _with_ignored(y, rng, "multiclass")
    zt, yt = torch.tensor(z), torch.tensor(y)
    pt = torch.softmax(zt, dim=1)
    kw = {"num_classes": 6, "ignore_index": -100}
    assert M.accuracy(z, y, "multiclass", ignore_index=-100) == pytest.approx(
        float(tmc.multiclass_accuracy(pt, yt, average="micro", **kw)), rel=1e-6)
    assert M.precision_recall_f1(z, y, "multiclass", average="macro", ignore_index=-100)["f1"] == pytest.approx(
        float(tmc.multiclass_f1_score(pt, yt, average="macro", **kw)), rel=1e-6)
    assert M.calibration_error(z, y, "multiclass", ignore_index=-100) == pytest.approx(
        float(tmc.multiclass_calibration_error(pt, yt, n_bins=15, **kw)), rel=1e-5, abs=1e-7)
    assert M.calibration_error(z, y, "multiclass", ignore_index=-100, norm="max", min_bin_count=1) == pytest.approx(
        float(tmc.multiclass_calibration_error(pt, yt, n_bins=15, norm="max", **kw)), rel=1e-5, abs=1e-7)
    # NLL: PyTorch's cross_entropy with its ignore_index (the mean over the rows kept)
    ref = float(torch.nn.functional.cross_entropy(zt, yt, ignore_index=-100))
    assert M.nll(z, y, "multiclass", ignore_index=-100) == pytest.approx(ref, rel=1e-12)


def test_ignore_index_matches_torchmetrics_binary_and_multilabel(rng):
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    z, y = _data("binary", rng, n=2000)
    y, _ = _with_ignored(y, rng, "binary", ignore=-1)
    pt, yt = torch.sigmoid(torch.tensor(z)), torch.tensor(y)
    assert M.accuracy(z, y, "binary", ignore_index=-1) == pytest.approx(
        float(tmc.binary_accuracy(pt, yt, ignore_index=-1)), rel=1e-6)
    assert M.precision_recall_f1(z, y, "binary", ignore_index=-1)["f1"] == pytest.approx(
        float(tmc.binary_f1_score(pt, yt, ignore_index=-1)), rel=1e-6)
    assert M.calibration_error(z, y, "binary", mode="classwise", ignore_index=-1) == pytest.approx(
        float(tmc.binary_calibration_error(pt, yt, n_bins=15, ignore_index=-1)), rel=1e-5, abs=1e-7)
    # multilabel: ignored entries are masked, the rest of their row counts
    z, y = _data("multilabel", rng, n=500, c=5)
    y, mask = _with_ignored(y, rng, "multilabel")
    pt, yt = torch.sigmoid(torch.tensor(z)), torch.tensor(y)
    kw = {"num_labels": 5, "ignore_index": -100}
    assert M.accuracy(z, y, "multilabel", ignore_index=-100) == pytest.approx(
        float(tmc.multilabel_accuracy(pt, yt, average="micro", **kw)), rel=1e-6)
    for avg in ("micro", "macro"):
        assert M.precision_recall_f1(z, y, "multilabel", average=avg, ignore_index=-100)["f1"] == pytest.approx(
            float(tmc.multilabel_f1_score(pt, yt, average=avg, **kw)), rel=1e-6)
    # NLL: binary_cross_entropy_with_logits over the kept entries
    keep = ~mask
    ref = float(torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(z[keep]),
                                                                    torch.tensor(y[keep], dtype=torch.float64)))
    assert M.nll(z, y, "multilabel", ignore_index=-100) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_ignore_index_equals_dropping(task, rng):
    z, y = _data(task, rng, n=120)
    y_ig, mask = _with_ignored(y, rng, task)
    w = rng.uniform(0.5, 2, size=y.shape[0])
    got = M.summary(z, y_ig, task, ignore_index=-100, sample_weight=w, min_bin_count=2)
    if task == "multilabel":  # a masked entry is an entry of weight 0
        ref_s = _masked_summary(z, y, ~mask, w)
        for key in ("nll", "brier", "accuracy", "f1_micro", "ece"):
            assert_close(got[key], ref_s[key], "float64", factor=16, err_msg=key)
        return
    keep = ~mask
    ref = M.summary(z[keep], y[keep], task, sample_weight=w[keep], min_bin_count=2)
    for key in got:
        assert_close(got[key], ref[key], "float64", factor=16, err_msg=key)
    # NaN scores in ignored rows are allowed: those rows are not looked at
    zn = z.copy()
    zn[np.flatnonzero(mask)[0]] = np.nan
    assert M.nll(zn, y_ig, task, ignore_index=-100) == pytest.approx(M.nll(z[keep], y[keep], task))


def _masked_summary(z, y, keep, w):
    """Direct formulas for multilabel metrics over the kept entries with row weights."""
    p = scipy_special.expit(z)
    we = np.where(keep, w[:, None], 0.0)
    nll = -(y * scipy_special.log_expit(z) + (1 - y) * scipy_special.log_expit(-z))
    pred = (p > 0.5).astype(int)
    tp = np.sum(we * ((pred == 1) & (y == 1)))
    fp = np.sum(we * ((pred == 1) & (y == 0)))
    fn = np.sum(we * ((pred == 0) & (y == 1)))
    conf = np.where(pred == 1, p, 1 - p)[keep]
    hit = (pred == y)[keep].astype(float)
    ww = we[keep]
    edges = np.linspace(0, 1, 16)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, 14)
    ece = sum(abs(np.sum((ww * (hit - conf))[idx == b])) for b in range(15)) / ww.sum()
    return {"nll": np.sum(we * nll) / we.sum(), "brier": np.sum(we * (p - y) ** 2) / we.sum(),
            "accuracy": np.sum(we * (pred == y)) / we.sum(), "f1_micro": 2 * tp / (2 * tp + fp + fn), "ece": ece}


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_accumulator_with_ignore_and_weights_is_split_invariant(task, rng):
    z, y = _data(task, rng, n=90)
    y, _ = _with_ignored(y, rng, task, frac=0.3)
    y[:10] = -100  # a chunk with every label ignored adds nothing
    w = rng.uniform(0, 2, size=y.shape[0])
    whole = M.summary(z, y, task, ignore_index=-100, sample_weight=w)
    acc = M.MetricAccumulator(task, ignore_index=-100)
    for part in np.split(np.arange(90), [10, 11, 40, 77]):
        acc.update(z[part], y[part], sample_weight=w[part])
    chunked = acc.compute()
    for key in whole:
        assert_close(chunked[key], whole[key], "float64", factor=16, err_msg=key)
    assert acc.n_ignored == int(np.sum(y == -100))


def test_ignore_index_errors():
    z = np.array([[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="every label equals ignore_index=-100"):
        M.nll(z, [-100, -100], "multiclass", ignore_index=-100)
    with pytest.raises(ValueError, match="ignore_index=-100"):  # the hint names the keyword
        M.nll(z, [0, -100], "multiclass")
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        M.nll(z, [0, 1], "multiclass", ignore_index=0.5)
    acc = M.MetricAccumulator("multiclass", ignore_index=-100).update(z, [-100, -100])
    with pytest.raises(ValueError, match="no data yet.*ignore_index"):
        acc.compute()


# ---------------------------------------------------------------------------------------------
# NaN, top_k, spellings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [M.nll, M.brier, M.accuracy, M.calibration_error, M.summary, M.reliability])
def test_nan_scores_are_a_clear_error(fn):
    z = np.array([[1.0, 2.0], [np.nan, 0.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"1 NaN value\(s\) in 1 row\(s\) \(first: \[1\]\).*ignore_index"):
        fn(z, [0, 1, 1], "multiclass")


def test_top_k_larger_than_the_classes_is_an_error():
    # regression: accuracy(top_k=5) over 3 classes returned 1.0
    z = np.array([[1.0, 2.0, 0.5], [0.0, 0.1, 0.2]])
    with pytest.raises(ValueError, match="top_k=5 but there are only 3 classes"):
        M.accuracy(z, [0, 1], "multiclass", top_k=5)
    with pytest.raises(ValueError, match="applies to task='multiclass' only"):
        M.accuracy(z, [[0, 1, 0], [1, 0, 0]], "multilabel", top_k=2)


def test_every_alias_is_accepted():
    z = np.array([[1.0, 2.0, 0.5], [0.0, 0.1, 0.2]])
    ref = M.nll(z, [0, 1], "multiclass")
    for alias, name in _inputs.ALIASES.items():
        if name == "logits":
            assert M.nll(z, [0, 1], "multiclass", space=alias) == ref
        elif name == "multiclass":
            assert M.nll(z, [0, 1], alias) == ref


# ---------------------------------------------------------------------------------------------
# MCE over bins of at least min_bin_count samples
# ---------------------------------------------------------------------------------------------


def _one_sample_bin_data(rng):
    """Well-calibrated binary probabilities around 0.7-0.9, plus one sample at 0.05 that is positive."""
    p = rng.uniform(0.7, 0.9, size=400)
    y = (rng.uniform(size=400) < p).astype(int)
    return np.append(p, 0.05), np.append(y, 1)


def test_mce_ignores_bins_below_min_bin_count(rng):
    # regression: the report's MCE headline came from a one-sample bin (gap 0.95 here)
    p, y = _one_sample_bin_data(rng)
    every = M.calibration_error(p, y, "binary", space="probs", mode="classwise", norm="max", min_bin_count=1)
    assert every == pytest.approx(0.95)
    default = M.calibration_error(p, y, "binary", space="probs", mode="classwise", norm="max")
    assert default < 0.2
    assert M.DEFAULT_MIN_BIN_COUNT == 10
    r = M.reliability(p, y, "binary", space="probs", mode="classwise")
    assert r.min_bin_count == 10
    assert r.mce == pytest.approx(default) and r.error("max", min_bin_count=1) == pytest.approx(every)
    assert r.to_dict()["min_bin_count"] == 10
    s = M.summary(p, y, "binary", space="probs")
    assert s["mce"] == M.calibration_error(p, y, "binary", space="probs", norm="max")
    acc = M.MetricAccumulator("binary", space="probs", min_bin_count=1).update(p, y)
    assert acc.reliability.min_bin_count == 1
    assert acc.compute()["mce"] == M.calibration_error(p, y, "binary", space="probs", norm="max", min_bin_count=1)


def test_mce_is_nan_without_a_big_enough_bin():
    r = M.reliability([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], [0, 0, 0], "multiclass")
    assert math.isnan(r.mce) and r.error("max", min_bin_count=1) > 0
    assert math.isnan(M.calibration_error([0.2, 0.9], [0, 1], "binary", space="probs", norm="max"))
    assert math.isnan(M.summary([0.2, 0.9], [0, 1], "binary", space="probs")["mce"])
    with pytest.raises(ValueError, match="min_bin_count must be a positive integer"):
        M.calibration_error([0.2, 0.9], [0, 1], "binary", space="probs", norm="max", min_bin_count=0)
    a = M.reliability([0.2, 0.9], [0, 1], "binary", space="probs", min_bin_count=1)
    b = M.reliability([0.2, 0.9], [0, 1], "binary", space="probs")
    with pytest.raises(ValueError, match="same min_bin_count"):
        a + b


# ---------------------------------------------------------------------------------------------
# the house: one validator, no module over 800 lines
# ---------------------------------------------------------------------------------------------


def test_metrics_use_the_one_validator():
    tree = ast.parse(inspect.getsource(M))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"_to_numpy", "_scores64", "_binary_values"}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    # metrics takes records of the one validator (Canonical) and prepares them in _metrics_terms,
    # whose prepare() is the only caller of sigmax._inputs.canonical on the metrics floor
    assert "Canonical" in imported and "prepare" in imported and not [a for a in imported if a.startswith("_")]
    terms = ast.parse(inspect.getsource(importlib.import_module("sigmax._metrics_terms")))
    assert "canonical" in {a.name for n in ast.walk(terms) if isinstance(n, ast.ImportFrom) for a in n.names}


@pytest.mark.parametrize("module", ["metrics.py", "_metrics_terms.py", "_binning.py", "interpret.py", "_inputs.py"])
def test_module_size(module):
    path = pathlib.Path(M.__file__).parent / module
    assert len(path.read_text().splitlines()) <= 800


def test_messages_speak_the_interface_in_use():
    z = np.array([[1.0, 2.0, 0.5], [0.0, 0.1, 0.2]])
    with _inputs.interface("cli"):
        with pytest.raises(ValueError, match="--top-k 5 but there are only 3 classes"):
            M.accuracy(z, [0, 1], "multiclass", top_k=5)
        with pytest.raises(ValueError, match="--ignore-index -100"):
            M.nll(z, [0, -100], "multiclass")
