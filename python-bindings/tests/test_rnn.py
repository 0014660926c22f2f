"""The C recurrent layers from Python: bitplane.RNN and the LSTM/GRU layers
on it. Step calls equal sequence calls bit for bit; per-gate planes match a
NumPy reference on the effective weights; the integer mode stays near the
float mode; files round-trip; bad arguments raise precise errors; and a
PyTorch state dict in a safetensors file converts without torch."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bitplane as bp
from bitplane.layers import GRU, LSTM
from conftest import gauss
from test_layers import ref_gru, ref_lstm, rel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_rnn_to_bitplane.py"


def params(rng, gates, e, hs, layers=1):
    out = []
    for k in range(layers):
        inp = e if k == 0 else hs
        out.append((gauss(rng, (gates * hs, inp), 0.3), gauss(rng, (gates * hs, hs), 0.3),
                    gauss(rng, (gates * hs,), 0.1), gauss(rng, (gates * hs,), 0.1)))
    return out


@pytest.mark.parametrize("cell", [LSTM, GRU])
@pytest.mark.parametrize("integer", [False, True])
def test_step_equals_sequence(rng, cell, integer):
    p = params(rng, cell.gates, 10, 12)[0]
    layer = cell(*p, planes=5, act_bits=6, integer=integer)
    x = gauss(rng, (7, 3, 10))
    want, want_state = layer(x)
    state = None
    for t in range(7):
        h, state = layer.step(x[t], state)
        assert np.array_equal(h, want[t]), t
    got_state = state if cell is GRU else state[1]
    assert np.array_equal(got_state, want_state if cell is GRU else want_state[1])
    if integer:  # Q0.15 hidden states
        assert np.array_equal(want * 32768, np.rint(want * 32768))
    # Unbatched step.
    h1, _ = layer.step(x[0, 1])
    assert np.array_equal(h1, want[0, 1])


@pytest.mark.parametrize("cell,ref", [(LSTM, ref_lstm), (GRU, ref_gru)])
def test_per_gate_planes_match_numpy(rng, cell, ref):
    p = params(rng, cell.gates, 9, 8)[0]
    layer = cell(*p, split_gates=True)
    gate_planes = [2, 8, 5, 3][:cell.gates]
    x = gauss(rng, (5, 2, 9))
    got, _ = layer(x, planes_ih=gate_planes, planes_hh=4, act_bits=16)
    hs = 8
    w_ih = np.concatenate([layer.rnn.dequantize(0, "ih", n, g)
                           for g, n in enumerate(gate_planes)])
    w_hh = layer.w_hh.dequantize(4)
    assert w_ih.shape == p[0].shape and w_hh.shape == p[1].shape
    assert rel(got, ref(x, w_ih, w_hh, p[2], p[3])[0]) < 1e-3
    # Fused layers refuse per-gate plane counts with the library's reason.
    fused = cell(*p)
    with pytest.raises(bp.UnsupportedError, match="create it with split_gates = 1"):
        fused(x, planes_ih=gate_planes)
    # Equal plane counts: split and fused agree bit for bit.
    assert np.array_equal(fused(x, planes=3)[0], layer(x, planes=3)[0])
    assert layer.w_ih.prefix_error(8) < layer.w_ih.prefix_error(2)
    assert hs == layer.hidden_size


def test_integer_mode_near_float_mode(rng):
    p = params(rng, 4, 16, 32)[0]
    layer = LSTM(*p)
    x = gauss(rng, (20, 4, 16))
    f, _ = layer(x, act_bits=8)
    q, _ = layer(x, act_bits=8, integer=True)
    assert 0 < rel(q, f) < 0.05
    with pytest.raises(bp.OutOfRangeError, match="integer mode needs act_bits 2..16"):
        layer(x, act_bits=1, integer=True)


def test_multilayer_rnn_files_and_errors(rng, tmp_path):
    p = params(rng, 3, 6, 10, layers=2)
    rnn = bp.RNN.quantize("gru", p, bits=6)
    assert (rnn.cell, rnn.layers, rnn.input_size, rnn.hidden_size, rnn.bits) == \
        ("gru", 2, 6, 10, 6)
    x = gauss(rng, (4 * 3, 6))
    y, h, c = rnn.forward(x, 4)
    assert y.shape == (12, 10) and h.shape == (6, 10) and c is None
    # The last layer's final state is the last step's output.
    assert np.array_equal(h[3:], y[-3:])
    path = tmp_path / "gru.bprnn"
    rnn.save(path)
    back = bp.RNN.load(path)
    assert np.array_equal(back.forward(x, 4, planes_hh=3)[0], rnn.forward(x, 4, planes_hh=3)[0])
    data = rnn.to_bytes()
    assert bp.RNN.from_bytes(data).to_bytes() == data
    bad = bytearray(data)
    bad[100] ^= 1
    with pytest.raises(bp.CorruptError, match="RNN data is corrupt"):
        bp.RNN.from_bytes(bytes(bad))
    with pytest.raises(bp.CorruptError, match="truncated"):
        bp.RNN.from_bytes(data[:-9])
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        bp.RNN.quantize("rnn", p)
    with pytest.raises(ValueError, match=r"weights\[1\].weight_ih must be C-contiguous with "
                                         r"shape \(30, 10\)"):
        bp.RNN.quantize("gru", [p[0], (p[0][0],) + p[1][1:]])
    with pytest.raises(ValueError, match="steps = 5 dividing its rows"):
        rnn.forward(x, 5)
    with pytest.raises(ValueError, match="c0 must be None for a GRU"):
        rnn.forward(x, 4, h0=h, c0=h)
    with pytest.raises(ValueError, match=r"planes_ih must have one entry per gate \(3\)"):
        rnn.forward(x, 4, planes_ih=[1, 2])
    with pytest.raises(bp.OutOfRangeError, match="planes_hh must be 0 \\(all\\) or 1..6, got 7"):
        rnn.forward(x, 4, planes_hh=7)
    x_nan = x.copy()
    x_nan[2, 3] = np.nan
    with pytest.raises(bp.NonFiniteError, match="x: element 15 is NaN"):
        rnn.forward(x_nan, 4)
    with pytest.raises(TypeError, match="step\\(\\) runs the C layer"):
        LSTM.fp32(*params(rng, 4, 3, 2)[0]).step(np.zeros(3, np.float32))


def torch_state_dict(rng, cell, e, hs, layers, prefix):
    """What torch.nn.LSTM/GRU(...).state_dict() holds, written with NumPy."""
    g = 4 if cell == "lstm" else 3
    sd = {}
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(params(rng, g, e, hs, layers)):
        sd.update({f"{prefix}weight_ih_l{k}": w_ih, f"{prefix}weight_hh_l{k}": w_hh,
                   f"{prefix}bias_ih_l{k}": b_ih, f"{prefix}bias_hh_l{k}": b_hh})
    return sd


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_state_dict_from_safetensors_without_torch(rng, tmp_path, cell):
    st = pytest.importorskip("safetensors.numpy")
    from bitplane.convert import rnn_from_safetensors, rnn_from_state_dict
    sd = torch_state_dict(rng, cell, 7, 9, 2, "rnn.")
    sd["fc.weight"] = gauss(rng, (3, 9))  # other modules' keys are ignored
    src = tmp_path / "model.safetensors"
    st.save_file(sd, str(src))
    rnn = rnn_from_safetensors(src, cell, "rnn.")
    assert (rnn.layers, rnn.input_size, rnn.hidden_size) == (2, 7, 9)
    # Layer by layer against the float64 PyTorch equations on the effective weights.
    ref = ref_lstm if cell == "lstm" else ref_gru
    x = gauss(rng, (6, 2, 7))
    y, _, _ = rnn.forward(x.reshape(12, 7), 6, act_bits=16)
    h = x
    for k in range(2):
        h = ref(h, rnn.dequantize(k, "ih", 0), rnn.dequantize(k, "hh", 0),
                sd[f"rnn.bias_ih_l{k}"], sd[f"rnn.bias_hh_l{k}"])[0]
    assert rel(y.reshape(6, 2, 9), h) < 1e-3
    # The example script converts the file, and the result loads.
    dst = tmp_path / "model.bprnn"
    out = subprocess.run([sys.executable, str(EXAMPLE), str(src), str(dst), "--cell", cell,
                          "--prefix", "rnn."], capture_output=True, text=True, check=True)
    assert "layer 1 hh: weight error at 2/4/8 planes" in out.stdout
    assert bp.RNN.load(dst).to_bytes() == rnn.to_bytes()
    with pytest.raises(ValueError, match="bidirectional RNNs are not supported"):
        rnn_from_state_dict({"weight_ih_l0_reverse": sd["rnn.weight_ih_l0"]}, cell)
    with pytest.raises(ValueError, match="no 'lstm.weight_ih_l0' in the tensors"):
        rnn_from_state_dict(sd, cell, "lstm.")


@pytest.mark.parametrize("cell,ref", [(LSTM, ref_lstm), (GRU, ref_gru)])
def test_layout_options_reach_every_matrix(rng, cell, ref):
    """group_size, rotation and rotation_seed quantize the RNN's matrices as
    Matrix.quantize does with the same options; the run uses them."""
    p = params(rng, cell.gates, 24, 16)[0]
    layout = dict(group_size=64, rotation=16, rotation_seed=7)
    layer = cell(*p, **layout)
    for op, w in (("ih", p[0]), ("hh", p[1])):
        alone = bp.Matrix.quantize(w, **layout)
        assert (alone.group_size, alone.rotation) == (64, 16)
        got = getattr(layer, "w_" + op)
        assert np.array_equal(got.dequantize(5), alone.dequantize(5)), op
        assert got.bytes_read(5) == alone.bytes_read(5), op
    x = gauss(rng, (6, 2, 24))
    h, _ = layer(x, planes=5, act_bits=16)
    want = ref(x, layer.w_ih.dequantize(5), layer.w_hh.dequantize(5), p[2], p[3])[0]
    assert rel(h, want) < 1e-3
    # Per row reads fewer bytes than the default groups of 32 (no multipliers).
    per_row, default = cell(*p, group_size=0), cell(*p)
    assert per_row.w_hh.bytes_read(4) < default.w_hh.bytes_read(4)
    assert not np.array_equal(per_row.w_hh.dequantize(4), default.w_hh.dequantize(4))
    # The integer mode refuses a rotated recurrent matrix with the reason.
    with pytest.raises(bp.Error, match="rotation of K would saturate"):
        layer(x, integer=True)
    with pytest.raises(ValueError, match="group_size must be 0"):
        cell(*p, group_size=-32)
    with pytest.raises(ValueError, match="rotation must be 0"):
        cell(*p, rotation=-4)
    with pytest.raises(bp.Error, match="group"):
        cell(*p, group_size=48)
