"""Per-call overhead of the Python binding against the same bp_gemm call from C.

Builds overhead.c (next to this file) against the installed package's
libbitplane.so.0 and the repository's include/, then alternates C and Python
measurement rounds at one shape (default 64x64, batch 1, planes 4, act_bits 8,
one thread) and prints medians of ns per call:

    python python-bindings/tools/overhead.py [--rows 64 --cols 64]
"""

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import bitplane as bp

HERE = Path(__file__).resolve().parent


def build_c(tmp: Path) -> Path:
    exe = tmp / "overhead"
    lib = Path(bp.library_path())
    subprocess.run(["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L",
                    f"-I{HERE.parent.parent / 'include'}", str(HERE / "overhead.c"), "-o",
                    str(exe), str(lib), f"-Wl,-rpath,{lib.parent}"], check=True)
    return exe


def python_samples(rows, cols, calls, samples, kernel, with_out=True):
    rng = np.random.default_rng(1)
    ctx = bp.Context(threads=1, cpu_kernel=kernel)
    m = bp.Matrix.quantize(rng.uniform(-0.5, 0.5, (rows, cols)).astype(np.float32),
                           context=ctx)
    x = rng.uniform(-0.5, 0.5, cols).astype(np.float32)
    out = np.empty(rows, np.float32)
    gemm = m.gemm
    for _ in range(calls):
        gemm(x, planes=4, out=out)
    res = []
    for _ in range(samples):
        if with_out:
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                gemm(x, planes=4, out=out)
        else:
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                gemm(x, planes=4)
        res.append((time.perf_counter_ns() - t0) / calls)
    return res


def empty_loop(calls, samples):
    """The cost of the Python for-loop itself, subtracted from the Python figures."""
    res = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            pass
        res.append((time.perf_counter_ns() - t0) / calls)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=64)
    ap.add_argument("--calls", type=int, default=2000, help="calls per sample")
    ap.add_argument("--samples", type=int, default=15, help="samples per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating C/Python rounds")
    ap.add_argument("--cpu-kernel", default="auto", choices=bp.CPU_KERNELS,
                    help="CPU kernel for both sides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_c(Path(tmp))
        c, py, py_alloc, loop = [], [], [], []
        for _ in range(args.rounds):
            out = subprocess.run([str(exe), str(args.rows), str(args.cols), str(args.calls),
                                  str(args.samples), args.cpu_kernel], check=True, capture_output=True,
                                 text=True).stdout
            c += [float(v) for v in out.split()]
            py += python_samples(args.rows, args.cols, args.calls, args.samples,
                                 args.cpu_kernel)
            py_alloc += python_samples(args.rows, args.cols, args.calls, args.samples,
                                       args.cpu_kernel, False)
            loop += empty_loop(args.calls, args.samples)
    med = {k: statistics.median(v) for k, v in
           (("c_ns", c), ("python_out_ns", py), ("python_alloc_ns", py_alloc),
            ("loop_ns", loop))}
    med["overhead_out_ns"] = med["python_out_ns"] - med["loop_ns"] - med["c_ns"]
    med["overhead_alloc_ns"] = med["python_alloc_ns"] - med["loop_ns"] - med["c_ns"]
    med["ratio_out"] = (med["python_out_ns"] - med["loop_ns"]) / med["c_ns"]
    # The fastest sample is the least disturbed by other processes on a busy machine.
    low = {"c_min_ns": min(c), "python_out_min_ns": min(py), "python_alloc_min_ns": min(py_alloc)}
    low["overhead_out_min_ns"] = low["python_out_min_ns"] - med["loop_ns"] - low["c_min_ns"]
    low["overhead_alloc_min_ns"] = low["python_alloc_min_ns"] - med["loop_ns"] - low["c_min_ns"]
    result = {"shape": f"{args.rows}x{args.cols}, batch 1, planes 4, act_bits 8, 1 thread, "
                       f"cpu_kernel {args.cpu_kernel}",
              "samples_each": len(c), "median": {k: round(v, 2) for k, v in med.items()},
              "min": {k: round(v, 2) for k, v in low.items()}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
