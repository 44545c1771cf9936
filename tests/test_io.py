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
    with pytest.raises(ScoreFileError, match="line 3 has a non-numeric value 'x'"):
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
