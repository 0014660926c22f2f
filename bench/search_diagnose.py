"""What limits bitplane-search on the char models (docs/precision-plans.md):

1. uniform plans on the searched and the confirmation characters;
2. per-gate sensitivity: from uniform 4, one gate of one matrix (or the
   read-out) at another count, the metric change against the bytes saved;
3. the metric's noise: per-stream differences between plans (the streams
   are independent), mean and standard error;
4. every per-operator plan (input, recurrent, read-out; 8^3) evaluated, so
   the search's per-operator front can be checked against the exact one;
5. a greedy descent over the per-gate genes from uniform 5 (lower the gene
   that costs the least metric per byte saved), a second opinion on the
   front's shape near uniform 4.

    python bench/search_diagnose.py --model char-gru --threads 2
"""

import argparse
import itertools
import sys
import time

import numpy as np

from bitplane import models as M
from bitplane import search
from bitplane._search_run import Evaluator, pareto_front


class _Quiet:
    def set_postfix_str(self, s):
        pass

    def update(self, n):
        pass


def evaluator(model, granularity, extra):
    args = search.parse_args(["--model", model, "--granularity", granularity, "--quiet"] +
                             extra)
    return Evaluator(args, _Quiet())


def stream_bpc(ev, genes, confirm=False):
    """bpc of each independent stream (a plan's per-stream metric)."""
    wl = ev.confirm_wl if confirm else ev.wl
    logits = wl.forward(ev.planned_model(genes), None, ev.args.act_bits).astype(np.float64)
    m = logits.max(axis=-1, keepdims=True)
    logz = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))
    picked = np.take_along_axis(logits, wl.targets[..., None], axis=-1)[..., 0]
    return ((logz - picked) / np.log(2.0)).mean(axis=0)  # (streams,)


def scored(ev, genes):
    r = ev.score(genes)
    ev.confirm(r)
    return r


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="char-gru")
    p.add_argument("--threads", default="2")
    p.add_argument("--tokens", default="4096")
    p.add_argument("--skip-exhaustive", action="store_true")
    a = p.parse_args()
    extra = ["--threads", a.threads, "--tokens", a.tokens]
    t0 = time.perf_counter()
    ev = evaluator(a.model, "gate", extra)
    bits = ev.args.bits
    print(f"{a.model}: {ev.wl.describe}; genes {ev.gene_names}")
    uni = {n: scored(ev, [n] * len(ev.gene_names)) for n in range(1, bits + 1)}
    base = uni[4]
    print("\n## uniform plans")
    for n, r in uni.items():
        print(f"uniform {n}: bpc {r['metric']:.4f} next {r['confirm_metric']:.4f} bytes "
              f"{r['weight_bytes']} ({r['weight_bytes'] / base['weight_bytes']:.3f})")

    print("\n## one gene changed from uniform 4: d bpc (searched, next), bytes vs uniform 4")
    rows = []
    for i, name in enumerate(ev.gene_names):
        for v in (2, 3, 5):
            g = [4] * len(ev.gene_names)
            g[i] = v
            r = scored(ev, g)
            d, dc = r["metric"] - base["metric"], r["confirm_metric"] - base["confirm_metric"]
            saved = 1 - r["weight_bytes"] / base["weight_bytes"]
            rows.append((name, v, d, dc, saved))
            print(f"{name:22s} {v}: d bpc {d:+.4f} next {dc:+.4f}  bytes saved "
                  f"{100 * saved:+.1f} %")
    print("\nat 3 planes, by d bpc per byte saved (searched):")
    for name, v, d, dc, saved in sorted((r for r in rows if r[1] == 3),
                                        key=lambda r: r[2] / r[4]):
        print(f"  {name:22s} {d / (100 * saved):+.5f} bpc per % of bytes  "
              f"(next {dc / (100 * saved):+.5f})")

    print("\n## noise: per-stream differences against uniform 4 (16 streams)")
    s4, c4 = stream_bpc(ev, [4] * len(ev.gene_names)), stream_bpc(ev, [4] * len(ev.gene_names),
                                                                  True)
    for label, g in [("uniform 3", [3] * len(ev.gene_names)),
                     ("uniform 5", [5] * len(ev.gene_names))] + [
            (f"{name} at 3", [3 if j == i else 4 for j in range(len(ev.gene_names))])
            for i, name in enumerate(ev.gene_names)]:
        for tag, base_s, conf in (("searched", s4, False), ("next", c4, True)):
            d = stream_bpc(ev, g, conf) - base_s
            se = d.std(ddof=1) / np.sqrt(d.size)
            print(f"{label:24s} {tag:8s} mean {d.mean():+.4f} se {se:.4f}"
                  f"  streams worse {int((d > 0).sum())}/{d.size}")

    print("\n## greedy descent over the per-gate genes from uniform 5")
    g = [5] * len(ev.gene_names)
    path = [scored(ev, g)]
    while True:
        best = None
        cur = path[-1]
        for i in range(len(g)):
            if g[i] == 1:
                continue
            t = list(g)
            t[i] -= 1
            r = scored(ev, t)
            saved = cur["weight_bytes"] - r["weight_bytes"]
            cost = (r["metric"] - cur["metric"]) / saved
            if best is None or cost < best[0]:
                best = (cost, t, r)
        if best is None or best[2]["weight_bytes"] < 0.6 * base["weight_bytes"]:
            break
        g = best[1]
        path.append(best[2])
    for r in path:
        print(f"bytes {r['weight_bytes'] / base['weight_bytes']:.3f} bpc {r['metric']:.4f} "
              f"next {r['confirm_metric']:.4f} genes {list(r['genes'])}")
    print(f"gate evaluations so far: {len(ev.cache)} distinct plans, "
          f"{time.perf_counter() - t0:.0f} s")

    if a.skip_exhaustive:
        return 0
    print("\n## every per-operator plan (exhaustive)")
    op = evaluator(a.model, "operator", extra)
    t1 = time.perf_counter()
    results = [op.score(list(g)) for g in itertools.product(range(1, bits + 1),
                                                            repeat=len(op.gene_names))]
    front = pareto_front(op, results)
    print(f"{len(results)} plans in {time.perf_counter() - t1:.0f} s; front near uniform 4:")
    b4 = op.score([4] * len(op.gene_names))
    for r in front:
        f = r["weight_bytes"] / b4["weight_bytes"]
        if 0.6 <= f <= 1.1:
            op.confirm(r)
            print(f"bytes {f:.3f} bpc {r['metric']:.4f} next {r['confirm_metric']:.4f} "
                  f"genes {list(r['genes'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
