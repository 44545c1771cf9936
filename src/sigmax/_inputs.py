"""The one canonical-input layer: task, space, labels, ``ignore_index`` and ``sample_weight``, validated once.

Every layer above (interpret, metrics, calibration, check, the report, the CLI) passes its user's
scores and labels through here and works on the typed record :class:`Canonical` that comes out; every
error message about those inputs is written in this module, so that ``check``, ``report``, the
metrics and the calibrators accept and refuse exactly the same things, in the same words.

The stages (the names torchmetrics uses): argument validation (:func:`validate_task`,
:func:`validate_space`, :func:`validate_ignore_index`) → array conversion (:func:`to_numpy`) →
the canonical layout (:func:`canonical`):

===============  ==========================  ==================================================
task             ``scores``                  ``labels``
===============  ==========================  ==================================================
``binary``       ``(M,)`` float64            ``(M,)`` int64 in {0, 1}
``multiclass``   ``(M, C)``, classes last    ``(M,)`` int64 class indices
``multilabel``   ``(M, C)``, classes last    ``(M, C)`` int64 in {0, 1} (``valid`` marks kept entries)
===============  ==========================  ==================================================

Rows whose label is ``ignore_index`` are dropped (binary, multiclass) or their entries masked out
(multilabel), as in PyTorch's losses and torchmetrics. Scores holding NaN are an error here (except in
the rows or entries that ``ignore_index`` leaves out): a metric over them cannot be right
(``interpret`` instead gives such rows no decision, ``-1``, and warns).

The spelling of a setting depends on the interface in use: ``space='probs'`` in Python, ``--space
probs`` on the command line (:func:`spell`, switched by :func:`interface`).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import numbers
from dataclasses import dataclass
from typing import Any, Iterator

import array_api_compat
import numpy as np

__all__ = [
    "TASKS",
    "SPACES",
    "ALIASES",
    "Canonical",
    "canonical",
    "validate_task",
    "validate_space",
    "validate_ignore_index",
    "validate_top_k",
    "to_numpy",
    "is_dask",
    "in_memory_error",
    "spell",
    "interface",
]

TASKS = ("binary", "multiclass", "multilabel")
SPACES = ("logits", "probs", "log_probs")

#: the one list of accepted spellings (Python API and CLI alike); keys are lower-case with ``-`` → ``_``
ALIASES = {
    "multi_class": "multiclass",
    "multi_label": "multilabel",
    "probabilities": "probs",
    "prob": "probs",
    "probability": "probs",
    "logprobs": "log_probs",
    "log_prob": "log_probs",
    "log_probabilities": "log_probs",
    "logit": "logits",
}

_INTERFACE: contextvars.ContextVar[str] = contextvars.ContextVar("sigmax_interface", default="python")


@contextlib.contextmanager
def interface(name: str) -> Iterator[None]:
    """Within the block, messages spell settings for ``name`` (``"python"`` or ``"cli"``)."""
    token = _INTERFACE.set(name)
    try:
        yield
    finally:
        _INTERFACE.reset(token)


def spell(name: str, value: Any = None) -> str:
    """A setting as the user writes it: ``space='probs'`` (Python) or ``--space probs`` (CLI).

    Example:
        >>> spell("space", "probs")
        "space='probs'"
        >>> with interface("cli"):
        ...     spell("ignore_index", -100)
        '--ignore-index -100'
    """
    if _INTERFACE.get() == "cli":
        flag = "--" + name.replace("_", "-")
        return flag if value is None else f"{flag} {value}"
    return name if value is None else f"{name}={value!r}"


# ------------------------------------------------------------------------- argument validation
def _choice(value: Any, options: tuple[str, ...], name: str, hint: str) -> str:
    if isinstance(value, str):
        v = value.strip().lower().replace("-", "_")
        v = ALIASES.get(v, v)
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


def validate_ignore_index(ignore_index: Any) -> int | None:
    """``None`` (nothing ignored) or an integer label value to ignore (PyTorch's default is -100)."""
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{spell('ignore_index')} must be an integer label value (PyTorch uses -100) or None, "
                        f"got {ignore_index!r}")
    return int(ignore_index)


def validate_top_k(top_k: Any, n_classes: int) -> int:
    """``top_k`` as an ``int`` in ``1..n_classes``, or a ``ValueError`` naming ``top_k`` and the number of classes.

    The one rule for ``interpret(top_k=...)`` and ``metrics.accuracy(top_k=...)``: asking for more
    classes than there are is a mistake (a top-5 accuracy over 3 classes would be 1.0 whatever the
    model), not something to clip silently.

    Example:
        >>> validate_top_k(2, 3)
        2
        >>> validate_top_k(5, 3)
        Traceback (most recent call last):
        ...
        ValueError: top_k=5 but there are only 3 classes; top_k must be an integer in 1..3
    """
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"{spell('top_k')} must be a positive integer (at most the number of classes, "
                         f"{n_classes}), got {top_k!r}")
    if top_k > n_classes:
        raise ValueError(f"{spell('top_k', int(top_k))} but there are only {n_classes} classes; "
                         f"{spell('top_k')} must be an integer in 1..{n_classes}")
    return int(top_k)


# ------------------------------------------------------------------------- array conversion
def is_dask(x: Any) -> bool:
    """Whether ``x`` is a Dask array (checked without importing Dask)."""
    t = type(x)
    return t.__module__.startswith("dask.array") and t.__name__ == "Array"


def in_memory_error(name: str, what: str = "this function") -> TypeError:
    """The one message for a Dask array reaching code that needs it in memory (nothing is pulled silently)."""
    return TypeError(
        f"{name} is a Dask array, and {what} needs all of it in memory (it would be pulled whole into this "
        f"process). Use a function that reduces Dask arrays chunk by chunk (the metrics of sigmax.metrics, "
        f"the calibrators' fit and fit_calibrator, ConformalClassifier.fit, conformal_quantile, transform), or bring "
        f"a bounded "
        f"sample in yourself: {name}[:n].compute()")


def to_numpy(x: Any, name: str = "x") -> np.ndarray:
    """Any array (NumPy, torch on any device, JAX, a list) as a NumPy array, without copying NumPy input.

    Half precision (torch or JAX/ml_dtypes bfloat16, float16) becomes float32; a tensor that needs
    grad is detached. Ragged lists, strings and objects are a ``TypeError`` naming ``name``.
    """
    if isinstance(x, str) or x is None:
        raise TypeError(f"{name} must be an array (NumPy, PyTorch, JAX) or a list, got {type(x).__name__}")
    if is_dask(x):
        raise in_memory_error(name)
    if array_api_compat.is_torch_array(x):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:  # bfloat16/float16: NumPy has no bfloat16
            x = x.float()
        return x.numpy()
    try:
        out = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a rectangular array of numbers: {exc}") from exc
    if out.dtype == object:
        raise TypeError(f"{name} must hold numbers, got an array of Python objects (ragged lists?)")
    if out.dtype.kind not in "biuf" or out.dtype == np.float16:
        # ml_dtypes' bfloat16 (what JAX hands to NumPy) is a custom dtype: go through float32
        try:
            out = out.astype(np.float32)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be real-valued, got dtype {out.dtype}") from None
    return out


def _scores64(scores: Any, name: str) -> np.ndarray:
    return to_numpy(scores, name).astype(np.float64, copy=False)


def _check_nan(s: np.ndarray, name: str, kept: np.ndarray | None, ignore: int | None,
               row_numbers: Any = None) -> None:
    """A ``ValueError`` if scores that are kept (not ignored) hold NaN; ``kept`` has ``s``'s shape or its rows';
    the message names rows by ``row_numbers`` (their numbers in the caller's data) where given."""
    if not s.size:
        return
    nan = np.isnan(s)
    if not nan.any():
        return
    if kept is not None:
        nan &= kept if kept.shape == s.shape else kept.reshape(kept.shape + (1,) * (s.ndim - kept.ndim))
    rows = nan.reshape(s.shape[0], -1).any(axis=1)
    if rows.any():
        first = np.flatnonzero(rows)[:3]
        if row_numbers is not None and len(row_numbers) == rows.shape[0]:
            first = np.asarray(row_numbers)[first]
        first = [int(r) for r in first]
        skip = (f"mark their labels with {spell('ignore_index')}" if ignore is None else
                f"set their labels to {spell('ignore_index', ignore)}")
        raise ValueError(
            f"{name} contain {int(nan.sum())} NaN value(s) in {int(rows.sum())} row(s) (first: {first}); "
            f"a metric over them cannot be right. Find where the model produced NaN, or drop those rows "
            f"(and their labels), or {skip}"
        )


def _binary_values(y: np.ndarray, task: str, name: str, ignore: int | None) -> np.ndarray:
    """0/1 labels as int64 (``ignore`` kept as is), or a ValueError naming the offending values."""
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numbers 0/1 for {spell('task', task)}, got dtype {y.dtype}")
    ok = (y == 0) | (y == 1)
    if ignore is not None:
        ok |= y == ignore
    bad = ~ok
    if bad.any():
        vals = np.unique(y[bad])[:5].tolist()
        if task == "binary" and y.dtype.kind in "iu":
            hint = f"these look like class indices: use {spell('task', 'multiclass')} with (N, C) scores"
        elif np.all((y[bad] > 0) & (y[bad] < 1)):
            hint = "give hard 0/1 labels (threshold soft labels first)"
        else:
            hint = (f"give hard 0/1 labels, or mark rows to skip with {spell('ignore_index')}"
                    if ignore is None else "give hard 0/1 labels")
        raise ValueError(f"{name} for {spell('task', task)} must be 0 or 1; found {int(bad.sum())} other value(s), "
                         f"e.g. {vals}: {hint}")
    return y.astype(np.int64)


def _class_indices(y: np.ndarray, c: int, name: str, ignore: int | None, axis: Any) -> np.ndarray:
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise TypeError(f"{name} for {spell('task', 'multiclass')} must be integer class indices; got "
                            "non-integral or non-finite floats (probability targets are not supported here)")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{name} for {spell('task', 'multiclass')} must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64).reshape(-1)
    live = y if ignore is None else y[y != ignore]
    if live.size and (live.min() < 0 or live.max() >= c):
        bad = live[(live < 0) | (live >= c)]
        hint = (f"; mark rows to skip with {spell('ignore_index', int(bad[0]))}" if bad[0] < 0 and ignore is None
                else "")
        raise ValueError(f"{name} hold class index {int(bad[0])}, out of range for {c} classes "
                         f"(class axis {axis}); {name} must lie in 0..{c - 1}{hint}")
    return y


@dataclass(frozen=True)
class Canonical:
    """Validated scores and labels in the canonical layout (see the module table).

    ``weight``: per-row sample weights ``(M,)`` (``None`` = all 1); ``valid``: for multilabel with an
    ``ignore_index``, the ``(M, C)`` entries kept (``None`` = all). ``n_ignored`` counts the rows
    (binary, multiclass) or entries (multilabel) that ``ignore_index`` removed. ``shape`` is the
    scores' shape as given.
    """

    task: str
    scores: np.ndarray
    labels: np.ndarray | None
    weight: np.ndarray | None = None
    valid: np.ndarray | None = None
    n_ignored: int = 0
    shape: tuple = ()

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_classes(self) -> int:
        return 2 if self.task == "binary" else int(self.scores.shape[1])


def _weights(sample_weight: Any, n_rows: int, row_shape: tuple, name: str = "sample_weight") -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = to_numpy(sample_weight, name).astype(np.float64, copy=False)
    if w.size == n_rows and (tuple(w.shape) == row_shape or w.ndim == 1):
        w = w.reshape(-1)
    else:
        raise ValueError(f"{name} has shape {tuple(w.shape)} but there are {n_rows} samples "
                         f"(shape {row_shape}); give one weight per sample")
    if not np.all(np.isfinite(w)) or (w.size and w.min() < 0):
        raise ValueError(f"{name} must be finite and >= 0 (one weight per sample)")
    return w


def canonical(scores: Any, labels: Any, task: str, *, axis: Any = -1, ignore_index: Any = None,
              sample_weight: Any = None, scores_name: str = "scores", labels_name: str = "labels",
              allow_empty: bool = False, row_numbers: Any = None) -> Canonical:
    """Validate ``scores`` and ``labels`` for ``task`` once, into a :class:`Canonical` record.

    Args:
        scores: any array; binary ``(N,)`` (or ``(N, 1)``), otherwise with a class axis ``axis``.
        labels: class indices (binary 0/1, multiclass ``0..C-1``) or multi-hot ``0/1`` rows
            (multilabel, the scores' shape); ``None`` for scores alone.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        axis: the class axis of ``scores`` (moved last, other axes flattened into rows).
        ignore_index: a label value whose rows (entries, for multilabel) are left out.
        sample_weight: one non-negative weight per sample.
        allow_empty: accept zero rows (a chunk of a stream); otherwise an empty input is an error.
        row_numbers: the rows' numbers in the caller's data (a chunk, or the rows a split kept), so that
            messages name the user's rows, not positions within this call.

    Where ``row_numbers`` is given, an error says which part of the data it was found (and counted) in:
    a block of a Dask array or a chunk of a stream is checked on its own, so its counts are that part's.

    Example:
        >>> c = canonical([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [1, -100, 0], "multiclass", ignore_index=-100)
        >>> c.scores.shape, c.labels.tolist(), c.n_ignored
        ((2, 2), [1, 0], 1)
    """
    try:
        return _canonical(scores, labels, task, axis=axis, ignore_index=ignore_index, sample_weight=sample_weight,
                          scores_name=scores_name, labels_name=labels_name, allow_empty=allow_empty,
                          row_numbers=row_numbers)
    except ValueError as exc:
        if row_numbers is None or np.size(row_numbers) == 0:
            raise
        rows = np.asarray(row_numbers)
        lo, hi = int(rows.min()), int(rows.max())
        span = f"rows {lo:,} to {hi:,}" if hi - lo + 1 == rows.size else f"{rows.size:,} rows between {lo:,} and {hi:,}"
        raise ValueError(f"{exc} [found in {span} of the input, checked as one part: counts are that part's]") from None


def _canonical(scores: Any, labels: Any, task: str, *, axis: Any, ignore_index: Any, sample_weight: Any,
               scores_name: str, labels_name: str, allow_empty: bool, row_numbers: Any) -> Canonical:
    task = validate_task(task)
    ignore = validate_ignore_index(ignore_index)
    s = _scores64(scores, scores_name)
    if s.ndim == 0:
        raise ValueError(f"{scores_name} must have at least one sample; got a 0-d scalar (wrap it in a list)")
    shape = tuple(s.shape)
    y = None if labels is None else to_numpy(labels, labels_name)
    if task == "binary":
        if s.ndim == 2 and s.shape[1] == 1 and (y is None or y.shape != shape):
            s = s[:, 0]  # one score column
        if y is not None and tuple(y.shape) != tuple(s.shape):
            if y.ndim == 2 and y.shape[1] == 1 and y.shape[0] == s.shape[0] and s.ndim == 1:
                y = y[:, 0]
            else:
                hint = (" (binary takes one score per sample; for (N, C) scores use "
                        f"{spell('task', 'multiclass')} or {spell('task', 'multilabel')})" if s.ndim == 2 else "")
                raise ValueError(f"{labels_name} have shape {tuple(y.shape)} but binary {scores_name} have shape "
                                 f"{shape}; give one 0/1 label per score{hint}")
        s = s.reshape(-1)
        row_shape = shape if s.size == int(np.prod(shape)) else (s.shape[0],)
        if y is not None:
            y = _binary_values(y.reshape(-1), task, labels_name, ignore)
    else:
        if s.ndim < 2:
            raise ValueError(f"{task} {scores_name} need a class axis, got shape {shape}; for one score per "
                             f"sample use {spell('task', 'binary')}")
        from ._array import normalize_axis  # the one axis rule (a lower floor)

        ax = normalize_axis(axis, s.ndim, name="axis")
        s = np.moveaxis(s, ax, -1)
        c = s.shape[-1]
        row_shape = tuple(s.shape[:-1])
        if y is not None:
            if task == "multiclass":
                if tuple(y.shape) != row_shape:
                    if tuple(y.shape) == shape:
                        hint = (f"; these look one-hot: pass class indices, labels.argmax(axis={axis}), or use "
                                f"{spell('task', 'multilabel')} for multi-hot rows")
                    else:
                        hint = ""
                    raise ValueError(f"{labels_name} have shape {tuple(y.shape)} but multiclass {scores_name} of shape "
                                     f"{shape} (class axis {axis}) need {labels_name} of "
                                     f"shape {row_shape}: one class index per row{hint}")
                y = _class_indices(y, c, labels_name, ignore, axis)
            else:
                if tuple(y.shape) != shape:
                    raise ValueError(f"{labels_name} have shape {tuple(y.shape)} but multilabel "
                                     f"{scores_name} have shape {shape}; give a multi-hot "
                                     f"0/1 array of the {scores_name}' shape (for one class index per sample use "
                                     f"{spell('task', 'multiclass')})")
                y = _binary_values(np.moveaxis(y, ax, -1), task, labels_name, ignore).reshape(-1, c)
        s = s.reshape(-1, c)
    w = _weights(sample_weight, s.shape[0], row_shape)
    _check_nan(s, scores_name, None if y is None or ignore is None else y != ignore, ignore, row_numbers)
    valid = None
    n_ignored = 0
    if y is not None and ignore is not None:
        if task == "multilabel":
            keep = y != ignore
            n_ignored = int(keep.size - keep.sum())
            if n_ignored:
                valid = keep
                y = np.where(keep, y, 0)
        else:
            keep = y != ignore
            n_ignored = int(keep.size - keep.sum())
            if n_ignored:
                s, y = s[keep], y[keep]
                w = None if w is None else w[keep]
    if not allow_empty:
        if s.shape[0] == 0 or (valid is not None and not valid.any()):
            what = (f"every label equals {spell('ignore_index', ignore)}" if n_ignored else
                    f"{scores_name} and {labels_name} are empty")
            raise ValueError(f"{what}; metrics need at least one sample")
    return Canonical(task, s, y, w, valid, n_ignored, shape)
