"""The work behind bitplane-search (see search.py for the command line)."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import __version__
from . import models as M
from . import plan as P
from ._bitplane import Context, Error, version
from ._search_scores import op_scores
from .row_planes import row_planes_from_scores
from ._sweep_run import Workload, machine_info, time_forward

DEFINITIONS = {
    "metric": "as bitplane-sweep: digits/MLP top-1 accuracy (%) on the held-out test set; char "
              "models bits per character over the first --tokens held-out characters in "
              "--streams independent streams; Linear stacks without labels the relative "
              "output error against fp32",
    "weight_bytes": "weight bytes one forward step reads, every matrix once: per matrix, "
                    "bp_matrix_bytes_read at its planes (the bit slabs its rows use, rows in "
                    "groups of 16 by columns rounded up to 64 bits, 4 bytes of coefficient "
                    "per row and plane used, one byte of group multiplier per row and group), "
                    "the CPU layout of bp_abi.h",
    "row_class_genes": "--granularity row-class: per matrix a budget (mean planes per row, "
                       "in quarter planes) and a number of classes (1..--max-classes); the "
                       "matrix's rows are ranked by --scores importance scores and split "
                       "into classes by bitplane.row_planes_from_scores (evenly spaced "
                       "counts around the budget), and the matrix is quantized with those "
                       "per-row plane counts",
    "gate_genes": "--granularity gate: one plane count per gate (PyTorch order: LSTM i f g o, "
                  "GRU r z n) of every LSTM/GRU matrix, whose layers are built with one "
                  "matrix per gate (split_gates), and one per Linear matrix",
    "latency_ms": "median wall time of one forward pass over the evaluation batch at that "
                  "plan (latency objective only), after one warm-up pass",
    "front": "plans no other evaluated plan (mixed or uniform) beats in both objectives; "
             "of plans with equal objectives the one with the smallest plane counts is kept",
    "confirmed_plan": "char models: the front's cheapest plan whose metric is no worse than "
                      "uniform --match-planes on the searched and on the next "
                      "--confirm-tokens characters",
    "confirm_metric": "char models: the metric on the next --confirm-tokens held-out "
                      "characters after the searched ones (same streams layout), which the "
                      "search never saw: a check of the front chosen on the first ones",
    "uniform": "every matrix at the same plane count n, evaluated in the same run",
}


class Evaluator:
    """Builds the model once and scores plans (plane counts per gene), with a
    cache: a plan's metric and bytes do not change within a run."""

    def __init__(self, args, progress):
        self.args, self.progress = args, progress
        data = M.read(args.model)
        self.data = data
        sweep_args = argparse.Namespace(tokens=args.tokens, streams=args.streams,
                                        inputs=args.inputs, activation=args.activation)
        self.wl = wl = Workload(data, sweep_args)
        fp32_model = wl.build(fp32=True)
        self.ref = wl.forward(fp32_model)
        self.fp32_metric = wl.metric(self.ref, self.ref)
        # Char models: the next held-out characters, never seen by the search,
        # re-score the front and the uniform plans.
        self.confirm_wl = None
        if wl.kind == "rnn" and args.confirm_tokens:
            rest = data.arrays["test_text"][wl.inputs.size + wl.inputs.shape[1]:]
            if len(rest) < args.confirm_tokens:
                raise ValueError(f"--confirm-tokens {args.confirm_tokens}: only {len(rest)} "
                                 "held-out characters follow the searched ones")
            held = dataclasses.replace(data, arrays={**data.arrays, "test_text": rest})
            self.confirm_wl = Workload(held, argparse.Namespace(
                **{**vars(sweep_args), "tokens": args.confirm_tokens}))
            self.confirm_ref = self.confirm_wl.forward(fp32_model)
            self.confirm_fp32 = self.confirm_wl.metric(self.confirm_ref, self.confirm_ref)
        self.ctx = Context(backend="cpu", threads=args.threads)
        # Per-gate genes: the LSTM/GRU layers hold one matrix per gate, so
        # each gate's product reads its own planes (same results at equal
        # counts as fused gates).
        self.split_gates = args.granularity == "gate" and wl.kind == "rnn"
        self.model = wl.build(bits=args.bits, method=args.quantizer, clip=args.clip,
                              context=self.ctx,
                              **({"split_gates": True} if self.split_gates else {}))
        self.layers = P.describe(self.model)
        self.ops = [(layer, op) for layer in self.layers for op in layer.operators]
        self.op_names = [layer.name if len(layer.operators) == 1 else
                         f"{layer.name}.{op.name}" for layer, op in self.ops]
        self.row_class = args.granularity == "row-class"
        if self.row_class:
            # Two genes per matrix: budget in quarter planes, and classes.
            self.gene_names = [f"{n}.{g}" for n in self.op_names for g in ("budget", "classes")]
            self.xl = [4, 1] * len(self.ops)
            self.xu = [4 * args.bits, args.max_classes] * len(self.ops)
            self.scores = op_scores(args.scores, self.data, wl, self.layers, args)
        elif args.granularity == "operator":
            self.gene_names = list(self.op_names)
            self.gene_of_op = list(range(len(self.ops)))
        elif args.granularity == "gate":
            # LSTM/GRU operators: one gene per gate (PyTorch order); a
            # Linear matrix: one gene.
            self.gene_names, self.gene_of_op = [], []
            for (layer, op), name in zip(self.ops, self.op_names):
                if layer.kind == "linear":
                    self.gene_of_op.append(len(self.gene_names))
                    self.gene_names.append(name)
                else:
                    letters = P.GATE_LETTERS[layer.kind]
                    self.gene_of_op.append(list(range(len(self.gene_names),
                                                      len(self.gene_names) + len(letters))))
                    self.gene_names += [f"{name}.{g}" for g in letters]
        else:
            self.gene_names = [layer.name for layer in self.layers]
            self.gene_of_op = [self.layers.index(layer) for layer, _ in self.ops]
        if not self.row_class:
            self.xl, self.xu = [1] * len(self.gene_names), [args.bits] * len(self.gene_names)
        self.cache: Dict[Tuple[int, ...], dict] = {}
        self.calls = 0

    @property
    def sign(self) -> float:
        """Objective 1 is minimized: accuracy enters negated."""
        return -1.0 if self.wl.higher_is_better else 1.0

    def uniform_genes(self, n: int) -> List[int]:
        """The genes of uniform n planes."""
        return [4 * n, 1] * len(self.ops) if self.row_class else [n] * len(self.gene_names)

    def uniform_n(self, r: dict) -> Optional[int]:
        """n when r is a uniform plan (every row of every matrix at n), else None."""
        for n in range(1, self.args.bits + 1):
            if tuple(self.uniform_genes(n)) == tuple(r["genes"]):
                return n
        if not self.row_class and len(set(r["genes"])) == 1:
            return int(r["genes"][0])
        return None

    def same_genes(self) -> List[List[int]]:
        """Row classes: every matrix with the same budget and class count."""
        return [[b, c] * len(self.ops) for b in range(4, 4 * self.args.bits + 1)
                for c in range(1, self.args.max_classes + 1)]

    def gene_strs(self, genes) -> List[str]:
        """Genes as the table shows them: a row-class budget in planes."""
        if not self.row_class:
            return [str(int(g)) for g in genes]
        return [f"{int(g) / 4:g}" if i % 2 == 0 else str(int(g)) for i, g in enumerate(genes)]

    def op_counts(self, genes) -> List[Optional[np.ndarray]]:
        """Per-row plane counts per matrix (None: every row at the matrix's planes)."""
        if not self.row_class:
            return [None] * len(self.ops)
        out = []
        for i, scores in enumerate(self.scores):
            budget, classes = int(genes[2 * i]) / 4.0, int(genes[2 * i + 1])
            out.append(row_planes_from_scores(scores, budget, classes, self.args.bits))
        return out

    def op_planes(self, genes) -> list:
        """Each matrix's planes: its count (per-gate genes: one per gate, an
        int where the gates agree), or with row classes its largest."""
        if self.row_class:
            return [int(c.max()) for c in self.op_counts(genes)]
        out = []
        for g in self.gene_of_op:
            if isinstance(g, list):
                counts = [int(genes[i]) for i in g]
                out.append(counts[0] if len(set(counts)) == 1 else counts)
            else:
                out.append(int(genes[g]))
        return out

    def op_mean_planes(self, genes) -> List[float]:
        if self.row_class:
            return [float(c.mean()) for c in self.op_counts(genes)]
        return [float(np.mean(p)) for p in self.op_planes(genes)]

    def make_plan(self, genes, reported=None) -> dict:
        a = self.args
        return P.make_plan(a.model, self.data.arch, self.layers, self.op_planes(genes),
                           bits=a.bits, method=a.quantizer, clip=a.clip, act_bits=a.act_bits,
                           activation=a.activation if self.wl.kind == "mlp" else None,
                           reported=reported, row_planes=self.op_counts(genes))

    def planned_model(self, genes):
        """The model with the plan for genes applied; with row classes it is
        quantized again with the plan's per-row counts."""
        plan = self.make_plan(genes)
        if self.row_class:
            counts = P.build_row_planes(plan)
            a = self.args
            self.model = self.wl.build(bits=a.bits, method=a.quantizer, clip=a.clip,
                                       context=self.ctx,
                                       **({} if counts is None else {"row_planes": counts}))
            self.layers = P.describe(self.model)
            self.ops = [(layer, op) for layer in self.layers for op in layer.operators]
        P.apply_plan(self.model, plan)
        return self.model

    def score(self, genes) -> dict:
        self.calls += 1
        key = tuple(int(g) for g in genes)
        hit = self.cache.get(key)
        if hit is None:
            self.progress.set_postfix_str(" ".join(f"{n}={p}" for n, p in
                                                   zip(self.gene_names, key)))
            model = self.planned_model(key)
            out = self.wl.forward(model, None, self.args.act_bits)
            hit = {"genes": key, "metric": self.wl.metric(out, self.ref),
                   "weight_bytes": sum(op.bytes(n) for (_, op), n in
                                       zip(self.ops, self.op_planes(key)))}
            if self.args.objective == "latency":
                fn = lambda: self.wl.forward(model, None, self.args.act_bits)  # noqa: E731
                samples = time_forward(fn, self.args.repeats, self.args.min_time)
                hit["latency_ms"] = 1e3 * statistics.median(samples)
            self.cache[key] = hit
        self.progress.update(1)
        return hit

    def confirm(self, r: dict) -> None:
        """Add the plan's metric on the confirmation characters to r."""
        if self.confirm_wl is not None and "confirm_metric" not in r:
            model = self.planned_model(r["genes"])
            out = self.confirm_wl.forward(model, None, self.args.act_bits)
            r["confirm_metric"] = self.confirm_wl.metric(out, self.confirm_ref)

    def objectives(self, r: dict) -> Tuple[float, float]:
        cost = r["latency_ms"] if self.args.objective == "latency" else r["weight_bytes"]
        return self.sign * r["metric"], float(cost)


def _search(ev: Evaluator, args) -> dict:
    """NSGA-II over integer plane counts; the initial population holds the
    uniform plans, then the row-class grid's best or the descent's path,
    the rest drawn from the seed."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair

    n_var = len(ev.gene_names)
    xl, xu = np.array(ev.xl), np.array(ev.xu)

    class PlaneProblem(Problem):
        def __init__(self):
            super().__init__(n_var=n_var, n_obj=2, xl=xl, xu=xu, vtype=int)

        def _evaluate(self, X, out, *a, **kw):
            genes = np.clip(np.rint(X), xl, xu).astype(int)
            out["F"] = np.array([ev.objectives(ev.score(g)) for g in genes])

    rng = np.random.default_rng(args.seed)
    seeds = [ev.uniform_genes(n) for n in range(1, args.bits + 1)]
    if ev.row_class:
        # Row classes: every matrix at the same budget and class count, for
        # every budget and count, is evaluated first (the row-class analogue
        # of the uniform plans, cheap next to the search); the non-dominated
        # ones join the initial population.
        grid = [ev.score(g)["genes"] for g in ev.same_genes()]
        best = pareto_front(ev, [ev.cache[tuple(g)] for g in grid])
        seeds += [list(r["genes"]) for r in best if list(r["genes"]) not in seeds]
    elif args.objective == "bytes" and len(seeds) < args.pop:
        # Plane-count genes: a greedy descent from uniform n + 1 joins the
        # initial population (without it, 25 generations of 32 with per-gate
        # genes on the char GRU stopped at 1.3 % fewer bytes than uniform 4
        # at its metric, where the descent's path has 3.1 %).
        seeds += [g for g in descent(ev, args) if g not in seeds]
    seeds = seeds[:args.pop]
    x0 = np.array(seeds + rng.integers(xl, xu + 1, (args.pop - len(seeds), n_var)).tolist(),
                  float)
    algo = NSGA2(pop_size=args.pop, sampling=x0,
                 crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                 eliminate_duplicates=True)
    algo.setup(PlaneProblem(), termination=("n_gen", args.generations), seed=args.seed,
               verbose=False)
    started, generations, stopped, exhausted = time.perf_counter(), 0, False, False
    # The budget is checked after each generation, so at least one always
    # runs (the first is the seeded population, whose uniform plans are
    # already cached and can take well under a millisecond).
    while algo.has_next():
        # Every plan evaluated: the front is exact, and pymoo would only
        # spin looking for offspring that are not duplicates.
        if len(ev.cache) >= int(np.prod((xu - xl + 1).astype(float))):
            exhausted = True
            break
        algo.next()
        generations += 1
        if (args.time_budget and algo.has_next()
                and time.perf_counter() - started > args.time_budget):
            stopped = True
            break
    return {"generations": generations, "stopped_by_time_budget": stopped,
            "every_plan_evaluated": exhausted,
            "search_seconds": time.perf_counter() - started}


def descent(ev: Evaluator, args) -> List[List[int]]:
    """Greedy descent over plane-count genes: from uniform --match-planes + 1,
    lower by one plane the gene that raises the metric least per weight
    byte saved, until the plan reads fewer bytes than uniform
    --match-planes - 1. Returns the path's plans (genes), first to last;
    every step evaluates each gene's neighbour (cached)."""
    top = min(args.bits, args.match_planes + 1)
    floor = ev.score(ev.uniform_genes(max(1, args.match_planes - 1)))["weight_bytes"]
    genes = ev.uniform_genes(top)
    path = [list(genes)]
    cur = ev.score(genes)
    while cur["weight_bytes"] >= floor:
        best = None
        for i in range(len(genes)):
            if genes[i] <= ev.xl[i]:
                continue
            trial = list(genes)
            trial[i] -= 1
            r = ev.score(trial)
            saved = cur["weight_bytes"] - r["weight_bytes"]
            if saved <= 0:
                continue
            rate = ev.sign * (r["metric"] - cur["metric"]) / saved
            if best is None or rate < best[0]:
                best = (rate, trial, r)
        if best is None:
            break
        _, genes, cur = best
        path.append(list(genes))
    return path


def pareto_front(ev: Evaluator, results: List[dict]) -> List[dict]:
    """Non-dominated results (both objectives minimized), one per objective
    pair, sorted by cost."""
    best: Dict[Tuple[float, float], dict] = {}
    for r in sorted(results, key=lambda r: r["genes"]):
        best.setdefault(ev.objectives(r), r)
    pts = list(best.items())
    front = [r for f, r in pts
             if not any(g[0] <= f[0] and g[1] <= f[1] and g != f for g, _ in pts)]
    return sorted(front, key=lambda r: (ev.objectives(r)[1], ev.objectives(r)[0]))


def _no_worse(ev: Evaluator, a: float, b: float) -> bool:
    return ev.sign * a <= ev.sign * b


# ---- reporting -------------------------------------------------------------------


def _fmt(ev: Evaluator, v: float) -> str:
    return f"{v:.2f}" if ev.wl.metric_name == "accuracy" else f"{v:.4f}"


def format_table(ev: Evaluator, rows: List[Tuple[str, dict]], base_bytes: int) -> str:
    lat = ev.args.objective == "latency"
    conf = ev.confirm_wl is not None
    head = ["plan", ev.wl.metric_name] + ([f"{ev.wl.metric_name} (next {ev.args.confirm_tokens})"]
                                          if conf else []) + [
        "weight bytes", "vs uniform " + str(ev.args.match_planes)] + (
        ["latency ms"] if lat else []) + ev.gene_names
    lines = []
    for label, r in rows:
        lines.append([label, _fmt(ev, r["metric"])] + (
            [_fmt(ev, r["confirm_metric"])] if conf else []) + [str(r["weight_bytes"]),
                      f"{r['weight_bytes'] / base_bytes:.3f}"] +
                     ([f"{r['latency_ms']:.3f}"] if lat else []) + ev.gene_strs(r["genes"]))
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for l in lines:
        out.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                     for i, (c, w) in enumerate(zip(l, widths))) + " |")
    return "\n".join(out)


def plot(ev: Evaluator, name: str, front: List[dict], uniform: List[dict],
         evaluated: List[dict], chosen: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = ev.args.objective == "latency"
    key, scale = ("latency_ms", 1.0) if lat else ("weight_bytes", 1 / 1024)
    xlabel = ("median latency per forward pass (ms)" if lat else
              "weight bytes read per forward step (KiB)")
    fig, ax = plt.subplots(figsize=(6.8, 4.6), dpi=110)
    ax.scatter([r[key] * scale for r in evaluated], [r["metric"] for r in evaluated], s=8,
               color="0.75", label=f"evaluated plans ({len(evaluated)})", zorder=1)
    ax.plot([r[key] * scale for r in uniform], [r["metric"] for r in uniform], marker="s",
            color="tab:blue", label="uniform planes", zorder=2)
    for r in uniform:
        ax.annotate(str(ev.uniform_n(r)), (r[key] * scale, r["metric"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3), color="tab:blue")
    ax.step([r[key] * scale for r in front], [r["metric"] for r in front], where="post",
            marker="o", color="tab:red", label="Pareto front (mixed and uniform)", zorder=3)
    ax.scatter([chosen[key] * scale], [chosen["metric"]], s=120, facecolors="none",
               edgecolors="black", label="plan.json", zorder=4)
    ax.axhline(ev.fp32_metric, color="black", linestyle="--", linewidth=1, label="fp32")
    ax.set_xlabel(xlabel)
    unit = f" ({ev.wl.metric_unit})" if ev.wl.metric_unit else ""
    ax.set_ylabel(ev.wl.metric_name + unit)
    ys = [r["metric"] for r in front + uniform if ev.uniform_n(r) != 1]
    if ys:  # keep the interesting range in view; 1-plane plans can be far off
        lo, hi = min(ys + [ev.fp32_metric]), max(ys + [ev.fp32_metric])
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_title(f"{name}: mixed-precision plans vs uniform planes")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _row(ev: Evaluator, r: dict, base: dict, kind: str) -> dict:
    row = {"set": kind, "metric_name": ev.wl.metric_name, "metric": r["metric"],
           "weight_bytes": r["weight_bytes"],
           "bytes_vs_uniform": r["weight_bytes"] / base["weight_bytes"],
           "latency_ms": r.get("latency_ms", ""),
           "confirm_metric": r.get("confirm_metric", ""),
           "uniform_planes": ev.uniform_n(r) or ""}
    if ev.row_class:  # mean planes per row of each matrix
        row.update({n: round(p, 4) for n, p in zip(ev.op_names, ev.op_mean_planes(r["genes"]))})
    elif ev.split_gates:  # planes per gate of each LSTM/GRU matrix
        row.update({n: int(g) for n, g in zip(ev.gene_names, r["genes"])})
    else:
        row.update({n: p for n, p in zip(ev.op_names, ev.op_planes(r["genes"]))})
    return row


def run(args) -> int:
    from tqdm import tqdm

    started = time.perf_counter()
    out_dir = Path(args.out)
    total = args.bits + args.pop * args.generations + (
        (4 * args.bits - 3) * args.max_classes if args.granularity == "row-class" else 0)
    with tqdm(total=total, desc="bitplane-search", unit="plan", disable=args.quiet,
              file=sys.stderr, dynamic_ncols=True) as progress:
        try:
            ev = Evaluator(args, progress)
        except (FileNotFoundError, ValueError, ImportError, Error) as e:
            progress.close()
            where = "" if Path(args.model).name in str(e) else f"{args.model}: "
            print(f"bitplane-search: {where}{e}", file=sys.stderr)
            return 2
        except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
            # numpy's and zipfile's own words for a truncated or foreign file
            progress.close()
            print(f"bitplane-search: {args.model}: not a readable model file "
                  f"({type(e).__name__}: {e})", file=sys.stderr)
            return 2
        uniform = [ev.score(ev.uniform_genes(n)) for n in range(1, args.bits + 1)]
        info = _search(ev, args)
    evaluated = sorted(ev.cache.values(), key=lambda r: r["genes"])
    front = pareto_front(ev, evaluated)
    for r in uniform + front:
        ev.confirm(r)
    base = uniform[args.match_planes - 1]
    cost = "latency_ms" if args.objective == "latency" else "weight_bytes"
    matching = [r for r in front if _no_worse(ev, r["metric"], base["metric"])]
    chosen = min(matching, key=lambda r: (r[cost], ev.sign * r["metric"]))
    dominated = [ev.uniform_n(u) for u in uniform if any(
        _no_worse(ev, r["metric"], u["metric"]) and r[cost] <= u[cost] and
        (r["metric"] != u["metric"] or r[cost] != u[cost]) for r in front)]
    # The fairer baseline: the cheapest uniform plan whose metric is no worse
    # (on a model where fewer uniform planes already match, that is not n).
    cheapest = min((u for u in uniform if _no_worse(ev, u["metric"], base["metric"])),
                   key=lambda u: u["weight_bytes"])
    summary = {
        "match_planes": args.match_planes,
        "uniform_metric": base["metric"], "uniform_weight_bytes": base["weight_bytes"],
        "plan_metric": chosen["metric"], "plan_weight_bytes": chosen["weight_bytes"],
        "weight_bytes_saved": 1.0 - chosen["weight_bytes"] / base["weight_bytes"],
        "cheapest_uniform_planes": ev.uniform_n(cheapest),
        "cheapest_uniform_weight_bytes": cheapest["weight_bytes"],
        "weight_bytes_saved_vs_cheapest_uniform":
            1.0 - chosen["weight_bytes"] / cheapest["weight_bytes"],
        "uniform_plans_dominated": dominated,
    }
    if ev.confirm_wl is not None:
        # The front's cheapest plan no worse than uniform n on the searched
        # and on the unseen characters (uniform n itself when none is): the
        # figure that survives the selection among hundreds of plans on the
        # searched ones.
        both = min((r for r in front + [base] if _no_worse(ev, r["metric"], base["metric"]) and
                    _no_worse(ev, r["confirm_metric"], base["confirm_metric"])),
                   key=lambda r: (r[cost], ev.sign * r["metric"]))
        summary["confirm"] = {
            "workload": f"{ev.confirm_wl.describe}, after the "
                        f"{ev.wl.inputs.size + ev.wl.inputs.shape[1]} searched ones",
            "fp32_metric": ev.confirm_fp32, "uniform_metric": base["confirm_metric"],
            "plan_metric": chosen["confirm_metric"],
            "cheapest_uniform_metric": cheapest["confirm_metric"],
            "confirmed_plan": {"metric": both["metric"], "confirm_metric": both["confirm_metric"],
                               "weight_bytes": both["weight_bytes"],
                               "weight_bytes_saved": 1.0 - both["weight_bytes"] /
                               base["weight_bytes"],
                               "planes": dict(zip(ev.gene_names,
                                                  ev.gene_strs(both["genes"])))}}
    if args.objective == "latency":
        summary.update(uniform_latency_ms=base["latency_ms"], plan_latency_ms=chosen["latency_ms"])

    try:
        return _write(ev, args, out_dir, started, info, uniform, evaluated, front, base,
                      chosen, cheapest, summary)
    except OSError as e:
        print(f"bitplane-search: cannot write the results: {e}", file=sys.stderr)
        return 2


def _write(ev, args, out_dir, started, info, uniform, evaluated, front, base, chosen,
           cheapest, summary) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = ev.data.name
    reported = {"metric_name": ev.wl.metric_name, "metric": chosen["metric"],
                "weight_bytes": chosen["weight_bytes"], "workload": ev.wl.describe,
                "fp32_metric": ev.fp32_metric,
                f"uniform_{args.match_planes}_metric": base["metric"],
                f"uniform_{args.match_planes}_weight_bytes": base["weight_bytes"],
                "tokens": args.tokens, "streams": args.streams, "inputs": args.inputs}
    if "latency_ms" in chosen:
        reported["latency_ms"] = chosen["latency_ms"]
    plan = ev.make_plan(chosen["genes"], reported)
    P.write_plan(plan, out_dir / "plan.json")

    with open(out_dir / "pareto.csv", "w", newline="") as f:
        rows = [_row(ev, r, base, "front") for r in front] + [
            _row(ev, r, base, "uniform") for r in uniform]
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    png = out_dir / "pareto.png"
    if not args.no_plot:
        plot(ev, name, front, uniform, evaluated, chosen, png)

    def entry(r):
        e = {k: v for k, v in r.items() if k != "genes"}
        e["planes"] = dict(zip(ev.op_names, ev.op_planes(r["genes"])))
        if ev.row_class:  # rows per plane count, not the rows themselves
            e["genes"] = dict(zip(ev.gene_names, (int(g) for g in r["genes"])))
            e["mean_planes"] = dict(zip(ev.op_names, ev.op_mean_planes(r["genes"])))
            e["rows_per_count"] = {
                n: {str(int(c)): int(k) for c, k in zip(*np.unique(counts, return_counts=True))}
                for n, counts in zip(ev.op_names, ev.op_counts(r["genes"]))}
        else:
            e["plan"] = ev.make_plan(r["genes"])
        return e

    report = {
        "tool": "bitplane-search", "package_version": __version__, "library_version": version(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "args": vars(args), "definitions": DEFINITIONS,
        "model": {"name": name, "path": str(ev.data.path), "arch": ev.data.arch,
                  "workload": ev.wl.describe, "metric_name": ev.wl.metric_name,
                  "fp32_metric": ev.fp32_metric},
        "genes": ev.gene_names, "operators": ev.op_names,
        "search": {**info, "evaluations": ev.calls, "distinct_plans": len(ev.cache)},
        "summary": summary, "front": [entry(r) for r in front],
        "uniform": [entry(r) for r in uniform], "wall_seconds": None,
    }
    report["wall_seconds"] = time.perf_counter() - started
    with open(out_dir / "pareto.json", "w") as f:
        json.dump(report, f, indent=1)

    print(f"\n{name} ({ev.data.arch}): {ev.wl.describe}; {ev.wl.metric_name} fp32 "
          f"{_fmt(ev, ev.fp32_metric)}; {info['generations']} generations of {args.pop}, "
          f"{len(ev.cache)} distinct plans evaluated"
          + (" (stopped by --time-budget)" if info["stopped_by_time_budget"] else "")
          + (" (every plan: the front is exact)" if info["every_plan_evaluated"] else ""))
    labelled = [(f"uniform {ev.uniform_n(r)}", r) for r in uniform] + [
        ("front" + (" *" if r is chosen else ""), r) for r in front]
    print(format_table(ev, labelled, base["weight_bytes"]))
    print(f"* plan.json: {ev.wl.metric_name} {_fmt(ev, chosen['metric'])} (uniform "
          f"{args.match_planes}: {_fmt(ev, base['metric'])}) reading "
          f"{chosen['weight_bytes']} weight bytes, {100 * summary['weight_bytes_saved']:.1f} % "
          f"fewer than uniform {args.match_planes} ({base['weight_bytes']})"
          + ("" if cheapest is base else
             f", {100 * summary['weight_bytes_saved_vs_cheapest_uniform']:.1f} % fewer than "
             f"uniform {ev.uniform_n(cheapest)}, the cheapest uniform plan no worse"))
    if "confirm" in summary:
        c = summary["confirm"]
        print(f"  on the next {args.confirm_tokens} held-out characters (not searched): plan "
              f"{_fmt(ev, c['plan_metric'])}, uniform {args.match_planes} "
              f"{_fmt(ev, c['uniform_metric'])}, fp32 {_fmt(ev, c['fp32_metric'])}")
        b = c["confirmed_plan"]
        print(f"  the front's cheapest plan no worse than uniform {args.match_planes} on both: "
              f"{ev.wl.metric_name} {_fmt(ev, b['metric'])} / {_fmt(ev, b['confirm_metric'])} "
              f"reading {b['weight_bytes']} weight bytes, "
              f"{100 * b['weight_bytes_saved']:.1f} % fewer than uniform {args.match_planes}")
    written = [out_dir / "pareto.csv", out_dir / "pareto.json", out_dir / "plan.json"] + (
        [] if args.no_plot else [png])
    print("wrote " + ", ".join(str(p) for p in written))
    print(f"total {report['wall_seconds']:.1f} s")
    return 0
