#!/usr/bin/env bash
# Load test of bitplane-serve on loopback with locust (headless, bounded):
# probe the capacity of fixed 8-plane serving, then step the load from 0.5x to
# 3x of it for three servers (steps interleaved): planes 8 with the queue's
# count bound only (--admission queue, the baseline), planes 8 with SLO
# admission ("8-shed") and auto with SLO admission; analyze.py writes the
# table (p99, goodput, shed rate, the served metric), the plot and the
# bit-exact check of sampled answers into the output folder. The steps'
# arrivals are open-loop (locustfile.py): enough users that the offered
# rate, not the user count, sets the load, so a server that falls behind
# sees its queue grow as it would in front of real traffic.
# Usage: bench/serve/run-loadtest.sh [OUT_DIR]   (needs bitplane[serve-bench])
# Knobs (env): BP_MODEL (digits; "wide": the compute-bound stack that
#   make_model.py writes, seeded, into a temporary .npz, widths BP_WIDTHS;
#   or a Linear stack file), BP_STEP_S (10), BP_ROWS (32), BP_SLO_MS (100),
#   BP_LEVELS (0.5,1,1.5,2,3), BP_MAX_BATCH (256), BP_PROBE_USERS (32: the
#   closed-loop capacity probe), BP_USERS (the steps' users; default the
#   highest level's rate x 2 SLOs, at least 32, so that arrivals stay open
#   until the latency is twice the SLO), BP_PORT (8471, and the next two),
#   BP_SERVE_ARGS (extra bitplane-serve options for all three servers, e.g.
#   --inline-compute-ms 0), BP_SERVER_CPUS and BP_LOCUST_CPUS (taskset CPU
#   lists, e.g. 0 and 1: the servers and the load generator on their own
#   cores, so that locust's CPU does not come out of the servers'), PYTHON
#   (python3).
# Every step records the CPU time locust and the server used (steps.jsonl):
# on a small machine the load generator competes with the server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../results/serve-loadtest}
py=${PYTHON:-python3}
port=${BP_PORT:-8471}
export BP_STEP_S=${BP_STEP_S:-10} BP_ROWS=${BP_ROWS:-32}
levels=${BP_LEVELS:-0.5,1,1.5,2,3}
slo=${BP_SLO_MS:-100}
max_batch=${BP_MAX_BATCH:-256}
for mod in bitplane.serve locust matplotlib; do
  "$py" -c "import $mod" 2>/dev/null || {
    echo "run-loadtest: $py cannot import $mod; install bitplane[serve-bench]" \
      "into that environment (or set PYTHON)" >&2
    exit 2
  }
done
mkdir -p "$out"
rm -f "$out"/*.jsonl "$out"/*.jsonl.gz "$out"/uptime.txt
tmp=$(mktemp -d)
model=${BP_MODEL:-digits}
if [ "$model" = wide ]; then
  "$py" "$here/make_model.py" "$tmp/wide.npz" --widths "${BP_WIDTHS:-1024,4096,4096,1024,16}"
  model=$tmp/wide.npz
fi
export BP_MODEL=$model
# One server per mode, so that each controller sees only its own traffic;
# the steps are interleaved (every mode at 0.5x, then every mode at 1x, ...)
# so that the machine's changing load hits the modes alike.
modes=(8 8-shed auto)
admission=(queue slo slo)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
# One at a time: each server times the model at start-up (the cost model's
# calibration, the metric per plane count), which concurrent start-ups
# would slow for each other.
for m in 0 1 2; do
  ${BP_SERVER_CPUS:+taskset -c "$BP_SERVER_CPUS"} \
    "$py" -m bitplane.serve.cli --model "$model" --port $((port + m)) --max-batch "$max_batch" \
    --max-queue-rows 4096 --slo-p99-ms "$slo" --admission "${admission[$m]}" \
    --log-level warning ${BP_SERVE_ARGS:-} 2>"$out/server-${modes[$m]}.log" &
  pids+=($!)
  for _ in $(seq 240); do
    "$py" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$((port + m))/v2/health/ready')" \
      2>/dev/null && break
    sleep 0.5
  done
done
cpu_s() { # CPU seconds (user + system) of a process so far
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
loc() { # port planes levels out.jsonl server_pid [mode name, default planes]
  # The shape in locustfile.py ends the run after its steps; timeout is a backstop.
  local s0 s1 t0 t1
  s0=$(cpu_s "$5")
  t0=$(date +%s.%N)
  # The wrapper writes locust's CPU seconds (its children's rusage) to $tmp/time.
  rm -f "$tmp/steady"
  BP_PLANES=$2 BP_LEVELS=$3 BP_OUT=$4 BP_CPU_OUT=$tmp/steady "$py" -c 'import resource, subprocess, sys
subprocess.run(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{u.ru_utime} {u.ru_stime}")' "$tmp/time" \
    timeout "$(( ${BP_STEP_S%.*} * 3 + 60 ))" \
    ${BP_LOCUST_CPUS:+taskset -c "$BP_LOCUST_CPUS"} \
    "$py" -m locust -f "$here/locustfile.py" --headless --host "http://127.0.0.1:$1" \
    --only-summary --loglevel WARNING >/dev/null 2>>"$out/locust.log" || true
  t1=$(date +%s.%N)
  s1=$(cpu_s "$5")
  "$py" -c 'import json, sys, os
lu, ls = map(float, open(sys.argv[1]).read().split()[:2])
a = sys.argv[3:]
rec = {"planes": a[0], "levels": a[1], "wall_s": round(float(a[3]) - float(a[2]), 2),
       "locust_cpu_s": round(lu + ls, 2), "server_cpu_s": round(float(a[5]) - float(a[4]), 2),
       "loadavg": os.getloadavg()}
if os.path.exists(sys.argv[2]):  # locust from its first user on (locustfile.py)
    steady = json.load(open(sys.argv[2]))
    rec["locust_steady_cpu_s"] = round(steady["cpu_s"], 2)
    rec["locust_steady_wall_s"] = round(steady["wall_s"], 2)
print(json.dumps(rec))' "$tmp/time" "$tmp/steady" "${6:-$2}" "$3" "$t0" "$t1" "$s0" "$s1" \
    >>"$out/steps.jsonl"
}
BP_USERS=${BP_PROBE_USERS:-32} loc "$port" 8 probe "$out/probe.jsonl" "${pids[0]}"
capacity=$("$py" "$here/analyze.py" capacity "$out/probe.jsonl" "$BP_STEP_S")
top=$(tr , '\n' <<<"$levels" | sort -g | tail -1)
export BP_USERS=${BP_USERS:-$("$py" -c "import math, sys
print(max(32, math.ceil(float(sys.argv[1]) * float(sys.argv[2]) * 2 * float(sys.argv[3]) / 1e3)))" \
  "$top" "$capacity" "$slo")}
echo "capacity of fixed 8-plane serving: $capacity requests/s of $BP_ROWS rows;" \
  "$BP_USERS open-loop users" >&2
for level in ${levels//,/ }; do
  for m in 0 1 2; do
    BP_CAPACITY=$capacity loc $((port + m)) "${modes[$m]%-shed}" "$level" \
      "$out/planes-${modes[$m]}.jsonl" "${pids[$m]}" "${modes[$m]}"
  done
  uptime >>"$out/uptime.txt"
done
for m in 0 1 2; do
  "$py" -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$((port + m))/metrics').read().decode())" \
    >"$out/metrics-${modes[$m]}.txt" || true
  "$py" -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$((port + m))/v2/models/$(basename "${model%.npz}")').read().decode())" \
    >"$out/metadata-${modes[$m]}.json" || true
done
"$py" "$here/analyze.py" report "$out" --capacity "$capacity" --levels "$levels" \
  --step-s "$BP_STEP_S" --slo-ms "$slo" --rows "$BP_ROWS" --users "$BP_USERS" \
  --model "$model"
gzip -f "$out"/*.jsonl
gunzip -f "$out/steps.jsonl.gz"
find "$out" -name "server-*.log" -empty -delete  # warnings only; none is the usual case
