"""Mixed planes on the pretrained encoder all-MiniLM-L6-v2 by kind of Linear
layer (query, key, value, attention output, FFN in, FFN out; each gene sets
that kind in all 6 blocks), with a cheap proxy: a greedy descent from
uniform 5 (lower the kind that costs the least cosine per weight byte
saved) scored on the first --proxy of the sweep's held-out fortunes, until
the plan reads fewer bytes than uniform 3; then the path's plans between
uniform 3's and uniform 4's bytes, and uniform 3 and 4, re-scored on the
sweep's 64 fortunes and on the next 64 (never seen by the descent).

Metric: embedding cosine against fp32 (bitplane-sweep --model minilm),
quantizer defaults, no calibration; bytes: bp_matrix_bytes_read summed over
the 36 matrices. Needs the `minilm` extra and the weights package (README,
"The sweep").

    python bench/minilm_kind_search.py --threads 2
"""

import argparse
import time

import bitplane as bp
from bitplane import encoder as E
from bitplane._sweep_run import EncoderWorkload


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--proxy", type=int, default=16)
    a = p.parse_args()
    t0 = time.perf_counter()
    wl = EncoderWorkload(argparse.Namespace(sentences=128, calibration=0, max_tokens=128))
    ctx = bp.Context(backend="cpu", threads=a.threads)
    fp32 = wl.build(fp32=True)
    model = wl.build(context=ctx)
    full = wl.tokens
    sets = {"proxy": full.subset(range(a.proxy)), "sweep64": full.subset(range(64)),
            "next64": full.subset(range(64, 128))}
    refs = {k: fp32(t) for k, t in sets.items()}
    kinds = list(E.LINEAR_NAMES)
    # names are encoder.layer.<i>.<kind>; "output.dense" is also the tail of
    # "attention.output.dense", so compare the whole kind
    layers = {k: [lin for name, lin in model.linears.items() if name.split(".", 3)[3] == k]
              for k in kinds}
    assert sum(len(v) for v in layers.values()) == len(model.linears)
    cache = {}

    def score(genes, which="proxy"):
        key = (tuple(genes), which)
        if key not in cache:
            nbytes = 0
            for k, n in zip(kinds, genes):
                for lin in layers[k]:
                    lin.planes = n
                    nbytes += lin.matrix.bytes_read(n)
            out = model(sets[which])
            cos = wl.metric(out, refs[which])
            cache[key] = (cos, nbytes)
        return cache[key]

    base = score([4] * 6)[1]
    floor = score([3] * 6)[1]
    genes = [5] * 6
    path = [list(genes)]
    cos, nbytes = score(genes)
    while nbytes >= floor:
        best = None
        for i in range(6):
            if genes[i] == 1:
                continue
            t = list(genes)
            t[i] -= 1
            c, b = score(t)
            rate = (cos - c) / (nbytes - b)
            if best is None or rate < best[0]:
                best = (rate, t, c, b)
        _, genes, cos, nbytes = best
        path.append(list(genes))
        print(f"descent {genes} proxy cosine {cos:.4f} bytes {nbytes / base:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{len(cache)} proxy evaluations, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\n| plan ({' '.join(kinds)}) | cosine, {a.proxy} (proxy) | sweep's 64 | next 64 | "
          "weight bytes | vs uniform 4 |")
    print("|---|---|---|---|---|---|")
    check = [[n] * 6 for n in (3, 4)] + [g for g in path if floor <= score(g)[1] < base]
    for g in check:
        c, b = score(g)
        label = f"uniform {g[0]}" if len(set(g)) == 1 else " ".join(map(str, g))
        print(f"| {label} | {c:.4f} | {score(g, 'sweep64')[0]:.4f} | "
              f"{score(g, 'next64')[0]:.4f} | {b} | {b / base:.3f} |", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
