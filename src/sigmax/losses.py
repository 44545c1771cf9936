r"""Losses with the semantics of ``torch.nn.functional``, on every array library.

=====================================  =============================  ===================================
loss                                   input                          target
=====================================  =============================  ===================================
:func:`nll_loss`                       log-probabilities ``(N, C)``    class indices ``(N,)``
:func:`cross_entropy`                  logits ``(N, C)``               class indices ``(N,)`` or
                                                                      class probabilities ``(N, C)``
:func:`binary_cross_entropy`           probabilities, any shape       probabilities, same shape
:func:`binary_cross_entropy_with_logits`  logits, any shape            probabilities, same shape
:func:`sigmoid_focal_loss`             logits, any shape              probabilities, same shape
:func:`softmax_focal_loss`             logits ``(N, C)``               as :func:`cross_entropy`
=====================================  =============================  ===================================

Arguments and values are PyTorch's (``weight``, ``ignore_index=-100``, ``label_smoothing``,
``pos_weight``, ``reduction``, K-dimensional ``(N, C, d1, ..., dK)`` input, 1-D ``(C,)`` input), and the
focal losses are torchvision's. On top, ``axis=`` (alias ``dim=``) names the class axis, so
``(batch, sequence, vocabulary)`` logits need no transpose; the default is PyTorch's rule (axis 1, or
0 for 1-D input).

Every loss is written in terms of the primitives of :mod:`sigmax.activations` (``log_softmax``,
``log_sigmoid``): nothing here forms ``log(softmax(x))`` or re-derives ``exp(x - max)``. Inputs may be
NumPy arrays, PyTorch tensors (autograd gives PyTorch's gradients) or JAX arrays (``jax.grad``
works); results keep the input's array type, device and floating dtype, and float16/bfloat16 are
computed in float32.

Speed: on JAX each loss runs as one compiled function. On PyTorch tensors, after sigmax's
``log_softmax``, picking ``log p[n, y_n]`` and PyTorch's weighted mean are ``torch.nn.functional.nll_loss``
(selection and averaging, not a re-derived primitive), and ``binary_cross_entropy_with_logits`` makes as
few passes over memory as PyTorch's own, with an analytic backward. ``benchmarks/losses.py`` measures
both against ``torch.nn.functional`` and optax.

Where PyTorch is silent or cryptic, sigmax raises a ``ValueError``/``TypeError`` that names the
argument and the fix: class indices out of range (naming them), probability targets that are
negative or do not sum to 1, multi-hot targets given to a softmax loss, integer logits, shapes that do
not fit. These checks read values, so they step aside when any operand is traced (``jax.jit``, ``jax.grad``,
``vmap``, ``torch.compile``, ``torch.func``) or batched (PyTorch's batched gradients): there,
out-of-range indices are not detected.

PyTorch's transforms: ``torch.func.vmap``, ``grad``, ``jacrev``, ``jacfwd``, ``jvp`` and
``functional_call`` (per-sample gradients by ``vmap(grad(...))``) give the values and gradients the
same transforms give over ``torch.nn.functional``; batched gradients (``check_batched_grad=True``,
``torch.autograd.functional``'s ``vectorize=True``) pass through the kernels' backward passes, which
then run out-of-place torch operations. ``torch.compile(fullgraph=True)`` traces every loss without
a graph break (``tests/test_torch_func.py``).
Probability targets are accepted within the one tolerance rule
:func:`sigmax._tolerance.sum_tolerance` (rows rounded to 4 decimals pass; tiny negatives within it too).

Layout (docs/ARCHITECTURE.md): this module holds the public functions; the argument and target checks
are in :mod:`sigmax._loss_checks`, the arithmetic and the dispatch tables in :mod:`sigmax._losses_core`,
the torch-only paths in :mod:`sigmax._losses_torch`, the kernels in :mod:`sigmax._kernels`. Each call
runs through :func:`sigmax._dispatch.call` (``SIGMAX_TRACE_DISPATCH=1`` shows which path ran).

On NumPy input a reduced loss (``"mean"``, ``"sum"``) is a NumPy scalar (``np.float64``,
``np.float32``), as NumPy's own reductions return; PyTorch and JAX give 0-d arrays.
"""

from __future__ import annotations

from __future__ import annotations

import numbers
from typing import Any

from . import _loss_checks as ck
from array_api_compat import device as device_of
from ._array import finish
from ._array import quiet
from ._dispatch import call
from ._losses_core import REDUCTIONS
from . import _losses_jax  # noqa: F401  registers the JAX rows (optax's speed)

__all__ = [
    "REDUCTIONS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]


@quiet
def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean", *, axis: int | None = None, dim: int | None = None) -> Any:
    r"""The negative log-likelihood of class indices under given log-probabilities.

    .. math:: \ell_n = -w_{y_n} \log p_{n, y_n}, \qquad
              \text{mean} = \frac{\sum_{n: y_n \ne \text{ignore}} \ell_n}{\sum_{n: y_n \ne \text{ignore}} w_{y_n}}

    The same as ``torch.nn.functional.nll_loss``: pair it with :func:`sigmax.log_softmax` (or use
    :func:`cross_entropy`, which does both).

    Args:
        input: log-probabilities, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)`` (classes on
            ``axis``).
        target: integer class indices, input's shape without the class axis.
        weight: optional per-class weights, shape ``(C,)``.
        ignore_index: target value whose entries are skipped (loss 0, left out of the mean).
        reduction: ``"none"`` (one loss per entry), ``"mean"`` (weighted mean, as above) or ``"sum"``.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: a scalar, or target's shape for ``reduction="none"``; input's array type, device and
        floating dtype.

    Note:
        If every entry is ignored, ``"mean"`` is NaN (0/0) and ``"sum"`` is 0, as in PyTorch. Indices
        outside ``[0, C)`` other than ``ignore_index`` raise a ``ValueError`` naming them.

    Example:
        >>> import numpy as np, sigmax
        >>> logp = sigmax.log_softmax(np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]]), axis=1)
        >>> float(sigmax.nll_loss(logp, np.array([2, 0])).round(4))
        0.552
        >>> sigmax.nll_loss(logp, np.array([2, -100]), reduction="none").round(4)
        array([0.6997, 0.    ])
    """
    fn = "nll_loss"
    reduction = ck.check_reduction(reduction)
    ignore_index = ck.check_ignore_index(ignore_index, fn=fn)
    p = ck.float_input(input, fn=fn, what="log-probabilities")
    xp, x = p.xp, p.x
    ax = ck.class_axis(axis, dim, x.ndim, fn=fn)
    t, _ = ck.split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None,
                         allow_probs=False)
    ck.check_indices(xp, x, t, x.shape[ax], ignore_index, fn=fn)
    w = ck.class_weight(xp, weight, x, ax, fn=fn)
    out = call("cross_entropy_indices", xp, x, t, w, ax=ax, ignore_index=ignore_index, smoothing=0.0,
               reduction=reduction, from_logits=False)
    return finish(p, out)


@quiet
def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0, *, axis: int | None = None,
                  dim: int | None = None) -> Any:
    r"""The cross-entropy between the softmax of logits and a target: one true class per row.

    .. math:: \ell_n = -\sum_c w_c\, q_{n,c} \log \operatorname{softmax}(x_n)_c, \qquad
              q = (1 - \varepsilon)\, \text{target} + \varepsilon / C

    where the target is one-hot for class indices (``y_n``) or given class probabilities, and
    ``\varepsilon`` is ``label_smoothing``. Values and gradients are those of
    ``torch.nn.functional.cross_entropy``; ``log softmax`` comes from :func:`sigmax.log_softmax`, so
    logits of any size are safe.

    Args:
        input: logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; any class axis with
            ``axis=``, e.g. ``axis=-1`` for ``(batch, sequence, vocabulary)``.
        target: integer class indices (input's shape without the class axis) or class probabilities
            (input's shape, rows summing to 1).
        weight: optional per-class weights, shape ``(C,)``.
        ignore_index: class-index target value whose entries are skipped (index targets only).
        reduction: ``"none"``, ``"mean"`` or ``"sum"``. With class indices ``"mean"`` divides by the
            summed weight of the kept entries ``sum_n w[y_n]``; with probabilities by the number of rows
            (PyTorch's rules).
        label_smoothing: ``\varepsilon`` in [0, 1]: mix the target with the uniform distribution.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: a scalar, or input's shape without the class axis for ``reduction="none"``.

    Note:
        All entries ignored: ``"mean"`` is NaN, ``"sum"`` 0 (as PyTorch). With probability targets,
        a class of target probability 0 adds nothing even where its logit is ``-inf`` (PyTorch: NaN).
        Raises ``ValueError`` for indices out of range, negative or unnormalised probability targets,
        multi-hot targets (use :func:`binary_cross_entropy_with_logits`) and shapes that do not fit;
        ``TypeError`` for integer logits or float class indices.

    Example:
        >>> import numpy as np, sigmax
        >>> x = np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]])
        >>> float(sigmax.cross_entropy(x, np.array([2, 0])).round(4))
        0.552
        >>> float(sigmax.cross_entropy(x, np.array([2, 0]), label_smoothing=0.1).round(4))
        0.6236
        >>> float(sigmax.cross_entropy(x, np.array([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0]])).round(4))
        0.642
        >>> logits = np.zeros((2, 5, 10))  # (batch, sequence, vocabulary): no transpose needed
        >>> float(sigmax.cross_entropy(logits, np.zeros((2, 5), dtype=int), axis=-1).round(4))
        2.3026
    """
    fn = "cross_entropy"
    reduction = ck.check_reduction(reduction)
    ignore_index = ck.check_ignore_index(ignore_index, fn=fn)
    smoothing = ck.check_label_smoothing(label_smoothing, fn=fn)
    p = ck.float_input(input, fn=fn)
    xp, x = p.xp, p.x
    ax = ck.class_axis(axis, dim, x.ndim, fn=fn)
    t, probs = ck.split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None)
    w = ck.class_weight(xp, weight, x, ax, fn=fn)
    if probs:
        if ignore_index >= 0:
            raise ValueError(
                f"{fn}: ignore_index={ignore_index} applies to class-index targets only, but target has "
                f"input's shape (class probabilities); leave ignore_index at its default, or give "
                f"rows to skip zero weight by passing class indices"
            )
        dtypes = (t.dtype, p.out_dtype)
        t = ck.float_like(xp, t, x, name="target", fn=fn)
        ck.check_prob_targets(xp, x, t, ax, dtypes, fn=fn)
        out = call("cross_entropy_probs", xp, x, t, w, ax=ax, smoothing=smoothing, reduction=reduction)
    else:
        # checked first, always: the kernels (one pass over the logits forward, one backward) take
        # validated targets
        ck.check_indices(xp, x, t, x.shape[ax], ignore_index, fn=fn)
        out = call("cross_entropy_indices", xp, x, t, w, ax=ax, ignore_index=ignore_index, smoothing=smoothing,
                   reduction=reduction, from_logits=True)
    return finish(p, out)


# --------------------------------------------------------------------------------------------
# binary cross-entropy
# --------------------------------------------------------------------------------------------


@quiet
def binary_cross_entropy(input: Any, target: Any, weight: Any = None, reduction: str = "mean", *,
                         axis: int | None = None, dim: int | None = None) -> Any:
    r"""The binary cross-entropy of probabilities, elementwise, with PyTorch's clamp of the log at -100.

    .. math:: \ell = -w\,\bigl[y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\bigr]

    Prefer :func:`binary_cross_entropy_with_logits` on the logits: it is exact where ``p`` has
    rounded to 0 or 1. This one is ``torch.nn.functional.binary_cross_entropy``, for when only
    probabilities exist.

    Args:
        input: probabilities in [0, 1], any shape.
        target: probabilities in [0, 1] (0/1 labels or soft labels), input's shape.
        weight: optional rescaling weight broadcastable to input (e.g. one per class, aligned with the
            last axis, or along ``axis=``).
        reduction: ``"none"``, ``"mean"`` (over all entries; the weight does not enter the
            denominator) or ``"sum"``.
        axis: with a 1-D ``weight``, the axis it lies along (``dim=`` is an alias); default: NumPy
            broadcasting (the last axis).

    Returns:
        The loss: a scalar, or input's shape for ``reduction="none"``.

    Note:
        ``log(0)`` is clamped to -100 as in PyTorch, so ``p = 0`` with ``y = 1`` costs 100, not inf; at
        such saturated inputs the gradient is 0 (PyTorch's is ``±1e12``). Raises ``ValueError`` for
        inputs outside [0, 1] (they are logits: use :func:`binary_cross_entropy_with_logits`); NaN
        inputs propagate.

    Example:
        >>> import numpy as np, sigmax
        >>> p = np.array([0.9, 0.2, 0.6])
        >>> float(sigmax.binary_cross_entropy(p, np.array([1.0, 0.0, 1.0])).round(4))
        0.2798
        >>> sigmax.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="none")
        array([100., 100.])
    """
    fn = "binary_cross_entropy"
    reduction = ck.check_reduction(reduction)
    p = ck.float_input(input, fn=fn, what="probabilities")
    xp, x = p.xp, p.x
    if not ck.in_unit_interval(xp, x, target):
        raise ValueError(
            f"{fn}: input must hold probabilities in [0, 1], got {ck.range_text(x)}; if these are logits "
            f"use binary_cross_entropy_with_logits(input, target)"
        )
    y = ck.same_shape_target(xp, x, target, fn=fn)
    w = ck.elementwise_weight(xp, weight, x, axis, dim, fn=fn, name="weight")
    return finish(p, call("binary_cross_entropy", xp, x, y, w, reduction=reduction))


@quiet
def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, reduction: str = "mean",
                                     pos_weight: Any = None, *, axis: int | None = None,
                                     dim: int | None = None) -> Any:
    r"""The binary cross-entropy of logits, elementwise: one sigmoid per entry, never formed.

    .. math:: \ell = -w\,\bigl[p_w\, y \log\sigma(x) + (1 - y) \log\sigma(-x)\bigr]
              = -w\,\bigl[(1 + (p_w - 1) y) \log\sigma(|x|) - c\,|x|\bigr]

    with ``c = 1 - y`` for ``x > 0`` and ``c = p_w y`` otherwise: every term has the same sign, so the
    loss keeps its relative accuracy for any finite logit (``|x|`` up to 1e4 and beyond in float32),
    where ``log(sigmoid(x))`` gives ``-inf``. Values and gradients are those of
    ``torch.nn.functional.binary_cross_entropy_with_logits``. Use it for binary and multi-label tasks.

    On PyTorch tensors without ``pos_weight`` the first term is computed as ``max(x, 0) - x y`` (as
    many passes over memory as PyTorch's own): still exact for 0/1 targets at any logit, while for a
    soft target the product ``x y`` rounds, a relative error of about ``eps y / (1 - y)`` (PyTorch's
    formula has the same). When only the logits need a gradient, autograd records one node whose
    backward is the analytic ``w ((1 + (p_w - 1) y) sigmoid(x) - p_w y)`` (twice differentiable).

    Args:
        input: logits, any shape.
        target: probabilities in [0, 1] (0/1 labels or soft labels), input's shape.
        weight: optional rescaling weight broadcastable to input.
        reduction: ``"none"``, ``"mean"`` (over all entries) or ``"sum"``.
        pos_weight: optional weight ``p_w`` of the positive term, broadcastable to input: one per class
            (aligned with the last axis, or along ``axis=``). ``p_w > 1`` raises recall.
        axis: the class axis a 1-D ``weight``/``pos_weight`` lies along (``dim=`` is an alias); default:
            NumPy broadcasting (the last axis). For ``(N, C, H, W)`` pass ``axis=1``.

    Returns:
        The loss: a scalar, or input's shape for ``reduction="none"``.

    Note:
        Infinite logits take the limits: 0 where the sign agrees with the target (``x = +inf``,
        ``y = 1``; ``x = -inf``, ``y = 0``), ``+inf`` otherwise, with finite gradients (PyTorch gives
        NaN where the loss is 0). Targets outside [0, 1] raise a ``ValueError``.

    Example:
        >>> import numpy as np, sigmax
        >>> x, y = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 1.0])
        >>> float(sigmax.binary_cross_entropy_with_logits(x, y).round(4))
        0.3048
        >>> sigmax.binary_cross_entropy_with_logits(np.array([-1e4, 1e4], dtype=np.float32),
        ...                                          np.array([1.0, 1.0], dtype=np.float32), reduction="none")
        array([10000.,     0.], dtype=float32)
        >>> float(sigmax.binary_cross_entropy_with_logits(x, y, pos_weight=np.array(3.0)).round(4))
        0.7054
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = ck.check_reduction(reduction)
    p = ck.float_input(input, fn=fn)
    xp, x = p.xp, p.x
    y = ck.same_shape_target(xp, x, target, fn=fn)
    w = ck.elementwise_weight(xp, weight, x, axis, dim, fn=fn, name="weight")
    pw = ck.elementwise_weight(xp, pos_weight, x, axis, dim, fn=fn, name="pos_weight")
    # float32/64 CPU arrays without weights: the fused kernel (one pass forward, one backward)
    return finish(p, call("bce_with_logits", xp, x, y, w, pw, reduction=reduction))


@quiet
def sigmoid_focal_loss(inputs: Any, targets: Any, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> Any:
    r"""The focal loss of Lin et al. (2017) on binary logits, as ``torchvision.ops.sigmoid_focal_loss``.

    .. math:: \ell = \alpha_t\, (1 - p_t)^\gamma\, \operatorname{BCE}(x, y), \qquad
              1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x), \qquad
              \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    ``BCE`` is :func:`binary_cross_entropy_with_logits`, and ``sigma(±x)`` are the exponentials of
    its ``log_sigmoid`` terms, so nothing is formed from a rounded probability.

    Args:
        inputs: logits, any shape.
        targets: probabilities in [0, 1] (0/1 labels), inputs' shape.
        alpha: weight of the positive class in [0, 1]; a negative value (torchvision's ``-1``) turns the
            weighting off.
        gamma: focusing exponent >= 0 (0 gives the weighted binary cross-entropy).
        reduction: ``"none"`` (torchvision's default), ``"mean"`` or ``"sum"``.

    Returns:
        The loss: inputs' shape for ``"none"``, else a scalar.

    Note:
        Same values and gradients as torchvision for finite logits; exact for large ``|x|`` where
        torchvision's ``sigmoid`` rounds to 0 or 1.

    Example:
        >>> import numpy as np, sigmax
        >>> x, y = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 1.0])
        >>> sigmax.sigmoid_focal_loss(x, y).round(4)
        array([0.0005, 0.017 , 0.0169])
    """
    fn = "sigmoid_focal_loss"
    reduction = ck.check_reduction(reduction)
    g = ck.check_gamma(gamma, fn=fn)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or float(alpha) > 1:
        raise ValueError(f"{fn}: alpha must be a number <= 1 (a negative value turns it off), got {alpha!r}")
    p = ck.float_input(inputs, fn=fn, name="inputs")
    xp, x = p.xp, p.x
    y = ck.same_shape_target(xp, x, targets, fn=fn, name="inputs")
    return finish(p, call("sigmoid_focal_loss", xp, x, y, alpha=float(alpha), gamma=g, reduction=reduction))


@quiet
def softmax_focal_loss(input: Any, target: Any, alpha: Any = None, gamma: float = 2.0, reduction: str = "none",
                       *, ignore_index: int = -100, axis: int | None = None, dim: int | None = None) -> Any:
    r"""The multi-class focal loss on logits: cross-entropy down-weighted on well-classified rows.

    .. math:: \ell_n = -\sum_c \alpha_c\, q_{n,c}\, (1 - p_{n,c})^\gamma \log p_{n,c}, \qquad
              p = \operatorname{softmax}(x), \quad 1 - p = -\operatorname{expm1}(\log p)

    For class indices ``q`` is one-hot, so ``l_n = -alpha_{y_n} (1 - p_{n,y_n})^gamma log p_{n,y_n}``.
    ``log p`` is :func:`sigmax.log_softmax`; ``1 - p`` comes from ``expm1`` so it keeps its digits when
    ``p`` is close to 1.

    Args:
        input: logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dK)``; classes on ``axis``.
        target: class indices (input's shape without the class axis) or class probabilities (input's
            shape), as in :func:`cross_entropy`.
        alpha: ``None`` (no weighting), a number, or one weight per class (shape ``(C,)``).
        gamma: focusing exponent >= 0; ``gamma=0`` with ``alpha=None`` is :func:`cross_entropy`.
        reduction: ``"none"`` (default, like the focal losses of torchvision and kornia), ``"mean"``
            (over kept entries; ``alpha`` does not enter the denominator) or ``"sum"``.
        ignore_index: class-index target value whose entries are skipped.
        axis: the class axis (``dim=`` is an alias). Default: 1, or 0 for 1-D input.

    Returns:
        The loss: input's shape without the class axis for ``"none"``, else a scalar.

    Note:
        All entries ignored: ``"mean"`` is NaN, ``"sum"`` 0. Targets are checked as in
        :func:`cross_entropy`.

    Example:
        >>> import numpy as np, sigmax
        >>> x = np.array([[-0.3, -0.7, 0.2], [1.1, -0.7, 0.0]])
        >>> sigmax.softmax_focal_loss(x, np.array([2, 0])).round(4)
        array([0.1772, 0.0447])
        >>> float(sigmax.softmax_focal_loss(x, np.array([2, 0]), gamma=0.0, reduction="mean").round(4))
        0.552
    """
    fn = "softmax_focal_loss"
    reduction = ck.check_reduction(reduction)
    ignore_index = ck.check_ignore_index(ignore_index, fn=fn)
    g = ck.check_gamma(gamma, fn=fn)
    p = ck.float_input(input, fn=fn)
    xp, x = p.xp, p.x
    ax = ck.class_axis(axis, dim, x.ndim, fn=fn)
    t, probs = ck.split_target(xp, x, target, ax, fn=fn, axis_given=axis is not None or dim is not None)
    a = None
    if alpha is not None:
        if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool):
            a = xp.full((x.shape[ax],), float(alpha), dtype=x.dtype, device=device_of(x))
        else:
            a = ck.class_weight(xp, alpha, x, ax, fn=fn, name="alpha")
    if probs:
        if ignore_index >= 0:
            raise ValueError(f"{fn}: ignore_index={ignore_index} applies to class-index targets only, but "
                             f"target has input's shape (class probabilities)")
        dtypes = (t.dtype, p.out_dtype)
        t = ck.float_like(xp, t, x, name="target", fn=fn)
        ck.check_prob_targets(xp, x, t, ax, dtypes, fn=fn)
        out = call("softmax_focal_probs", xp, x, t, a, ax=ax, gamma=g, reduction=reduction)
    else:
        ck.check_indices(xp, x, t, x.shape[ax], ignore_index, fn=fn)
        out = call("softmax_focal_indices", xp, x, t, a, ax=ax, ignore_index=ignore_index, gamma=g,
                   reduction=reduction)
    return finish(p, out)


