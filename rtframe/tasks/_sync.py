"""A private event loop in a thread, for sync code with no loop of ours to borrow.

Each portal owns its broker (made by the `Tasks`' factory, started on the portal's loop),
so no connection pool is ever used from two loops: the "Event loop is closed" and
"attached to a different loop" failures of calling async Redis clients from sync code
cannot happen here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskiq import AsyncBroker

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """A daemon thread running an event loop and a broker started on it."""

    def __init__(self, factory: Callable[[], AsyncBroker]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: AsyncBroker | None = None
        self._thread: threading.Thread | None = None

    def _start(self) -> tuple[asyncio.AbstractEventLoop, AsyncBroker]:
        with self._lock:
            if self._loop is None or self._broker is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="rtframe-tasks-sync", daemon=True
                )
                thread.start()
                broker = self._factory()
                asyncio.run_coroutine_threadsafe(broker.startup(), loop).result(30)
                self._loop, self._broker, self._thread = loop, broker, thread
            return self._loop, self._broker

    def call(self, fn: Callable[[AsyncBroker], Awaitable[T]], timeout: float) -> T:
        loop, broker = self._start()
        return asyncio.run_coroutine_threadsafe(_run(fn, broker), loop).result(timeout)

    def close(self) -> None:
        with self._lock:
            loop, broker, thread = self._loop, self._broker, self._thread
            self._loop = self._broker = self._thread = None
        if loop is None or broker is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


async def _run(fn: Callable[[AsyncBroker], Awaitable[T]], broker: AsyncBroker) -> T:
    return await fn(broker)
