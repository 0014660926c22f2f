"""The extension module: argument checks, errors, zero-copy, the GIL, and
results bit-equal to the C library called directly."""

import gc
import os
import pickle
import sys
import threading
import time

import numpy as np
import pytest

import bitplane as bp
from bitplane import models
from capi import CLib
from conftest import gauss


@pytest.fixture(scope="module")
def ctx1():
    return bp.Context(threads=1)


@pytest.fixture
def mat(rng, ctx1):
    w = gauss(rng, (70, 100))
    return w, bp.Matrix.quantize(w, bits=8, context=ctx1)


# ---- basics ------------------------------------------------------------------------


def test_version_and_properties(mat, ctx1):
    w, m = mat
    assert bp.version() == bp.__version__
    assert (m.rows, m.cols, m.bits, m.method) == (70, 100, 8, "uniform")
    assert m.context is ctx1
    assert ctx1.backend == "cpu" and ctx1.threads == 1
    assert "70x100" in repr(m)
    assert bp.default_context() is bp.default_context()
    assert bp.default_context().threads == (os.cpu_count() or 1)


def test_matrix_keeps_its_context_alive(rng):
    ctx = bp.Context(threads=1)
    m = bp.Matrix.quantize(gauss(rng, (8, 8)), context=ctx)
    del ctx
    gc.collect()
    assert m.context.threads == 1
    assert m.gemm(gauss(rng, (8,))).shape == (8,)


def test_default_context_is_used_for_none(rng):
    m = bp.Matrix.quantize(gauss(rng, (4, 16)))
    assert m.context is bp.default_context()


def test_shapes_1d_and_2d(mat, rng):
    w, m = mat
    x = gauss(rng, (5, 100))
    y = m.gemm(x)
    assert y.shape == (5, 70) and y.dtype == np.float32
    y1 = m.gemm(x[2])
    assert y1.shape == (70,)
    assert np.array_equal(y1, y[2])


def test_prefix_error_dequantize_and_gemm_agree(mat, rng):
    w, m = mat
    errs = [m.prefix_error(n) for n in range(1, 9)]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    x = gauss(rng, (3, 100))
    for n in (1, 2, 4, 8):
        wn = m.dequantize(n)
        assert wn.shape == (70, 100) and wn.dtype == np.float32
        rel = np.linalg.norm(wn - w) / np.linalg.norm(w)
        assert rel == pytest.approx(errs[n - 1], rel=1e-4)
        # act_bits 16: the only difference left is activation rounding, ~1e-4.
        y = m.gemm(x, planes=n, act_bits=16)
        ref = x.astype(np.float64) @ wn.T.astype(np.float64)
        assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-3
    assert np.array_equal(m.dequantize(), m.dequantize(8))


def test_residual_and_clip(rng):
    w = gauss(rng, (20, 40))
    r = bp.Matrix.quantize(w, bits=4, method="residual")
    assert (r.method, r.bits) == ("residual", 4)
    u = bp.Matrix.quantize(w, bits=4, clip=0.5)
    assert u.prefix_error(4) != bp.Matrix.quantize(w, bits=4, clip=1.0).prefix_error(4)


def test_save_load_bytes_pickle_roundtrip(mat, rng, tmp_path, ctx1):
    w, m = mat
    x = gauss(rng, (4, 100))
    path = tmp_path / "m.bpm"
    m.save(path)
    m2 = bp.Matrix.load(path, context=ctx1)
    m3 = bp.Matrix.load(str(path))
    m4 = bp.Matrix.from_bytes(m.to_bytes())
    m5 = pickle.loads(pickle.dumps(m))
    assert m2.to_bytes() == m.to_bytes() == path.read_bytes()
    for other in (m2, m3, m4, m5):
        assert np.array_equal(other.gemm(x, planes=3), m.gemm(x, planes=3))
    assert m3.context is bp.default_context()


# ---- errors --------------------------------------------------------------------


def test_library_status_becomes_exception_with_message(mat, rng):
    w, m = mat
    x = gauss(rng, (2, 100))
    with pytest.raises(bp.OutOfRangeError, match=r"planes must be .*1\.\.8, got 9") as e:
        m.gemm(x, planes=9)
    assert isinstance(e.value, bp.Error) and isinstance(e.value, ValueError)
    assert isinstance(e.value, RuntimeError)
    assert e.value.status == 2 == bp.OutOfRangeError.status
    with pytest.raises(bp.OutOfRangeError, match="act_bits"):
        m.gemm(x, act_bits=17)
    x[1, 7] = np.nan
    with pytest.raises(bp.NonFiniteError, match="x: column 1, element 7 is NaN"):
        m.gemm(x)
    with pytest.raises(bp.NonFiniteError, match="Inf"):
        bp.Matrix.quantize(np.full((3, 3), np.inf, np.float32))
    with pytest.raises(bp.OutOfRangeError, match="bits"):
        bp.Matrix.quantize(w, bits=17)
    with pytest.raises(bp.OutOfRangeError):
        m.prefix_error(0)
    with pytest.raises(bp.OutOfRangeError, match="threads"):
        bp.Context(threads=-1)
    with pytest.raises(bp.InvalidArgumentError, match="rows must be > 0"):
        bp.Matrix.quantize(np.zeros((0, 4), np.float32))
    with pytest.raises(bp.OutOfRangeError, match=r"column_planes\[1\]"):
        m.gemm(gauss(rng, (2, 100)), column_planes=[1, 9])


def test_x_and_out_overlap_is_refused(rng):
    m = bp.Matrix.quantize(gauss(rng, (16, 16)))
    buf = gauss(rng, (2, 16))
    with pytest.raises(bp.InvalidArgumentError, match="overlap"):
        m.gemm(buf[0], out=buf[0])


def test_file_errors(tmp_path, mat):
    w, m = mat
    with pytest.raises(bp.FileError) as e:
        bp.Matrix.load(tmp_path / "missing.bpm")
    assert isinstance(e.value, OSError) and "missing.bpm" in str(e.value)
    path = tmp_path / "m.bpm"
    m.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(bp.CorruptError):
        bp.Matrix.load(path)
    with pytest.raises(bp.CorruptError):
        bp.Matrix.from_bytes(bytes(data[:20]))


def test_unavailable_backend_says_why():
    for backend in ("cuda", "opencl"):
        try:
            ctx = bp.Context(backend=backend)
        except bp.UnsupportedError as e:
            assert backend in str(e) and e.status == 6
        else:
            assert ctx.backend == backend
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'cpu', 'cuda', 'opencl'"):
        bp.Context(backend="tpu")
    with pytest.raises(ValueError, match="gpu_kernel must be one of 'auto', 'popcount', 'mma', got 'x'"):
        bp.Context(gpu_kernel="x")


def test_unknown_cpu_kernel_names_every_path():
    # The library's one name table: every path, also those of other CPUs.
    with pytest.raises(bp.InvalidArgumentError) as e:
        bp.Context(cpu_kernel="avx513")
    msg = str(e.value)
    assert msg.startswith("cpu_kernel: 'avx513' is not one of auto, reference"), msg
    for name in ("portable", "avx2-lut", "avx512-vnni-batched", "neon", "neon-lut", "neon-dotprod"):
        assert name in msg, msg
    # CPU_KERNELS is that same table: the message lists exactly its names.
    assert msg.endswith(", ".join(bp.CPU_KERNELS)), msg


def test_every_listed_cpu_kernel_is_a_known_name():
    assert bp.CPU_KERNELS[:2] == ("auto", "reference")
    for name in bp.CPU_KERNELS:
        try:
            ctx = bp.Context(threads=1, cpu_kernel=name)
        except bp.UnsupportedError:
            continue  # another CPU's path: known, but cannot run here
        assert ctx.cpu_kernel_name(cols=64) in bp.CPU_KERNELS


def test_wrong_dtype_is_type_error(mat, rng):
    w, m = mat
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        m.gemm(gauss(rng, (2, 100)).astype(np.float64))
    with pytest.raises(TypeError, match="x must have dtype float32, got int32"):
        m.gemm(np.ones(100, np.int32))
    with pytest.raises(TypeError, match="w must have dtype float32, got float16"):
        bp.Matrix.quantize(w.astype(np.float16))
    with pytest.raises(TypeError, match="x must be a float32 array"):
        m.gemm([0.5] * 100)
    with pytest.raises(TypeError, match="x must have dtype float32"):
        m.gemm(gauss(rng, (100,)).astype(">f4"))
    with pytest.raises(TypeError, match="out must have dtype float32, got float64"):
        m.gemm(gauss(rng, (100,)), out=np.empty(70, np.float64))
    with pytest.raises(TypeError, match="bias must have dtype float32"):
        m.gemm(gauss(rng, (100,)), bias=np.zeros(70))
    with pytest.raises(TypeError, match="planes must be an int"):
        m.gemm(gauss(rng, (100,)), planes=2.0)
    with pytest.raises(TypeError, match=r"column_planes\[0\] must be an int"):
        m.gemm(gauss(rng, (1, 100)), column_planes=[1.5])
    with pytest.raises(TypeError, match="context must be a bitplane.Context"):
        bp.Matrix.quantize(w, context="cpu")


def test_wrong_shape_is_value_error(mat, rng):
    w, m = mat
    with pytest.raises(ValueError, match=r"x must have shape \(cols,\) or \(batch, cols\) with "
                       r"cols = 100, got shape \(2, 99\)"):
        m.gemm(gauss(rng, (2, 99)))
    with pytest.raises(ValueError, match="x must be 1- or 2-dimensional, got 3"):
        m.gemm(gauss(rng, (2, 2, 100)))
    with pytest.raises(ValueError, match="w must be 2-dimensional, got 1"):
        bp.Matrix.quantize(gauss(rng, (10,)))
    with pytest.raises(ValueError, match=r"out must have shape \(3, 70\) \(batch, rows\), "
                       r"got shape \(3, 71\)"):
        m.gemm(gauss(rng, (3, 100)), out=np.empty((3, 71), np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(70,\)"):
        m.gemm(gauss(rng, (100,)), out=np.empty(71, np.float32))
    with pytest.raises(ValueError, match="out must be 1-dimensional, got 2"):
        m.gemm(gauss(rng, (100,)), out=np.empty((1, 70), np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(70,\)"):
        m.gemm(gauss(rng, (100,)), bias=np.zeros(69, np.float32))
    with pytest.raises(ValueError, match="column_planes must have one entry per column of x"):
        m.gemm(gauss(rng, (3, 100)), column_planes=[1, 2])
    with pytest.raises(ValueError, match=r"out must have shape \(70, 100\) \(rows, cols\)"):
        m.dequantize(2, out=np.empty((100, 70), np.float32))


def test_wrong_strides_are_refused_not_copied(mat, rng):
    w, m = mat
    big = gauss(rng, (6, 200))
    with pytest.raises(ValueError, match=r"x must be contiguous in its last dimension "
                       r"\(stride 4 bytes\), got stride 8"):
        m.gemm(big[:, ::2])
    with pytest.raises(ValueError, match="x must have a row stride that is a positive multiple "
                       "of 4 bytes and >= 400"):
        m.gemm(big[::-1, :100])
    with pytest.raises(ValueError, match="row stride"):
        m.gemm(np.broadcast_to(big[0, :100], (3, 100)))
    with pytest.raises(ValueError, match="w must be contiguous in its last dimension"):
        bp.Matrix.quantize(np.asfortranarray(w))
    with pytest.raises(ValueError, match="out must be contiguous in its last dimension"):
        m.gemm(big[:, :100], out=np.empty((6, 140), np.float32)[:, ::2])
    ro = np.empty((6, 70), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        m.gemm(big[:, :100], out=ro)
    raw = np.zeros(6 * 100 + 1, np.float32).view(np.uint8)[1:1 + 4 * 600].view(np.float32)
    with pytest.raises(ValueError, match="aligned"):
        m.gemm(raw.reshape(6, 100))


# ---- zero copy ------------------------------------------------------------------------


def test_out_is_written_in_place(mat, rng):
    w, m = mat
    x = gauss(rng, (4, 100))
    want = m.gemm(x, planes=5)
    out = np.empty((4, 70), np.float32)
    assert m.gemm(x, planes=5, out=out) is out
    assert np.array_equal(out, want)
    # A view with a row stride: only the view's elements change.
    big = np.full((4, 90), -7.0, np.float32)
    view = big[:, 10:80]
    assert m.gemm(x, planes=5, out=view) is view
    assert np.array_equal(big[:, 10:80], want)
    assert np.all(big[:, :10] == -7.0) and np.all(big[:, 80:] == -7.0)
    deq = np.empty((70, 100), np.float32)
    assert m.dequantize(3, out=deq) is deq and np.array_equal(deq, m.dequantize(3))


def test_strided_inputs_are_read_in_place(rng, ctx1):
    """Row strides become leading dimensions: the padding between rows is never
    read (NaN there would be refused), so no copy and no repacking happens."""
    w = gauss(rng, (33, 50))
    wpad = np.full((33, 64), np.nan, np.float32)
    wpad[:, :50] = w
    m_pad = bp.Matrix.quantize(wpad[:, :50], context=ctx1)
    m = bp.Matrix.quantize(w, context=ctx1)
    assert m_pad.to_bytes() == m.to_bytes()
    x = gauss(rng, (5, 50))
    xpad = np.full((5, 77), np.nan, np.float32)
    xpad[:, :50] = x
    bias = gauss(rng, (33,))
    assert np.array_equal(m.gemm(xpad[:, :50], bias=bias), m.gemm(x, bias=bias))


# ---- the GIL ---------------------------------------------------------------------------


def _progress_during(call):
    """Counts how often another Python thread ran while `call` ran in this one.

    The switch interval is made huge, so this thread keeps the GIL unless it
    gives it up; the other thread gives it back after every step
    (time.sleep(0)). The counter can therefore only move between the two reads
    below if `call` released the GIL."""
    counter = [0]
    stop = threading.Event()
    started = threading.Event()

    def spin():
        started.set()
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)

    old = sys.getswitchinterval()
    t = threading.Thread(target=spin)
    t.start()
    started.wait()
    sys.setswitchinterval(1000.0)
    # A wait for the GIL that began under the old interval still times out after
    # it and forces a switch; let the other thread take a few turns so that its
    # next wait is under the new one.
    for _ in range(3):
        time.sleep(0.002)
    try:
        before = counter[0]
        call()
        after = counter[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        t.join()
    return after - before


def _spin_for_a_while(call):
    """Repeat `call` until it ran at least 50 ms in total (keeps the test fast
    on fast machines and meaningful on slow ones; not a speed threshold)."""
    def run():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.05:
            call()
    return run


def test_gil_is_released_during_gemm(rng):
    ctx = bp.Context(threads=1, cpu_kernel="reference")
    m = bp.Matrix.quantize(gauss(rng, (512, 1024)), context=ctx)
    x = gauss(rng, (64, 1024))
    out = np.empty((64, 512), np.float32)
    # One long call, so the loop around it cannot be what lets the thread run.
    t0 = time.perf_counter()
    m.gemm(x, out=out)
    reps = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-6)))
    xs = np.tile(x, (reps, 1))
    outs = np.empty((xs.shape[0], 512), np.float32)
    assert _progress_during(lambda: m.gemm(xs, out=outs)) > 0


def test_gil_is_released_during_quantize(rng):
    ctx = bp.Context(threads=1)
    w = gauss(rng, (2048, 512))
    assert _progress_during(lambda: bp.Matrix.quantize(w, method="residual", context=ctx)) > 0


def test_control_a_call_that_holds_the_gil_shows_no_progress(rng):
    """The measurement itself can fail: a long C call that keeps the GIL
    (the built-in sum over a range) lets the other thread make no progress."""
    assert _progress_during(lambda: sum(range(3_000_000))) == 0


def test_threads_share_a_matrix(rng):
    w = gauss(rng, (300, 200))
    m = bp.Matrix.quantize(w)
    xs = [gauss(rng, (8, 200)) for _ in range(4)]
    want = [m.gemm(x, planes=p + 1) for p, x in enumerate(xs)]
    got = [[] for _ in range(4)]  # every result of every thread, not just its last

    def work(i):
        ctx = bp.Context(threads=1)
        for _ in range(20):
            got[i].append(m.gemm(xs[i], planes=i + 1, context=ctx))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for results, wv in zip(got, want):
        assert len(results) == 20
        for g in results:
            assert np.array_equal(g, wv)


# ---- bit-equal to the C library ---------------------------------------------------------


@pytest.fixture(scope="module")
def clib():
    lib = CLib(threads=1)
    yield lib
    lib.close()


@pytest.mark.parametrize("method", ["uniform", "residual"])
def test_results_bit_equal_to_c(clib, rng, ctx1, method):
    rows, cols, batch = 37, 300, 6
    w = gauss(rng, (rows, cols))
    m = bp.Matrix.quantize(w, bits=6, method=method, context=ctx1)
    cm = clib.quantize(w, bits=6, method=method)
    assert m.to_bytes() == clib.serialize(cm)
    x = gauss(rng, (batch, cols))
    x[1] = np.abs(x[1])  # an unsigned (all >= 0) column
    x[4] = 0.0  # an all-zero column: y = bias alone
    bias = gauss(rng, (rows,))
    cp = [1, 0, 3, 6, 2, 5]
    for planes in (1, 2, 4, 6):
        for act_bits in (1, 2, 8, 16):
            got = m.gemm(x, planes=planes, act_bits=act_bits)
            want = clib.gemm(cm, x, rows, planes=planes, act_bits=act_bits)
            assert got.tobytes() == want.tobytes(), (planes, act_bits)
        got = m.gemm(x, planes=planes, bias=bias, column_planes=cp, act_scale=0.05)
        want = clib.gemm(cm, x, rows, planes=planes, act_bits=8, bias=bias, column_planes=cp,
                         act_scale=0.05)
        assert got.tobytes() == want.tobytes()
    # 1-D x is one column; a strided batch is the same columns.
    assert m.gemm(x[3], planes=4).tobytes() == clib.gemm(cm, x[3:4].copy(), rows, 4)[0].tobytes()
    xs = np.zeros((batch, cols + 13), np.float32)
    xs[:, :cols] = x
    assert m.gemm(xs[:, :cols], planes=2).tobytes() == clib.gemm(cm, x, rows, 2).tobytes()


# ---- group scales and the rotation of K (docs/numerics.md) ----------------


def _gauss(rows, cols, seed):
    return np.random.default_rng(seed).standard_normal((rows, cols), dtype=np.float32)


def test_quantize_defaults_group_and_rotation():
    m = bp.Matrix.quantize(_gauss(40, 300, 1))
    assert m.group_size == 32 and m.rotation == 256
    plain = bp.Matrix.quantize(_gauss(40, 300, 1), group_size=0, rotation=0)
    assert plain.group_size == 0 and plain.rotation == 0
    # Group scales lower the weight error at every prefix from 2 planes on.
    for n in range(2, 9):
        assert m.prefix_error(n) < plain.prefix_error(n), n


@pytest.mark.parametrize("group_size,rotation", [(0, 0), (32, 0), (0, 16), (128, 64), (64, 256)])
def test_rotated_gemm_matches_dequantized_weights(group_size, rotation):
    w = _gauss(33, 200, 2)
    m = bp.Matrix.quantize(w, group_size=group_size, rotation=rotation, rotation_seed=7)
    x = np.random.default_rng(3).standard_normal((5, 200), dtype=np.float32)
    for planes in (2, 4, 8):
        y = m.gemm(x, planes=planes, act_bits=16)
        ref = x.astype(np.float64) @ m.dequantize(planes).astype(np.float64).T
        err = np.linalg.norm(y - ref) / np.linalg.norm(ref)
        assert err < 2e-3, (planes, err)
    # The recorded error is the error of the dequantized weights, which
    # dequantize returns in the original coordinates.
    d = m.dequantize(4).astype(np.float64)
    rel = np.linalg.norm(d - w) / np.linalg.norm(w)
    assert abs(rel - m.prefix_error(4)) < 1e-4


def test_group_and_rotation_round_trip_bytes():
    m = bp.Matrix.quantize(_gauss(17, 100, 4), group_size=32, rotation=64, rotation_seed=99)
    m2 = bp.Matrix.from_bytes(m.to_bytes())
    assert (m2.group_size, m2.rotation) == (32, 64)
    x = _gauss(3, 100, 5)
    assert np.array_equal(m.gemm(x, planes=3), m2.gemm(x, planes=3))


def test_nonnegative_inputs_keep_unsigned_activations():
    w = _gauss(24, 256, 8)
    x = np.abs(_gauss(6, 256, 9))
    assert bp.Matrix.quantize(w, nonnegative_inputs=True).rotation == 0
    assert bp.Matrix.quantize(w, nonnegative_inputs=True, rotation=64).rotation == 64
    assert bp.Matrix.quantize(w, calibration=x).rotation == 0
    assert bp.Matrix.quantize(w, calibration=x - 0.5).rotation == 256
    # Unrotated, a non-negative column is quantized unsigned: at act_bits 4,
    # q = rint(x * 15 / max x) (signed would use 7 levels).
    m = bp.Matrix.quantize(w, nonnegative_inputs=True)
    s = x.max(axis=1, keepdims=True) / np.float32(15)
    xq = np.rint(x * (np.float32(15) / x.max(axis=1, keepdims=True))) * s
    ref = xq.astype(np.float64) @ m.dequantize(4).astype(np.float64).T
    y = m.gemm(x, planes=4, act_bits=4)
    assert np.max(np.abs(y - ref)) <= 1e-5 * np.max(np.abs(ref)), np.max(np.abs(y - ref))


def test_mlp_layers_after_relu_are_not_rotated():
    rng = np.random.default_rng(12)
    params = [(rng.standard_normal((32, 64), dtype=np.float32), None),
              (rng.standard_normal((16, 32), dtype=np.float32), None)]
    assert [l.matrix.rotation for l in models.MLP(params).layers] == [256, 0]
    assert [l.matrix.rotation for l in models.MLP(params, nonnegative_input=True).layers] == [0, 0]
    assert [l.matrix.rotation for l in models.MLP(params, activation="tanh").layers] == [256, 256]
    assert [l.matrix.rotation
            for l in models.MLP(params, quantize={"rotation": 16}).layers] == [16, 16]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"group_size": 48}, "group_size"),
        ({"group_size": 16}, "group_size"),
        ({"group_size": -1}, "group_size"),
        ({"rotation": 3}, "rotation"),
        ({"rotation": 128}, "rotation"),
        ({"rotation": 8192}, "rotation"),
        ({"rotation": -2}, "rotation"),
    ],
)
def test_group_and_rotation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bp.Matrix.quantize(_gauss(4, 64, 6), **kwargs)


def test_calibration_lowers_output_error():
    rng = np.random.default_rng(11)
    w = rng.standard_normal((64, 128), dtype=np.float32)
    scale = (10.0 ** rng.uniform(-1, 1, 128)).astype(np.float32)
    mix = rng.standard_normal((8, 128)).astype(np.float32)
    x = ((rng.standard_normal((1024, 8)) @ mix + 0.3 * rng.standard_normal((1024, 128))) * scale)
    x = x.astype(np.float32)
    fit, held = x[:512], x[512:]
    ref = held @ w.T
    for planes in (3, 4):
        plain = bp.Matrix.quantize(w)
        cal = bp.Matrix.quantize(w, calibration=fit, calibration_planes=planes)
        errs = [
            np.linalg.norm(held @ m.dequantize(planes).T - ref) / np.linalg.norm(ref)
            for m in (plain, cal)
        ]
        assert errs[1] < 0.9 * errs[0], (planes, errs)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"calibration": np.ones((4, 63), np.float32)}, ValueError, "calibration"),
        ({"calibration": np.ones((4, 64), np.float32), "method": "residual"}, ValueError,
         "uniform"),
        ({"calibration": np.ones((4, 64), np.float32), "calibration_planes": 9}, ValueError,
         "calibration_planes"),
        ({"calibration": np.ones(64, np.float32)}, ValueError, "calibration"),
        ({"calibration_planes": 2}, ValueError, "calibration"),
    ],
)
def test_calibration_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bp.Matrix.quantize(_gauss(4, 64, 8), **kwargs)
