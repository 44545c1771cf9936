r"""Built-in real data: logits of a small model trained on scikit-learn's bundled digits, offline.

:func:`digits_scores` fits a logistic regression (a linear softmax/sigmoid model on the 8x8 pixel
images, weakly regularised so it comes out somewhat over-confident, like most trained networks) on
one part of the 1797 handwritten digits and returns its *held-out* logits and labels, split into a
calibration part and a test part. Nothing is downloaded: the images ship inside scikit-learn.

===========  =========================  ===========================================================
task         logits shape               labels
===========  =========================  ===========================================================
multiclass   ``(N, 10)``, softmax        ``int64`` digit ``0..9`` (class indices)
multilabel   ``(N, 4)``, one sigmoid     ``float64`` multi-hot over :data:`ATTRIBUTES`:
             each                        even, greater than 4, prime (2, 3, 5, 7), closed loop
                                         (0, 4, 6, 8, 9)
binary       ``(N,)``, one sigmoid       ``float64`` 0/1: is the digit 5 or more ("high digit")
===========  =========================  ===========================================================

Split (fixed by ``seed``): 500 images train the model, 600 form the calibration part and the
remaining 697 the test part. The model is fit once per ``(task, seed)`` and cached; every call returns
fresh copies of the arrays.

scikit-learn is an optional dependency (extras ``demo`` and ``test``); without it you get an
``ImportError`` saying how to install it.

Example:
    >>> from sigmax.datasets import digits_scores
    >>> d = digits_scores("multiclass")
    >>> d.calib_logits.shape, d.test_logits.shape, d.test_labels[:5].tolist()
    ((600, 10), (697, 10), [9, 1, 8, 8, 4])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = ["DigitsScores", "digits_scores", "ATTRIBUTES", "TASKS", "N_TRAIN", "N_CALIB"]

#: the multilabel task's attributes, in column order, and the digits that have each
ATTRIBUTES: dict[str, tuple[int, ...]] = {
    "even": (0, 2, 4, 6, 8),
    "greater_than_4": (5, 6, 7, 8, 9),
    "prime": (2, 3, 5, 7),
    "closed_loop": (0, 4, 6, 8, 9),
}
TASKS = ("multiclass", "multilabel", "binary")
N_TRAIN = 500
N_CALIB = 600
#: inverse regularisation strength of the logistic regressions: weak, hence a bit over-confident
_C = 100.0


@dataclass(frozen=True)
class DigitsScores:
    """Held-out logits and labels of a model trained on the digits (see :func:`digits_scores`).

    Attributes:
        task: ``"multiclass"``, ``"multilabel"`` or ``"binary"``.
        calib_logits, calib_labels: the calibration part (fit temperatures/thresholds here).
        test_logits, test_labels: the test part (evaluate here).
        class_names: one name per logit column (binary: the positive class, one name).
        calib_digits, test_digits: the underlying digit (0..9) of every row, for all tasks.
        seed: the seed that fixed the split.
    """

    task: str
    calib_logits: np.ndarray
    calib_labels: np.ndarray
    test_logits: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    calib_digits: np.ndarray
    test_digits: np.ndarray
    seed: int

    @property
    def n_classes(self) -> int:
        """Number of logit columns (1 for binary)."""
        return 1 if self.task == "binary" else int(self.calib_logits.shape[-1])

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``d["test_logits"]`` style access)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, name: str) -> Any:
        return self.as_dict()[name]

    def __repr__(self) -> str:
        return (f"DigitsScores(task={self.task!r}, calib={tuple(self.calib_logits.shape)}, "
                f"test={tuple(self.test_logits.shape)}, classes={len(self.class_names)}, seed={self.seed})")


def _sklearn():
    try:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError(
            "sigmax.datasets needs scikit-learn (the digits ship with it, nothing is downloaded); "
            "install it with: pip install 'sigmax[demo]' (or pip install scikit-learn)"
        ) from None
    return load_digits, LogisticRegression


@functools.lru_cache(maxsize=1)
def _digits():
    load_digits, _ = _sklearn()
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float64), y.astype(np.int64)  # pixels 0..16 -> 0..1


def _targets(task: str, digits: np.ndarray) -> np.ndarray:
    if task == "multiclass":
        return digits.astype(np.int64)
    if task == "binary":
        return (digits >= 5).astype(np.float64)
    return np.stack([np.isin(digits, ds) for ds in ATTRIBUTES.values()], axis=1).astype(np.float64)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=16)
def _digits_scores(task: str, seed: int) -> DigitsScores:
    _, LogisticRegression = _sklearn()
    X, y = _digits()
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, ca, te = perm[:N_TRAIN], perm[N_TRAIN:N_TRAIN + N_CALIB], perm[N_TRAIN + N_CALIB:]
    t = _targets(task, y)

    def fit(target):
        # binary fits: newton-cholesky converges in a few steps (lbfgs needs ~100 when C is large)
        solver = "lbfgs" if task == "multiclass" else "newton-cholesky"
        return LogisticRegression(C=_C, max_iter=5000, solver=solver).fit(X[tr], target[tr])

    if task == "multiclass":
        model = fit(t)  # multinomial: decision_function gives logits whose softmax is predict_proba
        logits = model.decision_function
        names = tuple(str(d) for d in range(10))
    elif task == "binary":
        logits = fit(t).decision_function  # one logit: sigmoid of it is P(digit >= 5)
        names = ("digit_ge_5",)
    else:
        models = [fit(t[:, j]) for j in range(t.shape[1])]  # one sigmoid per attribute

        def logits(Z):
            return np.stack([m.decision_function(Z) for m in models], axis=1)

        names = tuple(ATTRIBUTES)
    return DigitsScores(
        task=task,
        calib_logits=_readonly(np.asarray(logits(X[ca]), dtype=np.float64)),
        calib_labels=_readonly(t[ca]),
        test_logits=_readonly(np.asarray(logits(X[te]), dtype=np.float64)),
        test_labels=_readonly(t[te]),
        class_names=names,
        calib_digits=_readonly(y[ca]),
        test_digits=_readonly(y[te]),
        seed=seed,
    )


def digits_scores(task: str = "multiclass", *, seed: int = 0) -> DigitsScores:
    """Held-out logits and labels of a logistic regression trained on scikit-learn's digits.

    The model is fit (in well under a second) on 500 images; the logits of 600 other images form the
    calibration part and those of the remaining 697 the test part. Test accuracy is about 96% for
    ``"multiclass"``, and the probabilities are somewhat over-confident (temperature scaling helps).

    Args:
        task: ``"multiclass"`` (10 digits, softmax), ``"multilabel"`` (4 attributes of the digit, one
            sigmoid each: even, greater than 4, prime, closed loop) or ``"binary"`` (is the digit 5
            or more; one logit).
        seed: fixes the random split (and hence the model). The fit is cached per ``(task, seed)``;
            each call returns fresh copies of the arrays (safe to modify).

    Returns:
        A :class:`DigitsScores` with ``calib_logits, calib_labels, test_logits, test_labels,
        class_names`` (also ``calib_digits``/``test_digits``, the digit of each row).
        Labels are ``int64`` class indices (multiclass) or ``float64`` 0/1 (binary, multilabel).

    Raises:
        ValueError: unknown ``task``. ImportError: scikit-learn is not installed.

    Example:
        >>> d = digits_scores("multilabel")
        >>> d.class_names
        ('even', 'greater_than_4', 'prime', 'closed_loop')
        >>> d.test_logits.shape, d.test_labels.shape
        ((697, 4), (697, 4))
        >>> d.test_labels[:2].tolist(), d.test_digits[:2].tolist()
        ([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [9, 1])
    """
    if not isinstance(task, str) or task.strip().lower().replace("-", "").replace("_", "") not in TASKS:
        raise ValueError(f"unknown task {task!r} for the digits; use one of {', '.join(map(repr, TASKS))}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cached = _digits_scores(task.strip().lower().replace("-", "").replace("_", ""), int(seed))
    # fresh writable copies (a few hundred kB): callers may modify them, torch.as_tensor takes them
    # without a warning, and the cache stays intact
    return DigitsScores(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in cached.as_dict().items()})
