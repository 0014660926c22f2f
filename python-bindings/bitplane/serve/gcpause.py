"""Time every garbage collection in the server process (a metric).

A collection holds the event loop, and with it every hand-off between the
batcher and its worker thread, for its duration; a full one walks every
tracked object (about 58,000 once the web stack and a model are loaded,
30-40 ms on the 2-core Zen 4 host under load). Measured on the wide stack's
load test: 49-53 generation-0 and 4-5 generation-1 collections and none of
generation 2 in 40 s, 0.03-0.04 s of pauses in all, so ``gc.freeze()`` at
start-up changed nothing and is not done (docs/serve.md, "Where the server's
time goes"). The metric is there to show it if a model or a client changes
that.
"""

from __future__ import annotations

import gc
import time
from typing import Callable, Optional

__all__ = ["GCPauses"]


class GCPauses:
    """Times each collection and hands (generation, seconds) to `observe`,
    from gc.callbacks, while installed. Several can be installed in one
    process (an app per test); each removes only its own callback."""

    def __init__(self, observe: Callable[[int, float], None]):
        self.observe = observe
        self._start: Optional[float] = None

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            self.observe(int(info.get("generation", 0)), time.perf_counter() - self._start)
            self._start = None

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
