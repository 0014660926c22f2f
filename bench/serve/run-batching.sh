#!/usr/bin/env bash
# Batched vs one call per request at 16 clients (in process and over HTTP) on
# digits and on the compute-bound stack make_model.py writes (seeded, into a
# temporary .npz; also with every request at 8 planes, the uniform-batch
# control), then the per-request overhead at low load (overhead.py);
# JSON lines to OUT_FILE, with uptime before and after in uptime.txt next to it.
# Usage: bench/serve/run-batching.sh [OUT_FILE]   (PYTHON=python3 by default;
#   BP_WIDTHS: the stack's widths, default 1024,4096,4096,1024,16)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/serve-batching/batching.jsonl}
py=${PYTHON:-python3}
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$here/make_model.py" "$tmp/wide.npz" --widths "${BP_WIDTHS:-1024,4096,4096,1024,16}"
uptime >>"$(dirname "$out")/uptime.txt"
{
  for model in digits "$tmp/wide.npz"; do
    "$py" "$here/batching.py" inproc --model "$model"
    "$py" "$here/batching.py" http --model "$model"
  done
  # The control: every request at 8 planes, so each batch is one kernel unit.
  "$py" "$here/batching.py" inproc --model "$tmp/wide.npz" --planes 8
  "$py" "$here/batching.py" http --model "$tmp/wide.npz" --planes 8
  "$py" "$here/overhead.py"
} | tee -a "$out"
uptime >>"$(dirname "$out")/uptime.txt"
