"""Locust load for bitplane-serve: digits test images against their labels.

Every request sends BP_ROWS test images (binary tensor data, as tritonclient
does) at the precision BP_PLANES (an integer or "auto"), and the response's
argmax is scored against the labels. The load steps through BP_LEVELS
(multiples of BP_CAPACITY requests/s), BP_STEP_S seconds each, with BP_USERS
users that pace themselves to the step's rate (closed loop: a user waits for
its answer). BP_LEVELS=probe instead runs BP_USERS users without pauses for
BP_STEP_S seconds (the capacity probe). Each answer is appended to BP_OUT as
one JSON line; every BP_SAMPLE-th keeps its outputs for the bit-exact check.
The run stops by itself after the last step or BP_MAX_REQUESTS requests.
"""

import json
import os
import random
import time

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

_data = read(MODEL)
TEST_X = np.ascontiguousarray(_data.arrays["test_x"], np.float32)
TEST_Y = np.asarray(_data.arrays["test_y"])
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
    params = {"planes": PLANES}
    head = json.dumps({"inputs": [{"name": "input", "shape": [ROWS, TEST_X.shape[1]],
                                   "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": params}).encode()
    return head + raw, len(head), idx


class Client(FastHttpUser):
    def wait_time(self):
        if PROBE:
            return 0.0
        level = current_level()
        interval = USERS / (level * CAPACITY)
        last = getattr(self, "_last_start", None)
        now = time.monotonic()
        wait = 0.0 if last is None else max(0.0, interval - (now - last))
        self._last_start = now + wait
        return wait

    @task
    def infer(self):
        global _sent
        _sent += 1
        if _sent > MAX_REQUESTS:
            self.environment.runner.quit()
            return
        level = current_level()
        offset = random.randrange(len(TEST_X))
        payload, head_len, idx = body(offset)
        start = time.monotonic()
        with self.client.post(f"/v2/models/{MODEL}/infer", data=payload,
                              headers={"Inference-Header-Content-Length": str(head_len),
                                       "Content-Type": "application/octet-stream"},
                              catch_response=True, name=f"infer planes={PLANES}") as r:
            latency = time.monotonic() - start
            rec = {"t": start, "level": level, "latency_ms": latency * 1e3,
                   "status": r.status_code, "rows": ROWS}
            if r.status_code == 200:
                doc = r.json()
                out = doc["outputs"][0]
                y = np.array(out["data"], np.float32).reshape(out["shape"])
                rec["planes"] = doc["parameters"]["planes"]
                rec["queue_ms"] = doc["parameters"]["queue_ms"]
                rec["compute_ms"] = doc["parameters"]["compute_ms"]
                rec["batch_rows"] = doc["parameters"]["batch_rows"]
                rec["correct"] = int((y.argmax(axis=1) == TEST_Y[idx]).sum())
                if _sent % SAMPLE == 0:
                    rec["offset"] = offset
                    rec["y"] = out["data"]
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


@events.quitting.add_listener
def _close(environment, **_):
    OUT.flush()
