"""Every example of the four seed texts (../shared/seeds/) works in sigmax and prints their numbers.

The seeds print four significant digits (``tensor([0.5987, 0.4013])``); we compare with the
rounding they show: half a unit in the last printed digit.
"""

import math

import numpy as np
import pytest

import sigmax
from sigmax.testing import assert_close, to_numpy

torch = pytest.importorskip("torch")


def assert_prints(actual, printed, sig=None, input_rounding=0.0):
    """``actual`` rounds to what the seed printed (fixed 4 decimals, or ``sig`` significant digits).

    ``input_rounding``: the seed's inputs were themselves printed rounded (to 4 decimals: 5e-5); a
    log-probability moves by up to twice that, so the relative tolerance grows by ``2 * input_rounding``.
    """
    a = to_numpy(actual).astype(np.float64)
    p = np.asarray(printed, dtype=np.float64)
    if sig is None and not input_rounding:
        np.testing.assert_array_equal(np.round(a, 4), p)
    else:
        half_digit = 0.5 * 10 ** (1 - sig) if sig else 0.5e-4
        np.testing.assert_allclose(a, p, rtol=half_digit + 2 * input_rounding, atol=0 if sig else half_digit)


# --- seed 000: sigmoid vs softmax on x_batch, and softmax(x) == sigmoid(x - fliplr(x)) -------------

X_BATCH = [[-0.3, -0.7], [0.3, 0.7], [1.1, -0.7], [-1.1, 0.7]]


def test_seed000_x_batch_sigmoid_and_softmax(backend):
    x = backend.asarray(X_BATCH, "float32")
    assert_prints(sigmax.sigmoid(x), [[0.4256, 0.3318], [0.5744, 0.6682], [0.7503, 0.3318], [0.2497, 0.6682]])
    expected_softmax = [[0.5987, 0.4013], [0.4013, 0.5987], [0.8581, 0.1419], [0.1419, 0.8581]]
    assert_prints(sigmax.softmax(x, axis=1), expected_softmax)
    assert_prints(sigmax.softmax(x, dim=1), expected_softmax)


def test_seed000_equivalent_forms(backend):
    x = backend.asarray(X_BATCH, "float32")
    soft = sigmax.softmax(x, axis=1)
    flipped = backend.asarray(np.flip(np.asarray(X_BATCH), axis=1).copy(), "float32")
    assert_close(sigmax.sigmoid(x - flipped), soft)
    # translate relative to x0: softmax is translation invariant
    xn = np.asarray(X_BATCH, dtype=np.float32)
    translated = backend.asarray(xn - xn[:, :1], "float32")
    assert_close(sigmax.softmax(translated, axis=1), soft)
    s1 = to_numpy(sigmax.sigmoid(translated))[:, 1]
    assert_close(np.stack([1 - s1, s1], axis=1), soft, "float32", factor=2)  # 1 - s rounds once more
    # and the library's own names for it
    assert_close(sigmax.softmax(sigmax.binary_to_two_class(sigmax.two_class_to_binary(x))), soft)


# --- seed 001: softmax over dim 0, Softmax2d via the channel axis, sigmoid, SLC ----------------------


def test_seed001_softmax_over_dim0(backend):
    inp = backend.asarray([[-1.2928, -2.9990, -1.8886], [0.1079, -3.6320, -1.6835]], "float32")
    out = sigmax.softmax(inp, axis=0)
    assert_prints(out, [[0.1977, 0.6532, 0.4489], [0.8023, 0.3468, 0.5511]])
    assert_close(to_numpy(out).sum(), 3.0, "float32")
    inp2 = backend.asarray([[0.9096, -2.5876, -2.2403], [-0.8566, 0.2757, -1.9268]], "float32")
    assert_prints(sigmax.softmax(inp2, dim=0), [[0.8540, 0.0540, 0.4223], [0.1460, 0.9460, 0.5777]])


def test_seed001_softmax2d_is_softmax_over_the_channel_axis():
    inp = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    out = torch.nn.Softmax2d()(inp)
    assert_close(sigmax.softmax(inp, axis=1), out)
    assert_close(sigmax.softmax(inp, axis=-3), out)


def test_seed001_sigmoid(backend):
    inp = backend.asarray([[-0.4010, 0.0468, -0.4071, 0.6252, 1.0899]], "float32")
    assert_prints(sigmax.sigmoid(inp), [[0.4011, 0.5117, 0.3996, 0.6514, 0.7484]])


def test_seed001_naive_log_softmax_overflows_where_sigmax_does_not():
    def naive_log_softmax(x):  # the seed's warning: do not compute log of softmax directly
        return x - x.exp().sum(-1).log().unsqueeze(-1)

    x = torch.tensor([[10.0, 100.0, 1000.0]])
    assert not torch.isfinite(naive_log_softmax(x)).all()
    assert_close(sigmax.log_softmax(x), torch.log_softmax(x, -1))
    assert torch.isfinite(sigmax.log_softmax(x)).all()
    # the seed's small example is fine either way
    small = torch.randn(10, 5, generator=torch.Generator().manual_seed(0))
    assert_close(sigmax.log_softmax(small), naive_log_softmax(small))


def test_seed001_logit_of_sigmoid_is_stable():
    # the seed's plot of logit(sigmo(x)): naive forms lose x far from 0; sigmax's keep the round trip
    x = torch.arange(-20, 20, 1e-2, dtype=torch.float64)
    y = sigmax.logit(sigmax.sigmoid(x))
    assert torch.isfinite(y).all()
    assert float((y - x).abs().max()) < 1e-6


# --- seed 002: the blog's sigmoid / softmax dim 0 / softmax dim 1 printout ---------------------------

LOGITS_002 = [[-10.6383, -3.3302, 10.4895], [-7.0935, 10.9497, -24.0366]]


def test_seed002_printout(backend):
    x = backend.asarray(LOGITS_002, "float32")
    assert_prints(sigmax.sigmoid(x), [[2.3979e-05, 3.4550e-02, 9.9997e-01], [8.2977e-04, 9.9998e-01, 3.6393e-11]],
                  sig=5, input_rounding=5e-5)
    s0 = sigmax.softmax(x, axis=0)
    assert_prints(s0, [[2.8065e-02, 6.2851e-07, 1.0000e+00], [9.7194e-01, 1.0000e+00, 1.0127e-15]], sig=5,
                  input_rounding=5e-5)
    assert_close(to_numpy(s0).sum(axis=0), [1.0, 1.0, 1.0], "float32")
    assert_prints(to_numpy(s0).sum(axis=1), [1.0281, 1.9719])
    s1 = sigmax.softmax(x, axis=1)
    assert_prints(s1, [[6.6729e-10, 9.9584e-07, 1.0000e+00], [1.4585e-08, 1.0000e+00, 6.3917e-16]], sig=5,
                  input_rounding=5e-5)
    assert_prints(to_numpy(s1).sum(axis=0), [1.5252e-08, 1.0, 1.0], sig=5, input_rounding=5e-5)
    assert_close(to_numpy(s1).sum(axis=1), [1.0, 1.0], "float32")


# --- seed 003: softmax(x1), softmax(x2), sigmoid(0.1) through softmax, logprobs and logsumexp --------


def test_seed003_softmax_x1_x2(backend):
    x1 = backend.asarray([0.1, 0.2, 0.3], "float32")
    p = sigmax.softmax(x1, axis=0)
    assert_prints(p, [0.3006, 0.3322, 0.3672])
    assert_close(to_numpy(p).sum(), 1.0, "float32")
    x2 = backend.asarray([0.1, 0.2, 100.0], "float32")
    p2 = to_numpy(sigmax.softmax(x2, axis=0))
    assert p2[2] == 1.0 and np.all(p2[:2] < 1e-43) and np.all(np.isfinite(p2))


def test_seed003_sigmoid_through_two_element_softmax(backend):
    s = sigmax.sigmoid(backend.asarray(0.1, "float32"))
    assert_prints(s, 0.5250)
    assert_close(sigmax.softmax(backend.asarray([0.0, 0.1], "float32"))[1], s)
    assert_close(sigmax.softmax(sigmax.binary_to_two_class(backend.asarray(0.1, "float32")))[1], s)


def test_seed003_logprobs_and_logsumexp(backend):
    logits = backend.asarray([0.1, 0.2, 0.3], "float32")
    probabilities = sigmax.softmax(logits, axis=0)
    logprobs = sigmax.log_softmax(logits, axis=-1)
    assert_close(np.log(to_numpy(probabilities)), logprobs)
    assert_close(sigmax.softmax(logprobs, axis=0), probabilities)  # softmax(logprobs) == softmax(logits)
    diff = to_numpy(logits - logprobs)  # the same number everywhere ...
    lse = float(sigmax.logsumexp(logits, axis=-1))  # ... the log of the sum of exps: 1.3019
    assert_prints(lse, 1.3019)
    assert_close(diff, np.full(3, lse), "float32")
    assert math.isclose(float(logsumexp_np := sigmax.logsumexp(np.array([0.1, 0.2, 0.3]))), 1.3019428482292442)
    assert logsumexp_np.dtype == np.float64
