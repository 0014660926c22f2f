"""bitplane-serve: an Open Inference Protocol (KServe v2) server for bitplane
models with a per-request precision knob (``planes``: 1..k or ``"auto"``),
precision batching across requests, an SLO controller and Prometheus metrics.

Needs the ``serve`` extra: ``pip install './python-bindings[serve]'``.
``create_app`` builds the FastAPI application; ``bitplane-serve`` runs it.
See ``docs/serve.md`` for the design.
"""

from .app import ServeConfig, Server, create_app

__all__ = ["ServeConfig", "Server", "create_app"]
