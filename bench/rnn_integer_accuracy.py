#!/usr/bin/env python3
"""Bits per character of the bundled char models in the RNN's float and
integer elementwise modes, next to fp32 (NumPy), on the sweep's evaluation
set (the first 4096 held-out characters in 16 streams).

    python bench/rnn_integer_accuracy.py [--planes 4,8] [--act-bits 8] [--out FILE.json]

Prints a Markdown table; --out also writes the numbers as JSON.
"""

import argparse
import json
import platform
import sys

import numpy as np

import bitplane
from bitplane import models as M


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--planes", default="4,8")
    p.add_argument("--act-bits", default="8")
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--out")
    a = p.parse_args(argv)
    planes = [int(v) for v in a.planes.split(",")]
    act_bits = [int(v) for v in a.act_bits.split(",")]
    rows = []
    print("| model | act_bits | planes | fp32 bpc | float bpc | integer bpc | integer vs float |")
    print("|---|---|---|---|---|---|---|")
    for name in ("char-lstm", "char-gru"):
        data = M.read(name)
        inputs, targets = M.rnn_chunks(data.arrays["test_text"], a.tokens, a.streams)
        fp32 = M.bits_per_char(M.build(data, fp32=True).logits(inputs), targets)
        model = M.build(data)
        for ab in act_bits:
            for n in planes:
                res = {}
                for integer in (False, True):
                    for layer in model.rnn:
                        layer.integer = integer
                    res[integer] = M.bits_per_char(
                        model.logits(inputs, planes=n, act_bits=ab), targets)
                rel = 100.0 * (res[True] - res[False]) / res[False]
                rows.append(dict(model=name, act_bits=ab, planes=n, fp32_bpc=fp32,
                                 float_bpc=res[False], integer_bpc=res[True],
                                 integer_vs_float_pct=rel))
                print(f"| {name} | {ab} | {n} | {fp32:.4f} | {res[False]:.4f} | "
                      f"{res[True]:.4f} | {rel:+.2f} % |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(machine=platform.platform(), python=sys.version.split()[0],
                           bitplane=bitplane.version(), tokens=a.tokens, streams=a.streams,
                           rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
