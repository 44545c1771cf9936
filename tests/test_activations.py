"""Core functions: semantics against PyTorch/SciPy, the decided edge cases, properties, gradients."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sigmax
from sigmax.testing import assert_close, to_numpy

torch = pytest.importorskip("torch")
scipy_special = pytest.importorskip("scipy.special")

INF = math.inf
ELEMENTWISE = [sigmax.sigmoid, sigmax.log_sigmoid, sigmax.softplus]
ROWWISE = [sigmax.softmax, sigmax.log_softmax]


def _ref_torch(fn_name, x, **kw):
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return {
        "sigmoid": torch.sigmoid,
        "log_sigmoid": torch.nn.functional.logsigmoid,
        "softplus": lambda v: torch.nn.functional.softplus(v, threshold=1e9),
        "softmax": lambda v: torch.softmax(v, dim=kw.get("axis", -1)),
        "log_softmax": lambda v: torch.log_softmax(v, dim=kw.get("axis", -1)),
    }[fn_name](t).numpy()


# ---------------------------------------------------------------------------------------------
# semantics on every backend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ELEMENTWISE + ROWWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_pytorch_on_moderate_values(backend, fn, dtype, rng):
    x = rng.normal(scale=4.0, size=(7, 5))
    out = fn(backend.asarray(x, dtype))
    assert type(out) is type(backend.asarray(x, dtype))
    assert_close(out, _ref_torch(fn.__name__, x), dtype)


@pytest.mark.parametrize("axis", [0, 1, -1, (0, 1), None])
def test_logsumexp_matches_scipy(backend, axis, rng):
    x = rng.normal(scale=10.0, size=(4, 6))
    assert_close(sigmax.logsumexp(backend.asarray(x), axis=axis), scipy_special.logsumexp(x, axis=axis), "float64")
    out = sigmax.logsumexp(backend.asarray(x), axis=axis, keepdims=True)
    assert tuple(out.shape) == scipy_special.logsumexp(x, axis=axis, keepdims=True).shape


def test_logsumexp_weights_and_sign_match_scipy(backend, rng):
    x = rng.normal(size=(5, 4))
    b = rng.normal(size=(5, 4))
    lse, sign = sigmax.logsumexp(backend.asarray(x), axis=1, b=backend.asarray(b), return_sign=True)
    ref, ref_sign = scipy_special.logsumexp(x, axis=1, b=b, return_sign=True)
    assert_close(lse, ref, "float64", factor=4)  # the weighted sum can cancel: a few extra roundings
    assert_close(sign, ref_sign, "float64")
    # without return_sign a negative sum is NaN, as in SciPy
    plain = to_numpy(sigmax.logsumexp(backend.asarray(x), axis=1, b=backend.asarray(b)))
    assert np.array_equal(np.isnan(plain), ref_sign < 0)


def test_logsumexp_b_zero_drops_infinite_entries():
    assert sigmax.logsumexp([INF, 0.0], b=[0.0, 1.0]) == 0.0
    assert sigmax.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True) == (-INF, 0.0)


def test_logit_inverts_sigmoid_and_matches_scipy(backend, rng):
    p = rng.uniform(0.001, 0.999, size=50)
    assert_close(sigmax.logit(backend.asarray(p)), scipy_special.logit(p), "float64")
    z = rng.normal(scale=5, size=50)
    assert_close(sigmax.logit(sigmax.sigmoid(backend.asarray(z))), z, "float64", factor=64)  # logit' ~ 1/p(1-p)


def test_logit_eps_clamps_like_torch():
    p = np.array([0.0, 1e-9, 0.5, 1.0])
    ref = torch.logit(torch.as_tensor(p), eps=1e-6).numpy()
    assert_close(sigmax.logit(p, eps=1e-6), ref, "float64")
    with pytest.raises(ValueError, match="eps"):
        sigmax.logit(p, eps=0.7)


def test_two_class_conversions(backend):
    z = backend.asarray([0.1, -2.0, 3.0])
    two = sigmax.binary_to_two_class(z)
    assert tuple(two.shape) == (3, 2)
    assert_close(sigmax.softmax(two)[..., 1], sigmax.sigmoid(z), "float64")
    assert_close(sigmax.two_class_to_binary(two), z, "float64")
    x = backend.asarray([[1.0, 2.0], [3.0, -1.0]])
    assert_close(sigmax.two_class_to_binary(x, axis=0), [2.0, -3.0], "float64")
    with pytest.raises(ValueError, match="exactly 2 classes"):
        sigmax.two_class_to_binary(backend.asarray([[1.0, 2.0, 3.0]]))


def test_where_mask_renormalises(backend):
    x = backend.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = backend.asarray([[True, False, True], [False, False, False]], "bool")
    p = to_numpy(sigmax.softmax(x, where=mask))
    assert_close(p[0], [math.exp(1) / (math.exp(1) + math.exp(3)), 0, math.exp(3) / (math.exp(1) + math.exp(3))],
                 "float64")
    assert np.array_equal(p[1], [0.0, 0.0, 0.0])
    lp = to_numpy(sigmax.log_softmax(x, where=mask))
    assert lp[0, 1] == -INF and np.all(lp[1] == -INF)
    lse = to_numpy(sigmax.logsumexp(x, where=mask))
    assert_close(lse[0], np.logaddexp(1, 3), "float64") and lse[1] == -INF


def test_temperature(backend, rng):
    x = rng.normal(size=(3, 4))
    assert_close(sigmax.softmax(backend.asarray(x), temperature=2.5), _ref_torch("softmax", x / 2.5), "float64")
    assert_close(sigmax.log_softmax(backend.asarray(x), temperature=0.5), _ref_torch("log_softmax", x / 0.5),
                 "float64")
    with pytest.raises(ValueError, match="temperature"):
        sigmax.softmax(backend.asarray(x), temperature=0.0)


def test_dim_is_an_alias_of_axis(backend, rng):
    x = backend.asarray(rng.normal(size=(3, 4)))
    assert_close(sigmax.softmax(x, dim=0), sigmax.softmax(x, axis=0), "float64")
    assert_close(sigmax.logsumexp(x, dim=0), sigmax.logsumexp(x, axis=0), "float64")
    with pytest.raises(TypeError, match="only one"):
        sigmax.softmax(x, axis=0, dim=1)


# ---------------------------------------------------------------------------------------------
# dtypes, types, devices
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ELEMENTWISE + ROWWISE + [sigmax.logsumexp, sigmax.logit], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_dtype_is_kept(backend, fn, dtype):
    if dtype == "bfloat16" and backend.name == "numpy":
        ml_dtypes = pytest.importorskip("ml_dtypes")  # NumPy's bfloat16 (what JAX hands NumPy)
        x = np.asarray([[0.25, 0.5], [0.125, 0.75]], dtype=ml_dtypes.bfloat16)
    else:
        x = backend.asarray([[0.25, 0.5], [0.125, 0.75]], dtype)
    out = fn(x)
    assert out.dtype == x.dtype
    # half precision is computed in float32 and rounded once: within the dtype's own tolerance
    ref = fn(backend.asarray(to_numpy(x).astype(np.float64), "float64"))
    assert_close(out, ref, dtype)


def test_integer_and_list_input_promote_to_default_float(backend):
    if backend.name == "torch":
        out = sigmax.softmax(torch.tensor([1, 2, 3]))
        assert out.dtype == torch.get_default_dtype()
    elif backend.name == "numpy":
        assert sigmax.softmax(np.array([1, 2, 3])).dtype == np.float64
        assert isinstance(sigmax.softmax([1, 2, 3]), np.ndarray)
        assert isinstance(sigmax.sigmoid(0.1), np.floating)
    else:
        import jax.numpy as jnp

        assert sigmax.softmax(jnp.array([1, 2, 3])).dtype == jnp.asarray(1.0).dtype


def test_torch_autograd_flows_and_device_is_kept():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = sigmax.log_softmax(x, axis=1)
    assert y.device == x.device and y.requires_grad
    (y[:, 0].sum()).backward()
    ref = x.detach().clone().requires_grad_(True)
    torch.log_softmax(ref, 1)[:, 0].sum().backward()
    assert_close(x.grad, ref.grad, "float64")


@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softplus", "logit", "softmax", "log_softmax",
                                  "logsumexp", "two_class_to_binary", "binary_to_two_class"])
def test_gradcheck_float64(name):
    fn = getattr(sigmax, name)
    gen = torch.Generator().manual_seed(0)
    if name == "logit":
        x = torch.rand(3, 4, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    elif name == "two_class_to_binary":
        x = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    else:
        x = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 3
    x[0, 0] = 0.0 if name not in ("logit",) else 0.5  # the kink of |x| and the max tie point
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(True),))
    if name in ("softmax", "log_softmax", "logsumexp"):
        assert torch.autograd.gradcheck(lambda v: fn(v, axis=0, temperature=1.7) if name != "logsumexp"
                                        else fn(v, axis=(0, 1)), (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_gradcheck_with_ties_and_masks():
    x = torch.tensor([[2.0, 2.0, 1.0], [0.5, -1.0, 3.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    for fn in (sigmax.softmax, sigmax.log_softmax, sigmax.logsumexp):
        # masked log_softmax entries are -inf; finite differences of -inf are NaN, so compare elsewhere
        assert torch.autograd.gradcheck(lambda v: torch.nan_to_num(fn(v, where=mask), neginf=0.0), (x,))
        assert torch.autograd.gradcheck(fn, (x,))


def test_jax_grad_works():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x = jnp.asarray([0.5, -1.0, 2.0])
    g = jax.grad(lambda v: sigmax.log_softmax(v)[0])(x)
    assert_close(g, np.eye(3)[0] - to_numpy(sigmax.softmax(x)), "float64")
    g = jax.jit(jax.grad(lambda v: sigmax.logsumexp(v)))(x)
    assert_close(g, sigmax.softmax(x), "float64")


# ---------------------------------------------------------------------------------------------
# edge cases, as decided (README: edge semantics)
# ---------------------------------------------------------------------------------------------


def test_no_overflow_or_spurious_underflow(backend):
    x = backend.asarray([0.1, 0.2, 100.0], "float32")
    p = to_numpy(sigmax.softmax(x))
    # exp(-99.9) is a float32 subnormal, not 0 (XLA on CPU flushes subnormals to zero: JAX gives 0)
    assert p[2] == 1.0 and (0 < p[0] < p[1] < 1e-43 or backend.name == "jax")
    lp = to_numpy(sigmax.log_softmax(backend.asarray([0.0, 1e4], "float32")))
    assert np.array_equal(lp, np.array([-1e4, 0.0], dtype=np.float32))
    assert float(sigmax.log_sigmoid(backend.asarray(-1000.0, "float32"))) == -1000.0
    s = sigmax.sigmoid(backend.asarray(-100.0, "float32"))
    if backend.name != "jax":  # XLA flushes subnormals
        assert to_numpy(s) == np.float32(3.7835059e-44)  # correctly rounded (torch.sigmoid gives 0)
    assert float(sigmax.softplus(backend.asarray(1000.0))) == 1000.0
    assert float(sigmax.logsumexp(backend.asarray([1000.0, 1000.0]))) == 1000.0 + math.log(2)


def test_logsumexp_keeps_tiny_results():
    # log(1 + 2e-22): log(s) would round s = 1 + tiny to 1 and return 0
    assert_close(sigmax.logsumexp([0.0, -50.0]), math.log1p(math.exp(-50)), "float64")
    assert_close(sigmax.log_softmax([0.0, -50.0])[0], -math.log1p(math.exp(-50)), "float64")


@pytest.mark.parametrize("fn,expected", [(sigmax.softmax, 0.0), (sigmax.log_softmax, -INF),
                                         (sigmax.logsumexp, -INF)], ids=["softmax", "log_softmax", "logsumexp"])
def test_all_neg_inf_rows_and_all_masked_rows(backend, fn, expected):
    x = backend.asarray([[-INF, -INF, -INF], [1.0, 2.0, 3.0]])
    out = to_numpy(fn(x))
    assert np.all(out[0] == expected) and np.all(np.isfinite(out[1]))
    mask = backend.asarray([[True, True, True], [False, False, False]], "bool")
    out = to_numpy(fn(backend.asarray([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), where=mask))
    assert np.all(out[1] == expected)


@pytest.mark.parametrize("fn", [sigmax.softmax, sigmax.log_softmax, sigmax.logsumexp],
                         ids=lambda f: f.__name__)
def test_empty_rows_have_zero_not_nan_gradients(fn):
    x = torch.tensor([[-INF, -INF, -INF], [1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    out = fn(x)
    torch.where(torch.isfinite(out), out, torch.zeros_like(out)).sum().backward()
    assert torch.all(x.grad[0] == 0) and torch.all(torch.isfinite(x.grad))
    y = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = fn(y, where=mask)
    torch.where(torch.isfinite(out), out, torch.zeros_like(out)).sum().backward()
    assert torch.all(y.grad[1] == 0) and y.grad[0, 2] == 0 and torch.all(torch.isfinite(y.grad))


def test_jax_empty_rows_have_zero_gradients():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    mask = jnp.asarray([[True, True], [False, False]])
    g = jax.grad(lambda v: jnp.sum(sigmax.softmax(v, where=mask)))(jnp.ones((2, 2)))
    assert np.all(np.isfinite(to_numpy(g))) and np.all(to_numpy(g)[1] == 0)


def test_positive_infinity_takes_the_limit(backend):
    x = backend.asarray([[INF, 1.0, INF], [INF, -INF, 0.0]])
    assert_close(sigmax.softmax(x), [[0.5, 0.0, 0.5], [1.0, 0.0, 0.0]], "float64")
    lp = to_numpy(sigmax.log_softmax(x))
    assert_close(lp[0, [0, 2]], [-math.log(2)] * 2, "float64") and lp[0, 1] == -INF
    assert np.all(to_numpy(sigmax.logsumexp(x)) == INF)
    assert float(sigmax.sigmoid(backend.asarray(INF))) == 1.0 and float(sigmax.sigmoid(backend.asarray(-INF))) == 0.0
    assert float(sigmax.log_sigmoid(backend.asarray(-INF))) == -INF
    assert float(sigmax.softplus(backend.asarray(-INF))) == 0.0


def test_nan_propagates_to_its_row_only(backend):
    x = backend.asarray([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]])
    for fn in (sigmax.softmax, sigmax.log_softmax):
        out = to_numpy(fn(x))
        assert np.all(np.isnan(out[0])) and np.all(np.isfinite(out[1]))
    lse = to_numpy(sigmax.logsumexp(x))
    assert np.isnan(lse[0]) and np.isfinite(lse[1])
    assert np.isnan(float(sigmax.sigmoid(backend.asarray(np.nan))))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_clear_errors(np_torch):
    x = np_torch.asarray([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"axis=2 is out of range .* \[-2, 1\]"):
        sigmax.softmax(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        sigmax.softmax(x, axis=1.5)
    with pytest.raises(TypeError, match="must be an array"):
        sigmax.softmax("1, 2")
    with pytest.raises(ValueError, match="does not broadcast"):
        sigmax.softmax(x, where=np_torch.asarray([True, False, True], "bool"))
    with pytest.raises(TypeError, match="boolean mask"):
        sigmax.softmax(x, where=np_torch.asarray([1.0, 0.0]))
    with pytest.raises(ValueError, match="0-d"):
        sigmax.softmax(np_torch.asarray(1.0), axis=1)  # a scalar is a distribution along 0, -1 or None only
    with pytest.raises(ValueError, match="rectangular"):
        sigmax.softmax([[1.0, 2.0], [3.0]])


def test_mixed_libraries():
    # NumPy parameters are host data, moved to the input's library; a tensor for a NumPy input is refused
    assert_close(sigmax.logsumexp(torch.zeros(3, dtype=torch.float64), b=np.ones(3)), math.log(3), "float64")
    with pytest.raises(TypeError, match="same kind of array"):
        sigmax.logsumexp(np.zeros(3), b=torch.ones(3))


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

finite_rows = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                         elements=st.floats(-300, 300, allow_nan=False, allow_subnormal=False))


@given(finite_rows, st.floats(-1e3, 1e3))
def test_shift_invariance(x, c):
    assert_close(sigmax.softmax(x + c), sigmax.softmax(x), "float64", factor=2 ** 14)  # x + c rounds x
    assert_close(sigmax.logsumexp(x + c) - c, sigmax.logsumexp(x), "float64", factor=2 ** 14)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(2)), elements=st.floats(-50, 50)))
def test_two_column_softmax_is_sigmoid_of_difference(x):
    assert_close(sigmax.softmax(x, axis=1), sigmax.sigmoid(x - np.flip(x, axis=1)), "float64")


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-700, 700)))
def test_sigmoid_is_the_two_class_softmax(z):
    assert_close(sigmax.softmax(sigmax.binary_to_two_class(z))[..., 1], sigmax.sigmoid(z), "float64")


@given(finite_rows)
def test_log_softmax_is_x_minus_logsumexp(x):
    assert_close(sigmax.log_softmax(x), x - sigmax.logsumexp(x, keepdims=True), "float64", factor=64)
    assert_close(np.exp(sigmax.log_softmax(x)), sigmax.softmax(x), "float64", factor=64)
    assert_close(np.sum(sigmax.softmax(x), axis=-1), np.ones(x.shape[0]), "float64", factor=x.shape[1])


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=5),
                  elements=st.floats(-80, 80, width=32)))
def test_float32_kept_and_matches_float64(x):
    for fn in ELEMENTWISE + ROWWISE:
        out = fn(x)
        assert out.dtype == np.float32
        assert_close(out, fn(x.astype(np.float64)), "float32")
