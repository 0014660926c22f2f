#!/usr/bin/env bash
# Batched calls on the bundled models' small layers, two builds against each
# other and against OpenBLAS sgemm (bench/small_batch_bench.c): thread CPU
# time per call, 1 thread, 4 planes, act_bits 8, batch 8 / 32 / 360, the
# builds' processes alternating ($BP_ROUNDS each, default 5); the table
# gives per shape and batch the median over each build's processes of the
# process's median sample, and checks that both builds give the same y.
#   bench/run-small-bench.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR [OUT.md]
# (each build dir with bench/bitplane-small-bench). Prints the Markdown
# table, or writes it to OUT.md with the raw JSON lines beside it (.jsonl).
set -euo pipefail
before=${1:?usage: $0 BEFORE_BUILD_DIR AFTER_BUILD_DIR [OUT.md]}
after=${2:?usage: $0 BEFORE_BUILD_DIR AFTER_BUILD_DIR [OUT.md]}
out=${3:-}
rounds=${BP_ROUNDS:-5}
shapes=${BP_SHAPES:-128x256,256x64,10x128,128x256:u,256x64:u,10x128:u}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do
  for side in before after; do
    dir=$before
    [ "$side" = after ] && dir=$after
    "$dir/bench/bitplane-small-bench" --shapes "$shapes" --batch 8,32,360 --threads 1 \
      --planes 4 --act-bits 8 --samples 15 | sed "s/^{/{\"build\":\"$side\",\"round\":$r,/" >> "$tmp"
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
table=$(python3 - "$tmp" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = []
for r in rows:
    k = (r["m"], r["k"], r["u"], r["batch"])
    if k not in keys:
        keys.append(k)
print("| shape | batch | before us | after us | after/before | sgemm us | sgemm/bitplane before | after | y equal |")
print("|---|---|---|---|---|---|---|---|---|")
for k in keys:
    sel = [r for r in rows if (r["m"], r["k"], r["u"], r["batch"]) == k]
    b = [r for r in sel if r["build"] == "before"]
    a = [r for r in sel if r["build"] == "after"]
    tb = statistics.median(r["bitplane_us"] for r in b)
    ta = statistics.median(r["bitplane_us"] for r in a)
    sg = statistics.median(r["sgemm_us"] for r in sel)
    # Same-process ratios: each process's sgemm time over its bitplane time.
    rb = statistics.median(r["sgemm_us"] / r["bitplane_us"] for r in b)
    ra = statistics.median(r["sgemm_us"] / r["bitplane_us"] for r in a)
    same = len({r["y_fnv1a"] for r in sel}) == 1
    shape = f"{k[0]}x{k[1]}" + (":u" if k[2] else "")
    print(f"| {shape} | {k[3]} | {tb:.2f} | {ta:.2f} | {ta / tb:.2f} | {sg:.2f} | {rb:.2f}x | {ra:.2f}x | {'yes' if same else 'NO'} |")
EOF
)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
report="CPU: $cpu, $(nproc) cores. Load average $load0 before, $load1 after.
$rounds processes per build, alternating; 15 samples per process.

$table"
if [ -n "$out" ]; then
  printf '%s\n' "$report" > "$out"
  cp "$tmp" "${out%.md}.jsonl"
  echo "wrote $out and ${out%.md}.jsonl"
else
  printf '%s\n' "$report"
fi
