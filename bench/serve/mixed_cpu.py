"""Thread CPU time per batched forward of a served Linear stack: rows at
planes 1 + c % 8 (a mixed-precision batch) against every row at 8 planes,
interleaved, 1 library thread, medians; one JSON line.

    python bench/serve/mixed_cpu.py MODEL.npz [--rows 4,16] [--reps 9]

MODEL.npz from bench/serve/make_model.py (the wide stack). The layers
after a ReLU keep unsigned activations (no rotation), as served.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

import bitplane
from bitplane.serve.served import load


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rows", default="4,16")
    ap.add_argument("--reps", type=int, default=9)
    opts = ap.parse_args()
    m = load(opts.model, context=bitplane.Context(threads=1))
    out = {"model": opts.model, "loadavg": [round(v, 2) for v in os.getloadavg()]}
    for rows in [int(v) for v in opts.rows.split(",")]:
        x = np.ascontiguousarray(m.test_x[:rows])
        sets = {"mix": [1 + c % 8 for c in range(rows)], "all8": [8] * rows}
        times = {k: [] for k in sets}
        for cp in sets.values():  # warm-up
            m.forward_batched(x, cp, 8)
        for _ in range(opts.reps):
            for k, cp in sets.items():
                t0 = time.thread_time()
                m.forward_batched(x, cp, 8)
                times[k].append(time.thread_time() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        out[f"rows_{rows}"] = {"mix_ms": round(med["mix"], 3), "all8_ms": round(med["all8"], 3),
                               "mix_over_all8": round(med["mix"] / med["all8"], 3)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
