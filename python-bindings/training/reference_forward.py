"""Plain-numpy float32 reference forward passes for bitplane-model-v1 files.

These functions define the fp32 baselines recorded in the bundled models
(`fp32_test_accuracy`, `fp32_test_bpc`, `fp32_test_bpc_first_4096`). They use
only numpy, take the arrays exactly as stored in the .npz, and compute in
float32 so that a consumer (e.g. the bitplane sweep tool) can mirror them
line by line. The file format is described in README.md next to this file.

`quantize_weights_prefix` is a *diagnostic* approximation of the runtime's
uniform quantizer (clip = 1, least-squares scale per prefix); the C runtime is
the authority on bit-plane numerics.
"""

from __future__ import annotations

import numpy as np

FORMAT = "bitplane-model-v1"
LN2 = float(np.log(2.0))


def _f32(a):
    return np.asarray(a, dtype=np.float32)


def _sigmoid(x):
    # Written via tanh so that large |x| neither overflows nor warns.
    return np.float32(0.5) * (np.tanh(np.float32(0.5) * x) + np.float32(1.0))


# --------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------

def mlp_params(model):
    """List of (weight[out, in], bias[out]) from a loaded mlp model."""
    n = int(model["n_layers"])
    return [(_f32(model[f"l{i}.weight"]), _f32(model[f"l{i}.bias"])) for i in range(n)]


def mlp_logits(params, x):
    """Logits for a batch x (n, in). ReLU after every layer but the last."""
    h = _f32(x)
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i + 1 < len(params):
            h = np.maximum(h, np.float32(0.0))
    return h


def mlp_accuracy(params, x, y):
    return float(np.mean(np.argmax(mlp_logits(params, x), axis=1) == np.asarray(y)))


# --------------------------------------------------------------------------
# Character RNN (1+ layers of LSTM or GRU, PyTorch gate conventions)
# --------------------------------------------------------------------------

def rnn_params(model):
    """Dict of float32 arrays from a loaded char_lstm / char_gru model."""
    arch = str(model["arch"])
    if arch not in ("char_lstm", "char_gru"):
        raise ValueError(f"not a char RNN model: {arch!r}")
    layers = []
    for l in range(int(model["rnn_layers"])):
        layers.append({k: _f32(model[f"rnn{l}.{k}"])
                       for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return {
        "arch": arch,
        "embed": _f32(model["embed.weight"]),
        "layers": layers,
        "fc_w": _f32(model["fc.weight"]),
        "fc_b": _f32(model["fc.bias"]),
    }


def lstm_step(x, h, c, p):
    """One LSTM step; gate order i, f, g, o (PyTorch)."""
    gates = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
    i, f, g, o = np.split(gates, 4)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return h, c


def gru_step(x, h, p):
    """One GRU step; gate order r, z, n (PyTorch)."""
    gi = p["weight_ih"] @ x + p["bias_ih"]
    gh = p["weight_hh"] @ h + p["bias_hh"]
    i_r, i_z, i_n = np.split(gi, 3)
    h_r, h_z, h_n = np.split(gh, 3)
    r = _sigmoid(i_r + h_r)
    z = _sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (np.float32(1.0) - z) * n + z * h


def rnn_bits(params, tokens):
    """Per-character bits, predicting tokens[t+1] from tokens[:t+1].

    The state starts at zero and is carried across the whole sequence.
    Returns a float64 array of length len(tokens) - 1.
    """
    tokens = np.asarray(tokens)
    is_lstm = params["arch"] == "char_lstm"
    state = []
    for p in params["layers"]:
        hdim = p["weight_hh"].shape[1]
        z = np.zeros(hdim, np.float32)
        state.append((z, z.copy()) if is_lstm else z)
    bits = np.empty(len(tokens) - 1, np.float64)
    for t in range(len(tokens) - 1):
        x = params["embed"][tokens[t]]
        for l, p in enumerate(params["layers"]):
            if is_lstm:
                h, c = lstm_step(x, *state[l], p)
                state[l] = (h, c)
            else:
                h = gru_step(x, state[l], p)
                state[l] = h
            x = h
        logits = params["fc_w"] @ x + params["fc_b"]
        m = logits.max()
        logz = m + np.log(np.sum(np.exp(logits - m)))
        bits[t] = (float(logz) - float(logits[tokens[t + 1]])) / LN2
    return bits


def rnn_bpc(params, tokens):
    """Mean bits per character over tokens (see rnn_bits)."""
    return float(np.mean(rnn_bits(params, tokens)))


# --------------------------------------------------------------------------
# Diagnostic: nested uniform bit-plane quantizer (weights only)
# --------------------------------------------------------------------------

def quantize_weights_prefix(w, planes, bits=8):
    """Effective weights when only the top `planes` of `bits` planes are used.

    Per row: r = max|w|, step = r / (2^bits - 1); w is rounded to the nearest
    odd multiple of step, i.e. an odd integer q in [-(2^bits-1), 2^bits-1]
    whose +-1 binary digits are the planes (MSB first). Keeping the top n
    digits gives an odd integer on the n-bit grid; each prefix gets its own
    least-squares scale, as in the runtime's uniform method with clip = 1.
    """
    w = np.asarray(w, np.float64)
    levels = 2 ** bits - 1
    r = np.max(np.abs(w), axis=1, keepdims=True)
    r = np.where(r > 0, r, 1.0)
    step = r / levels
    # Nearest odd integer to w/step ("ties and zeros go up").
    q = 2.0 * np.floor(w / step / 2.0) + 1.0
    q = np.clip(q, -levels, levels)
    # Digits: u = (q + levels)/2 in [0, levels]; plane p (MSB first) = 2*bit - 1.
    u = ((q + levels) / 2).astype(np.int64)
    qn = np.zeros_like(w)
    for p in range(planes):
        t = 2.0 * ((u >> (bits - 1 - p)) & 1) - 1.0
        qn += t * 2.0 ** (planes - 1 - p)
    scale = np.sum(w * qn, axis=1, keepdims=True) / np.sum(qn * qn, axis=1, keepdims=True)
    return (scale * qn).astype(np.float32)
