"""bitplane-serve against abusive HTTP on a real uvicorn server (raw sockets
on loopback): truncated and mis-sized bodies, chunked bodies, bodies over
the limit, odd Content-Types, header floods, clients that go away mid-body
and mid-stream. After each, the server must answer the next request
correctly and hold no state for the client that left (generation sessions,
active streams)."""

import asyncio
import json
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra: "
                                      "pip install './python-bindings[serve-test]'")

from bitplane.serve import ServeConfig, create_app  # noqa: E402
from bitplane.serve.generate import Sessions  # noqa: E402
from bitplane.serve.http_protocol import MAX_HEADER_BYTES  # noqa: E402
from bitplane.serve.protocol import ApiError  # noqa: E402

from serve_helpers import ServerThread, free_port, wait_for  # noqa: E402


# -- sessions: bounded even while some are in use ----------------------------

def test_sessions_stay_bounded_while_the_oldest_is_in_use():
    """A stream holding the least recently used session must not stop the
    eviction of the others: new sessions beyond max_sessions were kept
    without bound while the oldest was in use."""

    async def scenario():
        sessions = Sessions(max_sessions=3, ttl_s=600.0)
        busy = sessions.get_or_create("busy", [])
        async with busy.lock:  # a long stream on the oldest session
            for i in range(20):
                sessions.get_or_create(f"s{i}", [])
                assert len(sessions) <= 3
            assert sessions.get_or_create("busy", []) is busy  # in use: kept
            assert sessions.get_or_create("s19", []) is not None
        return len(sessions)

    assert asyncio.run(scenario()) <= 3


def test_sessions_all_in_use_refuses_a_new_one_with_503():
    async def scenario():
        sessions = Sessions(max_sessions=2, ttl_s=600.0)
        a, b = sessions.get_or_create("a", []), sessions.get_or_create("b", [])
        async with a.lock, b.lock:
            with pytest.raises(ApiError) as e:
                sessions.get_or_create("c", [])
            assert sessions.get_or_create("a", []) is a  # a known one still goes on
        assert sessions.get_or_create("c", []) is not None  # a or b dropped now
        return e.value, len(sessions)

    err, n = asyncio.run(scenario())
    assert err.status == 503 and err.headers == {"Retry-After": "1"}
    assert err.message == "all 2 generation sessions are in use; retry later"
    assert n == 2


# -- raw HTTP against a real server ------------------------------------------

LIMIT = 4096  # --max-request-bytes of the abused servers
INFER = "/v2/models/digits/infer"


def _good_body(x):
    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}],
                       "parameters": {"planes": 3}}).encode()


def _request(body, headers=(), path=INFER, method="POST"):
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


def _chunked(body, size=100):
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def _read_response(f):
    """(status, headers, body) of one response from a socket's file, None
    when the server closed the connection without one."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline().rstrip(b"\r\n")
        if not h:
            break
        k, _, v = h.partition(b":")
        headers[k.decode().lower()] = v.strip().decode("latin-1")
    if "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    else:  # chunked (the event stream)
        body = b""
        while True:
            n = int(f.readline().strip(), 16)
            body += f.read(n)
            f.readline()
            if n == 0:
                break
    return status, headers, body


def _exchange(port, raw, responses=1, timeout=10.0):
    """Sends `raw` on one connection and reads up to `responses` answers
    (fewer when the server closes first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        f = s.makefile("rb")
        out = []
        for _ in range(responses):
            r = _read_response(f)
            if r is None:
                break
            out.append(r)
        return out


def _send_and_close(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)


def _send_flood(port, raw):
    """The answer to `raw`, which the server may answer and close before
    all of it is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_response(s.makefile("rb"))


def _assert_json_error(response, status, message):
    got_status, headers, body = response
    assert got_status == status, (got_status, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": message} or message in json.loads(body)["error"], body


@pytest.fixture(scope="module")
def digits_server():
    app = create_app("digits", ServeConfig(calibrate=False, max_request_bytes=LIMIT))
    with ServerThread(app) as s:
        s.model = app.state.server.model
        s.port = int(s.url.rsplit(":", 1)[1])
        yield s


def _assert_answers_correctly(server, rng):
    """A good request on a new connection: 200 and the library's answer."""
    x = rng.standard_normal((2, 64)).astype(np.float32)
    body = _good_body(x)
    (r,) = _exchange(server.port, _request(body, [("Content-Length", len(body)),
                                                  ("Connection", "close")]))
    assert r[0] == 200, r
    out = json.loads(r[2])["outputs"][0]
    np.testing.assert_array_equal(np.array(out["data"], np.float32).reshape(out["shape"]),
                                  server.model.forward(x, 3, 8))


def test_body_sizes_and_framing(digits_server, rng):
    """Content-Length smaller or larger than the body, chunked bodies,
    bodies over the limit (declared or streamed): a JSON answer where the
    request reached the server, and the connection still serves the next
    request where HTTP allows."""
    port = digits_server.port
    body = _good_body(rng.standard_normal((1, 64)).astype(np.float32))
    good = _request(body, [("Content-Length", len(body))])

    # Smaller: the server reads Content-Length bytes (a cut JSON document,
    # answered 400 when the rest comes later) and the rest as the next
    # request, which the HTTP parser refuses (400, closed).
    raw = _request(body, [("Content-Length", len(body) - 40)])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw[:-40])
        f = s.makefile("rb")
        _assert_json_error(_read_response(f), 400, "request body is not valid JSON")
        s.sendall(raw[-40:])
        r = _read_response(f)
        _assert_json_error(r, 400, "invalid HTTP request")
        assert r[1]["connection"] == "close", r
    # Chunked, whole: answered as with Content-Length, then the next request.
    r = _exchange(port, _request(_chunked(body), [("Transfer-Encoding", "chunked")]) + good, 2)
    assert [x[0] for x in r] == [200, 200], r
    # Over the limit, declared: refused before the body is read; the body
    # is skipped and the same connection answers the next request.
    big = b"[" + b"0," * LIMIT + b"0]"
    r = _exchange(port, _request(big, [("Content-Length", len(big))]) + good, 2)
    _assert_json_error(r[0], 413, f"request body of {len(big)} bytes exceeds the limit of "
                                  f"{LIMIT} bytes")
    assert r[1][0] == 200, r
    # Over the limit, chunked (no declared length): refused as it arrives.
    r = _exchange(port, _request(_chunked(big, 1000), [("Transfer-Encoding", "chunked")])
                  + good, 2)
    _assert_json_error(r[0], 413, f"request body exceeds the limit of {LIMIT} bytes")
    assert r[1][0] == 200, r
    # Larger than the body, then the client goes away: nobody to answer.
    _send_and_close(port, _request(body, [("Content-Length", len(body) + 50)]))
    # Malformed framing never reaches the application: the HTTP parser
    # refuses it (conflicting lengths, a bad chunk size, a non-numeric or
    # negative length, both a length and chunks, garbage) with the JSON
    # error and closes; it was uvicorn's plain text.
    for raw in (_request(body, [("Content-Length", len(body)), ("Content-Length", 5)]),
                _request(b"zz\r\nabc\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")]),
                _request(body, [("Content-Length", "abc")]),
                _request(body, [("Content-Length", "-5")]),
                _request(_chunked(body), [("Content-Length", 10),
                                          ("Transfer-Encoding", "chunked")]),
                b"\x00\x01 GARBAGE\r\n\r\n"):
        (r,) = _exchange(port, raw, 2)
        _assert_json_error(r, 400, "invalid HTTP request: the request line, headers or body "
                                   "framing")
        assert r[1]["connection"] == "close", r
    _assert_answers_correctly(digits_server, rng)


def test_content_type_is_not_checked(digits_server, rng):
    """KServe v2 JSON is application/json, but the body is read as the
    protocol says whatever the header: clients that send none, text/plain
    or octet-stream (tritonclient's binary extension) are answered."""
    body = _good_body(rng.standard_normal((1, 64)).astype(np.float32))
    for ctype in (None, "application/json", "text/plain", "application/octet-stream",
                  "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        headers = [("Content-Length", len(body))] + ([("Content-Type", ctype)] if ctype else [])
        (r,) = _exchange(digits_server.port, _request(body, headers))
        assert r[0] == 200 and r[1]["content-type"] == "application/json", (ctype, r)
    # Not JSON under a JSON Content-Type: the precise 400.
    (r,) = _exchange(digits_server.port, _request(b"a=1&b=2", [
        ("Content-Length", 7), ("Content-Type", "application/x-www-form-urlencoded")]))
    _assert_json_error(r, 400, "request body is not valid JSON")


def test_header_floods(digits_server, rng):
    """Headers up to the limit are answered; beyond it (thousands of
    headers, one of 16 MiB) 431 with the JSON error, without collecting
    them (httptools took 5 s of the event loop's CPU for a 64 MiB header);
    a malformed binary-extension header is the precise 400. The server
    goes on."""
    body = _good_body(rng.standard_normal((1, 64)).astype(np.float32))
    port = digits_server.port
    limit = f"request headers exceed the limit of {MAX_HEADER_BYTES} bytes"
    many = [("Content-Length", len(body))] + [(f"X-Flood-{i}", "v" * 40) for i in range(1000)]
    (r,) = _exchange(port, _request(body, many))
    assert r[0] == 200, r
    many = [("Content-Length", len(body))] + [(f"X-Flood-{i}", "v" * 40) for i in range(3000)]
    (r,) = _exchange(port, _request(body, many))
    _assert_json_error(r, 431, limit)
    (r,) = _exchange(port, _request(body, [("Content-Length", len(body)),
                                           ("X-Big", "v" * (MAX_HEADER_BYTES - 1000))]))
    assert r[0] == 200, r
    r = _send_flood(port, _request(body, [("Content-Length", len(body)),
                                          ("X-Big", "v" * (16 << 20))]))
    _assert_json_error(r, 431, limit)
    (r,) = _exchange(port, _request(body, [("Content-Length", len(body)),
                                           ("Inference-Header-Content-Length", "12x")]))
    _assert_json_error(r, 400, "Inference-Header-Content-Length must be an integer, got '12x'")
    _assert_answers_correctly(digits_server, rng)


def test_client_gone_mid_request(digits_server, rng):
    """Clients that close mid-headers or mid-body: no answer owed, nothing
    queued for them, and the next client is answered."""
    body = _good_body(rng.standard_normal((1, 64)).astype(np.float32))
    server = digits_server
    for raw in (_request(body, [("Content-Length", len(body))])[:-len(body) + 20],
                f"POST {INFER} HTTP/1.1\r\nContent-Len".encode()):
        for _ in range(20):
            _send_and_close(server.port, raw)
    _assert_answers_correctly(server, rng)
    batcher = server.server.config.app.state.server.batcher
    assert batcher.queue_depth() == 0


def test_client_gone_while_queued(rng, caplog):
    """A client that sends a whole request and leaves before its answer
    (the batch waits for more rows): computed, the answer dropped, no
    error logged, and the next client is answered."""
    app = create_app("digits", ServeConfig(calibrate=False, max_wait_ms=300))
    body = _good_body(rng.standard_normal((1, 64)).astype(np.float32))
    with ServerThread(app) as s:
        s.model = app.state.server.model
        s.port = int(s.url.rsplit(":", 1)[1])
        batcher = app.state.server.batcher
        for _ in range(5):
            _send_and_close(s.port, _request(body, [("Content-Length", len(body))]))
        end = time.monotonic() + 10
        while batcher.queue_depth() and time.monotonic() < end:
            time.sleep(0.02)
        _assert_answers_correctly(s, rng)
        assert batcher.queue_depth() == 0
    errors = [r for r in caplog.records if r.levelno >= 40]
    assert not errors, [r.getMessage() for r in errors]


def _read_events(f, n):
    """The first n server-sent events of a chunked event stream."""
    line = f.readline()
    assert line.startswith(b"HTTP/1.1 200"), line
    while f.readline().strip():
        pass  # headers
    events, buf = [], b""
    while len(events) < n:
        size = int(f.readline().strip(), 16)
        buf += f.read(size)
        f.readline()
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            events.append(json.loads(event[len(b"data: "):]))
    return events


def test_client_gone_mid_stream():
    """Generation streams whose clients leave after a few events: each
    stream stops (no active stream left), its session is released (the
    same session_id continues at once) and the store stays within
    max_sessions; then a whole generation is answered."""
    app = create_app("char-gru", ServeConfig(calibrate=False, max_sessions=4))
    server = app.state.server
    with ServerThread(app) as s:
        port = int(s.url.rsplit(":", 1)[1])
        for i in range(10):
            doc = json.dumps({"text_input": "Hello", "parameters": {
                "max_tokens": 1024, "session_id": f"gone-{i}"}}).encode()
            with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
                sock.sendall(_request(doc, [("Content-Length", len(doc)),
                                            ("Content-Type", "application/json")],
                                      path="/v2/models/char-gru/generate_stream"))
                events = _read_events(sock.makefile("rb"), 3)
            assert [e["index"] for e in events] == [0, 1, 2]
        wait_for(lambda: server.steps.active == 0, "the left streams to stop")
        assert len(server.sessions) <= 4
        # The last session is free: it continues where its stream stopped.
        doc = json.dumps({"text_input": "", "parameters": {"max_tokens": 2,
                                                           "session_id": "gone-9"}}).encode()
        (r,) = _exchange(port, _request(doc, [("Content-Length", len(doc))],
                                        path="/v2/models/char-gru/generate"))
        assert r[0] == 200 and json.loads(r[2])["tokens"] == 2, r
        assert not any(sess.lock.locked() for sess in server.sessions._items.values())


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "starlette route"])
def test_binary_header_given_twice_is_refused(fast, rng):
    """Two Inference-Header-Content-Length headers: which one splits the
    body is ambiguous (the fast path took the last, the Starlette route
    the first), so the request is refused with the same 400 on both."""
    app = create_app("digits", ServeConfig(calibrate=False))
    if not fast:
        app.fast_routes.clear()
    x = rng.standard_normal((1, 64)).astype(np.float32)
    raw = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    body = head + raw
    with ServerThread(app) as s:
        port = int(s.url.rsplit(":", 1)[1])
        for lengths in ([str(len(head)), "5"], ["5", str(len(head))]):
            headers = [("Content-Length", len(body))]
            headers += [("Inference-Header-Content-Length", n) for n in lengths]
            (r,) = _exchange(port, _request(body, headers))
            _assert_json_error(r, 400, "Inference-Header-Content-Length given 2 times; "
                                       "send it once")
        (r,) = _exchange(port, _request(body, [("Content-Length", len(body)),
                                               ("Inference-Header-Content-Length",
                                                str(len(head)))]))
        assert r[0] == 200, r


# -- strings the answer echoes -------------------------------------------------

def test_lone_surrogates_in_echoed_strings_are_400(rng):
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"), which no UTF-8
    answer can carry: an infer 'id' or a generation 'session_id' made of one
    is refused with a precise 400 (it was a 500 when the answer echoed it)."""
    data = ",".join(["0.5"] * 64)
    infer = ('{"id": "a\\ud800", "inputs": [{"name": "input", "shape": [1, 64], '
             f'"datatype": "FP32", "data": [{data}]}}]}}').encode()
    cases = [("digits", "infer", infer, "'id' must be a string of Unicode text, "
                                        "got one with a lone surrogate"),
             ("char-gru", "generate",
              b'{"text_input": "a", "parameters": {"session_id": "\\udfff", "max_tokens": 1}}',
              "'session_id' must be a string of 1..128 characters of Unicode text, "
              "got one with a lone surrogate"),
             ("char-gru", "generate_stream",
              b'{"text_input": "a", "parameters": {"session_id": "\\ud800x"}}',
              "'session_id' must be a string of 1..128 characters of Unicode text, "
              "got one with a lone surrogate")]
    for model in ("digits", "char-gru"):
        app = create_app(model, ServeConfig(calibrate=False))
        with ServerThread(app) as s:
            port = int(s.url.rsplit(":", 1)[1])
            for _, route, body, message in [c for c in cases if c[0] == model]:
                (r,) = _exchange(port, _request(body, [("Content-Length", len(body))],
                                                path=f"/v2/models/{model}/{route}"))
                _assert_json_error(r, 400, message)


def test_client_gone_mid_body_on_starlette_routes(caplog):
    """A client that leaves mid-body on a route behind FastAPI (generation;
    infer when it does not take the fast path): nobody to answer, and no
    'internal error' with a traceback in the log (it was one, and a 500)."""
    body = b'{"text_input": "abc"}'
    for model, route, fast in (("char-gru", "generate", True),
                               ("char-gru", "generate_stream", True),
                               ("digits", "infer", False)):
        app = create_app(model, ServeConfig(calibrate=False))
        if not fast:
            app.fast_routes.clear()
        with ServerThread(app) as s:
            port = int(s.url.rsplit(":", 1)[1])
            for _ in range(3):
                _send_and_close(port, _request(body, [("Content-Length", len(body) + 10)],
                                               path=f"/v2/models/{model}/{route}"))
            time.sleep(0.2)  # the server reads the disconnect
            (r,) = _exchange(port, _request(b"{}", [("Content-Length", 2)],
                                            path=f"/v2/models/{model}/{route}"))
            assert r[0] == 400, r
    errors = [r for r in caplog.records if r.levelno >= 40]
    assert not errors, [r.getMessage() for r in errors]


def test_bitplane_serve_process_bounds_headers():
    """The bitplane-serve process runs the bounded protocol (--http auto)."""
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bitplane.serve.cli", "--port", str(port),
                             "--log-level", "warning"], stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                (r,) = _exchange(port, _request(b"", [("Content-Length", 0)],
                                                path="/v2/health/live", method="GET"))
                break
            except OSError:
                assert time.monotonic() < end and proc.poll() is None, "server did not start"
                time.sleep(0.1)
        assert r[0] == 200
        r = _send_flood(port, _request(b"{}", [("Content-Length", 2),
                                               ("X-Big", "v" * (1 << 20))]))
        _assert_json_error(r, 431, f"request headers exceed the limit of {MAX_HEADER_BYTES} "
                                   "bytes")
        (r,) = _exchange(port, b"\x00 GARBAGE\r\n\r\n")
        _assert_json_error(r, 400, "invalid HTTP request")
    finally:
        proc.terminate()
        proc.wait(30)


def test_all_sessions_in_use_is_503_over_http():
    """With every session held by a live stream, a request for a new one is
    503 with Retry-After; once the stream's client leaves, it is served."""
    app = create_app("char-gru", ServeConfig(calibrate=False, max_sessions=1))
    server = app.state.server
    stream = json.dumps({"text_input": "Hi", "parameters": {"max_tokens": 1024,
                                                            "session_id": "a"}}).encode()
    other = json.dumps({"text_input": "Hi", "parameters": {"max_tokens": 2,
                                                           "session_id": "b"}}).encode()
    with ServerThread(app) as s:
        port = int(s.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(_request(stream, [("Content-Length", len(stream))],
                                  path="/v2/models/char-gru/generate_stream"))
            _read_events(sock.makefile("rb"), 1)
            (r,) = _exchange(port, _request(other, [("Content-Length", len(other))],
                                            path="/v2/models/char-gru/generate"))
            _assert_json_error(r, 503, "all 1 generation sessions are in use; retry later")
            assert r[1]["retry-after"] == "1"
        wait_for(lambda: server.steps.active == 0, "the stream to stop")
        (r,) = _exchange(port, _request(other, [("Content-Length", len(other))],
                                        path="/v2/models/char-gru/generate"))
        assert r[0] == 200 and json.loads(r[2])["session_id"] == "b", r


# -- values found by schemathesis' command line ---------------------------------

def test_tiny_temperature_samples_as_greedy():
    """A temperature of 5e-324 (in 0..10, so valid) overflowed the logits'
    scaling to inf and NaN probabilities: a 500, or a stream cut after its
    200. As temperature goes to 0 sampling is greedy, and so it answers."""
    app = create_app("char-gru", ServeConfig(calibrate=False))
    with ServerThread(app) as s:
        port = int(s.url.rsplit(":", 1)[1])
        texts = []
        for temperature in (0, 5e-324, 1e-300):
            doc = json.dumps({"text_input": "The ", "parameters": {
                "max_tokens": 8, "temperature": temperature, "seed": 3}}).encode()
            (r,) = _exchange(port, _request(doc, [("Content-Length", len(doc))],
                                            path="/v2/models/char-gru/generate"))
            assert r[0] == 200, (temperature, r)
            texts.append(json.loads(r[2])["text_output"])
    assert texts[1] == texts[2] == texts[0], texts
