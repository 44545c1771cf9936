r"""A runtime wiring guard for PyTorch losses: ``sigmax.torch.guard(loss)``.

The guard wraps a loss function or module. During its first calls (``calls=3`` by default) it looks
at what the loss receives:

* the autograd graph in front of the input: a ``softmax``, ``sigmoid``, ``log_softmax`` or
  ``logsigmoid`` node right before a loss that expects logits (or a ``softmax`` before ``NLLLoss``,
  or a ``log_softmax`` over the wrong dimension) is a certain miswiring;
* the values, through :func:`sigmax.check` (probabilities where logits belong, raw logits given to
  ``nll_loss``, targets out of range, multi-hot targets with cross-entropy, NaN, ...).

Each finding is reported once, as a :class:`WiringWarning` carrying the fix. The loss itself is never
changed: the guarded loss returns exactly what the loss returns. After the first calls the guard
only forwards the call (one integer test), so it costs nothing measurable in a training loop. It does
nothing under ``torch.compile`` or tracing.

Example:
    >>> import torch, warnings
    >>> from sigmax.torch import guard
    >>> loss_fn = guard(torch.nn.CrossEntropyLoss())
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], requires_grad=True)
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     loss = loss_fn(torch.softmax(logits, dim=1), torch.tensor([0, 2]))
    >>> [f.code for f in loss_fn.findings]
    ['double-softmax']
    >>> round(loss.item(), 4)   # unchanged: the guard only warns
    0.6611
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any, Callable

import torch

from .._inputs import SPACES, validate_space
from ..check import CODES, LOSSES, SEVERITIES, Finding, double_softmax_floor, loss_key

__all__ = ["guard", "GuardedLoss", "WiringWarning"]

# the module (``sigmax.check`` the attribute is the function); looked up at call time so tests can patch it
_check_module = importlib.import_module("sigmax.check")


class WiringWarning(UserWarning):
    """A loss receives inputs that look (or certainly are) miswired; the message carries the fix."""


#: losses whose PyTorch version has an ``ignore_index`` (default -100); the others skip no target
_HAS_IGNORE_INDEX = ("cross_entropy", "nll_loss")
# autograd nodes that only move or copy values: look through them to the activation behind
_PASS = {"ViewBackward0", "ReshapeAliasBackward0", "UnsafeViewBackward0", "UnsqueezeBackward0",
         "SqueezeBackward0", "SqueezeBackward1", "PermuteBackward0", "TransposeBackward0", "CloneBackward0",
         "ToCopyBackward0", "SliceBackward0", "SelectBackward0", "ExpandBackward0", "AliasBackward0",
         "FlattenBackward0", "TBackward0"}
_SAME_SHAPE = {"CloneBackward0", "ToCopyBackward0", "AliasBackward0"}


def _loss_name(loss: Any) -> str:
    if isinstance(loss, torch.nn.Module):
        return type(loss).__name__
    return getattr(loss, "__name__", type(loss).__name__)


def _activation(t: torch.Tensor) -> tuple[str | None, int | None]:
    """The activation node producing ``t`` (looking through views and copies), and its saved dim
    when the shape was kept (``None`` otherwise)."""
    node = getattr(t, "grad_fn", None)
    same_shape = True
    for _ in range(16):
        if node is None:
            return None, None
        name = type(node).__name__
        if name in _PASS:
            same_shape = same_shape and name in _SAME_SHAPE
            nxt = [f for f, _ in node.next_functions if f is not None]
            node = nxt[0] if nxt else None
            continue
        if name in ("SoftmaxBackward0", "LogSoftmaxBackward0", "SigmoidBackward0", "LogSigmoidBackward0"):
            d = getattr(node, "_saved_dim", None)
            if d is not None:
                d = int(d)
                d = d - 2**64 if d >= 2**63 else d  # saved as uint64: -1 reads 2**64 - 1
            return name.replace("Backward0", ""), (d if same_shape else None)
        return None, None
    return None, None


def _graph_findings(kind: str, t: torch.Tensor, key: str, class_axis: int | None) -> list[Finding]:
    act, d = _activation(t)
    if act is None:
        return []
    expects = LOSSES[key][1]
    out = []

    def add(code, message, fix, severity=None):
        out.append(Finding(code, severity or CODES[code][0], message, fix, {"node": act, "from": "autograd graph"}))

    if class_axis is not None and d is not None and act in ("Softmax", "LogSoftmax") and \
            d % t.ndim != class_axis % t.ndim:
        add("wrong-axis", f"the input of {kind} comes from {act.lower()}(dim={d}), but the classes are along dim "
            f"{class_axis}: the normalization mixes samples.", f"use dim={class_axis} (or dim=-1 for (N, C) input).")
    if expects == "logits":
        if act == "Softmax" and key == "cross_entropy":
            c = t.shape[class_axis] if class_axis is not None else 2
            add("double-softmax", f"the input of {kind} comes from softmax, and {kind} applies log_softmax itself: "
                f"softmax twice caps the reachable loss at log(1 + (C-1)/e) = {double_softmax_floor(c):.4f} "
                "and shrinks gradients.", "remove the softmax: give the loss the raw logits.")
        elif act in ("Softmax", "Sigmoid"):
            add("sigmoid-as-logits", f"the input of {kind} comes from {act.lower()}, and {kind} applies sigmoid "
                "itself: probabilities end up squeezed into [0.5, 0.731].",
                "remove the activation: give the loss the raw logits.", severity="error")
        elif act == "LogSoftmax" and key == "cross_entropy":
            add("log-probs-as-logits", f"the input of {kind} comes from log_softmax; harmless ({kind} applies "
                "log_softmax again, which changes nothing) but redundant.",
                "drop the log_softmax, or use NLLLoss on its output.")
        elif act == "LogSigmoid":
            add("log-probs-as-logits", f"the input of {kind} comes from logsigmoid: sigmoid of log-probabilities "
                "is at most 0.5, so nothing is ever predicted positive.",
                "remove the logsigmoid: give the loss the raw logits.", severity="error")
    elif expects == "log_probs" and act == "Softmax":
        add("probs-as-log-probs", f"the input of {kind} comes from softmax, but {kind} expects log-probabilities: "
            "the loss is -p[target], between -1 and 0, and learns badly.",
            "use log_softmax instead of softmax (or CrossEntropyLoss on the logits).")
    elif expects == "probs" and act in ("LogSoftmax", "LogSigmoid"):
        add("logits-as-probs", f"the input of {kind} comes from {act.lower()}: log-probabilities are <= 0, "
            f"not probabilities.", "use sigmoid (or better: BCEWithLogitsLoss on the logits).")
    return out


class _Inspector:
    def __init__(self, loss: Any, *, calls: int, expects: str | None, task: str | None,
                 min_severity: str, warn: bool):
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise ValueError(f"calls must be a non-negative integer, got {calls!r}")
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(map(repr, SEVERITIES))}, got {min_severity!r}")
        name = _loss_name(loss)
        key = loss_key(name, strict=False)
        if key is None and expects is None:
            raise ValueError(
                f"sigmax.torch.guard does not know what {name!r} expects; pass expects= one of "
                f"{', '.join(map(repr, SPACES))} (and task=...)")
        if expects is not None:
            try:
                expects = validate_space(expects)
            except ValueError as exc:
                raise ValueError(f"expects must be what the loss takes: {exc}") from None
        self.name, self.key, self.expects, self.task = name, key, expects, task
        self.left = calls
        self.min_rank = SEVERITIES.index(min_severity)
        self.warn = warn
        self.findings: list[Finding] = []
        self.seen: set[str] = set()
        # PyTorch's BCE losses have no ignore_index: a -100 target there is a wrong label, not a skipped one
        self.ignore_index = getattr(loss, "ignore_index", -100 if key in _HAS_IGNORE_INDEX or key is None else None)

    def inspect(self, args, kwargs) -> None:
        self.left -= 1
        if _compiling():
            return
        try:
            inp = args[0] if args else kwargs.get("input")
            tgt = args[1] if len(args) > 1 else kwargs.get("target")
            if not isinstance(inp, torch.Tensor):
                return
            found = self._findings(inp, tgt if isinstance(tgt, torch.Tensor) else None, kwargs)
        except Exception as exc:  # the guard must never break training
            found = []
            if "guard-failed" not in self.seen:
                self.seen.add("guard-failed")
                warnings.warn(f"sigmax.guard could not inspect the inputs of {self.name} ({exc!r}); "
                              "the loss itself is unaffected", WiringWarning, stacklevel=4)
        for f in found:
            if f.code in self.seen:
                continue
            self.seen.add(f.code)
            self.findings.append(f)
            if self.warn and SEVERITIES.index(f.severity) <= self.min_rank:
                warnings.warn(f"sigmax.guard({self.name}): {f}", WiringWarning, stacklevel=4)

    def _findings(self, inp: torch.Tensor, tgt, kwargs) -> list[Finding]:
        key = self.key
        if key in ("cross_entropy", "nll_loss"):
            class_axis = 1 if inp.ndim >= 2 else 0  # PyTorch's rule
            task = "multiclass"
        else:
            class_axis = -1 if inp.ndim >= 2 else None
            task = self.task or (None if key is None else ("binary" if inp.ndim <= 1 else "multilabel"))
        ignore_index = kwargs.get("ignore_index", self.ignore_index)
        found: list[Finding] = []
        if key is not None:
            found += _graph_findings(self.name, inp, key, class_axis if task == "multiclass" else None)
        if tgt is not None and key in ("cross_entropy", "nll_loss") and inp.ndim == 1:
            tgt = tgt.reshape(())  # unbatched: (C,) input, scalar target
        vals = _check_module.check(inp, tgt, task=task if key is None else None,
                                   loss=key if key is not None else None,
                                   space=self.expects if key is None else None,
                                   axis=class_axis if class_axis is not None else -1, ignore_index=ignore_index)
        have = {f.code for f in found}
        # the graph finding says it with certainty; the value finding about the same thing adds nothing
        same = {"double-softmax": {"sigmoid-as-logits"}, "sigmoid-as-logits": {"double-softmax"},
                "wrong-axis": {"double-softmax", "probs-not-normalized"}}
        skip = set(have)
        for c in have:
            skip |= same.get(c, set())
        return found + [f for f in vals if f.code not in skip]


def _compiling() -> bool:
    try:
        if torch.compiler.is_compiling():
            return True
    except AttributeError:  # pragma: no cover - old torch
        pass
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting())


class GuardedLoss(torch.nn.Module):
    """A loss module wrapped by :func:`guard`: same forward result, warnings during the first calls.

    ``loss`` is the wrapped module (a submodule: ``.to()``, ``state_dict`` and parameters pass through);
    ``findings`` lists what was found so far.
    """

    def __init__(self, loss: torch.nn.Module, inspector: _Inspector):
        super().__init__()
        self.loss = loss
        self._inspector = inspector

    @property
    def findings(self) -> list[Finding]:
        return self._inspector.findings

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._inspector.left > 0:
            self._inspector.inspect(args, kwargs)
        return self.loss(*args, **kwargs)


class _GuardedFunction:
    def __init__(self, fn: Callable, inspector: _Inspector):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._inspector = inspector

    @property
    def findings(self) -> list[Finding]:
        return self._inspector.findings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._inspector.left > 0:
            self._inspector.inspect(args, kwargs)
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"guard({getattr(self._fn, '__name__', self._fn)!r})"


def guard(loss: Any = None, *, calls: int = 3, expects: str | None = None, task: str | None = None,
          min_severity: str = "warning", warn: bool = True) -> Any:
    """Wrap a PyTorch loss so that its first ``calls`` calls check how it is wired, and warn once per finding.

    Args:
        loss: a loss module (``torch.nn.CrossEntropyLoss()``, ``NLLLoss``, ``BCELoss``,
            ``BCEWithLogitsLoss``), a loss function (``torch.nn.functional.cross_entropy``, ...,
            or sigmax's losses of the same names), or any callable ``loss(input, target, ...)`` together
            with ``expects=``. Without ``loss``, returns a decorator.
        calls: how many calls to inspect (default 3); after those the guard only forwards the call.
        expects: what an unknown loss expects: ``"logits"``, ``"probs"`` or ``"log_probs"`` (any spelling
            :func:`sigmax.interpret` accepts, such as ``"probabilities"``).
        task: for an unknown loss (or to override binary/multilabel by shape): the task.
        min_severity: the lowest severity that warns (``"warning"``; ``"info"`` warns about everything).
            All findings are kept in ``.findings`` regardless.
        warn: ``False`` records findings in ``.findings`` without warning.

    Returns:
        For a module: a :class:`GuardedLoss` module; for a function: a callable with the function's
        name and docstring. Both return exactly what the loss returns and have ``.findings``.

    Raises:
        ValueError: an unknown loss without ``expects``, or bad options.

    Example:
        >>> import torch
        >>> ce = guard(torch.nn.functional.cross_entropy, warn=False)
        >>> _ = ce(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, 1.0]]))  # two true classes
        >>> [f.code for f in ce.findings]
        ['multi-hot-targets-multiclass']
    """
    if loss is None:
        return functools.partial(guard, calls=calls, expects=expects, task=task, min_severity=min_severity, warn=warn)
    if not callable(loss):
        raise TypeError(f"guard needs a loss module or function, got {type(loss).__name__}")
    inspector = _Inspector(loss, calls=calls, expects=expects, task=task, min_severity=min_severity, warn=warn)
    if isinstance(loss, torch.nn.Module):
        return GuardedLoss(loss, inspector)
    return _GuardedFunction(loss, inspector)
