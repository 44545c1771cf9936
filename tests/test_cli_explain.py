"""`sigmax explain`: the spreadsheet of one row, plain text when piped, JSON, plot, errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from sigmax.cli import main
from sigmax.cli.explain import exp_text


def run(capsys, *args):
    code = main(["explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_builtin_example(capsys):
    code, out, _ = run(capsys)
    assert code == 0
    for name in ("cat", "dog", "cow", "zebra"):
        assert name in out
    assert "single-label (softmax, exactly one class is true): cat" in out
    assert "multi-label" in out and "sigmoid >= 0.5: cat, dog, zebra" in out
    assert "log_softmax" in out


def test_two_classes_show_the_binary_equivalence(capsys):
    code, out, _ = run(capsys, "-0.3", "-0.7")
    assert code == 0
    assert "0.5987" in out and "0.4013" in out and "0.4256" in out and "0.3318" in out  # seed 000, first row
    assert "two classes = one binary logit" in out and "sigmoid(-0.4000) = 0.4013" in out


def test_json_output(capsys):
    code, out, _ = run(capsys, "0.1,0.2,100", "--json", "--labels", "a,b,c")
    res = json.loads(out)
    assert code == 0
    assert [r["class"] for r in res["classes"]] == ["a", "b", "c"]
    assert res["single_label"]["class"] == "c"
    assert math.isclose(sum(r["softmax"] for r in res["classes"]), 1.0)
    assert res["classes"][0]["softmax"] > 0  # exp(-99.9) relative, not 0


def test_exp_shown_where_float32_and_float64_overflow(capsys):
    code, out, _ = run(capsys, "1000", "0")
    assert "1.970e+434" in out and "float32: inf" in out
    assert exp_text(100.0) == "2.688e+43"
    assert exp_text(-800.0).endswith("e-348")


def test_threshold_and_temperature(capsys):
    _, out, _ = run(capsys, "2", "0.5", "-1", "--threshold", "0.6", "--json")
    assert json.loads(out)["multi_label"]["classes"] == ["class 0", "class 1"]
    _, out, _ = run(capsys, "2", "0", "--temperature", "2", "--json")
    res = json.loads(out)
    assert math.isclose(res["classes"][0]["softmax"], 1 / (1 + math.exp(-1)))


@pytest.mark.parametrize("args,message", [
    (["1", "x"], "LOGIT 'x' is not a number"),
    ([","], "no logits given"),
    (["1", "2", "--labels", "a"], "--labels names 1 classes but 2 logits"),
    (["1", "2", "--threshold", "1.5"], "--threshold must be a probability"),
    (["1", "2", "--temperature", "0"], "--temperature must be a positive"),
])
def test_bad_input_is_one_line(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


def test_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "row.png"
    code, out, _ = run(capsys, "--plot", str(path))
    assert code == 0 and path.stat().st_size > 5000
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.std() > 0.05  # not blank


def test_console_script_plain_text_when_piped():
    res = subprocess.run([sys.executable, "-m", "sigmax", "explain", "-0.3", "-0.7"], capture_output=True, text=True,
                         check=True)
    assert "\x1b[" not in res.stdout  # no colour codes when piped
    assert res.stdout.splitlines()[0] == "one row of logits, read both ways"
    header = res.stdout.splitlines()[1].split()
    assert header == ["class", "logit", "exp(logit)", "softmax", "sigmoid", "log_softmax"]
    first = res.stdout.splitlines()[3].split()  # "*" marks the class a single-label reading picks
    assert first[:3] == ["*", "class", "0"] and np.isclose(float(first[5]), 0.5987)
