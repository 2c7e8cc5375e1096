"""The Redis layer's health: outage and recovery hooks, run when availability changes.

The layer computes `available` from its subscribers each time it is asked (so it never
lies); `Health` remembers the last value it saw and, on a change, logs it, counts the
outage and runs the hooks as tasks (an exception in a hook is logged, not raised).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .stats import RedisStats

__all__ = ["Health", "Hook"]

logger = logging.getLogger("rtframe.layers.redis")

Hook = Callable[[], Awaitable[None]]


class Health:
    """Hooks and transitions of one layer's availability."""

    __slots__ = ("_degraded", "_outage", "_recovery", "_tasks", "_was_available", "stats")

    def __init__(self, stats: RedisStats) -> None:
        self.stats = stats
        self._outage: list[Hook] = []
        self._recovery: list[Hook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._was_available = False
        self._degraded = False  # an outage began and the recovery hooks have not run yet

    def on_outage(self, hook: Hook) -> Hook:
        self._outage.append(hook)
        return hook

    def on_recovery(self, hook: Hook) -> Hook:
        self._recovery.append(hook)
        return hook

    def update(self, available: bool, where: str, error: BaseException | None) -> bool:
        """Record the layer's availability now; True when an outage just began."""
        was, self._was_available = self._was_available, available
        if was and not available:
            logger.warning(
                "lost Redis at %s (%r): broadcasts reach local members only until it is back",
                where,
                error,
            )
            self.down()
            return True
        if available and not was and self._degraded:
            self._degraded = False
            logger.warning("Redis is back at %s; subscriptions restored", where)
            self._run(self._recovery)
        return False

    def down(self) -> None:
        """An outage began (or the layer started without Redis): count it, run the hooks."""
        self._degraded = True
        self.stats.outages += 1
        self._run(self._outage)

    async def stop(self) -> None:
        """Cancel running hooks; the next `update` starts from "unavailable"."""
        self._was_available = False
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self, hooks: list[Hook]) -> None:
        for hook in hooks:
            task = asyncio.get_running_loop().create_task(self._call(hook))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _call(hook: Hook) -> None:
        try:
            await hook()
        except Exception:
            logger.exception("Redis layer hook %r failed", hook)
