#!/usr/bin/env bash
# Batched products against OpenBLAS sgemm (bench/batch_bench.c): batch 8, 32
# and 360 at 1 / 2 / 4 / 8 planes on 4096 x 4096 and on the bundled models'
# layer shapes (digits MLP 256x64, 128x256, 10x128; char LSTM 1024x256,
# 1024x64; char GRU 768x256, 768x64; their 97x256 output layer), AUTO's
# kernel and the LUT kernel it replaced, 1 and 2 threads, interleaved rounds.
# Writes bench/results/cpu-batched-<date>.md and .jsonl. Needs a build with
# the benchmark (build/bench/bitplane-batch-bench; BP_BUILD overrides build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BP_BUILD:-$root/build}/bench/bitplane-batch-bench
day=$(date -u +%Y-%m-%d)
out=$root/bench/results/cpu-batched-$day
rounds=${BP_ROUNDS:-7}
[ -x "$bin" ] || { echo "build $bin first (cmake --build build)" >&2; exit 1; }
{
  echo "# Batched products against OpenBLAS sgemm, $day"
  echo
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores;" \
       "flags: $(grep -o -w -E 'avx512_vnni|gfni|avx512_vpopcntdq|avx512bw' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo
  echo "Load before: $(cut -d' ' -f1-3 /proc/loadavg). Medians of $rounds interleaved rounds"
  echo "($((3 * rounds)) for the model layers);"
  echo "speedup = median over rounds of (sgemm time / method time) in the same round;"
  echo "min = the fastest sample (least preempted)."
  echo "act_bits 8, quantizer defaults (uniform, groups of 32, rotation), Gaussian inputs."
} > "$out.md"
: > "$out.jsonl"
run() {
  echo >> "$out.md"
  echo "## $1" >> "$out.md"
  echo >> "$out.md"
  shift
  "$bin" --rounds "$rounds" "$@" >> "$out.jsonl" 2>> "$out.md"
}
for t in 1 2; do
  run "4096 x 4096, $t thread(s)" --shapes 4096x4096 --batch 8,32,360 --planes 1,2,4,8 \
    --kernels auto,avx512-lut --threads "$t"
  run "bundled models' layers, $t thread(s)" --rounds $((3 * rounds)) \
    --shapes 256x64,128x256,10x128,1024x256,1024x64,768x256,768x64,97x256 \
    --batch 8,32,360 --planes 1,2,4,8 --kernels auto,avx512-lut --threads "$t"
done
echo >> "$out.md"
echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)." >> "$out.md"
echo "wrote $out.md and $out.jsonl"
