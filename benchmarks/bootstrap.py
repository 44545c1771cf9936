"""Bootstrap speed: 1000 resamples of 100,000 rows, the vectorised route against re-running the metric.

``python benchmarks/bootstrap.py [--rows N] [--resamples R] [--naive R0]``

The vectorised route (:func:`sigmax.metrics.bootstrap_ci`) evaluates every resample at once from the
resample count matrix (a matrix-vector product for the means, an ``R × 5·n_bins`` matrix product for the
binned calibration errors). The naive route re-runs the metric on each resample's rows in a Python loop;
it is timed on ``--naive`` resamples (default 50) and scaled to ``--resamples``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import sigmax.metrics as M


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--naive", type=int, default=50, help="resamples timed on the naive loop (scaled)")
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, c = args.rows, args.classes
    z = rng.normal(size=(n, c)) * 2.0
    y = rng.integers(0, c, n)
    print(f"{n:,} rows x {c} classes, {args.resamples} resamples; numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'metric':<26}{'vectorised s':>14}{'naive s (scaled)':>18}{'ratio':>9}")
    for name, metric, kw in (("nll", M.nll, {}), ("accuracy", M.accuracy, {}),
                             ("ece (15 bins)", M.calibration_error, {}),
                             ("mce (min_bin_count=10)", M.calibration_error, {"norm": "max"}),
                             ("rmsce debiased", M.calibration_error, {"norm": "l2", "debias": True})):
        t0 = time.perf_counter()
        ci = M.bootstrap_ci(metric, z, y, "multiclass", n_resamples=args.resamples, **kw)
        fast = time.perf_counter() - t0
        rows = rng.integers(0, n, size=(args.naive, n))
        t0 = time.perf_counter()
        for r in rows:  # the naive bootstrap: re-run the metric on each resample
            metric(z[r], y[r], "multiclass", **kw)
        naive = (time.perf_counter() - t0) * args.resamples / args.naive
        print(f"{name:<26}{fast:>14.2f}{naive:>18.1f}{naive / fast:>8.1f}x   "
              f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]")


if __name__ == "__main__":
    main()
