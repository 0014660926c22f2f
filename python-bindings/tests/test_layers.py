"""Layers and models against NumPy references written from PyTorch's
documented equations, independent of bitplane.layers."""

import numpy as np
import pytest

import bitplane as bp
from bitplane import models
from bitplane.layers import GRU, LSTM, Linear
from conftest import gauss
from model_files import write_char_rnn, write_mlp


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_lstm(x, w_ih, w_hh, b_ih, b_hh):
    """float64 LSTM per torch.nn.LSTM's docs; x (T, B, E)."""
    hs = w_hh.shape[1]
    h = np.zeros((x.shape[1], hs))
    c = np.zeros_like(h)
    out = []
    for xt in x.astype(np.float64):
        g = xt @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, gg, o = sig(g[:, :hs]), sig(g[:, hs:2 * hs]), np.tanh(g[:, 2 * hs:3 * hs]), \
            sig(g[:, 3 * hs:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out), h, c


def ref_gru(x, w_ih, w_hh, b_ih, b_hh):
    """float64 GRU per torch.nn.GRU's docs; x (T, B, E)."""
    hs = w_hh.shape[1]
    h = np.zeros((x.shape[1], hs))
    out = []
    for xt in x.astype(np.float64):
        gi = xt @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        r = sig(gi[:, :hs] + gh[:, :hs])
        z = sig(gi[:, hs:2 * hs] + gh[:, hs:2 * hs])
        n = np.tanh(gi[:, 2 * hs:] + r * gh[:, 2 * hs:])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out), h


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_linear_is_gemm_with_bias(rng):
    w, b = gauss(rng, (40, 30)), gauss(rng, (40,))
    layer = Linear(w, b, planes=3, act_bits=6)
    x = gauss(rng, (7, 30))
    assert np.array_equal(layer(x), layer.matrix.gemm(x, planes=3, act_bits=6, bias=b))
    assert np.array_equal(layer(x, planes=5), layer.matrix.gemm(x, planes=5, act_bits=6, bias=b))
    # Leading dimensions are flattened and restored; 1-D works.
    x3 = gauss(rng, (2, 3, 30))
    assert layer(x3).shape == (2, 3, 40)
    assert np.array_equal(layer(x3)[1, 2], layer(x3[1, 2]))
    # Against NumPy with the effective weights: only activation rounding is left.
    wn = layer.matrix.dequantize(4).astype(np.float64)
    assert rel(layer(x, planes=4, act_bits=16), x @ wn.T + b) < 1e-4
    assert rel(Linear.fp32(w, b)(x), x.astype(np.float64) @ w.T + b) < 1e-6


@pytest.mark.parametrize("cell,ref,gates", [(LSTM, ref_lstm, 4), (GRU, ref_gru, 3)])
def test_recurrent_layers_match_numpy(rng, cell, ref, gates):
    e, hs, t, b = 24, 20, 9, 3
    p = [gauss(rng, (gates * hs, e), 0.3), gauss(rng, (gates * hs, hs), 0.3),
         gauss(rng, (gates * hs,), 0.1), gauss(rng, (gates * hs,), 0.1)]
    x = gauss(rng, (t, b, e))
    want = ref(x, *p)
    out, state = cell.fp32(*p)(x)
    assert out.shape == (t, b, hs) and out.dtype == np.float32
    assert rel(out, want[0]) < 1e-5
    layer = cell(*p, bits=8)
    for planes in (2, 8):
        eff = [layer.w_ih.dequantize(planes), layer.w_hh.dequantize(planes)]
        want_q = ref(x, *eff, p[2], p[3])
        got, _ = layer(x, planes=planes, act_bits=16)
        assert rel(got, want_q[0]) < 1e-3, planes
    # Per-layer defaults apply when a call passes None.
    layer.planes, layer.act_bits = 3, 6
    assert np.array_equal(layer(x)[0], layer(x, planes=3, act_bits=6)[0])
    # Unbatched input is one stream.
    single, _ = layer(x[:, 1])
    assert np.array_equal(single, layer(x)[0][:, 1])
    # Carrying the state across two halves equals one run, bit for bit.
    first, st = layer(x[:4])
    second, _ = layer(x[4:], st)
    assert np.array_equal(np.concatenate([first, second]), layer(x)[0])


def test_layer_argument_errors(rng):
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(4\*hidden, hidden\)"):
        LSTM(gauss(rng, (16, 5)), gauss(rng, (12, 4)))
    with pytest.raises(ValueError, match="x must have shape"):
        GRU(gauss(rng, (12, 5)), gauss(rng, (12, 4)))(gauss(rng, (3, 2, 6)))
    with pytest.raises(ValueError, match="bias must have shape"):
        Linear(gauss(rng, (4, 4)), gauss(rng, (5,)))
    with pytest.raises(ValueError, match="NaN"):
        Linear(np.full((2, 2), np.nan))


def test_mlp_model_from_file_and_per_layer_precision(tmp_path, rng):
    path = tmp_path / "mlp.npz"
    params, x, y = write_mlp(path, rng)
    data = models.read(path)
    assert data.arch == "mlp" and data.meta["synthetic"]
    fp32 = models.build(data, fp32=True)
    assert np.mean(np.argmax(fp32(x), 1) == y) == 1.0
    m = models.build(data, method="residual")
    assert all(layer.matrix.method == "residual" for layer in m.layers)
    mixed = m(x, planes=[2, 8, 4], act_bits=[8, 6, 8])
    h = x
    for i, (layer, p, a) in enumerate(zip(m.layers, [2, 8, 4], [8, 6, 8])):
        h = layer.matrix.gemm(h, planes=p, act_bits=a, bias=params[i][1])
        if i < 2:
            h = np.maximum(h, 0)
    assert np.array_equal(mixed, h)
    with pytest.raises(ValueError, match="one value per layer"):
        m(x, planes=[2, 3])


def test_user_linear_stacks_npz_and_safetensors(tmp_path, rng):
    ws = {f"layers.{i}": (gauss(rng, (s_out, s_in)), gauss(rng, (s_out,)))
          for i, (s_in, s_out) in zip([1, 10, 2], [(5, 6), (7, 3), (6, 7)])}
    flat = {}
    for k, (w, b) in ws.items():
        flat[k + ".weight"], flat[k + ".bias"] = w, b
    npz = tmp_path / "stack.npz"
    np.savez(npz, **flat)
    data = models.read(npz)
    assert data.arch == "linear_stack"
    shapes = [w.shape for w, _ in models.linear_params(data)]
    assert shapes == [(6, 5), (7, 6), (3, 7)]  # 1, 2, 10: numbers compared as numbers
    out = models.build(data, fp32=True)(gauss(rng, (4, 5)))
    assert out.shape == (4, 3)
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "stack.safetensors"
    st.save_file(flat, str(path))
    assert [w.shape for w, _ in models.linear_params(models.read(path))] == shapes
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{"a.weight": gauss(rng, (4, 3)), "b.weight": gauss(rng, (2, 5))})
    with pytest.raises(ValueError, match="takes 5 inputs but the previous layer gives 4"):
        models.linear_params(models.read(bad))


@pytest.mark.parametrize("arch", ["char_lstm", "char_gru"])
def test_char_rnn_model_and_bpc(tmp_path, rng, arch):
    path = tmp_path / f"{arch}.npz"
    a = write_char_rnn(path, rng, arch=arch)
    data = models.read(path)
    inputs, targets = models.rnn_chunks(data.arrays["test_text"], 400, 4)
    assert inputs.shape == targets.shape == (99, 4)
    assert np.array_equal(inputs[1:], targets[:-1])
    fp32 = models.build(data, fp32=True)
    logits = fp32.logits(inputs)
    assert logits.shape == (99, 4, 20)
    # Reference: the PyTorch-convention cell in float64 on one stream.
    ref = ref_lstm if arch == "char_lstm" else ref_gru
    x = a["embed.weight"][inputs[:, 2]][:, None, :]
    h = ref(x, a["rnn0.weight_ih"], a["rnn0.weight_hh"], a["rnn0.bias_ih"],
            a["rnn0.bias_hh"])[0][:, 0]
    ref_logits = h @ a["fc.weight"].T + a["fc.bias"]
    assert rel(logits[:, 2], ref_logits) < 1e-5
    z = ref_logits - ref_logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    want_bpc = -np.mean(logp[np.arange(99), targets[:, 2]]) / np.log(2)
    assert models.bits_per_char(logits[:, 2], targets[:, 2]) == pytest.approx(want_bpc, 1e-5)
    q = models.build(data, bits=8)
    assert rel(q.logits(inputs, planes=8, act_bits=16), logits) < 1e-2


def test_missing_bundled_model_message(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "MODELS_DIR", tmp_path)
    with pytest.raises(bp.FileError, match="bundled model 'char-gru' is not installed"):
        models.read("char-gru")
