#!/usr/bin/env bash
# Run on the development machine (Debian, no GPU) before cuda/gpu-check.sh:
# fetches the OpenBLAS packages that bitplane-bench links (the GPU machine has
# no apt) into .gpudeps/, which git ignores and the device run carries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude) # .git is a file in a worktree
grep -qx '/.gpudeps/' "$exclude" 2>/dev/null || echo '/.gpudeps/' >>"$exclude"
mkdir -p .gpudeps
cd .gpudeps
apt-get download libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev libopenblas0 \
  libgfortran5 libquadmath0
ls -l
