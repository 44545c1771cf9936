"""Every core function at its edges, as the peers define them (issue 11, "Every function at its edges").

Broadcasting of ``logsumexp``'s weights, reductions over zero-size axes, 0-d input, ``axis=None`` and
tuples of axes for the softmax family, NumPy's ``ml_dtypes.bfloat16``, ``jax_debug_nans`` /
``jax_debug_infs`` on finite input, NumPy scalars from reductions to 0-d, and ``log1mexp``. References
are independent: SciPy, PyTorch, ``jax.nn`` and mpmath. Every array test runs on NumPy, PyTorch and JAX.
"""

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sigmax
from sigmax import _kernels
from sigmax.activations import log1mexp
from sigmax.testing import assert_close, available_backends, to_numpy

torch = pytest.importorskip("torch")
scipy_special = pytest.importorskip("scipy.special")
ml_dtypes = pytest.importorskip("ml_dtypes")

BACKENDS = available_backends()
INF = math.inf
ROW_FUNCTIONS = [sigmax.softmax, sigmax.log_softmax]
SCIPY_ROW = {"softmax": scipy_special.softmax, "log_softmax": scipy_special.log_softmax}


def _asarray(backend, values, dtype="float64"):
    """``values`` as ``backend``'s array of ``dtype``; NumPy's bfloat16 is ``ml_dtypes.bfloat16``."""
    if backend.name == "numpy" and dtype == "bfloat16":
        return np.asarray(values, dtype=np.float64).astype(ml_dtypes.bfloat16)
    return backend.asarray(values, dtype)


@pytest.fixture(params=[True, False], ids=["kernels", "generic"])
def kernels(request):
    """Run with the compiled kernels offered the call (where built) and with the generic code only."""
    with _kernels.use_kernels(request.param):
        yield request.param


# ---------------------------------------------------------------------------------------------
# 1. logsumexp: x, b and where broadcast first, then the axis refers to the broadcast shape
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, -2, 0, 1, None, (0, 1)])
def test_logsumexp_broadcasts_x_with_b_first(backend, axis, rng):
    a = rng.normal(size=4)
    b = rng.uniform(0.5, 2.0, size=(3, 4))
    out = sigmax.logsumexp(backend.asarray(a), axis=axis, b=backend.asarray(b))
    ref = scipy_special.logsumexp(a, axis=axis, b=b)
    assert tuple(out.shape) == ref.shape  # (3,) for axis -1, (4,) for axis -2 (SciPy, JAX)
    assert_close(out, ref, "float64")
    if axis is not None and not isinstance(axis, tuple):
        import jax
        import jax.numpy as jnp

        assert_close(out, jax.nn.logsumexp(jnp.asarray(a), axis=axis, b=jnp.asarray(b)), "float64")


@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_broadcast_with_sign_and_keepdims(backend, keepdims, rng):
    a = rng.normal(size=4)
    b = rng.normal(size=(3, 4))  # negative weights: the sign matters
    lse, sign = sigmax.logsumexp(backend.asarray(a), axis=-2, b=backend.asarray(b), keepdims=keepdims,
                                 return_sign=True)
    ref, ref_sign = scipy_special.logsumexp(a, axis=-2, b=b, keepdims=keepdims, return_sign=True)
    assert tuple(lse.shape) == ref.shape == tuple(sign.shape)
    assert_close(lse, ref, "float64", factor=4)  # the weighted sum can cancel: a few more roundings
    assert_close(sign, ref_sign, "float64")


def test_logsumexp_broadcasts_x_with_where(backend, rng):
    a = rng.normal(size=4)
    mask = np.array([[True, True, False, True], [False, True, True, True], [True, False, False, False]])
    out = sigmax.logsumexp(backend.asarray(a), axis=-1, where=backend.xp.asarray(mask))
    ref = scipy_special.logsumexp(np.broadcast_to(a, mask.shape), axis=-1, b=mask.astype(float))
    assert tuple(out.shape) == (3,)
    assert_close(out, ref, "float64")
    out = sigmax.logsumexp(backend.asarray(a), axis=0, where=backend.xp.asarray(mask))
    assert_close(out, scipy_special.logsumexp(np.broadcast_to(a, mask.shape), axis=0, b=mask.astype(float)),
                 "float64")


def test_logsumexp_broadcast_gradient_torch(rng):
    a = torch.tensor(rng.normal(size=4), requires_grad=True)
    b = torch.tensor(rng.uniform(0.5, 2.0, size=(3, 4)))
    sigmax.logsumexp(a, axis=-1, b=b).sum().backward()
    a_ref = a.detach().clone().requires_grad_(True)
    torch.logsumexp(a_ref + torch.log(b), dim=-1).sum().backward()
    assert_close(a.grad, a_ref.grad, "float64")


# ---------------------------------------------------------------------------------------------
# 2. reductions over a zero-size axis
# ---------------------------------------------------------------------------------------------

EMPTY_CASES = [((2, 0), -1), ((0,), -1), ((0,), None), ((2, 0, 3), (1, 2)), ((3, 0), 0), ((0, 3), 0),
               ((2, 0), None)]


@pytest.mark.parametrize("shape,axis", EMPTY_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsumexp_over_nothing_is_minus_inf(backend, kernels, shape, axis, dtype):
    x = backend.asarray(np.zeros(shape), dtype)
    out = sigmax.logsumexp(x, axis=axis)
    with np.errstate(divide="ignore"):  # log of the empty sum, in NumPy's reduction shapes
        ref = np.log(np.sum(np.zeros(shape), axis=axis))
        ref_kd = np.log(np.sum(np.zeros(shape), axis=axis, keepdims=True))
    if isinstance(axis, int):  # (SciPy fails on an empty reduction over a tuple of axes, or all)
        assert_close(ref, scipy_special.logsumexp(np.zeros(shape), axis=axis), dtype)
    assert tuple(np.shape(out)) == np.shape(ref)
    assert out.dtype == x.dtype
    assert_close(out, ref, dtype)
    kd = sigmax.logsumexp(x, axis=axis, keepdims=True)
    assert tuple(kd.shape) == ref_kd.shape
    lse, sign = sigmax.logsumexp(x, axis=axis, return_sign=True)
    assert_close(sign, np.zeros(np.shape(ref)), dtype)  # the empty sum is 0


@pytest.mark.parametrize("shape,axis", EMPTY_CASES)
@pytest.mark.parametrize("fn", ROW_FUNCTIONS, ids=lambda f: f.__name__)
def test_softmax_over_nothing_is_empty(backend, kernels, fn, shape, axis):
    x = backend.asarray(np.zeros(shape), "float32")
    out = fn(x, axis=axis)
    assert tuple(out.shape) == shape and out.dtype == x.dtype
    if isinstance(axis, int):
        ref = getattr(torch, fn.__name__)(torch.zeros(shape), dim=axis)
        assert tuple(ref.shape) == shape


@pytest.mark.parametrize("shape,axis", EMPTY_CASES)
@pytest.mark.parametrize("fn", ROW_FUNCTIONS + [sigmax.logsumexp], ids=lambda f: f.__name__)
def test_zero_size_backward_torch(kernels, fn, shape, axis):
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    y = fn(x, axis=axis)
    y.sum().backward()  # works, and the gradient is empty (of x's shape)
    assert x.grad is not None and tuple(x.grad.shape) == shape
    assert not torch.isnan(x.grad).any()


@pytest.mark.parametrize("shape,axis", EMPTY_CASES)
@pytest.mark.parametrize("fn", ROW_FUNCTIONS + [sigmax.logsumexp], ids=lambda f: f.__name__)
def test_zero_size_grad_jax(fn, shape, axis):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    g = jax.grad(lambda v: jnp.sum(fn(v, axis=axis)))(jnp.zeros(shape))
    assert g.shape == shape


# ---------------------------------------------------------------------------------------------
# 3. 0-d input: one distribution over one entry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, -1, None])
@pytest.mark.parametrize("value", [3.0, -700.0, 0.0])
def test_scalar_softmax_is_one_and_log_softmax_zero(backend, kernels, axis, value):
    x = backend.asarray(value)
    sm, lsm = sigmax.softmax(x, axis=axis), sigmax.log_softmax(x, axis=axis)
    assert tuple(np.shape(sm)) == () == tuple(np.shape(lsm))
    assert_close(sm, torch.softmax(torch.tensor(value, dtype=torch.float64), dim=0), "float64")
    assert_close(lsm, torch.log_softmax(torch.tensor(value, dtype=torch.float64), dim=0), "float64")
    assert_close(sm, scipy_special.softmax(value), "float64")
    assert_close(lsm, scipy_special.log_softmax(value), "float64")
    assert_close(sm, 1.0, "float64")
    assert_close(lsm, 0.0, "float64")


def test_scalar_edges_and_gradient():
    assert float(sigmax.softmax(np.float64(INF))) == 1.0  # the mass of the one +inf entry
    assert float(sigmax.softmax(np.float64(-INF))) == 0.0  # an all -inf row
    assert float(sigmax.log_softmax(np.float64(-INF))) == -INF
    assert math.isnan(float(sigmax.softmax(np.float64("nan"))))
    assert float(sigmax.softmax(3.0, temperature=2.0)) == 1.0
    x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    sigmax.log_softmax(x, dim=0).backward()
    assert float(x.grad) == 0.0
    with pytest.raises(ValueError, match="0-d"):
        sigmax.softmax(np.float64(1.0), axis=1)


# ---------------------------------------------------------------------------------------------
# 4. axis=None and tuples of axes for the softmax family: one distribution over the joint axes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [None, (0, 2), (1, 2), (0,), (-1, 0), (0, 1, 2)])
@pytest.mark.parametrize("fn", ROW_FUNCTIONS, ids=lambda f: f.__name__)
def test_softmax_over_joint_axes_matches_scipy(backend, kernels, fn, axis, rng):
    x = rng.normal(scale=3.0, size=(2, 3, 4))
    out = fn(backend.asarray(x), axis=axis)
    assert tuple(out.shape) == x.shape
    assert_close(out, SCIPY_ROW[fn.__name__](x, axis=axis), "float64")


@pytest.mark.parametrize("axis", [None, (0, 2)])
@pytest.mark.parametrize("fn", ROW_FUNCTIONS, ids=lambda f: f.__name__)
def test_joint_axes_with_temperature_and_where(backend, fn, axis, rng):
    x = rng.normal(scale=3.0, size=(2, 3, 4))
    mask = rng.uniform(size=x.shape) > 0.3
    out = fn(backend.asarray(x), axis=axis, temperature=2.5, where=backend.xp.asarray(mask))
    ref = SCIPY_ROW[fn.__name__](np.where(mask, x / 2.5, -INF), axis=axis)
    assert_close(out, ref, "float64")
    if fn is sigmax.softmax:
        total = np.sum(to_numpy(out), axis=axis)
        assert_close(total, np.ones_like(total), "float64", factor=4)


def test_joint_axes_gradient_torch(rng):
    x = torch.tensor(rng.normal(size=(2, 3, 4)), requires_grad=True)
    w = torch.tensor(rng.normal(size=(2, 3, 4)))
    (sigmax.log_softmax(x, axis=(0, 2)) * w).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    moved = xr.permute(1, 0, 2).reshape(3, 8)  # the joint axes (0, 2) flattened last
    (torch.log_softmax(moved, dim=-1).reshape(3, 2, 4).permute(1, 0, 2) * w).sum().backward()
    assert_close(x.grad, xr.grad, "float64")


# ---------------------------------------------------------------------------------------------
# 5. NumPy's bfloat16 (ml_dtypes): computed in float32, returned in bfloat16
# ---------------------------------------------------------------------------------------------

BF16_VALUES = np.array([[-3.5, 0.25, 1.0], [2.0, -0.125, 0.5]])
ELEMENTWISE = {  # name: (function, its input from BF16_VALUES)
    "sigmoid": (sigmax.sigmoid, None),
    "log_sigmoid": (sigmax.log_sigmoid, None),
    "softplus": (sigmax.softplus, None),
    "softmax": (sigmax.softmax, None),
    "log_softmax": (sigmax.log_softmax, None),
    "logsumexp": (sigmax.logsumexp, None),
    "two_class_to_binary": (sigmax.two_class_to_binary, lambda v: v[:, :2]),
    "binary_to_two_class": (sigmax.binary_to_two_class, None),
    "log1mexp": (log1mexp, lambda v: -np.abs(v) - 0.125),
    "logit": (sigmax.logit, lambda v: np.abs(v) / 4.0),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_numpy_bfloat16_every_function(name):
    fn, make = ELEMENTWISE[name]
    x = (make(BF16_VALUES) if make else BF16_VALUES).astype(ml_dtypes.bfloat16)
    out = fn(x)
    assert isinstance(out, np.ndarray) and out.dtype == ml_dtypes.bfloat16
    # computed in float32 and rounded once: the float32 result rounded to bfloat16, to the bit
    ref32 = fn(x.astype(np.float32))
    np.testing.assert_array_equal(out.astype(np.float32), ref32.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert_close(out, fn(x.astype(np.float64)), "bfloat16")


def test_numpy_bfloat16_matches_torch_bfloat16():
    x = BF16_VALUES.astype(ml_dtypes.bfloat16)
    t = torch.tensor(BF16_VALUES, dtype=torch.bfloat16)
    for fn in (sigmax.softmax, sigmax.log_softmax, sigmax.sigmoid, sigmax.logsumexp):
        assert_close(fn(x), fn(t), "bfloat16")
    lse = sigmax.logsumexp(x, axis=None)  # a reduction to 0-d: a bfloat16 NumPy scalar
    assert isinstance(lse, np.generic) and lse.dtype == ml_dtypes.bfloat16


LOSSES = {
    "cross_entropy": lambda x: sigmax.cross_entropy(x, np.array([0, 2])),
    "cross_entropy_probs": lambda x: sigmax.cross_entropy(x, np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])),
    "cross_entropy_none": lambda x: sigmax.cross_entropy(x, np.array([0, 2]), reduction="none"),
    "nll_loss": lambda x: sigmax.nll_loss(sigmax.log_softmax(x), np.array([1, 0])),
    "binary_cross_entropy_with_logits": lambda x: sigmax.binary_cross_entropy_with_logits(
        x, np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])),
    "binary_cross_entropy": lambda x: sigmax.binary_cross_entropy(
        sigmax.sigmoid(x), np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_numpy_bfloat16_losses(name):
    fn = LOSSES[name]
    x = BF16_VALUES.astype(ml_dtypes.bfloat16)
    out = fn(x)
    assert out.dtype == ml_dtypes.bfloat16
    assert_close(out, fn(x.astype(np.float64)), "bfloat16", factor=2)


# ---------------------------------------------------------------------------------------------
# 6. jax_debug_nans / jax_debug_infs never fire on finite input
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def jax_debug(flag):
    import jax

    old = getattr(jax.config, flag)
    jax.config.update(flag, True)
    try:
        yield
    finally:
        jax.config.update(flag, old)


def _jax_cases():
    import jax.numpy as jnp

    x = jnp.asarray([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.5]])
    return {
        "logsumexp 0-d": lambda: sigmax.logsumexp(jnp.asarray(1.0)),
        "logsumexp": lambda: sigmax.logsumexp(x),
        "logsumexp None": lambda: sigmax.logsumexp(x, axis=None),
        "logsumexp b": lambda: sigmax.logsumexp(x, b=jnp.asarray([1.0, 2.0, 0.5])),
        "logsumexp sign": lambda: sigmax.logsumexp(x, b=jnp.asarray([1.0, -2.0, 0.5]), return_sign=True),
        "softmax": lambda: sigmax.softmax(x),
        "softmax 0-d": lambda: sigmax.softmax(jnp.asarray(2.0)),
        "softmax joint": lambda: sigmax.softmax(x, axis=None, temperature=2.0),
        "log_softmax": lambda: sigmax.log_softmax(x, axis=0),
        "sigmoid": lambda: sigmax.sigmoid(x),
        "log_sigmoid": lambda: sigmax.log_sigmoid(x),
        "softplus": lambda: sigmax.softplus(x),
        "logit": lambda: sigmax.logit(jnp.asarray([0.1, 0.5, 0.9])),
        "log1mexp": lambda: log1mexp(-jnp.abs(x) - 0.1),
    }


@pytest.mark.parametrize("flag", ["jax_debug_nans", "jax_debug_infs"])
def test_jax_debug_flags_do_not_fire_on_finite_input(flag):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    cases = _jax_cases()
    x = jnp.asarray([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.5]])
    grads = {
        "grad logsumexp": lambda: jax.grad(lambda v: jnp.sum(sigmax.logsumexp(v)))(x),
        "grad softmax": lambda: jax.grad(lambda v: sigmax.softmax(v)[0, 0])(x),
        "grad log_softmax": lambda: jax.grad(lambda v: sigmax.log_softmax(v)[1, 2])(x),
        "grad log1mexp": lambda: jax.grad(lambda v: jnp.sum(log1mexp(v)))(-jnp.abs(x) - 0.1),
    }
    with jax_debug(flag):
        for name, case in {**cases, **grads}.items():
            try:
                jax.block_until_ready(case())
            except FloatingPointError as exc:  # pragma: no cover - the failure being tested
                pytest.fail(f"{flag} fired for {name}: {exc}")


# ---------------------------------------------------------------------------------------------
# 7. NumPy reductions to 0-d give NumPy scalars; PyTorch and JAX keep 0-d arrays
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_reductions_to_0d_are_numpy_scalars(kernels, dtype):
    x = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=dtype)
    for out, ref in [
        (sigmax.logsumexp(x, axis=None), scipy_special.logsumexp(x, axis=None)),
        (sigmax.logsumexp(x, axis=(0, 1)), np.float64(scipy_special.logsumexp(x, axis=(0, 1)))),
        (sigmax.logsumexp(x[0]), scipy_special.logsumexp(x[0])),
        (sigmax.logsumexp(np.array(0.5, dtype=dtype)), scipy_special.logsumexp(np.array(0.5, dtype=dtype))),
        (sigmax.two_class_to_binary(x[0]), x[0, 1] - x[0, 0]),
    ]:
        assert type(out) is dtype, type(out)  # as NumPy's and SciPy's own reductions
        assert type(ref) is dtype or type(ref) is np.float64
        assert_close(out, ref)
    lse, sign = sigmax.logsumexp(x, axis=None, return_sign=True)
    assert type(lse) is dtype and type(sign) is dtype
    assert type(sigmax.softmax(np.array(1.0, dtype=dtype))) is dtype
    out = np.empty((), dtype=dtype)  # out= is returned as given
    assert sigmax.logsumexp(x, axis=None, out=out) is out


def test_torch_and_jax_keep_0d_arrays():
    out = sigmax.logsumexp(torch.ones(3))
    assert isinstance(out, torch.Tensor) and out.ndim == 0
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    out = sigmax.logsumexp(jnp.ones(3))
    assert isinstance(out, jax.Array) and out.ndim == 0


# ---------------------------------------------------------------------------------------------
# 8. log1mexp
# ---------------------------------------------------------------------------------------------

LOG1MEXP_X = [-1e-300, -1e-20, -1e-8, -0.1, -0.6931, -0.6932, -1.0, -5.0, -40.0, -700.0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log1mexp_matches_mpmath(backend, dtype):
    mpmath = pytest.importorskip("mpmath")
    x = np.asarray(LOG1MEXP_X, dtype=dtype)
    if dtype == "float32" and backend.name == "jax":
        x = x[np.abs(x) >= np.finfo(np.float32).tiny]  # XLA flushes subnormals
    with mpmath.workdps(60):
        # (mpmath's expm1 and log1p are exact for tiny arguments, where 1 - exp(v) would need
        # hundreds of digits)
        exact = [float(mpmath.log(-mpmath.expm1(mpmath.mpf(float(v))))) if v > -0.5 else
                 float(mpmath.log1p(-mpmath.exp(mpmath.mpf(float(v))))) for v in x]
    out = log1mexp(backend.asarray(x, dtype))
    assert out.dtype == backend.asarray(x, dtype).dtype
    assert_close(out, exact, dtype, factor=0.25)  # within 4 eps relative: no cancellation anywhere


def test_log1mexp_edges(backend):
    out = to_numpy(log1mexp(backend.asarray([0.0, -INF, 0.5, float("nan")])))
    assert out[0] == -INF and out[1] == 0.0
    assert np.isnan(out[2]) and np.isnan(out[3])


def test_log1mexp_gradient_torch():
    x = torch.tensor([-1e-6, -0.5, -0.7, -3.0, -50.0, -INF], dtype=torch.float64, requires_grad=True)
    log1mexp(x).sum().backward()
    xd = x.detach()
    ref = torch.where(torch.isinf(xd), torch.zeros_like(xd), -1.0 / torch.expm1(-xd))  # d/dx log(1 - e^x)
    assert_close(x.grad, ref, "float64")
    assert torch.autograd.gradcheck(log1mexp, (torch.tensor([-1e-3, -0.5, -2.0, -30.0], dtype=torch.float64,
                                                             requires_grad=True),))


# ---------------------------------------------------------------------------------------------
# 9. properties: shapes with zero-size axes, dtypes with bfloat16, axes with None and tuples
# ---------------------------------------------------------------------------------------------

PROP_DTYPES = ["float32", "float64", "bfloat16"]


@st.composite
def shapes_and_axes(draw, min_dims=1):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=min_dims, max_size=3)))
    nd = len(shape)
    kind = draw(st.sampled_from(["int", "none", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        axis = tuple(draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True)))
    return shape, axis


def _values(draw, shape):
    # quarter-integers in [-16, 16]: exact in bfloat16 too, so x + c (c an integer in [-16, 16]) is exact
    n = math.prod(shape)
    vals = draw(st.lists(st.integers(-64, 64), min_size=n, max_size=n))
    return np.asarray(vals, dtype=np.float64).reshape(shape) / 4.0


EAGER_BACKENDS = [b for b in BACKENDS if b.name != "jax"]
JAX_BACKENDS = [b for b in BACKENDS if b.name == "jax"]


def _property(body, backends, examples):
    """``body(backend, data)`` as a hypothesis test over ``backends`` (JAX compiles every new shape:
    fewer examples there)."""
    def test(backend, data):
        body(backend, data)

    test.__name__ = test.__qualname__ = body.__name__.replace("_property_", "test_property_")
    test.__doc__ = body.__doc__
    test = given(data=st.data())(settings(max_examples=examples, deadline=None)(test))
    return pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)(test)


def _ref_logsumexp(v, axis):
    """SciPy's logsumexp; NumPy's ``log(sum(exp))`` (= -inf) where SciPy fails, an empty reduction."""
    axes = range(v.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    if math.prod(v.shape[a] for a in axes) == 0:
        with np.errstate(divide="ignore"):
            return np.log(np.sum(np.exp(v), axis=axis))
    return scipy_special.logsumexp(v, axis=axis)


def _property_shift_invariance_and_dtype(backend, data):
    shape, axis = data.draw(shapes_and_axes())
    dtype = data.draw(st.sampled_from(PROP_DTYPES))
    v = _values(data.draw, shape)
    c = data.draw(st.integers(-16, 16))
    x, xc = _asarray(backend, v, dtype), _asarray(backend, v + c, dtype)
    for fn in ROW_FUNCTIONS:
        out = fn(x, axis=axis)
        assert tuple(out.shape) == shape and out.dtype == x.dtype
        assert_close(fn(xc, axis=axis), out, dtype, factor=4)
        assert_close(out, SCIPY_ROW[fn.__name__](v, axis=axis) if v.size else v, dtype, factor=4)
    lse = sigmax.logsumexp(x, axis=axis)
    ref = _ref_logsumexp(v, axis)
    assert tuple(np.shape(lse)) == np.shape(ref) and lse.dtype == x.dtype
    assert_close(lse, ref, dtype, factor=4)
    assert_close(sigmax.logsumexp(xc, axis=axis), ref + c, dtype, factor=4)


def _property_log_softmax_is_x_minus_logsumexp(backend, data):
    shape, axis = data.draw(shapes_and_axes())
    dtype = data.draw(st.sampled_from(PROP_DTYPES))
    v = _values(data.draw, shape)
    x = _asarray(backend, v, dtype)
    lsm = sigmax.log_softmax(x, axis=axis)
    x64 = backend.asarray(v, "float64")
    lse64 = to_numpy(sigmax.logsumexp(x64, axis=axis, keepdims=True))
    assert_close(lsm, v - lse64, dtype, factor=4)
    if dtype == "float64":
        assert_close(lsm, to_numpy(x64) - lse64, dtype)


def _property_two_columns_softmax_is_sigmoid_of_difference(backend, data):
    lead = tuple(data.draw(st.lists(st.integers(0, 4), max_size=2)))
    dtype = data.draw(st.sampled_from(PROP_DTYPES))
    v = _values(data.draw, lead + (2,))
    x = _asarray(backend, v, dtype)
    p1 = sigmax.softmax(x, axis=-1)[..., 1]
    z = _asarray(backend, v[..., 1] - v[..., 0], dtype)  # exact: quarter-integers within [-32, 32]
    assert_close(p1, sigmax.sigmoid(z), dtype, factor=2)
    assert p1.dtype == x.dtype


test_property_shift_invariance_and_dtype = _property(_property_shift_invariance_and_dtype, EAGER_BACKENDS, 20)
test_property_shift_invariance_and_dtype_jax = _property(_property_shift_invariance_and_dtype, JAX_BACKENDS, 6)
test_property_log_softmax_is_x_minus_logsumexp = _property(_property_log_softmax_is_x_minus_logsumexp, EAGER_BACKENDS, 20)
test_property_log_softmax_is_x_minus_logsumexp_jax = _property(_property_log_softmax_is_x_minus_logsumexp, JAX_BACKENDS, 6)
test_property_two_columns_softmax_is_sigmoid_of_difference = _property(_property_two_columns_softmax_is_sigmoid_of_difference, EAGER_BACKENDS, 20)
test_property_two_columns_softmax_is_sigmoid_of_difference_jax = _property(_property_two_columns_softmax_is_sigmoid_of_difference, JAX_BACKENDS, 6)


# ---------------------------------------------------------------------------------------------
# 10. torch.func transforms (vmap, grad, and the two composed): the edge-path switch reads no values
#     on traced tensors, so the branch-free edge path runs, with the same results and gradients
# ---------------------------------------------------------------------------------------------

TRANSFORM_FUNCTIONS = [sigmax.softmax, sigmax.log_softmax, sigmax.logsumexp, sigmax.sigmoid, sigmax.log_sigmoid,
                       sigmax.softplus]


def _edge_batch():
    x = np.random.default_rng(5).normal(scale=3, size=(4, 5, 6))
    x[1, 2] = -INF  # an all -inf row
    x[2, 0, 3] = INF  # a +inf entry
    x[3, 4, :2] = -INF
    return torch.tensor(x)


@pytest.mark.parametrize("fn", TRANSFORM_FUNCTIONS, ids=lambda f: f.__name__)
def test_torch_func_vmap_matches_the_eager_call(kernels, fn):
    x = _edge_batch()
    v = torch.func.vmap(fn)(x)
    ref = torch.stack([fn(xi) for xi in x])
    np.testing.assert_allclose(v.numpy(), ref.numpy(), rtol=1e-13, atol=0)  # NaN == NaN, inf == inf
    v0 = torch.func.vmap(lambda z: fn(z), in_dims=1)(x)  # the batch on another axis
    np.testing.assert_allclose(v0.numpy(), torch.stack([fn(x[:, i]) for i in range(5)]).numpy(), rtol=1e-13)


@pytest.mark.parametrize("fn", TRANSFORM_FUNCTIONS, ids=lambda f: f.__name__)
def test_torch_func_grad_and_vmap_of_grad_match_autograd(kernels, fn):
    x = _edge_batch()
    w = torch.tensor(np.random.default_rng(6).normal(size=x.shape[1:] if fn is not sigmax.logsumexp else (5,)))

    def loss(z):
        y = fn(z)
        return (torch.where(torch.isfinite(y), y, torch.zeros_like(y)) * w).sum()

    g = torch.func.vmap(torch.func.grad(loss))(x)
    for xi, gi in zip(x, g):
        xr = xi.clone().requires_grad_(True)
        loss(xr).backward()
        np.testing.assert_allclose(gi.numpy(), xr.grad.numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(torch.func.grad(loss)(xi).numpy(), xr.grad.numpy(), rtol=1e-12, atol=1e-300)
    if fn in (sigmax.softmax, sigmax.log_softmax, sigmax.logsumexp):
        assert (g[1, 2] == 0).all()  # the all -inf row: zero gradient, never NaN


def test_transforms_with_weights_temperatures_and_masks():
    x = _edge_batch()
    b = torch.tensor([1.0, -1.0, 0.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    lse, sign = torch.func.vmap(lambda z: sigmax.logsumexp(z, b=b, return_sign=True))(x)
    ref_lse, ref_sign = sigmax.logsumexp(x, b=b, return_sign=True)
    np.testing.assert_allclose(lse.numpy(), ref_lse.numpy(), rtol=1e-13)
    np.testing.assert_array_equal(sign.numpy(), ref_sign.numpy())
    t = torch.full((6,), 2.0, dtype=torch.float64)
    for fn in (sigmax.softmax, sigmax.log_softmax):
        v = torch.func.vmap(lambda z: fn(z, temperature=t, where=z > -1))(x)
        np.testing.assert_allclose(v.numpy(), fn(x, temperature=t, where=x > -1).numpy(), rtol=1e-13)
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    xj, tj = jnp.asarray(x.numpy()), jnp.asarray(t.numpy())
    for fn in (sigmax.softmax, sigmax.log_softmax):  # an array temperature's check steps aside under jit
        got = jax.jit(lambda z, tt: fn(z, temperature=tt))(xj, tj)
        np.testing.assert_allclose(np.asarray(got), np.asarray(fn(xj, temperature=tj)), rtol=1e-6)
    with pytest.raises(ValueError, match="temperature must be positive"):
        sigmax.softmax(xj, temperature=-tj)  # outside tracing the check runs
