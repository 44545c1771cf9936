"""Scaling of sigmax over Dask (issue 15): rows per second, 1 and 2 worker processes vs one process streaming.

    python benchmarks/scale.py [--rows 200000] [--classes 32] [--chunk-rows 25000]

Writes the scores as .npy shards in a temporary folder, then times ``metrics.summary``,
``TemperatureScaling.fit``, the report (``calibration_report``, no bootstrap) and ``calibrate fit``
(``fit_calibrator``, temperature):

* ``stream``: one process, ``io.iter_chunks`` memory-mapping each shard, ``MetricAccumulator.update`` per block
  (the temperature: fit in memory on the whole set, the single-process reference);
* ``dask N``: a ``LocalCluster`` of N worker processes x 1 thread, ``io.open_shards`` (each worker reads
  its blocks), the same functions on the Dask array.
* the report and ``calibrate fit`` as the command line runs them: one process (``stream_calibration_report``
  over the shard glob; ``fit_calibrator`` on the shards read whole, as ``sigmax calibrate fit`` does without
  ``--dask``) against the Dask path on 1 and 2 workers, with the ratio to one process and the bytes the
  workers sent each other (``Worker.transfer_incoming_log``) per reduction of the report.

It also reports the bytes one reduction moves: the pickled size of one block's state times the number
of blocks (what the workers send up the tree), and the state that reaches the client.
"""

from __future__ import annotations

import argparse
import glob
import os
import pickle
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--chunk-rows", type=int, default=25_000)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()

    import sigmax.metrics as M
    from sigmax._dask import cluster
    from sigmax.calibration import TemperatureScaling
    from sigmax.io import iter_chunks, open_shards

    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    per = args.rows // args.shards
    for i in range(args.shards):
        z = rng.normal(size=(per, args.classes)) * 3
        y = np.argmax(z + rng.gumbel(size=z.shape) * 3, axis=1)
        np.save(os.path.join(tmp, f"s-{i}.npy"), z)
        np.save(os.path.join(tmp, f"y-{i}.npy"), y)
    rows = per * args.shards
    sp, yp = sorted(glob.glob(os.path.join(tmp, "s-*.npy"))), sorted(glob.glob(os.path.join(tmp, "y-*.npy")))
    print(f"{rows} rows x {args.classes} classes float64 ({rows * args.classes * 8 / 2**20:.0f} MiB), "
          f"{args.shards} shards, {args.chunk_rows} rows per block, {os.cpu_count()} CPUs")

    t = time.perf_counter()
    acc = M.MetricAccumulator("multiclass")
    for s, y in zip(sp, yp):
        for zs, ys in zip(iter_chunks(s, args.chunk_rows), iter_chunks(y, args.chunk_rows, dtype=np.int64)):
            acc.update(zs, ys)
    ref = acc.compute()
    dt = time.perf_counter() - t
    print(f"stream   summary: {rows / dt:12,.0f} rows/s")
    t = time.perf_counter()
    z_all = np.concatenate([np.load(s) for s in sp])
    y_all = np.concatenate([np.load(s) for s in yp])
    t_ref = TemperatureScaling().fit(z_all, y_all)
    dt = time.perf_counter() - t
    print(f"memory   temperature fit: {rows / dt:12,.0f} rows/s ({t_ref.info_['n_iter']} Newton steps)")
    del z_all, y_all

    block = M.MetricAccumulator("multiclass").update(np.load(sp[0])[:args.chunk_rows], np.load(yp[0])[:args.chunk_rows])
    n_blocks = -(-rows // args.chunk_rows)
    state = len(pickle.dumps(block))
    print(f"summary state: {state:,} bytes per block; one reduction moves {state * n_blocks:,} bytes "
          f"({n_blocks} blocks) vs {rows * args.classes * 8:,} bytes of scores")
    print(f"temperature step: 3 float64 per block ({n_blocks * 3 * 8} bytes + pickling overhead) per Newton step")

    from sigmax.calibration import fit_calibrator
    from sigmax.report import calibration_report, stream_calibration_report

    rkw = {"n_resamples": 0, "check": False, "show_progress": False, "chunk_rows": args.chunk_rows}
    t = time.perf_counter()
    rep_ref = stream_calibration_report(os.path.join(tmp, "s-*.npy"), os.path.join(tmp, "y-*.npy"), "multiclass", **rkw)
    dt_report = time.perf_counter() - t
    print(f"stream   report: {rows / dt_report:12,.0f} rows/s (ECE after {rep_ref.after.metrics['ece']:.6f})")
    t = time.perf_counter()
    z_all = np.concatenate([np.load(s) for s in sp])
    y_all = np.concatenate([np.load(s) for s in yp])
    cal_ref = fit_calibrator(z_all, y_all, "multiclass", method="temperature")
    dt_fit = time.perf_counter() - t
    del z_all, y_all
    print(f"memory   calibrate fit: {rows / dt_fit:12,.0f} rows/s ({cal_ref.describe()})")

    for n in (1, 2):
        with cluster(("local", n)) as client:
            Z = open_shards(os.path.join(tmp, "s-*.npy"), chunk_rows=args.chunk_rows)
            Y = open_shards(os.path.join(tmp, "y-*.npy"), chunk_rows=args.chunk_rows)
            M.summary(Z[:10], Y[:10], "multiclass")  # warm the workers (imports)
            t = time.perf_counter()
            got = M.summary(Z, Y, "multiclass")
            dt = time.perf_counter() - t
            worst = max(abs(got[k] - ref[k]) for k in ref if np.isfinite(ref[k]))
            print(f"dask {n}   summary: {rows / dt:12,.0f} rows/s (max |diff| vs stream {worst:.1e})")
            t = time.perf_counter()
            ts = TemperatureScaling().fit(Z, Y)
            dt = time.perf_counter() - t
            print(f"dask {n}   temperature fit: {rows / dt:12,.0f} rows/s (T {ts.temperature_:.6f} vs "
                  f"{t_ref.temperature_:.6f}, {ts.info_['n_iter']} Newton steps)")
            before = _moved(client)
            t = time.perf_counter()
            rep = calibration_report(Z, Y, "multiclass", **rkw)
            dt = time.perf_counter() - t
            moved = _moved(client) - before
            print(f"dask {n}   report: {rows / dt:12,.0f} rows/s ({dt_report / dt:.2f}x one process; ECE after "
                  f"{rep.after.metrics['ece']:.6f}); workers exchanged {moved:,} bytes, {moved / n_blocks:,.0f} "
                  f"per block, vs {rows * args.classes * 8:,} bytes of scores")
            t = time.perf_counter()
            cal = fit_calibrator(Z, Y, "multiclass", method="temperature")
            dt = time.perf_counter() - t
            print(f"dask {n}   calibrate fit: {rows / dt:12,.0f} rows/s ({dt_fit / dt:.2f}x one process; "
                  f"{cal.describe()})")


def _moved(client) -> int:
    """Bytes the workers have received from one another so far."""
    return sum(client.run(lambda dask_worker: sum(d["total"] for d in dask_worker.transfer_incoming_log)).values())


if __name__ == "__main__":
    main()

