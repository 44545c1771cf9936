r"""Fused linear cross-entropy: the loss of a language-model head without its N x V logits.

``linear_cross_entropy(hidden, weight, target)`` equals
``F.cross_entropy(F.linear(hidden, weight, bias), target, ...)`` but works chunk of tokens by chunk of
tokens with a float32 log-sum-exp, so its extra memory is ``O(chunk x V)``: the ``N x V`` logits, their
softmax and their gradient never exist. The chunked engine lives in :mod:`sigmax.torch._chunked`.

Recompute in backward, or gradients in forward? Measured on this project's 2-core CPU machine (float32,
forward+backward, 1 thread): at (N, d, V) = (1024, 512, 16000), computing the gradients inside the
forward pass took 0.87 s against 1.26 s for recomputing the logits in backward (-31%; median of 3,
``python benchmarks/linear_cross_entropy.py --modes --shape 1024,512,16000 --threads 1``; an earlier
in-process measurement of CPU time gave 0.73 s against 1.10 s with 128-token chunks). It saves one of
the four N x d x V matrix products and one pass of ``exp`` over N x V. So:

* ``reduction="mean"`` / ``"sum"`` (the upstream gradient is one number): the forward pass computes the
  gradients with upstream 1 and holds them (they are gradient-sized: N x d and V x d); backward scales
  them in place and hands them over. A second backward (``retain_graph=True``) recomputes instead, so
  it is still right.
* ``reduction="none"`` (a different upstream gradient per token, which cannot be factored out of the
  weight gradient ``sum_i g_i (p_i - y_i) h_i^T`` after the fact, the bug other fused losses have) and
  the gradient through ``return_lse``'s log-sum-exp: backward recomputes the logits chunk by chunk.
* no input needs a gradient (evaluation): forward only, nothing held.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from .._dispatch import torch_transform_active
from . import _chunked
from ._chunked import LinearSource, Spec, TokenPlan
from .triton import available as triton_available
from .triton import fused as triton_fused

__all__ = ["linear_cross_entropy"]

_REDUCTIONS = ("none", "mean", "sum")


def check_options(*, ignore_index, label_smoothing, reduction, z_loss, softcap, chunk_size) -> Spec:
    """Validate the options shared by every sigmax.torch cross-entropy; return a :class:`Spec`."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an integer, got {ignore_index!r}")
    if not (isinstance(label_smoothing, numbers.Real) and 0.0 <= float(label_smoothing) <= 1.0):
        raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if not (isinstance(z_loss, numbers.Real) and 0.0 <= float(z_loss) < float("inf")):
        raise ValueError(f"z_loss must be a finite number >= 0 (typically 1e-4), got {z_loss!r}")
    if softcap is not None and not (isinstance(softcap, numbers.Real) and 0.0 < float(softcap) < float("inf")):
        raise ValueError(f"softcap must be None or a positive finite number (Gemma-2 uses 30.0), got {softcap!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive integer (tokens per chunk), got {chunk_size!r}")
    return Spec(int(ignore_index), float(label_smoothing), reduction, float(z_loss),
                None if softcap is None else float(softcap))


def check_target(target: torch.Tensor, lead_shape, *, n_classes: int, ignore_index: int, device: torch.device,
                 what: str = "the vocabulary") -> torch.Tensor:
    """``target`` as a flat int64 tensor of class indices, checked against ``lead_shape`` and ``device``."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor of class indices, got {type(target).__name__}")
    if target.device != device:
        raise ValueError(f"target is on {target.device} but the logits are computed on {device}; "
                         f"move it with target.to({str(device)!r})")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target must hold integer class indices (dtype int64), got dtype {target.dtype}; "
            "probability (soft) targets are not supported by the fused loss"
        )
    if tuple(target.shape) != tuple(lead_shape):
        raise ValueError(
            f"target has shape {tuple(target.shape)} but the tokens have shape {tuple(lead_shape)}; "
            "give one class index per token (hidden's shape without its last axis)"
        )
    flat = target.reshape(-1).long()
    # Range check on CPU only: it needs the values on the host. On an accelerator it would be a
    # synchronisation; there the gather inside the loss raises its own device-side assertion.
    if flat.device.type == "cpu" and flat.numel():
        bad = (flat != ignore_index) & ((flat < 0) | (flat >= n_classes))
        if bool(bad.any()):
            value = int(flat[bad][0])
            raise ValueError(
                f"target holds class index {value}, outside [0, {n_classes}) for {what}; "
                f"use class indices in range, or {ignore_index} (ignore_index) for tokens to skip"
            )
    return flat


def _check_vector(x, n: int, name: str, ref: torch.Tensor) -> None:
    if x is None:
        return
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be None or a floating torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one entry per class), got {tuple(x.shape)}")
    if x.device != ref.device:
        raise ValueError(f"{name} is on {x.device} but hidden is on {ref.device}; move it to {ref.device}")


def check_linear(hidden, weight, bias, class_weight) -> None:
    """Shapes, dtypes and devices of a linear head ``hidden @ weight.T + bias``."""
    for name, x in (("hidden", hidden), ("weight", weight)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if hidden.ndim < 1:
        raise ValueError("hidden must have at least one axis (its last axis is the feature axis d)")
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"weight must have shape (V, d) = (vocabulary, {hidden.shape[-1]}) to match hidden's last "
            f"axis, got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype:
        raise TypeError(f"hidden is {hidden.dtype} but weight is {weight.dtype}; give both the same dtype")
    if weight.device != hidden.device:
        raise ValueError(f"hidden is on {hidden.device} but weight is on {weight.device}")
    _check_vector(bias, weight.shape[0], "bias", hidden)
    if bias is not None and bias.dtype != hidden.dtype:
        raise TypeError(f"bias is {bias.dtype} but hidden is {hidden.dtype}; give both the same dtype")
    _check_vector(class_weight, weight.shape[0], "class_weight", hidden)


# --------------------------------------------------------------------------------------------
# the chunked PyTorch implementation (any device)
# --------------------------------------------------------------------------------------------


class _LinearCrossEntropy(torch.autograd.Function):
    """Chunked linear cross-entropy on 2-D ``hidden`` (N, d) and 1-D int64 ``target`` (N,)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, class_weight, spec: Spec, chunk: int, in_forward: bool):
        ctx.set_materialize_grads(False)
        n_classes = weight.shape[0]
        src = LinearSource(hidden, weight, bias)
        cdt = src.cdt
        plan = TokenPlan.build(target, ignore_index=spec.ignore_index, start=0, n_cols=n_classes,
                               class_weight=class_weight, dtype=cdt)
        w_sum = float(n_classes) if class_weight is None else class_weight.to(cdt).sum()
        denom = plan.w_t.sum()  # the mean's denominator: sum of target class weights, a tensor (no sync)
        need = ctx.needs_input_grad[:3]
        coefficients = None
        if in_forward and spec.reduction != "none" and any(need):
            src.want_grads(*need)
            g = 1.0 / denom if spec.reduction == "mean" else torch.ones((), dtype=cdt, device=src.device)

            def coefficients(rows, lse_rows):
                return _chunked.grad_coefficients(spec, g, plan.valid[rows], plan.hit[rows], plan.w_t[rows],
                                                  lse_rows, w_sum, n_classes)

        mx, s, zt, zw = _chunked.stats_pass(src, plan, class_weight=class_weight, softcap=spec.softcap,
                                            smoothing=spec.label_smoothing > 0, chunk=chunk,
                                            coefficients=coefficients)
        lse = _chunked.local_lse(mx, s)
        tok = _chunked.token_losses(spec, plan.valid, plan.w_t, lse, zt, zw, w_sum, n_classes)
        loss = _chunked.reduce_losses(spec, tok, denom)
        ctx.spec, ctx.chunk = spec, chunk
        ctx.held = src.grads() if coefficients is not None else None
        ctx.save_for_backward(hidden, weight, bias, target, class_weight, lse, denom)
        return loss, lse  # in the compute dtype: linear_cross_entropy casts it (loss_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss, grad_lse):
        hidden, weight, bias, target, class_weight, lse, denom = ctx.saved_tensors
        spec, chunk = ctx.spec, ctx.chunk
        need = ctx.needs_input_grad[:3]
        n_classes = weight.shape[0]
        held, ctx.held = ctx.held, None  # used once: a second backward (retain_graph) recomputes
        src = LinearSource(hidden, weight, bias)
        plan = TokenPlan.build(target, ignore_index=spec.ignore_index, start=0, n_cols=n_classes,
                               class_weight=class_weight, dtype=src.cdt)
        if held is not None and grad_loss is not None:
            scale = grad_loss.to(src.cdt)
            grads = [None if x is None else x.mul_(scale) for x in held]  # in place: no second copy
            if grad_lse is not None:  # the log-sum-exp's own gradient: one recompute pass, added
                src.want_grads(*need)
                _chunked.grad_pass(src, plan, lse, grad_lse.to(src.cdt), None, None, class_weight=None,
                                   softcap=spec.softcap, chunk=chunk)
                grads = [g if a is None else g.add_(a) for g, a in zip(grads, src.grads())]
        else:
            if grad_loss is None and grad_lse is None:
                return (None,) * 8
            w_sum = float(n_classes) if class_weight is None else class_weight.to(src.cdt).sum()
            g = _chunked.upstream(spec, grad_loss, denom, lse)
            c, b, e = _chunked.grad_coefficients(spec, g, plan.valid, plan.hit, plan.w_t, lse, w_sum,
                                                 n_classes, grad_lse)
            src.want_grads(*need)
            _chunked.grad_pass(src, plan, lse, c, b, e, class_weight=class_weight, softcap=spec.softcap,
                               chunk=chunk)
            grads = src.grads()
        # bias has weight's dtype (checked); .to is free where the dtype already matches (float32)
        gh, gw, gb = (None if g is None else g.to(dt) for g, dt in zip(grads, (hidden.dtype, weight.dtype, weight.dtype)))
        return gh, gw, gb, None, None, None, None, None


def _torch_chunked(hidden, weight, bias, target, class_weight, spec: Spec, chunk: int, in_forward: bool = True):
    return _LinearCrossEntropy.apply(hidden, weight, bias, target, class_weight, spec, chunk, in_forward)


#: The dispatch point for device kernels: ``{device_type: kernel}``. A kernel takes the arguments of
#: :func:`_torch_chunked` (2-D hidden, 1-D int64 target, validated options) and returns the
#: differentiable ``(loss, lse)``, the loss in any floating dtype (best the compute dtype: the caller
#: casts it to ``loss_dtype``, so a float32 loss of half input keeps its precision). A Triton kernel for
#: CUDA registers here once it is tested on a GPU in CI; until then every device runs the chunked
#: PyTorch implementation, which is device-agnostic.
KERNELS: dict[str, Callable] = {}


_IMPLS = ("auto", "torch", "triton")
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _kernel(device: torch.device, impl: str = "auto", dtype: torch.dtype = torch.float32) -> Callable:
    """``impl="auto"``: an entry of :data:`KERNELS` for the device type if any, else the Triton kernel
    (:mod:`sigmax.torch.triton`) for float16/bfloat16/float32 CUDA tensors where Triton is installed
    (not inside ``torch.compile`` / functorch transforms), else the chunked PyTorch path."""
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if impl == "torch":
        return _torch_chunked
    if impl == "triton":
        return triton_fused  # raises a clear error off CUDA (outside TRITON_INTERPRET=1) or without Triton
    if device.type in KERNELS:
        return KERNELS[device.type]
    if (device.type == "cuda" and dtype in _TRITON_DTYPES and triton_available()
            and not torch_transform_active()):
        return triton_fused
    return _torch_chunked


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, *,
                         bias: torch.Tensor | None = None, class_weight: torch.Tensor | None = None,
                         ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean",
                         z_loss: float = 0.0, softcap: float | None = None, return_lse: bool = False,
                         chunk_size: int | None = None, loss_dtype: torch.dtype | None = None,
                         impl: str = "auto"):
    r"""Cross-entropy of a linear head, ``hidden @ weight.T + bias``, without materializing the logits.

    Equal to ``F.cross_entropy(F.linear(hidden, weight, bias), target, weight=class_weight,
    ignore_index=..., label_smoothing=..., reduction=...)`` (for ``hidden`` of shape ``(N, d)``), in
    values and gradients, plus two options of large-model training. With logits
    :math:`z_i = W h_i + b` (capped to :math:`\kappa \tanh(z_i / \kappa)` when ``softcap`` = :math:`\kappa`),
    :math:`\operatorname{lse}_i = \log\sum_j e^{z_{ij}}`, class weights :math:`w` and smoothing
    :math:`\varepsilon`, the loss of a non-ignored token is

    .. math::
        \ell_i = (1-\varepsilon)\, w_{y_i}\big(\operatorname{lse}_i - z_{i y_i}\big)
                 - \frac{\varepsilon}{V} \sum_j w_j \big(z_{ij} - \operatorname{lse}_i\big)
                 + \lambda_z \operatorname{lse}_i^2

    (:math:`\lambda_z` = ``z_loss``, PaLM's auxiliary loss that keeps the softmax normalizer near 1)
    and 0 for an ignored one. ``"mean"`` divides the sum by :math:`\sum_i w_{y_i}` over non-ignored
    tokens (their count without class weights), as PyTorch does.

    Args:
        hidden: ``(..., d)`` floating tensor (float32, float64, bfloat16 or float16).
        weight: ``(V, d)`` output projection, same dtype and device as ``hidden``.
        target: ``(...)`` integer class indices in ``[0, V)`` or ``ignore_index``.
        bias: optional ``(V,)`` bias of the projection.
        class_weight: optional ``(V,)`` weight per class (``F.cross_entropy``'s ``weight``); gets no gradient.
        ignore_index: target value of tokens that contribute neither loss nor gradient.
        label_smoothing: :math:`\varepsilon \in [0, 1]`, PyTorch's label smoothing (class-weighted too).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per token, shape of ``target``; each token's
            upstream gradient is applied to it, including for the weight gradient).
        z_loss: :math:`\lambda_z \ge 0`, added per non-ignored token (typically ``1e-4``).
        softcap: :math:`\kappa > 0` or ``None``: logits become :math:`\kappa\tanh(z/\kappa)` before the
            loss (Gemma-2 uses 30).
        return_lse: also return :math:`\operatorname{lse}` per token (shape of ``target``, float32 for
            half input; the accumulator's precision is kept on purpose). It is differentiable.
        chunk_size: tokens per chunk; default: about 2**21 logits per chunk (8 MiB in float32), at
            least 256 tokens (see ``sigmax.torch._chunked.MIN_CHUNK_ROWS``); the chunked path's only.
        loss_dtype: dtype of the returned loss; default ``hidden``'s. ``torch.float32`` with half
            input returns the float32 accumulator's value uncast (and takes a float32 upstream
            gradient), as Hugging Face's loss, which upcasts the logits, does.

        impl: ``"auto"`` (default: the Triton kernel for float16/bfloat16/float32 CUDA tensors where
            Triton is installed, the chunked PyTorch path otherwise), ``"torch"`` (always the chunked
            path) or ``"triton"`` (always the kernel of :mod:`sigmax.torch.triton`: an error on a CPU
            tensor unless ``TRITON_INTERPRET=1``, Triton's interpreter, and for float64).

    Returns:
        The loss in ``hidden``'s dtype or ``loss_dtype`` (a scalar, or per token for ``"none"``), and with
        ``return_lse=True`` the pair ``(loss, lse)``.

    Note:
        Every token ignored: ``"mean"`` gives NaN (0/0) and ``"sum"`` 0, with zero gradients, as
        PyTorch. Half-precision inputs are computed in float32 (logits, log-sum-exp and the weight
        gradient accumulated over all chunks), then cast back, so the result is closer to the exact
        value than the plain bfloat16 PyTorch expression. No host synchronisation happens inside
        the chunk loop (the range check of ``target`` runs once, on CPU tensors only). The gradient
        through ``weight``/``hidden``/``bias`` is first order only (no double backward).

    Example:
        >>> import torch, torch.nn.functional as F
        >>> from sigmax.torch import linear_cross_entropy
        >>> g = torch.Generator().manual_seed(0)
        >>> h = torch.randn(6, 4, generator=g, requires_grad=True)
        >>> W = torch.randn(10, 4, generator=g, requires_grad=True)
        >>> y = torch.tensor([1, 9, -100, 3, 0, 2])
        >>> loss = linear_cross_entropy(h, W, y, label_smoothing=0.1, chunk_size=4)
        >>> ref = F.cross_entropy(F.linear(h, W), y, label_smoothing=0.1)
        >>> torch.allclose(loss, ref)
        True
        >>> loss.backward(); (W.grad.shape, h.grad[2].abs().sum().item())
        (torch.Size([10, 4]), 0.0)
    """
    check_linear(hidden, weight, bias, class_weight)
    spec = check_options(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
                         z_loss=z_loss, softcap=softcap, chunk_size=chunk_size)
    lead = hidden.shape[:-1]
    n_classes, d = weight.shape
    flat_target = check_target(target, lead, n_classes=n_classes, ignore_index=spec.ignore_index,
                               device=hidden.device)
    h2 = hidden.reshape(-1, d)
    chunk = int(chunk_size) if chunk_size is not None else _chunked.default_chunk_rows(h2.shape[0], n_classes)
    if loss_dtype is not None and not (isinstance(loss_dtype, torch.dtype) and loss_dtype.is_floating_point):
        raise TypeError(f"loss_dtype must be None or a floating torch.dtype, got {loss_dtype!r}")
    loss, lse = _kernel(hidden.device, impl, hidden.dtype)(h2, weight, bias, flat_target, class_weight, spec,
                                                           chunk)
    loss = loss.to(hidden.dtype if loss_dtype is None else loss_dtype)  # free where the dtype matches
    if spec.reduction == "none":
        loss = loss.reshape(lead)
    if return_lse:
        return loss, lse.reshape(lead)
    return loss
