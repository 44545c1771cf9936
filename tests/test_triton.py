"""The Triton kernels of sigmax.torch.triton against sigmax's CPU results and torch.nn.functional.

With CUDA the tests run on the GPU, in this process. Without one they run in Triton's interpreter on
CPU tensors, which works only if ``TRITON_INTERPRET=1`` is set *before Triton is imported* (Triton's
own ``tl.sum`` / ``tl.max`` are jitted when it is imported): so here a single test,
:func:`test_kernels_in_triton_s_interpreter`, runs this file again in a subprocess with the variable
set (``SIGMAX_TRITON_INNER=1``), and this process, whatever pytest-xdist worker it is, never sets it.
In the subprocess (or with ``TRITON_INTERPRET=1`` set from the start) the tests run directly.
Shapes are tiny and ragged (not multiples of the block sizes, which are 32 columns / 16 x 16 x 16
tiles under the interpreter, so several blocks are crossed).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="Triton is not installed (the gpu extra)")

import torch.nn.functional as F  # noqa: E402

import sigmax  # noqa: E402
from sigmax import _dispatch  # noqa: E402
from sigmax.torch import linear_cross_entropy as sx_lce  # noqa: E402
from sigmax.torch import triton as st  # noqa: E402
from sigmax.torch.triton import _register  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, inside the interpreter

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
INF = float("inf")
HERE = CUDA or st.interpreting()  # the kernels can run in this process


@pytest.fixture(autouse=True)
def _where_to_run(request):
    if request.node.name == "test_kernels_in_triton_s_interpreter":
        if HERE:
            pytest.skip("the kernels run in this process (CUDA, or TRITON_INTERPRET=1 from the start)")
    elif not HERE:
        pytest.skip("runs in a subprocess with TRITON_INTERPRET=1 (test_kernels_in_triton_s_interpreter)")


def test_kernels_in_triton_s_interpreter(request):
    env = dict(os.environ, TRITON_INTERPRET="1", SIGMAX_TRITON_INNER="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    args = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            "-W", "ignore::RuntimeWarning"]
    marks = request.config.getoption("markexpr", "")
    args += ["-m", marks] if marks else []
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-4000:]


def _randn(*shape, scale=1.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g, dtype=torch.float64) * scale).to(dtype).to(DEV)


def _close(a, b, tol=2e-6, rtol=1e-5):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=tol, rtol=rtol, equal_nan=True), float((a - b).abs().nan_to_num().max())


def _edge_rows():
    x = _randn(6, 130, scale=3.0)
    x[1] = -INF  # an empty row
    x[2, 5] = INF  # one +inf entry
    x[3, 7] = float("nan")
    x[4, 0] = 80.0  # a confident row
    x[5, ::2] = -INF
    return x


# --------------------------------------------------------------------------------------------
# softmax family
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_values_match_the_cpu_path_at_the_edges(name):
    x = _edge_rows()
    _close(getattr(st, name)(x, -1), getattr(sigmax, name)(x.cpu(), axis=-1))


def test_logsumexp_values_and_keepdim():
    x = _edge_rows()
    _close(st.logsumexp(x, -1), sigmax.logsumexp(x.cpu(), axis=-1))
    _close(st.logsumexp(x, -1, keepdim=True), sigmax.logsumexp(x.cpu(), axis=-1, keepdims=True))
    y = _randn(3, 5, 7)
    _close(st.logsumexp(y, None), torch.logsumexp(y.reshape(-1), 0))


def test_logsumexp_keeps_the_digits_of_a_confident_row():
    x = torch.full((2, 33), -30.0, device=DEV)
    x[:, 0] = 0.0
    want = math.log1p(32 * math.exp(-30.0))  # 3e-12: lost entirely by log(1 + tiny) in float32
    got = st.logsumexp(x, -1)
    assert abs(float(got[0]) - want) <= 1e-6 * want


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_temperature_mask_other_axis_and_gradients(name):
    x = _randn(4, 7, 33, seed=1).requires_grad_()
    where = _randn(4, 7, 33, seed=2) > -0.5
    where[0, 1] = False  # a fully masked row
    ours = getattr(st, name)(x, 1, temperature=0.7, where=where)
    ref = getattr(sigmax, name)(x, axis=1, temperature=0.7, where=where)
    _close(ours, ref)
    g = _randn(4, 7, 33, seed=3)
    finite = torch.isfinite(ref)
    ga, = torch.autograd.grad(ours, x, torch.where(finite, g, 0.0))
    gb, = torch.autograd.grad(ref, x, torch.where(finite, g, 0.0))
    _close(ga, gb, tol=1e-5)


def test_logsumexp_gradient_with_temperature():
    x = _randn(5, 130, seed=4).requires_grad_()
    ga, = torch.autograd.grad(st.logsumexp(x, -1, temperature=2.0).sum(), x)
    gb, = torch.autograd.grad(torch.logsumexp(x / 2.0, -1).sum(), x)
    _close(ga, gb)


def test_softmax_bfloat16_is_accumulated_in_float32():
    x = _randn(7, 130, scale=4.0, seed=5, dtype=torch.bfloat16)
    y = st.softmax(x, -1)
    assert y.dtype == torch.bfloat16
    _close(y, torch.softmax(x.float(), -1).to(torch.bfloat16), tol=4e-3, rtol=1e-2)
    _close(st.logsumexp(x, -1).float(), torch.logsumexp(x.float(), -1), tol=3e-2, rtol=1e-2)


# --------------------------------------------------------------------------------------------
# cross-entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", [{}, {"weight": True}, {"label_smoothing": 0.15},
                                  {"weight": True, "label_smoothing": 0.3}], ids=str)
def test_cross_entropy_indices_values_and_gradients(opts, reduction):
    x = _randn(7, 33, scale=2.0, seed=6).requires_grad_()
    y = torch.tensor([3, 0, -100, 32, 7, 7, 12], device=DEV)
    kw = dict(opts)
    if kw.pop("weight", False):
        kw["weight"] = torch.linspace(0.5, 2.0, 33, device=DEV)
    ours = st.cross_entropy(x, y, reduction=reduction, **kw)
    ref = F.cross_entropy(x, y, reduction=reduction, **kw)
    _close(ours, ref)
    g = _randn(*ref.shape, seed=7)
    _close(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_cross_entropy_probability_targets_and_other_axis():
    x = _randn(5, 130, 3, seed=8).requires_grad_()
    q = torch.softmax(_randn(5, 130, 3, seed=9), 1)
    w = torch.linspace(0.5, 2.0, 130, device=DEV)
    for kw in ({}, {"weight": w, "label_smoothing": 0.1}):
        ours = st.cross_entropy(x, q, dim=1, **kw)
        ref = F.cross_entropy(x, q, **kw)
        _close(ours, ref)
        _close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(ref, x)[0])
    y = torch.randint(0, 130, (5, 3), generator=torch.Generator().manual_seed(0)).to(DEV)
    _close(st.cross_entropy(x, y, dim=1, reduction="none"), F.cross_entropy(x, y, reduction="none"))


def test_cross_entropy_edges():
    x = torch.zeros(3, 33, device=DEV)
    assert torch.isnan(st.cross_entropy(x, torch.full((3,), -100, device=DEV)))  # 0/0, as PyTorch
    assert float(st.cross_entropy(x, torch.full((3,), -100, device=DEV), reduction="sum")) == 0.0
    conf = torch.full((1, 33), -25.0, device=DEV)
    conf[0, 4] = 0.0
    want = math.log1p(32 * math.exp(-25.0))  # the loss of a confident, right row: ~4.5e-10
    got = float(st.cross_entropy(conf, torch.tensor([4], device=DEV)))
    assert abs(got - want) <= 1e-5 * want
    xb = _randn(7, 33, seed=10, dtype=torch.bfloat16)
    y = torch.arange(7, device=DEV)
    out = st.cross_entropy(xb, y)
    assert out.dtype == torch.bfloat16
    _close(out.float(), F.cross_entropy(xb.float(), y), tol=2e-2, rtol=1e-2)


# --------------------------------------------------------------------------------------------
# binary cross-entropy with logits
# --------------------------------------------------------------------------------------------


def test_bce_limits_at_infinity():
    x = torch.tensor([INF, INF, -INF, -INF], device=DEV, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0], device=DEV)
    loss = st.binary_cross_entropy_with_logits(x, y, reduction="none")
    assert loss.tolist() == [0.0, INF, 0.0, INF]
    g, = torch.autograd.grad(loss[[0, 2]].sum(), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("opts", [{}, {"pos_weight": True}, {"weight": True}, {"weight": True, "pos_weight": True}],
                         ids=str)
def test_bce_values_and_gradients(opts, reduction):
    x = _randn(5, 130, scale=6.0, seed=11).requires_grad_()
    y = torch.rand(5, 130, generator=torch.Generator().manual_seed(1)).to(DEV).requires_grad_()
    kw = {}
    if opts.get("pos_weight"):
        kw["pos_weight"] = torch.linspace(0.5, 3.0, 130, device=DEV)
    if opts.get("weight"):
        kw["weight"] = torch.linspace(0.1, 1.0, 5, device=DEV)[:, None]
    ours = st.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    ref = F.binary_cross_entropy_with_logits(x, y, reduction=reduction, **kw)
    _close(ours, ref, tol=1e-5)
    g = _randn(*ref.shape, seed=12)
    for a, b in zip(torch.autograd.grad(ours, (x, y), g), torch.autograd.grad(ref, (x, y), g)):
        _close(a, b, tol=1e-5)


def test_bce_small_losses_keep_their_digits_and_bfloat16():
    x = torch.tensor([30.0, -30.0], device=DEV)
    got = st.binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0], device=DEV), reduction="none")
    _close(got, torch.full((2,), math.log1p(math.exp(-30.0)), dtype=torch.float64), tol=0, rtol=1e-6)
    xb = _randn(7, 33, seed=13, dtype=torch.bfloat16)
    yb = (xb > 0).to(torch.bfloat16)
    out = st.binary_cross_entropy_with_logits(xb, yb)
    assert out.dtype == torch.bfloat16
    _close(out.float(), F.binary_cross_entropy_with_logits(xb.float(), yb.float()), tol=1e-2, rtol=1e-2)


# --------------------------------------------------------------------------------------------
# fused linear cross-entropy
# --------------------------------------------------------------------------------------------


def _lce_ref(h, W, y, bias=None, class_weight=None, label_smoothing=0.0, reduction="mean", z_loss=0.0,
             softcap=None):
    z = F.linear(h.float(), W.float(), None if bias is None else bias.float())
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    loss = F.cross_entropy(z, y, weight=class_weight, label_smoothing=label_smoothing, reduction=reduction)
    if z_loss:
        valid = y != -100
        zl = z_loss * torch.logsumexp(z, -1) ** 2 * valid
        if reduction == "none":
            loss = loss + zl
        else:
            wt = valid.float() if class_weight is None else class_weight[y.clamp(min=0)] * valid
            loss = loss + (zl.sum() / wt.sum() if reduction == "mean" else zl.sum())
    return loss


def _lce_inputs(n=7, d=33, v=130, dtype=torch.float32, seed=14):
    h = _randn(n, d, seed=seed, dtype=dtype).requires_grad_()
    W = _randn(v, d, scale=0.3, seed=seed + 1, dtype=dtype).requires_grad_()
    y = torch.randint(0, v, (n,), generator=torch.Generator().manual_seed(seed)).to(DEV)
    y[min(3, n - 1)] = -100
    return h, W, y


LCE_CASES = [
    ("mean", {}),
    ("none", {"bias": True, "class_weight": True, "label_smoothing": 0.2, "softcap": 5.0}),
    ("sum", {"z_loss": 1e-2, "label_smoothing": 0.1}),
]
LCE_SLOW = [(r, o) for r in ("mean", "sum", "none") for o in
            ({"bias": True}, {"class_weight": True}, {"softcap": 3.0}, {"z_loss": 1e-2}, {"label_smoothing": 1.0})]


def _check_lce(reduction, opts):
    h, W, y = _lce_inputs()
    kw = {k: v for k, v in opts.items() if k not in ("bias", "class_weight")}
    inputs = [h, W]
    if opts.get("bias"):
        kw["bias"] = _randn(130, seed=20).requires_grad_()
        inputs.append(kw["bias"])
    if opts.get("class_weight"):
        kw["class_weight"] = torch.linspace(0.5, 2.0, 130, device=DEV)
    ours = st.linear_cross_entropy(h, W, y, reduction=reduction, **kw)
    ref = _lce_ref(h, W, y, reduction=reduction, **kw)
    _close(ours, ref, tol=5e-6)
    g = _randn(*ref.shape, seed=21)  # per-token upstream gradients for "none"
    for a, b in zip(torch.autograd.grad(ours, inputs, g), torch.autograd.grad(ref, inputs, g)):
        _close(a, b, tol=5e-6)


@pytest.mark.parametrize("reduction,opts", LCE_CASES, ids=str)
def test_linear_cross_entropy_values_and_gradients(reduction, opts):
    _check_lce(reduction, opts)


@pytest.mark.slow
@pytest.mark.parametrize("reduction,opts", LCE_SLOW, ids=str)
def test_linear_cross_entropy_every_option(reduction, opts):
    _check_lce(reduction, opts)


def test_linear_cross_entropy_impl_keyword_and_lse_gradient():
    h, W, y = _lce_inputs(n=5, d=20, v=70, seed=30)
    h3, y2 = h.reshape(1, 5, 20), y.reshape(1, 5)
    a, lse_a = sx_lce(h3, W, y2, impl="triton", return_lse=True, label_smoothing=0.1)
    b, lse_b = sx_lce(h3, W, y2, impl="torch", return_lse=True, label_smoothing=0.1)
    _close(a, b, tol=5e-6)
    _close(lse_a, lse_b, tol=5e-6)
    ga = torch.autograd.grad(a + lse_a.sum(), (h, W))
    gb = torch.autograd.grad(b + lse_b.sum(), (h, W))
    for u, v in zip(ga, gb):
        _close(u, v, tol=5e-6)
    with pytest.raises(ValueError, match="impl must be one of"):
        sx_lce(h, W, y, impl="cuda")


def test_linear_cross_entropy_bfloat16_accumulates_in_float32():
    h, W, y = _lce_inputs(n=9, d=40, v=100, dtype=torch.bfloat16, seed=40)
    loss = st.linear_cross_entropy(h, W, y)
    assert loss.dtype == torch.bfloat16
    ref = _lce_ref(h, W, y)  # float32 from the same bfloat16 numbers
    _close(loss.float(), ref, tol=1e-2, rtol=1e-2)
    gh, gw = torch.autograd.grad(loss, (h, W))
    rh, rw = torch.autograd.grad(ref, (h, W))
    _close(gh.float(), rh, tol=2e-3, rtol=2e-2)
    _close(gw.float(), rw, tol=2e-3, rtol=2e-2)


def test_linear_cross_entropy_grad_filter_bound():
    h, W, y = _lce_inputs(n=6, d=17, v=50, seed=50)
    exact = torch.autograd.grad(st.linear_cross_entropy(h, W, y), (h, W))
    filt = torch.autograd.grad(st.linear_cross_entropy(h, W, y, grad_filter=1e-30), (h, W))
    for a, b in zip(exact, filt):  # a tiny threshold skips nothing
        _close(a, b, tol=1e-7)


@pytest.mark.skipif(CUDA, reason="the CPU error is only raised without a GPU")
def test_triton_on_a_cpu_tensor_without_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    h, W, y = _lce_inputs(n=3, d=16, v=20)
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        sx_lce(h, W, y, impl="triton")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        st.softmax(h)
    assert sx_lce(h, W, y).shape == ()  # impl="auto" on the CPU: the chunked path


# --------------------------------------------------------------------------------------------
# dispatch: the cuda rows
# --------------------------------------------------------------------------------------------


def test_cuda_rows_are_registered_with_a_gpu_and_decline_cpu_tensors():
    for op in _register.OPS:  # registered by importing sigmax.torch where Triton and CUDA are present
        row = dict(_dispatch.table(op))["cuda"]  # a loader that imports this package on a CUDA tensor ...
        assert (not getattr(row, "plugin_loader", False)) == CUDA, op  # ... replaced by the kernels on a GPU
    assert _register.why_not(torch.zeros(3)) in ("not a CUDA tensor", None if CUDA else "")
    assert _register.why_not(np.zeros(3)) == "not a torch tensor"


def test_cuda_rows_agree_with_the_generic_rows(monkeypatch):
    monkeypatch.setattr(_register, "ACCEPT_INTERPRETED", True)
    x = _randn(5, 33, seed=60)
    rows = {op: dict(_dispatch.table(op), cuda=fn) for op, fn in _register.OPS.items()}
    for op in ("softmax", "log_softmax"):
        _close(rows[op]["cuda"](x, 0, None, 2.0, None, None), rows[op]["generic"](x, 0, None, 2.0, None, None))
    _close(rows["logsumexp"]["cuda"](x, -1, None, None, False, False, None, None),
           sigmax.logsumexp(x, axis=-1))
    assert type(rows["logsumexp"]["cuda"](x, -1, None, x, False, False, None, None)) is _dispatch.Declined
    y = torch.tensor([1, 0, 4, -100, 32], device=DEV)
    ce = rows["cross_entropy_indices"]["cuda"](torch, x, y, None, ax=1, ignore_index=-100, smoothing=0.1,
                                               reduction="mean", from_logits=True)
    _close(ce, F.cross_entropy(x, y, label_smoothing=0.1))
    t = torch.rand(5, 33, generator=torch.Generator().manual_seed(2)).to(DEV)
    _close(rows["bce_with_logits"]["cuda"](torch, x, t, None, None, reduction="sum"),
           F.binary_cross_entropy_with_logits(x, t, reduction="sum"), tol=1e-5)
    if CUDA:  # on a GPU the public functions reach the kernels by themselves
        with _dispatch.trace(echo=False) as records:
            sigmax.softmax(x, axis=-1)
        assert records[-1].ran == "cuda"
