#!/usr/bin/env bash
# The recurrent-layer benchmark in one command: per-step latency of the C
# LSTM/GRU against ONNX Runtime's LSTM/GRU operators and the NumPy fp32 loop
# (bench/rnn_bench.py; one thread, medians and minima), results into
# bench/results/rnn-cpu-<date>.md and .json. Extra arguments go to
# rnn_bench.py (for example --hidden 256 --batch 1).
#  1. system packages through .ci/install-deps.sh,
#  2. the virtual environment .venv (reused; BP_VENV overrides) with the
#     bitplane package from this tree and the [bench] extra (onnx,
#     onnxruntime),
#  3. the benchmark. Run it on a quiet machine: the report records the load.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
venv=${BP_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$root/python-bindings[bench]"
cd "$root"
"$venv/bin/python" bench/rnn_bench.py --out bench/results "$@"
