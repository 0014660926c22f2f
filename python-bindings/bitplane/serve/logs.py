"""Structured logs: one JSON object per line on stderr.

Records carry ``extra={"fields": {...}}`` for their data; uvicorn's access
log records are unpacked into client, method, path and status.
"""

from __future__ import annotations

import json
import logging
import time

__all__ = ["JsonFormatter", "logging_config"]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
               + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name}
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) \
                and len(record.args) == 5:
            client, method, path, http, status = record.args
            doc.update(event="access", client=client, method=method, path=path, status=status)
        else:
            doc["event"] = record.getMessage()
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def logging_config(level: str = "info", access_log: bool = False) -> dict:
    """A logging.config dict for uvicorn and bitplane.serve, all in JSON."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": lvl, "propagate": False},
            "uvicorn.error": {"level": lvl},
            "uvicorn.access": {"handlers": ["default"], "propagate": False,
                               "level": lvl if access_log else "WARNING"},
            "bitplane.serve": {"handlers": ["default"], "level": lvl, "propagate": False},
        },
    }
