"""The C cross-entropy kernel inside jitted JAX programs (sigmax._kernels._jax, _kernels/ffi.h): that CPU
programs reach it (the compiled HLO calls it) and other platforms do not, its values and gradients against
PyTorch, mpmath and sigmax's own JAX code (kernels off) at ragged shapes, block boundaries and the rows the
one-exp kernel hands to the general path, the special rows, every transformation (jvp, hessian, vmap,
vmap of grad), float64, thread counts, and the fallback when the kernel's self-check fails."""

import mpmath
import numpy as np
import pytest

import sigmax
import sigmax._kernels._jax
from sigmax._kernels import _switches as sw
from sigmax.testing import assert_close

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = jax.numpy
F = torch.nn.functional
INF = np.inf

pytestmark = pytest.mark.skipif(not sw.AVAILABLE, reason="the C kernels are not built")


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).compile().as_text()


def _no_kernels(fn):
    """fn run with the kernels off (sigmax's JAX code). The choice is made when a program is traced, and JAX
    keeps traces (of a jitted function, and of every jitted function it calls): cleared before and after."""
    def run(*args):
        jax.clear_caches()
        try:
            with sw.use_kernels(False):
                out = jax.block_until_ready(fn(*args))
        finally:
            jax.clear_caches()
        return out
    return run


def test_the_kernels_off_reference_is_sigmax_jax_code():
    x, t = _data(4, 5)
    f = jax.jit(lambda v, y: sigmax.cross_entropy(v, y))
    f(x, t)  # traced with the kernel
    seen = []
    real = sigmax._kernels._jax.ce_rows

    def spy():
        seen.append(1)
        return real()

    try:
        sigmax._kernels._jax.ce_rows = spy
        _no_kernels(f)(x, t)
        assert not seen
        jax.clear_caches()
        f(x, t)
        assert seen  # the spy is live: with the kernels on, a fresh trace asks for the kernel
    finally:
        sigmax._kernels._jax.ce_rows = real
        jax.clear_caches()


def _data(n, c, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c)) * 3).astype(dtype), rng.integers(0, c, size=n)


def test_cpu_programs_call_the_kernel_and_others_do_not():
    from sigmax._kernels import _jax

    assert _jax.ready()
    x, t = _data(8, 5)
    f = lambda v, y: sigmax.cross_entropy(v, y)
    assert 'custom_call_target="sigmax_ce_fwd"' in _hlo(f, x, t)
    assert 'custom_call_target="sigmax_ce_fwd_grad"' in _hlo(jax.value_and_grad(f), x, t)
    with sw.use_kernels(False):
        assert "sigmax_ce" not in _hlo(lambda v, y: sigmax.cross_entropy(v, y) * 1.0, x, t)
    # a GPU program takes the JAX rows: lowered for CUDA here (no GPU needed), it names no sigmax target
    exported = jax.export.export(jax.jit(f), platforms=["cuda"])(x, t)
    assert "sigmax_ce" not in exported.mlir_module()
    # smoothing and classes off the last axis keep the JAX rows
    assert "sigmax_ce" not in _hlo(lambda v, y: sigmax.cross_entropy(v, y, label_smoothing=0.1), x, t)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (5, 7), (33, 31), (9, 4096), (6, 4097), (4, 8193), (2, 100003)])
def test_values_and_gradients_against_torch_at_ragged_shapes(shape):
    x, t = _data(*shape, seed=shape[1])
    ours = jax.jit(jax.value_and_grad(lambda v: sigmax.cross_entropy(v, jnp.asarray(t), reduction="sum")))
    v, g = ours(jnp.asarray(x))
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, torch.tensor(t), reduction="sum")
    ref.backward()
    assert_close(v, ref.detach(), "float32", factor=4)
    assert_close(g, xt.grad, "float32", factor=4)
    fwd = jax.jit(lambda v: sigmax.cross_entropy(v, jnp.asarray(t), reduction="none"))(jnp.asarray(x))
    assert_close(fwd, F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none"), "float32")


def test_rows_longer_than_the_one_exp_kernel_takes_the_general_path():
    # 512 blocks of 4096 float32 entries: a row of 2,100,000 classes goes through ce_rows + rows_bwd
    rng = np.random.default_rng(5)
    c = 2_100_000
    x = (rng.standard_normal((2, c)) * 2).astype(np.float32)
    x[1, 17] = 40.0  # a confident row
    t = np.array([3, 17])
    v, g = jax.jit(jax.value_and_grad(lambda z: sigmax.cross_entropy(z, jnp.asarray(t), reduction="sum")))(x)
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, torch.tensor(t), reduction="sum")
    ref.backward()
    assert_close(v, ref.detach(), "float32", factor=8)
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=1e-4, atol=1e-10)


def test_a_later_block_raising_the_maximum_rescales_the_earlier_ones():
    # the max sits in the last of three blocks: blocks 0 and 1 were written under a smaller M
    x = np.zeros((3, 3 * 4096), dtype=np.float32)
    x[0, -1] = 5.0
    x[1, 5000] = 2.0
    x[1, -3] = 9.0
    x[2, :] = np.linspace(-20, 20, x.shape[1])
    t = np.array([x.shape[1] - 1, 5000, 0])
    g = jax.grad(lambda z: sigmax.cross_entropy(z, jnp.asarray(t), reduction="sum"))(jnp.asarray(x))
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)  # float64: torch's float32 sum is off by 2e-5 here
    F.cross_entropy(xt, torch.tensor(t), reduction="sum").backward()
    np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize("gap", [5.0, 20.0, 30.0, 60.0, 85.0])
def test_confident_rows_keep_relative_accuracy_against_mpmath(gap):
    # loss log1p((C - 1) e^-gap) and the target's gradient -(C-1) e^-gap / (1 + (C-1) e^-gap), both tiny
    c = 1000
    x = np.full((2, c), -gap, dtype=np.float32)
    x[:, 7] = 0.0
    x[1] += 3.25  # the same row shifted: the kernel's max is not 0
    t = np.array([7, 7])
    loss, g = jax.jit(jax.value_and_grad(
        lambda z: sigmax.cross_entropy(z, jnp.asarray(t), reduction="sum")))(jnp.asarray(x))
    mpmath.mp.dps = 40
    r = (c - 1) * mpmath.exp(mpmath.mpf(float(np.float32(-gap))))
    want_loss, want_gt = mpmath.log1p(r), -r / (1 + r)
    np.testing.assert_allclose(float(loss), 2 * float(want_loss), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g)[:, 7], [float(want_gt)] * 2, rtol=1e-5)
    per = jax.jit(lambda z: sigmax.cross_entropy(z, jnp.asarray(t), reduction="none"))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(per), [float(want_loss)] * 2, rtol=1e-5)


def test_special_rows_values_and_zero_gradients(x64):
    x = np.array([[1.0, 2.0, 3.0], [-INF, -INF, -INF], [INF, 1.0, INF], [INF, 1.0, INF], [0.0, -INF, 1.0],
                  [0.0, 1, 2], [-INF, -INF, -INF], [1e4, 0, -1e4], [INF, INF, INF]])
    t = np.array([0, 1, 0, 1, 1, -100, -100, 0, 2])
    f = lambda v: sigmax.cross_entropy(v, jnp.asarray(t), reduction="none")
    per = np.asarray(jax.jit(f)(jnp.asarray(x)))
    want = _no_kernels(jax.jit(f))(jnp.asarray(x))
    np.testing.assert_allclose(per, np.asarray(want), rtol=1e-13)
    assert per[1] == INF and per[3] == INF and per[6] == 0.0
    assert per[2] == pytest.approx(np.log(2)) and per[8] == pytest.approx(np.log(3))
    g = np.asarray(jax.jit(jax.grad(lambda v: f(v).sum()))(jnp.asarray(x)))
    assert (g[[1, 2, 3, 6, 8]] == 0).all() and np.isfinite(g).all()
    gr = _no_kernels(jax.jit(jax.grad(lambda v: f(v).sum())))(jnp.asarray(x))
    np.testing.assert_allclose(g, np.asarray(gr), rtol=1e-12, atol=1e-300)
    nan_row = np.asarray(sigmax.cross_entropy(jnp.asarray([[np.nan, 0.0], [0.0, 1.0]]), jnp.asarray([0, 1]),
                                              reduction="none"))
    assert np.isnan(nan_row[0]) and np.isfinite(nan_row[1])


@pytest.mark.parametrize("opts", [{}, {"reduction": "none"}, {"reduction": "sum"}, {"ignore_index": 1},
                                  {"weight": True}, {"weight": True, "ignore_index": 0, "reduction": "sum"}])
def test_equal_to_sigmax_jax_code_with_the_kernels_off(opts, x64):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(11, 9)) * 4
    t = rng.integers(0, 9, size=11)
    opts = dict(opts)
    w = jnp.asarray(rng.uniform(0.5, 2, size=9)) if opts.pop("weight", False) else None

    def loss(v):
        out = sigmax.cross_entropy(v, jnp.asarray(t), weight=w, **opts)
        return out.sum() if opts.get("reduction") == "none" else out

    for fn in (loss, jax.grad(loss)):
        np.testing.assert_allclose(np.asarray(jax.jit(fn)(jnp.asarray(x))),
                                   np.asarray(_no_kernels(jax.jit(fn))(jnp.asarray(x))), rtol=1e-12, atol=1e-15)


def test_sequence_batches_on_the_last_axis_jvp_hessian_and_vmap(x64):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 3, 6))  # (batch, sequence, vocabulary)
    t = jnp.asarray(rng.integers(0, 6, size=(2, 3)))
    f = lambda z: sigmax.cross_entropy(z, t, axis=-1)
    assert 'sigmax_ce_fwd' in _hlo(f, jnp.asarray(x))
    ref = F.cross_entropy(torch.tensor(x).reshape(6, 6), torch.tensor(np.asarray(t)).reshape(6))
    assert_close(jax.jit(f)(jnp.asarray(x)), ref, "float64")
    d = rng.normal(size=x.shape)
    _, tangent = jax.jvp(f, (jnp.asarray(x),), (jnp.asarray(d),))
    _, want = _no_kernels(lambda: jax.jvp(f, (jnp.asarray(x),), (jnp.asarray(d),)))()
    np.testing.assert_allclose(float(tangent), float(want), rtol=1e-12)
    h = jax.hessian(f)(jnp.asarray(x))
    hr = torch.autograd.functional.hessian(
        lambda z: F.cross_entropy(z.reshape(6, 6), torch.tensor(np.asarray(t)).reshape(6)), torch.tensor(x))
    np.testing.assert_allclose(np.asarray(h), hr.numpy(), rtol=1e-10, atol=1e-13)
    # third order through the kernel's own custom_jvp
    g3 = jax.jacfwd(jax.hessian(lambda z: sigmax.cross_entropy(z, t[0], axis=-1)))(jnp.asarray(x[0]))
    g3r = _no_kernels(jax.jacfwd(jax.hessian(lambda z: sigmax.cross_entropy(z, t[0], axis=-1))))(jnp.asarray(x[0]))
    np.testing.assert_allclose(np.asarray(g3), np.asarray(g3r), rtol=1e-10, atol=1e-13)
    # per-example gradients: vmap of grad, and vmap over the target too
    per = jax.vmap(jax.grad(lambda z, y: sigmax.cross_entropy(z, y)))(jnp.asarray(x), t)
    for i in range(2):
        xi = torch.tensor(x[i], requires_grad=True)
        F.cross_entropy(xi, torch.tensor(np.asarray(t[i]))).backward()
        np.testing.assert_allclose(np.asarray(per[i]), xi.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_results_do_not_depend_on_the_thread_count():
    x, t = _data(257, 1500, seed=9)
    f = jax.jit(jax.value_and_grad(lambda v: sigmax.cross_entropy(v, jnp.asarray(t), reduction="sum")))
    old = sw.num_threads(1)
    try:
        one = f(jnp.asarray(x))
        sw.num_threads(2)
        two = f(jnp.asarray(x))
    finally:
        sw.num_threads(old)
    np.testing.assert_array_equal(np.asarray(one[1]), np.asarray(two[1]))
    np.testing.assert_allclose(float(one[0]), float(two[0]), rtol=1e-6)


def test_a_failing_self_check_warns_once_and_leaves_the_jax_code(monkeypatch):
    from sigmax import _losses_jax
    from sigmax._kernels import _jax

    def broken():
        raise RuntimeError("the kernel's results differ from the JAX code's")

    monkeypatch.setattr(_jax, "_agrees", broken)
    monkeypatch.setitem(_jax._STATE, "checked", None)
    _losses_jax._ce_jitted.cache_clear()
    x, t = _data(4, 3)
    with pytest.warns(RuntimeWarning, match="JAX cross-entropy kernel is off"):
        out = jax.jit(lambda v, y: sigmax.cross_entropy(v, y) * 1.0)(x, t)
    assert_close(out, F.cross_entropy(torch.tensor(x), torch.tensor(t)), "float32")
    assert "sigmax_ce" not in _hlo(lambda v, y: sigmax.cross_entropy(v, y) * 2.0, x, t)
    monkeypatch.setitem(_jax._STATE, "checked", None)
    _losses_jax._ce_jitted.cache_clear()


def test_jax_export_for_the_cpu_names_the_kernel_and_runs_with_the_documented_check_off():
    x, t = _data(4, 3)
    f = jax.jit(lambda v, y: sigmax.cross_entropy(v, y))
    with pytest.raises(ValueError, match="sigmax_ce_fwd"):
        jax.export.export(f, platforms=["cpu"])(x, t)
    checks = [jax.export.DisabledSafetyCheck.custom_call(n) for n in ("sigmax_ce_fwd", "sigmax_ce_fwd_grad")]
    exported = jax.export.export(f, platforms=["cpu"], disabled_checks=checks)(x, t)
    assert_close(exported.call(x, t), F.cross_entropy(torch.tensor(x), torch.tensor(t)), "float32")
    with sw.use_kernels(False):  # or without the kernel: a program any JAX can load
        plain = jax.export.export(jax.jit(lambda v, y: sigmax.cross_entropy(v, y) * 1.0), platforms=["cpu"])(x, t)
    assert "sigmax_ce" not in plain.mlir_module()


def test_traced_targets_outside_the_classes_give_nan_rows_as_the_jax_rows():
    # under jax.jit sigmax cannot check a traced target; the kernel never reads or writes outside a row
    x, _ = _data(4, 5)
    t = jnp.asarray([0, 1, 7, -3])
    f = jax.jit(lambda v, y: sigmax.cross_entropy(v, y, reduction="none"))
    g = jax.jit(jax.grad(lambda v, y: sigmax.cross_entropy(v, y, reduction="sum")))
    for fn in (f, g):
        got, want = np.asarray(fn(x, t)), np.asarray(_no_kernels(fn)(x, t))
        assert np.isnan(got[2:]).all() and np.isfinite(got[:2]).all()
        np.testing.assert_allclose(got[:2], want[:2], rtol=1e-5, atol=1e-7)


def test_half_precision_runs_the_kernel_in_float32_and_other_class_axes_keep_the_jax_rows():
    x, t = _data(6, 5)
    ref = F.cross_entropy(torch.tensor(x), torch.tensor(t))
    for v in (jnp.asarray(x, dtype=jnp.bfloat16), jnp.asarray(x, dtype=jnp.float16)):
        f = lambda z, y: sigmax.cross_entropy(z, y)
        assert "sigmax_ce_fwd" in _hlo(f, v, t)  # computed in float32 (sigmax's rule), returned in v's dtype
        out = jax.jit(f)(v, t)
        assert out.dtype == v.dtype
        assert_close(out, F.cross_entropy(torch.tensor(np.asarray(v.astype(jnp.float32))), torch.tensor(t)), v.dtype)
    g = lambda z, y: sigmax.cross_entropy(z, y, axis=0)
    assert "sigmax_ce" not in _hlo(g, jnp.asarray(x.T), t)
    assert_close(jax.jit(g)(jnp.asarray(x.T), t), ref, "float32")
