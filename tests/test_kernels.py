"""The compiled CPU kernels (sigmax._kernels) against the generic Array-API code, which is the reference.

Every comparison runs the same call twice, with the kernels on and off (``use_kernels``), on NumPy
arrays and CPU torch tensors, float32 and float64, on every instruction-set variant the machine has;
inputs include the edge rows of DESIGN.md (all ``-inf``, ``+inf`` entries, NaN), subnormals, huge
values, ties, and rows long enough to span several blocks of the kernels' online maximum.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import sigmax
from sigmax import _kernels
from sigmax._dispatch import Declined
from sigmax._kernels import _ops as _kernel_ops
from sigmax.testing import assert_close, available_backends, measure_accuracy, to_numpy

torch = pytest.importorskip("torch")

INF = np.inf
ROW_FNS = ["softmax", "log_softmax", "logsumexp"]
EW_FNS = ["sigmoid", "log_sigmoid", "softplus"]


def test_extension_is_built():
    if not _kernels.AVAILABLE:
        if os.environ.get("CI"):
            pytest.fail("sigmax._kernels._ck was not built: CI has a C compiler, so setup.py must build it")
        pytest.skip("the optional C kernels are not built here (no compiler at install time)")
    assert _kernels.variant() in ("avx2", "base")


def _kind(x):
    return "numpy" if isinstance(x, np.ndarray) else "torch"


def _ce_kernel(x, t, ax, reduction):
    """The fused cross-entropy kernel itself (it must not decline these inputs)."""
    out = _kernel_ops.cross_entropy_indices(_kind(x), x, t, None, ax=ax, ignore_index=-100, smoothing=0.0,
                                            reduction=reduction, from_logits=True)
    assert type(out) is not Declined, out
    return out


def _bce_kernel(x, y, reduction):
    out = _kernel_ops.bce_with_logits(_kind(x), x, y, None, None, reduction)
    assert type(out) is not Declined, out
    return out


pytestmark_kernels = pytest.mark.skipif(not _kernels.AVAILABLE, reason="C kernels not built")


def _variants():
    if not _kernels.AVAILABLE:
        return []
    out = ["base"]
    try:
        _kernels._ck.set_variant("avx2")
        out.append("avx2")
    except ValueError:
        pass
    return out


_DEFAULT_VARIANT = _kernels.variant()


@pytest.fixture(params=_variants() or [None])
def variant(request):
    if request.param is None:
        pytest.skip("C kernels not built")
    _kernels._ck.set_variant(request.param)
    yield request.param
    _kernels._ck.set_variant(_DEFAULT_VARIANT)


def _both(fn, *args, **kw):
    """(kernel result, generic result) of sigmax.<fn>."""
    f = getattr(sigmax, fn)
    with _kernels.use_kernels(True):
        fast = f(*args, **kw)
    with _kernels.use_kernels(False):
        ref = f(*args, **kw)
    return fast, ref


def _same(fast, ref, dtype, factor=1.0):
    a, e = to_numpy(fast), to_numpy(ref)
    assert type(fast) is type(ref)
    assert a.dtype == e.dtype and a.shape == e.shape
    # special values must agree exactly, the rest within the dtype's tolerance
    assert np.array_equal(np.isnan(a), np.isnan(e)), "NaN positions differ"
    assert np.array_equal(a[np.isinf(e)], e[np.isinf(e)]), "infinities differ"
    assert not np.any(np.isinf(a) & ~np.isinf(e)), "spurious infinities"
    assert_close(a, e, dtype, factor=factor)


def _edge_matrix(rng, n_rows, V, dtype):
    """Random logits with edge rows and edge entries mixed in."""
    fi = np.finfo(dtype)
    x = rng.normal(scale=rng.choice([0.1, 3.0, 30.0]), size=(n_rows, V))
    kinds = rng.integers(0, 12, size=n_rows)
    for r, k in enumerate(kinds):
        if k == 0:
            x[r] = -INF  # empty row
        elif k == 1:
            x[r, rng.integers(0, V)] = INF  # one +inf
        elif k == 2:
            x[r, rng.choice(V, size=min(V, 3), replace=False)] = INF  # several +inf: shared mass
            x[r, rng.integers(0, V)] = -INF
        elif k == 3:
            x[r, rng.integers(0, V)] = np.nan
        elif k == 4:
            x[r] = rng.choice([-1, 1], size=V) * float(fi.smallest_subnormal) * rng.integers(1, 50, size=V)
        elif k == 5:
            x[r] = rng.uniform(-1, 1, size=V) * float(fi.max) / 4  # huge: exp underflows off the max
        elif k == 6:
            x[r, rng.choice(V, size=V // 2, replace=False)] = -INF  # half masked by -inf
        elif k == 7:
            x[r] = x[r].max()  # all ties
        elif k == 8:
            x[r] = -60.0
            x[r, rng.integers(0, V)] = 0.0  # tiny rest: log1p keeps it
        elif k == 9:
            x[r] = np.linspace(-30, 30, V)  # the maximum at the end: the online max rescales
        elif k == 10:
            x[r, : V // 2] = -INF  # a leading run of -inf: blocks written before any finite max
    return x.astype(dtype)


# ---------------------------------------------------------------------------------------------
# the two paths agree
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("V", [1, 3, 8, 10, 17, 32, 33, 1000, 9000])
def test_row_functions_match_generic(variant, lib, dtype, V):
    rng = np.random.default_rng(V)
    x = _edge_matrix(rng, 43 if V < 5000 else 14, V, dtype)  # 43: tiles of 8 rows and a rest
    arr = torch.from_numpy(x) if lib == "torch" else x
    for fn in ROW_FNS:
        for axis in (-1, 0):
            fast, ref = _both(fn, arr, axis=axis)
            _same(fast, ref, dtype, factor=4 if fn == "logsumexp" else 1)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(300, 700), (130, 1030), (70, 600), (5000, 10), (4096, 3)])
def test_reductions_over_a_leading_axis_of_wide_slices(variant, lib, dtype, shape):
    """Axis 0 of a wide matrix: strips of columns, read row by row with a running per-column max."""
    rng = np.random.default_rng(shape[1])
    x = np.ascontiguousarray(_edge_matrix(rng, shape[1], shape[0], dtype).T)  # edge patterns per column
    arr = torch.from_numpy(x) if lib == "torch" else x
    for fn in ROW_FNS:
        fast, ref = _both(fn, arr, axis=0)
        _same(fast, ref, dtype, factor=4)
    y = np.ascontiguousarray(np.moveaxis(_edge_matrix(rng, 2 * 600, 90, dtype).reshape(2, 600, 90), 2, 1))
    arr = torch.from_numpy(y) if lib == "torch" else y
    for fn in ROW_FNS:
        fast, ref = _both(fn, arr, axis=1)  # (A, C, B) = (2, 90, 600)
        _same(fast, ref, dtype, factor=4)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_functions_nd_axes_and_keepdims(variant, lib, dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(scale=5, size=(3, 7, 20, 5)).astype(dtype)
    x[0, 1, :, 2] = -INF
    x[1, 2, 3, :] = INF
    x[2, 3, 4, 1] = np.nan
    arr = torch.from_numpy(x) if lib == "torch" else x
    for fn in ROW_FNS:
        for axis in (0, 1, 2, 3, -1, -2):
            fast, ref = _both(fn, arr, axis=axis)
            _same(fast, ref, dtype, factor=4)
    for keepdims in (False, True):
        for axis in (None, 1, -1):
            fast, ref = _both("logsumexp", arr, axis=axis, keepdims=keepdims)
            assert tuple(fast.shape) == tuple(ref.shape)
            _same(fast, ref, dtype, factor=4)
    fast, ref = _both("softmax", arr, dim=1)
    _same(fast, ref, dtype)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_match_generic(variant, lib, dtype):
    rng = np.random.default_rng(1)
    fi = np.finfo(dtype)
    with np.errstate(over="ignore"):
        mag = np.minimum(np.geomspace(float(fi.smallest_subnormal), float(fi.max), 3001), float(fi.max))
    x = np.concatenate([-mag, mag, [0.0, -0.0, INF, -INF, np.nan], rng.normal(scale=40, size=5000),
                        rng.uniform(-120, 120, size=5000)]).astype(dtype)
    arr = torch.from_numpy(x) if lib == "torch" else x
    for fn in EW_FNS:
        fast, ref = _both(fn, arr)
        _same(fast, ref, dtype)
        for shape in [(7, 3, 5), (1,), ()]:  # any shape, 0-d included
            y = rng.normal(scale=10, size=shape).astype(dtype)
            y = torch.from_numpy(np.ascontiguousarray(y)) if lib == "torch" else y
            fast, ref = _both(fn, y)
            _same(fast, ref, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softplus", "softmax", "log_softmax", "logsumexp"])
def test_base_variant_meets_the_accuracy_bound(name, dtype):
    """tests/test_accuracy.py measures the variant this machine uses; this one measures the other."""
    pytest.importorskip("mpmath")
    if not _kernels.AVAILABLE:
        pytest.skip("C kernels not built")
    _kernels._ck.set_variant("base")
    try:
        err = measure_accuracy(name, available_backends()[0], dtype, n=600)  # NumPy comes first
    finally:
        _kernels._ck.set_variant(_DEFAULT_VARIANT)
    assert err <= 4.0, f"{name} {dtype} (base variant): {err:.2f} ulps"


@pytest.mark.parametrize("shape", [(21, 10), (21, 700), (700, 21), (130, 600)])
def test_batch_split_invariance(variant, shape):
    """A row's (or column's) result never depends on the rest of the batch: bit-identical pieces."""
    rng = np.random.default_rng(9)
    x = _edge_matrix(rng, *shape, np.float32)
    for fn in ROW_FNS:
        f = getattr(sigmax, fn)
        whole = f(x)
        parts = np.concatenate([f(x[i:i + 1]) for i in range(0, shape[0], 1)] if shape[0] < 50 else
                               [f(x[i:i + 7]) for i in range(0, shape[0], 7)], axis=0)
        assert np.array_equal(whole, parts, equal_nan=True), fn
        whole = f(x, axis=0)
        cols = [f(np.ascontiguousarray(x[:, j:j + 5]), axis=0) for j in range(0, shape[1], 5)]
        assert np.array_equal(whole, np.concatenate(cols, axis=-1), equal_nan=True), fn


def test_threads_do_not_change_results(variant):
    rng = np.random.default_rng(5)
    x = _edge_matrix(rng, 300, 1500, np.float32)
    # a few long columns: their chunks of rows run on several threads and are merged in order
    y = np.ascontiguousarray(_edge_matrix(rng, 6, 9000, np.float32).T)

    def results():
        return [sigmax.softmax(x), sigmax.log_softmax(x), sigmax.logsumexp(x), sigmax.softmax(x, axis=0),
                sigmax.sigmoid(x)] + [getattr(sigmax, fn)(y, axis=0) for fn in ROW_FNS]

    old = _kernels.num_threads(1)
    try:
        one = results()
        _kernels.num_threads(4)
        four = results()
    finally:
        _kernels.num_threads(old)
    for a, b in zip(one, four):
        assert np.array_equal(a, b, equal_nan=True)


def test_edge_cases_of_design_through_the_kernels():
    if not _kernels.enabled():
        pytest.skip("C kernels not built or disabled")
    x = np.array([[-INF, -INF, -INF], [INF, 1.0, INF], [np.nan, 1.0, 2.0], [0.0, -50.0, -INF]])
    p, lp, lse = sigmax.softmax(x), sigmax.log_softmax(x), sigmax.logsumexp(x)
    assert np.all(p[0] == 0) and np.all(lp[0] == -INF) and lse[0] == -INF
    assert np.array_equal(p[1], [0.5, 0.0, 0.5]) and lse[1] == INF
    assert_close(lp[1, [0, 2]], [-np.log(2)] * 2, "float64") and lp[1, 1] == -INF
    assert np.all(np.isnan(p[2])) and np.all(np.isnan(lp[2])) and np.isnan(lse[2])
    assert_close(lse[3], np.log1p(np.exp(-50)), "float64")  # a tiny rest is kept
    assert_close(lp[3, 0], -np.log1p(np.exp(-50)), "float64")
    assert sigmax.sigmoid(np.float32(-100)) == np.float32(3.7835059e-44)  # subnormal, correctly rounded


def test_unsupported_calls_take_the_generic_path():
    """Masks, temperatures, weights, half precision, non-contiguous input: same answers as before."""
    x = np.random.default_rng(0).normal(size=(6, 9))
    mask = x > -0.5
    for kw in (dict(where=mask), dict(temperature=2.0)):
        fast, ref = _both("softmax", x, **kw)
        _same(fast, ref, "float64")
    fast, ref = _both("logsumexp", x, b=np.abs(x))
    _same(fast, ref, "float64")
    fast, ref = _both("softmax", x.T)  # not C-contiguous
    _same(fast, ref, "float64")
    fast, ref = _both("sigmoid", x.astype(np.float16))
    _same(fast, ref, "float16")
    fast, ref = _both("log_softmax", [[1, 2, 3]])
    _same(fast, ref, "float64")


# ---------------------------------------------------------------------------------------------
# autograd
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ROW_FNS)
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_generic(variant, fn, axis, dtype):
    rng = np.random.default_rng(2)
    x0 = rng.normal(scale=3, size=(6, 11))
    x0[1] = -INF
    x0[2, 3] = INF
    x0[3, [1, 4]] = INF
    x0[4, :5] = -INF
    grads = []
    g = torch.from_numpy(rng.normal(size=(6, 11) if fn != "logsumexp" else (11 if axis == 0 else 6,))).to(dtype)
    for on in (True, False):
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        with _kernels.use_kernels(on):
            out = getattr(sigmax, fn)(x, axis=axis)
        torch.where(torch.isfinite(out), out * g, torch.zeros_like(out)).sum().backward()
        grads.append(x.grad)
    assert_close(grads[0], grads[1], str(dtype).replace("torch.", ""), factor=4)
    assert torch.all(torch.isfinite(grads[0]))


@pytest.mark.parametrize("fn", ROW_FNS)
def test_gradcheck_through_the_kernels(variant, fn):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 5, generator=gen, dtype=torch.float64) * 3).requires_grad_(True)
    f = getattr(sigmax, fn)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradcheck(lambda v: f(v, axis=0), (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_upstream_gradient_layouts():
    """An expanded (stride 0) or non-contiguous upstream gradient goes through the backward kernel."""
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    ref = x.detach().clone().requires_grad_(True)
    sigmax.log_softmax(x).sum().backward()
    torch.log_softmax(ref, -1).sum().backward()
    assert_close(x.grad, ref.grad, "float64")
    x.grad = None
    ref.grad = None
    sigmax.softmax(x)[:, ::2].sum().backward()
    torch.softmax(ref, -1)[:, ::2].sum().backward()
    assert_close(x.grad, ref.grad, "float64")


# ---------------------------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("on", [True, False])
def test_out_writes_and_returns_the_buffer(lib, on):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 12)).astype(np.float32)
    arr = torch.from_numpy(x) if lib == "torch" else x
    empty = (lambda s: torch.empty(s, dtype=torch.float32)) if lib == "torch" else \
        (lambda s: np.empty(s, dtype=np.float32))
    with _kernels.use_kernels(on):
        for fn in EW_FNS + ["softmax", "log_softmax"]:
            out = empty((5, 12))
            res = getattr(sigmax, fn)(arr, out=out)
            assert res is out
            _same(out, getattr(sigmax, fn)(arr), "float32")
        out = empty((12,))
        assert sigmax.logsumexp(arr, axis=0, out=out) is out
        _same(out, sigmax.logsumexp(arr, axis=0), "float32")
        out = empty((5, 1))
        assert sigmax.logsumexp(arr, keepdims=True, out=out) is out
        # in place
        y = arr.clone() if lib == "torch" else arr.copy()
        ref = sigmax.softmax(arr)
        assert sigmax.softmax(y, out=y) is y
        _same(y, ref, "float32")
        # an out that overlaps x partly, and a non-contiguous out
        big = empty((6, 12))
        big[:5] = arr
        res = sigmax.log_softmax(big[:5], out=big[1:])
        _same(res, sigmax.log_softmax(arr), "float32")
        nc = empty((12, 5)).T
        assert sigmax.sigmoid(arr, out=nc) is nc
        _same(nc, sigmax.sigmoid(arr), "float32")


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_out_errors(lib):
    x = np.zeros((2, 3), dtype=np.float32)
    arr = torch.from_numpy(x) if lib == "torch" else x
    mk = (lambda s, d=torch.float32: torch.empty(s, dtype=d)) if lib == "torch" else \
        (lambda s, d=np.float32: np.empty(s, dtype=d))
    f64 = torch.float64 if lib == "torch" else np.float64
    for on in (True, False):
        with _kernels.use_kernels(on):
            with pytest.raises(ValueError, match="shape"):
                sigmax.softmax(arr, out=mk((3, 2)))
            with pytest.raises(TypeError, match="dtype"):
                sigmax.sigmoid(arr, out=mk((2, 3), f64))
            with pytest.raises(TypeError, match="out must be"):
                sigmax.log_softmax(arr, out=[[0.0] * 3] * 2)
            with pytest.raises(ValueError, match="shape"):
                sigmax.logsumexp(arr, out=mk((2, 3)))
            with pytest.raises(TypeError, match="return_sign"):
                sigmax.logsumexp(arr, return_sign=True, out=mk((2,)))
    if lib == "numpy":
        ro = np.empty((2, 3), dtype=np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            sigmax.softmax(arr, out=ro)
    else:
        xg = torch.zeros(2, 3, requires_grad=True)
        for on in (True, False):
            with _kernels.use_kernels(on):
                with pytest.raises(ValueError, match="autograd"):
                    sigmax.softmax(xg, out=torch.empty(2, 3))
                with pytest.raises(ValueError, match="autograd"):
                    sigmax.sigmoid(xg, out=torch.empty(2, 3))
        with torch.no_grad():
            out = torch.empty(2, 3)
            assert sigmax.softmax(xg, out=out) is out


def test_out_with_jax_is_refused():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(TypeError, match="not supported"):
        sigmax.softmax(jnp.zeros((2, 3)), out=jnp.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# switches
# ---------------------------------------------------------------------------------------------


def test_environment_switch_disables_the_kernels():
    code = "import sigmax._kernels as k; print(k.enabled())"
    env = dict(os.environ, SIGMAX_DISABLE_KERNELS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_use_kernels_restores_the_setting():
    before = _kernels.enabled()
    with _kernels.use_kernels(False):
        assert not _kernels.enabled()
    assert _kernels.enabled() == before


# ---------------------------------------------------------------------------------------------
# fused losses (the kernels sigmax.losses routes to)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("C", [3, 10, 50, 5000])
def test_fused_cross_entropy_matches_generic(variant, lib, dtype, C):
    rng = np.random.default_rng(C)
    x = _edge_matrix(rng, 45, C, dtype)
    t = rng.integers(0, C, size=45)
    t[rng.integers(0, 45, size=4)] = -100
    t[x.shape[0] - 1] = -100
    for r in range(45):  # +inf rows: the target on an +inf entry or not; keep both kinds
        if np.isposinf(x[r]).any() and r % 2:
            t[r] = int(np.argmax(x[r]))
    xx = torch.from_numpy(x) if lib == "torch" else x
    tt = torch.from_numpy(t) if lib == "torch" else t
    for reduction in ("none", "sum", "mean"):
        fast = _ce_kernel(xx, tt, 1, reduction)
        with _kernels.use_kernels(False):
            ref = sigmax.cross_entropy(xx, tt, reduction=reduction)
        _same(fast, ref, dtype, factor=4)
    # a batch of sequences: classes on the last axis of (B, T, C)
    x3 = rng.normal(scale=4, size=(3, 5, C)).astype(dtype)
    t3 = rng.integers(0, C, size=(3, 5))
    xx = torch.from_numpy(x3) if lib == "torch" else x3
    tt = torch.from_numpy(t3) if lib == "torch" else t3
    fast = _ce_kernel(xx, tt, 2, "none")
    with _kernels.use_kernels(False):
        ref = sigmax.cross_entropy(xx, tt, reduction="none", axis=2)
    _same(fast, ref, dtype, factor=4)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_fused_cross_entropy_gradients(variant, reduction):
    rng = np.random.default_rng(7)
    x0 = rng.normal(scale=3, size=(9, 12))
    x0[2] = -INF
    x0[3, 4] = INF
    t = torch.from_numpy(rng.integers(0, 12, size=9))
    t[5] = -100
    grads = []
    g = torch.from_numpy(rng.normal(size=9)) if reduction == "none" else torch.tensor(1.3, dtype=torch.float64)
    for fused in (True, False):
        x = torch.tensor(x0, requires_grad=True)
        if fused:
            loss = _ce_kernel(x, t, 1, reduction)
        else:
            with _kernels.use_kernels(False):
                loss = sigmax.cross_entropy(x, t, reduction=reduction)
        (torch.where(torch.isfinite(loss), loss, torch.zeros_like(loss)) * g).sum().backward()
        grads.append(x.grad)
    assert_close(grads[0], grads[1], "float64", factor=4)
    y = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor([1, 0, 5, -100])
    f = lambda v: _ce_kernel(v, ty, 1, reduction)  # noqa: E731
    assert torch.autograd.gradcheck(f, (y,)) and torch.autograd.gradgradcheck(f, (y,))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("C", [3, 50, 700])
def test_fused_cross_entropy_over_a_leading_class_axis(variant, lib, dtype, C):
    # (N, C) read with the classes on axis 0 (an (C, N) array), and PyTorch's (N, C, d) layout:
    # the column kernel; edge columns (all -inf, +inf entries with the target on one or not, NaN)
    rng = np.random.default_rng(C + 1)
    x = _edge_matrix(rng, 45, C, dtype).T.copy()  # (C, 45): column r is row r of the edge matrix
    t = rng.integers(0, C, size=45)
    t[rng.integers(0, 45, size=4)] = -100
    for r in range(45):
        if np.isposinf(x[:, r]).any() and r % 2:
            t[r] = int(np.argmax(x[:, r]))
    x3 = rng.normal(scale=4, size=(3, C, 70)).astype(dtype)
    t3 = rng.integers(0, C, size=(3, 70))
    t3[1, 5] = -100
    for xa, ta, ax in ((x, t, 0), (x3, t3, 1)):
        xx = torch.from_numpy(xa) if lib == "torch" else xa
        tt = torch.from_numpy(ta) if lib == "torch" else ta
        for reduction in ("none", "sum", "mean"):
            fast = _ce_kernel(xx, tt, ax, reduction)
            assert fast is not NotImplemented
            with _kernels.use_kernels(False):
                ref = sigmax.cross_entropy(xx, tt, reduction=reduction, axis=ax)
            _same(fast, ref, dtype, factor=4)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_fused_cross_entropy_over_a_leading_class_axis_gradients(variant, reduction):
    rng = np.random.default_rng(8)
    x0 = rng.normal(scale=3, size=(12, 9))  # classes on axis 0
    x0[:, 2] = -INF
    x0[4, 3] = INF
    t = torch.from_numpy(rng.integers(0, 12, size=9))
    t[5] = -100
    g = torch.from_numpy(rng.normal(size=9)) if reduction == "none" else torch.tensor(0.7, dtype=torch.float64)
    grads = []
    for fused in (True, False):
        x = torch.tensor(x0, requires_grad=True)
        with _kernels.use_kernels(fused):
            loss = sigmax.cross_entropy(x, t, reduction=reduction, axis=0)
        (torch.where(torch.isfinite(loss), loss, torch.zeros_like(loss)) * g).sum().backward()
        grads.append(x.grad)
    assert_close(grads[0], grads[1], "float64", factor=4)
    y = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor([[1, 0, 5], [-100, 2, 2]])
    f = lambda v: _ce_kernel(v, ty, 1, reduction)  # noqa: E731
    assert torch.autograd.gradcheck(f, (y,)) and torch.autograd.gradgradcheck(f, (y,))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_bce_with_logits_matches_generic(variant, lib, dtype):
    rng = np.random.default_rng(11)
    x = rng.normal(scale=8, size=(301, 13)).astype(dtype)
    x[0, :6] = [0.0, -0.0, 1e4, -1e4, 1e-40, -1e-40]
    y = rng.random((301, 13)).astype(dtype)
    y[1] = y[1] > 0.5
    xx = torch.from_numpy(x) if lib == "torch" else x
    yy = torch.from_numpy(y) if lib == "torch" else y
    for reduction in ("none", "sum", "mean"):
        fast = _bce_kernel(xx, yy, reduction)
        with _kernels.use_kernels(False):
            ref = sigmax.binary_cross_entropy_with_logits(xx, yy, reduction=reduction)
        _same(fast, ref, dtype, factor=4)
    xt = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    yt = torch.rand(5, 7, dtype=torch.float64)
    for reduction in ("none", "sum", "mean"):
        f = lambda v: _bce_kernel(v, yt, reduction)  # noqa: E731
        assert torch.autograd.gradcheck(f, (xt,)) and torch.autograd.gradgradcheck(f, (xt,))


# ---------------------------------------------------------------------------------------------
# large results: memory from the kernels' cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_large_results_reuse_cached_memory(lib):
    if not _kernels.enabled():
        pytest.skip("C kernels not built or disabled")
    rng = np.random.default_rng(12)
    x = rng.normal(size=(600, 4000)).astype(np.float32)  # 9.6 MB results
    xx = torch.from_numpy(x) if lib == "torch" else x
    old = _kernels._ck.set_cache_limit(1 << 30)
    try:
        p = sigmax.softmax(xx)
        ref = sigmax.softmax(x[:7])
        assert tuple(p.shape) == x.shape and p.dtype == xx.dtype
        assert np.array_equal(to_numpy(p)[:7], to_numpy(ref))
        p[0, 0] = 5.0  # an ordinary writable result
        assert float(p[0, 0]) == 5.0
        del p
        blocks, nbytes = _kernels._ck.cache_info()
        assert blocks >= 1 and nbytes >= x.nbytes  # back in the cache once the result died
        q = sigmax.log_sigmoid(xx)  # the same size: takes the cached block
        assert _kernels._ck.cache_info()[0] == blocks - 1
        with _kernels.use_kernels(False):
            _same(q, sigmax.log_sigmoid(xx), "float32")
        del q
        _kernels._ck.set_cache_limit(0)  # keeps nothing
        assert _kernels._ck.cache_info() == (0, 0)
        r = sigmax.sigmoid(xx)
        del r
        assert _kernels._ck.cache_info() == (0, 0)
    finally:
        _kernels._ck.set_cache_limit(old)


def test_output_cache_environment_switch():
    if not _kernels.AVAILABLE:
        pytest.skip("C kernels not built")
    code = ("import numpy as np, sigmax; from sigmax import _kernels as k; "
            "x = np.ones((1000, 3000), np.float32); y = sigmax.sigmoid(x); del y; print(k._ck.cache_info())")
    env = dict(os.environ, SIGMAX_OUTPUT_CACHE_MB="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(0, 0)"
