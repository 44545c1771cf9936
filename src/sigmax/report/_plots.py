"""The report's figures, drawn with matplotlib's Agg backend (no display needed) and returned as PNG bytes.

Every function takes the plain data of :mod:`sigmax.report._data` and returns ``bytes`` of a PNG, so the
HTML can inline them and the same bytes can be written beside it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from .._format import format_number
from ._data import Histogram, ThresholdCurves
from ._format import mce_text

__all__ = ["COLORS", "classwise_png", "ranking_png", "draw_figures", "figure_keys", "histogram_png", "reliability_label",
           "reliability_png", "threshold_curves_png"]

#: one palette for the whole report (also used by the HTML)
COLORS = {
    "before": "#e4572e",
    "after": "#2a7ab0",
    "ideal": "#6b7280",
    "gap": "#f2a541",
    "good": "#3aa17e",
    "bad": "#d1495b",
    "f1": "#1f2937",
    "precision": "#2a7ab0",
    "recall": "#e4572e",
    "grid": "#e5e7eb",
}

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9ca3af",
    "axes.grid": True,
    "grid.color": COLORS["grid"],
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


def reliability_label(rel) -> str:
    """The ECE and MCE written on a reliability panel; an undefined MCE (NaN: no bin holds
    ``rel.min_bin_count`` rows) reads ``n/a``, never ``nan``.

    Example:
        >>> from types import SimpleNamespace as R
        >>> print(reliability_label(R(ece=0.0412, mce=float("nan"), min_bin_count=10)))
        ECE 0.0412
        MCE n/a (no bin with ≥ 10 rows)
    """
    return f"ECE {format_number(float(rel.ece))}\nMCE {mce_text(rel.mce, getattr(rel, 'min_bin_count', 10))}"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)  # never needs a display; a no-op if Agg is already set
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _plt().close(fig)
    return buf.getvalue()


def _reliability_panel(ax, cax, rel, title: str, color: str, xlabel: str, lo_x: float) -> None:
    edges = np.asarray(rel.bin_edges)
    width = edges[1] - edges[0]
    centers = edges[:-1] + width / 2
    ok = rel.count > 0
    ax.plot([0, 1], [0, 1], ls="--", color=COLORS["ideal"], lw=1.2, label="perfectly calibrated", zorder=3)
    ax.bar(centers[ok], rel.accuracy[ok], width=width * 0.92, color=color, alpha=0.88, edgecolor="white",
           lw=0.6, label="accuracy in bin", zorder=2)
    # the gap between what the model claims (mean confidence) and what happens (accuracy)
    lo = np.minimum(rel.accuracy[ok], rel.confidence[ok])
    ax.bar(centers[ok], np.abs(rel.confidence[ok] - rel.accuracy[ok]), bottom=lo, width=width * 0.92,
           color=COLORS["gap"], alpha=0.45, edgecolor=COLORS["gap"], lw=0.8, label="gap to confidence", zorder=2)
    ax.scatter(rel.confidence[ok], rel.accuracy[ok], s=12 + 70 * np.sqrt(rel.count[ok] / max(rel.count.max(), 1)),
               color="white", edgecolor="#111827", lw=0.8, zorder=4, label="(mean confidence, accuracy)")
    ax.set_xlim(lo_x, 1)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(title, loc="left")
    ax.tick_params(labelbottom=False)
    ax.text(0.04, 0.95, reliability_label(rel), transform=ax.transAxes, va="top", ha="left",
            fontsize=10, family="DejaVu Sans Mono",
            bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": "#d1d5db"})
    # how many samples each bin holds (log scale): a bin of 3 samples says little
    cax.bar(centers[ok], rel.count[ok], width=width * 0.92, color=color, alpha=0.55)
    cax.set_yscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter

    cax.yaxis.set_major_locator(LogLocator(base=10, numticks=4))
    cax.yaxis.set_minor_formatter(NullFormatter())
    cax.set_xlim(lo_x, 1)
    cax.set_ylabel("count", fontsize=8.5)
    cax.tick_params(axis="y", labelsize=7.5)
    cax.set_xlabel(xlabel)


def reliability_png(before, after=None, *, binary_like: bool = False, labels=("Before calibration",
                    "After calibration")) -> bytes:
    """Reliability diagrams side by side, before and after calibration: accuracy per confidence bin
    (``sigmax.metrics.Reliability`` data) above the number of samples per bin."""
    plt = _plt()
    xlabel = "confidence" + (" of p > 0.5 decisions, max(p, 1-p)" if binary_like else " (top-label probability)")
    lo_x = 0.5 if binary_like else 0.0  # binary decisions are never less than 50% confident
    with plt.rc_context(_RC):
        n = 2 if after is not None else 1
        fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 5.6), squeeze=False, sharex="col",
                                 gridspec_kw={"height_ratios": [4, 1], "hspace": 0.06, "wspace": 0.22,
                                              "left": 0.09 if n == 2 else 0.16, "right": 0.98,
                                              "top": 0.86, "bottom": 0.1})
        _reliability_panel(axes[0, 0], axes[1, 0], before, labels[0], COLORS["before"], xlabel, lo_x)
        if after is not None:
            _reliability_panel(axes[0, 1], axes[1, 1], after, labels[1], COLORS["after"], xlabel, lo_x)
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=2 if n == 2 else 1, fontsize=8.5,
                   bbox_to_anchor=(0.5, 1.0))
        return _png(fig)


def _hist_panel(ax, hist: Histogram, title: str, color: str, binary_like: bool) -> None:
    edges = hist.edges
    right, wrong = hist.groups["right"], hist.groups["wrong"]
    total = max(int(right.sum() + wrong.sum()), 1)
    ax.stairs(right / total, edges, fill=True, color=COLORS["good"], alpha=0.55, label="right")
    ax.stairs(wrong / total, edges, fill=True, color=COLORS["bad"], alpha=0.6, label="wrong")
    ax.stairs(right / total, edges, color=COLORS["good"], lw=1.2)
    ax.stairs(wrong / total, edges, color=COLORS["bad"], lw=1.2)
    ax.set_yscale("log")
    ax.set_ylim(0.5 / total, 1.5)
    if np.isfinite(hist.mean_confidence):
        ax.axvline(hist.mean_confidence, color=color, lw=2.2, label=f"mean confidence {hist.mean_confidence:.3f}")
    if np.isfinite(hist.accuracy):
        ax.axvline(hist.accuracy, color="#111827", lw=1.6, ls="--",
                   label=("accuracy of p > 0.5" if binary_like else "accuracy") + f" {hist.accuracy:.3f}")
    ax.set_xlim(0.5 if binary_like else 0, 1)
    ax.set_xlabel("confidence" + (" max(p, 1-p)" if binary_like else " (top-label probability)"))
    ax.set_ylabel("fraction of " + ("decisions" if binary_like else "samples") + " (log scale)")
    ax.set_title(title, loc="left")
    ax.legend(loc="upper left", fontsize=8)


def histogram_png(before: Histogram, after: Histogram | None = None, *, binary_like: bool = False,
                  labels=("Before calibration", "After calibration")) -> bytes:
    """How confident the decisions are, split into right (green) and wrong (red), before and after."""
    plt = _plt()
    with plt.rc_context(_RC):
        n = 2 if after is not None else 1
        fig, axes = plt.subplots(1, n, figsize=(4.7 * n, 3.7), squeeze=False, sharey=True)
        _hist_panel(axes[0, 0], before, labels[0], COLORS["before"], binary_like)
        if after is not None:
            _hist_panel(axes[0, 1], after, labels[1], COLORS["after"], binary_like)
        fig.tight_layout()
        return _png(fig)


def classwise_png(before: np.ndarray, after: np.ndarray | None, names: Sequence[str], *, top: int = 20) -> bytes:
    """One-vs-rest calibration error per class (the worst ``top`` classes before calibration)."""
    plt = _plt()
    before = np.asarray(before, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(before, nan=-1.0), kind="stable")[:top]
    order = order[::-1]  # largest at the top of a horizontal bar chart
    y = np.arange(len(order))
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, 0.9 + 0.32 * len(order)))
        h = 0.4 if after is not None else 0.7
        ax.barh(y + (h / 2 if after is not None else 0), before[order], height=h, color=COLORS["before"],
                alpha=0.9, label="before")
        if after is not None:
            ax.barh(y - h / 2, np.asarray(after)[order], height=h, color=COLORS["after"], alpha=0.9, label="after")
        ax.set_yticks(y, [str(names[i]) for i in order])
        ax.set_xlabel("class-wise ECE (one-vs-rest, lower is better)")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
        fig.tight_layout()
        return _png(fig)


def threshold_curves_png(curves: ThresholdCurves, names: Sequence[str]) -> bytes:
    """Small multiples: precision, recall and F1 against the decision threshold, one panel per class."""
    plt = _plt()
    k = len(curves.classes)
    cols = min(4, k)
    rows = int(np.ceil(k / cols))
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.55 * rows), squeeze=False, sharex=True,
                                 sharey=True)
        t = curves.thresholds
        for i, c in enumerate(curves.classes):
            ax = axes[i // cols, i % cols]
            ax.plot(t, curves.precision[i], color=COLORS["precision"], lw=1.3, label="precision")
            ax.plot(t, curves.recall[i], color=COLORS["recall"], lw=1.3, label="recall")
            ax.plot(t, curves.f1[i], color=COLORS["f1"], lw=2.2, label="F1")
            ax.axvline(0.5, color=COLORS["ideal"], lw=0.9, ls=":")
            title = f"{names[c]}  (n+={int(curves.support[i])})"
            if curves.chosen is not None and np.isfinite(curves.chosen[i]):
                tc = float(curves.chosen[i])
                j = min(int(tc * len(t)), len(t) - 1)
                ax.axvline(tc, color=COLORS["good"], lw=1.6, ls="--")
                ax.plot([tc], [curves.f1[i][j]], "o", color=COLORS["good"], ms=5, zorder=5)
                title += f"\nt={tc:.2f}  F1={curves.f1[i][j]:.3f}"
            ax.set_title(title, loc="left", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            if i // cols == rows - 1:
                ax.set_xlabel("threshold")
        for j in range(k, rows * cols):
            axes[j // cols, j % cols].axis("off")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.0 + 0.02 / rows))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / rows))
        return _png(fig)


def ranking_png(before, after=None, *, most: int = 8) -> bytes:
    """ROC (left) and precision-recall (right) curves of ``RankingCurves``: one line per class (at most
    ``most``); binary: before (dashed) and after (solid)."""
    plt = _plt()
    cur = after if after is not None else before
    k = min(len(cur.classes), most)
    palette = plt.get_cmap("tab10")
    with plt.rc_context(_RC):
        fig, (roc, pr) = plt.subplots(1, 2, figsize=(9.4, 4.0))
        sides = ((before, "--", "before"), (after, "-", "after")) if len(cur.classes) == 1 else ((cur, "-", ""),)
        for curves, ls, side in sides:
            if curves is None:
                continue
            for i in range(k):
                color = (COLORS["before"] if side == "before" else COLORS["after"]) if side else palette(i % 10)
                name = side if side else str(curves.names[i])
                roc.plot(curves.fpr[i], curves.tpr[i], color=color, lw=1.5, ls=ls,
                         label=f"{name} (AUROC {format_number(float(curves.auc[i]), 3)})")
                pr.plot(curves.recall[i], curves.precision[i], color=color, lw=1.5, ls=ls, drawstyle="steps-post",
                        label=f"{name} (AP {format_number(float(curves.ap[i]), 3)})")
        roc.plot([0, 1], [0, 1], ls=":", color=COLORS["ideal"], lw=1)
        if len(cur.classes) == 1:
            pr.axhline(float(cur.prevalence[0]), ls=":", color=COLORS["ideal"], lw=1)
        for ax, xl, yl, title in ((roc, "false positive rate", "true positive rate", "ROC"),
                                  (pr, "recall", "precision", "Precision-recall")):
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(title, loc="left")
            ax.legend(loc="lower right" if ax is roc else "lower left", fontsize=7.5)
        fig.tight_layout()
        return _png(fig)


# ------------------------------------------------------------------ the report's figures, with their captions
def figure_keys(rep) -> list[str]:
    """The figures a report shows, in order (``rep`` is a :class:`sigmax.report.Report`)."""
    keys = ["reliability", "confidence"]
    if rep.task != "binary" and rep.before.classwise_ece is not None:
        keys.append("classwise")  # binary: the one positive column is the reliability diagram already
    if (rep.after or rep.before).curves is not None:
        keys.append("thresholds")
    if rep.before.extra.get("ranking") is not None:
        keys.append("ranking")
    return keys


def _caption_reliability(rep) -> str:
    what = ("for every (sample, class) decision p > 0.5, its confidence max(p, 1 - p) against how often "
            "it is right" if rep.task != "multiclass" else
            "the confidence of the predicted class against how often it is right")
    return (f"Bars show, per confidence bin, {what}; a calibrated model sits on the dashed diagonal. "
            "Shaded: the gap between claimed and observed confidence. ECE is the count-weighted mean gap "
            f"(the table's ECE); MCE is the largest gap over bins of at least {rep.min_bin_count:,} rows "
            "(the lower panel counts the rows per bin).")


def _caption_confidence(rep) -> str:
    return ("How confident the decisions are, split into right (green) and wrong (red). When the mean "
            "confidence line sits right of the accuracy line the model is over-confident; calibration "
            "moves them together.")


def _caption_classwise(rep) -> str:
    return "One-vs-rest ECE of each class's probability (the worst 20 before calibration)."


def _caption_thresholds(rep) -> str:
    curves = (rep.after or rep.before).curves
    which = "after calibration" if rep.after is not None else "as given"
    tuned = (" The green dashed line marks the tuned threshold, the dotted line 0.5."
             if curves.chosen is not None else " The dotted line marks 0.5.")
    most = (f" The {len(curves.classes)} classes with most positives are shown."
            if rep.task != "binary" and len(curves.classes) < rep.n_classes else "")
    return f"Precision, recall and F1 of deciding 'present' when p > threshold, per class, {which}." + tuned + most


def _caption_ranking(rep) -> str:
    cur = (rep.after or rep.before).extra["ranking"]
    if rep.task == "binary":
        what = "of the positive class; dashed: before calibration, solid: after (a monotone calibration keeps the ranking, so they coincide)"
    else:
        side = "after calibration" if rep.after is not None else "as given"
        per = "each class against the rest (one-vs-rest)" if rep.task == "multiclass" else "each label"
        what = f"of {per}, {side}"
        if len(cur.classes) < rep.n_classes:
            what += f"; the {len(cur.classes)} classes with most positives"
    rows = (f" From a uniform sample of {rep.n_interval_rows:,} of the {rep.n_eval:,} evaluated rows."
            if rep.n_interval_rows and rep.n_interval_rows < rep.n_eval else "")
    return (f"Left: ROC curves {what}: the true positive rate against the false positive rate as the threshold "
            "falls (dotted: a random ranking); the legend gives the AUROC. Right: precision against recall; the "
            "legend gives the average precision (AP)." + rows)


def draw_figures(rep, progress=None) -> dict[str, tuple[str, str, bytes]]:
    """Draw a report's figures: ``{key: (title, how-to-read caption, PNG bytes)}``; each caption is
    written beside the code that draws its figure."""
    binary_like = rep.task != "multiclass"
    after = rep.after
    figs: dict[str, tuple[str, str, bytes]] = {}
    for key in figure_keys(rep):
        if key == "reliability":
            figs[key] = ("Reliability diagram", _caption_reliability(rep),
                         reliability_png(rep.before.reliability, after.reliability if after else None,
                                         binary_like=binary_like))
        elif key == "confidence":
            figs[key] = ("Confidence histogram", _caption_confidence(rep),
                         histogram_png(rep.before.histogram, after.histogram if after else None,
                                       binary_like=binary_like))
        elif key == "classwise":
            figs[key] = ("Calibration error per class", _caption_classwise(rep),
                         classwise_png(rep.before.classwise_ece, after.classwise_ece if after else None,
                                       rep.class_names))
        elif key == "thresholds":
            figs[key] = ("Decision thresholds", _caption_thresholds(rep),
                         threshold_curves_png((after or rep.before).curves, rep.class_names))
        else:
            rb = rep.before.extra["ranking"]
            ra = after.extra.get("ranking") if after is not None else None
            figs[key] = ("ROC and precision-recall curves", _caption_ranking(rep), ranking_png(rb, ra))
        if progress is not None:
            progress.advance(1)
    return figs
