"""Small synthetic model files in the bundled format (bitplane-model-v1) and
user Linear stacks, for tests that must not depend on the bundled models."""

import json

import numpy as np


def _common(arch, **meta):
    return dict(format=np.array("bitplane-model-v1"), arch=np.array(arch),
                meta_json=np.array(json.dumps(dict(meta, synthetic=True))))


def write_mlp(path, rng, sizes=(64, 48, 32, 10), n_test=120):
    """An MLP whose test labels are its own fp32 predictions (accuracy 1.0)."""
    arrays = _common("mlp", corpus="synthetic")
    params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((b, a)) * np.sqrt(2.0 / a)).astype(np.float32)
        bias = (rng.standard_normal(b) * 0.1).astype(np.float32)
        arrays[f"l{i}.weight"], arrays[f"l{i}.bias"] = w, bias
        params.append((w, bias))
    x = rng.standard_normal((n_test, sizes[0])).astype(np.float32)
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i + 1 < len(params):
            h = np.maximum(h, 0)
    y = np.argmax(h, axis=1).astype(np.int64)
    arrays.update(n_layers=np.array(len(params), np.int64), test_x=x, test_y=y,
                  fp32_test_accuracy=np.array(1.0))
    np.savez(path, **arrays)
    return params, x, y


def write_char_rnn(path, rng, arch="char_lstm", vocab=20, embed=12, hidden=16, n_text=600):
    g = 4 if arch == "char_lstm" else 3
    s = 1.0 / np.sqrt(hidden)
    u = lambda *shape: rng.uniform(-s, s, shape).astype(np.float32)  # noqa: E731
    arrays = _common(arch, corpus="synthetic")
    arrays.update({
        "vocab": np.arange(32, 32 + vocab, dtype=np.int32),
        "embed.weight": rng.standard_normal((vocab, embed)).astype(np.float32),
        "rnn_layers": np.array(1, np.int64),
        "rnn0.weight_ih": u(g * hidden, embed), "rnn0.weight_hh": u(g * hidden, hidden),
        "rnn0.bias_ih": u(g * hidden), "rnn0.bias_hh": u(g * hidden),
        "fc.weight": u(vocab, hidden), "fc.bias": u(vocab),
        "test_text": rng.integers(0, vocab, n_text).astype(np.int32),
        "fp32_test_bpc": np.array(np.log2(vocab)),
        "fp32_test_bpc_first_4096": np.array(np.log2(vocab)),
    })
    np.savez(path, **arrays)
    return arrays
