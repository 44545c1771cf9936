"""`sigmax demo`: offline, on scikit-learn's digits; calibration lowers ECE on held-out data."""

from __future__ import annotations

import re

import pytest

from sigmax.cli import main

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def test_demo_lowers_ece_on_held_out_digits_and_writes_the_report(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is relative: nothing is written outside tmp_path
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "digits, multiclass" in out and "digits, multilabel" in out
    eces = [(float(a), float(b)) for a, b in re.findall(r"^\*?\s*ECE\s+(\d\.\d+)\s+\S+…\S+\s+(\d\.\d+)", out, flags=re.MULTILINE)]
    assert len(eces) == 2
    for before, after in eces:
        assert after < before
    assert out.count("95% CI of the change") == 2 and "697 held-out rows" in out
    assert "not significant" in out and "significantly lower" in out  # multiclass: noise; multilabel: real
    assert "200 resamples of the 697 evaluated rows" in out
    page = tmp_path / "sigmax-report" / "index.html"
    assert f"report: {page.relative_to(tmp_path)}" in out
    html = page.read_text()
    assert html.count('class="card figure"') == 9 == len(list(page.parent.glob("*.png")))
    assert 'id="multiclass"' in html and 'id="multilabel"' in html
    assert (page.parent / "multilabel-thresholds.png").exists()
    assert re.search(r"done in \d+\.\d s", out)


def test_demo_json_and_errors(tmp_path, capsys):
    assert main(["demo", "--tasks", "binary", "--no-html", "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    (rep,) = res["reports"]
    assert rep["task"] == "binary" and rep["after"]["nll"] < rep["before"]["nll"] and res["html"] is None
    assert main(["demo", "--tasks", "multiclas"]) == 2
    assert "use multiclass, multilabel and/or binary" in capsys.readouterr().err
