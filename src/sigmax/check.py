r"""Wiring diagnostics: findings with a stable code, a severity, a message and the fix.

:func:`check` looks at scores (and optionally targets) together with what the caller *declared* —
the task, the space the scores are in (or the loss they go to), the class axis — and reports what
looks miswired: probabilities fed to a softmax loss (the "double softmax"), sigmoid outputs fed to a
with-logits loss, softmax over the wrong axis, multi-hot targets with a single-label task, targets out
of range, NaN, logits too large for their half-precision dtype, raw logits fed to ``nll_loss``...

``check`` only *reports*: it never changes scores, targets or results (the value-range heuristics
that peers use to silently re-interpret inputs live here, as warnings; see docs/ARCHITECTURE.md).
Every finding has a stable ``code`` that scripts and CI gates can match. The codes, their default
levels and what each means (one rule each, in :mod:`sigmax._rules`; :data:`CODES` maps a code to
its level and meaning; a rule lowers its level where the evidence is weak, e.g. few values):

{codes}

Targets equal to ``ignore_index`` (PyTorch's -100 by default; ``None`` skips nothing) are left out
by every rule, as :mod:`sigmax.metrics` and ``sigmax report`` leave them out; any other label out of
range is a ``target-out-of-range`` error. The result says which task and space the rules assumed
(:attr:`Findings.task`, :attr:`Findings.space`), inferred or declared.

Example:
    >>> import sigmax
    >>> probs = sigmax.softmax([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> found = check(probs, [0, 2])   # probabilities passed as logits; the task is inferred
    >>> [(f.severity, f.code) for f in found], found.task, found.task_inferred
    ([('error', 'double-softmax')], 'multiclass', True)
    >>> check([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], [0, 2], task="multiclass").ok
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from . import _rules
from ._array import is_floating, is_numpy, normalize_axis, prepare, resolve_axis
from ._inputs import spell, to_numpy, validate_ignore_index, validate_space, validate_task
from ._rules import double_softmax_floor

__all__ = ["Finding", "Findings", "check", "CODES", "SEVERITIES", "LOSSES", "LOSS_ALIASES", "loss_key",
           "double_softmax_floor"]

SEVERITIES = _rules.LEVELS

#: every finding code, with its default severity and what it means (built from :data:`sigmax._rules.RULES`)
CODES: dict[str, tuple[str, str]] = {r.code: (r.level, r.means) for r in _rules.RULES}

#: losses :func:`check` knows, and the (task, space) each expects; ``None`` task: binary or multilabel
LOSSES: dict[str, tuple[str | None, str]] = {
    "cross_entropy": ("multiclass", "logits"),
    "nll_loss": ("multiclass", "log_probs"),
    "binary_cross_entropy": (None, "probs"),
    "binary_cross_entropy_with_logits": (None, "logits"),
}
#: other spellings of the :data:`LOSSES` (PyTorch's class names, short names), lower case without ``_``
LOSS_ALIASES: dict[str, str] = {
    "crossentropyloss": "cross_entropy", "crossentropy": "cross_entropy", "ce": "cross_entropy",
    "nllloss": "nll_loss", "nll": "nll_loss",
    "bceloss": "binary_cross_entropy", "bce": "binary_cross_entropy",
    "bcewithlogitsloss": "binary_cross_entropy_with_logits", "bcewithlogits": "binary_cross_entropy_with_logits",
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
    """The findings of one :func:`check`, errors first; a ``list`` of :class:`Finding`.

    Besides the findings, it says what the rules assumed:

    * ``task``: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` as declared, set by the loss, or
      inferred from the shapes (then ``task_inferred`` is ``True``); ``None`` where neither said it
      (scores with a class axis and no targets: the task-specific rules were skipped).
    * ``space``: ``"logits"``, ``"probs"`` or ``"log_probs"``, as declared or set by the loss
      (``"logits"`` by default).
    * ``loss``: the loss's canonical name (a key of :data:`LOSSES`) or ``None``.
    * ``ignore_index``: the label value that was skipped (``None``: nothing skipped).

    :meth:`to_dict` gives all of it (and the findings) as plain JSON-ready data; :meth:`to_json`
    stays the JSON list of the findings.
    """

    def __init__(self, findings: Any = (), *, task: str | None = None, task_inferred: bool = False,
                 space: str | None = None, loss: str | None = None, ignore_index: int | None = -100):
        super().__init__(findings)
        self.task, self.task_inferred, self.space = task, task_inferred, space
        self.loss, self.ignore_index = loss, ignore_index

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

    def to_dict(self) -> dict[str, Any]:
        """``{"task", "task_inferred", "space", "loss", "ignore_index", "ok", "counts", "findings"}``."""
        return {"task": self.task, "task_inferred": self.task_inferred, "space": self.space, "loss": self.loss,
                "ignore_index": self.ignore_index, "ok": self.ok,
                "counts": {s: sum(f.severity == s for f in self) for s in SEVERITIES},
                "findings": [f.as_dict() for f in self]}

    def to_json(self, **kwargs: Any) -> str:
        """The findings as a JSON list (``json.dumps(findings.to_dict())`` adds the task and space)."""
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


def loss_key(loss: Any, *, strict: bool = True) -> str | None:
    """The key of :data:`LOSSES` for ``loss``: a name (``"cross_entropy"``, PyTorch's class name such as
    ``"BCEWithLogitsLoss"``, a short name of :data:`LOSS_ALIASES`), a loss function or a loss module.

    An unknown loss is a ``ValueError`` (``strict=False``: ``None``).

    Example:
        >>> loss_key("BCEWithLogitsLoss"), loss_key("nll"), loss_key("hinge", strict=False)
        ('binary_cross_entropy_with_logits', 'nll_loss', None)
    """
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
    key = name.strip().lower().replace("-", "_")
    key = key if key in LOSSES else LOSS_ALIASES.get(key.replace("_", ""))
    if key is None and strict:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(map(repr, LOSSES))} "
                         f"(or say what the scores are with {spell('space')})")
    return key


def _resolve_loss(loss: Any, task: Any, space: Any) -> tuple[str | None, Any, Any]:
    if loss is None:
        return None, task, space
    key = loss_key(loss)
    ltask, lspace = LOSSES[key]
    if space is not None and validate_space(space) != lspace:
        raise ValueError(f"loss={key!r} takes {spell('space', lspace)} but {spell('space', space)} was given; "
                         "pass only one of them")
    if task is None:
        task = ltask
    elif ltask is not None and validate_task(task) != ltask:
        raise ValueError(f"loss={key!r} is for {spell('task', ltask)} but {spell('task', task)} was given")
    elif ltask is None and validate_task(task) == "multiclass":
        raise ValueError(f"loss={key!r} is for binary and multilabel tasks but {spell('task', 'multiclass')} was "
                         "given; use cross_entropy for a multiclass task")
    return key, task, lspace


def _detach(a):
    return a.detach() if hasattr(a, "detach") and hasattr(a, "requires_grad") else a


def _device(x):
    try:
        return array_api_compat.device(x)
    except Exception:  # pragma: no cover - libraries without devices
        return None


def check(scores: Any, targets: Any = None, *, task: str | None = None, space: str | None = None,
          axis: int = -1, loss: Any = None, ignore_index: int | None = -100, dim: int | None = None) -> Findings:
    r"""Diagnose how ``scores`` (and ``targets``) are wired; return findings, never change anything.

    Args:
        scores: model outputs, classes along ``axis`` (binary: one score per sample).
        targets: optional: class indices (shape of ``scores`` without the class axis), multi-hot rows
            or class probabilities (shape of ``scores``), or 0/1 labels (binary).
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"``; ``None`` infers it where the shapes
            say (1-D scores: binary; index targets: multiclass; a binary-or-multilabel loss with a
            class axis: multilabel) and skips task-specific checks otherwise. The result's ``.task``
            says which.
        space: what the scores were declared to be (``"logits"``, the default, ``"probs"`` or
            ``"log_probs"``), i.e. what the code consuming them expects.
        axis: the class axis (``dim=`` is an alias).
        loss: instead of ``space``: the loss the scores go to (``"cross_entropy"``, ``"nll_loss"``,
            ``"binary_cross_entropy"``, ``"binary_cross_entropy_with_logits"``, PyTorch's class
            names such as ``"BCEWithLogitsLoss"``, or the function); sets the expected space and task.
        ignore_index: targets equal to this are skipped by every rule (PyTorch's default -100; for
            multi-hot targets the entry, for class indices and binary labels the sample); ``None``
            skips nothing.

    Returns:
        :class:`Findings` (a list of :class:`Finding`, errors first; ``.task`` and ``.space`` say what
        was assumed); ``.ok`` is ``True`` when no finding is an error. Heuristic findings need strong
        evidence (for instance *every* row summing to 1), so correctly wired scores of trained models
        give no findings. The codes:

{codes}

    Raises:
        ValueError/TypeError only for unusable arguments (unknown task/space/loss, bad axis or
        ignore_index).

    Example:
        >>> import sigmax
        >>> x = [[0.9, 0.1], [0.3, 0.7]]
        >>> [f.code for f in check(x, loss="nll_loss")]      # softmax then NLLLoss
        ['probs-as-log-probs']
        >>> [f.code for f in check([[2.0, -1.0], [0.5, 1.5]], [[0, 1], [1, 1]], task="multiclass")]
        ['multi-hot-targets-multiclass']
        >>> check([[2.0, -1.0], [0.5, 1.5]], [1, -100]).task     # -100: skipped, as in PyTorch
        'multiclass'
    """
    loss_name, task, space = _resolve_loss(loss, task, space)
    space = validate_space("logits" if space is None else space)
    task = validate_task(task) if task is not None else None
    ignore = validate_ignore_index(ignore_index)
    axis = resolve_axis(axis, dim)
    p = prepare(_detach(scores), name="scores")
    xp, x = p.xp, p.x
    if x.ndim == 0:
        x = xp.reshape(x, (1,))
    t, tkind, tdtype = _targets(targets, xp, _device(x))
    ax = normalize_axis(axis, x.ndim)
    inferred = task is None
    if task is None:
        task = _infer_task(x, ax, t, tkind, loss_name)
    classed = task in ("multiclass", "multilabel") or (task is None and x.ndim >= 2)
    ctx = _rules.Context(xp, x, p.out_dtype, task=task, space=space, loss=loss_name, ax=ax, classed=classed,
                         t=t, tkind=tkind, tdtype=tdtype, ignore_index=ignore)
    found = [Finding(code, severity, h.message, h.fix, h.details) for code, severity, h in _rules.run(ctx)]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return Findings(sorted(found, key=lambda f: order[f.severity]), task=task,
                    task_inferred=inferred and task is not None, space=space, loss=loss_name, ignore_index=ignore)


def _infer_task(x, ax: int, t, tkind: str | None, loss_name: str | None) -> str | None:
    """The task the shapes say: 1-D scores are binary; class-index targets make it multiclass; a
    binary-or-multilabel loss on scores with several columns is multilabel. ``None``: unknown."""
    if x.ndim == 1:
        return "binary"
    if t is not None and tkind == "int" and tuple(t.shape) == tuple(s for i, s in enumerate(x.shape) if i != ax):
        return "multiclass"
    if loss_name is not None and LOSSES[loss_name][0] is None and x.shape[ax] > 1:
        return "multilabel"
    return None


def _targets(targets: Any, xp, device=None) -> tuple[Any, str | None, Any]:
    """Targets as an array of the scores' library, their kind (``"int"``, ``"bool"`` or ``"float"``)
    and their own dtype (the tolerance of a probability target follows it)."""
    if targets is None:
        return None, None, None
    targets = _detach(targets)
    if isinstance(targets, (list, tuple, int, float)) or isinstance(targets, np.generic):
        targets = to_numpy(targets, "targets")
    if not array_api_compat.is_array_api_obj(targets):
        raise TypeError(f"targets must be an array or a list, got {type(targets).__name__}")
    tdtype = targets.dtype
    if array_api_compat.array_namespace(targets) is not xp:
        targets = to_numpy(targets, "targets")
        targets = targets if is_numpy(xp) else xp.asarray(targets, device=device)
    tt = targets.dtype
    if tt == xp.bool:
        return targets, "bool", tdtype
    return targets, ("float" if is_floating(xp, tt) else "int"), tdtype


# the codes, documented where a user looks them up: the module and the function (one source: the table)
__doc__ = __doc__.replace("{codes}", _rules.table())
check.__doc__ = check.__doc__.replace("{codes}", _rules.table(indent="        "))
