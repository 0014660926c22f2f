"""Streaming character generation with per-session state.

A session is the recurrent state after everything it has read and written so
far: a request with a known ``session_id`` continues from there (its
``text_input`` is read first), so a client can hold a conversation without
resending the history. Sessions live in this process's memory, the least
recently used dropped beyond ``max_sessions`` or after ``ttl_s`` idle.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional

import numpy as np

from .protocol import ApiError, GenerateRequest
from .served import CharModel

__all__ = ["Sessions", "open_session", "generate"]


@dataclass
class Session:
    state: list
    logits: Optional[np.ndarray] = None  # after the last token read
    used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Sessions:
    def __init__(self, max_sessions: int = 256, ttl_s: float = 600.0):
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._items: "OrderedDict[str, Session]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get_or_create(self, key: str, zero_state) -> Session:
        now = time.monotonic()
        while self._items:
            oldest_key, oldest = next(iter(self._items.items()))
            if now - oldest.used <= self.ttl_s and len(self._items) < self.max_sessions:
                break
            if oldest.lock.locked():  # in use: keep it, stop evicting
                break
            del self._items[oldest_key]
        s = self._items.get(key)
        if s is None:
            s = self._items[key] = Session(zero_state)
        self._items.move_to_end(key)
        s.used = now
        return s


def _pick(logits: np.ndarray, temperature: float, rng: Optional[np.random.Generator]) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def open_session(model: CharModel, req: GenerateRequest, sessions: Sessions) -> Session:
    """The request's session (a fresh one without session_id), checked before
    the stream starts so that a bad request still gets a 4xx status."""
    zero = model.stepper.zero_state()
    session = Session(zero) if req.session_id is None else sessions.get_or_create(
        req.session_id, zero)
    if not req.text and session.logits is None:
        raise ApiError(400, "'text_input' must not be empty when starting a session")
    return session


async def generate(model: CharModel, req: GenerateRequest, session: Session,
                   executor: ThreadPoolExecutor) -> AsyncIterator[dict]:
    """Yields one event per generated character, then a final one."""
    loop = asyncio.get_running_loop()
    stepper = model.stepper
    rng = np.random.default_rng(req.seed) if req.temperature > 0 else None
    async with session.lock:
        if req.text:
            session.logits, session.state = await loop.run_in_executor(
                executor, stepper.run, model.encode(req.text), session.state, req.planes,
                req.act_bits)
        for i in range(req.max_tokens):
            token = _pick(session.logits, req.temperature, rng)
            yield {"text_output": model.decode(token), "index": i, "token": token,
                   "planes": req.planes}
            session.logits, session.state = await loop.run_in_executor(
                executor, stepper.run, [token], session.state, req.planes, req.act_bits)
            session.used = time.monotonic()
    final = {"finish_reason": "length", "tokens": req.max_tokens, "planes": req.planes,
             "session_id": req.session_id}
    if model.plan:
        final["plan"] = model.plan["source"]
    yield final
