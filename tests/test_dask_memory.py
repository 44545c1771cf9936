"""The client's memory stays flat on Dask: score shards far larger than the growth allowed to the client
process are evaluated (``metrics.summary``), calibrated (``TemperatureScaling.fit`` then ``transform``),
given conformal sets (``ConformalClassifier.fit``) and reported (``calibration_report``) on a LocalCluster
of 2 worker processes, and the client's peak resident memory (``VmHWM`` of ``/proc/self/status``) grows by
a small fraction of the data. Runs in a subprocess, so that pytest's own memory does not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("distributed")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc/self/status (Linux)")]

ROWS, CLASSES, SHARDS = 1_000_000, 100, 10  # 400 MB of float32 scores in 10 shards
ALLOWED = 0.25  # the client's peak may grow by at most this fraction of the scores' bytes

CLIENT = textwrap.dedent('''
    import json, os, sys
    import numpy as np

    def status(key):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    if __name__ == "__main__":
        folder = sys.argv[1]
        import sigmax.metrics as M
        from distributed import Client, LocalCluster
        from sigmax.calibration import TemperatureScaling
        from sigmax.conformal import ConformalClassifier
        from sigmax.io import open_shards
        from sigmax.report import calibration_report

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as lc, Client(lc):
            z = open_shards(os.path.join(folder, "s-*.npy"), chunk_rows=50_000)
            y = open_shards(os.path.join(folder, "y-*.npy"), chunk_rows=50_000)
            M.summary(z[:10], y[:10], "multiclass")  # imports and first contact, before the baseline
            base_hwm, base_anon = status("VmHWM"), status("RssAnon")
            out = {"nbytes": int(z.nbytes)}
            steps = out["steps"] = {}
            out["ece"] = M.summary(z, y, "multiclass")["ece"]
            steps["summary"] = status("VmHWM") - base_hwm
            ts = TemperatureScaling().fit(z, y)
            out["temperature"] = float(ts.temperature_)
            out["ece_after"] = M.summary(ts.transform(z), y, "multiclass")["ece"]
            steps["temperature"] = status("VmHWM") - base_hwm
            cc = ConformalClassifier("multiclass", alpha=0.1).fit(ts.transform(z), y)
            out["quantile"] = float(cc.quantile_)
            steps["conformal"] = status("VmHWM") - base_hwm
            rep = calibration_report(z, y, "multiclass", n_resamples=0, check=False, show_progress=False,
                                     chunk_rows=50_000, memory_budget="64M")  # the fitting sample: within it
            out["report_n_eval"] = int(rep.n_eval)
            steps["report"] = status("VmHWM") - base_hwm
            out["hwm_growth"] = status("VmHWM") - base_hwm
            out["anon_growth"] = status("RssAnon") - base_anon
            out["base_hwm"] = base_hwm
            print(json.dumps(out))
''')


def test_client_memory_stays_flat(tmp_path):
    rng = np.random.default_rng(0)
    per = ROWS // SHARDS
    for i in range(SHARDS):  # one shard in memory at a time (40 MB), in this process, not the client
        y = rng.integers(0, CLASSES, per)
        z = rng.standard_normal((per, CLASSES), dtype=np.float32) * 2
        z[np.arange(per), y] += 3.0
        np.save(tmp_path / f"s-{i:02d}.npy", z)
        np.save(tmp_path / f"y-{i:02d}.npy", y)
        del z, y
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    data = got["nbytes"]
    assert data == ROWS * CLASSES * 4
    print(f"\nscores {data / 2**20:.0f} MiB; client peak RSS (VmHWM) grew {got['hwm_growth'] / 2**20:.1f} MiB "
          f"({got['hwm_growth'] / data:.1%}), RssAnon {got['anon_growth'] / 2**20:+.1f} MiB, "
          f"baseline peak {got['base_hwm'] / 2**20:.0f} MiB; peak growth after each step (MiB): "
          + ", ".join(f"{k} {v / 2**20:.1f}" for k, v in got["steps"].items()))
    assert got["hwm_growth"] < ALLOWED * data, got
    assert got["anon_growth"] < ALLOWED * data, got
    # the work was done: numbers that only the whole data give
    assert 0 < got["ece"] < 1 and 0 < got["ece_after"] < 1 and got["temperature"] > 0
    assert np.isfinite(got["quantile"]) and got["report_n_eval"] > ROWS // 4
