r"""Dask arrays: detection, row-aligned blocks, tree reductions of fixed-size states, naming a cluster.

sigmax's reductions over rows (metric sums, bin sums, the NLL's gradient and Hessian for a temperature,
histograms) are sums of per-chunk *states* of a fixed size. On a Dask array (chunked along rows) each
row block is turned into its state where it lives (a worker), the states are added in a tree of fan-in
:data:`FANIN`, and only the final state comes back: per reduction :math:`O(\text{blocks} \times
\text{state})` bytes travel between workers and :math:`O(\text{state})` reach the client, never the scores.

Nothing here imports Dask at import time: :func:`is_dask` looks at the type's module, so sigmax
works without the optional extra (``pip install 'sigmax[dask]'``). The graph runs on the current
scheduler: a ``distributed.Client`` when one is active, else Dask's threads.

Exact selection (order statistics over blocks) lives in :mod:`sigmax._dask_select`, on top of these reductions.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any, Callable, Sequence

import numpy as np

from ._inputs import in_memory_error, is_dask

__all__ = ["FANIN", "active_client", "add", "blocks", "blockwise", "cluster", "dask_array",
           "delayed_blocks", "in_memory_error", "is_dask", "parse_cluster", "persist_blocks",
           "reduce_holding", "row_layout", "row_starts", "tree_reduce"]

#: states added per node of the reduction tree
FANIN = 8


def dask_array():
    """``dask.array``, or an ``ImportError`` naming the extra to install."""
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - the extra is installed with the tests
        raise ImportError("Dask arrays need the optional extra: pip install 'sigmax[dask]' "
                          "(dask[array] and distributed)") from exc
    return da


# ------------------------------------------------------------------------- the layout
def _as_dask(x: Any, rows: tuple, name: str):
    da = dask_array()
    if x is None:
        return None
    if not is_dask(x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] != sum(rows):
            return x  # the shape error comes from row_layout's check
        return da.from_array(x, chunks=(rows,) + x.shape[1:])
    if x.ndim == 0 or x.shape[0] != sum(rows):
        return x
    return x.rechunk((rows,) + tuple(-1 for _ in x.shape[1:]))


def _shape_error(task: str, shape_s: tuple, shape_y: tuple | None, shape_w: tuple | None, axis: Any) -> Exception:
    """The canonical layer's own message for these shapes (checked on zero-stride stand-ins)."""
    from ._inputs import canonical  # the one validator and its messages

    dummy = functools.partial(np.broadcast_to, np.zeros(1))
    try:
        canonical(dummy(shape_s), None if shape_y is None else dummy(shape_y), task, axis=axis,
                  sample_weight=None if shape_w is None else dummy(shape_w), allow_empty=True)
    except (ValueError, TypeError) as exc:
        return exc
    return ValueError(f"labels of shape {shape_y} and sample_weight of shape {shape_w} do not match scores of "
                      f"shape {shape_s}; give one label (and weight) per row, chunked along the rows")


def row_layout(scores: Any, labels: Any, task: str, *, axis: Any = -1, sample_weight: Any = None):
    """``(scores, labels, weight)`` as Dask arrays chunked along rows only, aligned block for block.

    Scores become ``(M,)`` (binary) or ``(M, C)`` with the class axis last and whole (one chunk);
    labels ``(M,)`` or ``(M, C)`` (multilabel); weights ``(M,)``. NumPy labels or weights are cut to
    the scores' row chunks. Shapes that do not fit are the canonical layer's ``ValueError``.
    """
    from ._array import normalize_axis  # the one axis rule

    da = dask_array()
    s = scores if is_dask(scores) else da.from_array(np.asarray(scores))
    shape_s = tuple(s.shape)
    shape_y = None if labels is None else tuple(np.shape(labels))
    shape_w = None if sample_weight is None else tuple(np.shape(sample_weight))
    if s.ndim == 0:
        raise ValueError("scores must have at least one sample; got a 0-d scalar (wrap it in a list)")
    if task == "binary":
        if s.ndim == 2 and s.shape[1] == 1 and shape_y != shape_s:
            s = s[:, 0]
        row_shape = tuple(s.shape)
        ok_y = shape_y is None or shape_y == row_shape or (s.ndim == 1 and shape_y == (s.shape[0], 1))
        ax = None
    else:
        if s.ndim < 2:
            raise _shape_error(task, shape_s, shape_y, shape_w, axis)
        ax = normalize_axis(axis, s.ndim, name="axis")
        s = da.moveaxis(s, ax, -1)
        row_shape = tuple(s.shape[:-1])
        ok_y = shape_y is None or shape_y == (row_shape if task == "multiclass" else shape_s)
    ok_w = shape_w is None or shape_w == row_shape or (len(shape_w) == 1 and shape_w[0] == math.prod(row_shape))
    if not (ok_y and ok_w):
        raise _shape_error(task, shape_s, shape_y, shape_w, axis)
    if task == "binary":
        s = s.rechunk((s.chunks[0],) + (-1,) * (s.ndim - 1)).reshape(-1)
    else:
        s = s.rechunk((s.chunks[0],) + (-1,) * (s.ndim - 1))
        s = s.reshape(-1, s.shape[-1]) if s.ndim > 2 else s
    rows = s.chunks[0]

    def flat(x, keep_last: bool):
        if x is None:
            return None
        x = x if is_dask(x) else da.from_array(np.asarray(x))
        if keep_last:
            x = da.moveaxis(x, ax, -1)
            x = x.rechunk((x.chunks[0],) + (-1,) * (x.ndim - 1))
            x = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x
        else:
            x = x.rechunk((x.chunks[0],) + (-1,) * (x.ndim - 1)).reshape(-1)
        return _as_dask(x, rows, "labels")

    y = flat(labels, task == "multilabel")
    w = flat(sample_weight, False)
    return s, y, w


# ------------------------------------------------------------------------- blocks and reductions
def delayed_blocks(*arrays) -> list[tuple]:
    """One tuple of ``Delayed`` row blocks per block of rows (``None`` for a missing array)."""
    present = [a for a in arrays if a is not None]
    if not present:
        raise ValueError("no array given")
    cols = []
    for a in arrays:
        cols.append(None if a is None else list(a.to_delayed().reshape(-1)))
    nb = len(next(c for c in cols if c is not None))
    return [tuple(None if c is None else c[i] for c in cols) for i in range(nb)]


def row_starts(array: Any) -> list[int]:
    """The number (in the whole array) of each row block's first row, in block order: a block's task builds
    its rows' numbers from it for its messages (an int travels, not an array of the block's length).

    Example:
        >>> import dask.array as da
        >>> row_starts(da.zeros((5, 2), chunks=(2, 2)))
        [0, 2, 4]
    """
    return [int(x) for x in np.concatenate([[0], np.cumsum(array.chunks[0])[:-1]])]


def blocks(*arrays) -> list[tuple]:
    """Alias of :func:`delayed_blocks`."""
    return delayed_blocks(*arrays)


def add(a: Any, b: Any) -> Any:
    """The sum of two states: numbers, arrays, tuples/lists/dicts of them, ``None`` (nothing yet)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(add(x, y) for x, y in zip(a, b))
    if isinstance(a, list):
        return [add(x, y) for x, y in zip(a, b)]
    if isinstance(a, dict):
        return {k: add(a.get(k), b.get(k)) for k in a.keys() | b.keys()}
    return a + b


def _combine(combine: Callable, *states):
    return functools.reduce(combine, states)


def active_client():
    """The active ``distributed.Client``, or ``None`` (no cluster, or ``distributed`` not installed)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def tree_reduce(part: Callable, block_list: Sequence[tuple], combine: Callable = add, *, compute: bool = True,
                progress: Callable[[int], Any] | None = None):
    """``combine`` of ``part(*block)`` over every block, added in a tree on the workers; the result.

    ``part`` runs where each block lives and returns a fixed-size state; only states travel. ``combine``
    is applied in block order (``combine(combine(s0, s1), s2)`` ...), so an order-preserving merge gives
    the state of the blocks in order.

    ``progress(i)`` (with ``compute``) is called once per block ``i`` as its state is done: with an active
    ``distributed.Client`` the leaf states are futures (``client.compute``), followed with
    ``distributed.as_completed`` (their results stay on the workers) while the tree of combines runs on
    the workers; without one, Dask's local scheduler tells it through a ``dask.callbacks.Callback``.

    Example:
        >>> import dask.array as da
        >>> x = da.arange(10, chunks=3)
        >>> done = []
        >>> int(tree_reduce(lambda b: b.sum(), delayed_blocks(x), progress=done.append)), sorted(done)
        (45, [0, 1, 2, 3])
    """
    from dask import compute as dcompute, delayed

    states = [delayed(part, pure=False)(*blk) for blk in block_list]
    if not states:
        raise ValueError("no blocks to reduce")
    if progress is not None and compute:
        return _reduce_following(states, combine, progress)
    while len(states) > 1:
        states = [delayed(_combine, pure=False)(combine, *states[i:i + FANIN]) for i in range(0, len(states), FANIN)]
    return dcompute(states[0])[0] if compute else states[0]


def reduce_holding(part: Callable, block_list: Sequence[tuple], combine: Callable, light: Callable, *,
                   progress: Callable[[int], Any] | None = None):
    """With an active ``distributed.Client``: ``part(*block)`` of every block *held* on its worker (a future),
    the tree of ``combine`` over ``light(state)`` of each (what travels: ``light`` leaves out the heavy part
    of a state, which the caller fetches from the held states afterwards, straight to this process);
    ``(result, held futures)``. ``progress(i)`` as block ``i``'s state is done.

    Example:
        >>> import numpy as np
        >>> from distributed import Client
        >>> with Client(processes=False, dashboard_address=None) as client:
        ...     total, held = reduce_holding(lambda b: (int(b.sum()), b), [(np.arange(3),), (np.arange(4),)],
        ...                                  lambda a, b: a + b, lambda state: state[0])
        ...     total, [a.tolist() for _, a in client.gather(held)]
        (9, [[0, 1, 2], [0, 1, 2, 3]])
    """
    from dask import delayed
    from distributed import as_completed

    client = active_client()
    if client is None:
        raise RuntimeError("reduce_holding needs an active distributed.Client")
    held = client.compute([delayed(part, pure=False)(*blk) for blk in block_list])
    if not held:
        raise ValueError("no blocks to reduce")
    index = {f.key: i for i, f in enumerate(held)}
    states: list = [None] * len(held)
    for batch in as_completed(list(held)).batches():  # the blocks done since the last look: one question each
        where = client.who_has(batch)
        for f in batch:
            if f.status == "error":
                f.result()  # the block's own exception, raised here
            i = index[f.key]
            # light(state) where the state is: the heavy part never leaves its worker
            states[i] = client.submit(light, f, pure=False, workers=list(where.get(f.key, ())) or None,
                                      allow_other_workers=True)
            if progress is not None:
                progress(i)
    return _submit_tree(client, states, combine).result(), held


def _submit_tree(client: Any, states: list, combine: Callable) -> Any:
    """The future of ``combine`` over ``states`` (futures, in order), submitted as a tree of fan-in :data:`FANIN`."""
    while len(states) > 1:
        states = [client.submit(_combine, combine, *states[i:i + FANIN], pure=False)
                  for i in range(0, len(states), FANIN)]
    return states[0]


def _reduce_following(leaves: list, combine: Callable, progress: Callable[[int], Any]):
    """:func:`tree_reduce` of the leaf ``Delayed`` states, telling ``progress`` of each leaf as it is done."""
    client = active_client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(leaves)
        index = {f.key: i for i, f in enumerate(futures)}
        root = _submit_tree(client, list(futures), combine)  # at once: combines run as their leaves finish
        following = as_completed(futures)
        del futures  # the leaves are released once combined
        for f in following:
            if f.status == "error":
                f.result()  # the block's own exception, raised here
            progress(index[f.key])
            del f
        return root.result()
    from dask import compute as dcompute, delayed
    from dask.callbacks import Callback

    index = {leaf.key: i for i, leaf in enumerate(leaves)}

    def posttask(key, result, dsk, state, worker_id):
        i = index.get(key)
        if i is not None:
            progress(i)

    states = leaves
    while len(states) > 1:
        states = [delayed(_combine, pure=False)(combine, *states[i:i + FANIN]) for i in range(0, len(states), FANIN)]
    with Callback(posttask=posttask):
        return dcompute(states[0], optimize_graph=False)[0]


def persist_blocks(block_list: Sequence):
    """The blocks persisted on the cluster's workers when a ``distributed.Client`` is active, else as given.

    (Without a cluster, persisting would hold them in this process: they are recomputed per pass instead.)
    """
    if active_client() is None:
        return list(block_list)
    import dask

    return list(dask.persist(*block_list))


def blockwise(fn: Callable, x: Any, *, class_axis: int | None, dtype: Any, drop_class_axis: bool = False):
    """``fn`` applied lazily to each block of ``x`` (the class axis whole), returning a Dask array."""
    if class_axis is not None:
        x = x.rechunk({class_axis: -1})
    kw = {"drop_axis": class_axis} if drop_class_axis and class_axis is not None else {}
    return x.map_blocks(fn, dtype=dtype, meta=np.empty((0,) * (x.ndim - (1 if kw else 0)), dtype=dtype), **kw)


# ------------------------------------------------------------------------- naming a cluster
def parse_cluster(text: str) -> tuple[str, Any]:
    """``local`` / ``local:N`` (a LocalCluster of N worker processes) or ``tcp://HOST:PORT`` (a scheduler)."""
    t = str(text).strip()
    if t == "local" or t.startswith("local:"):
        n = t.partition(":")[2] or "2"
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--dask {text}: local:N takes a positive number of worker processes, e.g. local:4")
        return "local", int(n)
    if t.startswith(("tcp://", "tls://")) and ":" in t.split("://", 1)[1]:
        return "address", t
    raise ValueError(f"--dask {text!r}: use local, local:N (N worker processes on this machine) or "
                     "tcp://HOST:PORT (the address of a running dask scheduler)")


@contextlib.contextmanager
def cluster(spec: tuple[str, Any] | None):
    """A ``distributed.Client`` for the duration of the block (``None``: no cluster, the caller's scheduler).

    A local cluster is started on the loopback interface, one thread per worker process, and stopped
    at the end; an address connects to an existing scheduler (left running).
    """
    if spec is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the extra is installed with the tests
        raise ImportError("--dask needs the optional extra: pip install 'sigmax[dask]'") from exc
    kind, value = spec
    if kind == "local":
        import logging

        # silence_logs: a task's exception reaches the caller as itself (the CLI prints it as one line); the
        # workers' own log of it ("Compute Failed", a traceback) would be printed to stderr besides
        with LocalCluster(n_workers=value, threads_per_worker=1, processes=True, host="127.0.0.1",
                          silence_logs=logging.CRITICAL,
                          # the scheduler serves HTTP (metrics) even without a dashboard, on 8787 unless told:
                          # a free loopback port, so a second cluster prints no "port in use" warning
                          dashboard_address="127.0.0.1:0") as lc, Client(lc) as client:
            yield client
    else:
        try:
            client = Client(value, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--dask {value}: no dask scheduler answered there ({exc}); start one with "
                             "`dask scheduler` or use --dask local") from None
        with client:
            yield client
