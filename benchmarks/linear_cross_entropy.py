"""Linear cross-entropy at language-model scale: time and peak memory, forward + backward.

Contenders, side by side on the same inputs (float32 by default):

* plain PyTorch: ``F.cross_entropy(F.linear(hidden, weight), target)`` (materializes N x V logits);
* ``torch.compile`` of that expression (where Inductor works on this machine; the reason is printed
  where it does not);
* PyTorch's own ``F.linear_cross_entropy`` (2.13+) with its chunking options;
* ``sigmax.torch.linear_cross_entropy`` (default chunking).

Every case runs in a fresh subprocess, so one contender's allocations never count against another.
Peak memory is the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` after the warm-up run, which also absorbs compilation), minus the resident
size just before the timed run (inputs allocated). Each subprocess runs with glibc's mmap threshold
fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``), so every large tensor is mapped on allocation and unmapped
when freed and the resident size follows the live tensors (glibc's default threshold grows after the
first large free and then keeps freed memory resident, which hides allocations). "extra" subtracts the gradients every contender must
produce (hidden's and weight's): the memory a method needs beyond its inputs and outputs. The issue's
targets: sigmax's extra at most 5% of plain PyTorch's, time no worse than plain PyTorch and better than
PyTorch's chunked path.

Usage::

    python benchmarks/linear_cross_entropy.py            # the issue's shapes (needs ~16 GiB, minutes)
    python benchmarks/linear_cross_entropy.py --quick    # small shapes, seconds
    python benchmarks/linear_cross_entropy.py --modes    # sigmax: gradients in forward vs recompute
    python benchmarks/linear_cross_entropy.py --chunks   # sigmax: chunk-size sweep
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ISSUE_SHAPES = [(4096, 1024, 32000), (8192, 2048, 128256)]
QUICK_SHAPES = [(1024, 256, 8000), (2048, 256, 32000)]
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


# --------------------------------------------------------------------------------------------
# one case, in a subprocess
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _contender(name: str, opts: dict):
    import torch
    import torch.nn.functional as F

    if name == "plain":
        return lambda h, W, y: F.cross_entropy(F.linear(h, W), y)
    if name == "compile":
        compiled = torch.compile(lambda h, W, y: F.cross_entropy(F.linear(h, W), y))
        return compiled
    if name == "torch_lce":
        if not hasattr(F, "linear_cross_entropy"):
            raise RuntimeError(f"torch {torch.__version__} has no F.linear_cross_entropy")
        options = torch.nn.LinearCrossEntropyOptions(**opts)
        return lambda h, W, y: F.linear_cross_entropy(h, W, y, options=options)
    if name == "sigmax":
        from sigmax.torch import linear_cross_entropy

        return lambda h, W, y: linear_cross_entropy(h, W, y, **opts)
    if name == "sigmax_recompute":  # private switch: recompute the logits in backward
        from sigmax.torch._chunked import Spec, default_chunk_rows
        from sigmax.torch.linear_cross_entropy import _torch_chunked

        def fn(h, W, y):
            chunk = opts.get("chunk_size") or default_chunk_rows(h.shape[0], W.shape[0])
            return _torch_chunked(h, W, None, y, None, Spec(), chunk, False)[0]

        return fn
    raise ValueError(name)


def run_case(case: dict) -> dict:
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    n, d, v = case["shape"]
    dtype = getattr(torch, case["dtype"])
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=g).to(dtype).requires_grad_(True)
    W = (torch.randn(v, d, generator=g) / d**0.5).to(dtype).requires_grad_(True)
    y = torch.randint(0, v, (n,), generator=g)
    try:
        fn = _contender(case["name"], case.get("opts", {}))
        t0 = time.perf_counter()
        fn(h, W, y).backward()  # warm-up (and compilation)
        warm = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - report why a contender cannot run here, not a traceback
        return {"status": f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    loss_value = None
    times = []
    peak_extra = None
    for r in range(case["repeat"]):
        h.grad = W.grad = None
        gc.collect()
        if r == 0:
            exact = _reset_peak()
            base = _status_kib("VmRSS") if exact else 0
        t0 = time.perf_counter()
        loss = fn(h, W, y)
        loss.backward()
        times.append(time.perf_counter() - t0)
        if r == 0:
            peak_extra = 1024 * (_status_kib("VmHWM") - base) if exact else None
            loss_value = float(loss)
    grads = (n * d + v * d) * BYTES[case["dtype"]]
    return {"status": "ok", "time": statistics.median(times), "warmup": warm, "peak_extra": peak_extra,
            "extra": None if peak_extra is None else peak_extra - grads, "loss": loss_value,
            "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


def plain_estimate_gib(n, d, v, nbytes):
    """Plain PyTorch's peak: inputs, their gradients, and about three N x V buffers (logits,
    log-softmax, their gradient)."""
    return (2 * (n * d + v * d) + 3 * n * v) * nbytes / 2**30


def contenders(args):
    if args.modes:
        return [("sigmax (gradients in forward)", "sigmax", {}), ("sigmax (recompute in backward)", "sigmax_recompute", {})]
    if args.chunks:
        return [(f"sigmax chunk_size={c}", "sigmax", {"chunk_size": c}) for c in (32, 64, 128, 256, 512)]
    out = [("plain PyTorch", "plain", {})]
    if not args.no_compile:
        out.append(("torch.compile(plain)", "compile", {}))
    out += [
        ("F.linear_cross_entropy auto", "torch_lce", {}),
        ("F.linear_cross_entropy aspect_ratio", "torch_lce", {"chunking_method": "aspect_ratio"}),
        ("F.linear_cross_entropy aspect_ratio:4", "torch_lce", {"chunking_method": "aspect_ratio:4"}),
        ("sigmax.torch.linear_cross_entropy", "sigmax", {}),
    ]
    return out


def mib(x):
    return "-" if x is None else f"{x / 2**20:,.0f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"small shapes {QUICK_SHAPES}")
    p.add_argument("--shape", action="append", default=None, metavar="N,d,V", help="a shape (repeatable)")
    p.add_argument("--dtype", default="float32", choices=sorted(BYTES))
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (median; the first also measures memory)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    p.add_argument("--max-gib", type=float, default=16.0, help="skip plain PyTorch/compile above this estimated peak")
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for a minute)")
    p.add_argument("--modes", action="store_true", help="sigmax: gradients in forward vs recompute in backward")
    p.add_argument("--chunks", action="store_true", help="sigmax: chunk-size sweep")
    p.add_argument("--only", action="append", default=None, metavar="TEXT",
                   help="run only the methods whose label contains TEXT (repeatable)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return

    import torch

    shapes = ([tuple(int(x) for x in s.split(",")) for s in args.shape] if args.shape
              else QUICK_SHAPES if args.quick else ISSUE_SHAPES)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, dtype {args.dtype}, forward+backward, median of {args.repeat}")
    header = f"{'N,d,V':>18} {'method':<40} {'time s':>8} {'x plain':>8} {'peak MiB':>9} {'extra MiB':>10} {'extra/plain':>11}"
    print(header)
    print("-" * len(header))
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)  # large tensors mapped and unmapped: RSS = live memory
    for shape in shapes:
        n, d, v = shape
        plain = None
        for label, name, opts in contenders(args):
            if args.only and name != "plain" and not any(t in label for t in args.only):
                continue
            if name in ("plain", "compile") and plain_estimate_gib(n, d, v, BYTES[args.dtype]) > args.max_gib:
                res = {"status": f"skipped: needs ~{plain_estimate_gib(n, d, v, BYTES[args.dtype]):.1f} GiB > --max-gib"}
            else:
                case = {"name": name, "opts": opts, "shape": shape, "dtype": args.dtype, "repeat": args.repeat,
                        "threads": args.threads}
                proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", json.dumps(case)],
                                      capture_output=True, text=True, env=env, check=False)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if proc.returncode != 0 or not lines:
                    tail = (proc.stderr.strip().splitlines() or ["?"])[-1][:100]
                    res = {"status": f"failed (exit {proc.returncode}: {tail})"}
                else:
                    res = json.loads(lines[-1])
            shape_s = ",".join(map(str, shape))
            if res["status"] != "ok":
                print(f"{shape_s:>18} {label:<40} {res['status']}")
                continue
            if plain is None and name in ("plain", "sigmax") and (args.modes or args.chunks or name == "plain"):
                plain = res
            ratio = res["time"] / plain["time"] if plain else float("nan")
            share = (f"{100 * res['extra'] / plain['extra']:.1f}%"
                     if plain and res["extra"] is not None and plain["extra"] else "-")
            print(f"{shape_s:>18} {label:<40} {res['time']:8.3f} {ratio:8.2f} {mib(res['peak_extra']):>9} "
                  f"{mib(res['extra']):>10} {share:>11}")
    print("\ntime: seconds per forward+backward; x plain: time over plain PyTorch's (with --modes/--chunks:"
          " over the first row's); peak: resident-set growth during one forward+backward; extra: peak minus"
          " the hidden and weight gradients; extra/plain: extra as a share of plain PyTorch's.")


if __name__ == "__main__":
    main()
