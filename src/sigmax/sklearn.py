r"""scikit-learn integration: :class:`CalibratedClassifier`, sigmax's calibrators around any classifier.

The counterpart of ``sklearn.calibration.CalibratedClassifierCV`` with sigmax's methods
(``"temperature"``, ``"vector"``, ``"platt"``, ``"beta"``, ``"isotonic"``, ``"histogram"``,
``"dirichlet"``, ``"auto"``; see :mod:`sigmax.calibration`). Importing this module imports
scikit-learn (the ``sklearn`` extra); ``import sigmax`` never does.

The classifier's scores are read, in this order of preference, from ``decision_function`` (declared
``space="logits"``; a binary ``decision_function`` is the logit of ``classes_[1]``),
``predict_log_proba`` (``"log_probs"``) or ``predict_proba`` (``"probs"``); two classes are the binary
task (the scores of ``classes_[1]``), more the multiclass task.

Where scikit-learn's conventions and sigmax's differ, scikit-learn's are followed here:
``predict_proba`` gives ``(n_samples, n_classes)`` columns in the order of ``classes_`` (also for two
classes), ``predict`` gives labels of ``classes_``. Differences from ``CalibratedClassifierCV``:
``ensemble=False`` is the default (one calibrator on out-of-fold scores, the classifier refitted on all
rows; scikit-learn's default ``"auto"`` is ``True`` unless the estimator is frozen), an already-fitted
classifier is calibrated on every row given to :meth:`CalibratedClassifier.fit` (wrap it in
``sklearn.frozen.FrozenEstimator``, or pass ``cv="prefit"``, the older scikit-learn spelling, which
scikit-learn 1.8 removed), and multiclass one-vs-rest methods (isotonic, histogram, beta) calibrate
each class's *softmax probability* rather than each raw ``decision_function`` column. Sample weights
are passed to the classifier's ``fit`` only (sigmax's calibrators do not take them yet).

Example:
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sigmax.sklearn import CalibratedClassifier
    >>> X, y = make_classification(n_samples=600, random_state=0)
    >>> clf = CalibratedClassifier(LogisticRegression(), method="temperature", cv=3).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape, clf.calibrated_classifiers_[0].calibrator.method
    ((2, 2), 'temperature')
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.model_selection import check_cv, cross_val_predict
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, indexable

from .calibration import Calibrator, resolve_method

try:  # scikit-learn >= 1.6
    from sklearn.frozen import FrozenEstimator
except ImportError:  # pragma: no cover - older scikit-learn: cv="prefit" only
    FrozenEstimator = None

__all__ = ["METHODS", "RESPONSES", "CalibratedClassifier", "CalibratedModel", "classifier_scores",
           "response_method"]

#: the calibration methods :class:`CalibratedClassifier` takes (see :mod:`sigmax.calibration`)
METHODS = ("temperature", "vector", "platt", "beta", "isotonic", "histogram", "dirichlet", "auto")
#: the classifier's methods that give scores, in order of preference, with the sigmax space of each
RESPONSES = (("decision_function", "logits"), ("predict_log_proba", "log_probs"), ("predict_proba", "probs"))


def response_method(estimator: Any) -> tuple[str, str]:
    """``(method name, sigmax space)``: the first of :data:`RESPONSES` that ``estimator`` offers."""
    for name, space in RESPONSES:
        if hasattr(estimator, name):
            return name, space
    raise ValueError(f"{type(estimator).__name__} has none of decision_function, predict_log_proba, "
                     "predict_proba: sigmax calibrates a classifier's scores; give a classifier that has one")


def classifier_scores(raw: Any, n_classes: int, space: str) -> np.ndarray:
    """The scores of ``raw`` (the output of a :data:`RESPONSES` method) in sigmax's layout for the task.

    Two classes: one score per row, that of ``classes_[1]`` (a binary ``decision_function`` already is);
    more: ``(n_samples, n_classes)``.
    """
    s = np.asarray(raw, dtype=np.float64)
    if n_classes == 2:
        if s.ndim == 2 and s.shape[1] == 2:
            return s[:, 1]
        if space == "logits" and (s.ndim == 1 or s.shape[1] == 1):
            return s.reshape(-1)
        raise ValueError(f"a two-class classifier gave scores of shape {s.shape}; expected (n,) or (n, 2)")
    if s.ndim != 2 or s.shape[1] != n_classes:
        raise ValueError(f"the classifier gave scores of shape {s.shape} for {n_classes} classes; expected "
                         f"(n, {n_classes})")
    return s


class CalibratedModel:
    """One fitted classifier and the sigmax :class:`~sigmax.calibration.Calibrator` fitted on its scores.

    Attributes: ``estimator`` (fitted), ``calibrator`` (fitted), ``response`` (the method read),
    ``space`` (what it gives), ``classes`` (of ``CalibratedClassifier.classes_``).
    """

    def __init__(self, estimator: Any, calibrator: Calibrator, response: str, space: str, classes: np.ndarray):
        self.estimator, self.calibrator = estimator, calibrator
        self.response, self.space, self.classes = response, space, classes

    def scores(self, X: Any) -> np.ndarray:
        """The classifier's scores of ``X`` (sigmax's layout, :func:`classifier_scores`)."""
        return classifier_scores(getattr(self.estimator, self.response)(X), len(self.classes), self.space)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities, ``(n_samples, n_classes)`` in the order of ``classes``."""
        p = np.asarray(self.calibrator.predict_proba(self.scores(X), space=self.space), dtype=np.float64)
        return np.column_stack([1.0 - p, p]) if len(self.classes) == 2 else p

    def __repr__(self) -> str:
        return f"CalibratedModel({type(self.estimator).__name__}, {self.calibrator.describe()})"


def _is_frozen(estimator: Any) -> bool:
    return FrozenEstimator is not None and isinstance(estimator, FrozenEstimator)


class CalibratedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    r"""A classifier whose probabilities are calibrated by a sigmax method (``CalibratedClassifierCV``'s counterpart).

    Args:
        estimator: the classifier (default ``LogisticRegression()``); one with ``decision_function``,
            ``predict_log_proba`` or ``predict_proba`` (read in that order; see the module). Already
            fitted: wrap it in ``sklearn.frozen.FrozenEstimator`` (or pass ``cv="prefit"``).
        method: ``"temperature"`` (default), ``"vector"`` (multiclass), ``"platt"`` (binary),
            ``"beta"``, ``"isotonic"``, ``"histogram"``, ``"dirichlet"`` (multiclass) or ``"auto"`` (the
            simplest method within one standard error of the lowest cross-validated NLL).
        cv: as in scikit-learn (an int: stratified folds; a splitter; an iterable of splits), or
            ``"prefit"``. Ignored for a ``FrozenEstimator``.
        ensemble: ``False`` (default): one calibrator on the out-of-fold scores, the classifier refitted
            on all rows. ``True``: one (classifier, calibrator) pair per fold, probabilities averaged.

    Attributes (after :meth:`fit`):
        classes\_: the class labels. calibrated_classifiers\_: the :class:`CalibratedModel` pairs (one,
        or one per fold with ``ensemble=True``). response\_: the method read; space\_: its sigmax space;
        task\_: ``"binary"`` or ``"multiclass"``. n_features_in\_ (and feature_names_in\_) as the
        classifier's.

    Example:
        >>> from sklearn.datasets import make_classification
        >>> from sklearn.frozen import FrozenEstimator
        >>> from sklearn.svm import LinearSVC
        >>> X, y = make_classification(n_samples=900, n_classes=3, n_informative=4, random_state=0)
        >>> svc = LinearSVC().fit(X[:600], y[:600])
        >>> cal = CalibratedClassifier(FrozenEstimator(svc), method="vector").fit(X[600:], y[600:])
        >>> cal.response_, cal.space_, cal.predict_proba(X[:1]).shape
        ('decision_function', 'logits', (1, 3))
    """

    def __init__(self, estimator: Any = None, *, method: str = "temperature", cv: Any = 5, ensemble: bool = False):
        self.estimator = estimator
        self.method = method
        self.cv = cv
        self.ensemble = ensemble

    def _estimator(self) -> Any:
        if self.estimator is None:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression()
        return self.estimator

    def fit(self, X: Any, y: Any, **fit_params: Any) -> CalibratedClassifier:
        """Fit the classifier (unless frozen or ``cv="prefit"``) and the calibrator(s); returns ``self``.

        ``fit_params`` (``sample_weight``, ...) go to the classifier's ``fit``; those with one entry per row
        are cut to each fold's training rows (``ensemble=True``, and ``cross_val_predict``'s folds).
        ``sample_weight`` also weights the calibration map's fit on the rows it is fitted on, as in
        scikit-learn's ``CalibratedClassifierCV``.
        """
        check_classification_targets(y)
        X, y = indexable(X, y)
        y = column_or_1d(y, warn=True)  # one label per row (a column vector warns, as in scikit-learn)
        if not isinstance(self.ensemble, (bool, np.bool_)):
            raise ValueError(f"ensemble must be True or False, got {self.ensemble!r}")
        if not isinstance(self.method, str) or self.method.strip().lower() not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(map(repr, METHODS))}")
        estimator = self._estimator()
        prefit = _is_frozen(estimator) or (isinstance(self.cv, str) and self.cv == "prefit")
        if prefit:
            check_is_fitted(estimator)
            classes = np.asarray(estimator.classes_)
        else:
            classes = LabelEncoder().fit(y).classes_
        if classes.size < 2:
            raise ValueError(f"y has {classes.size} class; a classifier needs at least 2")
        task = "binary" if classes.size == 2 else "multiclass"
        method, _ = resolve_method(task, self.method, None)  # a method the task has no use for: refused here
        idx = np.searchsorted(classes, y)
        unknown = (idx >= classes.size) | (classes[np.minimum(idx, classes.size - 1)] != y)
        if np.any(unknown):
            raise ValueError(f"y has labels the classifier was not fitted on: {np.unique(y[unknown])[:5].tolist()}; "
                             f"its classes_ are {classes.tolist()}")
        response, space = response_method(estimator)
        weight = fit_params.get("sample_weight")
        if weight is not None:
            weight = np.asarray(weight, dtype=np.float64)
            if weight.shape != (len(y),):
                raise ValueError(f"sample_weight has shape {weight.shape}; give one weight per row of X: ({len(y)},)")

        def calibrate(est: Any, raw: Any, rows: Any) -> CalibratedModel:
            model = CalibratedModel(est, Calibrator(), response, space, classes)
            model.calibrator.fit(classifier_scores(raw, classes.size, space), idx[rows], task, method=method,
                                 tune=None, space=space, sample_weight=None if weight is None else weight[rows])
            return model

        everything = slice(None)
        if prefit:
            if self.ensemble:
                raise ValueError("ensemble=True needs classifiers fitted per fold; a FrozenEstimator (or "
                                 "cv='prefit') is calibrated once, on all the rows given to fit: use ensemble=False")
            models = [calibrate(estimator, getattr(estimator, response)(X), everything)]
        else:
            if isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool):
                fewest = int(np.bincount(idx).min())
                if fewest < self.cv:
                    raise ValueError(f"cv={self.cv} folds need at least {self.cv} rows of each class; the "
                                     f"rarest class has {fewest}")
            cv = check_cv(self.cv, y, classifier=True)
            if self.ensemble:
                models = []
                for train, test in cv.split(X, y):
                    est = clone(estimator).fit(_rows(X, train), y[train], **_fold_params(fit_params, len(y), train))
                    if not np.array_equal(np.asarray(est.classes_), classes):
                        raise ValueError("a training fold lacks some class; use fewer folds or stratified splits")
                    models.append(calibrate(est, getattr(est, response)(_rows(X, test)), test))
            else:
                raw = cross_val_predict(clone(estimator), X, y, cv=cv, method=response, params=fit_params or None)
                est = clone(estimator).fit(X, y, **fit_params)
                models = [calibrate(est, raw, everything)]
        self.classes_ = classes
        self.task_, self.response_, self.space_ = task, response, space
        self.calibrated_classifiers_ = models
        fitted = models[0].estimator
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(fitted, name):
                setattr(self, name, getattr(fitted, name))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities ``(n_samples, n_classes)``, columns in the order of ``classes_``
        (averaged over the folds' pairs with ``ensemble=True``)."""
        check_is_fitted(self)
        return np.mean([m.predict_proba(X) for m in self.calibrated_classifiers_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row (a label of ``classes_``)."""
        p = self.predict_proba(X)  # first: an unfitted classifier says so (NotFittedError)
        return self.classes_[np.argmax(p, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = self._estimator().__sklearn_tags__()
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        return tags


def _fold_params(params: dict[str, Any], n: int, rows: np.ndarray) -> dict[str, Any]:
    """``params`` for a fit on ``rows``: each value with one entry per row (``sample_weight``, ...) cut to them
    (as scikit-learn's own cross-validation does)."""
    def cut(v: Any) -> Any:
        if v is None or np.isscalar(v) or isinstance(v, (str, bytes, dict)):
            return v
        try:
            length = len(v)
        except TypeError:
            return v
        return _rows(v, rows) if length == n else v

    return {k: cut(v) for k, v in params.items()}


def _rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of ``X`` (NumPy arrays, pandas frames, sparse matrices, lists)."""
    from sklearn.utils import _safe_indexing

    return _safe_indexing(X, rows)
