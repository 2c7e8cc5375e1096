"""Running many small coroutines with a bound on how many run at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Job", "run_bounded"]

#: One piece of work: a coroutine function taking no argument.
Job = Callable[[], Awaitable[None]]


async def run_bounded(jobs: list[Job], limit: int) -> list[BaseException]:
    """Run `jobs`, at most `limit` at a time; returns the exceptions they raised.

    Used where a burst of layer calls (presence written again after an outage, a sweep
    of many groups) must not open a connection each: redis-py's pool refuses, rather
    than queues, past its size.
    """
    errors: list[BaseException] = []
    gate = asyncio.Semaphore(limit)

    async def one(job: Job) -> None:
        async with gate:
            try:
                await job()
            except Exception as exc:
                errors.append(exc)

    await asyncio.gather(*(one(job) for job in jobs))
    return errors
