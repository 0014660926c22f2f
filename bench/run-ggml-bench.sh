#!/usr/bin/env bash
# bitplane against ggml's q4_K / q2_K / tq2_0 CPU GEMV, in one process with
# OpenBLAS sgemv and the stream-read ceiling (bench/bench_ggml.c):
#   1. fetch ggml's sources from a pinned PyPI sdist (llama-cpp-python ships
#      llama.cpp, and ggml under it, in vendor/), checked by SHA-256;
#   2. build ggml's CPU backend with CMake (native ISA, static) into
#      build-ggml/ (ignored by git) and install it there;
#   3. build bitplane-bench-ggml against it in $BP_BUILD_DIR (default build/);
#   4. run GEMV 65536 x 4096 at 1 and 2 threads and write
#      bench/results/ggml-gemv-<UTC date-time>.{md,jsonl} with the CPU model,
#      the load average before and after, the date and the sdist version.
# Needs pip with network access to PyPI (step 1 only; later runs reuse the
# download), CMake, a C/C++ compiler and OpenBLAS. Not part of the test
# command. Extra arguments go to bitplane-bench-ggml (e.g. --reps 15).
# Peak memory: about 4 GiB during the stream probe (two buffers of
# max(1 GiB, 4 x LLC)) on top of about 3.2 GiB of weights (fp32 1 GiB,
# bitplane 1+2+4+8 planes three times 1.4 GiB, ggml 0.29 GiB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sdist_name=llama-cpp-python
sdist_version=0.3.36
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
work=$root/build-ggml
tarball=$work/src/llama_cpp_python-$sdist_version.tar.gz
ggml_src=$work/src/llama_cpp_python-$sdist_version/vendor/llama.cpp/ggml
build=${BP_BUILD_DIR:-$root/build}
die() {
  echo "run-ggml-bench: $*" >&2
  exit 1
}

# 1. The sdist.
mkdir -p "$work/src"
if [ ! -f "$tarball" ]; then
  python3 -m pip --version >/dev/null 2>&1 ||
    die "needs pip (python3 -m pip) to download the $sdist_name==$sdist_version sdist from PyPI"
  echo "run-ggml-bench: downloading $sdist_name==$sdist_version (sdist, about 75 MB)..." >&2
  python3 -m pip download --no-binary :all: --no-deps "$sdist_name==$sdist_version" \
    -d "$work/src" >&2 ||
    die "pip could not download $sdist_name==$sdist_version; this step needs network access to PyPI"
fi
echo "$sdist_sha256  $tarball" | sha256sum -c --quiet - ||
  die "$tarball does not match the pinned SHA-256; delete it and run again"
if [ ! -d "$ggml_src" ]; then
  tar -xzf "$tarball" -C "$work/src" "llama_cpp_python-$sdist_version/vendor/llama.cpp/ggml"
fi
# The sdist leaves out ggml.pc.in, which ggml's CMakeLists configures
# unconditionally; an empty one only yields an empty pkg-config file.
[ -f "$ggml_src/ggml.pc.in" ] || : >"$ggml_src/ggml.pc.in"

# 2. ggml's CPU backend. OpenMP off: ggml's own threads exit with each graph,
# so no idle OpenMP pool spins beside the other methods.
if [ ! -f "$work/install/lib/cmake/ggml/ggml-config.cmake" ]; then
  echo "run-ggml-bench: building ggml's CPU backend (a few minutes)..." >&2
  cmake -S "$ggml_src" -B "$work/ggml" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
    -DGGML_CCACHE=OFF >&2
  cmake --build "$work/ggml" -j"$(nproc)" >&2
  cmake --install "$work/ggml" --prefix "$work/install" >&2
fi

# 3. The benchmark.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_BENCH_GGML_DIR="$work/install" >&2
cmake --build "$build" -j"$(nproc)" --target bitplane-bench-ggml >&2

# 4. Run. OpenBLAS's idle workers would otherwise spin for a while after each
# sgemv and take a core from the next method in the round-robin.
export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
stamp=$(date -u +%Y-%m-%d-%H%M)
out=$root/bench/results/ggml-gemv-$stamp
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
load_before=$(uptime)
args=(--m 65536 --k 4096 --threads 1,2 "$@")
{
  echo "# GEMV 65536 x 4096, batch 1: bitplane against ggml and OpenBLAS"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- CPU: $cpu ($(nproc) cores online)"
  echo "- Load before: $load_before"
  echo "- ggml: from the PyPI sdist $sdist_name==$sdist_version (sha256 $sdist_sha256), CPU backend, GGML_NATIVE=ON, no OpenMP"
  echo "- Command: \`bitplane-bench-ggml ${args[*]}\` (OPENBLAS_THREAD_TIMEOUT=$OPENBLAS_THREAD_TIMEOUT)"
  echo "- Medians of round-robin rounds; x floor = time / (weight bytes / the stream ceiling of the same run);"
  echo "  rel. error = ||y - W x|| / ||W x|| against fp64 with the unquantized W. See bench/bench_ggml.c."
} >"$out.md"
echo "run-ggml-bench: running (several minutes; quantizing, then per thread count the stream" \
  "probe and the round-robin)..." >&2
python3 - "$out.jsonl" "$stamp" "$cpu" "$load_before" "$sdist_name" "$sdist_version" \
  "$sdist_sha256" <<'EOF'
import json, sys
path, stamp, cpu, load, name, version, sha = sys.argv[1:]
with open(path, "w") as f:
    f.write(json.dumps({"kind": "meta", "date": stamp, "cpu": cpu, "load_before": load,
                        "ggml_sdist": f"{name}=={version}", "sdist_sha256": sha}) + "\n")
EOF
"$build/bench/bitplane-bench-ggml" "${args[@]}" --json --markdown "$out.md" >>"$out.jsonl"
load_after=$(uptime)
printf '\nLoad after: %s\n' "$load_after" >>"$out.md"
echo "{\"kind\": \"meta_end\", \"load_after\": \"$load_after\"}" >>"$out.jsonl"
echo "run-ggml-bench: wrote $out.md and $out.jsonl" >&2
cat "$out.md"
