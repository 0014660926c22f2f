"""bitplane-serve against abusive HTTP on a real uvicorn server (raw sockets
on loopback): truncated and mis-sized bodies, chunked bodies, bodies over
the limit, odd Content-Types, header floods, clients that go away mid-body
and mid-stream. After each, the server must answer the next request
correctly and hold no state for the client that left (generation sessions,
active streams)."""

import asyncio
import json
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="bitplane-serve needs the serve extra: "
                                      "pip install './python-bindings[serve-test]'")

from bitplane.serve import ServeConfig, create_app  # noqa: E402
from bitplane.serve.generate import Sessions  # noqa: E402
from bitplane.serve.protocol import ApiError  # noqa: E402


# -- sessions: bounded even while some are in use ----------------------------

def test_sessions_stay_bounded_while_the_oldest_is_in_use():
    """A stream holding the least recently used session must not stop the
    eviction of the others: new sessions beyond max_sessions were kept
    without bound while the oldest was in use."""

    async def scenario():
        sessions = Sessions(max_sessions=3, ttl_s=600.0)
        busy = sessions.get_or_create("busy", [])
        async with busy.lock:  # a long stream on the oldest session
            for i in range(20):
                sessions.get_or_create(f"s{i}", [])
                assert len(sessions) <= 3
            assert sessions.get_or_create("busy", []) is busy  # in use: kept
            assert sessions.get_or_create("s19", []) is not None
        return len(sessions)

    assert asyncio.run(scenario()) <= 3


def test_sessions_all_in_use_refuses_a_new_one_with_503():
    async def scenario():
        sessions = Sessions(max_sessions=2, ttl_s=600.0)
        a, b = sessions.get_or_create("a", []), sessions.get_or_create("b", [])
        async with a.lock, b.lock:
            with pytest.raises(ApiError) as e:
                sessions.get_or_create("c", [])
            assert sessions.get_or_create("a", []) is a  # a known one still goes on
        assert sessions.get_or_create("c", []) is not None  # a or b dropped now
        return e.value, len(sessions)

    err, n = asyncio.run(scenario())
    assert err.status == 503 and err.headers == {"Retry-After": "1"}
    assert err.message == "all 2 generation sessions are in use; retry later"
    assert n == 2
