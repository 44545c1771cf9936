"""Peak memory of `sigmax report` on a large score file, measured on the process, not with tracemalloc.

    python benchmarks/report_memory.py                       # 36,000 x 2,048 float32 (288 MiB)
    python benchmarks/report_memory.py --rows 100000 --classes 4096
    python benchmarks/report_memory.py --baseline-src /path/to/old/checkout/src   # the same runs, old code

Each run starts `python -m sigmax report SCORES LABELS --task multiclass --space logits` in a child process
and polls its `/proc/PID/status` every 2 ms for the peak anonymous resident memory (RssAnon: the heap,
NumPy buffers; memory-mapped file pages belong to the page cache and are not counted there) and reads
VmHWM (the peak resident set, file pages included). The runs: the CLI defaults (a 1 GiB budget), then
``--memory-budget 256M``; with ``--baseline-src`` the default run is repeated with that source tree first
on ``PYTHONPATH`` (an older sigmax), so before and after come from one process tree on one machine. The
last column is peak RssAnon over the file's size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from sigmax.testing import peak_memory


def peak(argv: list[str], env: dict | None = None) -> tuple[int, int, int, float, str]:
    """(exit status, peak RssAnon bytes, VmHWM bytes, seconds, stderr tail) of ``python -m sigmax ARGV``."""
    run = peak_memory([sys.executable, "-m", "sigmax", *argv], env=env)
    return run.returncode, run.rss_anon, run.vm_hwm, run.seconds, run.stderr[-300:]


def make_files(folder: str, n: int, c: int, seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    scores = os.path.join(folder, "scores.npy")
    mm = np.lib.format.open_memmap(scores, mode="w+", dtype=np.float32, shape=(n, c))
    for i in range(0, n, 4000):
        b = rng.standard_normal((min(4000, n - i), c), dtype=np.float32)
        b[np.arange(b.shape[0]), y[i:i + b.shape[0]]] += 3.0
        mm[i:i + b.shape[0]] = 3.0 * b  # over-confident logits
    mm.flush()
    del mm
    labels = os.path.join(folder, "labels.npy")
    np.save(labels, y)
    return scores, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=36_000)
    ap.add_argument("--classes", type=int, default=2048)
    ap.add_argument("--baseline-src", default=None, help="an older sigmax's src/ folder, run first on PYTHONPATH")
    args = ap.parse_args()
    if not os.path.exists("/proc/self/status"):
        print("this benchmark reads /proc/PID/status (Linux only)")
        return 2
    with tempfile.TemporaryDirectory() as d:
        scores, labels = make_files(d, args.rows, args.classes)
        size = os.path.getsize(scores)
        base = ["report", scores, labels, "--task", "multiclass", "--space", "logits"]
        runs = []
        if args.baseline_src:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline_src))
            runs.append(("baseline, defaults", base + ["--out", os.path.join(d, "r0")], env))
        runs.append(("defaults (1 GiB budget)", base + ["--out", os.path.join(d, "r1")], None))
        runs.append(("--memory-budget 256M", base + ["--out", os.path.join(d, "r2"), "--memory-budget", "256M"], None))
        runs.append(("200-row file (interpreter baseline)", None, None))
        print(f"score file: {args.rows:,} x {args.classes:,} float32 = {size / 2**20:,.0f} MiB; machine: "
              f"{os.cpu_count()} cores")
        print(f"{'run':38s} {'exit':>4s} {'peak RssAnon':>13s} {'VmHWM':>10s} {'seconds':>8s} {'anon / file':>11s}")
        for name, argv, env in runs:
            if argv is None:
                s2, y2 = os.path.join(d, "small.npy"), os.path.join(d, "small_y.npy")
                np.save(s2, np.load(scores, mmap_mode="r")[:200])
                np.save(y2, np.load(labels)[:200])
                argv = ["report", s2, y2, "--task", "multiclass", "--space", "logits", "--out", os.path.join(d, "r3")]
            rc, anon, hwm, secs, err = peak(argv, env)
            print(f"{name:38s} {rc:4d} {anon / 2**20:10,.0f} MiB {hwm / 2**20:6,.0f} MiB {secs:8.1f} "
                  f"{anon / size:10.2f}x")
            if rc not in (0, 1):
                print("   ", err.strip().splitlines()[-1] if err.strip() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
