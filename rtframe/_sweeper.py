"""The app's heartbeat sweeper: one task that checks every live session periodically."""

from __future__ import annotations

import asyncio
import logging
import time

from ._session import Sessions

__all__ = ["Sweeper", "sweep_tick"]

logger = logging.getLogger("rtframe")


class Sweeper:
    """One task per app that checks every live session's heartbeat and timeouts.

    A periodic sweep, not a timer per connection: each tick walks the sessions once
    (about a third of a microsecond each), so heartbeats cost no task and no timer handle
    per connection.
    """

    def __init__(self, sessions: Sessions, tick: float) -> None:
        self.sessions = sessions
        self.tick = tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="rtframe heartbeat sweeper"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            await self.sweep(time.monotonic())

    async def sweep(self, now: float) -> None:
        kicks = []
        for session in self.sessions:
            try:
                verdict = session.check(now)
            except Exception:  # one broken session must not stop heartbeats for all
                logger.exception("heartbeat check of %r failed", session)
                continue
            if verdict is not None:
                kicks.append((session, verdict))
        for session, (code, reason) in kicks:
            try:
                await session.kick(code, reason)
            except Exception:
                logger.exception("closing %r after %s failed", session, reason)


def sweep_tick(*spans: float | None) -> float | None:
    """How often to sweep for these intervals and timeouts; None when there is none."""
    given = [s for s in spans if s is not None]
    if not given:
        return None
    # a quarter of the shortest span keeps detection within 25 % of it
    return min(1.0, max(0.01, min(given) / 4))
