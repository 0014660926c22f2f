#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (sm_80+), CUDA toolkit and
# CMake but no Criterion, OpenBLAS or apt. It builds the CUDA backend, runs
# the full GPU conformance program, compute-sanitizer memcheck on a quick
# subset, and the benchmark sweep, writing logs and JSON lines into $OUT
# (default ./gpu-out).
#
#   bash cuda/gpu-prepare.sh            # here, once: OpenBLAS .debs for the bench
#   OUT=/some/dir bash cuda/gpu-check.sh  # there (carry .gpudeps)
#
# The whole script keeps inside BP_GPU_CHECK_BUDGET seconds (default 540, for
# a 10-minute command): every step's time limit is cut to what is left, a
# step that no longer fits is logged as skipped, and the summary is always
# written. The conformance build never depends on the bench's extras
# (OpenBLAS, cuBLAS): the bench is configured and built after the checks ran.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
build=${BP_GPU_BUILD:-/tmp/bp-gpu-build}
arch=${BP_GPU_ARCH:-90}
budget=${BP_GPU_CHECK_BUDGET:-540}
export PATH=/usr/local/cuda/bin:$PATH
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
# limit WANT: seconds a step may take, WANT or what is left (minus a reserve
# for the summary); 0 when under 15 s are left.
limit() {
  local left=$((budget - SECONDS - 10))
  [ "$left" -lt 15 ] && { echo 0; return; }
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
# step NAME WANT CMD...: run CMD under `timeout`, or log that it was skipped.
step() {
  local name=$1 t
  t=$(limit "$2")
  shift 2
  if [ "$t" -eq 0 ]; then
    log "SKIP $name: out of time (${SECONDS}s of ${budget}s used)"
    return 124
  fi
  timeout "$t" "$@"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
  >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

log "configure + build (sm_$arch): library, CUDA plugin, conformance program"
start=$SECONDS
cmake_common=(-DCMAKE_BUILD_TYPE=Release -DBP_BUILD_TESTS=ON -DBP_CUDA=ON -DBP_OPENCL=OFF
              -DBP_CUDA_ARCHITECTURES="$arch")
step configure 120 cmake -S . -B "$build" "${cmake_common[@]}" -DBP_BUILD_BENCH=OFF \
  >"$OUT/build.log" 2>&1 &&
  step build 240 cmake --build "$build" -j"$(nproc)" --target bp_gpu_conformance \
    >>"$OUT/build.log" 2>&1
rc=$?
log "build rc=$rc in $((SECONDS - start)) s"
[ $rc -eq 0 ] || { tail -30 "$OUT/build.log"; log "done (build failed)"; exit 1; }
export BP_PLUGIN_DIR="$build/lib"

log "GPU conformance (full table, both paths, device API, per-row plane counts)"
step conformance 240 "$build/tests/bp_gpu_conformance" >"$OUT/conformance.log" 2>&1
log "conformance rc=$? : $(tail -1 "$OUT/conformance.log")"
grep -m20 -E 'FAIL|FATAL' "$OUT/conformance.log"

sanitizer=$(command -v compute-sanitizer ||
  ls /usr/local/cuda*/compute-sanitizer/compute-sanitizer /opt/nvidia/*/compute-sanitizer \
    2>/dev/null | head -1)
if [ -n "$sanitizer" ]; then
  log "compute-sanitizer memcheck (quick subset)"
  step memcheck 150 "$sanitizer" --tool memcheck --error-exitcode 3 \
    "$build/tests/bp_gpu_conformance" --quick >"$OUT/memcheck.log" 2>&1
  log "memcheck rc=$? : $(grep -E 'ERROR SUMMARY|passed' "$OUT/memcheck.log" | tr '\n' ' ')"
else
  log "SKIP memcheck: compute-sanitizer not found"
fi

if ls .gpudeps/*.deb >/dev/null 2>&1; then
  deps=/tmp/bp-gpu-deps
  for d in .gpudeps/*.deb; do dpkg -x "$d" "$deps"; done
  lib=$(dirname "$(find "$deps" -name 'libopenblas.so*' | head -1)")
  inc=$(dirname "$(find "$deps" -name cblas.h | head -1)")
  export LD_LIBRARY_PATH="$lib:$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  log "configure + build bitplane-bench (OpenBLAS from .gpudeps, cuBLAS)"
  start=$SECONDS
  step bench-configure 60 cmake -S . -B "$build" "${cmake_common[@]}" -DBP_BUILD_BENCH=ON \
    -DBP_OPENBLAS_LIBRARY="$(find "$deps" -name 'libopenblas.so*' | head -1)" \
    -DBP_CBLAS_INCLUDE_DIR="$inc" >"$OUT/bench-build.log" 2>&1 &&
    step bench-build 120 cmake --build "$build" -j"$(nproc)" --target bitplane-bench \
      >>"$OUT/bench-build.log" 2>&1
  rc=$?
  log "bench build rc=$rc in $((SECONDS - start)) s"
  if [ $rc -eq 0 ]; then
    b="$build/bench/bitplane-bench"
    j="$OUT/bench-cuda.jsonl"
    : >"$j"
    log "bench: GEMV act_bits 8 at 16384x16384 and 8192x28672, planes 1,2,4,8"
    for shape in "16384 16384" "8192 28672"; do
      set -- $shape
      step "bench $1x$2" 100 "$b" gemv --backend cuda --m "$1" --k "$2" --batch 1 \
        --planes 1,2,4,8 --act-bits 8 --clip 1 --reps 20 --json >>"$j" 2>>"$OUT/bench.err"
      echo "shape $1x$2 rc=$?" | tee -a "$OUT/summary.txt"
    done
    log "bench: batch sweep 16384x16384, 4 planes"
    for batch in 2 4 8 16 32 64 128 256; do
      step "bench batch $batch" 30 "$b" gemv --backend cuda --m 16384 --k 16384 \
        --batch "$batch" --planes 4 --act-bits 8 --clip 1 --reps 10 --json >>"$j" \
        2>>"$OUT/bench.err"
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
  else
    tail -20 "$OUT/bench-build.log"
  fi
else
  log "SKIP bench: no .gpudeps/*.deb (run cuda/gpu-prepare.sh here and carry .gpudeps)"
fi
log "done in ${SECONDS}s of ${budget}s"
