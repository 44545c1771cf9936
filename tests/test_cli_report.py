"""`sigmax report` and `sigmax calibrate fit/apply` end to end on files, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigmax.calibration import load
from sigmax.cli import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n, c = 800, 4
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 1.5
    z *= 4.0  # over-confident
    np.save(tmp_path / "s.npy", z)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, z, y


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_prints_the_table_writes_html_and_saves_the_calibrator(files, capsys):
    d, z, _y = files
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--out", d / "rep", "--save-calibrator", d / "cal.json", "--bins", "10")
    assert code == 0, err
    lines = out.splitlines()
    ece = next(ln for ln in lines if ln.lstrip("* ").startswith("ECE"))
    toks = ece.split()  # * ECE before CI after CI change ...
    before, after = (float(toks[2]), float(toks[4])) if ece.startswith("*") else (None, None)
    assert before > after
    assert f"ECE {toks[2]} → {toks[4]}, " in out and "95% CI of the change" in out and "on rows it never saw" in out
    assert f"report: {d / 'rep' / 'index.html'}" in out
    assert (d / "rep" / "index.html").exists() and len(list((d / "rep").glob("*.png"))) == 4
    cal = load(d / "cal.json")
    assert cal.task == "multiclass" and cal.method == "temperature"

    # apply the saved calibrator to new scores: the logits are the calibrator's transform
    code, out, err = _run(capsys, "calibrate", "apply", d / "cal.json", d / "s.npy", "-o", d / "out.npy",
                          "--chunk-rows", "100")
    assert code == 0, err
    np.testing.assert_allclose(np.load(d / "out.npy"), cal.transform(z), rtol=1e-12)
    assert "wrote calibrated logits (800, 4)" in out
    code, out, err = _run(capsys, "calibrate", "apply", d / "cal.json", d / "s.npy", "-o", d / "p.csv", "--probs")
    assert code == 0, err
    p = np.loadtxt(d / "p.csv", delimiter=",")
    np.testing.assert_allclose(p, cal.predict_proba(z), rtol=1e-8)

    # and a report that applies it to every row
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--calibrator", d / "cal.json", "--no-html", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_eval"] == 800 and res["n_fit"] == 0 and res["html"] is None


def test_streamed_report_gives_the_same_numbers(files, capsys):
    d, _, _ = files
    args = ["report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits", "--no-html", "--json",
            "--no-check"]
    code, out, _ = _run(capsys, *args)
    whole = json.loads(out)
    code2, out2, _ = _run(capsys, *args, "--chunk-rows", "64")
    streamed = json.loads(out2)
    # a .npy is always memory-mapped: the chunk size changes nothing but the memory used
    assert code == code2 == 0 and streamed["streamed"] and whole["streamed"]
    assert streamed["memory"]["chunk_rows"] == 64 and whole["memory"]["chunk_rows"] > 64
    for side in ("before", "after"):
        for k, v in whole[side].items():
            assert streamed[side][k] == pytest.approx(v, rel=1e-7, abs=1e-12), (side, k)


def test_calibrate_fit_for_multilabel_probabilities_from_csv(tmp_path, capsys):
    rng = np.random.default_rng(1)
    y = (rng.random((400, 3)) < 0.4).astype(int)
    z = (rng.normal(size=(400, 3)) + 1.2 * (2 * y - 1)) * 3
    p = 1 / (1 + np.exp(-z))
    np.savetxt(tmp_path / "p.csv", p, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", fmt="%d")
    code, out, err = _run(capsys, "calibrate", "fit", tmp_path / "p.csv", tmp_path / "y.csv", "--task", "multilabel",
                          "--space", "probs", "-o", tmp_path / "c.json")
    assert code == 0, err
    assert "tuned thresholds:" in out and "in-sample" in out
    cal = load(tmp_path / "c.json")
    assert cal.method == "temperature" and cal.thresholds.shape == (3,)


@pytest.mark.parametrize("argv, message", [
    (["report", "{d}/missing.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits"], "missing.npy: no such file"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--fit-fraction", "2"],
     "--fit-fraction must be in (0, 1]"),
    (["report", "{d}/s.npy", "{d}/bad.npy", "--task", "multiclass", "--space", "logits", "--no-html"],
     "LABELS has 5 rows but SCORES has 800"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "probs", "--no-html"],
     "declared --space probs"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--out", "{d}/y.npy"],
     "--out {d}/y.npy: is a file, not a folder"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--memory-budget", "lots"],
     "--memory-budget 'lots' is not a size"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--memory-budget", "1K"],
     "--memory-budget '1K' is below the minimum"),
    (["report", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--calibrator", "{d}/nope.json"],
     "--calibrator {d}/nope.json: no such file"),
    (["calibrate", "fit", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "-o", "{d}/c.txt"],
     "a calibrator is written as JSON"),
    (["calibrate", "fit", "{d}/s.npy", "{d}/y.npy", "--task", "multiclass", "--space", "logits", "--tune", "f1",
      "-o", "{d}/c.json"], "--tune f1 is for binary and multilabel"),
    (["calibrate", "apply", "{d}/y.npy", "{d}/s.npy", "-o", "{d}/o.npy"], "not a sigmax calibrator file"),
])
def test_bad_input_is_one_line_with_the_fix(files, capsys, argv, message):
    d, _, _ = files
    np.save(d / "bad.npy", np.zeros(5, dtype=int))
    code, _out, err = _run(capsys, *[a.format(d=d) for a in argv])
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message.format(d=d) in err, err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("report", "calibrate", "demo"):
        assert name in out
    with pytest.raises(SystemExit) as e:
        main(["report", "a.npy", "b.npy"])
    assert e.value.code == 2
    assert "--task" in capsys.readouterr().err


def test_check_findings_come_first_with_their_fix(files, capsys):
    d, z, _y = files
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.save(d / "p.npy", p / p.sum(axis=1, keepdims=True))
    code, out, err = _run(capsys, "report", d / "p.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--out", d / "rep")
    # an error-level finding (softmax outputs declared as logits): printed first, exit 1 as `sigmax check`
    assert code == 1, err
    first = out.splitlines()[0]
    assert first.startswith("check: error [double-softmax]") and "\n  fix: " in out
    assert "cannot be right until the error" in out and "lowered ECE" not in out
    assert "95% CI of the change" not in out  # no verdict on numbers that cannot be right
    html = (d / "rep" / "index.html").read_text()
    assert '<span class="sev error">error</span><code>double-softmax</code>' in html
    assert "Check failed: double-softmax" in html
    # --fail-on as in `sigmax check`: never -> 0; warning -> 1 too
    code, _out, _err = _run(capsys, "report", d / "p.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                            "--no-html", "--fail-on", "never")
    assert code == 0
    code, out, _err = _run(capsys, "report", d / "p.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                           "--no-html", "--json")
    assert code == 1 and json.loads(out)["exit_code"] == 1


def test_ignore_index_rows_are_left_out_as_in_check(files, capsys):
    d, z, y = files
    y2 = y.copy()
    y2[:50] = -100
    np.save(d / "y2.npy", y2)
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y2.npy", "--task", "multiclass", "--space", "logits",
                          "--no-html", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n_ignored"] > 0 and any("ignore_index" in n for n in res["notes"])
    code, _out, err = _run(capsys, "report", d / "s.npy", d / "y2.npy", "--task", "multiclass", "--space", "logits",
                           "--no-html", "--ignore-index", "-1")
    assert code == 2 and "class index -100" in err and len(err.strip().splitlines()) == 1


def test_out_naming_a_file_leaves_it_alone(files, capsys):
    d, _z, _y = files
    (d / "taken").write_text("keep me")
    code, _out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                           "--out", d / "taken")
    assert code == 2 and "is a file, not a folder" in err
    assert (d / "taken").read_text() == "keep me"


@pytest.mark.parametrize("argv, message", [
    (["--task", "binary", "--method", "vector"], "--method vector is for --task multiclass only, not --task binary"),
    (["--task", "multiclass", "--method", "platt"], "--method platt is for --task binary or --task multilabel only"),
    (["--task", "multiclass", "--tune", "f1"], "--tune f1 is for binary and multilabel"),
])
def test_a_method_the_task_cannot_use_exits_2_before_the_scores_are_read(tmp_path, capsys, monkeypatch, argv,
                                                                          message):
    import sigmax.io

    (tmp_path / "s.csv").write_text("not,a\nscore,file\n")  # reading it would be a different error
    (tmp_path / "y.csv").write_text("0\n1\n")
    read = []
    for name in ("load_scores", "load_labels", "load_array", "iter_chunks", "count_rows"):
        original = getattr(sigmax.io, name)
        monkeypatch.setattr(sigmax.io, name, lambda *a, _o=original, **k: read.append(a) or _o(*a, **k))
    code, _out, err = _run(capsys, "report", tmp_path / "s.csv", tmp_path / "y.csv", "--space", "logits", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert read == []


def test_report_on_a_csv_over_the_budget_stops_before_reading_and_never_says_memory_mapped(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 100_000)
    np.savetxt(tmp_path / "s.csv", rng.normal(size=(100_000, 4)), delimiter=",", fmt="%.6f")
    np.savetxt(tmp_path / "y.csv", y, fmt="%d")
    code, _out, err = _run(capsys, "report", tmp_path / "s.csv", tmp_path / "y.csv", "--task", "multiclass",
                           "--space", "logits", "--no-html", "--memory-budget", "16M")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{tmp_path / 's.csv'}: reading this text file whole would take about" in err
    assert "over the memory budget of 16,777,216 bytes (16 MiB)" in err and "convert it to .npy" in err
    assert "--memory-budget=BYTES" in err
    # within the budget: read whole, and the report does not call it memory-mapped
    small = tmp_path / "small.csv"
    np.savetxt(small, rng.normal(size=(300, 4)), delimiter=",")
    np.savetxt(tmp_path / "ys.csv", y[:300], fmt="%d")
    code, out, _err = _run(capsys, "report", small, tmp_path / "ys.csv", "--task", "multiclass", "--space", "logits",
                           "--no-html", "--json", "--chunk-rows", "50")
    d = json.loads(out)
    assert code == 0 and d["streamed"] is False and not any("memory-mapped" in n for n in d["notes"])


def test_the_stream_door_says_memory_mapped_only_for_a_npy(tmp_path):
    from sigmax.report import stream_calibration_report

    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(300, 3)), rng.integers(0, 3, 300)
    np.savetxt(tmp_path / "s.csv", z, delimiter=",")
    np.save(tmp_path / "s.npy", z)
    np.save(tmp_path / "y.npy", y)
    csv = stream_calibration_report(tmp_path / "s.csv", tmp_path / "y.npy", "multiclass", chunk_rows=64, check=False)
    npy = stream_calibration_report(tmp_path / "s.npy", tmp_path / "y.npy", "multiclass", chunk_rows=64, check=False)
    assert not csv.streamed and not any("memory-mapped" in n for n in csv.notes)
    assert npy.streamed and any("memory-mapped" in n for n in npy.notes)
    for k, v in npy.before.metrics.items():
        np.testing.assert_allclose(csv.before.metrics[k], v, rtol=1e-9)


def test_report_json_carries_intervals_and_the_conformal_section(files, capsys):
    d, _z, _y = files
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--no-html", "--json", "--conformal", "0.1", "--conformal-method", "aps",
                          "--resamples", "50")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["intervals"]["n_resamples"] == 50 and set(rep["intervals"]["change"]["ece"]) >= {
        "estimate", "low", "high", "share_not_better", "significant"}
    assert rep["conformal"]["method"] == "aps" and 0 < rep["conformal"]["coverage"] <= 1
    assert rep["conformal"]["coverage_ci"][0] <= rep["conformal"]["coverage"] <= rep["conformal"]["coverage_ci"][1]
    assert "ece_equal_mass" in rep["before"] and "smooth_ece" in rep["after"] and "roc_auc" in rep["after"]
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--no-html", "--conformal", "0.1")
    assert code == 0 and "Conformal sets (LAC, alpha 0.1" in out and "95% CI of change" in out


@pytest.mark.parametrize("extra,message", [
    (["--conformal", "1.5"], "--conformal must be a miscoverage level in (0, 1)"),
    (["--conformal", "0.1", "--method", "none"], "--conformal fits its sets on the fitting rows"),
    (["--resamples", "1"], "--resamples must be 0"),
])
def test_report_interval_and_conformal_flags_fail_in_one_line(files, capsys, extra, message):
    d, _z, _y = files
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--no-html", *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_report_without_resamples_keeps_the_plain_table(files, capsys):
    d, _z, _y = files
    code, out, err = _run(capsys, "report", d / "s.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
                          "--no-html", "--resamples", "0")
    assert code == 0 and "95% CI" not in out and "lowered ECE" in out
