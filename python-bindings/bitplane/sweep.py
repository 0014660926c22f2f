"""bitplane-sweep: task metric, output error and speed of bit-plane inference
across weight planes, activation bits, quantizers and backends, measured
against an fp32 NumPy (OpenBLAS) baseline in the same run.

    bitplane-sweep                                  # the bundled digits MLP, defaults
    bitplane-sweep --model char-lstm --planes 2,4,8 --act-bits 8
    bitplane-sweep --model my_weights.safetensors --inputs x.npy

Writes sweep.csv, sweep.json and PNG plots (metric and latency against planes)
into --out. Every argument has a default; see --help.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def _int_list(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def _str_list(text: str) -> List[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bitplane-sweep",
        description="Accuracy and speed of bit-plane inference against fp32, per configuration.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", type=_str_list, default=["digits"],
                   help="bundled model names (digits, char-lstm, char-gru) or paths to .npz / "
                        ".safetensors files, comma-separated")
    p.add_argument("--backend", type=_str_list, default=["cpu"],
                   help="backends, comma-separated (cpu, cuda, opencl); unavailable ones are "
                        "reported and skipped")
    p.add_argument("--planes", type=_int_list, default=[1, 2, 3, 4, 6, 8],
                   help="weight plane counts to use")
    p.add_argument("--act-bits", type=_int_list, default=[4, 8], help="activation bits")
    p.add_argument("--quantizer", type=_str_list, default=["uniform", "residual"],
                   help="quantizers (uniform, residual)")
    p.add_argument("--bits", type=int, default=8, help="planes stored per matrix (k)")
    p.add_argument("--clip", type=float, default=0.0,
                   help="uniform quantizer's clip ratio; 0 = automatic per row")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for bitplane and for the OpenBLAS baseline; 0 = all cores")
    p.add_argument("--cpu-kernel", default="auto",
                   choices=["auto", "reference", "portable", "avx2", "avx2-lut", "avx512",
                            "avx512-lut", "avx512-vnni"],
                   help="CPU kernel path (the library's AUTO dispatch by default)")
    p.add_argument("--out", default="bitplane-sweep-out", help="output directory")
    p.add_argument("--repeats", type=int, default=5,
                   help="at least this many timed forward passes per configuration")
    p.add_argument("--min-time", type=float, default=0.4,
                   help="and at least this many seconds of timed passes per configuration")
    p.add_argument("--tokens", type=int, default=4096,
                   help="char models: evaluate on this many held-out characters")
    p.add_argument("--streams", type=int, default=16,
                   help="char models: split them into this many independent streams "
                        "(zero initial state each), run as one batch")
    p.add_argument("--inputs", default=None,
                   help="Linear stacks: a .npy file of inputs (n, in_features); default "
                        "256 random N(0, 1) rows, or the file's test_x")
    p.add_argument("--activation", default="relu", choices=["relu", "tanh", "none"],
                   help="Linear stacks: activation between layers")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.threads < 0:
        p.error("--threads must be >= 0")
    if args.repeats < 1 or args.min_time < 0:
        p.error("--repeats must be >= 1 and --min-time >= 0")
    if args.streams < 1 or args.tokens < 2:
        p.error("--streams must be >= 1 and --tokens >= 2")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # The baseline gets the same number of threads as bitplane. OpenBLAS reads
    # this when numpy loads, which is why numpy is imported only after it.
    if args.threads > 0 and "numpy" not in sys.modules:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    from ._sweep_run import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
