"""The JAX rows of cross_entropy (class indices) and binary_cross_entropy_with_logits (sigmax._losses_jax):
values and gradients against torch.nn.functional and against the generic core (the previous JAX row), the
edges (infinite logits, ignored rows, tiny losses, overflow of the target shift), forward mode, the
Hessian, vmap, and jit with a closed-over target."""

import numpy as np
import pytest

import sigmax
from sigmax import _dispatch
from sigmax.testing import assert_close

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = jax.numpy
F = torch.nn.functional
INF = np.inf


def _generic_ce(x, t, **kw):
    """The previous JAX row (the generic core under jax.jit), through the same checks."""
    from sigmax import _losses_jax

    fn = _losses_jax._PREVIOUS["cross_entropy_indices"]
    ax = kw.pop("ax", 1)
    w = kw.pop("weight", None)
    return fn(jnp, x, t, w, ax=ax, ignore_index=kw.get("ignore_index", -100),
              smoothing=kw.get("label_smoothing", 0.0), reduction=kw.get("reduction", "mean"), from_logits=True)


CE_OPTIONS = [{}, {"label_smoothing": 0.1}, {"weight": True}, {"weight": True, "label_smoothing": 0.2},
              {"ignore_index": 2}, {"reduction": "none"}, {"reduction": "sum", "weight": True}]


@pytest.mark.parametrize("opts", CE_OPTIONS)
def test_cross_entropy_jax_matches_torch_values_and_grads(opts, x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5)) * 3
    t = rng.integers(0, 5, size=7)
    t[0] = opts.get("ignore_index", -100)
    opts = dict(opts)
    w = rng.uniform(0.5, 2.0, size=5) if opts.pop("weight", False) else None
    red = opts.get("reduction", "mean")

    def ours(v):
        out = sigmax.cross_entropy(v, jnp.asarray(t), weight=None if w is None else jnp.asarray(w), **opts)
        return out if red != "none" else out.sum()

    v, g = jax.jit(jax.value_and_grad(ours))(jnp.asarray(x))
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, torch.tensor(t), weight=None if w is None else torch.tensor(w), **opts)
    ref = ref if red != "none" else ref.sum()
    ref.backward()
    assert_close(v, ref.detach(), "float64")
    assert_close(g, xt.grad, "float64")
    assert_close(jax.jit(ours)(jnp.asarray(x)), ref.detach(), "float64")  # the forward-only path
    wj = {} if w is None else {"weight": jnp.asarray(w)}
    assert_close(sigmax.cross_entropy(jnp.asarray(x), jnp.asarray(t), **wj, **opts),
                 _generic_ce(jnp.asarray(x), jnp.asarray(t), **wj, **opts), "float64")


def test_cross_entropy_jax_class_axis_and_1d(x64):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 6))  # (batch, classes, positions)
    t = rng.integers(0, 4, size=(2, 6))
    g = jax.grad(lambda v: sigmax.cross_entropy(v, jnp.asarray(t), label_smoothing=0.1))(jnp.asarray(x))
    xt = torch.tensor(x, requires_grad=True)
    F.cross_entropy(xt, torch.tensor(t), label_smoothing=0.1).backward()
    assert_close(g, xt.grad, "float64")
    xl = np.moveaxis(x, 1, -1)  # classes last
    assert_close(sigmax.cross_entropy(jnp.asarray(xl), jnp.asarray(t), axis=-1),
                 F.cross_entropy(torch.tensor(x), torch.tensor(t)), "float64")
    assert_close(sigmax.cross_entropy(jnp.asarray(x[0, :, 0]), jnp.asarray(t[0, 0])),
                 F.cross_entropy(torch.tensor(x[0, :, 0]), torch.tensor(t[0, 0])), "float64")


def test_cross_entropy_jax_edges_match_generic(x64):
    x = np.array([[1.0, 2.0, 3.0], [-INF, -INF, -INF], [INF, 1.0, INF], [INF, 1.0, INF], [0.0, -INF, 1.0],
                  [0.0, 1, 2], [-INF, -INF, -INF], [np.nan, 0, 1], [1e4, 0, -1e4]])
    t = np.array([0, 1, 0, 1, 1, -100, -100, 0, 0])
    for kw in ({}, {"label_smoothing": 0.1}, {"weight": jnp.asarray([1.0, 2.0, 0.5])}):
        ours = sigmax.cross_entropy(jnp.asarray(x), jnp.asarray(t), reduction="none", **kw)
        ref = _generic_ce(jnp.asarray(x), jnp.asarray(t), reduction="none", **kw)
        np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-12)
        f = lambda v, kw=kw: sigmax.cross_entropy(v, jnp.asarray(t), reduction="sum", **kw)
        fr = lambda v, kw=kw: _generic_ce(v, jnp.asarray(t), reduction="sum", **kw)
        np.testing.assert_allclose(np.asarray(jax.grad(f)(jnp.asarray(x))), np.asarray(jax.grad(fr)(jnp.asarray(x))),
                                   rtol=1e-12, atol=1e-15)
    assert float(sigmax.cross_entropy(jnp.asarray(x[2:3]), jnp.asarray(t[2:3]))) == pytest.approx(np.log(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_jax_tiny_losses_keep_their_digits(dtype, x64):
    # a confident row: the loss is log1p(2 e^-30) = 1.87e-13; log(sum exp) would give 0 (or an ulp)
    x = np.array([[0.0, -30.0, -30.0], [5.0, -25.0, -25.0]], dtype=dtype)
    t = np.array([0, 0])
    want = np.log1p(2 * np.exp(-30.0))
    f = lambda v: sigmax.cross_entropy(v, jnp.asarray(t), reduction="none")
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(np.asarray(jax.jit(f)(jnp.asarray(x))), [want, want], rtol=rtol)
    v, _ = jax.jit(jax.value_and_grad(lambda z: f(z).sum()))(jnp.asarray(x))
    np.testing.assert_allclose(float(v), 2 * want, rtol=rtol)


def test_cross_entropy_jax_target_shift_overflow_falls_back():
    # float32: exp(x - x_y) overflows where the loss exceeds ~88; the batch is then shifted by the max
    x = jnp.asarray(np.array([[0.0, 100.0, 1.0], [2.0, 0.0, 0.0]], dtype=np.float32))
    t = jnp.asarray([0, 0])
    ref = F.cross_entropy(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(t)), reduction="none")
    assert_close(jax.jit(lambda v: sigmax.cross_entropy(v, t, reduction="none"))(x), ref, "float32")
    assert np.isfinite(np.asarray(jax.grad(lambda v: sigmax.cross_entropy(v, t))(x))).all()


def test_cross_entropy_jax_closed_over_target_forward_mode_hessian_vmap(x64):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5))
    t = jnp.asarray([1, 0, -100, 4])
    w = jnp.asarray([1.0, 2.0, 0.5, 1.0, 3.0])
    f = lambda z: sigmax.cross_entropy(z, t, weight=w, label_smoothing=0.1)
    v, g = jax.jit(jax.value_and_grad(f))(jnp.asarray(x))  # the target is a concrete array closed over
    xt = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(np.asarray(t))
    wt = torch.tensor(np.asarray(w))
    F.cross_entropy(xt, tt, weight=wt, label_smoothing=0.1).backward()
    assert_close(g, xt.grad, "float64")
    d = rng.normal(size=(4, 5))
    _, tangent = jax.jvp(f, (jnp.asarray(x),), (jnp.asarray(d),))
    assert_close(tangent, float((xt.grad * torch.tensor(d)).sum()), "float64")
    h = jax.hessian(f)(jnp.asarray(x))
    ref = torch.autograd.functional.hessian(lambda z: F.cross_entropy(z, tt, weight=wt, label_smoothing=0.1),
                                            torch.tensor(x))
    assert_close(h, ref, "float64")
    vv = jax.vmap(f)(jnp.stack([jnp.asarray(x), 2 * jnp.asarray(x)]))
    assert_close(vv[1], F.cross_entropy(2 * torch.tensor(x), tt, weight=wt, label_smoothing=0.1), "float64")
    # the derivative in the class weights (through the smoothing term and the weighted mean)
    gw = jax.grad(lambda ww: sigmax.cross_entropy(jnp.asarray(x), t, weight=ww, label_smoothing=0.1))(w)
    # (PyTorch has no weight gradient: compare with autodiff of the generic core)
    gr = jax.grad(lambda ww: _generic_ce(jnp.asarray(x), t, weight=ww, label_smoothing=0.1))(w)
    assert_close(gw, gr, "float64")


def test_jax_rows_run_and_checks_stay_outside():
    x = jnp.zeros((3, 4))
    with _dispatch.trace(echo=False) as records:
        sigmax.cross_entropy(x, jnp.asarray([0, 1, 2]))
        sigmax.binary_cross_entropy_with_logits(x, jnp.zeros((3, 4)))
    assert [r.ran for r in records[-2:]] == ["jax", "jax"]
    with pytest.raises(ValueError, match="outside"):
        sigmax.cross_entropy(x, jnp.asarray([0, 1, 7]))
    with pytest.raises(ValueError, match="probabilities"):
        sigmax.binary_cross_entropy_with_logits(x, jnp.full((3, 4), 2.0))
    # traced: the checks step aside, the loss still runs
    jax.jit(lambda v, tt: sigmax.cross_entropy(v, tt))(x, jnp.asarray([0, 1, 2]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_with_logits_jax_matches_torch(reduction, weighted, x64):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 5)) * 4
    y = rng.uniform(size=(6, 5))
    y[:3] = (y[:3] > 0.5)
    w = rng.uniform(0.5, 2.0, size=5) if weighted else None

    def ours(v, yy):
        out = sigmax.binary_cross_entropy_with_logits(v, yy, weight=None if w is None else jnp.asarray(w),
                                                      reduction=reduction)
        return out.sum() if reduction == "none" else out

    (v, (gx, gy)) = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(y))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(xt, yt, weight=None if w is None else torch.tensor(w),
                                             reduction=reduction)
    ref = ref.sum() if reduction == "none" else ref
    ref.backward()
    assert_close(v, ref.detach(), "float64")
    assert_close(gx, xt.grad, "float64")
    assert_close(gy, yt.grad, "float64")
    assert_close(jax.jit(ours)(jnp.asarray(x), jnp.asarray(y)), ref.detach(), "float64")


def test_bce_with_logits_jax_infinities_and_forward_mode(x64):
    x = jnp.asarray([INF, INF, -INF, -INF])
    y = jnp.asarray([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(sigmax.binary_cross_entropy_with_logits(x, y, reduction="none")),
                                  [0.0, INF, 0.0, INF])
    for red in ("mean", "sum"):
        g = jax.grad(lambda v: sigmax.binary_cross_entropy_with_logits(v, y, reduction="sum"))(x)
        np.testing.assert_array_equal(np.asarray(g), [0.0, 1.0, 0.0, -1.0])
        assert float(sigmax.binary_cross_entropy_with_logits(x, y, reduction=red)) == INF
    assert float(sigmax.binary_cross_entropy_with_logits(x[::2], y[::2])) == 0.0  # the limits, not NaN
    xf = jnp.asarray([2.0, -1.0, 0.0, 3.0])
    yf = jnp.asarray([1.0, 0.0, 0.3, 0.0])
    f = lambda v: sigmax.binary_cross_entropy_with_logits(v, yf)
    d = jnp.asarray([0.5, -1.0, 2.0, 1.0])
    _, tangent = jax.jvp(f, (xf,), (d,))
    assert_close(tangent, float(jnp.sum(jax.grad(f)(xf) * d)), "float64")
    xt = torch.tensor(np.asarray(xf))
    h = jax.hessian(f)(xf)
    yt = torch.tensor(np.asarray(yf))
    ref = torch.autograd.functional.hessian(lambda z: F.binary_cross_entropy_with_logits(z, yt), xt)
    assert_close(h, ref, "float64")
    # pos_weight runs the generic core (the previous JAX row)
    assert_close(sigmax.binary_cross_entropy_with_logits(xf, yf, pos_weight=jnp.asarray(3.0)),
                 F.binary_cross_entropy_with_logits(xt, torch.tensor(np.asarray(yf)), pos_weight=torch.tensor(3.0)),
                 "float64")


def test_optax_agrees():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(64, 100)).astype(np.float32) * 3)
    t = jnp.asarray(rng.integers(0, 100, size=64))
    a = jax.jit(lambda v: optax.softmax_cross_entropy_with_integer_labels(v, t).mean())(x)
    b = jax.jit(lambda v: sigmax.cross_entropy(v, t))(x)
    assert_close(b, a, "float32")
    y = jnp.asarray((rng.uniform(size=(64, 100)) < 0.3).astype(np.float32))
    ga = jax.grad(lambda v: optax.sigmoid_binary_cross_entropy(v, y).mean())(x)
    gb = jax.grad(lambda v: sigmax.binary_cross_entropy_with_logits(v, y))(x)
    assert_close(gb, ga, "float32")


def test_cross_entropy_jax_extremes_match_torch_float32():
    # +-1e4 logits (any shift but the max's overflows) and -inf logits off the target, under jit and grad
    x = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [0.0, -INF, 2.0], [-INF, 3.0, -INF], [5.0, -INF, -INF]],
                 dtype=np.float32)
    t = np.array([0, 0, 2, 1, 0])
    for kw in ({}, {"label_smoothing": 0.1}, {"weight": np.array([1.0, 2.0, 0.5], dtype=np.float32)}):
        wj = {k: (jnp.asarray(v) if k == "weight" else v) for k, v in kw.items()}
        wt = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kw.items()}
        f = jax.jit(jax.value_and_grad(lambda v, wj=wj: sigmax.cross_entropy(v, jnp.asarray(t), reduction="sum",
                                                                               **wj)))
        val, g = f(jnp.asarray(x))
        xt = torch.tensor(x, requires_grad=True)
        ref = F.cross_entropy(xt, torch.tensor(t), reduction="sum", **wt)
        if "label_smoothing" in kw:  # PyTorch's smoothing term is -inf * 0 = NaN on -inf logits: ours is the limit
            assert float(val) == INF
            continue
        ref.backward()
        assert_close(val, ref.detach(), "float32")
        assert_close(g, xt.grad, "float32")
        assert np.isfinite(np.asarray(g)).all()
    none = sigmax.cross_entropy(jnp.asarray(x), jnp.asarray(t), reduction="none")
    np.testing.assert_allclose(np.asarray(none), [0.0, 2e4, np.log1p(np.exp(-2.0)), 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cross_entropy_and_bce_jax_low_precision(dtype):
    # computed in float32, returned (value and gradient) in the input's dtype
    rng = np.random.default_rng(6)
    x32 = rng.normal(size=(16, 10)).astype(np.float32) * 3
    x = jnp.asarray(x32).astype(dtype)
    t = jnp.asarray(rng.integers(0, 10, size=16))
    y = jnp.asarray((rng.uniform(size=(16, 10)) < 0.3).astype(np.float32)).astype(dtype)
    xr = np.asarray(x.astype(jnp.float32), dtype=np.float64)
    for ours, ref, tgt in (
            (lambda v: sigmax.cross_entropy(v, t, label_smoothing=0.1),
             lambda v: F.cross_entropy(v, torch.tensor(np.asarray(t)), label_smoothing=0.1), None),
            (lambda v: sigmax.binary_cross_entropy_with_logits(v, y),
             lambda v: F.binary_cross_entropy_with_logits(v, torch.tensor(np.asarray(y.astype(jnp.float32)),
                                                                          dtype=torch.float64)), None)):
        val, g = jax.jit(jax.value_and_grad(ours))(x)
        assert val.dtype == x.dtype and g.dtype == x.dtype
        xt = torch.tensor(xr, requires_grad=True)
        r = ref(xt)
        r.backward()
        assert_close(val, float(r.detach()), dtype)
        assert_close(np.asarray(g.astype(jnp.float32)), xt.grad.numpy(), dtype)


@pytest.mark.slow
def test_cross_entropy_jax_check_grads(x64):
    from jax.test_util import check_grads

    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(5, 4)) * 2)
    t = jnp.asarray([0, 3, -100, 2, 1])
    w = jnp.asarray([1.0, 0.5, 2.0, 1.5])
    for kw in ({}, {"label_smoothing": 0.2}, {"weight": w}, {"weight": w, "label_smoothing": 0.1},
               {"reduction": "none"}):
        f = lambda v, kw=kw: sigmax.cross_entropy(jnp.asarray(v), t, **kw)  # finite differences pass NumPy
        check_grads(f, (x,), order=1, modes=("fwd", "rev"))
    check_grads(lambda v: sigmax.cross_entropy(jnp.asarray(v), t, weight=w, label_smoothing=0.1), (x,), order=2,
                modes=("rev",))
    y = jnp.asarray(rng.uniform(size=(5, 4)))
    bce = lambda v, yy: sigmax.binary_cross_entropy_with_logits(jnp.asarray(v), jnp.asarray(yy), weight=w)
    check_grads(bce, (x, y), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_jax_probability_targets_match_optax_and_torch(reduction, x64):
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 5)) * 3
    q = rng.dirichlet(np.ones(5), size=6)

    def ours(v):
        out = sigmax.cross_entropy(v, jnp.asarray(q), reduction=reduction)
        return out if reduction != "none" else out.sum()

    v, g = jax.jit(jax.value_and_grad(ours))(jnp.asarray(x))
    per = lambda z: optax.softmax_cross_entropy(z, jnp.asarray(q))
    peer = {"mean": lambda z: per(z).mean(), "sum": lambda z: per(z).sum(), "none": lambda z: per(z).sum()}[reduction]
    vo, go = jax.value_and_grad(peer)(jnp.asarray(x))
    assert_close(v, vo, "float64")
    assert_close(g, go, "float64")
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, torch.tensor(q), reduction=reduction)
    (ref if reduction != "none" else ref.sum()).backward()
    assert_close(g, xt.grad, "float64")


@pytest.mark.slow
def test_cross_entropy_jax_reductions_match_optax_with_ignore_index():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=(32, 50)).astype(np.float32) * 3)
    t = np.asarray(rng.integers(0, 50, size=32))
    t[::4] = -1
    keep = jnp.asarray(t != -1)
    per = optax.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(np.where(t < 0, 0, t)))
    per = jnp.where(keep, per, 0.0)
    tj = jnp.asarray(t)
    assert_close(jax.jit(lambda v: sigmax.cross_entropy(v, tj, ignore_index=-1, reduction="none"))(x), per, "float32")
    assert_close(sigmax.cross_entropy(x, tj, ignore_index=-1, reduction="sum"), per.sum(), "float32")
    assert_close(sigmax.cross_entropy(x, tj, ignore_index=-1), per.sum() / keep.sum(), "float32")
    g = jax.grad(lambda v: sigmax.cross_entropy(v, tj, ignore_index=-1))(x)
    go = jax.grad(lambda v: jnp.where(keep, optax.softmax_cross_entropy_with_integer_labels(
        v, jnp.asarray(np.where(t < 0, 0, t))), 0.0).sum() / keep.sum())(x)
    assert_close(g, go, "float32")
