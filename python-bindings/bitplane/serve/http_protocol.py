"""uvicorn's httptools protocol with a bound on request headers and JSON
answers for requests the HTTP parser refuses.

httptools puts no bound on a request's headers: a 64 MiB header was
accepted, and collecting it took 5 s of the event loop's CPU (every other
request waited; load average 2) and grew the process by 256 MB. This protocol counts the
bytes of a request's head as they arrive and, past ``max_header_bytes``,
answers 431 and closes the connection. uvicorn's h11 protocol bounds them
itself (16 KiB). Requests whose framing the parser refuses (a bad
Content-Length, conflicting lengths, a bad chunk) get the server's
``{"error": ...}`` shape instead of uvicorn's plain text, as every other
refusal does.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["BoundedHttpToolsProtocol", "MAX_HEADER_BYTES", "protocol_for"]

MAX_HEADER_BYTES = 64 << 10  # request line and headers; nginx's default is 8-32 KiB


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = MAX_HEADER_BYTES
    linger_s = 1.0  # how long a refused client may go on sending before the close
    _head_bytes = 0  # bytes received since the current request began
    _in_head = True  # the current request's headers are not complete yet
    _refused = False  # answered and closing: what still arrives is dropped

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a chunk that completes the head may carry
        # body bytes, which do not count.
        if (self._in_head and self._head_bytes > self.max_header_bytes
                and not self._refused and not self.transport.is_closing()):
            self.logger.warning("Request headers over %d bytes.", self.max_header_bytes)
            self._send_error(431, f"request headers exceed the limit of "
                                  f"{self.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        self._send_error(400, "invalid HTTP request: the request line, headers or body "
                              "framing (Content-Length, Transfer-Encoding, chunks) cannot "
                              "be parsed")

    def _send_error(self, status: int, message: str) -> None:
        """{"error": message} with `status`, then close (the stream cannot
        be read on from here). The close lingers: closing at once with the
        client's bytes unread resets the connection, which can throw away
        the answer before the client reads it. A request in progress on
        the connection (its body broken, or pipelined before this one) gets
        no answer after this one: it is told the client went away; one
        whose answer has begun is cut off (nothing else can be said)."""
        self._refused = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        body = orjson.dumps({"error": message})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n",
                 b"content-length: ", str(len(body)).encode(), b"\r\n",
                 b"connection: close\r\n\r\n", body]
        self.transport.write(b"".join(head))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(self.linger_s, self.transport.close)
        else:
            self.transport.close()


def protocol_for(http: str):
    """What to give uvicorn's ``http`` for the ``--http`` choice: this
    protocol where uvicorn would use httptools, else the name as it is."""
    if http in ("auto", "httptools"):
        try:
            import httptools  # noqa: F401
        except ImportError:
            if http == "httptools":
                raise
            return http
        return BoundedHttpToolsProtocol
    return http
