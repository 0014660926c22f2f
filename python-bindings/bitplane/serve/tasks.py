"""A background task's stop, shared by the server's loops (the batcher's
worker, the generation step batcher, the event-loop lag probe)."""

from __future__ import annotations

import asyncio
from typing import Optional

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: Optional[asyncio.Task]) -> None:
    """Cancel `task` (None: nothing to stop) and wait until it has ended, its
    cancellation swallowed: the caller is stopping it, not failing."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
