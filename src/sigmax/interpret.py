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
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ._array import (
    _device,
    check_temperature,
    finish,
    like,
    normalize_axis,
    prepare,
    resolve_axis,
)
from ._array import quiet as _quiet
from .activations import log_sigmoid, log_softmax, logit, logsumexp, sigmoid, softmax

__all__ = ["TASKS", "SPACES", "ABSTAIN", "validate_task", "validate_space", "to_probs", "to_log_probs",
           "validate_probs", "validate_log_probs", "interpret", "Interpretation"]

#: the prediction given where ``interpret(..., abstain_below=...)`` abstains
ABSTAIN = -1

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
        finite = x[xp.isfinite(x)]  # torch's .size is a method: count elements through the shape
        some = math.prod(finite.shape) > 0
        lo = float(xp.min(finite)) if some else float("nan")
        hi = float(xp.max(finite)) if some else float("nan")
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
        tol = _sum_tol(p.out_dtype, x.shape[ax])
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


def _sum_tol(dtype, c: int) -> float:
    """How far a sum of ``c`` probabilities stored in ``dtype`` may be from 1: ``8 c eps``, where
    eps is the dtype's (1e-3 for half precision) and at least 1e-6 for float64 (float64 probabilities
    are often float32 ones cast up)."""
    name = str(dtype)
    eps = float(np.finfo(np.float32 if name.endswith("float32") else np.float64).eps)
    if "16" in name:
        eps = 1e-3
    return max(1e-6 if eps < 1e-10 else 0.0, 8 * c * eps)


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
    task = validate_task(task)
    p = prepare(log_probs, name=name)
    xp, x = p.xp, p.x
    c = x.shape[normalize_axis(axis, x.ndim)] if (task == "multiclass" and x.ndim >= 1) else 1
    tol = _sum_tol(p.out_dtype, c)
    if bool(xp.any(xp.isnan(x))):
        raise ValueError(f"{name} were declared space='log_probs' but contain NaN; find where the model produced it")
    bad = x > tol
    nbad = int(xp.sum(xp.astype(bad, xp.int64)))
    if nbad:
        hi = float(xp.max(x))
        cause = ("they lie in [0, 1] like probabilities; pass space='probs'"
                 if bool(xp.all((x >= 0) & (x <= 1))) else "these look like logits; pass space='logits'")
        raise ValueError(f"{name} were declared space='log_probs' but {nbad} value(s) are > 0 (max {hi:.4g}): {cause}")
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
                "multi-label model (use task='multilabel') or log_softmax over another axis")


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
    from .testing import to_numpy

    return to_numpy(a)


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
        raise TypeError(f"threshold for task='binary' must be one number in [0, 1], got {threshold!r}")
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


def _log1mexp(xp, lp):
    # log(1 - exp(lp)) for lp <= 0: log(-expm1(lp)) near 0, log1p(-exp(lp)) below -ln 2 (Maechler 2012)
    near = lp > -math.log(2.0)
    a = xp.where(near, lp, -1.0)
    b = xp.where(near, -1.0, lp)
    return xp.where(near, xp.log(-xp.expm1(a)), xp.log1p(-xp.exp(b)))


def _take_first(a, ax, k):
    return a[tuple(slice(None) if i != ax else slice(0, k) for i in range(a.ndim))]



@_quiet
def interpret(scores: Any, task: str, *, space: str = "logits", axis: int = -1, temperature: Any = None,
              threshold: Any = None, top_k: int | None = None, at_least_one: bool = False,
              abstain_below: float | None = None, validate: bool = True, dim: int | None = None) -> Interpretation:
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
        raise ValueError(f"task={task!r} needs scores with a class axis, got a scalar; "
                         "use task='binary' for one score per sample")
    ax = normalize_axis(axis, x.ndim) if task != "binary" else None
    if temperature is not None and space != "logits":
        raise ValueError(f"temperature divides logits, but space={space!r}; pass logits or drop temperature")
    # validate the caller's array, not the float32 copy of half input: the tolerance follows its dtype
    if validate and space == "probs":
        validate_probs(scores, task, axis=-1 if ax is None else ax)
    elif validate and space == "log_probs":
        validate_log_probs(scores, task, axis=-1 if ax is None else ax)
    if top_k is not None:
        if task == "binary":
            raise ValueError("top_k needs several classes; task='binary' has one score per sample")
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= x.shape[ax]:
            raise ValueError(f"top_k must be an integer in [1, {x.shape[ax]}] (the number of classes), got {top_k!r}")
        top_k = int(top_k)
    if at_least_one and task != "multilabel":
        raise ValueError("at_least_one applies to task='multilabel' (binary and multiclass always decide)")
    if threshold is not None and task == "multiclass":
        raise ValueError("threshold applies to binary and multilabel tasks; for multiclass the decision is the "
                         "argmax: use abstain_below= to refuse unconfident rows, or top_k=")
    if abstain_below is not None:
        abstain_below = _number_in_unit(abstain_below, "abstain_below")

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
            q, log_q = -xp.expm1(s), _log1mexp(xp, s)  # 1 - exp(lp) without cancellation
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
    abstained = None
    if abstain_below is not None:
        abstained = conf < abstain_below
        pred = xp.where(abstained, xp.asarray(ABSTAIN, dtype=pred.dtype, device=_device(pred)), pred)
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
        abstained=abstained, topk_indices=topk_idx, topk_probs=topk_probs, threshold=th_out,
    )
