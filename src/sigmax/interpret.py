r"""Tasks, declared input spaces, probabilities and decisions.

The caller *declares* what the scores are (``space="logits" | "probs" | "log_probs"``) and what the
task is (``task="binary" | "multiclass" | "multilabel"``); nothing is guessed from value ranges
(DESIGN.md, principle 1). Heuristics live in :mod:`sigmax.check`, which only warns.

=============  ======================  =============================  ==========================
task           scores shape            probabilities                  log-probabilities
=============  ======================  =============================  ==========================
binary         ``(N,)`` one logit       ``sigmoid(z)`` = P(positive)   ``log_sigmoid(z)``
multiclass     ``(N, C)``, one label    ``softmax(x, axis)``           ``log_softmax(x, axis)``
multilabel     ``(N, C)``, many labels  ``sigmoid(x)`` per class       ``log_sigmoid(x)``
=============  ======================  =============================  ==========================
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from ._array import finish, normalize_axis, prepare, resolve_axis
from .activations import log_sigmoid, log_softmax, sigmoid, softmax

__all__ = ["TASKS", "SPACES", "validate_task", "validate_space", "to_probs", "to_log_probs", "validate_probs"]

TASKS = ("binary", "multiclass", "multilabel")
SPACES = ("logits", "probs", "log_probs")


def _choice(value: Any, options: tuple[str, ...], name: str, hint: str) -> str:
    if isinstance(value, str):
        v = value.strip().lower().replace("-", "_")
        aliases = {"multi_class": "multiclass", "multi_label": "multilabel", "probabilities": "probs",
                   "prob": "probs", "logprobs": "log_probs", "log_prob": "log_probs", "logit": "logits"}
        v = aliases.get(v, v)
        if v in options:
            return v
    close = difflib.get_close_matches(str(value), options, n=1)
    did = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown {name} {value!r}{did}; use one of {', '.join(map(repr, options))}. {hint}")


def validate_task(task: Any) -> str:
    """``task`` normalised to one of :data:`TASKS`, or a ``ValueError`` naming the choices."""
    return _choice(task, TASKS, "task",
                   "binary: one score per sample; multiclass: exactly one true class (softmax); "
                   "multilabel: any number of true classes (one sigmoid each).")


def validate_space(space: Any) -> str:
    """``space`` normalised to one of :data:`SPACES`, or a ``ValueError`` naming the choices."""
    return _choice(space, SPACES, "space",
                   "Say what the numbers are: raw model outputs ('logits'), outputs of softmax/sigmoid "
                   "('probs') or of log_softmax/log_sigmoid ('log_probs').")


def validate_probs(probs: Any, task: str, *, axis: int = -1, name: str = "scores") -> None:
    """Check that declared probabilities are probabilities; raise a ``ValueError`` naming the cause.

    Values must lie in [0, 1]; for ``task="multiclass"`` each row along ``axis`` must sum to 1 within a
    dtype-aware tolerance (``C`` roundings of the dtype's epsilon, at least 1e-3 for half precision).

    Example:
        >>> validate_probs([[0.2, 0.8], [0.5, 0.5]], "multiclass")
        >>> validate_probs([[2.0, -1.0]], "multiclass")
        Traceback (most recent call last):
        ...
        ValueError: scores were declared space='probs' but 2 value(s) lie outside [0, 1] (min -1, max 2): these look like logits; pass space='logits'
    """
    task = validate_task(task)
    p = prepare(probs, name=name)
    xp, x = p.xp, p.x
    bad = ~((x >= 0) & (x <= 1))
    nbad = int(xp.sum(xp.astype(bad, xp.int64)))
    if nbad:
        finite = x[xp.isfinite(x)] if nbad < x.size else x
        lo = float(xp.min(finite)) if finite.size else float("nan")
        hi = float(xp.max(finite)) if finite.size else float("nan")
        if bool(xp.any(xp.isnan(x))):
            cause = "they contain NaN; find where the model produced it"
        elif lo < 0 and bool(xp.all(x <= 0)):
            cause = "all are <= 0, like log-probabilities; pass space='log_probs'"
        else:
            cause = "these look like logits; pass space='logits'"
        raise ValueError(f"{name} were declared space='probs' but {nbad} value(s) lie outside [0, 1] "
                         f"(min {lo:.4g}, max {hi:.4g}): {cause}")
    if task == "multiclass" and x.ndim >= 1:
        ax = normalize_axis(axis, x.ndim)
        sums = xp.sum(x, axis=ax)
        c = x.shape[ax]
        eps = float(np.finfo(np.float32 if str(p.out_dtype).endswith("float32") else np.float64).eps)
        if "16" in str(p.out_dtype):
            eps = 1e-3
        tol = max(1e-6 if eps < 1e-10 else 0.0, 8 * c * eps)
        off = xp.abs(sums - 1.0) > tol
        if bool(xp.any(off)):
            worst = float(xp.max(xp.abs(sums - 1.0)))
            n_off = int(xp.sum(xp.astype(off, xp.int64)))
            other = [a for a in range(x.ndim) if a != ax]
            hint = ("softmax may have been taken over the wrong axis (the sums along another axis are 1)"
                    if other and _sums_to_one_along(xp, x, other[0], tol) else
                    "these may be sigmoid outputs of a multi-label model: use task='multilabel'")
            raise ValueError(f"{name} were declared multiclass probabilities but {n_off} row(s) along axis "
                             f"{ax} do not sum to 1 (worst is off by {worst:.3g}); {hint}")


def _sums_to_one_along(xp, x, axis, tol) -> bool:
    return bool(xp.all(xp.abs(xp.sum(x, axis=axis) - 1.0) <= tol))


def to_probs(scores: Any, task: str, *, space: str = "logits", axis: int = -1, temperature: Any = None,
             validate: bool = True, dim: int | None = None) -> Any:
    r"""Probabilities for the declared ``task`` from scores in the declared ``space``.

    * logits: ``sigmoid`` (binary, multilabel) or ``softmax`` along ``axis`` (multiclass), after
      dividing by ``temperature`` when given;
    * probs: returned as given, after :func:`validate_probs` (unless ``validate=False``);
    * log_probs: ``exp``.

    Example:
        >>> import sigmax
        >>> to_probs([[2.0, 0.0, -1.0]], "multiclass").round(4)
        array([[0.8438, 0.1142, 0.042 ]])
        >>> to_probs([[2.0, 0.0, -1.0]], "multilabel").round(4)
        array([[0.8808, 0.5   , 0.2689]])
    """
    task, space = validate_task(task), validate_space(space)
    axis = resolve_axis(axis, dim)
    if space == "logits":
        if temperature is not None and task != "multiclass":
            p = prepare(scores, name="scores")
            return finish(p, sigmoid(p.x / _positive(temperature)))
        if task == "multiclass":
            return softmax(scores, axis=axis, temperature=1.0 if temperature is None else temperature)
        return sigmoid(scores)
    p = prepare(scores, name="scores")
    if space == "log_probs":
        return finish(p, p.xp.exp(p.x))
    if validate:
        validate_probs(scores, task, axis=axis)
    return finish(p, p.x)


def to_log_probs(scores: Any, task: str, *, space: str = "logits", axis: int = -1, temperature: Any = None,
                 validate: bool = True, dim: int | None = None) -> Any:
    r"""Log-probabilities for the declared ``task`` from scores in the declared ``space``.

    For binary and multilabel tasks this is ``log P(label present)``; the log-probability of absence is
    ``to_log_probs(-scores, ...)`` for logits (``log_sigmoid(-z) = log(1 - sigmoid(z))``).

    Example:
        >>> to_log_probs([[1000.0, 0.0]], "multiclass")
        array([[    0., -1000.]])
    """
    task, space = validate_task(task), validate_space(space)
    axis = resolve_axis(axis, dim)
    if space == "logits":
        if task == "multiclass":
            return log_softmax(scores, axis=axis, temperature=1.0 if temperature is None else temperature)
        if temperature is not None:
            p = prepare(scores, name="scores")
            return finish(p, log_sigmoid(p.x / _positive(temperature)))
        return log_sigmoid(scores)
    p = prepare(scores, name="scores")
    if space == "log_probs":
        return finish(p, p.x)
    if validate:
        validate_probs(scores, task, axis=axis)
    with np.errstate(divide="ignore"):
        return finish(p, p.xp.log(p.x))


def _positive(t):
    if isinstance(t, (int, float)) and not t > 0:
        raise ValueError(f"temperature must be positive, got {t!r}")
    return t
