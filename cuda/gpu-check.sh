#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (sm_80+), CUDA toolkit and
# CMake but no Criterion, OpenBLAS or apt. It builds the CUDA backend, runs
# the full GPU conformance program, compute-sanitizer memcheck on a quick
# subset, and the benchmark sweep, writing logs and JSON lines into $OUT
# (default ./gpu-out). Sized to finish inside 10 minutes on an H100.
#
#   bash cuda/gpu-prepare.sh            # here, once: OpenBLAS .debs for the bench
#   OUT=/some/dir bash cuda/gpu-check.sh  # there (carry .gpudeps)
#
# Each step has its own time limit and the script always reaches the summary.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
build=/tmp/bp-gpu-build
arch=${BP_GPU_ARCH:-90}
export PATH=/usr/local/cuda/bin:$PATH
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
  >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

bench=OFF
cmake_extra=()
if ls .gpudeps/*.deb >/dev/null 2>&1; then
  deps=/tmp/bp-gpu-deps
  for d in .gpudeps/*.deb; do dpkg -x "$d" "$deps"; done
  lib=$(dirname "$(find "$deps" -name 'libopenblas.so*' | head -1)")
  inc=$(dirname "$(find "$deps" -name cblas.h | head -1)")
  export LD_LIBRARY_PATH="$lib:$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  cmake_extra=(-DBP_OPENBLAS_LIBRARY="$(find "$deps" -name 'libopenblas.so*' | head -1)"
               -DBP_CBLAS_INCLUDE_DIR="$inc")
  bench=ON
fi

log "configure + build (sm_$arch, bench $bench)"
start=$SECONDS
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=OFF -DBP_BUILD_BENCH=$bench \
  -DBP_CUDA=ON -DBP_CUDA_ARCHITECTURES="$arch" "${cmake_extra[@]}" >"$OUT/build.log" 2>&1 &&
  cmake --build "$build" -j"$(nproc)" >>"$OUT/build.log" 2>&1
rc=$?
log "build rc=$rc in $((SECONDS - start)) s"
[ $rc -eq 0 ] || { tail -30 "$OUT/build.log"; exit 1; }
export BP_PLUGIN_DIR="$build/lib"

log "GPU conformance (full table, both paths, device API)"
timeout 240 "$build/cuda/bp_gpu_conformance" >"$OUT/conformance.log" 2>&1
log "conformance rc=$? : $(tail -1 "$OUT/conformance.log")"
grep -m20 FAIL "$OUT/conformance.log"

log "compute-sanitizer memcheck (quick subset)"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$build/cuda/bp_gpu_conformance" --quick >"$OUT/memcheck.log" 2>&1
log "memcheck rc=$? : $(grep -E 'ERROR SUMMARY|passed' "$OUT/memcheck.log" | tr '\n' ' ')"

if [ "$bench" = ON ]; then
  b="$build/bench/bitplane-bench"
  j="$OUT/bench-cuda.jsonl"
  : >"$j"
  log "bench: GEMV act_bits 8 at 16384x16384 and 8192x28672, planes 1,2,4,8"
  for shape in "16384 16384" "8192 28672"; do
    set -- $shape
    timeout 100 "$b" gemv --backend cuda --m "$1" --k "$2" --batch 1 --planes 1,2,4,8 \
      --act-bits 8 --clip 1 --reps 20 --json >>"$j" 2>>"$OUT/bench.err"
    echo "shape $1x$2 rc=$?" | tee -a "$OUT/summary.txt"
  done
  log "bench: batch sweep 16384x16384, 4 planes"
  for batch in 2 4 8 16 32 64 128 256; do
    timeout 30 "$b" gemv --backend cuda --m 16384 --k 16384 --batch "$batch" --planes 4 \
      --act-bits 8 --clip 1 --reps 10 --json >>"$j" 2>>"$OUT/bench.err"
    echo "batch $batch rc=$?" | tee -a "$OUT/summary.txt"
  done
  python3 - "$j" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("kind") == "bitplane":
        print(f"{r['m']}x{r['k']} b{r['batch']} a{r['act_bits']} p{r['planes']} {r['kernel']:8s} "
              f"{r['median_s']*1e6:9.1f} us  copy {r['frac_of_copy']:.2f}  "
              f"x fp32 {r['speedup_vs_fp32']:.2f}  x fp16 {r['speedup_vs_fp16']:.2f}  "
              f"overhead {r['overhead_s']*1e6:.1f} us")
    elif r.get("kind", "").startswith(("cuda_copy", "cublas")):
        print(f"{r['kind']:13s} {r['m']}x{r['k']} b{r['batch']} {r.get('median_s', 0)*1e6:9.1f} us "
              f"{r.get('gbps', 0):8.1f} GB/s")
PY
fi
log "done"
