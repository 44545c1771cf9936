"""`sigmax check`: findings for a miswired example, none for a correct one; exit codes gate pipelines."""

import json
import subprocess
import sys

import numpy as np
import pytest

import sigmax
from sigmax.cli import main

R = np.random.default_rng(0)
LOGITS = R.normal(size=(40, 5)) * 3
Y = R.integers(0, 5, size=40)


def run(capsys, *args):
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "logits.npy", LOGITS)
    np.save(tmp_path / "probs.npy", sigmax.softmax(LOGITS))
    np.save(tmp_path / "labels.npy", Y)
    np.savez(tmp_path / "out.npz", logits=LOGITS, labels=Y)
    (tmp_path / "labels.csv").write_text("label\n" + "\n".join(map(str, Y)) + "\n")
    return tmp_path


def test_correct_wiring_no_findings(capsys, files):
    code, out, _ = run(capsys, files / "logits.npy", files / "labels.npy", "--task", "multiclass")
    assert code == 0
    assert "no findings: the wiring looks right" in out and "(40, 5)" in out


def test_miswired_double_softmax_exits_1(capsys, files):
    code, out, _ = run(capsys, files / "probs.npy", files / "labels.csv", "--task", "multiclass")
    assert code == 1
    assert "ERROR [double-softmax]" in out and "fix:" in out and "1 error" in out
    assert "0.9048" in out  # log(1 + 4/e), the loss floor for 5 classes


def test_json_output(capsys, files):
    code, out, _ = run(capsys, files / "probs.npy", files / "labels.npy", "--loss", "nll_loss", "--json")
    assert code == 1
    res = json.loads(out)
    assert [f["code"] for f in res["findings"]] == ["probs-as-log-probs"]
    assert res["ok"] is False and res["exit_code"] == 1 and res["scores"]["shape"] == [40, 5]
    assert res["counts"] == {"error": 1, "warning": 0, "info": 0}
    code, out, _ = run(capsys, files / "logits.npy", "--json")
    assert code == 0 and json.loads(out)["findings"] == [] and json.loads(out)["targets"] is None


def test_npz_keys_and_pt(capsys, files):
    code, out, _ = run(capsys, f"{files / 'out.npz'}:logits", f"{files / 'out.npz'}:labels")
    assert code == 0, out
    code, _, err = run(capsys, files / "out.npz")
    assert code == 2 and "'logits', 'labels'" in err and "FILE:KEY" in err
    torch = pytest.importorskip("torch")
    torch.save({"logits": torch.as_tensor(LOGITS), "y": torch.as_tensor(Y)}, files / "s.pt")
    code, out, _ = run(capsys, f"{files / 's.pt'}:logits", f"{files / 's.pt'}:y", "--loss", "CrossEntropyLoss")
    assert code == 0, out


def test_fail_on_warning(capsys, files):
    np.save(files / "sig.npy", sigmax.sigmoid(LOGITS))
    y = (R.random((40, 5)) < 0.5).astype(float)
    np.save(files / "multi.npy", y)
    code, out, _ = run(capsys, files / "sig.npy", files / "multi.npy", "--task", "multilabel")
    assert code == 0 and "WARNING [sigmoid-as-logits]" in out
    code, _, _ = run(capsys, files / "sig.npy", files / "multi.npy", "--task", "multilabel", "--fail-on", "warning")
    assert code == 1


def test_user_errors_exit_2(capsys, files):
    code, _, err = run(capsys, files / "missing.npy")
    assert code == 2 and "sigmax check: error: SCORES:" in err and "no such file" in err
    (files / "s.json").write_text("[]")
    code, _, err = run(capsys, files / "s.json")
    assert code == 2 and "unknown extension" in err
    code, _, err = run(capsys, files / "logits.npy", "--loss", "hinge")
    assert code == 2 and "unknown loss 'hinge'" in err
    code, _, err = run(capsys, files / "logits.npy", "--task", "multiclass", "--axis", "4")
    assert code == 2 and "--axis 4 is out of range" in err


def test_console_script(files):
    # the installed entry point, piped: plain text, exit status as documented
    r = subprocess.run([sys.executable, "-m", "sigmax", "check", str(files / "probs.npy"), str(files / "labels.npy")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "ERROR [double-softmax]" in r.stdout
