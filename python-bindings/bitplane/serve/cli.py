"""``bitplane-serve``: run the server on one model.

    bitplane-serve [--model NAME|PATH] [--host 127.0.0.1] [--port 8000]
    bitplane-serve --ray-replicas 2      # the same app on Ray Serve, 2 replicas
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import List, Optional

from .app import ServeConfig


def _planes(value: str):
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 1..k or 'auto', got {value!r}")


def _int_in(lo: int, hi: Optional[int] = None):
    """An argparse type: an integer in lo..hi (hi None: no upper bound), so
    that --max-batch 0 or --port 99999 is a usage error, not a traceback or
    a server listening on another port (99999 mod 65536)."""
    def parse(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}")
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                f"must be {f'in {lo}..{hi}' if hi is not None else f'>= {lo}'}, got {v}")
        return v
    return parse


def _share(value: str) -> float:
    """An argparse type: a number in 0..1."""
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {value!r}")
    if not 0.0 <= v <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be in 0..1, got {value}")
    return v


def _ms(positive: bool):
    """An argparse type: a finite number of milliseconds, > 0 or >= 0."""
    def parse(value: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}")
        if not math.isfinite(v) or v < 0 or (positive and v == 0):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'> 0' if positive else '>= 0'}, got {value}")
        return v
    return parse


def parser() -> argparse.ArgumentParser:
    d = ServeConfig()
    p = argparse.ArgumentParser(
        prog="bitplane-serve",
        description="Serve a bitplane model over the Open Inference Protocol (KServe v2, "
                    "HTTP/JSON) with per-request planes, precision batching and an SLO "
                    "controller.")
    p.add_argument("--model", default=None,
                   help="bundled model name (digits, char-lstm, char-gru) or a .npz/"
                        ".safetensors Linear stack; the URL name is the bundled name or the "
                        "file's stem (default: the --plan's model, else digits)")
    p.add_argument("--plan", default=None, metavar="PLAN.json",
                   help="a precision plan (bitplane-search, docs/precision-plans.md): "
                        "per-layer plane ceilings and the default act_bits; a request's "
                        "planes still caps")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_int_in(0, 65535), default=8000)
    p.add_argument("--max-batch", type=_int_in(1), default=d.max_batch,
                   help="rows per batched call (default %(default)s)")
    p.add_argument("--max-wait-ms", type=_ms(False), default=d.max_wait_ms,
                   help="how long a batch that is not full waits for more rows "
                        "(default %(default)s: take what is queued)")
    p.add_argument("--inline-compute-ms", type=_ms(False), default=d.inline_compute_ms,
                   help="batches predicted to compute in at most this long run on the event "
                        "loop's thread instead of a worker thread: two thread wake-ups less "
                        "per batch (default %(default)s; 0: always a worker thread)")
    p.add_argument("--max-queue-rows", type=_int_in(1), default=d.max_queue_rows,
                   help="rows allowed to wait before 503 + Retry-After (default %(default)s)")
    p.add_argument("--slo-p99-ms", type=_ms(True), default=d.slo_p99_ms,
                   help="the SLO controller's p99 target for planes=auto (default %(default)s)")
    p.add_argument("--admission", choices=["slo", "queue"], default=d.admission,
                   help="slo: refuse at once (503 + Retry-After) a request that the SLO "
                        "cannot serve behind the queue even at its lowest allowed planes; "
                        "queue: only the --max-queue-rows bound (default %(default)s)")
    p.add_argument("--metric-rows", type=_int_in(0), default=d.metric_rows,
                   help="held-out rows of the model file (test_x, test_y) on which the "
                        "top-1 accuracy at every plane count is measured at start-up: the "
                        "controller's price of accuracy (default %(default)s; 0: none, "
                        "then only latency decides)")
    p.add_argument("--min-metric-share", type=_share, default=d.min_metric_share,
                   help="auto never serves fewer planes than the fewest whose measured "
                        "metric (--metric-rows) is at least this share of the best plane "
                        "count's; a request that cannot be served there is refused (503) "
                        "instead (default %(default)s; 0: only a request's min_planes)")
    p.add_argument("--default-planes", type=_planes, default=None,
                   help="planes for requests that give none: 1..k or auto (default: all)")
    p.add_argument("--max-request-bytes", type=_int_in(1), default=d.max_request_bytes)
    p.add_argument("--activation", default=d.activation,
                   help="activation between a Linear stack's layers (relu, tanh, none)")
    p.add_argument("--threads", type=_int_in(0), default=0,
                   help="library threads (0: all cores)")
    p.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"],
                   help="uvicorn's HTTP parser (auto: httptools when installed; "
                        "request headers are bounded at 64 KiB, h11's at 16 KiB)")
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"],
                   help="uvicorn's event loop (auto: uvloop when installed)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true", help="log every request (JSON)")
    p.add_argument("--ray-replicas", type=_int_in(0), default=0,
                   help="run on Ray Serve with this many replicas (joins a running cluster "
                        "if RAY_ADDRESS is set, else starts a local one)")
    return p


def config_from(args) -> ServeConfig:
    return ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                       inline_compute_ms=args.inline_compute_ms,
                       max_queue_rows=args.max_queue_rows, slo_p99_ms=args.slo_p99_ms,
                       admission=args.admission, metric_rows=args.metric_rows,
                       min_metric_share=args.min_metric_share,
                       default_planes=args.default_planes,
                       max_request_bytes=args.max_request_bytes, activation=args.activation,
                       plan=args.plan)


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    config = config_from(args)
    from .. import Context, Error
    from .served import load

    # The model and plan are loaded here first in every mode, so that a bad
    # file is one line and exit status 2, not a traceback (from a replica).
    try:
        context = Context(threads=args.threads) if args.threads else None
        model = load(args.model, activation=args.activation, context=context, plan=args.plan)
        if args.ray_replicas:
            from .ray_app import run_ray
            spec = args.model or (model.plan["model"] if model.plan else "digits")
            del model
            return run_ray(spec, config, replicas=args.ray_replicas, host=args.host,
                           port=args.port, threads=args.threads)
        from .app import create_app
        app = create_app(model, config)
    except (OSError, ValueError, Error) as e:  # Error: a CorruptError model file, ...
        print(f"bitplane-serve: {e}", file=sys.stderr)
        return 2
    import uvicorn

    from .http_protocol import protocol_for
    from .logs import logging_config
    uvicorn.run(app, host=args.host, port=args.port, log_config=logging_config(
        args.log_level, args.access_log), access_log=args.access_log,
        http=protocol_for(args.http),
        loop=args.loop, timeout_graceful_shutdown=config.drain_timeout_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
