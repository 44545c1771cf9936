"""Memory of a Hugging Face causal LM's loss head, unpatched against ``sigmax.torch.hf.patch``.

The model is a real ``LlamaForCausalLM`` built from a config (nothing downloaded) with **no decoder
layer**: embedding, final norm, output embedding (tied), Hugging Face's loss. So the measurement is the
loss head at a realistic shape and nothing else, through the model's own ``forward`` and the real patch:
unpatched, ``lm_head`` makes the ``tokens x vocab`` logits, ``ForCausalLMLoss`` upcasts and shifts them
and ``F.cross_entropy`` keeps its log-softmax, and backward makes their gradient; patched, the logits
never exist.

Every case runs in a fresh subprocess. Peak memory is the process's resident-set high-water mark
(``VmHWM``, reset through ``/proc/self/clear_refs`` once the model and the batch exist) minus the resident
size at that moment, with glibc's mmap threshold fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``) so the
resident size follows the live tensors. "extra" subtracts the weight gradient both must produce.

Usage::

    python benchmarks/hf_memory.py                       # 4096 tokens x hidden 2048 x vocab 32000
    python benchmarks/hf_memory.py --vocab 32000 --vocab 128256   # + Llama 3's vocabulary (~9 GiB peak)
    python benchmarks/hf_memory.py --tokens 1024 --hidden 256 --vocab 8000   # seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def run_case(case: dict) -> dict:
    import torch
    import transformers

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    n, d, v = case["tokens"], case["hidden"], case["vocab"]
    seq = case["seq"]
    cfg = transformers.LlamaConfig(vocab_size=v, hidden_size=d, intermediate_size=d, num_hidden_layers=0,
                                   num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=seq,
                                   tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, case["dtype"])).train()
    if case["patched"]:
        from sigmax.torch import hf

        hf.patch(model)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, v, (n // seq, seq), generator=g)
    labels = ids.clone()
    labels[:, : seq // 8] = -100  # a prompt that is not trained on
    gc.collect()
    _reset_peak()
    base = _status_kib("VmRSS")
    t0 = time.perf_counter()
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    elapsed = time.perf_counter() - t0
    peak = 1024 * (_status_kib("VmHWM") - base)
    grad = model.get_output_embeddings().weight.grad
    return {"peak": peak, "extra": peak - grad.numel() * grad.element_size(), "time": elapsed,
            "loss": float(out.loss), "logits": None if out.logits is None else list(out.logits.shape),
            "threads": torch.get_num_threads()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=4096, help="tokens per batch (default 4096)")
    p.add_argument("--seq", type=int, default=2048, help="sequence length (tokens / seq rows; default 2048)")
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--vocab", type=int, action="append", default=None, help="vocabulary (repeatable; default 32000)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    import torch
    import transformers

    seq = min(args.seq, args.tokens)
    if args.tokens % seq:
        p.error(f"--tokens {args.tokens} must be a multiple of --seq {seq}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.dtype}, "
          "forward+backward of the loss head (LlamaForCausalLM, no decoder layer, tied embedding)")
    header = f"{'tokens x hidden x vocab':>24} {'model':<10} {'time s':>7} {'peak MiB':>9} {'extra MiB':>10} {'loss':>9}"
    print(header)
    print("-" * len(header))
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for v in args.vocab or [32000]:
        results = {}
        for patched in (False, True):
            case = {"tokens": args.tokens, "seq": seq, "hidden": args.hidden, "vocab": v, "dtype": args.dtype,
                    "threads": args.threads, "patched": patched}
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", json.dumps(case)],
                                  capture_output=True, text=True, env=env)
            if proc.returncode:
                raise SystemExit(f"case {case} failed:\n{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results[patched] = r
            name = "patched" if patched else "HF"
            print(f"{f'{args.tokens} x {args.hidden} x {v}':>24} {name:<10} {r['time']:>7.2f} "
                  f"{r['peak'] / 2**20:>9,.0f} {r['extra'] / 2**20:>10,.0f} {r['loss']:>9.5f}", flush=True)
        plain, fused = results[False], results[True]
        print(f"{'':>24} peak: patched/HF = {fused['peak'] / plain['peak']:.3f} "
              f"({plain['peak'] / fused['peak']:.1f}x less), extra: {fused['extra'] / plain['extra']:.3f}, "
              f"saved {(plain['peak'] - fused['peak']) / 2**20:,.0f} MiB; "
              f"|loss difference| {abs(plain['loss'] - fused['loss']):.1e}")


if __name__ == "__main__":
    main()
