#!/usr/bin/env bash
# The main job: set up everything, then run the accuracy/speed sweep on the
# bundled default model (the digits MLP).
#  1. system packages through .ci/install-deps.sh (compiler, CMake, Python
#     headers and venv),
#  2. a Python virtual environment in .venv (reused; BP_VENV overrides),
#  3. the bitplane package built from this tree (pip install ./python-bindings),
#  4. bitplane-sweep with its defaults; extra arguments go to it (for example
#     --model char-lstm or --threads 1). It prints the table and where the CSV,
#     JSON and PNG files are (bitplane-sweep-out/ in the repository root).
# The C benchmark of the default GEMV shape is bench/run-bench.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
venv=${BP_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$root/python-bindings"
cd "$root"
"$venv/bin/bitplane-sweep" "$@"
