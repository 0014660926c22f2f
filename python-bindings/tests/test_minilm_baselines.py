"""bench/minilm_baselines.py's ggml baselines against scalar transcriptions
of ggml's reference quantizers (quantize_row_q4_0_ref, quantize_row_q8_0_ref):
the fair comparison is only fair if these round exactly as ggml does."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "minilm_baselines.py"
pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="not run from a source tree")


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("minilm_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fp16(v):
    return float(np.float32(np.float16(v)))


def _q4_0_block(x):
    """ggml: the first value of largest magnitude, d = max / -8, code
    MIN(15, (int8_t)(x * (1/d) + 8.5f)), value (code - 8) * fp16(d)."""
    amax, mx = np.float32(0), np.float32(0)
    for v in x:
        if amax < abs(v):
            amax, mx = abs(v), v
    d = np.float32(mx / np.float32(-8))
    inv = np.float32(1) / d if d != 0 else np.float32(0)
    return [(min(15, math.trunc(float(np.float32(v * inv) + np.float32(8.5)))) - 8) * _fp16(d)
            for v in x]


def _q8_0_block(x):
    """ggml: d = max|x| / 127, code roundf(x * (1/d)), value code * fp16(d)."""
    d = np.float32(max(abs(v) for v in x) / np.float32(127))
    inv = np.float32(1) / d if d != 0 else np.float32(0)
    out = []
    for v in x:
        t = float(np.float32(v * inv))
        out.append(math.copysign(math.floor(abs(t) + 0.5), t) * _fp16(d))
    return out


def _blocks(rng):
    x = rng.standard_normal((3, 96)).astype(np.float32)
    x[0, :32] *= 50  # a block with a large range
    x[1, 32:64] = 0  # an all-zero block: d = 0
    x[2, 70] = -abs(x[2, 64:96]).max() * 3  # the largest magnitude is negative
    x[2, 5] = x[2, 3] = 4.0  # a tie for the largest magnitude
    x[0, 64:96] = np.arange(32) - 15.5  # q8_0 scale 1: every value a tie (roundf: away from 0)
    x[0, 64] = 127
    return x


def test_q4_0_matches_ggml(baselines):
    x = _blocks(np.random.default_rng(7))
    got = baselines.rtn_groups(x, 4)
    want = np.array([sum((_q4_0_block(r[j:j + 32]) for j in range(0, 96, 32)), [])
                     for r in x], np.float32)
    np.testing.assert_array_equal(got, want)


def test_q8_0_matches_ggml(baselines):
    x = _blocks(np.random.default_rng(8))
    got = baselines.q8_0_activations(x)
    want = np.array([sum((_q8_0_block(r[j:j + 32]) for j in range(0, 96, 32)), [])
                     for r in x], np.float32)
    np.testing.assert_array_equal(got, want)
    # Within half a step of x (plus the fp16 scale's rounding): no block lost.
    assert np.abs(got - x).max() <= np.abs(x).max() / 127


def test_synthetic_tokens_are_framed_and_reproducible(baselines):
    pytest.importorskip("safetensors")
    try:
        a = baselines.synthetic_tokens(3, 10)
    except Exception as e:  # the weights package is not installed
        pytest.skip(f"MiniLM weights unavailable: {e}")
    b = baselines.synthetic_tokens(3, 10)
    assert a.count == 3 and len(a.ids) == 30
    np.testing.assert_array_equal(a.ids, b.ids)
    assert all(a.ids[o] == 101 and a.ids[o + 9] == 102 for o in a.offsets[:-1])
    assert a.ids.min() >= 101
