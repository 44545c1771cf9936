"""The one dispatch step: which implementation runs a call, and why the faster ones did not.

Every operation with more than one implementation (the losses of :mod:`sigmax.losses`; ``sigmoid``,
``log_sigmoid``, ``softplus``, ``softmax``, ``log_softmax`` and ``logsumexp`` of
:mod:`sigmax.activations`) names its implementations in one table, tried in this fixed order (docs/ARCHITECTURE.md, "Dispatch"):

==================  ==========================================================================
backend             runs
==================  ==========================================================================
``numpy-kernel``    the compiled C kernels (:mod:`sigmax._kernels`) on float32/float64 NumPy arrays
``torch-cpu-kernel`` the same kernels on CPU torch tensors, with their ``torch.autograd.Function``
``cuda``            the Triton kernels of :mod:`sigmax.torch.triton`, loaded on the first CUDA tensor
``jax``             the generic arithmetic compiled once per shape and options by ``jax.jit``
``generic``         the Array-API arithmetic, any library (the reference; it never declines)
==================  ==========================================================================

An implementation either returns the result or :func:`decline` ``("why")``: a :class:`Declined`
value whose reason the trace prints. Nothing else is a signal: no ``NotImplemented``, no ``None``.

Tracing: ``SIGMAX_TRACE_DISPATCH=1`` in the environment (read at import) prints one line per call to
standard error, and :func:`trace` does the same for a block and collects the records::

    >>> import numpy as np, sigmax
    >>> from sigmax import _dispatch
    >>> with _dispatch.trace(echo=False) as records:
    ...     _ = sigmax.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(3))
    >>> records[-1].ran, records[-1].declined[0]
    ('generic', ('numpy-kernel', 'weight given (the kernel has no class weights)'))

Also here, used by every check that reads values: :func:`is_traced` (is a value abstract: a JAX
tracer, a tensor under ``torch.compile`` / ``torch.func`` / ``vmap``, or a batched tensor) and
:func:`torch_transform_active` (the one "inside torch.compile, a functorch transform or forward-mode
AD?" test; kernels and sigmax's own autograd Functions step aside there).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterator, NamedTuple

__all__ = [
    "BACKENDS",
    "Declined",
    "Record",
    "call",
    "decline",
    "is_traced",
    "register",
    "table",
    "torch_transform_active",
    "trace",
]

#: the backends, in the order they are tried
BACKENDS = ("numpy-kernel", "torch-cpu-kernel", "cuda", "jax", "generic")


class Declined:
    """What an implementation returns when it does not apply to a call; ``reason`` says why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"Declined({self.reason!r})"


def decline(reason: str) -> Declined:
    """The value an implementation returns to pass the call on to the next backend."""
    return Declined(reason)


class Record(NamedTuple):
    """One traced call: the operation, the backend that ran, and ``(backend, reason)`` per decline."""

    op: str
    ran: str
    declined: tuple

    def __str__(self) -> str:
        why = "; ".join(f"{b}: {r}" for b, r in self.declined)
        return f"sigmax dispatch: {self.op} -> {self.ran}" + (f" (declined: {why})" if why else "")


_IMPLS: dict[str, dict[str, Callable[..., Any]]] = {}
_TABLES: dict[str, tuple] = {}

#: backends whose implementations live on a higher floor, in a module loaded *by name* on the first call
#: that can use them (a CUDA tensor), so that ``sigmax.softmax(cuda_tensor)`` reaches the Triton kernels
#: without the user importing ``sigmax.torch`` and without this floor importing a higher one; the loaded
#: module registers its implementations, which replace the loader
PLUGINS = {"cuda": "sigmax.torch.triton"}
#: the operations the plugin implements (the others never get a loader row)
PLUGIN_OPS = {"cuda": ("softmax", "log_softmax", "logsumexp", "cross_entropy_indices", "cross_entropy_probs",
                       "bce_with_logits")}


def _loader(op: str, backend: str) -> Callable[..., Any]:
    def load(*args: Any, **kwargs: Any) -> Any:
        if not any(getattr(a, "is_cuda", False) is True for a in args[:2]):
            return decline("not a CUDA tensor")
        import importlib

        try:
            importlib.import_module(PLUGINS[backend])
        except ImportError as exc:  # torch or Triton missing: stop trying (the reason kept as text: `exc` is
            reason = f"{PLUGINS[backend]} cannot be imported ({exc})"  # unbound once the except block ends)
            _set(op, backend, lambda *a, **k: decline(reason))
            return decline(reason)
        impl = _IMPLS[op].get(backend)
        if impl is load:  # the plugin did not register this operation (no GPU or no Triton): stop trying
            reason = f"{PLUGINS[backend]} registered no {backend} implementation (Triton or a CUDA device missing)"
            _set(op, backend, lambda *a, **k: decline(reason))
            return decline(reason)
        return impl(*args, **kwargs)

    load.plugin_loader = True
    return load


def _set(op: str, backend: str, f: Callable[..., Any]) -> None:
    impls = _IMPLS.setdefault(op, {})
    impls[backend] = f
    _TABLES[op] = tuple((b, impls[b]) for b in BACKENDS if b in impls)


def register(op: str, backend: str, fn: Callable[..., Any] | None = None):
    """Register ``fn`` as ``op``'s implementation on ``backend`` (usable as a decorator).

    All implementations of one operation take the same arguments. The ``generic`` one must not decline.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; the backends are {BACKENDS}")

    def add(f):
        if op not in _IMPLS:
            for plug, ops in PLUGIN_OPS.items():
                if op in ops and plug != backend:
                    _set(op, plug, _loader(op, plug))
        _set(op, backend, f)
        return f

    return add if fn is None else add(fn)


def table(op: str) -> tuple:
    """``op``'s backends in the order they are tried (those registered), as ``(name, function)``."""
    return _TABLES[op]


_TRACE: list | None = None  # the records of the innermost trace() block, or [] for the environment switch
_ECHO = False


def call(op: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``op`` on the first backend of its table that does not decline."""
    if _TRACE is None:
        for _, fn in _TABLES[op]:
            r = fn(*args, **kwargs)
            if type(r) is not Declined:
                return r
    else:
        declined = []
        impls = _IMPLS[op]
        for name in BACKENDS:
            fn = impls.get(name)
            if fn is None:
                declined.append((name, "no implementation registered"))
                continue
            r = fn(*args, **kwargs)
            if type(r) is Declined:
                declined.append((name, r.reason))
                continue
            _note(Record(op, name, tuple(declined)))
            return r
    raise RuntimeError(f"sigmax: every backend declined {op!r}; the generic implementation must not decline")


def _note(record: Record) -> None:
    if _TRACE is not None:
        _TRACE.append(record)
        del _TRACE[:-1000]  # the environment switch runs for the whole process: keep the last ones
    if _ECHO:
        print(str(record), file=sys.stderr)


@contextlib.contextmanager
def trace(echo: bool = True) -> Iterator[list]:
    """Within the block, record (and with ``echo`` print to standard error) which backend ran each call
    and why the faster ones declined; yields the list of :class:`Record` s."""
    global _TRACE, _ECHO
    previous = (_TRACE, _ECHO)
    records: list = []
    _TRACE, _ECHO = records, echo
    try:
        yield records
    finally:
        _TRACE, _ECHO = previous


if os.environ.get("SIGMAX_TRACE_DISPATCH", "").strip().lower() in ("1", "true", "yes", "on"):
    _TRACE, _ECHO = [], True


# --------------------------------------------------------------------------------------------
# abstract values: checks step aside, kernels decline
# --------------------------------------------------------------------------------------------

_TORCH_CHECKS = None
_NUMBERS = (float, int, bool, complex)  # Python numbers: never traced


def _torch_checks():
    global _TORCH_CHECKS
    if _TORCH_CHECKS is None:
        import torch
        import torch.autograd.forward_ad as fwad

        checks = []
        compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
        if compiling is not None:
            checks.append(compiling)
        level = getattr(getattr(torch._C, "_functorch", None), "maybe_current_level", None)
        if level is not None:
            checks.append(lambda: level() is not None)
        _TORCH_CHECKS = (tuple(checks), lambda: fwad._current_level >= 0)
    return _TORCH_CHECKS


def torch_transform_active() -> bool:
    """Inside ``torch.compile`` tracing, a functorch transform (``vmap``, ``grad``, ``jvp``) or a
    forward-mode AD level (``torch.autograd.forward_ad.dual_level``): no raw pointers, and no autograd
    Function without a forward derivative (the differentiable generic path runs instead)."""
    abstract, forward_ad = _torch_checks()
    for check in abstract:
        if check():
            return True
    return forward_ad()


def _torch_abstract() -> bool:
    """Inside ``torch.compile`` tracing or a functorch transform: values cannot be read."""
    for check in (_TORCH_CHECKS or _torch_checks())[0]:
        if check():
            return True
    return False


_TORCH_TYPES = None  # (torch.Tensor, torch.nn.Parameter, is_legacy_batchedtensor), once torch is seen


def _torch_types():
    global _TORCH_TYPES
    import torch

    batched = getattr(getattr(torch._C, "_functorch", None), "is_legacy_batchedtensor", None)
    _TORCH_TYPES = (torch.Tensor, torch.nn.Parameter, batched or (lambda t: False))
    return _TORCH_TYPES


def is_traced(*values: Any) -> bool:
    """Whether any of ``values`` is abstract: a JAX tracer (``jit``, ``grad``, ``vmap``), or a torch
    tensor under ``torch.compile`` / ``torch.func`` / ``vmap``, a batched tensor (PyTorch's batched
    gradients, ``torch.autograd.functional``'s ``vectorize=True``) or of a tensor subclass (a fake
    tensor). Checks that read values step aside for such calls. O(1) per value: no data is read."""
    abstract = None
    for v in values:
        if v is None:
            continue
        tv = type(v)
        if tv in _NUMBERS:
            continue
        tt = _TORCH_TYPES
        if tt is None or (tv is not tt[0] and tv is not tt[1]):
            mod = tv.__module__
            if mod.startswith("jax"):
                import jax

                if isinstance(v, jax.core.Tracer):
                    return True
                continue
            if not mod.startswith("torch"):
                continue
            tt = _TORCH_TYPES or _torch_types()
            if tv is not tt[0] and tv is not tt[1]:
                return True  # a tensor subclass (FakeTensor, ...)
        if abstract is None:  # (the same for every tensor of the call: asked once)
            abstract = _torch_abstract()
            if abstract:
                return True
        if tt[2](v):
            return True
    return False
