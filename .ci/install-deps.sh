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
  python3-dev       # headers for the Python extension (python-bindings/)
  python3-venv      # virtual environments for the Python package and its tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
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
