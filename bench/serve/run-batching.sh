#!/usr/bin/env bash
# Batched vs one call per request at 16 clients (in process and over HTTP),
# and the per-request overhead at low load (overhead.py); JSON lines to
# OUT_FILE, with uptime before and after in uptime.txt next to it.
# Usage: bench/serve/run-batching.sh [OUT_FILE]   (PYTHON=python3 by default)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/serve-batching/batching.jsonl}
py=${PYTHON:-python3}
mkdir -p "$(dirname "$out")"
"$py" -m bitplane.serve.cli --port 8481 --max-batch 64 --log-level warning 2>/dev/null &
a=$!
"$py" -m bitplane.serve.cli --port 8482 --max-batch 1 --log-level warning 2>/dev/null &
b=$!
trap 'kill $a $b 2>/dev/null; wait 2>/dev/null || true' EXIT
for port in 8481 8482; do
  for _ in $(seq 120); do
    "$py" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v2/health/ready')" \
      2>/dev/null && break
    sleep 0.5
  done
done
uptime >>"$(dirname "$out")/uptime.txt"
{
  "$py" "$here/batching.py" inproc
  "$py" "$here/batching.py" http 8481 8482
  "$py" "$here/overhead.py"
} | tee -a "$out"
uptime >>"$(dirname "$out")/uptime.txt"
