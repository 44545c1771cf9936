"""Maximum error against mpmath, in ulps, of sigmax and its peers over the finite range.

    python benchmarks/accuracy.py            # full grids (about a minute)
    python benchmarks/accuracy.py --quick

Grids (``sigmax.testing.accuracy_grid``): elementwise functions from the smallest subnormal to the
largest finite value, both signs; ``logit`` over (0, 1) down to the smallest subnormal and up to
1 - eps/2; row functions on rows whose scale spans the exponent range. Error scaling per function:
``sigmax.testing.ACCURACY_FUNCTIONS``. JAX runs with subnormals flushed (XLA), so its row is
measured over the normal range.
"""

import argparse
import importlib.util

import numpy as np

from sigmax.testing import ACCURACY_FUNCTIONS, available_backends, measure_accuracy


def peers():
    """name -> {function: (backend name, callable)} for the peers installed."""
    out = {}
    if importlib.util.find_spec("scipy"):
        import scipy.special as sp

        out["scipy.special"] = ("numpy", {
            "sigmoid": sp.expit, "log_sigmoid": sp.log_expit, "softplus": lambda x: np.logaddexp(0, x),
            "logit": sp.logit, "softmax": lambda x: sp.softmax(x, axis=-1),
            "log_softmax": lambda x: sp.log_softmax(x, axis=-1), "logsumexp": lambda x: sp.logsumexp(x, axis=-1),
        })
    if importlib.util.find_spec("torch"):
        import torch
        import torch.nn.functional as F

        out["torch"] = ("torch", {
            "sigmoid": torch.sigmoid, "log_sigmoid": F.logsigmoid, "softplus": F.softplus, "logit": torch.logit,
            "softmax": lambda x: torch.softmax(x, -1), "log_softmax": lambda x: torch.log_softmax(x, -1),
            "logsumexp": lambda x: torch.logsumexp(x, -1),
        })
    if importlib.util.find_spec("jax"):
        import jax
        import jax.numpy as jnp

        out["jax.nn"] = ("jax", {
            "sigmoid": jax.nn.sigmoid, "log_sigmoid": jax.nn.log_sigmoid, "softplus": jax.nn.softplus,
            "logit": jax.scipy.special.logit, "softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
            "logsumexp": lambda x: jax.nn.logsumexp(x, axis=-1),
        })
        del jnp
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller grids")
    args = ap.parse_args()
    n = 400 if args.quick else 3000
    backends = {b.name: b for b in available_backends()}
    names = list(ACCURACY_FUNCTIONS)
    print("max error in ulps (inf: a result of 0 or inf where the exact value is finite and nonzero)\n")
    print("| implementation | dtype | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    rows = [(f"sigmax ({b})", b, None) for b in backends]
    rows += [(peer, bname, fns) for peer, (bname, fns) in peers().items()]
    for label, bname, fns in rows:
        for dtype in ("float32", "float64"):
            errs = []
            for name in names:
                e = measure_accuracy(name, backends[bname], dtype, n=n, fn=None if fns is None else fns[name])
                errs.append("inf" if not np.isfinite(e) else (f"{e:.3g}" if e < 1e4 else f"{e:.1e}"))
            print(f"| {label} | {dtype} | " + " | ".join(errs) + " |", flush=True)


if __name__ == "__main__":
    main()
