#!/usr/bin/env bash
# One evidence run of the default digits sweep: bitplane-sweep with its
# defaults (plus any extra arguments), the load average before and after and
# the CPU model written beside its table, CSV and JSON.
#   run.sh NAME [bitplane-sweep arguments...]
# BP_PY picks the Python (default: the repository's .venv); PYTHONPATH may
# point it at another copy of the package (how the previous code was run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
name=$1; shift
py=${BP_PY:-$root/.venv/bin/python}
out=$here/$name
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  echo "uptime before: $(uptime)"
  echo "command: bitplane-sweep --quiet --no-plots $*"
} > "$out/run.txt"
start=$(date +%s.%N)
"$py" -m bitplane.sweep --quiet --no-plots --out "$out" "$@" >> "$out/run.txt" 2>&1
end=$(date +%s.%N)
echo "uptime after: $(uptime)" >> "$out/run.txt"
echo "process wall: $(echo "$end - $start" | bc) s" >> "$out/run.txt"
