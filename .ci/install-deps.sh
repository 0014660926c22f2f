#!/usr/bin/env bash
# Installs the system packages bitplane needs to build, test and benchmark,
# from Debian's registry. Installs only what is missing, so it is cheap to
# run before every build. Used by bench/run-default.sh, bench/run-bench.sh,
# tests/run-all.sh and CI.
set -euo pipefail

packages=(
  build-essential   # gcc, make
  cmake
  pkg-config
  libcriterion-dev  # C test framework
  libopenblas-dev   # fp32 baseline for bitplane-bench
  ocl-icd-opencl-dev opencl-headers  # OpenCL ICD loader and headers (opencl/ backend)
  pocl-opencl-icd   # a CPU OpenCL device, so the OpenCL backend is tested without a GPU
  python3-dev       # headers for the Python extension (python-bindings/)
  python3-venv      # virtual environments for the Python package and its tests
)
# Tools only .ci/run's extra stages use (BP_CI_TOOLS=1, set by .ci/run), so the
# main command and the test command do not install them.
if [ "${BP_CI_TOOLS:-0}" = 1 ]; then
  packages+=(
    clang libclang-rt-dev  # libFuzzer build of the loader (tests/fuzz/); the sanitizer
                           # and fuzzer runtimes are only a recommendation of clang
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross  # cross build for 64-bit ARM
    qemu-user              # runs the ARM build's kernel tests on x86-64
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# With nvcc present the CUDA backend is built; its check that the kernels
# contain the b1 tensor-core instruction (ctest -R cuda_mma_instructions)
# needs cuobjdump and nvdisasm, which only PyPI ships separately from the
# toolkit. Downloading them is opt-in: BP_FETCH_CUDA_TOOLS=1 fetches the two
# wheels with pip into /opt/bitplane-cuda-tools (CI sets it). Without them
# that one check skips.
cuda_tools=/opt/bitplane-cuda-tools/bin
if { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } &&
   ! command -v cuobjdump >/dev/null && [ ! -x /usr/local/cuda/bin/cuobjdump ] &&
   [ ! -x "$cuda_tools/nvdisasm" ]; then
  if [ "${BP_FETCH_CUDA_TOOLS:-0}" != 1 ]; then
    echo "bitplane: nvcc found but not cuobjdump/nvdisasm: the CUDA instruction check" \
      "(ctest -R cuda_mma_instructions) will skip; BP_FETCH_CUDA_TOOLS=1 downloads them" \
      "from PyPI into $cuda_tools" >&2
  elif [ "$(id -u)" -ne 0 ]; then
    echo "bitplane: BP_FETCH_CUDA_TOOLS=1 needs root to write $cuda_tools; skipped" >&2
  else
    echo "bitplane: BP_FETCH_CUDA_TOOLS=1: downloading cuobjdump and nvdisasm" \
      "(PyPI nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm) into $cuda_tools" >&2
    tmp=$(mktemp -d)
    if python3 -m pip download -q --no-deps -d "$tmp" nvidia-cuda-cuobjdump==13.2.78 \
         nvidia-cuda-nvdisasm==13.2.86 >&2; then
      mkdir -p "$cuda_tools"
      for w in "$tmp"/*.whl; do python3 -m zipfile -e "$w" "$tmp/x"; done
      cp "$tmp"/x/nvidia/cu*/bin/cuobjdump "$tmp"/x/nvidia/cu*/bin/nvdisasm "$cuda_tools"/
      chmod +x "$cuda_tools"/*
    else
      echo "bitplane: could not fetch cuobjdump/nvdisasm; the CUDA instruction check will skip" >&2
    fi
    rm -rf "$tmp"
  fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bitplane: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive

# Another apt or dpkg process (unattended upgrades, a second build) may hold
# the dpkg lock: apt waits for it up to BP_APT_LOCK_TIMEOUT seconds (default
# 300) instead of failing at once, and a failed step is retried once.
lock_timeout=${BP_APT_LOCK_TIMEOUT:-300}
apt_get() {
  local rc
  for attempt in 1 2; do
    rc=0
    $sudo apt-get -o DPkg::Lock::Timeout="$lock_timeout" "$@" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    if [ "$attempt" -eq 1 ]; then
      echo "bitplane: apt-get $1 failed (exit $rc; another apt or dpkg process may hold" \
        "the lock); retrying once" >&2
      sleep "${BP_APT_RETRY_DELAY:-15}"
    fi
  done
  echo "bitplane: apt-get $1 failed twice (exit $rc); install ${missing[*]} by hand" >&2
  return "$rc"
}

echo "bitplane: installing ${missing[*]} (waiting up to ${lock_timeout} s if another" \
  "apt or dpkg process holds the lock)" >&2
apt_get update -qq
apt_get install -y -qq --no-install-recommends "${missing[@]}"
