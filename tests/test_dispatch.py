"""The one dispatch step (sigmax._dispatch): tables in a fixed order, reasons for every decline, tracing."""

import os
import subprocess
import sys

import numpy as np
import pytest

import sigmax
from sigmax import _dispatch, _kernels

torch = pytest.importorskip("torch")

LOSS_OPS = ["cross_entropy_indices", "cross_entropy_probs", "binary_cross_entropy", "bce_with_logits",
            "sigmoid_focal_loss", "softmax_focal_indices", "softmax_focal_probs"]


def _records(op, records):
    return [r for r in records if r.op == op]


@pytest.mark.parametrize("op", LOSS_OPS)
def test_tables_follow_the_fixed_order_and_end_generic(op):
    names = [name for name, _ in _dispatch.table(op)]
    assert names == [b for b in _dispatch.BACKENDS if b in names]
    assert names[-1] == "generic" and "jax" in names


ACTIVATION_OPS = ["sigmoid", "log_sigmoid", "softplus", "softmax", "log_softmax", "logsumexp"]


@pytest.mark.parametrize("op", ACTIVATION_OPS)
def test_activation_tables_are_the_kernels_then_generic(op):
    cuda = ["cuda"] if op in _dispatch.PLUGIN_OPS["cuda"] else []  # the Triton loader (a CUDA tensor loads it)
    assert [n for n, _ in _dispatch.table(op)] == ["numpy-kernel", "torch-cpu-kernel", *cuda, "generic"]
    x = np.array([[1.0, -2.0, 3.0]])
    with _dispatch.trace(echo=False) as records:
        out = getattr(sigmax, op)(x)
    with _kernels.use_kernels(False):
        ref = getattr(sigmax, op)(x)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    assert [r.op for r in records] == [op]  # one dispatch step per public call, nothing nested


def _one(op, fn, *args, **kwargs):
    with _dispatch.trace(echo=False) as records:
        fn(*args, **kwargs)
    (rec,) = _records(op, records)
    return rec


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="C kernels not built")
@pytest.mark.parametrize("op", ACTIVATION_OPS)
def test_activation_trace_kernel_paths(op):
    fn = getattr(sigmax, op)
    rec = _one(op, fn, np.zeros((4, 3)))
    assert rec.ran == "numpy-kernel" and rec.declined == ()
    rec = _one(op, fn, torch.zeros(4, 3))
    assert rec.ran == "torch-cpu-kernel" and rec.declined == (("numpy-kernel", "not a NumPy array"),)
    rec = _one(op, fn, torch.zeros(4, 3, dtype=torch.float64, requires_grad=True))
    if op in ("sigmoid", "log_sigmoid", "softplus"):  # autograd: the generic graph (exact gradients at 0)
        assert rec.ran == "generic" and dict(rec.declined)["torch-cpu-kernel"].startswith("autograd")
    else:  # the kernels' own autograd Function
        assert rec.ran == "torch-cpu-kernel"


@pytest.mark.parametrize("op", ACTIVATION_OPS)
def test_activation_trace_generic_paths(op):
    fn = getattr(sigmax, op)
    rec = _one(op, fn, np.zeros((4, 3), dtype=np.float16))
    assert rec.ran == "generic"
    half = dict(rec.declined)
    assert half["torch-cpu-kernel"] == "not a torch tensor"
    no_cuda = "not a CUDA tensor" if op in _dispatch.PLUGIN_OPS["cuda"] else "no implementation registered"
    assert half["cuda"] == no_cuda and half["jax"] == "no implementation registered"
    assert half["numpy-kernel"] == ("dtype float16 (kernels: float32, float64)" if _kernels.AVAILABLE
                                    else "kernels not built")
    with _kernels.use_kernels(False):
        rec = _one(op, fn, np.zeros((4, 3)))
        assert rec.ran == "generic"
        assert dict(rec.declined)["numpy-kernel"].startswith(("kernels off", "kernels not built"))
        rec = _one(op, fn, torch.zeros(4, 3))
        assert rec.ran == "generic"
        assert dict(rec.declined)["torch-cpu-kernel"].startswith(("kernels off", "kernels not built"))
    if _kernels.AVAILABLE:  # a transform: the differentiable generic graph, whose derivatives compose
        rec = _one(op, torch.func.grad(lambda z: fn(z).sum()), torch.zeros(4, 3, dtype=torch.float64))
        assert rec.ran == "generic" and "functorch" in dict(rec.declined)["torch-cpu-kernel"]
    jnp = pytest.importorskip("jax.numpy")
    rec = _one(op, fn, jnp.zeros((4, 3)))
    assert rec.ran == "generic"  # no jitted row for the activations: the generic code runs op by op
    assert dict(rec.declined) == {"numpy-kernel": "not a NumPy array" if _kernels.AVAILABLE else "kernels not built",
                                  "torch-cpu-kernel": "not a torch tensor" if _kernels.AVAILABLE
                                  else "kernels not built",
                                  "cuda": no_cuda, "jax": "no implementation registered"}


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="C kernels not built")
def test_activation_trace_reasons_for_options():
    x = np.zeros((4, 3))
    assert dict(_one("softmax", sigmax.softmax, x, where=x > 0).declined)["numpy-kernel"] == "a where= mask"
    assert dict(_one("log_softmax", sigmax.log_softmax, x, temperature=2.0).declined)["numpy-kernel"] == \
        "a temperature"
    assert dict(_one("logsumexp", sigmax.logsumexp, x, b=x).declined)["numpy-kernel"] == "where=, b= or return_sign"
    assert type(sigmax.logsumexp(np.zeros(3))) is np.float64  # the kernel row gives NumPy's 0-d scalar too
    assert type(sigmax.logsumexp(np.zeros(3), b=np.ones(3))) is np.float64


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="C kernels not built")
def test_trace_names_the_backend_and_the_reasons():
    x = np.zeros((2, 3))
    with _dispatch.trace(echo=False) as records:
        sigmax.cross_entropy(x, np.array([0, 1]))
        sigmax.cross_entropy(x, np.array([0, 1]), weight=np.ones(3))
        sigmax.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1]))
    fast, weighted, tensor = _records("cross_entropy_indices", records)
    assert fast.ran == "numpy-kernel" and fast.declined == ()
    assert weighted.ran == "generic"
    assert dict(weighted.declined) == {
        "numpy-kernel": "weight given (the kernel has no class weights)",
        "torch-cpu-kernel": "weight given (the kernel has no class weights)",
        "cuda": "not a CUDA tensor",
        "jax": "not a JAX array",
    }
    assert tensor.ran == "torch-cpu-kernel" and tensor.declined == (("numpy-kernel", "not a NumPy array"),)
    assert "cross_entropy_indices -> generic (declined: numpy-kernel: weight given" in str(weighted)


def test_trace_reasons_for_kernels_off_transforms_and_jax():
    x = torch.zeros(2, 3, dtype=torch.float64)
    y = torch.zeros(2, 3, dtype=torch.float64)
    with _dispatch.trace(echo=False) as records:
        with _kernels.use_kernels(False):
            sigmax.binary_cross_entropy_with_logits(x.numpy(), y.numpy())
        torch.func.grad(lambda z: sigmax.binary_cross_entropy_with_logits(z, y))(x)
    off, transformed = _records("bce_with_logits", records)
    assert off.ran == "generic" and dict(off.declined)["numpy-kernel"].startswith("kernels off")
    assert "functorch" in dict(transformed.declined)["torch-cpu-kernel"]
    jnp = pytest.importorskip("jax.numpy")
    with _dispatch.trace(echo=False) as records:
        sigmax.cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 1]))
    (rec,) = _records("cross_entropy_indices", records)
    assert rec.ran == "jax"


def test_declined_never_leaks_and_trace_blocks_nest():
    with _dispatch.trace(echo=False) as outer:
        with _dispatch.trace(echo=False) as inner:
            out = sigmax.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3))
        sigmax.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(3), weight=np.ones(3))
    assert type(out) is not _dispatch.Declined and np.isfinite(out)
    assert len(_records("bce_with_logits", inner)) == 1 and len(_records("bce_with_logits", outer)) == 1
    with pytest.raises(ValueError, match="unknown backend"):
        _dispatch.register("x", "gpu", lambda: None)


def test_every_backend_declining_is_an_error():
    _dispatch.register("_test_only_op", "jax", lambda: _dispatch.decline("never"))
    with pytest.raises(RuntimeError, match="every backend declined"):
        _dispatch.call("_test_only_op")


def test_environment_switch_prints_the_path():
    code = ("import numpy as np, sigmax; "
            "sigmax.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=0.1); "
            "sigmax.softmax(np.zeros((2, 3), np.float16)); sigmax.sigmoid(np.zeros(3, np.float32))")
    env = dict(os.environ, SIGMAX_TRACE_DISPATCH="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sigmax dispatch: cross_entropy_indices -> generic" in res.stderr
    assert "label_smoothing given" in res.stderr
    assert "sigmax dispatch: softmax -> generic (declined: numpy-kernel: " in res.stderr
    ran = "numpy-kernel" if _kernels.AVAILABLE else "generic"
    assert f"sigmax dispatch: sigmoid -> {ran}" in res.stderr


def test_is_traced():
    assert not _dispatch.is_traced(np.zeros(2), torch.zeros(2), None)
    seen = []
    torch.func.vmap(lambda z: seen.append(_dispatch.is_traced(z)) or z)(torch.zeros(2, 3))
    assert seen == [True]
    jax = pytest.importorskip("jax")
    jax.jit(lambda z: seen.append(_dispatch.is_traced(z)) or z)(jax.numpy.zeros(2))
    assert seen == [True, True]


def test_is_traced_sees_batched_tensors_and_skips_numbers():
    from torch._vmap_internals import _vmap  # PyTorch's batching of gradients (is_grads_batched=True)

    seen = []
    _vmap(lambda z: seen.append(_dispatch.is_traced(1.0, None, z)) or z)(torch.zeros(2, 3))
    assert seen == [True]
    assert not _dispatch.is_traced(1.0, 2, True, None)
    # the kernels decline batched tensors (no storage) with a reason, and the generic path runs
    with _dispatch.trace(echo=False) as records:
        _vmap(lambda z: sigmax.softmax(z, axis=-1))(torch.zeros(2, 3))
    (rec,) = _records("softmax", records)
    assert rec.ran == "generic"
    if _kernels.AVAILABLE:
        assert "batched" in dict(rec.declined)["torch-cpu-kernel"]


def test_kernel_backward_steps_aside_for_batched_gradients():
    # the forward runs the kernel's autograd Function; the backward then meets batched gradients
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 3, 1])
    with _dispatch.trace(echo=False) as records:
        loss = sigmax.cross_entropy(x, t, reduction="none")
    assert _records("cross_entropy_indices", records)[0].ran == ("torch-cpu-kernel" if _kernels.AVAILABLE
                                                                 else "generic")
    eye = torch.eye(3, dtype=torch.float64)
    (jac,) = torch.autograd.grad(loss, x, eye, is_grads_batched=True)
    xr = x.detach().clone().requires_grad_(True)
    ref = torch.autograd.functional.jacobian(lambda z: torch.nn.functional.cross_entropy(z, t, reduction="none"), xr)
    np.testing.assert_allclose(jac.numpy(), ref.numpy(), rtol=1e-12, atol=1e-15)


class _FakeCuda:
    """Stands for a CUDA tensor on a machine without one: what the Triton loader row looks at."""

    is_cuda = True


def test_a_cuda_tensor_loads_the_triton_rows_by_name(monkeypatch):
    """The 'cuda' row of the Triton operations is a loader until a CUDA tensor arrives: then it imports
    sigmax.torch.triton by name (no import from this floor up) and hands over to what that registered,
    or, without a GPU or Triton, declines for good with the reason."""
    op = "softmax"
    row = dict(_dispatch.table(op))["cuda"]
    if not getattr(row, "plugin_loader", False):
        pytest.skip("the Triton rows are registered already (a GPU with Triton)")
    assert type(row(np.zeros(3))) is _dispatch.Declined and row(np.zeros(3)).reason == "not a CUDA tensor"
    monkeypatch.setattr(_dispatch, "_IMPLS", {k: dict(v) for k, v in _dispatch._IMPLS.items()})
    monkeypatch.setattr(_dispatch, "_TABLES", dict(_dispatch._TABLES))
    out = row(_FakeCuda(), -1, None, 1.0, None, None)
    assert type(out) is _dispatch.Declined
    assert "registered no cuda implementation" in out.reason or "cannot be imported" in out.reason
    after = dict(_dispatch.table(op))["cuda"]
    assert not getattr(after, "plugin_loader", False)  # decided once: no import attempt per call
    assert after(_FakeCuda()).reason == out.reason


def test_a_plugin_that_cannot_be_imported_declines_for_good_with_the_reason(monkeypatch):
    """A CUDA tensor where the plugin module does not import (no Triton): the call and every later one
    decline with the import error, and the loader is not tried again."""
    op = "softmax"
    row = dict(_dispatch.table(op))["cuda"]
    if not getattr(row, "plugin_loader", False):
        pytest.skip("the Triton rows are registered already (a GPU with Triton)")
    monkeypatch.setattr(_dispatch, "_IMPLS", {k: dict(v) for k, v in _dispatch._IMPLS.items()})
    monkeypatch.setattr(_dispatch, "_TABLES", dict(_dispatch._TABLES))
    monkeypatch.setitem(_dispatch.PLUGINS, "cuda", "sigmax._no_such_plugin")
    out = row(_FakeCuda(), -1, None, 1.0, None, None)
    assert type(out) is _dispatch.Declined
    assert out.reason.startswith("sigmax._no_such_plugin cannot be imported (No module named")
    after = dict(_dispatch.table(op))["cuda"]
    assert not getattr(after, "plugin_loader", False) and after(_FakeCuda()).reason == out.reason
