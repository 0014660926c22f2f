#!/usr/bin/env bash
# Load test of bitplane-serve on loopback with locust (headless, bounded):
# probe the capacity of fixed 8-plane serving, then step the load from 0.5x to
# 3x of it for planes 8, 4 and auto; analyze.py writes the table, the plot and
# the bit-exact check of sampled answers into the output folder.
# Usage: bench/serve/run-loadtest.sh [OUT_DIR]   (needs bitplane[serve] + locust)
# Knobs (env): BP_STEP_S (10), BP_ROWS (16), BP_USERS (48), BP_SLO_MS (100),
#   BP_LEVELS (0.5,1,1.5,2,3), BP_PORT (8471), PYTHON (python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/serve-loadtest}
py=${PYTHON:-python3}
port=${BP_PORT:-8471}
export BP_STEP_S=${BP_STEP_S:-10} BP_ROWS=${BP_ROWS:-16} BP_USERS=${BP_USERS:-48}
levels=${BP_LEVELS:-0.5,1,1.5,2,3}
slo=${BP_SLO_MS:-100}
mkdir -p "$out"
rm -f "$out"/*.jsonl "$out"/*.jsonl.gz
"$py" -m bitplane.serve.cli --port "$port" --max-batch 256 --max-queue-rows 4096 \
  --slo-p99-ms "$slo" --log-level warning 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  "$py" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v2/health/ready')" \
    2>/dev/null && break
  sleep 0.5
done
loc() { # planes levels out.jsonl
  # The shape in locustfile.py ends the run after its steps; timeout is a backstop.
  BP_PLANES=$1 BP_LEVELS=$2 BP_OUT=$3 timeout "$(( ${BP_STEP_S%.*} * 6 + 60 ))" \
    "$py" -m locust -f "$here/locustfile.py" --headless --host "http://127.0.0.1:$port" \
    --only-summary --loglevel WARNING >/dev/null 2>>"$out/locust.log" || true
}
loc 8 probe "$out/probe.jsonl"
capacity=$("$py" "$here/analyze.py" capacity "$out/probe.jsonl" "$BP_STEP_S")
echo "capacity of fixed 8-plane serving: $capacity requests/s of $BP_ROWS rows" >&2
for planes in 8 4 auto; do
  BP_CAPACITY=$capacity loc "$planes" "$levels" "$out/planes-$planes.jsonl"
done
"$py" -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/metrics').read().decode())" >"$out/metrics.txt" || true
"$py" "$here/analyze.py" report "$out" --capacity "$capacity" --levels "$levels" \
  --step-s "$BP_STEP_S" --slo-ms "$slo" --rows "$BP_ROWS" --users "$BP_USERS"
gzip -f "$out"/*.jsonl
