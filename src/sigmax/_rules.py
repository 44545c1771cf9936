r"""The rules of :func:`sigmax.check`: one small function per finding code, and the one table of them.

:data:`RULES` is the single source of the finding codes, their default levels and what each means
(:data:`sigmax.check.CODES` and the tables in the docstrings of :mod:`sigmax.check` are built from
it). A rule is a function of the :class:`Context` of one ``check()`` call that returns what it found
(``None``, one :class:`Hit` or a list of them); the rules run in the order of the table, and a rule
whose ``unless`` codes were already found by an earlier rule is skipped (the more specific diagnosis
says it). Adding a finding is adding one function and one row (see docs/ARCHITECTURE.md).

Everything a rule needs about the scores and targets is computed once, on first use, by
:class:`Context` (value range, rows summing to 1, the form of the targets, the entries that
``ignore_index`` skips). Tolerances come from :mod:`sigmax._tolerance` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from ._array import default_float, is_jax
from ._inputs import spell
from ._tolerance import spacing, sum_tolerance
from .activations import logsumexp

__all__ = ["Hit", "Rule", "Context", "RULES", "run", "table", "double_softmax_floor"]


@dataclass(frozen=True)
class Hit:
    """What a rule found: the message, the fix, a severity when not the rule's default, the numbers."""

    message: str
    fix: str
    severity: str | None = None
    details: dict = field(default_factory=dict)


def hit(message: str, fix: str, severity: str | None = None, **details: Any) -> Hit:
    return Hit(message, fix, severity, details)


def double_softmax_floor(n_classes: int) -> float:
    r"""The smallest cross-entropy reachable when probabilities are passed as logits.

    With perfect one-hot probabilities ``p`` fed to ``softmax`` again, the true class gets
    :math:`e / (e + C - 1)`, so the loss cannot go below :math:`\log(1 + (C - 1)/e)`.

    Example:
        >>> round(double_softmax_floor(10), 4)
        1.4612
    """
    return math.log1p((n_classes - 1) / math.e)


def _count(xp, mask) -> int:
    return int(xp.sum(mask))  # a sum of booleans is an integer in every namespace (no int64 cast: JAX lacks it)


def _all_close_to(xp, v, target, tol) -> bool:
    return bool(xp.all(xp.abs(v - target) <= tol))


def _without(shape, ax) -> tuple:
    return tuple(s for i, s in enumerate(shape) if i != ax)


class Context:
    """The facts of one ``check()`` call that rules look at, each computed once, on first use.

    Given: ``xp`` (the array namespace), ``x`` (the scores, float, at least 1-D), ``dtype`` (the
    scores' own dtype), ``task`` (declared or inferred; ``None`` when unknown), ``space``, ``loss``
    (the canonical loss name or ``None``), ``ax`` (the class axis, non-negative), ``classed`` (the
    scores have a class axis), ``t`` (targets in ``xp`` or ``None``), ``tkind`` (``"int"``,
    ``"bool"``, ``"float"``), ``tdtype`` (the targets' own dtype) and ``ignore_index`` (``None``:
    nothing skipped).
    """

    def __init__(self, xp, x, dtype, *, task, space, loss, ax, classed, t, tkind, tdtype, ignore_index):
        self.xp, self.x, self.dtype = xp, x, dtype
        self.task, self.space, self.loss, self.ax, self.classed = task, space, loss, ax, classed
        self.t, self.tkind, self.tdtype, self.ignore_index = t, tkind, tdtype, ignore_index
        self.shape = tuple(x.shape)
        self.c = int(x.shape[ax]) if classed else 1
        self.n_values = math.prod(self.shape)
        self.n_rows = self.n_values // max(self.c, 1)
        self.where = f" for {loss}" if loss else ""

    # ---- the scores --------------------------------------------------------------------------------
    @cached_property
    def n_nan(self) -> int:
        return _count(self.xp, self.xp.isnan(self.x))

    @cached_property
    def n_pinf(self) -> int:
        return _count(self.xp, self.x == math.inf)

    @cached_property
    def finite(self):
        return self.xp.isfinite(self.x)

    @cached_property
    def all_finite(self) -> bool:
        return bool(self.xp.all(self.finite))

    @cached_property
    def has_finite(self) -> bool:
        return bool(self.xp.any(self.finite))

    @cached_property
    def _range(self) -> tuple[float, float]:
        if not self.has_finite:
            return math.nan, math.nan
        xf = self.x[self.finite]
        return float(self.xp.min(xf)), float(self.xp.max(xf))

    @property
    def lo(self) -> float:
        return self._range[0]

    @property
    def hi(self) -> float:
        return self._range[1]

    @cached_property
    def in01(self) -> bool:
        """Every score is a finite number in [0, 1] (what probabilities look like)."""
        return self.has_finite and self.lo >= 0.0 and self.hi <= 1.0 and not self.n_nan and not self.n_pinf

    @cached_property
    def tol(self) -> float:
        """How far a row of ``c`` scores may sum from 1 (or a log-sum-exp from 0) and count as normalized."""
        return sum_tolerance(self.dtype, self.c)

    @cached_property
    def rows_sum_1(self) -> bool:
        if not (self.classed and self.in01 and self.all_finite):
            return False
        return _all_close_to(self.xp, self.xp.sum(self.x, axis=self.ax), 1.0, self.tol)

    @cached_property
    def other_axis(self) -> int | None:
        """An axis other than the class axis along which the scores sum to 1 (softmax over it), or ``None``."""
        if not (self.classed and self.in01 and self.all_finite):
            return None
        for a, n in enumerate(self.shape):
            if a != self.ax and n > 1 and _all_close_to(self.xp, self.xp.sum(self.x, axis=a), 1.0,
                                                        sum_tolerance(self.dtype, n)):
                return a
        return None

    @cached_property
    def rows_logsumexp_0(self) -> bool:
        """Every row is a log-distribution: finite or ``-inf`` entries whose logsumexp is 0."""
        xp = self.xp
        if not (self.has_finite and bool(xp.all(self.finite | (self.x == -math.inf)))):
            return False
        return _all_close_to(xp, logsumexp(self.x, axis=self.ax), 0.0, self.tol)

    @property
    def multiclass_like(self) -> bool:
        """A softmax task with several classes, declared or possible (task unknown, class axis)."""
        return self.classed and self.task != "multilabel" and self.c > 1

    # ---- the targets -------------------------------------------------------------------------------
    @cached_property
    def tf(self):
        """The targets as the namespace's widest float (float64; float32 where JAX has no float64)."""
        xp = self.xp
        f = default_float(xp, _device_of(self.t)) if is_jax(xp) else xp.float64
        return self.t if self.tkind == "float" and self.t.dtype == f else xp.astype(self.t, f)

    @cached_property
    def t_nonfinite(self) -> int:
        return 0 if self.t is None else _count(self.xp, ~self.xp.isfinite(self.tf))

    @cached_property
    def t_form(self) -> str | None:
        """``None`` (no targets), ``"non-finite"``, ``"binary"`` (one label per score), ``"index"`` (class
        indices), ``"dense"`` (rows of the scores' shape), ``"class-count"`` (rows of another class count)
        or ``"shape"`` (nothing that fits)."""
        if self.t is None:
            return None
        if self.t_nonfinite:
            return "non-finite"
        if self.task == "binary" or not self.classed:
            return "binary"
        tshape = tuple(self.t.shape)
        if tshape == _without(self.shape, self.ax) and self.tkind in ("int", "float") and tshape != self.shape:
            return "index"
        if tshape == self.shape:
            return "dense"
        if len(tshape) == len(self.shape) and _without(tshape, self.ax) == _without(self.shape, self.ax):
            return "class-count"
        return "shape"

    @cached_property
    def t_valid(self):
        """The target entries that count: all but those equal to ``ignore_index`` (class probabilities of a
        multiclass task are never skipped: PyTorch's ``ignore_index`` applies to class indices only)."""
        xp = self.xp
        if self.ignore_index is None or (self.t_form == "dense" and self.task == "multiclass"):
            return xp.ones(self.t.shape, dtype=xp.bool, device=_device_of(self.t))
        return self.tf != self.ignore_index

    @cached_property
    def t_in01(self) -> bool:
        """Every counted target entry lies in [0, 1]."""
        xp, tf = self.xp, self.tf
        return not bool(xp.any(self.t_valid & ((tf < 0) | (tf > 1))))

    @cached_property
    def t_hard(self) -> bool:
        """Every counted target entry is exactly 0 or 1."""
        xp, tf = self.xp, self.tf
        return bool(xp.all(~self.t_valid | (tf == 0) | (tf == 1)))

    @cached_property
    def t_row_sums(self):
        """Dense targets: the sum of each row's counted entries along the class axis."""
        xp = self.xp
        return xp.sum(xp.where(self.t_valid, self.tf, 0.0), axis=self.ax)

    def t_extremes(self, mask) -> tuple[float, float]:
        """Smallest and largest target among ``mask``."""
        xp, tf = self.xp, self.tf
        return float(xp.min(xp.where(mask, tf, math.inf))), float(xp.max(xp.where(mask, tf, -math.inf)))

    def skip_note(self) -> str:
        """How ``ignore_index`` was applied, for messages about targets out of range."""
        if self.ignore_index is None:
            return f"no {spell('ignore_index')} is set"
        return f"{spell('ignore_index', self.ignore_index)} is skipped"

    def skip_fix(self, values) -> str:
        """The fix for negative labels that may mark samples to skip: naming ``ignore_index``."""
        neg = sorted({int(v) for v in values if math.isfinite(v) and v < 0 and v == int(v)})
        if len(neg) == 1:
            return f"; if {neg[0]} marks samples to skip, pass {spell('ignore_index', neg[0])}"
        if neg:
            return f"; mark samples to skip with one label value, passed as {spell('ignore_index')}"
        return ""

    @cached_property
    def mean_nll(self) -> float | None:
        """Index targets: the mean ``-x[target]`` over the counted rows (what ``nll_loss`` returns)."""
        xp, x, ax = self.xp, self.x, self.ax
        if self.t_form != "index":
            return None
        try:
            valid = self.t_valid
            idx = xp.astype(xp.where(valid, self.t, 0), xp.int32 if is_jax(xp) else xp.int64)
            picked = xp.squeeze(xp.take_along_axis(x, xp.expand_dims(idx, axis=ax), axis=ax), axis=ax)
            n = _count(xp, valid)
            return -float(xp.sum(xp.where(valid, picked, 0.0))) / n if n else None
        except Exception:  # a target out of range: reported by the target rules
            return None


def _device_of(a):
    import array_api_compat

    try:
        return array_api_compat.device(a)
    except Exception:  # pragma: no cover - libraries without devices
        return None


# ============================================================================ the rules: scores
def non_finite(c: Context):
    hits = []
    if c.n_nan or (c.n_pinf and c.space == "logits"):
        parts = ([f"{c.n_nan} NaN"] if c.n_nan else []) + ([f"{c.n_pinf} +inf"] if c.n_pinf else [])
        hits.append(hit(
            f"scores contain {' and '.join(parts)} of {c.n_values} values: every loss and probability of those "
            "rows becomes NaN, and one NaN in a mean loss poisons the whole batch.",
            "find the operation that produced them (torch.autograd.set_detect_anomaly(True)); lower the "
            "learning rate or clip gradients; compute the last layer in float32.", n_nan=c.n_nan, n_posinf=c.n_pinf))
    if c.t_nonfinite:
        hits.append(hit(
            f"targets contain {c.t_nonfinite} NaN or inf values: the loss of those samples is NaN.",
            f"clean the labels (NaN usually marks a missing label: drop the sample or mark it with "
            f"{spell('ignore_index')} / a mask).", n_target_nonfinite=c.t_nonfinite))
    return hits


def softmax_over_batch_of_one(c: Context):
    ones = c.lo == 1.0 and c.hi == 1.0
    zeros = c.space == "log_probs" and c.lo == 0.0 and c.hi == 0.0
    if c.classed and c.c > 1 and c.n_rows == 1 and c.has_finite and c.all_finite and (ones or zeros):
        return hit(
            f"every one of the {c.c} scores is exactly {'1' if ones else '0'}: softmax (or log_softmax) was "
            "taken over axis 0, the batch axis, of a batch of one sample, so each class got probability 1 "
            "and the prediction carries no information.",
            "take softmax over the class axis (dim=-1 or dim=1), not dim=0; pass raw logits to the loss.")


def wrong_axis(c: Context):
    if c.space == "log_probs" or not (c.multiclass_like and c.in01 and not c.rows_sum_1 and c.other_axis is not None):
        return None
    if c.space == "logits":
        return hit(
            f"the scores lie in [0, 1] and sum to 1 along axis {c.other_axis}, not along the class axis {c.ax}: "
            "a softmax was taken over the wrong axis (and the result passed on as logits), so every "
            "'probability' mixes samples.",
            f"take softmax over the class axis ({spell('axis', c.ax)}), and give the loss the raw logits, not "
            "softmax outputs.", other_axis=c.other_axis)
    return hit(
        f"the probabilities sum to 1 along axis {c.other_axis}, not along the class axis {c.ax}: softmax was "
        "taken over the wrong axis.", f"take softmax over the class axis ({spell('axis', c.ax)}).",
        other_axis=c.other_axis)


def double_softmax(c: Context):
    if c.space == "logits" and c.multiclass_like and c.in01 and c.rows_sum_1:
        floor = double_softmax_floor(c.c)
        return hit(
            f"the scores declared as logits{c.where} are probabilities (all in [0, 1], every row sums to 1): "
            f"softmax would be applied a second time, squashing them toward uniform. With {c.c} classes the "
            f"cross-entropy can never fall below log(1 + (C-1)/e) = {floor:.4f} nats, gradients shrink, and "
            "the model is mis-calibrated.",
            "remove the softmax at the end of the model and pass its raw outputs (logits) to cross_entropy; "
            f"or, if you only have probabilities, declare {spell('space', 'probs')} (use nll_loss on log(probs)).",
            loss_floor=floor, n_classes=c.c)


def sigmoid_as_logits(c: Context):
    task = c.task
    if not (c.space == "logits" and c.in01):
        return None
    if not (task in ("binary", "multilabel") or (c.classed and task is None) or (task == "multiclass" and c.c > 1)):
        return None
    softmaxed = c.classed and c.c > 1 and c.rows_sum_1
    extra = (" Every row sums to 1: a softmax was applied, but a multi-label task needs one sigmoid per label."
             if softmaxed else "")
    if task == "multiclass":
        cost = (f"softmax of them keeps every probability within a factor e of the others, so no class can get "
                f"more than e/(e + C - 1) = {math.e / (math.e + c.c - 1):.4f} and the cross-entropy never falls "
                f"below {double_softmax_floor(c.c):.4f}.")
    else:
        cost = ("a with-logits loss applies sigmoid again, so probabilities are squeezed into [0.5, 0.731], the "
                "loss never falls below 0.31 (positives) and 0.69 (negatives), and no sample is ever predicted "
                "negative.")
    return hit(
        f"all {c.n_values} scores declared as logits{c.where} lie in [0, 1], like sigmoid outputs: " + cost + extra,
        "remove the sigmoid at the end of the model and pass raw outputs to binary_cross_entropy_with_logits; "
        f"or declare {spell('space', 'probs')} and use binary_cross_entropy.",
        severity="warning" if c.n_values >= 8 else "info")


def log_probs_as_logits(c: Context):
    if not (c.space == "logits" and c.has_finite and c.hi <= c.tol and not c.in01):
        return None
    if c.task == "multiclass" and c.c > 1 and c.rows_logsumexp_0:
        return hit(
            "the scores declared as logits are log-probabilities (all <= 0, logsumexp of every row is 0). "
            "Harmless for softmax and cross_entropy, since log_softmax of log-probabilities returns them "
            "unchanged, but say so.",
            f"declare {spell('space', 'log_probs')} (and use nll_loss), or pass the logits before log_softmax.")
    if c.task in ("binary", "multilabel") and c.n_values >= 8 and c.t_form in ("binary", "dense") and bool(
            c.xp.any(c.t_valid & (c.tf > 0))):
        return hit(
            f"all {c.n_values} scores declared as logits are <= 0, yet some targets are positive: if these are "
            "log_sigmoid outputs, sigmoid of them is at most 0.5 and no label is ever predicted.",
            "pass the raw outputs (before log_sigmoid) to binary_cross_entropy_with_logits, or declare "
            f"{spell('space', 'log_probs')}.", severity="warning")


def logits_as_probs(c: Context):
    if c.space == "probs" and c.has_finite and (c.lo < 0.0 or c.hi > 1.0):
        looks = "log-probabilities (all <= 0)" if c.hi <= 0.0 else "logits"
        return hit(
            f"the scores declared as probabilities{c.where} range over [{c.lo:.4g}, {c.hi:.4g}], outside [0, 1]; "
            f"they look like {looks}. binary_cross_entropy clamps log at -100 and gives meaningless losses; "
            "PyTorch's BCELoss raises on them.",
            f"declare {spell('space', 'logits')} (use binary_cross_entropy_with_logits / cross_entropy)"
            if c.hi > 0 else f"declare {spell('space', 'log_probs')} (use nll_loss)", lo=c.lo, hi=c.hi)


def probs_not_normalized(c: Context):
    if c.space == "probs" and c.task == "multiclass" and c.c > 1 and c.in01 and not c.rows_sum_1:
        return hit(
            f"the rows of the declared multiclass probabilities do not sum to 1 (tolerance {c.tol:.2g}): their "
            "log is not a log-probability and the loss is biased. They may be sigmoid outputs of a multi-label "
            "model.",
            f"apply softmax over the class axis (or pass logits); for independent labels use "
            f"{spell('task', 'multilabel')}.")


def saturated_probs(c: Context):
    if not (c.space == "probs" and c.in01):
        return None
    xp, x = c.xp, c.x
    mc = c.task == "multiclass"  # an exact 0 is wrong, an exact 1 is a sure class
    n_sat = _count(xp, x == 0.0) if mc else _count(xp, (x == 0.0) | (x == 1.0))
    if n_sat:
        return hit(
            f"{n_sat} probabilities are exactly {'0' if mc else '0 or 1'}: their log is -inf, "
            "binary_cross_entropy clamps it at -100 (the loss is capped and the gradient is lost), and "
            "calibration cannot recover them.",
            "pass logits instead and use the with-logits loss (binary_cross_entropy_with_logits / cross_entropy), "
            "which stays exact where probabilities round to 0 or 1.", n_saturated=n_sat)


def probs_as_log_probs(c: Context):
    if c.space == "log_probs" and c.has_finite and c.hi > c.tol and c.in01:
        return hit(
            f"the scores declared as log-probabilities{c.where} are probabilities (all in [0, 1]): nll_loss on "
            "them returns -p[target], between -1 and 0, so the loss is negative, bounded, and its gradient "
            "ignores the other classes (softmax + NLLLoss).",
            "use log_softmax instead of softmax before nll_loss, or better: pass the logits to cross_entropy.")


def logits_as_log_probs(c: Context):
    if c.space != "log_probs" or not c.has_finite:
        return None
    if c.hi > c.tol and not c.in01:
        mean_nll = c.mean_nll
        cost = f" (here mean nll_loss = {mean_nll:.4g})" if mean_nll is not None else ""
        return hit(
            f"the scores declared as log-probabilities{c.where} go up to {c.hi:.4g} (> 0): they are raw logits. "
            f"nll_loss returns -x[target], which is negative and unbounded below{cost}; training pushes the "
            "target logit to +inf instead of learning probabilities.",
            "apply log_softmax before nll_loss, or pass the logits to cross_entropy (which does both).",
            mean_nll=mean_nll)
    if c.hi <= c.tol and c.task == "multiclass" and c.c > 1 and bool(c.xp.all(c.finite | (c.x == -math.inf))) \
            and not c.rows_logsumexp_0:
        return hit(
            "the declared multiclass log-probabilities are all <= 0 but logsumexp of the rows is not 0: they are "
            "not normalized (raw logits that happen to be negative, or log_sigmoid outputs).",
            "apply log_softmax over the class axis before nll_loss, or pass logits to cross_entropy.")


def single_column(c: Context):
    if c.task == "multiclass" and c.c == 1:
        return hit(
            "there is one score column: softmax over one class is always 1, so cross-entropy is always 0 and its "
            "gradient is 0 — the model learns nothing.",
            f"for a yes/no task use {spell('task', 'binary')} with binary_cross_entropy_with_logits on that single "
            "column; or give the model one output per class.")


def binary_two_columns(c: Context):
    if c.task == "binary" and len(c.shape) >= 2 and c.shape[-1] == 2:
        return hit(
            "the binary scores have two columns: each would get its own sigmoid, but two columns usually are the "
            "two classes of a softmax.",
            f"use {spell('task', 'multiclass')} (softmax over both), or two_class_to_binary(scores) to get the one "
            "binary logit.")


def low_precision_logits(c: Context):
    if not (c.space == "logits" and c.has_finite):
        return None
    m = max(abs(c.lo), abs(c.hi))
    sp = spacing(c.dtype, m)
    if sp >= 0.125:
        name = str(c.dtype).replace("torch.", "")
        return hit(
            f"logits reach {m:.4g} in {name}, where neighbouring values are {sp:g} apart: probabilities of close "
            f"classes can only differ by factors of e^{sp:g} = {math.exp(sp):.3f}, and smaller differences are "
            "lost before softmax sees them.",
            "compute the last layer (and the loss) in float32, or keep logits smaller (normalize features, "
            "temperature); sigmax computes half precision in float32 internally but cannot restore lost bits.",
            max_abs=m, spacing=sp)


# ============================================================================ the rules: targets
def target_shape(c: Context):
    shape, tshape = c.shape, (None if c.t is None else tuple(c.t.shape))
    if c.t_form == "binary" and tshape != shape:
        return hit(f"binary targets have shape {tshape} but the scores have shape {shape}.",
                   "give one 0/1 label per score (the same shape as the scores).")
    if c.t_form == "index" and c.task == "multilabel":
        return hit(
            f"targets have shape {tshape}, one class index per sample, but a multilabel task needs a 0/1 row per "
            f"sample (shape {shape}).",
            f"if each sample has exactly one label the task is multiclass: use {spell('task', 'multiclass')} "
            "(softmax + cross_entropy); else give multi-hot targets.")
    if c.t_form == "shape":
        return hit(
            f"targets have shape {tshape}; for scores of shape {shape} (classes along axis {c.ax}) give class "
            f"indices of shape {_without(shape, c.ax)} or multi-hot/probability rows of shape {shape}.",
            f"check the batch size (drop_last?), the class axis ({spell('axis')}), and that targets and scores "
            "come from the same samples.")


def class_count_mismatch(c: Context):
    if c.t_form == "class-count":
        k = int(c.t.shape[c.ax])
        return hit(f"targets have {k} classes along axis {c.ax} but the scores have {c.c}.",
                   "make the model's number of outputs equal the number of classes in the labels (or fix the "
                   f"class axis, {spell('axis')}).", n_target_classes=k, n_score_classes=c.c)


def target_out_of_range(c: Context):
    xp, tf, form = c.xp, c.tf if c.t is not None else None, c.t_form
    if form == "binary" and tuple(c.t.shape) == c.shape:
        bad_mask = c.t_valid & ((tf < 0) | (tf > 1))
        bad = _count(xp, bad_mask)
        if bad:
            lo, hi = c.t_extremes(bad_mask)
            return hit(
                f"{bad} binary targets lie outside [0, 1] (from {lo:.4g} to {hi:.4g}; {c.skip_note()}): the binary "
                "cross-entropy of those samples is meaningless.",
                "binary targets are 0/1 labels (or probabilities in [0, 1]); for class indices use "
                f"{spell('task', 'multiclass')}" + c.skip_fix([lo, hi]) + ".", n_bad=bad)
    elif form == "index" and c.task != "multilabel":
        valid = c.t_valid
        if not bool(xp.all(~valid | (tf == xp.round(tf)))):
            return hit("class-index targets are not whole numbers.",
                       "give integer class indices in [0, C), or class probabilities with the scores' shape.")
        below_mask, above_mask = valid & (tf < 0), valid & (tf >= c.c)
        below, above = _count(xp, below_mask), _count(xp, above_mask)
        if below or above:
            tmin, tmax = (int(v) for v in c.t_extremes(valid))
            hint = (f" The targets go up to {tmax} but the scores have {c.c} classes along axis {c.ax}: the class "
                    "count differs (or the class axis is wrong)." if above else "")
            return hit(
                f"{below + above} class-index targets lie outside [0, {c.c - 1}] (min {tmin}, max {tmax}; "
                f"{c.skip_note()}).{hint} PyTorch fails with a device-side assert on GPU or an IndexError.",
                f"give indices in [0, {c.c - 1}]; check the model's number of outputs and the label encoding "
                "(1-based labels? subtract 1)" + (c.skip_fix(c.t_extremes(below_mask)) if below else "") + ".",
                n_below=below, n_above=above, max_target=tmax)
    elif form == "dense":
        if not c.t_in01:
            lo, hi = c.t_extremes(c.t_valid)
            skip = "" if c.task == "multiclass" else f"; {c.skip_note()}"
            return hit(f"dense targets lie outside [0, 1] (min {lo:.4g}, max {hi:.4g}{skip}).",
                       "give 0/1 labels or class probabilities in [0, 1]"
                       + ("" if c.task == "multiclass" else c.skip_fix([lo, hi])) + ".")
        if c.task == "multiclass" and not c.t_hard and not _all_close_to(
                xp, c.t_row_sums, 1.0, sum_tolerance(c.tdtype, c.c)):
            return hit("class-probability targets do not sum to 1 along the class axis.",
                       f"normalise each row of the targets (divide by its sum), or use {spell('task', 'multilabel')}.")


def multi_hot_targets_multiclass(c: Context):
    if not (c.t_form == "dense" and c.task == "multiclass" and c.t_in01 and c.t_hard):
        return None
    xp, sums = c.xp, c.t_row_sums
    if _all_close_to(xp, sums, 1.0, 0.0):
        return None
    n_rows = math.prod(sums.shape) if sums.ndim else 1
    n_multi, n_none = _count(xp, sums > 1), _count(xp, sums == 0)
    return hit(
        f"the targets are multi-hot: {n_multi} of {n_rows} rows have several true classes and {n_none} have none, "
        f"but softmax ({spell('task', 'multiclass')}) gives probabilities that sum to 1 across classes, so "
        "classes compete: at most one can be predicted, and cross-entropy with these targets is minimised by "
        "splitting probability between the true labels.",
        f"use {spell('task', 'multilabel')}: one sigmoid per class with binary_cross_entropy_with_logits "
        "(torch.nn.BCEWithLogitsLoss).", n_multi=n_multi, n_none=n_none)


def one_hot_targets_multilabel(c: Context):
    if not (c.t_form == "dense" and c.task == "multilabel" and c.t_in01 and c.t_hard):
        return None
    sums = c.t_row_sums
    n_rows = math.prod(sums.shape) if sums.ndim else 1
    if n_rows >= 2 and _all_close_to(c.xp, sums, 1.0, 0.0):
        return hit(
            f"every one of the {n_rows} target rows has exactly one true label: this looks like a single-label "
            "(multiclass) problem. Independent sigmoids waste that knowledge: probabilities do not sum to 1, a "
            "sample can get no label or several, and calibration is per class.",
            f"use {spell('task', 'multiclass')}: softmax over the classes with cross_entropy (and class-index "
            "targets, targets.argmax(axis)).", severity="warning" if n_rows >= 8 else "info", n_rows=n_rows)


# ============================================================================ the table
@dataclass(frozen=True)
class Rule:
    """One finding code: its default ``level``, what it ``means`` (one line, for the docs), the function
    that finds it, and the codes that pre-empt it when an earlier rule found them (``unless``)."""

    code: str
    level: str
    means: str
    find: Callable[[Context], Any]
    unless: tuple[str, ...] = ()


_B1 = ("softmax-over-batch-of-one",)

#: every finding code, in the order the rules run (the single source of codes and levels)
RULES: tuple[Rule, ...] = (
    Rule("non-finite", "error", "NaN or +inf in scores or targets", non_finite),
    Rule("softmax-over-batch-of-one", "error", "softmax over axis 0 of a batch of one: every value 1",
         softmax_over_batch_of_one),
    Rule("wrong-axis", "error", "softmax was taken over another axis (columns sum to 1)", wrong_axis, _B1),
    Rule("double-softmax", "error", "probabilities (rows sum to 1) declared as logits", double_softmax, _B1),
    Rule("sigmoid-as-logits", "warning", "values in [0, 1] fed to sigmoid again (with-logits loss)",
         sigmoid_as_logits, _B1 + ("wrong-axis", "double-softmax")),
    Rule("log-probs-as-logits", "info", "log-softmax outputs declared as logits (harmless for softmax)",
         log_probs_as_logits, _B1),
    Rule("logits-as-probs", "error", "declared probabilities lie outside [0, 1]", logits_as_probs, _B1),
    Rule("probs-not-normalized", "error", "declared multiclass probabilities do not sum to 1",
         probs_not_normalized, _B1 + ("wrong-axis",)),
    Rule("saturated-probs", "warning", "probabilities of exactly 0 or 1 (clamped logs, no gradient)",
         saturated_probs, _B1),
    Rule("logits-as-log-probs", "error", "raw logits declared as log-probabilities (nll_loss < 0)",
         logits_as_log_probs, _B1),
    Rule("probs-as-log-probs", "error", "probabilities declared as log-probabilities (softmax + NLLLoss)",
         probs_as_log_probs, _B1),
    Rule("single-column", "error", "one score column with softmax/cross-entropy: loss always 0", single_column),
    Rule("binary-two-columns", "warning", "two score columns declared as one binary score each", binary_two_columns),
    Rule("low-precision-logits", "warning", "logits so large their dtype cannot tell neighbours apart",
         low_precision_logits),
    Rule("target-shape", "error", "targets do not match the scores' shape", target_shape),
    Rule("class-count-mismatch", "error", "targets have a different number of classes than scores",
         class_count_mismatch),
    Rule("target-out-of-range", "error", "class index outside [0, C) or label outside [0, 1], not ignore_index",
         target_out_of_range),
    Rule("multi-hot-targets-multiclass", "error", "several (or no) true classes per row with a softmax task",
         multi_hot_targets_multiclass, ("target-out-of-range",)),
    Rule("one-hot-targets-multilabel", "warning", "exactly one true label per row with a sigmoid task",
         one_hot_targets_multilabel, ("target-out-of-range",)),
)

LEVELS = ("error", "warning", "info")


def _validate_table() -> None:
    seen: set[str] = set()
    for r in RULES:
        assert r.code not in seen, f"duplicate finding code {r.code!r}"
        assert r.level in LEVELS, r
        assert all(u in seen for u in r.unless), f"{r.code}: 'unless' must name earlier rules"
        seen.add(r.code)


_validate_table()


def run(ctx: Context) -> list[tuple[str, str, Hit]]:
    """Run every rule of :data:`RULES` on ``ctx``, in order; ``(code, severity, hit)`` for each finding."""
    found: list[tuple[str, str, Hit]] = []
    codes: set[str] = set()
    for r in RULES:
        if codes.intersection(r.unless):
            continue
        hits = r.find(ctx)
        if hits is None:
            continue
        for h in ([hits] if isinstance(hits, Hit) else hits):
            found.append((r.code, h.severity or r.level, h))
            codes.add(r.code)
    return found


def table(indent: str = "") -> str:
    """The codes as a reStructuredText table (for the docstrings)."""
    w = max(len(r.code) for r in RULES)
    m = max(len(r.means) for r in RULES)
    rule = f"{'=' * w}  {'=' * 8}  {'=' * m}"
    lines = [rule, f"{'code':<{w}}  {'severity':<8}  what it means", rule]
    lines += [f"{r.code:<{w}}  {r.level:<8}  {r.means}" for r in RULES]
    lines.append(rule)
    return "\n".join(indent + line for line in lines)
