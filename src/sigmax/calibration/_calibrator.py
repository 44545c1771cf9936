r"""The :class:`Calibrator` (a scaler plus decision thresholds), :func:`fit_calibrator`, and loading."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .._array import finish, normalize_axis, resolve_axis
from .._inputs import SPACES, TASKS, is_dask, spell, validate_space, validate_task
from ..interpret import to_probs
from . import _format as F
from ._logits import fit_logits, logits_xp
from ._scalers import Scaler, check_compatible
from ._select import METHODS, candidates, make_scaler, select_method

#: every scaler class by its JSON ``type``
SCALERS: dict[str, type[Scaler]] = {cls.__name__: cls for cls in METHODS.values() if cls is not None}
from ._thresholds import check_targets, tune_canonical, tune_thresholds

__all__ = ["DEFAULT_METHOD", "METHODS", "Calibrator", "fit_calibrator", "from_dict", "load", "resolve_method"]

#: the calibration method used when none is named (``method=None``); ``"auto"`` chooses by CV NLL instead
DEFAULT_METHOD = {"binary": "temperature", "multiclass": "temperature", "multilabel": "temperature"}


def _method(method: Any) -> str | None:
    if isinstance(method, str):
        method = method.strip().lower()
        method = None if method == "none" else method
    if method not in METHODS and method != "auto":
        raise ValueError(f"unknown {spell('method')} {method!r}; use 'temperature', 'vector' (multiclass), 'platt' "
                         "(binary/multilabel), 'beta', 'histogram', 'isotonic', 'dirichlet' (multiclass), 'auto' "
                         "(chosen by cross-validated NLL) or 'none'")
    return method


def resolve_method(task: str, method: Any = None, tune: Any = "auto", *, target_precision: Any = None,
                   target_recall: Any = None) -> tuple[str | None, str | None]:
    """``(method, tune)`` resolved for ``task``, or a ``ValueError`` before any work is done.

    The one rule :func:`fit_calibrator`, the report pipeline and the CLI apply to their ``method`` and
    ``tune`` settings: ``None`` is :data:`DEFAULT_METHOD` (temperature scaling); ``"auto"`` stays
    ``"auto"`` (the method is chosen at fit time by cross-validated NLL, see :class:`Calibrator`);
    ``"none"`` is no rescaling (``None``); a method the task has no use for (vector scaling and
    Dirichlet calibration are for multiclass, Platt scaling for binary and multilabel) is an error; ``tune`` is ``"f1"``, ``None``/``"none"`` or ``"auto"`` (F1
    for binary and multilabel, none for multiclass), and thresholds asked for multiclass are an error.

    Example:
        >>> resolve_method("binary", None), resolve_method("multiclass", "vector"), resolve_method("binary", "auto")
        (('temperature', 'f1'), ('vector', None), ('auto', 'f1'))
        >>> resolve_method("binary", "vector")
        Traceback (most recent call last):
        ...
        ValueError: method='vector' is for task='multiclass' only, not task='binary'; use method='temperature', method='platt', method='beta', method='histogram' or method='isotonic'
    """
    task = validate_task(task)
    method = DEFAULT_METHOD[task] if method is None else _method(method)
    if method == "auto":
        return method, _resolve_tune(task, tune, target_precision, target_recall)
    cls = METHODS[method]
    if cls is not None and task not in cls.tasks:
        others = [spell("method", m) for m in candidates(task)]
        only = " or ".join(spell("task", t) for t in cls.tasks)
        raise ValueError(f"{spell('method', method)} is for {only} only, not {spell('task', task)}; use "
                         f"{', '.join(others[:-1])} or {others[-1]}")
    return method, _resolve_tune(task, tune, target_precision, target_recall)


class Calibrator:
    r"""A fitted scaler plus decision thresholds, saved and loaded as one JSON file.

    .. math:: p = \operatorname{softmax}/\sigma(\text{scaler}(z)), \qquad \hat y = [\,p > t\,] \text{ (binary, multilabel)}

    ``method`` picks the scaler: ``"temperature"`` (:class:`TemperatureScaling`; one temperature per
    label for multilabel), ``"vector"`` (:class:`VectorScaling`, multiclass), ``"platt"``
    (:class:`PlattScaling`, binary/multilabel), ``"beta"`` (:class:`BetaCalibration`), ``"histogram"``
    (:class:`HistogramBinning`), ``"isotonic"`` (:class:`IsotonicCalibration`), ``"dirichlet"``
    (:class:`DirichletCalibration`, multiclass), ``None`` for no rescaling, or ``"auto"``: the simplest
    method whose cross-validated NLL on the calibration set is within one standard error of the
    lowest (see ``sigmax.calibration._select``); ``selection_`` then records every candidate's CV NLL and
    the reason, and ``method`` the method chosen. ``tune`` picks
    thresholds on the *calibrated* probabilities: ``"f1"`` (:func:`tune_thresholds`) or ``None`` (0.5).
    Thresholds apply to binary and multilabel tasks; multiclass decisions are the argmax, so there
    ``thresholds`` stays ``None``. :func:`fit_calibrator` fits one with the defaults resolved per task.

    Attributes (after :meth:`fit`):
        task: the task. method: the scaler's name (or ``None``). scaler: the fitted scaler (or ``None``).
        thresholds: NumPy array of probability thresholds (0-d for binary, ``(C,)`` for multilabel) or
            ``None``; pass it as ``threshold=`` to :mod:`sigmax.metrics` (any scores), and as
            ``threshold=thresholds.tolist()`` to :func:`sigmax.interpret.interpret` on :meth:`transform`'s
            logits (a float or a list works for every array library; :meth:`predict` does this).
        space\_: the space of the fitting scores, what :meth:`transform` assumes by default.
        n_classes\_: the number of classes (``None`` for binary).
        selection\_: with ``method="auto"``, the record of the choice (``chosen``, ``cv_nll`` per method,
            ``se``, ``reason``, ...); ``None`` otherwise. Saved with the calibrator.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import Calibrator
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(3000, 3)) * 3
        >>> y = (rng.uniform(size=(3000, 3)) < 1 / (1 + np.exp(-z / 3))).astype(int)
        >>> cal = Calibrator().fit(z, y, "multilabel", method="temperature", tune="f1")
        >>> cal.scaler.temperature.round(1), cal.thresholds.shape
        (array([2.7, 3. , 3.1]), (3,))
        >>> cal.predict(z[:2])
        array([[1, 1, 1],
               [1, 0, 1]])
    """

    def __init__(self):
        self.task: str | None = None
        self.method: str | None = None
        self.scaler: Scaler | None = None
        self.thresholds: np.ndarray | None = None
        self.tune: str | None = None
        self.space_: str | None = None
        self.axis_: int = -1
        self.n_classes_: int | None = None
        self.selection_: dict[str, Any] | None = None
        self._fitted = False

    def fit(self, scores: Any, labels: Any, task: str, method: str | None = "temperature", tune: str | None = "f1",
            *, space: str = "logits", axis: int = -1, target_precision: float | None = None,
            target_recall: float | None = None, dim: int | None = None,
            ignore_index: int | None = None, max_rows: int | None = None, sample_weight: Any = None) -> Calibrator:
        """Fit the scaler on a calibration set, then tune thresholds on its calibrated probabilities.

        Args:
            scores, labels: the calibration set (held out from training), as in :mod:`sigmax.metrics`.
            task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
            method: ``"temperature"``, ``"vector"`` (multiclass), ``"platt"`` (binary/multilabel), ``"beta"``,
                ``"histogram"``, ``"isotonic"``, ``"dirichlet"`` (multiclass), ``"auto"`` or ``None``.
            tune: ``"f1"`` or ``None``; ignored for multiclass. ``target_precision``/``target_recall`` tune
                for a target instead (see :func:`tune_thresholds`).
            space: what ``scores`` are; :meth:`transform` assumes the same unless told otherwise.
            ignore_index: a label value whose rows (multilabel: entries) are left out, as in PyTorch.
            max_rows: Dask arrays only: the bounded sample for what is not a sum of per-block partials
                (see :func:`fit_calibrator`).
            sample_weight: one non-negative weight per sample: the scaler's fit, ``method="auto"``'s
                cross-validated comparison and the thresholds count each sample that many times (as
                repeating it would; 0 leaves it out).

        Returns:
            ``self``.
        """
        task = validate_task(task)
        space = validate_space(space)
        axis = resolve_axis(axis, dim)
        method = _method(method)
        if tune is not None and tune != "f1":
            raise ValueError(f"unknown tune {tune!r}; use 'f1' or None (give target_precision/target_recall for a "
                             "precision or recall target)")
        # the scaler first: a method the task has no use for is refused before the scores are read
        scaler: Scaler | None = None if method in (None, "auto") else make_scaler(method, task)
        if is_dask(scores) or is_dask(labels):
            return self._fit_dask(scores, labels, task, method, scaler, tune, space, axis, ignore_index,
                                  target_precision, target_recall, max_rows, sample_weight)
        z, c = fit_logits(scores, labels, task, space, axis, ignore_index=ignore_index, sample_weight=sample_weight)
        self.selection_ = None
        if method == "auto":
            self.selection_ = select_method(z, c.labels, c.valid, task, weight=c.weight)
            method = self.selection_["chosen"]
            scaler = make_scaler(method, task, **self.selection_["options"])
        if scaler is not None:
            scaler.fit_canonical(z, c.labels, valid=c.valid, weight=c.weight, space=space, axis=axis)
        self.task, self.method, self.scaler, self.space_, self.axis_ = task, method, scaler, space, axis
        self.n_classes_ = None if task == "binary" else int(z.shape[1])
        self._fitted = True
        wants = tune is not None or target_precision is not None or target_recall is not None
        self.tune = tune if task != "multiclass" and wants else None
        self.thresholds = None
        if task != "multiclass" and wants:
            probs = self.predict_proba(scores, space=space)
            self.thresholds = tune_thresholds(probs, labels, task, space="probs", axis=axis,
                                              target_precision=target_precision, target_recall=target_recall,
                                              ignore_index=ignore_index, sample_weight=sample_weight)
            if target_precision is not None:
                self.tune = f"precision>={target_precision:g}"
            elif target_recall is not None:
                self.tune = f"recall>={target_recall:g}"
        return self

    def _fit_dask(self, scores, labels, task, method, scaler, tune, space, axis, ignore_index, target_precision,
                  target_recall, max_rows, sample_weight=None) -> Calibrator:
        """The fit on Dask arrays: the scaler exactly where its fit is a sum (``Scaler.fit_distributed``);
        ``method="auto"``'s selection and the thresholds on one bounded uniform sample (a warning says so)."""
        from .._dask_calibration import DaskLogits, sample_of

        wants = tune is not None or target_precision is not None or target_recall is not None
        tp, tr = check_targets(target_precision, target_recall)
        data = DaskLogits(scores, labels, task, space, axis, ignore_index, sample_weight=sample_weight)
        self.selection_, sample = None, None
        if method == "auto":
            sample = sample_of(data, max_rows, "method='auto' (its cross-validated selection)", stacklevel=5)
            self.selection_ = select_method(*sample[:3], task, weight=sample[3])
            method = self.selection_["chosen"]
            scaler = make_scaler(method, task, **self.selection_["options"])
            if sample[0].shape[0] < data.n:
                self.selection_["reason"] += (f"; selected on a uniform sample of {sample[0].shape[0]} of {data.n} "
                                              f"rows, then {method} fitted on every row where its fit is exact")
        if scaler is not None:
            scaler.fit_distributed(data, space=space, axis=axis, max_rows=max_rows)
        self.task, self.method, self.scaler, self.space_, self.axis_ = task, method, scaler, space, axis
        self.n_classes_ = data.n_classes
        self._fitted = True
        self.tune = tune if task != "multiclass" and wants else None
        self.thresholds = None
        if task != "multiclass" and wants:
            if sample is None:
                sample = sample_of(data, max_rows, "the decision thresholds", stacklevel=5, verb="were tuned")
            z, y, valid, weight = sample
            zc = z if scaler is None else scaler.transform_canonical(z)
            p = np.asarray(to_probs(zc, task, axis=-1), dtype=np.float64)
            self.thresholds = tune_canonical(p, y, task, valid=valid, weight=weight, target_precision=tp,
                                             target_recall=tr)
            if tp is not None:
                self.tune = f"precision>={tp:g}"
            elif tr is not None:
                self.tune = f"recall>={tr:g}"
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ValueError("this Calibrator is not fitted yet: call .fit(scores, labels, task) first "
                             "(or load a saved one with sigmax.calibration.load)")

    def transform(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated logits, with the input's array type, device and dtype (see :meth:`TemperatureScaling.transform`).

        ``space``: what ``scores`` are; by default the space the calibrator was fitted on (``space_``).
        """
        self._check_fitted()
        space = self.space_ if space is None else validate_space(space)
        if is_dask(scores):  # lazily, block by block: a Dask array
            return self._blockwise(lambda b: self.transform(b, space=space), scores)
        if self.scaler is not None:
            return self.scaler.transform(scores, space=space)
        p, z = logits_xp(scores, self.task, space, self.axis_)
        if self.task != "binary" and self.n_classes_ is not None:
            if z.ndim < 1:
                raise ValueError(f"{self.task} scores need a class axis, got a scalar")
            c = z.shape[normalize_axis(self.axis_, z.ndim)]
            if c != self.n_classes_:
                raise ValueError(f"scores have {c} classes along axis {self.axis_} but this Calibrator was "
                                 f"fitted on {self.n_classes_}; use the same model's scores")
        return finish(p, z)

    def predict_proba(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated probabilities (``softmax`` or ``sigmoid`` of :meth:`transform`)."""
        if is_dask(scores):
            return self._blockwise(lambda b: self.predict_proba(b, space=space), scores)
        return to_probs(self.transform(scores, space=space), self.task, axis=self.axis_)

    def predict(self, scores: Any, *, space: str | None = None) -> Any:
        """Decisions on calibrated scores with the tuned thresholds (argmax for multiclass), via
        :func:`sigmax.interpret.interpret`."""
        from ..interpret import interpret

        if is_dask(scores):
            return self._blockwise(lambda b: self.predict(b, space=space), scores, decisions=True)
        # a float or a list: interpret() turns lists into the scores' library (NumPy arrays it does not)
        th = None if self.thresholds is None else self.thresholds.tolist()
        z = self.transform(scores, space=space)
        return interpret(z, self.task, axis=self.axis_, threshold=th).predictions

    def _blockwise(self, fn, scores: Any, decisions: bool = False) -> Any:
        """``fn`` on each block of a Dask array (the class axis whole), lazily; a Dask array."""
        from .._dask import blockwise

        ax = None if self.task == "binary" else normalize_axis(self.axis_, scores.ndim)
        if decisions:  # multiclass: one index per row (the class axis dropped); otherwise 0/1 per entry
            return blockwise(fn, scores, class_axis=ax, dtype=np.int64, drop_class_axis=self.task == "multiclass")
        dtype = scores.dtype if scores.dtype.kind == "f" else np.dtype(np.float64)
        return blockwise(fn, scores, class_axis=ax, dtype=dtype)

    def describe(self) -> str:
        """A one-line summary: the method and its parameters, rounded.

        Example:
            >>> import numpy as np
            >>> from sigmax.calibration import Calibrator
            >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]] * 10); y = np.array([0, 1, 1, 0] * 10)
            >>> Calibrator().fit(z, y, "multiclass").describe()  # doctest: +ELLIPSIS
            'temperature scaling, T = ...'
        """
        self._check_fitted()
        return "no rescaling" if self.scaler is None else self.scaler.describe()

    def check_compatible(self, task: str, n_classes: int | None = None) -> None:
        """A ``ValueError`` naming the fix unless this was fitted for ``task`` (and ``n_classes`` classes)."""
        self._check_fitted()
        check_compatible(self.task, self.n_classes_, task, n_classes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: task, method, the scaler's :meth:`~TemperatureScaling.to_dict`, thresholds."""
        self._check_fitted()
        return {"sigmax": "calibration", "format": F.FORMAT_VERSION, "type": "Calibrator", "task": self.task,
                "method": self.method, "space": self.space_, "axis": self.axis_, "n_classes": self.n_classes_,
                "tune": self.tune, "scaler": None if self.scaler is None else self.scaler.to_dict(),
                "thresholds": None if self.thresholds is None else self.thresholds.tolist(),
                "selection": self.selection_}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Calibrator:
        """A fitted Calibrator from its :meth:`to_dict` description, every field validated."""
        obj = cls()
        task = F.choice(d, "task", TASKS)
        method = F.choice(d, "method", tuple(METHODS))
        space = F.choice(d, "space", SPACES)
        axis = F.integer(d, "axis")
        tune = d.get("tune")
        if tune is not None and not isinstance(tune, str):
            raise F.FieldError("tune", "must be a string or null", tune)
        n_classes = F.integer(d, "n_classes", lo=1, optional=True)
        if task == "binary" and n_classes is not None:
            raise F.FieldError("n_classes", "must be null for task 'binary'", n_classes)
        sd = d.get("scaler")
        scaler = None
        if method is None:
            if sd is not None:
                raise F.FieldError("scaler", "must be null for method null (no rescaling)", type(sd).__name__)
        else:
            want = METHODS[method]
            if not isinstance(sd, dict):
                raise F.FieldError("scaler", f"must describe the fitted {want.__name__} of method {method!r}",
                                   sd)
            try:
                kind = F.check_header(sd)
            except ValueError as exc:
                raise F.FieldError("scaler", f"is not a scaler description ({exc})") from None
            if kind != want.__name__:
                raise F.FieldError("scaler.type", f"must be {want.__name__!r} for method {method!r}", kind)
            scaler = want.from_description(sd, "scaler.")
            for field, mine, theirs in (("task", task, scaler.task), ("space", space, scaler.space_),
                                        ("axis", axis, scaler.axis_)):
                if mine != theirs:
                    raise F.FieldError(f"scaler.{field}", f"must equal the calibrator's {field} {mine!r}", theirs)
            if n_classes is not None and scaler.n_classes_ is not None and n_classes != scaler.n_classes_:
                raise F.FieldError("n_classes", f"must equal the scaler's n_classes {scaler.n_classes_}", n_classes)
            n_classes = scaler.n_classes_ if n_classes is None else n_classes
        th = d.get("thresholds")
        if th is not None:
            if task == "multiclass":
                raise F.FieldError("thresholds", "must be null for task 'multiclass' (decisions are the argmax)",
                                   th)
            if task == "binary":
                thresholds = np.asarray(F.number(th, "thresholds", lo=0.0, hi=1.0))
            else:
                thresholds = F.numbers_of(th, "thresholds", n_classes, lo=0.0, hi=1.0)
                n_classes = thresholds.size if n_classes is None else n_classes
            obj.thresholds = thresholds
        obj.selection_ = _load_selection(d.get("selection"), method, task)
        obj.task, obj.method, obj.scaler, obj.space_, obj.axis_, obj.tune = task, method, scaler, space, axis, tune
        obj.n_classes_ = n_classes
        obj._fitted = True
        return obj

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (read it back with :func:`sigmax.calibration.load`).

        The file is written to a temporary file beside ``path`` and renamed into place (an interrupted
        save leaves the old file whole); missing parent folders are created.
        """
        F.write_json(path, self.to_dict())

    def __repr__(self) -> str:
        if not self._fitted:
            return "Calibrator(not fitted)"
        th = None if self.thresholds is None else np.round(self.thresholds, 4).tolist()
        return f"Calibrator(task={self.task!r}, scaler={self.scaler!r}, thresholds={th})"


def _load_selection(sel: Any, method: Any, task: str) -> dict[str, Any] | None:
    """The ``selection`` record of a saved ``method="auto"`` calibrator, validated (``None`` when absent)."""
    if sel is None:
        return None
    if not isinstance(sel, dict):
        raise F.FieldError("selection", "must be a JSON object (the record of method='auto') or null", sel)
    chosen = F.choice(sel, "chosen", candidates(task), "selection.chosen")
    if chosen != method:
        raise F.FieldError("selection.chosen", f"must equal the calibrator's method {method!r}", chosen)
    for key in ("cv_nll", "se"):
        v = sel.get(key, {})
        if not isinstance(v, dict):
            raise F.FieldError(f"selection.{key}", "must be a JSON object of numbers, one per method", v)
        for m, x in v.items():
            if m not in METHODS or m is None:
                raise F.FieldError(f"selection.{key}", f"has unknown method {m!r}")
            F.number(x, f"selection.{key}.{m}", lo=0.0, hi=float("inf"))
    reason = sel.get("reason", "")
    if not isinstance(reason, str):
        raise F.FieldError("selection.reason", "must be a string", reason)
    return dict(sel)


def _resolve_tune(task: str, tune: Any, target_precision: Any, target_recall: Any) -> str | None:
    if isinstance(tune, str):
        tune = tune.strip().lower()
        tune = None if tune == "none" else tune
    if tune == "auto":
        tune = "f1" if task != "multiclass" else None
    if tune is not None and tune != "f1":
        raise ValueError(f"unknown {spell('tune')} {tune!r}; use 'f1', 'auto' (F1 for binary and multilabel) or "
                         "'none'")
    if task == "multiclass" and (tune is not None or target_precision is not None or target_recall is not None):
        what = spell("tune", tune) if tune is not None else spell(
            "target_precision" if target_precision is not None else "target_recall")
        raise ValueError(f"{what} is for binary and multilabel tasks (multiclass decides by argmax, without "
                         f"thresholds); leave it out")
    return tune


def fit_calibrator(scores: Any, labels: Any, task: str, *, space: str = "logits", method: str | None = None,
                   tune: str | None = None, axis: int = -1, ignore_index: int | None = None,
                   target_precision: float | None = None, target_recall: float | None = None,
                   notes: list[str] | None = None, dim: int | None = None,
                   max_rows: int | None = None, sample_weight: Any = None) -> Calibrator:
    r"""Fit a :class:`Calibrator` on a calibration set, with the method and the threshold rule resolved per task.

    Args:
        scores: binary ``(N,)`` or ``(N, C)`` scores (classes along ``axis``) in the declared ``space``;
            NumPy, PyTorch or JAX. Use rows the model was not trained on.
        labels: class indices (binary 0/1, multiclass ``0..C-1``) or multi-hot rows (multilabel).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        space: what ``scores`` are: ``"logits"``, ``"probs"`` or ``"log_probs"`` (stored in the calibrator:
            :meth:`Calibrator.transform` assumes it).
        method: ``None`` (:data:`DEFAULT_METHOD`: temperature scaling, one temperature per label for
            multilabel), ``"temperature"``, ``"vector"`` (multiclass), ``"platt"`` (binary/multilabel),
            ``"beta"``, ``"histogram"``, ``"isotonic"``, ``"dirichlet"`` (multiclass), ``"auto"`` (the
            simplest method within one standard error of the lowest cross-validated NLL; the reason is
            in ``.selection_["reason"]`` and in ``notes``) or ``"none"`` (no rescaling).
        tune: per-class decision thresholds: ``None`` or ``"none"`` (decide at 0.5), ``"f1"`` (maximise F1;
            binary and multilabel only), ``"auto"`` (``"f1"`` for binary and multilabel, none for multiclass).
        axis: the class axis of ``scores``.
        ignore_index: a label value whose rows (multilabel: entries) are left out, as in PyTorch.
        target_precision, target_recall: tune thresholds for a precision or recall target instead.
        notes: a list: the fit's UserWarnings (small calibration set, no convergence, ...) are appended
            to it as ``"Calibration warning: ..."`` lines instead of being emitted; with ``method="auto"``,
            the reason for the choice as a ``"Calibration method: ..."`` line.
        max_rows: Dask arrays (chunked along rows) only. Temperature, vector and Platt scaling, beta
            calibration and histogram binning are fitted exactly from per-block sums (the scores never
            come to this process); isotonic and Dirichlet calibration, ``method="auto"``'s selection
            (the chosen method is then fitted exactly where it can be) and the thresholds use one uniform sample of at most ``max_rows`` rows (default:
            256 MiB of float64 scores), drawn per row on the workers, and a ``UserWarning`` (a note)
            says "fitted on a uniform sample of n of N rows" whenever it is not every row.
        sample_weight: one non-negative weight per sample (NumPy, PyTorch, JAX or Dask, aligned with the
            scores' rows): every fit, the selection and the thresholds count a sample that many times, as
            repeating it would (a weight of 0 leaves it out).

    Returns:
        The fitted :class:`Calibrator` (``.method``, ``.thresholds``, ``.describe()``, ``.save(path)``).

    Raises:
        ValueError: an unknown method or tune, a method the task has no use for (vector scaling for
            binary, Platt for multiclass), thresholds asked for multiclass, or invalid scores/labels.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import fit_calibrator
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=2000) * 3; y = (rng.uniform(size=2000) < 1 / (1 + np.exp(-z / 3))).astype(int)
        >>> cal = fit_calibrator(z, y, "binary", tune="auto")
        >>> cal.method, round(float(cal.scaler.temperature), 1), cal.thresholds.shape
        ('temperature', 3.0, ())
        >>> fit_calibrator(z, y, "binary", method="platt").describe()
        'Platt scaling, weight 0.337, bias 0.058'
    """
    task, space = validate_task(task), validate_space(space)
    method, tune = resolve_method(task, method, tune, target_precision=target_precision,
                                  target_recall=target_recall)

    def fit() -> Calibrator:
        return Calibrator().fit(scores, labels, task, method=method, tune=tune, space=space, axis=axis,
                                dim=dim, ignore_index=ignore_index, target_precision=target_precision,
                                target_recall=target_recall, max_rows=max_rows, sample_weight=sample_weight)

    if notes is None:
        return fit()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cal = fit()
    if cal.selection_ is not None:
        notes.append(f"Calibration method: {cal.selection_['reason']}")
    for w in caught:
        if issubclass(w.category, UserWarning):
            notes.append(f"Calibration warning: {w.message}")
        else:  # other warnings are passed on as they are
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return cal


def from_dict(d: dict[str, Any]) -> Any:
    """A calibrator (scaler or :class:`Calibrator`) from its ``to_dict()`` description.

    Every field is validated (types, shapes, finite values, temperatures > 0, thresholds in [0, 1],
    the class count, the method and the format version): a damaged or edited description is a
    ``ValueError`` naming the field, never a calibrator that gives wrong answers.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import TemperatureScaling, from_dict
        >>> ts = TemperatureScaling("binary").fit(np.array([3.0, -2.0, 1.0, -1.0] * 10), np.array([1, 0, 0, 1] * 10))
        >>> from_dict(ts.to_dict()).temperature == ts.temperature
        True
        >>> d = ts.to_dict(); d["params"]["temperature"] = -1.0
        >>> try:
        ...     from_dict(d)
        ... except ValueError as exc:
        ...     print(exc)
        calibrator field 'params.temperature' must be > 0, got -1.0; the file is damaged ...
    """
    kind = F.check_header(d)
    if kind == "Calibrator":
        return Calibrator.from_description(d)
    if kind in SCALERS:
        return SCALERS[kind].from_description(d)
    raise ValueError(f"unknown calibrator type {kind!r}; known: Calibrator, {', '.join(SCALERS)}")


def load(path: str | os.PathLike) -> Any:
    """Load a calibrator saved with ``.save(path)``: a :class:`Calibrator` or a scaler, validated (:func:`from_dict`).

    Example:
        >>> import numpy as np, tempfile, os
        >>> from sigmax.calibration import Calibrator, load
        >>> cal = Calibrator().fit(np.array([3.0, -2.0, 1.0, -1.0] * 10), np.array([1, 0, 0, 1] * 10), "binary")
        >>> path = os.path.join(tempfile.mkdtemp(), "cal.json")
        >>> cal.save(path)
        >>> bool(load(path).thresholds == cal.thresholds)
        True
    """
    return from_dict(F.read_json(path))
