"""Shared fixtures: every array test runs on NumPy, PyTorch and JAX (where installed)."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sigmax.testing import available_backends

BACKENDS = available_backends()

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request):
    """A :class:`sigmax.testing.Backend`: ``backend.asarray(values, dtype="float32")``."""
    return request.param


@pytest.fixture(params=[b for b in BACKENDS if b.name != "jax"], ids=lambda b: b.name)
def np_torch(request):
    """NumPy and PyTorch only (for tests of eager-only behaviour such as error messages)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def dask_client():
    """A ``distributed.Client`` of a LocalCluster of 2 worker processes (loopback), one per test module:
    the cluster ``sigmax --dask local:2`` starts (:func:`sigmax._dask.cluster`)."""
    pytest.importorskip("distributed")
    from sigmax._dask import cluster

    with cluster(("local", 2)) as client:
        yield client


@pytest.fixture
def part_error():
    """``check(got, want, rows=None)``: ``got`` (a Dask block's or a stream chunk's error) is the in-memory
    message ``want`` and then the part it was found and counted in (``rows``: ``(first, last)`` row)."""
    import re

    def check(got, want, rows=None):
        got, want = str(got), str(want)
        span = r"[\d,]+ to [\d,]+" if rows is None else re.escape(f"{rows[0]:,} to {rows[1]:,}")
        tail = rf" \[found in rows {span} of the input, checked as one part: counts are that part's\]"
        assert re.fullmatch(re.escape(want) + tail, got), (got, want)

    return check


@pytest.fixture
def x64():
    """JAX with 64-bit types enabled for one test (restored after)."""
    jax = pytest.importorskip("jax")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)
