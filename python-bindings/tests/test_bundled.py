"""The bundled models: they load, and the sweep's fp32 path reproduces the
fp32 metric recorded in each file (so the quantized numbers are compared
against the right baseline)."""

import numpy as np
import pytest

from bitplane import models as M

PRESENT = [n for n in M.BUNDLED if M.bundled_path(n).exists()]


def test_digits_is_bundled():
    assert "digits" in PRESENT, f"missing {M.bundled_path('digits')}"


def test_digits_fp32_accuracy_matches_the_file():
    data = M.read("digits")
    assert data.arch == "mlp" and data.meta
    x, y = data.arrays["test_x"], data.arrays["test_y"]
    acc = float(np.mean(np.argmax(M.build(data, fp32=True)(x), 1) == y))
    assert acc == pytest.approx(data.scalar("fp32_test_accuracy"), abs=1e-9)
    # 4 planes at act_bits 8: the quantized model computes what its own
    # dequantized weights say (only the 8-bit activations differ), and keeps
    # the accuracy within half a point of fp32; 1 plane loses accuracy.
    q = M.build(data)
    out = q(x, planes=4, act_bits=8)
    h = np.asarray(x, np.float32)
    for i, layer in enumerate(q.layers):
        h = h @ layer.matrix.dequantize(4).T + layer.bias
        if i + 1 < len(q.layers):
            h = np.maximum(h, 0)
    assert np.linalg.norm(out - h) / np.linalg.norm(h) < 0.02
    acc4 = float(np.mean(np.argmax(out, 1) == y))
    acc1 = float(np.mean(np.argmax(q(x, planes=1, act_bits=8), 1) == y))
    assert abs(acc4 - acc) <= 0.005 and acc1 < acc4


@pytest.mark.parametrize("name", [n for n in ("char-lstm", "char-gru") if n in PRESENT]
                         or [pytest.param("char-*", marks=pytest.mark.skip(
                             reason="no char model is bundled in this build"))])
def test_char_model_fp32_bpc_matches_the_file(name):
    data = M.read(name)
    tokens = data.arrays["test_text"]
    # One stream over the first 4096 characters is how the file's figure is defined.
    inputs, targets = M.rnn_chunks(tokens, 4096, 1)
    logits = M.build(data, fp32=True).logits(inputs)
    bpc = M.bits_per_char(logits, targets)
    assert bpc == pytest.approx(data.scalar("fp32_test_bpc_first_4096"), abs=2e-3)
