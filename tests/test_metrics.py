"""sigmax.metrics: values against direct formulas and peers, Guo et al.'s ECE, properties, errors."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sigmax import metrics as M
from sigmax.testing import assert_close

scipy_special = pytest.importorskip("scipy.special")


def _multiclass(rng, n=200, c=5, scale=2.0):
    return rng.normal(size=(n, c)) * scale, rng.integers(0, c, n)


def _multilabel(rng, n=200, c=4, scale=2.0):
    z = rng.normal(size=(n, c)) * scale
    y = (rng.uniform(size=(n, c)) < scipy_special.expit(z)).astype(np.int64)
    return z, y


def _binary(rng, n=200, scale=2.0):
    z = rng.normal(size=n) * scale
    return z, (rng.uniform(size=n) < scipy_special.expit(0.7 * z)).astype(np.int64)


def _guo_ece(confidences, accuracies, n_bins=15):
    """Guo et al. 2017's reference `_ECELoss` (github.com/gpleiss/temperature_scaling), transcribed to NumPy."""
    bin_boundaries = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for bin_lower, bin_upper in itertools.pairwise(bin_boundaries):
        in_bin = (confidences > bin_lower) & (confidences <= bin_upper)
        prop_in_bin = in_bin.mean()
        if prop_in_bin > 0:
            ece += abs(confidences[in_bin].mean() - accuracies[in_bin].mean()) * prop_in_bin
    return ece


# ---------------------------------------------------------------------------------------------
# values against the direct formulas, on every backend and every declared space
# ---------------------------------------------------------------------------------------------


def test_multiclass_values(backend, rng):
    z, y = _multiclass(rng)
    ls = scipy_special.log_softmax(z, axis=1)
    p = np.exp(ls)
    zb, yb = backend.asarray(z), backend.asarray(y, dtype="int64")
    assert_close(M.nll(zb, yb, "multiclass"), -ls[np.arange(len(y)), y].mean(), "float64")
    assert_close(M.brier(zb, yb, "multiclass"), np.sum((p - np.eye(5)[y]) ** 2, axis=1).mean(), "float64")
    assert M.accuracy(zb, yb, "multiclass") == np.mean(p.argmax(1) == y)
    # the same numbers from probabilities and log-probabilities
    for space, s in (("probs", p), ("log_probs", ls)):
        sb = backend.asarray(s)
        assert_close(M.nll(sb, yb, "multiclass", space=space), M.nll(z, y, "multiclass"), "float64", factor=8)
        assert_close(M.brier(sb, yb, "multiclass", space=space), M.brier(z, y, "multiclass"), "float64")


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_sigmoid_task_values(backend, rng, task):
    z, y = _binary(rng) if task == "binary" else _multilabel(rng)
    p = scipy_special.expit(z)
    ref_nll = -np.mean(y * scipy_special.log_expit(z) + (1 - y) * scipy_special.log_expit(-z))
    zb, yb = backend.asarray(z), backend.asarray(y, dtype="float64")  # float 0/1 labels are accepted
    assert_close(M.nll(zb, yb, task), ref_nll, "float64")
    assert_close(M.brier(zb, yb, task), np.mean((p - y) ** 2), "float64")
    assert M.accuracy(zb, yb, task) == np.mean((p > 0.5) == y)
    for space, s in (("probs", p), ("log_probs", scipy_special.log_expit(z))):
        assert_close(M.nll(backend.asarray(s), yb, task, space=space), ref_nll, "float64", factor=64)


def test_nll_is_exact_for_confident_mistakes():
    # log_softmax / log_sigmoid: a 1000-logit mistake costs 1000, not inf
    assert M.nll([[1000.0, 0.0]], [1], "multiclass") == 1000.0
    assert M.nll([-1000.0], [1], "binary") == 1000.0
    assert M.nll([1000.0], [0], "binary") == 1000.0
    assert M.nll([[0.0, 1.0]], [0], "multiclass", space="probs") == math.inf


def test_topk_accuracy_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    z, y = _multiclass(rng, n=300, c=8)
    for k in (1, 2, 5):
        assert M.accuracy(z, y, "multiclass", top_k=k) == pytest.approx(
            sk.top_k_accuracy_score(y, z, k=k, labels=np.arange(8)))


def test_topk_ties_rank_the_lower_index_first():
    # k=1 agrees with the argmax (first maximum) on ties
    assert M.accuracy([[1.0, 1.0, 0.0]], [0], "multiclass") == 1.0
    assert M.accuracy([[1.0, 1.0, 0.0]], [1], "multiclass") == 0.0
    assert M.accuracy([[1.0, 1.0, 0.0]], [1], "multiclass", top_k=2) == 1.0


def test_class_axis_and_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    z, y = _multiclass(rng, n=60, c=3)
    zt = torch.tensor(np.moveaxis(z.reshape(6, 10, 3), -1, 1), requires_grad=True)  # (6, 3, 10), class axis 1
    yt = torch.tensor(y.reshape(6, 10))
    assert_close(M.nll(zt, yt, "multiclass", axis=1), M.nll(z, y, "multiclass"), "float64")
    assert_close(M.nll(zt, yt, "multiclass", dim=1), M.nll(z, y, "multiclass"), "float64")
    assert M.summary(zt, yt, "multiclass", axis=1) == pytest.approx(M.summary(z, y, "multiclass"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_low_precision_input(np_torch, dtype, rng):
    if dtype == "bfloat16" and np_torch.name == "numpy":
        pytest.skip("NumPy has no bfloat16")
    z, y = _multiclass(rng, n=100, c=4)
    zl = np_torch.asarray(z, dtype=dtype)
    z_rounded = np.asarray(zl.float() if hasattr(zl, "float") else zl, dtype=np.float64)
    assert M.nll(zl, y, "multiclass") == pytest.approx(M.nll(z_rounded, y, "multiclass"), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# precision / recall / F1
# ---------------------------------------------------------------------------------------------


def test_prf_matches_sklearn(rng):
    sk = pytest.importorskip("sklearn.metrics")
    z, y = _multilabel(rng, n=300, c=5)
    t = np.array([0.3, 0.5, 0.7, 0.4, 0.6])
    pred = (scipy_special.expit(z) > t).astype(int)
    for avg in ("micro", "macro"):
        r = M.precision_recall_f1(z, y, "multilabel", threshold=t, average=avg)
        assert r["precision"] == pytest.approx(sk.precision_score(y, pred, average=avg, zero_division=0))
        assert r["recall"] == pytest.approx(sk.recall_score(y, pred, average=avg, zero_division=0))
        assert r["f1"] == pytest.approx(sk.f1_score(y, pred, average=avg, zero_division=0))
    per_class = M.precision_recall_f1(z, y, "multilabel", threshold=t, average=None)
    np.testing.assert_allclose(per_class["f1"], sk.f1_score(y, pred, average=None, zero_division=0))
    zc, yc = _multiclass(rng, n=300, c=6)
    r = M.precision_recall_f1(zc, yc, "multiclass", average="macro")
    assert r["f1"] == pytest.approx(sk.f1_score(yc, zc.argmax(1), average="macro"))
    assert M.precision_recall_f1(zc, yc, "multiclass")["f1"] == pytest.approx(M.accuracy(zc, yc, "multiclass"))
    zb, yb = _binary(rng)
    r = M.precision_recall_f1(zb, yb, "binary", threshold=0.3)
    assert r["f1"] == pytest.approx(sk.f1_score(yb, scipy_special.expit(zb) > 0.3))


def test_prf_zero_division_and_absent_classes():
    # nothing predicted, nothing present: 0, not NaN
    r = M.precision_recall_f1([0.1, 0.2], [0, 0], "binary", space="probs")
    assert r == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # class 2 neither present nor predicted: left out of the macro mean
    probs = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]
    assert M.precision_recall_f1(probs, [0, 1], "multiclass", space="probs", average="macro")["f1"] == 1.0


# ---------------------------------------------------------------------------------------------
# calibration error: Guo et al. exactly, peers, consistency
# ---------------------------------------------------------------------------------------------


def test_ece_reproduces_guo_reference_exactly(rng):
    for scale in (0.5, 2.0, 6.0):
        z, y = _multiclass(rng, n=1000, c=10, scale=scale)
        p = scipy_special.softmax(z, axis=1)
        ref = _guo_ece(p.max(1), (p.argmax(1) == y).astype(float))
        assert_close(M.calibration_error(z, y, "multiclass"), ref, "float64")
        assert_close(M.reliability(z, y, "multiclass").ece, ref, "float64")


def test_ece_bins_are_open_below_closed_above():
    # confidences exactly on Guo's edges k/15 belong to the bin below, as in the reference code
    edges = np.linspace(0, 1, 16)
    conf = edges[[3, 6, 9, 12, 15]]  # 0.2, 0.4, 0.6, 0.8, 1.0
    labels = np.array([0, 1, 0, 1, 1])
    r = M.reliability(conf, labels, "binary", space="probs", mode="classwise")  # confidence = p itself
    assert np.flatnonzero(r.count).tolist() == [2, 5, 8, 11, 14]  # 0.2 -> (2/15, 3/15], ..., 1.0 -> (14/15, 1]
    assert_close(r.ece, _guo_ece(conf, labels.astype(float)), "float64")
    # top-label: [0.6, 0.4] has confidence 0.6 = 9/15 -> the bin (8/15, 9/15]
    probs = np.array([[edges[9], 1 - edges[9]], [0.0, 1.0]])
    rt = M.reliability(probs, [0, 0], "multiclass", space="probs")
    assert np.flatnonzero(rt.count).tolist() == [8, 14]
    assert_close(rt.ece, _guo_ece(probs.max(1), np.array([1.0, 0.0])), "float64")
    # a confidence of exactly 0 (class-wise, underflowed) joins the first bin instead of vanishing
    r0 = M.reliability([0.0, 1.0], [0, 1], "binary", space="probs", mode="classwise")
    assert r0.count[0] == 1 and r0.n == 2


@pytest.mark.parametrize("norm", ["l1", "max", "l2"])
def test_matches_torchmetrics(rng, norm):
    torch = pytest.importorskip("torch")
    tmc = pytest.importorskip("torchmetrics.functional.classification")
    z, y = _multiclass(rng, n=2000, c=10, scale=3.0)
    p = scipy_special.softmax(z, axis=1)
    # torchmetrics bins [lo, hi): equal to Guo's (lo, hi] unless a confidence sits on an edge (never here)
    ref = float(tmc.multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=10, n_bins=15,
                                                 norm=norm))
    # torchmetrics' MCE takes every non-empty bin: min_bin_count=1
    ours = M.calibration_error(torch.tensor(z), torch.tensor(y), "multiclass", norm=norm, min_bin_count=1)
    assert ours == pytest.approx(ref, rel=1e-6, abs=1e-7)  # torchmetrics computes in float32
    pb = rng.uniform(size=3000)
    yb = (rng.uniform(size=3000) < pb ** 1.3).astype(np.int64)
    ref_b = float(tmc.binary_calibration_error(torch.tensor(pb), torch.tensor(yb), n_bins=15, norm=norm))
    ours_b = M.calibration_error(pb, yb, "binary", space="probs", mode="classwise", norm=norm, min_bin_count=1)
    assert ours_b == pytest.approx(ref_b, rel=1e-6, abs=1e-7)


def test_matches_netcal(rng):
    netcal = pytest.importorskip("netcal.metrics")
    z, y = _multiclass(rng, n=2000, c=10, scale=3.0)
    p = scipy_special.softmax(z, axis=1)
    assert M.calibration_error(p, y, "multiclass", space="probs") == pytest.approx(
        netcal.ECE(bins=15).measure(p, y), rel=1e-9)
    assert M.calibration_error(p, y, "multiclass", space="probs", norm="max", min_bin_count=1) == pytest.approx(
        netcal.MCE(bins=15).measure(p, y), rel=1e-9)


def test_ece_falls_toward_zero_on_calibrated_data():
    rng = np.random.default_rng(1)
    eces = []
    for n in (300, 3000, 30000):
        p = rng.dirichlet(np.full(5, 0.5), size=n)
        y = (rng.uniform(size=(n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)  # y ~ Categorical(p): calibrated
        y = np.minimum(y, 4)
        eces.append(M.calibration_error(p, y, "multiclass", space="probs"))
    assert eces[0] > eces[1] > eces[2]
    assert eces[2] < 0.01
    # and a miscalibrated (over-confident) version of the same data stays far from 0
    assert M.calibration_error(np.log(p) * 3, y, "multiclass") > 0.05


def test_binning_and_modes(rng):
    z, y = _multiclass(rng, n=301, c=4)
    r = M.reliability(z, y, "multiclass", binning="equal_mass", n_bins=10)
    assert r.count.sum() == 301 and r.count.max() - r.count.min() <= 1
    assert np.all(np.diff(r.bin_edges) >= 0)
    p = scipy_special.softmax(z, axis=1)
    # class-wise: the mean over classes of each class's one-vs-rest ECE
    per_class = [M.calibration_error(p[:, c], (y == c).astype(int), "binary", space="probs", mode="classwise")
                 for c in range(4)]
    assert_close(M.calibration_error(z, y, "multiclass", mode="classwise"), np.mean(per_class), "float64")
    rc = M.reliability(z, y, "multiclass", mode="classwise", class_index=2)
    assert_close(rc.ece, per_class[2], "float64")
    # class_index=None pools every class's (probability, outcome) pairs into one diagram
    pooled = M.reliability(z, y, "multiclass", mode="classwise")
    flat = M.reliability(p.ravel(), (y[:, None] == np.arange(4)).ravel().astype(int), "binary", space="probs",
                         mode="classwise")
    np.testing.assert_array_equal(pooled.count, flat.count)
    assert_close(pooled.confidence, flat.confidence, "float64")
    assert_close(pooled.accuracy, flat.accuracy, "float64")
    em = M.calibration_error(z, y, "multiclass", mode="classwise", binning="equal_mass")
    assert_close(em, np.mean([M.calibration_error(p[:, c], (y == c).astype(int), "binary", space="probs",
                                                  mode="classwise", binning="equal_mass") for c in range(4)]),
                 "float64")
    # binary top-label equals the two-class multiclass top-label
    zb, yb = _binary(rng)
    two = np.stack([np.zeros_like(zb), zb], axis=1)
    assert_close(M.calibration_error(zb, yb, "binary"), M.calibration_error(two, yb, "multiclass"), "float64")
    # MCE (over every non-empty bin) >= RMS >= ECE
    e, m, s = (M.calibration_error(z, y, "multiclass", norm=n, min_bin_count=1) for n in ("l1", "max", "l2"))
    assert m >= s >= e


def test_reliability_dataclass():
    r = M.reliability([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 0], "binary", space="probs", n_bins=4, mode="classwise")
    assert r.bin_edges.shape == (5,) and r.count.dtype == np.int64
    assert np.isnan(r.confidence[2]) and np.isnan(r.accuracy[2])  # the empty bin (0.5, 0.75]
    d = r.to_dict()
    assert d["confidence"][2] is None and d["count"] == [1, 1, 0, 2]
    assert r.error("max", min_bin_count=1) >= r.ece
    eq = M.reliability([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 0], "binary", space="probs", binning="equal_mass",
                       n_bins=2, mode="classwise")
    with pytest.raises(ValueError, match="same bin edges"):
        r + eq


# ---------------------------------------------------------------------------------------------
# batch-split invariance, summary
# ---------------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**31 - 1), task=st.sampled_from(["binary", "multiclass", "multilabel"]),
       cuts=st.lists(st.integers(1, 59), max_size=4, unique=True))
def test_batch_split_invariance(seed, task, cuts):
    rng = np.random.default_rng(seed)
    z, y = {"binary": _binary, "multiclass": lambda r: _multiclass(r, c=7), "multilabel": _multilabel}[task](rng)
    z, y = z[:60], y[:60]
    whole = M.summary(z, y, task)
    acc = M.MetricAccumulator(task)
    rel = None
    for part in np.split(np.arange(60), sorted(cuts)):
        acc.update(z[part], y[part])
        r = M.reliability(z[part], y[part], task)
        rel = r if rel is None else rel + r
    chunked = acc.compute()
    assert chunked.keys() == whole.keys()
    for k in whole:
        assert_close(chunked[k], whole[k], "float64", factor=16, err_msg=k)
    assert_close(rel.ece, whole["ece"], "float64", factor=16)
    # a permutation of the samples changes nothing either
    perm = rng.permutation(60)
    for k, v in M.summary(z[perm], y[perm], task).items():
        assert_close(v, whole[k], "float64", factor=16, err_msg=k)


@pytest.mark.parametrize("task,c", [("binary", 1), ("multiclass", 4), ("multiclass", 10), ("multilabel", 4)])
def test_summary_keys_and_values(rng, task, c):
    z, y = {"binary": lambda: _binary(rng), "multiclass": lambda: _multiclass(rng, c=c),
            "multilabel": lambda: _multilabel(rng, c=c)}[task]()
    s = M.summary(z, y, task)
    assert {"nll", "brier", "accuracy", "ece", "mce"} <= set(s)
    assert all(isinstance(v, float) for v in s.values())
    assert ("f1_micro" in s and "f1_macro" in s) == (task != "multiclass")
    assert ("top5_accuracy" in s) == (task == "multiclass" and c > 5)
    assert s["nll"] == pytest.approx(M.nll(z, y, task))
    assert s["brier"] == pytest.approx(M.brier(z, y, task))
    assert s["accuracy"] == pytest.approx(M.accuracy(z, y, task))
    assert s["ece"] == pytest.approx(M.calibration_error(z, y, task))
    assert s["mce"] == pytest.approx(M.calibration_error(z, y, task, norm="max"))
    assert s["classwise_ece"] == pytest.approx(M.calibration_error(z, y, task, mode="classwise"))
    if task != "multiclass":
        assert s["f1_macro"] == pytest.approx(M.precision_recall_f1(z, y, task, average="macro")["f1"])
    else:
        if c > 5:
            assert s["top5_accuracy"] == pytest.approx(M.accuracy(z, y, task, top_k=5))
    if task == "multilabel":
        t = np.linspace(0.3, 0.7, c)
        assert M.summary(z, y, task, threshold=t)["f1_micro"] == pytest.approx(
            M.precision_recall_f1(z, y, task, threshold=t)["f1"])


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_argument_and_the_fix(np_torch):
    z = np_torch.asarray([[1.0, 2.0, 0.5], [0.0, 0.1, 0.2]])
    y = np_torch.asarray([0, 1], dtype="int64")
    with pytest.raises(ValueError, match="out of range for 3 classes"):
        M.nll(z, np_torch.asarray([0, 3], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="-100"):
        M.nll(z, np_torch.asarray([0, -100], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="one-hot"):
        M.nll(z, np_torch.asarray([[1, 0, 0], [0, 1, 0]], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="shape"):
        M.nll(z, np_torch.asarray([0, 1, 1], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="unknown task"):
        M.nll(z, y, "multi")
    with pytest.raises(ValueError, match="unknown space"):
        M.nll(z, y, "multiclass", space="prob_ability")
    with pytest.raises(ValueError, match="space='logits'"):
        M.nll(z, y, "multiclass", space="probs")  # declared probs that are logits
    with pytest.raises(ValueError, match="space='probs'"):
        M.nll(np_torch.asarray([[0.2, 0.8]]), np_torch.asarray([0], dtype="int64"), "multiclass", space="log_probs")
    with pytest.raises(ValueError, match="logsumexp"):
        M.nll(np_torch.asarray([[-0.2, -0.8]]), np_torch.asarray([0], dtype="int64"), "multiclass", space="log_probs")
    with pytest.raises(ValueError, match="unknown binning"):
        M.calibration_error(z, y, "multiclass", binning="log")
    with pytest.raises(ValueError, match="unknown norm"):
        M.calibration_error(z, y, "multiclass", norm="l3")
    with pytest.raises(ValueError, match="unknown mode"):
        M.reliability(z, y, "multiclass", mode="per_sample")
    with pytest.raises(ValueError, match="n_bins"):
        M.calibration_error(z, y, "multiclass", n_bins=0)
    with pytest.raises(ValueError, match="class_index"):
        M.reliability(z, y, "multiclass", mode="classwise", class_index=3)
    with pytest.raises(ValueError, match="top_k"):
        M.accuracy(np_torch.asarray([0.1, 0.2]), np_torch.asarray([0, 1], dtype="int64"), "binary", top_k=2)
    with pytest.raises(ValueError, match="class indices"):
        M.nll(np_torch.asarray([0.1, 0.2]), np_torch.asarray([0, 2], dtype="int64"), "binary")
    with pytest.raises(ValueError, match="task='binary'"):
        M.nll(np_torch.asarray([0.1, 0.2]), np_torch.asarray([0, 1], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="NaN"):
        M.nll(np_torch.asarray([[math.nan, 0.0]]), np_torch.asarray([0], dtype="int64"), "multiclass")
    with pytest.raises(ValueError, match="empty"):
        M.nll(np.zeros((0, 3)), np.zeros(0, dtype=int), "multiclass")
    with pytest.raises(ValueError, match="average"):
        M.precision_recall_f1(z, y, "multiclass", average="samples")
    with pytest.raises(ValueError, match="threshold"):
        M.precision_recall_f1(z, y, "multiclass", threshold=0.3)
    with pytest.raises(ValueError, match="one per class"):
        M.summary(z, np_torch.asarray([[0, 1, 0], [1, 1, 0]], dtype="int64"), "multilabel", threshold=[0.5, 0.5])
    with pytest.raises(TypeError, match="integer class indices"):
        M.nll(z, np_torch.asarray([0.5, 1.0]), "multiclass")
    with pytest.raises(TypeError, match="labels"):
        M.nll(z, "cat", "multiclass")
