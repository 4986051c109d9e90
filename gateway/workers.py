"""Run a ``*_once`` step in a loop: every ``interval`` seconds (sooner while it keeps finding
work), backing off after errors, until cancelled or told to stop. Nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("gateway.workers")

Step = Callable[[], Awaitable[int | None]]


async def run_forever(
    name: str,
    step: Step,
    *,
    interval: float,
    stop: asyncio.Event | None = None,
    max_backoff: float = 60.0,
) -> None:
    stop = stop or asyncio.Event()
    failures = 0
    while not stop.is_set():
        try:
            done = await step()
            failures = 0
            pause = 0.0 if done else interval  # more may be waiting
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            pause = min(max_backoff, interval * 2**failures)
            log.warning(
                "worker %s failed (%d in a row); next try in %.0f s",
                name,
                failures,
                pause,
                exc_info=True,
            )
        if pause:
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass
