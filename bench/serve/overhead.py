"""The server's added latency per request at low load: one client sends
one-row digits requests (8 planes) one at a time, with gaps, and each is
paired with a direct library call for the same row and planes made just
before it in the same process. Added latency = round trip - direct call, per
pair; the report gives its median and p99 for each server configuration.

Every configuration runs as its own bitplane-serve process, and the
configurations take turns request by request, so the machine's changing load
hits them alike. The round trip includes the Python client (http.client);
the /v2/health/live round trip, also timed, is the floor of client + HTTP
stack without the model. The server process's CPU time per infer request
(from /proc, the paired phase minus a phase of live requests alone) is
reported too: the machine's load disturbs it less than latency, but on a
loaded machine a request after an idle gap runs with cold caches (a direct
library call measured 42 us of CPU back to back and 378 us after 10 ms
gaps at load 15), so compare configurations within one run.

    python bench/serve/overhead.py [--requests 600] [--out FILE.jsonl]

Configurations: `default` (uvloop + httptools when installed, small batches
on the event loop's thread), `worker-thread` (--inline-compute-ms 0: every
batch handed to the worker thread), `pure-python-stack` (--http h11 --loop
asyncio).
"""

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import time

import numpy as np

from bitplane._sweep_run import proc_cpu_model
from bitplane.serve.served import load

CONFIGS = {
    "default": [],
    "worker-thread": ["--inline-compute-ms", "0"],
    "pure-python-stack": ["--http", "h11", "--loop", "asyncio"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model() -> str:
    return proc_cpu_model() or platform.processor() or "unknown"


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(args):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bitplane.serve.cli", "--port", str(port),
                             "--log-level", "warning", *args], stderr=subprocess.DEVNULL)
    end = time.monotonic() + 120
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v2/health/ready")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return proc, port
        except OSError:
            pass
        if time.monotonic() > end or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"bitplane-serve {' '.join(args)} did not start")
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=600, help="per configuration")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--out", help="append the JSON line to this file too")
    opts = ap.parse_args()

    m = load("digits")
    x = np.ascontiguousarray(m.test_x[:1])
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "data": x.ravel().tolist()}],
                       "parameters": {"planes": 8}}).encode()
    headers = {"Content-Type": "application/json"}
    procs = {name: start(args) for name, args in CONFIGS.items()}
    # Connections made once every server is up (uvicorn closes idle ones after 5 s).
    servers = {name: (proc, http.client.HTTPConnection("127.0.0.1", port, timeout=30))
               for name, (proc, port) in procs.items()}
    stats = {name: {"added": [], "live": [], "server": [], "direct": []} for name in CONFIGS}
    load_before = os.getloadavg()
    cpu = {name: [0.0, 0.0] for name in CONFIGS}  # server CPU s: infer phase, live-only phase
    try:
        for i in range(opts.warmup + opts.requests):
            if i == opts.warmup:
                for name, (proc, _) in servers.items():
                    cpu[name][0] = -cpu_s(proc.pid)
            for name, (_, c) in servers.items():
                s = stats[name]
                t = time.perf_counter()
                c.request("GET", "/v2/health/live")
                c.getresponse().read()
                live = time.perf_counter() - t
                t = time.perf_counter()
                m.forward(x, 8, 8)
                direct = time.perf_counter() - t
                t = time.perf_counter()
                c.request("POST", "/v2/models/digits/infer", body, headers)
                r = c.getresponse()
                doc = json.loads(r.read())
                rt = time.perf_counter() - t
                assert r.status == 200, doc
                if i >= opts.warmup:
                    p = doc["parameters"]
                    s["added"].append(rt - direct)
                    s["direct"].append(direct)
                    s["live"].append(live)
                    s["server"].append((p["queue_ms"] + p["compute_ms"]) / 1e3)
                time.sleep(0.002)  # low load: one request at a time, with gaps
        # The server's CPU time per request, which the machine's load
        # disturbs far less than latency: the phase above (one live + one
        # infer request per round) minus a phase of live requests alone.
        for name, (proc, c) in servers.items():
            cpu[name][0] += cpu_s(proc.pid)
            cpu[name][1] = -cpu_s(proc.pid)
            for _ in range(opts.requests):
                c.request("GET", "/v2/health/live")
                c.getresponse().read()
            cpu[name][1] += cpu_s(proc.pid)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(30)

    def ms(v, q):
        return round(float(np.percentile(v, q)) * 1e3, 3)

    report = {"what": "added latency per request at low load: 1 client, 1 row, 8 planes, "
                      "round trip - direct library call, paired",
              "requests": opts.requests, "cpu": cpu_model(), "cores": os.cpu_count(),
              "loadavg_before": [round(v, 2) for v in load_before],
              "loadavg_after": [round(v, 2) for v in os.getloadavg()], "configs": {}}
    for name, s in stats.items():
        report["configs"][name] = {
            "args": " ".join(CONFIGS[name]),
            "added_ms_median": ms(s["added"], 50), "added_ms_p99": ms(s["added"], 99),
            "direct_call_ms_median": ms(s["direct"], 50),
            "health_live_round_trip_ms_median": ms(s["live"], 50),
            "server_queue_plus_compute_ms_median": ms(s["server"], 50),
            "server_cpu_ms_per_infer": round((cpu[name][0] - cpu[name][1]) / opts.requests * 1e3,
                                             3),
            "server_cpu_ms_per_live": round(cpu[name][1] / opts.requests * 1e3, 3)}
    line = json.dumps(report)
    print(line)
    if opts.out:
        with open(opts.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
