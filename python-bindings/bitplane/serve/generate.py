"""Streaming character generation with per-session state.

A session is the recurrent state after everything it has read and written so
far: a request with a known ``session_id`` continues from there (its
``text_input`` is read first), so a client can hold a conversation without
resending the history. Sessions live in this process's memory, the least
recently used dropped beyond ``max_sessions`` or after ``ttl_s`` idle (never
one a stream is using: when all are in use, a new one is refused with 503).

Concurrent streams advance together: a :class:`StepBatcher` collects the
next token of every active stream and runs one tick, one batched step call
per recurrent layer (``bp_rnn_step_columns``, each stream's state a column
at the stream's own planes) and one read-out product, per act_bits (act_bits
1 streams also per planes: the library promises columns at different planes
equal to single calls only for act_bits >= 2). A prompt is read alone, with
the layers' sequence call.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List, Optional, Tuple

import numpy as np

from .protocol import ApiError, GenerateRequest
from .served import CharModel
from .tasks import cancel_and_wait

__all__ = ["Sessions", "StepBatcher", "open_session", "generate"]


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
        """The session `key`, a new one (zero state) if unknown. Refused with
        503 when all max_sessions are in use (none can be dropped)."""
        now = time.monotonic()
        self._evict(now, room=0 if key in self._items else 1)
        s = self._items.get(key)
        if s is None:
            if len(self._items) >= self.max_sessions:
                raise ApiError(503, f"all {self.max_sessions} generation sessions are in use; "
                                    "retry later", {"Retry-After": "1"})
            s = self._items[key] = Session(zero_state)
        self._items.move_to_end(key)
        s.used = now
        return s

    def _evict(self, now: float, room: int) -> None:
        """Drops, least recently used first, idle sessions past ttl_s and
        then as many as leave `room` under max_sessions. A session in use (a
        stream holds its lock) is skipped, never dropped, and does not stop
        the others' eviction (it did: a long stream on the oldest session
        let the store grow without bound)."""
        for key, s in list(self._items.items()):
            over = len(self._items) + room > self.max_sessions
            expired = now - s.used > self.ttl_s
            if not over and not expired:
                break
            if not s.lock.locked():
                del self._items[key]


class StepBatcher:
    """Advances every active generation stream by one token per tick.

    A tick waits until every active stream has asked for its next step, or
    ``tick_wait_s`` after the first one did (a slow reader does not hold
    back the others), then runs the steps asked for, at most ``max_batch``,
    one ``RNNStepper.step_batch`` call per act_bits (and per planes at
    act_bits 1), each stream at its own planes, in the executor (the
    library releases the GIL).
    """

    def __init__(self, stepper, executor: ThreadPoolExecutor, *, tick_wait_s: float = 0.002,
                 max_batch: int = 256, on_tick=None):
        self.stepper = stepper
        self.executor = executor
        self.tick_wait_s = tick_wait_s
        self.max_batch = max_batch
        self.on_tick = on_tick  # called with the streams of each step call
        self.active = 0  # streams inside their generation loop
        self.step_calls = 0
        self._pending: List[Tuple[int, list, int, int, asyncio.Future]] = []
        self._wakeup: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None

    def _ensure_started(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_and_wait(self._worker)

    async def step(self, token: int, state: list, planes: int, act_bits: int):
        """(logits, new state) after `token`, computed in the next tick."""
        self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        self._pending.append((token, state, planes, act_bits, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            end = loop.time() + self.tick_wait_s
            while len(self._pending) < min(self.active, self.max_batch):
                left = end - loop.time()
                if left <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            groups: Dict[Tuple[int, int], list] = {}
            for item in batch:
                if not item[4].done():  # the stream went away
                    key = (item[3], item[2] if item[3] < 2 else 0)
                    groups.setdefault(key, []).append(item)
            for (act_bits, _), items in groups.items():
                try:
                    logits, states = await loop.run_in_executor(
                        self.executor, self.stepper.step_batch, [i[0] for i in items],
                        [i[1] for i in items], [i[2] for i in items], act_bits)
                except Exception as e:  # noqa: BLE001 - handed to every waiting stream
                    for i in items:
                        if not i[4].done():
                            i[4].set_exception(e)
                    continue
                self.step_calls += 1
                if self.on_tick:
                    self.on_tick(len(items))
                for k, i in enumerate(items):
                    if not i[4].done():
                        i[4].set_result((logits[k], states[k]))


def _pick(logits: np.ndarray, temperature: float, rng: Optional[np.random.Generator]) -> int:
    if temperature == 0:
        return int(np.argmax(logits))
    # The shift before the scaling: divided first, logits overflow to inf
    # at tiny temperatures (5e-324) and inf - inf is NaN. Shifted, the
    # largest is 0 and the others go to -inf, exp 0: greedy, as the limit.
    with np.errstate(over="ignore"):  # to -inf, meant
        z = (logits.astype(np.float64) - logits.max()) / temperature
    p = np.exp(z)
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
                   executor: ThreadPoolExecutor, steps: StepBatcher) -> AsyncIterator[dict]:
    """Yields one event per generated character, then a final one. The
    prompt is read in the executor; every generated token is fed back
    through `steps`, together with the other streams' tokens."""
    loop = asyncio.get_running_loop()
    stepper = model.stepper
    rng = np.random.default_rng(req.seed) if req.temperature > 0 else None
    async with session.lock:
        # Active from the start, so that a tick waits (tick_wait_s at most)
        # for a stream still reading its prompt.
        steps.active += 1
        try:
            if req.text:
                session.logits, session.state = await loop.run_in_executor(
                    executor, stepper.run, model.encode(req.text), session.state, req.planes,
                    req.act_bits)
            for i in range(req.max_tokens):
                token = _pick(session.logits, req.temperature, rng)
                yield {"text_output": model.decode(token), "index": i, "token": token,
                       "planes": req.planes}
                session.logits, session.state = await steps.step(token, session.state,
                                                                 req.planes, req.act_bits)
                session.used = time.monotonic()
        finally:
            steps.active -= 1
    final = {"finish_reason": "length", "tokens": req.max_tokens, "planes": req.planes,
             "session_id": req.session_id}
    if model.plan:
        final["plan"] = model.plan["source"]
    yield final
