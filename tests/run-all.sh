#!/usr/bin/env bash
# Set up, build and run bitplane's full test suite (Criterion, through CTest).
# Usage: tests/run-all.sh            (build dir: ./build, or $BP_BUILD_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
build=${BP_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_WERROR=ON ${BP_CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"$(nproc)" ${BP_CTEST_ARGS:-}
