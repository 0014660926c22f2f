"""The FastAPI application: Open Inference Protocol (KServe v2) endpoints over
one served model, with the batcher, the SLO controller, metrics and errors.

``create_app(model, config)`` builds it; ``bitplane-serve`` runs it under
uvicorn, and ``bitplane-serve --ray-replicas N`` under Ray Serve.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from .batcher import Batcher, DeadlineExceeded, Overloaded, ShuttingDown
from .controller import CostModel, SLOController
from .gcpause import GCPauses
from .generate import Sessions, StepBatcher, generate, open_session
from .looplag import LoopLag
from .metrics import Metrics
from .openapi import openapi_document
from .protocol import (INPUT_NAME, OUTPUT_NAME, ApiError, encode_infer, parse_generate,
                       parse_infer)
from .served import CharModel, LinearStackModel, layer_planes, load, plan_summary

__all__ = ["ServeConfig", "Server", "create_app"]

log = logging.getLogger("bitplane.serve")


@dataclass
class ServeConfig:
    """Server settings (each is a ``bitplane-serve`` option)."""

    max_batch: int = 64  # rows per batched call
    max_wait_ms: float = 0.0  # wait for more rows when a batch is not full
    max_queue_rows: int = 1024  # beyond this, 503 with Retry-After
    slo_p99_ms: float = 50.0  # the SLO controller's target
    default_planes: Union[int, str, None] = None  # None: all planes
    max_request_bytes: int = 1 << 20
    max_new_tokens: int = 1024
    max_sessions: int = 256
    session_ttl_s: float = 600.0
    calibrate: bool = True
    drain_timeout_s: float = 30.0
    activation: str = "relu"
    bits: int = 8
    inline_compute_ms: float = 0.5  # batches predicted shorter run on the event loop's thread
    plan: Optional[str] = None  # a precision plan file (bitplane.plan) for the served model
    # "slo": refuse (503) a request the SLO cannot serve behind the queue even
    # at its lowest allowed planes; "queue": only the max_queue_rows bound.
    admission: str = "slo"
    metric_rows: int = 512  # held-out rows that price accuracy per plane count (0: none)
    # "auto" never below the fewest planes whose measured metric is at least
    # this share of the best count's (0: no floor beyond a request's own).
    min_metric_share: float = 0.9


def _calibrate(model: LinearStackModel, max_batch: int, reps: int = 11,
               clock: Callable[[], float] = time.perf_counter) -> CostModel:
    """Seed the cost table by timing the served model: uniform batches at
    every plane count 1..k of 1 row and of max_batch rows (the two points of
    each count's line, fixed + per_row * rows), and one max_batch batch over
    planes 1..k (what a further plane count costs in a mixed batch over the
    uniform batch at its largest count). Each call once to warm up, then
    `reps` interleaved rounds of all of them (a change in the machine's
    load hits every count alike), the fastest of each. The counts' order is
    what the controller needs from the seed (the machine factor scales
    them to the speed served batches see): on the wide stack at batch 4 the
    timings of one count came in two modes up to 1.6x apart, and medians of
    5 rounds ranked 3 of 3 calibrations out of order (a count 5-45 % over a
    higher one), minima of 11 rounds none (3 of 3; Zen 4, load 1-2). The
    server then refreshes the table from the batches it serves
    (CostModel.observe)."""
    rng = np.random.default_rng(0)
    k, b = model.bits, max_batch
    x1 = rng.standard_normal((1, model.in_features), dtype=np.float32)
    xb = rng.standard_normal((b, model.in_features), dtype=np.float32)
    mixed = [1 + i % k for i in range(b)]
    calls = [(x1, [p]) for p in range(1, k + 1)]
    if b > 1:
        calls += [(xb, [p] * b) for p in range(1, k + 1)]
        if k > 1:
            calls.append((xb, mixed))
    for x, cp in calls:
        model.forward_batched(x, cp, 8)  # warm-up
    times: List[List[float]] = [[] for _ in calls]
    for _ in range(reps):
        for i, (x, cp) in enumerate(calls):
            t = clock()
            model.forward_batched(x, cp, 8)
            times[i].append(clock() - t)
    fastest = [max(float(np.min(t)), 1e-9) for t in times]
    if b == 1:
        return CostModel([0.0] * k, fastest[:k])
    t1, tb = fastest[:k], fastest[k:2 * k]
    per_row = [max((hi - lo) / (b - 1), 0.0) for lo, hi in zip(t1, tb)]
    fixed = [max(lo - r, 0.0) for lo, r in zip(t1, per_row)]
    groups = len(set(mixed))
    per_extra = max((fastest[-1] - tb[k - 1]) / (groups - 1), 0.0) if k > 1 else 0.0
    return CostModel(fixed, per_row, per_extra)


def _measure_metric(model: LinearStackModel, rows: int, act_bits: int) -> Optional[dict]:
    """The served model's top-1 accuracy at every plane count on up to `rows`
    rows of its held-out data (the file's test_x, test_y: class labels, or
    for make_model.py's stack the float model's own top-1), computed by the
    batched call the server uses. None when the file has no such data."""
    x, y = model.test_x, model.test_y
    if rows <= 0 or x is None or y is None:
        return None
    x = np.ascontiguousarray(np.asarray(x, np.float32)[:rows])
    y = np.asarray(y)[:rows]
    if (x.ndim != 2 or x.shape[1] != model.in_features or y.shape != (len(x),)
            or not np.issubdtype(y.dtype, np.integer) or len(x) == 0):
        return None
    per_planes = {}
    for p in range(1, model.bits + 1):
        out = model.forward_batched(x, [p] * len(x), act_bits)
        per_planes[p] = float(np.mean(np.argmax(out, axis=1) == y))
    return {"name": "top1_accuracy", "rows": int(len(x)), "act_bits": act_bits,
            "source": "held-out test_x/test_y of the model file", "per_planes": per_planes}


class Server:
    """One model with its batcher, controller, sessions and metrics."""

    def __init__(self, model: Union[LinearStackModel, CharModel], config: ServeConfig):
        self.model = model
        self.config = config
        self.metrics = Metrics(model.name)
        self.closing = False
        self.k = model.bits
        # A plan's act_bits is the default for requests that give none.
        self.default_act_bits = model.plan["act_bits"] if model.plan else 8
        self.default_planes = config.default_planes or self.k
        if config.inline_compute_ms < 0:
            raise ValueError(f"--inline-compute-ms must be >= 0, got {config.inline_compute_ms}")
        # What the command line checks, for apps made in code (a zero batch
        # or SLO divided by zero at start-up).
        for key, lo, strict in (("max_batch", 1, False), ("max_queue_rows", 1, False),
                                ("max_request_bytes", 1, False), ("max_wait_ms", 0, False),
                                ("slo_p99_ms", 0, True)):
            v = getattr(config, key)
            if not math.isfinite(v) or v < lo or (strict and v == lo):
                raise ValueError(f"--{key.replace('_', '-')} must be {'>' if strict else '>='} "
                                 f"{lo}, got {v}")
        if isinstance(self.default_planes, int) and not 1 <= self.default_planes <= self.k:
            raise ValueError(f"default planes must be 1..{self.k} or 'auto'")
        if config.admission not in ("slo", "queue"):
            raise ValueError(f"admission must be 'slo' or 'queue', got {config.admission!r}")
        if config.metric_rows < 0:
            raise ValueError(f"--metric-rows must be >= 0, got {config.metric_rows}")
        if not 0.0 <= config.min_metric_share <= 1.0:  # NaN fails too
            raise ValueError(f"--min-metric-share must be in 0..1, got {config.min_metric_share}")
        self.batcher = self.controller = self.metric = None
        self.calibration_s = 0.0  # seconds the cost table's start-up timing took
        # The event loop's lateness (looplag.py): added to each request's
        # measured latency for the controller, which otherwise does not see
        # the wait before a handler runs.
        self.loop_lag = LoopLag(observe=self.metrics.of(self.metrics.loop_lag, model.name).observe)
        self._mean_rows = 1.0  # rows per request, a moving average (refusals unparsed)
        if isinstance(model, LinearStackModel):
            t = time.perf_counter()
            cost = (_calibrate(model, config.max_batch) if config.calibrate
                    else CostModel.linear(self.k))
            self.calibration_s = time.perf_counter() - t
            self.metric = _measure_metric(model, config.metric_rows, self.default_act_bits)
            self.controller = SLOController(
                self.k, config.slo_p99_ms / 1e3, config.max_batch, cost,
                metric=self.metric["per_planes"] if self.metric else None,
                min_metric_share=config.min_metric_share)
            # Late shedding: a queued request that would end past the SLO is
            # refused only while the measured p99 is over admission's limit;
            # at low load, where the p99 has room for it, it is served late.
            self.batcher = Batcher(model.forward_batched, max_batch=config.max_batch,
                                   max_wait_s=config.max_wait_ms / 1e3,
                                   max_queue_rows=config.max_queue_rows,
                                   on_batch=self._on_batch, estimate_s=self._drain_estimate,
                                   predict_s=self._predict_batch,
                                   inline_max_s=config.inline_compute_ms / 1e3,
                                   shed_late=self.controller.p99_over_limit,
                                   finish_s=self._finish_batch)
            self.export_cost()
            self.metrics.controller_ceiling.labels(model.name).set(self.controller.ceiling)
            self.metrics.controller_quality_floor.labels(model.name).set(
                self.controller.quality_floor())
            for p, value in (self.metric["per_planes"].items() if self.metric else ()):
                self.metrics.model_metric.labels(model.name, str(p)).set(value)
        self.sessions = Sessions(config.max_sessions, config.session_ttl_s)
        self.gen_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bitplane-gen")
        self.steps = None
        if isinstance(model, CharModel):
            self.steps = StepBatcher(model.stepper, self.gen_executor,
                                     max_batch=config.max_sessions, on_tick=self._on_tick)

    def _on_tick(self, streams: int) -> None:
        mt = self.metrics
        mt.of(mt.step_streams, self.model.name).observe(streams)

    # -- batcher callbacks -------------------------------------------------
    def _on_batch(self, rows: int, planes: int, groups: int, compute_s: float,
                  service_s: float) -> None:
        self.controller.cost.observe(rows, planes, compute_s, groups)
        self.controller.observe_service(compute_s, service_s)
        mt, name = self.metrics, self.model.name
        mt.of(mt.batch_rows, name).observe(rows)
        mt.of(mt.compute_time, name).observe(compute_s)

    def _finish_batch(self, rows: int, planes: int, groups: int) -> float:
        """Seconds from a batch's start to its answers, for late shedding:
        its predicted compute or the measured p99 of recent requests' time
        from their batch's start to their answer, whichever is longer."""
        return max(self._predict_batch(rows, planes, groups), self.controller.answer_tail_s)

    def _predict_batch(self, rows: int, planes: int, groups: int) -> float:
        return self.controller.cost.batch(planes, rows, groups)

    def export_cost(self) -> None:
        """The cost table into the metrics (at start-up and on each scrape:
        not per batch, which would set k gauges on the serving path)."""
        mt, name, cost = self.metrics, self.model.name, self.controller.cost
        for p, seconds in cost.table(self.config.max_batch).items():
            mt.of(mt.cost_batch, name, str(p)).set(seconds)
        mt.of(mt.cost_extra_count, name).set(cost.per_extra)

    def _drain_estimate(self, queued_rows: int) -> float:
        return self.controller.predict(queued_rows, 0, self.k)

    # -- infer -------------------------------------------------------------
    async def infer(self, body: bytes, header_length: Optional[str], start: float):
        m = self.model
        if not isinstance(m, LinearStackModel):
            raise ApiError(400, f"model '{m.name}' is a character {m.cell.upper()}: it serves "
                                f"generation at /v2/models/{m.name}/generate_stream, not infer")
        b, ctrl = self.batcher, self.controller
        # The queue as this request finds it (nothing below awaits before
        # the request is submitted, so it stays so through parsing).
        queued = b.queue_depth()
        queued_units = b.queued_units + b.in_flight_rows * self.k
        if self.config.admission == "slo":
            if ctrl.refuses_all(queued, queued_units):
                # Refused unparsed, counted in the offered load at the
                # recent requests' mean size.
                ctrl.arrive(self._mean_rows, start)
                raise Overloaded(
                    f"the SLO (p99 {self.config.slo_p99_ms:g} ms) cannot be met behind "
                    f"{queued} queued rows at any plane count; retry later",
                    max(1, math.ceil(self._drain_estimate(queued))), reason="slo")
        req = parse_infer(body, header_length, in_features=m.in_features,
                          max_rows=self.config.max_batch, max_planes=self.k,
                          default_planes=self.default_planes,
                          default_act_bits=self.default_act_bits)
        p = req.precision
        mode = "auto" if p.planes == "auto" else "fixed"
        rows = req.x.shape[0]
        self._mean_rows += 0.1 * (rows - self._mean_rows)
        deadline = None if p.deadline_ms is None else start + p.deadline_ms / 1e3
        ctrl.arrive(rows, start)  # offered load, refused requests included
        if mode == "auto":
            decision = ctrl.decide(queued, rows, p.min_planes,
                                   None if p.deadline_ms is None else p.deadline_ms / 1e3,
                                   queued_units=queued_units, now=start)
            planes, admitted, floor = decision.planes, decision.admitted, decision.floor
            predicted = decision.predicted_s
            mt = self.metrics
            mt.of(mt.controller_planes, m.name).set(planes)
            mt.of(mt.controller_predicted, m.name).set(decision.predicted_s)
            mt.of(mt.controller_operating, m.name).set(decision.operating)
            mt.of(mt.arrival_rate, m.name).set(decision.arrival_rows_s)
        else:
            planes = floor = p.planes
            admitted, predicted = ctrl.admits(queued, rows, planes, queued_units)
        correction = ctrl.correction  # what `predicted` was made with
        if self.config.admission == "slo" and not admitted:
            at_floor = ctrl.predict(queued, rows, floor, queued_units)
            raise Overloaded(
                f"the SLO (p99 {self.config.slo_p99_ms:g} ms) cannot be met behind {queued} "
                f"queued rows: predicted {at_floor * 1e3:.1f} ms at {floor} planes; retry "
                "later", max(1, math.ceil(self._drain_estimate(queued))), reason="slo")
        # Under SLO admission a request still queued when its batch would
        # end past the SLO is refused then (batcher.py, "slo_late"); the
        # latency it would have had is fed back like a served one's, so
        # that the margin admission keeps grows with what was shed late.
        # Its SLO began before its handler: by the event loop's recent lag,
        # as the latency the controller learns from.
        lag = self.loop_lag.recent_s
        shed_at = start + ctrl.target_s - lag if self.config.admission == "slo" else None
        try:
            result = await self.batcher.submit(req.x, planes, p.act_bits, deadline, shed_at)
        except Overloaded as e:
            if e.ends_at is not None:
                ctrl.observe_latency(e.ends_at - start + lag, predicted, correction)
            raise
        params = {"planes": planes, "planes_mode": mode, "act_bits": p.act_bits,
                  "queue_ms": round(result.queue_s * 1e3, 4),
                  "compute_ms": round(result.compute_s * 1e3, 4),
                  "batch_rows": result.batch_rows}
        if m.plan:
            params["plan"] = m.plan["source"]
            params["layer_planes"] = layer_planes(m.plan, planes)
        out, header_len = encode_infer(m.name, req, result.y, params)
        end = time.monotonic()
        total = end - start
        self.controller.observe_answer(end - result.taken)
        self.controller.observe_latency(total + self.loop_lag.recent_s, predicted, correction)
        mt, name = self.metrics, m.name
        mt.of(mt.latency, name, str(planes)).observe(total)
        mt.of(mt.queue_time, name).observe(result.queue_s)
        mt.of(mt.planes_chosen, name, str(planes), mode).inc()
        return out, header_len

    def metadata(self) -> dict:
        m = self.model
        doc = {"name": m.name, "versions": ["1"], "platform": "bitplane",
               "parameters": {"planes_max": self.k, "planes_default": self.default_planes,
                              "source": str(m.path.name)}}
        if m.plan:
            doc["parameters"]["plan"] = plan_summary(m.plan)
        if isinstance(m, LinearStackModel):
            doc["inputs"] = [{"name": INPUT_NAME, "datatype": "FP32",
                              "shape": [-1, m.in_features]}]
            doc["outputs"] = [{"name": OUTPUT_NAME, "datatype": "FP32",
                               "shape": [-1, m.out_features]}]
            doc["parameters"]["max_batch_rows"] = self.config.max_batch
            doc["parameters"]["slo_p99_ms"] = self.config.slo_p99_ms
            doc["parameters"]["controller"] = self.controller_state()
        else:
            doc["inputs"] = [{"name": "text_input", "datatype": "BYTES", "shape": [1]}]
            doc["outputs"] = [{"name": "text_output", "datatype": "BYTES", "shape": [1]}]
            doc["parameters"]["generation"] = f"/v2/models/{m.name}/generate_stream"
            doc["parameters"]["cell"] = m.cell
        return doc

    def controller_state(self) -> dict:
        """The controller's inputs and last decision, as the metadata shows
        them: the SLO, admission, the metric per plane count (the price of
        accuracy) and its source, the cost model, the measured arrival rate
        and the operating point it gives, the feedback ceiling."""
        c = self.controller
        cost = c.cost
        rate = c.arrival_rate(time.monotonic())
        last = c.last
        table = {}
        for p in range(1, self.k + 1):
            fixed, per_row = cost.entry(p)
            table[p] = {"per_batch": fixed, "per_row": per_row,
                        "full_batch": fixed + per_row * self.config.max_batch}
        return {"slo_p99_ms": self.config.slo_p99_ms, "admission": self.config.admission,
                "headroom": c.headroom, "metric": self.metric,
                "min_metric_share": c.min_metric_share, "quality_floor_planes": c.quality_floor(),
                "cost_seconds": {"per_planes": table, "per_extra_plane_count": cost.per_extra,
                                 "machine_factor": cost.machine_factor,
                                 "calibration_s": self.calibration_s},
                "ladder_planes": c.ladder(),
                "arrival_rows_per_s": rate, "prediction_correction": c.correction,
                "service_factor": c.service_factor,
                "operating_planes": c.operating_point(1, max(c.ceiling, 1), rate),
                "ceiling_planes": c.ceiling,
                "last_decision": {"planes": last.planes, "predicted_ms": last.predicted_s * 1e3,
                                  "queued_rows": last.queued_rows,
                                  "admitted": last.admitted}}

    async def close(self) -> None:
        self.closing = True
        await self.loop_lag.stop()
        if self.batcher is not None:
            await self.batcher.close(self.config.drain_timeout_s)
        if self.steps is not None:
            await self.steps.close()
        self.gen_executor.shutdown(wait=True)


def _error(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _one_header(name: str, values: List[str]) -> Optional[str]:
    """A header's value (None when absent); refused when given more than
    once, where which one counts would be a guess."""
    if len(values) > 1:
        raise ApiError(400, f"{name} given {len(values)} times; send it once")
    return values[0] if values else None


def _error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _read_body(length: Optional[str], chunks, limit: int) -> bytes:
    """The body from its async chunks, refused with 413 beyond `limit` bytes
    (on the declared Content-Length first, then on what arrives)."""
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ApiError(400, f"Content-Length must be an integer, got {length!r}")
        if declared > limit:
            raise ApiError(413, f"request body of {declared} bytes exceeds the limit of "
                                f"{limit} bytes")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _cached_openapi(app: FastAPI, server: Server) -> dict:
    """The OpenAPI document, built on first use (FastAPI's own misses the
    infer fast path and the hand-read bodies: see openapi.py)."""
    if app.openapi_schema is None:
        app.openapi_schema = openapi_document(app, server)
    return app.openapi_schema


class _App(FastAPI):
    """FastAPI with exact-path POST handlers that run before the middleware
    stack (``fast_routes``: path -> ASGI callable)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_routes: Dict[str, Callable] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_routes.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(model: Union[str, LinearStackModel, CharModel, None] = "digits",
               config: Optional[ServeConfig] = None) -> FastAPI:
    """The application for one model (a bundled name, a file path or a loaded
    model; None: the model ``config.plan`` names). ``config.plan`` applies to
    a model given by name or path; a loaded model carries its own."""
    config = config or ServeConfig()
    if model is None or isinstance(model, str):
        model = load(model, activation=config.activation, bits=config.bits, plan=config.plan)
    server = Server(model, config)
    name = model.name

    gc_pauses = GCPauses(lambda gen, s: server.metrics.of(server.metrics.gc_pause, name,
                                                           str(gen)).observe(s))

    @asynccontextmanager
    async def lifespan(_app):
        gc_pauses.install()
        server.loop_lag.start()
        log.info("serving", extra={"fields": {"model": name, "config": asdict(config)}})
        yield
        log.info("draining", extra={"fields": {"queued_rows": server.batcher.queue_depth()
                                                if server.batcher else 0}})
        await server.close()
        gc_pauses.remove()
        log.info("stopped")

    app = _App(title="bitplane-serve", version=__version__, lifespan=lifespan,
               docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.server = server
    app.openapi = lambda: _cached_openapi(app, server)

    def check_model(model_name: str) -> None:
        if model_name != name:
            raise ApiError(404, f"unknown model '{model_name}'; this server serves '{name}'")

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        # Its headers too: a 405's Allow (RFC 9110 requires it).
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        return _error(400, "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_request, _exc: ClientDisconnect):
        # The client left before its body arrived (request.stream()): the
        # answer goes nowhere, and it is no server error to log.
        return _error(400, "the client disconnected before the request body arrived")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.error("internal error", exc_info=exc,
                  extra={"fields": {"path": request.url.path}})
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        if server.closing:
            return _error(503, "shutting down")
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata():
        return {"name": "bitplane-serve", "version": __version__,
                "extensions": ["binary_tensor_data", "generate"]}

    @app.get("/v2/models/{model_name}")
    @app.get("/v2/models/{model_name}/versions/1")
    async def model_metadata(model_name: str):
        check_model(model_name)
        return server.metadata()

    @app.get("/v2/models/{model_name}/ready")
    async def model_ready(model_name: str):
        check_model(model_name)
        if server.closing:
            return _error(503, "shutting down")
        return {"name": name, "ready": True}

    async def answer_infer(length: Optional[str], header_lengths: List[str], chunks,
                           start: float) -> Tuple[int, bytes, str, Dict[str, str]]:
        """One infer request, from its body's chunks to (status, body,
        media type, extra headers); every error is a JSON answer here.
        header_lengths: the Inference-Header-Content-Length values given."""
        try:
            header_length = _one_header("Inference-Header-Content-Length", header_lengths)
            body = await _read_body(length, chunks, config.max_request_bytes)
            out, header_len = await server.infer(body, header_length, start)
        except ApiError as e:
            server.metrics.rejected.labels(name, "bad_request").inc()
            return e.status, _error_body(e.message), "application/json", e.headers
        except Overloaded as e:
            server.metrics.rejected.labels(name, e.reason).inc()
            return 503, _error_body(str(e)), "application/json", {
                "Retry-After": str(e.retry_after_s)}
        except ShuttingDown as e:
            server.metrics.rejected.labels(name, "shutting_down").inc()
            return 503, _error_body(str(e)), "application/json", {"Retry-After": "1"}
        except DeadlineExceeded as e:
            server.metrics.rejected.labels(name, "deadline").inc()
            return 504, _error_body(str(e)), "application/json", {}
        except ClientDisconnect:
            raise  # nobody to answer: the route's concern
        except Exception as e:  # noqa: BLE001 - logged; the answer names the type only
            log.error("internal error", exc_info=e, extra={"fields": {"path": infer_path}})
            return 500, _error_body(f"internal error ({type(e).__name__}); see the server "
                                    "log"), "application/json", {}
        if header_len is None:
            return 200, out, "application/json", {}
        return 200, out, "application/octet-stream", {
            "Inference-Header-Content-Length": str(header_len)}

    # The infer route through Starlette, for what does not take the fast
    # path below (another model's name gets the 404 from check_model).
    async def infer(request: Request):
        start = time.monotonic()
        check_model(request.path_params["model_name"])
        status, out, media, headers = await answer_infer(
            request.headers.get("content-length"),
            request.headers.getlist("inference-header-content-length"), request.stream(), start)
        return Response(out, status_code=status, media_type=media, headers=headers)

    app.router.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])

    # The hot path, as a bare ASGI handler that the app calls before its
    # middleware stack and router: under load those (six middleware layers,
    # route matching, the Request object, FastAPI's telemetry hook) took
    # about two thirds of the event loop's time per infer request
    # (docs/serve.md, "Where the server's time goes").
    infer_path = f"/v2/models/{name}/infer"

    async def infer_asgi(scope, receive, send) -> None:
        start = time.monotonic()
        length, header_lengths = None, []
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value.decode("latin-1")
            elif key == b"inference-header-content-length":
                header_lengths.append(value.decode("latin-1"))

        async def chunks():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            status, out, media, headers = await answer_infer(length, header_lengths, chunks(),
                                                             start)
        except ClientDisconnect:
            return  # the client went away: nobody to answer
        raw_headers = [(b"content-type", media.encode()),
                       (b"content-length", str(len(out)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": out})

    app.fast_routes[infer_path] = infer_asgi

    async def _generate_request(model_name: str, request: Request):
        check_model(model_name)
        if not isinstance(server.model, CharModel):
            raise ApiError(400, f"model '{name}' serves infer; generation needs a character "
                                "LSTM/GRU (char-lstm, char-gru)")
        body = await _read_body(request.headers.get("content-length"), request.stream(),
                                config.max_request_bytes)
        req = parse_generate(body, max_planes=server.k, max_tokens=config.max_new_tokens,
                             default_act_bits=server.default_act_bits)
        session = open_session(server.model, req, server.sessions)
        return req, generate(server.model, req, session, server.gen_executor, server.steps)

    @app.post("/v2/models/{model_name}/generate_stream")
    async def generate_stream(model_name: str, request: Request):
        req, events = await _generate_request(model_name, request)

        async def sse():
            async for ev in events:
                yield f"data: {json.dumps({'model_name': name, **ev})}\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v2/models/{model_name}/generate")
    async def generate_whole(model_name: str, request: Request):
        req, events = await _generate_request(model_name, request)
        text, last = [], {}
        async for ev in events:
            if "text_output" in ev:
                text.append(ev["text_output"])
            else:
                last = ev
        return {"model_name": name, "text_output": "".join(text), **last}

    @app.get("/metrics")
    async def metrics():
        mt = server.metrics
        if server.batcher is not None:
            mt.queue_depth.labels(name).set(server.batcher.queue_depth())
            mt.controller_p99.labels(name).set(server.controller.measured_p99())
            mt.controller_ceiling.labels(name).set(server.controller.ceiling)
            state = server.controller_state()  # the rate decayed to now
            mt.arrival_rate.labels(name).set(state["arrival_rows_per_s"])
            mt.controller_operating.labels(name).set(state["operating_planes"])
            mt.prediction_correction.labels(name).set(state["prediction_correction"])
            mt.service_factor.labels(name).set(state["service_factor"])
            mt.machine_factor.labels(name).set(state["cost_seconds"]["machine_factor"])
            mt.controller_headroom.labels(name).set(state["headroom"])
            server.export_cost()
        return Response(generate_latest(mt.registry), media_type=CONTENT_TYPE_LATEST)

    return app
