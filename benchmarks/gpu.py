"""GPU benchmark: sigmax's Triton kernels against torch eager, torch.compile, F.linear_cross_entropy,
Liger-Kernel and CCE (cut-cross-entropy), where installed. Needs CUDA; elsewhere it says so and exits 0.

    python benchmarks/gpu.py                    # both fused-loss shapes and the row kernels
    python benchmarks/gpu.py --only fused --shape 8192,2304,256000
    python benchmarks/gpu.py --quick            # small shapes, for a smoke run

Fused linear cross-entropy, bfloat16, at CCE's Gemma-2 shape (8192 tokens, D=2304, V=256000) and at
Llama-3's (8192, 4096, 128256): median time (CUDA events) and peak memory above the inputs
(``torch.cuda.max_memory_allocated`` after a reset), forward and forward+backward. Row kernels
(softmax, log_softmax, cross-entropy, BCE with logits): time against torch eager and the percent of the
GPU's memory bandwidth (bytes read and written once / time / the peak bandwidth from the device's
memory clock and bus width when PyTorch reports them, else ``--bandwidth`` GB/s).
"""

from __future__ import annotations

import argparse
import sys

SHAPES = {"gemma2": (8192, 2304, 256000), "llama3": (8192, 4096, 128256)}


def _timeit(fn, *, warmup=3, reps=10):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def _peak(fn):
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def _fused_candidates():
    import torch
    import torch.nn.functional as F

    from sigmax.torch import linear_cross_entropy

    def eager(h, w, y):
        return F.cross_entropy(F.linear(h, w).float(), y)

    cands = {
        "sigmax (triton)": lambda h, w, y: linear_cross_entropy(h, w, y, impl="triton"),
        "sigmax (chunked torch)": lambda h, w, y: linear_cross_entropy(h, w, y, impl="torch"),
        "torch eager": eager,
        "torch.compile": torch.compile(eager),
    }
    if hasattr(F, "linear_cross_entropy"):
        cands["F.linear_cross_entropy"] = lambda h, w, y: F.linear_cross_entropy(h, w, y)
    try:
        from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

        cands["Liger-Kernel"] = lambda h, w, y: liger_fused_linear_cross_entropy(h, w, y)
    except ImportError:
        pass
    try:
        from cut_cross_entropy import linear_cross_entropy as cce

        cands["CCE"] = lambda h, w, y: cce(h, w, y)
    except ImportError:
        pass
    return cands


def bench_fused(n, d, v, reps):
    import torch

    g = torch.Generator(device="cuda").manual_seed(0)
    h = (torch.randn(n, d, device="cuda", generator=g) / d**0.5).to(torch.bfloat16).requires_grad_()
    w = (torch.randn(v, d, device="cuda", generator=g) * 0.02).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, v, (n,), device="cuda", generator=g)
    print(f"\nfused linear cross-entropy, bfloat16, N={n} D={d} V={v}")
    print(f"{'implementation':26s} {'fwd ms':>9s} {'fwd GiB':>8s} {'fwd+bwd ms':>11s} {'f+b GiB':>8s} {'|loss - ref|':>13s}")
    ref = None
    for name, fn in _fused_candidates().items():
        try:
            with torch.no_grad():
                t_f = _timeit(lambda: fn(h, w, y), reps=reps)
                m_f = _peak(lambda: fn(h, w, y))
                loss = float(fn(h, w, y))

            def step():
                h.grad = w.grad = None
                fn(h, w, y).backward()

            t_b = _timeit(step, reps=reps)
            m_b = _peak(step)
        except Exception as exc:  # an implementation that fails at this shape (memory) is reported
            print(f"{name:26s} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
            torch.cuda.empty_cache()
            continue
        ref = loss if ref is None else ref
        print(f"{name:26s} {t_f:9.2f} {m_f:8.2f} {t_b:11.2f} {m_b:8.2f} {abs(loss - ref):13.2e}")


def _bandwidth(default_gbs):
    import torch

    p = torch.cuda.get_device_properties(0)
    clock = getattr(p, "memory_clock_rate", 0)  # kHz
    bus = getattr(p, "memory_bus_width", 0)  # bits
    if clock and bus:
        return 2 * clock * 1e3 * bus / 8 / 1e9  # DDR: two transfers per clock
    return default_gbs


def bench_rows(r, c, reps, bandwidth):
    import torch
    import torch.nn.functional as F

    from sigmax.torch import triton as st

    x = torch.randn(r, c, device="cuda", dtype=torch.bfloat16)
    y = torch.randint(0, c, (r,), device="cuda")
    t = torch.rand(r, c, device="cuda", dtype=torch.bfloat16)
    e = x.element_size() * r * c
    cases = [
        ("softmax", lambda: st.softmax(x, -1), lambda: torch.softmax(x, -1), 3 * e),  # stats + write pass
        ("log_softmax", lambda: st.log_softmax(x, -1), lambda: torch.log_softmax(x, -1), 3 * e),
        ("cross_entropy", lambda: st.cross_entropy(x, y), lambda: F.cross_entropy(x, y), e),
        ("bce_with_logits", lambda: st.binary_cross_entropy_with_logits(x, t),
         lambda: F.binary_cross_entropy_with_logits(x, t), 2 * e),
    ]
    print(f"\nrow kernels, bfloat16, {r} x {c}; peak bandwidth {bandwidth:.0f} GB/s")
    print(f"{'op':18s} {'sigmax ms':>10s} {'torch ms':>9s} {'speed-up':>9s} {'% bandwidth':>12s}")
    for name, ours, theirs, nbytes in cases:
        a, b = _timeit(ours, reps=reps), _timeit(theirs, reps=reps)
        pct = nbytes / (a * 1e-3) / (bandwidth * 1e9) * 100
        print(f"{name:18s} {a:10.3f} {b:9.3f} {b / a:9.2f} {pct:11.0f}%")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("fused", "rows"), help="run one part")
    ap.add_argument("--shape", help="N,D,V for the fused loss (default: the Gemma-2 and Llama-3 shapes)")
    ap.add_argument("--rows", default="8192,32000", help="R,C for the row kernels")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--bandwidth", type=float, default=3350.0, help="peak GB/s if PyTorch cannot tell")
    ap.add_argument("--quick", action="store_true", help="small shapes (a smoke run)")
    a = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("benchmarks/gpu.py needs PyTorch and a CUDA GPU; PyTorch is not installed.")
        return 0
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU (none found); nothing measured.")
        return 0
    try:
        import triton  # noqa: F401
    except ImportError:
        print("benchmarks/gpu.py needs Triton (pip install 'sigmax[gpu]').")
        return 0
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, triton {triton.__version__}")
    if a.only in (None, "fused"):
        shapes = [tuple(int(s) for s in a.shape.split(","))] if a.shape else list(SHAPES.values())
        if a.quick:
            shapes = [(1024, 512, 32000)]
        for n, d, v in shapes:
            bench_fused(n, d, v, a.reps)
    if a.only in (None, "rows"):
        r, c = (1024, 4096) if a.quick else tuple(int(s) for s in a.rows.split(","))
        bench_rows(r, c, a.reps, _bandwidth(a.bandwidth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
