r"""Tasks, declared input spaces, probabilities and decisions.

The caller *declares* what the scores are (``space="logits" | "probs" | "log_probs"``) and what the
task is (``task="binary" | "multiclass" | "multilabel"``); nothing is guessed from value ranges
(docs/ARCHITECTURE.md). Heuristics live in :mod:`sigmax.check`, which only warns.

=============  ======================  =============================  ==========================
task           scores shape            probabilities                  log-probabilities
=============  ======================  =============================  ==========================
binary         ``(N,)`` one logit       ``sigmoid(z)`` = P(positive)   ``log_sigmoid(z)``
multiclass     ``(N, C)``, one label    ``softmax(x, axis)``           ``log_softmax(x, axis)``
multilabel     ``(N, C)``, many labels  ``sigmoid(x)`` per class       ``log_sigmoid(x)``
=============  ======================  =============================  ==========================

A NaN row gets no decision. :func:`interpret` predicts :data:`ABSTAIN` (``-1``) for every sample whose
scores hold a NaN — binary: the sample; multiclass: the row (softmax makes the whole row NaN);
multilabel: *every* label of the row (one NaN logit means the row's scores cannot be trusted, and
``top_k`` and ``at_least_one`` decide a row as a whole) — marks them in ``abstained`` when
``abstain_below`` is given, and emits one ``UserWarning`` saying how many rows. Probabilities,
confidence and the other fields stay NaN there. Declared probabilities are validated on the other
rows. (The metrics refuse NaN scores instead: a metric over them cannot be right.)
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from dataclasses import dataclass, fields
from typing import Any

import array_api_compat
import numpy as np

from ._array import (
    Prepared,
    check_temperature,
    finish,
    like,
    normalize_axis,
    prepare,
    resolve_axis,
)
from ._array import quiet as _quiet
from ._inputs import SPACES, TASKS, spell, to_numpy, validate_space, validate_task, validate_top_k
from ._tolerance import sum_tolerance
from .activations import log1mexp, log_sigmoid, log_softmax, logit, logsumexp, sigmoid, softmax

__all__ = ["TASKS", "SPACES", "ABSTAIN", "validate_task", "validate_space", "to_probs", "to_log_probs",
           "validate_probs", "validate_log_probs", "interpret", "Interpretation"]

#: the prediction given where ``interpret(..., abstain_below=...)`` abstains, and for rows holding NaN
ABSTAIN = -1


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
    _check_probs(prepare(probs, name=name), validate_task(task), axis, name)


def _check_probs(p: Prepared, task: str, axis: int, name: str) -> None:
    xp, x = p.xp, p.x
    bad = ~((x >= 0) & (x <= 1))
    nbad = int(xp.sum(xp.astype(bad, xp.int64)))
    if nbad:
        finite = x[xp.isfinite(x)]  # torch's .size is a method: count elements through the shape
        some = math.prod(finite.shape) > 0
        lo = float(xp.min(finite)) if some else float("nan")
        hi = float(xp.max(finite)) if some else float("nan")
        if bool(xp.any(xp.isnan(x))):
            cause = "they contain NaN; find where the model produced it"
        elif lo < 0 and bool(xp.all(x <= 0)):
            cause = f"all are <= 0, like log-probabilities; pass {spell('space', 'log_probs')}"
        else:
            cause = f"these look like logits; pass {spell('space', 'logits')}"
        raise ValueError(f"{name} were declared {spell('space', 'probs')} but {nbad} value(s) lie outside [0, 1] "
                         f"(min {lo:.4g}, max {hi:.4g}): {cause}")
    if task == "multiclass" and x.ndim >= 1:
        ax = normalize_axis(axis, x.ndim)
        sums = xp.sum(x, axis=ax)
        tol = sum_tolerance(p.out_dtype, x.shape[ax])
        off = xp.abs(sums - 1.0) > tol
        if bool(xp.any(off)):
            worst = float(xp.max(xp.abs(sums - 1.0)))
            n_off = int(xp.sum(xp.astype(off, xp.int64)))
            other = [a for a in range(x.ndim) if a != ax]
            hint = ("softmax may have been taken over the wrong axis (the sums along another axis are 1)"
                    if other and _sums_to_one_along(xp, x, other[0], tol) else
                    f"these may be sigmoid outputs of a multi-label model: use {spell('task', 'multilabel')}")
            raise ValueError(f"{name} were declared multiclass probabilities but {n_off} row(s) along axis "
                             f"{ax} do not sum to 1 (worst is off by {worst:.3g}); {hint}")


def validate_log_probs(log_probs: Any, task: str, *, axis: int = -1, name: str = "scores") -> None:
    """Check that declared log-probabilities are log-probabilities; raise a ``ValueError`` naming the cause.

    Values must be <= 0 (a dtype-aware rounding above 0 is allowed); for ``task="multiclass"``
    ``logsumexp`` along ``axis`` must be 0 within the same tolerance as :func:`validate_probs`.

    Example:
        >>> validate_log_probs([[-0.6931471805599453, -0.6931471805599453]], "multiclass")
        >>> validate_log_probs([[0.2, 0.8]], "multiclass")
        Traceback (most recent call last):
        ...
        ValueError: scores were declared space='log_probs' but 2 value(s) are > 0 (max 0.8): they lie in [0, 1] like probabilities; pass space='probs'
    """
    _check_log_probs(prepare(log_probs, name=name), validate_task(task), axis, name)


def _check_log_probs(p: Prepared, task: str, axis: int, name: str) -> None:
    xp, x = p.xp, p.x
    c = x.shape[normalize_axis(axis, x.ndim)] if (task == "multiclass" and x.ndim >= 1) else 1
    tol = sum_tolerance(p.out_dtype, c)
    if bool(xp.any(xp.isnan(x))):
        raise ValueError(f"{name} were declared {spell('space', 'log_probs')} but contain NaN; find where the model "
                         "produced it")
    bad = x > tol
    nbad = int(xp.sum(xp.astype(bad, xp.int64)))
    if nbad:
        hi = float(xp.max(x))
        cause = (f"they lie in [0, 1] like probabilities; pass {spell('space', 'probs')}"
                 if bool(xp.all((x >= 0) & (x <= 1))) else f"these look like logits; pass {spell('space', 'logits')}")
        raise ValueError(f"{name} were declared {spell('space', 'log_probs')} but {nbad} value(s) are > 0 "
                         f"(max {hi:.4g}): {cause}")
    if task == "multiclass" and x.ndim >= 1:
        ax = normalize_axis(axis, x.ndim)
        lse = logsumexp(x, axis=ax)
        off = xp.abs(lse) > tol
        if bool(xp.any(off)):
            n_off = int(xp.sum(xp.astype(off, xp.int64)))
            worst = float(xp.max(xp.abs(lse)))
            raise ValueError(
                f"{name} were declared multiclass log-probabilities but for {n_off} row(s) along axis {ax} "
                f"logsumexp is not 0 (worst is off by {worst:.3g}); they may be log_sigmoid outputs of a "
                f"multi-label model (use {spell('task', 'multilabel')}) or log_softmax over another axis")


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
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf is intended
        return finish(p, p.xp.log(p.x))


def _positive(t):
    if isinstance(t, (int, float)) and not t > 0:
        raise ValueError(f"temperature must be positive, got {t!r}")
    return t


# --------------------------------------------------------------------------------------------
# interpret: probabilities, confidence and decisions in one object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Interpretation:
    """What a batch of scores means for the declared task: probabilities, confidence and decisions.

    Every array has the input's array type and device; float arrays have the input's floating dtype,
    ``predictions`` and ``topk_indices`` are ``int64``, ``abstained`` is boolean.

    Attributes:
        task, space: as declared. axis: the class axis (non-negative), ``None`` for binary.
        probs: P(class) for multiclass (rows sum to 1), P(label present) for binary/multilabel.
        log_probs: ``log(probs)``, computed without ``log(exp(.))`` round trips.
        predictions: binary ``(N,)`` 0/1; multiclass ``(N,)`` class index; multilabel ``(N, C)`` 0/1
            multi-hot. :data:`ABSTAIN` (-1) where the decision abstained.
        confidence: probability of the decision taken: ``max(p, 1 - p)`` for binary and per label
            for multilabel, the top probability for multiclass.
        margin: ``|p - (1 - p)|`` (binary, per label) or top-1 minus top-2 probability (multiclass).
        entropy: in nats; per sample (binary, multiclass) or per label (multilabel); ``0 log 0 = 0``.
        abstained: boolean mask of abstentions (shape of ``confidence``), or ``None`` without
            ``abstain_below``.
        topk_indices, topk_probs: the ``top_k`` classes by decreasing probability (ties: lower index
            first), along the class axis; ``None`` without ``top_k``.
        threshold: the probability threshold used (binary, multilabel), else ``None``.
        sets: conformal prediction sets (``interpret(..., conformal=cc)``): a boolean array with the
            classes last (binary: ``(N, 2)``, column 1 positive), of the input's library and device;
            ``None`` without ``conformal``. See :mod:`sigmax.conformal`.
    """

    task: str
    space: str
    axis: int | None
    probs: Any
    log_probs: Any
    predictions: Any
    confidence: Any
    margin: Any
    entropy: Any
    abstained: Any = None
    topk_indices: Any = None
    topk_probs: Any = None
    threshold: Any = None
    sets: Any = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:
        shape = tuple(getattr(self.probs, "shape", ()))
        kind = type(self.probs).__module__.split(".")[0]
        extra = ""
        if self.abstained is not None:
            extra = f", abstained={int(np.sum(_np(self.abstained)))}"
        return (f"Interpretation(task={self.task!r}, space={self.space!r}, shape={shape}, "
                f"array={kind}, dtype={self.probs.dtype}{extra})")


def _np(a):
    return to_numpy(a, "abstained")


def _device(x):
    try:
        return array_api_compat.device(x)
    except Exception:  # pragma: no cover - libraries without devices
        return None


def _is_traced(x: Any) -> bool:
    """Inside ``jax.jit`` / ``torch.compile``: values are not concrete, so nothing may be counted."""
    jax = sys.modules.get("jax")
    tracer = getattr(getattr(jax, "core", None), "Tracer", None)
    if tracer is not None and isinstance(x, tracer):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor) and torch.compiler.is_compiling()


def _count(xp, mask) -> int | None:
    """How many entries of ``mask`` are true, or ``None`` where values are traced."""
    if _is_traced(mask):
        return None
    try:
        return int(xp.sum(xp.astype(mask, xp.int32)))
    except (RuntimeError, TypeError):  # torch.func transforms: no concrete value
        return None


def _number_in_unit(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {v!r}")
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
    return v


def _class_shape(ndim: int, ax: int, c: int) -> tuple[int, ...]:
    return tuple(c if i == ax else 1 for i in range(ndim))


def _threshold(xp, threshold, x, task, ax):
    """The threshold as a float or as an array broadcast along the class axis (multilabel only)."""
    if getattr(threshold, "ndim", None) == 0 and getattr(threshold, "size", 1) == 1:
        threshold = float(threshold)  # a 0-d array (NumPy, torch, JAX) is one number
    if isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        return _number_in_unit(threshold, "threshold")
    if task == "binary":
        raise TypeError(f"threshold for {spell('task', 'binary')} must be one number in [0, 1], got {threshold!r}")
    th = like(xp, threshold, x, name="threshold")
    c = x.shape[ax]
    if th.ndim != 1 or th.shape[0] != c:
        raise ValueError(f"threshold has shape {tuple(th.shape)} but scores have {c} classes along axis {ax}; "
                         f"give one number, or one threshold per class (shape ({c},))")
    if not bool(xp.all((th >= 0) & (th <= 1))):
        raise ValueError("threshold values must be probabilities in [0, 1]")
    return xp.reshape(th, _class_shape(x.ndim, ax, c))


def _in_space(xp, th, space):
    """A probability threshold in the declared space (decisions are taken where the scores are exact)."""
    if space == "probs":
        return th
    if isinstance(th, float):
        if space == "log_probs":
            return math.log(th) if th > 0 else -math.inf
        return -math.inf if th == 0 else math.inf if th == 1 else float(logit(th))
    with np.errstate(divide="ignore"):
        return xp.log(th) if space == "log_probs" else logit(th)


def _take_first(a, ax, k):
    return a[tuple(slice(None) if i != ax else slice(0, k) for i in range(a.ndim))]



@_quiet
def interpret(scores: Any, task: str, *, space: str = "logits", axis: int = -1, temperature: Any = None,
              threshold: Any = None, top_k: int | None = None, at_least_one: bool = False,
              abstain_below: float | None = None, validate: bool = True, dim: int | None = None,
              conformal: Any = None) -> Interpretation:
    r"""Probabilities, log-probabilities, decisions, confidence, margin and entropy for declared scores.

    The task says how scores become probabilities (``sigmoid`` for binary and per label for
    multilabel, ``softmax`` along ``axis`` for multiclass), the space says what the scores are.
    Decisions:

    * binary: positive when :math:`p > \text{threshold}` (default 0.5, i.e. logit > 0, as sklearn's
      ``predict``);
    * multiclass: :math:`\arg\max_c p_c` (first index on ties); ``top_k`` adds the k most probable
      classes;
    * multilabel: each label with :math:`p_c > \text{threshold}_c` (one threshold, or one per class);
      with ``top_k`` the k most probable labels (that also pass ``threshold`` if one is given); with
      ``at_least_one=True`` a row where nothing passes gets its most probable label;
    * ``abstain_below``: :data:`ABSTAIN` (-1) wherever ``confidence < abstain_below``
      (per sample, or per label for multilabel), applied last.

    Thresholds are compared in the declared space (``z > logit(t)`` for logits), which is exact where
    probabilities round to 0 or 1. Every output is computed row by row, so splitting a batch (down to
    batches of one) gives exactly the same results as one call.

    Args:
        scores: logits/probabilities/log-probabilities: binary any shape (one score per sample),
            multiclass and multilabel with the classes along ``axis``.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        space: ``"logits"`` (default), ``"probs"`` or ``"log_probs"``; declared probabilities are
            validated (in [0, 1], multiclass rows sum to 1) unless ``validate=False``.
        axis: the class axis (``dim=`` is an alias). Ignored for binary.
        temperature: divide logits by this (positive) before the activation. Logits only.
        threshold: probability threshold(s) for binary/multilabel (default 0.5). Not for multiclass
            (use ``abstain_below`` or ``top_k``).
        top_k: number of most probable classes to report (multiclass, multilabel).
        at_least_one: multilabel: never predict an empty label set.
        abstain_below: confidence in [0, 1] under which the decision is :data:`ABSTAIN`.
        validate: check declared probabilities/log-probabilities.
        conformal: a fitted :class:`sigmax.conformal.ConformalClassifier` of the same task: its
            prediction sets, from the scores the decisions see (divided by ``temperature`` when given:
            fit it on scores divided the same way), go in ``sets``. A NaN row's set holds every class.

    Returns:
        An :class:`Interpretation`.

    Raises:
        ValueError/TypeError: unknown task or space, a threshold for multiclass, a threshold of the
        wrong length, ``top_k`` out of range, declared probabilities that are not probabilities.

    Example:
        >>> r = interpret([[2.0, 0.0, -1.0], [0.1, 0.2, 0.0]], "multiclass", abstain_below=0.5)
        >>> r.probs.round(4)
        array([[0.8438, 0.1142, 0.042 ],
               [0.3322, 0.3672, 0.3006]])
        >>> r.predictions, r.confidence.round(4), r.margin.round(4)
        (array([ 0, -1]), array([0.8438, 0.3672]), array([0.7296, 0.0349]))
        >>> interpret([[-3.0, 1.0, 0.5], [-1.0, -2.0, -4.0]], "multilabel", at_least_one=True).predictions
        array([[0, 1, 1],
               [1, 0, 0]])
        >>> interpret([0.3, -2.0], "binary", threshold=0.2).predictions
        array([1, 0])
    """
    task, space = validate_task(task), validate_space(space)
    axis = resolve_axis(axis, dim)
    p = prepare(scores, name="scores")
    xp, x = p.xp, p.x
    if task != "binary" and x.ndim == 0:
        raise ValueError(f"{spell('task', task)} needs scores with a class axis, got a scalar; "
                         f"use {spell('task', 'binary')} for one score per sample")
    ax = normalize_axis(axis, x.ndim) if task != "binary" else None
    if temperature is not None and space != "logits":
        raise ValueError(f"temperature divides logits, but {spell('space', space)}; pass logits or drop temperature")
    # a NaN row gets no decision (the module docstring): which rows, and how many (None when traced)
    nan_rows = xp.isnan(x) if task == "binary" else xp.any(xp.isnan(x), axis=ax)
    n_nan = _count(xp, nan_rows)
    if validate and space != "logits":
        # validate the rows that get a decision; the tolerance follows the caller's dtype (p.out_dtype)
        checked = p
        if n_nan:
            c = 1 if task != "multiclass" else x.shape[ax]
            neutral = (1.0 / c if task == "multiclass" else 0.5) if space == "probs" else \
                (-math.log(c) if task == "multiclass" else -math.log(2.0))
            mask = nan_rows if ax is None else xp.expand_dims(nan_rows, axis=ax)
            checked = p._replace(x=xp.where(mask, xp.asarray(neutral, dtype=x.dtype, device=_device(x)), x))
        (_check_probs if space == "probs" else _check_log_probs)(checked, task, -1 if ax is None else ax, "scores")
    if top_k is not None:
        if task == "binary":
            raise ValueError(f"top_k needs several classes; {spell('task', 'binary')} has one score per sample")
        top_k = validate_top_k(top_k, x.shape[ax])  # the one rule, shared with metrics.accuracy
    if at_least_one and task != "multilabel":
        raise ValueError(f"at_least_one applies to {spell('task', 'multilabel')} (binary and multiclass always decide)")
    if threshold is not None and task == "multiclass":
        raise ValueError("threshold applies to binary and multilabel tasks; for multiclass the decision is the "
                         "argmax: use abstain_below= to refuse unconfident rows, or top_k=")
    if abstain_below is not None:
        abstain_below = _number_in_unit(abstain_below, "abstain_below")
    if conformal is not None and (not callable(getattr(conformal, "predict_sets", None))
                                  or getattr(conformal, "task", None) != task):
        raise ValueError(f"conformal must be a sigmax.conformal.ConformalClassifier fitted for {spell('task', task)}, "
                         f"got {conformal!r}; fit one with ConformalClassifier({task!r}).fit(scores, labels)")

    # scores in the declared space, as the decisions see them (logits divided by the temperature)
    t = check_temperature(xp, temperature, x) if space == "logits" else None
    s = x if t is None else x / t

    if task == "multiclass":
        probs = to_probs(s, task, space=space, axis=ax, validate=False)
        log_probs = to_log_probs(s, task, space=space, axis=ax, validate=False)
        conf = xp.max(probs, axis=ax)
        c = x.shape[ax]
        if c > 1:
            top2 = _take_first(xp.sort(probs, axis=ax, descending=True), ax, 2)
            first = xp.squeeze(_take_first(top2, ax, 1), axis=ax)
            margin = first - xp.squeeze(top2[tuple(slice(None) if i != ax else slice(1, 2) for i in range(x.ndim))],
                                        axis=ax)
        else:
            margin = conf
        # 0 log 0 = 0; NaN stays NaN
        entropy = -xp.sum(xp.where(probs == 0, 0.0, probs * log_probs), axis=ax)
        pred = xp.argmax(s, axis=ax)  # argmax of the scores: exact even where probabilities round to 1
        th = None
    else:
        probs = to_probs(s, task, space=space, validate=False)
        log_probs = to_log_probs(s, task, space=space, validate=False)
        if space == "logits":
            q, log_q = sigmoid(-s), log_sigmoid(-s)  # P(absent) = sigmoid(-z): exact, no 1 - p cancellation
        elif space == "probs":
            q, log_q = 1.0 - s, xp.log1p(-s)
        else:
            q, log_q = -xp.expm1(s), log1mexp(s)  # 1 - exp(lp) without cancellation
        conf = xp.maximum(probs, q)
        margin = xp.abs(probs - q)
        entropy = -(xp.where(probs == 0, 0.0, probs * log_probs) + xp.where(q == 0, 0.0, q * log_q))
        th = _threshold(xp, 0.5 if threshold is None else threshold, x, task, ax)
        passes = s > _in_space(xp, th, space)
        if task == "binary":
            pred = xp.astype(passes, xp.int64)
        else:
            if top_k is not None:
                rank = xp.argsort(xp.argsort(s, axis=ax, descending=True, stable=True), axis=ax, stable=True)
                in_top = rank < top_k
                passes = (in_top & passes) if threshold is not None else in_top
            if at_least_one:
                best = xp.expand_dims(xp.argmax(s, axis=ax), axis=ax)
                cls = xp.reshape(xp.arange(x.shape[ax], device=_device(x)), _class_shape(x.ndim, ax, x.shape[ax]))
                none = ~xp.any(passes, axis=ax, keepdims=True)
                passes = passes | (none & (cls == best))
            pred = xp.astype(passes, xp.int64)

    topk_idx = topk_probs = None
    if top_k is not None:
        topk_idx = _take_first(xp.argsort(s, axis=ax, descending=True, stable=True), ax, top_k)
        topk_probs = finish(p, xp.take_along_axis(probs, topk_idx, axis=ax))
    sets = None
    if conformal is not None:
        with warnings.catch_warnings():  # its NaN warning is the one below
            warnings.filterwarnings("ignore", message=".*contain NaN", category=UserWarning)
            sets = conformal.predict_sets(s, space=space, axis=-1 if ax is None else ax)
    abstained = None
    no_decision = xp.asarray(ABSTAIN, dtype=pred.dtype, device=_device(pred))
    if abstain_below is not None:
        abstained = conf < abstain_below
        pred = xp.where(abstained, no_decision, pred)
    if n_nan != 0:  # NaN rows (every label of a multilabel row): no decision
        nan_pred = nan_rows if task != "multilabel" else xp.expand_dims(nan_rows, axis=ax)
        pred = xp.where(nan_pred, no_decision, pred)
        if abstained is not None:
            abstained = abstained | nan_pred
        if n_nan:
            in_sets = ", and a prediction set of every class" if sets is not None else ""
            warnings.warn(f"{n_nan} row(s) of scores contain NaN: they get no decision (prediction {ABSTAIN}, "
                          f"as an abstention{in_sets}); find where the model produced NaN", UserWarning, stacklevel=3)
    if isinstance(th, float) or th is None:
        th_out = th
    else:
        th_out = finish(p, xp.reshape(th, (-1,)))
    if p.numpy_scalar and getattr(pred, "ndim", 1) == 0:
        pred = pred[()]
        abstained = abstained if abstained is None else abstained[()]
    return Interpretation(
        task=task, space=space, axis=ax,
        probs=finish(p, probs), log_probs=finish(p, log_probs), predictions=pred,
        confidence=finish(p, conf), margin=finish(p, margin), entropy=finish(p, entropy),
        abstained=abstained, topk_indices=topk_idx, topk_probs=topk_probs, threshold=th_out, sets=sets,
    )
