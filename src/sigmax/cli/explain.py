"""``sigmax explain``: the spreadsheet of one row of logits, read both ways.

For each class: the logit, ``exp(logit)`` (shown even where float32, or float64, overflows), the
softmax probability, the sigmoid probability and the log-softmax. Then the single-label reading
(argmax of the softmax), the multi-label reading (classes whose sigmoid passes ``--threshold``) and,
for two classes, the binary equivalence ``softmax(x)[1] == sigmoid(x[1] - x[0])``.

Logits may be negative or infinite (``sigmax explain -inf 2 inf``); a row whose logits are all
``-inf`` has no distribution (every ``exp`` is 0) and is an error. ``--json`` keeps one type per
field whatever the values: every number is a JSON number, or ``null`` where it is not finite, and
the fields that can be infinite (``logit``, ``log_softmax``, ``logsumexp``, the binary ``logit``)
come with a ``*_text`` twin that always holds the value as text (``"-inf"``, ``"2.5"``).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import numpy as np

from ..activations import log_softmax, logsumexp, sigmoid, softmax, two_class_to_binary
from ..io import atomic_write
from . import CLIError
from ._output import format_number, print_json, print_note, print_table

#: file types ``--plot`` writes (matplotlib's formats that need no extra package)
PLOT_EXTENSIONS = (".png", ".svg", ".pdf", ".jpg", ".jpeg")

#: the built-in example: four classes, as in the cat/dog/cow/zebra spreadsheet of the seed text
EXAMPLE_LABELS = ("cat", "dog", "cow", "zebra")
EXAMPLE_LOGITS = (3.3, 1.4, -1.2, 0.9)

HELP = "show softmax, sigmoid and log-softmax for one row of logits, and what each reading decides"


def register(sub) -> None:
    p = sub.add_parser(
        "explain",
        help=HELP,
        description=HELP + ". With no logits, explains a built-in example (cat, dog, cow, zebra).",
        epilog="examples:\n  sigmax explain\n  sigmax explain -0.3 -0.7\n  sigmax explain -inf 2 inf\n"
               "  sigmax explain 2.0 1.0 0.1 --labels cat,dog,bird --threshold 0.6\n"
               "  sigmax explain 0.1 0.2 100 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("logits", nargs="*", metavar="LOGIT",
                   help="raw scores of one sample, one per class (spaces or commas between them)")
    p.add_argument("--labels", help="class names, comma-separated (default: class 0, class 1, ...)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="multi-label reading: a class is predicted when its sigmoid >= this (default 0.5)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T before softmax and sigmoid (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw softmax and sigmoid side by side (needs matplotlib); "
                        f"one of {', '.join(PLOT_EXTENSIONS)}")
    p.set_defaults(func=run)


def parse_logits(values: list[str]) -> np.ndarray:
    """Numbers from the command line, spaces or commas between them; a clear error otherwise."""
    tokens = [t for v in values for t in v.replace(",", " ").split()]
    out = []
    for t in tokens:
        try:
            out.append(float(t))
        except ValueError:
            raise CLIError(f"LOGIT {t!r} is not a number; give raw scores such as: sigmax explain 2.0 -1.5 0.3") from None
    if values and not out:
        raise CLIError("no logits given; give one number per class, such as: sigmax explain 2.0 -1.5 0.3")
    return np.asarray(out, dtype=np.float64)


def exp_text(x: float) -> str:
    """``e**x`` as text, also beyond float64's range (through log10: e**x = 10**(x / ln 10))."""
    if math.isnan(x):
        return "nan"
    if x < 700 and x > -700:
        return format_number(math.exp(x))
    if math.isinf(x):
        return "inf" if x > 0 else "0"
    e10 = x / math.log(10)
    k = math.floor(e10)
    mant = 10 ** (e10 - k)
    if mant >= 9.9995:  # rounding carried into the next power of ten
        mant, k = 1.0, k + 1
    return f"{mant:.3f}e{k:+d}"


def _text(v: Any) -> str:
    """A number as text for the JSON ``*_text`` fields: ``"inf"``, ``"-inf"``, ``"nan"`` or ``repr``."""
    v = float(v)
    return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def explain(logits: np.ndarray, labels: list[str], *, threshold: float = 0.5, temperature: float = 1.0) -> dict:
    """Everything ``sigmax explain`` shows, as a dictionary (the ``--json`` output)."""
    z = np.asarray(logits, dtype=np.float64)
    p_soft = softmax(z, temperature=temperature)
    p_sig = sigmoid(z / temperature)
    lsm = log_softmax(z, temperature=temperature)
    f32_overflow = np.abs(z / temperature) > math.log(np.finfo(np.float32).max)
    rows = []
    for i, name in enumerate(labels):
        rows.append({
            "class": name,
            "logit": float(z[i]),
            "logit_text": _text(z[i]),
            "exp": exp_text(float(z[i] / temperature)),
            "exp_overflows_float32": bool(f32_overflow[i] and z[i] > 0),
            "softmax": float(p_soft[i]),
            "sigmoid": float(p_sig[i]),
            "log_softmax": float(lsm[i]),
            "log_softmax_text": _text(lsm[i]),
        })
    top = int(np.argmax(p_soft))
    passing = [labels[i] for i in range(len(labels)) if p_sig[i] >= threshold]
    lse = float(logsumexp(z / temperature))
    out: dict[str, Any] = {
        "classes": rows,
        "logsumexp": lse,
        "logsumexp_text": _text(lse),
        "temperature": temperature,
        "single_label": {"class": labels[top], "index": top, "probability": float(p_soft[top]),
                         "softmax_sum": float(np.sum(p_soft))},
        "multi_label": {"threshold": threshold, "classes": passing,
                        "sigmoid_sum": float(np.sum(p_sig))},
    }
    if len(labels) == 2:
        b = float(two_class_to_binary(z) / temperature)
        out["binary"] = {"logit": b, "logit_text": _text(b), "sigmoid": float(sigmoid(b)), "softmax_class_1": float(p_soft[1])}
    return out


def run(args: argparse.Namespace) -> int:
    if args.logits:
        z = parse_logits(args.logits)
        labels = [f"class {i}" for i in range(z.size)]
    else:
        z = np.asarray(EXAMPLE_LOGITS)
        labels = list(EXAMPLE_LABELS)
    if args.labels is not None:
        labels = [s.strip() for s in args.labels.split(",")]
        if len(labels) != z.size:
            raise CLIError(f"--labels names {len(labels)} classes but {z.size} logits were given; "
                           "give one name per logit")
    if not 0.0 < args.threshold < 1.0:
        raise CLIError(f"--threshold must be a probability strictly between 0 and 1, got {args.threshold}")
    if not (args.temperature > 0 and math.isfinite(args.temperature)):
        raise CLIError(f"--temperature must be a positive number, got {args.temperature}")
    if np.isnan(z).any():
        raise CLIError("a logit is NaN; explain needs numbers")
    if z.size and np.all(z == -np.inf):
        raise CLIError("every LOGIT is -inf: the row has no distribution (exp(logit) is 0 for every class, so "
                       "softmax would divide 0 by 0); give at least one logit above -inf")
    if args.plot:
        _plot_path(args.plot)
    res = explain(z, labels, threshold=args.threshold, temperature=args.temperature)
    if args.plot:
        _plot(res, args.plot)
    if args.json:
        print_json(res)
        return 0
    _print(res)
    if args.plot:
        print_note(f"plot written to {args.plot}")
    return 0


def _print(res: dict) -> None:
    headers = ["class", "logit", "exp(logit)", "softmax", "sigmoid", "log_softmax"]
    rows = [[r["class"], r["logit"], r["exp"] + (" (float32: inf)" if r["exp_overflows_float32"] else ""),
             r["softmax"], r["sigmoid"], r["log_softmax"]] for r in res["classes"]]
    single = res["single_label"]
    t = res["temperature"]
    title = "one row of logits, read both ways" + (f" (temperature {t:g})" if t != 1 else "")
    print_table(headers, rows, title=title, highlight_rows=[single["index"]])
    lse = res["logsumexp"]
    print()
    if lse == math.inf:
        print_note("a logit is +inf: softmax shares the probability equally among the +inf classes (the limit), "
                   "and log_softmax is 0 for them and -inf for the others")
    else:
        print_note(f"sum of exp = {exp_text(lse)} = exp({format_number(lse)}); softmax = exp(logit - {format_number(lse)}), "
                   f"log_softmax = logit - {format_number(lse)}")
    print_note(f"single-label (softmax, exactly one class is true): {single['class']} "
               f"with probability {single['probability']:.4f}; the softmax column sums to "
               f"{single['softmax_sum']:.4f}", style="bold green")
    multi = res["multi_label"]
    chosen = ", ".join(multi["classes"]) if multi["classes"] else "none"
    print_note(f"multi-label (one sigmoid per class, any number true): sigmoid >= {multi['threshold']:g}: "
               f"{chosen}; the sigmoid column sums to {multi['sigmoid_sum']:.4f} (it need not be 1)",
               style="bold yellow")
    if "binary" in res:
        b = res["binary"]
        names = [r["class"] for r in res["classes"]]
        print_note(f"two classes = one binary logit: {names[1]} - {names[0]} = {b['logit']:.4f}; "
                   f"sigmoid({b['logit']:.4f}) = {b['sigmoid']:.4f} = softmax for {names[1]} "
                   f"({b['softmax_class_1']:.4f})", style="bold cyan")


def _plot_path(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in PLOT_EXTENSIONS:
        raise CLIError(f"--plot {path}: {'no' if not ext else 'unknown'} image extension{' ' + repr(ext) if ext else ''}; "
                       f"give a file name ending in one of {', '.join(PLOT_EXTENSIONS)} (e.g. --plot row.png)")
    return ext


def _plot(res: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'sigmax[plot]'") from None
    names = [r["class"] for r in res["classes"]]
    soft = [r["softmax"] for r in res["classes"]]
    sig = [r["sigmoid"] for r in res["classes"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    top = res["single_label"]["index"]
    axes[0].bar(names, soft, color=["#2a9d8f" if i == top else "#9fd3cc" for i in range(len(names))])
    axes[0].set_title(f"softmax: one class (sum = {sum(soft):.2f})")
    thr = res["multi_label"]["threshold"]
    axes[1].bar(names, sig, color=["#e76f51" if s >= thr else "#f4c2b5" for s in sig])
    axes[1].axhline(thr, color="#444", linestyle="--", linewidth=1)
    axes[1].set_title(f"sigmoid: each class alone (threshold {thr:g})")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_ylabel("probability")
    for ax, vals in zip(axes, (soft, sig)):
        for i, v in enumerate(vals):
            ax.text(i, v + 0.02, f"{v:.3f}", ha="center", fontsize=8)
        ax.tick_params(axis="x", rotation=20 if len(names) > 4 else 0)
    fig.tight_layout()
    fmt = {".jpg": "jpeg"}.get(_plot_path(path), _plot_path(path).lstrip("."))
    try:
        with atomic_write(path, "wb") as fh:  # the old plot stays whole until the new one is complete
            fig.savefig(fh, format=fmt, dpi=120)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot write --plot {path}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        plt.close(fig)
