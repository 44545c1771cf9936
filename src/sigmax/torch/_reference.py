r"""The plain-PyTorch expression the fused losses must equal (private; used by tests and benchmarks).

It materializes the logits and composes ``torch.nn.functional`` ops only, plus the two documented
extensions: ``softcap`` (:math:`z \to \kappa\tanh(z/\kappa)` first) and ``z_loss``
(:math:`+\lambda_z\operatorname{lse}^2` per non-ignored token, divided by the same denominator as the rest
under ``"mean"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["reference_cross_entropy"]


def reference_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, class_weight=None,
                            ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean",
                            z_loss: float = 0.0, softcap: float | None = None, return_lse: bool = False):
    """``F.cross_entropy`` on ``logits`` ``(..., V)`` (classes last) with softcap and z-loss added.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> z, y = torch.randn(4, 5), torch.tensor([0, 1, -100, 4])
        >>> torch.equal(reference_cross_entropy(z, y), F.cross_entropy(z, y))
        True
    """
    z = logits
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z2, y1 = z.reshape(-1, z.shape[-1]), target.reshape(-1)
    lse = torch.logsumexp(z2, -1)
    kw = {"weight": class_weight, "ignore_index": ignore_index, "label_smoothing": label_smoothing}
    if not z_loss:
        loss = F.cross_entropy(z2, y1, reduction=reduction, **kw)
    else:
        valid = y1 != ignore_index
        tok = F.cross_entropy(z2, y1, reduction="none", **kw) + torch.where(valid, z_loss * lse**2, 0.0)
        if reduction == "none":
            loss = tok
        elif reduction == "sum":
            loss = tok.sum()
        else:
            w_t = valid.to(tok.dtype) if class_weight is None else class_weight[y1.clamp(min=0)] * valid
            loss = tok.sum() / w_t.sum()
    if reduction == "none":
        loss = loss.reshape(target.shape)
    return (loss, lse.reshape(target.shape)) if return_lse else loss
