"""The Dask paths of ``sigmax report`` and ``sigmax calibrate`` (``--dask CLUSTER``, or a Zarr input).

Every input is opened as a Dask array chunked along rows and checked before a cluster starts or any
row is read (:func:`sigmax._io_dask.open_rows`: every shard's header, the Zarr metadata, the rows of
SCORES against LABELS); then the work runs inside :func:`sigmax._dask.cluster` (``None``: the local
threaded scheduler). An unreachable scheduler or a bad cluster spec is a :class:`~sigmax.cli.CLIError`
(one line, exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Callable

import numpy as np

from . import CLIError

__all__ = ["wants_dask", "open_input", "open_pair", "on_cluster", "plan_rows"]


def wants_dask(args: argparse.Namespace, *specs: Any) -> bool:
    """Whether the command runs on Dask: ``--dask`` given, or any input is a Zarr array."""
    from .._io_dask import is_zarr

    return getattr(args, "dask", None) is not None or any(is_zarr(s) for s in specs if s is not None)


def open_input(spec: Any, what: str, chunk_rows: int) -> Any:
    """One input (shards, a ``.npy`` or a Zarr array) as a Dask array; a one-line CLIError naming ``what``."""
    from .._io_dask import open_rows

    try:
        return open_rows(spec, chunk_rows=int(chunk_rows), what=what)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    except (ValueError, TypeError, OSError) as exc:  # ScoreFileError is a ValueError
        text = str(exc)
        raise CLIError(text if text.startswith(what) else f"{what} {spec}: {text}") from None


def plan_rows(spec: Any, what: str, budget: int, *, fitting: bool, chunk_rows: int | None,
              n_resamples: int | None = None) -> tuple[int, Any]:
    """Rows per block from the memory plan for ``spec``'s row width; ``(rows, plan)``: the report's own
    plan (:func:`sigmax.report.report_plan`) when ``n_resamples`` is given, else
    :func:`sigmax.report.plan_memory`."""
    from ..report import plan_memory, report_plan

    head = open_input(spec, what, 1 << 20)  # headers / metadata only: the width of a row
    width = max(1, int(np.prod(head.shape[1:], dtype=np.int64)))
    n = head.shape[0] or None
    try:
        if n_resamples is not None:
            plan = report_plan(budget, scores_per_row=width, n_rows=n, fitting=fitting, n_resamples=n_resamples,
                               chunk_rows=chunk_rows)
        else:
            plan = plan_memory(budget, scores_per_row=width, n_rows=n, fitting=fitting, chunk_rows=chunk_rows,
                               name="--memory-budget")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return plan.chunk_rows, plan


def open_pair(scores: Any, labels: Any | None, chunk_rows: int) -> tuple[Any, Any]:
    """SCORES and LABELS as row-aligned Dask arrays, both checked and their rows compared before any work."""
    from .._io_dask import check_rows

    s = open_input(scores, "SCORES", chunk_rows)
    y = open_input(labels, "LABELS", chunk_rows) if labels is not None else None
    try:
        check_rows(s, y, scores, labels)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return s, y


def on_cluster(args: argparse.Namespace, work: Callable[[], Any]) -> Any:
    """``work()`` inside the cluster ``--dask`` names (none: the local threaded scheduler). Starting or reaching
    the cluster failing is a one-line CLIError; errors of ``work`` pass through to the caller."""
    from .._dask import cluster

    if getattr(args, "dask", None) is None:  # no --dask: Dask's local threads, whatever client a caller holds
        import dask

        with dask.config.set(scheduler="threads"):
            return work()
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(cluster(getattr(args, "dask", None)))
    except (ValueError, ImportError, OSError, TimeoutError) as exc:
        raise CLIError(" ".join(str(exc).split())) from None
    except RuntimeError as exc:  # distributed: "Nanny failed to start." (the workers could not start)
        raise CLIError(f"--dask: the Dask cluster did not start ({' '.join(str(exc).split())}); run the command "
                       "from a script guarded by `if __name__ == '__main__':` or use --dask tcp://HOST:PORT") from None
    with stack:
        return work()
