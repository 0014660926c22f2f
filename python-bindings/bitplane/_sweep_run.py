"""The work behind bitplane-sweep (see sweep.py for the command line)."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from . import __version__
from . import models as M
from ._bitplane import Context, UnsupportedError, version

DEFINITIONS = {
    "metric": "digits/MLP: top-1 accuracy (%) on the held-out test set; char models: bits per "
              "character, mean of -log2 p(next char) over the evaluated characters; Linear "
              "stacks without labels: the relative output error",
    "rel_error": "||y - y_fp32|| / ||y_fp32|| over the final outputs (logits) of the whole "
                 "evaluation batch",
    "weight_error": "relative weight error of the whole model at that many planes: "
                    "sqrt(sum_l ||W_l - W_l,n||^2 / sum_l ||W_l||^2), from the recorded "
                    "per-prefix errors",
    "latency_ms": "median wall time of one forward pass over the evaluation batch (MLP: the "
                  "whole test set as one batch; char models: all streams, every step), after "
                  "one warm-up pass",
    "fp32_ms": "the same forward pass with every matrix product done by NumPy float32 "
               "matmul (OpenBLAS sgemm) and the same elementwise code, measured in the same run",
    "speedup": "fp32_ms / latency_ms",
}


# ---- workloads ---------------------------------------------------------------


class Workload:
    """A model's evaluation data, forward pass and metric."""

    def __init__(self, data: M.ModelData, args):
        self.data, self.args = data, args
        a = data.arrays
        if data.arch in ("char_lstm", "char_gru"):
            self.kind = "rnn"
            self.inputs, self.targets = M.rnn_chunks(a["test_text"], args.tokens, args.streams)
            self.metric_name, self.metric_unit = "bpc", "bits/char"
            steps, streams = self.inputs.shape
            self.describe = (f"{steps * streams} next-character predictions: the first "
                             f"{(steps + 1) * streams} held-out characters in {streams} "
                             f"independent streams of {steps + 1}, zero initial state each")
            self.batch = streams
            return
        self.kind = "mlp"
        params = M.linear_params(data)
        n_in = params[0][0].shape[1]
        self.labels = None
        if args.inputs:
            self.x = np.ascontiguousarray(np.load(args.inputs, allow_pickle=False), np.float32)
            source = f"inputs from {args.inputs}"
        elif "test_x" in a:
            self.x = np.ascontiguousarray(a["test_x"], np.float32)
            self.labels = np.asarray(a["test_y"]) if "test_y" in a else None
            source = "the file's test_x"
        else:
            self.x = np.random.default_rng(0).standard_normal((256, n_in)).astype(np.float32)
            source = "256 random N(0, 1) inputs (seed 0)"
        if self.x.ndim != 2 or self.x.shape[1] != n_in:
            raise ValueError(f"inputs must have shape (n, {n_in}), got {self.x.shape}")
        if self.labels is not None:
            self.metric_name, self.metric_unit = "accuracy", "%"
        else:
            self.metric_name, self.metric_unit = "rel_error", ""
        self.describe = f"{self.x.shape[0]} samples ({source}) as one batch"
        self.batch = self.x.shape[0]

    @property
    def higher_is_better(self) -> bool:
        return self.metric_name == "accuracy"

    def build(self, **kwargs):
        if self.kind == "mlp":
            kwargs["activation"] = self.args.activation
        return M.build(self.data, **kwargs)

    def forward(self, model, planes=None, act_bits=None) -> np.ndarray:
        if self.kind == "rnn":
            return model.logits(self.inputs, planes=planes, act_bits=act_bits)
        return model(self.x, planes=planes, act_bits=act_bits)

    def metric(self, out: np.ndarray, ref: np.ndarray) -> float:
        if self.metric_name == "bpc":
            return M.bits_per_char(out, self.targets)
        if self.metric_name == "accuracy":
            return 100.0 * float(np.mean(np.argmax(out, axis=-1) == self.labels))
        return rel_error(out, ref)

    def delta(self, value: float, fp32: float) -> float:
        """Accuracy: points; bpc: percent of fp32; rel_error: the value itself."""
        if self.metric_name == "accuracy":
            return value - fp32
        if self.metric_name == "bpc":
            return 100.0 * (value - fp32) / fp32
        return value


def rel_error(y: np.ndarray, ref: np.ndarray) -> float:
    ref64 = ref.astype(np.float64)
    return float(np.linalg.norm(y.astype(np.float64) - ref64) / np.linalg.norm(ref64))


def matrices(model) -> list:
    if isinstance(model, M.CharRNN):
        return [w for layer in model.rnn for w in (layer.w_ih, layer.w_hh)] + [model.fc.matrix]
    return [layer.matrix for layer in model.layers]


def weight_error(mats, norms, planes: int) -> float:
    num = sum((m.prefix_error(planes) * n) ** 2 for m, n in zip(mats, norms))
    return float(np.sqrt(num / sum(n * n for n in norms)))


def time_forward(fn, repeats: int, min_time: float) -> List[float]:
    """Seconds per call: at least `repeats` calls and `min_time` seconds."""
    fn()  # warm-up
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or (time.perf_counter() - start < min_time
                                     and len(samples) < 100000):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


# ---- reporting ---------------------------------------------------------------


COLUMNS = ["model", "backend", "quantizer", "act_bits", "planes", "metric_name", "metric",
           "fp32_metric", "delta", "rel_error", "weight_error", "latency_ms", "fp32_ms",
           "speedup", "repeats", "kernel"]


def _fmt_metric(wl: Workload, v: float) -> str:
    return f"{v:.2f}" if wl.metric_name == "accuracy" else f"{v:.4f}"


def format_table(wl: Workload, fp32: dict, rows: List[dict]) -> str:
    unit = {"accuracy": "pt", "bpc": "%", "rel_error": ""}[wl.metric_name]
    head = ["backend", "quantizer", "act_bits", "planes", wl.metric_name,
            f"vs fp32 ({unit})" if unit else "vs fp32", "rel err", "latency ms", "speedup"]
    lines = [[r["backend"], r["quantizer"], str(r["act_bits"]), str(r["planes"]),
              _fmt_metric(wl, r["metric"]), f"{r['delta']:+.2f}" if unit else "",
              f"{r['rel_error']:.4f}", f"{r['latency_ms']:.3f}", f"{r['speedup']:.2f}x"]
             for r in rows]
    lines.insert(0, ["fp32 (numpy)", "-", "-", "-", _fmt_metric(wl, fp32["metric"]), "",
                     "0", f"{fp32['ms']:.3f}", "1.00x"])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for l in lines:
        out.append("| " + " | ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(l, widths))) + " |")
    return "\n".join(out)


def plot(wl: Workload, name: str, fp32: dict, rows: List[dict], out_dir: Path) -> List[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["backend"], r["quantizer"], r["act_bits"]), []).append(r)
    several_backends = len({r["backend"] for r in rows}) > 1
    files = []
    for what, key, ylabel in (
            ("metric", "metric", f"{wl.metric_name} ({wl.metric_unit})" if wl.metric_unit
             else wl.metric_name),
            ("latency", "latency_ms", "median latency per forward pass (ms)")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
        for (backend, quantizer, act_bits), rs in groups.items():
            rs = sorted(rs, key=lambda r: r["planes"])
            label = f"{quantizer}, act_bits {act_bits}"
            if several_backends:
                label = f"{backend}: {label}"
            ax.plot([r["planes"] for r in rs], [r[key] for r in rs], marker="o", label=label)
        base = fp32["metric"] if what == "metric" else fp32["ms"]
        ax.axhline(base, color="black", linestyle="--", linewidth=1, label="fp32 (NumPy/OpenBLAS)")
        ax.set_xlabel("weight planes")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["planes"] for r in rows}))
        if what == "latency":
            ax.set_ylim(bottom=0)
        ax.set_title(f"{name}: {'task metric' if what == 'metric' else 'latency'} vs planes")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}_{what}.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        pass
    info["openblas_num_threads"] = os.environ.get("OPENBLAS_NUM_THREADS", "default (all cores)")
    return info


# ---- the sweep -----------------------------------------------------------------


def sweep_model(name: str, args, progress) -> dict:
    data = M.read(name)
    wl = Workload(data, args)
    label = data.name
    fp32_model = wl.build(fp32=True)
    ref = wl.forward(fp32_model)
    fp32_metric = wl.metric(ref, ref)
    fp32_samples = time_forward(lambda: wl.forward(fp32_model), args.repeats, args.min_time)

    rows, skipped, quantize_s = [], [], {}
    configs = [(q, a, n) for q in args.quantizer for a in args.act_bits for n in args.planes]
    for backend in args.backend:
        try:
            ctx = Context(backend=backend, threads=args.threads,
                          **({"cpu_kernel": args.cpu_kernel} if backend == "cpu" else {}))
        except UnsupportedError as e:
            skipped.append({"backend": backend, "reason": str(e)})
            progress.write(f"{label}: backend '{backend}' skipped: {e}")
            progress.update(len(configs))
            continue
        for quantizer in args.quantizer:
            t0 = time.perf_counter()
            model = wl.build(bits=args.bits, method=quantizer, clip=args.clip, context=ctx)
            quantize_s[f"{backend}/{quantizer}"] = time.perf_counter() - t0
            mats = matrices(model)
            # prefix_error is relative to ||W|| of the full-precision weights.
            norms = [float(np.linalg.norm(d.w.astype(np.float64)))
                     for d in matrices(fp32_model)]
            for act_bits in args.act_bits:
                for planes in args.planes:
                    progress.set_postfix_str(f"{backend} {quantizer} a={act_bits} n={planes}")
                    out = wl.forward(model, planes, act_bits)
                    metric = wl.metric(out, ref)
                    samples = time_forward(lambda: wl.forward(model, planes, act_bits),
                                           args.repeats, args.min_time)
                    kernel = ""
                    if backend == "cpu":
                        kernel = ctx.cpu_kernel_name(act_bits=act_bits, cols=mats[0].cols,
                                                     batch=wl.batch)
                    rows.append({
                        "model": label, "backend": backend, "quantizer": quantizer,
                        "act_bits": act_bits, "planes": planes,
                        "metric_name": wl.metric_name, "metric": metric,
                        "fp32_metric": fp32_metric, "delta": wl.delta(metric, fp32_metric),
                        "rel_error": rel_error(out, ref),
                        "weight_error": weight_error(mats, norms, planes),
                        "latency_ms": 1e3 * statistics.median(samples),
                        "repeats": len(samples), "kernel": kernel,
                    })
                    progress.update(1)
    # The baseline again after the sweep; its median pools both runs, so slow
    # drift of a shared machine does not favour either side.
    fp32_samples += time_forward(lambda: wl.forward(fp32_model), args.repeats, args.min_time)
    fp32_ms = 1e3 * statistics.median(fp32_samples)
    for r in rows:
        r["fp32_ms"] = fp32_ms
        r["speedup"] = fp32_ms / r["latency_ms"]
    fp32 = {"metric": fp32_metric, "ms": fp32_ms, "repeats": len(fp32_samples)}
    recorded = {k: data.scalar(k) for k in ("fp32_test_accuracy", "fp32_test_bpc",
                                             "fp32_test_bpc_first_4096") if k in data.arrays}
    return {"name": label, "path": str(data.path), "arch": data.arch, "workload": wl.describe,
            "metric_name": wl.metric_name, "fp32": fp32, "recorded_in_file": recorded,
            "meta": data.meta, "skipped_backends": skipped, "quantize_seconds": quantize_s,
            "rows": rows, "_wl": wl}


def run(args) -> int:
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for q in args.quantizer:
        if q not in ("uniform", "residual"):
            print(f"bitplane-sweep: unknown quantizer '{q}' (uniform, residual)", file=sys.stderr)
            return 2
    bad = [n for n in args.planes if not 1 <= n <= args.bits]
    if bad:
        print(f"bitplane-sweep: planes must be 1..{args.bits} (--bits), got {bad}",
              file=sys.stderr)
        return 2
    per_model = len(args.backend) * len(args.quantizer) * len(args.act_bits) * len(args.planes)
    results = []
    with tqdm(total=per_model * len(args.model), desc="bitplane-sweep", unit="config",
              disable=args.quiet, file=sys.stderr, dynamic_ncols=True) as progress:
        for name in args.model:
            try:
                results.append(sweep_model(name, args, progress))
            except (FileNotFoundError, ValueError, ImportError) as e:
                progress.close()
                print(f"bitplane-sweep: {e}", file=sys.stderr)
                return 2

    rows = [r for m in results for r in m["rows"]]
    with open(out_dir / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for m in results:
            w.writerow({"model": m["name"], "backend": "numpy", "quantizer": "fp32",
                        "act_bits": 32, "planes": 32, "metric_name": m["metric_name"],
                        "metric": m["fp32"]["metric"], "fp32_metric": m["fp32"]["metric"],
                        "delta": 0.0, "rel_error": 0.0, "weight_error": 0.0,
                        "latency_ms": m["fp32"]["ms"], "fp32_ms": m["fp32"]["ms"],
                        "speedup": 1.0, "repeats": m["fp32"]["repeats"], "kernel": "openblas"})
            for r in m["rows"]:
                w.writerow(r)
    pngs = []
    for m in results:
        if not args.no_plots and m["rows"]:
            pngs += plot(m["_wl"], m["name"], m["fp32"], m["rows"], out_dir)
    report = {
        "tool": "bitplane-sweep", "package_version": __version__, "library_version": version(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "args": {k: v for k, v in vars(args).items()},
        "definitions": DEFINITIONS,
        "models": [{k: v for k, v in m.items() if k not in ("rows", "_wl")} for m in results],
        "results": rows, "wall_seconds": None,
    }
    report["wall_seconds"] = time.perf_counter() - started
    with open(out_dir / "sweep.json", "w") as f:
        json.dump(report, f, indent=1)

    for m in results:
        wl = m["_wl"]
        print(f"\n{m['name']} ({m['arch']}): {wl.describe}; threads "
              f"{args.threads or os.cpu_count()}")
        if m["rows"]:
            print(format_table(wl, m["fp32"], m["rows"]))
        for s in m["skipped_backends"]:
            print(f"backend '{s['backend']}' skipped: {s['reason']}")
    print(f"\nwrote {out_dir / 'sweep.csv'}, {out_dir / 'sweep.json'}"
          + "".join(f", {p}" for p in pngs))
    print(f"total {report['wall_seconds']:.1f} s")
    return 0
