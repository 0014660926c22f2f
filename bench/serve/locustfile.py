"""Locust load for bitplane-serve: a model's test inputs against their labels
(BP_MODEL: a bundled name, default digits, or a Linear stack file whose
test_x/test_y it reads, as make_model.py writes them).

Every request sends BP_ROWS test images (binary tensor data, as tritonclient
does) at the precision BP_PLANES (an integer or "auto"), and the response's
argmax is scored against the labels. The load steps through BP_LEVELS
(multiples of BP_CAPACITY requests/s), BP_STEP_S seconds each.

Arrivals are open-loop: the offered rate, not the user count, sets the
load. Each of BP_USERS users draws its next start time from an exponential
distribution with mean BP_USERS / rate (so together they approximate a
Poisson stream at the step's rate), the first gap too (drawn at spawn), and sends as soon
as that time comes if it is free. A user waits for its answer, so the
stream stays open only while fewer than BP_USERS requests are in flight:
with rate x latency below BP_USERS (run-loadtest.sh sizes BP_USERS from the
highest level and the SLO) a slow server does not slow the arrivals. Each
record carries `lag_ms`, how late its request left against its scheduled
start (a user still waiting for an answer, or the generator short of CPU):
the analysis reports it, since a late send is load not offered.

BP_LEVELS=probe instead runs BP_USERS users without pauses for BP_STEP_S
seconds (closed loop: the capacity probe). Each answer is appended to BP_OUT
as one JSON line; every BP_SAMPLE-th keeps its outputs for the bit-exact
check. The run stops by itself after the last step or BP_MAX_REQUESTS
requests.
"""

import gc
import json
import os
import random
import resource
import time
from pathlib import Path

import gevent
import numpy as np
from locust import FastHttpUser, LoadTestShape, events, task

from bitplane.models import read

PLANES = os.environ.get("BP_PLANES", "8")
PLANES = PLANES if PLANES == "auto" else int(PLANES)
ROWS = int(os.environ.get("BP_ROWS", "16"))
CAPACITY = float(os.environ.get("BP_CAPACITY", "100"))
LEVELS_ENV = os.environ.get("BP_LEVELS", "0.5,1,1.5,2,3")
PROBE = LEVELS_ENV == "probe"
LEVELS = [] if PROBE else [float(v) for v in LEVELS_ENV.split(",")]
STEP_S = float(os.environ.get("BP_STEP_S", "10"))
USERS = int(os.environ.get("BP_USERS", "48"))
SAMPLE = int(os.environ.get("BP_SAMPLE", "20"))
MAX_REQUESTS = int(os.environ.get("BP_MAX_REQUESTS", "200000"))
MODEL = os.environ.get("BP_MODEL", "digits")
OUT = open(os.environ.get("BP_OUT", "loadtest.jsonl"), "a")

if MODEL.endswith(".npz"):
    # Only the test arrays: the load generator has no use for the weights
    # (hundreds of MB for a compute-bound stack, read again by every run).
    with np.load(MODEL, allow_pickle=False) as _z:
        _arrays = {k: _z[k] for k in ("test_x", "test_y")}
    NAME = Path(MODEL).stem  # the URL name: the file's stem
else:
    _data = read(MODEL)
    _arrays = _data.arrays
    NAME = _data.name  # the bundled name or the file's stem
TEST_X = np.ascontiguousarray(_arrays["test_x"], np.float32)
TEST_Y = np.asarray(_arrays["test_y"])
_sent = 0
_t0 = None


def current_level():
    if PROBE or _t0 is None:
        return 0.0
    step = int((time.monotonic() - _t0) // STEP_S)
    return LEVELS[min(step, len(LEVELS) - 1)]


def body(offset):
    idx = (offset + np.arange(ROWS)) % len(TEST_X)
    raw = TEST_X[idx].astype("<f4").tobytes()
    # Binary output too: the load generator shares the machine with the
    # server, so it parses as little as it can.
    params = {"planes": PLANES, "binary_data_output": True}
    head = json.dumps({"inputs": [{"name": "input", "shape": [ROWS, TEST_X.shape[1]],
                                   "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": params}).encode()
    return head + raw, str(len(head)), idx


BODIES = [body(offset) for offset in range(len(TEST_X))]  # built once, not per request


class Client(FastHttpUser):
    def on_start(self):
        # Locust runs a user's first task as soon as it spawns and asks
        # wait_time only after it: without this first gap every user would
        # send at once when the run starts (a burst of BP_USERS requests,
        # seconds of queue at half the capacity). The gap is exponential
        # from the spawn, so the users' sends form a Poisson stream from the
        # first request on.
        if PROBE:
            return
        mean_gap = USERS / (max(current_level(), 1e-3) * CAPACITY)
        self._scheduled = time.monotonic() + random.expovariate(1.0 / mean_gap)
        gevent.sleep(max(0.0, self._scheduled - time.monotonic()))

    def wait_time(self):
        if PROBE:
            return 0.0
        # The next scheduled start: an exponential gap after the previous
        # scheduled start (not after the answer), so the arrivals do not
        # follow the latency (the first gap is drawn in on_start).
        mean_gap = USERS / (max(current_level(), 1e-3) * CAPACITY)
        now = time.monotonic()
        prev = getattr(self, "_scheduled", None)
        self._scheduled = (now if prev is None else prev) + random.expovariate(1.0 / mean_gap)
        return max(0.0, self._scheduled - now)

    @task
    def infer(self):
        global _sent
        _sent += 1
        if _sent > MAX_REQUESTS:
            self.environment.runner.quit()
            return
        level = current_level()
        offset = random.randrange(len(TEST_X))
        payload, head_len, idx = BODIES[offset]
        start = time.monotonic()
        scheduled = getattr(self, "_scheduled", start)
        with self.client.post(f"/v2/models/{NAME}/infer", data=payload,
                              headers={"Inference-Header-Content-Length": head_len,
                                       "Content-Type": "application/octet-stream"},
                              catch_response=True, name=f"infer planes={PLANES}") as r:
            latency = time.monotonic() - start
            rec = {"t": start, "level": level, "latency_ms": latency * 1e3,
                   "lag_ms": max(0.0, start - scheduled) * 1e3,
                   "status": r.status_code, "rows": ROWS}
            if r.status_code == 200:
                raw = r.content
                n = int(r.headers["Inference-Header-Content-Length"])
                doc = json.loads(raw[:n])
                out = doc["outputs"][0]
                y = np.frombuffer(raw, "<f4", offset=n).reshape(out["shape"])
                rec["planes"] = doc["parameters"]["planes"]
                rec["queue_ms"] = doc["parameters"]["queue_ms"]
                rec["compute_ms"] = doc["parameters"]["compute_ms"]
                rec["batch_rows"] = doc["parameters"]["batch_rows"]
                rec["correct"] = int((y.argmax(axis=1) == TEST_Y[idx]).sum())
                if _sent % SAMPLE == 0:
                    rec["offset"] = offset
                    rec["y"] = y.ravel().tolist()
                r.success()
            else:
                rec["error"] = r.text[:200]
                r.failure(f"status {r.status_code}")
            OUT.write(json.dumps(rec) + "\n")


class Steps(LoadTestShape):
    def tick(self):
        global _t0
        if _t0 is None:
            _t0 = time.monotonic()
        elapsed = time.monotonic() - _t0
        total = STEP_S * (1 if PROBE else len(LEVELS))
        if elapsed >= total:
            return None
        return USERS, USERS


_cpu0 = None


def _cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@events.test_start.add_listener
def _start(**_):
    global _cpu0
    # What the imports and the bodies made lives to the end: frozen out of
    # the collector, so that a full collection scans only what the run
    # allocates. Without it locust's full collections paused the generator
    # for 100-114 ms a few times a run, adding that to every request then in
    # flight (a latency the server never caused).
    gc.collect()
    gc.freeze()
    _cpu0 = (_cpu_s(), time.monotonic())


@events.quitting.add_listener
def _close(environment, **_):
    OUT.flush()
    # Locust's own CPU time from the first user to the end (its start-up,
    # imports and body building excluded), for BP_CPU_OUT if set.
    path = os.environ.get("BP_CPU_OUT")
    if path and _cpu0 is not None:
        with open(path, "w") as f:
            json.dump({"cpu_s": _cpu_s() - _cpu0[0], "wall_s": time.monotonic() - _cpu0[1]}, f)
