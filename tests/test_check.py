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


# --------------------------------------------------------------------------------- the table of rules

def test_the_rule_table_is_the_single_source_of_codes_and_levels():
    import sys

    from sigmax import _rules

    assert list(CODES) == [r.code for r in _rules.RULES]
    assert {c: lvl for c, (lvl, _) in CODES.items()} == {r.code: r.level for r in _rules.RULES}
    # documented where a user looks a code up: the module and the function, with its severity
    module_doc, function_doc = sys.modules["sigmax.check"].__doc__, check.__doc__
    for r in _rules.RULES:
        for doc in (module_doc, function_doc):
            assert any(line.split()[:2] == [r.code, r.level] for line in doc.splitlines() if line.strip()), r.code
        assert all(u in CODES for u in r.unless) and callable(r.find)


def test_each_rule_is_a_small_function_and_modules_stay_small():
    import inspect
    from pathlib import Path

    from sigmax import _rules

    for r in _rules.RULES:
        assert len(inspect.getsource(r.find).splitlines()) <= 40, r.code
    assert len(inspect.getsource(check).splitlines()) <= 90  # it builds the context and runs the table
    for mod in ("check.py", "_rules.py", "torch/_guard.py"):
        text = (Path(sigmax.__file__).parent / mod).read_text()
        assert len(text.splitlines()) < 800, mod
        # one floor: no import of sigmax.testing or of interpret's private names, one tolerance table
        assert "from .testing" not in text and "from ..testing" not in text, mod
        assert "interpret import _" not in text and "def _spacing" not in text and "DESIGN.md" not in text, mod


def test_a_more_specific_rule_pre_empts_the_general_one():
    from sigmax import _rules

    unless = {r.code: r.unless for r in _rules.RULES}
    assert "double-softmax" in unless["sigmoid-as-logits"]
    # softmax rows declared as logits: double-softmax only, not also sigmoid-as-logits
    assert check(sigmax.softmax(LOGITS)).codes == ["double-softmax"]
    # a batch of one softmaxed over the batch axis: that finding only, not double-softmax or wrong-axis
    assert check(sigmax.softmax(LOGITS[:1], axis=0), task="multiclass").codes == ["softmax-over-batch-of-one"]


# --------------------------------------------------------------------------------- what was assumed

def test_findings_say_which_task_and_space_were_assumed(np_torch):
    x = np_torch.asarray(LOGITS)
    f = check(_sm(np_torch), Y_IDX)
    assert (f.task, f.task_inferred, f.space, f.loss) == ("multiclass", True, "logits", None)
    f = check(np_torch.asarray(Z_BIN))
    assert (f.task, f.task_inferred) == ("binary", True)
    f = check(x)  # a class axis and no targets: the task cannot be told
    assert (f.task, f.task_inferred) == (None, False)
    f = check(x, task="multi-label")
    assert (f.task, f.task_inferred, f.space) == ("multilabel", False, "logits")
    f = check(sigmax.log_softmax(x), Y_IDX, loss="NLLLoss")
    assert (f.task, f.task_inferred, f.space, f.loss) == ("multiclass", False, "log_probs", "nll_loss")
    f = check(x, Y_MULTI, loss="BCEWithLogitsLoss")  # one sigmoid per column: multilabel
    assert (f.task, f.task_inferred, f.space) == ("multilabel", True, "logits")
    d = json.loads(json.dumps(f.to_dict()))
    assert d["task"] == "multilabel" and d["space"] == "logits" and d["ignore_index"] == -100
    assert d["ok"] is True and d["findings"] == [] and d["counts"] == {"error": 0, "warning": 0, "info": 0}
    d = check(_sm(np_torch), Y_IDX).to_dict()
    assert [g["code"] for g in d["findings"]] == ["double-softmax"] and d["counts"]["error"] == 1 and not d["ok"]


def test_a_binary_or_multilabel_loss_with_columns_runs_the_multilabel_rules(np_torch):
    # one-hot targets given to BCEWithLogitsLoss: a single-label problem wired as multi-label
    assert check(np_torch.asarray(LOGITS), Y_HOT, loss="BCEWithLogitsLoss").codes == ["one-hot-targets-multilabel"]


# --------------------------------------------------------------------------------- ignore_index

def test_ignore_index_is_skipped_by_every_rule(np_torch):
    z = np_torch.asarray(Z_BIN)
    assert not check(z, np.r_[Y_BIN[:-1], -100], task="binary")  # binary labels
    y = Y_MULTI.copy()
    y[3, 1] = -100
    assert not check(np_torch.asarray(LOGITS), y, task="multilabel")  # one multi-hot entry
    hot = Y_HOT.copy()
    hot[np.arange(4), (Y_IDX[:4] + 1) % 5] = -100  # skipped entries of one-hot rows: still one-hot
    assert check(np_torch.asarray(LOGITS), hot, task="multilabel").codes == ["one-hot-targets-multilabel"]
    # class indices: the skipped row counts neither in the range check nor in the mean nll_loss
    y_idx = np.r_[Y_IDX[:-1], 7]
    assert not check(np_torch.asarray(LOGITS), y_idx, task="multiclass", ignore_index=7)
    f = next(g for g in check(np_torch.asarray(LOGITS), y_idx, loss="nll_loss", ignore_index=7)
             if g.code == "logits-as-log-probs")
    assert_close(f.details["mean_nll"], -LOGITS[np.arange(15), Y_IDX[:-1]].mean())
    # log_sigmoid outputs with targets whose only positive entries are skipped: nothing to say
    ls = sigmax.log_sigmoid(np_torch.asarray(LOGITS))
    assert check(ls, np.where(Y_MULTI > 0, 7, 0), task="multilabel", ignore_index=7).codes == []


def test_a_label_out_of_range_names_ignore_index(np_torch):
    x = np_torch.asarray(LOGITS)
    f = check(x, np.r_[Y_IDX[:-1], -1], task="multiclass")
    assert f.codes == ["target-out-of-range"]
    assert "ignore_index=-100 is skipped" in f[0].message and "pass ignore_index=-1" in f[0].fix
    assert check(x, np.r_[Y_IDX[:-1], -1], task="multiclass", ignore_index=-1).ok
    f = check(x, np.r_[Y_IDX[:-1], -100], task="multiclass", ignore_index=None)  # nothing skipped
    assert f.codes == ["target-out-of-range"] and "no ignore_index is set" in f[0].message
    f = check(np_torch.asarray(Z_BIN), np.r_[Y_BIN[:-1], -1])
    assert f.codes == ["target-out-of-range"] and "ignore_index=-100 is skipped" in f[0].message
    assert "pass ignore_index=-1" in f[0].fix
    y = Y_MULTI.copy()
    y[0, 0] = -1
    f = check(x, y, task="multilabel")
    assert f.codes == ["target-out-of-range"] and "ignore_index" in f[0].fix
    # the range reported is that of the counted labels, not of the skipped ones
    f = check(x, np.r_[[-100, 3, 4, 9] * 4], task="multiclass")
    assert "(min 3, max 9;" in f[0].message


def test_ignore_index_in_the_interface_in_use():
    from sigmax._inputs import interface

    with interface("cli"):
        f = check(LOGITS, np.r_[Y_IDX[:-1], -1], task="multiclass")
    assert "--ignore-index -100 is skipped" in f[0].message and "pass --ignore-index -1" in f[0].fix


def test_bad_ignore_index():
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        check(LOGITS, Y_IDX, task="multiclass", ignore_index=1.5)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        check(LOGITS, Y_IDX, task="multiclass", ignore_index=True)


@pytest.mark.parametrize("task,labels,ignore_index", [
    ("multiclass", np.r_[Y_IDX[:-2], -100, -100], -100),
    ("multiclass", np.r_[Y_IDX[:-1], -1], -100),
    ("multiclass", np.r_[Y_IDX[:-1], 5], -100),
    ("multiclass", np.r_[Y_IDX[:-1], -100], None),
    ("multiclass", np.r_[Y_IDX[:-1], 9], 9),
    ("binary", np.r_[Y_BIN[:-1], -100], -100),
    ("binary", np.r_[Y_BIN[:-1], 2], -100),
    ("binary", np.r_[Y_BIN[:-1], -100], None),
    ("multilabel", np.where(np.eye(16, 5) > 0, -100, Y_MULTI), -100),
    ("multilabel", np.where(np.eye(16, 5) > 0, 2, Y_MULTI), -100),
])
def test_check_and_the_metrics_agree_on_labels(task, labels, ignore_index):
    # the report and the metrics read labels through sigmax._inputs.canonical: check accepts what they accept
    from sigmax._inputs import canonical

    scores = Z_BIN if task == "binary" else LOGITS
    try:
        canonical(scores, labels, task, ignore_index=ignore_index)
        accepted = True
    except ValueError:
        accepted = False
    found = check(scores, labels, task=task, ignore_index=ignore_index)
    assert ("target-out-of-range" not in found.codes) == accepted, found
    assert found.ignore_index == ignore_index


# --------------------------------------------------------------------------------- tolerances

def test_probability_targets_get_the_tolerance_of_their_dtype():
    torch = pytest.importorskip("torch")
    z = torch.as_tensor(LOGITS)
    soft = torch.softmax(z, 1).to(torch.bfloat16)  # rows sum to 1 within bfloat16's rounding (~3e-3)
    assert float((soft.double().sum(1) - 1).abs().max()) > 1e-3
    assert check(z, soft, task="multiclass").ok
    off = soft.double() * 1.1
    assert check(z, off, task="multiclass").codes == ["target-out-of-range"]  # clearly not a distribution


def test_low_precision_uses_the_tolerance_table(np_torch):
    from sigmax._tolerance import spacing

    f = next(g for g in check(np_torch.asarray(LOGITS * 100, dtype="float16"), task="multiclass")
             if g.code == "low-precision-logits")
    assert f.details["spacing"] == spacing("float16", f.details["max_abs"])


def test_jax_scores_and_ignore_index_without_dtype_warnings():
    jax = pytest.importorskip("jax")
    import warnings

    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)  # JAX's default (sigmax.testing turns it on)
    try:
        x = jax.numpy.asarray(LOGITS)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "int64/float64 not available" casts
            assert check(sigmax.softmax(x), Y_IDX).codes == ["double-softmax"]
            assert check(x, np.r_[Y_IDX[:-1], -100], loss="nll_loss").codes == ["logits-as-log-probs"]
            assert check(x, np.r_[Y_IDX[:-1], -1]).codes == ["target-out-of-range"]
            assert check(x, Y_HOT, task="multilabel").codes == ["one-hot-targets-multilabel"]
    finally:
        jax.config.update("jax_enable_x64", x64)
