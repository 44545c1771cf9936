"""Losses: values and gradients against torch.nn.functional (and torchvision's focal loss formula) on
every backend, numerics at the extremes, PyTorch's edge cases, and the errors sigmax adds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sigmax
from sigmax.testing import assert_close, to_numpy, ulp_error

torch = pytest.importorskip("torch")
F = torch.nn.functional
mpmath = pytest.importorskip("mpmath")

# The `backend` fixture is a parameter (an immutable description of a library), not per-test state,
# so reusing it across hypothesis examples is safe.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# JAX compiles every operation for every new shape, so the generated cases run on NumPy and PyTorch
# (the profile's number of examples) and on JAX for a few examples only, to keep the file fast.
JAX = next((b for b in __import__("sigmax.testing").testing.available_backends() if b.name == "jax"), None)
jax_few = settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow])
needs_jax = pytest.mark.skipif(JAX is None, reason="JAX is not installed")

INF = math.inf
REDUCTIONS = ["none", "mean", "sum"]


def t64(a):
    return torch.as_tensor(np.array(a))  # a copy: arrays from JAX are read-only


def native(backend, a, dtype="float64"):
    """``a`` (a NumPy array) in the backend's library; integer arrays stay integer."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return backend.asarray(a, "int64")
    return backend.asarray(a, dtype)


# ---------------------------------------------------------------------------------------------
# generated cases for the multi-class losses
# ---------------------------------------------------------------------------------------------


@st.composite
def multiclass_cases(draw, allow_probs=True, allow_smoothing=True):
    """A random (input, target, options) case: shapes (C,), (N, C), (N, C, d1[, d2]), the class axis
    anywhere, index or probability targets, weight, ignore_index, label smoothing, reduction."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    c = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["1d", "2d", "kd"]))
    if kind == "1d":
        shape = (c,)
    elif kind == "2d":
        shape = (draw(st.integers(0, 5)), c)
    else:
        shape = (draw(st.integers(1, 3)), c) + tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    x = rng.normal(scale=3.0, size=shape)
    torch_axis = 0 if len(shape) == 1 else 1
    rest = shape[:torch_axis] + shape[torch_axis + 1:]
    probs = allow_probs and draw(st.booleans())
    weight = rng.uniform(0.1, 2.0, size=c) if draw(st.booleans()) else None
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0])) if allow_smoothing else 0.0
    reduction = draw(st.sampled_from(REDUCTIONS))
    ignore_index = -100
    if probs:
        e = rng.exponential(size=shape) * (rng.uniform(size=shape) < 0.7)  # some exact zeros
        e = np.where(e.sum(axis=torch_axis, keepdims=True) == 0, 1.0, e)
        target = e / e.sum(axis=torch_axis, keepdims=True)
    else:
        target = rng.integers(0, c, size=rest)
        if draw(st.booleans()):
            ignore_index = draw(st.sampled_from([-100, -1, 0, c - 1]))
            drop = rng.uniform(size=rest) < draw(st.sampled_from([0.3, 1.0]))  # sometimes all ignored
            target = np.where(drop, ignore_index, target)
    # sigmax may put the class axis anywhere: move it, and tell sigmax where it is
    axis = None
    if len(shape) > 1 and draw(st.booleans()):
        axis = draw(st.integers(0, len(shape) - 1))
    return {"x": x, "target": target, "probs": probs, "weight": weight, "smoothing": smoothing,
                "reduction": reduction, "ignore_index": ignore_index, "axis": axis, "torch_axis": torch_axis}


def _moved(case):
    """(x, target) with the class axis where sigmax is told it is (``case["axis"]``)."""
    x, t = case["x"], case["target"]
    if case["axis"] is None:
        return x, t
    x = np.moveaxis(x, case["torch_axis"], case["axis"])
    if case["probs"]:
        t = np.moveaxis(t, case["torch_axis"], case["axis"])
    return x, t


def _torch_ce(case, x=None, fn="cross_entropy"):
    x = t64(case["x"]) if x is None else x
    kw = {"weight": None if case["weight"] is None else t64(case["weight"]), "reduction": case["reduction"]}
    if not case["probs"]:
        kw["ignore_index"] = case["ignore_index"]
    if fn == "cross_entropy":
        return F.cross_entropy(x, t64(case["target"]), label_smoothing=case["smoothing"], **kw)
    return F.nll_loss(x, t64(case["target"]), **kw)


def _sigmax_ce(backend, case, fn="cross_entropy", dtype="float64", x=None):
    xm, tm = _moved(case)
    xin = native(backend, xm, dtype) if x is None else x
    kw = {"weight": None if case["weight"] is None else native(backend, case["weight"], dtype),
              "reduction": case["reduction"], "ignore_index": case["ignore_index"]}
    if case["axis"] is not None:
        kw["axis"] = case["axis"]
    if fn == "cross_entropy":
        return getattr(sigmax, fn)(xin, native(backend, tm, dtype), label_smoothing=case["smoothing"], **kw)
    return getattr(sigmax, fn)(xin, native(backend, tm, dtype), **kw)


def _assert_same_library(out, x):
    """The result is the input's kind of array (NumPy reductions give NumPy scalars, as np.sum does)."""
    if isinstance(x, np.ndarray):
        assert isinstance(out, (np.ndarray, np.generic)) and out.dtype == x.dtype
    else:
        assert type(out) is type(x) and out.dtype == x.dtype


def _ref_none_shape(case):
    """With the class axis moved, reduction="none" keeps the remaining axes in their order."""
    out = _torch_ce(case).numpy()
    return out


@fixture_ok
@given(case=multiclass_cases())
def test_cross_entropy_matches_pytorch(np_torch, case):
    _check_cross_entropy(np_torch, case)


@needs_jax
@jax_few
@given(case=multiclass_cases())
def test_cross_entropy_matches_pytorch_jax(case):
    _check_cross_entropy(JAX, case)


def _check_cross_entropy(backend, case):
    out = _sigmax_ce(backend, case)
    _assert_same_library(out, native(backend, case["x"]))
    ref = _ref_none_shape(case)
    assert tuple(out.shape) == ref.shape
    # a sum/mean of up to ~50 terms: a few more roundings than one term
    assert_close(out, ref, "float64", factor=4)


@fixture_ok
@given(case=multiclass_cases(allow_probs=False, allow_smoothing=False))
def test_nll_loss_matches_pytorch(np_torch, case):
    _check_nll_loss(np_torch, case)


@needs_jax
@jax_few
@given(case=multiclass_cases(allow_probs=False, allow_smoothing=False))
def test_nll_loss_matches_pytorch_jax(case):
    _check_nll_loss(JAX, case)


def _check_nll_loss(backend, case):
    logp = np.asarray(F.log_softmax(t64(case["x"]), dim=case["torch_axis"]))
    case = dict(case, x=logp)
    out = _sigmax_ce(backend, case, fn="nll_loss")
    assert_close(out, _torch_ce(case, fn="nll_loss").numpy(), "float64", factor=4)  # sums: see above


@fixture_ok
@given(case=multiclass_cases())
def test_cross_entropy_gradients_match_pytorch(case):
    xt = t64(case["x"]).requires_grad_(True)
    ref = _torch_ce(case, x=xt)
    backend = next(b for b in sigmax.testing.available_backends() if b.name == "torch")
    xm, _ = _moved(case)
    xs = t64(xm).requires_grad_(True)
    out = _sigmax_ce(backend, case, x=xs)
    if not bool(torch.isfinite(ref).all()) or ref.numel() == 0:
        return  # NaN (all ignored) or nothing to differentiate
    g = torch.ones_like(ref)
    (gr,) = torch.autograd.grad(ref, xt, g)
    (gs,) = torch.autograd.grad(out, xs, g)
    if case["axis"] is not None:
        gs = torch.movedim(gs, case["axis"], case["torch_axis"])
    assert_close(gs, gr, "float64", factor=4)  # gradients of sums: a few roundings


def test_cross_entropy_float32_matches_pytorch(backend, rng):
    x = rng.normal(scale=5.0, size=(64, 10)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    w = rng.uniform(0.5, 2.0, size=10).astype(np.float32)
    for kw in [{}, {"weight": w}, {"label_smoothing": 0.2}, {"reduction": "none"}]:
        args = {k: (native(backend, v, "float32") if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        out = sigmax.cross_entropy(native(backend, x, "float32"), native(backend, y), **args)
        ref = F.cross_entropy(torch.as_tensor(x), torch.as_tensor(y),
                              **{k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()})
        assert out.dtype == native(backend, x, "float32").dtype
        assert_close(out, ref, "float32", factor=4)  # a mean of 64 float32 terms, summed in another order


def test_float32_gradients_match_pytorch(rng):
    x = rng.normal(scale=5.0, size=(32, 7)).astype(np.float32)
    y = rng.integers(0, 7, size=32)
    xa = torch.tensor(x, requires_grad=True)
    xb = torch.tensor(x, requires_grad=True)
    F.cross_entropy(xa, torch.as_tensor(y), label_smoothing=0.1).backward()
    sigmax.cross_entropy(xb, torch.as_tensor(y), label_smoothing=0.1).backward()
    assert_close(xb.grad, xa.grad, "float32")
    z = rng.normal(scale=5.0, size=(32, 7)).astype(np.float32)
    yb = (rng.uniform(size=(32, 7)) < 0.4).astype(np.float32)
    za = torch.tensor(z, requires_grad=True)
    zb = torch.tensor(z, requires_grad=True)
    pw = torch.linspace(0.5, 3.0, 7)
    F.binary_cross_entropy_with_logits(za, torch.as_tensor(yb), pos_weight=pw).backward()
    sigmax.binary_cross_entropy_with_logits(zb, torch.as_tensor(yb), pos_weight=pw).backward()
    assert_close(zb.grad, za.grad, "float32")


@pytest.mark.parametrize("options", [
    {},
    {"weight": [0.5, 2.0, 1.0, 0.25]},
    {"label_smoothing": 0.3, "weight": [0.5, 2.0, 1.0, 0.25]},
    {"ignore_index": 1, "reduction": "sum"},
    {"probs": True, "label_smoothing": 0.2, "weight": [0.5, 2.0, 1.0, 0.25]},
    {"axis": -1, "reduction": "none"},
], ids=str)
def test_cross_entropy_gradcheck_float64(options, rng):
    options = dict(options)
    probs = options.pop("probs", False)
    if "weight" in options:
        options["weight"] = torch.tensor(options["weight"], dtype=torch.float64)
    x = torch.tensor(rng.normal(size=(5, 4, 3)), requires_grad=True)
    ax = options.get("axis", 1)
    if probs:
        t = torch.softmax(torch.tensor(rng.normal(size=(5, 4, 3))), dim=1)
    else:
        shape = (5, 4) if ax == -1 else (5, 3)
        t = torch.tensor(rng.integers(0, 3 if ax == -1 else 4, size=shape))
    assert torch.autograd.gradcheck(lambda v: sigmax.cross_entropy(v, t, **options), (x,))


def test_binary_losses_gradcheck_float64(rng):
    x = torch.tensor(rng.normal(scale=3.0, size=(4, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(size=(4, 3)), requires_grad=True)
    pw = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    w = torch.tensor([[1.0], [2.0], [0.5], [1.5]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda v, t: sigmax.binary_cross_entropy_with_logits(v, t, weight=w, pos_weight=pw), (x, y))
    p = torch.tensor(rng.uniform(0.05, 0.95, size=(4, 3)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, t: sigmax.binary_cross_entropy(v, t, weight=w), (p, y))
    assert torch.autograd.gradcheck(lambda v: sigmax.sigmoid_focal_loss(v, y.detach(), reduction="sum"), (x,))
    t = torch.tensor(rng.integers(0, 3, size=4))
    assert torch.autograd.gradcheck(lambda v: sigmax.softmax_focal_loss(v, t, alpha=[1.0, 0.5, 2.0]), (x,))


def test_bce_with_logits_own_backward_gradcheck_and_double_backward(rng):
    """On PyTorch tensors the with-logits loss has its own backward (analytic, through sigmax.sigmoid)
    when only the logits need a gradient: first and second derivatives are checked numerically."""
    x = torch.tensor(rng.normal(scale=3.0, size=(4, 3)), requires_grad=True)
    y = torch.tensor(rng.uniform(size=(4, 3)))
    pw = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    w = torch.tensor([[1.0], [2.0], [0.5], [1.5]], dtype=torch.float64)
    for kw in [{}, {"weight": w, "pos_weight": pw}, {"reduction": "none", "pos_weight": pw}]:
        fn = lambda v, kw=kw: sigmax.binary_cross_entropy_with_logits(v, y, **kw)
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
    # and under torch.func transforms the generic path runs
    g = torch.func.grad(lambda v: sigmax.binary_cross_entropy_with_logits(v, y))(x.detach())
    xa = x.detach().clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(xa, y).backward()
    assert_close(g, xa.grad)


def test_gradient_at_zero_logit_is_sigmoid_minus_target():
    # |x| is written so that x == 0 gets the one-sided derivative that makes the formula exact
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    sigmax.binary_cross_entropy_with_logits(x, y, reduction="sum").backward()
    assert_close(x.grad, 0.5 - y)


# ---------------------------------------------------------------------------------------------
# JAX: same numbers, jax.grad, jit
# ---------------------------------------------------------------------------------------------


def test_jax_grad_matches_pytorch(rng):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = rng.normal(size=(6, 5))
    y = rng.integers(0, 5, size=6)
    y[0] = -100
    w = rng.uniform(0.5, 2.0, size=5)
    g = jax.grad(lambda v: sigmax.cross_entropy(v, jnp.asarray(y), weight=jnp.asarray(w), label_smoothing=0.1))(
        jnp.asarray(x))
    xt = t64(x).requires_grad_(True)
    F.cross_entropy(xt, t64(y), weight=t64(w), label_smoothing=0.1).backward()
    assert_close(g, xt.grad, "float64")
    yb = (rng.uniform(size=(6, 5)) < 0.5).astype(np.float64)
    gb = jax.grad(lambda v: sigmax.binary_cross_entropy_with_logits(v, jnp.asarray(yb)))(jnp.asarray(x))
    xt = t64(x).requires_grad_(True)
    F.binary_cross_entropy_with_logits(xt, t64(yb)).backward()
    assert_close(gb, xt.grad, "float64")


def test_jax_forward_mode_and_hessian_match_pytorch(rng):
    """The JAX selection has a custom JVP (a one-hot masked sum): forward mode and second derivatives
    still work and agree with PyTorch."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = rng.normal(size=(3, 4))
    y = np.array([1, 0, -100])
    f = lambda v: sigmax.cross_entropy(v, jnp.asarray(y), weight=jnp.asarray([1.0, 2.0, 0.5, 1.0]))
    h = jax.hessian(f)(jnp.asarray(x))
    ref = torch.autograd.functional.hessian(
        lambda v: F.cross_entropy(v, t64(y), weight=t64([1.0, 2.0, 0.5, 1.0])), t64(x))
    assert_close(h, ref, "float64")
    d = rng.normal(size=(3, 4))
    _, tangent = jax.jvp(f, (jnp.asarray(x),), (jnp.asarray(d),))
    xt = t64(x).requires_grad_(True)
    F.cross_entropy(xt, t64(y), weight=t64([1.0, 2.0, 0.5, 1.0])).backward()
    assert_close(tangent, float((xt.grad * t64(d)).sum()), "float64")


def test_jax_jit_with_traced_target(rng):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.asarray(rng.normal(size=(4, 3)))
    y = jnp.asarray([0, 2, -100, 1])
    f = jax.jit(lambda v, t: sigmax.cross_entropy(v, t))  # target traced: value checks are skipped
    assert_close(f(x, y), F.cross_entropy(t64(np.asarray(x)), t64(np.asarray(y))), "float64")
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(4, 3))), axis=1)
    fb = jax.jit(lambda v, t: sigmax.binary_cross_entropy_with_logits(v, t))
    assert_close(fb(x, q), F.binary_cross_entropy_with_logits(t64(np.asarray(x)), t64(np.asarray(q))), "float64")


def test_numpy_target_with_jax_input(rng):
    jax = pytest.importorskip("jax")
    x = rng.normal(size=(4, 3))
    out = sigmax.cross_entropy(jax.numpy.asarray(x), np.array([0, 1, 2, 0]))
    assert_close(out, F.cross_entropy(t64(x), t64(np.array([0, 1, 2, 0]))), "float64")


# ---------------------------------------------------------------------------------------------
# binary cross-entropy
# ---------------------------------------------------------------------------------------------


@st.composite
def binary_cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    c = shape[-1] if shape else 1
    x = rng.normal(scale=draw(st.sampled_from([1.0, 5.0, 30.0])), size=shape)
    hard = draw(st.booleans())
    y = (rng.uniform(size=shape) < 0.5).astype(np.float64) if hard else rng.uniform(size=shape)
    # (a (1,) weight on a 0-d input is refused: PyTorch would silently return shape (1,))
    wkind = draw(st.sampled_from([None, "class", "full"]))
    weight = None if wkind is None else rng.uniform(0.1, 2.0, size=(c,) if wkind == "class" and shape else shape)
    pos_weight = rng.uniform(0.1, 4.0, size=(c,) if shape else ()) if draw(st.booleans()) else None
    return {"x": x, "y": y, "weight": weight, "pos_weight": pos_weight, "reduction": draw(st.sampled_from(REDUCTIONS))}


@fixture_ok
@given(case=binary_cases())
def test_bce_with_logits_matches_pytorch(np_torch, case):
    _check_bce_with_logits(np_torch, case)


@needs_jax
@jax_few
@given(case=binary_cases())
def test_bce_with_logits_matches_pytorch_jax(case):
    _check_bce_with_logits(JAX, case)


def _check_bce_with_logits(backend, case):
    opt = lambda v: None if v is None else native(backend, v)
    out = sigmax.binary_cross_entropy_with_logits(
        native(backend, case["x"]), native(backend, case["y"]), weight=opt(case["weight"]),
        pos_weight=opt(case["pos_weight"]), reduction=case["reduction"])
    tv = lambda v: None if v is None else t64(v)
    ref = F.binary_cross_entropy_with_logits(t64(case["x"]), t64(case["y"]), weight=tv(case["weight"]),
                                             pos_weight=tv(case["pos_weight"]), reduction=case["reduction"])
    assert tuple(out.shape) == tuple(ref.shape)
    # PyTorch's (1 - y) x + log(1 + e^-x) formula cancels for x << 0; ours does not: compare at the
    # scale of the logits (|x| up to ~100 here)
    assert_close(out, ref, "float64", factor=128)


@fixture_ok
@given(case=binary_cases())
def test_bce_on_probabilities_matches_pytorch(np_torch, case):
    _check_bce_on_probabilities(np_torch, case)


@needs_jax
@jax_few
@given(case=binary_cases())
def test_bce_on_probabilities_matches_pytorch_jax(case):
    _check_bce_on_probabilities(JAX, case)


def _check_bce_on_probabilities(backend, case):
    p = np.asarray(torch.sigmoid(t64(case["x"])))
    opt = lambda v: None if v is None else native(backend, v)
    out = sigmax.binary_cross_entropy(native(backend, p), native(backend, case["y"]), weight=opt(case["weight"]),
                                      reduction=case["reduction"])
    ref = F.binary_cross_entropy(t64(p), t64(case["y"]), weight=None if case["weight"] is None else
                                 t64(case["weight"]), reduction=case["reduction"])
    assert_close(out, ref, "float64", factor=4)  # sums of a few terms


def test_bce_equals_bce_with_logits_where_finite(backend, rng):
    """Binary cross-entropy on sigmoid(x) equals the with-logits loss while sigmoid(x) is not saturated."""
    x = rng.normal(scale=6.0, size=(50, 4))
    y = rng.uniform(size=(50, 4))
    p = sigmax.sigmoid(native(backend, x))
    a = sigmax.binary_cross_entropy(p, native(backend, y), reduction="none")
    b = sigmax.binary_cross_entropy_with_logits(native(backend, x), native(backend, y), reduction="none")
    # log(1 - p) of a rounded p: relative error up to eps / (1 - p) with |x| <= ~25 here
    assert_close(a, b, "float64", factor=2**16)


def test_bce_weight_and_pos_weight_along_axis(backend, rng):
    x = rng.normal(size=(2, 3, 4, 5))  # (N, C, H, W)
    y = (rng.uniform(size=x.shape) < 0.5).astype(np.float64)
    pw = rng.uniform(0.5, 3.0, size=3)
    w = rng.uniform(0.5, 3.0, size=3)
    out = sigmax.binary_cross_entropy_with_logits(native(backend, x), native(backend, y), weight=native(backend, w),
                                                  pos_weight=native(backend, pw), axis=1)
    ref = F.binary_cross_entropy_with_logits(t64(x), t64(y), weight=t64(w).view(3, 1, 1),
                                             pos_weight=t64(pw).view(3, 1, 1))
    assert_close(out, ref, "float64")
    p = np.asarray(torch.sigmoid(t64(x)))
    out = sigmax.binary_cross_entropy(native(backend, p), native(backend, y), weight=native(backend, w), dim=1)
    assert_close(out, F.binary_cross_entropy(t64(p), t64(y), weight=t64(w).view(3, 1, 1)), "float64")


def _mp_bce_logits(x, y):
    x, y = mpmath.mpf(float(x)), mpmath.mpf(float(y))
    # log sigmoid(x) = -log(1 + e^-x), log(1 - sigmoid(x)) = -log(1 + e^x): no 1 - sigmoid rounding
    return y * mpmath.log1p(mpmath.exp(-x)) + (1 - y) * mpmath.log1p(mpmath.exp(x))


def test_bce_with_logits_exact_to_1e4_in_float32():
    mpmath.mp.dps = 60
    xs = np.array([-1e4, -1e3, -100.0, -20.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 20.0, 100.0, 1e3, 1e4], dtype=np.float32)
    for yv in [0.0, 1.0, 0.25]:
        ys = np.full_like(xs, yv)
        out = sigmax.binary_cross_entropy_with_logits(xs, ys, reduction="none")
        exact = [_mp_bce_logits(a, b) for a, b in zip(xs, ys)]
        err = ulp_error(out, exact, "float32")
        assert err.max() <= 4, (yv, err)  # a few roundings, relative, at every logit
        t = sigmax.binary_cross_entropy_with_logits(torch.as_tensor(xs), torch.as_tensor(ys), reduction="none")
        assert ulp_error(t, exact, "float32").max() <= 4


def test_bce_on_probabilities_clamps_log_at_minus_100(np_torch):
    p = np_torch.asarray([0.0, 1.0, 0.0, 1.0, 1e-300])
    y = np_torch.asarray([1.0, 0.0, 0.0, 1.0, 1.0])
    out = sigmax.binary_cross_entropy(p, y, reduction="none")
    assert_close(out, [100.0, 100.0, 0.0, 0.0, 100.0], "float64")
    ref = F.binary_cross_entropy(t64([0.0, 1.0, 0.0, 1.0, 1e-300]), t64([1.0, 0.0, 0.0, 1.0, 1.0]), reduction="none")
    assert_close(out, ref, "float64")


def test_bce_saturated_probabilities_have_finite_gradients():
    p = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    sigmax.binary_cross_entropy(p, torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64), reduction="sum").backward()
    assert bool(torch.isfinite(p.grad).all())
    assert_close(p.grad[2], -2.0)


# ---------------------------------------------------------------------------------------------
# focal losses
# ---------------------------------------------------------------------------------------------


def _torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, verbatim (torchvision is not a dependency)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1, 2.0), (0.6, 0.0), (0.25, 0.5), (0.9, 3.0)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_focal_loss_matches_torchvision(np_torch, alpha, gamma, reduction, rng):
    _check_sigmoid_focal(np_torch, alpha, gamma, reduction, rng)


def _check_sigmoid_focal(backend, alpha, gamma, reduction, rng):
    x = rng.normal(scale=4.0, size=(6, 5))
    for y in [(rng.uniform(size=x.shape) < 0.3).astype(np.float64), rng.uniform(size=x.shape)]:
        out = sigmax.sigmoid_focal_loss(native(backend, x), native(backend, y), alpha=alpha, gamma=gamma,
                                        reduction=reduction)
        ref = _torchvision_sigmoid_focal_loss(t64(x), t64(y), alpha, gamma, reduction)
        assert_close(out, ref, "float64", factor=4)  # sums of 30 terms


def test_sigmoid_focal_loss_gradients_match_torchvision(rng):
    x = rng.normal(scale=3.0, size=(8, 4))
    y = (rng.uniform(size=x.shape) < 0.3).astype(np.float64)
    xa, xb = t64(x).requires_grad_(True), t64(x).requires_grad_(True)
    _torchvision_sigmoid_focal_loss(xa, t64(y), reduction="sum").backward()
    sigmax.sigmoid_focal_loss(xb, t64(y), reduction="sum").backward()
    assert_close(xb.grad, xa.grad, "float64")


def test_sigmoid_focal_loss_is_exact_where_sigmoid_saturates():
    # torchvision's 1 - sigmoid(40) rounds to 0 in float32; from log_sigmoid it keeps its digits
    x = np.array([40.0], dtype=np.float32)
    out = sigmax.sigmoid_focal_loss(x, np.array([1.0], dtype=np.float32), alpha=-1, gamma=1.0)
    mpmath.mp.dps = 50
    s = 1 / (1 + mpmath.exp(-40))
    exact = (1 - s) * -mpmath.log(s)
    assert ulp_error(out, [exact], "float32").max() <= 4


def _ref_softmax_focal(x, t, alpha, gamma, reduction, ignore_index=-100):
    logp = F.log_softmax(x, dim=1)
    valid = t != ignore_index
    safe = torch.where(valid, t, 0)
    lp = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((1 - lp.exp()) ** gamma) * lp
    if alpha is not None:
        loss = loss * torch.as_tensor(alpha, dtype=x.dtype)[safe]
    loss = torch.where(valid, loss, 0.0)
    if reduction == "mean":
        return loss.sum() / valid.sum()
    return loss.sum() if reduction == "sum" else loss


@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_focal_loss_matches_reference(np_torch, alpha, gamma, reduction, rng):
    _check_softmax_focal(np_torch, alpha, gamma, reduction, rng)


@needs_jax
def test_focal_losses_on_jax(rng):
    """A few option combinations on JAX (each compiles; the full grid runs on NumPy and PyTorch)."""
    for alpha, gamma, reduction in [(0.25, 2.0, "none"), (-1, 0.5, "sum")]:
        _check_sigmoid_focal(JAX, alpha, gamma, reduction, rng)
    for alpha, gamma, reduction in [(None, 2.0, "mean"), ([0.5, 1.0, 2.0, 0.25], 0.5, "sum")]:
        _check_softmax_focal(JAX, alpha, gamma, reduction, rng)


def _check_softmax_focal(backend, alpha, gamma, reduction, rng):
    x = rng.normal(scale=3.0, size=(7, 4, 2))
    t = rng.integers(0, 4, size=(7, 2))
    t[0, 0] = -100
    a = None if alpha is None else native(backend, np.asarray(alpha))
    out = sigmax.softmax_focal_loss(native(backend, x), native(backend, t), alpha=a, gamma=gamma, reduction=reduction)
    ref = _ref_softmax_focal(t64(x), t64(t), alpha, gamma, reduction)
    assert_close(out, ref, "float64", factor=4)  # sums of 14 terms
    # prob targets that are one-hot give the same (ignored entries dropped)
    if reduction == "sum":
        onehot = np.moveaxis(np.eye(4)[np.where(t < 0, 0, t)], -1, 1) * (t >= 0)[:, None, :]
        onehot[0, :, 0] = np.eye(4)[1]  # the ignored entry gets a real target: add its loss separately
        out_p = sigmax.softmax_focal_loss(native(backend, x), native(backend, onehot), alpha=a, gamma=gamma,
                                          reduction="sum")
        t2 = t.copy()
        t2[0, 0] = 1
        assert_close(out_p, _ref_softmax_focal(t64(x), t64(t2), alpha, gamma, "sum"), "float64", factor=4)


def test_softmax_focal_loss_gamma_0_is_cross_entropy(backend, rng):
    x = rng.normal(size=(5, 3))
    t = rng.integers(0, 3, size=5)
    for reduction in REDUCTIONS:
        a = sigmax.softmax_focal_loss(native(backend, x), native(backend, t), gamma=0.0, reduction=reduction)
        b = sigmax.cross_entropy(native(backend, x), native(backend, t), reduction=reduction)
        assert_close(a, b, "float64")


# ---------------------------------------------------------------------------------------------
# seed 001, dtypes, PyTorch's edge cases
# ---------------------------------------------------------------------------------------------


def test_seed_001_single_label_example():
    """Seed 001: log_softmax + a hand-written nll_loss equals cross_entropy, and the naive
    x - x.exp().sum(-1).log() overflows where log_softmax does not."""

    def nll_loss(p, target):  # the seed's hand-written nll_loss
        return -p[range(target.shape[0]), target].mean()

    def naive_log_softmax(x):  # the seed's log-softmax
        return x - x.exp().sum(-1).log().unsqueeze(-1)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    target = torch.randint(0, 4, (8,), generator=g)
    lp = sigmax.log_softmax(x, dim=-1)
    assert_close(nll_loss(lp, target), sigmax.cross_entropy(x, target))
    assert_close(sigmax.nll_loss(lp, target), sigmax.cross_entropy(x, target))
    assert_close(sigmax.cross_entropy(x, target), F.cross_entropy(x, target))
    assert_close(nll_loss(naive_log_softmax(x), target), F.cross_entropy(x, target))  # fine on small logits
    big = x * 100  # logits of a few hundred: exp overflows float32
    assert not bool(torch.isfinite(nll_loss(naive_log_softmax(big), target)))
    ours = sigmax.cross_entropy(big, target)
    assert bool(torch.isfinite(ours))
    assert_close(ours, F.cross_entropy(big, target), factor=8)  # losses of a few hundred: rtol at that scale
    assert_close(nll_loss(sigmax.log_softmax(big, dim=-1), target), ours, factor=8)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_computed_in_float32(dtype, rng):
    x = torch.tensor(rng.normal(scale=3.0, size=(16, 5)), dtype=getattr(torch, dtype))
    t = torch.tensor(rng.integers(0, 5, size=16))
    y = torch.tensor(rng.uniform(size=(16, 5)), dtype=getattr(torch, dtype))
    ce = sigmax.cross_entropy(x, t, label_smoothing=0.1)
    assert ce.dtype == x.dtype
    assert_close(ce, F.cross_entropy(x.float(), t, label_smoothing=0.1), dtype)
    b = sigmax.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert b.dtype == x.dtype
    assert_close(b, F.binary_cross_entropy_with_logits(x.float(), y.float(), reduction="none"), dtype)


def test_half_precision_numpy_and_jax(backend, rng):
    x = rng.normal(size=(4, 3))
    out = sigmax.cross_entropy(backend.asarray(x, "float16"), native(backend, np.array([0, 1, 2, 1])))
    assert out.dtype == backend.asarray(x, "float16").dtype
    assert_close(out, F.cross_entropy(t64(x).half().float(), t64(np.array([0, 1, 2, 1]))), "float16")


def test_all_ignored_mean_is_nan_sum_is_zero(backend):
    x = native(backend, np.zeros((3, 4)))
    t = native(backend, np.full(3, -100))
    assert np.isnan(to_numpy(sigmax.cross_entropy(x, t)))
    assert np.isnan(to_numpy(sigmax.nll_loss(x, t)))
    assert np.isnan(to_numpy(sigmax.cross_entropy(x, t, label_smoothing=0.1, weight=native(backend, np.ones(4)))))
    assert to_numpy(sigmax.cross_entropy(x, t, reduction="sum")) == 0
    assert_close(sigmax.cross_entropy(x, t, reduction="none"), np.zeros(3), "float64")


def test_empty_batch(backend):
    x = native(backend, np.zeros((0, 4)))
    assert np.isnan(to_numpy(sigmax.cross_entropy(x, native(backend, np.zeros(0, dtype=np.int64)))))
    assert np.isnan(to_numpy(sigmax.cross_entropy(x, native(backend, np.zeros((0, 4))))))
    assert to_numpy(sigmax.binary_cross_entropy_with_logits(x, x, reduction="sum")) == 0


def test_one_d_input_and_class_axis_anywhere(backend, rng):
    x = rng.normal(size=4)
    out = sigmax.cross_entropy(native(backend, x), native(backend, np.array(2)), reduction="none")
    assert tuple(out.shape) == ()
    assert_close(out, F.cross_entropy(t64(x), torch.tensor(2)), "float64")
    z = rng.normal(size=(2, 5, 7))  # (batch, sequence, vocabulary)
    t = rng.integers(0, 7, size=(2, 5))
    out = sigmax.cross_entropy(native(backend, z), native(backend, t), axis=-1, reduction="none")
    assert_close(out, F.cross_entropy(t64(z).transpose(1, 2), t64(t), reduction="none"), "float64")
    out = sigmax.cross_entropy(native(backend, z), native(backend, t), dim=2)
    assert_close(out, F.cross_entropy(t64(z).reshape(-1, 7), t64(t).reshape(-1)), "float64")


def test_masked_classes_with_probability_targets(backend):
    """A class with logit -inf and target probability 0 adds nothing (PyTorch gives NaN there)."""
    x = native(backend, np.array([[0.0, -INF, 1.0]]))
    q = native(backend, np.array([[0.5, 0.0, 0.5]]))
    out = sigmax.cross_entropy(x, q)
    ref = F.cross_entropy(t64([[0.0, 1.0]]), t64([[0.5, 0.5]]))
    assert_close(out, ref, "float64")
    # an index target on a masked class costs inf, as in PyTorch
    assert to_numpy(sigmax.cross_entropy(x, native(backend, np.array([1])))) == INF


def test_lists_become_numpy():
    out = sigmax.cross_entropy([[1.0, 2.0, 3.0]], [2])
    assert isinstance(out, (np.ndarray, np.generic))
    assert_close(out, F.cross_entropy(t64([[1.0, 2.0, 3.0]]), torch.tensor([2])), "float64")
    assert_close(sigmax.binary_cross_entropy_with_logits([1.0, -1.0], [1, 0]),
                 F.binary_cross_entropy_with_logits(t64([1.0, -1.0]), t64([1.0, 0.0])), "float64")


def test_uint8_and_int32_targets(np_torch, rng):
    x = rng.normal(size=(4, 3))
    for dt in ["uint8", "int32"]:
        t = np_torch.xp.asarray(np.array([0, 1, 2, 1], dtype=dt)) if np_torch.name == "torch" else \
            np.array([0, 1, 2, 1], dtype=dt)
        out = sigmax.cross_entropy(np_torch.asarray(x), t)
        assert_close(out, F.cross_entropy(t64(x), torch.tensor([0, 1, 2, 1])), "float64")


# ---------------------------------------------------------------------------------------------
# errors where PyTorch is silent or cryptic
# ---------------------------------------------------------------------------------------------


def test_error_class_index_out_of_range_names_values(np_torch):
    x = np_torch.asarray(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"outside \[0, 3\) at 2 position\(s\): -1, 7") as e:
        sigmax.cross_entropy(x, np_torch.asarray(np.array([0, 7, -1, 2]), "int64"))
    assert "ignore_index" in str(e.value)
    # ignore_index itself is fine, even in range
    sigmax.cross_entropy(x, np_torch.asarray(np.array([0, -100, 1, 2]), "int64"))
    with pytest.raises(ValueError, match="outside"):
        sigmax.nll_loss(x, np_torch.asarray(np.array([0, 3, 1, 2]), "int64"))
    with pytest.raises(ValueError, match="outside"):
        sigmax.softmax_focal_loss(x, np_torch.asarray(np.array([0, 3, 1, 2]), "int64"))


def test_error_probability_targets_negative_or_not_normalized(np_torch):
    x = np_torch.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="negative"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([[1.2, -0.2, 0.0], [0.0, 0.0, 1.0]])))
    with pytest.raises(ValueError, match=r"1 of 2 rows .* do not sum to 1.*Normalize"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([[0.2, 0.2, 0.2], [0.0, 0.0, 1.0]])))
    with pytest.raises(ValueError, match="do not sum to 1"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([[np.nan, 0.5, 0.5], [0.0, 0.0, 1.0]])))
    # rows that sum to 1 up to rounding are fine
    q = np.full((2, 3), 1 / 3)
    sigmax.cross_entropy(x, np_torch.asarray(q, "float32"))
    sigmax.cross_entropy(np_torch.asarray(np.zeros((2, 3)), "float16"), np_torch.asarray(q, "float16"))


def test_error_multi_hot_targets_suggest_bce_with_logits(np_torch):
    x = np_torch.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="multi-hot.*binary_cross_entropy_with_logits"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])))


def test_error_non_float_logits(np_torch):
    for fn in [sigmax.cross_entropy, sigmax.nll_loss, sigmax.softmax_focal_loss]:
        with pytest.raises(TypeError, match="floating-point"):
            fn(np_torch.asarray(np.zeros((2, 3)), "int64"), np_torch.asarray(np.array([0, 1]), "int64"))
    with pytest.raises(TypeError, match="floating-point"):
        sigmax.binary_cross_entropy_with_logits(np_torch.asarray(np.array([1, 0]), "int64"),
                                                np_torch.asarray(np.array([1.0, 0.0])))


def test_error_float_class_indices_and_integer_probabilities(np_torch):
    x = np_torch.asarray(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"class indices and must be an integer array.*long\(\)"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([0.0, 1.0])))
    with pytest.raises(TypeError, match=r"class probabilities.*floating-point.*argmax"):
        sigmax.cross_entropy(x, np_torch.asarray(np.array([[0, 1, 0], [1, 0, 0]]), "int64"))
    with pytest.raises(ValueError, match="class indices of shape"):
        sigmax.nll_loss(x, np_torch.asarray(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])))


def test_error_shape_mismatches_name_both_shapes(np_torch):
    x = np_torch.asarray(np.zeros((2, 5, 7)))
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 5, 7\).*expected class indices of shape \(2, 7\)"
                       r".*pass axis=-1"):
        sigmax.cross_entropy(x, np_torch.asarray(np.zeros((2, 5), dtype=np.int64), "int64"))
    with pytest.raises(ValueError, match=r"squeeze"):
        sigmax.cross_entropy(np_torch.asarray(np.zeros((4, 3))), np_torch.asarray(np.zeros((4, 1)), "int64"))
    with pytest.raises(ValueError, match=r"target has shape \(4, 1\) but input has shape \(4, 3\)"):
        sigmax.binary_cross_entropy_with_logits(np_torch.asarray(np.zeros((4, 3))),
                                                np_torch.asarray(np.zeros((4, 1))))
    with pytest.raises(ValueError, match=r"weight has shape \(2,\) but input has 3 classes"):
        sigmax.cross_entropy(np_torch.asarray(np.zeros((4, 3))), np_torch.asarray(np.zeros(4), "int64"),
                             weight=np_torch.asarray(np.ones(2)))
    with pytest.raises(ValueError, match=r"pos_weight has shape \(2,\), which does not broadcast"):
        sigmax.binary_cross_entropy_with_logits(np_torch.asarray(np.zeros((4, 3))), np_torch.asarray(np.zeros((4, 3))),
                                                pos_weight=np_torch.asarray(np.ones(2)))
    with pytest.raises(ValueError, match="0-d"):
        sigmax.cross_entropy(np_torch.asarray(np.float64(1.0)), np_torch.asarray(np.array(0), "int64"))


def test_error_bad_options(np_torch):
    x = np_torch.asarray(np.zeros((2, 3)))
    t = np_torch.asarray(np.array([0, 1]), "int64")
    with pytest.raises(ValueError, match="reduction must be one of"):
        sigmax.cross_entropy(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\]"):
        sigmax.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index=1 applies to class-index targets only"):
        sigmax.cross_entropy(x, np_torch.asarray(np.full((2, 3), 1 / 3)), ignore_index=1)
    with pytest.raises(ValueError, match="gamma must be"):
        sigmax.softmax_focal_loss(x, t, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha must be"):
        sigmax.sigmoid_focal_loss(x, x, alpha=1.5)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        sigmax.cross_entropy(x, t, axis=2)
    with pytest.raises(TypeError, match="pass only one of them"):
        sigmax.cross_entropy(x, t, axis=0, dim=1)


def test_error_bce_values_out_of_range(np_torch):
    with pytest.raises(ValueError, match=r"input must hold probabilities in \[0, 1\].*binary_cross_entropy_with_logits"):
        sigmax.binary_cross_entropy(np_torch.asarray(np.array([2.0, -1.0])), np_torch.asarray(np.array([1.0, 0.0])))
    with pytest.raises(ValueError, match=r"target must hold probabilities in \[0, 1\].*\(target \+ 1\) / 2"):
        sigmax.binary_cross_entropy_with_logits(np_torch.asarray(np.array([2.0, -1.0])),
                                                np_torch.asarray(np.array([1.0, -1.0])))


def test_error_mixed_libraries(rng):
    x = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="target is a numpy array but input is a torch array"):
        sigmax.cross_entropy(x, np.array([0, 1]))
