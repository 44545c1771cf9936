"""sigmax under PyTorch's function transforms and ``torch.compile`` (issue 14, item 4).

* ``torch.func``: ``vmap``, ``grad``, ``jacrev``, ``jacfwd``, ``jvp`` and ``functional_call`` through every
  public function and loss give what the same transforms give over ``torch.nn.functional`` (per-sample
  gradients of a tiny model by ``vmap(grad(...))`` over ``sigmax.cross_entropy`` included);
* PyTorch's batched gradcheck (``check_batched_grad=True``, batched forward gradients too) passes for
  every function, with the compiled kernels on: their autograd Functions' backward passes see batched
  gradients, which have no data pointer, and step aside to out-of-place torch operations;
* the checks that read values step aside for batched and traced tensors (no ``.item()``);
* ``torch.compile(fullgraph=True)`` over a training step with each loss: no graph break, eager numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vmap  # noqa: E402

import sigmax  # noqa: E402
from sigmax import _dispatch, _kernels  # noqa: E402

D = torch.float64
GEN = torch.Generator().manual_seed(0)


def _r(*shape):
    return torch.randn(*shape, dtype=D, generator=GEN)


T = torch.tensor([0, 2, 1, 2])
T_IGN = torch.tensor([0, -100, 1, 2])
W = torch.tensor([1.0, 0.5, 2.0], dtype=D)
PW = torch.tensor([1.0, 3.0, 0.5], dtype=D)
Y = torch.rand(4, 3, dtype=D, generator=GEN)
Y01 = (torch.rand(4, 3, generator=GEN) > 0.5).to(D)
PT = torch.softmax(_r(4, 3), 1)
T3 = torch.tensor([[0, 1], [2, 0]])


def _tv_sigmoid_focal(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, verbatim (torchvision is not a dependency)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _softmax_focal(x, t, alpha=None, gamma=2.0, reduction="none", ignore_index=-100):
    """-alpha_t (1 - p_t)^gamma log p_t, from torch's log_softmax."""
    logp = torch.log_softmax(x, 1)
    valid = t != ignore_index
    safe = torch.where(valid, t, 0)
    lp = logp.gather(1, safe[:, None])[:, 0]
    per = -lp * (1 - lp.exp()) ** gamma
    if alpha is not None:
        per = per * torch.as_tensor(alpha, dtype=x.dtype)[safe]
    per = torch.where(valid, per, 0.0)
    return per.sum() / valid.sum() if reduction == "mean" else per.sum() if reduction == "sum" else per


def _softmax_focal_probs(x, q, gamma=2.0):
    logp = torch.log_softmax(x, 1)
    return -(q * (1 - logp.exp()) ** gamma * logp).sum(1)


#: name -> (sigmax function of one tensor, the same built from torch, an input)
FUNCTIONS = {
    "sigmoid": (sigmax.sigmoid, torch.sigmoid, lambda: _r(4, 3)),
    "log_sigmoid": (sigmax.log_sigmoid, F.logsigmoid, lambda: _r(4, 3)),
    "softplus": (sigmax.softplus, F.softplus, lambda: _r(4, 3)),
    "logit": (sigmax.logit, torch.logit, lambda: torch.rand(4, 3, dtype=D, generator=GEN) * 0.9 + 0.05),
    "softmax": (lambda x: sigmax.softmax(x, axis=1), lambda x: torch.softmax(x, 1), lambda: _r(4, 3)),
    "log_softmax": (lambda x: sigmax.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, 0), lambda: _r(4, 3)),
    "logsumexp": (lambda x: sigmax.logsumexp(x, axis=1), lambda x: torch.logsumexp(x, 1), lambda: _r(4, 3)),
    "binary_to_two_class": (sigmax.binary_to_two_class, lambda z: torch.stack([torch.zeros_like(z), z], -1),
                            lambda: _r(4)),
    "two_class_to_binary": (sigmax.two_class_to_binary, lambda x: x[..., 1] - x[..., 0], lambda: _r(4, 2)),
    "nll_loss": (lambda x: sigmax.nll_loss(x, T), lambda x: F.nll_loss(x, T), lambda: _r(4, 3)),
    "nll_loss_weight_ignore": (lambda x: sigmax.nll_loss(x, T_IGN, weight=W, reduction="sum"),
                               lambda x: F.nll_loss(x, T_IGN, weight=W, reduction="sum"), lambda: _r(4, 3)),
    "cross_entropy": (lambda x: sigmax.cross_entropy(x, T), lambda x: F.cross_entropy(x, T), lambda: _r(4, 3)),
    "cross_entropy_none": (lambda x: sigmax.cross_entropy(x, T, reduction="none"),
                           lambda x: F.cross_entropy(x, T, reduction="none"), lambda: _r(4, 3)),
    "cross_entropy_weight_ignore_smoothing": (
        lambda x: sigmax.cross_entropy(x, T_IGN, weight=W, label_smoothing=0.1),
        lambda x: F.cross_entropy(x, T_IGN, weight=W, label_smoothing=0.1), lambda: _r(4, 3)),
    "cross_entropy_probs": (lambda x: sigmax.cross_entropy(x, PT, weight=W, label_smoothing=0.2),
                            lambda x: F.cross_entropy(x, PT, weight=W, label_smoothing=0.2), lambda: _r(4, 3)),
    "cross_entropy_kd": (lambda x: sigmax.cross_entropy(x, T3, reduction="sum"),  # classes on axis 1 of 3
                         lambda x: F.cross_entropy(x, T3, reduction="sum"), lambda: _r(2, 3, 2)),
    "cross_entropy_last_axis": (lambda x: sigmax.cross_entropy(x, T3, axis=-1),
                                lambda x: F.cross_entropy(x.movedim(-1, 1), T3), lambda: _r(2, 2, 3)),
    "binary_cross_entropy": (lambda p: sigmax.binary_cross_entropy(p, Y, weight=W),
                             lambda p: F.binary_cross_entropy(p, Y, weight=W),
                             lambda: torch.rand(4, 3, dtype=D, generator=GEN) * 0.9 + 0.05),
    "bce_with_logits": (lambda x: sigmax.binary_cross_entropy_with_logits(x, Y),
                        lambda x: F.binary_cross_entropy_with_logits(x, Y), lambda: _r(4, 3)),
    "bce_with_logits_none": (lambda x: sigmax.binary_cross_entropy_with_logits(x, Y01, reduction="none"),
                             lambda x: F.binary_cross_entropy_with_logits(x, Y01, reduction="none"),
                             lambda: _r(4, 3)),
    "bce_with_logits_pos_weight": (
        lambda x: sigmax.binary_cross_entropy_with_logits(x, Y, weight=W, pos_weight=PW, reduction="sum"),
        lambda x: F.binary_cross_entropy_with_logits(x, Y, weight=W, pos_weight=PW, reduction="sum"),
        lambda: _r(4, 3)),
    "sigmoid_focal_loss": (lambda x: sigmax.sigmoid_focal_loss(x, Y01), lambda x: _tv_sigmoid_focal(x, Y01),
                           lambda: _r(4, 3)),
    "softmax_focal_loss": (lambda x: sigmax.softmax_focal_loss(x, T_IGN, alpha=[1.0, 0.5, 2.0], reduction="mean"),
                           lambda x: _softmax_focal(x, T_IGN, alpha=[1.0, 0.5, 2.0], reduction="mean"),
                           lambda: _r(4, 3)),
    "softmax_focal_loss_probs": (lambda x: sigmax.softmax_focal_loss(x, PT), lambda x: _softmax_focal_probs(x, PT),
                                 lambda: _r(4, 3)),
}
INPUTS = {name: make() for name, (_, _, make) in FUNCTIONS.items()}


def _close(a, b):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# PyTorch's batched gradcheck: backward passes over batched gradients, batched forward gradients
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_batched_gradcheck(name):
    fn = FUNCTIONS[name][0]
    x = INPUTS[name].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,), check_batched_grad=True, check_forward_ad=True,
                                    check_batched_forward_grad=True)


#: the functions whose autograd Functions (the kernels' own backward) run on these inputs
KERNEL_BACKWARDS = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_none",
                    "cross_entropy_kd", "cross_entropy_last_axis", "bce_with_logits", "bce_with_logits_none",
                    "bce_with_logits_pos_weight", "softmax_focal_loss"]


@pytest.mark.parametrize("name", KERNEL_BACKWARDS)
def test_batched_gradgradcheck_through_the_kernels_backward(name):
    fn = FUNCTIONS[name][0]
    x = INPUTS[name].clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_batched_grad=True)


def test_vectorized_autograd_functional_jacobian_and_hessian():
    # vectorize=True runs sigmax's backward passes (reverse mode) and its forward (forward mode) under
    # PyTorch's batching: no data pointer, no .item(), no in-place product with a batched tensor
    for name in ("cross_entropy", "bce_with_logits", "log_softmax", "softmax_focal_loss"):
        fn, ref, _ = FUNCTIONS[name]
        x = INPUTS[name]
        for strategy in ("reverse-mode", "forward-mode"):
            _close(torch.autograd.functional.jacobian(fn, x, vectorize=True, strategy=strategy),
                   torch.autograd.functional.jacobian(ref, x, vectorize=True, strategy=strategy))
    # PyTorch's own batching (torch._vmap_internals, what batched gradients use) over the forward,
    # a batched weight included: the checks and the in-place torch path step aside
    from torch._vmap_internals import _vmap

    xs = torch.stack([INPUTS["bce_with_logits"], INPUTS["cross_entropy"]])
    for name in ("cross_entropy", "bce_with_logits_pos_weight", "softmax", "sigmoid_focal_loss"):
        fn, ref, _ = FUNCTIONS[name]
        _close(_vmap(fn)(xs), torch.stack([ref(v) for v in xs]))
    ws = torch.stack([torch.ones(4, 3, dtype=D), Y])
    x = INPUTS["bce_with_logits"].clone().requires_grad_(True)
    _close(_vmap(lambda w: sigmax.binary_cross_entropy_with_logits(x, Y, weight=w))(ws),
           torch.stack([F.binary_cross_entropy_with_logits(x, Y, weight=w) for w in ws]))
    for name in ("cross_entropy", "bce_with_logits_pos_weight"):
        fn, ref, _ = FUNCTIONS[name]
        _close(torch.autograd.functional.hessian(fn, INPUTS[name], vectorize=True),
               torch.autograd.functional.hessian(ref, INPUTS[name], vectorize=True))


# --------------------------------------------------------------------------------------------
# torch.func: vmap, grad, jacrev, jacfwd, jvp against the same transforms over torch.nn.functional
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "generic"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_torch_func_transforms_match_pytorch(name, kernels):
    fn, ref, make = FUNCTIONS[name]
    x = INPUTS[name]
    xs = torch.stack([x, make()])  # a batch of two inputs
    tangent = torch.ones_like(x) * 0.3 + x * 0.1

    def total(f):
        return lambda z: f(z).sum()

    with _kernels.use_kernels(kernels):
        _close(vmap(fn)(xs), vmap(ref)(xs))
        _close(grad(total(fn))(x), grad(total(ref))(x))
        _close(vmap(grad(total(fn)))(xs), vmap(grad(total(ref)))(xs))
        _close(jacrev(fn)(x), jacrev(ref)(x))
        _close(jacfwd(fn)(x), jacfwd(ref)(x))
        for a, b in zip(jvp(fn, (x,), (tangent,)), jvp(ref, (x,), (tangent,))):
            _close(a, b)
        _close(vmap(fn, in_dims=1, out_dims=0)(xs.movedim(0, 1)), vmap(ref)(xs))  # the batch on axis 1
    # and the eager value and gradient, kernels on, are PyTorch's too
    xr = x.clone().requires_grad_(True)
    _close(fn(xr), ref(x))
    _close(torch.autograd.grad(fn(xr).sum(), xr)[0], grad(total(ref))(x))


def test_transforms_run_the_generic_path_and_read_no_values():
    x, t = INPUTS["cross_entropy"], T
    with _dispatch.trace(echo=False) as records:
        vmap(grad(lambda z, tt: sigmax.cross_entropy(z[None], tt[None])))(x, t)
        jacfwd(lambda z: sigmax.binary_cross_entropy_with_logits(z, Y))(x)
        jacrev(lambda z: sigmax.softmax(z, axis=1))(x)
    assert records and all(r.ran == "generic" for r in records)
    # out-of-range indices are not detected under a transform (that would read values), but still
    # are in eager mode
    vmap(lambda z: sigmax.cross_entropy(z[None], torch.tensor([1])))(x)
    with pytest.raises(ValueError, match="outside"):
        sigmax.cross_entropy(x, torch.tensor([0, 1, 2, 7]))


def test_checks_step_aside_for_batched_targets_too():
    # targets batched, input not: the checks see batched tensors and must not read them
    xs = INPUTS["bce_with_logits"]
    ys = torch.stack([Y, Y01])
    got = vmap(lambda y: sigmax.binary_cross_entropy_with_logits(xs, y), in_dims=0)(ys)
    ref = torch.stack([F.binary_cross_entropy_with_logits(xs, y) for y in ys])
    _close(got, ref)
    ts = torch.stack([T, T_IGN])
    got = vmap(lambda t: sigmax.cross_entropy(xs, t))(ts)
    _close(got, torch.stack([F.cross_entropy(xs, t) for t in ts]))
    ws = torch.stack([torch.ones(4, 3, dtype=D), Y])  # a batched weight: nothing multiplied into it in place
    got = vmap(lambda w: sigmax.binary_cross_entropy_with_logits(xs, Y, weight=w, pos_weight=PW))(ws)
    _close(got, torch.stack([F.binary_cross_entropy_with_logits(xs, Y, weight=w, pos_weight=PW) for w in ws]))
    qs = torch.stack([PT, torch.softmax(PT * 3, 1)])
    got = vmap(lambda q: sigmax.softmax_focal_loss(xs, q, gamma=0.0, reduction="mean"))(qs)
    _close(got, torch.stack([F.cross_entropy(xs, q) for q in qs]))


# --------------------------------------------------------------------------------------------
# per-sample gradients of a tiny model: vmap(grad(...)) with torch.func.functional_call
# --------------------------------------------------------------------------------------------

L, DIN, C = 3, 5, 4  # per sample: a sequence of L positions, DIN features, C classes


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(DIN, 6)
        self.out = torch.nn.Linear(6, C)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


_GEN2 = torch.Generator().manual_seed(3)
NB = 5
XB = torch.randn(NB, L, DIN, dtype=D, generator=_GEN2)
TB = torch.randint(0, C, (NB, L), generator=_GEN2)
TB[1, 0] = TB[3, 2] = -100  # some ignored positions (never a whole sample: its mean would be 0/0)
QB = torch.softmax(torch.randn(NB, L, C, dtype=D, generator=_GEN2), -1)
YB = (torch.rand(NB, L, C, generator=_GEN2) > 0.5).to(D)
WC = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=D)
PWC = torch.tensor([2.0, 1.0, 0.5, 3.0], dtype=D)

#: name -> (loss(logits (L, C), target), reference loss, batched targets)
PER_SAMPLE = {
    "cross_entropy": (lambda o, t: sigmax.cross_entropy(o, t), lambda o, t: F.cross_entropy(o, t), TB),
    "cross_entropy_weight_ignore_smoothing": (
        lambda o, t: sigmax.cross_entropy(o, t, weight=WC, ignore_index=-100, label_smoothing=0.1),
        lambda o, t: F.cross_entropy(o, t, weight=WC, ignore_index=-100, label_smoothing=0.1), TB),
    "cross_entropy_probs": (lambda o, q: sigmax.cross_entropy(o, q, label_smoothing=0.05),
                            lambda o, q: F.cross_entropy(o, q, label_smoothing=0.05), QB),
    "cross_entropy_sequence_axis": (  # (1, L, C) logits, classes last: no transpose
        lambda o, t: sigmax.cross_entropy(o[None], t[None], axis=-1),
        lambda o, t: F.cross_entropy(o[None].movedim(-1, 1), t[None]), TB),
    "nll_loss": (lambda o, t: sigmax.nll_loss(sigmax.log_softmax(o, axis=1), t, weight=WC),
                 lambda o, t: F.nll_loss(F.log_softmax(o, 1), t, weight=WC), TB),
    "binary_cross_entropy": (lambda o, y: sigmax.binary_cross_entropy(sigmax.sigmoid(o), y),
                             lambda o, y: F.binary_cross_entropy(torch.sigmoid(o), y), YB),
    "bce_with_logits": (lambda o, y: sigmax.binary_cross_entropy_with_logits(o, y),
                        lambda o, y: F.binary_cross_entropy_with_logits(o, y), YB),
    "bce_with_logits_pos_weight": (
        lambda o, y: sigmax.binary_cross_entropy_with_logits(o, y, weight=WC, pos_weight=PWC),
        lambda o, y: F.binary_cross_entropy_with_logits(o, y, weight=WC, pos_weight=PWC), YB),
    "sigmoid_focal_loss": (lambda o, y: sigmax.sigmoid_focal_loss(o, y, reduction="mean"),
                           lambda o, y: _tv_sigmoid_focal(o, y, reduction="mean"), YB),
    "softmax_focal_loss": (lambda o, t: sigmax.softmax_focal_loss(o, t, alpha=0.5, reduction="sum"),
                           lambda o, t: _softmax_focal(o, t, alpha=[0.5] * C, reduction="sum"), TB),
}


def _per_sample_grads(model, loss, targets):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def compute(p, x, t):
        return loss(functional_call(model, p, (x,)), t)

    return vmap(grad(compute), in_dims=(None, 0, 0))(params, XB, targets)


@pytest.mark.parametrize("name", sorted(PER_SAMPLE))
def test_per_sample_gradients_equal_pytorchs(name):
    loss, ref, targets = PER_SAMPLE[name]
    torch.manual_seed(0)
    model = _Tiny().to(D)
    got = _per_sample_grads(model, loss, targets)
    want = _per_sample_grads(model, ref, targets)
    assert got.keys() == want.keys()
    for k in got:
        _close(got[k], want[k])
    # and a loop of ordinary backward passes (the kernels' own backward, where they apply) agrees
    for i in (0, 1):
        model.zero_grad()
        loss(model(XB[i]), targets[i]).backward()
        for k, prm in model.named_parameters():
            _close(got[k][i], prm.grad)


def test_jacfwd_and_jvp_through_functional_call():
    torch.manual_seed(0)
    model = _Tiny().to(D)
    params = {k: v.detach() for k, v in model.named_parameters()}
    for name in ("cross_entropy_weight_ignore_smoothing", "bce_with_logits_pos_weight", "softmax_focal_loss"):
        loss, ref, targets = PER_SAMPLE[name]
        got = jacfwd(lambda p: loss(functional_call(model, p, (XB[1],)), targets[1]))(params)
        want = jacfwd(lambda p: ref(functional_call(model, p, (XB[1],)), targets[1]))(params)
        for k in got:
            _close(got[k], want[k])


# --------------------------------------------------------------------------------------------
# torch.compile(fullgraph=True) over a training step: no graph break, the eager numbers
# --------------------------------------------------------------------------------------------

_XC = torch.randn(8, 5, generator=_GEN2)
_TC = torch.randint(0, 3, (8,), generator=_GEN2)
_YC = torch.rand(8, 3, generator=_GEN2)
STEP_LOSSES = {
    "cross_entropy": lambda o: sigmax.cross_entropy(o, _TC),
    "bce_with_logits": lambda o: sigmax.binary_cross_entropy_with_logits(o, _YC),
    "cross_entropy_weight_smoothing": lambda o: sigmax.cross_entropy(o, _TC, weight=torch.tensor([1.0, 0.5, 2.0]),
                                                                     label_smoothing=0.1),
    "cross_entropy_probs": lambda o: sigmax.cross_entropy(o, torch.softmax(_YC, 1)),
    "nll_loss": lambda o: sigmax.nll_loss(sigmax.log_softmax(o, axis=1), _TC),
    "binary_cross_entropy": lambda o: sigmax.binary_cross_entropy(sigmax.sigmoid(o), _YC),
    "bce_with_logits_pos_weight": lambda o: sigmax.binary_cross_entropy_with_logits(
        o, _YC, pos_weight=torch.tensor([1.0, 2.0, 3.0])),
    "sigmoid_focal_loss": lambda o: sigmax.sigmoid_focal_loss(o, (_YC > 0.5).float(), reduction="mean"),
    "softmax_focal_loss": lambda o: sigmax.softmax_focal_loss(o, _TC, reduction="mean"),
}
_FAST = ("cross_entropy", "bce_with_logits")


def _train(loss_fn, compiled, backend="aot_eager", steps=3):
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 3)

    def step(x):
        loss = loss_fn(model(x))
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for prm, g in zip(model.parameters(), grads):
                prm.sub_(0.1 * g)  # SGD
        return loss.detach()

    if compiled:
        torch._dynamo.reset()
        step = torch.compile(step, fullgraph=True, dynamic=False, backend=backend)  # a break raises
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dynamo's notes on functools caches in array_api_compat
            with torch._dynamo.config.patch(trace_autograd_ops=True):  # autograd.grad in the graph
                losses = [step(_XC) for _ in range(steps)]
    else:
        losses = [step(_XC) for _ in range(steps)]
    return torch.stack(losses), model.weight.detach().clone()


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in _FAST else pytest.mark.slow)
                                  for n in STEP_LOSSES])
def test_compiled_training_step_has_no_graph_break_and_eager_numbers(name):
    eager_losses, eager_w = _train(STEP_LOSSES[name], compiled=False)
    losses, w = _train(STEP_LOSSES[name], compiled=True)
    torch.testing.assert_close(losses, eager_losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, eager_w, rtol=1e-5, atol=1e-6)


def test_compiled_activations_in_one_graph():
    def f(x):
        p = sigmax.sigmoid(x)
        return (sigmax.log_sigmoid(x) + sigmax.softplus(x) + sigmax.logit(p) + sigmax.softmax(x, axis=1)
                + sigmax.log_softmax(x, axis=0, temperature=2.0) + sigmax.logsumexp(x, axis=1, keepdims=True)
                + sigmax.two_class_to_binary(sigmax.binary_to_two_class(x)))

    x = torch.randn(4, 3, generator=_GEN2)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explained = torch._dynamo.explain(f)(x)
        got = torch.compile(f, fullgraph=True, dynamic=False, backend="aot_eager")(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    torch.testing.assert_close(got, f(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compiled_training_step_with_inductor():
    eager_losses, eager_w = _train(STEP_LOSSES["cross_entropy"], compiled=False)
    losses, w = _train(STEP_LOSSES["cross_entropy"], compiled=True, backend="inductor")
    torch.testing.assert_close(losses, eager_losses, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w, eager_w, rtol=1e-5, atol=1e-6)


DYNAMIC = {
    "cross_entropy": lambda o, t, y: sigmax.cross_entropy(o, t, weight=torch.ones(3), label_smoothing=0.1),
    "cross_entropy_probs": lambda o, t, y: sigmax.cross_entropy(o, torch.softmax(y, 1)),
    "binary_cross_entropy": lambda o, t, y: sigmax.binary_cross_entropy(torch.sigmoid(o), y),
    "bce_with_logits": lambda o, t, y: sigmax.binary_cross_entropy_with_logits(o, y, pos_weight=torch.ones(3)),
    "sigmoid_focal_loss": lambda o, t, y: sigmax.sigmoid_focal_loss(o, y, reduction="mean"),
    "softmax_focal_loss": lambda o, t, y: sigmax.softmax_focal_loss(o, t, reduction="mean"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DYNAMIC))
def test_compiled_losses_with_dynamic_shapes(name):
    # dynamic=True: sizes and Python floats become symbolic; nothing sigmax checks may branch on them
    fn = DYNAMIC[name]
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in (8, 5):
            args = (_XC[:n, :3], _TC[:n], _YC[:n])
            torch.testing.assert_close(compiled(*args), fn(*args), rtol=1e-5, atol=1e-6)
