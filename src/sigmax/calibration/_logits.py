"""Scores in a declared space -> logits: float64 NumPy for fitting, the input's library for ``transform``.

Validation of scores and labels is the canonical-input layer's (:func:`sigmax._inputs.canonical`);
this module only converts probabilities and log-probabilities to logits, exactly at the edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import prepare
from .._inputs import Canonical, canonical
from ..activations import log1mexp, logit
from ..interpret import to_log_probs, validate_log_probs, validate_probs

__all__ = ["LOGIT_CLIP", "check_weight_total", "fit_logits", "logits_xp"]

#: logits from probabilities of exactly 0 or 1 (+-inf) are clipped here: exp(-745) is 0 in float64
LOGIT_CLIP = 745.0


def check_weight_total(total: float) -> None:
    """The one ``ValueError`` of sample weights that sum to 0 over what a fit keeps (in memory or on Dask)."""
    if not float(total) > 0:
        raise ValueError("sample_weight sums to 0 over the rows kept; give some row a positive weight")


def fit_logits(scores: Any, labels: Any, task: str, space: str, axis: Any, *,
               ignore_index: Any = None, allow_empty: bool = False,
               row_numbers: Any = None, sample_weight: Any = None) -> tuple[np.ndarray, Canonical]:
    """Float64 NumPy logits in the canonical layout (class axis last, rows flattened) and the record.

    Rows (entries, multilabel) whose label is ``ignore_index`` are left out (multilabel: ``record.valid``).
    ``allow_empty``: zero rows (a block of a Dask array) are no error; ``row_numbers``: the rows' numbers
    in the whole input, for the messages; ``sample_weight``: one weight per row (``record.weight``, the kept
    rows' weights; ``None``: all 1).
    """
    c = canonical(scores, labels, task, axis=axis, ignore_index=ignore_index, allow_empty=allow_empty,
                  row_numbers=row_numbers, sample_weight=sample_weight)
    s = c.scores
    with np.errstate(all="ignore"):
        if space == "logits":
            z = s
        elif task == "multiclass":
            if space == "log_probs":
                validate_log_probs(s, task)
            z = np.asarray(to_log_probs(s, task, space=space))  # log p are logits: softmax(log p) = p
        elif space == "probs":
            validate_probs(s, task)
            z = np.asarray(logit(s))
        else:
            validate_log_probs(s, task)
            s = np.minimum(s, 0.0)  # validation allows a rounding above 0
            z = s - np.asarray(log1mexp(s))  # logit = log p - log(1 - p), with log(1 - p) from log p accurately
    bad = ~np.isfinite(z)
    if bad.any():
        # masked classes (-inf logits) and probabilities of exactly 0 or 1 (+-inf): a finite stand-in
        # 745 beyond every finite logit has probability exactly 0 (exp(-745) underflows), as +-inf has,
        # and keeps the gradients finite (0 * inf would be NaN)
        big = LOGIT_CLIP + (float(np.max(np.abs(z[~bad]))) if (~bad).any() else 0.0)
        z = np.where(bad, np.sign(z) * big, z)
    return z, c


def logits_xp(scores: Any, task: str, space: str, axis: Any):
    """``(prepared, logits)`` in the input's library and compute dtype (for ``transform``)."""
    if space == "logits":
        p = prepare(scores, name="scores")
        return p, p.x
    if task == "multiclass":
        if space == "log_probs":
            validate_log_probs(scores, task, axis=axis)
        lp = to_log_probs(scores, task, space=space, axis=axis)  # validates declared probabilities
        p = prepare(lp, name="scores")
        z = p.x
    else:
        p = prepare(scores, name="scores")
        if space == "probs":
            validate_probs(scores, task)
            z = logit(p.x)
        else:
            validate_log_probs(scores, task, axis=axis)
            lp = p.xp.where(p.x > 0, 0.0, p.x)  # validation allows a rounding above 0
            z = lp - log1mexp(lp)  # log(1 - p) from log p without forming 1 - p
    return p, p.xp.clip(z, -LOGIT_CLIP, LOGIT_CLIP)
