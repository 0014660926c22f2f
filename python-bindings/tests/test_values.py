"""One rule for the per-call values in C, Python and the CLI (0 = all planes /
the default act_bits / the default bits, as in bitplane.h), NumPy integers
accepted wherever an int is, empty batches, and the batch limit checked before
any output is allocated. Every refusal is a bitplane.Error subclass."""

import numpy as np
import pytest

import bitplane as bp

from conftest import gauss


@pytest.fixture
def mat(rng):
    w = gauss(rng, (70, 100))
    return w, bp.Matrix.quantize(w, bits=8)


def test_zero_means_all_planes_and_default_act_bits(mat, rng):
    _, m = mat
    x = gauss(rng, (3, 100))
    every = m.gemm(x, planes=8, act_bits=8)
    assert np.array_equal(m.gemm(x, planes=0), every)
    assert np.array_equal(m.gemm(x, planes=None), every)
    assert np.array_equal(m.gemm(x, act_bits=0, planes=8), every)
    assert np.array_equal(m.dequantize(0), m.dequantize(8))
    assert np.array_equal(m.dequantize(0), m.dequantize())
    w = gauss(rng, (20, 30))
    assert bp.Matrix.quantize(w, bits=0).bits == bp.DEFAULT_BITS


@pytest.mark.parametrize("kwargs, pattern", [
    ({"planes": 9}, r"planes must be 0 \(all\) or 1\.\.8, got 9"),
    ({"planes": -1}, r"planes must be 0 \(all\) or 1\.\.8, got -1"),
    ({"act_bits": 17}, r"act_bits must be 0 \(default 8\) or 1\.\.16, got 17"),
    ({"act_bits": -2}, r"act_bits must be 0 \(default 8\) or 1\.\.16, got -2"),
    ({"planes": 2**40}, "planes is out of range"),
])
def test_out_of_range_values_are_library_errors(mat, rng, kwargs, pattern):
    _, m = mat
    for x in (gauss(rng, (2, 100)), np.zeros((0, 100), np.float32)):
        with pytest.raises(bp.OutOfRangeError, match=pattern) as e:
            m.gemm(x, **kwargs)
        assert isinstance(e.value, bp.Error) and isinstance(e.value, ValueError)


def test_binding_checks_raise_library_classes(mat, rng):
    w, m = mat
    with pytest.raises(bp.InvalidArgumentError, match="method must be 'uniform' or 'residual'"):
        bp.Matrix.quantize(w, method="ternary")
    with pytest.raises(bp.InvalidArgumentError, match="backend must be one of"):
        bp.Context(backend="tpu")
    with pytest.raises(bp.InvalidArgumentError, match="x must have shape"):
        m.gemm(gauss(rng, (2, 99)))
    with pytest.raises(bp.InvalidArgumentError, match="out must be writable"):
        ro = np.empty((2, 70), np.float32)
        ro.flags.writeable = False
        m.gemm(gauss(rng, (2, 100)), out=ro)


@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8, np.intp])
def test_numpy_integers_are_accepted(mat, rng, kind):
    _, m = mat
    x = gauss(rng, (2, 100))
    want = m.gemm(x, planes=3, act_bits=6)
    assert np.array_equal(m.gemm(x, planes=kind(3), act_bits=kind(6)), want)
    assert np.array_equal(m.dequantize(kind(3)), m.dequantize(3))
    assert m.prefix_error(kind(3)) == m.prefix_error(3)
    assert bp.Matrix.quantize(gauss(rng, (8, 16)), bits=kind(4)).bits == 4


def test_floats_stay_type_errors(mat, rng):
    _, m = mat
    for bad in (2.0, np.float32(2), "2"):
        with pytest.raises(TypeError, match="planes must be an int or None"):
            m.gemm(gauss(rng, (100,)), planes=bad)


def test_empty_batch_gives_empty_result(mat, rng):
    _, m = mat
    y = m.gemm(np.zeros((0, 100), np.float32))
    assert y.shape == (0, 70) and y.dtype == np.float32
    y = m.gemm(np.zeros((0, 100), np.float32), planes=2, bias=gauss(rng, (70,)),
               column_planes=[])
    assert y.shape == (0, 70)
    out = np.empty((0, 70), np.float32)
    assert m.gemm(np.zeros((0, 100), np.float32), out=out) is out
    with pytest.raises(bp.InvalidArgumentError, match=r"x must have shape \(cols,\) or \(batch, "
                       r"cols\) with cols = 100, got shape \(0, 99\)"):
        m.gemm(np.zeros((0, 99), np.float32))


def test_empty_batch_through_linear(rng):
    from bitplane.layers import Linear

    w = gauss(rng, (70, 100))
    layer = Linear(w, gauss(rng, (70,)))
    assert layer(np.zeros((0, 100), np.float32)).shape == (0, 70)
    assert layer(np.zeros((4, 0, 100), np.float32)).shape == (4, 0, 70)
    assert Linear.fp32(w)(np.zeros((0, 100), np.float32)).shape == (0, 70)


def test_oversized_batch_is_refused_before_allocating(tmp_path, rng):
    # A sparse file holds 2**28 + 1 rows of one column without using memory.
    # The output would be 2**28 x 65536 floats (64 TiB): the library's limit
    # must answer before anything tries to allocate it.
    m = bp.Matrix.quantize(gauss(rng, (65536, 1)), bits=2)
    path = tmp_path / "x.bin"
    batch = (1 << 28) + 1
    with open(path, "wb") as f:
        f.truncate(batch * 4)
    x = np.memmap(path, dtype=np.float32, mode="r", shape=(batch, 1))
    with pytest.raises(bp.SizeOverflowError, match=f"batch must be <= {1 << 28}, got {batch}"):
        m.gemm(x)
    del x
