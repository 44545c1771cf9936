"""Globs of .npy shards for `sigmax report` and `sigmax calibrate`: streamed in one process, in sorted order,
with the same report as the concatenated file; bad shards named before any work (also with --dask)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sigmax.cli import main
from sigmax.report import stream_calibration_report
from sigmax.report._shards import ShardSource, iter_shard_chunks

SIZES = (137, 1, 0, 402, 260)  # uneven, one empty: chunks of 100 or 173 rows cross the boundaries


def _data(task, n, rng):
    if task == "binary":
        y = rng.integers(0, 2, n)
        s = rng.normal(size=n) + 2.5 * (y - 0.5) * 3
        return s, y
    c = 4
    if task == "multiclass":
        y = rng.integers(0, c, n)
        s = rng.normal(size=(n, c)) * 3
        s[np.arange(n), y] += 4.0
        return s, y
    y = rng.integers(0, 2, (n, c))
    return rng.normal(size=(n, c)) * 3 + 4.0 * (y - 0.5), y


def _write(tmp_path, task, sizes=SIZES):
    rng = np.random.default_rng(1)
    n = sum(sizes)
    s, y = _data(task, n, rng)
    np.save(tmp_path / "all_s.npy", s)
    np.save(tmp_path / "all_y.npy", y)
    (tmp_path / "sh").mkdir()
    start = 0
    for i, k in enumerate(sizes):
        np.save(tmp_path / "sh" / f"s-{i:02d}.npy", s[start:start + k])
        np.save(tmp_path / "sh" / f"y-{i:02d}.npy", y[start:start + k])
        start += k
    return s, y


def _same(a, b):
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("title")
    assert da == db


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("chunk", [100, 173])
def test_report_over_shards_equals_the_concatenated_file(tmp_path, task, chunk):
    _write(tmp_path, task)
    kw = {"chunk_rows": chunk, "n_resamples": 20, "show_progress": False, "max_fit_rows": 200,
          "max_interval_rows": 300}
    one = stream_calibration_report(tmp_path / "all_s.npy", tmp_path / "all_y.npy", task, **kw)
    many = stream_calibration_report(tmp_path / "sh" / "s-*.npy", tmp_path / "sh" / "y-*.npy", task, **kw)  # Paths
    assert many.streamed and many.memory.chunk_rows == chunk
    _same(one, many)


def test_chunks_split_rows_as_one_file(tmp_path):
    s, _ = _write(tmp_path, "multiclass")
    src = ShardSource(str(tmp_path / "sh" / "s-*.npy"), str(tmp_path / "sh" / "y-*.npy"), "multiclass")
    assert src.n_rows == sum(SIZES) and src.n_classes == 4 and src.n_shards == len(SIZES)
    starts, blocks = [], []
    for start, b, y in src.chunks(150):
        starts.append(start)
        blocks.append(b)
        assert b.shape[0] == y.shape[0]
    assert [b.shape[0] for b in blocks] == [150] * 5 + [50]
    assert starts == list(range(0, 800, 150))
    np.testing.assert_array_equal(np.concatenate(blocks), s)
    with pytest.raises(ValueError, match="chunk_rows"):
        next(iter_shard_chunks(src.score_shards, 0))


def test_cli_report_over_shards_equals_the_file(tmp_path, capsys):
    _write(tmp_path, "multiclass")
    common = ["--task", "multiclass", "--space", "logits", "--no-html", "--json", "--chunk-rows", "123",
              "--resamples", "0"]
    assert main(["report", str(tmp_path / "all_s.npy"), str(tmp_path / "all_y.npy")] + common) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["report", str(tmp_path / "sh" / "s-*.npy"), str(tmp_path / "sh" / "y-*.npy")] + common) == 0
    many = json.loads(capsys.readouterr().out)
    for d in (one, many):
        d.pop("title")
    assert one == many


def _err(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_shards_are_named_before_any_work(tmp_path, capsys):
    _write(tmp_path, "multiclass")
    sh = tmp_path / "sh"
    np.save(sh / "s-03.npy", np.zeros((402, 5)))  # one class too many
    code, err = _err(capsys, ["report", sh / "s-*.npy", sh / "y-*.npy", "--task", "multiclass", "--space",
                              "logits", "--no-html"])
    assert code == 2 and "s-03.npy" in err and "does not match" in err and len(err.splitlines()) == 1
    np.save(sh / "s-03.npy", np.zeros((402, 4)))
    (sh / "s-04.npy").write_bytes((sh / "s-04.npy").read_bytes()[:200])  # truncated
    code, err = _err(capsys, ["report", sh / "s-*.npy", sh / "y-*.npy", "--task", "multiclass", "--space",
                              "logits", "--no-html"])
    assert code == 2 and "s-04.npy" in err and len(err.splitlines()) == 1
    code, err = _err(capsys, ["report", sh / "none-*.npy", sh / "y-*.npy", "--task", "multiclass", "--space",
                              "logits", "--no-html"])
    assert code == 2 and "none-*.npy" in err and "no file matches" in err
    (sh / "y-02.npy").unlink()
    np.save(sh / "y-09.npy", np.zeros(3, dtype=np.int64))  # rows no longer match
    np.save(sh / "s-04.npy", np.zeros((260, 4)))
    code, err = _err(capsys, ["calibrate", "fit", sh / "s-*.npy", sh / "y-*.npy", "--task", "multiclass", "--space",
                              "logits", "-o", tmp_path / "c.json"])
    assert code == 2 and "rows" in err


@pytest.mark.parametrize("argv", [
    ["report", "S", "Y", "--task", "binary", "--space", "logits", "--dask", "local:2"],
    ["calibrate", "fit", "S", "Y", "--task", "binary", "--space", "logits", "-o", "c.json", "--dask", "local"],
    ["calibrate", "apply", "c.json", "S", "-o", "out.npy", "--dask", "tcp://127.0.0.1:8786"],
])
def test_dask_runs_the_distributed_command_after_checking_every_shard(tmp_path, capsys, argv, monkeypatch):
    """--dask is accepted by report and calibrate; a bad shard is named before a cluster starts or is reached."""
    _write(tmp_path, "binary")
    monkeypatch.chdir(tmp_path)
    if argv[0] == "calibrate" and argv[1] == "apply":
        assert main(["calibrate", "fit", "all_s.npy", "all_y.npy", "--task", "binary", "--space", "logits",
                     "-o", "c.json", "--no-check"]) == 0
        capsys.readouterr()
    (tmp_path / "sh" / "s-03.npy").write_bytes((tmp_path / "sh" / "s-03.npy").read_bytes()[:150])  # truncated
    argv = [{"S": "sh/s-*.npy", "Y": "sh/y-*.npy"}.get(a, a) for a in argv]
    code, err = _err(capsys, argv)
    assert code == 2 and "s-03.npy" in err and err.startswith(f"sigmax {argv[0]}: error: SCORES")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.npy").exists() and (argv[1] != "fit" or not (tmp_path / "c.json").exists())


def test_calibrate_over_shards(tmp_path, capsys):
    s, y = _write(tmp_path, "multiclass")
    sh = tmp_path / "sh"
    fit = ["--task", "multiclass", "--space", "logits", "--no-check", "--json"]
    assert main(["calibrate", "fit", str(tmp_path / "all_s.npy"), str(tmp_path / "all_y.npy"), "-o",
                 str(tmp_path / "one.json")] + fit) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["calibrate", "fit", str(sh / "s-*.npy"), str(sh / "y-*.npy"), "-o", str(tmp_path / "many.json")]
                + fit) == 0
    many = json.loads(capsys.readouterr().out)
    assert one["summary"] == many["summary"] and one["in_sample_after"] == many["in_sample_after"]
    # the budget is checked before the shards are read
    assert main(["calibrate", "fit", str(sh / "s-*.npy"), str(sh / "y-*.npy"), "-o", str(tmp_path / "x.json"),
                 "--memory-budget", "1000"] + fit) == 2
    assert "--memory-budget" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    # apply: one output file with the concatenated rows, equal to applying to the concatenated file
    assert main(["calibrate", "apply", str(tmp_path / "one.json"), str(tmp_path / "all_s.npy"), "-o",
                 str(tmp_path / "one.npy"), "--chunk-rows", "97"]) == 0
    assert main(["calibrate", "apply", str(tmp_path / "one.json"), str(sh / "s-*.npy"), "-o",
                 str(tmp_path / "many.npy"), "--chunk-rows", "97"]) == 0
    capsys.readouterr()
    a, b = np.load(tmp_path / "one.npy"), np.load(tmp_path / "many.npy")
    assert b.shape == s.shape
    np.testing.assert_array_equal(a, b)
    assert main(["calibrate", "apply", str(tmp_path / "one.json"), str(sh / "s-*.npy"), "-o",
                 str(tmp_path / "many.csv"), "--probs"]) == 0
    capsys.readouterr()
    assert np.loadtxt(tmp_path / "many.csv", delimiter=",").shape == s.shape
    np.save(sh / "s-01.npy", np.zeros((1, 3)))  # a bad shard: named, nothing written
    (tmp_path / "many.npy").unlink()
    assert main(["calibrate", "apply", str(tmp_path / "one.json"), str(sh / "s-*.npy"), "-o",
                 str(tmp_path / "many.npy")]) == 2
    err = capsys.readouterr().err
    assert "s-01.npy" in err and not (tmp_path / "many.npy").exists()
