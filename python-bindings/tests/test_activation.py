"""Matrix.gemm(activation='relu') (bp_gemm_act) and the MLP forward that
uses it: the same bits as the product followed by np.maximum(y, 0) (with +0
for every y <= 0), errors that leave `out` untouched, and per-thread hidden
buffers that never leak between calls or threads."""

import threading

import numpy as np
import pytest

import bitplane as bp
from bitplane import models
from bitplane.layers import DenseMatmul, Linear


def relu_bits(y):
    """np.maximum(y, 0) with -0 mapped to +0, as uint32 bits."""
    r = np.where(y > 0, y, np.float32(0.0)).astype(np.float32)
    return r.view(np.uint32)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,batch", [((10, 128), 360), ((256, 64), 33), ((7, 31), 1)])
def test_relu_matches_gemm_then_relu(rng, threads, shape, batch):
    ctx = bp.Context(threads=threads)
    w = rng.standard_normal(shape).astype(np.float32) * 0.1
    m = bp.Matrix.quantize(w, context=ctx)
    x = rng.standard_normal((batch, shape[1])).astype(np.float32)
    # Column 0 leans against row 0 (-3 sum |w_0k x_0k|, far below any bias draw) so
    # every call has a negative output for the ReLU to clear, even at batch 1.
    x[0] = -3.0 * np.sign(w[0]) * np.abs(x[0])
    bias = rng.standard_normal(shape[0]).astype(np.float32)
    for planes in (1, 4, None):
        for b in (None, bias):
            y = m.gemm(x, planes=planes, bias=b)
            assert (y < 0).any()
            got = m.gemm(x, planes=planes, bias=b, activation="relu")
            np.testing.assert_array_equal(got.view(np.uint32), relu_bits(y))
            same = m.gemm(x, planes=planes, bias=b, activation="none")
            np.testing.assert_array_equal(same.view(np.uint32), y.view(np.uint32))
            out = np.full((batch, shape[0]), np.nan, np.float32)
            assert m.gemm(x, planes=planes, bias=b, out=out, activation="relu") is out
            np.testing.assert_array_equal(out.view(np.uint32), relu_bits(y))


def test_relu_bad_arguments_leave_out_untouched(rng):
    m = bp.Matrix.quantize(rng.standard_normal((12, 40)).astype(np.float32))
    x = rng.standard_normal((3, 40)).astype(np.float32)
    out = np.full((3, 12), 7.0, np.float32)
    with pytest.raises(bp.InvalidArgumentError, match="activation must be None, 'none' or "
                                                      "'relu', got 'tanh'"):
        m.gemm(x, out=out, activation="tanh")
    with pytest.raises(TypeError, match="activation must be None, 'none' or 'relu', got int"):
        m.gemm(x, out=out, activation=1)
    x[1, 5] = np.inf
    with pytest.raises(bp.NonFiniteError, match="column 1, element 5 is Inf"):
        m.gemm(x, out=out, activation="relu")
    assert (out == 7.0).all()


def test_dense_matmul_relu(rng):
    w = rng.standard_normal((9, 20)).astype(np.float32)
    x = rng.standard_normal((5, 20)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    d = DenseMatmul(w)
    np.testing.assert_array_equal(d.gemm(x, bias=b, activation="relu"),
                                  np.maximum(x @ w.T + b, np.float32(0.0)))
    with pytest.raises(ValueError, match="activation must be"):
        d.gemm(x, activation="gelu")


def _layerwise(mlp, x, planes, act):
    """The forward pass one layer at a time, activation in NumPy."""
    h = np.ascontiguousarray(x, np.float32)
    for i, layer in enumerate(mlp.layers):
        h = layer.matrix.gemm(h, planes=planes, bias=layer.bias)
        if i + 1 < len(mlp.layers):
            h = act(h)
    return h


@pytest.mark.parametrize("activation", ["relu", "tanh", "none"])
def test_mlp_forward_matches_layerwise(rng, activation):
    params = [(rng.standard_normal((o, i)).astype(np.float32) * 0.2,
               rng.standard_normal(o).astype(np.float32) * 0.1)
              for i, o in ((30, 40), (40, 20), (20, 6))]
    act = {"relu": lambda h: np.maximum(h, np.float32(0.0)), "tanh": np.tanh,
           "none": lambda h: h}[activation]
    mlp = models.MLP(params, activation=activation)
    results = []
    for batch in (17, 17, 4, 1):  # the hidden buffers are reused, then resized
        x = rng.standard_normal((batch, 30)).astype(np.float32)
        for planes in (2, None):
            y = mlp(x, planes=planes)
            np.testing.assert_array_equal(y, _layerwise(mlp, x, planes, act))
            results.append(y)
    # Results are fresh arrays: later calls never overwrite earlier ones.
    assert len({id(r) for r in results}) == len(results)
    np.testing.assert_array_equal(mlp(x[0]), _layerwise(mlp, x, None, act)[0])
    assert mlp(np.zeros((0, 30), np.float32)).shape == (0, 6)


def test_mlp_keeps_no_huge_hidden_buffers(rng, monkeypatch):
    params = [(rng.standard_normal((o, i)).astype(np.float32) * 0.2, None)
              for i, o in ((8, 16), (16, 4))]
    mlp = models.MLP(params)
    monkeypatch.setattr(models, "_HIDDEN_KEEP_BYTES", 16 * 4 * 10)
    small = rng.standard_normal((10, 8)).astype(np.float32)
    mlp(small)
    assert mlp._hidden.bufs[0].shape == (10, 16)
    big = rng.standard_normal((11, 8)).astype(np.float32)
    relu = lambda h: np.maximum(h, np.float32(0.0))  # noqa: E731
    np.testing.assert_array_equal(mlp(big), _layerwise(mlp, big, None, relu))
    assert mlp._hidden.bufs is None  # dropped, and none kept for the big batch
    np.testing.assert_array_equal(mlp(small), _layerwise(mlp, small, None, relu))


def test_mlp_forward_threads_share_no_buffers(rng):
    params = [(rng.standard_normal((o, i)).astype(np.float32) * 0.2, None)
              for i, o in ((24, 64), (64, 32), (32, 5))]
    mlp = models.MLP(params)
    xs = [rng.standard_normal((50, 24)).astype(np.float32) for _ in range(4)]
    want = [_layerwise(mlp, x, None, lambda h: np.maximum(h, np.float32(0.0))) for x in xs]
    errors = []

    def run(k):
        for _ in range(30):
            y = mlp(xs[k])
            if not np.array_equal(y, want[k]):
                errors.append(k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_linear_activation_keyword(rng):
    layer = Linear(rng.standard_normal((8, 16)).astype(np.float32),
                   rng.standard_normal(8).astype(np.float32))
    x = rng.standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(layer(x, activation="relu").view(np.uint32),
                                  relu_bits(layer(x)))
