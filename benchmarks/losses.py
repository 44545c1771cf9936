"""Losses, side by side: sigmax against torch.nn.functional on PyTorch tensors, and against optax on
JAX arrays (where optax is installed), forward and forward+backward, in one process.

    python benchmarks/losses.py            # the shapes of issue 3 (needs ~4 GB of memory)
    python benchmarks/losses.py --quick    # small shapes: checks that everything runs
    python benchmarks/losses.py --device cuda
    python benchmarks/losses.py --jax-only # issue 16 item 5: sigmax vs optax under jax.jit only

Cases: cross-entropy with class-index targets at (8192, 1000), (4096, 32000), (1024, 128256) float32,
and binary cross-entropy with logits at (65536, 1000) float32 (0/1 targets), reduction "mean".
Each time is the median of ``--repeats`` runs after warm-up; "ratio" is sigmax / peer (target for
PyTorch tensors: <= 1.15). sigmax's times include its argument checks (target range, shapes),
which a user always pays; the JAX rows compare ``jax.jit``-compiled functions (targets traced, so
sigmax's value checks are skipped there). Benchmarks are not tests: nothing here asserts a time.

JAX rows (issue 16, item 5): ``sigmax.cross_entropy`` against ``optax.softmax_cross_entropy_with_integer_labels
(...).mean()`` and ``sigmax.binary_cross_entropy_with_logits`` against ``optax.sigmoid_binary_cross_entropy(...)
.mean()``, both under ``jax.jit`` of the user's function, forward and ``jax.value_and_grad``, at (8192, 1000) and
(4096, 32000) float32. The four functions of a case run interleaved, one call each per round, so a busy
machine slows them alike; each time is the least of ``--rounds`` medians of ``--repeats`` runs (wall clock, and
process CPU time). On a shared machine other processes still move the numbers: rerun before trusting a ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import sigmax

FULL = {"cross_entropy": [(8192, 1000), (4096, 32000), (1024, 128256)], "bce_with_logits": [(65536, 1000)]}
QUICK = {"cross_entropy": [(256, 100), (128, 1000), (64, 4000)], "bce_with_logits": [(1024, 100)]}
JAX_FULL = {"cross_entropy": [(8192, 1000), (4096, 32000)], "bce_with_logits": [(8192, 1000), (4096, 32000)]}
JAX_QUICK = {"cross_entropy": [(256, 100), (64, 4000)], "bce_with_logits": [(256, 100)]}


def machine() -> str:
    """The CPU's model name (and the core count this process may use)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name}, {cores} cores"


def _median_ms(fn, repeats: int, sync=lambda: None) -> float:
    for _ in range(2):  # warm-up: allocator, kernels, JIT caches
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _data(loss: str, shape, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32) * 3
    if loss == "cross_entropy":
        t = rng.integers(0, shape[1], size=shape[0])
    else:
        t = (rng.uniform(size=shape) < 0.3).astype(np.float32)
    return x, t


def bench_torch(loss: str, shape, device: str, repeats: int):
    import torch
    import torch.nn.functional as F

    x_np, t_np = _data(loss, shape)
    x = torch.as_tensor(x_np, device=device)
    t = torch.as_tensor(t_np, device=device)
    peer = F.cross_entropy if loss == "cross_entropy" else F.binary_cross_entropy_with_logits
    ours = sigmax.cross_entropy if loss == "cross_entropy" else sigmax.binary_cross_entropy_with_logits
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for mode in ("forward", "forward+backward"):
        times = {}
        for name, fn in (("torch", peer), ("sigmax", ours)):
            if mode == "forward":
                def run(fn=fn):
                    with torch.no_grad():
                        fn(x, t)
            else:
                xg = x.clone().requires_grad_(True)

                def run(fn=fn, xg=xg):
                    fn(xg, t).backward()
                    xg.grad = None
            times[name] = _median_ms(run, repeats, sync)
        rows.append((loss, shape, mode, "torch.nn.functional", times["torch"], times["sigmax"]))
    # the values agree (a benchmark of the wrong computation is worthless)
    a, b = peer(x, t), ours(x, t)
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (loss, shape, float(a), float(b))
    return rows


def bench_optax(loss: str, shape, repeats: int, rounds: int = 3):
    import jax
    import jax.numpy as jnp
    import optax

    x_np, t_np = _data(loss, shape)
    x, t = jnp.asarray(x_np), jnp.asarray(t_np)
    if loss == "cross_entropy":
        def peer(v, y):
            return optax.softmax_cross_entropy_with_integer_labels(v, y).mean()

        def ours(v, y):
            return sigmax.cross_entropy(v, y)
    else:
        def peer(v, y):
            return optax.sigmoid_binary_cross_entropy(v, y).mean()

        def ours(v, y):
            return sigmax.binary_cross_entropy_with_logits(v, y)
    cells = {}
    for mode in ("forward", "forward+backward"):
        for name, fn in (("optax", peer), ("sigmax", ours)):
            f = jax.jit(fn if mode == "forward" else jax.value_and_grad(fn))
            for _ in range(2):  # compile, warm the allocator
                jax.block_until_ready(f(x, t))
            cells[(mode, name)] = f
    med = {k: float("inf") for k in cells}
    medc = {k: float("inf") for k in cells}
    for _ in range(rounds):  # the min over rounds of each round's median: the least disturbed round
        wall = {k: [] for k in cells}
        cpu = {k: [] for k in cells}
        for _ in range(repeats):  # interleaved: a busy machine slows every cell of a round alike
            for k, f in cells.items():
                c0, t0 = time.process_time(), time.perf_counter()
                jax.block_until_ready(f(x, t))
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
        for k in cells:
            med[k] = min(med[k], 1e3 * statistics.median(wall[k]))
            medc[k] = min(medc[k], 1e3 * statistics.median(cpu[k]))
    rows = []
    for mode in ("forward", "forward+backward"):
        rows.append((loss, shape, mode, "optax (jit)", med[(mode, "optax")], med[(mode, "sigmax")],
                     medc[(mode, "optax")], medc[(mode, "sigmax")]))
    a, b = cells[("forward", "optax")](x, t), cells[("forward", "sigmax")](x, t)
    assert np.allclose(float(a), float(b), rtol=1e-4), (loss, shape, float(a), float(b))
    (_, ga), (_, gb) = cells[("forward+backward", "optax")](x, t), cells[("forward+backward", "sigmax")](x, t)
    assert np.allclose(np.asarray(ga), np.asarray(gb), rtol=1e-3, atol=1e-9), (loss, shape, "gradients")
    return rows


def _print_table(header, table) -> None:
    widths = [max(len(r[i]) for r in [header] + table) for i in range(len(header))]
    print()
    for i, r in enumerate([header] + table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes, to check that it runs")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per cell (default 20, quick 5)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="JAX rows: rounds of --repeats interleaved runs; the min of the rounds' medians (default 3)")
    ap.add_argument("--no-jax", action="store_true", help="skip the optax/JAX rows")
    ap.add_argument("--jax-only", action="store_true", help="only the optax/JAX rows (issue 16, item 5)")
    args = ap.parse_args(argv)
    shapes = QUICK if args.quick else FULL
    repeats = args.repeats or (5 if args.quick else 20)

    print(f"sigmax {sigmax.__version__} | {machine()} | float32, reduction='mean'")
    if not args.jax_only:
        import torch

        print(f"torch {torch.__version__} ({args.device}, {torch.get_num_threads()} threads) | "
              f"median of {repeats} runs")
        rows = []
        for loss, shape_list in shapes.items():
            for shape in shape_list:
                rows += bench_torch(loss, shape, args.device, repeats)
        _print_table(("loss", "shape", "pass", "peer", "peer ms", "sigmax ms", "sigmax / peer"), [
            (loss, "x".join(map(str, shape)), mode, peer, f"{tp:.2f}", f"{ts:.2f}", f"{ts / tp:.2f}x")
            for loss, shape, mode, peer, tp, ts in rows])
    if args.no_jax:
        return
    try:
        import jax
        import optax
    except ImportError as exc:
        print(f"(optax rows skipped: {exc})")
        return
    device = jax.devices()[0]
    print(f"\njax {jax.__version__} ({jax.default_backend()}: {getattr(device, 'device_kind', device)}) | "
          f"optax {optax.__version__} | both under jax.jit | min over {args.rounds} rounds of the median of "
          f"{repeats} interleaved runs")
    rows = []
    for loss, shape_list in (JAX_QUICK if args.quick else JAX_FULL).items():
        for shape in shape_list:
            rows += bench_optax(loss, shape, repeats, args.rounds)
    _print_table(("loss", "shape", "pass", "optax ms", "sigmax ms", "sigmax / optax (wall)", "cpu ms optax / sigmax",
                  "sigmax / optax (cpu)"), [
        (loss, "x".join(map(str, shape)), mode, f"{tp:.2f}", f"{ts:.2f}", f"{ts / tp:.2f}x", f"{cp:.1f} / {cs:.1f}",
         f"{cs / cp:.2f}x")
        for loss, shape, mode, peer, tp, ts, cp, cs in rows])
    print("\nratio < 1: sigmax is faster than optax (target: <= 1.00)")


if __name__ == "__main__":
    main()
