"""sigmax.report: before/after metrics on held-out rows, streaming in bounded memory, the HTML page."""

from __future__ import annotations

import base64
import io
import re
import tracemalloc

import numpy as np
import pytest

from sigmax import metrics
from sigmax.report import (
    PlotAccumulator,
    Report,
    calibration_report,
    progress,
    split_mask,
    stream_calibration_report,
    write_html,
)

pytest.importorskip("matplotlib")


def _data(task: str, n: int, c: int = 5, seed: int = 0, scale: float = 5.0):
    """Over-confident synthetic logits: the true signal scaled up by ``scale``."""
    rng = np.random.default_rng(seed)
    if task == "binary":
        y = rng.integers(0, 2, n)
        z = (rng.normal(size=n) + 1.2 * (2 * y - 1)) * scale
        return z, y
    if task == "multiclass":
        y = rng.integers(0, c, n)
        z = rng.normal(size=(n, c))
        z[np.arange(n), y] += 1.5
        return z * scale, y
    y = (rng.random((n, c)) < 0.3).astype(np.float64)
    z = (rng.normal(size=(n, c)) + 1.3 * (2 * y - 1)) * scale
    return z, y


#: the metrics of the table that need every score at once (taken on the interval sample)
SAMPLE_ONLY = ("ece_equal_mass", "smooth_ece", "roc_auc", "average_precision")


def _assert_metrics_close(a: dict, b: dict, rtol: float = 1e-9) -> None:
    a = {k: v for k, v in a.items() if k not in SAMPLE_ONLY}
    b = {k: v for k, v in b.items() if k not in SAMPLE_ONLY}
    assert set(a) == set(b)
    for k, v in a.items():
        np.testing.assert_allclose(v, b[k], rtol=rtol, atol=1e-12, err_msg=k)


# ------------------------------------------------------------------------------- in memory
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_before_and_after_are_the_metrics_of_the_held_out_rows(task):
    z, y = _data(task, 600)
    rep = calibration_report(z, y, task, check=False, seed=3)
    u = split_mask(0, len(y), 0.5, 3)
    ev = u >= 0.5
    assert rep.n_eval == ev.sum() and rep.n_fit == (~ev).sum()
    _assert_metrics_close(rep.before.metrics, metrics.summary(z[ev], y[ev], task))
    thr = rep.thresholds
    zc = np.asarray(rep.calibrator.transform(z[ev]))
    # "after" decides at the default threshold: calibration alone; the tuned thresholds come apart
    _assert_metrics_close(rep.after.metrics, metrics.summary(zc, y[ev], task))
    if task != "multiclass":
        tuned = metrics.summary(zc, y[ev], task, threshold=thr)
        assert set(rep.tuned) <= set(tuned)
        for k, v in rep.tuned.items():
            assert v == pytest.approx(tuned[k], rel=1e-12), k
    else:
        assert rep.tuned is None
    # the diagram is the table's: same bins, same ECE
    assert rep.before.reliability.ece == pytest.approx(rep.before.metrics["ece"], rel=1e-12)
    assert rep.after.reliability.count.sum() == rep.before.reliability.count.sum()
    # over-confident scores: calibration on held-out rows lowers ECE and NLL
    assert rep.after.metrics["ece"] < rep.before.metrics["ece"]
    assert rep.after.metrics["nll"] < rep.before.metrics["nll"]
    if task == "multiclass":  # temperature scaling keeps the argmax
        assert rep.after.metrics["accuracy"] == rep.before.metrics["accuracy"]


def test_plot_data_agrees_with_the_metrics():
    z, y = _data("multilabel", 400, c=4)
    rep = calibration_report(z, y, "multilabel", method="none", check=False)
    h = rep.before.histogram
    rel = rep.before.reliability
    assert sum(g.sum() for g in h.groups.values()) == rel.count.sum() == z.size
    assert h.accuracy == pytest.approx(rep.before.metrics["accuracy"], rel=1e-12)
    assert np.mean(rep.before.classwise_ece) == pytest.approx(rep.before.metrics["classwise_ece"], rel=1e-9)
    assert rep.before.class_support.tolist() == y.sum(axis=0).astype(int).tolist()
    c = rep.before.curves
    assert c.classes == [0, 1, 2, 3] and c.f1.shape == (4, 200)
    j = 100  # threshold 0.5: the grid's F1 is the exact F1 of p > 0.5 up to ties on the grid edge
    p = 1 / (1 + np.exp(-z))
    for k in range(4):
        tp = ((p[:, k] > 0.5) & (y[:, k] == 1)).sum()
        f1 = 2 * tp / ((p[:, k] > 0.5).sum() + y[:, k].sum())
        assert c.f1[k, j] == pytest.approx(f1, abs=2 / len(y))


def test_fit_on_a_separate_calibration_set_and_a_given_calibrator():
    zc, yc = _data("multiclass", 500, seed=1)
    zt, yt = _data("multiclass", 300, seed=2)
    rep = calibration_report(zt, yt, "multiclass", fit=(zc, yc), check=False)
    assert rep.n_fit == 500 and rep.n_eval == 300
    again = calibration_report(zt, yt, "multiclass", calibrator=rep.calibrator, check=False)
    _assert_metrics_close(again.after.metrics, rep.after.metrics)
    assert again.n_fit == 0 and "already fitted" in " ".join(again.notes)
    with pytest.raises(ValueError, match="fitted for task='multiclass' but the scores are declared task='multilabel'"):
        calibration_report(zt, (zt > 0).astype(float), "multilabel", calibrator=rep.calibrator, check=False)
    with pytest.raises(ValueError, match="fitted on 5 classes but the scores have 4"):
        calibration_report(zt[:, :4], yt % 4, "multiclass", calibrator=rep.calibrator, check=False)


def test_streamed_report_with_a_given_calibrator_reads_the_file_once(tmp_path):
    zc, yc = _data("multilabel", 400, c=3, seed=1)
    zt, yt = _data("multilabel", 300, c=3, seed=2)
    cal = calibration_report(zc, yc, "multilabel", check=False).calibrator
    np.save(tmp_path / "s.npy", zt)
    np.save(tmp_path / "y.npy", yt)
    mem = calibration_report(zt, yt, "multilabel", calibrator=cal, check=False)
    st = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multilabel", calibrator=cal,
                                   chunk_rows=50, check=False)
    assert st.n_eval == mem.n_eval == 300
    _assert_metrics_close(st.after.metrics, mem.after.metrics, rtol=1e-9)
    _assert_metrics_close(st.before.metrics, mem.before.metrics, rtol=1e-9)


def test_probability_scores_and_torch_tensors():
    torch = pytest.importorskip("torch")
    z, y = _data("multiclass", 400)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    from_logits = calibration_report(z, y, "multiclass", check=False)
    from_probs = calibration_report(torch.tensor(p), torch.tensor(y), "multiclass", space="probs", check=False)
    _assert_metrics_close(from_probs.before.metrics, from_logits.before.metrics, rtol=1e-7)
    _assert_metrics_close(from_probs.after.metrics, from_logits.after.metrics, rtol=1e-5)


def test_class_axis_first():
    z, y = _data("multiclass", 300)
    a = calibration_report(z, y, "multiclass", check=False)
    b = calibration_report(z.T.copy(), y, "multiclass", axis=0, check=False)
    _assert_metrics_close(a.after.metrics, b.after.metrics)


@pytest.mark.parametrize("kwargs, message", [
    ({"labels": np.zeros(7, dtype=int)}, "labels have shape (7,) but multiclass scores of shape (10, 3)"),
    ({"labels": np.full(10, 5)}, "class index 5, out of range for 3 classes"),
    ({"tune": "f1"}, "tune='f1' is for binary and multilabel"),
    ({"method": "isotonicity"}, "unknown method 'isotonicity'"),
    ({"fit_fraction": 0.0}, "fit_fraction must be in (0, 1]"),
    ({"space": "probz"}, "unknown space 'probz'"),
    ({"class_names": ["a"]}, "class_names has 1 names but the scores have 3"),
    ({"labels": np.eye(3)[np.arange(10) % 3]}, "these look one-hot: pass class indices, labels.argmax(axis=-1)"),
    ({"labels": np.full(10, -100), "ignore_index": None}, "class index -100, out of range"),
    ({"labels": np.full(10, -100)}, "every label equals ignore_index=-100"),
    ({"memory_budget": "lots"}, "memory_budget 'lots' is not a size"),
    ({"min_bin_count": 0}, "min_bin_count must be a positive integer"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    z = np.zeros((10, 3))
    labels = kwargs.pop("labels", np.arange(10) % 3)
    with pytest.raises(ValueError) as e:
        calibration_report(z, labels, "multiclass", check=False, **kwargs)
    assert message in str(e.value)


def test_split_does_not_depend_on_chunking():
    u = split_mask(0, 20_000, 0.5, seed=7)
    parts = [split_mask(s, n, 0.5, seed=7) for s, n in [(0, 1), (1, 4999), (5000, 10_000), (15_000, 5000)]]
    assert np.array_equal(u, np.concatenate(parts))
    assert 0.48 < (u < 0.5).mean() < 0.52
    assert not np.array_equal(u, split_mask(0, 20_000, 0.5, seed=8))


# ------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_streamed_report_equals_the_in_memory_report(task, tmp_path):
    z, y = _data(task, 1000, c=4)
    np.save(tmp_path / "s.npy", z.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    mem = calibration_report(z.astype(np.float32), y, task, check=False)
    st = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", task, chunk_rows=97, check=False)
    assert st.streamed and (st.n_fit, st.n_eval) == (mem.n_fit, mem.n_eval)
    _assert_metrics_close(st.before.metrics, mem.before.metrics, rtol=1e-7)
    _assert_metrics_close(st.after.metrics, mem.after.metrics, rtol=1e-6)
    assert np.array_equal(st.after.reliability.count, mem.after.reliability.count)
    for g in mem.before.histogram.groups:
        assert np.array_equal(st.before.histogram.groups[g], mem.before.histogram.groups[g])


def test_streamed_fit_sample_is_bounded_and_said(tmp_path):
    z, y = _data("multiclass", 3000, c=3)
    np.save(tmp_path / "s.npy", z)
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")  # labels in another format are read whole
    rep = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.csv", "multiclass", chunk_rows=500,
                                    max_fit_rows=300, check=False)
    assert 200 < rep.n_fit < 400
    assert any("uniform sample" in n for n in rep.notes)
    assert rep.after.metrics["ece"] < rep.before.metrics["ece"]


def test_streaming_errors(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((50, 3)))
    np.save(tmp_path / "y.npy", np.zeros(40, dtype=int))
    with pytest.raises(ValueError, match="LABELS has 40 rows but SCORES has 50"):
        stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multiclass", chunk_rows=16, check=False)
    np.save(tmp_path / "y.npy", np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="class axis cannot be axis 0"):
        stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multiclass", axis=0, check=False)


def test_streaming_peak_memory_stays_bounded_on_a_file_many_times_larger(tmp_path):
    """A 6 MB score file is reported with a Python/NumPy heap peak under 1.5 MB (tracemalloc counts
    every NumPy allocation; the memory-mapped file pages are the kernel's page cache, reclaimable)."""
    n, c, chunk = 200_000, 8, 2048
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    mm = np.lib.format.open_memmap(tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=(n, c))
    for i in range(0, n, 50_000):
        block = rng.normal(size=(min(50_000, n - i), c)).astype(np.float32)
        block[np.arange(block.shape[0]), y[i:i + block.shape[0]]] += 2.0
        mm[i:i + block.shape[0]] = 2.5 * block
    mm.flush()
    del mm
    np.save(tmp_path / "y.npy", y)
    del y
    file_bytes = (tmp_path / "s.npy").stat().st_size
    bound = 1.5 * 2**20
    assert file_bytes > 4 * bound
    # warm up: first-time imports allocate too, and are not the report's memory
    np.save(tmp_path / "s0.npy", np.zeros((10, c), np.float32))
    np.save(tmp_path / "y0.npy", np.arange(10) % c)
    stream_calibration_report(tmp_path / "s0.npy", tmp_path / "y0.npy", "multiclass", chunk_rows=4, check=False)
    tracemalloc.start()
    try:
        # the interval sample is bounded by the budget, not by the file: left out here (tested on its own)
        rep = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multiclass", chunk_rows=chunk,
                                        max_fit_rows=2000, check=False, max_interval_rows=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.n_eval > 0.45 * n and rep.n_fit <= 2100
    assert peak < bound, f"peak {peak / 2**20:.2f} MiB for a {file_bytes / 2**20:.1f} MiB file"
    assert rep.after.metrics["ece"] < rep.before.metrics["ece"] + 0.01


# ------------------------------------------------------------------------------- output
def test_table_text_and_dict():
    z, y = _data("binary", 500)
    rep = calibration_report(z, y, "binary", check=False, n_resamples=0)
    headers, rows = rep.table()
    # binary: one F1 (the positive class), no class-wise ECE, and the tuned thresholds in their own column
    assert headers == ["metric", "before", "after", "change", "tuned thresholds", "change"]
    assert [r[0] for r in rows] == ["NLL", "Brier", "accuracy", "F1", "ECE", "ECE (equal-mass bins)", "smooth ECE",
                                    "MCE (bins ≥ 10 rows)", "AUROC", "AP"]
    assert [r[0] for r in rows if r[4] != ""] == ["accuracy", "F1"]
    assert "2 classes (one positive class scored)" in rep.subtitle() and "1 class" not in rep.subtitle()
    text = rep.to_text()
    assert "ECE" in text and re.search(r"ECE\s+\d\.\d{4}\s+\d\.\d{4}\s+[-+]\d\.\d{4}", text)
    d = rep.to_dict()
    assert d["after"]["ece"] == rep.after.metrics["ece"] and d["n_eval"] == rep.n_eval
    assert d["memory"]["budget_bytes"] == 1 << 30 and d["memory"]["chunk_rows"] >= 1
    assert "tuned thresholds" in " ".join(rep.notes)
    assert "classwise" not in rep.figures()  # binary: the reliability diagram is the one class's


def test_html_is_self_contained_with_every_figure(tmp_path):
    z, y = _data("multilabel", 400, c=3)
    rep = calibration_report(z, y, "multilabel", class_names=["cat", "dog", "bird"], title="Pets: multi-label",
                             check=False)
    rep.findings = [{"code": "saturated", "severity": "warning", "message": "some <probs> are 1", "fix": "use logits"}]
    page = write_html([rep], tmp_path / "out")
    text = page.read_text()
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs == ["pets-multi-label-classwise.png", "pets-multi-label-confidence.png",
                    "pets-multi-label-ranking.png", "pets-multi-label-reliability.png", "pets-multi-label-thresholds.png"]
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 5
    assert "ROC and precision-recall curves" in text and "AUROC" in text
    for b64, name in zip(images, ["reliability", "confidence", "classwise", "thresholds", "ranking"]):
        png = base64.b64decode(b64)
        assert png == (tmp_path / "out" / f"pets-multi-label-{name}.png").read_bytes()
        import matplotlib.image as mpimg

        pixels = mpimg.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 150 and pixels.shape[1] > 300 and pixels[..., :3].std() > 0.05
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "some &lt;probs&gt; are 1" in text and "Fix: use logits" in text  # escaped
    assert "cat" in text and "ECE" in text
    headers, rows = rep.calibrator_table()
    assert headers == ["class", "temperature", "threshold"] and [r[0] for r in rows] == ["cat", "dog", "bird"]
    assert "<td>bird</td>" in text


def test_progress_is_silent_when_not_a_terminal_and_drawn_when_asked():
    quiet = io.StringIO()
    with progress(10, "work", stream=quiet) as bar:
        bar.advance(10)
    assert quiet.getvalue() == "" and bar.done == 10
    shown = io.StringIO()
    with progress(10, "work", stream=shown, enabled=True, use_rich=False) as bar:
        for _ in range(10):
            bar.advance()
    assert "work" in shown.getvalue()


def test_plot_accumulator_is_additive():
    z, y = _data("multiclass", 300, c=4)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    whole, parts = PlotAccumulator("multiclass", 4), PlotAccumulator("multiclass", 4)
    whole.add(p, y)
    for i in range(0, 300, 37):
        parts.add(p[i:i + 37], y[i:i + 37])
    assert np.allclose(whole.classwise_ece(), parts.classwise_ece())
    assert all(np.array_equal(whole.histogram().groups[k], parts.histogram().groups[k]) for k in ("right", "wrong"))
    assert isinstance(Report, type)


# ------------------------------------------------------------------------------- trust fixes
def test_memory_budget_sets_the_chunks_and_the_fit_sample_and_is_said():
    z, y = _data("multiclass", 3000, c=50)
    small = calibration_report(z, y, "multiclass", check=False, memory_budget="16M")
    big = calibration_report(z, y, "multiclass", check=False)
    assert small.memory.chunk_rows < 3000 and small.memory.budget == 16 << 20
    # the in-memory report is the chunked pipeline: chunking changes nothing but the memory
    _assert_metrics_close(small.before.metrics, big.before.metrics, rtol=1e-9)
    assert any("memory budget 16 MiB: chunks of" in n for n in small.notes)
    with pytest.raises(ValueError, match="too small for rows of 100,000 scores"):
        calibration_report(np.zeros((4, 100_000)), np.zeros(4, int), "multiclass", check=False,
                           memory_budget="16M")


def test_mce_leaves_out_bins_of_a_few_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    z = np.where(y == 1, 2.0, -2.0) + rng.normal(size=2000) * 0.3
    z[0], y[0] = 0.05, 0  # one row alone in a bin near 0.5, wrong: a gap of ~0.5 from one sample
    rep = calibration_report(z, y, "binary", method="none", check=False, n_bins=20)
    one = metrics.calibration_error(z, y, "binary", n_bins=20, norm="max", min_bin_count=1)
    assert rep.before.metrics["mce"] < one
    assert rep.min_bin_count == 10 and any("at least 10 rows" in n for n in rep.notes)


def test_changes_are_never_minus_zero_percent_and_columns_keep_one_notation():
    from sigmax._format import format_change, format_changes, format_column

    assert format_change(0.2495, 0.25) == "-0.0005 (-0.2%)"  # (after, before), as everywhere
    assert "(-0%)" not in format_change(0.4990, 0.5)
    col = format_column([0.3391, 9.396e-04, 0.0009])
    assert len({len(c.split(".")[1]) for c in col}) == 1 and not any("e" in c for c in col)
    ch = format_changes([0.2499, 0.1, 0.7], [0.25, 0.5, 0.7])
    assert ch[2] == "0" and len({len(c.split(" ")[0].split(".")[1]) for c in ch[:2]}) == 1
    assert not any("(-0%)" in c or "(+0%)" in c for c in ch)


def test_the_report_formats_through_the_one_formatter_module():
    import sigmax._format as F
    from sigmax.report import _html, _plots, _report

    for mod in (_html, _plots, _report):  # the report has no number formatters of its own
        for name in ("format_change", "format_number", "format_count", "format_column"):
            if hasattr(mod, name):
                assert getattr(mod, name) is getattr(F, name), (mod.__name__, name)
    z, y = _data("multiclass", 4000, c=3)
    rep = calibration_report(z, y, "multiclass", check=False)
    _, rows = rep.formatted_table()
    assert not any("(-0%)" in c or "(+0%)" in c for r in rows for c in r)
    assert "4,000" in rep.subtitle() or f"{rep.n_eval:,}" in rep.subtitle()


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_an_undefined_mce_reads_n_a_in_the_table_the_text_and_the_figure(task, monkeypatch):
    from sigmax.report import _plots

    z, y = _data(task, 40, c=3)
    rep = calibration_report(z, y, task, method="temperature", check=False, min_bin_count=1000)
    assert np.isnan(rep.before.metrics["mce"]) and np.isnan(rep.before.reliability.mce)
    _, rows = rep.formatted_table()
    mce = [r for r in rows if r[0].startswith("MCE")][0]
    headers, _ = rep.table()
    col = {h: j for j, h in reversed(list(enumerate(headers)))}  # the first column of each name
    assert mce[col["before"]] == mce[col["after"]] == "n/a (no bin with ≥ 1,000 rows)" and mce[col["change"]] == ""
    assert mce[col["95% CI"]] == "" and mce[col["95% CI of change"]] == ""  # no interval of an undefined MCE
    assert "nan" not in rep.to_text().lower()
    texts = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y_, s, *a, **k:
                        texts.append(str(s)) or original(self, x, y_, s, *a, **k))
    _plots.draw_figures(rep)
    panel = [t for t in texts if t.startswith("ECE")]
    assert panel and all("MCE n/a (no bin with ≥ 1,000 rows)" in t for t in panel)
    assert not any("nan" in t.lower() for t in panel)


def test_ignore_index_is_the_default_and_can_be_turned_off():
    z, y = _data("multiclass", 600, c=3)
    y = y.copy()
    y[:40] = -100
    rep = calibration_report(z, y, "multiclass", check=False)
    assert rep.n_ignored > 0 and rep.n_eval + rep.n_fit < 600
    with pytest.raises(ValueError, match="class index -100"):
        calibration_report(z, y, "multiclass", check=False, ignore_index=None)


# ------------------------------------------------------------------------------- one validation per chunk
def _count_calls(monkeypatch, name_module: str, name: str) -> list:
    """Count the calls of ``name_module.name`` wherever sigmax imported it (modules bind it by name)."""
    import importlib
    import sys

    original = getattr(importlib.import_module(name_module), name)
    calls: list = []

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("sigmax") and getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, counting)
    return calls


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_each_chunk_is_validated_once_and_turned_into_probabilities_once(monkeypatch, task):
    z, y = _data(task, 500, c=4)
    ref = metrics.summary(z, y, task)
    validated = _count_calls(monkeypatch, "sigmax._inputs", "canonical")
    probs = _count_calls(monkeypatch, "sigmax.interpret", "to_probs")
    # the interval sample's metrics validate the sample themselves: left out here (the pipeline's count)
    rep = calibration_report(z, y, task, method="none", check=False, chunk_rows=100, max_interval_rows=0)
    assert len(validated) == 5  # one canonical() per chunk: the metrics and the figures share it
    assert len(probs) == 5  # one to_probs() per chunk: the tuned-threshold metrics and the plots reuse it
    _assert_metrics_close(rep.before.metrics, ref)


# ------------------------------------------------------------------------------- intervals (issue 13)
def _digits(task):
    from sigmax.datasets import digits_scores

    return digits_scores(task)


def test_intervals_are_the_bootstraps_of_the_evaluated_rows():
    from sigmax.report._intervals import LOOP_RESAMPLES

    d = _digits("multiclass")
    z, y = d.test_logits, d.test_labels
    rep = calibration_report(z, y, "multiclass", fit=(d.calib_logits, d.calib_labels), check=False)
    iv = rep.intervals
    assert iv["n_resamples"] == 200 and iv["rows"] == iv["of_rows"] == 697 and not iv["sampled"]
    za = np.asarray(rep.calibrator.transform(z))
    # a fast route: bootstrap_ci / paired_bootstrap on the evaluated rows, same seed
    for key, fn, kw in (("nll", metrics.nll, {}), ("ece", metrics.calibration_error, {}),
                        ("roc_auc", metrics.roc_auc, {})):
        b = metrics.bootstrap_ci(fn, z, y, "multiclass", n_resamples=200, **kw)
        a = metrics.bootstrap_ci(fn, za, y, "multiclass", n_resamples=200, **kw)
        p = metrics.paired_bootstrap(fn, z, za, y, "multiclass", n_resamples=200, **kw)
        assert iv["before"][key] == pytest.approx([b.low, b.high], rel=1e-12), key
        assert iv["after"][key] == pytest.approx([a.low, a.high], rel=1e-12), key
        ch = iv["change"][key]
        assert [ch["low"], ch["high"], ch["share_not_better"]] == pytest.approx([p.low, p.high, p.share_not_better])
        assert ch["significant"] == (not p.low <= 0 <= p.high)
    # a metric re-run per resample: the same resamples as bootstrap_ci's loop route
    b = metrics.bootstrap_ci(metrics.precision_recall_f1, z, y, "multiclass", key="f1", average="macro",
                             n_resamples=LOOP_RESAMPLES)
    assert iv["before"]["f1_macro"] == pytest.approx([b.low, b.high], rel=1e-12)
    assert iv["resamples"]["f1_macro"] == LOOP_RESAMPLES and iv["resamples"]["nll"] == 200
    assert rep.to_dict()["intervals"]["change"]["ece"] == iv["change"]["ece"]  # JSON carries them


def test_equal_mass_smooth_ece_auroc_and_ap_rows_are_the_librarys():
    z, y = _data("multiclass", 600, c=4)
    rep = calibration_report(z, y, "multiclass", check=False, seed=1)
    ev = split_mask(0, len(y), 0.5, 1) >= 0.5
    zb, yb = z[ev], y[ev]
    b = rep.before.metrics
    assert b["ece_equal_mass"] == pytest.approx(metrics.calibration_error(zb, yb, "multiclass", binning="equal_mass"))
    assert b["smooth_ece"] == pytest.approx(metrics.smooth_calibration_error(zb, yb, "multiclass"))
    assert b["roc_auc"] == pytest.approx(metrics.roc_auc(zb, yb, "multiclass"))
    assert b["average_precision"] == pytest.approx(metrics.average_precision(zb, yb, "multiclass"))
    names = [r[0] for r in rep.table()[1]]
    assert {"ECE (equal-mass bins)", "smooth ECE", "AUROC (one-vs-rest, macro)", "AP (one-vs-rest, macro)"} <= set(names)


def test_a_change_whose_interval_holds_zero_is_not_significant_in_table_and_headline():
    d = _digits("multiclass")
    rep = calibration_report(d.test_logits, d.test_labels, "multiclass", fit=(d.calib_logits, d.calib_labels),
                             check=False)
    headers, rows = rep.formatted_table()
    ece = [r for r in rows if r[0] == "ECE"][0]
    ch = rep.intervals["change"]["ece"]
    assert not ch["significant"] and ece[headers.index("95% CI of change")].endswith(", not significant")
    assert "ECE 0.0226 → 0.0205, not significant (95% CI of the change -" in rep.headline()
    assert not any("(-0%)" in c or "(+0%)" in c for r in rows for c in r)
    # a real effect: strongly over-confident scores, calibrated on other rows
    z, y = _data("multiclass", 3000, c=4, scale=6.0)
    rep = calibration_report(z, y, "multiclass", check=False)
    assert rep.intervals["change"]["ece"]["significant"] and "significantly lower (95% CI" in rep.headline()
    _, rows = rep.formatted_table()
    assert "not significant" not in [r for r in rows if r[0] == "ECE"][0][-1]


def test_without_resamples_the_table_has_no_interval_columns():
    z, y = _data("multiclass", 400)
    rep = calibration_report(z, y, "multiclass", check=False, n_resamples=0)
    assert rep.intervals is None and rep.table()[0] == ["metric", "before", "after", "change"]
    assert "lowered ECE" in rep.headline()
    with pytest.raises(ValueError, match="n_resamples"):
        calibration_report(z, y, "multiclass", check=False, n_resamples=1)


def test_a_large_evaluated_set_is_bootstrapped_on_a_uniform_sample_said_in_the_notes(tmp_path):
    z, y = _data("multiclass", 3000, c=3)
    rep = calibration_report(z, y, "multiclass", check=False, max_interval_rows=300)
    assert rep.n_interval_rows <= 300 and rep.intervals["sampled"] and rep.intervals["of_rows"] == rep.n_eval
    notes = " ".join(rep.notes)
    assert f"of the {rep.n_eval:,} evaluated rows" in notes and "uniform sample" in notes
    # the sample does not depend on the chunking: streamed in chunks of 97 rows, the same intervals
    np.save(tmp_path / "s.npy", z)
    np.save(tmp_path / "y.npy", y)
    rs = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multiclass", check=False,
                                   max_interval_rows=300, chunk_rows=97)
    assert rs.n_interval_rows == rep.n_interval_rows
    assert rs.intervals["before"]["nll"] == pytest.approx(rep.intervals["before"]["nll"], rel=1e-9)
    # the budget sets the cap
    from sigmax.report._intervals import interval_rows

    assert interval_rows(64 << 20, 2048, 200) < interval_rows(1 << 30, 2048, 200) <= 1_000_000 // 2048


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_conformal_sets_report_held_out_coverage_and_set_size(task, tmp_path):
    from sigmax.conformal import ConformalClassifier, coverage, set_size

    z, y = _data(task, 1200, c=4)
    rep = calibration_report(z, y, task, check=False, conformal=0.1)
    cf = rep.conformal
    ev = split_mask(0, len(y), 0.5, 0) >= 0.5
    za = np.asarray(rep.calibrator.transform(z[ev]))
    cc = ConformalClassifier(task, alpha=0.1).fit(np.asarray(rep.calibrator.transform(z[~ev])), y[~ev])
    sets = cc.predict_sets(za)
    assert cf["coverage"] == pytest.approx(coverage(sets, y[ev])) and cf["n_calibration"] == int((~ev).sum())
    assert cf["mean_set_size"] == pytest.approx(float(set_size(sets).mean()))
    lo, hi = cf["coverage_ci"]
    assert lo <= cf["coverage"] <= hi and cf["mean_set_size_ci"][0] <= cf["mean_set_size"]
    assert any(n.startswith("Conformal sets (LAC, alpha 0.1") for n in rep.notes)
    assert rep.to_dict()["conformal"]["coverage"] == cf["coverage"]
    text = write_html([rep], tmp_path / "out").read_text()
    assert "Conformal prediction sets" in text and "held-out coverage" in text


def test_conformal_multilabel_is_said_unsupported_and_a_given_calibrator_is_refused():
    z, y = _data("multilabel", 400, c=3)
    rep = calibration_report(z, y, "multilabel", check=False, conformal=0.1)
    assert rep.conformal["supported"] is False and any("not supported for multilabel" in n for n in rep.notes)
    z, y = _data("multiclass", 400, c=3)
    cal = calibration_report(z, y, "multiclass", check=False, n_resamples=0).calibrator
    with pytest.raises(ValueError, match="conformal sets are fitted on the fitting rows"):
        calibration_report(z, y, "multiclass", check=False, calibrator=cal, conformal=0.1)
    with pytest.raises(ValueError, match="alpha"):
        calibration_report(z, y, "multiclass", check=False, conformal=1.5)


@pytest.mark.parametrize("task", ["binary", "multilabel", "multiclass"])
def test_ranking_curves_are_drawn_with_a_caption(task):
    z, y = _data(task, 500, c=3)
    rep = calibration_report(z, y, task, check=False)
    figs = rep.figures()
    title, caption, png = figs["ranking"]
    assert title == "ROC and precision-recall curves" and "AUROC" in caption and png[:4] == b"\x89PNG"
    r = rep.after.extra["ranking"]
    assert len(r.classes) == (1 if task == "binary" else 3)
    ev = split_mask(0, len(y), 0.5, 0) >= 0.5
    if task == "binary":
        assert r.auc[0] == pytest.approx(metrics.roc_auc(np.asarray(rep.calibrator.transform(z[ev])), y[ev], "binary"))


def test_nan_error_names_the_row_of_the_data_not_of_the_chunk():
    rng = np.random.default_rng(5)
    z, y = rng.normal(size=(300, 4)), np.arange(300) % 4
    z[250, 1] = np.nan
    fit = (rng.normal(size=(80, 4)), np.arange(80) % 4)
    with pytest.raises(ValueError, match=r"first: \[250\]"):
        calibration_report(z, y, "multiclass", fit=fit, chunk_rows=100, n_resamples=0)


def test_an_interval_that_misses_its_estimate_is_said_in_a_note():
    """Binned ECEs are biased upward on resamples: where an interval lies off its table value, a note names it."""
    from sigmax.report._report import METRIC_NAMES

    rng = np.random.default_rng(0)
    z = rng.normal(size=(20_000, 10)) * 3
    y = np.argmax(z + rng.gumbel(size=z.shape) * 3, axis=1)
    rep = calibration_report(z, y, "multiclass", check=False)
    off = [f"{METRIC_NAMES[k][0]} ({side})" for side, view in (("before", rep.before), ("after", rep.after))
           for k, (lo, hi) in rep.intervals[side].items() if not lo <= view.metrics[k] <= hi]
    assert off, "this data is chosen so that some calibrated ECE's interval lies above its estimate"
    note = [n for n in rep.notes if "not hold the value in the table" in n]
    assert len(note) == 1 and all(name in note[0] for name in off)
    d = _digits("multiclass")
    rep = calibration_report(d.test_logits, d.test_labels, "multiclass", check=False)
    off = [k for side, view in (("before", rep.before), ("after", rep.after))
           for k, (lo, hi) in rep.intervals[side].items() if not lo <= view.metrics[k] <= hi]
    assert bool(off) == any("not hold the value in the table" in n for n in rep.notes)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_randomized_conformal_coverage_does_not_depend_on_the_chunks(task):
    """A randomized classifier draws each evaluated row's u by its number in the source, so streaming in
    other chunks gives the same held-out coverage (every chunk drew from 0 before), and it is the coverage
    of ``predict_sets(..., rows=those numbers)`` on the evaluated rows at once."""
    from sigmax.conformal import ConformalClassifier, coverage

    z, y = _data(task, 1500, c=4)
    y[::11] = -100  # ignored rows shift the sample numbers
    kw = dict(check=False, n_resamples=0, ignore_index=-100)
    cc = ConformalClassifier(task, method="aps", alpha=0.1, randomized=True, seed=3)
    reps = [calibration_report(z, y, task, conformal=cc, chunk_rows=r, **kw) for r in (97, 400, None)]
    cov = [r.conformal["coverage"] for r in reps]
    assert cov[0] == cov[1] == cov[2]
    ev = (split_mask(0, len(y), 0.5, 0) >= 0.5) & (y != -100)
    fit = (split_mask(0, len(y), 0.5, 0) < 0.5) & (y != -100)
    cal = reps[2].calibrator
    ref = ConformalClassifier(task, method="aps", alpha=0.1, randomized=True, seed=3).fit(
        np.asarray(cal.transform(z[fit])), y[fit])
    sets = ref.predict_sets(np.asarray(cal.transform(z[ev])), rows=np.flatnonzero(ev))
    assert cov[0] == pytest.approx(coverage(sets, y[ev]), rel=1e-12)
    with pytest.raises(ValueError, match="one non-negative row number per row"):
        ref.predict_sets(np.asarray(cal.transform(z[ev])), rows=np.flatnonzero(ev)[:-1])
