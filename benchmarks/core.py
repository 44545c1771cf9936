"""Speed of sigmax's core functions and losses on the CPU, against their peers, on the same arrays.

    python benchmarks/core.py            # the issue's grid (a few minutes on 2 cores; torch.compile's
                                         # compilations and the slow peers take most of it)
    python benchmarks/core.py --quick    # small shapes, few repeats (a smoke test, not a measurement)
    python benchmarks/core.py --no-compile --no-jax --functions softmax,logsumexp   # a subset

Peers, in one process on the same float32 arrays: PyTorch eager, ``torch.compile`` (compiled once per
function with dynamic shapes and warmed before timing: compile time is excluded), ``scipy.special``
(on the NumPy array) and JAX (``jax.jit``, warmed; the array is put on the device once, outside the
timing). sigmax runs twice: on the torch tensor (compare with the torch columns) and on the NumPy
array (compare with SciPy). Every time is the median of several repeats of one call that allocates
its result, as a user's call does.

Table 1, per function, shape and axis: milliseconds, the ratio of each peer's time to sigmax's
(> 1: sigmax is faster), and the percent of this machine's copy bandwidth that sigmax reaches: the
bytes the function must move at least (read the input once, write the output once; a forward+backward
reads the logits and writes their gradient) per second, over the bytes per second of a plain copy of
the same array into a preallocated buffer (measured in this run, the best of NumPy and torch).
Table 2 sweeps the number of classes V at a fixed N*V and prints nanoseconds per element: a flat
column means no cliff as rows outgrow the caches. The first-call overhead (a new shape's first call
against its second) is printed at the end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
import warnings

import numpy as np

import sigmax
from sigmax import _kernels

warnings.filterwarnings("ignore")

FUNCTIONS = ["softmax", "log_softmax", "logsumexp", "sigmoid", "log_sigmoid", "cross_entropy",
             "cross_entropy fwd+bwd", "bce_with_logits"]
ELEMENTWISE = {"sigmoid", "log_sigmoid", "bce_with_logits"}  # no axis: run once, on the last-axis rows


BUDGET = 0.4  # seconds of timed calls per cell, at most (the repeats adapt to the call's length)


def timeit(fn, repeats: int, warmup: int = 1) -> float:
    """Median seconds of at least ``repeats`` calls (after ``warmup`` calls): more for short calls,
    up to 25 or about ``BUDGET`` seconds. Calls over half a second (the slow peers, where a few
    percent do not change a ratio's verdict): the better of the last warm-up call and one more (a
    hiccup of the machine in one of them does not count), or the warm-up call alone over 2 s."""
    t = 0.0
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
    if t > 2.0:
        return t
    if t > 0.5:
        t0 = time.perf_counter()
        fn()
        return min(t, time.perf_counter() - t0)
    n = max(repeats, min(25, int(BUDGET / max(t, 1e-6))))
    times = []
    gc.collect()  # once: with torch.compile loaded a collection takes longer than most calls
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return statistics.median(times)


def copy_bandwidth(x: np.ndarray, repeats: int) -> float:
    """Bytes moved (read + write) per second by the best plain copy of ``x`` into a preallocated buffer."""
    out = np.empty_like(x)
    best = x.nbytes * 2 / timeit(lambda: np.copyto(out, x), repeats)
    if importlib.util.find_spec("torch"):
        import torch

        xt, ot = torch.from_numpy(x), torch.from_numpy(out)
        best = max(best, x.nbytes * 2 / timeit(lambda: ot.copy_(xt), repeats))
    return best


# ---------------------------------------------------------------------------------------------
# the calls
# ---------------------------------------------------------------------------------------------


def sigmax_call(name, x, axis, target):
    """sigmax's function on ``x`` (NumPy or torch), class axis ``axis``."""
    if name == "softmax":
        return lambda: sigmax.softmax(x, axis=axis)
    if name == "log_softmax":
        return lambda: sigmax.log_softmax(x, axis=axis)
    if name == "logsumexp":
        return lambda: sigmax.logsumexp(x, axis=axis)
    if name == "sigmoid":
        return lambda: sigmax.sigmoid(x)
    if name == "log_sigmoid":
        return lambda: sigmax.log_sigmoid(x)
    if name == "cross_entropy":
        return lambda: sigmax.cross_entropy(x, target, axis=axis)
    if name == "cross_entropy fwd+bwd":
        if not hasattr(x, "requires_grad"):
            return None

        def run():
            xg = x.detach().requires_grad_(True)
            sigmax.cross_entropy(xg, target, axis=axis).backward()
            return xg.grad
        return run
    if name == "bce_with_logits":
        return lambda: sigmax.binary_cross_entropy_with_logits(x, target)
    raise KeyError(name)


def torch_fns(axis):
    """name -> callable(x, target) in PyTorch eager (class axis ``axis``; cross_entropy wants axis 1)."""
    import torch
    import torch.nn.functional as F

    def ce(x, t):
        return F.cross_entropy(x if axis in (1, -1) else x.T, t)

    def ce_bwd(x, t):
        xg = x.detach().requires_grad_(True)
        ce(xg, t).backward()
        return xg.grad

    return {
        "softmax": lambda x, t: torch.softmax(x, axis),
        "log_softmax": lambda x, t: torch.log_softmax(x, axis),
        "logsumexp": lambda x, t: torch.logsumexp(x, axis),
        "sigmoid": lambda x, t: torch.sigmoid(x),
        "log_sigmoid": lambda x, t: F.logsigmoid(x),
        "cross_entropy": ce,
        "cross_entropy fwd+bwd": ce_bwd,
        "bce_with_logits": lambda x, t: F.binary_cross_entropy_with_logits(x, t),
    }


_COMPILED: dict = {}


def compiled_fn(name, axis):
    """``torch.compile`` of the eager function (dynamic shapes: one compilation per function and axis)."""
    import torch

    key = (name, axis)
    if key not in _COMPILED:
        eager = torch_fns(axis)[name]
        if name == "cross_entropy fwd+bwd":
            fwd = torch.compile(torch_fns(axis)["cross_entropy"], dynamic=True)

            def run(x, t):
                xg = x.detach().requires_grad_(True)
                fwd(xg, t).backward()
                return xg.grad
            _COMPILED[key] = run
        else:
            _COMPILED[key] = torch.compile(eager, dynamic=True)
    return _COMPILED[key]


def scipy_fn(name, axis):
    import scipy.special as sp

    return {
        "softmax": lambda x: sp.softmax(x, axis=axis),
        "log_softmax": lambda x: sp.log_softmax(x, axis=axis),
        "logsumexp": lambda x: sp.logsumexp(x, axis=axis),
        "sigmoid": sp.expit,
        "log_sigmoid": sp.log_expit,
    }.get(name)


def jax_fns(axis):
    import jax
    import jax.numpy as jnp

    def ce(x, t):
        lp = jax.nn.log_softmax(x, axis=axis)
        picked = jnp.take_along_axis(lp, jnp.expand_dims(t, axis), axis=axis)
        return -jnp.mean(picked)

    def bce(x, t):
        return jnp.mean(jnp.maximum(x, 0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x))))

    fns = {
        "softmax": lambda x, t: jax.nn.softmax(x, axis=axis),
        "log_softmax": lambda x, t: jax.nn.log_softmax(x, axis=axis),
        "logsumexp": lambda x, t: jax.nn.logsumexp(x, axis=axis),
        "sigmoid": lambda x, t: jax.nn.sigmoid(x),
        "log_sigmoid": lambda x, t: jax.nn.log_sigmoid(x),
        "cross_entropy": ce,
        "cross_entropy fwd+bwd": jax.grad(ce),
        "bce_with_logits": bce,
    }
    return {k: jax.jit(v) for k, v in fns.items()}


def moved_bytes(name, x_nbytes, shape, axis, itemsize=4):
    """The least traffic of ``name``: read the input once and write the output once."""
    rows = shape[0] if axis in (1, -1) else shape[1]
    if name in ("softmax", "log_softmax", "sigmoid", "log_sigmoid"):
        return 2 * x_nbytes
    if name in ("logsumexp",):
        return x_nbytes + rows * itemsize
    if name == "cross_entropy":
        return x_nbytes + rows * 8
    if name == "cross_entropy fwd+bwd":
        return 2 * x_nbytes + rows * 8  # read the logits, write their gradient
    if name == "bce_with_logits":
        return 2 * x_nbytes  # logits and targets
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# the tables
# ---------------------------------------------------------------------------------------------


def fmt_ms(t):
    return "—" if t is None else (f"{t * 1e3:.1f}" if t >= 0.01 else f"{t * 1e3:.2f}")


def fmt_ratio(peer, mine):
    return "—" if peer is None or mine is None else f"{peer / mine:.2f}"


def table1(shapes, repeats, peers, bandwidth):
    import torch

    jax_on = "jax" in peers
    header = ["function", "shape", "axis", "sigmax torch ms", "torch eager ms", "×eager", "×compile",
              "sigmax numpy ms", "scipy ms", "×scipy"] + (["jax ms", "×jax"] if jax_on else []) + ["% bw"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    rng = np.random.default_rng(0)
    for shape in shapes:
        xn = (rng.standard_normal(shape, dtype=np.float32) * 3)
        for axis in (-1, 0):
            C = shape[-1] if axis == -1 else shape[0]
            rows = shape[0] if axis == -1 else shape[1]
            tn = rng.integers(0, C, size=rows)
            tt = torch.from_numpy(tn)
            xt = torch.from_numpy(xn)
            bn = (rng.random(shape, dtype=np.float32) > 0.5).astype(np.float32)
            bt = torch.from_numpy(bn)
            tfns = torch_fns(1 if axis == -1 else 0)
            xj = tj = bj = jfns = None
            if jax_on:
                import jax

                jfns = jax_fns(axis)
                xj = jax.device_put(xn)
                tj = jax.device_put(tn.astype(np.int32))
                bj = jax.device_put(bn)
            for name in FUNCTIONS:
                if name in ELEMENTWISE and axis == 0:
                    continue
                ce = name.startswith("cross_entropy")
                targ_t = bt if name == "bce_with_logits" else tt
                targ_n = bn if name == "bce_with_logits" else tn
                sx_axis = axis if not ce else (1 if axis == -1 else 0)
                res = {}
                f = sigmax_call(name, xt, sx_axis, targ_t)
                res["sigmax_t"] = timeit(f, repeats)
                res["eager"] = timeit(lambda: tfns[name](xt, targ_t), repeats)
                res["compile"] = None
                if "compile" in peers:
                    try:
                        cf = compiled_fn(name, 1 if axis == -1 else 0)
                        res["compile"] = timeit(lambda: cf(xt, targ_t), repeats, warmup=2)
                    except Exception as exc:  # pragma: no cover - where torch.compile does not work
                        peers.discard("compile")
                        print(f"<!-- torch.compile unavailable: {type(exc).__name__}: {exc} -->")
                fn = sigmax_call(name, xn, sx_axis, targ_n)
                res["sigmax_n"] = timeit(fn, repeats) if fn is not None and name != "cross_entropy fwd+bwd" else None
                sf = scipy_fn(name, axis) if "scipy" in peers else None
                res["scipy"] = timeit(lambda: sf(xn), repeats) if sf is not None else None
                res["jax"] = None
                if jax_on:
                    jf = jfns[name]
                    targ_j = bj if name == "bce_with_logits" else tj
                    res["jax"] = timeit(lambda: jf(xj, targ_j).block_until_ready(), repeats, warmup=2)
                bw = moved_bytes(name, xn.nbytes, shape, axis) / res["sigmax_t"] / bandwidth * 100
                RESULTS.append(dict(res, name=name, shape=shape, axis=axis, bw=bw))
                row = [name, "×".join(map(str, shape)), "last" if axis == -1 else "0",
                       fmt_ms(res["sigmax_t"]), fmt_ms(res["eager"]), fmt_ratio(res["eager"], res["sigmax_t"]),
                       fmt_ratio(res["compile"], res["sigmax_t"]), fmt_ms(res["sigmax_n"]), fmt_ms(res["scipy"]),
                       fmt_ratio(res["scipy"], res["sigmax_n"])]
                if jax_on:
                    row += [fmt_ms(res["jax"]), fmt_ratio(res["jax"], res["sigmax_t"])]
                row.append(f"{bw:.0f}")
                print("| " + " | ".join(row) + " |", flush=True)
            del xt, bt, xj, bj
        del xn
        gc.collect()


RESULTS: list = []
LARGE = [(4096, 32000), (1024, 128256)]


def targets(results, large):
    """The issue's targets, each as met or the gap, from this run's rows."""
    def ratio(r, peer, mine="sigmax_t"):
        return r[peer] / r[mine] if r.get(peer) and r.get(mine) else None

    lines = []

    def check(label, rows, value, goal, fmt):
        vals = [(value(r), r) for r in rows]
        vals = [(v, r) for v, r in vals if v is not None]
        if not vals:
            lines.append(f"- {label}: not measured in this run")
            return
        worst, r = min(vals, key=lambda vr: vr[0])
        where = f"{r['name']} {'×'.join(map(str, r['shape']))} axis {'last' if r['axis'] == -1 else 0}"
        verdict = "met" if worst >= goal else f"MISSED by {goal - worst:{fmt[1:]}}"
        lines.append(f"- {label}: worst {worst:{fmt[1:]}} ({where}) against {goal:{fmt[1:]}}: {verdict}")

    big = [r for r in results if tuple(r["shape"]) in large]
    two_x = {"logsumexp", "cross_entropy", "cross_entropy fwd+bwd", "bce_with_logits", "log_sigmoid"}
    check("PyTorch eager / sigmax, logsumexp, cross_entropy (fwd, fwd+bwd), bce_with_logits, log_sigmoid "
          "at the large shapes", [r for r in big if r["name"] in two_x], lambda r: ratio(r, "eager"), 2.0, ":.2f")
    check("PyTorch eager / sigmax, every function anywhere in the grid", results, lambda r: ratio(r, "eager"),
          0.95, ":.2f")
    check("scipy.special / sigmax on NumPy arrays at the large shapes", big,
          lambda r: ratio(r, "scipy", "sigmax_n"), 3.0, ":.2f")
    check("percent of copy bandwidth, softmax, log_softmax, logsumexp, cross_entropy at the large shapes",
          [r for r in big if r["name"] in ("softmax", "log_softmax", "logsumexp", "cross_entropy")],
          lambda r: r["bw"], 40.0, ":.0f")
    return lines


def table2(total, repeats):
    import torch
    import torch.nn.functional as F

    print()
    print(f"V sweep at N*V = {total:,} float32 elements, last axis: nanoseconds per element "
          "(sigmax on torch tensors / torch eager)")
    print()
    names = ["softmax", "log_softmax", "logsumexp", "cross_entropy"]
    print("| V | N | " + " | ".join(f"{n} sigmax | {n} torch" for n in names) + " |")
    print("|---|---|" + "|".join("---|---" for _ in names) + "|")
    rng = np.random.default_rng(1)
    for V in [10, 100, 1000, 10_000, 32_000, 128_256, 262_144]:
        N = max(1, total // V)
        xt = torch.from_numpy(rng.standard_normal((N, V), dtype=np.float32) * 3)
        tt = torch.from_numpy(rng.integers(0, V, size=N))
        peers = {
            "softmax": (lambda: sigmax.softmax(xt), lambda: torch.softmax(xt, -1)),
            "log_softmax": (lambda: sigmax.log_softmax(xt), lambda: torch.log_softmax(xt, -1)),
            "logsumexp": (lambda: sigmax.logsumexp(xt), lambda: torch.logsumexp(xt, -1)),
            "cross_entropy": (lambda: sigmax.cross_entropy(xt, tt), lambda: F.cross_entropy(xt, tt)),
        }
        cells = []
        for n in names:
            a, b = peers[n]
            cells += [f"{timeit(a, repeats) / xt.numel() * 1e9:.2f}", f"{timeit(b, repeats) / xt.numel() * 1e9:.2f}"]
        print(f"| {V} | {N} | " + " | ".join(cells) + " |", flush=True)


def first_call_overhead():
    """Seconds a new shape's first call costs more than its second (no compile step at call time)."""
    import torch

    rng = np.random.default_rng(2)
    out = []
    for lib in ("numpy", "torch"):
        for name in ("softmax", "logsumexp", "sigmoid"):
            shape = (int(rng.integers(300, 900)), int(rng.integers(300, 900)))
            x = rng.standard_normal(shape, dtype=np.float32)
            if lib == "torch":
                x = torch.from_numpy(x)
            f = getattr(sigmax, name)
            t0 = time.perf_counter()
            f(x)
            t1 = time.perf_counter()
            f(x)
            t2 = time.perf_counter()
            out.append((f"{name} ({lib}, {shape[0]}×{shape[1]})", (t1 - t0) - (t2 - t1)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes and few repeats (a smoke test)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per cell (default 3, quick 2)")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    ap.add_argument("--no-jax", action="store_true", help="leave JAX out")
    ap.add_argument("--functions", default=None,
                    help="comma-separated subset of: " + ", ".join(FUNCTIONS))
    ap.add_argument("--no-sweep", action="store_true", help="leave the V sweep (table 2) out")
    ap.add_argument("--shapes", default=None, help="comma-separated NxV shapes instead of the grid, e.g. 4096x32000")
    args = ap.parse_args()
    if args.functions:
        chosen = [f.strip() for f in args.functions.split(",")]
        unknown = sorted(set(chosen) - set(FUNCTIONS))
        if unknown:
            ap.error(f"unknown functions {unknown}; choose from {FUNCTIONS}")
        FUNCTIONS[:] = [f for f in FUNCTIONS if f in chosen]

    # before anything else: the first call of a new shape against its second
    overhead = first_call_overhead()

    import torch

    try:  # each (function, axis) is its own compiled graph; shapes are dynamic
        torch._dynamo.config.recompile_limit = 64
        torch._dynamo.config.cache_size_limit = 64
    except AttributeError:  # pragma: no cover - other torch versions
        pass
    repeats = args.repeats or (2 if args.quick else 3)
    shapes = [(512, 100), (256, 4000), (64, 16032), (8192, 10)] if args.quick else \
        [(8192, 1000), (4096, 32000), (1024, 128256), (65536, 10)]
    if args.shapes:
        try:
            shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",")]
            assert all(len(s) == 2 for s in shapes)
        except (ValueError, AssertionError):
            ap.error(f"--shapes wants NxV shapes separated by commas, e.g. 4096x32000, got {args.shapes!r}")
    peers = {"eager"}
    if importlib.util.find_spec("scipy"):
        peers.add("scipy")
    if not args.no_compile:
        peers.add("compile")
    if not args.no_jax and importlib.util.find_spec("jax"):
        peers.add("jax")

    big = np.random.default_rng(3).standard_normal(max(shapes, key=lambda s: s[0] * s[1]), dtype=np.float32)
    bandwidth = copy_bandwidth(big, max(3, repeats))
    big_shape = big.shape
    del big
    print(f"sigmax {getattr(sigmax, '__version__', '')} kernels: "
          f"{_kernels.variant() if _kernels.enabled() else 'off (generic code)'}, threads {_kernels.num_threads()}; "
          f"torch {torch.__version__} threads {torch.get_num_threads()}; numpy {np.__version__}; "
          f"CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}; "
          f"python {sys.version.split()[0]}")
    print(f"copy bandwidth (read + write, preallocated, {big_shape[0]}×{big_shape[1]} float32): "
          f"{bandwidth / 1e9:.1f} GB/s; median of {repeats} to 25 calls per cell (more for short calls); ratios are peer time / sigmax time")
    print()
    t_start = time.perf_counter()
    table1(shapes, repeats, peers, bandwidth)
    print()
    print("Targets (issue 7), from the rows above:")
    for line in targets(RESULTS, LARGE if not args.quick else [tuple(shapes[1])]):
        print(line)
    if not args.no_sweep:
        table2(2 ** 20 if args.quick else 2 ** 25, repeats)
    print()
    print("first call of a new shape, minus its second call (ms): " +
          ", ".join(f"{k} {v * 1e3:+.2f}" for k, v in overhead))
    print(f"(the tables took {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
