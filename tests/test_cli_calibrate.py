"""`sigmax calibrate fit/apply`: atomic in-place writes, the stored space, validated files, check findings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigmax.calibration import load
from sigmax.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def data(tmp_path):
    """900 rows of over-confident 4-class logits, their labels, and a temperature calibrator fitted on them."""
    rng = np.random.default_rng(0)
    n, c = 900, 4
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 1.5
    z *= 4.0
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, z, y


@pytest.fixture
def cal_file(data, capsys):
    d, _, _ = data
    code, _out, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass",
                           "--space", "logits", "-o", d / "cal.json")
    assert code == 0, err
    return d / "cal.json"


def _one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


# ------------------------------------------------------------------------------------ atomic apply
def test_in_place_apply_equals_apply_elsewhere(data, cal_file, capsys):
    d, z, _ = data
    code, _, err = _run(capsys, "calibrate", "apply", cal_file, d / "z.npy", "-o", d / "other.npy",
                        "--chunk-rows", "100")
    assert code == 0, err
    expected = np.load(d / "other.npy")
    np.testing.assert_allclose(expected, load(cal_file).transform(z), rtol=1e-12)
    code, out, err = _run(capsys, "calibrate", "apply", cal_file, d / "z.npy", "-o", d / "z.npy",
                          "--chunk-rows", "100")
    assert code == 0, err
    got = np.load(d / "z.npy")
    assert got.shape == (900, 4)
    np.testing.assert_array_equal(got, expected)  # not 800 zero rows after the first chunk
    assert "wrote calibrated logits (900, 4)" in out and "output space: logits" in out
    assert sorted(p.name for p in d.iterdir()) == ["cal.json", "other.npy", "y.npy", "z.npy"]  # no temp file


def test_streamed_csv_and_probs_equal_the_whole_array(data, cal_file, capsys):
    d, z, _ = data
    code, _, err = _run(capsys, "calibrate", "apply", cal_file, d / "z.npy", "-o", d / "p.csv", "--probs",
                        "--chunk-rows", "64")
    assert code == 0, err
    p = np.loadtxt(d / "p.csv", delimiter=",")
    assert p.shape == (900, 4)
    np.testing.assert_allclose(p, load(cal_file).predict_proba(z), rtol=1e-8)


def test_interrupted_apply_leaves_the_input_whole(data, cal_file, capsys, monkeypatch):
    from sigmax.calibration import Calibrator

    d, z, _ = data
    before = (d / "z.npy").read_bytes()
    real = Calibrator.transform
    calls = []

    def flaky(self, scores, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # interrupted in the middle of the file
        return real(self, scores, **kw)

    monkeypatch.setattr(Calibrator, "transform", flaky)
    try:
        code = main([str(a) for a in ("calibrate", "apply", cal_file, d / "z.npy", "-o", d / "z.npy",
                                      "--chunk-rows", "100")])
    except KeyboardInterrupt:
        code = None
    assert code != 0 and len(calls) == 4
    assert (d / "z.npy").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["cal.json", "y.npy", "z.npy"]


def test_outputs_into_missing_folders_and_directories(data, cal_file, capsys):
    d, z, y = data
    code, _, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "logits", "-o", d / "new" / "deeper" / "cal.json")
    assert code == 0, err
    assert load(d / "new" / "deeper" / "cal.json").task == "multiclass"
    code, _, err = _run(capsys, "calibrate", "apply", cal_file, d / "z.npy", "-o", d / "out" / "z.npy")
    assert code == 0, err
    assert np.load(d / "out" / "z.npy").shape == z.shape
    (d / "adir.npy").mkdir()
    code, _, err = _run(capsys, "calibrate", "apply", cal_file, d / "z.npy", "-o", d / "adir.npy")
    _one_line_error(code, err, f"-o {d / 'adir.npy'}: is a directory")
    (d / "bdir.json").mkdir()
    code, _, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "logits", "-o", d / "bdir.json")
    _one_line_error(code, err, f"-o {d / 'bdir.json'}: is a directory")


# ------------------------------------------------------------------------------------ stored space
def test_apply_reads_scores_in_the_stored_space(data, capsys):
    d, z, y = data
    p = _softmax(z)
    np.save(d / "p.npy", p)
    code, _, err = _run(capsys, "calibrate", "fit", d / "p.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "probs", "-o", d / "calp.json")
    assert code == 0, err
    cal = load(d / "calp.json")
    assert cal.space_ == "probs"
    code, out, err = _run(capsys, "calibrate", "apply", d / "calp.json", d / "p.npy", "-o", d / "out.npy",
                          "--chunk-rows", "100")
    assert code == 0, err
    got = np.load(d / "out.npy")
    np.testing.assert_allclose(got, cal.transform(p, space="probs"), rtol=1e-12)
    # calibrated logits of probabilities are log p / T (up to a constant), never p / T
    t = cal.scaler.temperature
    np.testing.assert_allclose(_softmax(got), _softmax(np.log(p) / t), rtol=1e-9, atol=1e-15)
    assert not np.allclose(got, p / t)
    assert "read as probs" in out
    code, _, err = _run(capsys, "calibrate", "apply", d / "calp.json", d / "p.npy", "-o", d / "out.npy",
                        "--space", "probs")
    assert code == 0, err
    code, _, err = _run(capsys, "calibrate", "apply", d / "calp.json", d / "p.npy", "-o", d / "out2.npy",
                        "--space", "logits")
    _one_line_error(code, err, "--space logits", "--space probs")
    assert not (d / "out2.npy").exists()


# -------------------------------------------------------------------------------- validated files
def _damage(src, dst, edit):
    d = json.loads(src.read_text())
    edit(d)
    dst.write_text(json.dumps(d))
    return dst


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["scaler"]["params"].update(temperature=-1.0), "params.temperature"),
    (lambda d: d["scaler"]["params"].update(temperature=0.0), "params.temperature"),
    (lambda d: d["scaler"]["params"].update(temperature=float("nan")), "params.temperature"),
    (lambda d: d["scaler"]["params"].update(temperature=[1.0, 2.0]), "params.temperature"),
    (lambda d: d["scaler"]["params"].update(temperature="2"), "params.temperature"),
    (lambda d: d["scaler"].update(n_classes=3), "n_classes"),
    (lambda d: d.update(method="isotonic"), "method"),
    (lambda d: d.update(task="multi"), "task"),
    (lambda d: d.update(format=2), "format 2"),
    (lambda d: d["scaler"]["options"].update(gtol=-1), "options"),
])
def test_invalid_calibrator_files_are_refused(data, cal_file, capsys, edit, field):
    d, _, _ = data
    bad = _damage(cal_file, d / "bad.json", edit)
    code, _, err = _run(capsys, "calibrate", "apply", bad, d / "z.npy", "-o", d / "o.npy")
    _one_line_error(code, err, f"CALIBRATOR.json {bad}", field)
    assert not (d / "o.npy").exists()


# ------------------------------------------------------------------------------------ check findings
def test_fit_exits_1_on_an_error_finding_and_saves_nothing(data, capsys):
    d, z, _ = data
    np.save(d / "p.npy", _softmax(z))  # softmax outputs declared as logits
    argv = ["calibrate", "fit", d / "p.npy", d / "y.npy", "--task", "multiclass", "--space", "logits",
            "-o", d / "c.json"]
    code, out, err = _run(capsys, *argv)
    assert code == 1, err
    assert out.splitlines()[0].startswith("check: error"), out
    assert "not saved" in out and not (d / "c.json").exists()
    code, out, err = _run(capsys, *argv, "--json")
    res = json.loads(out)
    assert code == 1 and res["exit_code"] == 1 and not res["saved"]
    assert any(f["severity"] == "error" for f in res["findings"])
    code, out, err = _run(capsys, *argv, "--fail-on", "never")
    assert code == 0, err
    assert out.startswith("check: error") and (d / "c.json").exists()


def test_fail_on_warning_and_clean_inputs(data, capsys):
    d, _, _ = data
    code, out, _ = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "logits", "-o", d / "c.json", "--fail-on", "warning", "--json")
    res = json.loads(out)
    assert res["findings"] == [] and code == 0 and res["saved"]


def test_fit_takes_ignore_index_like_check(data, capsys):
    d, z, y = data
    y2 = y.copy()
    y2[::7] = -100
    np.save(d / "y2.npy", y2)
    code, out, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y2.npy", "--task", "multiclass",
                          "--space", "logits", "-o", d / "c.json", "--json")
    assert code == 0, err
    keep = y2 != -100
    assert json.loads(out)["rows"] == int(keep.sum())
    np.save(d / "zk.npy", z[keep])
    np.save(d / "yk.npy", y[keep])
    code, _, err = _run(capsys, "calibrate", "fit", d / "zk.npy", d / "yk.npy", "--task", "multiclass",
                        "--space", "logits", "-o", d / "ck.json")
    assert code == 0, err
    assert load(d / "c.json").scaler.temperature == load(d / "ck.json").scaler.temperature
    code, _, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y2.npy", "--task", "multiclass",
                        "--space", "logits", "-o", d / "c.json", "--ignore-index", "-1")
    _one_line_error(code, err, "-100")


def test_fit_errors_are_one_line(data, capsys):
    d, _, _ = data
    code, _, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "logits", "--tune", "f1", "-o", d / "c.json")
    _one_line_error(code, err, "--tune f1 is for binary and multilabel")
    code, _, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                        "logits", "--method", "platt", "-o", d / "c.json")
    _one_line_error(code, err, "--method platt is for --task binary or --task multilabel only")


@pytest.mark.parametrize("task,method", [("multiclass", m) for m in ("isotonic", "histogram", "beta", "dirichlet",
                                                                      "auto")]
                         + [("binary", m) for m in ("isotonic", "histogram", "beta", "platt")])
def test_every_method_the_report_fits_round_trips_through_fit_apply_and_report(tmp_path, capsys, task, method):
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 4 if task == "multiclass" else 2, n)
    if task == "multiclass":
        z = rng.normal(size=(n, 4))
        z[np.arange(n), y] += 1.5
    else:
        z = rng.normal(size=n) + 1.2 * (2 * y - 1)
    z = 3.0 * z
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    code, out, err = _run(capsys, "calibrate", "fit", tmp_path / "z.npy", tmp_path / "y.npy", "--task", task,
                          "--space", "logits", "--method", method, "-o", tmp_path / "c.json")
    assert code == 0, err
    cal = load(tmp_path / "c.json")
    assert method == "auto" or cal.method == method
    code, out, err = _run(capsys, "calibrate", "apply", tmp_path / "c.json", tmp_path / "z.npy", "-o",
                          tmp_path / "out.npy", "--chunk-rows", "128")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), cal.transform(z), rtol=1e-10, atol=1e-12)
    # the report fits the same method, saves it, and applies the saved file to every row
    code, out, err = _run(capsys, "report", tmp_path / "z.npy", tmp_path / "y.npy", "--task", task, "--space",
                          "logits", "--method", method, "--no-html", "--resamples", "0", "--save-calibrator",
                          tmp_path / "r.json")
    assert code == 0, err
    saved = load(tmp_path / "r.json")
    assert saved.describe().split(",")[0] in out
    code, out, err = _run(capsys, "report", tmp_path / "z.npy", tmp_path / "y.npy", "--task", task, "--space",
                          "logits", "--calibrator", tmp_path / "r.json", "--no-html", "--json", "--resamples", "0")
    assert code == 0, err
    d = json.loads(out)
    assert d["method"] == saved.method and d["n_eval"] == n


def test_fit_names_every_method_when_given_none(data, capsys):
    d, _z, _y = data
    code, out, err = _run(capsys, "calibrate", "fit", d / "z.npy", d / "y.npy", "--task", "multiclass", "--space",
                          "logits", "--method", "none", "-o", d / "c.json")
    assert code == 2 and "isotonic" in err and "dirichlet" in err
