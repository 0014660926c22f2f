#!/usr/bin/env python3
"""Check bundled bitplane-model-v1 files against the format and their metrics.

Loads each file with allow_pickle=False, checks keys, dtypes, shapes and
contiguity, and recomputes the stored fp32 metrics with reference_forward.
Exits non-zero on the first mismatch.

Usage: python verify_models.py [FILE.npz ...]   (default: all bundled models)
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

import reference_forward as ref

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(HERE, "..", "bitplane", "models")


def check(cond, msg):
    if not cond:
        raise SystemExit(f"FAIL: {msg}")


def check_weight(f, key, shape):
    a = f[key]
    check(a.dtype == np.float32, f"{key} dtype {a.dtype}")
    check(a.flags["C_CONTIGUOUS"], f"{key} not C-contiguous")
    check(a.shape == shape, f"{key} shape {a.shape} != {shape}")
    check(np.all(np.isfinite(a)), f"{key} not finite")


def verify(path):
    f = np.load(path, allow_pickle=False)
    check(str(f["format"]) == ref.FORMAT, "format")
    arch = str(f["arch"])
    meta = json.loads(str(f["meta_json"]))
    if arch == "mlp":
        n = int(f["n_layers"])
        check(f["n_layers"].dtype == np.int64, "n_layers dtype")
        fan_in = f["test_x"].shape[1]
        for i in range(n):
            out = f[f"l{i}.weight"].shape[0]
            check_weight(f, f"l{i}.weight", (out, fan_in))
            check_weight(f, f"l{i}.bias", (out,))
            fan_in = out
        check(f["test_x"].dtype == np.float32 and f["test_y"].dtype == np.int64, "test dtypes")
        acc = ref.mlp_accuracy(ref.mlp_params(f), f["test_x"], f["test_y"])
        check(acc == float(f["fp32_test_accuracy"]), f"accuracy {acc} != stored")
        check(acc == meta["fp32_test_accuracy"], "meta accuracy")
        summary = f"fp32_test_accuracy {acc:.4f} (n_test {len(f['test_y'])})"
    elif arch in ("char_lstm", "char_gru"):
        g = 4 if arch == "char_lstm" else 3
        v, e = f["embed.weight"].shape
        check(f["vocab"].dtype == np.int32 and f["vocab"].shape == (v,), "vocab")
        check(f["rnn_layers"].dtype == np.int64, "rnn_layers dtype")
        check_weight(f, "embed.weight", (v, e))
        h = f["rnn0.weight_hh"].shape[1]
        for l in range(int(f["rnn_layers"])):
            check_weight(f, f"rnn{l}.weight_ih", (g * h, e if l == 0 else h))
            check_weight(f, f"rnn{l}.weight_hh", (g * h, h))
            check_weight(f, f"rnn{l}.bias_ih", (g * h,))
            check_weight(f, f"rnn{l}.bias_hh", (g * h,))
        check_weight(f, "fc.weight", (v, h))
        check_weight(f, "fc.bias", (v,))
        t = f["test_text"]
        check(t.dtype == np.int32 and t.min() >= 0 and t.max() < v, "test_text")
        p = ref.rnn_params(f)
        bpc = ref.rnn_bpc(p, t)
        bpc4k = ref.rnn_bpc(p, t[:4096])
        check(bpc == float(f["fp32_test_bpc"]), f"bpc {bpc} != stored")
        check(bpc4k == float(f["fp32_test_bpc_first_4096"]), f"bpc4k {bpc4k} != stored")
        summary = f"fp32_test_bpc {bpc:.4f}, first 4096 {bpc4k:.4f} (T {len(t)}, V {v}, H {h})"
    else:
        raise SystemExit(f"FAIL: unknown arch {arch!r}")
    print(f"ok  {os.path.basename(path)}  {arch}  {os.path.getsize(path)} B  {summary}")


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(MODELS_DIR, "*.npz")))
    for p in paths:
        verify(p)


if __name__ == "__main__":
    main()
