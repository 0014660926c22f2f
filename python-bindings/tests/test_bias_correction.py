"""Bias correction in bitplane.layers.Linear (``input_mean=``): at n planes
the output gets (W - W_n) mean added, checked bit for bit against a NumPy
reference written from that formula, per batch column, under precision plans
and per-row plane counts, through pickling, threads, model files and the
server's batched path; and every bad input is refused with a clear error."""

import pickle
import threading

import numpy as np
import pytest

import bitplane as bp
from bitplane import models
from bitplane import plan as bp_plan
from bitplane.layers import INPUT_MEAN_CALIBRATION, Linear
from conftest import gauss

ROWS, COLS = 40, 96


def shift_ref(w, matrix, mean, n):
    """The shift as the docs state it: W mean - W_n mean in float64, then float32."""
    w64, m64 = np.asarray(w, np.float64), np.asarray(mean, np.float64)
    return (w64 @ m64 - matrix.dequantize(n).astype(np.float64) @ m64).astype(np.float32)


def layer_ref(layer, w, x, n, mean, act_bits=8):
    """gemm(x, bias) at n planes, plus the shift, as one float32 add."""
    y = layer.matrix.gemm(x, planes=n, act_bits=act_bits, bias=layer.bias)
    return y + shift_ref(w, layer.matrix, mean, n)


@pytest.fixture
def parts(rng):
    w = gauss(rng, (ROWS, COLS))
    b = gauss(rng, ROWS, 0.1)
    mean = gauss(rng, COLS, 0.5) + np.float32(0.3)  # far from zero: a visible shift
    return w, b, mean


def test_matches_the_numpy_reference_bit_for_bit(parts, rng):
    w, b, mean = parts
    layer = Linear(w, b, input_mean=mean)
    plain = Linear(w, b)
    x = gauss(rng, (7, COLS))
    for n in range(1, 9):
        y = layer(x, planes=n, act_bits=8)
        np.testing.assert_array_equal(y, layer_ref(layer, w, x, n, mean))
        assert not np.array_equal(y, plain(x, planes=n, act_bits=8))
        relu = layer(x, planes=n, act_bits=8, activation="relu")
        pos = np.where(layer_ref(layer, w, x, n, mean) > 0, layer_ref(layer, w, x, n, mean),
                       np.float32(0.0)).astype(np.float32)  # +0, never -0, as bp_gemm_act
        np.testing.assert_array_equal(relu.view(np.uint32), pos.view(np.uint32))
    # None and 0 are all planes; the layer's own default counts too
    np.testing.assert_array_equal(layer(x, act_bits=8), layer_ref(layer, w, x, 8, mean))
    np.testing.assert_array_equal(layer(x, planes=0, act_bits=8), layer(x, planes=8, act_bits=8))
    layer.planes = 3
    np.testing.assert_array_equal(layer(x, act_bits=8), layer_ref(layer, w, x, 3, mean))
    # one input and stacked leading dimensions go through the same path
    np.testing.assert_array_equal(layer(x[0], planes=4), layer(x[:1], planes=4)[0])
    x3 = x[:6].reshape(2, 3, COLS)
    np.testing.assert_array_equal(layer(x3, planes=5), layer(x[:6], planes=5).reshape(2, 3, -1))
    # an out= buffer receives the corrected output
    out = np.empty((7, ROWS), np.float32)
    assert layer(x, planes=2, act_bits=8, out=out) is out
    np.testing.assert_array_equal(out, layer_ref(layer, w, x, 2, mean))
    assert layer(np.zeros((0, COLS), np.float32), planes=2).shape == (0, ROWS)


def test_from_matrix_equals_the_constructor(parts, rng):
    w, b, mean = parts
    m = bp.Matrix.quantize(w)
    a = Linear.from_matrix(m, b, input_mean=mean, weight=w)
    c = Linear(w, b, input_mean=mean.astype(np.float64))
    x = gauss(rng, (5, COLS))
    for n in (1, 4, 8):
        np.testing.assert_array_equal(a(x, planes=n), c(x, planes=n))
    np.testing.assert_array_equal(a.input_mean, mean.astype(np.float64))


def test_mixed_column_planes_add_each_columns_own_shift(parts, rng):
    w, b, mean = parts
    layer = Linear(w, b, input_mean=mean)
    x = gauss(rng, (24, COLS))
    cp = [int(p) for p in rng.integers(0, 9, 24)]
    cp[:3] = [0, 1, 8]
    for call in (None, 5):
        y = layer(x, planes=call, act_bits=8, column_planes=cp)
        for i, c in enumerate(cp):
            n = c or call or 8
            np.testing.assert_array_equal(y[i], layer(x[i:i + 1], planes=n, act_bits=8)[0])
            np.testing.assert_array_equal(y[i], layer_ref(layer, w, x[i:i + 1], n, mean)[0])
        relu = layer(x, planes=call, act_bits=8, column_planes=cp, activation="relu")
        np.testing.assert_array_equal(relu, np.maximum(y, 0))


def test_a_precision_plan_caps_the_shift_with_the_product(parts, rng):
    """Under a plan (PlannedMatrix) a product uses min(call, plan) planes: so
    does the shift."""
    w, b, mean = parts
    layer = Linear(w, b, input_mean=mean)
    base = layer.matrix
    layer.matrix = bp_plan.PlannedMatrix(base, 3)
    x = gauss(rng, (6, COLS))
    for call, n in ((None, 3), (0, 3), (2, 2), (7, 3)):
        y = layer(x, planes=call, act_bits=8)
        np.testing.assert_array_equal(y, base.gemm(x, planes=n, act_bits=8, bias=b)
                                      + shift_ref(w, base, mean, n))
    cp = [0, 1, 5, 2, 8, 3]
    y = layer(x, planes=4, act_bits=8, column_planes=cp)
    for i, c in enumerate(cp):
        n = min(c or 4, 3)
        np.testing.assert_array_equal(y[i], layer_ref(
            Linear.from_matrix(base, b), w, x[i:i + 1], n, mean)[0])


def test_row_planes_shift_uses_the_rows_own_counts(parts, rng):
    w, b, mean = parts
    counts = rng.integers(1, 9, ROWS).astype(np.uint8)
    layer = Linear(w, b, row_planes=counts, input_mean=mean)
    x = gauss(rng, (4, COLS))
    for n in (2, 5, 8):
        np.testing.assert_array_equal(layer(x, planes=n), layer_ref(layer, w, x, n, mean))
    # rows capped below n get the same shift at n as at their own count
    s8 = layer._mean_shift.shift(8)
    s2 = layer._mean_shift.shift(2)
    low = counts <= 2
    np.testing.assert_array_equal(s8[low], s2[low])


def test_calibration_mean(parts, rng):
    """input_mean='calibration' is the mean of the calibration rows."""
    w, b, _ = parts
    cal = gauss(rng, (200, COLS)) + np.float32(0.2)
    auto = Linear(w, b, calibration=cal, input_mean=INPUT_MEAN_CALIBRATION)
    mean = cal.astype(np.float64).mean(axis=0)
    np.testing.assert_array_equal(auto.input_mean, mean)
    given = Linear(w, b, calibration=cal, input_mean=mean)
    x = gauss(rng, (5, COLS))
    for n in (2, 4, 8):
        np.testing.assert_array_equal(auto(x, planes=n), given(x, planes=n))
        np.testing.assert_array_equal(auto(x, planes=n), layer_ref(auto, w, x, n, mean))


def test_pickle_round_trip(parts, rng):
    w, b, mean = parts
    layer = Linear(w, b, input_mean=mean)
    x = gauss(rng, (5, COLS))
    want = {n: layer(x, planes=n) for n in (2, 6)}  # 2 and 6 cached before pickling
    back = pickle.loads(pickle.dumps(layer))
    assert back.matrix is back._mean_shift.matrix
    np.testing.assert_array_equal(back.input_mean, layer.input_mean)
    for n in (2, 6, 3):
        np.testing.assert_array_equal(back(x, planes=n), want.get(n, layer(x, planes=n)))


def test_threads_share_one_shift_per_plane_count(parts, rng):
    w, b, mean = parts
    layer = Linear(w, b, input_mean=mean)
    calls = []

    class Counting:  # counts the dequantizes behind the shift cache
        def __init__(self, m):
            self.m = m

        def dequantize(self, n):
            calls.append(n)
            return self.m.dequantize(n)

    layer._mean_shift.matrix = Counting(layer.matrix)
    x = gauss(rng, (3, COLS))
    want = {n: layer_ref(layer, w, x, n, mean) for n in range(1, 9)}
    errors, start = [], threading.Barrier(8)

    def run(t):
        try:
            start.wait()
            for n in [(k + t) % 8 + 1 for k in range(8)] * 3:  # each thread its own order
                np.testing.assert_array_equal(layer(x, planes=n), want[n])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert sorted(calls) == list(range(1, 9))


def test_bad_input_means_are_refused(parts):
    w, b, mean = parts
    m = bp.Matrix.quantize(w)
    with pytest.raises(ValueError, match=r"input_mean must have shape \(in_features,\) = "
                                         r"\(96,\), got \(95,\)"):
        Linear(w, b, input_mean=mean[:-1])
    with pytest.raises(ValueError, match=r"got \(1, 96\)"):
        Linear(w, b, input_mean=mean[None, :])
    for bad, word in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        m2 = mean.copy()
        m2[7] = bad
        with pytest.raises(ValueError, match=rf"input_mean\[7\] is {word}: the input mean "
                                             "must be finite"):
            Linear(w, b, input_mean=m2)
    with pytest.raises(TypeError, match="input_mean must be an array of numbers"):
        Linear(w, b, input_mean=np.array(["a"] * COLS))
    with pytest.raises(ValueError, match="input_mean must be an array or 'calibration'"):
        Linear(w, b, input_mean="mean")
    with pytest.raises(ValueError, match="needs calibration samples"):
        Linear(w, b, input_mean=INPUT_MEAN_CALIBRATION)
    with pytest.raises(ValueError, match="needs the float weights"):
        Linear.from_matrix(m, b, input_mean=mean)
    with pytest.raises(ValueError, match=r"weight must have the matrix's shape \(40, 96\)"):
        Linear.from_matrix(m, b, input_mean=mean, weight=w[:, :-1])
    bad_w = w.copy()
    bad_w[1, 2] = np.nan
    with pytest.raises(ValueError, match="weight contains NaN or Inf"):
        Linear.from_matrix(m, b, input_mean=mean, weight=bad_w)
    with pytest.raises(TypeError, match="needs a quantized bitplane.Matrix"):
        Linear.from_matrix(Linear.fp32(w, b).matrix, b, input_mean=mean, weight=w)


def test_mlp_and_linear_stack_files_carry_input_means(tmp_path, rng):
    """MLP(input_means=) and a Linear stack's '<name>.input_mean' arrays:
    the means survive the file round trip and give the same outputs."""
    sizes = (32, 24, 10)
    arrays, params, means = {}, [], []
    for i, (a, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        w, b = gauss(rng, (o, a), 0.3), gauss(rng, o, 0.1)
        arrays[f"fc{i}.weight"], arrays[f"fc{i}.bias"] = w, b
        params.append((w, b))
        means.append(None if i else gauss(rng, a, 0.5) + np.float32(1.0))
    arrays["fc0.input_mean"] = means[0]
    path = tmp_path / "stack.npz"
    np.savez(path, **arrays)
    data = models.read(path)
    built = models.build(data)
    direct = models.MLP(params, input_means=means)
    plain = models.MLP(params)
    np.testing.assert_array_equal(built.layers[0].input_mean, means[0].astype(np.float64))
    assert built.layers[1].input_mean is None
    x = gauss(rng, (9, 32))
    for n in (2, 4, 8):
        y = built(x, planes=n)
        np.testing.assert_array_equal(y, direct(x, planes=n))
        assert not np.array_equal(y, plain(x, planes=n))
    with pytest.raises(bp.InvalidArgumentError, match="input_means must have one entry per "
                                                      r"layer \(2\), got 1"):
        models.MLP(params, input_means=means[:1])
    arrays["fc1.input_mean"] = np.ones(23, np.float32)
    np.savez(path, **arrays)
    with pytest.raises(bp.InvalidArgumentError, match=r"'fc1.input_mean' has shape \(23,\)"):
        models.build(models.read(path))
    arrays["fc1.input_mean"] = np.full(24, np.nan, np.float32)
    np.savez(path, **arrays)
    with pytest.raises(bp.NonFiniteError, match="'fc1.input_mean'"):
        models.read(path)


def test_served_batches_add_each_rows_shift(tmp_path, rng):
    """The server's batched path runs the layers' own calls, so each row gets
    its own plane count's shift and equals its single call."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from bitplane.serve.served import load

    arrays = {"l0.weight": gauss(rng, (24, 32), 0.3), "l0.bias": gauss(rng, 24, 0.1),
              "l0.input_mean": gauss(rng, 32, 0.5) + np.float32(1.0),
              "l1.weight": gauss(rng, (10, 24), 0.3),
              "l1.input_mean": np.abs(gauss(rng, 24, 0.5))}
    path = tmp_path / "stack.npz"
    np.savez(path, **arrays)
    served = load(str(path))
    assert served.mlp.layers[0].input_mean is not None
    x = gauss(rng, (12, 32))
    cp = [int(p) for p in rng.integers(1, 9, 12)]
    y = served.forward_batched(x, cp, 8)
    for i, n in enumerate(cp):
        np.testing.assert_array_equal(y[i], served.forward(x[i:i + 1], n, 8)[0])
