"""The server's OpenAPI document (``GET /openapi.json``), true to what it
answers: the infer route (a bare ASGI fast path, which FastAPI does not
see) with its request body, the generation bodies (read by hand, so
FastAPI does not see them either), the ``{"error": ...}`` answers with their
statuses in place of FastAPI's 422 (validation errors are answered 400), and
the served model's limits (features, rows, planes, tokens) in the schemas.

The request schemas admit every request the server accepts (a request
outside them is refused with a 4xx): what JSON Schema cannot say (the value
count of ``data``, ``planes`` >= ``min_planes``, float32 range) is left to
the server's own checks, and so is one more: an integer must be written
as one (``2.0`` is refused, though JSON Schema's ``integer`` admits it).
"""

from __future__ import annotations

from typing import Any, Dict

from fastapi.openapi.utils import get_openapi

from .._bitplane import MAX_ACT_BITS
from .protocol import INPUT_NAME, MAX_DEADLINE_MS, OUTPUT_NAME, PROTOCOL_PARAMS

__all__ = ["openapi_document"]

ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA = {"type": "object", "required": ["error"], "additionalProperties": False,
                 "properties": {"error": {"type": "string"}}}
_STATUS_TEXT = {400: "Bad request (the message says what)", 404: "Unknown model",
                413: "Request body over --max-request-bytes",
                503: "Overloaded, shutting down, or (generation) every session in use; retry "
                      "after Retry-After seconds",
                504: "deadline_ms passed before the request's batch formed"}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "required": True, "schema": {"type": "string",
                                                             "pattern": "^[0-9]+$"}}}


def _error_response(status: int) -> dict:
    answer = {"description": _STATUS_TEXT[status],
              "content": {"application/json": {"schema": ERROR_REF}}}
    if status == 503:
        answer["headers"] = _RETRY_AFTER
    return answer


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


def _int(lo: int, hi: int) -> dict:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _precision_properties(k: int) -> Dict[str, dict]:
    return {"planes": {"anyOf": [_int(1, k), {"const": "auto"}]},
            "act_bits": _int(1, MAX_ACT_BITS),
            "min_planes": _int(1, k),
            "deadline_ms": _nullable({"type": "number", "exclusiveMinimum": 0,
                                      "maximum": MAX_DEADLINE_MS})}


def _protocol_properties() -> Dict[str, dict]:
    """The protocol's request parameters the server accepts and ignores
    (any value)."""
    return {key: {} for key in sorted(PROTOCOL_PARAMS)}


def infer_request_schema(k: int, in_features: Any, max_rows: int) -> dict:
    """The KServe v2 inference request the server takes (in_features None:
    a model without infer, any width)."""
    numbers = {"type": "array", "items": {"type": "number"}}
    width = {"type": "integer"} if in_features is None else {"const": in_features}
    tensor = {
        "type": "object", "required": ["name", "datatype", "shape"],
        # the values: as JSON, or as binary tensor data after the header
        "anyOf": [{"required": ["data"]},
                  {"required": ["parameters"], "properties": {"parameters": {
                      "type": "object", "required": ["binary_data_size"]}}}],
        "properties": {
            "name": {"const": INPUT_NAME},
            "datatype": {"const": "FP32"},
            "shape": {"type": "array", "prefixItems": [_int(1, max_rows), width],
                      "minItems": 2, "maxItems": 2},
            "data": {"anyOf": [numbers, {"type": "array", "items": numbers}]},
            "parameters": _nullable({"type": "object", "properties": {
                "binary_data_size": {"type": "integer", "minimum": 4}}}),
        }}
    output = {"type": "object", "required": ["name"], "properties": {
        "name": {"const": OUTPUT_NAME},
        "parameters": _nullable({"type": "object",
                                 "properties": {"binary_data": {"type": "boolean"}}})}}
    return {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": _nullable({"type": "string"}),
            "inputs": {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1},
            "outputs": _nullable({"type": "array", "items": output}),
            "parameters": _nullable({
                "type": "object", "additionalProperties": False,
                "properties": {**_protocol_properties(), **_precision_properties(k),
                               "binary_data_output": {"type": "boolean"}}}),
        }}


_INFER_RESPONSE = {
    "type": "object", "required": ["model_name", "model_version", "parameters", "outputs"],
    "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"},
        "id": {"type": "string"},
        "parameters": {"type": "object", "required": ["planes", "planes_mode", "act_bits"],
                       "properties": {"planes": {"type": "integer"},
                                      "planes_mode": {"enum": ["fixed", "auto"]},
                                      "act_bits": {"type": "integer"}}},
        "outputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
            "type": "object", "required": ["name", "datatype", "shape"],
            "properties": {"name": {"const": OUTPUT_NAME}, "datatype": {"const": "FP32"},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "data": {"type": "array", "items": {"type": "number"}}}}}}}


def _infer_operation(k: int, in_features: Any, max_rows: int) -> dict:
    binary = {"type": "string", "format": "binary"}
    return {
        "summary": "Infer (KServe v2): JSON, or the binary tensor data extension",
        "operationId": "infer",
        "parameters": [
            {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
             "description": "Binary tensor data: the length of the JSON header that "
                            "starts the body; the tensor's raw little-endian bytes follow",
             "schema": {"type": "integer", "minimum": 1}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": infer_request_schema(k, in_features, max_rows)},
            "application/octet-stream": {"schema": binary}}},
        "responses": {
            "200": {"description": "The output tensor (JSON, or binary with "
                                   "Inference-Header-Content-Length)",
                    "content": {"application/json": {"schema": _INFER_RESPONSE},
                                "application/octet-stream": {"schema": binary}}},
            **{str(s): _error_response(s) for s in (400, 404, 413, 503, 504)}}}


def generate_request_schema(k: int, max_tokens: int) -> dict:
    # min_planes, deadline_ms and the protocol's keys are accepted and
    # ignored, as for infer.
    precision = _precision_properties(k)
    precision["planes"] = _int(1, k)  # no "auto" for generation
    return {"type": "object", "properties": {
        "text_input": {"type": "string"},
        "parameters": _nullable({
            "type": "object", "additionalProperties": False,
            "properties": {**_protocol_properties(), **precision,
                           "max_tokens": _int(1, max_tokens),
                           "session_id": {"type": "string", "minLength": 1, "maxLength": 128},
                           "temperature": {"type": "number", "minimum": 0, "maximum": 10},
                           "seed": {"type": "integer", "minimum": 0}}})}}


_GENERATE_RESPONSE_FINAL = {
    "type": "object", "required": ["model_name", "finish_reason", "tokens", "planes",
                                   "session_id"],
    "properties": {"model_name": {"type": "string"}, "finish_reason": {"const": "length"},
                   "tokens": {"type": "integer"}, "planes": {"type": "integer"},
                   "session_id": _nullable({"type": "string"})}}
# /generate: the final event with the whole text.
_GENERATE_RESPONSE = {"allOf": [_GENERATE_RESPONSE_FINAL, {
    "required": ["text_output"], "properties": {"text_output": {"type": "string"}}}]}

# One server-sent event (OpenAPI 3.1: the schema of a text/event-stream
# describes each event): its data is a character or the final event, as JSON.
_SSE_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "string", "contentMediaType": "application/json",
                            "contentSchema": {"anyOf": [
                                {"type": "object",
                                 "required": ["model_name", "text_output", "index", "token",
                                              "planes"],
                                 "properties": {"text_output": {"type": "string"},
                                                "index": {"type": "integer"},
                                                "token": {"type": "integer"},
                                                "planes": {"type": "integer"}}},
                                _GENERATE_RESPONSE_FINAL]}}}}

_MODEL_METADATA = {
    "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs",
                                   "parameters"],
    "properties": {"name": {"type": "string"},
                   "versions": {"type": "array", "items": {"type": "string"}},
                   "platform": {"const": "bitplane"},
                   "inputs": {"type": "array"}, "outputs": {"type": "array"},
                   "parameters": {"type": "object"}}}

# The answers of the FastAPI routes, by path: 200 schema, error statuses.
_ROUTES = {
    "/v2/health/live": (
        {"type": "object", "required": ["live"], "properties": {"live": {"const": True}}}, ()),
    "/v2/health/ready": (
        {"type": "object", "required": ["ready"], "properties": {"ready": {"const": True}}},
        (503,)),
    "/v2": ({"type": "object", "required": ["name", "version", "extensions"],
             "properties": {"name": {"const": "bitplane-serve"}, "version": {"type": "string"},
                            "extensions": {"type": "array", "items": {"type": "string"}}}},
            ()),
    "/v2/models/{model_name}": (_MODEL_METADATA, (404,)),
    "/v2/models/{model_name}/versions/1": (_MODEL_METADATA, (404,)),
    "/v2/models/{model_name}/ready": (
        {"type": "object", "required": ["name", "ready"],
         "properties": {"name": {"type": "string"}, "ready": {"const": True}}}, (404, 503)),
    "/v2/models/{model_name}/generate": (_GENERATE_RESPONSE, (400, 404, 413, 503)),
    "/v2/models/{model_name}/generate_stream": (None, (400, 404, 413, 503)),
    "/metrics": (None, ()),
}


def _describe_route(path: str, op: dict, generate_body: dict) -> None:
    ok, errors = _ROUTES[path]
    responses = {"200": op["responses"]["200"]}
    if ok is not None:
        responses["200"] = _json(ok, responses["200"].get("description", "OK"))
    elif path.endswith("/generate_stream"):
        responses["200"] = {"description": "Server-sent events: one per character, then "
                                           "a final one with finish_reason",
                            "content": {"text/event-stream": {"schema": _SSE_EVENT}}}
    else:  # /metrics
        responses["200"] = {"description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}
    responses.update({str(s): _error_response(s) for s in errors})
    op["responses"] = responses
    if path.endswith(("/generate", "/generate_stream")):
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": generate_body}}}


def _name_the_model(op: dict, name: str) -> None:
    """The served model's name as the example of `op`'s model_name (any
    other name is a 404), so that a client or fuzzer that reads the
    document reaches the model."""
    for param in op.get("parameters", ()):
        if param["name"] == "model_name":
            param["description"] = f"the served model's name, '{name}' (others: 404)"
            param["example"] = name


def openapi_document(app, server) -> Dict[str, Any]:
    """The OpenAPI 3.1 document of `app`, serving `server`'s model."""
    model, config = server.model, server.config
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                      description="Open Inference Protocol (KServe v2) for one bitplane model. "
                                  "Every refusal is {\"error\": message} with its status. Integers "
                                  "are JSON integers (2.0 is refused).")
    generate_body = generate_request_schema(server.k, config.max_new_tokens)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            _describe_route(path, op, generate_body)
    doc["paths"]["/v2/models/{model_name}/infer"] = {"post": _infer_operation(
        server.k, getattr(model, "in_features", None), config.max_batch)}
    for ops in doc["paths"].values():
        for op in ops.values():
            _name_the_model(op, model.name)
    doc["components"] = {"schemas": {"Error": _ERROR_SCHEMA}}
    return doc
