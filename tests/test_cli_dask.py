"""`sigmax report`, `calibrate fit` and `calibrate apply` on Dask: .npy shards or Zarr arrays, on a cluster
(`--dask`) or the local scheduler (Zarr); the results equal the one-process ones; every bad input is named
before any work, with exit 2 and one line; an interrupted apply leaves no partial output."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from sigmax.cli import main

pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

SIZES = (700, 1, 0, 1299)  # uneven, one empty


def _data(n, rng, c=4):
    y = rng.integers(0, c, n)
    s = rng.normal(size=(n, c)) * 3
    s[np.arange(n), y] += 4.0
    return s, y


@pytest.fixture(scope="module")
def cluster(dask_client):
    """The module's cluster as the CLI names it (``--dask tcp://...``) and its client."""
    return dask_client.scheduler.address, dask_client


@pytest.fixture()
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s, y = _data(sum(SIZES), np.random.default_rng(3))
    np.save("all_s.npy", s)
    np.save("all_y.npy", y)
    os.mkdir("sh")
    start = 0
    for i, k in enumerate(SIZES):
        np.save(f"sh/s-{i:02d}.npy", s[start:start + k])
        np.save(f"sh/y-{i:02d}.npy", y[start:start + k])
        start += k
    zarr.create_array("s.zarr", shape=s.shape, chunks=(333, 4), dtype="float64")[:] = s
    g = zarr.open_group("y.zarr", mode="w")
    g.create_array("val/labels", shape=y.shape, chunks=(500,), dtype="int64")[:] = y
    return s, y


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def _json(capsys, argv):
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    d = json.loads(out)
    d.pop("title", None)
    return d


REPORT = ["--task", "multiclass", "--space", "logits", "--no-html", "--json", "--chunk-rows", "400",
          "--resamples", "0"]


def _same_numbers(a, b):
    """The same report: every metric to float rounding (tree sums add in another order), the rest equal."""
    for side in ("before", "after"):
        assert a[side].keys() == b[side].keys()
        for k, v in a[side].items():
            assert b[side][k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), (side, k)
    rest = set(a) - {"before", "after", "notes", "intervals", "after_tuned_thresholds", "headline"}
    assert {k: a[k] for k in rest} == {k: b[k] for k in rest}
    assert any("on Dask" in n for n in b["notes"])


def test_report_over_zarr_equals_the_file(data, capsys):
    one = _json(capsys, ["report", "all_s.npy", "all_y.npy"] + REPORT)
    z = _json(capsys, ["report", "s.zarr", "y.zarr:val/labels"] + REPORT)  # no --dask: the local scheduler
    assert z["n_eval"] == one["n_eval"] and z["calibrator"] == one["calibrator"]
    _same_numbers(one, z)


@pytest.mark.slow
def test_report_over_shards_on_a_local_cluster_equals_the_file(data, capsys):
    one = _json(capsys, ["report", "all_s.npy", "all_y.npy"] + REPORT)
    many = _json(capsys, ["report", "sh/s-*.npy", "sh/y-*.npy", "--dask", "local:2"] + REPORT)
    assert many["n_eval"] == one["n_eval"] and many["calibrator"] == one["calibrator"]
    _same_numbers(one, many)


def test_calibrate_fit_and_apply_on_a_cluster(data, capsys, cluster):
    address, _ = cluster
    s, _ = data
    fit = ["--task", "multiclass", "--space", "logits", "--json", "--method", "temperature"]
    one = _json(capsys, ["calibrate", "fit", "all_s.npy", "all_y.npy", "-o", "one.json"] + fit)
    many = _json(capsys, ["calibrate", "fit", "sh/s-*.npy", "sh/y-*.npy", "-o", "many.json", "--dask", address] + fit)
    assert many["saved"] and os.path.exists("many.json")
    t1, t2 = (json.load(open(f))["scaler"]["params"]["temperature"] for f in ("one.json", "many.json"))
    assert t2 == pytest.approx(t1, rel=1e-6)
    for k, v in one["in_sample_after"].items():
        assert many["in_sample_after"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    # apply: one .npy written by the workers at their offsets, equal to the one-process output
    assert _run(capsys, ["calibrate", "apply", "one.json", "all_s.npy", "-o", "ref.npy"])[0] == 0
    code, _, err = _run(capsys, ["calibrate", "apply", "one.json", "sh/s-*.npy", "-o", "out/cal.npy", "--dask", address,
                                 "--chunk-rows", "300"])
    assert code == 0, err
    np.testing.assert_array_equal(np.load("out/cal.npy"), np.load("ref.npy"))
    assert os.listdir("out") == ["cal.npy"]  # no temporary file left
    # in place: -o is the input
    code, _, err = _run(capsys, ["calibrate", "apply", "one.json", "all_s.npy", "-o", "all_s.npy", "--dask", address])
    assert code == 0, err
    np.testing.assert_array_equal(np.load("all_s.npy"), np.load("ref.npy"))
    assert sorted(f for f in os.listdir(".") if f.startswith(".")) == []
    # probabilities, from Zarr
    assert _run(capsys, ["calibrate", "apply", "one.json", "s.zarr", "-o", "p.npy", "--probs", "--dask", address])[0] == 0
    p = np.load("p.npy")
    assert p.shape == s.shape and np.allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("case", ["missing", "shape", "truncated", "rows", "zarr-missing", "zarr-group",
                                  "zarr-dtype", "zarr-0d", "zarr-rows"])
def test_bad_input_is_named_before_any_work(data, capsys, cluster, case):
    address, client = cluster
    sp, yp = "sh/s-*.npy", "sh/y-*.npy"
    if case == "missing":
        sp, name = "sh/none-*.npy", "none-*.npy"
    elif case == "shape":
        np.save("sh/s-03.npy", np.zeros((1299, 5)))
        name = "s-03.npy"
    elif case == "truncated":
        raw = open("sh/s-00.npy", "rb").read()
        open("sh/s-00.npy", "wb").write(raw[:300])
        name = "s-00.npy"
    elif case == "rows":
        os.unlink("sh/y-01.npy")
        name = "LABELS"
    elif case == "zarr-missing":
        sp, name = "nothere.zarr", "nothere.zarr"
    elif case == "zarr-group":
        yp, name = "y.zarr", "y.zarr"
    elif case == "zarr-dtype":
        zarr.create_array("c.zarr", shape=(3, 4), dtype="complex128")
        sp, name = "c.zarr", "complex128"
    elif case == "zarr-0d":
        zarr.create_array("z0.zarr", shape=(), dtype="float64")
        sp, name = "z0.zarr", "0-d"
    else:
        zarr.create_array("short.zarr", shape=(10, 4), dtype="float64")
        sp, name = "short.zarr", "rows"
    before = {f: open(os.path.join("sh", f), "rb").read() for f in sorted(os.listdir("sh"))}
    tasks = len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    for argv in (["report", sp, yp, "--task", "multiclass", "--space", "logits", "--out", "rep"],
                 ["calibrate", "fit", sp, yp, "--task", "multiclass", "--space", "logits", "-o", "c.json"]):
        code, out, err = _run(capsys, argv + ["--dask", address])
        assert code == 2 and name in err and len(err.splitlines()) == 1, err
        assert err.startswith(f"sigmax {argv[0]}: error:")
    assert not os.path.exists("rep") and not os.path.exists("c.json")
    assert {f: open(os.path.join("sh", f), "rb").read() for f in sorted(os.listdir("sh"))} == before
    # nothing reached the cluster
    assert len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))) == tasks


def test_an_interrupted_apply_leaves_no_partial_output(data, capsys, monkeypatch):
    import sigmax._io_dask as io_dask

    assert _run(capsys, ["calibrate", "fit", "all_s.npy", "all_y.npy", "--task", "multiclass", "--space", "logits",
                         "-o", "c.json", "--no-check"])[0] == 0
    original = open("all_s.npy", "rb").read()
    seen = []
    write = io_dask._write_block

    def interrupted(block, path, block_info=None):
        seen.append(path)
        if len(seen) > 1:
            raise KeyboardInterrupt
        return write(block, path, block_info=block_info)

    monkeypatch.setattr(io_dask, "_write_block", interrupted)
    for target in ("all_s.npy", "new.npy"):  # in place, and a new file
        seen.clear()
        code, _, err = _run(capsys, ["calibrate", "apply", "c.json", "s.zarr", "-o", target, "--chunk-rows", "500"])
        assert code == 130 and "interrupted" in err
        assert seen and not os.path.exists(seen[0])  # the temporary .npy is gone
    assert open("all_s.npy", "rb").read() == original and not os.path.exists("new.npy")
    assert not [f for f in os.listdir(".") if f.startswith(".")]


@pytest.mark.parametrize("value", ["foo", "local:0", "local:x", "tcp://nohost", "http://a:1"])
def test_bad_dask_values_exit_2_with_one_line(data, capsys, value):
    for argv in (["report", "sh/s-*.npy", "sh/y-*.npy", "--task", "multiclass", "--space", "logits"],
                 ["calibrate", "fit", "sh/s-*.npy", "sh/y-*.npy", "--task", "multiclass", "--space", "logits",
                  "-o", "c.json"],
                 ["calibrate", "apply", "c.json", "sh/s-*.npy", "-o", "o.npy"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv + ["--dask", value])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and "--dask" in err and len(err.splitlines()) == 1, err
    assert not os.path.exists("c.json") and not os.path.exists("o.npy")


@pytest.mark.slow
def test_an_unreachable_scheduler_exits_2_with_one_line(data, capsys):
    code, _, err = _run(capsys, ["calibrate", "fit", "sh/s-*.npy", "sh/y-*.npy", "--task", "multiclass", "--space",
                                 "logits", "-o", "c.json", "--dask", "tcp://127.0.0.1:9"])
    assert code == 2 and "tcp://127.0.0.1:9" in err and "no dask scheduler" in err and len(err.splitlines()) == 1
    assert not os.path.exists("c.json")


def test_zarr_without_zarr_installed_names_the_extra(data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)
    code, _, err = _run(capsys, ["report", "s.zarr", "y.zarr:val/labels", "--task", "multiclass", "--space", "logits",
                                 "--no-html"])
    assert code == 2 and "pip install 'sigmax[dask]'" in err and "zarr" in err and len(err.splitlines()) == 1


def test_apply_on_dask_writes_npy_only(data, capsys):
    assert _run(capsys, ["calibrate", "fit", "all_s.npy", "all_y.npy", "--task", "multiclass", "--space", "logits",
                         "-o", "c.json", "--no-check"])[0] == 0
    code, _, err = _run(capsys, ["calibrate", "apply", "c.json", "s.zarr", "-o", "o.csv"])
    assert code == 2 and "-o o.csv" in err and ".npy" in err and not os.path.exists("o.csv")


@pytest.mark.slow
def test_an_error_raised_on_a_worker_is_one_line_without_the_workers_traceback(data):
    """A block's error (logits declared --space probs) reaches the command as itself; the local cluster's
    workers do not print their own "Compute Failed" traceback to the terminal."""
    import subprocess

    run = subprocess.run([sys.executable, "-m", "sigmax", "report", "sh/s-*.npy", "sh/y-*.npy", "--task",
                          "multiclass", "--space", "probs", "--no-html", "--dask", "local:1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--space probs" in lines[0] and "Traceback" not in run.stderr, run.stderr


def test_check_takes_a_zarr_array_and_finds_what_the_file_check_finds(data, capsys):
    one = _json(capsys, ["check", "all_s.npy", "all_y.npy", "--task", "multiclass", "--json"])
    z = _json(capsys, ["check", "s.zarr", "y.zarr:val/labels", "--task", "multiclass", "--json"])
    assert [f["code"] for f in z["findings"]] == [f["code"] for f in one["findings"]]
    assert z["scores"]["shape"] == one["scores"]["shape"]
    code, _, err = _run(capsys, ["check", "s.zarr", "sh/y-00.npy", "--task", "multiclass"])
    assert code == 2 and "TARGETS sh/y-00.npy hold 700 rows but SCORES s.zarr hold 2000" in err
