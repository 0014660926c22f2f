"""A seeded, compute-bound Linear stack for the serving benchmarks.

The bundled digits MLP (64-256-128-10) costs microseconds per row, so over
HTTP on a small machine the HTTP stack sets the rate and neither batching
nor the plane count can show. This writes a wide stack (default
1024-4096-4096-1024-16, ReLU between layers, He-scaled Gaussian weights) as
a user's ``.npz`` Linear stack that ``bitplane-serve --model PATH`` serves,
with ``test_x`` inputs and ``test_y`` labels: the float32 model's own top-1
class on those inputs, so that a served answer's "accuracy" is its top-1
agreement with the unquantized model.

    python bench/serve/make_model.py OUT.npz [--widths 1024,4096,4096,1024,16]
        [--rows 1024] [--seed 0]

The same arguments give the same file, byte for byte in its arrays.
"""

import argparse

import numpy as np


def make(widths, rows, seed):
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        arrays[f"l{i}.weight"] = (rng.standard_normal((n, k)) * np.sqrt(2.0 / k)).astype(
            np.float32)
        arrays[f"l{i}.bias"] = (0.01 * rng.standard_normal(n)).astype(np.float32)
    x = rng.standard_normal((rows, widths[0])).astype(np.float32)
    h = x
    for i in range(len(widths) - 1):
        h = h @ arrays[f"l{i}.weight"].T + arrays[f"l{i}.bias"]
        if i + 2 < len(widths):
            h = np.maximum(h, 0)
    arrays["test_x"] = x
    arrays["test_y"] = h.argmax(axis=1).astype(np.int64)
    return arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--widths", default="1024,4096,4096,1024,16")
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    if len(widths) < 2 or min(widths) < 1:
        ap.error("--widths needs at least two positive sizes")
    np.savez(a.out, **make(widths, a.rows, a.seed))


if __name__ == "__main__":
    main()
