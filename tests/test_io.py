"""sigmax.io: safe loading of score/label files and bounded-memory chunked reading."""

import os
import pickle
import tracemalloc

import numpy as np
import pytest

from sigmax import io as sio
from sigmax.io import ScoreFileError, count_rows, iter_chunks, load_labels, load_scores
from sigmax.testing import assert_close


@pytest.fixture
def logits(rng):
    return rng.normal(size=(7, 3))


def test_npy_roundtrip(tmp_path, logits):
    p = tmp_path / "s.npy"
    np.save(p, logits)
    out = load_scores(p)
    assert out.dtype == np.float64
    assert_close(out, logits)
    assert isinstance(load_scores(str(p), mmap=True), np.memmap)


def test_npy_keeps_float16_and_promotes_int(tmp_path):
    np.save(tmp_path / "h.npy", np.ones((2, 2), np.float16))
    assert load_scores(tmp_path / "h.npy").dtype == np.float16
    np.save(tmp_path / "i.npy", np.arange(4).reshape(2, 2))
    assert load_scores(tmp_path / "i.npy").dtype == np.float64


def test_npz_key_selection(tmp_path, logits):
    p = tmp_path / "s.npz"
    np.savez(p, logits=logits, labels=np.arange(7) % 3)
    assert_close(load_scores(p, key="logits"), logits)
    assert load_labels(p, key="labels").dtype == np.int64
    with pytest.raises(ScoreFileError, match=r"2 arrays \('logits', 'labels'\).*key="):
        load_scores(p)
    with pytest.raises(ScoreFileError, match=r"no array named 'probs'.*'logits', 'labels'"):
        load_scores(p, key="probs")
    np.savez(tmp_path / "one.npz", x=logits)
    assert_close(load_scores(tmp_path / "one.npz"), logits)


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (tmp_path / "n.csv").write_text("1,2,3\n4,5,6\n")
    (tmp_path / "w.txt").write_text("1 2 3\n4 5 6\n")
    for name in ("h.csv", "n.csv", "w.txt"):
        assert_close(load_scores(tmp_path / name), np.array([[1.0, 2, 3], [4, 5, 6]]))
    assert_close(load_scores(tmp_path / "h.csv", key="b"), np.array([2.0, 5.0]))
    (tmp_path / "col.csv").write_text("0.5\n-1.5\n")
    assert load_scores(tmp_path / "col.csv").shape == (2,)


def test_csv_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ScoreFileError, match="line 3, column 2 has a non-numeric value 'x'"):
        load_scores(tmp_path / "bad.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(ScoreFileError, match="different numbers of columns"):
        load_scores(tmp_path / "ragged.csv")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ScoreFileError, match="empty"):
        load_scores(tmp_path / "empty.csv")


def test_labels_from_csv_become_int(tmp_path):
    (tmp_path / "y.csv").write_text("y\n0\n2\n1\n")
    y = load_labels(tmp_path / "y.csv")
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    np.save(tmp_path / "mh.npy", np.array([[True, False], [True, True]]))
    assert load_labels(tmp_path / "mh.npy").dtype == np.float64


def test_missing_and_unknown(tmp_path):
    with pytest.raises(ScoreFileError, match="no such file"):
        load_scores(tmp_path / "nope.npy")
    (tmp_path / "s.json").write_text("[1]")
    with pytest.raises(ScoreFileError, match=r"unknown extension '.json'.*\.npy"):
        load_scores(tmp_path / "s.json")
    with pytest.raises(ScoreFileError, match="is a directory"):
        load_scores(tmp_path)
    with pytest.raises(TypeError, match="path must be a file name"):
        load_scores(3)
    assert issubclass(ScoreFileError, ValueError)


def test_bad_shapes(tmp_path):
    np.save(tmp_path / "scalar.npy", np.float64(3.0))
    with pytest.raises(ScoreFileError, match=r"shape \(\) \(0 dimension"):
        load_scores(tmp_path / "scalar.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(ScoreFileError, match="holds no values"):
        load_scores(tmp_path / "empty.npy")
    np.save(tmp_path / "s.npy", np.zeros((2, 3)))
    with pytest.raises(ScoreFileError, match="expected 1 dimension"):
        load_scores(tmp_path / "s.npy", ndim=(1,))


def test_never_unpickles_npy(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ScoreFileError, match="never loads"):
        load_scores(tmp_path / "obj.npy")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pt_weights_only(tmp_path, logits):
    torch = pytest.importorskip("torch")
    t = torch.as_tensor(logits, dtype=torch.float32)
    torch.save(t, tmp_path / "t.pt")
    out = load_scores(tmp_path / "t.pt")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert_close(out, t)
    assert isinstance(load_scores(tmp_path / "t.pt", as_numpy=False), torch.Tensor)
    torch.save({"logits": t, "labels": torch.arange(7) % 3}, tmp_path / "d.pt")
    assert_close(load_scores(tmp_path / "d.pt", key="logits"), t)
    assert load_labels(tmp_path / "d.pt", key="labels").tolist() == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(ScoreFileError, match="'logits', 'labels'"):
        load_scores(tmp_path / "d.pt")
    torch.save(t.to(torch.bfloat16), tmp_path / "b.pt")
    assert load_scores(tmp_path / "b.pt").dtype == np.float32


def test_pt_refuses_code(tmp_path):
    pytest.importorskip("torch")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(ScoreFileError, match="weights-only"):
        load_scores(tmp_path / "evil.pt")


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_iter_chunks_concatenates_to_whole(tmp_path, logits, chunk):
    p = tmp_path / "s.npy"
    np.save(p, logits)
    blocks = list(iter_chunks(p, chunk_rows=chunk))
    assert all(b.shape[0] <= chunk for b in blocks)
    assert not any(isinstance(b, np.memmap) for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), logits)
    assert count_rows(p) == 7


def test_iter_chunks_other_formats_and_errors(tmp_path, logits):
    np.savez(tmp_path / "s.npz", a=logits)
    np.testing.assert_array_equal(np.concatenate(list(iter_chunks(tmp_path / "s.npz", 2))), logits)
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer"):
        iter_chunks(tmp_path / "s.npz", 0)
    with pytest.raises(ScoreFileError, match="no such file"):
        iter_chunks(tmp_path / "missing.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    assert list(iter_chunks(tmp_path / "e.npy")) == []


def test_iter_chunks_bounded_memory(tmp_path):
    # 40 MB on disk, read in 1 MB blocks: peak Python-allocated memory stays near one block.
    p = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=(500_000, 10))
    mm[:] = 1.0
    mm.flush()
    del mm
    tracemalloc.start()
    total = 0.0
    for block in iter_chunks(p, chunk_rows=12_500):
        total += float(block.sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == 5_000_000.0
    assert peak < 4 * 12_500 * 10 * 8, peak


def test_module_lists_api():
    for name in sio.__all__:
        assert hasattr(sio, name)


# ----------------------------------------------------------------- hostile files (issue 11)
def _lying_npy(path, shape=(1 << 20, 1 << 22), nbytes=64):
    """A .npy whose header promises ``shape`` float64 values but which holds ``nbytes`` of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": shape})
        f.write(b"\0" * nbytes)


@pytest.mark.parametrize("mmap", [False, True])
def test_npy_header_promising_more_than_the_file_is_refused_before_allocating(tmp_path, mmap):
    p = tmp_path / "lie.npy"
    _lying_npy(p)  # 32 TiB promised
    tracemalloc.start()
    try:
        with pytest.raises(ScoreFileError, match=r"truncated or corrupt.*promises shape \(1048576, 4194304\)"):
            load_scores(p, mmap=mmap)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20
    with pytest.raises(ScoreFileError, match="truncated"):
        list(iter_chunks(p, 4))
    with pytest.raises(ScoreFileError, match="truncated"):
        count_rows(p)


def test_truncated_npy_names_sizes(tmp_path):
    p = tmp_path / "cut.npy"
    np.save(p, np.ones((10, 3)))
    data = p.read_bytes()
    p.write_bytes(data[:-8])
    with pytest.raises(ScoreFileError, match=r"promises shape \(10, 3\) of float64 \(368 bytes\) but the file holds 360 bytes"):
        load_scores(p)


def test_text_file_named_npy_says_it_is_text(tmp_path):
    p = tmp_path / "scores.npy"
    p.write_text("0.1,0.2\n0.3,0.4\n")
    with pytest.raises(ScoreFileError, match=r"not a \.npy file \(it looks like text; rename it to \.csv") as e:
        load_scores(p)
    assert "pickled" not in str(e.value)


def test_zip_named_npy_says_so(tmp_path):
    p = tmp_path / "scores.npy"
    np.savez(tmp_path / "a.npz", x=np.ones(3))
    p.write_bytes((tmp_path / "a.npz").read_bytes())
    with pytest.raises(ScoreFileError, match="zip archive"):
        load_scores(p)


def test_object_npy_still_says_pickled(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ScoreFileError, match="pickled"):
        load_scores(p)


def test_npz_member_over_the_memory_budget_is_refused_before_inflating(tmp_path):
    p = tmp_path / "big.npz"
    np.savez_compressed(p, logits=np.zeros((1000, 100)))  # 800 kB inflated, a few kB on disk
    assert os.path.getsize(p) < 50_000
    with pytest.raises(ScoreFileError, match=r"800,000 bytes once decompressed, over the memory budget of 100,000"):
        load_scores(p, memory_budget=100_000)
    assert load_scores(p, memory_budget=10**6).shape == (1000, 100)
    assert load_scores(p).shape == (1000, 100)  # default 1 GiB
    with pytest.raises(ScoreFileError, match="memory budget"):
        list(iter_chunks(p, 10, memory_budget=100_000))
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
        load_scores(p, memory_budget=0)


def test_npz_member_lying_header_is_refused(tmp_path):
    import io as pyio
    import zipfile

    buf = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)})
    buf.write(b"\0" * 16)
    with zipfile.ZipFile(tmp_path / "lie.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("logits.npy", buf.getvalue())
    with pytest.raises(ScoreFileError, match="truncated or corrupt"):
        load_scores(tmp_path / "lie.npz")


def test_pandas_index_column_is_dropped_with_a_warning(tmp_path):
    p = tmp_path / "df.csv"
    p.write_text(",0,1,2\n0,0.1,0.2,0.7\n1,2.0,-1.0,0.5\n2,0.0,0.0,0.0\n")
    with pytest.warns(UserWarning, match="pandas index and was dropped"):
        s = load_scores(p)
    assert s.shape == (3, 3) and s[0].tolist() == [0.1, 0.2, 0.7]
    q = tmp_path / "y.csv"
    q.write_text(",0\n0,2\n1,0\n2,1\n")
    with pytest.warns(UserWarning, match="pandas index"):
        assert load_labels(q).tolist() == [2, 0, 1]


def test_unnamed_first_column_that_is_not_an_index_is_an_error(tmp_path):
    p = tmp_path / "df.csv"
    p.write_text(",a,b\n5,0.1,0.2\n9,2.0,-1.0\n")
    with pytest.raises(ScoreFileError, match="no header name"):
        load_scores(p)


@pytest.mark.parametrize("text,where", [("1,2,,3\n4,5,6,7\n", "line 1, column 3 is empty"),
                                        ("a,b\n1,2\n\n3,\n", "line 4, column 2 is empty")])
def test_empty_csv_field_is_an_error(tmp_path, text, where):
    p = tmp_path / "e.csv"
    p.write_text(text)
    with pytest.raises(ScoreFileError, match=where):
        load_scores(p)


def test_overflowing_csv_value_is_an_error_but_inf_literals_are_kept(tmp_path):
    p = tmp_path / "o.csv"
    p.write_text("1.0,2.0\n1e400,0\n")
    with pytest.raises(ScoreFileError, match=r"line 2, column 1: 1e400 is beyond float64's range"):
        load_scores(p)
    q = tmp_path / "i.csv"
    q.write_text("inf,-inf\nnan,-Infinity\n")
    out = load_scores(q)
    assert np.isposinf(out[0, 0]) and np.isneginf(out[0, 1]) and np.isnan(out[1, 0])


def test_pt_with_a_python_object_is_cut_to_what_to_do(tmp_path):
    torch = pytest.importorskip("torch")
    import fractions

    torch.save({"logits": torch.zeros(2), "note": fractions.Fraction(1, 3)}, tmp_path / "mixed.pt")
    with pytest.raises(ScoreFileError) as e:
        load_scores(tmp_path / "mixed.pt")
    msg = str(e.value)
    assert "fractions.Fraction" in msg and "save tensors only" in msg and "np.save" in msg
    assert "weights_only=False" not in msg and "\n" not in msg and "add_safe_globals" not in msg
    assert len(msg) < 400


def test_is_streamed():
    assert sio.is_streamed("a.npy") and not sio.is_streamed("a.npy", key="x")
    assert not any(sio.is_streamed(f"a.{e}") for e in ("csv", "txt", "pt", "npz"))


def test_a_csv_over_the_memory_budget_is_refused_before_reading(tmp_path):
    import sigmax.io as sio

    p = tmp_path / "big.csv"
    np.savetxt(p, np.random.default_rng(0).normal(size=(2000, 10)), delimiter=",")
    est = sio.estimate_bytes(p)
    size = p.stat().st_size
    assert size + 20_000 * 8 < est < size + 20_000 * 80  # the text, then about 40 bytes per parsed value
    bad = tmp_path / "bad.csv"  # the same, with a bad cell on its last line: reading it would say so
    bad.write_text(p.read_text() + "x" + ",0" * 9 + "\n")
    with pytest.raises(ScoreFileError) as exc:
        load_scores(bad, memory_budget=100_000)
    msg = str(exc.value)
    assert str(bad) in msg and "bytes, over the memory budget of 100,000 bytes" in msg and "non-numeric" not in msg
    assert ".npy" in msg and "memory_budget=BYTES" in msg and "\n" not in msg
    assert load_scores(p, memory_budget=est).shape == (2000, 10)
    # npz: the member's decompressed size; npy: its data
    np.savez_compressed(tmp_path / "z.npz", a=np.zeros((100, 50)))
    assert sio.estimate_bytes(tmp_path / "z.npz") == 100 * 50 * 8
    np.save(tmp_path / "a.npy", np.zeros((10, 3), dtype=np.float32))
    assert sio.estimate_bytes(tmp_path / "a.npy") == 120


def test_a_pt_over_the_memory_budget_is_refused_before_reading(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "s.pt"
    torch.save(torch.zeros(1000, 20), p)
    with pytest.raises(ScoreFileError, match=r"s\.pt: reading this \.pt file whole would take about .* over the "
                                             r"memory budget of 10,000 bytes .*convert it to \.npy"):
        load_scores(p, memory_budget=10_000)
    assert load_scores(p).shape == (1000, 20)
