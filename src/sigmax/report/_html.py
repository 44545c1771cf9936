"""The self-contained HTML page: inline CSS, inline base64 PNGs, no scripts, no network.

Every figure is also written as a PNG file beside the HTML, so the images can be used elsewhere.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._format import format_change, format_number
from ._format import change_bounds
from ._plots import COLORS

Report = Any  # a sigmax.report.Report; not imported, so that _report (which writes pages) and this stay acyclic

__all__ = ["render_html", "write_html"]

_CSS = """
:root {{ --before: {before}; --after: {after}; --good: {good}; --bad: {bad}; --ink: #111827;
        --muted: #6b7280; --line: #e5e7eb; --card: #ffffff; --bg: #f5f6f8; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }}
header {{ background: linear-gradient(120deg, #1f2a44 0%, #2a7ab0 100%); color: white; padding: 28px 40px 22px; }}
header h1 {{ margin: 0 0 4px; font-size: 26px; letter-spacing: .2px; }}
header p {{ margin: 0; opacity: .85; }}
nav {{ margin-top: 14px; display: flex; gap: 8px; flex-wrap: wrap; }}
nav a {{ color: white; text-decoration: none; background: rgba(255,255,255,.14); padding: 4px 12px;
        border-radius: 999px; font-size: 13px; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; }}
section.task {{ margin-bottom: 44px; }}
h2 {{ font-size: 21px; margin: 8px 0 2px; }}
h3 {{ font-size: 16px; margin: 0 0 6px; }}
.sub {{ color: var(--muted); margin: 0 0 16px; }}
.kpis {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 14px 0 18px; }}
.kpi {{ background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 12px 14px; }}
.kpi.main {{ border: 2px solid var(--after); box-shadow: 0 2px 10px rgba(42,122,176,.12); }}
.kpi .name {{ color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }}
.kpi .vals {{ font-size: 20px; font-weight: 650; font-variant-numeric: tabular-nums; }}
.kpi .vals .arrow {{ color: var(--muted); font-weight: 400; margin: 0 4px; }}
.kpi .delta {{ font-size: 12.5px; font-weight: 600; }}
.better {{ color: var(--good); }} .worse {{ color: var(--bad); }} .same {{ color: var(--muted); }}
.grid {{ display: grid; grid-template-columns: 1fr; gap: 16px; }}
td {{ white-space: nowrap; }}
td:first-child {{ white-space: normal; }}
.card {{ background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px; }}
.card img {{ max-width: 100%; height: auto; display: block; margin: 6px auto 4px; }}
.how {{ color: var(--muted); font-size: 13.5px; margin: 0 0 4px; }}
table {{ border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 14px; }}
th, td {{ padding: 7px 10px; border-bottom: 1px solid var(--line); text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ color: var(--muted); font-weight: 600; font-size: 12.5px; text-transform: uppercase; letter-spacing: .5px; }}
td.b {{ color: var(--before); }} td.a {{ color: var(--after); font-weight: 600; }}
.findings {{ list-style: none; padding: 0; margin: 0; }}
.findings li {{ padding: 9px 0; border-bottom: 1px solid var(--line); }}
.findings li:last-child {{ border-bottom: 0; }}
.sev {{ display: inline-block; min-width: 64px; text-align: center; font-size: 11.5px; font-weight: 700;
       text-transform: uppercase; border-radius: 6px; padding: 1px 6px; margin-right: 8px; color: white; }}
.sev.error {{ background: var(--bad); }} .sev.warning {{ background: #d97706; }} .sev.info {{ background: #6b7280; }}
.sev.ok {{ background: var(--good); }}
.card.alarm {{ border: 2px solid var(--bad); margin-bottom: 14px; }} .card.alarm h3 {{ color: var(--bad); }}
code {{ font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; background: #f3f4f6;
       padding: 1px 5px; border-radius: 4px; }}
.fix {{ color: var(--muted); font-size: 13.5px; margin-left: 76px; }}
.stack {{ display: flex; flex-direction: column; gap: 16px; }}
.notes {{ color: var(--muted); font-size: 13.5px; margin: 4px 0 0 18px; padding: 0; }}
footer {{ color: var(--muted); font-size: 12.5px; text-align: center; padding: 10px 0 30px; }}
@media (min-width: 980px) {{ .grid.two {{ grid-template-columns: 1fr 1fr; }} }}
""".format(**COLORS)

#: metrics shown as KPI cards, with the direction that is better
_KPIS = (("ece", "ECE", -1), ("nll", "NLL", -1), ("brier", "Brier", -1), ("accuracy", "Accuracy", +1),
         ("f1_micro", "F1 micro", +1))


def _fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else format_number(v, digits)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sigmax")
    except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
        return "(not installed)"


def _delta_class(before: float, after: float, better: int) -> str:
    if not (math.isfinite(before) and math.isfinite(after)) or abs(after - before) < 5e-5:
        return "same"
    return "better" if (after - before) * better > 0 else "worse"


def _img(png: bytes, alt: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def slug(text: str) -> str:
    """A file-name-safe lowercase form of ``text``.

    Example:
        >>> slug("Multi-label: digits (test)")
        'multi-label-digits-test'
    """
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "report"


def _section(rep: Report, figures: dict[str, tuple[str, str, bytes]], anchor: str) -> str:
    out = [f'<section class="task" id="{anchor}">', f"<h2>{html.escape(rep.title)}</h2>"]
    out.append(f'<p class="sub">{html.escape(rep.subtitle())}</p>')
    errors = [f for f in rep.findings or () if str(f.get("severity")) == "error"]
    if errors:
        codes = ", ".join(str(f.get("code", "")) for f in errors)
        out.append(f'<div class="card alarm"><h3>Check failed: {html.escape(codes)}</h3><p>sigmax.check() found '
                   f"{len(errors)} error(s) in how the scores are declared or wired (see Checks below). The numbers "
                   "of this report cannot be right until they are fixed.</p></div>")
    # KPI cards
    out.append('<div class="kpis">')
    b, a = rep.before.metrics, rep.after.metrics if rep.after is not None else None
    iv = rep.intervals or {}
    for key, name, better in _KPIS:
        if key not in b:
            continue
        vb = float(b[key])
        if a is not None and key in a:
            va = float(a[key])
            cls = _delta_class(vb, va, better)
            delta = format_change(va, vb)
            ch = iv.get("change", {}).get(key)
            if ch is not None:
                lo, hi = change_bounds(ch, [vb, va])
                cls = cls if ch["significant"] else "same"
                delta += (f" · CI {lo}…{hi}" + ("" if ch["significant"] else ", not significant"))
            main = " main" if key == "ece" else ""
            out.append(f'<div class="kpi{main}"><div class="name">{name}</div><div class="vals">'
                       f'<span style="color:var(--before)">{_fmt(vb)}</span><span class="arrow">→</span>'
                       f'<span style="color:var(--after)">{_fmt(va)}</span></div>'
                       f'<div class="delta {cls}">{html.escape(delta)}</div></div>')
        else:
            out.append(f'<div class="kpi"><div class="name">{name}</div><div class="vals">{_fmt(vb)}</div></div>')
    out.append("</div>")
    if rep.headline():
        out.append(f'<p class="sub"><b>{html.escape(rep.headline())}</b></p>')
    # the metrics table across the page (numbers, intervals and changes side by side), the rest below it
    out.append('<div class="grid">')
    headers, rows = rep.formatted_table()
    tab = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for row in rows:
        cells = [f"<td>{html.escape(str(row[0]))}</td>"]
        for j, text in enumerate(row[1:], start=1):
            cls = ' class="b"' if headers[j] == "before" else (' class="a"' if headers[j] == "after" else "")
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        tab.append("<tr>" + "".join(cells) + "</tr>")
    tab.append("</tbody></table>")
    how = "Lower is better for NLL, Brier and the calibration errors (ECE, MCE); higher for accuracy, F1, AUROC and AP."
    if iv:
        how += (f" Each number has its {iv.get('level', 0.95):.0%} bootstrap interval; each change its paired interval, "
                "'not significant' when it holds 0 (see the notes).")
    out.append(f'<div class="card"><h3>Metrics</h3><p class="how">{how}</p>{"".join(tab)}')
    if rep.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in rep.notes) + "</ul>")
    out.append("</div>")
    out.append('<div class="grid two">')
    if rep.after is not None:
        out.append(f'<div class="card"><h3>Calibrator</h3><p class="how">{html.escape(rep.calibrator_text)}; '
                   f'fitted on {rep.n_fit:,} rows, evaluated on {rep.n_eval:,} others.</p>')
        ch, crows = rep.calibrator_table()
        if crows:
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in ch) + "</tr></thead><tbody>")
            for row in crows:
                out.append("<tr>" + f"<td>{html.escape(str(row[0]))}</td>"
                           + "".join(f"<td>{v:.3f}</td>" for v in row[1:]) + "</tr>")
            out.append("</tbody></table>")
            if len(crows) < rep.n_classes:
                out.append(f'<p class="how">The first {len(crows)} of {rep.n_classes} classes.</p>')
        out.append("</div>")
    conf = rep.conformal
    if conf is not None:
        if conf.get("supported"):
            def ci(k: str) -> str:
                v = conf.get(k)
                return "" if not v else f" ({conf['level']:.0%} CI {_fmt(v[0])}…{_fmt(v[1])})"

            out.append(f'<div class="card conformal"><h3>Conformal prediction sets</h3><p class="how">'
                       f'{html.escape(conf["method"].upper())} sets at alpha {conf["alpha"]:g}, fitted on '
                       f'{conf["n_calibration"]:,} fitting rows after calibration; measured on {conf["n_eval"]:,} '
                       "held-out rows. Each set should hold the true class in at least "
                       f'{_fmt(conf["target"])} of the rows.</p><table><tbody>'
                       f'<tr><td>held-out coverage</td><td class="a">{_fmt(conf["coverage"])}{html.escape(ci("coverage_ci"))}'
                       f'</td></tr><tr><td>mean set size</td><td class="a">{_fmt(conf["mean_set_size"])}'
                       f'{html.escape(ci("mean_set_size_ci"))}</td></tr></tbody></table></div>')
        else:
            out.append(f'<div class="card conformal"><h3>Conformal prediction sets</h3><p class="how">Not supported '
                       f'here: {html.escape(str(conf.get("reason", "")))}.</p></div>')
    out.append('<div class="card"><h3>Checks</h3><p class="how">What <code>sigmax.check()</code> found in the '
               'scores and labels (nothing was changed; an error means the numbers cannot be right).</p>'
               '<ul class="findings">')
    if rep.findings is None:
        out.append('<li><span class="sev info">n/a</span>check() is not available in this install.</li>')
    elif not rep.findings:
        out.append('<li><span class="sev ok">ok</span>No problems found.</li>')
    for f in rep.findings or ():
        sev = str(f.get("severity", "info")).lower()
        sev_cls = sev if sev in ("error", "warning", "info") else "info"
        out.append(f'<li><span class="sev {sev_cls}">{html.escape(sev)}</span><code>{html.escape(str(f.get("code", "")))}'
                   f"</code> {html.escape(str(f.get('message', '')))}")
        if f.get("fix"):
            out.append(f'<div class="fix">Fix: {html.escape(str(f["fix"]))}</div>')
        out.append("</li>")
    out.append("</ul></div></div></div>")
    # figures
    out.append('<div class="grid">')
    for key, (title, caption, png) in figures.items():
        out.append(f'<div class="card figure" id="{anchor}-{key}"><h3>{html.escape(title)}</h3>'
                   f'<p class="how">{html.escape(caption)}</p>{_img(png, title)}</div>')
    out.append("</div></section>")
    return "\n".join(out)


def render_html(reports: Sequence[Report], figures: Sequence[dict[str, tuple[str, str, bytes]]], *,
                title: str = "sigmax calibration report", anchors: Sequence[str] | None = None) -> str:
    """The HTML text of a report page with one section per :class:`Report`."""
    anchors = list(anchors or [slug(r.title) for r in reports])
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = ""
    if len(reports) > 1:
        nav = "<nav>" + "".join(f'<a href="#{a}">{html.escape(r.title)}</a>' for r, a in zip(reports, anchors)) + "</nav>"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             (f"<header><h1>{html.escape(title)}</h1><p>Are the probabilities honest? Before and after calibration, "
             f"on held-out data.</p>{nav}</header><main>")]
    for rep, figs, anchor in zip(reports, figures, anchors):
        parts.append(_section(rep, figs, anchor))
    parts.append(f"</main><footer>sigmax {_version()} · {now} · self-contained: no scripts, no network"
                 "</footer></body></html>")
    return "\n".join(parts)


def write_html(reports: Sequence[Report], out_dir: str | os.PathLike, *, title: str = "sigmax calibration report",
               filename: str = "index.html", show_progress: bool | None = None) -> Path:
    """Draw every figure, write them as PNG files into ``out_dir`` and the page as ``out_dir/filename``.

    A progress bar counts the figures on stderr when it is a terminal (``show_progress`` forces it on
    or off). Returns the path of the HTML file.
    """
    from ..io import atomic_write
    from ._progress import progress as _progress

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{os.fspath(out)} is a file, not a folder: the report writes index.html and its "
                                 "PNG files into a folder; give a folder name (a new one is created)")
    out.mkdir(parents=True, exist_ok=True)
    anchors: list[str] = []
    for r in reports:
        a = slug(getattr(r, "key", "") or r.title)[:48].strip("-")
        while a in anchors:
            a += "-2"
        anchors.append(a)
    all_figs = []
    with _progress(sum(r.n_figures() for r in reports), "drawing plots", enabled=show_progress) as bar:
        for rep, anchor in zip(reports, anchors):
            figs = rep.figures(progress=bar)
            for key, (_, _, png) in figs.items():
                with atomic_write(out / f"{anchor}-{key}.png", "wb") as fh:
                    fh.write(png)
            all_figs.append(figs)
    page = out / filename
    text = render_html(reports, all_figs, title=title, anchors=anchors)
    with atomic_write(page, "w", encoding="utf-8") as fh:
        fh.write(text)
    return page
