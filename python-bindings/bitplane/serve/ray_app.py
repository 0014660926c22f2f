"""The same application on Ray Serve: N replicas, each a full server (model,
batcher, controller) behind Ray Serve's HTTP proxy.

``bitplane-serve --ray-replicas N`` starts a local Ray cluster (or joins the
one named by ``RAY_ADDRESS``) and deploys the app. Replicas go wherever the
cluster has room, so more machines mean more nodes: start ``ray start --head``
on one and ``ray start --address=HEAD:6379`` on the others, then run the
command with ``RAY_ADDRESS=auto`` on the head. Without ``RAY_ADDRESS`` the
local cluster keeps every Ray process on the loopback address.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import asdict

from .app import ServeConfig

__all__ = ["deployment", "run_ray"]


def deployment(model: str, config: ServeConfig, replicas: int, threads: int = 0):
    """A bound Ray Serve application of `replicas` bitplane servers."""
    from ray import serve

    @serve.deployment(name="bitplane", num_replicas=replicas,
                      ray_actor_options={"num_cpus": 0},
                      max_ongoing_requests=max(config.max_queue_rows, 100))
    @serve.ingress()
    class BitplaneServe:
        def __init__(self, model_spec: str, config_dict: dict, threads: int):
            from .. import Context
            from .app import create_app
            from .served import load

            cfg = ServeConfig(**config_dict)
            context = Context(threads=threads) if threads else None
            self._asgi = create_app(load(model_spec, activation=cfg.activation, context=context,
                                         plan=cfg.plan), cfg)

        def __serve_build_asgi_app__(self):
            return self._asgi

    return BitplaneServe.bind(model, asdict(config), threads)


def run_ray(model: str, config: ServeConfig, *, replicas: int, host: str, port: int,
            threads: int = 0) -> int:
    """Deploy and block until SIGINT/SIGTERM, then shut Serve down."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not os.environ.get("RAY_ADDRESS"):
        # A local cluster of one node: keep every Ray process on loopback
        # (Ray's single-machine mode; must be set before Ray is imported).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import serve

    ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False,
             logging_level="warning")
    serve.start(http_options={"host": host, "port": port})
    serve.run(deployment(model, config, replicas, threads), name="bitplane", route_prefix="/")
    print(f"bitplane-serve: {replicas} replica(s) of '{model}' on Ray Serve at "
          f"http://{host}:{port}", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    return 0
