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
runs=(1 "$(nproc)")
echo "bitplane: benchmarking GEMV 65536 x 4096 (planes 1,2,4, act_bits 8) on ${runs[*]} thread(s)." \
  "Each run quantizes the matrix, times OpenBLAS sgemv and a stream-read probe, then" \
  "bitplane; it prints its table at the end, takes about 1-2 minutes and peaks at" \
  "about 3.7 GB of memory." >&2
i=0
for t in "${runs[@]}"; do
  i=$((i + 1))
  echo "bitplane: [$i/${#runs[@]}] $t thread(s)..." >&2
  start=$SECONDS
  # A heartbeat on stderr while the benchmark computes silently.
  (while sleep 20; do echo "bitplane:   still running ($((SECONDS - start)) s)" >&2; done) &
  heartbeat=$!
  rc=0
  "$build/bench/bitplane-bench" gemv --m 65536 --k 4096 --planes 1,2,4 --act-bits 8 \
    --threads "$t" "$@" || rc=$?
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  [ "$rc" -eq 0 ] || exit "$rc"
  echo "bitplane: [$i/${#runs[@]}] done in $((SECONDS - start)) s" >&2
done
