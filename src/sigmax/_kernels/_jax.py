"""The C cross-entropy kernel inside jitted JAX programs on the CPU, through XLA's FFI.

XLA compiles optax's cross-entropy into reductions that run on one core (its CPU backend hands
reductions to YNNPACK), and sigmax's exact form (the target's term left out of the sum, so that a
confident row's tiny loss keeps its digits) costs those reductions several operations more per entry.
The compiled row kernel of ``_ck`` (the one NumPy arrays and CPU tensors take) computes that exact
form in one pass over memory on all the kernels' threads. Its handlers (``_ck.c``, ``ffi.h``) are
registered with :func:`jax.ffi.register_ffi_target` for the CPU platform, and :func:`ce_rows` wraps
them as a differentiable JAX function:

* ``sigmax_ce_fwd``: per row ``-log softmax(x)[t]`` and ``logsumexp(x)``; no ``(N, C)`` array.
* derivatives by :func:`jax.custom_jvp` (forward mode, reverse mode, ``jax.hessian``, ``vmap`` all
  work): the tangent is ``sum_c g_c dx_c`` with ``g = softmax(x) - onehot(t)``, which
  ``sigmax_ce_fwd_grad`` writes in the pass that forms the loss (one exp per entry, as optax's
  differentiated forward; its own recomputation from ``x`` by XLA measured slower: a second exp per
  entry). Reverse mode scales ``g`` by the cotangent in place (XLA reuses the buffer). Above 32 MiB
  the kernel asks huge pages for XLA's fresh buffer: glibc maps such blocks afresh on every call, and a
  fault per 4 KiB can cost more than the kernel itself.

Rows whose logits are all ``-inf`` or hold ``+inf`` get the kernels' values (``inf``; ``log k`` for a
``+inf`` target among ``k``) and a zero gradient; NaN rows give NaN. :func:`ready` registers the
handlers once and checks them against the JAX code on a small batch (values and gradients, special
rows included) before any program uses them; where that fails (no compiler at install, an XLA whose
FFI differs, kernels switched off) sigmax's JAX code runs instead, as before.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from . import _switches as sw

__all__ = ["ready", "applies", "ce_rows"]

_STATE = {"checked": None}


def _ffi():
    import jax

    return getattr(jax, "ffi", None) or getattr(getattr(jax, "extend", None), "ffi", None)


def ready() -> bool:
    """Whether the FFI handlers are registered and agree with the JAX code (checked once)."""
    if not (sw.AVAILABLE and sw.STATE.on):
        return False
    if _STATE["checked"] is None:
        _STATE["checked"] = _register_and_check()
    return _STATE["checked"]


def applies(x, ax: int) -> bool:
    """Whether :func:`ce_rows` takes ``x`` (classes on the last axis, float32/float64, under 2**24)."""
    import jax.numpy as jnp

    return (ax == x.ndim - 1 and x.dtype in (jnp.float32, jnp.float64) and 0 < x.shape[ax] < 2 ** 24
            and ready())


def _register_and_check() -> bool:
    import inspect

    ffi = _ffi()
    if ffi is None or "vmap_method" not in inspect.signature(ffi.ffi_call).parameters:
        return False  # a JAX before 0.4.38: its FFI calls cannot say how they batch; the JAX code runs
    try:
        import jax

        for name, capsule in sw.ck.ffi_targets().items():
            ffi.register_ffi_target(name, capsule, platform="cpu")
        with jax.ensure_compile_time_eval():  # first asked while a user's function is being traced
            return _agrees()
    except Exception as exc:  # an XLA whose FFI this build does not fit: the JAX code runs instead
        warnings.warn(f"sigmax: the JAX cross-entropy kernel is off ({type(exc).__name__}: {exc}); "
                      "sigmax's JAX code runs instead", RuntimeWarning, stacklevel=3)
        return False


def _agrees() -> bool:
    """The handlers against the plain JAX formula on rows that exercise every branch of the kernel."""
    import jax
    import jax.numpy as jnp

    x = np.array([[0.5, -1.0, 2.0, 0.0], [30.0, -30.0, 0.0, 1.0], [-np.inf] * 4,
                  [np.inf, 0.0, np.inf, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    t = np.array([2, 0, 1, 2, 3], dtype=np.int32)
    finite = slice(0, 2)
    xf = x[finite].astype(np.float64)
    m = xf.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(xf - m).sum(axis=-1, keepdims=True)))[:, 0]
    want = np.array([*(lse - xf[np.arange(2), t[finite]]), np.inf, np.log(2.0), np.log(4.0)], dtype=np.float32)
    p = np.exp(xf - lse[:, None])
    p[np.arange(2), t[finite]] -= 1.0
    for _ in (0,):
        loss = jax.jit(lambda v, y: ce_rows()(v, y)[0])(x, t)
        grad = jax.jit(jax.grad(lambda v, y: jnp.sum(ce_rows()(v, y)[0][:2])))(x, t)
        if not (np.allclose(np.asarray(loss), want, rtol=1e-5, atol=1e-6)
                and np.allclose(np.asarray(grad)[finite], p, rtol=1e-5, atol=1e-6)
                and np.all(np.asarray(grad)[2:] == 0.0)):
            raise RuntimeError("the kernel's results differ from the JAX code's")
    return True


@functools.lru_cache(maxsize=1)
def ce_rows():
    """``rows(x, t) -> (loss, lse)``: per row of ``x`` (classes last) ``-log softmax(x)[t]`` and
    ``logsumexp(x)``; ``t`` int32/int64 in ``[0, C)``."""
    import jax
    import jax.numpy as jnp

    ffi = _ffi()

    def call_fwd(x, t):
        rows = jax.ShapeDtypeStruct(x.shape[:-1], x.dtype)
        return ffi.ffi_call("sigmax_ce_fwd", (rows, rows), vmap_method="broadcast_all")(x, t)

    def call_fwd_grad(x, t):
        rows = jax.ShapeDtypeStruct(x.shape[:-1], x.dtype)
        full = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return ffi.ffi_call("sigmax_ce_fwd_grad", (rows, rows, full), vmap_method="broadcast_all")(x, t)

    def probs(g, lse, t):
        # softmax = (softmax - onehot) + onehot, 0 on the rows whose gradient is 0 (lse = +-inf)
        hot = jnp.expand_dims(t, -1) == jax.lax.broadcasted_iota(t.dtype, (1,) * (g.ndim - 1) + (g.shape[-1],),
                                                                  g.ndim - 1)
        return jnp.where(jnp.isinf(lse)[..., None], 0.0, g + hot.astype(g.dtype))

    @jax.custom_jvp
    def fwd_grad(x, t):
        return call_fwd_grad(x, t)

    @fwd_grad.defjvp
    def fwd_grad_jvp(primals, tangents):
        # derivatives of second order and more: d(softmax - onehot) = p dx - p sum_c p_c dx_c
        x, t = primals
        dx = tangents[0]
        loss, lse, g = fwd_grad(x, t)
        p = probs(g, lse, t)
        dl, dlse = jnp.sum(g * dx, axis=-1), jnp.sum(p * dx, axis=-1)
        return (loss, lse, g), (dl, dlse, p * dx - p * dlse[..., None])

    @jax.custom_jvp
    def rows(x, t):
        return call_fwd(x, t)  # values only: no (N, C) array

    @rows.defjvp
    def rows_jvp(primals, tangents):
        # d loss = sum_c (p_c - [c == t]) dx_c, d lse = sum_c p_c dx_c, with g = p - onehot written by the
        # kernel in the pass that forms the loss; reverse mode scales g by the cotangent in place
        x, t = primals
        dx = tangents[0]
        loss, lse, g = fwd_grad(x, t)
        return (loss, lse), (jnp.sum(g * dx, axis=-1), jnp.sum(probs(g, lse, t) * dx, axis=-1))

    return rows
