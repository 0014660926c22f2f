#!/usr/bin/env bash
# Before/after of one kernel change in the same run: builds libbitplane from
# a base revision (default main) in a scratch directory beside this tree's
# build, then bench/ab_bench.c times the same bp_gemm calls through both
# libraries in one process, interleaved, in both load orders (which library
# is loaded and runs first shifts timings by up to ~6 % on its own; the two
# orders' ratios and their geometric mean are reported).
#
#   bench/run-ab-bench.sh [BASE_REV] [ab-bench options...]
#   e.g. bench/run-ab-bench.sh main --batch 4,8,16 --planes 1,2,3,4,8
#
# Needs this tree built (build/lib/libbitplane.so and
# build/bench/bitplane-ab-bench; BP_BUILD overrides build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BP_BUILD:-$root/build}
base=${1:-main}
[ $# -gt 0 ] && shift
new=$build/lib/libbitplane.so
[ -e "$new" ] || { echo "build $new first (cmake --build build)" >&2; exit 1; }
scratch=$build/ab-base
rm -rf "$scratch/src" && mkdir -p "$scratch/src"
git -C "$root" archive "$base" | tar -x -C "$scratch/src"
cmake -S "$scratch/src" -B "$scratch/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$scratch/build" -j"$(nproc)" --target bitplane >/dev/null
old=$scratch/build/lib/libbitplane.so
ab=$build/bench/bitplane-ab-bench
[ -x "$ab" ] || { echo "build $ab first (cmake --build build)" >&2; exit 1; }
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A = $base, B = this tree:"
"$ab" "$old" "$new" "$@"
echo "A = this tree, B = $base (the reverse order):"
"$ab" "$new" "$old" "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
