#!/usr/bin/env bash
# The C benchmark: set up, build, and run bitplane-bench on the default shape
# (GEMV 65536 x 4096, planes 1,2,4, act_bits 8) on 1 thread and on all cores,
# with the OpenBLAS sgemv baseline and the stream-read probe in the same run.
# Extra arguments go to bitplane-bench (for example --json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
build=${BP_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)" --target bitplane-bench
for t in 1 "$(nproc)"; do
  "$build/bench/bitplane-bench" gemv --m 65536 --k 4096 --planes 1,2,4 --act-bits 8 --threads "$t" "$@"
done
