"""Shared fixtures: a fresh random seed per test (or BP_TEST_SEED), printed so
that a failure can be replayed, like the C suite's tu_seed()."""

import os
import time

import numpy as np
import pytest

try:
    import bitplane._bitplane  # noqa: F401
except ImportError as e:  # the source tree shadows the installed package
    raise ImportError(
        f"bitplane's extension module is not importable ({e}); install the package first "
        "(pip install ./python-bindings) and run pytest from outside python-bindings/") from e


@pytest.fixture
def seed(request):
    env = os.environ.get("BP_TEST_SEED")
    s = int(env) if env else (time.time_ns() ^ (os.getpid() << 20)) & 0xFFFFFFFF
    print(f"{request.node.nodeid}: seed {s} (replay with BP_TEST_SEED={s})")
    return s


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


def gauss(rng, shape, scale=1.0):
    """float32 N(0, scale^2) values, never exactly zero."""
    a = (rng.standard_normal(shape) * scale).astype(np.float32)
    a[a == 0] = np.float32(1e-3)
    return a
