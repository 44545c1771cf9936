"""sigmax.check: every finding code is triggered by a test; correct wiring of a trained model gives none."""

import json
import math

import numpy as np
import pytest

import sigmax
from sigmax.check import CODES, Finding, Findings, check, double_softmax_floor
from sigmax.testing import assert_close, to_numpy

R = np.random.default_rng(0)
LOGITS = R.normal(size=(16, 5)) * 3  # multiclass / multilabel logits
Y_IDX = R.integers(0, 5, size=16)
Y_HOT = np.eye(5)[Y_IDX]
Y_MULTI = (R.random((16, 5)) < 0.4).astype(float)
Y_MULTI[0, :2] = 1.0  # at least one row with two labels
Z_BIN = R.normal(size=32) * 3
Y_BIN = (R.random(32) < 0.5).astype(float)


def _sm(b, axis=-1):
    return sigmax.softmax(b.asarray(LOGITS), axis=axis)


# code -> function(backend) -> (args, kwargs, expected severity)
TRIGGERS = {
    "non-finite": lambda b: ((b.asarray(np.where(np.eye(16, 5) > 0, np.nan, LOGITS)), Y_IDX), {"task": "multiclass"}, "error"),
    "double-softmax": lambda b: ((_sm(b), Y_IDX), {"task": "multiclass"}, "error"),
    "sigmoid-as-logits": lambda b: ((sigmax.sigmoid(b.asarray(LOGITS)), Y_MULTI), {"loss": "BCEWithLogitsLoss"}, "warning"),
    "log-probs-as-logits": lambda b: ((sigmax.log_softmax(b.asarray(LOGITS)), Y_IDX), {"task": "multiclass"}, "info"),
    "wrong-axis": lambda b: ((_sm(b, axis=0), Y_IDX), {"task": "multiclass"}, "error"),
    "softmax-over-batch-of-one": lambda b: ((sigmax.softmax(b.asarray(LOGITS[:1]), axis=0), Y_IDX[:1]),
                                            {"task": "multiclass"}, "error"),
    "logits-as-probs": lambda b: ((b.asarray(Z_BIN), Y_BIN), {"loss": "binary_cross_entropy"}, "error"),
    "probs-not-normalized": lambda b: ((sigmax.sigmoid(b.asarray(LOGITS)), Y_IDX), {"task": "multiclass", "space": "probs"},
                                       "error"),
    "saturated-probs": lambda b: ((b.asarray(np.r_[sigmax.sigmoid(Z_BIN)[:-2], 0.0, 1.0]), Y_BIN),
                                  {"task": "binary", "space": "probs"}, "warning"),
    "logits-as-log-probs": lambda b: ((b.asarray(LOGITS), Y_IDX), {"loss": "nll_loss"}, "error"),
    "probs-as-log-probs": lambda b: ((_sm(b), Y_IDX), {"loss": "NLLLoss"}, "error"),
    "single-column": lambda b: ((b.asarray(LOGITS[:, :1]), np.zeros(16, int)), {"task": "multiclass"}, "error"),
    "binary-two-columns": lambda b: ((b.asarray(LOGITS[:, :2]),), {"task": "binary"}, "warning"),
    "low-precision-logits": lambda b: ((b.asarray(LOGITS * 100, dtype="float16"), Y_IDX), {"task": "multiclass"}, "warning"),
    "target-shape": lambda b: ((b.asarray(LOGITS), Y_IDX[:10]), {"task": "multiclass"}, "error"),
    "class-count-mismatch": lambda b: ((b.asarray(LOGITS), np.eye(6)[Y_IDX]), {"task": "multiclass"}, "error"),
    "target-out-of-range": lambda b: ((b.asarray(LOGITS), np.r_[Y_IDX[:-1], 5]), {"task": "multiclass"}, "error"),
    "multi-hot-targets-multiclass": lambda b: ((b.asarray(LOGITS), Y_MULTI), {"task": "multiclass"}, "error"),
    "one-hot-targets-multilabel": lambda b: ((b.asarray(LOGITS), Y_HOT), {"task": "multilabel"}, "warning"),
}


def test_every_code_has_a_trigger():
    assert set(TRIGGERS) == set(CODES)


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_trigger(np_torch, code):
    args, kwargs, severity = TRIGGERS[code](np_torch)
    found = check(*args, **kwargs)
    assert code in found.codes, found
    f = next(f for f in found if f.code == code)
    assert f.severity == severity
    assert f.message and f.fix and f.message != f.fix
    assert found.ok == (not any(g.severity == "error" for g in found))


def test_double_softmax_floor_is_the_real_loss_floor(np_torch):
    # perfect one-hot "probabilities" given to softmax again: the true class gets e / (e + C - 1)
    for c in (2, 5, 1000):
        onehot = np_torch.asarray(np.eye(c)[:2])
        loss = -to_numpy(sigmax.log_softmax(onehot))[np.arange(2), np.arange(2)]
        assert_close(loss, np.full(2, double_softmax_floor(c)))
    f = next(f for f in check(_sm(np_torch), Y_IDX, task="multiclass"))
    assert_close(f.details["loss_floor"], math.log1p(4 / math.e))
    assert "0.9048" in f.message  # log(1 + 4/e)


def test_nll_on_logits_reports_the_negative_loss(np_torch):
    f = next(f for f in check(np_torch.asarray(LOGITS), Y_IDX, loss="nll_loss") if f.code == "logits-as-log-probs")
    assert_close(f.details["mean_nll"], -LOGITS[np.arange(16), Y_IDX].mean())


def test_target_checks_details(np_torch):
    x = np_torch.asarray(LOGITS)
    assert check(x, np.r_[Y_IDX[:-1], -100], task="multiclass").ok  # ignore_index is skipped
    neg = check(x, np.r_[Y_IDX[:-1], -1], task="multiclass")
    assert neg.codes == ["target-out-of-range"]
    up = check(x, Y_IDX + 1, task="multiclass")  # 1-based labels
    assert "class count differs" in up[0].message and "subtract 1" in up[0].fix
    assert check(np_torch.asarray(Z_BIN), Y_BIN * 2).codes == ["target-out-of-range"]
    assert check(x, Y_IDX + 0.5, task="multiclass").codes == ["target-out-of-range"]
    assert check(x, Y_IDX, task="multilabel").codes == ["target-shape"]
    nan_t = check(np_torch.asarray(Z_BIN), np.r_[Y_BIN[:-1], np.nan], task="binary")
    assert nan_t.codes == ["non-finite"]
    # class-probability targets (rows sum to 1) are fine for multiclass
    soft = to_numpy(sigmax.softmax(np_torch.asarray(R.normal(size=(16, 5)))))
    assert check(x, soft, task="multiclass").ok and not check(x, soft, task="multiclass")
    # torch targets with numpy scores and the other way round are accepted
    if np_torch.name == "torch":
        import torch

        assert not check(LOGITS, torch.as_tensor(Y_IDX), task="multiclass")
        assert not check(x, torch.as_tensor(Y_IDX), task="multiclass")


def test_task_inferred_from_shapes(np_torch):
    assert check(_sm(np_torch), Y_IDX).codes == ["double-softmax"]  # index targets: multiclass
    assert check(sigmax.sigmoid(np_torch.asarray(Z_BIN))).codes == ["sigmoid-as-logits"]  # 1-D: binary
    assert check(_sm(np_torch)).codes == ["double-softmax"]


def test_wrong_axis_declared_probs_and_bf16(np_torch):
    assert check(_sm(np_torch, axis=0), task="multiclass", space="probs").codes == ["wrong-axis"]
    if np_torch.name == "torch":
        x = np_torch.asarray(LOGITS * 10, dtype="bfloat16")
        assert "low-precision-logits" in check(x, task="multiclass").codes
        assert not check(np_torch.asarray(LOGITS, dtype="bfloat16"), task="multiclass")


def test_log_sigmoid_as_logits_with_positive_targets(np_torch):
    ls = sigmax.log_sigmoid(np_torch.asarray(LOGITS))
    f = check(ls, Y_MULTI, task="multilabel")
    assert f.codes == ["log-probs-as-logits"] and f[0].severity == "warning"


def test_few_values_are_info_not_warning(np_torch):
    f = check(np_torch.asarray([0.2, 0.7]), task="binary")
    assert f.codes == ["sigmoid-as-logits"] and f[0].severity == "info" and f.ok


# --------------------------------------------------------------------------------- no false positives

@pytest.mark.parametrize("task", ["multiclass", "multilabel", "binary"])
def test_no_findings_on_a_trained_model(np_torch, task):
    pytest.importorskip("sklearn")
    from sigmax.datasets import digits_scores

    d = digits_scores(task)
    loss = "cross_entropy" if task == "multiclass" else "binary_cross_entropy_with_logits"
    for z, y in ((d.calib_logits, d.calib_labels), (d.test_logits, d.test_labels)):
        for dtype in ("float64", "float32"):
            x = np_torch.asarray(np.array(z), dtype=dtype)
            assert not check(x, y, task=task), check(x, y, task=task)
            assert not check(x, y, loss=loss)
            assert not check(x[:1], y[:1], task=task)  # a batch of one
            if task == "multiclass":
                assert not check(sigmax.log_softmax(x), y, loss="nll_loss")
                assert not check(sigmax.softmax(x), y, task=task, space="probs")
            elif dtype == "float64":  # float32 sigmoid rounds logits > 17 to exactly 1: saturated-probs, rightly
                assert not check(sigmax.sigmoid(x), y, loss="binary_cross_entropy")
        assert not check(np_torch.asarray(np.array(z), dtype="float16"), y, task=task)


def test_never_changes_inputs(np_torch):
    x = np_torch.asarray(LOGITS, requires_grad=True) if np_torch.name == "torch" else np_torch.asarray(LOGITS)
    before = to_numpy(x).copy()
    check(x, Y_IDX, task="multiclass")
    np.testing.assert_array_equal(to_numpy(x), before)
    if np_torch.name == "torch":
        assert x.grad is None and x.requires_grad


def test_findings_api():
    f = check(sigmax.softmax(LOGITS), Y_MULTI, task="multiclass")
    assert isinstance(f, Findings) and all(isinstance(g, Finding) for g in f)
    assert f.errors and not f.ok and f.codes[0] in CODES
    assert [g["code"] for g in json.loads(f.to_json())] == f.codes
    assert "Fix:" in str(f) and "error: [" in str(f)
    with pytest.raises(ValueError, match="wiring errors"):
        f.raise_for_errors()
    ok = check(LOGITS, Y_IDX, task="multiclass")
    ok.raise_for_errors()
    assert str(ok).startswith("no findings") and repr(ok) == "Findings([])"
    severities = [g.severity for g in check(sigmax.softmax(LOGITS[:, :1].repeat(2, 1) * 0 + 0.5), task="multiclass")]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        check(LOGITS, loss="hinge")
    with pytest.raises(ValueError, match="takes space='log_probs' but space='logits'"):
        check(LOGITS, loss="nll_loss", space="logits")
    with pytest.raises(ValueError, match="for binary and multilabel"):
        check(LOGITS, loss="bce", task="multiclass")
    with pytest.raises(ValueError, match="unknown task"):
        check(LOGITS, task="regression")
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        check(LOGITS, task="multiclass", axis=3)
    with pytest.raises(TypeError, match="targets must be an array"):
        check(LOGITS, "labels", task="multiclass")


def test_loss_given_as_torch_function_or_class():
    torch = pytest.importorskip("torch")
    assert check(sigmax.softmax(LOGITS), Y_IDX, loss=torch.nn.functional.cross_entropy).codes == ["double-softmax"]
    assert check(sigmax.softmax(LOGITS), Y_IDX, loss=torch.nn.CrossEntropyLoss()).codes == ["double-softmax"]


def test_module_and_function_share_the_name():
    import importlib

    # importing the submodules again (as tools do) leaves the package's names bound to the functions
    mod = importlib.import_module("sigmax.check")
    imod = importlib.import_module("sigmax.interpret")
    assert sigmax.check is mod.check and sigmax.interpret is imod.interpret
    assert sigmax.check(sigmax.softmax(LOGITS)).codes == ["double-softmax"]


def test_cuda_scores_and_guard():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.as_tensor(LOGITS, device="cuda")
    y = torch.as_tensor(Y_IDX, device="cuda")
    assert not check(x, y, task="multiclass")
    assert check(torch.softmax(x, 1), Y_IDX, task="multiclass").codes == ["double-softmax"]  # numpy targets
    assert check(x, y + 1, task="multiclass").codes == ["target-out-of-range"]
    from sigmax.torch import guard

    g = guard(torch.nn.CrossEntropyLoss(), warn=False)
    z = x.clone().requires_grad_(True)
    g(torch.softmax(z, dim=1), y).backward()
    assert [f.code for f in g.findings] == ["double-softmax"] and z.grad.device == x.device
