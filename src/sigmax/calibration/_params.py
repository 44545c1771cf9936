r"""scikit-learn's estimator conventions for the calibrators, without importing scikit-learn.

:class:`EstimatorParams` gives a class whose constructor takes only its parameters what scikit-learn
needs to ``clone`` it, search over it (``GridSearchCV``) and put it in a ``Pipeline``:
``get_params`` / ``set_params`` read the constructor's signature, as ``sklearn.base.BaseEstimator``
does. scikit-learn stays optional: nothing here imports it, except ``__sklearn_tags__``, which only
scikit-learn calls.

The conventions, as the calibrators keep them:

* every constructor argument is stored under its own name; a value already in its canonical form
  (``task="binary"``, ``gtol=1e-10``) is stored as the very object given (:func:`as_given`), so
  ``clone`` finds what it passed; a spelling the constructor normalises (``"Binary"``, ``n_bins=10.0``
  is refused, ``binning="equal-mass"`` becomes ``"equal_mass"``) is stored normalised, which
  ``clone`` reproduces because normalising is idempotent;
* everything learnt by ``fit`` ends in ``_`` and is set only by ``fit`` (before it, the class-level
  defaults answer: ``space_ is None`` means "not fitted");
* unlike scikit-learn, the constructor still checks its arguments (sigmax refuses a wrong setting
  before any data is read; ``VectorScaling("binary")`` has always been an error), and
  :meth:`EstimatorParams.set_params` applies the same checks. This is the one of scikit-learn's
  ``check_estimator`` checks the calibrators fail on purpose
  (``check_do_not_raise_errors_in_init_or_set_params``; see ``tests/test_sklearn.py``).
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["EstimatorParams", "as_given", "flag"]


def as_given(given: Any, value: Any) -> Any:
    """``given`` itself when it already equals its checked form ``value`` (same type and value), else ``value``.

    The constructors store what they checked through this, so a canonical argument is stored unchanged
    (the same object, as ``sklearn.base.clone`` verifies) and a normalised spelling stays normalised.
    """
    if type(given) is type(value):
        try:
            if bool(given == value):
                return given
        except (TypeError, ValueError):  # an array compared elementwise: keep the checked form
            pass
    return value


def flag(value: Any, name: str) -> bool:
    """A boolean option: ``True``/``False`` (NumPy's too, or 0/1) stored as given, anything else a ``ValueError``."""
    import numbers

    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) or type(value).__name__ == "bool_":
        if value in (0, 1):
            return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


class EstimatorParams:
    """``get_params`` / ``set_params`` from the constructor's signature (scikit-learn's estimator API)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The constructor's parameter names, sorted (``self``, ``*args`` and ``**kwargs`` left out)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        names = []
        for p in inspect.signature(init).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            names.append(p.name)
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their values (``deep``: also ``name__sub`` of nested estimators)."""
        out: dict[str, Any] = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> EstimatorParams:
        """Set constructor parameters; returns ``self``.

        The new values are checked as the constructor checks them (a ``ValueError`` naming the fix, and
        ``self`` left unchanged); fitted attributes are kept until the next ``fit``.
        """
        if not params:
            return self
        valid = self.get_params(deep=False)
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for estimator {type(self).__name__}; valid "
                                 f"parameters are: {sorted(valid)!r}")
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                valid[name] = value
        for name, sub in nested.items():
            valid[name].set_params(**sub)
        checked = type(self)(**valid)  # the constructor's checks, on a new object
        for name in valid:
            setattr(self, name, getattr(checked, name))
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (only scikit-learn calls this, so importing it here keeps it optional).

        Not a classifier, regressor or transformer in scikit-learn's sense: the input is scores of a
        declared task, and ``predict_proba`` of a binary calibrator gives one probability per row.
        """
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        transformer = TransformerTags(preserves_dtype=["float64", "float32"]) if hasattr(self, "transform") else None
        one_d = getattr(self, "task", None) == "binary"  # binary scores are one per row; others (N, C)
        return Tags(estimator_type=None, target_tags=TargetTags(required=True), transformer_tags=transformer,
                    input_tags=InputTags(one_d_array=one_d, two_d_array=not one_d))
