"""The runs in this directory side by side: for each configuration, every
run's speedup (and CPU-time speedup where the run has one), and per group
of runs (names that differ only in a trailing -N) the largest max / min of
one configuration's speedup across the group's runs.

    python compare.py            # all runs
    python compare.py RUN...     # these runs (directory names)"""

import csv
import json
import re
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
runs = ([here / n for n in sys.argv[1:]] if len(sys.argv) > 1
        else sorted(p.parent for p in here.glob("*/sweep.csv")))
table, meta = {}, {}
for run in runs:
    m = json.loads((run / "sweep.json").read_text())
    meta[run.name] = (m["args"]["threads"], m["machine"]["load_average_before"][0],
                      m["machine"]["load_average_after"][0], m["wall_seconds"])
    for r in csv.DictReader(open(run / "sweep.csv")):
        if r["kind"] != "bitplane":
            table.setdefault(("fp32 ms", "", "", ""), {})[run.name] = float(r["latency_ms"])
            continue
        key = (r["quantizer"], r["act_bits"], r["planes"])
        table.setdefault(("speedup",) + key, {})[run.name] = float(r["speedup"])
        if r.get("speedup_cpu"):
            table.setdefault(("cpu speedup",) + key, {})[run.name] = float(r["speedup_cpu"])
names = [r.name for r in runs]
print("| run | threads | load before | load after | sweep s |\n|---|---|---|---|---|")
for n in names:
    t, lb, la, s = meta[n]
    print(f"| {n} | {t} | {lb:.2f} | {la:.2f} | {s:.1f} |")
print("\n| column | quantizer | act_bits | planes | " + " | ".join(names) + " |")
print("|" + "---|" * (4 + len(names)))
for key, vals in table.items():
    print("| " + " | ".join(key) + " | "
          + " | ".join(f"{vals[n]:.2f}" if n in vals else "" for n in names) + " |")
groups = {}
for n in names:
    groups.setdefault(re.sub(r"-\d+$", "", n), []).append(n)
print("\nWithin each group of runs, the largest max / min of one configuration's value:\n")
print("| group | runs | speedup (uniform) | speedup (residual) | cpu speedup (uniform) "
      "| cpu speedup (residual) |\n|---|---|---|---|---|---|")
for g, members in groups.items():
    if len(members) < 2:
        continue
    cells = []
    for col in ("speedup", "cpu speedup"):
        for q in ("uniform", "residual"):
            worst = 0.0
            for key, vals in table.items():
                if key[0] == col and key[1] == q:
                    v = [vals[n] for n in members if n in vals]
                    if len(v) == len(members):
                        worst = max(worst, max(v) / min(v))
            cells.append(f"{worst:.2f}" if worst else "-")
    print(f"| {g} | {len(members)} | " + " | ".join(cells) + " |")
