"""Score sources as Dask arrays chunked along rows, and one ``.npy`` written by the workers.

* :func:`open_rows`: SCORES / LABELS given as a glob (or a path) of ``.npy`` shards
  (:func:`sigmax.io.open_shards`) or as a Zarr array (``data.zarr``, or ``data.zarr:group/array``), as one
  Dask array chunked along rows. Everything is checked before any work starts (missing path, not a
  Zarr array, non-numeric dtype, a 0-d array): a :class:`~sigmax.io.ScoreFileError` naming the
  argument. :func:`check_rows` compares the rows of scores and labels.
* :func:`store_npy`: a lazy Dask array written into ONE ``.npy``: a temporary ``.npy`` beside the
  target (``numpy.lib.format.open_memmap``), each block written at its row offset by the worker that
  computes it, renamed onto the target only when every block is done; an error or an interruption
  leaves no partial file and the target (which may be the input) as it was. With a remote cluster
  (``tcp://``) the folder must be on a filesystem the workers share.

Zarr is optional: without it a Zarr path is a one-line ``ImportError`` naming ``pip install 'sigmax[dask]'``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any

import numpy as np

from .io import ScoreFileError, open_shards

__all__ = ["is_zarr", "open_zarr", "open_rows", "check_rows", "store_npy"]


def is_zarr(spec: Any) -> bool:
    """Whether ``spec`` names a Zarr array: ``PATH.zarr`` (a folder) or ``PATH.zarr:group/array``.

    Example:
        >>> is_zarr("scores.zarr"), is_zarr("scores.zarr:val/logits"), is_zarr("logits-*.npy")
        (True, True, False)
    """
    if spec is None or isinstance(spec, (list, tuple)):
        return False
    s = os.fspath(spec).rstrip("/\\")
    return s.lower().endswith(".zarr") or ".zarr:" in s.lower()


def _split_zarr(spec: str) -> tuple[str, str | None]:
    s = os.fspath(spec)
    low = s.lower()
    at = low.rfind(".zarr:")
    if at < 0:
        return s.rstrip("/\\"), None
    return s[:at + 5], (s[at + 6:].strip("/") or None)


def _zarr():
    try:
        import zarr
    except ImportError:
        raise ImportError("Zarr input needs the optional extra: pip install 'sigmax[dask]' (or pip install zarr)") \
            from None
    return zarr


def open_zarr(spec: Any, *, chunk_rows: int = 65536, what: str = "SCORES") -> Any:
    """The Zarr array ``spec`` names as a Dask array of ``chunk_rows`` rows per block (other axes whole).

    ``spec`` is ``PATH.zarr`` (an array stored at the root) or ``PATH.zarr:group/array``. The array is
    opened read-only and checked here (its metadata only); each worker then reads its own rows.

    Example:
        >>> import tempfile, os, numpy as np, zarr
        >>> d = os.path.join(tempfile.mkdtemp(), "s.zarr")
        >>> z = zarr.create_array(d, shape=(10, 3), chunks=(4, 3), dtype="float32")
        >>> z[:] = np.arange(30, dtype="float32").reshape(10, 3)
        >>> x = open_zarr(d, chunk_rows=5)
        >>> x.chunks, float(x.sum().compute())
        (((5, 5), (3,)), 435.0)
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    zarr = _zarr()
    import dask.array as da

    shown = os.fspath(spec)
    path, key = _split_zarr(spec)
    path = os.path.abspath(path)  # the workers open it, from another working directory
    if not os.path.exists(path):
        raise ScoreFileError(f"{what} {shown}: no such Zarr store ({path} does not exist); check the path "
                             f"(current directory is {os.getcwd()})")
    try:
        arr = zarr.open_array(store=path, path=key or "", mode="r")
    except Exception as exc:  # zarr raises its own types for a group, a missing node or a bad store
        hint = "add :group/array to pick an array in the store" if key is None else "check the array's path"
        raise ScoreFileError(f"{what} {shown}: not a Zarr array ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split()) or 'unreadable'}); {hint}") from None
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "biuf":
        raise ScoreFileError(f"{what} {shown}: holds {dtype} values; scores and labels must be numbers "
                             "(bool, integers or floats)")
    if len(arr.shape) == 0:
        raise ScoreFileError(f"{what} {shown}: is a 0-d (scalar) array; store one row per sample")
    shape = tuple(int(n) for n in arr.shape)
    rows = max(1, min(int(chunk_rows), shape[0] or 1))
    return da.from_zarr(path, component=key, chunks=(rows,) + shape[1:])


def open_rows(spec: Any, *, chunk_rows: int = 65536, what: str = "SCORES") -> Any:
    """SCORES or LABELS as one Dask array chunked along rows: a Zarr array, or ``.npy`` shards (a glob,
    a list or one path), checked before any work starts; messages name ``what``.

    Example:
        >>> import tempfile, os, numpy as np
        >>> d = tempfile.mkdtemp()
        >>> for i in range(3):
        ...     np.save(os.path.join(d, f"s-{i}.npy"), np.full((4, 2), i, dtype=np.float32))
        >>> x = open_rows(os.path.join(d, "s-*.npy"), chunk_rows=6)
        >>> x.shape, x.chunks[0], float(x.sum().compute())
        ((12, 2), (6, 6), 24.0)
    """
    # absolute paths: the workers of a cluster read the files, from another working directory
    if isinstance(spec, (str, os.PathLike)):
        spec = os.path.abspath(os.fspath(spec)) if not is_zarr(spec) else spec
    elif isinstance(spec, (list, tuple)):
        spec = [os.path.abspath(os.fspath(p)) for p in spec]
    if is_zarr(spec):
        return open_zarr(spec, chunk_rows=chunk_rows, what=what)
    try:
        x = open_shards(spec, chunk_rows=chunk_rows, what=what)
    except ScoreFileError as exc:
        raise ScoreFileError(f"{what}: {exc}") from None
    rows = max(1, min(int(chunk_rows), x.shape[0] or 1))
    return x.rechunk({0: rows}) if len(x.chunks[0]) > 1 else x  # blocks of equal rows across shard ends


def check_rows(scores: Any, labels: Any, scores_spec: Any = "SCORES", labels_spec: Any = "LABELS") -> None:
    """A :class:`~sigmax.io.ScoreFileError` naming both arguments when their rows differ.

    Example:
        >>> import numpy as np
        >>> try:
        ...     check_rows(np.zeros((3, 2)), np.zeros(4), "s.zarr", "y.zarr")
        ... except ValueError as e:
        ...     print(e)
        LABELS y.zarr hold 4 rows but SCORES s.zarr hold 3; give one label row per score row (shards are taken in sorted order)
    """
    if labels is not None and labels.shape[0] != scores.shape[0]:
        raise ScoreFileError(f"LABELS {labels_spec} hold {labels.shape[0]} rows but SCORES {scores_spec} hold "
                             f"{scores.shape[0]}; give one label row per score row (shards are taken in sorted "
                             "order)")


def _write_block(block: np.ndarray, path: str, block_info: dict | None = None) -> np.ndarray:
    """Write one block at its row offset into the ``.npy`` at ``path``; the number of rows written."""
    start = block_info[0]["array-location"][0][0]
    mm = np.lib.format.open_memmap(path, mode="r+")
    try:
        mm[start:start + block.shape[0]] = block
        mm.flush()
    finally:
        del mm
    return np.array([block.shape[0]], dtype=np.int64)


def temporary_beside(path: Any) -> str:
    """A fresh hidden file name in ``path``'s folder (the folder created when missing).

    Example:
        >>> import os, tempfile
        >>> t = temporary_beside(os.path.join(tempfile.mkdtemp(), "out.npy"))
        >>> os.path.basename(t).startswith(".out.npy.") and t.endswith(".tmp.npy")
        True
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ScoreFileError(f"{path}: is a directory; give a file name to write")
    folder = os.path.dirname(path)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ScoreFileError(f"{folder}: is not a folder; choose another output path")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp.npy")


def store_npy(x: Any, path: Any, *, dtype: Any = None) -> tuple[int, ...]:
    """Write the Dask array ``x`` (chunked along rows) into ONE ``.npy`` at ``path``; its shape.

    The file is created beside ``path`` as a temporary ``.npy`` of the full shape, each block is
    written at its row offset by the worker that computes it (nothing but a row count comes back),
    and it is renamed onto ``path`` when every block is done. On an error or an interruption the
    temporary file is removed and ``path`` is left as it was, so ``path`` may be one of the inputs of
    ``x``. With a remote cluster the folder must be one the workers share.

    Example:
        >>> import os, tempfile, numpy as np, dask.array as da
        >>> p = os.path.join(tempfile.mkdtemp(), "out.npy")
        >>> store_npy(da.arange(10, chunks=3).reshape(10, 1) * 2.0, p)
        (10, 1)
        >>> np.load(p).ravel().tolist()[:4], sorted(os.listdir(os.path.dirname(p)))
        ([0.0, 2.0, 4.0, 6.0], ['out.npy'])
    """
    dtype = np.dtype(x.dtype if dtype is None else dtype)
    shape = tuple(int(n) for n in x.shape)
    if any(np.isnan(c) for c in x.chunks[0]):
        raise ValueError("the rows of every block must be known to write them at their offsets; "
                         "call compute_chunk_sizes() first")
    x = x.rechunk({i: -1 for i in range(1, x.ndim)}) if x.ndim > 1 else x
    target = os.path.abspath(os.fspath(path))
    tmp = temporary_beside(target)
    try:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
        if shape[0]:
            x = x.astype(dtype, copy=False)
            drop = {"drop_axis": list(range(1, x.ndim))} if x.ndim > 1 else {}
            done = x.map_blocks(_write_block, tmp, dtype=np.int64, chunks=((1,) * len(x.chunks[0]),),
                                meta=np.empty((0,), np.int64), **drop)
            rows = int(done.sum().compute())
            if rows != shape[0]:  # pragma: no cover - a block of the wrong size
                raise ValueError(f"wrote {rows} rows of {shape[0]}; the output was not replaced")
        if os.path.exists(target):
            with contextlib.suppress(OSError):
                os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return shape
