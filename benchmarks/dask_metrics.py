"""The metrics without a plain per-row sum, on Dask arrays: ROC AUC, average precision, the smooth ECE.

    python benchmarks/dask_metrics.py                       # 1,000,000 binary rows, blocks of 100,000
    python benchmarks/dask_metrics.py --rows 200000 --bucket-rows 16384   # the bucketed ranking path

Binary float64 logits (``y ~ Bernoulli(1/2)``, ``z = N(0, 1) + y``), in one process, side by side: the peer
in memory (scikit-learn's ``roc_auc_score`` / ``average_precision_score`` on the probabilities; relplot's
``smECE`` where it is installed), sigmax in memory, sigmax on a Dask array with Dask's threaded
scheduler, and on a LocalCluster of 2 worker processes (the arrays persisted there first). Each time is
the best of ``--repeats``; each Dask row prints its ratio to sigmax in memory and the relative difference
of its value. ``--bucket-rows N`` sets ``sigmax._dask_metrics_ranking.BUCKET_ROWS`` (0: the default, 4M
entries) to time the bucketed ranking path (exact order statistics, one bucket pass, one task per
bucket) on data that would fit one task. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import numpy as np  # noqa: E402


def _best(f, k: int):
    out, v = [], None
    for _ in range(k):
        t = time.perf_counter()
        v = f()
        out.append(time.perf_counter() - t)
    return min(out), v


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--bucket-rows", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    import sigmax
    import sigmax._dask_metrics_ranking as R
    import sigmax.metrics as M
    from sigmax._dask import cluster

    if args.bucket_rows:
        R.BUCKET_ROWS = args.bucket_rows
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, args.rows)
    z = rng.normal(size=args.rows) + y
    p = np.asarray(sigmax.sigmoid(z))
    print(f"{args.rows:,} binary rows, blocks of {args.chunk_rows:,}, BUCKET_ROWS={R.BUCKET_ROWS:,} | "
          f"{platform.machine()}, {os.cpu_count()} CPUs | best of {args.repeats}")

    peers = {}
    try:
        from sklearn.metrics import average_precision_score, roc_auc_score
        peers["roc_auc"] = ("scikit-learn", lambda: roc_auc_score(y, p))
        peers["average_precision"] = ("scikit-learn", lambda: average_precision_score(y, p))
    except ImportError:
        pass
    try:
        import relplot
        peers["smooth_calibration_error"] = ("relplot", lambda: relplot.smECE(p, y))
    except ImportError:
        pass
    metrics = (M.roc_auc, M.average_precision, M.smooth_calibration_error)
    rows = []
    mem = {}
    for fn in metrics:
        name = fn.__name__
        if name in peers:
            who, f = peers[name]
            t, v = _best(f, args.repeats)
            rows.append((name, f"{who} (memory)", t, None, v))
        mem[name] = _best(lambda: fn(z, y, "binary"), args.repeats)
        rows.append((name, "sigmax (memory)", mem[name][0], None, mem[name][1]))
    zd, yd = da.from_array(z, chunks=args.chunk_rows), da.from_array(y, chunks=args.chunk_rows)

    def dask_rows(label, zz, yy):
        for fn in metrics:
            tm, vm = mem[fn.__name__]
            t, v = _best(lambda: fn(zz, yy, "binary"), args.repeats)
            rows.append((fn.__name__, label, t, t / tm, v, abs(v - vm) / abs(vm)))

    with dask.config.set(scheduler="threads"):
        dask_rows("sigmax (Dask threads)", zd, yd)
        plan = R.ranking_sums(zd, yd, "binary")
    with cluster(("local", 2)):
        zc, yc = zd.persist(), yd.persist()
        M.roc_auc(zc[:1000], yc[:1000], "binary")  # warm the workers (their imports)
        dask_rows("sigmax (Dask, 2 workers)", zc, yc)
    print(f"ranking plan: {plan.n_buckets} bucket(s), {plan.n_tasks} bucket task(s), at most "
          f"{plan.max_task_entries:,} entries in one task")
    print("\n| metric | how | seconds | / sigmax in memory | value | rel. difference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "" if r[3] is None else f"{r[3]:.2f}x"
        diff = f"{r[5]:.1e}" if len(r) > 5 else ""
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {ratio} | {r[4]:.10f} | {diff} |")


if __name__ == "__main__":
    main()
