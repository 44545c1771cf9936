"""`sigmax report` holds its memory budget, measured on the process (not tracemalloc): the bound checked is

    peak anonymous resident memory (RssAnon, polled every 2 ms from the parent)
        <= budget + the interpreter's own baseline (the same command on a 200-row file) + 64 MiB slack

at the CLI defaults (1 GiB budget) on a 219 MiB float32 score file with 2,048 classes, and with
``--memory-budget 256M`` on the same file. Before the budget, the defaults peaked at 1.8 GiB of
anonymous memory on a file of this shape (6.3 times its size: the file read whole, float64 copies, the fitting
sample as a row count). Memory-mapped file pages are the page cache's, not the process's heap, so
``ru_maxrss`` (which counts them) is only checked against budget + baseline + the file's size.
"""

from __future__ import annotations

import os
import resource
import sys

import numpy as np
import pytest

from sigmax.testing import peak_memory

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                                                   reason="reads /proc/PID/status (Linux)")]

N, C = 28_000, 2048  # 219 MiB of float32
SLACK = 64 << 20


def _peak(argv: list[str]) -> tuple[int, int, str]:
    """Run ``sigmax ARGV`` in a child process; return (exit status, peak RssAnon bytes, stderr)."""
    run = peak_memory([sys.executable, "-m", "sigmax", *argv])
    return run.returncode, run.rss_anon, run.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mem")
    rng = np.random.default_rng(0)
    y = rng.integers(0, C, N)
    mm = np.lib.format.open_memmap(d / "s.npy", mode="w+", dtype=np.float32, shape=(N, C))
    for i in range(0, N, 4000):
        b = rng.standard_normal((min(4000, N - i), C), dtype=np.float32)
        b[np.arange(b.shape[0]), y[i:i + b.shape[0]]] += 3.0
        mm[i:i + b.shape[0]] = 3.0 * b  # over-confident
    mm.flush()
    del mm
    np.save(d / "y.npy", y)
    np.save(d / "s0.npy", rng.normal(size=(200, C)).astype(np.float32))
    np.save(d / "y0.npy", rng.integers(0, C, 200))
    code, base, err = _peak(["report", str(d / "s0.npy"), str(d / "y0.npy"), "--task", "multiclass", "--space",
                             "logits", "--out", str(d / "r0")])
    assert code == 0, err
    return d, base


@pytest.mark.parametrize("budget", [None, "256M"])
def test_report_stays_within_its_memory_budget(files, budget):
    d, base = files
    argv = ["report", str(d / "s.npy"), str(d / "y.npy"), "--task", "multiclass", "--space", "logits",
            "--out", str(d / f"r-{budget}"), "--no-check"]
    if budget:
        argv += ["--memory-budget", budget]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    code, peak, err = _peak(argv)
    assert code == 0, err
    limit = (256 << 20 if budget else 1 << 30) + base + SLACK
    assert peak <= limit, f"peak RssAnon {peak / 2**20:.0f} MiB > {limit / 2**20:.0f} MiB (baseline {base / 2**20:.0f})"
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if maxrss > before:  # the largest child so far is this one
        assert maxrss <= limit + os.path.getsize(d / "s.npy")
    html = (d / f"r-{budget}" / "index.html").read_text(encoding="utf-8")
    assert "memory budget " + ("256 MiB" if budget else "1 GiB") in html and "chunks of" in html
