"""How late the event loop runs what is due: the wait a request's bytes have
before the server reads them, which no timing inside a handler sees.

A request's server-side latency starts when its handler runs. Under load the
loop is busy (parsing, answering, refusing) and a request that arrives waits
for it first; so does a timer. :class:`LoopLag` wakes every ``period_s`` and
keeps how late each wake-up was; the server adds the recent lag to each
request's measured latency before the SLO controller sees it, so that the
controller's correction and headroom include that wait (docs/serve.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Callable, Deque, Optional

from .tasks import cancel_and_wait

__all__ = ["LoopLag"]


class LoopLag:
    """Samples the loop's lateness every `period_s` (a task of the running
    loop, started by :meth:`start`); :attr:`recent_s` is the largest of the
    last `keep` samples (``keep * period_s`` of history), 0 before any."""

    def __init__(self, period_s: float = 0.005, keep: int = 20,
                 observe: Optional[Callable[[float], None]] = None):
        if not period_s > 0 or keep < 1:
            raise ValueError("LoopLag needs period_s > 0 and keep >= 1")
        self.period_s = float(period_s)
        self.observe = observe
        self._samples: Deque[float] = deque(maxlen=int(keep))
        self._task: Optional[asyncio.Task] = None

    @property
    def recent_s(self) -> float:
        return max(self._samples, default=0.0)

    def sample(self, late_s: float) -> None:
        late_s = max(0.0, late_s)
        self._samples.append(late_s)
        if self.observe is not None:
            self.observe(late_s)

    async def _run(self) -> None:
        while True:
            due = time.monotonic() + self.period_s
            await asyncio.sleep(self.period_s)
            self.sample(time.monotonic() - due)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
