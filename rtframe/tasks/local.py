"""The embedded engine: Taskiq's InMemoryBroker, running tasks in the serving process.

For development and small apps: no Redis, no worker. Tasks run on the app's event loop
(sync ones in a thread); delays are timers; dead letters are kept in memory. Nothing
survives the process: a task running or waiting when it stops is lost (a WARNING says
how many). Use `Tasks.redis(...)` and `rtframe worker` when work must survive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from taskiq import InMemoryBroker
from taskiq.message import BrokerMessage

from .records import DeadLetter, TaskInfo

__all__ = ["LocalBroker"]

logger = logging.getLogger("rtframe.tasks")


class LocalBroker(InMemoryBroker):
    """InMemoryBroker that honours the `delay` label and keeps dead letters.

    Args:
        max_stored_results: results and status records kept (oldest dropped first).
        max_async_tasks: tasks running at once.
        dead_letter_size: dead letters kept per queue.
    """

    def __init__(
        self,
        *,
        max_stored_results: int = 10_000,
        max_async_tasks: int = 100,
        dead_letter_size: int = 1_000,
    ) -> None:
        super().__init__(max_stored_results=max_stored_results, max_async_tasks=max_async_tasks)
        self._waiting: set[asyncio.Task[None]] = set()
        self._dead: dict[str, deque[DeadLetter]] = {}
        self._dead_size = dead_letter_size
        self._dead_count = 0

    async def kick(self, message: BrokerMessage) -> None:
        delay = float(message.labels.get("delay") or 0)
        if delay <= 0:
            await super().kick(message)
            return
        self._spawn(self._later(message, delay))

    async def _later(self, message: BrokerMessage, delay: float) -> None:
        await asyncio.sleep(delay)
        await super().kick(message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def shutdown(self) -> None:
        waiting, running = list(self._waiting), len(self._running_tasks)
        if waiting or running:
            logger.warning(
                "the in-process task engine stops with %d task(s) running and %d waiting "
                "for their time: they are lost (use Tasks.redis for work that must survive)",
                running,
                len(waiting),
            )
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await super().shutdown()

    async def dead_letter(self, queue: str, message: bytes, info: TaskInfo) -> None:
        """Keep a task that failed for good (the newest `dead_letter_size` per queue)."""
        self._dead_count += 1
        letters = self._dead.setdefault(queue, deque(maxlen=self._dead_size))
        letters.append(
            DeadLetter(
                id=str(self._dead_count),
                task_id=info.id,
                name=info.name,
                attempts=info.attempts,
                error_type=info.error_type or "",
                error=info.error or "",
                failed_at=info.finished_at or time.time(),
                message=message,
            )
        )

    async def dead_letters(self, queue: str, count: int = 100) -> list[DeadLetter]:
        """The newest `count` dead letters of `queue`, oldest first."""
        letters = list(self._dead.get(queue, ()))
        return letters[-count:] if count else []
