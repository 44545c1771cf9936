r"""Vocabulary-parallel cross-entropy over ``torch.distributed`` (Megatron-style tensor parallelism).

Each rank of a process group holds a contiguous slice of the vocabulary: its logits
``logits_shard`` of shape ``(..., V_r)`` (:func:`vocab_parallel_cross_entropy`), or the rows
``weight_shard`` ``(V_r, d)`` of the output projection (:func:`vocab_parallel_linear_cross_entropy`, which
never forms even the shard's logits). Tokens and targets are the same on every rank.

Every quantity the loss needs is a sum over the vocabulary, so each rank computes its part in one pass
(:mod:`sigmax.torch._chunked`), and the forward pass communicates exactly twice:

1. one ``MAX`` all-reduce of the per-token maxima :math:`m_i = \max_r m_i^{(r)}` (N values), after which
   each rank rescales its sum of exponentials: :math:`s^{(r)}_i e^{m^{(r)}_i - m_i}`;
2. one packed ``SUM`` all-reduce of ``[sum of exponentials, target logit, target class weight,
   class-weighted logit sum (label smoothing only)]`` per token, plus the slice's total class weight and
   size (so uneven slices need no extra message).

Then :math:`\operatorname{lse}_i = m_i + \log\sum_r s^{(r)}_i e^{m^{(r)}_i - m_i}`, and the loss is the same
number on every rank. Backward communicates nothing: each rank's gradient of its logits (or of its
weight shard and bias shard) is local. The gradient of the replicated ``hidden`` in the fused version is
this rank's partial sum over its slice; Megatron's tensor-parallel region
(``copy_to_tensor_model_parallel_region``) sums it over ranks in its own backward, or pass
``reduce_hidden_grad=True`` to have the loss do it (one ``SUM`` all-reduce of N x d in backward).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.autograd.function import once_differentiable

from . import _chunked
from ._chunked import LinearSource, LogitsSource, Spec, TokenPlan
from .linear_cross_entropy import check_linear, check_options, check_target

__all__ = ["vocab_parallel_cross_entropy", "vocab_parallel_linear_cross_entropy"]


def _group(group):
    """``(group, world_size, rank)``; without an initialized process group, a group of one."""
    if not (dist.is_available() and dist.is_initialized()):
        if group is not None:
            raise RuntimeError("a process group was given but torch.distributed is not initialized; "
                               "call torch.distributed.init_process_group first")
        return None, 1, 0
    return group, dist.get_world_size(group), dist.get_rank(group)


class _VocabParallelCrossEntropy(torch.autograd.Function):
    """Fused (``weight`` given: logits = hidden @ weight.T + bias) or on a logits shard (``x``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, target, class_weight, spec: Spec, chunk: int, start: int,
                group, world: int, reduce_hidden_grad: bool):
        ctx.set_materialize_grads(False)
        src = LogitsSource(x) if weight is None else LinearSource(x, weight, bias)
        cdt, n_local = src.cdt, src.n_cols
        plan = TokenPlan.build(target, ignore_index=spec.ignore_index, start=start, n_cols=n_local,
                               class_weight=class_weight, dtype=cdt)
        smoothing = spec.label_smoothing > 0
        # The gradients need the global log-sum-exp, known only after the all-reduces below, so
        # this loss always recomputes the logits in backward (no gradients-in-forward).
        mx, s, zt, zw = _chunked.stats_pass(src, plan, class_weight=class_weight, softcap=spec.softcap,
                                            smoothing=smoothing, chunk=chunk)
        m = mx.clone()
        if world > 1:
            dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)  # all-reduce 1 of 2
        # Rescale this slice's sum to the global max. s > 0 implies a finite local max <= m, so
        # exp(mx - m) <= 1; an empty slice (all -inf logits, s = 0) contributes 0, never NaN.
        s = torch.where(s > 0, s * torch.exp(mx - m), 0.0)
        w_sum = float(n_local) if class_weight is None else class_weight.to(cdt).sum()
        parts = [s, zt, plan.w_t] + ([zw] if smoothing else [])
        scalars = torch.stack([torch.as_tensor(w_sum, dtype=cdt, device=s.device),
                               torch.tensor(float(n_local), dtype=cdt, device=s.device)])
        packed = torch.cat(parts + [scalars])
        if world > 1:
            dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)  # all-reduce 2 of 2
        n = s.shape[0]
        s, zt, w_t = packed[:n], packed[n:2 * n], packed[2 * n:3 * n]
        zw = packed[3 * n:4 * n] if smoothing else None
        w_sum, n_classes = packed[-2], packed[-1]
        lse = torch.where(torch.isfinite(m), m, 0.0) + s.log()
        tok = _chunked.token_losses(spec, plan.valid, w_t, lse, zt, zw, w_sum, n_classes)
        denom = torch.where(plan.valid, w_t, 0.0).sum()
        loss = _chunked.reduce_losses(spec, tok, denom)
        ctx.spec, ctx.chunk, ctx.start, ctx.group, ctx.world = spec, chunk, start, group, world
        ctx.reduce_hidden_grad = reduce_hidden_grad
        ctx.save_for_backward(x, weight, bias, target, class_weight, lse, w_t, w_sum, n_classes, denom)
        ctx.mark_non_differentiable(n_classes)
        return loss.to(x.dtype), lse, n_classes

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_lse, _grad_n):
        x, weight, bias, target, class_weight, lse, w_t, w_sum, n_classes, denom = ctx.saved_tensors
        none = (None,) * 11
        if grad_loss is None and grad_lse is None:
            return none
        spec = ctx.spec
        src = LogitsSource(x) if weight is None else LinearSource(x, weight, bias)
        plan = TokenPlan.build(target, ignore_index=spec.ignore_index, start=ctx.start, n_cols=src.n_cols,
                               class_weight=class_weight, dtype=src.cdt)
        g = _chunked.upstream(spec, grad_loss, denom, lse)
        # w_t is the target's class weight gathered from whichever rank holds it; b lands only
        # on this rank's hits (plan.hit).
        c, b, e = _chunked.grad_coefficients(spec, g, plan.valid, plan.hit, w_t, lse, w_sum, n_classes,
                                             grad_lse)
        src.want_grads(*ctx.needs_input_grad[:3])
        _chunked.grad_pass(src, plan, lse, c, b, e, class_weight=class_weight, softcap=spec.softcap,
                           chunk=ctx.chunk)
        if weight is None:
            return (src.gx,) + none[1:]
        gh, gw, gb = src.grads()
        if gh is not None and ctx.reduce_hidden_grad and ctx.world > 1:
            dist.all_reduce(gh, op=dist.ReduceOp.SUM, group=ctx.group)
        cast = [None if t is None else t.to(dt) for t, dt in zip((gh, gw, gb),
                                                                (x.dtype, weight.dtype, weight.dtype))]
        return tuple(cast) + none[3:]


def _prepare(target, lead, n_local, spec, group, vocab_start, class_weight, chunk_size, like):
    group, world, rank = _group(group)
    if vocab_start is None:
        start = rank * n_local  # equal slices, Megatron's layout: rank r holds [r V_r, (r + 1) V_r)
        n_total = world * n_local
    else:
        if isinstance(vocab_start, bool) or not isinstance(vocab_start, int) or vocab_start < 0:
            raise ValueError(f"vocab_start must be None or a non-negative int, got {vocab_start!r}")
        start, n_total = int(vocab_start), None
    if n_total is not None:
        flat = check_target(target, lead, n_classes=n_total, ignore_index=spec.ignore_index, device=like.device,
                            what=f"the vocabulary of {world} slices of {n_local}")
    else:  # uneven slices: the total is known after the forward's all-reduce; check the lower bound
        flat = check_target(target, lead, n_classes=2**62, ignore_index=spec.ignore_index, device=like.device)
    if class_weight is not None:
        if not isinstance(class_weight, torch.Tensor) or tuple(class_weight.shape) != (n_local,):
            raise ValueError(f"class_weight must be this rank's slice of the class weights, shape ({n_local},)")
        if class_weight.device != like.device:
            raise ValueError(f"class_weight is on {class_weight.device}, the logits on {like.device}")
    rows = flat.shape[0]
    chunk = int(chunk_size) if chunk_size is not None else _chunked.default_chunk_rows(rows, n_local)
    return flat, group, world, start, chunk


def _finish(loss, lse, n_classes, flat, lead, spec, return_lse, vocab_start):
    if vocab_start is not None and flat.device.type == "cpu" and flat.numel():
        # uneven slices: the total is known only now, from the forward's packed all-reduce
        bad = (flat != spec.ignore_index) & (flat >= n_classes.to(flat.dtype))
        if bool(bad.any()):
            raise ValueError(f"target holds class index {int(flat[bad][0])}, outside the vocabulary "
                             f"of {int(n_classes)} classes over all ranks")
    if spec.reduction == "none":
        loss = loss.reshape(lead)
    return (loss, lse.reshape(lead)) if return_lse else loss


def vocab_parallel_cross_entropy(logits_shard: torch.Tensor, target: torch.Tensor, *, group=None,
                                 class_weight: torch.Tensor | None = None, ignore_index: int = -100,
                                 label_smoothing: float = 0.0, reduction: str = "mean", z_loss: float = 0.0,
                                 softcap: float | None = None, return_lse: bool = False,
                                 vocab_start: int | None = None, chunk_size: int | None = None):
    r"""Cross-entropy over logits whose vocabulary is split across the ranks of a process group.

    Equal, on every rank, to :func:`sigmax.torch.linear_cross_entropy`'s loss (and so to
    ``F.cross_entropy``) on the full logits, the concatenation of all ranks' shards along the last
    axis:

    .. math::
        \operatorname{lse}_i = \log \sum_r \sum_{j \in \text{slice } r} e^{z_{ij}}, \qquad
        \ell_i = (1-\varepsilon) w_{y_i}(\operatorname{lse}_i - z_{i y_i})
                 - \frac{\varepsilon}{V}\sum_j w_j (z_{ij} - \operatorname{lse}_i) + \lambda_z \operatorname{lse}_i^2

    with one ``MAX`` and one packed ``SUM`` all-reduce in forward and none in backward (see
    :mod:`sigmax.torch.distributed`).

    Args:
        logits_shard: ``(..., V_r)`` this rank's logits, the vocabulary on the **last** axis.
        target: ``(...)`` global class indices (the same on every rank), or ``ignore_index``.
        group: the process group (default: the world). Without an initialized ``torch.distributed``
            the call is a group of one, the plain loss.
        class_weight: this rank's slice ``(V_r,)`` of the class weights.
        ignore_index, label_smoothing, reduction, z_loss, softcap, return_lse, chunk_size: as in
            :func:`sigmax.torch.linear_cross_entropy`.
        vocab_start: the first global class index of this rank's slice. Default ``rank * V_r``
            (equal slices, Megatron's layout); give it for uneven slices.

    Returns:
        The loss (identical on every rank), and with ``return_lse=True`` ``(loss, lse)``. Only this
        rank's logits get a gradient.

    Note:
        An all ``-inf`` slice (padding of the vocabulary) contributes nothing, never NaN. Every token
        ignored: ``"mean"`` is NaN, ``"sum"`` is 0. The target range is checked on CPU tensors.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> from sigmax.torch import vocab_parallel_cross_entropy
        >>> z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
        >>> y = torch.tensor([0, 7, 3, -100, 5])
        >>> loss = vocab_parallel_cross_entropy(z, y)  # no process group: a group of one
        >>> torch.allclose(loss, F.cross_entropy(z, y))
        True
    """
    if not isinstance(logits_shard, torch.Tensor) or not logits_shard.is_floating_point() or logits_shard.ndim < 1:
        raise TypeError("logits_shard must be a floating torch.Tensor with the vocabulary on its last axis")
    spec = check_options(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
                         z_loss=z_loss, softcap=softcap, chunk_size=chunk_size)
    lead, n_local = logits_shard.shape[:-1], logits_shard.shape[-1]
    flat, group, world, start, chunk = _prepare(target, lead, n_local, spec, group, vocab_start,
                                                class_weight, chunk_size, logits_shard)
    x = logits_shard.reshape(-1, n_local)
    loss, lse, n_classes = _VocabParallelCrossEntropy.apply(x, None, None, flat, class_weight, spec, chunk,
                                                            start, group, world, False)
    return _finish(loss, lse, n_classes, flat, lead, spec, return_lse, vocab_start)


def vocab_parallel_linear_cross_entropy(hidden: torch.Tensor, weight_shard: torch.Tensor, target: torch.Tensor, *,
                                        bias: torch.Tensor | None = None, group=None,
                                        class_weight: torch.Tensor | None = None, ignore_index: int = -100,
                                        label_smoothing: float = 0.0, reduction: str = "mean",
                                        z_loss: float = 0.0, softcap: float | None = None,
                                        return_lse: bool = False, vocab_start: int | None = None,
                                        reduce_hidden_grad: bool = False, chunk_size: int | None = None):
    r"""Fused linear cross-entropy with the output projection's rows split across ranks.

    Each rank holds ``weight_shard`` ``(V_r, d)`` (and ``bias`` ``(V_r,)``), the rows of its vocabulary
    slice; ``hidden`` ``(..., d)`` and ``target`` are the same on every rank. The loss equals
    :func:`sigmax.torch.linear_cross_entropy` with the concatenated weight, on every rank:

    .. math:: z^{(r)}_i = W^{(r)} h_i + b^{(r)}, \qquad
              \operatorname{lse}_i = \log \sum_r \sum_j e^{z^{(r)}_{ij}}

    computed chunk by chunk (no rank forms even its ``N x V_r`` logits), with one ``MAX`` and one packed
    ``SUM`` all-reduce in forward. Backward recomputes the shard's logits chunk by chunk (its gradients
    need the global log-sum-exp, known only after forward's all-reduces) and communicates nothing unless
    ``reduce_hidden_grad=True``.

    Args:
        hidden: ``(..., d)`` token features, replicated on the ranks of ``group``.
        weight_shard: ``(V_r, d)`` this rank's rows of the output projection.
        target: ``(...)`` global class indices, or ``ignore_index``.
        bias: this rank's ``(V_r,)`` slice of the bias.
        reduce_hidden_grad: ``False`` (default, Megatron's convention): ``hidden`` gets this rank's
            partial gradient, to be summed over the group by the tensor-parallel region that
            replicated it. ``True``: the loss sums it (one all-reduce of N x d in backward), so
            ``hidden.grad`` is the full gradient on every rank.
        group, class_weight, vocab_start, and the loss options: as in
            :func:`vocab_parallel_cross_entropy` and :func:`sigmax.torch.linear_cross_entropy`.

    Returns:
        The loss (identical on every rank), and with ``return_lse=True`` ``(loss, lse)``.

    Example:
        >>> import torch
        >>> from sigmax.torch import linear_cross_entropy, vocab_parallel_linear_cross_entropy
        >>> g = torch.Generator().manual_seed(0)
        >>> h, W = torch.randn(5, 3, generator=g), torch.randn(8, 3, generator=g)
        >>> y = torch.tensor([0, 7, 3, -100, 5])
        >>> loss = vocab_parallel_linear_cross_entropy(h, W, y, z_loss=1e-4)  # a group of one
        >>> torch.allclose(loss, linear_cross_entropy(h, W, y, z_loss=1e-4))
        True
    """
    check_linear(hidden, weight_shard, bias, None)
    spec = check_options(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
                         z_loss=z_loss, softcap=softcap, chunk_size=chunk_size)
    lead, (n_local, d) = hidden.shape[:-1], weight_shard.shape
    flat, group, world, start, chunk = _prepare(target, lead, n_local, spec, group, vocab_start,
                                                class_weight, chunk_size, hidden)
    h = hidden.reshape(-1, d)
    loss, lse, n_classes = _VocabParallelCrossEntropy.apply(h, weight_shard, bias, flat, class_weight, spec,
                                                            chunk, start, group, world, bool(reduce_hidden_grad))
    return _finish(loss, lse, n_classes, flat, lead, spec, return_lse, vocab_start)
