"""sigmax.torch.guard: warns once per miswiring during the first calls, never changes the loss."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import sigmax  # noqa: E402
from sigmax.torch import GuardedLoss, WiringWarning, guard  # noqa: E402
from sigmax.torch import _guard as guard_module  # noqa: E402


def _train(loss_fn, head, targets, steps=15, seed=0):
    """A small training loop: linear model on random features; returns the losses."""
    torch.manual_seed(seed)
    x = torch.randn(64, 8)
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(head(model(x)), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


Y = torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(1))
Y_MULTI = (torch.rand(64, 4, generator=torch.Generator().manual_seed(2)) < 0.4).float()


def _run(loss_fn, head, targets):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        losses = _train(loss_fn, head, targets)
    return losses, [x for x in w if issubclass(x.category, WiringWarning)]


@pytest.mark.parametrize("loss,head,targets,code", [
    (torch.nn.CrossEntropyLoss(), lambda z: torch.softmax(z, dim=1), Y, "double-softmax"),
    (F.cross_entropy, lambda z: z.softmax(-1).view(64, 4), Y, "double-softmax"),  # through a view
    (torch.nn.BCEWithLogitsLoss(), torch.sigmoid, Y_MULTI, "sigmoid-as-logits"),
    (torch.nn.NLLLoss(), lambda z: torch.softmax(z, dim=1), Y, "probs-as-log-probs"),
    (torch.nn.NLLLoss(), lambda z: z, Y, "logits-as-log-probs"),
    (torch.nn.NLLLoss(), lambda z: torch.log_softmax(z, dim=0), Y, "wrong-axis"),
    (torch.nn.CrossEntropyLoss(), lambda z: z, Y_MULTI, "multi-hot-targets-multiclass"),
    (torch.nn.BCEWithLogitsLoss(), F.logsigmoid, Y_MULTI, "log-probs-as-logits"),
])
def test_miswired_training_loop_warns_once(loss, head, targets, code):
    guarded = guard(loss)
    losses, w = _run(guarded, head, targets)
    codes = [f.code for f in guarded.findings]
    assert code in codes, codes
    assert len(w) == len({f.code for f in guarded.findings if f.severity != "info"})  # once per finding
    msg = next(str(x.message) for x in w if f"[{code}]" in str(x.message))
    assert "Fix:" in msg
    # the guard never changes results: the same loop unguarded gives the same losses
    plain, _ = _run(loss, head, targets)
    assert losses == plain


@pytest.mark.parametrize("loss,head,targets", [
    (torch.nn.CrossEntropyLoss(), lambda z: z, Y),
    (F.cross_entropy, lambda z: z, Y),
    (torch.nn.NLLLoss(), lambda z: torch.log_softmax(z, dim=1), Y),
    (torch.nn.BCEWithLogitsLoss(), lambda z: z, Y_MULTI),
    (torch.nn.BCELoss(), torch.sigmoid, Y_MULTI),
    (F.binary_cross_entropy_with_logits, lambda z: z[:, 0], Y_MULTI[:, 0]),
    (torch.nn.CrossEntropyLoss(label_smoothing=0.1), lambda z: z, Y),
])
def test_correct_training_loop_is_silent(loss, head, targets):
    guarded = guard(loss)
    _, w = _run(guarded, head, targets)
    assert w == [] and guarded.findings == []


def test_log_softmax_before_cross_entropy_is_info_only():
    g = guard(torch.nn.CrossEntropyLoss())
    _, w = _run(g, lambda z: torch.log_softmax(z, dim=1), Y)
    assert w == [] and [f.code for f in g.findings] == ["log-probs-as-logits"]
    assert g.findings[0].severity == "info"
    g2 = guard(torch.nn.CrossEntropyLoss(), min_severity="info")
    _, w2 = _run(g2, lambda z: torch.log_softmax(z, dim=1), Y)
    assert len(w2) == 1


def test_inspects_only_the_first_calls(monkeypatch):
    calls = []
    real = guard_module._check_module.check

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(guard_module._check_module, "check", counting)
    g = guard(torch.nn.CrossEntropyLoss(), calls=2)
    _train(g, lambda z: z, Y, steps=10)
    assert len(calls) == 2
    g0 = guard(F.cross_entropy, calls=0)
    _train(g0, lambda z: z, Y, steps=3)
    assert len(calls) == 2


def test_module_wrapper_behaves_like_the_loss():
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    inner = torch.nn.CrossEntropyLoss(weight=w, ignore_index=3)
    g = guard(inner)
    assert isinstance(g, GuardedLoss) and isinstance(g, torch.nn.Module)
    assert "loss.weight" in g.state_dict()
    z = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 3, 2])
    assert torch.equal(g(z, y), inner(z, y))
    assert g.findings == []  # ignore_index taken from the module: 3 is not "out of range"
    assert g.to(torch.float64).loss.weight.dtype == torch.float64


def test_function_wrapper_and_decorator():
    g = guard(F.cross_entropy)
    assert g.__name__ == "cross_entropy" and "guard('cross_entropy')" == repr(g)

    @guard(expects="logits", task="multiclass")
    def my_loss(input, target):
        return F.cross_entropy(input, target)

    with pytest.warns(WiringWarning, match="double-softmax"):
        my_loss(torch.softmax(torch.randn(8, 3), 1), torch.randint(0, 3, (8,)))
    assert [f.code for f in my_loss.findings] == ["double-softmax"]
    # keyword arguments are inspected too
    g2 = guard(F.nll_loss, warn=False)
    g2(input=torch.randn(8, 3) + 5, target=torch.randint(0, 3, (8,)))
    assert [f.code for f in g2.findings] == ["logits-as-log-probs"]


def test_sigmax_losses_by_name_and_unbatched_input():
    g = guard(F.cross_entropy, warn=False)
    g(torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0), torch.tensor(0))  # unbatched (C,) input
    assert [f.code for f in g.findings] == ["double-softmax"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="does not know what 'my_loss' expects; pass expects="):
        def my_loss(a, b):
            return a
        guard(my_loss)
    with pytest.raises(ValueError, match="expects must be what the loss takes: unknown space 'scores'"):
        guard(F.cross_entropy, expects="scores")
    with pytest.raises(ValueError, match="min_severity must be one of"):
        guard(F.cross_entropy, min_severity="fatal")
    with pytest.raises(ValueError, match="calls must be"):
        guard(F.cross_entropy, calls=-1)
    with pytest.raises(TypeError, match="needs a loss module or function"):
        guard(3)


def test_guard_never_breaks_the_loss(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("inspection bug")

    monkeypatch.setattr(guard_module._check_module, "check", boom)
    g = guard(F.cross_entropy)
    z, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.warns(WiringWarning, match="could not inspect"):
        out = g(z, y)
    assert torch.equal(out, F.cross_entropy(z, y))


def test_sigmax_own_softmax_is_caught_by_values():
    g = guard(torch.nn.CrossEntropyLoss(), warn=False)
    g(sigmax.softmax(torch.randn(16, 5, requires_grad=True), axis=1), torch.randint(0, 5, (16,)))
    assert [f.code for f in g.findings] == ["double-softmax"]
    assert np.isclose(g.findings[0].details["loss_floor"], np.log1p(4 / np.e))


def test_guard_reads_the_tables_of_check():
    from sigmax._inputs import SPACES
    from sigmax.check import LOSS_ALIASES, LOSSES

    assert not hasattr(guard_module, "_KNOWN") and not hasattr(guard_module, "_EXPECTS")
    # every loss check knows, by any of its spellings, is known to the guard
    for name in list(LOSSES) + list(LOSS_ALIASES) + ["BCEWithLogitsLoss", "NLLLoss"]:
        def fn(input, target):
            return input.sum()
        fn.__name__ = name
        assert guard(fn).__wrapped__ is fn
    # the one list of spellings: what interpret and check accept, the guard accepts
    for spelling, space in (("probabilities", "probs"), ("logit", "logits"), ("log-probs", "log_probs")):
        g = guard(lambda a, b: a, expects=spelling, task="multiclass", warn=False)
        assert g._inspector.expects == space and space in SPACES
    g = guard(lambda a, b: a, expects="probabilities", task="multiclass", warn=False)
    g(torch.randn(16, 4) * 3, torch.randint(0, 4, (16,)))
    assert "logits-as-probs" in [f.code for f in g.findings]


def test_bce_has_no_ignore_index():
    # PyTorch's BCE losses take no ignore_index: a -100 target is a wrong label there, not a skipped one
    g = guard(torch.nn.BCEWithLogitsLoss(), warn=False)
    y = Y_MULTI.clone()
    y[0, 0] = -100
    g(torch.randn(64, 4), y)
    assert [f.code for f in g.findings] == ["target-out-of-range"]
    g = guard(torch.nn.CrossEntropyLoss(), warn=False)  # CrossEntropyLoss skips -100 (its default)
    g(torch.randn(64, 4), torch.where(Y == 0, -100, Y))
    assert g.findings == []
