"""The kernels' switches: whether they are built and on, how many threads, which variant, the op codes.

``SIGMAX_DISABLE_KERNELS=1`` in the environment (read at import) or :func:`set_enabled` force the
generic path; ``SIGMAX_NUM_THREADS`` caps the threads (default: the CPUs this process may run on).
The op codes are the C module's own enums (``_ck.OP_LSE``, ...), not numbers written again here.
"""

from __future__ import annotations

import contextlib
import os

try:  # the compiled kernels are optional: without a compiler at install time, generic code only
    from . import _ck as ck
except ImportError:  # pragma: no cover - depends on the build
    ck = None
_ck = ck

__all__ = ["ck", "AVAILABLE", "STATE", "threads", "enabled", "set_enabled", "use_kernels", "num_threads", "variant"]

#: whether the compiled kernels were built and import
AVAILABLE = _ck is not None



class _State:
    """The switches the calls read on every call: ``STATE.on`` (compiled path allowed), ``STATE.threads``.

    One public, mutable record (an attribute read, as cheap as a module global) set only through
    :func:`set_enabled` and :func:`num_threads`.
    """

    __slots__ = ("on", "threads")

    def __init__(self, on: bool, threads: int) -> None:
        self.on, self.threads = on, threads




def _default_threads() -> int:
    env = os.environ.get("SIGMAX_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


#: the switches, read by the calls (``sw.STATE.on``, ``sw.STATE.threads``)
STATE = _State(AVAILABLE and os.environ.get("SIGMAX_DISABLE_KERNELS", "").strip().lower()
               not in ("1", "true", "yes", "on"), _default_threads())


if _ck is not None:
    _ck.ffi_set_threads(STATE.threads)


def _op(name: str):
    return getattr(_ck, name) if _ck is not None else None


# the C module's enums (see _ck.c)
EW = {"sigmoid": _op("EW_SIGMOID"), "log_sigmoid": _op("EW_LOG_SIGMOID"), "softplus": _op("EW_SOFTPLUS")}
OP_LSE, OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LSE_PARTS = (_op("OP_LSE"), _op("OP_SOFTMAX"), _op("OP_LOG_SOFTMAX"),
                                                    _op("OP_LSE_PARTS"))
ROW_OPS = {"softmax": OP_SOFTMAX, "log_softmax": OP_LOG_SOFTMAX}
BCE_NONE, BCE_SUM, BCE_GRAD = _op("BCE_NONE"), _op("BCE_SUM"), _op("BCE_GRAD")


def enabled() -> bool:
    """Whether calls may take the compiled path (built, and not switched off)."""
    return STATE.on


def set_enabled(flag: bool) -> bool:
    """Switch the compiled path on or off for this process; returns the previous setting."""
    previous = STATE.on
    STATE.on = bool(flag) and AVAILABLE
    return previous


@contextlib.contextmanager
def use_kernels(flag: bool):
    """``with use_kernels(False): ...`` runs the generic code (tests compare the two paths)."""
    previous = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(previous)


def num_threads(n: int | None = None) -> int:
    """The number of threads the kernels use; ``num_threads(n)`` sets it (returns the old value)."""
    old = STATE.threads
    if n is not None:
        STATE.threads = max(1, int(n))
        if _ck is not None:
            _ck.ffi_set_threads(STATE.threads)  # the XLA FFI handlers (JAX) read it in C, at run time
    return old


def threads() -> int:
    """The number of threads the kernels use."""
    return STATE.threads


def variant() -> str | None:
    """The instruction-set variant of the kernels in use (``"avx2"``, ``"base"``), ``None`` if not built."""
    return _ck.variant() if _ck is not None else None
