"""The README's calibrator table: held-out NLL, ECE and accuracy of every calibration method.

Two data sets: sigmax's built-in digits (``sigmax.datasets.digits_scores("multiclass")``: a logistic
regression, calibrated on 600 rows and tested on 697), and a synthetic 5-class model whose
miscalibration differs by class (class k's logit is scaled by ``SCALES[k]`` and shifted by
``SHIFTS[k]``; calibrated on 2000 rows, tested on 5000). Intervals are 95% bootstrap intervals from
``sigmax.metrics.bootstrap_ci`` where it exists; without it the table says they are missing.

Run: ``python benchmarks/calibrators.py`` (prints a Markdown table; about a minute on one core).
"""

from __future__ import annotations

import time

import numpy as np

from sigmax import metrics
from sigmax.calibration import fit_calibrator
from sigmax.datasets import digits_scores

METHODS = (None, "temperature", "vector", "beta", "histogram", "isotonic", "dirichlet", "auto")
SCALES = np.array([0.5, 1.0, 2.0, 3.0, 1.5])
SHIFTS = np.array([0.0, 0.5, -0.5, 1.0, 0.0])


def synthetic(seed: int = 0, n_calib: int = 2000, n_test: int = 5000):
    """``(calib_logits, calib_labels, test_logits, test_labels)`` of the class-dependent miscalibrated model."""
    rng = np.random.default_rng(seed)
    n = n_calib + n_test
    true = rng.normal(size=(n, 5)) * 1.5
    y = np.argmax(true + rng.gumbel(size=true.shape), axis=1)  # labels drawn from softmax(true)
    z = true * SCALES + SHIFTS
    return z[:n_calib], y[:n_calib], z[n_calib:], y[n_calib:]


def _cell(fn, z, y, ci):
    est = float(fn(z, y, "multiclass"))
    if ci is None:
        return f"{est:.4f}"
    r = ci(fn, z, y, "multiclass", n_resamples=1000, seed=0)
    return f"{r.estimate:.4f} [{r.low:.4f}, {r.high:.4f}]"


def table(name, zc, yc, zt, yt, ci):
    rows = [f"\n**{name}** (calibration {len(yc)} rows, test {len(yt)} rows)\n",
            "| method | chosen | test NLL | test ECE | test accuracy | fit s |", "|---|---|---|---|---|---|"]
    for m in METHODS:
        t = time.perf_counter()
        if m is None:
            cal, zz = None, zt
        else:
            cal = fit_calibrator(zc, yc, "multiclass", method=m)
            zz = np.asarray(cal.transform(zt))
        dt = time.perf_counter() - t
        chosen = "" if cal is None else (cal.method if m == "auto" else "")
        cells = [_cell(f, zz, yt, ci) for f in (metrics.nll, metrics.calibration_error, metrics.accuracy)]
        rows.append(f"| {m or 'none'} | {chosen} | " + " | ".join(cells) + f" | {dt:.2f} |")
        if m == "auto":
            rows.append(f"\n{cal.selection_['reason']}\n")
    return "\n".join(rows)


def main() -> None:
    ci = getattr(metrics, "bootstrap_ci", None)
    d = digits_scores("multiclass")
    out = [table("digits", d.calib_logits, d.calib_labels, d.test_logits, d.test_labels, ci),
           table("synthetic, miscalibration differs by class", *synthetic(), ci)]
    if ci is None:
        out.append("\n(95% intervals missing: sigmax.metrics.bootstrap_ci is not available in this checkout.)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
