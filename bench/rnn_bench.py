#!/usr/bin/env python3
"""Per-step latency of bitplane's C LSTM/GRU against ONNX Runtime's LSTM and
GRU operators (fp32) and the NumPy fp32 loop, in one process, one thread.

    bench/run-rnn-bench.sh          (sets up .venv, then runs this with --out bench/results)
    python bench/rnn_bench.py --out bench/results [--hidden 256 --batch 1 ...]

For each cell (LSTM, GRU), batch (1, 16) and hidden size H (256, 1024, 2048;
input size E = H), every runner processes the same random sequence of T
steps (T = 32 / 16 / 8 for H = 256 / 1024 / 2048) and the per-step latency is
the median over repeated runs of (time of the whole sequence) / T, so each
includes its share of the input projection. Runners are timed in rounds (per
round and runner: one untimed sequence to bring its weights back into cache,
then three timed), so a machine whose load changes hits all alike. Runners:
  ort      onnxruntime InferenceSession with one LSTM/GRU node (opset 14, GRU
           with linear_before_reset=1 as PyTorch), 1 intra-op thread; the
           graph is built with the onnx package's helpers, nothing downloaded
  numpy    bitplane.layers.LSTM/GRU.fp32: NumPy float32 products (OpenBLAS,
           1 thread) and NumPy elementwise work, step by step in Python
  bp       bitplane.layers.LSTM/GRU on a 1-thread CPU context, act_bits 8,
           planes 1/2/4/8, float and integer elementwise modes; one C call
           per sequence
Before timing, ORT's and NumPy's outputs are checked against each other
(same weights, PyTorch gate order mapped to ONNX's).

Writes rnn-cpu-<date>.md (table, CPU model, load before and after) and
rnn-cpu-<date>.json under --out. The machine's load matters: the report
records /proc/loadavg and says so.
"""

import os

# One thread for OpenBLAS (NumPy's products), set before NumPy loads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import bitplane  # noqa: E402
from bitplane._sweep_run import proc_cpu_model  # noqa: E402
from bitplane.layers import GRU, LSTM  # noqa: E402

STEPS = {256: 32, 1024: 16, 2048: 8}
# PyTorch gate blocks in ONNX order: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
ONNX_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def cpu_model():
    return proc_cpu_model() or platform.processor() or "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def interleaved_medians(fns, min_runs, min_time, block=3):
    """Median seconds per call of every fn, timed in rounds so that load
    changing over time hits every runner alike. In a round each fn gets one
    untimed call (its weights back in cache, as in a service that runs one
    model) and then `block` timed calls. At least min_runs timed calls and
    min_time seconds per fn."""
    times = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < min_runs or time.perf_counter() - start < min_time * len(fns):
        for fn, ts in zip(fns, times):
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return [(statistics.median(ts), min(ts)) for ts in times], len(times[0])


def ort_session(cell, w_ih, w_hh, b_ih, b_hh, t_len, batch, hidden):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    g = len(ONNX_ORDER[cell])

    def reorder(a):
        return np.concatenate([np.split(a, g)[k] for k in ONNX_ORDER[cell]])[None]

    e = w_ih.shape[1]
    inits = [numpy_helper.from_array(reorder(w_ih), "W"), numpy_helper.from_array(reorder(w_hh), "R"),
             numpy_helper.from_array(np.concatenate([reorder(b_ih), reorder(b_hh)], axis=1), "B")]
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    attrs = dict(hidden_size=hidden)
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(cell.upper(), ["X", "W", "R", "B"], outputs, **attrs)
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [node], cell, [helper.make_tensor_value_info("X", f32, [t_len, batch, e])],
        [helper.make_tensor_value_info("Y", f32, [t_len, 1, batch, hidden])] +
        [helper.make_tensor_value_info(n, f32, [1, batch, hidden]) for n in outputs[1:]],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return lambda x: sess.run(["Y"], {"X": x})[0][:, 0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="lstm,gru")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--hidden", default="256,1024,2048")
    p.add_argument("--planes", default="1,2,4,8")
    p.add_argument("--modes", default="float,integer")
    p.add_argument("--act-bits", type=int, default=8)
    p.add_argument("--min-runs", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="directory for rnn-cpu-<date>.md and .json")
    a = p.parse_args(argv)
    cells = a.cells.split(",")
    batches = [int(v) for v in a.batch.split(",")]
    hiddens = [int(v) for v in a.hidden.split(",")]
    planes = [int(v) for v in a.planes.split(",")]
    modes = a.modes.split(",")
    ctx = bitplane.Context(threads=1)
    rng = np.random.default_rng(a.seed)
    load_before = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for cell in cells:
        cls = LSTM if cell == "lstm" else GRU
        for hidden in hiddens:
            g, e = cls.gates, hidden
            s = 1.0 / np.sqrt(hidden)
            w = [rng.uniform(-s, s, shape).astype(np.float32)
                 for shape in ((g * hidden, e), (g * hidden, hidden), (g * hidden,), (g * hidden,))]
            t0 = time.perf_counter()
            layer = cls(*w, bits=8, context=ctx)
            quantize_s = time.perf_counter() - t0
            dense = cls.fp32(*w)
            for batch in batches:
                t_len = STEPS.get(hidden, 16)
                x = rng.standard_normal((t_len, batch, e)).astype(np.float32)
                ort_run = ort_session(cell, *w, t_len, batch, hidden)
                ref = dense(x)[0]
                got = ort_run(x)
                diff = float(np.max(np.abs(got - ref)))
                if diff > 1e-4:
                    raise SystemExit(f"{cell} H={hidden} B={batch}: ONNX Runtime and NumPy "
                                     f"differ by {diff:g}: the graph is not the same network")
                base = dict(cell=cell, hidden=hidden, input=e, batch=batch, steps=t_len)

                runners = [(dict(runner="ort"), lambda: ort_run(x)),
                           (dict(runner="numpy"), lambda: dense(x))]
                for mode in modes:
                    for n in planes:
                        runners.append((
                            dict(runner="bitplane", planes=n, act_bits=a.act_bits, mode=mode,
                                 quantize_s=quantize_s),
                            lambda n=n, mode=mode: layer(x, planes=n, act_bits=a.act_bits,
                                                         integer=mode == "integer")))
                secs, n_runs = interleaved_medians([fn for _, fn in runners], a.min_runs,
                                                   a.min_time)
                for (kw, _), (sec, best) in zip(runners, secs):
                    rows.append(dict(base, **kw, us_per_step=1e6 * sec / t_len,
                                     min_us_per_step=1e6 * best / t_len, runs=n_runs))
                ort_row = next(r for r in rows if r["runner"] == "ort" and r["cell"] == cell
                               and r["hidden"] == hidden and r["batch"] == batch)
                for r in rows:
                    if r["cell"] == cell and r["hidden"] == hidden and r["batch"] == batch:
                        r["speed_vs_ort"] = ort_row["us_per_step"] / r["us_per_step"]
                        r["min_speed_vs_ort"] = ort_row["min_us_per_step"] / r["min_us_per_step"]
                print(f"{cell} H={hidden} B={batch}: ort {ort_row['us_per_step']:.1f} us/step, "
                      + ", ".join(f"{r['mode'][0]}{r['planes']} {r['speed_vs_ort']:.2f}x"
                                  for r in rows if r["runner"] == "bitplane" and r["cell"] == cell
                                  and r["hidden"] == hidden and r["batch"] == batch),
                      flush=True)
    load_after = loadavg()
    table = markdown(rows, cells, hiddens, batches, planes, modes, "")
    table_min = markdown(rows, cells, hiddens, batches, planes, modes, "min_")
    head = (f"CPU: {cpu_model()}; {os.cpu_count()} logical CPUs; 1 thread for every runner; "
            f"load average before {load_before}, after {load_after}; "
            f"bitplane {bitplane.version()}, act_bits {a.act_bits}; "
            f"{started:%Y-%m-%d %H:%M} UTC")
    print(head)
    print(table)
    print("\nBest of the same runs (min instead of median):\n" + table_min)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        stem = os.path.join(a.out, f"rnn-cpu-{started:%Y-%m-%d}")
        import onnxruntime
        meta = dict(cpu=cpu_model(), logical_cpus=os.cpu_count(), load_before=load_before,
                    load_after=load_after, started=started.isoformat(),
                    onnxruntime=onnxruntime.__version__, numpy=np.__version__,
                    bitplane=bitplane.version(), args=vars(a))
        with open(stem + ".json", "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write("# RNN per-step latency against ONNX Runtime\n\n")
            f.write(f"`bench/run-rnn-bench.sh` (`bench/rnn_bench.py --out bench/results`)"
                    f"\n\n{head}\n\n")
            f.write("Speed as a multiple of ONNX Runtime's fp32 operator in the same run "
                    "(above 1 is faster); ORT and NumPy columns in µs per step.\n\n")
            f.write("Medians:\n\n" + table + "\n\n")
            f.write("Minimum of the same runs (less sensitive to preemption on a loaded "
                    "machine):\n\n" + table_min + "\n")
        print(f"wrote {stem}.md and {stem}.json")


def markdown(rows, cells, hiddens, batches, planes, modes, stat):
    """stat: "" for medians, "min_" for the minimum."""
    cols = [f"{m} {n}p" for m in modes for n in planes]
    out = ["| cell | batch | H | ORT fp32 µs/step | NumPy fp32 | " + " | ".join(cols) + " |",
           "|" + "---|" * (5 + len(cols))]
    for cell in cells:
        for batch in batches:
            for hidden in hiddens:
                sel = [r for r in rows if r["cell"] == cell and r["batch"] == batch
                       and r["hidden"] == hidden]
                if not sel:
                    continue
                by = {(r["runner"], r.get("mode"), r.get("planes")): r for r in sel}
                ort = by[("ort", None, None)][stat + "us_per_step"]
                npy = by[("numpy", None, None)]
                cells_txt = [f"{by[('bitplane', m, n)][stat + 'speed_vs_ort']:.2f}x"
                             for m in modes for n in planes]
                out.append(f"| {cell} | {batch} | {hidden} | {ort:.1f} | "
                           f"{npy[stat + 'us_per_step']:.1f} µs "
                           f"({npy[stat + 'speed_vs_ort']:.2f}x) | "
                           + " | ".join(cells_txt) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
