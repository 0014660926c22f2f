"""A bitplane-serve app on a real uvicorn server in a background thread, bound
to loopback on a free port, for tests that need real HTTP (tritonclient)."""

import socket
import threading
import time

import uvicorn

from bitplane.serve.http_protocol import protocol_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # The HTTP protocol bitplane-serve runs uvicorn with.
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on",
                                                    http=protocol_for("auto")))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        end = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def wait_for(condition, what, timeout=20.0):
    """Polls `condition` until it holds; fails the test naming `what` after
    `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)
