r"""torchmetrics doors: sigmax's metrics as ``torchmetrics.Metric`` classes with fixed-size sum states.

Every class keeps **one** float64 state tensor, ``sums``, of a size fixed at construction (a few
sums, per-class confusion counts, per-bin counts and sums), registered with
``add_state("sums", ..., dist_reduce_fx="sum")``. Memory does not grow with the data, however many
``update`` calls, and a DDP sync is **one** all-reduce of that tensor (``dist_sync_fn`` defaults to
:func:`all_reduce_sum`; torchmetrics' default gathers every state from every rank). torchmetrics' own
``CalibrationError`` instead keeps every confidence seen.

.. math:: \mathrm{metric}(X_1 \cup \dots \cup X_k) = F\Big(\sum_j S(X_j)\Big)

``update(scores, labels, sample_weight=None)`` validates a batch with the one canonical-input layer
(:func:`sigmax._inputs.canonical`) and turns it into probabilities with
:func:`sigmax.metrics.prepare_canonical`, in float64 NumPy **on the CPU** (a tensor on a GPU is copied to
the host, one device sync per ``update``); the sums are then added to the state on the metric's device.
``compute()`` finishes them with the code of :mod:`sigmax.metrics`, so its values equal
:func:`sigmax.metrics.nll`, :func:`~sigmax.metrics.calibration_error`, ... on all the data at once (to
float64 rounding of the sums), over any split into batches and ranks.

Where torchmetrics' conventions and sigmax's differ, these classes follow torchmetrics':

* the class axis is ``axis=1`` (torchmetrics' ``(N, C, ...)`` scores with ``(N, ...)`` labels); pass
  ``axis=-1`` for ``(..., C)`` scores (sigmax's default);
* the number of classes is declared: ``num_classes`` (multiclass) or ``num_labels`` (multilabel);
* ``compute()`` returns tensors (float64, on the metric's device), NaN when nothing has been counted
  (``sigmax.metrics`` raises there; a training step whose batch is all ``ignore_index`` must not);
* ``forward`` returns the batch's value and adds the batch to the state, as every torchmetrics metric.

What stays sigmax's: the space of the scores is declared (``space="logits" | "probs" | "log_probs"``,
never guessed from value ranges as torchmetrics does), bins are ``(lo, hi]`` (torchmetrics' are
``[lo, hi)``; they differ only for a confidence exactly on an edge), and the MCE takes bins of at least
``min_bin_count`` samples (:data:`sigmax.metrics.DEFAULT_MIN_BIN_COUNT`; ``min_bin_count=1`` is
torchmetrics' ``norm="max"``).

Example:
    >>> import torch
    >>> from sigmax.torch.metrics import CalibrationError, NLL
    >>> ece, nll = CalibrationError("multiclass", num_classes=3), NLL("multiclass", num_classes=3)
    >>> g = torch.Generator().manual_seed(0)
    >>> for _ in range(3):
    ...     logits, labels = torch.randn(64, 3, generator=g), torch.randint(0, 3, (64,), generator=g)
    ...     ece.update(logits, labels); nll.update(logits, labels)
    >>> ece.sums.shape, round(float(nll.compute()), 4), round(float(ece.compute()), 4)
    (torch.Size([63]), 1.3626, 0.2404)

Needs ``torchmetrics`` (``pip install torchmetrics``, or the ``torchmetrics`` extra of sigmax).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import numpy as np
import torch

try:
    from torchmetrics import Metric
except ImportError as exc:  # the optional door: name the package to install
    raise ImportError("sigmax.torch.metrics needs torchmetrics: pip install torchmetrics "
                      "(or pip install 'sigmax[torchmetrics]')") from exc

from .._binning import (
    bin_sums,
    check_bins,
    check_min_bin_count,
    check_mode,
    check_norm,
    equal_width_edges,
    errors_from_sums,
    from_sums,
)
from .._inputs import canonical, spell, validate_ignore_index, validate_space, validate_task, validate_top_k
from .._metrics_terms import (
    check_average,
    brier_terms,
    class_column,
    classwise,
    confusion,
    decisions,
    mean_over_classes,
    nll_terms,
    prf_from_counts,
    top_label,
    topk_correct,
    weighted_sum,
)
from ..metrics import DEFAULT_MIN_BIN_COUNT, MetricData, Reliability, prepare_canonical

__all__ = [
    "NLL",
    "Accuracy",
    "Brier",
    "CalibrationError",
    "F1",
    "Precision",
    "PrecisionRecallF1",
    "Recall",
    "ReliabilityDiagram",
    "Summary",
    "all_reduce_sum",
]

_AVERAGES = ("micro", "macro", "weighted", None)


def all_reduce_sum(tensor: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """The sync of these metrics: one ``all_reduce(SUM)`` of the state (a ``dist_sync_fn`` for torchmetrics).

    torchmetrics stacks the list it gets back and applies ``dist_reduce_fx="sum"``, so a one-element
    list holding the reduced sum gives the sum over ranks without gathering every rank's copy.
    """
    out = tensor.clone()
    torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM, group=group)
    return [out]


def _columns(task: str, num_classes: Any, num_labels: Any) -> int:
    """The number of probability columns: 1 (binary), ``num_classes`` or ``num_labels``."""
    def positive(v, name):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
        return int(v)

    if task == "binary":
        if num_classes not in (None, 2) or num_labels is not None:
            raise ValueError("task='binary' has one score per sample: leave num_classes and num_labels None")
        return 1
    if task == "multiclass":
        if num_classes is None:
            raise ValueError("task='multiclass' needs num_classes (the state's size is fixed when it is built)")
        if num_labels is not None:
            raise ValueError("num_labels is for task='multilabel'; multiclass takes num_classes")
        c = positive(num_classes, "num_classes")
        if c < 2:
            raise ValueError(f"task='multiclass' needs num_classes >= 2, got {c}")
        return c
    n = num_labels if num_labels is not None else num_classes
    if n is None:
        raise ValueError("task='multilabel' needs num_labels (the state's size is fixed when it is built)")
    return positive(n, "num_labels")


class _SumMetric(Metric):
    """The shared machinery: a layout of named blocks in one flat float64 ``sums`` state."""

    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None
    #: the blocks every metric keeps: rows counted, rows (entries) ignored, "some term carried a weight"
    _always = ("n", "n_ignored", "weighted")

    def __init__(self, task: str, *, space: str = "logits", ignore_index: int | None = None,
                 num_classes: int | None = None, num_labels: int | None = None, axis: int = 1,
                 threshold: Any = None, **kwargs: Any):
        kwargs.setdefault("dist_sync_fn", all_reduce_sum)
        super().__init__(**kwargs)
        self.task = validate_task(task)
        self.space = validate_space(space)
        self.ignore_index = validate_ignore_index(ignore_index)
        self.num_columns = _columns(self.task, num_classes, num_labels)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"axis must be an integer (the class axis), got {axis!r}")
        self.axis = int(axis)
        if threshold is not None and self.task == "multiclass":
            raise ValueError(f"threshold does not apply to {spell('task', 'multiclass')} (decisions are the argmax); "
                             "leave it None")
        self.threshold = threshold
        self._offsets: dict[str, tuple[int, tuple[int, ...]]] = {}
        size = 0
        for name, shape in {**{b: () for b in self._always}, **self._blocks()}.items():
            self._offsets[name] = (size, shape)
            size += math.prod(shape)
        self.add_state("sums", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    # ---- what a subclass declares -------------------------------------------------------------

    def _blocks(self) -> dict[str, tuple[int, ...]]:
        """Block name -> shape of the sums this metric keeps (beyond :attr:`_always`)."""
        raise NotImplementedError

    def _finish(self) -> Any:
        """The metric from the (synced) sums; called only when some row was counted."""
        raise NotImplementedError

    def _empty(self) -> Any:
        return self._tensor(math.nan)

    # ---- the sums ---------------------------------------------------------------------------

    def _get(self, name: str) -> np.ndarray:
        start, shape = self._offsets[name]
        return self.sums[start:start + math.prod(shape)].detach().cpu().numpy().reshape(shape)

    def _tensor(self, value: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float64), device=self.sums.device)

    @property
    def n(self) -> int:
        """Rows (samples) counted so far (after a sync: on every rank)."""
        return int(self._get("n"))

    @property
    def n_ignored(self) -> int:
        """Rows (multilabel: entries) left out by ``ignore_index`` so far."""
        return int(self._get("n_ignored"))

    def _weighted(self) -> bool:
        return bool(self._get("weighted") > 0)

    def _weight(self, d: MetricData) -> float:
        """Total weight of the per-term metrics (rows for multiclass, entries otherwise)."""
        if d.w is not None:
            return float(np.sum(d.w))
        return float(d.n if d.task == "multiclass" else d.p.size)

    def _block(self, name: str, d: MetricData) -> Any:
        """The sums of block ``name`` for one prepared batch (``d.n > 0``)."""
        if name == "n":
            return d.n
        if name == "weighted":
            return float(d.w is not None)
        if name == "weight":
            return self._weight(d)
        if name == "nll":
            return weighted_sum(nll_terms(d), d.w)[0]
        if name == "brier":
            return weighted_sum(brier_terms(d), d.w)[0]
        if name == "correct":
            if d.task == "multiclass":
                return weighted_sum(topk_correct(d, getattr(self, "top_k", 1)).astype(np.float64), d.w)[0]
            return weighted_sum((decisions(d, self.threshold) == d.y).astype(np.float64), d.w)[0]
        if name == "top5":
            return weighted_sum(topk_correct(d, 5).astype(np.float64), d.w)[0]
        if name == "confusion":
            return np.stack(confusion(d, self.threshold))
        if name == "class_bins":
            _, count, wsum, sconf, sacc = classwise(d, self.n_bins)
            return np.stack([count, count if wsum is None else wsum, sconf, sacc])
        if name == "bins":
            return self._bins(d)
        raise KeyError(name)

    def _bins(self, d: MetricData, mode: str = "top_label", class_index: int | None = None) -> np.ndarray:
        """``(4, n_bins)``: count, weight, sum of confidence, sum of outcome (equal-width bins)."""
        if mode == "top_label":
            conf, out, w = top_label(d)
        elif class_index is not None:
            conf, out, w = class_column(d, class_index)
        else:  # every class pooled
            return self._block("class_bins", d).sum(axis=1)
        _, count, wsum, sconf, sacc = bin_sums(conf, out, self.n_bins, "equal_width", w)
        return np.stack([count, count if wsum is None else wsum, sconf, sacc])

    def _reliability(self, block: np.ndarray, min_bin_count: int) -> Reliability:
        count, wsum, sconf, sacc = block
        return from_sums(equal_width_edges(self.n_bins), np.rint(count).astype(np.int64),
                         wsum if self._weighted() else None, sconf, sacc, min_bin_count)

    # ---- torchmetrics' interface -------------------------------------------------------------

    def update(self, scores: torch.Tensor, labels: torch.Tensor, sample_weight: Any = None) -> None:
        """Add a batch: scores in the declared ``space``, labels, optionally one weight per sample."""
        c = canonical(scores, labels, self.task, axis=self.axis, ignore_index=self.ignore_index,
                      sample_weight=sample_weight, allow_empty=True)
        d = prepare_canonical(c, space=self.space)
        if self.task != "binary" and d.n_classes != self.num_columns:
            what = "num_classes" if self.task == "multiclass" else "num_labels"
            raise ValueError(f"this batch has {d.n_classes} classes on axis {self.axis} but the metric was built "
                             f"with {what}={self.num_columns} (torchmetrics' layout is (N, C, ...): pass axis=-1 "
                             "for scores with the classes last)")
        vec = np.zeros(self.sums.numel())
        start, _ = self._offsets["n_ignored"]
        vec[start] = d.n_ignored
        if d.n:
            for name, (start, shape) in self._offsets.items():
                if name != "n_ignored":
                    vec[start:start + math.prod(shape)] = np.asarray(self._block(name, d), dtype=np.float64).ravel()
        self.sums += torch.from_numpy(vec).to(self.sums.device)

    def compute(self) -> Any:
        """The metric of everything added so far (synced over ranks by torchmetrics before this runs)."""
        if self.n == 0:
            return self._empty()
        with np.errstate(divide="ignore", invalid="ignore"):  # every sample weight 0: NaN, as an empty metric
            return self._finish()


# --------------------------------------------------------------------------------------------
# proper scores and accuracy
# --------------------------------------------------------------------------------------------


class NLL(_SumMetric):
    """The mean negative log-likelihood, :func:`sigmax.metrics.nll` (binary/multilabel: per entry).

    State: 5 float64 numbers whatever the number of classes.

    Example:
        >>> import torch
        >>> m = NLL("binary", space="probs")
        >>> m.update(torch.tensor([0.9, 0.2]), torch.tensor([1, 0]))
        >>> round(float(m.compute()), 6)
        0.164252
    """

    higher_is_better = False

    def _blocks(self):
        return {"weight": (), "nll": ()}

    def _finish(self):
        return self._tensor(self._get("nll") / self._get("weight"))


class Brier(_SumMetric):
    """The Brier score, :func:`sigmax.metrics.brier` (multiclass: Brier's sum over classes, in [0, 2]).

    Example:
        >>> import torch
        >>> m = Brier("multiclass", space="probs", num_classes=3)
        >>> m.update(torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([0]))
        >>> round(float(m.compute()), 4)
        0.14
    """

    higher_is_better = False

    def _blocks(self):
        return {"weight": (), "brier": ()}

    def _finish(self):
        return self._tensor(self._get("brier") / self._get("weight"))


class Accuracy(_SumMetric):
    """The fraction of correct decisions, :func:`sigmax.metrics.accuracy` (``top_k`` for multiclass;
    binary and multilabel: ``p > threshold`` per entry, one minus the Hamming loss).

    Example:
        >>> import torch
        >>> m = Accuracy("multiclass", space="probs", num_classes=3, top_k=2)
        >>> m.update(torch.tensor([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]]), torch.tensor([2, 0]))
        >>> float(m.compute())
        1.0
    """

    higher_is_better = True

    def __init__(self, task: str, *, top_k: int = 1, **kwargs: Any):
        super().__init__(task, **kwargs)
        if self.task == "multiclass":
            self.top_k = validate_top_k(top_k, self.num_columns)  # the one rule, shared with interpret
        elif isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k == 1:
            self.top_k = 1
        else:
            raise ValueError(f"{spell('top_k', top_k)} applies to {spell('task', 'multiclass')} only; binary and "
                             "multilabel accuracy compare thresholded decisions")

    def _blocks(self):
        return {"weight": (), "correct": ()}

    def _finish(self):
        return self._tensor(self._get("correct") / self._get("weight"))


# --------------------------------------------------------------------------------------------
# precision / recall / F1 from confusion counts
# --------------------------------------------------------------------------------------------


class PrecisionRecallF1(_SumMetric):
    """Precision, recall and F1, :func:`sigmax.metrics.precision_recall_f1`: ``compute()`` returns
    ``{"precision": ..., "recall": ..., "f1": ...}`` (tensors; per-class with ``average=None``).

    State: ``3 x C`` weighted confusion counts (TP, FP, FN per class; binary: of the positive class).

    Example:
        >>> import torch
        >>> m = PrecisionRecallF1("multilabel", space="probs", num_labels=2, average="macro")
        >>> m.update(torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.1, 0.6]]), torch.tensor([[1, 0], [0, 1], [0, 1]]))
        >>> {k: round(float(v), 4) for k, v in m.compute().items()}
        {'precision': 0.75, 'recall': 1.0, 'f1': 0.8333}
    """

    higher_is_better = True
    _key: str | None = None  # a subclass that returns one of the three

    def __init__(self, task: str, *, average: str | None = "micro", **kwargs: Any):
        super().__init__(task, **kwargs)
        average = check_average(average, _AVERAGES)
        self.average = "micro" if self.task == "binary" and average is not None else average

    def _blocks(self):
        return {"confusion": (3, self.num_columns)}

    def _finish(self):
        tp, fp, fn = self._get("confusion")
        out = {k: self._tensor(v) for k, v in prf_from_counts(tp, fp, fn, self.average).items()}
        return out if self._key is None else out[self._key]

    def _empty(self):
        shape = (self.num_columns,) if self.average is None else ()
        out = {k: self._tensor(np.full(shape, np.nan)) for k in ("precision", "recall", "f1")}
        return out if self._key is None else out[self._key]


class F1(PrecisionRecallF1):
    """F1 alone (``2 TP / (2 TP + FP + FN)``), as :class:`PrecisionRecallF1`."""

    _key = "f1"


class Precision(PrecisionRecallF1):
    """Precision alone (``TP / (TP + FP)``), as :class:`PrecisionRecallF1`."""

    _key = "precision"


class Recall(PrecisionRecallF1):
    """Recall alone (``TP / (TP + FN)``), as :class:`PrecisionRecallF1`."""

    _key = "recall"


# --------------------------------------------------------------------------------------------
# calibration error and reliability data
# --------------------------------------------------------------------------------------------


def _check_binning(n_bins: Any, binning: str) -> int:
    n_bins, binning = check_bins(n_bins, binning)
    if binning != "equal_width":
        raise ValueError("a streaming metric bins with binning='equal_width' only: equal-mass bins depend on all "
                         "the data at once (use sigmax.metrics.calibration_error on the whole set)")
    return n_bins


class CalibrationError(_SumMetric):
    """Calibration error, :func:`sigmax.metrics.calibration_error`: ECE (``norm="l1"``), MCE (``"max"``,
    over bins of at least ``min_bin_count`` samples, NaN when none) or RMS (``"l2"``), top-label or
    classwise (the mean over classes; binary: the positive class, torchmetrics' ``BinaryCalibrationError``).

    State: ``4 x n_bins`` float64 sums (count, weight, confidence, outcome per bin), ``4 x C x n_bins``
    for ``mode="classwise"`` — never one entry per prediction.

    Example:
        >>> import torch
        >>> m = CalibrationError("multiclass", space="probs", num_classes=2, norm="max", min_bin_count=1)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), torch.tensor([0, 1, 1, 1]))
        >>> round(float(m.compute()), 4)
        0.8
    """

    higher_is_better = False

    def __init__(self, task: str, *, n_bins: int = 15, norm: str = "l1", mode: str = "top_label",
                 min_bin_count: int = DEFAULT_MIN_BIN_COUNT, binning: str = "equal_width", **kwargs: Any):
        self.n_bins = _check_binning(n_bins, binning)
        self.norm, self.mode = check_norm(norm), check_mode(mode)
        self.min_bin_count = check_min_bin_count(min_bin_count)
        super().__init__(task, **kwargs)

    def _blocks(self):
        if self.mode == "top_label":
            return {"bins": (4, self.n_bins)}
        return {"class_bins": (4, self.num_columns, self.n_bins)}

    def _finish(self):
        if self.mode == "top_label":
            return self._tensor(self._reliability(self._get("bins"), self.min_bin_count).error(self.norm))
        count, wsum, sconf, sacc = self._get("class_bins")
        errs = errors_from_sums(np.rint(count).astype(np.int64), wsum if self._weighted() else None, sconf, sacc,
                                self.norm, self.min_bin_count)
        return self._tensor(mean_over_classes(errs, self.norm))


class _Box:
    """Carries a :class:`Reliability` through torchmetrics' compute wrapper, which refuses frozen dataclasses."""

    __slots__ = ("value",)

    def __init__(self, value: Reliability):
        self.value = value


class ReliabilityDiagram(_SumMetric):
    """Reliability-diagram data, :func:`sigmax.metrics.reliability`: ``compute()`` returns a
    :class:`sigmax.metrics.Reliability` (NumPy per-bin confidence, accuracy and count; its ``ece`` and
    ``mce``), for a plot or a table at the end of an epoch.

    Example:
        >>> import torch
        >>> m = ReliabilityDiagram("binary", space="probs", n_bins=2, mode="classwise", min_bin_count=2)
        >>> m.update(torch.tensor([0.9, 0.8, 0.3, 0.2]), torch.tensor([1, 0, 0, 0]))
        >>> r = m.compute()
        >>> r.count.tolist(), r.accuracy.tolist(), round(r.ece, 4)
        ([2, 2], [0.0, 0.5], 0.3)
    """

    def __init__(self, task: str, *, n_bins: int = 15, mode: str = "top_label", class_index: int | None = None,
                 min_bin_count: int = DEFAULT_MIN_BIN_COUNT, binning: str = "equal_width", **kwargs: Any):
        self.n_bins = _check_binning(n_bins, binning)
        self.mode = check_mode(mode)
        self.min_bin_count = check_min_bin_count(min_bin_count)
        super().__init__(task, **kwargs)
        if class_index is not None:
            c = self.num_columns
            if self.mode != "classwise":
                raise ValueError("class_index applies to mode='classwise' only")
            if self.task == "binary":
                raise ValueError(f"class_index does not apply to {spell('task', 'binary')} "
                                 "(classwise is the positive class)")
            if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral) \
                    or not -c <= class_index < c:
                raise ValueError(f"class_index must be an integer in 0..{c - 1}, got {class_index!r}")
            class_index = int(class_index) % c
        self.class_index = class_index

    def _blocks(self):
        return {"bins": (4, self.n_bins)}

    def _block(self, name, d):
        if name == "bins":
            return self._bins(d, self.mode, self.class_index)
        return super()._block(name, d)

    def _finish(self):
        return _Box(self._reliability(self._get("bins"), self.min_bin_count))

    def _empty(self):
        return self._finish()  # zero counts, NaN confidence and accuracy in every bin

    def _wrap_compute(self, compute):
        # torchmetrics wraps compute (sync, cache, squeeze) in __init__ and again after unpickling; its
        # squeeze walks dataclasses and cannot rebuild a frozen one, so the record travels boxed
        wrapped = super()._wrap_compute(compute)

        @functools.wraps(wrapped)
        def unboxed(*args, **kwargs):
            out = wrapped(*args, **kwargs)
            return out.value if isinstance(out, _Box) else out

        return unboxed


# --------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------


class Summary(_SumMetric):
    """The standard metrics in one dict, :func:`sigmax.metrics.summary` (the keys of
    :class:`sigmax.metrics.MetricAccumulator`), as tensors: for ``self.log_dict(metric)`` in Lightning.

    State: a few sums, ``3 x C`` confusion counts, ``4 x n_bins`` top-label and ``4 x C x n_bins``
    class-wise bin sums.
    """

    def __init__(self, task: str, *, n_bins: int = 15, min_bin_count: int = DEFAULT_MIN_BIN_COUNT, **kwargs: Any):
        self.n_bins = _check_binning(n_bins, "equal_width")
        self.min_bin_count = check_min_bin_count(min_bin_count)
        super().__init__(task, **kwargs)

    def _top5(self) -> bool:
        return self.task == "multiclass" and self.num_columns > 5

    def _blocks(self):
        blocks = {"weight": (), "nll": (), "brier": (), "correct": ()}
        if self._top5():
            blocks["top5"] = ()
        return {**blocks, "confusion": (3, self.num_columns), "bins": (4, self.n_bins),
                "class_bins": (4, self.num_columns, self.n_bins)}

    def _keys(self) -> list[str]:
        keys = ["nll", "brier", "accuracy"] + (["top5_accuracy"] if self._top5() else [])
        keys += ["ece", "mce", "rmsce", "classwise_ece"]
        if self.task == "multiclass":
            return keys + ["f1_macro"]
        return keys + ["f1_micro", "f1_macro", "precision_micro", "recall_micro"]

    def _finish(self):
        weight = self._get("weight")
        out = {"nll": self._get("nll") / weight, "brier": self._get("brier") / weight,
               "accuracy": self._get("correct") / weight}
        if self._top5():
            out["top5_accuracy"] = self._get("top5") / weight
        rel = self._reliability(self._get("bins"), self.min_bin_count)
        out.update(ece=rel.error("l1"), mce=rel.error("max"), rmsce=rel.error("l2"))
        count, wsum, sconf, sacc = self._get("class_bins")
        out["classwise_ece"] = float(np.mean(errors_from_sums(np.rint(count).astype(np.int64),
                                                              wsum if self._weighted() else None, sconf, sacc, "l1")))
        tp, fp, fn = self._get("confusion")
        if self.task == "multiclass":
            out["f1_macro"] = prf_from_counts(tp, fp, fn, "macro")["f1"]
        else:
            micro = prf_from_counts(tp, fp, fn, "micro")
            out["f1_micro"] = micro["f1"]
            out["f1_macro"] = prf_from_counts(tp, fp, fn, "macro")["f1"] if self.task == "multilabel" else micro["f1"]
            out["precision_micro"], out["recall_micro"] = micro["precision"], micro["recall"]
        return {k: self._tensor(out[k]) for k in self._keys()}

    def _empty(self):
        return {k: self._tensor(math.nan) for k in self._keys()}
