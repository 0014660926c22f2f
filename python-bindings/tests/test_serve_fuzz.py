"""bitplane-serve under schemathesis: every operation of the server's OpenAPI
document, fuzzed against a real uvicorn server with bodies and parameters
that follow the schemas (positive) and that break them (negative), for
random model names and for the served model's own (the infer fast path).

Checks on every answer: no 5xx (a 504 only for a request with a
deadline_ms), every refusal is the server's ``{"error": message}``, and the
status, content type, headers and body are those the document gives; a
request that breaks the document's schemas is refused. Bounded and
deterministic (hypothesis derandomized: the same cases every run)."""

import json

import numpy as np
import pytest

schemathesis = pytest.importorskip(
    "schemathesis", minversion="4.0",
    reason="the API fuzz test needs schemathesis 4 (Python >= 3.11): "
           "pip install './python-bindings[serve-test]'")
pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra")
import requests  # noqa: E402  (a schemathesis dependency)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, negative_data_rejection, response_headers_conformance,
    response_schema_conformance, status_code_conformance)

from bitplane.serve import ServeConfig, create_app  # noqa: E402
from bitplane.serve.served import load  # noqa: E402

from serve_helpers import ServerThread  # noqa: E402

# Every operation the server has; the document must list exactly these.
OPERATIONS = [
    ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"), ("GET", "/v2"),
    ("GET", "/v2/models/{model_name}"), ("GET", "/v2/models/{model_name}/versions/1"),
    ("GET", "/v2/models/{model_name}/ready"), ("POST", "/v2/models/{model_name}/infer"),
    ("POST", "/v2/models/{model_name}/generate"),
    ("POST", "/v2/models/{model_name}/generate_stream"), ("GET", "/metrics"),
]
# Examples per operation and generation mode (the bodies get more): about
# 13 s of CPU for the whole file, both servers.
EXAMPLES = {"POST": 100, "GET": 10}
CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


class Served:
    """A model on a real server, with a count of fast-path calls."""

    def __init__(self, model, config):
        self.app = create_app(model, config)
        self.model = self.app.state.server.model
        self.name = self.model.name
        self.fast_calls = 0
        path = f"/v2/models/{self.name}/infer"
        handler = self.app.fast_routes[path]

        async def counted(scope, receive, send):
            self.fast_calls += 1
            await handler(scope, receive, send)

        self.app.fast_routes[path] = counted
        self.schema = schemathesis.openapi.from_dict(self.app.openapi())


@pytest.fixture(scope="module", params=["digits", "char-gru"])
def served(request):
    model = load(request.param)
    # Few generated tokens: the generation bodies' max_tokens range is the
    # document's (1..max_new_tokens), and a long stream would spend the
    # test's time on one case.
    s = Served(model, ServeConfig(calibrate=False, max_new_tokens=8))
    with ServerThread(s.app) as thread, requests.Session() as session:
        s.url, s.session = thread.url, session
        yield s


def _error_shape(ctx, response, case):
    """A refusal is {"error": message}, as JSON; never a server error (a 504
    only when the request gave a deadline)."""
    status = response.status_code
    if status >= 500:
        body = case.body if isinstance(case.body, dict) else {}
        params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        assert status == 504 and "deadline_ms" in params, (
            f"{status} for {case.method} {case.formatted_path}: {response.text[:300]}")
    if status >= 400:
        assert response.headers.get("content-type") == ["application/json"], response.headers
        doc = json.loads(response.content)
        assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"], doc
        assert "Traceback" not in doc["error"]


def test_document_lists_every_operation_with_its_bodies(served):
    doc = served.app.openapi()
    listed = sorted((m.upper(), p) for p, ops in doc["paths"].items() for m in ops)
    assert listed == sorted(OPERATIONS)
    infer = doc["paths"]["/v2/models/{model_name}/infer"]["post"]
    body = infer["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["inputs"]
    header = [p for p in infer["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Inference-Header-Content-Length"]
    for path in ("/v2/models/{model_name}/generate", "/v2/models/{model_name}/generate_stream"):
        assert "requestBody" in doc["paths"][path]["post"]
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert "422" not in op["responses"]  # validation errors are answered 400
            names = [p for p in op.get("parameters", ()) if p["name"] == "model_name"]
            assert [p["example"] for p in names] == ([served.name] if "{model_name}" in path
                                                     else [])
    # The served document is the same one.
    r = served.session.get(served.url + "/openapi.json")
    assert r.status_code == 200 and r.json() == doc


def _strategy(served, operation, mode):
    """Cases for `operation` in `mode`: half with a generated model name
    (the 404 route), half with the served model's name."""
    strategy = operation.as_strategy(generation_mode=mode)
    if "model_name" in operation.path:
        strategy = st.one_of(strategy, operation.as_strategy(
            generation_mode=mode, path_parameters={"model_name": served.name}))
    return strategy


# Negative cases need something to break: the GET operations have only a
# string path parameter (any name is valid; an unknown one is a 404).
FUZZED = [(m, p, mode) for m, p in OPERATIONS
          for mode in ([GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if m == "POST"
                       else [GenerationMode.POSITIVE])]


@pytest.mark.parametrize("method,path,mode", FUZZED,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in FUZZED])
def test_operation_fuzzed(served, method, path, mode):
    operation = served.schema[path][method]
    calls = {"served_name": 0}

    @settings(max_examples=EXAMPLES[method], derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(_strategy(served, operation, mode))
    def run(case):
        if case.path_parameters and case.path_parameters.get("model_name") == served.name:
            calls["served_name"] += 1
        response = case.call(base_url=served.url, session=served.session, timeout=30)
        case.validate_response(response, checks=CHECKS, additional_checks=[_error_shape])

    before = served.fast_calls
    run()
    if path.endswith("/infer"):
        # Every POST to the served name's infer went through the fast path.
        assert calls["served_name"] > 0
        assert served.fast_calls - before == calls["served_name"]


def _valid_infer(served, case, rows, values):
    """A positive infer case made a request the server must answer: its
    fuzzed id, outputs and parameters, with data of the right count."""
    body = case.body
    tensor = body["inputs"][0]
    tensor["shape"] = [rows, served.model.in_features]
    tensor["data"] = values
    tensor.pop("parameters", None)
    params = body.get("parameters")
    for key in ("planes", "act_bits", "min_planes"):
        # JSON Schema's integer admits 2.0; the server takes only JSON
        # integers (a fraction, even .0, is refused: test_serve.py).
        if isinstance(params, dict) and isinstance(params.get(key), float):
            params[key] = int(params[key])
    case.headers = {}
    case.media_type = "application/json"
    return case


def test_valid_infer_requests_with_fuzzed_parameters(served):
    """Bodies the server must answer: the document's positive cases (id,
    outputs, parameters as generated) with data of the right count. Every
    one is 200 and equals the library, unless its parameters contradict
    each other (planes below min_planes) or its deadline passed (504)."""
    if not hasattr(served.model, "in_features"):
        pytest.skip("a generation model: infer is refused (tested above)")
    operation = served.schema["/v2/models/{model_name}/infer"]["POST"]
    cases = operation.as_strategy(path_parameters={"model_name": served.name}).filter(
        lambda case: case.media_type == "application/json")
    width = served.model.in_features
    values = st.integers(1, 4).flatmap(lambda rows: st.tuples(st.just(rows), st.lists(
        st.floats(-4, 4, width=32), min_size=rows * width, max_size=rows * width)))
    answered = []

    @settings(max_examples=60, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(cases, values)
    def run(case, rows_values):
        case = _valid_infer(served, case, *rows_values)
        r = case.call(base_url=served.url, session=served.session, timeout=30)
        case.validate_response(r, checks=CHECKS[:4], additional_checks=[_error_shape])
        params = case.body.get("parameters") or {}
        if r.status_code == 400:
            assert "is below 'min_planes'" in r.json()["error"], r.text
            return
        if r.status_code == 504:
            return  # checked by _error_shape: only with a deadline
        assert r.status_code == 200, r.text
        answered.append(1)
        if r.headers["content-type"] != ["application/json"]:
            return  # binary output: the conformance checks above
        got = r.json()
        planes = got["parameters"]["planes"]
        x = np.array(rows_values[1], np.float32).reshape(rows_values[0], width)
        y = np.array(got["outputs"][0]["data"], np.float32).reshape(got["outputs"][0]["shape"])
        np.testing.assert_array_equal(y, served.model.forward(
            x, planes, params.get("act_bits") or got["parameters"]["act_bits"]))

    run()
    assert len(answered) >= 20
