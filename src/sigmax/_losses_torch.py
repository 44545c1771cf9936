"""The torch-only paths of the losses: what PyTorch tensors get beyond the generic arithmetic.

* :func:`nll_indices_torch`: the selection of ``log p[n, y_n]`` and PyTorch's weighted mean by
  ``torch.nn.functional.nll_loss`` (selection and averaging, not a re-derived primitive);
* :func:`bce_with_logits_torch`: binary cross-entropy of logits with weights or ``pos_weight`` (or on
  CUDA) as one autograd node with the analytic backward, the ``BCEWithLogits`` Function of
  :mod:`sigmax._kernels._autograd` (the one Function of that operation; the kernel path uses it too).

Imported on first use by :mod:`sigmax._losses_core`, so importing sigmax never imports torch.
"""

from __future__ import annotations

import torch

from ._dispatch import is_traced, torch_transform_active
from ._kernels._autograd import bce_logits_elementwise, functions

__all__ = ["nll_indices_torch", "bce_with_logits_torch"]


def bce_with_logits_torch(x, y, w, pw, reduction):
    """The loss by torch operations in few passes over memory (in place where nothing needs the
    intermediate), and under autograd one node with the analytic backward; ``None`` where the
    generic graph must run instead: a target or weight that requires grad (the node gives no
    gradient for them), or torch.compile / functorch / forward-mode AD (the node has no forward
    derivative, and raw in-place arithmetic is not traceable), or a batched operand (PyTorch's
    batched gradients: an in-place product of a plain tensor with a batched one cannot be formed)."""
    if torch_transform_active() or any(v is not None and v.requires_grad for v in (y, w, pw)) or \
            is_traced(x, y, w, pw):
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return functions().BCEWithLogits.apply(x, y, w, pw, reduction)
    loss = bce_logits_elementwise(x, y, w, pw)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / loss.numel()  # no entries: 0 / 0 = NaN


def nll_indices_torch(logp, t, ax, w, ignore_index, smoothing, reduction):
    """:func:`sigmax._losses_core.nll_indices` and its reduction on PyTorch tensors: the selection of ``log p[n, y_n]``
    and PyTorch's weighted mean are ``torch.nn.functional.nll_loss`` (one kernel with its own backward
    instead of a dozen small operations; the indices were checked before), and label smoothing adds
    PyTorch's smoothing term exactly as ``cross_entropy`` does in ATen."""
    import torch
    import torch.nn.functional as F

    if logp.ndim > 2 and ax == logp.ndim - 1:
        # (batch, sequence, vocabulary): rows of a 2-D view, no copy (a moved axis would be copied)
        nll = F.nll_loss(logp.reshape(-1, logp.shape[ax]), t.reshape(-1), weight=w,
                         ignore_index=ignore_index, reduction=reduction)
        if reduction == "none":
            nll = nll.reshape(t.shape)
    else:
        lp = torch.movedim(logp, ax, 1) if logp.ndim > 1 and ax != 1 else logp  # nll_loss's class axis: 1
        nll = F.nll_loss(lp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if smoothing == 0:
        return nll
    c = logp.shape[ax]
    valid = t != ignore_index
    smooth = -(logp if w is None else logp * w.reshape(tuple(-1 if i == ax else 1 for i in range(logp.ndim)))).sum(dim=ax)
    smooth = torch.where(valid, smooth, 0.0)  # ignored entries add nothing
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":  # PyTorch divides by the summed weight of the kept targets
        if w is None:
            denom = valid.sum()
        else:
            denom = torch.where(valid, w[torch.where(valid, t, 0)], 0.0).sum()
        smooth = smooth.sum() / denom
    return (1.0 - smoothing) * nll + (smoothing / c) * smooth


