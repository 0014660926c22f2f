"""Per-row plane counts through the Python API: Matrix.quantize(row_planes=),
Matrix.row_planes, bytes_read, row_planes_from_scores and the scoring
methods (docs/row-planes.md)."""

import numpy as np
import pytest

import bitplane as bp
from bitplane import row_planes as rp
from conftest import gauss


def test_counts_cap_rows_exactly(rng, tmp_path):
    w = gauss(rng, (77, 90))
    counts = rng.integers(1, 7, size=77).astype(np.uint8)
    plain = bp.Matrix.quantize(w, bits=6, rotation_seed=3)
    m = bp.Matrix.quantize(w, bits=6, rotation_seed=3, row_planes=counts)
    assert m.row_planes.dtype == np.uint8
    assert np.array_equal(m.row_planes, counts)
    assert np.array_equal(plain.row_planes, np.full(77, 6, np.uint8))
    x = gauss(rng, (5, 90))
    bias = gauss(rng, (77,))
    for p in range(1, 7):
        y = m.gemm(x, planes=p, bias=bias)
        for n in range(1, 7):
            rows = np.minimum(counts, p) == n
            want = plain.gemm(x, planes=n, bias=bias)
            # bit-exact: the same quantized rows, capped at min(count, p)
            assert np.array_equal(y[:, rows].view(np.uint32), want[:, rows].view(np.uint32))
        d = m.dequantize(planes=p)
        for r in range(77):
            assert np.array_equal(d[r], plain.dequantize(planes=int(min(counts[r], p)))[r])
    # round trip through a file: version 3, same results
    path = tmp_path / "m.bpm"
    m.save(path)
    assert path.read_bytes()[8] == 3
    assert plain.to_bytes()[8] == 2
    l = bp.Matrix.load(path)
    assert np.array_equal(l.row_planes, counts)
    assert np.array_equal(l.gemm(x, planes=4).view(np.uint32), m.gemm(x, planes=4).view(np.uint32))
    assert l.to_bytes() == m.to_bytes()


def test_bytes_read_follows_the_counts(rng):
    w = gauss(rng, (1024, 256))
    half = np.where(np.arange(1024) % 2 == 0, 8, 2).astype(np.uint8)
    mixed = bp.Matrix.quantize(w, row_planes=half)
    u5 = bp.Matrix.quantize(w)
    # half the rows at 8 planes, half at 2: the bytes of 5 uniform planes
    assert mixed.bytes_read() == u5.bytes_read(5)
    assert mixed.bytes_read(2) == u5.bytes_read(2)
    assert mixed.bytes_read(8) < u5.bytes_read(8)
    with pytest.raises(bp.OutOfRangeError, match="planes must be 0"):
        mixed.bytes_read(9)


def test_bad_counts_are_refused(rng):
    w = gauss(rng, (20, 8))
    c = np.full(20, 2, np.uint8)
    c[13] = 5
    with pytest.raises(bp.OutOfRangeError, match=r"row_planes\[13\] must be in 1..4 \(bits\), got 5"):
        bp.Matrix.quantize(w, bits=4, row_planes=c)
    with pytest.raises(bp.OutOfRangeError, match=r"row_planes\[0\] must be in 1..bits, got 300"):
        bp.Matrix.quantize(w, bits=4, row_planes=[300] + [1] * 19)
    with pytest.raises(bp.InvalidArgumentError, match=r"one entry per row of w \(20\), got 3"):
        bp.Matrix.quantize(w, bits=4, row_planes=[1, 2, 3])
    with pytest.raises(TypeError, match=r"row_planes\[1\] must be an int"):
        bp.Matrix.quantize(w, bits=4, row_planes=[1, 2.5] + [1] * 18)


def test_row_planes_from_scores():
    scores = np.arange(256, dtype=np.float32)
    c = bp.row_planes_from_scores(scores, budget=4, classes=2)
    assert c.dtype == np.uint8
    assert np.array_equal(c, np.where(scores >= 128, 5, 3))
    c3 = bp.row_planes_from_scores(scores[::-1], budget=3, classes=3, bits=4)
    assert c3.mean() <= 3 and len(set(c3.tolist())) <= 3
    assert (np.diff(c3.astype(int)) <= 0).all()  # scores descending: counts non-increasing
    with pytest.raises(bp.OutOfRangeError, match="budget"):
        bp.row_planes_from_scores(scores, budget=9)
    with pytest.raises(bp.OutOfRangeError, match="classes must be in 1..8"):
        bp.row_planes_from_scores(scores, budget=4, classes=0)
    with pytest.raises(bp.NonFiniteError, match=r"scores\[3\] is NaN"):
        bp.row_planes_from_scores([0, 1, 2, np.nan], budget=4)
    with pytest.raises(ValueError, match="1-dimensional"):
        bp.row_planes_from_scores(np.zeros((2, 2)), budget=4)


def test_norm_scores(rng):
    w = gauss(rng, (40, 30))
    x = gauss(rng, (10, 30))
    s = rp.norm_scores(w, x)
    want = np.linalg.norm(w.astype(np.float64), axis=1) * np.abs(x).mean()
    np.testing.assert_allclose(s, want, rtol=1e-5)
    with pytest.raises(ValueError, match="30 columns"):
        rp.norm_scores(w, x[:, :5])


def test_class_scores_follow_the_outputs(rng):
    # Two classes; hidden neuron 0 alone feeds class 0, neuron 1 alone
    # class 1, neuron 2 feeds nothing: it must score lowest.
    w0 = gauss(rng, (3, 6))
    w1 = np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32)
    x = np.abs(gauss(rng, (50, 6)))
    w0 = np.abs(w0)  # positive pre-activations: ReLU passes them
    labels = rng.integers(0, 2, size=50)
    s0, s1 = rp.class_scores([(w0, None), (w1, None)], x, labels)
    assert s0.shape == (3,) and s1.shape == (2,)
    assert s0[2] < s0[0] and s0[2] < s0[1]
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        rp.class_scores([(w0, None), (w1, None)], x, labels + 5)


def test_plan_bytes_count_what_a_call_reads(rng):
    from types import SimpleNamespace

    from bitplane import plan as P

    w = gauss(rng, (64, 128))
    counts = np.where(np.arange(64) < 32, 8, 2).astype(np.uint8)
    plain = P.Operator("weight", SimpleNamespace(m=bp.Matrix.quantize(w)), "m", 64, 128)
    mixed = P.Operator("weight", SimpleNamespace(m=bp.Matrix.quantize(w, row_planes=counts)), "m",
                       64, 128)
    g = plain.matrix.group_size  # the default group scales: their multipliers count too
    assert g > 0
    assert plain.bytes(5) == P.weight_bytes(64, 128, 5, g)
    assert plain.bytes(5) == P.weight_bytes(64, 128, 5) + 64 * (128 // g)
    assert mixed.bytes(8) == P.weight_bytes(64, 128, 5, g)  # half at 8 planes, half at 2
    assert mixed.bytes(2) == P.weight_bytes(64, 128, 2, g)


def test_mlp_takes_row_planes_per_layer(rng):
    from bitplane import models as M

    params = [(gauss(rng, (32, 16)), gauss(rng, (32,))), (gauss(rng, (10, 32)), None)]
    counts = [np.where(np.arange(32) < 16, 6, 2).astype(np.uint8), None]
    model = M.MLP(params, row_planes=counts)
    assert np.array_equal(model.layers[0].matrix.row_planes, counts[0])
    assert np.array_equal(model.layers[1].matrix.row_planes, np.full(10, 8, np.uint8))
    with pytest.raises(bp.InvalidArgumentError, match="one entry per layer"):
        M.MLP(params, row_planes=counts[:1])


def test_digits_example_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "row_planes_digits.py"
    spec = importlib.util.spec_from_file_location("row_planes_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--budgets", "2"])
    out = capsys.readouterr().out.splitlines()
    rows = {line[:22].strip(): line.split() for line in out[2:]}
    assert set(rows) == {"uniform 1", "uniform 2", "uniform 3", "uniform 4", "norm 2", "class 2"}
    for name, fields in rows.items():
        assert 0.0 <= float(fields[-2]) <= 1.0 and int(fields[-1]) > 0, name
