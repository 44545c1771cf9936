"""Vocabulary-parallel cross-entropy on real process groups (gloo, 2 and 4 processes on this machine).

Each world size is one ``torch.multiprocessing.spawn``: every rank runs every case on its slice of the
vocabulary and saves its loss, log-sum-exp, gradients and the all-reduces it made; the parent compares
them with the single-process loss on the full vocabulary. Spawning once per world size (not per case)
keeps the suite fast: starting a process and its gloo group costs seconds, a case milliseconds.
"""

import datetime
import os

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from sigmax.testing import assert_close
from sigmax.torch import (
    linear_cross_entropy,
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)
from sigmax.torch._reference import reference_cross_entropy

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

N, D = 29, 8
FULL = {"class_weight": True, "label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 3.0}
CASES = [
    # (name, function, loss options, dtype, uneven slices, reduce_hidden_grad)
    ("mean", "linear", {}, torch.float32, False, False),
    ("sum-all-options", "linear", dict(reduction="sum", bias=True, **FULL), torch.float32, False, True),
    ("none-lse", "linear", {"reduction": "none", "return_lse": True, "softcap": 2.0, "bias": True}, torch.float32, False, False),
    ("uneven", "linear", dict(bias=True, **FULL), torch.float32, True, True),
    ("all-ignored", "linear", {"all_ignored": True, "label_smoothing": 0.2}, torch.float32, False, True),
    ("bfloat16", "linear", {"class_weight": True, "z_loss": 1e-3}, torch.bfloat16, False, True),
    ("logits-mean", "logits", {}, torch.float32, False, False),
    ("logits-all-options", "logits", dict(reduction="sum", **FULL), torch.float32, False, False),
    ("logits-none-lse-uneven", "logits", dict(reduction="none", return_lse=True, **FULL), torch.float32, True, False),
    ("logits-all-ignored", "logits", {"all_ignored": True}, torch.float32, True, False),
    # the upper half of the vocabulary is padding with -inf logits: whole ranks hold nothing else
    ("logits-padded", "logits", {"padded": True, "z_loss": 1e-3}, torch.float32, False, False),
]


def vocab_size(uneven):
    return 23 if uneven else 24  # 23: slices of 11/12 (2 ranks) and 5/6/6/6 (4 ranks)


def bounds(v, world, rank, uneven):
    if not uneven:
        return rank * (v // world), (rank + 1) * (v // world)
    sizes = [v // world + (1 if r >= world - v % world else 0) for r in range(world)]
    lo = sum(sizes[:rank])
    return lo, lo + sizes[rank]


def inputs(case_index, uneven, dtype, opts):
    v = vocab_size(uneven)
    g = torch.Generator().manual_seed(case_index)
    h = torch.randn(N, D, generator=g).to(dtype)
    W = (torch.randn(v, D, generator=g)).to(dtype)
    b = torch.randn(v, generator=g).to(dtype) if opts.get("bias") else None
    y = torch.randint(0, v, (N,), generator=g)
    if opts.get("padded"):
        y = y % (v // 2)  # targets only in the unpadded half
    y[::4] = -100
    if opts.get("all_ignored"):
        y[:] = -100
    cw = torch.rand(v, generator=g) + 0.5 if opts.get("class_weight") else None
    up = torch.rand(N, generator=g) if opts.get("reduction") == "none" else torch.tensor(1.3)
    return h, W, b, y, cw, up


def logits(h, W, b, opts):
    z = F.linear(h, W, b)
    if opts.get("padded"):
        z[:, W.shape[0] // 2:] = float("-inf")
    return z


def loss_options(opts):
    return {k: v for k, v in opts.items() if k not in ("bias", "class_weight", "all_ignored", "padded")}


def objective(out, up, return_lse):
    """A scalar to differentiate: the loss weighted by ``up``, plus a term through the lse."""
    loss, lse = out if return_lse else (out, None)
    total = (loss.float() * up).sum()
    return total + 0.3 * (lse**2).sum() if lse is not None else total


def run_case(i, world, rank):
    _, kind, opts, dtype, uneven, reduce_hidden = CASES[i]
    h, W, b, y, cw, up = inputs(i, uneven, dtype, opts)
    lo, hi = bounds(W.shape[0], world, rank, uneven)
    kw = loss_options(opts)
    kw.update(class_weight=None if cw is None else cw[lo:hi], vocab_start=lo if uneven else None)
    if kind == "linear":
        hh = h.clone().requires_grad_(True)
        Ws = W[lo:hi].clone().requires_grad_(True)
        bs = None if b is None else b[lo:hi].clone().requires_grad_(True)
        out = vocab_parallel_linear_cross_entropy(hh, Ws, y, bias=bs, reduce_hidden_grad=reduce_hidden, **kw)
        leaves = {"hidden": hh, "weight": Ws, "bias": bs}
    else:
        z = logits(h, W, b, opts)[:, lo:hi].detach().requires_grad_(True)
        out = vocab_parallel_cross_entropy(z, y, **kw)
        leaves = {"logits": z}
    calls.append("backward")
    objective(out, up, opts.get("return_lse", False)).backward()
    loss, lse = out if opts.get("return_lse") else (out, None)
    return {"loss": loss.detach(), "lse": None if lse is None else lse.detach(),
            "grads": {k: None if x is None else x.grad for k, x in leaves.items()}}


calls = []


def _worker(rank, world, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    all_reduce = dist.all_reduce

    def counting_all_reduce(tensor, op=dist.ReduceOp.SUM, *args, **kwargs):
        calls.append(str(op).rsplit(".", 1)[-1])
        return all_reduce(tensor, op, *args, **kwargs)

    dist.all_reduce = counting_all_reduce
    try:
        results = []
        for i in range(len(CASES)):
            calls.clear()
            res = run_case(i, world, rank)
            res["calls"] = list(calls)
            results.append(res)
        torch.save(results, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.all_reduce = all_reduce
        dist.destroy_process_group()


def single_process(i):
    """The same case on one process with the whole vocabulary: sigmax's own fused loss for the
    linear head (itself checked against plain PyTorch), plain PyTorch for logits."""
    _, kind, opts, dtype, uneven, _ = CASES[i]
    h, W, b, y, cw, up = inputs(i, uneven, dtype, opts)
    kw = loss_options(opts)
    if kind == "linear":
        leaves = {"hidden": h.clone().requires_grad_(True), "weight": W.clone().requires_grad_(True),
                  "bias": None if b is None else b.clone().requires_grad_(True)}
        out = linear_cross_entropy(leaves["hidden"], leaves["weight"], y, bias=leaves["bias"], class_weight=cw, **kw)
    else:
        leaves = {"logits": logits(h, W, b, opts).detach().requires_grad_(True)}
        out = reference_cross_entropy(leaves["logits"], y, class_weight=cw, **kw)
    objective(out, up, opts.get("return_lse", False)).backward()
    loss, lse = out if opts.get("return_lse") else (out, None)
    return loss.detach(), None if lse is None else lse.detach(), {k: None if x is None else x.grad
                                                                  for k, x in leaves.items()}


def check_case(i, world, per_rank):
    name, kind, _, dtype, uneven, reduce_hidden = CASES[i]
    loss, lse, grads = single_process(i)
    v = vocab_size(uneven)
    # float32: the ranks sum their slices' exponentials in a different order than one process
    # does (and the reference is plain PyTorch for logits): a few roundings more than one op.
    factor = 4.0
    hidden_sum = 0
    for rank, res in enumerate(per_rank):
        r = res[i]
        lo, hi = bounds(v, world, rank, uneven)
        where = f"case {name}, rank {rank} of {world}"
        assert_close(r["loss"], loss, dtype, factor=factor, err_msg=f"{where}: loss")
        assert r["loss"].dtype == loss.dtype
        if lse is not None:
            assert_close(r["lse"], lse, torch.float32, factor=factor, err_msg=f"{where}: lse")
        if kind == "logits":
            assert_close(r["grads"]["logits"], grads["logits"][:, lo:hi], dtype, factor=factor,
                         err_msg=f"{where}: logits grad")
        else:
            assert_close(r["grads"]["weight"], grads["weight"][lo:hi], dtype, factor=factor,
                         err_msg=f"{where}: weight grad")
            if grads["bias"] is not None:
                assert_close(r["grads"]["bias"], grads["bias"][lo:hi], dtype, factor=factor,
                             err_msg=f"{where}: bias grad")
            if reduce_hidden:
                assert_close(r["grads"]["hidden"], grads["hidden"], dtype, factor=factor,
                             err_msg=f"{where}: hidden grad")
            hidden_sum = hidden_sum + r["grads"]["hidden"].double()
        # one MAX and one packed SUM all-reduce in forward; nothing in backward but the optional
        # sum of hidden's gradient
        split = r["calls"].index("backward")
        assert r["calls"][:split] == ["MAX", "SUM"], f"{where}: forward all-reduces {r['calls']}"
        expected = ["SUM"] if (kind == "linear" and reduce_hidden) else []
        assert r["calls"][split + 1:] == expected, f"{where}: backward all-reduces {r['calls']}"
    if kind == "linear" and not reduce_hidden:  # partial gradients: their sum over ranks is the gradient
        assert_close(hidden_sum.float(), grads["hidden"], dtype, factor=factor,
                     err_msg=f"case {name}: sum of the ranks' hidden grads")


@pytest.mark.parametrize("world", [2, 4])
def test_equals_single_process(world, tmp_path):
    # One spawn per world size runs every case (a test per case would spawn per xdist worker).
    mp.spawn(_worker, args=(world, str(tmp_path)), nprocs=world, join=True)
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    for i in range(len(CASES)):
        check_case(i, world, per_rank)


def test_without_a_process_group_it_is_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 11, generator=g, requires_grad=True)
    y = torch.tensor([0, 10, -100, 3, 5, 5, 1])
    loss = vocab_parallel_cross_entropy(z, y, label_smoothing=0.1, reduction="sum")
    ref = F.cross_entropy(z, y, label_smoothing=0.1, reduction="sum")
    assert_close(loss, ref, factor=4.0)
    (gz,) = torch.autograd.grad(loss, z)
    (rz,) = torch.autograd.grad(ref, z)
    assert_close(gz, rz, factor=4.0)


def test_bad_input_is_named():
    z = torch.randn(4, 6)
    with pytest.raises(ValueError, match="target holds class index 6"):
        vocab_parallel_cross_entropy(z, torch.tensor([0, 1, 6, 2]))
    with pytest.raises(ValueError, match="class_weight must be this rank's slice"):
        vocab_parallel_cross_entropy(z, torch.tensor([0, 1, 5, 2]), class_weight=torch.ones(12))
    with pytest.raises(TypeError, match="logits_shard"):
        vocab_parallel_cross_entropy(torch.zeros(4, 6, dtype=torch.long), torch.tensor([0, 1, 5, 2]))
    with pytest.raises(RuntimeError, match="not initialized"):
        vocab_parallel_cross_entropy(z, torch.tensor([0, 1, 5, 2]), group=object())
