"""Throughput of precision batching against one library call per request, with
16 concurrent clients each sending one-row requests at mixed planes (1..8,
or the counts --planes gives).
Prints one JSON line per comparison; run-batching.sh writes them to a file
(with the per-request overhead from overhead.py).

    python batching.py inproc [--model M]   # Batcher vs a thread per client calling the library
    python batching.py http [--model M]     # two servers: --max-batch 64 vs --max-batch 1

M is a bundled name (default digits) or a Linear stack file (make_model.py
writes a compute-bound one). Over HTTP the clients are coroutines of one
process (aiohttp, one connection each) sending the binary tensor extension
as tritonclient does; the report gives the CPU time the client process and
each server used per request, so that a load generator that starves the
server on a small machine shows. The two servers take turns in rounds, so
the machine's changing load hits them alike, and every answer is checked
bit for bit against a direct library call at its planes.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import cpu_model, cpu_s, start  # noqa: E402

from bitplane.serve.app import ServeConfig, _calibrate  # noqa: E402
from bitplane.serve.batcher import Batcher  # noqa: E402
from bitplane.serve.served import load  # noqa: E402

CLIENTS = 16


def _self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def inproc(opts):
    m = load(opts.model)
    x = np.ascontiguousarray(m.test_x[:1])
    rng = np.random.default_rng(0)

    # One library call per request: each client thread calls the model itself.
    counts = [0] * opts.clients
    end = time.monotonic() + opts.duration

    def client(i):
        r = np.random.default_rng(i)
        while time.monotonic() < end:
            m.forward(x, int(r.choice(opts.planes)), 8)
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(opts.clients)]
    t0, c0 = time.monotonic(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    single = sum(counts) / (time.monotonic() - t0)
    single_cpu = (time.process_time() - c0) / sum(counts)

    # Batched: the same clients as coroutines submitting to the batcher, set
    # up as the server sets it up (calibrated cost model, small batches on
    # the loop's thread).
    cost = _calibrate(m, 64)
    inline_s = ServeConfig().inline_compute_ms / 1e3

    async def batched():
        b = Batcher(m.forward_batched, max_batch=64, max_queue_rows=1024,
                    predict_s=lambda rows, planes, groups: cost.batch(planes, rows, groups),
                    inline_max_s=inline_s)
        done = [0]
        stop = time.monotonic() + opts.duration

        async def client():
            while time.monotonic() < stop:
                await b.submit(x, int(rng.choice(opts.planes)), 8)
                done[0] += 1

        t0, c0 = time.monotonic(), time.process_time()
        await asyncio.gather(*[client() for _ in range(opts.clients)])
        rate = done[0] / (time.monotonic() - t0)
        cpu = (time.process_time() - c0) / done[0]
        await b.close()
        return rate, cpu

    rate, cpu = asyncio.run(batched())
    # CPU seconds per request (all threads) is the capacity measure on a
    # shared machine: 16 client threads get more of a loaded machine's CPU
    # than one event loop does, which the requests/s ratio mixes in.
    print(json.dumps({"what": f"in-process, {opts.clients} clients, 1 row, planes "
                              f"{_planes_label(opts.planes)}",
                      "model": m.name, "layers": _layers(m),
                      "one_call_per_request_rps": round(single, 1),
                      "batched_rps": round(rate, 1), "ratio": round(rate / single, 2),
                      "cpu_us_per_request": {"one_call_per_request": round(single_cpu * 1e6, 1),
                                             "batched": round(cpu * 1e6, 1)},
                      "cpu_ratio": round(single_cpu / cpu, 2), "cpu": cpu_model(),
                      "loadavg": [round(v, 2) for v in os.getloadavg()]}), flush=True)


def _planes_label(planes):
    return f"{planes[0]}..{planes[-1]}" if len(planes) > 1 else str(planes[0])


def _layers(m):
    return [m.in_features] + [layer.out_features for layer in m.mlp.layers]


def _binary_body(x, planes):
    raw = np.ascontiguousarray(x, "<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"planes": planes}}).encode()
    return head + raw, len(head)


async def _drive(url, bodies, expected, clients, duration, planes=range(1, 9)):
    """`clients` coroutines, one connection each, sending bodies[planes]
    round robin for `duration` seconds. Returns requests, seconds, client
    CPU seconds, latencies (s), batch rows seen, wrong answers."""
    import aiohttp

    lat, rows, wrong, done = [], [], [0], [0]
    conn = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def warm():
            body, hl = bodies[planes[-1]]
            async with s.post(url, data=body, headers={
                    "Inference-Header-Content-Length": str(hl)}) as r:
                await r.read()

        await asyncio.gather(*[warm() for _ in range(clients)])
        stop = time.monotonic() + duration

        async def client(i):
            k = i
            while time.monotonic() < stop:
                p = planes[k % len(planes)]
                body, hl = bodies[p]
                t = time.perf_counter()
                async with s.post(url, data=body, headers={
                        "Inference-Header-Content-Length": str(hl),
                        "Content-Type": "application/octet-stream"}) as r:
                    raw = await r.read()
                    status = r.status
                lat.append(time.perf_counter() - t)
                if status != 200:
                    raise SystemExit(f"{url}: status {status}: {raw[:200]!r}")
                doc = json.loads(raw)
                y = np.array(doc["outputs"][0]["data"], np.float32)
                if doc["parameters"]["planes"] != p or not np.array_equal(
                        y.view(np.uint32), expected[p].view(np.uint32)):
                    wrong[0] += 1
                rows.append(doc["parameters"]["batch_rows"])
                done[0] += 1
                k += 1

        t0, c0 = time.monotonic(), _self_cpu_s()
        await asyncio.gather(*[client(i) for i in range(clients)])
        return done[0], time.monotonic() - t0, _self_cpu_s() - c0, lat, rows, wrong[0]


def http_compare(opts):
    m = load(opts.model)
    x = np.ascontiguousarray(m.test_x[:1])
    bodies = {p: _binary_body(x, p) for p in opts.planes}
    expected = {p: np.ascontiguousarray(m.forward(x, p, 8)[0]) for p in opts.planes}
    name = m.name
    del m
    # Throughput, not the SLO: the count bound only (SLO admission would
    # refuse the one-row-per-call server's queue on the compute-bound stack).
    common = ["--model", opts.model, "--admission", "queue"]
    servers = {"max_batch_64": start(common + ["--max-batch", "64"]),
               "max_batch_1": start(common + ["--max-batch", "1"])}
    res = {k: {"n": 0, "s": 0.0, "client_cpu": 0.0, "server_cpu": 0.0, "lat": [], "rows": [],
               "wrong": 0} for k in servers}
    load_before = os.getloadavg()
    try:
        for _ in range(opts.rounds):
            for key, (proc, port) in servers.items():
                url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
                c0 = cpu_s(proc.pid)
                n, s, ccpu, lat, rows, wrong = asyncio.run(
                    _drive(url, bodies, expected, opts.clients, opts.duration / opts.rounds,
                           opts.planes))
                r = res[key]
                r["server_cpu"] += cpu_s(proc.pid) - c0
                r["n"] += n
                r["s"] += s
                r["client_cpu"] += ccpu
                r["lat"] += lat
                r["rows"] += rows
                r["wrong"] += wrong
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(30)

    def summary(r):
        lat = np.array(r["lat"]) * 1e3
        return {"rps": round(r["n"] / r["s"], 1), "requests": r["n"], "wrong": r["wrong"],
                "p50_ms": round(float(np.median(lat)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "batch_rows_seen_mean": round(float(np.mean(r["rows"])), 1),
                # CPU shares of the 2 cores during the run: what the load
                # generator takes from the server.
                "client_cpu_ms_per_request": round(r["client_cpu"] / r["n"] * 1e3, 3),
                "server_cpu_ms_per_request": round(r["server_cpu"] / r["n"] * 1e3, 3),
                "client_cpu_cores": round(r["client_cpu"] / r["s"], 2),
                "server_cpu_cores": round(r["server_cpu"] / r["s"], 2)}

    b, s = summary(res["max_batch_64"]), summary(res["max_batch_1"])
    print(json.dumps({"what": f"HTTP, {opts.clients} clients (aiohttp, one process), 1 row, "
                              f"planes {_planes_label(opts.planes)}, binary tensor data",
                      "model": name, "ratio": round(b["rps"] / s["rps"], 2),
                      "max_batch_64": b, "max_batch_1": s, "rounds": opts.rounds,
                      "duration_s": opts.duration, "cpu": cpu_model(), "cores": os.cpu_count(),
                      "loadavg_before": [round(v, 2) for v in load_before],
                      "loadavg_after": [round(v, 2) for v in os.getloadavg()]}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["inproc", "http"])
    ap.add_argument("--model", default="digits")
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BP_DURATION_S", "6")),
                    help="seconds per mode (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=3, help="HTTP: turns per server")
    ap.add_argument("--planes", default="1..8",
                    help="planes of the requests: LO..HI (cycled, the default 1..8) or one count")
    opts = ap.parse_args()
    lo, _, hi = opts.planes.partition("..")
    try:
        opts.planes = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        ap.error(f"--planes: expected LO..HI or a count, got {opts.planes!r}")
    if not opts.planes or not 1 <= opts.planes[0] <= opts.planes[-1] <= 8:
        ap.error("--planes: counts must be within 1..8")
    {"inproc": inproc, "http": http_compare}[opts.mode](opts)


if __name__ == "__main__":
    main()
