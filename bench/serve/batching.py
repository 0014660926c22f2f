"""Throughput of precision batching against one library call per request, with
16 concurrent clients each sending one-row digits requests at mixed planes
(1..8). Prints JSON lines; run-batching.sh writes them to a file (with the
per-request overhead from overhead.py).

    python batching.py inproc   # Batcher vs a thread per client calling the library
    python batching.py http PORT_BATCHED PORT_SINGLE   # two running servers
"""

import asyncio
import http.client
import json
import os
import sys
import threading
import time

import numpy as np

from bitplane.serve.app import ServeConfig, _calibrate
from bitplane.serve.batcher import Batcher
from bitplane.serve.served import load

CLIENTS = 16
DURATION_S = float(os.environ.get("BP_DURATION_S", "6"))


def inproc():
    m = load("digits")
    x = np.ascontiguousarray(m.test_x[:1])
    rng = np.random.default_rng(0)

    # One library call per request: each client thread calls the model itself.
    counts = [0] * CLIENTS
    end = time.monotonic() + DURATION_S

    def client(i):
        r = np.random.default_rng(i)
        while time.monotonic() < end:
            m.forward(x, int(r.integers(1, 9)), 8)
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
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
                    predict_s=cost.predict, inline_max_s=inline_s)
        done = [0]
        stop = time.monotonic() + DURATION_S

        async def client():
            while time.monotonic() < stop:
                await b.submit(x, int(rng.integers(1, 9)), 8)
                done[0] += 1

        t0, c0 = time.monotonic(), time.process_time()
        await asyncio.gather(*[client() for _ in range(CLIENTS)])
        rate = done[0] / (time.monotonic() - t0)
        cpu = (time.process_time() - c0) / done[0]
        await b.close()
        return rate, cpu

    rate, cpu = asyncio.run(batched())
    # CPU seconds per request (all threads) is the capacity measure on a
    # shared machine: 16 client threads get more of a loaded machine's CPU
    # than one event loop does, which the requests/s ratio mixes in.
    print(json.dumps({"what": "in-process, 16 clients, 1 row, planes 1..8",
                      "one_call_per_request_rps": round(single, 1),
                      "batched_rps": round(rate, 1), "ratio": round(rate / single, 2),
                      "cpu_us_per_request": {"one_call_per_request": round(single_cpu * 1e6, 1),
                                             "batched": round(cpu * 1e6, 1)},
                      "cpu_ratio": round(single_cpu / cpu, 2),
                      "loadavg": [round(v, 2) for v in os.getloadavg()]}))


def _body(planes):
    x = load("digits").test_x[:1]
    return json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "data": x.ravel().tolist()}],
                       "parameters": {"planes": planes}}).encode()


def http_rate(port, clients=CLIENTS):
    bodies = [_body(p) for p in range(1, 9)]
    counts = [0] * clients
    lat = [[] for _ in range(clients)]
    batch_rows = [[] for _ in range(clients)]
    end = time.monotonic() + DURATION_S

    def client(i):
        c = http.client.HTTPConnection("127.0.0.1", port)
        k = i
        while time.monotonic() < end:
            t = time.perf_counter()
            c.request("POST", "/v2/models/digits/infer", bodies[k % 8],
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            doc = json.loads(r.read())
            assert r.status == 200
            lat[i].append(time.perf_counter() - t)
            batch_rows[i].append(doc["parameters"]["batch_rows"])
            counts[i] += 1
            k += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_lat = np.concatenate([np.array(v) for v in lat]) * 1e3
    rows = np.concatenate([np.array(v) for v in batch_rows])
    return sum(counts) / (time.monotonic() - t0), all_lat, rows


def http_compare(port_batched, port_single):
    b, lb, rb = http_rate(int(port_batched))
    s, ls, _ = http_rate(int(port_single))
    print(json.dumps({"what": "HTTP, 16 clients, 1 row, planes 1..8",
                      "max_batch_1_rps": round(s, 1), "max_batch_64_rps": round(b, 1),
                      "ratio": round(b / s, 2),
                      "batch_rows_seen_by_requests_mean": round(float(rb.mean()), 1),
                      "p50_ms": {"max_batch_1": round(float(np.median(ls)), 2),
                                 "max_batch_64": round(float(np.median(lb)), 2)}}))


if __name__ == "__main__":
    {"inproc": inproc, "http": http_compare}[sys.argv[1]](*sys.argv[2:])
