"""Hostile and careless input to the ``sigmax`` command: every case exits with a clear one-line
message (status 2 for a usage error), never a traceback, and never touches the data files."""

import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import sigmax
from sigmax.cli import cli_spelling, main
from sigmax.cli._output import (add_fail_on, exit_status, format_change, format_column, format_count,
                                format_number, format_percent, parse_bytes, print_note, print_table)

R = np.random.default_rng(1)
LOGITS = R.normal(size=(30, 4)) * 2
Y = R.integers(0, 4, size=30)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "labels.npy", Y)
    return tmp_path


def one_error_line(err, command):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"sigmax {command}: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------- explain
@pytest.mark.parametrize("argv", [["explain", "-inf", "-inf"], ["explain", "--", "-inf", "-inf"],
                                  ["explain", "-inf,-inf,-inf"]])
def test_explain_all_minus_inf_has_no_distribution(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert "no distribution" in one_error_line(err, "explain")


def test_explain_negative_and_infinite_logits_parse_as_values(capsys):
    code, out, _ = run(capsys, "explain", "-inf", "-1e5", "2", "--json")
    assert code == 0
    res = json.loads(out)
    assert [r["logit_text"] for r in res["classes"]] == ["-inf", "-100000.0", "2.0"]
    assert res["single_label"]["index"] == 2
    code, out, _ = run(capsys, "explain", "-0.3", "-0.7")
    assert code == 0 and "class 0" in out
    code, _, err = run(capsys, "explain", "1", "2", "--temperature", "-1")
    assert code == 2 and "--temperature must be a positive number" in one_error_line(err, "explain")


def test_explain_json_types_do_not_change_with_the_values(capsys):
    _, out_finite, _ = run(capsys, "explain", "3", "-3", "--json")
    _, out_inf, _ = run(capsys, "explain", "inf", "-inf", "--json")
    finite, inf = json.loads(out_finite), json.loads(out_inf)

    def types(o):
        if isinstance(o, dict):
            return {k: types(v) for k, v in o.items()}
        if isinstance(o, list):
            return [types(v) for v in o]
        return "number" if isinstance(o, (int, float)) or o is None else type(o).__name__

    assert types(finite) == types(inf)
    row = inf["classes"][0]
    assert row["logit"] is None and row["logit_text"] == "inf"
    assert inf["classes"][1]["log_softmax"] is None and inf["classes"][1]["log_softmax_text"] == "-inf"
    assert finite["classes"][0]["logit"] == 3.0 and finite["classes"][0]["logit_text"] == "3.0"
    assert "NaN" not in out_inf and "Infinity" not in out_inf  # strict JSON


@pytest.mark.parametrize("name", ["row.txt", "row"])
def test_explain_plot_needs_an_image_extension(capsys, tmp_path, name):
    code, out, err = run(capsys, "explain", "1", "2", "--plot", tmp_path / name)
    line = one_error_line(err, "explain")
    assert code == 2 and "--plot" in line and ".png" in line and ".svg" in line
    assert not (tmp_path / name).exists() and out == ""


def test_explain_plot_is_written_atomically(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "new" / "row.png"
    code, _, _ = run(capsys, "explain", "1", "2", "--plot", target)
    assert code == 0 and target.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in target.parent.iterdir()) == ["row.png"]  # no temporary left behind


# ----------------------------------------------------------------------------- hostile files
def _lying_npy(path):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (1 << 21, 1 << 21)})  # 32 TiB promised
        f.write(b"\0" * 128)


def test_check_npy_header_promising_too_much(capsys, files):
    _lying_npy(files / "lie.npy")
    before = digest(files)
    code, _, err = run(capsys, "check", files / "lie.npy")
    assert code == 2 and "truncated or corrupt" in one_error_line(err, "check")
    assert digest(files) == before


def test_check_text_named_npy(capsys, files):
    (files / "scores.npy").write_text("1,2\n3,4\n")
    code, _, err = run(capsys, "check", files / "scores.npy")
    line = one_error_line(err, "check")
    assert code == 2 and "looks like text; rename it to .csv" in line and "pickled" not in line


def test_check_npz_over_the_memory_budget(capsys, files):
    np.savez_compressed(files / "big.npz", logits=np.zeros((2000, 50)))
    code, _, err = run(capsys, "check", files / "big.npz", "--memory-budget", "100KB")
    line = one_error_line(err, "check")
    assert code == 2 and "over the memory budget of 100,000 bytes" in line and "--memory-budget=BYTES" in line
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        main(["check", str(files / "big.npz"), "--memory-budget", "lots"])
    assert e.value.code == 2 and "--memory-budget" in capsys.readouterr().err


def test_check_pandas_csv_drops_the_index_and_says_so(capsys, files):
    lines = [",0,1,2,3"] + [f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(LOGITS)]
    (files / "df.csv").write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "check", files / "df.csv", files / "labels.npy", "--json")
    assert code == 0, err
    assert json.loads(out)["scores"]["shape"] == [30, 4]
    assert "sigmax check: note:" in err and "pandas index" in err


@pytest.mark.parametrize("text,expect", [("1,2,,3\n4,5,6,7\n", "line 1, column 3 is empty"),
                                         ("1,2\n1e400,3\n", "line 2, column 1: 1e400 is beyond float64's range")])
def test_check_csv_cells(capsys, files, text, expect):
    (files / "s.csv").write_text(text)
    code, _, err = run(capsys, "check", files / "s.csv")
    assert code == 2 and expect in one_error_line(err, "check")


def test_check_pt_with_objects_is_cut_short(capsys, files):
    torch = pytest.importorskip("torch")
    import fractions

    torch.save({"logits": torch.zeros(3, 2), "meta": fractions.Fraction(1, 2)}, files / "m.pt")
    code, _, err = run(capsys, "check", f"{files / 'm.pt'}:logits")
    line = one_error_line(err, "check")
    assert code == 2 and "save tensors only" in line and "weights_only=False" not in line and len(line) < 400


# ----------------------------------------------------------------------------- check's readings
def test_check_says_which_task_it_inferred(capsys, files):
    code, out, _ = run(capsys, "check", files / "logits.npy", files / "labels.npy")
    assert code == 0 and "task multiclass (inferred from the shapes)" in out
    code, out, _ = run(capsys, "check", files / "logits.npy", files / "labels.npy", "--json")
    res = json.loads(out)
    assert res["task"] == "multiclass" and res["task_inferred"] is True and res["ignore_index"] == -100
    code, out, _ = run(capsys, "check", files / "logits.npy", "--task", "multiclass", "--json")
    assert json.loads(out)["task"] == "multiclass" and json.loads(out)["task_inferred"] is False


def test_check_ignore_index(capsys, files):
    y = Y.copy()
    y[:3] = -100
    np.save(files / "y100.npy", y)
    code, out, _ = run(capsys, "check", files / "logits.npy", files / "y100.npy", "--task", "multiclass")
    assert code == 0, out
    code, out, _ = run(capsys, "check", files / "logits.npy", files / "y100.npy", "--task", "multiclass",
                       "--ignore-index", "none")
    assert code == 1 and "target-out-of-range" in out and "--ignore-index -100" in out
    with pytest.raises(SystemExit) as e:
        main(["check", str(files / "logits.npy"), "--ignore-index", "x"])
    assert e.value.code == 2 and "--ignore-index: expected an integer" in capsys.readouterr().err


def test_messages_speak_the_cli(capsys, files):
    code, _, err = run(capsys, "check", files / "logits.npy", "--loss", "BCEWithLogitsLoss", "--task", "multiclass")
    line = one_error_line(err, "check")
    assert code == 2 and "--task multiclass" in line and "task=" not in line


def test_cli_spelling():
    assert cli_spelling("declare space='probs' (or task='binary')") == "declare --space probs (or --task binary)"
    assert cli_spelling("ignore_index=-100, n_bins=15, axis=1") == "--ignore-index -100, --n-bins 15, --axis 1"
    assert cli_spelling("np.save(p, x, axis=1) and key='a'") == "np.save(p, x, axis=1) and key='a'"


def test_finding_codes_survive_rich_in_a_terminal(monkeypatch, files):
    pytest.importorskip("rich")

    class TTY(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    out = TTY()
    monkeypatch.setattr(sys, "stdout", out)
    np.save(files / "probs.npy", sigmax.softmax(LOGITS))
    assert main(["check", str(files / "probs.npy"), str(files / "labels.npy")]) == 1
    assert "[double-softmax]" in out.getvalue()
    tty = TTY()
    print_table(["code"], [["[wrong-axis]"]], title="[title]", stream=tty)
    print_note("[bold]x[/bold]", style="bold", stream=tty)
    assert "[wrong-axis]" in tty.getvalue() and "[title]" in tty.getvalue() and "[bold]x[/bold]" in tty.getvalue()


def test_console_script_has_no_traceback(files):
    _lying_npy(files / "lie.npy")
    for argv in (["explain", "-inf", "-inf"], ["check", str(files / "lie.npy")],
                 ["explain", "1", "--plot", str(files / "x.txt")]):
        r = subprocess.run([sys.executable, "-m", "sigmax", *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ----------------------------------------------------------------------------- shared helpers
def test_fail_on_helper():
    import argparse

    p = argparse.ArgumentParser()
    add_fail_on(p)
    assert p.parse_args([]).fail_on == "error"
    assert p.parse_args(["--fail-on", "never"]).fail_on == "never"
    err = [type("F", (), {"severity": "error"})()]
    assert exit_status(err, "error") == 1 and exit_status(err, "never") == 0 and exit_status([], "warning") == 0
    assert exit_status([{"severity": "warning"}], "warning") == 1 and exit_status([{"severity": "info"}]) == 0


def test_check_fail_on_never(capsys, files):
    np.save(files / "probs.npy", sigmax.softmax(LOGITS))
    code, out, _ = run(capsys, "check", files / "probs.npy", files / "labels.npy", "--fail-on", "never")
    assert code == 0 and "ERROR [double-softmax]" in out


def test_number_formatting():
    assert format_percent(-0.04) == "-0.04%" and "0%" not in format_percent(-1e-9).replace("0.0001", "")
    assert format_change(0.30001, 0.3).endswith("(+0.003%)")
    assert "(-0%)" not in format_change(0.0841, 0.0845) and format_change(0.0841, 0.0845).endswith("(-0.5%)")
    assert format_count(200000000) == "200,000,000" and format_number(1998752) == "1,998,752"
    col = format_column([9.396e-4, 0.0009, 0.5])
    assert not any("e" in c for c in col) and len({len(c.split(".")[1]) for c in col}) == 1
    col = format_column([1e-9, 0.5, float("nan")])
    assert col[:2] == ["1.000e-09", "5.000e-01"] and col[2] == "nan"
    assert parse_bytes("2GiB") == 2 * 2**30 and parse_bytes("100") == 100


def test_table_keeps_one_notation_per_column(capsys):
    print_table(["metric", "value"], [["a", 9.396e-4], ["b", 0.0009], ["n", 200000000]])
    out = capsys.readouterr().out
    assert "9.396e-04" not in out and "0.0009396" in out and "200,000,000" in out


# ----------------------------------------------------------------------------- one list of spellings
@pytest.mark.parametrize("command", ["check", "report"])
def test_cli_takes_the_librarys_spellings(capsys, files, tmp_path, command):
    extra = ["--out", tmp_path / "rep"] if command == "report" else []
    code, _, err = run(capsys, command, files / "logits.npy", files / "labels.npy", "--task", "multi-class",
                       "--space", "logit", *extra)
    assert code == 0, err
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in (command, files / "logits.npy", files / "labels.npy", "--task", "multiclass",
                               "--space", "logitz", *extra)])
    assert exc.value.code == 2
    line = one_error_line(capsys.readouterr().err, command)
    assert "argument --space" in line and "did you mean 'logits'" in line


# ----------------------------------------------------------------------------- calibrate under a budget
def test_calibrate_fit_checks_method_before_reading(capsys, tmp_path):
    (tmp_path / "garbage.npy").write_bytes(b"not an array at all")
    code, _, err = run(capsys, "calibrate", "fit", tmp_path / "garbage.npy", tmp_path / "garbage.npy",
                       "--task", "binary", "--space", "logits", "--method", "vector", "-o", tmp_path / "c.json")
    assert code == 2
    line = one_error_line(err, "calibrate")
    assert "--method vector" in line and "garbage" not in line
    assert not (tmp_path / "c.json").exists()


def test_calibrate_apply_chunks_follow_the_memory_budget(capsys, files, tmp_path, monkeypatch):
    import sigmax.io as sio

    assert run(capsys, "calibrate", "fit", files / "logits.npy", files / "labels.npy", "--task", "multiclass",
               "--space", "logits", "-o", tmp_path / "c.json")[0] == 0
    sizes = []
    real = sio.iter_chunks

    def spy(path, chunk_rows=65536, **kw):
        sizes.append(chunk_rows)
        return real(path, chunk_rows, **kw)

    monkeypatch.setattr(sio, "iter_chunks", spy)
    code, _, err = run(capsys, "calibrate", "apply", tmp_path / "c.json", files / "logits.npy",
                       "-o", tmp_path / "small.npy", "--memory-budget", "1280")  # 4 values x 32 B x 10 rows
    assert code == 0, err
    assert sizes == [10]
    code, _, _ = run(capsys, "calibrate", "apply", tmp_path / "c.json", files / "logits.npy", "-o", tmp_path / "big.npy")
    assert code == 0 and sizes[-1] == 65536
    np.testing.assert_array_equal(np.load(tmp_path / "small.npy"), np.load(tmp_path / "big.npy"))
    code, _, err = run(capsys, "calibrate", "apply", tmp_path / "c.json", files / "logits.npy",
                       "-o", tmp_path / "none.npy", "--memory-budget", "64")
    assert code == 2 and "--memory-budget" in one_error_line(err, "calibrate")
    assert not (tmp_path / "none.npy").exists()
