r"""The scalers: temperature, vector and Platt scaling (fit on float64 NumPy, apply in any array library).

Every scaler minimises the calibration set's negative log-likelihood (the optimisers are in
``_solvers``) and maps logits to calibrated logits; its JSON description round-trips exactly and is
validated field by field on load.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from types import MappingProxyType
from typing import Any

import numpy as np

from .._array import finish, like, normalize_axis, prepare, resolve_axis
from .._inputs import SPACES, is_dask, spell, validate_space, validate_task
from ..activations import log_sigmoid, log_softmax, sigmoid, softmax
from ..interpret import to_probs
from . import _format as F
from ._logits import check_weight_total, fit_logits, logits_xp
from ._params import EstimatorParams, as_given, flag
from ._solvers import column_mean, lbfgs, newton_logistic, newton_logistic_on, solve_log_temperature

__all__ = ["MIN_SAMPLES_PER_PARAMETER", "METHOD_NAMES", "SCALERS", "Scaler", "TemperatureScaling",
           "VectorScaling", "PlattScaling", "mean_nll", "entry_weights", "describe_numbers",
           "check_compatible", "warn_small"]

#: fewer calibration samples than this per fitted parameter gives a UserWarning
MIN_SAMPLES_PER_PARAMETER = 30
#: the display name of each calibration method
METHOD_NAMES = {"temperature": "temperature scaling", "vector": "vector scaling", "platt": "Platt scaling"}


def _onehot(y: np.ndarray, c: int) -> np.ndarray:
    out = np.zeros((y.shape[0], c))
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def mean_nll(z: np.ndarray, y: np.ndarray, task: str, valid: np.ndarray | None = None,
             weight: np.ndarray | None = None) -> float:
    """The mean NLL of canonical float64 logits (multiclass: per row; binary/multilabel: per kept entry),
    weighted by ``weight`` (one per row; ``None``: all 1) as repeating each row that many times would."""
    if task == "multiclass":
        per = -np.asarray(log_softmax(z, axis=1))[np.arange(z.shape[0]), y]
        valid = None  # multiclass has no entry mask: ignored rows are gone
    else:  # -[y log sigma(z) + (1 - y) log sigma(-z)]: both logs exact for large |z|
        per = -(y * np.asarray(log_sigmoid(z)) + (1 - y) * np.asarray(log_sigmoid(-z)))
    w = entry_weights(weight, valid, per.shape)
    if w is None:
        return float(np.mean(per))
    total = float(np.sum(w))
    return float(np.sum(w * per) / total) if total > 0 else 0.0

def entry_weights(weight: np.ndarray | None, valid: np.ndarray | None,
                  shape: tuple[int, ...]) -> np.ndarray | None:
    """The weight of each entry of a fit on arrays of ``shape`` (rows first): the row's weight (``weight``,
    one per row; ``None``: all 1) times the kept-entry mask ``valid`` (``None``: all kept); ``None`` when
    both are ``None``. A ``ValueError`` when the row weights sum to 0 over the kept entries.

    Example:
        >>> entry_weights(np.array([2.0, 0.5]), np.array([[True, False], [True, True]]), (2, 2)).tolist()
        [[2.0, 0.0], [0.5, 0.5]]
    """
    if weight is None and valid is None:
        return None
    n = shape[0]
    w = np.ones(shape) if weight is None else np.broadcast_to(
        np.reshape(weight, (n,) + (1,) * (len(shape) - 1)), shape)  # a row's weight on each of its entries
    w = np.array(w, dtype=np.float64) if valid is None else np.where(np.reshape(valid, shape), w, 0.0)
    if weight is not None:
        check_weight_total(np.sum(w))
    return w


def _rows_weighted(n: int, weight: np.ndarray | None) -> int:
    """The rows that count for the small-sample warnings: those of positive weight (all ``n`` unweighted)."""
    return n if weight is None else int(np.count_nonzero(weight))


def describe_numbers(v: Any, digits: int = 2, most: int = 6) -> str:
    """``1.234`` for one number, ``1.23, 0.98, ...`` for several (the one-line summaries)."""
    v = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if v.size == 1:
        return f"{v[0]:.{digits + 1}f}"
    return ", ".join(f"{x:.{digits}f}" for x in v[:most]) + (", ..." if v.size > most else "")


def check_compatible(fitted_task: str, fitted_classes: int | None, task: str, n_classes: int | None) -> None:
    """A ``ValueError`` naming the fix when scores of ``task`` with ``n_classes`` do not fit a calibrator."""
    task = validate_task(task)
    if fitted_task != task:
        raise ValueError(f"the calibrator was fitted for {spell('task', fitted_task)} but the scores are declared "
                         f"{spell('task', task)}; declare {spell('task', fitted_task)} or fit a calibrator for "
                         f"{task} scores")
    if n_classes is not None and task != "binary" and fitted_classes is not None and fitted_classes != n_classes:
        raise ValueError(f"the calibrator was fitted on {fitted_classes} classes but the scores have {n_classes}; "
                         "use the calibrator of the same model")


def warn_small(n: int, n_params: int, what: str, alternative: str = "") -> None:
    if n < MIN_SAMPLES_PER_PARAMETER * n_params:
        warnings.warn(
            f"{what} fits {n_params} parameter(s) on {n} calibration sample(s); with fewer than "
            f"{MIN_SAMPLES_PER_PARAMETER} samples per parameter (here {MIN_SAMPLES_PER_PARAMETER * n_params}) "
            f"the fit may overfit the calibration set{alternative}",
            UserWarning, stacklevel=5)


def _blockwise(fn, scores, scaler):
    """``fn`` on each block of a Dask array of ``scores`` (the class axis whole), lazily."""
    from .._dask import blockwise

    ax = None if scaler.task == "binary" else normalize_axis(scaler.axis_, scores.ndim)
    dtype = scores.dtype if scores.dtype.kind == "f" else np.dtype(np.float64)
    return blockwise(fn, scores, class_axis=ax, dtype=dtype)


def _check_gtol(gtol: Any) -> float:
    if isinstance(gtol, bool) or not isinstance(gtol, numbers.Real) or not 0 < gtol < 1:
        raise ValueError(f"gtol must be a number in (0, 1), got {gtol!r}")
    return float(gtol)


def _short(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v[:6]) + (", ..." if len(v) > 6 else "") + "]"
    return f"{v:.4g}"


class Scaler(EstimatorParams):
    """Shared plumbing: fit on float64 NumPy, transform in the input's library, JSON round trip.

    scikit-learn's estimator conventions (``_params``): constructor parameters only, ``get_params`` /
    ``set_params``, ``clone``; what ``fit`` learns ends in ``_`` (the class-level defaults below answer
    before it).
    """

    space_: str | None = None
    axis_: int = -1
    n_classes_: int | None = None
    info_: Any = MappingProxyType({})

    #: the tasks this scaler fits (checked by the constructor and by :func:`sigmax.calibration.resolve_method`)
    tasks: tuple[str, ...] = ()
    _params: tuple[str, ...] = ()
    #: the ``method`` name of :class:`~sigmax.calibration.Calibrator` for this scaler
    method: str = ""

    def __init__(self, task: str, *, gtol: float, space: str = "logits"):
        checked = validate_task(task)
        if checked not in self.tasks:
            raise ValueError(self._task_error(checked))
        self.task = as_given(task, checked)
        self.gtol = as_given(gtol, _check_gtol(gtol))
        self.space = as_given(space, validate_space(space))

    def _task_error(self, task: str) -> str:  # pragma: no cover - overridden
        return f"{type(self).__name__} does not support task={task!r}"

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, scores: Any, labels: Any, *, space: str | None = None, axis: int = -1,
            dim: int | None = None, ignore_index: int | None = None, max_rows: int | None = None,
            sample_weight: Any = None) -> Scaler:
        """Fit on a calibration set (held out from training); returns ``self``. See the class docstring.

        Rows whose label is ``ignore_index`` (multilabel: those entries) are left out of the fit.
        ``sample_weight`` (one non-negative weight per row) weights each row's term of the fit as repeating
        the row that many times would (a weight of 0 leaves the row out).
        On a Dask array (chunked along rows) temperature, vector and Platt scaling, beta calibration
        and histogram binning are fitted exactly, from per-block sums reduced on the workers (equal-mass
        edges by exact distributed selection); isotonic regression and Dirichlet calibration are fitted
        in memory on a uniform sample of at most ``max_rows`` rows (default: 256 MiB of float64 scores),
        with a ``UserWarning`` saying "fitted on a uniform sample of n of N rows" when it is not every row.
        """
        space = validate_space(self.space if space is None else space)  # the constructor's space by default
        axis = resolve_axis(axis, dim)
        if is_dask(scores) or is_dask(labels):  # sums of per-chunk partials where the chunks live
            from .._dask_calibration import DaskLogits

            data = DaskLogits(scores, labels, self.task, space, axis, ignore_index, sample_weight=sample_weight)
            return self.fit_distributed(data, space=space, axis=axis, max_rows=max_rows)
        z, c = fit_logits(scores, labels, self.task, space, axis, ignore_index=ignore_index,
                          sample_weight=sample_weight)
        return self.fit_canonical(z, c.labels, valid=c.valid, weight=c.weight, space=space, axis=axis)

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> Scaler:
        """Fit on a :class:`sigmax._dask_calibration.DaskLogits` (canonical logits on the workers).

        Scalers whose fit is a sum of per-block partials override this; the others fit in memory on a
        uniform sample of at most ``max_rows`` rows, with a ``UserWarning`` saying so when it is not every row.
        """
        from .._dask_calibration import sample_of

        z, y, valid, weight = sample_of(data, max_rows, type(self).__name__, stacklevel=4)
        return self.fit_canonical(z, y, valid=valid, weight=weight, space=space, axis=axis)

    def fit_canonical(self, z: np.ndarray, y: np.ndarray, *, valid: np.ndarray | None = None,
                      weight: np.ndarray | None = None, space: str = "logits", axis: int = -1) -> Scaler:
        """Fit on float64 logits already in the canonical layout (classes last; see ``sigmax._inputs``).

        ``weight``: one non-negative weight per row (``None``: all 1). ``space`` and ``axis`` are recorded
        as what :meth:`transform` assumes by default.
        """
        self.space_, self.axis_ = space, axis
        self.n_classes_ = None if self.task == "binary" else int(z.shape[1])
        before = mean_nll(z, y, self.task, valid, weight)
        info = self._fit(z, y, valid, weight)
        after = mean_nll(self._apply_np(z), y, self.task, valid, weight)
        return self._record(int(z.shape[0]), before, after, info)

    def _record(self, n: int, before: float, after: float, info: dict[str, Any], stacklevel: int = 4) -> Scaler:
        self.info_ = {"n_samples": n, "nll_before": before, "nll_after": after, **info}
        if not info.get("converged", True):
            warnings.warn(f"{type(self).__name__} did not reach the gradient tolerance {self.gtol:g} "
                          f"(gradient {info.get('grad_max', float('nan')):.3g} after {info.get('n_iter')} "
                          "iterations); the calibration set may be separable or degenerate",
                          UserWarning, stacklevel=stacklevel)
        return self

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:  # pragma: no cover
        """Fit the parameters; ``weight`` (one per row, or ``None``) weights each row's terms as repeating it."""
        raise NotImplementedError

    # -- applying -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if self.space_ is None:
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call .fit(scores, labels) first "
                             "(or load a saved one with sigmax.calibration.load)")

    def _class_axis(self, z) -> int | None:
        if self.task == "binary":
            return None
        if z.ndim < 1:
            raise ValueError(f"{self.task} scores need a class axis, got a scalar")
        ax = normalize_axis(self.axis_, z.ndim)
        if self.n_classes_ is not None and z.shape[ax] != self.n_classes_:
            raise ValueError(f"scores have {z.shape[ax]} classes along axis {self.axis_} but this "
                             f"{type(self).__name__} was fitted on {self.n_classes_}; use the same model's scores")
        return ax

    def _per_class(self, xp, values: np.ndarray, z, ax):
        """A per-class parameter vector as an array of z's library/dtype, broadcast along the class axis."""
        v = like(xp, np.asarray(values, dtype=np.float64).tolist(), z, name="parameters")
        if ax is None or v.ndim == 0:
            return v
        return xp.reshape(v, tuple(-1 if i == ax else 1 for i in range(z.ndim)))

    def transform(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated logits of ``scores``, with the input's array type, device and dtype.

        Args:
            scores: scores of the task this was fitted for.
            space: what ``scores`` are; by default the space given to :meth:`fit`. Probabilities and
                log-probabilities are turned into logits first (``log p`` for multiclass, ``logit(p)``
                otherwise; probabilities of exactly 0 or 1 become logits of -745 / +745).

        Returns:
            Logits (feed them to ``softmax``/``sigmoid``, a loss or :func:`sigmax.interpret.interpret`).
        """
        self._check_fitted()
        space = self.space_ if space is None else validate_space(space)
        if is_dask(scores):  # lazily, block by block (the class axis whole): a Dask array
            return _blockwise(lambda b: self.transform(b, space=space), scores, self)
        p, z = logits_xp(scores, self.task, space, self.axis_)
        return finish(p, self._apply(p.xp, z, self._class_axis(z)))

    def predict_proba(self, scores: Any, *, space: str | None = None) -> Any:
        """Calibrated probabilities: ``softmax`` (multiclass) or ``sigmoid`` of :meth:`transform`."""
        if is_dask(scores):
            return _blockwise(lambda b: self.predict_proba(b, space=space), scores, self)
        return to_probs(self.transform(scores, space=space), self.task, axis=self.axis_)

    def _apply(self, xp, z, ax):  # pragma: no cover - abstract
        raise NotImplementedError

    def transform_canonical(self, z: np.ndarray) -> np.ndarray:
        """Calibrated float64 logits of canonical float64 logits (classes last, rows flattened)."""
        self._check_fitted()
        return self._apply_np(z)

    def _apply_np(self, z: np.ndarray) -> np.ndarray:
        p = prepare(z, name="scores")
        return np.asarray(self._apply(p.xp, p.x, None if self.task == "binary" else z.ndim - 1))

    def describe(self) -> str:
        """A one-line summary: the method and its parameters, rounded (``temperature scaling, T = 1.52``)."""
        return METHOD_NAMES.get(self.method, type(self).__name__)

    def check_compatible(self, task: str, n_classes: int | None = None) -> None:
        """A ``ValueError`` unless this was fitted for ``task`` and (multiclass, multilabel) ``n_classes``."""
        check_compatible(self.task, self.n_classes_, task, n_classes)

    # -- saving -------------------------------------------------------------------------------

    def _param_dict(self) -> dict[str, Any]:
        out = {}
        for name in self._params:
            v = getattr(self, name + "_")
            out[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (type, task, fitted parameters, fit information)."""
        self._check_fitted()
        return {"sigmax": "calibration", "format": F.FORMAT_VERSION, "type": type(self).__name__,
                "task": self.task, "space": self.space_, "axis": self.axis_, "n_classes": self.n_classes_,
                "options": self._options(), "params": self._param_dict(), "info": self.info_}

    def _options(self) -> dict[str, Any]:
        return {"gtol": self.gtol}

    #: the options' JSON types (every option is checked on load)
    _option_types: dict[str, type] = {"gtol": numbers.Real}

    @classmethod
    def from_description(cls, d: dict[str, Any], where: str = "") -> Scaler:
        """A fitted scaler from its :meth:`to_dict` description, every field validated (a ``ValueError``
        naming the field otherwise). ``where`` prefixes the field names (``scaler.``)."""
        task = F.choice(d, "task", cls.tasks, where + "task")
        space = F.choice(d, "space", SPACES, where + "space")
        axis = F.integer(d, "axis", where + "axis")
        if task == "binary":
            if d.get("n_classes") is not None:
                raise F.FieldError(where + "n_classes", "must be null for task 'binary'", d["n_classes"])
            n_classes = None
        else:
            n_classes = F.integer(d, "n_classes", where + "n_classes", lo=2 if task == "multiclass" else 1)
        options = d.get("options", {})
        if not isinstance(options, dict):
            raise F.FieldError(where + "options", "must be a JSON object", options)
        for k, v in options.items():
            kind = cls._option_types.get(k)
            if kind is None:
                raise F.FieldError(where + "options", f"has unknown option {k!r} (known: "
                                   f"{', '.join(cls._option_types)})")
            if (kind is bool and not isinstance(v, bool)) or (kind is not bool and (isinstance(v, bool) or
                                                               not isinstance(v, kind))):
                raise F.FieldError(f"{where}options.{k}", f"must be {'true or false' if kind is bool else 'a number'}",
                                   v)
        try:
            obj = cls(task, space=space, **options)
        except ValueError as exc:
            raise F.FieldError(where + "options", f"is invalid ({exc})") from None
        obj.space_, obj.axis_, obj.n_classes_ = space, axis, n_classes
        params = d.get("params")
        if not isinstance(params, dict):
            raise F.FieldError(where + "params", "must be a JSON object", params)
        unknown = sorted(set(params) - set(cls._params))
        if unknown:
            raise F.FieldError(where + "params", f"has unknown parameter(s) {unknown} for {cls.__name__}")
        for name in cls._params:
            if name not in params:
                raise F.FieldError(f"{where}params.{name}", "is missing")
            setattr(obj, name + "_", obj._load_param(name, params[name], f"{where}params.{name}"))
        info = d.get("info", {})
        if not isinstance(info, dict):
            raise F.FieldError(where + "info", "must be a JSON object", info)
        obj.info_ = dict(info)
        return obj

    def _load_param(self, name: str, value: Any, where: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (read it back with :func:`sigmax.calibration.load`).

        The file is written to a temporary file beside ``path`` and renamed into place; missing parent
        folders are created.
        """
        F.write_json(path, self.to_dict())

    def __repr__(self) -> str:
        if self.space_ is None:
            return f"{type(self).__name__}(task={self.task!r}, not fitted)"
        params = ", ".join(f"{k}={_short(v)}" for k, v in self._param_dict().items())
        return f"{type(self).__name__}(task={self.task!r}, {params})"


class TemperatureScaling(Scaler):
    r"""Temperature scaling: divide the logits by a fitted temperature :math:`T > 0`.

    .. math::
        \text{multiclass: } p = \operatorname{softmax}(z / T), \qquad
        \text{binary / multilabel: } p = \sigma(z / T) \;\; (\text{or } \sigma(z_c / T_c) \text{ with } \texttt{per\_class})

    :math:`T` minimises the calibration set's NLL. It is fitted on :math:`u = \log T` (so :math:`T > 0`)
    by a safeguarded Newton iteration to ``|dNLL/du| < gtol``. :math:`T > 1` softens an over-confident
    model, :math:`T < 1` sharpens an under-confident one; a positive scalar keeps every argmax and every
    sign of a binary logit, so accuracy is unchanged.

    Args:
        task: ``"multiclass"`` (softmax temperature), ``"binary"`` (sigmoid temperature) or
            ``"multilabel"`` (sigmoid per label).
        per_class: multilabel only: one temperature per label (fitted independently) instead of one
            shared by all labels.
        gtol: convergence tolerance on the gradient of the mean NLL with respect to :math:`\log T`.

    Attributes (after :meth:`fit`):
        temperature_: a float, or a ``(C,)`` array with ``per_class=True``. ``temperature`` is an alias.
        info_: ``n_samples``, ``nll_before``, ``nll_after``, ``n_iter``, ``converged``, ``grad_max``.

    Note:
        If the logits classify every calibration sample correctly, the NLL keeps falling as
        :math:`T \to 0` and there is no finite optimum: a warning says so (the fit stops at the gradient
        tolerance, or at the bound :math:`T = e^{-20}`; likewise :math:`T \to \infty` for scores unrelated
        to the labels). A UserWarning says when there are fewer than
        ``MIN_SAMPLES_PER_PARAMETER`` (30) samples per fitted parameter.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import TemperatureScaling
        >>> z = np.array([4.0, -3.0, 5.0, -4.0, 3.0, -5.0, 2.0, -2.0] * 10)
        >>> y = np.array([1, 0, 0, 0, 1, 1, 1, 0] * 10)
        >>> ts = TemperatureScaling("binary").fit(z, y)
        >>> round(ts.temperature, 3)
        6.522
        >>> ts.transform(np.array([4.0])).round(3), ts.predict_proba(np.array([4.0])).round(3)
        (array([0.613]), array([0.649]))
    """

    tasks = ("multiclass", "binary", "multilabel")
    _params = ("temperature",)
    _option_types = {"per_class": bool, "gtol": numbers.Real}
    method = "temperature"

    temperature_: Any = None

    def __init__(self, task: str = "multiclass", *, per_class: bool = False, gtol: float = 1e-10,
                 space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)
        if per_class and self.task != "multilabel":
            raise ValueError("per_class=True is for task='multilabel' (one sigmoid temperature per label); for a "
                             "per-class multiclass rescaling use VectorScaling")
        self.per_class = flag(per_class, "per_class")

    @property
    def temperature(self) -> Any:
        """The fitted temperature (float, or ``(C,)`` array with ``per_class=True``)."""
        self._check_fitted()
        return self.temperature_

    def _options(self) -> dict[str, Any]:
        return {"per_class": self.per_class, "gtol": self.gtol}

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        if self.per_class:
            return F.numbers_of(value, where, self.n_classes_, positive=True)
        return F.number(value, where, positive=True)

    def describe(self) -> str:
        t = self.temperature
        return f"{METHOD_NAMES['temperature']}, T = {describe_numbers(t)}" + (
            " (one per class)" if np.size(t) > 1 else "")

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        n = z.shape[0]
        if self.task == "multiclass":
            zy = z[np.arange(n), y]
            ww = entry_weights(weight, None, (n,))
            mean = column_mean(ww)  # over the rows, weighted

            def deriv(b):
                bz = b[0] * z
                p = np.asarray(softmax(bz, axis=1))
                ez = np.sum(p * z, axis=1)
                var = np.sum(p * (z - ez[:, None]) ** 2, axis=1)  # Var_p(z), without E[z^2] - E[z]^2 cancellation
                return np.array([mean(ez - zy)]), np.array([mean(var)])

            k = 1
        else:
            zz = z.reshape(n, -1)
            yy = y.reshape(n, -1).astype(np.float64)
            vv = None if valid is None else valid.reshape(n, -1)
            ww = entry_weights(weight, vv, zz.shape)  # row weight x kept-entry mask (None: all 1)
            if self.task == "multilabel" and not self.per_class:
                # one temperature shared by every (kept) entry: each carries its row's weight
                keep = slice(None) if vv is None else vv
                zz, yy = zz[keep].reshape(-1, 1), yy[keep].reshape(-1, 1)
                ww = None if ww is None else ww[keep].reshape(-1, 1)
                vv = None
            mean = column_mean(ww)

            def deriv(b):
                bz = zz * b
                q = np.asarray(sigmoid(bz))
                qq = q * np.asarray(sigmoid(-bz))  # sigma(x)(1 - sigma(x)), with 1 - sigma(x) = sigma(-x) exactly
                return mean((q - yy) * zz), mean(qq * zz * zz)

            k = zz.shape[1]
        if self.task == "multiclass":
            others = np.where(_onehot(y, z.shape[1]) == 1, -np.inf, z).max(axis=1)
            right = zy > others
        else:
            right = ((zz > 0) == (yy == 1)) & (zz != 0)
        if ww is not None:
            right = right | (ww == 0)  # rows of weight 0 and entries left out do not count
        separable = bool(np.all(right)) if self.task == "multiclass" else bool(np.any(np.all(right, axis=0)))
        return self._solve(deriv, k, _rows_weighted(n, weight), separable, stacklevel=5)

    def _solve(self, deriv, k: int, n: int, separable: bool, stacklevel: int) -> dict[str, Any]:
        """The safeguarded Newton iteration on ``deriv`` (in memory, or sums over Dask blocks), with its warnings."""
        if separable:
            warnings.warn("the calibration scores classify every calibration sample correctly (for at least one "
                          "label): the NLL keeps falling as T -> 0, so the fitted temperature only reflects the "
                          "stopping tolerance; calibrate on held-out data on which the model makes mistakes",
                          UserWarning, stacklevel=stacklevel)
        warn_small(n, 1, f"TemperatureScaling(task={self.task!r}{', per_class=True' if self.per_class else ''})")
        u, g, it, converged, at_bound = solve_log_temperature(deriv, k, gtol=self.gtol)
        if at_bound.any():
            warnings.warn("the fitted temperature reached its bound (log T = +-20): the calibration scores "
                          "separate the labels perfectly (T -> 0) or carry no information about them (T -> inf); "
                          "use a larger, held-out calibration set", UserWarning, stacklevel=stacklevel)
        t = np.exp(u)
        self.temperature_ = t if self.per_class else float(t[0])
        return {"n_iter": int(it), "converged": bool(converged), "grad_max": float(np.max(np.abs(g)))}

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> TemperatureScaling:
        """The fit on Dask arrays: each Newton step is one reduction of per-block gradient/Hessian sums."""
        from .._dask_calibration import TemperatureSums

        sums = TemperatureSums(None, None, self.task, space, axis, None, per_class=self.per_class, data=data)
        self.space_, self.axis_, self.n_classes_ = space, axis, sums.n_classes
        before = sums.nll(1.0)
        info = self._solve(sums.deriv, sums.k, data.n_positive, sums.separable, stacklevel=5)  # as in memory
        return self._record(sums.n, before, sums.nll(self.temperature_), info, stacklevel=4)

    def _apply(self, xp, z, ax):
        t = self.temperature_
        if isinstance(t, np.ndarray):
            return z / self._per_class(xp, t, z, ax)
        return z / t


class VectorScaling(Scaler):
    r"""Vector scaling (multiclass): a fitted scale and bias per class, :math:`z' = w \odot z + b`.

    .. math:: p = \operatorname{softmax}(w \odot z + b), \qquad
              (w, b) = \arg\min -\frac1N \sum_i \log \operatorname{softmax}(w \odot z_i + b)_{y_i}
              + \frac{\lambda}{2} \big(\|w - 1\|^2 + \|b\|^2\big)

    More flexible than :class:`TemperatureScaling` (``2C`` parameters instead of 1), and it can change
    the argmax. Fitted by L-BFGS from the identity (:math:`w = 1, b = 0`) to ``max|grad| < gtol``; the
    problem is convex (strictly, with :math:`\lambda > 0`). On a Dask array the same L-BFGS runs on
    per-block sums (one reduction of ``1 + 2C`` numbers per evaluation; no Hessian, so no limit on ``C``).

    Args:
        l2: :math:`\lambda`, a small pull toward the identity. A calibration set on which some class is
            perfectly separated otherwise drives its weight and bias to infinity (on scikit-learn's digits,
            600 samples, plain maximum likelihood doubles the held-out NLL; ``l2=1e-3`` lowers it).
            ``l2=0`` is Guo et al.'s unregularised vector scaling.
        gtol: convergence tolerance on the largest gradient entry of the objective.

    Attributes (after :meth:`fit`):
        weight_, bias_: ``(C,)`` arrays. ``info_`` as in :class:`TemperatureScaling`.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import VectorScaling
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(5000, 3)); y = np.argmax(z + rng.gumbel(size=(5000, 3)), axis=1)
        >>> vs = VectorScaling().fit(2 * z + [0.0, 1.0, 0.0], y)   # over-confident, biased to class 1
        >>> vs.weight_.round(1), (vs.bias_ - vs.bias_.mean()).round(1)
        (array([0.5, 0.5, 0.5]), array([ 0.1, -0.3,  0.2]))
    """

    tasks = ("multiclass",)
    _params = ("weight", "bias")
    _option_types = {"l2": numbers.Real, "gtol": numbers.Real}
    method = "vector"

    weight_: Any = None
    bias_: Any = None

    def __init__(self, task: str = "multiclass", *, l2: float = 1e-3, gtol: float = 1e-8, space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)
        if isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not l2 >= 0 or not math.isfinite(l2):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        self.l2 = as_given(l2, float(l2))

    def _options(self) -> dict[str, Any]:
        return {"l2": self.l2, "gtol": self.gtol}

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        return F.numbers_of(value, where, self.n_classes_)

    def _task_error(self, task: str) -> str:
        return (f"VectorScaling is for task='multiclass' (softmax), got task={task!r}; for binary or "
                "multilabel scores use PlattScaling (per-class a*z + b) or TemperatureScaling")

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        n, c = z.shape
        onehot = _onehot(y, c)
        ww = entry_weights(weight, None, (n,))
        share = None if ww is None else ww / np.sum(ww)  # each row's share of the weighted mean

        def data_fg(x):
            a = z * x[:c] + x[c:]
            lp = np.asarray(log_softmax(a, axis=1))
            lpy = lp[np.arange(n), y]
            if share is None:
                r = (np.exp(lp) - onehot) / n  # d(mean NLL)/d(logit) = (softmax - onehot) / N
                f = -np.mean(lpy)
            else:
                r = (np.exp(lp) - onehot) * share[:, None]  # the same, row i weighted w_i / sum(w)
                f = -(share @ lpy)
            return f, np.concatenate([np.sum(r * z, axis=0), np.sum(r, axis=0)])

        return self._solve(data_fg, _rows_weighted(n, weight), c)

    def _solve(self, data_fg, n: int, c: int) -> dict[str, Any]:
        """L-BFGS from the identity on ``data_fg`` (the mean NLL and its gradient: in memory, or Dask sums)."""
        warn_small(n, 2 * c, f"VectorScaling with {c} classes", "; TemperatureScaling fits 1 parameter")
        x0 = np.concatenate([np.ones(c), np.zeros(c)])  # the identity
        lam = self.l2

        def fg(x):
            f, g = data_fg(x)
            return f + 0.5 * lam * np.sum((x - x0) ** 2), g + lam * (x - x0)

        x, _, g, it = lbfgs(fg, x0, gtol=self.gtol)
        self.weight_, self.bias_ = x[:c].copy(), x[c:].copy()
        gmax = float(np.max(np.abs(g)))
        return {"n_iter": int(it), "converged": gmax < max(self.gtol, 1e-6), "grad_max": gmax}

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> VectorScaling:
        """Exact on Dask arrays: the same L-BFGS, each evaluation one reduction of ``1 + 2C`` per-block sums.

        (The in-memory fit needs no Hessian, so neither does this one: no size limit on ``C``.)
        """
        from .._dask_calibration import VectorSums

        self.space_, self.axis_, self.n_classes_ = space, axis, data.n_classes
        before = data.nll()
        info = self._solve(VectorSums(data).fg, data.n_positive, int(data.n_classes))  # rows of weight > 0
        return self._record(data.n, before, data.nll(self._apply_np), info)

    def _apply(self, xp, z, ax):
        return z * self._per_class(xp, self.weight_, z, ax) + self._per_class(xp, self.bias_, z, ax)


class PlattScaling(Scaler):
    r"""Platt scaling (binary, multilabel): a fitted slope and intercept per label, :math:`z' = a z + b`.

    .. math:: p_c = \sigma(a_c z_c + b_c), \qquad
              (a_c, b_c) = \arg\min -\frac1N \sum_i \big[t_{ic} \log p_{ic} + (1 - t_{ic}) \log(1 - p_{ic})\big]

    With ``prior_correction=True`` (default, Platt 1999 and scikit-learn's ``CalibratedClassifierCV``)
    the targets are :math:`t = (N_+ + 1) / (N_+ + 2)` for positives and :math:`1 / (N_- + 2)` for negatives,
    which keeps the fit finite when the calibration set is separable; with ``False`` they are the 0/1
    labels (plain maximum likelihood). Labels are fitted independently (one 2-parameter problem each),
    by Newton's method from the identity to ``max|grad| < gtol``.

    Args:
        task: ``"binary"`` or ``"multilabel"``.
        prior_correction: use Platt's smoothed targets (see above).
        gtol: convergence tolerance on the largest gradient entry.

    Attributes (after :meth:`fit`):
        weight_, bias_: floats (binary) or ``(C,)`` arrays (multilabel): :math:`a` and :math:`b`.

    Example:
        >>> import numpy as np
        >>> from sigmax.calibration import PlattScaling
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=4000) * 2; y = (rng.uniform(size=4000) < 1 / (1 + np.exp(-z))).astype(int)
        >>> ps = PlattScaling("binary").fit(3 * z - 1, y)   # over-confident and shifted
        >>> round(ps.weight_, 1), round(ps.bias_, 1)
        (0.3, 0.3)
    """

    tasks = ("binary", "multilabel")
    _params = ("weight", "bias")
    _option_types = {"prior_correction": bool, "gtol": numbers.Real}
    method = "platt"

    weight_: Any = None
    bias_: Any = None

    def __init__(self, task: str = "binary", *, prior_correction: bool = True, gtol: float = 1e-10,
                 space: str = "logits"):
        super().__init__(task, gtol=gtol, space=space)
        self.prior_correction = flag(prior_correction, "prior_correction")

    def _task_error(self, task: str) -> str:
        return (f"PlattScaling is for task='binary' or 'multilabel' (sigmoid), got task={task!r}; for "
                "multiclass scores use TemperatureScaling or VectorScaling")

    def _options(self) -> dict[str, Any]:
        return {"prior_correction": self.prior_correction, "gtol": self.gtol}

    def _load_param(self, name: str, value: Any, where: str) -> Any:
        if self.task == "binary":
            return F.number(value, where)
        return F.numbers_of(value, where, self.n_classes_)

    def describe(self) -> str:
        per = " per class" if np.size(self.weight_) > 1 else ""
        return (f"{METHOD_NAMES['platt']}{per}, weight {describe_numbers(self.weight_)}, "
                f"bias {describe_numbers(self.bias_)}")

    def _fit(self, z: np.ndarray, y: np.ndarray, valid: np.ndarray | None,
             weight: np.ndarray | None = None) -> dict[str, Any]:
        n = z.shape[0]
        zz = z.reshape(n, -1)
        yy = y.reshape(n, -1).astype(np.float64)
        w = entry_weights(weight, valid, zz.shape)  # row weight x kept-entry mask (None: all 1)
        # weighted counts, as repeating the rows would give (the prior correction's targets use them)
        npos = yy.sum(axis=0) if w is None else (yy * w).sum(axis=0)
        ncol = np.full(zz.shape[1], float(n)) if w is None else w.sum(axis=0)
        nneg = self._check_counts(_rows_weighted(n, weight), npos, ncol)
        if self.prior_correction:
            t = np.where(yy == 1, (npos + 1) / (npos + 2), 1.0 / (nneg + 2))
        else:
            t = yy
        return self._finish(*newton_logistic(zz, t, gtol=self.gtol, weight=w))

    def _check_counts(self, n: int, npos: np.ndarray, ncol: np.ndarray, stacklevel: int = 5) -> np.ndarray:
        warn_small(n, 2, f"PlattScaling(task={self.task!r})", "; TemperatureScaling fits 1 parameter per label")
        nneg = ncol - npos
        for c in np.flatnonzero((npos < 5) | (nneg < 5)):
            warnings.warn(f"label {c} has {npos[c]:g} positive and {nneg[c]:g} negative calibration "
                          "sample(s); its Platt fit rests on very few examples", UserWarning, stacklevel=stacklevel)
        return nneg

    def _finish(self, a, b, g, it) -> dict[str, Any]:
        if self.task == "binary":
            self.weight_, self.bias_ = float(a[0]), float(b[0])
        else:
            self.weight_, self.bias_ = a, b
        gmax = float(np.max(np.abs(g)))
        return {"n_iter": int(it), "converged": gmax < max(self.gtol, 1e-6), "grad_max": gmax}

    def fit_distributed(self, data: Any, *, space: str = "logits", axis: int = -1,
                        max_rows: int | None = None) -> PlattScaling:
        """Exact on Dask arrays: the same per-label Newton iteration, each gradient, Hessian or line-search
        loss one reduction of per-block column sums."""
        from .._dask_calibration import PlattSums

        self.space_, self.axis_, self.n_classes_ = space, axis, data.n_classes
        sums = PlattSums(data)
        self._check_counts(data.n_positive, sums.npos, sums.ncol)  # rows of weight > 0, as in memory
        sums.targets(self.prior_correction)
        before = data.nll()
        k = int(np.size(sums.npos))
        info = self._finish(*newton_logistic_on(sums.derivs, sums.loss, k, gtol=self.gtol))
        return self._record(data.n, before, data.nll(self._apply_np), info)

    def _apply(self, xp, z, ax):
        if self.task == "binary":
            return z * self.weight_ + self.bias_
        return z * self._per_class(xp, self.weight_, z, ax) + self._per_class(xp, self.bias_, z, ax)


#: the scaler classes by their JSON ``type``
SCALERS: dict[str, type[Scaler]] = {cls.__name__: cls for cls in (TemperatureScaling, VectorScaling, PlattScaling)}
