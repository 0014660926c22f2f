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
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross  # cross build for 64-bit ARM (CI stage)
  qemu-user         # runs the ARM build's kernel tests on x86-64
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# With nvcc present the CUDA backend is built; its check that the kernels
# contain the b1 tensor-core instruction (ctest -R cuda_mma_instructions)
# needs cuobjdump and nvdisasm, which only PyPI ships separately from the
# toolkit. Best effort: without them that one check skips.
cuda_tools=/opt/bitplane-cuda-tools/bin
if { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } &&
   ! command -v cuobjdump >/dev/null && [ ! -x /usr/local/cuda/bin/cuobjdump ] &&
   [ ! -x "$cuda_tools/nvdisasm" ] && [ "$(id -u)" -eq 0 ]; then
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

[ ${#missing[@]} -eq 0 ] && exit 0

echo "bitplane: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bitplane: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
