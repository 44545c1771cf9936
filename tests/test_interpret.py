"""sigmax.interpret: declared spaces, task-aware probabilities, decisions, batch-split invariance."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sigmax
from sigmax.interpret import (
    ABSTAIN,
    Interpretation,
    interpret,
    to_log_probs,
    to_probs,
    validate_log_probs,
    validate_probs,
)
from sigmax.testing import assert_close, to_numpy

SEED_X = [[-0.3, -0.7], [0.3, 0.7], [1.1, -0.7], [-1.1, 0.7]]


def test_seed_numbers(backend):
    # seed 000: torch.sigmoid(x_batch) and torch.softmax(x_batch, dim=1), to the printed 4 digits
    x = backend.asarray(SEED_X, dtype="float32")
    ml = interpret(x, "multilabel")
    mc = interpret(x, "multiclass", axis=1)
    assert_close(to_numpy(ml.probs).round(4), [[0.4256, 0.3318], [0.5744, 0.6682], [0.7503, 0.3318],
                                                [0.2497, 0.6682]], dtype="float32")
    assert_close(to_numpy(mc.probs).round(4), [[0.5987, 0.4013], [0.4013, 0.5987], [0.8581, 0.1419],
                                                [0.1419, 0.8581]], dtype="float32")
    assert type(mc.probs) is type(x) and mc.probs.dtype == x.dtype
    assert to_numpy(mc.predictions).tolist() == [0, 1, 0, 1]
    assert to_numpy(ml.predictions).tolist() == [[0, 0], [1, 1], [1, 0], [0, 1]]


def test_binary_equals_two_class_multiclass(np_torch, rng):
    z = rng.normal(size=50) * 4
    z[0] = 0.0  # the tie: both say class 0
    zb = np_torch.asarray(z)
    b = interpret(zb, "binary")
    m = interpret(sigmax.binary_to_two_class(zb), "multiclass")
    assert_close(b.probs, to_numpy(m.probs)[:, 1])
    assert_close(b.log_probs, to_numpy(m.log_probs)[:, 1])
    assert_close(b.confidence, m.confidence)
    assert_close(b.margin, m.margin)
    assert_close(b.entropy, m.entropy)
    np.testing.assert_array_equal(to_numpy(b.predictions), to_numpy(m.predictions))


def test_all_fields_multiclass(np_torch):
    x = np_torch.asarray([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    r = interpret(x, "multiclass", top_k=2)
    p = np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum()
    assert_close(r.probs, [p, [1 / 3] * 3])
    assert_close(r.log_probs, np.log([p, [1 / 3] * 3]))
    assert_close(r.confidence, [p[0], 1 / 3])
    assert_close(r.margin, [p[0] - p[1], 0.0])
    assert_close(r.entropy, [-(p * np.log(p)).sum(), math.log(3)])
    assert to_numpy(r.predictions).tolist() == [0, 0]
    assert to_numpy(r.topk_indices).tolist() == [[0, 1], [0, 1]]  # ties: lower index first
    assert_close(r.topk_probs, [[p[0], p[1]], [1 / 3, 1 / 3]])
    assert r.predictions.dtype == np_torch.xp.int64
    assert r.threshold is None and r.abstained is None and r.axis == 1
    assert "task='multiclass'" in repr(r) and set(r.as_dict()) >= {"probs", "predictions"}
    assert isinstance(r, Interpretation)


def test_class_axis_zero(np_torch, rng):
    x = rng.normal(size=(4, 6))
    a = interpret(np_torch.asarray(x), "multiclass", axis=0, top_k=2)
    b = interpret(np_torch.asarray(x.T), "multiclass", dim=-1, top_k=2)
    assert_close(to_numpy(a.probs).T, b.probs)
    np.testing.assert_array_equal(to_numpy(a.predictions), to_numpy(b.predictions))
    np.testing.assert_array_equal(to_numpy(a.topk_indices).T, to_numpy(b.topk_indices))
    assert_close(a.entropy, b.entropy)


def test_binary_threshold_and_exact_extremes(np_torch):
    z = np_torch.asarray([-1000.0, -1.0, 0.0, 1e-30, 1.0, 1000.0])
    r = interpret(z, "binary")
    assert to_numpy(r.predictions).tolist() == [0, 0, 0, 1, 1, 1]  # logit > 0, exact for 1e-30
    assert_close(r.probs, [0.0, 1 / (1 + math.e), 0.5, 0.5, 1 / (1 + 1 / math.e), 1.0])
    assert_close(r.log_probs[0], -1000.0)
    assert_close(r.entropy[[0, 5]], [0.0, 0.0])
    assert_close(r.confidence[[0, 2, 5]], [1.0, 0.5, 1.0])
    assert not np.any(np.isnan(to_numpy(r.entropy)))
    r2 = interpret(z, "binary", threshold=0.8)
    assert to_numpy(r2.predictions).tolist() == [0, 0, 0, 0, 0, 1]
    assert to_numpy(interpret(z, "binary", threshold=0.0).predictions).tolist() == [1] * 6
    assert to_numpy(interpret(z, "binary", threshold=1.0).predictions).tolist() == [0] * 6


def test_multilabel_thresholds_topk_at_least_one(np_torch):
    x = np_torch.asarray([[-3.0, 1.0, 0.5], [-1.0, -2.0, -4.0], [2.0, 2.0, -1.0]])
    assert to_numpy(interpret(x, "multilabel").predictions).tolist() == [[0, 1, 1], [0, 0, 0], [1, 1, 0]]
    r = interpret(x, "multilabel", at_least_one=True)
    assert to_numpy(r.predictions).tolist() == [[0, 1, 1], [1, 0, 0], [1, 1, 0]]
    # one threshold per class: sigmoid(0.5) = 0.622 fails 0.7, sigmoid(-1) = 0.269 passes 0.2
    per = interpret(x, "multilabel", threshold=[0.2, 0.5, 0.7])
    assert to_numpy(per.predictions).tolist() == [[0, 1, 0], [1, 0, 0], [1, 1, 0]]
    assert_close(per.threshold, [0.2, 0.5, 0.7])
    top1 = interpret(x, "multilabel", top_k=1)
    assert to_numpy(top1.predictions).tolist() == [[0, 1, 0], [1, 0, 0], [1, 0, 0]]
    top1t = interpret(x, "multilabel", top_k=1, threshold=0.5)  # top-1 that also passes
    assert to_numpy(top1t.predictions).tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert to_numpy(top1.topk_indices).tolist() == [[1], [0], [0]]
    # per-label confidence and entropy
    p = 1 / (1 + np.exp(-to_numpy(x)))
    assert_close(r.confidence, np.maximum(p, 1 - p))
    assert_close(r.entropy, -(p * np.log(p) + (1 - p) * np.log1p(-p)))


def test_multilabel_per_class_threshold_along_axis0(np_torch):
    x = np_torch.asarray([[-3.0, -1.0], [1.0, -2.0], [0.5, -4.0]])  # classes along axis 0
    r = interpret(x, "multilabel", axis=0, threshold=[0.2, 0.5, 0.7])
    assert to_numpy(r.predictions).tolist() == [[0, 1], [1, 0], [0, 0]]


def test_abstain(np_torch):
    x = np_torch.asarray([[2.0, 0.0, -1.0], [0.1, 0.2, 0.0]])
    r = interpret(x, "multiclass", abstain_below=0.5)
    assert to_numpy(r.predictions).tolist() == [0, ABSTAIN]
    assert to_numpy(r.abstained).tolist() == [False, True]
    b = interpret(np_torch.asarray([3.0, 0.1, -0.2]), "binary", abstain_below=0.9)
    assert to_numpy(b.predictions).tolist() == [1, -1, -1]
    m = interpret(np_torch.asarray([[3.0, 0.1]]), "multilabel", abstain_below=0.9)
    assert to_numpy(m.predictions).tolist() == [[1, -1]]
    assert to_numpy(interpret(x, "multiclass", abstain_below=0.0).predictions).tolist() == [0, 1]


def test_spaces_agree(np_torch, rng):
    x = rng.normal(size=(20, 5)) * 3
    for task in ("multiclass", "multilabel"):
        ref = interpret(np_torch.asarray(x), task, top_k=2)
        for space in ("probs", "log_probs"):
            s = to_probs(np_torch.asarray(x), task) if space == "probs" else to_log_probs(np_torch.asarray(x), task)
            r = interpret(s, task, space=space, top_k=2)
            for f in ("probs", "log_probs", "confidence", "margin", "entropy", "topk_probs"):
                assert_close(getattr(r, f), getattr(ref, f), factor=4, err_msg=f"{task} {space} {f}")
            np.testing.assert_array_equal(to_numpy(r.predictions), to_numpy(ref.predictions))


def test_binary_log_probs_space_log1mexp(np_torch):
    z = np.array([-40.0, -1e-8, 0.0, 1e-8, 3.0, 40.0])
    ref = interpret(np_torch.asarray(z), "binary")
    r = interpret(sigmax.log_sigmoid(np_torch.asarray(z)), "binary", space="log_probs")
    assert_close(r.entropy, ref.entropy, factor=64)  # log1mexp near 0 loses a few bits vs the logits
    assert_close(r.confidence, ref.confidence)
    assert_close(r.probs, ref.probs)


def test_temperature(np_torch):
    x = np_torch.asarray([[2.0, 0.0, -1.0]])
    assert_close(interpret(x, "multiclass", temperature=2.0).probs, sigmax.softmax(x / 2.0))
    assert_close(interpret(x, "multilabel", temperature=2.0).probs, sigmax.sigmoid(x / 2.0))
    with pytest.raises(ValueError, match="temperature divides logits"):
        interpret(sigmax.softmax(x), "multiclass", space="probs", temperature=2.0)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        interpret(x, "multiclass", temperature=0.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_kept(np_torch, dtype):
    if dtype == "bfloat16" and np_torch.name == "numpy":
        pytest.skip("NumPy has no bfloat16")
    x = np_torch.asarray([[3.0, 1.0, 0.2], [0.0, -1.0, 5.0]], dtype=dtype)
    r = interpret(x, "multiclass", top_k=2)
    for f in ("probs", "log_probs", "confidence", "margin", "entropy", "topk_probs"):
        assert str(getattr(r, f).dtype).endswith(dtype), f
    ref = interpret(np.asarray(to_numpy(x), dtype=np.float64), "multiclass")
    assert_close(r.probs, ref.probs, dtype=dtype)
    assert to_numpy(r.predictions).tolist() == [0, 2]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_half_precision_probs_accepted(np_torch, dtype):
    # softmax outputs of half-precision logits sum to 1 only within the half dtype's rounding
    if dtype == "bfloat16" and np_torch.name == "numpy":
        pytest.skip("NumPy has no bfloat16")
    x = np_torch.asarray(np.random.default_rng(0).normal(size=(50, 30)) * 3, dtype=dtype)
    for space, conv in (("probs", sigmax.softmax), ("log_probs", sigmax.log_softmax)):
        r = interpret(conv(x), "multiclass", space=space)
        assert str(r.probs.dtype).endswith(dtype)
        np.testing.assert_array_equal(to_numpy(r.predictions), to_numpy(interpret(x, "multiclass").predictions))


def test_autograd_flows(rng):
    torch = pytest.importorskip("torch")
    x = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    r = interpret(x, "multiclass")
    (r.entropy.sum() + r.log_probs[:, 0].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_declared_probs_validated(np_torch):
    with pytest.raises(ValueError, match="look like logits; pass space='logits'"):
        interpret(np_torch.asarray([[2.0, -1.0]]), "multiclass", space="probs")
    with pytest.raises(ValueError, match="like log-probabilities; pass space='log_probs'"):
        interpret(np_torch.asarray([[-2.0, -1.0]]), "multiclass", space="probs")
    with pytest.raises(ValueError, match="do not sum to 1.*task='multilabel'"):
        interpret(np_torch.asarray([[0.9, 0.8]]), "multiclass", space="probs")
    wrong_axis = sigmax.softmax(np_torch.asarray([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]]), axis=0)
    with pytest.raises(ValueError, match="wrong axis"):
        interpret(wrong_axis, "multiclass", space="probs")
    # a NaN row is not a validation error: it gets no decision (test_nan_rows_get_no_decision)
    with pytest.warns(UserWarning, match="1 row"):
        r = interpret(np_torch.asarray([[float("nan"), 1.0], [0.3, 0.7]]), "multiclass", space="probs")
    assert np.asarray(r.predictions).tolist() == [-1, 1]
    with pytest.raises(ValueError, match="do not sum to 1"):  # the other rows are still validated
        interpret(np_torch.asarray([[float("nan"), 1.0], [0.3, 0.3]]), "multiclass", space="probs")
    interpret(np_torch.asarray([[0.9, 0.8]]), "multilabel", space="probs")  # fine for multilabel
    r = interpret(np_torch.asarray([[2.0, -1.0]]), "multilabel", space="probs", validate=False)
    assert r.probs is not None
    # a float32 softmax row is accepted (dtype-aware tolerance)
    x = np_torch.asarray(np.random.default_rng(1).normal(size=(64, 1000)) * 10, dtype="float32")
    validate_probs(sigmax.softmax(x), "multiclass")


def test_declared_log_probs_validated(np_torch):
    with pytest.raises(ValueError, match="like probabilities; pass space='probs'"):
        interpret(np_torch.asarray([[0.2, 0.8]]), "multiclass", space="log_probs")
    with pytest.raises(ValueError, match="look like logits"):
        interpret(np_torch.asarray([[2.0, -1.0]]), "multilabel", space="log_probs")
    with pytest.raises(ValueError, match="logsumexp is not 0.*task='multilabel'"):
        validate_log_probs(sigmax.log_sigmoid(np_torch.asarray([[1.0, 2.0]])), "multiclass")
    validate_log_probs(sigmax.log_softmax(np_torch.asarray([[1.0, 2.0, -30.0]], dtype="float32")), "multiclass")


def test_bad_arguments(np_torch):
    x = np_torch.asarray([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="unknown task 'multiclas'.*did you mean 'multiclass'"):
        interpret(x, "multiclas")
    with pytest.raises(ValueError, match="unknown space"):
        interpret(x, "multiclass", space="logprobz")
    with pytest.raises(ValueError, match="threshold applies to binary and multilabel.*abstain_below"):
        interpret(x, "multiclass", threshold=0.3)
    with pytest.raises(ValueError, match=r"threshold has shape \(2,\) but scores have 3 classes"):
        interpret(x, "multilabel", threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
        interpret(x, "multilabel", threshold=1.5)
    with pytest.raises(ValueError, match="threshold values must be probabilities"):
        interpret(x, "multilabel", threshold=[0.5, 2.0, 0.5])
    with pytest.raises(TypeError, match="one number"):
        interpret(x[0], "binary", threshold=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"top_k=4 but there are only 3 classes; top_k must be an integer in 1\.\.3"):
        interpret(x, "multiclass", top_k=4)
    with pytest.raises(ValueError, match="top_k needs several classes"):
        interpret(x, "binary", top_k=1)
    with pytest.raises(ValueError, match="at_least_one applies to task='multilabel'"):
        interpret(x, "multiclass", at_least_one=True)
    with pytest.raises(ValueError, match="abstain_below must be a probability"):
        interpret(x, "multiclass", abstain_below=2)
    with pytest.raises(ValueError, match="needs scores with a class axis"):
        interpret(1.0, "multiclass")
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        interpret(x, "multiclass", axis=2)
    with pytest.raises(TypeError, match="scores must be an array"):
        interpret("logits", "binary")


def test_scalar_and_list_input():
    r = interpret(0.3, "binary")
    assert r.predictions == 1 and isinstance(r.probs, np.floating)
    assert interpret([[1.0, 2.0]], "multiclass").predictions.tolist() == [1]


# ---------------------------------------------------------------- batch-split invariance (exact)

_OPTIONS = [
    ("binary", {}),
    ("binary", {"threshold": 0.3, "abstain_below": 0.7}),
    ("multiclass", {"top_k": 3, "abstain_below": 0.4}),
    ("multiclass", {"temperature": 1.7}),
    ("multilabel", {"at_least_one": True, "threshold": [0.2, 0.5, 0.9, 0.5, 0.6]}),
    ("multilabel", {"top_k": 2, "abstain_below": 0.8}),
]


def _fields(r):
    return {k: to_numpy(v) for k, v in r.as_dict().items()
            if v is not None and not isinstance(v, (str, int, float)) and k != "threshold"}


def _check_split(backend, x, task, kw, sizes, space="logits"):
    xs = backend.asarray(x if task != "binary" else x[:, 0], dtype="float32")
    if space != "logits":
        conv = to_probs if space == "probs" else to_log_probs
        xs = conv(xs, task)
    whole = _fields(interpret(xs, task, space=space, **kw))
    parts, start = [], 0
    for n in sizes:
        parts.append(_fields(interpret(xs[start:start + n], task, space=space, **kw)))
        start += n
    for k, v in whole.items():
        joined = np.concatenate([p[k] for p in parts], axis=0)
        np.testing.assert_array_equal(joined, v, err_msg=f"{task} {kw} {k}")  # exactly, not approximately


@pytest.mark.parametrize("task,kw", _OPTIONS, ids=lambda v: str(v))
def test_batch_split_invariance_size_one(np_torch, task, kw, rng):
    x = rng.normal(size=(13, 5)) * 4
    x[3] = 0.0  # ties
    x[4, :2] = 60.0  # saturated probabilities
    _check_split(np_torch, x, task, kw, [1] * 13)
    _check_split(np_torch, x, task, kw, [5, 1, 7])


@pytest.mark.parametrize("space", ["probs", "log_probs"])
def test_batch_split_invariance_spaces(np_torch, space, rng):
    x = rng.normal(size=(9, 5)) * 3
    for task, kw in _OPTIONS:
        if "temperature" not in kw:
            _check_split(np_torch, x, task, kw, [1] * 9, space=space)


@given(n=st.integers(1, 12), cuts=st.lists(st.integers(0, 12), max_size=4), seed=st.integers(0, 2**16))
def test_batch_split_invariance_property(n, cuts, seed):
    from sigmax.testing import available_backends

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) * rng.uniform(0.1, 20)
    points = sorted({c for c in cuts if 0 < c < n})
    sizes = np.diff([0, *points, n]).tolist()
    for backend in available_backends():
        if backend.name == "jax":
            continue
        for task, kw in _OPTIONS[1::2]:
            _check_split(backend, x, task, kw, sizes)


def test_cuda_device_kept():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.tensor(np.random.default_rng(0).normal(size=(64, 5)) * 4, device="cuda")
    for task, kw in _OPTIONS:
        xs = x if task != "binary" else x[:, 0]
        r = interpret(xs, task, **kw)
        for k, v in _fields(r).items():
            assert getattr(r, k).device == x.device, k
        ref = interpret(xs.cpu(), task, **kw)
        np.testing.assert_array_equal(to_numpy(r.predictions), to_numpy(ref.predictions))
        assert_close(r.probs, ref.probs)
        assert_close(r.entropy, ref.entropy)
        # batch-split invariance on the device too
        whole = _fields(r)
        parts = [_fields(interpret(xs[i:i + 1], task, **kw)) for i in range(xs.shape[0])]
        for k, v in whole.items():
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), v, err_msg=f"cuda {task} {k}")


# ---------------------------------------------------------------------------------------------
# NaN rows get no decision; one spelling list; one top_k rule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,kw", _OPTIONS, ids=lambda v: str(v))
def test_nan_rows_get_no_decision(np_torch, task, kw, rng):
    # regression: interpret predicted class 0 (binary and multilabel: 0 for every label) for a NaN row
    x = rng.normal(size=(7, 5)) * 3
    x[2, 1] = math.nan  # one NaN logit: the whole row (every label of a multilabel row) gets no decision
    x[5, :] = math.nan
    if task == "binary":
        x = x[:, 1]
        x[5] = math.nan
    xs = np_torch.asarray(x, dtype="float32")
    with pytest.warns(UserWarning, match="2 row\\(s\\) of scores contain NaN: they get no decision"):
        r = interpret(xs, task, **kw)
    pred = to_numpy(r.predictions)
    nan_rows = [2, 5]
    assert np.all(pred[nan_rows] == ABSTAIN)
    if r.abstained is not None:
        assert np.all(to_numpy(r.abstained)[nan_rows])
    # the other rows are decided exactly as without the NaN rows
    keep = [i for i in range(7) if i not in nan_rows]
    ref = interpret(np_torch.asarray(x[keep], dtype="float32"), task, **kw)
    np.testing.assert_array_equal(pred[keep], to_numpy(ref.predictions))
    np.testing.assert_array_equal(to_numpy(r.probs)[keep], to_numpy(ref.probs))


@pytest.mark.parametrize("space", ["probs", "log_probs"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_nan_rows_in_declared_probabilities(np_torch, task, space):
    # regression: declared probabilities with a NaN row raised instead of abstaining on that row
    p = np.array([[0.2, 0.8], [math.nan, 0.5], [0.6, 0.4]])
    x = p[:, 0] if task == "binary" else p
    if space == "log_probs":
        with np.errstate(invalid="ignore"):
            x = np.log(x)
    with pytest.warns(UserWarning, match="1 row"):
        r = interpret(np_torch.asarray(x), task, space=space)
    pred = to_numpy(r.predictions)
    assert np.all(pred[1] == ABSTAIN) and np.all(pred[[0, 2]] != ABSTAIN)


def test_no_warning_without_nan(recwarn):
    interpret(np.array([[1.0, -np.inf], [np.inf, 0.0]]), "multilabel")
    interpret(np.array([[1.0, -np.inf], [np.inf, 0.0]]), "multiclass")
    assert not [w for w in recwarn if "NaN" in str(w.message)]


def test_nan_rows_under_jit():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    f = jax.jit(lambda z: interpret(z, "multilabel").predictions)  # no concrete count, no warning: still -1
    z = jnp.array([[1.0, -2.0], [jnp.nan, 3.0]])
    assert np.asarray(f(z)).tolist() == [[1, 0], [-1, -1]]
    with pytest.warns(UserWarning, match="1 row"):  # eager JAX counts and warns
        assert np.asarray(interpret(z, "multilabel").predictions).tolist() == [[1, 0], [-1, -1]]


def test_one_list_of_spellings():
    # regression: interpret accepted space="logit", the CLI rejected it; the aliases are one table now
    from sigmax import _inputs

    x = np.array([[1.0, 2.0, 0.5]])
    for alias, name in _inputs.ALIASES.items():
        if name in _inputs.SPACES:
            assert interpret(x if name == "logits" else to_probs(x, "multiclass") if name == "probs"
                             else to_log_probs(x, "multiclass"), "multiclass", space=alias).space == name
        else:
            assert interpret(x, alias).task == name


def test_top_k_rule_is_shared_with_metrics():
    # regression: metrics.accuracy(top_k=5) over 3 classes gave 1.0 while interpret raised
    from sigmax import metrics

    x = np.array([[1.0, 2.0, 0.5], [0.0, 0.1, 0.2]])
    with pytest.raises(ValueError, match="top_k=5 but there are only 3 classes") as a:
        interpret(x, "multiclass", top_k=5)
    with pytest.raises(ValueError, match="top_k=5 but there are only 3 classes") as b:
        metrics.accuracy(x, [0, 1], "multiclass", top_k=5)
    assert str(a.value) == str(b.value)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="top_k"):
            interpret(x, "multiclass", top_k=bad)
        with pytest.raises(ValueError, match="top_k"):
            metrics.accuracy(x, [0, 1], "multiclass", top_k=bad)
    assert metrics.accuracy(x, [0, 1], "multiclass", top_k=3) == 1.0


def test_does_not_import_testing():
    import ast
    import inspect

    import sigmax.interpret as mod

    tree = ast.parse(inspect.getsource(mod))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "testing" not in names and not any(str(m).endswith(".testing") for m in names)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not [a for a in imported if a.startswith("_")], "private names imported across modules"


# ---------------------------------------------------------------------- conformal sets beside the decisions

def _conformal_data(n=600, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return logits, np.minimum((rng.random((n, 1)) > p.cumsum(1)).sum(1), c - 1)


def test_interpret_returns_conformal_sets(backend):
    from sigmax.conformal import ConformalClassifier

    logits, y = _conformal_data()
    cc = ConformalClassifier("multiclass", method="aps").fit(logits[:300], y[:300])
    x = backend.asarray(logits[300:].astype(np.float32), "float32")
    r = interpret(x, "multiclass", conformal=cc)
    assert type(r.sets).__module__.split(".")[0] == type(r.probs).__module__.split(".")[0]
    np.testing.assert_array_equal(to_numpy(r.sets), to_numpy(cc.predict_sets(x)))
    # the point prediction is in its set wherever the set is not empty (APS sets are prefixes)
    sets, pred = to_numpy(r.sets), to_numpy(r.predictions)
    assert sets[np.arange(300), pred][sets.any(1)].all()
    assert interpret(x, "multiclass").sets is None


def test_interpret_conformal_binary_temperature_and_nan():
    from sigmax.conformal import ConformalClassifier

    rng = np.random.default_rng(1)
    z = rng.normal(size=400) * 3
    y = (rng.random(400) < 1 / (1 + np.exp(-z))).astype(int)
    cc = ConformalClassifier("binary", alpha=0.2).fit(z[:200], y[:200])
    r = interpret(z[200:], "binary", conformal=cc)
    assert r.sets.shape == (200, 2)
    np.testing.assert_array_equal(r.sets, cc.predict_sets(z[200:]))
    # the sets see the scores the decisions see: divided by the temperature
    np.testing.assert_array_equal(interpret(z[200:], "binary", temperature=2.0, conformal=cc).sets,
                                  cc.predict_sets(z[200:] / 2.0))
    x = z[200:].copy()
    x[5] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = interpret(x, "binary", conformal=cc)
    assert len(caught) == 1 and "prediction set of every class" in str(caught[0].message)
    assert r.sets[5].all() and r.predictions[5] == -1


def test_interpret_conformal_must_match_the_task():
    from sigmax.conformal import ConformalClassifier

    logits, y = _conformal_data()
    cc = ConformalClassifier("multiclass").fit(logits, y)
    with pytest.raises(ValueError, match="conformal must be a sigmax.conformal.ConformalClassifier fitted for task='binary'"):
        interpret(logits[:, 0], "binary", conformal=cc)
    with pytest.raises(ValueError, match="fitted for task='multiclass'"):
        interpret(logits, "multiclass", conformal="lac")
    with pytest.raises(ValueError, match="not fitted yet"):
        interpret(logits, "multiclass", conformal=ConformalClassifier("multiclass"))
