"""Prometheus metrics of one server (its own registry, so that several apps can
live in one process, as in the tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self, model: str):
        self._children = {}
        self.registry = CollectorRegistry()
        r, m = self.registry, ["model"]
        self.model = model
        self.latency = Histogram("bitplane_request_latency_seconds",
                                 "Server-side latency of successful infer requests, by planes used",
                                 m + ["planes"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_time = Histogram("bitplane_queue_seconds", "Time a request waited for its batch",
                                    m, buckets=_LATENCY_BUCKETS, registry=r)
        self.compute_time = Histogram("bitplane_batch_compute_seconds",
                                      "Compute time of one batched model call", m,
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.loop_lag = Histogram("bitplane_event_loop_lag_seconds",
                                  "How late the event loop woke a 5 ms timer (the wait a new "
                                  "request has before its handler runs)", m,
                                  buckets=(0.0001,) + _LATENCY_BUCKETS, registry=r)
        self.gc_pause = Histogram("bitplane_gc_pause_seconds",
                                  "Garbage collections in the server process, by generation "
                                  "(each holds the event loop)", m + ["generation"],
                                  buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("bitplane_batch_rows", "Rows per batched model call", m,
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("bitplane_queue_depth_rows",
                                 "Rows waiting or being computed", m, registry=r)
        self.planes_chosen = Counter("bitplane_planes_chosen",
                                     "Requests served, by planes and how they were chosen",
                                     m + ["planes", "mode"], registry=r)
        self.controller_planes = Gauge("bitplane_controller_planes",
                                       "Planes of the SLO controller's last auto decision", m,
                                       registry=r)
        self.controller_ceiling = Gauge("bitplane_controller_ceiling_planes",
                                        "The controller's feedback ceiling (from measured p99)", m,
                                        registry=r)
        self.controller_predicted = Gauge("bitplane_controller_predicted_seconds",
                                          "Latency predicted for the last auto decision", m,
                                          registry=r)
        self.controller_p99 = Gauge("bitplane_controller_measured_p99_seconds",
                                    "p99 of recent request latencies seen by the controller", m,
                                    registry=r)
        self.controller_operating = Gauge(
            "bitplane_controller_operating_planes",
            "Planes that serve the most correct answers per second at the measured arrival rate "
            "(the most an auto request gets)", m, registry=r)
        self.controller_quality_floor = Gauge(
            "bitplane_controller_quality_floor_planes",
            "The fewest planes an auto request gets: those whose measured metric is at least "
            "--min-metric-share of the best count's (1: no floor)", m, registry=r)
        self.arrival_rate = Gauge("bitplane_arrival_rows_per_second",
                                  "Offered rows per second (refused included), moving average",
                                  m, registry=r)
        self.prediction_correction = Gauge(
            "bitplane_controller_prediction_correction",
            "Measured over predicted latency of recent requests (scales every prediction)", m,
            registry=r)
        self.machine_factor = Gauge(
            "bitplane_cost_machine_factor",
            "The cost table's machine factor now: measured batch time over each count's line "
            "(1 at calibration speed)", m, registry=r)
        self.service_factor = Gauge(
            "bitplane_controller_service_factor",
            "Wall time over compute time of recent batches, hand-offs and event-loop waits "
            "included", m, registry=r)
        self.controller_headroom = Gauge(
            "bitplane_controller_headroom",
            "Share of the SLO a prediction may take: 1 - margin / SLO, the margin the largest "
            "p99 of (measured - predicted) over the last 16 feedback updates",
            m, registry=r)
        self.model_metric = Gauge("bitplane_model_metric",
                                  "The served model's metric (top-1 accuracy on held-out data) "
                                  "at each plane count: the controller's price of accuracy",
                                  m + ["planes"], registry=r)
        self.cost_batch = Gauge("bitplane_cost_batch_seconds",
                                "The cost table: predicted compute seconds of a full batch "
                                "(max batch rows) at each plane count", m + ["planes"],
                                registry=r)
        self.cost_extra_count = Gauge("bitplane_cost_extra_count_seconds",
                                      "Predicted extra compute seconds per further plane count "
                                      "in a mixed batch", m, registry=r)
        self.step_streams = Histogram("bitplane_generation_step_streams",
                                      "Generation streams advanced by one batched step call", m,
                                      buckets=_BATCH_BUCKETS, registry=r)
        self.rejected = Counter("bitplane_rejected", "Requests refused, by reason",
                                m + ["reason"], registry=r)

    def of(self, metric, *labels):
        """metric.labels(*labels), looked up once: ``labels()`` validates and
        locks on every call, which the serving path does several times per
        request."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
