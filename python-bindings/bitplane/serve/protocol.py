"""The Open Inference Protocol (KServe v2) request and response bodies, with
the precision parameters, and the precise 4xx errors for bad ones.

Tensor data comes as JSON (flat or nested, row-major) or through the binary
tensor data extension (``Inference-Header-Content-Length``: a JSON header
followed by raw little-endian bytes), which ``tritonclient`` uses by default.
Outputs go back the way the request asks (JSON, or binary when
``binary_data_output`` or an output's ``binary_data`` is true).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import numpy as np
import orjson

from .._bitplane import MAX_ACT_BITS

__all__ = ["ApiError", "InferRequest", "parse_infer", "encode_infer", "parse_generate",
           "GenerateRequest", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Parameters of the protocol or its extensions that may accompany a request.
PROTOCOL_PARAMS = {"binary_data_output", "sequence_id", "sequence_start", "sequence_end",
                    "priority", "timeout"}
_PRECISION_PARAMS = {"planes", "act_bits", "deadline_ms", "min_planes"}
MAX_DEADLINE_MS = 600_000


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _int_param(params: dict, key: str, lo: int, hi: int, default):
    if key not in params:
        return default
    v = params[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"parameter '{key}' must be an integer in {lo}..{hi}, got {json.dumps(v)}")
    if not lo <= v <= hi:
        raise _bad(f"parameter '{key}' must be in {lo}..{hi}, got {v}")
    return v


@dataclass
class Precision:
    planes: Union[int, str]  # 1..k or "auto"
    act_bits: int
    min_planes: int
    deadline_ms: Optional[float]


def parse_precision(params, max_planes: int, default_planes: Union[int, str],
                    allowed: set = frozenset(), default_act_bits: int = 8) -> Precision:
    params = _object(params, "")
    unknown = sorted(set(params) - _PRECISION_PARAMS - PROTOCOL_PARAMS - set(allowed))
    if unknown:
        raise _bad(f"unknown parameter(s) {', '.join(repr(u) for u in unknown)}; precision "
                   f"parameters are planes (1..{max_planes} or \"auto\"), act_bits "
                   f"(1..{MAX_ACT_BITS}), deadline_ms, min_planes")
    planes = params.get("planes", default_planes)
    if planes != "auto":
        if isinstance(planes, bool) or not isinstance(planes, int):
            raise _bad(f"parameter 'planes' must be an integer in 1..{max_planes} or \"auto\", "
                       f"got {json.dumps(planes)}")
        if not 1 <= planes <= max_planes:
            raise _bad(f"parameter 'planes' must be in 1..{max_planes} (the model has "
                       f"{max_planes} planes) or \"auto\", got {planes}")
    act_bits = _int_param(params, "act_bits", 1, MAX_ACT_BITS, default_act_bits)
    min_planes = _int_param(params, "min_planes", 1, max_planes, 1)
    if isinstance(planes, int) and planes < min_planes:
        raise _bad(f"parameter 'planes' ({planes}) is below 'min_planes' ({min_planes})")
    deadline = params.get("deadline_ms")
    if deadline is not None:
        if (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                or not math.isfinite(deadline) or not 0 < deadline <= MAX_DEADLINE_MS):
            raise _bad(f"parameter 'deadline_ms' must be a number in (0, {MAX_DEADLINE_MS}], "
                       f"got {json.dumps(deadline)}")
        deadline = float(deadline)
    return Precision(planes, act_bits, min_planes, deadline)


@dataclass
class InferRequest:
    x: np.ndarray
    precision: Precision
    id: Optional[str] = None
    binary_output: bool = False


def _split_body(body: bytes, header_length: Optional[str]) -> Tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        raise _bad(f"Inference-Header-Content-Length must be an integer, got {header_length!r}")
    if not 0 < n <= len(body):
        raise _bad(f"Inference-Header-Content-Length {n} is outside the body's {len(body)} bytes")
    return body[:n], body[n:]


def _load_json(raw: bytes) -> dict:
    # orjson first (several times faster on the serving path); what it
    # refuses goes to the standard parser, which also takes the NaN and
    # Infinity literals Python clients write, so that such a request gets
    # the precise "contains NaN" error instead of "not valid JSON".
    # The standard parser also raises a plain ValueError (an integer of
    # more than 4300 digits) and RecursionError (arrays nested thousands
    # deep, which orjson refuses first): bad bodies, not server errors.
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            doc = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError too
            raise _bad(f"request body is not valid JSON: {e}")
        except RecursionError:
            raise _bad("request body is not valid JSON: nested too deeply")
    if not isinstance(doc, dict):
        raise _bad("request body must be a JSON object")
    return doc


def _is_unicode(text: str) -> bool:
    """False for a string with a lone UTF-16 surrogate, which JSON can
    escape ("\\ud800") and the standard parser takes, but no UTF-8
    answer can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _object(value, where: str) -> dict:
    """A 'parameters' member: a JSON object, or absent/null for none. Other
    falsy values (0, false, "", []) are refused like any other non-object,
    not read as "no parameters"."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where}'parameters' must be a JSON object")
    return value


def _flag(params: dict, key: str, default: bool, where: str) -> bool:
    v = params.get(key, default)
    if not isinstance(v, bool):
        raise _bad(f"{where} must be true or false, got {json.dumps(v)}")
    return v


_NUMBER_TYPES = {int, float}


def _check_numbers(data, rows: int, cols: int) -> None:
    """JSON numbers only, flat or one list per row: NumPy would otherwise
    read "1.5" as 1.5 and true as 1.0, a silent answer to a wrong request."""
    what = (f"input '{INPUT_NAME}': 'data' must be a list of numbers ({rows}x{cols}, flat or "
            "nested)")
    if not isinstance(data, list):
        raise _bad(f"{what}, got {type(data).__name__}")
    if data and type(data[0]) is list:
        types = set()
        for row in data:
            if type(row) is not list:
                raise _bad(f"{what}, got a mix of numbers and lists")
            types.update(map(type, row))
    else:
        types = set(map(type, data))
    odd = types - _NUMBER_TYPES
    if odd:
        names = {bool: "true/false", str: "strings", list: "lists where numbers belong",
                 dict: "objects", type(None): "null"}
        got = sorted(names.get(t, t.__name__) for t in odd)
        raise _bad(f"{what}, got {', '.join(got)}")


def parse_infer(body: bytes, header_length: Optional[str], *, in_features: int, max_rows: int,
                max_planes: int, default_planes: Union[int, str],
                default_act_bits: int = 8) -> InferRequest:
    """The request's input as a (rows, in_features) float32 array and its precision."""
    head, binary = _split_body(body, header_length)
    doc = _load_json(head)
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise _bad("'id' must be a string")
    if req_id is not None and not _is_unicode(req_id):  # the answer echoes it
        raise _bad("'id' must be a string of Unicode text, got one with a lone surrogate")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("'inputs' must be a non-empty list of tensors")
    if len(inputs) != 1:
        raise _bad(f"this model takes one input '{INPUT_NAME}', got {len(inputs)} inputs")
    t = inputs[0]
    if not isinstance(t, dict):
        raise _bad("each input must be a JSON object with name, shape, datatype and data")
    name = t.get("name")
    if name != INPUT_NAME:
        raise _bad(f"unknown input {json.dumps(name)}; this model's input is '{INPUT_NAME}'")
    if t.get("datatype") != "FP32":
        raise _bad(f"input '{INPUT_NAME}': datatype {json.dumps(t.get('datatype'))} is not "
                   "supported; this model takes FP32")
    shape = t.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or any(isinstance(d, bool) or not isinstance(d, int) for d in shape)):
        raise _bad(f"input '{INPUT_NAME}': shape must be [rows, {in_features}], "
                   f"got {json.dumps(shape)}")
    rows, cols = shape
    if cols != in_features or not 1 <= rows <= max_rows:
        raise _bad(f"input '{INPUT_NAME}': shape must be [rows, {in_features}] with rows in "
                   f"1..{max_rows}, got {shape}")
    t_params = _object(t.get("parameters"), f"input '{INPUT_NAME}': ")
    count = rows * cols
    if "binary_data_size" in t_params:
        size = t_params["binary_data_size"]
        if size != 4 * count or len(binary) != size:
            raise _bad(f"input '{INPUT_NAME}': binary_data_size must be {4 * count} bytes "
                       f"for shape {shape} FP32 and match the body, got {json.dumps(size)} "
                       f"with {len(binary)} bytes after the header")
        x = np.frombuffer(binary, dtype="<f4").astype(np.float32).reshape(rows, cols)
    else:
        if "data" not in t:
            raise _bad(f"input '{INPUT_NAME}': 'data' is missing")
        # NumPy would read "0.5" as 0.5 and true as 1.0: numbers only. The
        # check costs about what the conversion does (a pass over the
        # values); cheaper signals (NumPy's inferred dtype, a scan of the body
        # for true/false) miss booleans among numbers or cost as much.
        _check_numbers(t["data"], rows, cols)
        try:
            # Values beyond float32 become Inf, refused below with their place.
            x = np.asarray(t["data"], dtype=np.float32)
        except (ValueError, TypeError, OverflowError):
            raise _bad(f"input '{INPUT_NAME}': 'data' must be a list of numbers "
                       f"({rows}x{cols}, flat or nested)")
        if x.size != count:
            raise _bad(f"input '{INPUT_NAME}': shape {shape} needs {count} values, "
                       f"got {x.size}")
        if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape != (rows, cols)):
            raise _bad(f"input '{INPUT_NAME}': nested data has shape {list(x.shape)}, "
                       f"expected {shape}")
        x = x.reshape(rows, cols)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise _bad(f"input '{INPUT_NAME}' contains NaN or Inf (first at [{r}, {c}])")
    params = _object(doc.get("parameters"), "")
    precision = parse_precision(params, max_planes, default_planes,
                                default_act_bits=default_act_bits)
    binary_output = _flag(params, "binary_data_output", False, "parameter 'binary_data_output'")
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise _bad("'outputs' must be a list")
        for o in outputs:
            if not isinstance(o, dict) or o.get("name") != OUTPUT_NAME:
                got = o.get("name") if isinstance(o, dict) else o
                raise _bad(f"unknown output {json.dumps(got)}; this model's output is "
                           f"'{OUTPUT_NAME}'")
            o_params = _object(o.get("parameters"), f"output '{OUTPUT_NAME}': ")
            binary_output = _flag(o_params, "binary_data", binary_output,
                                  f"output '{OUTPUT_NAME}': parameter 'binary_data'")
    return InferRequest(np.ascontiguousarray(x), precision, req_id, binary_output)


def encode_infer(model_name: str, req: InferRequest, y: np.ndarray,
                 parameters: dict) -> Tuple[bytes, Optional[int]]:
    """The response body and, for binary output, the JSON header's length."""
    out = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": list(y.shape),
           "parameters": {"planes": parameters["planes"]}}
    doc = {"model_name": model_name, "model_version": "1", "parameters": parameters,
           "outputs": [out]}
    if req.id is not None:
        doc["id"] = req.id
    if req.binary_output:
        raw = np.ascontiguousarray(y, dtype="<f4").tobytes()
        out["parameters"]["binary_data_size"] = len(raw)
        head = orjson.dumps(doc)
        return head + raw, len(head)
    # Python floats (exact doubles of the float32 values), not float32
    # shortest forms, so that any client's float32 parse gives back the
    # same bits.
    out["data"] = y.ravel().tolist()
    return orjson.dumps(doc), None


@dataclass
class GenerateRequest:
    text: str
    max_tokens: int
    planes: int
    act_bits: int
    session_id: Optional[str]
    temperature: float
    seed: Optional[int]


def parse_generate(body: bytes, *, max_planes: int, max_tokens: int,
                   default_act_bits: int = 8) -> GenerateRequest:
    doc = _load_json(body)
    text = doc.get("text_input", "")
    if not isinstance(text, str):
        raise _bad("'text_input' must be a string")
    params = _object(doc.get("parameters"), "")
    gen_keys = {"max_tokens", "session_id", "temperature", "seed"}
    precision = parse_precision(params, max_planes, max_planes, allowed=gen_keys,
                                default_act_bits=default_act_bits)
    if precision.planes == "auto":
        raise _bad(f"generation takes 'planes' 1..{max_planes}; \"auto\" is for infer")
    n = _int_param(params, "max_tokens", 1, max_tokens, min(64, max_tokens))
    session = params.get("session_id")
    if session is not None and (not isinstance(session, str) or not 1 <= len(session) <= 128):
        raise _bad("'session_id' must be a string of 1..128 characters")
    if session is not None and not _is_unicode(session):  # the last event echoes it
        raise _bad("'session_id' must be a string of 1..128 characters of Unicode text, got "
                   "one with a lone surrogate")
    temp = params.get("temperature", 0.0)
    if (isinstance(temp, bool) or not isinstance(temp, (int, float)) or not math.isfinite(temp)
            or not 0 <= temp <= 10):
        raise _bad(f"'temperature' must be a number in 0..10 (0 = greedy), got {json.dumps(temp)}")
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise _bad(f"'seed' must be a non-negative integer, got {json.dumps(seed)}")
    return GenerateRequest(text, n, precision.planes, precision.act_bits, session, float(temp),
                           seed)
