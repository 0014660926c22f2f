"""Summaries of bench/serve/run-loadtest.sh's records (JSON lines from
locustfile.py): the capacity probe, then the table, plot and bit-exact check.
Modes: planes 8 (count-bounded queue), 8-shed (SLO admission), 4, auto;
whichever have records. "sent req/s" is what the generator sent (below the
offered rate when its users were all waiting or it lacked CPU; "lag p99"
says how late requests left against their schedule), "served req/s" the
goodput (200 answers per second), "shed" the share of requests refused with
503 (of which "late": refused from the queue, when their batch would have
ended past the SLO), "served metric" the accuracy of the answers served. The summary line
names the load at which fixed 8 planes breaks the SLO and how far auto
holds it.

    analyze.py capacity probe.jsonl STEP_S
    analyze.py report OUT_DIR --capacity C --levels 0.5,1,... --step-s S --slo-ms T
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from bitplane.serve.batcher import LATE_PREFIX

MODES = ("8", "8-shed", "4", "auto")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def capacity(path, step_s):
    recs = [r for r in load(path) if r["status"] == 200]
    t0 = min(r["t"] for r in recs)
    steady = [r for r in recs if r["t"] >= t0 + 2.0]  # after the users ramped up
    span = max(r["t"] for r in steady) - (t0 + 2.0)
    return len(steady) / span


def bit_exact(recs, rows, model):
    from bitplane.serve.served import load as load_model
    m = load_model(model)
    x_all = np.ascontiguousarray(m.test_x, np.float32)
    checked = wrong = 0
    for r in recs:
        if "y" not in r:
            continue
        idx = (r["offset"] + np.arange(rows)) % len(x_all)
        ref = m.forward(np.ascontiguousarray(x_all[idx]), r["planes"], 8)
        got = np.array(r["y"], np.float32).reshape(ref.shape)
        checked += 1
        wrong += int(not np.array_equal(got.view(np.uint32), ref.view(np.uint32)))
    return checked, wrong


def _cores(cpu, mode, level, i):
    for key in ((mode, str(level)), (mode, f"{level:g}")):
        if key in cpu:
            return round(cpu[key][i], 2)
    return None


def report(args):
    out = Path(args.out)
    levels = [float(v) for v in args.levels.split(",")]
    rows_out, checks = [], {}
    # CPU cores locust and the server used during each step, over the window
    # from locust's first user to its end when recorded (the server idles
    # while locust starts), else over the whole locust run (start-up
    # included: locust's share an upper bound, the server's a lower one).
    cpu = {}
    if (out / "steps.jsonl").exists():
        for st in load(out / "steps.jsonl"):
            if "locust_steady_cpu_s" in st:  # the window in which requests flowed
                wall = st["locust_steady_wall_s"]
                locust = st["locust_steady_cpu_s"] / wall
            else:
                wall = st["wall_s"]
                locust = st["locust_cpu_s"] / wall
            cpu[(st["planes"], st["levels"])] = (locust, st["server_cpu_s"] / wall)
    for mode in MODES:
        path = out / f"planes-{mode}.jsonl"
        if not path.exists():
            continue
        recs = load(path)
        checks[mode] = bit_exact(recs, args.rows, args.model)
        for level in levels:
            step = [r for r in recs if r["level"] == level]
            ok = [r for r in step if r["status"] == 200]
            if not step:
                continue
            lat = np.array([r["latency_ms"] for r in ok]) if ok else np.array([np.nan])
            span = max(r["t"] for r in step) - min(r["t"] for r in step)
            lag = [r.get("lag_ms", 0.0) for r in step]
            statuses = {}
            for r in step:
                if r["status"] != 200:
                    statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
            late = sum(1 for r in step if r["status"] == 503
                       and LATE_PREFIX in r.get("error", ""))
            rows_out.append({
                "planes": mode, "load_x": level,
                "offered_rps": round(level * args.capacity, 1),
                "sent_rps": round(len(step) / span, 1) if span > 0 else 0.0,
                "lag_p99_ms": round(float(np.percentile(lag, 99)), 1),
                "throughput_rps": round(len(ok) / span, 1) if span > 0 else 0.0,
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "accuracy": round(sum(r["correct"] for r in ok)
                                  / max(1, sum(r["rows"] for r in ok)), 4),
                "mean_planes": round(float(np.mean([r["planes"] for r in ok])), 2) if ok else None,
                "requests": len(step), "errors": statuses,
                "shed": round(statuses.get("503", 0) / len(step), 4),
                "shed_late": round(late / len(step), 4),
                "locust_cpu_cores": _cores(cpu, mode, level, 0),
                "server_cpu_cores": _cores(cpu, mode, level, 1),
            })
    verdict = slo_verdict(rows_out, args.slo_ms)
    summary = {"model": args.model, "capacity_8_planes_rps": round(args.capacity, 1),
               "slo_verdict": verdict,
               "rows_per_request": args.rows,
               "users": args.users, "step_s": args.step_s, "slo_p99_ms": args.slo_ms,
               "levels": levels, "rows": rows_out,
               "bit_exact_samples": {k: {"checked": c, "wrong": w} for k, (c, w) in checks.items()},
               "load_average": os.getloadavg()}
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["| planes | load | offered req/s | sent req/s | lag p99 ms | served req/s | "
             "p50 ms | p99 ms | served metric | mean planes | shed | non-200 | "
             "locust CPU cores | server CPU cores |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows_out:
        err = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        if r["shed_late"]:
            err += f" ({100 * r['shed_late']:.2f} % late)"
        lines.append(f"| {r['planes']} | {r['load_x']}x | {r['offered_rps']} | "
                     f"{r['sent_rps']} | {r['lag_p99_ms']} | "
                     f"{r['throughput_rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['accuracy']:.4f} | {r['mean_planes']} | {100 * r['shed']:.1f} % | "
                     f"{err} | {r['locust_cpu_cores']} | {r['server_cpu_cores']} |")
    lines += ["", verdict["text"]]
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)
    for mode, (c, w) in checks.items():
        print(f"planes={mode}: {c} sampled answers checked against direct library calls, "
              f"{w} differ")
    plot(out, rows_out, args)


def slo_verdict(rows, slo_ms):
    """The lowest level at which fixed 8 planes (count bound only) has its
    client p99 over the SLO, and the highest level up to which auto keeps
    it within (every level up to it), with their ratio: the issue's target
    is auto within the SLO to at least 2x the level where fixed 8 breaks."""
    def levels(mode):
        return sorted((r["load_x"], r["p99_ms"]) for r in rows if r["planes"] == mode)
    breaks = next((x for x, p in levels("8") if not p <= slo_ms), None)
    holds = None
    for x, p in levels("auto"):
        if not p <= slo_ms:
            break
        holds = x
    if breaks is None:
        text = f"fixed 8 planes kept p99 within {slo_ms:g} ms at every level: no breaking load"
    elif holds is None:
        text = (f"fixed 8 planes broke the {slo_ms:g} ms SLO at {breaks:g}x; auto was over "
                "it from the lowest level")
    else:
        text = (f"fixed 8 planes broke the {slo_ms:g} ms SLO at {breaks:g}x; auto kept it "
                f"up to {holds:g}x ({holds / breaks:.2f}x the breaking load)")
    return {"fixed8_breaks_at_x": breaks, "auto_holds_to_x": holds, "text": text}


def plot(out, rows, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for mode in MODES:
        rs = [r for r in rows if r["planes"] == mode]
        if not rs:
            continue
        x = [r["load_x"] for r in rs]
        ax[0].plot(x, [r["p99_ms"] for r in rs], "o-", label=f"planes={mode}")
        ax[1].plot(x, [r["throughput_rps"] for r in rs], "o-", label=f"planes={mode}")
        ax[2].plot(x, [r["accuracy"] for r in rs], "o-", label=f"planes={mode}")
    ax[0].axhline(args.slo_ms, color="k", ls="--", lw=1, label="SLO p99")
    ax[0].set_yscale("log")
    ax[0].set_ylabel("p99 latency, ms (client)")
    ax[1].set_ylabel("served requests/s")
    ax[2].set_ylabel("served metric (accuracy vs labels)")
    for a in ax:
        a.set_xlabel(f"offered load (x capacity of 8 planes = {args.capacity:.0f} req/s)")
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(f"bitplane-serve, {Path(args.model).stem}, {args.rows} rows/request, "
                 f"{args.users} locust users, {args.step_s:g} s per step, "
                 f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    fig.tight_layout()
    fig.savefig(out / "loadtest.png", dpi=90)


def main():
    if sys.argv[1] == "capacity":
        print(f"{capacity(sys.argv[2], float(sys.argv[3])):.1f}")
        return
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("out")
    p.add_argument("--capacity", type=float, required=True)
    p.add_argument("--levels", required=True)
    p.add_argument("--step-s", type=float, required=True)
    p.add_argument("--slo-ms", type=float, required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--model", default="digits")
    report(p.parse_args())


if __name__ == "__main__":
    main()
