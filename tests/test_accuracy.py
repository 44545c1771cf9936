"""Accuracy against mpmath over grids spanning the finite range of float32 and float64.

The bound is stated in ulps (see ``sigmax.testing.ACCURACY_FUNCTIONS`` for how each function's error
is scaled); the README's accuracy table comes from ``python benchmarks/accuracy.py``.
"""

import pytest

from sigmax.testing import ACCURACY_FUNCTIONS, measure_accuracy

pytest.importorskip("mpmath")

#: the bound every function meets on every backend (measured maxima are 1.0 to 2.4 ulps)
MAX_ULPS = 4.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(ACCURACY_FUNCTIONS))
def test_max_error_in_ulps(backend, name, dtype):
    err = measure_accuracy(name, backend, dtype, n=600)
    assert err <= MAX_ULPS, f"{name} on {backend.name} {dtype}: {err:.2f} ulps > {MAX_ULPS}"
