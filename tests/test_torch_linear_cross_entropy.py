"""sigmax.torch.linear_cross_entropy against plain PyTorch: values and gradients over every option.

The reference is ``F.cross_entropy(F.linear(hidden, weight, bias), target, ...)`` (plus the documented
z-loss and softcap terms, composed from plain ops), evaluated in float64 on the same input values, so
the comparison measures sigmax's own rounding in the dtype under test.
"""

import itertools

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F

from sigmax.testing import assert_close
from sigmax.torch import linear_cross_entropy
from sigmax.torch._reference import reference_cross_entropy

IGNORE = -100


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tensors are tiny: with 2 intra-op threads on a busy 2-core machine every op pays for
    # waking an OpenMP team (measured 150-380 ms per case against 14-20 ms on one thread).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference(h, W, y, *, bias=None, **opts):
    """Plain PyTorch, materializing the logits; the documented formulas for z_loss and softcap."""
    return reference_cross_entropy(F.linear(h, W, bias), y, **opts)


def make(n=37, d=16, v=53, dtype=torch.float32, *, bias=False, class_weight=False, seed=0, ignore_every=5,
         lead=None):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g).to(dtype)
    W = (torch.randn(v, d, generator=g) / d**0.5 * 3).to(dtype)  # logits of size ~3: a peaked softmax
    b = torch.randn(v, generator=g).to(dtype) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    if ignore_every:
        y[::ignore_every] = IGNORE
    cw = (torch.rand(v, generator=g) + 0.5) if class_weight else None
    if lead is not None:
        h, y = h.reshape(*lead, d), y.reshape(lead)
    return h, W, b, y, cw


def grads(fn, inputs, upstream):
    """Loss and gradients of ``fn(*inputs)`` for ``upstream`` (tensors needing no grad get None)."""
    leaves = [x.detach().clone().requires_grad_(True) if x is not None else None for x in inputs]
    out = fn(*leaves)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward(upstream.to(loss.dtype))
    return out, [None if x is None else x.grad for x in leaves]


def compare(dtype, *, chunk_size=8, factor=1.0, lead=None, **opts):
    bias, cw_on = opts.pop("bias", False), opts.pop("class_weight", False)
    h, W, b, y, cw = make(dtype=dtype, bias=bias, class_weight=cw_on, lead=lead)
    red = opts.get("reduction", "mean")
    g = torch.Generator().manual_seed(1)
    up = torch.randn(y.shape, generator=g) if red == "none" else torch.tensor(0.7)
    (loss), gs = grads(lambda h_, W_, b_: linear_cross_entropy(h_, W_, y, bias=b_, class_weight=cw,
                                                               chunk_size=chunk_size, **opts), (h, W, b), up)
    ref, rgs = grads(lambda h_, W_, b_: reference(h_, W_, y, bias=b_,
                                                  class_weight=None if cw is None else cw.double(), **opts),
                     (h.double(), W.double(), None if b is None else b.double()), up.double())
    assert loss.dtype == dtype
    assert_close(loss, ref, dtype, factor=factor, err_msg=f"loss {opts}")
    for name, a, e in zip(("hidden", "weight", "bias"), gs, rgs):
        if e is None:
            assert a is None
            continue
        assert a.dtype == dtype and a.shape == e.shape
        assert_close(a, e, dtype, factor=factor, err_msg=f"grad {name} {opts}")


OPTIONS = list(itertools.product(["mean", "sum", "none"], [0.0, 0.2], [False, True], [False, True],
                                 [0.0, 1e-3], [None, 2.5]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction,smoothing,class_weight,bias,z_loss,softcap", OPTIONS)
def test_matches_plain_pytorch_every_option(dtype, reduction, smoothing, class_weight, bias, z_loss, softcap):
    # float32: the loss and gradients are sums of up to V = 53 (softmax) and N = 37 (weight gradient)
    # rounded terms, so their error relative to the float64 reference is a few times the single-op
    # bound of the tolerance table; factor 4 covers it. bfloat16 is computed in float32 and rounded
    # once at the end, so the table's bfloat16 tolerance holds as it is.
    compare(dtype, factor=4.0 if dtype == torch.float32 else 1.0, reduction=reduction,
            label_smoothing=smoothing, class_weight=class_weight, bias=bias, z_loss=z_loss, softcap=softcap)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float16_and_float64(reduction):
    compare(torch.float16, reduction=reduction, label_smoothing=0.1, class_weight=True, bias=True)
    compare(torch.float64, reduction=reduction, label_smoothing=0.1, class_weight=True, bias=True, z_loss=1e-3)


@pytest.mark.parametrize("chunk_size", [1, 7, 37, 1000, None])
def test_any_chunk_size_gives_the_same_result(chunk_size):
    # 37 tokens: chunks of 7 leave a remainder of 2, 1000 is one chunk larger than the input.
    compare(torch.float32, chunk_size=chunk_size, factor=4.0, label_smoothing=0.1, class_weight=True, bias=True)


def test_leading_axes_are_tokens():
    compare(torch.float32, lead=(37, 1), factor=4.0, reduction="none")
    h, W, _, y, _ = make(n=36, lead=(4, 9))
    flat = linear_cross_entropy(h.reshape(-1, 16), W, y.reshape(-1), reduction="none")
    assert_close(linear_cross_entropy(h, W, y, reduction="none"), flat.reshape(4, 9))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_bfloat16_is_at_least_as_accurate_as_plain_pytorch(dtype):
    h, W, b, y, cw = make(n=256, d=64, v=1000, dtype=dtype, bias=True, class_weight=True)
    exact = reference(h.double(), W.double(), y, bias=b.double(), class_weight=cw.double(), label_smoothing=0.1)
    ours = linear_cross_entropy(h, W, y, bias=b, class_weight=cw, label_smoothing=0.1)
    plain = reference(h, W, y, bias=b, class_weight=cw.to(dtype), label_smoothing=0.1)
    assert abs(float(ours) - float(exact)) <= abs(float(plain) - float(exact)) + 1e-6


@pytest.mark.parametrize("reduction,expected", [("mean", float("nan")), ("sum", 0.0), ("none", 0.0)])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_every_token_ignored(reduction, expected, smoothing):
    h, W, b, y, cw = make(bias=True, class_weight=True)
    y = torch.full_like(y, IGNORE)
    hh, WW, bb = (x.clone().requires_grad_(True) for x in (h, W, b))
    loss = linear_cross_entropy(hh, WW, y, bias=bb, class_weight=cw, reduction=reduction,
                                label_smoothing=smoothing, z_loss=1e-3)
    ref = reference(h, W, y, bias=b, class_weight=cw, reduction=reduction, label_smoothing=smoothing)
    assert_close(loss, ref)
    assert_close(loss, torch.full_like(loss, expected))
    loss.sum().backward()
    for x in (hh, WW, bb):  # zero, never NaN, as PyTorch
        assert torch.equal(x.grad, torch.zeros_like(x.grad))


def test_ignored_rows_get_zero_gradient_and_custom_ignore_index():
    h, W, _, y, _ = make(ignore_every=0)
    y[3] = 7  # class 7 is ignored below
    hh = h.clone().requires_grad_(True)
    loss = linear_cross_entropy(hh, W, y, ignore_index=7, chunk_size=4)
    assert_close(loss, reference(h, W, y, ignore_index=7), factor=4.0)
    loss.backward()
    assert torch.equal(hh.grad[3], torch.zeros(16))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_return_lse_value_and_gradient(reduction):
    h, W, b, y, _ = make(bias=True)
    opts = {"reduction": reduction, "z_loss": 1e-3, "softcap": 4.0, "return_lse": True}

    def total(fn, *args):
        loss, lse = fn(*args)
        return loss.sum() + 0.3 * (lse**2).sum()  # a gradient through the log-sum-exp as well

    out, gs = grads(lambda *a: total(lambda h_, W_, b_: linear_cross_entropy(h_, W_, y, bias=b_, chunk_size=8,
                                                                             **opts), *a), (h, W, b), torch.tensor(1.0))
    ref, rgs = grads(lambda *a: total(lambda h_, W_, b_: reference(h_, W_, y, bias=b_, **opts), *a),
                     (h.double(), W.double(), b.double()), torch.tensor(1.0, dtype=torch.float64))
    assert_close(out, ref, factor=4.0)
    for a, e in zip(gs, rgs):
        assert_close(a, e, torch.float32, factor=4.0)
    _, lse = linear_cross_entropy(h.bfloat16(), W.bfloat16(), y, return_lse=True)
    assert lse.dtype == torch.float32 and lse.shape == y.shape  # the accumulator's precision is kept


def test_second_backward_with_retain_graph_recomputes():
    # mean/sum compute gradients during forward and hand them over (in place) in the first
    # backward; a second backward must recompute and give the same gradients, not scale them twice.
    h, W, b, y, cw = make(bias=True, class_weight=True)
    hh, WW, bb = (x.clone().requires_grad_(True) for x in (h, W, b))
    loss = linear_cross_entropy(hh, WW, y, bias=bb, class_weight=cw, label_smoothing=0.1, z_loss=1e-3)
    loss.backward(torch.tensor(2.0), retain_graph=True)
    first = [x.grad.clone() for x in (hh, WW, bb)]
    for x in (hh, WW, bb):
        x.grad = None
    loss.backward(torch.tensor(2.0))
    for x, f in zip((hh, WW, bb), first):
        assert_close(x.grad, f, factor=4.0)


def test_only_the_inputs_that_need_gradients_get_them():
    h, W, b, y, _ = make(bias=True)
    hh = h.clone().requires_grad_(True)
    linear_cross_entropy(hh, W, y, bias=b).backward()
    assert hh.grad is not None and W.grad is None and b.grad is None
    with torch.no_grad():
        assert_close(linear_cross_entropy(h, W, y, bias=b), reference(h, W, y, bias=b), factor=4.0)


def test_bad_input_is_named():
    h, W, b, y, _ = make(bias=True)
    with pytest.raises(ValueError, match="target holds class index 53"):
        linear_cross_entropy(h, W, torch.where(y == IGNORE, 53, y))
    with pytest.raises(TypeError, match="integer class indices"):
        linear_cross_entropy(h, W, y.float())
    with pytest.raises(ValueError, match="target is on meta"):
        linear_cross_entropy(h, W, y.to("meta"))
    with pytest.raises(ValueError, match="target has shape"):
        linear_cross_entropy(h, W, y[:-1])
    with pytest.raises(ValueError, match="weight must have shape"):
        linear_cross_entropy(h, W.t(), y)
    with pytest.raises(TypeError, match="same dtype"):
        linear_cross_entropy(h, W.double(), y)
    with pytest.raises(ValueError, match="bias must have shape"):
        linear_cross_entropy(h, W, y, bias=b[:-1])
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(h, W, y, reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        linear_cross_entropy(h, W, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="softcap"):
        linear_cross_entropy(h, W, y, softcap=0.0)
    with pytest.raises(ValueError, match="z_loss"):
        linear_cross_entropy(h, W, y, z_loss=-1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_cross_entropy(h, W, y, chunk_size=0)


@pytest.mark.slow  # about 30-60 s of one core; it runs in CI (nothing deselects slow tests)
def test_more_than_2_to_the_31_logits():
    # N x V = 65536 x 32769 = 2**31 + 2**16 logits (8 GiB in float32, never formed): every index
    # into the logits must be 64-bit. d = 2 keeps the inputs tiny; peak memory is a few chunks.
    # The reference must not form them either, so the weight has a structure that gives the exact
    # answer in O(N K): only K "live" classes (every 128th, and the last 5, whose logits sit at flat
    # indices past 2**31 in the last rows) have nonzero weights; every other logit is exactly 0.
    n, v, d = 2**16, 2**15 + 1, 2
    g = torch.Generator().manual_seed(0)
    live = torch.cat([torch.arange(0, v, 128), torch.arange(v - 5, v)]).unique()
    h = torch.randn(n, d, generator=g)
    W = torch.zeros(v, d)
    W[live] = 2 * torch.randn(len(live), d, generator=g)
    y = live[torch.randint(0, len(live), (n,), generator=g)]
    y[::4] = torch.randint(0, v, (n // 4,), generator=g)  # a quarter of the targets anywhere
    y[-5:] = torch.arange(v - 5, v)  # the very last logits are targets
    y[1::7] = IGNORE
    up = torch.rand(n, generator=g)  # a different upstream gradient per token
    hh, WW = h.clone().requires_grad_(True), W.clone().requires_grad_(True)
    loss, lse = linear_cross_entropy(hh, WW, y, reduction="none", return_lse=True)
    loss.backward(up)

    # exact, in float64: z_ij = h_i . W_j on live classes, 0 elsewhere
    h64, W64, u = h.double(), W.double(), up.double()
    valid = y != IGNORE
    yv = torch.where(valid, y, 0)
    z_live = h64 @ W64[live].T
    ref_lse = torch.logsumexp(torch.cat([z_live, torch.full((n, 1), float(v - len(live))).log()], 1), 1)
    ref_loss = torch.where(valid, ref_lse - (h64 * W64[yv]).sum(1), 0.0)
    gu = torch.where(valid, u, 0.0)
    p_live = torch.exp(z_live - ref_lse[:, None])
    p_dead = torch.exp(-ref_lse)  # the probability of every class with zero weight
    ref_gh = gu[:, None] * (p_live @ W64[live] - W64[yv])
    ref_gw = ((gu * p_dead)[:, None] * h64).sum(0).expand(v, d).clone()
    ref_gw[live] = (gu[:, None] * p_live).T @ h64
    ref_gw.index_add_(0, yv, -gu[:, None] * h64)

    assert_close(lse, ref_lse, torch.float32, factor=4.0)
    assert_close(loss, ref_loss, factor=4.0)
    assert_close(hh.grad, ref_gh, factor=4.0)
    # Each entry of the weight gradient sums 2**16 tokens' float32 contributions (in 512 chunks),
    # whose partial sums reach the size of the largest entries: the rounding is absolute, on the
    # scale of the largest entry (measured: 2.4e-6 of it at worst), so compare on that scale.
    scale = float(ref_gw.abs().max())
    assert_close(WW.grad / scale, ref_gw / scale, torch.float32, factor=4.0)
