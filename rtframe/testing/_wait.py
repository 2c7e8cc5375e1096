"""Waiting for what an app under test sends, with a bound and a message saying what
was awaited."""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable

from ..types import Message, Scope

__all__ = ["next_from_app", "run_app"]


async def run_app(call: Awaitable[None]) -> None:
    """`call` as a coroutine, which `asyncio.create_task` needs (an app may return any
    awaitable)."""
    await call


async def next_from_app(
    queue: asyncio.Queue[Message],
    task: asyncio.Task[None],
    timeout: float,
    waiting_for: str,
    scope: Scope,
) -> Message:
    """The app's next message; if the app ends first, what it raised or an assertion
    naming what it never sent; an assertion after `timeout` seconds."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, task}, timeout=timeout, return_when=FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if task in done:
        if not queue.empty():
            return queue.get_nowait()
        task.result()  # re-raises what the app raised
        raise AssertionError(f"the app finished without sending {waiting_for}")
    raise AssertionError(f"timed out after {timeout}s waiting for {waiting_for} on {scope['path']}")
