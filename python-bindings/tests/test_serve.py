"""bitplane-serve: endpoints, the bad-input table, batching correctness,
tritonclient as a real client, metrics, overload, generation, and the
server's start, graceful drain and stop as a process."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra: "
                                      "pip install './python-bindings[serve-test]'")
httpx = pytest.importorskip("httpx")

from bitplane.serve import ServeConfig, create_app  # noqa: E402
from bitplane.serve.batcher import Batcher  # noqa: E402
from bitplane.serve.served import load  # noqa: E402

from conftest import gauss  # noqa: E402
from serve_helpers import ServerThread, free_port, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def server(digits):
    app = create_app(digits, ServeConfig(calibrate=False))
    with ServerThread(app) as s:
        s.app = app
        yield s


def infer_body(x, **params):
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    if params:
        body["parameters"] = params
    return body


def as_array(resp):
    out = resp.json()["outputs"][0]
    return np.array(out["data"], np.float32).reshape(out["shape"])


# -- endpoints ------------------------------------------------------------

def test_health_and_metadata(server):
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2/models/digits/ready").json()["ready"] is True
        assert c.get("/v2").json()["name"] == "bitplane-serve"
        meta = c.get("/v2/models/digits").json()
        assert meta["name"] == "digits"
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
        assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]
        assert meta["parameters"]["planes_max"] == 8
        r = c.get("/v2/models/nope")
        assert r.status_code == 404 and "unknown model 'nope'" in r.json()["error"]


@pytest.mark.parametrize("planes", [1, 3, 8])
def test_infer_equals_library(server, digits, rng, planes):
    x = gauss(rng, (5, 64))
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/v2/models/digits/infer", json=infer_body(x, planes=planes, act_bits=6))
    assert r.status_code == 200, r.text
    doc = r.json()
    p = doc["parameters"]
    assert p["planes"] == planes and p["planes_mode"] == "fixed" and p["act_bits"] == 6
    assert p["queue_ms"] >= 0 and p["compute_ms"] > 0
    assert doc["outputs"][0]["parameters"]["planes"] == planes
    np.testing.assert_array_equal(as_array(r), digits.forward(x, planes, 6))


def test_served_digits_is_quantized_as_the_sweep_quantizes_it(digits, rng):
    # Pixels and post-ReLU inputs are non-negative: no layer is rotated, so
    # the served model gives the sweep's (bitplane.models.build) answers.
    import bitplane.models as M
    ref = M.build(M.read("digits"))
    assert [l.matrix.rotation for l in digits.mlp.layers] == [0] * len(ref.layers)
    x = np.abs(gauss(rng, (3, 64)))
    np.testing.assert_array_equal(digits.forward(x, 4, 8), ref(x, planes=4, act_bits=8))


def test_infer_nested_data_and_default_planes(server, digits, rng):
    x = gauss(rng, (2, 64))
    body = infer_body(x)
    body["inputs"][0]["data"] = x.tolist()
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/v2/models/digits/infer", json=body)
    assert r.status_code == 200
    assert r.json()["parameters"]["planes"] == 8
    np.testing.assert_array_equal(as_array(r), digits.forward(x, 8, 8))


def test_auto_respects_min_planes(server, digits, rng):
    x = gauss(rng, (1, 64))
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/v2/models/digits/infer",
                   json=infer_body(x, planes="auto", min_planes=5, deadline_ms=1000))
    p = r.json()["parameters"]
    assert r.status_code == 200 and p["planes_mode"] == "auto" and 5 <= p["planes"] <= 8
    np.testing.assert_array_equal(as_array(r), digits.forward(x, p["planes"], 8))


# -- the bad-input table --------------------------------------------------

def _good():
    return infer_body(np.full((1, 64), 0.5, np.float32))


def _with(path, value):
    body = _good()
    node = body
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(body).encode()


_DELETE = object()
_BAD = [
    # (name, url, raw body, status, error substring)
    ("not json", "digits", b"{bad", 400, "not valid JSON"),
    ("not an object", "digits", b"[1, 2]", 400, "must be a JSON object"),
    ("no inputs", "digits", b"{}", 400, "'inputs' must be a non-empty list"),
    ("two inputs", "digits", json.dumps({"inputs": [_good()["inputs"][0]] * 2}).encode(), 400,
     "one input 'input', got 2"),
    ("wrong input name", "digits", _with(["inputs", 0, "name"], "x"), 400, 'unknown input "x"'),
    ("dtype INT32", "digits", _with(["inputs", 0, "datatype"], "INT32"), 400,
     'datatype "INT32" is not supported'),
    ("shape 1-D", "digits", _with(["inputs", 0, "shape"], [64]), 400,
     "shape must be [rows, 64]"),
    ("wrong width", "digits", _with(["inputs", 0, "shape"], [1, 63]), 400,
     "shape must be [rows, 64] with rows in 1..64, got [1, 63]"),
    ("too many rows", "digits", _with(["inputs", 0, "shape"], [65, 64]), 400, "rows in 1..64"),
    ("data count", "digits", _with(["inputs", 0, "data"], [0.5] * 63), 400,
     "needs 64 values, got 63"),
    ("data strings", "digits", _with(["inputs", 0, "data"], ["a"] * 64), 400,
     "'data' must be a list of numbers"),
    ("data missing", "digits", _with(["inputs", 0, "data"], _DELETE), 400, "'data' is missing"),
    ("NaN", "digits", _with(["inputs", 0, "data"], 2 * [0.5] + [float("nan")] + 61 * [0.5]), 400,
     "contains NaN or Inf (first at [0, 2])"),
    ("Infinity", "digits", _with(["inputs", 0, "data"], [float("inf")] + 63 * [0.5]), 400,
     "contains NaN or Inf"),
    ("planes 0", "digits", _with(["parameters"], {"planes": 0}), 400,
     "'planes' must be in 1..8"),
    ("planes 9", "digits", _with(["parameters"], {"planes": 9}), 400,
     "'planes' must be in 1..8 (the model has 8 planes)"),
    ("planes string", "digits", _with(["parameters"], {"planes": "fast"}), 400,
     "'planes' must be an integer in 1..8 or \"auto\", got \"fast\""),
    ("planes float", "digits", _with(["parameters"], {"planes": 2.5}), 400, "got 2.5"),
    ("act_bits 17", "digits", _with(["parameters"], {"act_bits": 17}), 400,
     "'act_bits' must be in 1..16, got 17"),
    ("min_planes over planes", "digits", _with(["parameters"], {"planes": 2, "min_planes": 4}),
     400, "'planes' (2) is below 'min_planes' (4)"),
    ("deadline negative", "digits", _with(["parameters"], {"deadline_ms": -1}), 400,
     "'deadline_ms' must be a number"),
    ("unknown parameter", "digits", _with(["parameters"], {"plane": 3}), 400,
     "unknown parameter(s) 'plane'"),
    ("unknown output", "digits", _with(["outputs"], [{"name": "logits"}]), 400,
     'unknown output "logits"'),
    ("output parameters", "digits", _with(["outputs"], [{"name": "output", "parameters": 1}]),
     400, "output 'output': 'parameters' must be a JSON object"),
    ("parameters not object", "digits", _with(["parameters"], [1]), 400,
     "'parameters' must be a JSON object"),
    # Falsy non-objects (0, false, "", []) are not "no parameters" either.
    ("input parameters false", "digits", _with(["inputs", 0, "parameters"], False), 400,
     "input 'input': 'parameters' must be a JSON object"),
    ("input parameters []", "digits", _with(["inputs", 0, "parameters"], []), 400,
     "input 'input': 'parameters' must be a JSON object"),
    ("output parameters 0", "digits", _with(["outputs"], [{"name": "output", "parameters": 0}]),
     400, "output 'output': 'parameters' must be a JSON object"),
    ("output parameters empty string", "digits",
     _with(["outputs"], [{"name": "output", "parameters": ""}]), 400,
     "output 'output': 'parameters' must be a JSON object"),
    ("nested 5000 deep", "digits", b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400,
     "request body is not valid JSON: nested too deeply"),
    ("5000-digit integer", "digits", b'{"inputs": [], "id": 1' + b"0" * 5000 + b"}", 400,
     "request body is not valid JSON: Exceeds the limit (4300 digits)"),
    ("data numeric strings", "digits", _with(["inputs", 0, "data"], ["0.5"] * 64), 400,
     "'data' must be a list of numbers (1x64, flat or nested), got strings"),
    ("data bools", "digits", _with(["inputs", 0, "data"], [True] + [0.5] * 63), 400,
     "'data' must be a list of numbers (1x64, flat or nested), got true/false"),
    ("data nulls", "digits", _with(["inputs", 0, "data"], [None] * 64), 400, "got null"),
    ("data a number", "digits", _with(["inputs", 0, "data"], 0.5), 400, "got float"),
    ("data 3-D", "digits", _with(["inputs", 0, "data"], [[[0.5] * 64]]), 400,
     "got lists where numbers belong"),
    ("data 3-D with a string", "digits", _with(["inputs", 0, "data"], [[[0.5] * 63 + ["a"]]]),
     400, "got lists where numbers belong"),
    ("data a bool among numbers", "digits", _with(["inputs", 0, "data"], [0.5] * 63 + [False]),
     400, "got true/false"),
    ("data rows and numbers", "digits", _with(["inputs", 0, "data"], [[0.5] * 63, 0.5]), 400,
     "got a mix of numbers and lists"),
    ("binary_data_output string", "digits", _with(["parameters"], {"binary_data_output": "no"}),
     400, "parameter 'binary_data_output' must be true or false, got \"no\""),
    ("binary_data string", "digits",
     _with(["outputs"], [{"name": "output", "parameters": {"binary_data": "false"}}]), 400,
     "output 'output': parameter 'binary_data' must be true or false, got \"false\""),
    ("planes bool", "digits", _with(["parameters"], {"planes": True}), 400,
     "'planes' must be an integer in 1..8 or \"auto\", got true"),
    ("deadline NaN", "digits", _with(["parameters"], {"deadline_ms": float("nan")}), 400,
     "'deadline_ms' must be a number in (0, 600000], got NaN"),
    ("min_planes 0", "digits", _with(["parameters"], {"min_planes": 0}), 400,
     "'min_planes' must be in 1..8, got 0"),
    ("shape negative", "digits", _with(["inputs", 0, "shape"], [-1, 64]), 400, "got [-1, 64]"),
    ("shape huge", "digits", _with(["inputs", 0, "shape"], [2 ** 62, 64]), 400,
     "rows in 1..64, got [4611686018427387904, 64]"),
    ("unknown model", "mnist", _with(["id"], "a"), 404, "unknown model 'mnist'"),
    ("binary size", "digits", None, 400, "binary_data_size must be 256 bytes"),
]


@pytest.mark.parametrize("name,model,body,status,message", _BAD, ids=[b[0] for b in _BAD])
def test_bad_input(server, name, model, body, status, message):
    headers = {}
    if body is None:  # binary extension with a short payload
        head = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 255}}]}).encode()
        body, headers = head + b"\0" * 255, {"Inference-Header-Content-Length": str(len(head))}
    with httpx.Client(base_url=server.url) as c:
        r = c.post(f"/v2/models/{model}/infer", content=body, headers=headers)
    assert r.status_code == status, r.text
    doc = r.json()
    assert set(doc) == {"error"} and message in doc["error"], doc
    assert "Traceback" not in r.text


def test_answers_correctly_after_every_bad_input(server, digits, rng):
    """The whole bad-input table, then a good request on the same
    connection: the server is still up and its answer is the library's."""
    with httpx.Client(base_url=server.url) as c:
        for _, model, body, status, _ in _BAD:
            if body is not None:
                assert c.post(f"/v2/models/{model}/infer", content=body).status_code == status
        x = gauss(rng, (3, 64))
        r = c.post("/v2/models/digits/infer", json=infer_body(x, planes=5, act_bits=6))
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(as_array(r), digits.forward(x, 5, 6))


def test_fast_path_answers_as_the_starlette_route(digits, rng):
    """The infer fast path (bare ASGI, before the middleware) and the
    Starlette route it stands in for give the same status, headers that
    matter, and body for good and bad requests, and a 500 with the type only
    (the traceback goes to the log) for an unexpected error."""
    x = gauss(rng, (3, 64))
    raw = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"planes": 3, "binary_data_output": True}}).encode()
    requests = [(json.dumps(infer_body(x, planes=5)).encode(), {}),
                (head + raw, {"Inference-Header-Content-Length": str(len(head))}),
                (json.dumps(infer_body(x, planes=9)).encode(), {}),
                (b"{not json", {}),
                (b"{}", {"Content-Length": "x"})]

    async def answers(app):
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://serve") as c:
                out = []
                for body, headers in requests:
                    r = await c.post("/v2/models/digits/infer", content=body, headers=headers)
                    out.append((r.status_code, r.headers.get("content-type"),
                                r.headers.get("inference-header-content-length"),
                                r.headers.get("retry-after"), r.content))
                return out

    fast = create_app(digits, ServeConfig(calibrate=False))
    assert "/v2/models/digits/infer" in fast.fast_routes
    slow = create_app(digits, ServeConfig(calibrate=False))
    slow.fast_routes.clear()
    a, b = asyncio.run(answers(fast)), asyncio.run(answers(slow))
    for got, ref in zip(a, b):
        # Status, content type, Retry-After; the binary header's length
        # varies with the timings' digits.
        assert (got[0], got[1], got[3]) == (ref[0], ref[1], ref[3])
        assert (got[2] is None) == (ref[2] is None)
        if got[2] is None:  # JSON: equal apart from the timings
            g, r = json.loads(got[4]), json.loads(ref[4])
            for doc in (g, r):
                for key in ("queue_ms", "compute_ms"):
                    doc.get("parameters", {}).pop(key, None)
            assert g == r
        else:
            n, m = int(got[2]), int(ref[2])
            assert got[4][n:] == ref[4][m:]
            g, r = json.loads(got[4][:n]), json.loads(ref[4][:m])
            for doc in (g, r):
                for key in ("queue_ms", "compute_ms"):
                    doc["parameters"].pop(key)
            assert g == r
    assert [s[0] for s in a] == [200, 200, 400, 400, 400]

    def broken(*_):
        raise RuntimeError("boom")

    fast = create_app(digits, ServeConfig(calibrate=False))
    fast.state.server.batcher.forward_batched = broken

    async def one():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fast),
                                     base_url="http://serve") as c:
            return await c.post("/v2/models/digits/infer", json=infer_body(x, planes=2))

    r = asyncio.run(one())
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (RuntimeError); see the server log"}


def test_request_size_limit(digits):
    app = create_app(digits, ServeConfig(calibrate=False, max_request_bytes=1000))
    with ServerThread(app) as s, httpx.Client(base_url=s.url) as c:
        small = c.post("/v2/models/digits/infer", content=json.dumps(_good()).encode())
        big = infer_body(np.full((8, 64), 0.25, np.float32))
        r = c.post("/v2/models/digits/infer", content=json.dumps(big).encode())
    assert small.status_code == 200
    assert r.status_code == 413
    assert r.json()["error"].startswith("request body of")
    assert "exceeds the limit of 1000 bytes" in r.json()["error"]


def test_unknown_route_and_method(server):
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v3").status_code == 404 and "error" in c.get("/v3").json()
        r = c.get("/v2/models/digits/infer")
        assert r.status_code == 405 and "error" in r.json()
        assert r.headers["allow"] == "POST"  # RFC 9110: a 405 lists the methods
        r = c.delete("/v2/health/live")
        assert r.status_code == 405 and r.headers["allow"] == "GET"


# -- batching -------------------------------------------------------------

def test_forward_batched_mixed_planes_equal_single_calls(digits, rng):
    x = gauss(rng, (40, 64))
    planes = rng.integers(1, 9, size=40)
    for act_bits in (2, 8):
        y = digits.forward_batched(x, planes.tolist(), act_bits)
        for i in range(40):
            np.testing.assert_array_equal(y[i], digits.forward(x[i:i + 1], int(planes[i]),
                                                               act_bits)[0])


def test_forward_batched_small_mixed_batches_equal_single_calls(digits, rng):
    """4-15 rows with a 1-plane row: AUTO runs the LUT kernel below a mean
    of 3 planes and the batched code kernel from it; either way every row
    equals its single call bit for bit."""
    for rows in (4, 7, 9, 15):
        for planes in ([1] * (rows - 1) + [2], [1 + i % 8 for i in range(rows)]):
            x = gauss(rng, (rows, 64))
            y = digits.forward_batched(x, planes, 8)
            for i in range(rows):
                np.testing.assert_array_equal(y[i], digits.forward(x[i:i + 1], planes[i], 8)[0])


def test_forward_batched_is_one_gemm_per_layer(rng):
    calls = []

    class Counting:
        def __init__(self, matrix):
            self.matrix = matrix

        def gemm(self, x, **kw):
            calls.append((x.shape[0], kw["column_planes"]))
            return self.matrix.gemm(x, **kw)

    m = load("digits")
    for layer in m.mlp.layers:
        layer.matrix = Counting(layer.matrix)
    cp = [int(p) for p in rng.integers(1, 9, 16)]
    m.forward_batched(gauss(rng, (16, 64)), cp, 8)
    assert calls == [(16, cp)] * len(m.mlp.layers)


def test_batcher_coalesces_concurrent_requests(digits, rng):
    """Concurrent requests with mixed planes and act_bits share batched calls
    and each gets exactly its single-call answer."""
    n = 48
    xs = [gauss(rng, (int(rng.integers(1, 4)), 64)) for _ in range(n)]
    planes = rng.integers(1, 9, size=n).tolist()
    act_bits = [int(a) for a in rng.choice([1, 4, 8], size=n)]
    calls = []

    def forward(x, cp, ab):
        calls.append((x.shape[0], ab))
        time.sleep(0.002)  # so requests pile up behind a running batch
        return digits.forward_batched(x, cp, ab)

    async def run():
        b = Batcher(forward, max_batch=32, max_wait_s=0.002, max_queue_rows=512)
        res = await asyncio.gather(*[b.submit(x, p, a) for x, p, a in zip(xs, planes, act_bits)])
        await b.close()
        return res

    results = asyncio.run(run())
    for x, p, a, r in zip(xs, planes, act_bits, results):
        assert r.planes == p
        np.testing.assert_array_equal(r.y, digits.forward(x, p, a))
    # Batched, not one call per request (act_bits 1 rows also split by planes).
    wide = sum(1 for a in act_bits if a >= 2)
    assert len([c for c in calls if c[1] >= 2]) < wide / 3, calls
    assert max(rows for rows, _ in calls) <= 32
    assert any(rows > 4 for rows, _ in calls)


def test_batcher_inline_small_batches(digits, rng):
    """Batches predicted under inline_max_s run on the loop's thread, longer
    ones in the worker thread; both give the single-call answers."""
    threads = []

    def forward(x, cp, ab):
        threads.append(threading.current_thread() is threading.main_thread())
        return digits.forward_batched(x, cp, ab)

    async def run(inline_max_s):
        # Predicted cost: 1 ms per row-plane, so 1-row requests at planes 1..2
        # (<= 2 ms) run inline and planes 3..8 do not.
        b = Batcher(forward, max_batch=1,
                    predict_s=lambda rows, planes, groups: 1e-3 * rows * planes,
                    inline_max_s=inline_max_s)
        xs = [gauss(rng, (1, 64)) for _ in range(8)]
        res = [await b.submit(x, p, 8) for x, p in zip(xs, range(1, 9))]
        await b.close()
        for x, p, r in zip(xs, range(1, 9), res):
            np.testing.assert_array_equal(r.y, digits.forward(x, p, 8))
        return b.inline_batches

    assert asyncio.run(run(2e-3)) == 2 and threads == [True] * 2 + [False] * 6
    threads.clear()
    assert asyncio.run(run(0.0)) == 0 and threads == [False] * 8
    with pytest.raises(ValueError, match="inline_max_s needs predict_s"):
        Batcher(forward, inline_max_s=1e-3)


def test_batcher_times_compute_where_it_runs(digits, rng):
    """The compute time the cost model learns from excludes the hand-off to
    the worker thread (a slow wake-up must not look like a slow model); the
    service time reported beside it includes it (the batch held the queue
    that long, which the controller's service factor predicts)."""
    from concurrent.futures import ThreadPoolExecutor

    class SlowStart(ThreadPoolExecutor):
        def submit(self, fn, *args):
            def late():
                time.sleep(0.05)
                return fn(*args)
            return super().submit(late)

    seen = []
    b = Batcher(digits.forward_batched, max_batch=4,
                on_batch=lambda rows, planes, groups, s, service: seen.append((s, service)))
    b._executor = SlowStart(max_workers=1)
    x = gauss(rng, (1, 64))

    async def run():
        t = time.monotonic()
        r = await b.submit(x, 8, 8)
        total = time.monotonic() - t
        await b.close()
        return r, total

    r, total = asyncio.run(run())
    assert total >= 0.05 and len(seen) == 1 and r.compute_s < 0.04
    compute_s, service_s = seen[0]
    assert compute_s == r.compute_s and 0.05 <= service_s <= total
    np.testing.assert_array_equal(r.y, digits.forward(x, 8, 8))


def test_batcher_refuses_when_full(digits):
    gate = threading.Event()

    def slow(x, cp, ab):
        gate.wait(10)
        return digits.forward_batched(x, cp, ab)

    async def run():
        b = Batcher(slow, max_batch=4, max_queue_rows=8, estimate_s=lambda rows: 2.4)
        x = np.ones((4, 64), np.float32)
        first = asyncio.ensure_future(b.submit(x, 8, 8))
        await asyncio.sleep(0.05)  # the worker holds the first batch
        queued = [asyncio.ensure_future(b.submit(x, 8, 8)) for _ in range(2)]
        await asyncio.sleep(0.01)
        from bitplane.serve.batcher import Overloaded
        with pytest.raises(Overloaded) as e:
            await b.submit(x, 8, 8)
        gate.set()
        await asyncio.gather(first, *queued)
        await b.close()
        return e.value

    err = asyncio.run(run())
    assert err.retry_after_s == 3 and "queue full (8 rows waiting, limit 8)" in str(err)


def test_batcher_sheds_late_requests_only_when_asked(digits):
    """A queued request whose batch is predicted to end past its shed_at is
    refused (Overloaded "slo_late", its projected end attached) while
    shed_late() says so, and served otherwise; the time a batch waits for
    more rows (max_wait_s) is not counted against it."""
    from bitplane.serve.batcher import LATE_PREFIX, Overloaded

    gate = threading.Event()

    def slow(x, cp, ab):
        gate.wait(10)
        return digits.forward_batched(x, cp, ab)

    x = np.ones((1, 64), np.float32)

    async def behind_a_slow_batch(shedding: bool):
        gate.clear()
        b = Batcher(slow, max_batch=1, predict_s=lambda rows, planes, groups: 0.05,
                    shed_late=lambda: shedding)
        first = asyncio.ensure_future(b.submit(x, 8, 8))
        await asyncio.sleep(0.05)  # the worker holds the first batch
        second = asyncio.ensure_future(b.submit(x, 8, 8, shed_at=time.monotonic() + 0.08))
        await asyncio.sleep(0.1)
        gate.set()  # the second's batch is taken 0.1 s on: ends 0.07 s past its shed_at
        out = await asyncio.gather(first, second, return_exceptions=True)
        depth = b.queue_depth()
        await b.close()
        return out, depth

    (first, late), depth = asyncio.run(behind_a_slow_batch(True))
    assert first.batch_rows == 1 and depth == 0
    assert isinstance(late, Overloaded) and late.reason == "slo_late"
    assert str(late).startswith(LATE_PREFIX) and "retry later" in str(late)
    assert late.retry_after_s >= 1 and late.ends_at is not None
    (_, served), _ = asyncio.run(behind_a_slow_batch(False))
    np.testing.assert_array_equal(served.y, digits.forward_batched(x, [8], 8))

    async def alone(finish_s):
        gate.set()
        b = Batcher(slow, max_batch=1, predict_s=lambda rows, planes, groups: 0.01,
                    shed_late=lambda: True, finish_s=finish_s)
        out = await asyncio.gather(b.submit(x, 8, 8, shed_at=time.monotonic() + 0.05),
                                   return_exceptions=True)
        await b.close()
        return out[0]

    # A request that found nothing queued or in flight is served even when
    # its answer is expected past its shed_at (finish_s: the measured tail
    # from a batch's start to the answer): refusing it shortens nobody's
    # wait, and a sequential client whose every request was shed on an
    # over-predicted tail was refused for good (a fuzzed request in CI).
    assert asyncio.run(alone(None)).batch_rows == 1
    assert asyncio.run(alone(lambda rows, planes, groups: 0.2)).batch_rows == 1

    async def behind_one(finish_s):
        gate.clear()
        b = Batcher(slow, max_batch=1, predict_s=lambda rows, planes, groups: 0.01,
                    shed_late=lambda: True, finish_s=finish_s)
        first = asyncio.ensure_future(b.submit(x, 8, 8))
        await asyncio.sleep(0.02)  # the worker holds the first batch
        second = asyncio.ensure_future(b.submit(x, 8, 8, shed_at=time.monotonic() + 0.05))
        await asyncio.sleep(0)
        gate.set()
        out = await asyncio.gather(first, second, return_exceptions=True)
        await b.close()
        return out[1]

    # Behind a batch in flight, the same expected end is shed.
    late = asyncio.run(behind_one(lambda rows, planes, groups: 0.2))
    assert isinstance(late, Overloaded) and late.reason == "slo_late"
    assert asyncio.run(behind_one(None)).batch_rows == 1

    async def alone_with_max_wait():
        gate.set()
        b = Batcher(slow, max_batch=4, max_wait_s=0.2,
                    predict_s=lambda rows, planes, groups: 0.01, shed_late=lambda: True)
        t = time.monotonic()
        r = await b.submit(x, 8, 8, shed_at=t + 0.1)  # waits 0.2 s for rows that never come
        waited = time.monotonic() - t
        await b.close()
        return r, waited

    r, waited = asyncio.run(alone_with_max_wait())
    assert r.batch_rows == 1 and waited >= 0.2


def _gated(digits, **config):
    """An app whose batched calls wait for the returned event (in the worker
    thread, where a long call runs: none runs on the event loop's thread)."""
    gate = threading.Event()
    app = create_app(digits, ServeConfig(calibrate=False, inline_compute_ms=0, **config))
    batcher = app.state.server.batcher
    real = batcher.forward_batched
    batcher.forward_batched = lambda x, cp, ab: (gate.wait(20), real(x, cp, ab))[1]
    return app, batcher, gate


def test_deadline_passed_in_queue_is_504(digits):
    app, batcher, gate = _gated(digits, max_batch=1)
    with ServerThread(app) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        first = threading.Thread(target=lambda: c.post("/v2/models/digits/infer", json=_good()))
        first.start()
        wait_for(lambda: batcher.in_flight_rows == 1, "the first request holds the worker")

        def release():
            wait_for(lambda: batcher.queued_rows == 1, "the second request queues")
            time.sleep(0.2)  # past its 50 ms deadline
            gate.set()

        releaser = threading.Thread(target=release)
        releaser.start()
        r = c.post("/v2/models/digits/infer", content=_with(["parameters"], {"deadline_ms": 50}),
                   headers={"Content-Type": "application/json"})
        first.join()
        releaser.join()
    assert r.status_code == 504 and "deadline passed after" in r.json()["error"]


def test_overload_is_503_with_retry_after(digits):
    app, batcher, gate = _gated(digits, max_batch=1, max_queue_rows=1)
    body = _good()
    with ServerThread(app) as s:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            codes = []
            threads = [threading.Thread(
                target=lambda: codes.append(c.post("/v2/models/digits/infer", json=body)))
                for _ in range(2)]
            threads[0].start()
            wait_for(lambda: batcher.in_flight_rows == 1, "one request in compute")
            threads[1].start()
            wait_for(lambda: batcher.queued_rows == 1, "one request queued")
            r = c.post("/v2/models/digits/infer", json=body)
            gate.set()
            for t in threads:
                t.join()
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert "queue full" in r.json()["error"]
    assert sorted(x.status_code for x in codes) == [200, 200]


def test_metrics_endpoint(server, rng):
    x = gauss(rng, (1, 64))
    with httpx.Client(base_url=server.url) as c:
        for p in (2, "auto"):
            assert c.post("/v2/models/digits/infer", json=infer_body(x, planes=p)).status_code \
                == 200
        c.post("/v2/models/digits/infer", content=b"{")
        text = c.get("/metrics").text
    for name in ('bitplane_request_latency_seconds_bucket{le="0.001",model="digits",planes="2"}',
                 'bitplane_planes_chosen_total{mode="fixed",model="digits",planes="2"}',
                 'bitplane_planes_chosen_total{mode="auto"', "bitplane_batch_rows_bucket",
                 "bitplane_queue_depth_rows", "bitplane_controller_planes",
                 "bitplane_controller_ceiling_planes",
                 'bitplane_cost_batch_seconds{model="digits",planes="3"}',
                 "bitplane_cost_extra_count_seconds",
                 'bitplane_rejected_total{model="digits",reason="bad_request"}'):
        assert name in text, name


def test_gc_pauses_are_timed_by_generation(server):
    """Each garbage collection in the server process is a histogram sample
    by generation (a collection holds the event loop); GCPauses removes only
    its own callback."""
    import gc

    from bitplane.serve.gcpause import GCPauses

    gc.collect()  # a full one, in the server's process
    with httpx.Client(base_url=server.url) as c:
        text = c.get("/metrics").text
    line = next(x for x in text.splitlines()
                if x.startswith('bitplane_gc_pause_seconds_count{generation="2",model="digits"}'))
    assert float(line.split()[-1]) >= 1
    seen = []
    mine, other = GCPauses(lambda g, s: seen.append((g, s))), GCPauses(lambda g, s: None)
    mine.install(), other.install()
    gc.collect(1)
    mine.remove()
    assert seen[-1][0] == 1 and all(s >= 0 for _, s in seen)
    n = len(seen)
    gc.collect(1)
    assert len(seen) == n
    assert other._callback in gc.callbacks
    other.remove()
    assert other._callback not in gc.callbacks


def test_loop_lag_measures_a_blocked_loop():
    """LoopLag samples how late its timer runs: a loop blocked for 40 ms
    shows a sample of about that; recent_s is the largest kept sample; stop
    ends the task."""
    from bitplane.serve.looplag import LoopLag

    seen = []

    async def run():
        lag = LoopLag(period_s=0.002, keep=50, observe=seen.append)
        lag.start()
        await asyncio.sleep(0.02)
        time.sleep(0.04)  # the loop is busy
        await asyncio.sleep(0.01)
        recent = lag.recent_s
        await lag.stop()
        return lag, recent

    lag, recent = asyncio.run(run())
    assert 0.03 <= recent <= 0.5 and max(seen) == pytest.approx(recent)
    assert lag._task is None and all(s >= 0 for s in seen)
    with pytest.raises(ValueError, match="period_s"):
        LoopLag(period_s=0)


def test_controller_sees_the_loop_lag(digits, rng):
    """The latency the SLO controller learns from is the handler's plus the
    event loop's recent lag (the wait before the handler ran); the latency
    metric stays the handler's."""
    app = create_app(digits, ServeConfig(calibrate=False))
    srv = app.state.server
    with ServerThread(app) as s, httpx.Client(base_url=s.url) as c:
        assert c.post("/v2/models/digits/infer",
                      json=infer_body(gauss(rng, (1, 64)), planes=8)).status_code == 200
        seen = srv.controller._latencies[-1]
        assert seen < 0.25
        srv.loop_lag.sample = lambda late_s: None  # hold the samples below
        srv.loop_lag._samples.extend([0.25] * srv.loop_lag._samples.maxlen)
        assert c.post("/v2/models/digits/infer",
                      json=infer_body(gauss(rng, (1, 64)), planes=8)).status_code == 200
        assert srv.controller._latencies[-1] >= 0.25
        text = c.get("/metrics").text
    assert 'bitplane_event_loop_lag_seconds_count{model="digits"}' in text


# -- tritonclient as a real client ------------------------------------------

def test_tritonclient(server, digits, rng):
    http = pytest.importorskip("tritonclient.http", reason="needs tritonclient[http]")
    client = http.InferenceServerClient(url=server.url[len("http://"):])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.get_model_metadata("digits")["inputs"][0]["shape"] == [-1, 64]
    x = gauss(rng, (3, 64))
    for binary in (True, False):
        inp = http.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = http.InferRequestedOutput("output", binary_data=binary)
        res = client.infer("digits", [inp], outputs=[out], parameters={"planes": 5})
        np.testing.assert_array_equal(res.as_numpy("output"), digits.forward(x, 5, 8))
        assert res.get_response()["parameters"]["planes"] == 5
    res = client.infer("digits", [inp])  # no outputs named: binary output by default
    np.testing.assert_array_equal(res.as_numpy("output"), digits.forward(x, 8, 8))
    from tritonclient.utils import InferenceServerException
    with pytest.raises(InferenceServerException, match="'planes' must be in 1..8"):
        client.infer("digits", [inp], parameters={"planes": 12})
    client.close()


# -- generation -------------------------------------------------------------

@pytest.fixture(scope="module")
def gru_server():
    app = create_app("char-gru", ServeConfig(calibrate=False))
    with ServerThread(app) as s:
        s.model = app.state.server.model
        yield s


def _sse(resp):
    return [json.loads(line[len("data: "):]) for line in resp.iter_lines()
            if line.startswith("data: ")]


_BAD_GENERATE = [
    ({"text_input": ""}, "'text_input' must not be empty when starting a session"),
    ({"text_input": "", "parameters": {"session_id": "never-seen"}},
     "'text_input' must not be empty when starting a session"),
    ({"text_input": 5}, "'text_input' must be a string"),
    ({"text_input": "a", "parameters": {"session_id": 5}},
     "'session_id' must be a string of 1..128 characters"),
    ({"text_input": "a", "parameters": {"session_id": "x" * 129}},
     "'session_id' must be a string of 1..128 characters"),
    ({"text_input": "a", "parameters": {"max_tokens": 0}},
     "parameter 'max_tokens' must be in 1..1024, got 0"),
    ({"text_input": "a", "parameters": {"max_tokens": 2.0}},
     "parameter 'max_tokens' must be an integer in 1..1024, got 2.0"),
    ({"text_input": "a", "parameters": {"temperature": "hot"}},
     "'temperature' must be a number in 0..10 (0 = greedy), got \"hot\""),
    ({"text_input": "a", "parameters": {"seed": -1, "temperature": 1}},
     "'seed' must be a non-negative integer, got -1"),
    ({"text_input": "a", "parameters": {"planes": "auto"}},
     "generation takes 'planes' 1..8; \"auto\" is for infer"),
    ({"text_input": "a", "parameters": [1]}, "'parameters' must be a JSON object"),
    ({"text_input": "a", "parameters": []}, "'parameters' must be a JSON object"),
    ({"text_input": "a", "parameters": False}, "'parameters' must be a JSON object"),
]


@pytest.mark.parametrize("endpoint", ["generate", "generate_stream"])
def test_generate_bad_input_is_400_and_the_server_goes_on(gru_server, endpoint):
    """Every refusal comes before the stream starts (a 400 with a JSON
    error, not a broken event stream); then a good request is answered."""
    with httpx.Client(base_url=gru_server.url, timeout=60) as c:
        for doc, message in _BAD_GENERATE:
            r = c.post(f"/v2/models/char-gru/{endpoint}", json=doc)
            assert r.status_code == 400 and r.json() == {"error": message}, (doc, r.text)
        r = c.post("/v2/models/char-gru/generate",
                   json={"text_input": "ab", "parameters": {"max_tokens": 2}})
    assert r.status_code == 200 and r.json()["tokens"] == 2


def test_generate_stream_greedy_equals_library(gru_server):
    m = gru_server.model
    prompt = "The quick brown fox "
    with httpx.Client(base_url=gru_server.url, timeout=60) as c:
        with c.stream("POST", "/v2/models/char-gru/generate_stream",
                      json={"text_input": prompt,
                            "parameters": {"max_tokens": 12, "planes": 4}}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _sse(r)
    tokens = [e["token"] for e in events if "token" in e]
    assert len(tokens) == 12 and events[-1]["finish_reason"] == "length"
    assert all(e["planes"] == 4 for e in events)
    # Greedy decoding by the library over the whole sequence at once.
    seq = m.encode(prompt) + tokens
    logits = m.rnn.logits(np.array(seq[:-1])[:, None], planes=4)[:, 0]
    assert [int(t) for t in np.argmax(logits[len(prompt) - 1:], axis=1)] == tokens


def test_generate_session_continues(gru_server):
    with httpx.Client(base_url=gru_server.url, timeout=60) as c:
        whole = c.post("/v2/models/char-gru/generate",
                       json={"text_input": "Hello", "parameters": {"max_tokens": 10}}).json()
        a = c.post("/v2/models/char-gru/generate",
                   json={"text_input": "Hello",
                         "parameters": {"max_tokens": 4, "session_id": "s1"}}).json()
        b = c.post("/v2/models/char-gru/generate",
                   json={"text_input": "", "parameters": {"max_tokens": 6, "session_id": "s1"}}
                   ).json()
        r = c.post("/v2/models/char-gru/generate",
                   json={"text_input": "", "parameters": {"session_id": "new"}})
        assert r.status_code == 400 and "must not be empty" in r.json()["error"]
        r = c.post("/v2/models/char-gru/generate_stream",
                   json={"text_input": "a", "parameters": {"planes": "auto"}})
        assert r.status_code == 400 and "\"auto\" is for infer" in r.json()["error"]
        r = c.post("/v2/models/char-gru/infer", json=_good())
        assert r.status_code == 400 and "generate_stream" in r.json()["error"]
    assert a["text_output"] + b["text_output"] == whole["text_output"]


# -- the process: start, drain on SIGTERM, stop -------------------------------

def test_process_start_drain_stop(rng):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bitplane.serve.cli", "--port", str(port), "--max-wait-ms", "3000",
         "--max-batch", "64"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < end and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        results = []
        x = gauss(rng, (1, 64))

        def call():
            results.append(httpx.post(url + "/v2/models/digits/infer",
                                      json=infer_body(x, planes=3), timeout=30))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        # Wait until all six wait in the batcher (max wait 3 s), then stop.
        end = time.monotonic() + 20
        while 'bitplane_queue_depth_rows{model="digits"} 6.0' not in httpx.get(
                url + "/metrics").text:
            assert time.monotonic() < end, "the requests did not queue"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        # uvicorn re-raises the signal after its graceful shutdown.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read()
    assert [r.status_code for r in results] == [200] * 6
    assert len({r.json()["parameters"]["batch_rows"] for r in results}) == 1
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert events.index("serving") < events.index("draining") < events.index("stopped"), log


def test_cli_bad_model():
    r = subprocess.run([sys.executable, "-m", "bitplane.serve.cli", "--model", "/no/such.npz"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no model file /no/such.npz" in r.stderr


@pytest.mark.parametrize("argv,message", [
    (["--max-batch", "0"], "argument --max-batch: must be >= 1, got 0"),
    (["--port", "99999"], "argument --port: must be in 0..65535, got 99999"),
    (["--slo-p99-ms", "nan"], "argument --slo-p99-ms: must be a finite number > 0, got nan"),
    (["--max-wait-ms", "-1"], "argument --max-wait-ms: must be a finite number >= 0, got -1"),
    (["--threads", "x"], "argument --threads: expected an integer, got 'x'"),
    (["--min-metric-share", "1.5"], "argument --min-metric-share: must be in 0..1, got 1.5"),
    (["--min-metric-share", "high"],
     "argument --min-metric-share: expected a number in 0..1, got 'high'"),
    (["--model", "BAD"], "BAD: not a plain array archive (.npz)"),
], ids=["max-batch 0", "port 99999", "slo NaN", "max-wait negative", "threads x",
        "metric share 1.5", "metric share text", "corrupt model file"])
def test_cli_refuses_bad_options_with_one_message(tmp_path, capsys, argv, message):
    """Exit status 2 and the message, no traceback: --max-batch 0 divided by
    zero, a corrupt model file raised CorruptError and --port 99999 listened
    on port 34463."""
    from bitplane.serve.cli import main
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\0\1")
    argv = [str(bad) if a == "BAD" else a for a in argv]
    message = message.replace("BAD", str(bad))
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's usage error
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match="--max-batch must be >= 1, got 0"):
        create_app("digits", ServeConfig(calibrate=False, max_batch=0))
    with pytest.raises(ValueError, match=r"--min-metric-share must be in 0..1, got nan"):
        create_app("digits", ServeConfig(calibrate=False, min_metric_share=float("nan")))


def test_user_linear_stack_by_path(tmp_path, rng):
    from bitplane.models import MLP, linear_params, read
    path = tmp_path / "tiny_stack.npz"
    np.savez(path, **{"a.weight": gauss(rng, (32, 16)), "a.bias": gauss(rng, (32,)),
                      "b.weight": gauss(rng, (5, 32))})
    app = create_app(str(path), ServeConfig(calibrate=False, default_planes="auto"))
    ref = MLP(linear_params(read(path)))
    x = gauss(rng, (3, 16))
    with ServerThread(app) as s, httpx.Client(base_url=s.url) as c:
        meta = c.get("/v2/models/tiny_stack").json()
        assert meta["inputs"][0]["shape"] == [-1, 16] and meta["outputs"][0]["shape"] == [-1, 5]
        r = c.post("/v2/models/tiny_stack/infer", json=infer_body(x))
    p = r.json()["parameters"]
    assert r.status_code == 200 and p["planes_mode"] == "auto"
    np.testing.assert_array_equal(as_array(r), ref(x, planes=p["planes"], act_bits=8))


# -- generation batched across sessions ---------------------------------------

@pytest.mark.parametrize("name", ["char-gru", "char-lstm"])
@pytest.mark.parametrize("planes", [6, [6, 1, 8, 3, 5]])
def test_step_batch_equals_each_stream_alone(name, planes, rng):
    """One step call for streams at one or at their own planes
    (bp_rnn_step_columns): each equals reading its token alone."""
    m = load(name)
    st = m.stepper
    states = [st.run([int(t) for t in rng.integers(0, len(m.vocab), 5 + i)], st.zero_state(),
                     6, 8)[1] for i in range(4)] + [st.zero_state()]
    tokens = [int(t) for t in rng.integers(0, len(m.vocab), len(states))]
    logits, new = st.step_batch(tokens, states, planes, 8)
    each = planes if isinstance(planes, list) else [planes] * len(states)
    for i, (tok, s) in enumerate(zip(tokens, states)):
        want_logits, want_state = st.run([tok], s, each[i], 8)
        np.testing.assert_array_equal(logits[i], want_logits)
        for got, want in zip(new[i], want_state):
            for g, w in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):
                np.testing.assert_array_equal(g, np.reshape(w, g.shape))


def test_concurrent_streams_advance_together():
    """Six streams at two plane counts: every tick is one step call for all
    of them (each at its own planes), and each stream's text is what it
    generates alone."""
    from concurrent.futures import ThreadPoolExecutor

    from bitplane.serve.generate import Session, StepBatcher, generate
    from bitplane.serve.protocol import GenerateRequest
    m = load("char-gru")
    prompts = ["The cat ", "Once upon", "Hello, wor", "A", "In the beginning ", "xyz"]
    planes = [3, 6, 3, 6, 3, 6]
    n_tokens = 10

    async def run_all():
        ex = ThreadPoolExecutor(2)
        steps = StepBatcher(m.stepper, ex, tick_wait_s=30.0)  # ticks wait for every stream

        async def one(prompt, p):
            req = GenerateRequest(prompt, n_tokens, p, 8, None, 0.0, None)
            return [e["token"] async for e in
                    generate(m, req, Session(m.stepper.zero_state()), ex, steps)
                    if "token" in e]

        out = await asyncio.gather(*[one(t, p) for t, p in zip(prompts, planes)])
        await steps.close()
        ex.shutdown()
        return out, steps.step_calls

    streams, step_calls = asyncio.run(run_all())
    assert step_calls == n_tokens  # one call per token, whatever the planes
    for prompt, p, tokens in zip(prompts, planes, streams):
        seq = m.encode(prompt) + tokens
        logits = m.rnn.logits(np.array(seq[:-1])[:, None], planes=p)[:, 0]
        assert [int(t) for t in np.argmax(logits[len(prompt) - 1:], axis=1)] == tokens


def test_concurrent_streams_over_http(gru_server):
    m = gru_server.model
    prompts = ["Good morning", "It was the", "Q", "To be or not"]
    results = {}

    def stream(i):
        with httpx.Client(base_url=gru_server.url, timeout=60) as c:
            with c.stream("POST", "/v2/models/char-gru/generate_stream",
                          json={"text_input": prompts[i],
                                "parameters": {"max_tokens": 16, "planes": 2 + i % 2}}) as r:
                results[i] = [e["token"] for e in _sse(r) if "token" in e]

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, prompt in enumerate(prompts):
        seq = m.encode(prompt) + results[i]
        logits = m.rnn.logits(np.array(seq[:-1])[:, None], planes=2 + i % 2)[:, 0]
        assert [int(t) for t in np.argmax(logits[len(prompt) - 1:], axis=1)] == results[i]
    metrics = httpx.get(gru_server.url + "/metrics").text
    assert "bitplane_generation_step_streams_count" in metrics
