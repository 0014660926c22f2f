"""Precision batching across requests.

Requests wait in one bounded FIFO. A single worker task takes up to
``max_batch`` rows at a time (waiting at most ``max_wait`` for more when the
queue has fewer), groups them by activation bits, and runs one batched model
call per group, every row at its own request's planes via ``column_planes``.
While a batch computes, new requests queue, so the next batch coalesces
whatever arrived meanwhile.

Where the call runs: a batch whose predicted compute time is at most
``inline_max_s`` runs on the event loop's thread itself, because handing it
to a worker thread and back costs two thread wake-ups, which on a busy
machine are longer than the call (they were most of the server's added
latency at low load). Longer batches run in a worker thread; the library
releases the GIL, so the event loop keeps accepting and parsing requests
during them.

act_bits 1 rows are grouped by planes as well: the library promises
bit-identical ``column_planes`` results only for act_bits >= 2.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from .tasks import cancel_and_wait

__all__ = ["Batcher", "Pending", "Overloaded", "LATE_PREFIX", "DeadlineExceeded", "ShuttingDown",
           "BatchResult"]


# How a late refusal's message starts (the load test's analysis counts them).
LATE_PREFIX = "queued past the latency objective"


class Overloaded(Exception):
    """Refused for load: the queue is full ("overloaded"), the SLO cannot
    be met behind it ("slo"), or a queued request's wait made its SLO
    unreachable before its batch ran ("slo_late"); carries a Retry-After
    estimate in seconds, and for "slo_late" when its batch would have ended
    (``ends_at``, monotonic seconds)."""

    def __init__(self, message: str, retry_after_s: int, reason: str = "overloaded",
                 ends_at: Optional[float] = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.ends_at = ends_at


class DeadlineExceeded(Exception):
    pass


class ShuttingDown(Exception):
    pass


@dataclass
class BatchResult:
    y: np.ndarray
    planes: int
    queue_s: float
    compute_s: float
    batch_rows: int
    taken: float = 0.0  # monotonic seconds when a batch took it


class Pending:
    """One request waiting for its batch (a plain class with slots: one is
    made per request on the serving path)."""

    __slots__ = ("x", "rows", "planes", "act_bits", "deadline", "shed_at", "future", "enqueued",
                 "taken")

    def __init__(self, x: np.ndarray, planes: int, act_bits: int, deadline: Optional[float],
                 future: asyncio.Future, shed_at: Optional[float] = None):
        self.x = x
        self.rows = x.shape[0]
        self.planes = planes
        self.act_bits = act_bits
        self.deadline = deadline
        self.shed_at = shed_at
        self.future = future
        self.enqueued = time.monotonic()
        self.taken = self.enqueued  # when a batch took it


class Batcher:
    """Coalesces concurrent requests into batched calls of ``forward_batched``.

    Args:
        forward_batched: ``f(x, column_planes, act_bits) -> y`` (runs in a thread).
        max_batch: rows per call.
        max_wait_s: how long a batch waits for more rows when the queue has
            fewer than max_batch (0: take what is queued and go).
        max_queue_rows: rows allowed to wait; beyond that submit() raises
            Overloaded (503 with Retry-After).
        on_batch: called after each call with (rows, the largest plane count
            in the batch, distinct plane counts in the batch, compute
            seconds, service seconds), for metrics and the cost model. The
            compute time is the model call's own, timed in the thread that
            runs it; the service time runs from the hand-off to that thread
            until the event loop resumes after it (when the batcher can take
            the next batch): what the batch held the queue for.
        estimate_s: rows queued -> seconds to drain them (for Retry-After).
        predict_s: a batch's (rows, largest plane count, distinct plane
            counts) -> its predicted compute seconds, for the choice of
            thread.
        inline_max_s: batches predicted to take at most this long run on the
            event loop's thread (0: every batch goes to the worker thread).
        shed_late: whether requests whose batch would end past their
            ``shed_at`` are refused now, asked when a batch is taken (None:
            never). The server sheds while its measured p99 is over its
            admission limit: a p99 objective allows 1 % late, and a lone late
            request at low load (or in a first burst, before anything is
            measured) is served. A request that found nothing queued or in
            flight is never shed (:meth:`submit`).
        finish_s: a batch's (rows, largest plane count, distinct plane
            counts) -> seconds from taking it to its answers, for late
            shedding (None: predict_s, its compute alone).
    """

    def __init__(self, forward_batched: Callable, *, max_batch: int = 64,
                 max_wait_s: float = 0.0, max_queue_rows: int = 1024,
                 on_batch: Optional[Callable[[int, int, int, float, float], None]] = None,
                 estimate_s: Optional[Callable[[int], float]] = None,
                 predict_s: Optional[Callable[[int, int, int], float]] = None,
                 inline_max_s: float = 0.0, shed_late: Optional[Callable[[], bool]] = None,
                 finish_s: Optional[Callable[[int, int, int], float]] = None):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        if inline_max_s < 0:
            raise ValueError("inline_max_s must be >= 0")
        if inline_max_s > 0 and predict_s is None:
            raise ValueError("inline_max_s needs predict_s")
        if max_queue_rows < max_batch:
            raise ValueError("max_queue_rows must be >= max_batch")
        self.forward_batched = forward_batched
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
        self.estimate_s = estimate_s
        self.predict_s = predict_s
        self.inline_max_s = inline_max_s
        self.shed_late = shed_late
        self.finish_s = finish_s or predict_s
        self.inline_batches = 0  # batches that ran on the loop's thread
        self._queue: Deque[Pending] = deque()
        self.queued_rows = 0
        self.queued_units = 0
        self.in_flight_rows = 0
        self._wakeup: Optional[asyncio.Event] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitplane-batch")
        self._closing = False

    # -- lifecycle -------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking requests, finish the queued ones, stop the worker."""
        self._closing = True
        end = time.monotonic() + timeout_s
        while (self._queue or self.in_flight_rows) and time.monotonic() < end:
            await asyncio.sleep(0.005)
        await cancel_and_wait(self._worker)
        self._executor.shutdown(wait=True)

    # -- requests --------------------------------------------------------
    def queue_depth(self) -> int:
        return self.queued_rows + self.in_flight_rows

    async def submit(self, x: np.ndarray, planes: int, act_bits: int,
                     deadline: Optional[float] = None,
                     shed_at: Optional[float] = None) -> BatchResult:
        """Queue `x` at `planes` and wait for its rows of a batch's answer.

        deadline: the client's (monotonic seconds): past it when its batch
        is taken, DeadlineExceeded (504). shed_at: the server's latency
        objective for it: when its batch is taken and its answer is expected
        after it (finish_s), Overloaded "slo_late" (503) instead of an answer
        served late (needs finish_s or predict_s, and shed_late)."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        rows = x.shape[0]
        if self.queued_rows + rows > self.max_queue_rows:
            raise Overloaded(f"queue full ({self.queued_rows} rows waiting, limit "
                             f"{self.max_queue_rows}); retry later", self._retry_after_s())
        self._ensure_started()
        if self.queue_depth() == 0:
            # Nothing queued or in flight ahead of it: as admission admits
            # such a request, it is never shed late. Its expected end can
            # only be past the objective through the prediction itself (an
            # answer tail or a cost model learned in a slow moment), and
            # shedding it too refused every request of a sequential client
            # for good: with nothing served, nothing corrected the prediction.
            shed_at = None
        item = Pending(x, planes, act_bits, deadline, asyncio.get_running_loop().create_future(),
                       shed_at)
        self._queue.append(item)
        self.queued_rows += rows
        self.queued_units += rows * planes
        self._wakeup.set()
        return await item.future

    def _pop(self) -> Pending:
        item = self._queue.popleft()
        item.taken = time.monotonic()
        self.queued_rows -= item.rows
        self.queued_units -= item.rows * item.planes
        self.in_flight_rows += item.rows  # taken into a batch (forming or computing)
        return item

    # -- the worker ------------------------------------------------------
    async def _take_batch(self) -> List[Pending]:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = [self._pop()]
        rows = batch[0].rows
        end = time.monotonic() + self.max_wait_s
        while rows < self.max_batch:
            if self._queue:
                if rows + self._queue[0].rows > self.max_batch:
                    break
                item = self._pop()
                batch.append(item)
                rows += item.rows
                continue
            left = end - time.monotonic()
            if left <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._take_batch()
            now = time.monotonic()
            live = []
            for item in batch:
                if item.future.done():  # the client went away
                    self.in_flight_rows -= item.rows
                    continue
                if item.deadline is not None and now > item.deadline:
                    item.future.set_exception(DeadlineExceeded(
                        f"deadline passed after {1e3 * (now - item.enqueued):.1f} ms in the queue"))
                    self.in_flight_rows -= item.rows
                    continue
                live.append(item)
            live = self._shed_late(live)
            groups: Dict[Tuple[int, int], List[Pending]] = {}
            for item in live:
                key = (item.act_bits, item.planes if item.act_bits < 2 else 0)
                groups.setdefault(key, []).append(item)
            for (act_bits, _), items in groups.items():
                await self._compute(loop, items, act_bits)

    def _shed_late(self, batch: List[Pending]) -> List[Pending]:
        """The batch without the requests it would answer past their
        ``shed_at``: those are refused now (503 "slo_late"). Admission
        predicted their wait, and a machine that slowed down meanwhile (a
        burst of arrivals the event loop parsed and refused on the worker's
        core) made the queue behind it late together: served, they are the
        tail of the latency; refused, the requests behind them wait less.
        A request's end is predicted from when the batch took it
        (``finish_s`` of the batch, once): the batcher's own wait for more
        rows (``max_wait_s``) is the server's choice, not a queue's."""
        if (self.finish_s is None or self.shed_late is None
                or all(i.shed_at is None for i in batch) or not self.shed_late()):
            return batch
        planes = [i.planes for i in batch]
        finish = self.finish_s(sum(i.rows for i in batch), max(planes), len(set(planes)))
        kept = []
        for item in batch:
            ends = item.taken + finish
            if item.shed_at is None or ends <= item.shed_at:
                kept.append(item)
                continue
            item.future.set_exception(Overloaded(
                f"{LATE_PREFIX}: waited {1e3 * (item.taken - item.enqueued):.1f} ms in the "
                f"queue, and its answer was expected {1e3 * (ends - item.shed_at):.1f} ms "
                "past the objective; retry later", self._retry_after_s(), reason="slo_late",
                ends_at=ends))
            self.in_flight_rows -= item.rows
        return kept

    def _retry_after_s(self) -> int:
        """Retry-After for a refusal now: the predicted drain of the queue
        (estimate_s; 1 s without it), whole seconds, at least 1."""
        wait = self.estimate_s(self.queue_depth()) if self.estimate_s else 1.0
        return max(1, math.ceil(wait))

    def _timed(self, x: np.ndarray, column_planes: List[int], act_bits: int):
        """The model call and its own duration, timed where it runs: timed
        around the hand-off instead, a worker thread's wake-up on a busy
        machine (milliseconds) counted as compute, which kept the cost model
        above --inline-compute-ms and so every batch on the worker thread."""
        t = time.monotonic()
        y = self.forward_batched(x, column_planes, act_bits)
        return y, time.monotonic() - t

    async def _compute(self, loop, items: List[Pending], act_bits: int) -> None:
        x = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
        column_planes = [i.planes for i in items for _ in range(i.rows)]
        rows = x.shape[0]
        top, groups = max(column_planes), len(set(column_planes))
        inline = (self.inline_max_s > 0
                  and self.predict_s(rows, top, groups) <= self.inline_max_s)
        start = time.monotonic()
        try:
            if inline:
                self.inline_batches += 1
                y, compute_s = self._timed(x, column_planes, act_bits)
            else:
                y, compute_s = await loop.run_in_executor(self._executor, self._timed, x,
                                                          column_planes, act_bits)
        except Exception as e:  # noqa: BLE001 - handed to every waiting request
            for i in items:
                if not i.future.done():
                    i.future.set_exception(e)
            return
        finally:
            self.in_flight_rows -= rows
        if self.on_batch:
            self.on_batch(rows, top, groups, compute_s, time.monotonic() - start)
        at = 0
        for i in items:
            if not i.future.done():
                i.future.set_result(BatchResult(y[at:at + i.rows], i.planes, start - i.enqueued,
                                                compute_s, rows, i.taken))
            at += i.rows
