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


def test_activation_kernels_are_registered_for_adoption():
    for op in ("sigmoid", "log_sigmoid", "softplus", "softmax", "log_softmax", "logsumexp"):
        assert [n for n, _ in _dispatch.table(op)] == ["numpy-kernel", "torch-cpu-kernel"]
    x = np.array([[1.0, 2.0, 3.0]])
    out = _dispatch.call("softmax", x, -1, None, 1.0, None, None)
    np.testing.assert_allclose(out, sigmax.softmax(x))


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
        "cuda": "no implementation registered",
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
            "sigmax.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=0.1)")
    env = dict(os.environ, SIGMAX_TRACE_DISPATCH="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "sigmax dispatch: cross_entropy_indices -> generic" in res.stderr
    assert "label_smoothing given" in res.stderr


def test_is_traced():
    assert not _dispatch.is_traced(np.zeros(2), torch.zeros(2), None)
    seen = []
    torch.func.vmap(lambda z: seen.append(_dispatch.is_traced(z)) or z)(torch.zeros(2, 3))
    assert seen == [True]
    jax = pytest.importorskip("jax")
    jax.jit(lambda z: seen.append(_dispatch.is_traced(z)) or z)(jax.numpy.zeros(2))
    assert seen == [True, True]
