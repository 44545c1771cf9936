"""sigmax.datasets: held-out logits of a really trained model on scikit-learn's digits."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sigmax import datasets  # noqa: E402
from sigmax.activations import sigmoid, softmax  # noqa: E402
from sigmax.datasets import ATTRIBUTES, digits_scores  # noqa: E402


def test_multiclass_shapes_and_quality():
    d = digits_scores("multiclass")
    assert d.calib_logits.shape == (600, 10) and d.test_logits.shape == (697, 10)
    assert d.calib_labels.dtype == np.int64 and set(np.unique(d.test_labels)) <= set(range(10))
    assert d.class_names == tuple("0123456789") and d.n_classes == 10
    np.testing.assert_array_equal(d.test_labels, d.test_digits)
    p = softmax(d.test_logits, axis=-1)
    acc = float(np.mean(p.argmax(-1) == d.test_labels))
    conf = float(np.mean(p.max(-1)))
    assert 0.9 < acc < 1.0
    assert conf > acc  # over-confident, as trained networks usually are (calibration has work to do)


def test_multilabel_attributes_follow_the_digit():
    d = digits_scores("multilabel")
    assert d.test_logits.shape == (697, 4) and d.test_labels.shape == (697, 4)
    assert d.class_names == tuple(ATTRIBUTES) == ("even", "greater_than_4", "prime", "closed_loop")
    for j, digits in enumerate(ATTRIBUTES.values()):
        np.testing.assert_array_equal(d.test_labels[:, j], np.isin(d.test_digits, digits).astype(float))
    assert d.test_labels.dtype == np.float64
    acc = np.mean((sigmoid(d.test_logits) > 0.5) == d.test_labels, axis=0)
    assert np.all(acc > 0.8)
    # several labels true at once for many rows: truly multi-label
    assert np.mean(d.test_labels.sum(1) >= 2) > 0.3


def test_binary():
    d = digits_scores("binary")
    assert d.test_logits.shape == (697,) and d.calib_logits.shape == (600,)
    np.testing.assert_array_equal(d.test_labels, (d.test_digits >= 5).astype(float))
    assert np.mean((d.test_logits > 0) == d.test_labels) > 0.8
    assert d.n_classes == 1 and d.class_names == ("digit_ge_5",)


def test_cached_readonly_and_seeded():
    a, b = digits_scores("binary"), digits_scores("binary", seed=0)
    np.testing.assert_array_equal(a.test_logits, b.test_logits)
    a.test_logits[0] = 1e9  # copies: modifying one result leaves the cache intact
    assert digits_scores("binary").test_logits[0] != 1e9 and b.test_logits.flags.writeable
    c = digits_scores("binary", seed=1)
    assert not np.array_equal(a.test_digits, c.test_digits)
    assert a["test_logits"] is a.test_logits and set(a.as_dict()) >= {"calib_logits", "class_names"}
    assert "DigitsScores(task='binary'" in repr(a)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown task 'regression'.*'multiclass'"):
        digits_scores("regression")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        digits_scores("binary", seed=-1)
    np.testing.assert_array_equal(digits_scores("multi-class").test_labels, digits_scores("multiclass").test_labels)


def test_missing_sklearn_message(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("no sklearn")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'sigmax\[demo\]'"):
        datasets._sklearn()
