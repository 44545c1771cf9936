r"""Safe loading of score and label files: ``.npy``, ``.npz``, ``.csv``, ``.pt`` (weights only).

Nothing here ever unpickles code: ``.npy``/``.npz`` are read with ``allow_pickle=False`` and ``.pt``
with ``torch.load(weights_only=True)``. Files larger than memory are streamed with
:func:`iter_chunks`, which memory-maps a ``.npy`` and yields blocks of rows, so that metrics,
calibration and checks run in bounded memory.

============  ==========================================================================
extension     what is read
============  ==========================================================================
``.npy``      one array (``np.load(allow_pickle=False)``)
``.npz``      one array of the archive; ``key=`` picks it (needed when there are several)
``.csv``      numbers separated by commas; a non-numeric first line is taken as a header
``.txt``      like ``.csv`` but separated by whitespace (or commas)
``.pt``       a tensor, or a dict of tensors picked by ``key=`` (``torch.load(weights_only=True)``)
============  ==========================================================================

Errors are one line, naming the file and the fix (:class:`ScoreFileError`, a ``ValueError``).

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "logits.npy"), np.array([[2.0, 0.0], [0.0, 1.0]]))
    >>> load_scores(os.path.join(d, "logits.npy"))
    array([[2., 0.],
           [0., 1.]])
    >>> [block.shape for block in iter_chunks(os.path.join(d, "logits.npy"), chunk_rows=1)]
    [(1, 2), (1, 2)]
"""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import Any, Iterator

import numpy as np

__all__ = [
    "SCORE_EXTENSIONS",
    "ScoreFileError",
    "load_scores",
    "load_labels",
    "load_array",
    "iter_chunks",
    "count_rows",
]

#: file extensions :func:`load_scores` reads
SCORE_EXTENSIONS = (".npy", ".npz", ".csv", ".txt", ".pt", ".pth")


class ScoreFileError(ValueError):
    """A score/label file that cannot be read as asked: missing, unknown extension, bad content."""


def _ext(path: str) -> str:
    return os.path.splitext(str(path))[1].lower()


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ScoreFileError(f"{path}: no such file; check the path (current directory is {os.getcwd()})")
    if os.path.isdir(path):
        raise ScoreFileError(f"{path}: is a directory; give a score file ({', '.join(SCORE_EXTENSIONS)})")
    ext = _ext(path)
    if ext not in SCORE_EXTENSIONS:
        raise ScoreFileError(
            f"{path}: unknown extension {ext or '(none)'!r}; save the scores as one of "
            f"{', '.join(SCORE_EXTENSIONS)} (for example np.save('scores.npy', logits))"
        )
    return path


def _pick(path: str, mapping: dict, key: str | None, what: str) -> Any:
    keys = list(mapping)
    if key is None:
        if len(keys) == 1:
            return mapping[keys[0]]
        if not keys:
            raise ScoreFileError(f"{path}: the {what} holds no arrays")
        raise ScoreFileError(
            f"{path}: the {what} holds {len(keys)} arrays ({', '.join(map(repr, keys))}); "
            f"pick one with key=... (CLI: FILE:KEY)"
        )
    if key not in mapping:
        raise ScoreFileError(f"{path}: no array named {key!r}; the {what} holds {', '.join(map(repr, keys))}")
    return mapping[key]


def _load_npy(path: str, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ScoreFileError(
                f"{path}: holds Python objects (pickled), which sigmax never loads; "
                "save a numeric array (np.save(path, np.asarray(x, dtype=float)))"
            ) from None
        raise ScoreFileError(f"{path}: not a valid .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ScoreFileError(f"{path}: not a valid .npy file ({exc})") from None


def _load_npz(path: str, key: str | None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            name = _pick(path, {k: k for k in z.files}, key, ".npz archive")
            return z[name]
    except ScoreFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ScoreFileError(
                f"{path}: array {key!r} holds Python objects (pickled), which sigmax never loads; "
                "save numeric arrays"
            ) from None
        raise ScoreFileError(f"{path}: not a valid .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ScoreFileError(f"{path}: not a valid .npz archive ({exc})") from None


def _load_text(path: str, key: str | None) -> np.ndarray:
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ScoreFileError(f"{path}: the file is empty; write one row of scores per line")
    delim = "," if "," in lines[0] else None
    header: list[str] | None = None

    def split(ln: str) -> list[str]:
        return [c.strip() for c in (ln.split(delim) if delim else ln.split())]

    first = split(lines[0])
    try:
        [float(c) for c in first]
    except ValueError:
        header = first
        lines = lines[1:]
    rows = []
    for i, ln in enumerate(lines, start=2 if header else 1):
        cells = split(ln)
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise ScoreFileError(
                f"{path}: data line {i} has a non-numeric value {bad!r}; "
                "only the first line may be a header, every other cell must be a number"
            ) from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ScoreFileError(f"{path}: rows have different numbers of columns ({sorted(widths)}); "
                             "every row must have one value per class")
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), widths.pop() if rows else 0)
    if key is not None:
        if header is None:
            raise ScoreFileError(f"{path}: key={key!r} given but the file has no header line naming columns")
        if key not in header:
            raise ScoreFileError(f"{path}: no column named {key!r}; the header has {', '.join(map(repr, header))}")
        arr = arr[:, header.index(key)]
    elif arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # one column: a vector (binary logits or class indices)
    return arr


def _is_float(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def _load_pt(path: str, key: str | None) -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ScoreFileError(
            f"{path}: reading .pt files needs PyTorch; install it pinned "
            "(pip install torch==2.13.0) or save the scores with np.save"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not for our users
            obj = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScoreFileError(
            f"{path}: cannot be loaded weights-only ({msg}); save plain tensors "
            "(torch.save(logits) or torch.save({'logits': logits}))"
        ) from None
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if key is None and len(tensors) != len(obj) and len(tensors) == 1:
            obj = next(iter(tensors.values()))
        else:
            obj = _pick(path, tensors if key is None else obj, key, ".pt dict")
    elif isinstance(obj, (list, tuple)) and key is not None:
        raise ScoreFileError(f"{path}: holds a {type(obj).__name__}, not a dict; drop key=")
    if isinstance(obj, (list, tuple)):
        if len(obj) == 1 and isinstance(obj[0], torch.Tensor):
            obj = obj[0]
        else:
            raise ScoreFileError(f"{path}: holds a {type(obj).__name__} of {len(obj)} items; "
                                 "save one tensor or a dict of tensors")
    if not isinstance(obj, torch.Tensor):
        raise ScoreFileError(f"{path}: holds a {type(obj).__name__}, not a tensor; "
                             "save one tensor or a dict of tensors")
    return obj.detach()


def load_array(path: Any, *, key: str | None = None, as_numpy: bool = True, mmap: bool = False) -> Any:
    """Load one numeric array from ``path`` (no shape or dtype checks; see :func:`load_scores`).

    Args:
        path: a ``.npy``, ``.npz``, ``.csv``, ``.txt``, ``.pt`` or ``.pth`` file.
        key: the array to take from an ``.npz`` archive or a ``.pt`` dict (or a ``.csv`` column by
            its header name). Required when there are several.
        as_numpy: return ``.pt`` content as a NumPy array (default) instead of a torch tensor.
        mmap: memory-map a ``.npy`` instead of reading it (read-only).

    Returns:
        A NumPy array (or a torch tensor for ``.pt`` when ``as_numpy=False``).

    Raises:
        ScoreFileError: missing file, unknown extension, pickled objects, several arrays and no key.
    """
    path = _check_path(path)
    ext = _ext(path)
    if ext == ".npy":
        if key is not None:
            raise ScoreFileError(f"{path}: a .npy file holds one array; drop key={key!r}")
        arr = _load_npy(path, mmap)
    elif ext == ".npz":
        arr = _load_npz(path, key)
    elif ext in (".csv", ".txt"):
        arr = _load_text(path, key)
    else:
        t = _load_pt(path, key)
        if not as_numpy:
            return t
        arr = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
    if getattr(arr, "dtype", None) is not None and arr.dtype.kind not in "biuf":
        raise ScoreFileError(f"{path}: holds {arr.dtype} values, not numbers; save a numeric array")
    return arr


def load_scores(path: Any, *, key: str | None = None, as_numpy: bool = True, mmap: bool = False,
                ndim: tuple[int, ...] | None = None) -> Any:
    """Load model scores (logits, probabilities or log-probabilities) from a file, safely.

    Integer and boolean arrays are converted to float64; floating dtypes (float16 included) are kept.
    Nothing is checked about the *values* — say what they are with ``space=`` downstream, and use
    :func:`sigmax.check` for heuristics.

    Args:
        path: ``.npy``, ``.npz``, ``.csv``/``.txt`` (header optional), ``.pt``/``.pth`` (weights only).
        key: which array of an ``.npz``/``.pt`` dict (error listing the keys when ambiguous).
        as_numpy: ``.pt`` content as NumPy (default) or as a torch tensor.
        mmap: memory-map a ``.npy`` (read-only; for large files prefer :func:`iter_chunks`).
        ndim: allowed numbers of dimensions; default ``(1, 2, 3, 4, 5)`` (no scalars).

    Returns:
        The scores, with at least one dimension.

    Raises:
        ScoreFileError: (a ``ValueError``) with a one-line message naming the file and the fix.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "s.csv")
        >>> _ = open(p, "w").write("cat,dog\\n2.0,0.5\\n-1,3\\n")
        >>> load_scores(p)
        array([[ 2. ,  0.5],
               [-1. ,  3. ]])
    """
    arr = load_array(path, key=key, as_numpy=as_numpy, mmap=mmap)
    allowed = ndim or (1, 2, 3, 4, 5)
    shape = tuple(arr.shape)
    if len(shape) not in allowed:
        raise ScoreFileError(
            f"{os.fspath(path)}: scores have shape {shape} ({len(shape)} dimension(s)); expected "
            f"{' or '.join(map(str, allowed))} dimension(s), e.g. (samples,) or (samples, classes)"
        )
    if 0 in shape:
        raise ScoreFileError(f"{os.fspath(path)}: scores have shape {shape}, which holds no values")
    if hasattr(arr, "dtype") and isinstance(arr, np.ndarray) and arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif not isinstance(arr, np.ndarray) and not arr.is_floating_point():
        arr = arr.double()
    return arr


def load_labels(path: Any, *, key: str | None = None, as_numpy: bool = True) -> Any:
    """Load targets: class indices (integers), multi-hot rows (0/1) or class probabilities.

    Whole-number float arrays of class indices (as a ``.csv`` gives) become ``int64``; 2-D arrays
    (multi-hot or probabilities) keep their values (as float64 if they were integers/bools).

    Args:
        path: ``.npy``, ``.npz``, ``.csv``/``.txt``, ``.pt``/``.pth``.
        key: which array of an ``.npz``/``.pt`` dict, or which ``.csv`` column.
        as_numpy: ``.pt`` content as NumPy (default) or as a torch tensor.

    Returns:
        ``int64`` indices for 1-D whole-number labels; otherwise the array as loaded.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "y.csv")
        >>> _ = open(p, "w").write("label\\n0\\n2\\n1\\n")
        >>> load_labels(p)
        array([0, 2, 1])
    """
    arr = load_array(path, key=key, as_numpy=as_numpy)
    shape = tuple(arr.shape)
    if len(shape) == 0:
        raise ScoreFileError(f"{os.fspath(path)}: labels are a scalar; save one label per sample")
    if not isinstance(arr, np.ndarray):
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.float64) if arr.ndim > 1 else arr.astype(np.int64)
    if arr.ndim == 1 and arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) \
            and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    if arr.ndim == 1 and arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.ndim > 1 and arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    return arr


def count_rows(path: Any) -> int:
    """The number of rows (first dimension) of a ``.npy`` file, read from its header only."""
    path = _check_path(path)
    if _ext(path) != ".npy":
        return int(load_array(path).shape[0])
    return int(_load_npy(path, mmap=True).shape[0])


def iter_chunks(path: Any, chunk_rows: int = 65536, *, key: str | None = None,
                dtype: Any = None) -> Iterator[np.ndarray]:
    """Yield blocks of at most ``chunk_rows`` rows of a score file, in order, in bounded memory.

    A ``.npy`` file is memory-mapped (``np.load(mmap_mode="r")``) and each block is copied out, so
    only one block is resident at a time and files larger than memory can be processed. Other
    formats are loaded whole and then sliced (same interface, no memory bound).

    Args:
        path: the score file (``.npy`` for bounded memory).
        chunk_rows: rows per block, a positive integer.
        key: as in :func:`load_scores` (for ``.npz``/``.pt``/``.csv``).
        dtype: cast each block to this NumPy dtype (default: the stored dtype; integers become float64).

    Yields:
        NumPy arrays ``block`` with ``block.shape[1:] == scores.shape[1:]``; concatenating them along
        axis 0 gives the whole array. A file with zero rows yields nothing.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "big.npy")
        >>> np.save(p, np.arange(10.0).reshape(5, 2))
        >>> [b[:, 0].tolist() for b in iter_chunks(p, chunk_rows=2)]
        [[0.0, 2.0], [4.0, 6.0], [8.0]]
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    path = _check_path(path)
    if _ext(path) == ".npy" and key is None:
        arr = _load_npy(path, mmap=True)
    else:
        arr = load_array(path, key=key)
    if arr.ndim == 0:
        raise ScoreFileError(f"{path}: holds a scalar; save one row per sample")
    if arr.dtype.kind not in "biuf":
        raise ScoreFileError(f"{path}: holds {arr.dtype} values, not numbers; save a numeric array")
    out_dtype = np.dtype(dtype) if dtype is not None else (arr.dtype if arr.dtype.kind == "f" else np.float64)
    n = int(arr.shape[0])
    return _chunks(arr, n, int(chunk_rows), out_dtype)


def _chunks(arr, n, chunk_rows, out_dtype) -> Iterator[np.ndarray]:
    for start in range(0, n, chunk_rows):
        block = arr[start:start + chunk_rows]
        yield np.array(block, dtype=out_dtype, copy=True)  # copy out of the memory map: bounded memory
