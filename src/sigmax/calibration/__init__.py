r"""Calibration: temperature, vector and Platt scaling, threshold tuning; fit, transform, save, load.

A model is *calibrated* when, among the samples it gives probability 0.7, 70% are positive. Most
trained networks are over-confident; a one-parameter temperature fitted on held-out data usually fixes
most of it (Guo et al. 2017, "On Calibration of Modern Neural Networks").

==================================  ===============  ============================================
calibrator                          tasks            calibrated logits
==================================  ===============  ============================================
``TemperatureScaling()``            multiclass,      :math:`z / T` (one :math:`T > 0`; argmax kept)
                                    binary,
                                    multilabel
``TemperatureScaling(per_class=     multilabel       :math:`z_c / T_c` (one :math:`T_c > 0` per label)
True)``
``VectorScaling()``                 multiclass       :math:`w \odot z + b` (per-class scale and bias)
``PlattScaling()``                  binary,          :math:`a_c z_c + b_c` (per label)
                                    multilabel
``BetaCalibration()``               all (one-vs-     :math:`a \ln p - b \ln(1-p) + c`, :math:`a, b \ge 0`
                                    rest)
``HistogramBinning()``              all (one-vs-     each bin's share of positives (equal-width or
                                    rest)            equal-mass bins)
``IsotonicCalibration()``           all (one-vs-     scikit-learn's isotonic regression per class
                                    rest)
``DirichletCalibration()``          multiclass       :math:`W \log p + b`, ODIR strength by CV
==================================  ===============  ============================================

One-vs-rest methods calibrate each class's probability against the rest and renormalise multiclass
rows (``_columns``); the step-function methods clip to :math:`[\varepsilon, 1-\varepsilon]`,
:data:`DEFAULT_EPS` = 1e-6, before taking logits. ``method="auto"`` (:class:`Calibrator`,
:func:`fit_calibrator`) takes the simplest method within one standard error of the lowest 5-fold
cross-validated NLL on the calibration set and records why (``selection_``); ``method=None`` stays
temperature scaling.

Every calibrator is fitted by minimising the negative log-likelihood on a calibration set in float64
NumPy, to a gradient tolerance (not a fixed iteration count), with probabilities from sigmax's own
``softmax`` / ``log_softmax`` / ``sigmoid`` / ``log_sigmoid``. Temperatures are fitted on
:math:`u = \log T`, so :math:`T > 0`, by a safeguarded Newton iteration (a Newton step when it stays
inside the bracket of the minimum, bisection otherwise). Platt scaling uses Newton's method per label
(two parameters each) and vector scaling a small built-in L-BFGS; both problems are convex. SciPy is
not needed.

``transform`` works on NumPy, PyTorch (autograd flows through) and JAX arrays and returns calibrated
*logits* of the input's array type, device and dtype; ``predict_proba`` returns probabilities.
:func:`tune_thresholds` picks per-class decision thresholds, :class:`Calibrator` bundles a scaler
with thresholds, and :func:`fit_calibrator` fits one with the method and threshold rule resolved per
task (:func:`resolve_method`, the one rule, which callers apply before any work). Everything saves
to JSON (through a temporary file renamed into place) and loads from it
(:func:`load`), every loaded field validated.

The code lives in private modules, one per concern: ``_logits`` (scores in a declared space to
logits), ``_solvers`` (the optimisers), ``_scalers`` (the three scalers), ``_thresholds``,
``_calibrator`` (:class:`Calibrator`, :func:`fit_calibrator`, loading), ``_format`` (the file
format and its validation), ``_columns`` (one-vs-rest plumbing, CV folds), ``_nonparametric``
(isotonic, histogram), ``_beta``, ``_dirichlet`` and ``_select`` (the method registry and ``"auto"``).

Example:
    >>> import numpy as np
    >>> from sigmax.calibration import TemperatureScaling
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(size=(2000, 4)) * 2
    >>> labels = (rng.uniform(size=(2000, 1)) > np.cumsum(np.exp(true_logits) /
    ...           np.exp(true_logits).sum(1, keepdims=True), axis=1)).sum(1)
    >>> ts = TemperatureScaling().fit(3.0 * true_logits, labels)   # a model 3x over-confident
    >>> round(ts.temperature, 1)
    2.9
"""

from ._beta import BetaCalibration
from ._calibrator import DEFAULT_METHOD, Calibrator, fit_calibrator, from_dict, load, resolve_method
from ._columns import DEFAULT_EPS
from ._dirichlet import DEFAULT_GRID, DirichletCalibration
from ._format import FORMAT_VERSION  # noqa: F401  (sigmax.calibration.FORMAT_VERSION, as before)
from ._nonparametric import HistogramBinning, IsotonicCalibration
from ._scalers import MIN_SAMPLES_PER_PARAMETER, PlattScaling, TemperatureScaling, VectorScaling  # noqa: F401
from ._select import candidates
from ._thresholds import tune_thresholds

__all__ = [
    "BetaCalibration",
    "Calibrator",
    "DEFAULT_EPS",
    "DEFAULT_GRID",
    "DEFAULT_METHOD",
    "DirichletCalibration",
    "HistogramBinning",
    "IsotonicCalibration",
    "PlattScaling",
    "TemperatureScaling",
    "VectorScaling",
    "candidates",
    "fit_calibrator",
    "from_dict",
    "load",
    "resolve_method",
    "tune_thresholds",
]
