r"""Wiring diagnostics: findings with a stable code, a severity, a message and the fix.

:func:`check` looks at scores (and optionally targets) together with what the caller *declared* —
the task, the space the scores are in (or the loss they go to), the class axis — and reports what
looks miswired: probabilities fed to a softmax loss (the "double softmax"), sigmoid outputs fed to a
with-logits loss, softmax over the wrong axis, multi-hot targets with a single-label task, targets out
of range, NaN, logits too large for their half-precision dtype, raw logits fed to ``nll_loss``...

``check`` only *reports*: it never changes scores, targets or results (DESIGN.md, principle 1; the
value-range heuristics that peers use to silently re-interpret inputs live here, as warnings).
Every finding has a stable ``code`` (see :data:`CODES`) that scripts and CI gates can match.

=============================  ========  ===================================================
code                           severity  what it means
=============================  ========  ===================================================
non-finite                     error     NaN or +inf in scores or targets
double-softmax                 error     probabilities (rows sum to 1) declared as logits
sigmoid-as-logits              warning   values in [0, 1] fed to sigmoid again (with-logits loss)
log-probs-as-logits            info      log-softmax outputs declared as logits (harmless for softmax)
wrong-axis                     error     softmax was taken over another axis (columns sum to 1)
softmax-over-batch-of-one      error     softmax over axis 0 of a batch of one: every value 1
logits-as-probs                error     declared probabilities lie outside [0, 1]
probs-not-normalized           error     declared multiclass probabilities do not sum to 1
saturated-probs                warning   probabilities of exactly 0 or 1 (clamped logs, no gradient)
logits-as-log-probs            error     raw logits declared as log-probabilities (nll_loss < 0)
probs-as-log-probs             error     probabilities declared as log-probabilities (softmax + NLLLoss)
single-column                  error     one score column with softmax/cross-entropy: loss always 0
binary-two-columns             warning   two score columns declared as one binary score each
low-precision-logits           warning   logits so large their dtype cannot tell neighbours apart
target-shape                   error     targets do not match the scores' shape
class-count-mismatch           error     targets have a different number of classes than scores
target-out-of-range            error     class index outside [0, C), or a label outside [0, 1]
multi-hot-targets-multiclass   error     several (or no) true classes per row with a softmax task
one-hot-targets-multilabel     warning   exactly one true label per row with a sigmoid task
=============================  ========  ===================================================

Example:
    >>> import sigmax
    >>> probs = sigmax.softmax([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> for f in check(probs, [0, 2], task="multiclass"):   # probabilities passed as logits
    ...     print(f.severity, f.code)
    error double-softmax
    >>> check([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], [0, 2], task="multiclass").ok
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from ._array import _device, normalize_axis, prepare, resolve_axis
from .activations import logsumexp
from .interpret import _sum_tol, validate_space, validate_task

__all__ = ["Finding", "Findings", "check", "CODES", "SEVERITIES", "LOSSES", "double_softmax_floor"]

SEVERITIES = ("error", "warning", "info")

#: every finding code, with its default severity and a one-line title
CODES: dict[str, tuple[str, str]] = {
    "non-finite": ("error", "NaN or +inf in scores or targets"),
    "double-softmax": ("error", "probabilities declared as logits (softmax applied twice)"),
    "sigmoid-as-logits": ("warning", "values in [0, 1] given to a sigmoid again"),
    "log-probs-as-logits": ("info", "log-probabilities declared as logits"),
    "wrong-axis": ("error", "softmax taken over the wrong axis"),
    "softmax-over-batch-of-one": ("error", "softmax over the batch axis of a batch of one"),
    "logits-as-probs": ("error", "declared probabilities outside [0, 1]"),
    "probs-not-normalized": ("error", "declared multiclass probabilities do not sum to 1"),
    "saturated-probs": ("warning", "probabilities of exactly 0 or 1"),
    "logits-as-log-probs": ("error", "raw logits declared as log-probabilities (nll_loss)"),
    "probs-as-log-probs": ("error", "probabilities declared as log-probabilities"),
    "single-column": ("error", "one score column with softmax / cross-entropy"),
    "binary-two-columns": ("warning", "two score columns for a binary task"),
    "low-precision-logits": ("warning", "logits too large for their floating dtype"),
    "target-shape": ("error", "targets do not match the scores"),
    "class-count-mismatch": ("error", "different class counts in scores and targets"),
    "target-out-of-range": ("error", "target values out of range"),
    "multi-hot-targets-multiclass": ("error", "multi-hot targets with a multiclass task"),
    "one-hot-targets-multilabel": ("warning", "exactly-one-hot targets with a multilabel task"),
}

#: losses :func:`check` knows, and the (task, space) each expects; ``None`` task: binary or multilabel
LOSSES: dict[str, tuple[str | None, str]] = {
    "cross_entropy": ("multiclass", "logits"),
    "nll_loss": ("multiclass", "log_probs"),
    "binary_cross_entropy": (None, "probs"),
    "binary_cross_entropy_with_logits": (None, "logits"),
}
_LOSS_ALIASES = {
    "crossentropyloss": "cross_entropy", "crossentropy": "cross_entropy", "ce": "cross_entropy",
    "nllloss": "nll_loss", "nll": "nll_loss",
    "bceloss": "binary_cross_entropy", "bce": "binary_cross_entropy",
    "bcewithlogitsloss": "binary_cross_entropy_with_logits", "bce_with_logits": "binary_cross_entropy_with_logits",
}


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable ``code``, a ``severity`` ("error", "warning", "info"), what was seen
    and what it costs (``message``), and what to do (``fix``). ``details`` holds the numbers behind it."""

    code: str
    severity: str
    message: str
    fix: str
    details: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "fix": self.fix,
                "details": dict(self.details)}

    def __str__(self) -> str:
        return f"{self.severity}: [{self.code}] {self.message} Fix: {self.fix}"


class Findings(list):
    """The findings of one :func:`check`, errors first; a ``list`` of :class:`Finding`."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self if f.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    @property
    def ok(self) -> bool:
        """No finding of severity ``"error"``."""
        return not self.errors

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps([f.as_dict() for f in self], **kwargs)

    def raise_for_errors(self) -> None:
        """Raise a ``ValueError`` listing the errors, if any (for pipelines that must stop)."""
        if self.errors:
            raise ValueError("sigmax.check found wiring errors:\n" + "\n".join(str(f) for f in self.errors))

    def __str__(self) -> str:
        if not self:
            return "no findings: the wiring looks right"
        return "\n".join(str(f) for f in self)

    def __repr__(self) -> str:
        return f"Findings({self.codes!r})"


def double_softmax_floor(n_classes: int) -> float:
    r"""The smallest cross-entropy reachable when probabilities are passed as logits.

    With perfect one-hot probabilities ``p`` fed to ``softmax`` again, the true class gets
    :math:`e / (e + C - 1)`, so the loss cannot go below :math:`\log(1 + (C - 1)/e)`.

    Example:
        >>> round(double_softmax_floor(10), 4)
        1.4612
    """
    return math.log1p((n_classes - 1) / math.e)


def _resolve_loss(loss: Any, task: Any, space: Any) -> tuple[str | None, Any, Any]:
    if loss is None:
        return None, task, space
    if not isinstance(loss, str):
        name = getattr(loss, "__name__", type(loss).__name__)
    else:
        name = loss
    key = name.strip().lower().replace("-", "_")
    key = _LOSS_ALIASES.get(key.replace("_", ""), _LOSS_ALIASES.get(key, key))
    if key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(map(repr, LOSSES))} "
                         "(or say what the scores are with space=)")
    ltask, lspace = LOSSES[key]
    if space is not None and validate_space(space) != lspace:
        raise ValueError(f"loss={key!r} takes space={lspace!r} but space={space!r} was given; pass only one of them")
    if task is None:
        task = ltask
    elif ltask is not None and validate_task(task) != ltask:
        raise ValueError(f"loss={key!r} is for task={ltask!r} but task={task!r} was given")
    elif ltask is None and validate_task(task) == "multiclass":
        raise ValueError(f"loss={key!r} is for binary and multilabel tasks but task='multiclass' was given; "
                         "use cross_entropy for a multiclass task")
    return key, task, lspace


def _count(xp, mask) -> int:
    return int(xp.sum(xp.astype(mask, xp.int64)))


def _all_close_to(xp, v, target, tol) -> bool:
    return bool(xp.all(xp.abs(v - target) <= tol))


def _detach(a):
    return a.detach() if hasattr(a, "detach") and hasattr(a, "requires_grad") else a


def _spacing(dtype_name: str, m: float) -> float:
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}.get(dtype_name)
    if eps is None or not m > 0 or not math.isfinite(m):
        return 0.0
    return 2.0 ** math.floor(math.log2(m)) * eps


def check(scores: Any, targets: Any = None, *, task: str | None = None, space: str | None = None,
          axis: int = -1, loss: Any = None, ignore_index: int = -100, dim: int | None = None) -> Findings:
    r"""Diagnose how ``scores`` (and ``targets``) are wired; return findings, never change anything.

    Args:
        scores: model outputs, classes along ``axis`` (binary: one score per sample).
        targets: optional: class indices (shape of ``scores`` without the class axis), multi-hot rows
            or class probabilities (shape of ``scores``), or 0/1 labels (binary).
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"``; ``None`` infers it where the shapes
            say (1-D scores: binary; index targets: multiclass) and skips task-specific checks otherwise.
        space: what the scores were declared to be (``"logits"``, the default, ``"probs"`` or
            ``"log_probs"``), i.e. what the code consuming them expects.
        axis: the class axis (``dim=`` is an alias).
        loss: instead of ``space``: the loss the scores go to (``"cross_entropy"``, ``"nll_loss"``,
            ``"binary_cross_entropy"``, ``"binary_cross_entropy_with_logits"``, PyTorch's class
            names such as ``"BCEWithLogitsLoss"``, or the function); sets the expected space and task.
        ignore_index: index targets equal to this are skipped (PyTorch's default -100).

    Returns:
        :class:`Findings` (a list of :class:`Finding`, errors first); ``.ok`` is ``True`` when no
        finding is an error. Heuristic findings need strong evidence (for instance *every* row summing
        to 1), so correctly wired scores of trained models give no findings.

    Raises:
        ValueError/TypeError only for unusable arguments (unknown task/space/loss, bad axis).

    Example:
        >>> import sigmax
        >>> x = [[0.9, 0.1], [0.3, 0.7]]
        >>> [f.code for f in check(x, loss="nll_loss")]      # softmax then NLLLoss
        ['probs-as-log-probs']
        >>> [f.code for f in check([[2.0, -1.0], [0.5, 1.5]], [[0, 1], [1, 1]], task="multiclass")]
        ['multi-hot-targets-multiclass']
    """
    loss_name, task, space = _resolve_loss(loss, task, space)
    space = validate_space("logits" if space is None else space)
    task = validate_task(task) if task is not None else None
    axis = resolve_axis(axis, dim)
    p = prepare(_detach(scores), name="scores")
    xp, x = p.xp, p.x
    dtype_name = str(p.out_dtype).replace("torch.", "")
    out: list[Finding] = []

    def add(code: str, message: str, fix: str, severity: str | None = None, **details: Any) -> None:
        out.append(Finding(code, severity or CODES[code][0], message, fix, details))

    if x.ndim == 0:
        x = xp.reshape(x, (1,))
    if task is None and x.ndim == 1:
        task = "binary"
    t, tkind = _targets(targets, xp, _device(x))
    ax = normalize_axis(axis, x.ndim) if x.ndim >= 1 else 0
    if task is None and t is not None:
        if tuple(t.shape) == _without(x.shape, ax) and tkind == "int":
            task = "multiclass"
    classed = task in ("multiclass", "multilabel") or (task is None and x.ndim >= 2)
    c = int(x.shape[ax]) if classed else 1
    n_values = math.prod(x.shape)
    where = f" for {loss_name}" if loss_name else ""

    # ---- NaN / inf -------------------------------------------------------------------------------
    n_nan = _count(xp, xp.isnan(x))
    n_pinf = _count(xp, x == math.inf)
    if n_nan or (n_pinf and space == "logits"):
        parts = ([f"{n_nan} NaN"] if n_nan else []) + ([f"{n_pinf} +inf"] if n_pinf else [])
        add("non-finite", f"scores contain {' and '.join(parts)} of {n_values} values: every loss and "
            "probability of those rows becomes NaN, and one NaN in a mean loss poisons the whole batch.",
            "find the operation that produced them (torch.autograd.set_detect_anomaly(True)); lower the "
            "learning rate or clip gradients; compute the last layer in float32.", n_nan=n_nan, n_posinf=n_pinf)
    finite = xp.isfinite(x)
    has_finite = bool(xp.any(finite))
    xf = x[finite] if has_finite else None
    lo = float(xp.min(xf)) if has_finite else math.nan
    hi = float(xp.max(xf)) if has_finite else math.nan
    in01 = has_finite and lo >= 0.0 and hi <= 1.0 and not n_nan and not n_pinf

    tol = _sum_tol(p.out_dtype, c)
    rows_sum_1 = cols_sum_1 = False
    other_axis = None
    if classed and x.ndim >= 1 and in01 and bool(xp.all(finite)):
        rows_sum_1 = _all_close_to(xp, xp.sum(x, axis=ax), 1.0, tol)
        for a in range(x.ndim):
            if a != ax and x.shape[a] > 1 and _all_close_to(xp, xp.sum(x, axis=a), 1.0, _sum_tol(p.out_dtype, x.shape[a])):
                cols_sum_1, other_axis = True, a
                break
    n_rows = n_values // max(c, 1)

    # ---- softmax over the batch axis of a batch of one: every value exactly 1 (or 0 in log space) ----
    batch_of_one = classed and c > 1 and n_rows == 1 and has_finite and bool(xp.all(finite)) and (
        (lo == 1.0 and hi == 1.0) or (space == "log_probs" and lo == 0.0 and hi == 0.0))
    if batch_of_one:
        add("softmax-over-batch-of-one",
            f"every one of the {c} scores is exactly {'1' if lo == 1.0 else '0'}: softmax (or log_softmax) was "
            "taken over axis 0, the batch axis, of a batch of one sample, so each class got probability 1 "
            "and the prediction carries no information.",
            "take softmax over the class axis (dim=-1 or dim=1), not dim=0; pass raw logits to the loss.")

    # ---- the declared space against the values ---------------------------------------------------
    elif space == "logits":
        if classed and task != "multilabel" and c > 1 and in01 and not rows_sum_1 and cols_sum_1:
            add("wrong-axis", f"the scores lie in [0, 1] and sum to 1 along axis {other_axis}, not along the class "
                f"axis {ax}: a softmax was taken over the wrong axis (and the result passed on as logits), "
                "so every 'probability' mixes samples.",
                f"take softmax over the class axis (axis={ax}), and give the loss the raw logits, not softmax "
                "outputs.", other_axis=other_axis)
        elif classed and c > 1 and in01 and rows_sum_1 and task != "multilabel":
            floor = double_softmax_floor(c)
            add("double-softmax", f"the scores declared as logits{where} are probabilities (all in [0, 1], every "
                f"row sums to 1): softmax would be applied a second time, squashing them toward uniform. "
                f"With {c} classes the cross-entropy can never fall below log(1 + (C-1)/e) = {floor:.4f} "
                "nats, gradients shrink, and the model is mis-calibrated.",
                "remove the softmax at the end of the model and pass its raw outputs (logits) to cross_entropy; "
                "or, if you only have probabilities, declare space='probs' (use nll_loss on log(probs)).",
                loss_floor=floor, n_classes=c)
        elif in01 and (task in ("binary", "multilabel") or (classed and task is None) or (task == "multiclass" and c > 1)):
            strong = n_values >= 8
            softmaxed = classed and c > 1 and rows_sum_1
            extra = " Every row sums to 1: a softmax was applied, but a multi-label task needs one sigmoid per " \
                    "label." if softmaxed else ""
            if task == "multiclass":
                cost = (f"softmax of them keeps every probability within a factor e of the others, so no class can "
                        f"get more than e/(e + C - 1) = {math.e / (math.e + c - 1):.4f} and the cross-entropy "
                        f"never falls below {double_softmax_floor(c):.4f}.")
            else:
                cost = ("a with-logits loss applies sigmoid again, so probabilities are squeezed into [0.5, 0.731], "
                        "the loss never falls below 0.31 (positives) and 0.69 (negatives), and no sample is ever "
                        "predicted negative.")
            add("sigmoid-as-logits", f"all {n_values} scores declared as logits{where} lie in [0, 1], like sigmoid "
                "outputs: " + cost + extra,
                "remove the sigmoid at the end of the model and pass raw outputs to "
                "binary_cross_entropy_with_logits; or declare space='probs' and use binary_cross_entropy.",
                severity="warning" if strong else "info")
        elif has_finite and hi <= tol and not in01:
            if task == "multiclass" and c > 1 and bool(xp.all(finite | (x == -math.inf))) and _all_close_to(
                    xp, logsumexp(x, axis=ax), 0.0, tol):
                add("log-probs-as-logits", "the scores declared as logits are log-probabilities (all <= 0, "
                    "logsumexp of every row is 0). Harmless for softmax and cross_entropy, since log_softmax of "
                    "log-probabilities returns them unchanged, but say so.",
                    "declare space='log_probs' (and use nll_loss), or pass the logits before log_softmax.")
            elif task in ("binary", "multilabel") and n_values >= 8 and t is not None and _any_positive(xp, t):
                add("log-probs-as-logits", f"all {n_values} scores declared as logits are <= 0, yet some targets "
                    "are positive: if these are log_sigmoid outputs, sigmoid of them is at most 0.5 and no label "
                    "is ever predicted.",
                    "pass the raw outputs (before log_sigmoid) to binary_cross_entropy_with_logits, or declare "
                    "space='log_probs'.", severity="warning")
    elif space == "probs":
        if has_finite and (lo < 0.0 or hi > 1.0):
            looks = "log-probabilities (all <= 0)" if hi <= 0.0 else "logits"
            add("logits-as-probs", f"the scores declared as probabilities{where} range over [{lo:.4g}, {hi:.4g}], "
                f"outside [0, 1]; they look like {looks}. binary_cross_entropy clamps log at -100 and gives "
                "meaningless losses; PyTorch's BCELoss raises on them.",
                "declare space='logits' (use binary_cross_entropy_with_logits / cross_entropy)" if hi > 0 else
                "declare space='log_probs' (use nll_loss)", lo=lo, hi=hi)
        elif classed and task != "multilabel" and c > 1 and in01 and not rows_sum_1 and cols_sum_1:
            add("wrong-axis", f"the probabilities sum to 1 along axis {other_axis}, not along the class axis {ax}: "
                "softmax was taken over the wrong axis.", f"take softmax over the class axis (axis={ax}).",
                other_axis=other_axis)
        elif task == "multiclass" and c > 1 and in01 and not rows_sum_1:
            add("probs-not-normalized", f"the rows of the declared multiclass probabilities do not sum to 1 "
                f"(tolerance {tol:.2g}): their log is not a log-probability and the loss is biased. They may "
                "be sigmoid outputs of a multi-label model.",
                "apply softmax over the class axis (or pass logits); for independent labels use task='multilabel'.")
        if in01:
            n_sat = _count(xp, (x == 0.0) | (x == 1.0)) if task != "multiclass" else _count(xp, x == 0.0)
            if n_sat:
                add("saturated-probs", f"{n_sat} probabilities are exactly {'0' if task == 'multiclass' else '0 or 1'}: "
                    "their log is -inf, binary_cross_entropy clamps it at -100 (the loss is capped and the "
                    "gradient is lost), and calibration cannot recover them.",
                    "pass logits instead and use the with-logits loss (binary_cross_entropy_with_logits / "
                    "cross_entropy), which stays exact where probabilities round to 0 or 1.", n_saturated=n_sat)
    else:  # log_probs
        if has_finite and hi > tol:
            if in01 and lo >= 0.0:
                add("probs-as-log-probs", f"the scores declared as log-probabilities{where} are probabilities "
                    "(all in [0, 1]): nll_loss on them returns -p[target], between -1 and 0, so the loss is negative, "
                    "bounded, and its gradient ignores the other classes (softmax + NLLLoss).",
                    "use log_softmax instead of softmax before nll_loss, or better: pass the logits to "
                    "cross_entropy.")
            else:
                mean_nll = _mean_nll(xp, x, t, ax, ignore_index) if (t is not None and tkind == "int") else None
                cost = f" (here mean nll_loss = {mean_nll:.4g})" if mean_nll is not None else ""
                add("logits-as-log-probs", f"the scores declared as log-probabilities{where} go up to {hi:.4g} (> 0): "
                    "they are raw logits. nll_loss returns -x[target], which is negative and unbounded below"
                    f"{cost}; training pushes the target logit to +inf instead of learning probabilities.",
                    "apply log_softmax before nll_loss, or pass the logits to cross_entropy (which does both).",
                    mean_nll=mean_nll)
        elif task == "multiclass" and c > 1 and has_finite and bool(xp.all(finite | (x == -math.inf))):
            lse = logsumexp(x, axis=ax)
            if not _all_close_to(xp, lse, 0.0, tol):
                add("logits-as-log-probs", "the declared multiclass log-probabilities are all <= 0 but logsumexp of "
                    "the rows is not 0: they are not normalized (raw logits that happen to be negative, or "
                    "log_sigmoid outputs).",
                    "apply log_softmax over the class axis before nll_loss, or pass logits to cross_entropy.")

    # ---- the shape of the scores against the task ------------------------------------------------
    if task == "multiclass" and c == 1:
        add("single-column", "there is one score column: softmax over one class is always 1, so cross-entropy is "
            "always 0 and its gradient is 0 — the model learns nothing.",
            "for a yes/no task use task='binary' with binary_cross_entropy_with_logits on that single column; "
            "or give the model one output per class.")
    if task == "binary" and x.ndim >= 2 and x.shape[-1] == 2:
        add("binary-two-columns", "the binary scores have two columns: each would get its own sigmoid, but two "
            "columns usually are the two classes of a softmax.",
            "use task='multiclass' (softmax over both), or two_class_to_binary(scores) to get the one binary logit.")

    # ---- precision ----------------------------------------------------------------------------------
    if space == "logits" and has_finite:
        m = max(abs(lo), abs(hi))
        sp = _spacing(dtype_name, m)
        if sp >= 0.125:
            add("low-precision-logits", f"logits reach {m:.4g} in {dtype_name}, where neighbouring values are "
                f"{sp:g} apart: probabilities of close classes can only differ by factors of e^{sp:g} = "
                f"{math.exp(sp):.3f}, and smaller differences are lost before softmax sees them.",
                "compute the last layer (and the loss) in float32, or keep logits smaller (normalize features, "
                "temperature); sigmax computes half precision in float32 internally but cannot restore lost bits.",
                max_abs=m, spacing=sp)

    # ---- targets ------------------------------------------------------------------------------------
    if t is not None:
        _check_targets(add, xp, x, t, tkind, task, ax, c, classed, ignore_index)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    return Findings(sorted(out, key=lambda f: order[f.severity]))


def _without(shape, ax) -> tuple:
    return tuple(s for i, s in enumerate(shape) if i != ax)


def _any_positive(xp, t) -> bool:
    return bool(xp.any(t > 0))


def _targets(targets: Any, xp, device=None) -> tuple[Any, str | None]:
    """Targets as an array of the scores' library, and their kind: ``"int"``, ``"bool"`` or ``"float"``."""
    if targets is None:
        return None, None
    targets = _detach(targets)
    if isinstance(targets, (list, tuple, int, float)) or isinstance(targets, np.generic):
        targets = np.asarray(targets)
    if not array_api_compat.is_array_api_obj(targets):
        raise TypeError(f"targets must be an array or a list, got {type(targets).__name__}")
    if array_api_compat.array_namespace(targets) is not xp:
        from .testing import to_numpy

        targets = np.asarray(to_numpy(targets))
        targets = targets if array_api_compat.is_numpy_namespace(xp) else xp.asarray(targets, device=device)
    tt = targets.dtype
    if tt == xp.bool:
        return targets, "bool"
    try:
        is_float = xp.isdtype(tt, "real floating")
    except (AttributeError, TypeError):  # pragma: no cover
        is_float = np.issubdtype(np.dtype(tt), np.floating)
    if hasattr(tt, "is_floating_point"):
        is_float = tt.is_floating_point
    return targets, ("float" if is_float else "int")


def _mean_nll(xp, x, t, ax, ignore_index) -> float | None:
    try:
        valid = t != ignore_index
        idx = xp.where(valid, t, 0)
        idx = xp.astype(idx, xp.int64)
        picked = xp.take_along_axis(x, xp.expand_dims(idx, axis=ax), axis=ax)
        picked = xp.squeeze(picked, axis=ax)
        n = _count(xp, valid)
        return -float(xp.sum(xp.where(valid, picked, 0.0))) / n if n else None
    except Exception:  # a malformed target is reported by the target checks
        return None


def _check_targets(add, xp, x, t, tkind, task, ax, c, classed, ignore_index) -> None:
    shape, tshape = tuple(x.shape), tuple(t.shape)
    tf = xp.astype(t, xp.float64) if tkind != "float" or t.dtype != xp.float64 else t
    n_nan = _count(xp, ~xp.isfinite(tf))
    if n_nan:
        add("non-finite", f"targets contain {n_nan} NaN or inf values: the loss of those samples is NaN.",
            "clean the labels (NaN usually marks a missing label: drop the sample or use ignore_index / a mask).",
            n_target_nonfinite=n_nan)
        return
    index_shape = _without(shape, ax) if classed else shape

    if task == "binary" or (not classed):
        if tshape != shape:
            add("target-shape", f"binary targets have shape {tshape} but the scores have shape {shape}.",
                "give one 0/1 label per score (the same shape as the scores).")
            return
        bad = _count(xp, (tf < 0) | (tf > 1))
        if bad:
            add("target-out-of-range", f"{bad} binary targets lie outside [0, 1] (min {float(xp.min(tf)):.4g}, max "
                f"{float(xp.max(tf)):.4g}): the binary cross-entropy of those samples is meaningless.",
                "binary targets are 0/1 labels (or probabilities in [0, 1]); for class indices use task='multiclass'.",
                n_bad=bad)
        return

    if tshape == index_shape and tkind in ("int", "float") and not (tshape == shape):
        # class indices
        if task == "multilabel":
            add("target-shape", f"targets have shape {tshape}, one class index per sample, but a multilabel task needs "
                f"a 0/1 row per sample (shape {shape}).",
                "if each sample has exactly one label the task is multiclass: use task='multiclass' (softmax + "
                "cross_entropy); else give multi-hot targets.")
            return
        if tkind == "float" and not bool(xp.all(tf == xp.round(tf))):
            add("target-out-of-range", "class-index targets are not whole numbers.",
                "give integer class indices in [0, C), or class probabilities with the scores' shape.")
            return
        valid = tf != ignore_index
        below = _count(xp, valid & (tf < 0))
        above = _count(xp, valid & (tf >= c))
        if below or above:
            tmax = int(xp.max(xp.where(valid, tf, 0.0)))
            tmin = int(xp.min(xp.where(valid, tf, 0.0)))
            hint = (f" The targets go up to {tmax} but the scores have {c} classes along axis {ax}: the class count "
                    "differs (or the class axis is wrong)." if above else "")
            add("target-out-of-range", f"{below + above} class-index targets lie outside [0, {c - 1}] (min {tmin}, "
                f"max {tmax}; ignore_index={ignore_index} is skipped).{hint} PyTorch fails with a device-side "
                "assert on GPU or an IndexError.",
                f"give indices in [0, {c - 1}]; check the model's number of outputs and the label encoding "
                "(1-based labels? subtract 1).", n_below=below, n_above=above, max_target=tmax)
        return

    if tshape == shape:
        # dense: multi-hot or class probabilities, classes along ax
        if bool(xp.any((tf < 0) | (tf > 1))):
            add("target-out-of-range", f"dense targets lie outside [0, 1] (min {float(xp.min(tf)):.4g}, max "
                f"{float(xp.max(tf)):.4g}).", "give 0/1 labels or class probabilities in [0, 1].")
            return
        binary = bool(xp.all((tf == 0) | (tf == 1)))
        sums = xp.sum(tf, axis=ax)
        n_rows = math.prod(sums.shape) if sums.ndim else 1
        if task == "multiclass":
            if binary and not _all_close_to(xp, sums, 1.0, 0.0):
                n_multi = _count(xp, sums > 1)
                n_none = _count(xp, sums == 0)
                add("multi-hot-targets-multiclass", f"the targets are multi-hot: {n_multi} of {n_rows} rows have "
                    f"several true classes and {n_none} have none, but softmax (task='multiclass') gives "
                    "probabilities that sum to 1 across classes, so classes compete: at most one can be "
                    "predicted, and cross-entropy with these targets is minimised by splitting probability "
                    "between the true labels.",
                    "use task='multilabel': one sigmoid per class with binary_cross_entropy_with_logits "
                    "(torch.nn.BCEWithLogitsLoss).", n_multi=n_multi, n_none=n_none)
            elif not binary and not _all_close_to(xp, sums, 1.0, _sum_tol(xp.float64, c)):
                add("target-out-of-range", "class-probability targets do not sum to 1 along the class axis.",
                    "normalise each row of the targets (divide by its sum), or use task='multilabel'.")
        elif task == "multilabel":
            if binary and n_rows >= 2 and _all_close_to(xp, sums, 1.0, 0.0):
                add("one-hot-targets-multilabel", f"every one of the {n_rows} target rows has exactly one true label: "
                    "this looks like a single-label (multiclass) problem. Independent sigmoids waste that "
                    "knowledge: probabilities do not sum to 1, a sample can get no label or several, and "
                    "calibration is per class.",
                    "use task='multiclass': softmax over the classes with cross_entropy (and class-index targets, "
                    "targets.argmax(axis)).", severity="warning" if n_rows >= 8 else "info", n_rows=n_rows)
        return

    if len(tshape) == len(shape) and _without(tshape, ax) == _without(shape, ax):
        add("class-count-mismatch", f"targets have {tshape[ax]} classes along axis {ax} but the scores have {c}.",
            "make the model's number of outputs equal the number of classes in the labels (or fix the class axis).",
            n_target_classes=int(tshape[ax]), n_score_classes=c)
        return
    add("target-shape", f"targets have shape {tshape}; for scores of shape {shape} (classes along axis {ax}) give "
        f"class indices of shape {index_shape} or multi-hot/probability rows of shape {shape}.",
        "check the batch size (drop_last?), the class axis (axis=/dim=), and that targets and scores come from the "
        "same samples.")
