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

import contextlib
import math
import os
import re
import tempfile
import warnings
import zipfile
from typing import IO, Any, Iterator

import numpy as np

from ._format import format_bytes
from ._inputs import spell

__all__ = [
    "SCORE_EXTENSIONS",
    "ScoreFileError",
    "load_scores",
    "load_labels",
    "load_array",
    "iter_chunks",
    "count_rows",
    "is_streamed",
    "estimate_bytes",
    "atomic_write",
    "MEMORY_BUDGET",
    "shard_paths",
    "check_shards",
    "open_shards",
]

#: file extensions :func:`load_scores` reads
SCORE_EXTENSIONS = (".npy", ".npz", ".csv", ".txt", ".pt", ".pth")


class ScoreFileError(ValueError):
    """A score/label file that cannot be read as asked: missing, unknown extension, bad content."""


@contextlib.contextmanager
def atomic_write(path: Any, mode: str = "wb", *, encoding: str | None = None,
                 make_parents: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it onto ``path`` only on success.

    Every file sigmax writes (``.npy``, ``.csv``, ``.json``, ``.html``, ``.png``) goes through here, so
    that an output may be one of the inputs (``calibrate apply X.npy -o X.npy``: the input stays whole
    and readable until the new file replaces it in one ``os.replace``) and an interrupted or failed
    write leaves the old file as it was and no partial file behind. Missing parent folders are
    created (``make_parents=False`` makes them an error instead).

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> with atomic_write(os.path.join(d, "sub", "a.txt"), "w", encoding="utf-8") as fh:
        ...     _ = fh.write("hello")
        >>> open(os.path.join(d, "sub", "a.txt")).read()
        'hello'
        >>> try:
        ...     with atomic_write(os.path.join(d, "sub", "a.txt"), "w", encoding="utf-8") as fh:
        ...         _ = fh.write("half")
        ...         raise KeyboardInterrupt
        ... except KeyboardInterrupt:
        ...     pass
        >>> open(os.path.join(d, "sub", "a.txt")).read(), sorted(os.listdir(os.path.join(d, "sub")))
        ('hello', ['a.txt'])
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"output path must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ScoreFileError(f"{path}: is a directory; give a file name to write")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise ScoreFileError(f"{folder}: is not a folder; choose another output path")
        if not make_parents:
            raise ScoreFileError(f"{folder}: no such folder; create it first (mkdir -p {folder})")
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(path):  # keep the target's permission bits
            with contextlib.suppress(OSError):
                os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


#: the default memory budget of the loaders, in bytes (1 GiB): what one array may take once read
MEMORY_BUDGET = 2**30

_NPY_MAGIC = b"\x93NUMPY"


def _not_npy(path: str, head: bytes, what: str = ".npy file") -> ScoreFileError:
    """The error for a file that does not start like a ``.npy``: say what it looks like instead."""
    if head.startswith(b"PK"):
        looks = "it is a zip archive: an .npz (rename it to .npz) or a torch.save file (rename it to .pt)"
    elif head.startswith(b"\x80") or head.startswith(b"\x8a"):
        looks = "it looks like a pickle (torch.save or pickle.dump), which sigmax never loads; save it with np.save"
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and (not text or all(c.isprintable() or c in "\r\n\t" for c in text)):
            looks = "it looks like text; rename it to .csv (or .txt) if it holds numbers, one row per line"
        else:
            looks = "it does not start with the .npy signature; write it with np.save"
    return ScoreFileError(f"{path}: is not a {what} ({looks})")


def _npy_header(fh: IO, path: str, what: str = ".npy file") -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from a ``.npy`` header, reading nothing else."""
    head = fh.read(len(_NPY_MAGIC) + 2)  # the signature, then the format version (major, minor)
    if not head.startswith(_NPY_MAGIC):
        raise _not_npy(path, head + fh.read(56), what)
    try:
        version = (head[6], head[7])
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only by utf-8 field names
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unknown format version {version}")
    except (ValueError, OSError, EOFError, IndexError, SyntaxError, TypeError) as exc:
        raise ScoreFileError(f"{path}: not a valid {what}: its header cannot be read ({exc})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype), int(fh.tell())


def _pickled(path: str, what: str = "") -> ScoreFileError:
    return ScoreFileError(
        f"{path}: {what}holds Python objects (pickled), which sigmax never loads; "
        "save a numeric array (np.save(path, np.asarray(x, dtype=float)))"
    )


def _data_bytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * dtype.itemsize


def _load_npy(path: str, mmap: bool) -> np.ndarray:
    # read the header first: a header promising more than the file holds must not reach an allocation
    with open(path, "rb") as fh:
        shape, dtype, offset = _npy_header(fh, path)
    if dtype.hasobject:
        raise _pickled(path)
    need = offset + _data_bytes(shape, dtype)
    size = os.path.getsize(path)
    if size < need:
        raise ScoreFileError(
            f"{path}: is truncated or corrupt: its header promises shape {shape} of {dtype} "
            f"({need:,} bytes) but the file holds {size:,} bytes; write it again with np.save"
        )
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickled(path) from None
        raise ScoreFileError(f"{path}: not a valid .npy file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise ScoreFileError(f"{path}: not a valid .npy file ({exc})") from None


def _npz_member(zf: zipfile.ZipFile, path: str, key: str | None) -> tuple[str, int]:
    """(member name, bytes it takes once decompressed), from the zip directory and the member's header only."""
    members = {(n[:-4] if n.endswith(".npy") else n): n for n in zf.namelist()}
    name = _pick(path, members, key, ".npz archive")
    label = name[:-4] if name.endswith(".npy") else name
    info = zf.getinfo(name)
    # check what the member declares before inflating it: the shape in its .npy header (read
    # from the first bytes of the stream only) and its size in the zip directory
    with zf.open(info) as fh:
        shape, dtype, offset = _npy_header(fh, f"{path}:{label}", "numeric .npy member")
    if dtype.hasobject:
        raise _pickled(path, f"array {label!r} ")
    nbytes = _data_bytes(shape, dtype)
    if offset + nbytes > info.file_size:
        raise ScoreFileError(
            f"{path}: array {label!r} is truncated or corrupt: its header promises shape {shape} "
            f"of {dtype} ({nbytes:,} bytes) but the member holds {info.file_size - offset:,}; save it again"
        )
    return label, max(nbytes, info.file_size - offset)


def _load_npz(path: str, key: str | None, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
    try:
        with zipfile.ZipFile(path) as zf:
            label, need = _npz_member(zf, path, key)
        _within_budget(path, need, memory_budget, f"array {label!r}", about="", when=" once decompressed")
        with np.load(path, allow_pickle=False) as z:
            return z[label]
    except ScoreFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickled(path, f"array {key!r} ") from None
        raise ScoreFileError(f"{path}: not a valid .npz archive ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ScoreFileError(f"{path}: not a valid .npz archive ({exc})") from None


#: bytes a CSV value takes while it is parsed besides its float64 (a Python float and its list slot)
CSV_PARSE_BYTES = 32
_CSV_SAMPLE = 1 << 16


def _csv_estimate(path: str) -> int:
    """Bytes :func:`_load_text` needs for ``path``: the text, a Python float per value and the float64 array.

    The number of values is estimated from the file size and the first lines (bytes per line, values
    per line), without reading the rest of the file.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(_CSV_SAMPLE)
    lines = [ln for ln in head.split(b"\n") if ln.strip() and not ln.lstrip().startswith(b"#")]
    if size > len(head) and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut short
    if not lines:
        return size
    cols = max(len(ln.split(b",")) if b"," in ln else len(ln.split()) for ln in lines)
    per_line = max(sum(len(ln) + 1 for ln in lines) / len(lines), 1.0)
    values = int(math.ceil(size / per_line)) * cols
    return size + values * (8 + CSV_PARSE_BYTES)


def estimate_bytes(path: Any, key: str | None = None) -> int:
    """About how many bytes reading ``path`` whole takes in memory (what :func:`load_array` checks).

    * ``.npy``: the data size in its header (a ``.npy`` is streamed by :func:`iter_chunks` instead);
    * ``.npz``: the member's decompressed size, from its header and the zip directory;
    * ``.csv``/``.txt``: the text, plus a parsed value (``8 + CSV_PARSE_BYTES`` bytes) per value, the
      number of values estimated from the file size and the first lines;
    * ``.pt``/``.pth``: the file size (the tensors' data).

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "s.csv")
        >>> _ = open(p, "w").write("0.5,1.5\\n" * 1000)
        >>> estimate_bytes(p)  # 8,000 bytes of text, 2,000 values
        88000
    """
    path = _check_path(path)
    ext = _ext(path)
    if ext == ".npy":
        with open(path, "rb") as fh:
            shape, dtype, _offset = _npy_header(fh, path)
        return _data_bytes(shape, dtype)
    if ext == ".npz":
        try:
            with zipfile.ZipFile(path) as zf:
                return _npz_member(zf, path, key)[1]
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ScoreFileError(f"{path}: not a valid .npz archive ({exc})") from None
    if ext in (".csv", ".txt"):
        return _csv_estimate(path)
    return os.path.getsize(path)


def _within_budget(path: str, need: int, memory_budget: int, what: str, *, about: str = "about ",
                   when: str = "") -> None:
    """A one-line error naming the file, the estimate, the budget and the fix, when ``need`` is over budget."""
    if need > memory_budget:
        raise ScoreFileError(
            f"{path}: {what} would take {about}{need:,} bytes{when}, over the memory budget of "
            f"{memory_budget:,} bytes ({format_bytes(memory_budget)}); convert it to .npy (np.save), which is "
            f"streamed chunk by chunk, or raise the budget ({spell('memory_budget')}=BYTES)"
        )


_INF_WORDS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def _cell(path: str, c: str, line: int, col: int) -> float:
    """One CSV cell as a float; an empty, non-numeric or overflowing cell is an error naming its place."""
    if not c:
        raise ScoreFileError(f"{path}: line {line}, column {col} is empty; every cell must hold a number "
                             "(write nan for a missing value)")
    try:
        v = float(c)
    except ValueError:
        raise ScoreFileError(
            f"{path}: line {line}, column {col} has a non-numeric value {c!r}; "
            "only the first line may be a header, every other cell must be a number"
        ) from None
    if v in (math.inf, -math.inf) and c.lower() not in _INF_WORDS:
        raise ScoreFileError(f"{path}: line {line}, column {col}: {c} is beyond float64's range (it would "
                             "become inf); write inf or -inf if that is meant, or rescale the scores")
    return v


def _load_text(path: str, key: str | None) -> np.ndarray:
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    # (line number in the file, text): blank lines and # comments skipped, line numbers kept for messages
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ScoreFileError(f"{path}: the file is empty; write one row of scores per line")
    delim = "," if "," in lines[0][1] else None
    header: list[str] | None = None

    def split(ln: str) -> list[str]:
        return [c.strip() for c in (ln.split(delim) if delim else ln.split())]

    first = split(lines[0][1])
    # a header: a name that is not a number, or pandas' index header (",0,1,2": first cell empty)
    if any(c and not _is_float(c) for c in first) or (len(first) > 1 and first[0] == "" and all(first[1:])):
        header = first
        lines = lines[1:]
    rows = [[_cell(path, c, i, j) for j, c in enumerate(split(ln), start=1)] for i, ln in lines]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ScoreFileError(f"{path}: rows have different numbers of columns ({sorted(widths)}); "
                             "every row must have one value per class")
    arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), widths.pop() if rows else 0)
    if header is not None and header[0] == "" and arr.shape[1] == len(header):
        # DataFrame.to_csv() writes its index as an unnamed first column: 0, 1, ..., N-1
        if arr.shape[1] >= 2 and np.array_equal(arr[:, 0], np.arange(arr.shape[0])):
            warnings.warn(f"{path}: the first column (no header name, values 0..{arr.shape[0] - 1}) is a pandas "
                          "index and was dropped; save with DataFrame.to_csv(index=False) to avoid this",
                          UserWarning, stacklevel=4)
            arr, header = arr[:, 1:], header[1:]
        else:
            raise ScoreFileError(f"{path}: the first column has no header name (a pandas index?); save with "
                                 "DataFrame.to_csv(index=False), or name the column")
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


def _torch_reason(exc: BaseException) -> str:
    """What went wrong in ``torch.load``, in one short clause: PyTorch's own text is long and advises
    loading unsafely (``weights_only=False``), which sigmax never does and never suggests."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # PyTorch colours part of its message
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"holds a Python object ({found.group(1)}) beside its tensors, which sigmax never unpickles "
                "(it reads .pt files weights-only)")
    if "Weights only load failed" in text or "weights_only" in text:
        return "holds Python objects beside its tensors, which sigmax never unpickles (it reads .pt files weights-only)"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    first = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]  # the first sentence
    if len(first) > 160:
        first = first[:157].rstrip() + "..."
    return f"cannot be read as a PyTorch file ({first.rstrip('.')})"


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
        raise ScoreFileError(f"{path}: {_torch_reason(exc)}; save tensors only (torch.save(logits) or "
                             "torch.save({'logits': logits})), or the array with np.save") from None
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


def load_array(path: Any, *, key: str | None = None, as_numpy: bool = True, mmap: bool = False,
               memory_budget: int = MEMORY_BUDGET) -> Any:
    """Load one numeric array from ``path`` (no shape or dtype checks; see :func:`load_scores`).

    Args:
        path: a ``.npy``, ``.npz``, ``.csv``, ``.txt``, ``.pt`` or ``.pth`` file.
        key: the array to take from an ``.npz`` archive or a ``.pt`` dict (or a ``.csv`` column by
            its header name). Required when there are several.
        as_numpy: return ``.pt`` content as a NumPy array (default) instead of a torch tensor.
        mmap: memory-map a ``.npy`` instead of reading it (read-only).
        memory_budget: bytes the array may take once read (default 1 GiB), checked *before* reading
            (:func:`estimate_bytes`): an ``.npz`` member from the archive's directory and its header, a
            ``.csv`` from its size and first lines, a ``.pt`` from its size. A ``.npy`` is not checked
            here: :func:`iter_chunks` streams it.

    Returns:
        A NumPy array (or a torch tensor for ``.pt`` when ``as_numpy=False``).

    Raises:
        ScoreFileError: missing file, unknown extension, pickled objects, several arrays and no key,
            a truncated ``.npy`` (checked from its header before anything is allocated), an ``.npz``
            member, ``.csv`` or ``.pt`` over ``memory_budget``, an empty or overflowing CSV cell.

    Warns:
        UserWarning: a pandas index column (``DataFrame.to_csv()``'s unnamed first column 0..N-1) was dropped.
    """
    memory_budget = _budget(memory_budget)
    path = _check_path(path)
    ext = _ext(path)
    if ext == ".npy":
        if key is not None:
            raise ScoreFileError(f"{path}: a .npy file holds one array; drop key={key!r}")
        arr = _load_npy(path, mmap)
    elif ext == ".npz":
        arr = _load_npz(path, key, memory_budget)
    elif ext in (".csv", ".txt"):
        _within_budget(path, _csv_estimate(path), memory_budget, "reading this text file whole")
        arr = _load_text(path, key)
    else:
        _within_budget(path, os.path.getsize(path), memory_budget, "reading this .pt file whole")
        t = _load_pt(path, key)
        if not as_numpy:
            return t
        arr = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()
    if getattr(arr, "dtype", None) is not None and arr.dtype.kind not in "biuf":
        raise ScoreFileError(f"{path}: holds {arr.dtype} values, not numbers; save a numeric array")
    return arr


def load_scores(path: Any, *, key: str | None = None, as_numpy: bool = True, mmap: bool = False,
                ndim: tuple[int, ...] | None = None, memory_budget: int = MEMORY_BUDGET) -> Any:
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
        memory_budget: bytes an ``.npz`` member may take decompressed (default 1 GiB = ``2**30``).

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
    arr = load_array(path, key=key, as_numpy=as_numpy, mmap=mmap, memory_budget=memory_budget)
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


def load_labels(path: Any, *, key: str | None = None, as_numpy: bool = True,
                memory_budget: int = MEMORY_BUDGET) -> Any:
    """Load targets: class indices (integers), multi-hot rows (0/1) or class probabilities.

    Whole-number float arrays of class indices (as a ``.csv`` gives) become ``int64``; 2-D arrays
    (multi-hot or probabilities) keep their values (as float64 if they were integers/bools).

    Args:
        path: ``.npy``, ``.npz``, ``.csv``/``.txt``, ``.pt``/``.pth``.
        key: which array of an ``.npz``/``.pt`` dict, or which ``.csv`` column.
        as_numpy: ``.pt`` content as NumPy (default) or as a torch tensor.
        memory_budget: bytes an ``.npz`` member may take decompressed (default 1 GiB = ``2**30``).

    Returns:
        ``int64`` indices for 1-D whole-number labels; otherwise the array as loaded.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "y.csv")
        >>> _ = open(p, "w").write("label\\n0\\n2\\n1\\n")
        >>> load_labels(p)
        array([0, 2, 1])
    """
    arr = load_array(path, key=key, as_numpy=as_numpy, memory_budget=memory_budget)
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


def is_streamed(path: Any, key: str | None = None) -> bool:
    """Whether :func:`iter_chunks` memory-maps ``path`` (a ``.npy``, no key) rather than reading it whole.

    Only a ``.npy`` can be streamed from disk; ``.npz``, ``.csv``/``.txt`` and ``.pt`` are read whole
    and then sliced, so what a command reports about its memory should say so.

    Example:
        >>> is_streamed("scores.npy"), is_streamed("scores.csv"), is_streamed("out.npz", key="logits")
        (True, False, False)
    """
    return _ext(os.fspath(path)) == ".npy" and key is None


def _budget(memory_budget: Any) -> int:
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes (default 2**30 = 1 GiB), "
                         f"got {memory_budget!r}")
    return int(memory_budget)


def count_rows(path: Any, *, memory_budget: int = MEMORY_BUDGET) -> int:
    """The number of rows (first dimension) of a ``.npy`` file, read from its header only (other formats
    are read whole, within ``memory_budget``)."""
    path = _check_path(path)
    if _ext(path) != ".npy":
        return int(load_array(path, memory_budget=memory_budget).shape[0])
    return int(_load_npy(path, mmap=True).shape[0])


def iter_chunks(path: Any, chunk_rows: int = 65536, *, key: str | None = None,
                dtype: Any = None, memory_budget: int = MEMORY_BUDGET) -> Iterator[np.ndarray]:
    """Yield blocks of at most ``chunk_rows`` rows of a score file, in order, in bounded memory.

    A ``.npy`` file is memory-mapped (``np.load(mmap_mode="r")``) and each block is copied out, so
    only one block is resident at a time and files larger than memory can be processed. Other
    formats are loaded whole and then sliced (same interface, no memory bound).

    Args:
        path: the score file (``.npy`` for bounded memory).
        chunk_rows: rows per block, a positive integer.
        key: as in :func:`load_scores` (for ``.npz``/``.pt``/``.csv``).
        dtype: cast each block to this NumPy dtype (default: the stored dtype; integers become float64).
        memory_budget: as in :func:`load_array`, for the formats read whole (see :func:`is_streamed`).

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
        arr = load_array(path, key=key, memory_budget=memory_budget)
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


# ------------------------------------------------------------------------- shards (several .npy files)
def shard_paths(pattern: Any) -> list[str]:
    """The ``.npy`` files a glob names (or a list of paths), in sorted order; an error naming the pattern if none."""
    import glob

    if isinstance(pattern, (list, tuple)):
        paths = [os.fspath(p) for p in pattern]
    else:
        pattern = os.fspath(pattern)
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not paths:
        raise ScoreFileError(f"{pattern}: no file matches this pattern; check the path (quote the glob in the "
                             "shell so that sigmax expands it)")
    return paths


def check_shards(pattern: Any, what: str = "scores") -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """``(path, shape, dtype)`` of every shard, from the headers only, before any work starts.

    A shard that is missing, not a ``.npy``, truncated (header against size), not numeric, or whose
    shape after the first axis differs from the first shard's is a :class:`ScoreFileError` naming it.
    """
    out = []
    for path in shard_paths(pattern):
        if _ext(path) != ".npy":
            raise ScoreFileError(f"{path}: {what} shards must be .npy files (memory-mapped by each worker); "
                                 "convert it with numpy.save")
        arr = _load_npy(_check_path(path), mmap=True)  # the header checked against the file size
        if arr.ndim == 0 or arr.dtype.kind not in "biuf":
            raise ScoreFileError(f"{path}: holds a scalar or non-numeric {arr.dtype} values; save numeric rows")
        if out and (arr.shape[1:] != out[0][1][1:] or arr.dtype.kind != out[0][2].kind):
            raise ScoreFileError(f"{path}: shape {arr.shape} ({arr.dtype}) does not match the first {what} shard "
                                 f"{out[0][0]}, shape {out[0][1]} ({out[0][2]}); every shard needs the same shape "
                                 "after the rows (and the same kind of numbers)")
        out.append((path, tuple(arr.shape), arr.dtype))
    return out


def _read_rows(path: str, start: int, stop: int, dtype: Any) -> np.ndarray:
    return np.array(_load_npy(path, mmap=True)[start:stop], dtype=dtype, copy=True)  # out of the memory map


def open_shards(pattern: Any, *, chunk_rows: int = 65536, what: str = "scores") -> Any:
    """The shards a glob names as one Dask array chunked along rows (``chunk_rows`` per block at most).

    Every shard is checked first (:func:`check_shards`); each block is read by the worker that
    computes it, memory-mapping its shard (the files must be visible to the workers), so this process
    reads headers only. Needs the ``dask`` extra.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    import dask
    import dask.array as da

    shards = check_shards(pattern, what)
    dtype = np.result_type(*[d for _, _, d in shards])
    parts = []
    for path, shape, _ in shards:
        for start in range(0, shape[0], int(chunk_rows)):
            stop = min(shape[0], start + int(chunk_rows))
            block = dask.delayed(_read_rows, pure=True)(path, start, stop, dtype)
            parts.append(da.from_delayed(block, shape=(stop - start,) + shape[1:], dtype=dtype))
    if not parts:  # every shard empty
        return da.zeros((0,) + shards[0][1][1:], dtype=dtype)
    return da.concatenate(parts, axis=0)
