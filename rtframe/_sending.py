"""How a connection's frames reach the server: resuming a send that had to wait, telling
a peer that went away from a failure, and closes a server refuses.

Kept apart from `connection` because each answers to what servers do differently
(docs/servers.md): uvicorn's `send` usually completes at once, granian's never does and
awaits an object that is no asyncio future; daphne's WebSocket library refuses close
codes outside 1000 and 3000-4999.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

from .types import Message

__all__ = ["is_client_gone", "resume", "send_close"]

logger = logging.getLogger("rtframe.connection")


def is_client_gone(exc: BaseException) -> bool:
    """Whether a failed send means the peer went away (as servers report it)."""
    # uvicorn raises ClientDisconnected (an OSError) and the ASGI spec says OSError;
    # other servers raise their websocket library's ConnectionClosed
    return isinstance(exc, OSError) or any(
        cls.__name__.startswith("ConnectionClosed") for cls in type(exc).__mro__
    )


@types.coroutine
def resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Drive a coroutine that was started outside a task to completion, in this task.

    `waiting_on` is what the coroutine yielded when it had to wait; it goes to the task
    as it is, which then waits on it exactly as it would have had it run the coroutine
    from the start, and the rest of the coroutine is delegated to (`yield from`). Nothing
    is assumed about what a server's `send` awaits: granian's is no asyncio future, and
    can be awaited only once.
    """
    steps = coro.__await__()
    while True:
        try:
            yield waiting_on
        except BaseException as exc:  # hand the failure (or our cancellation) to the coroutine
            throw = getattr(steps, "throw", None)
            if throw is None:
                raise
            try:
                waiting_on = throw(exc)
            except StopIteration:
                return
            continue
        yield from steps
        return


#: Close codes a server may refuse to send for the app (autobahn, under daphne, allows only
#: 1000 and 3000-4999), and the private-use code sent instead: 4000 + (code - 1000).
_SUBSTITUTE_OFFSET = 3000
_substituted_once = False


async def send_close(send: Any, message: Message) -> None:
    """Send a close; if the server refuses its code (1001-2999), send 4000 + (code - 1000)."""
    global _substituted_once
    try:
        await send(message)
    except Exception as exc:
        code = message.get("code", 1000)
        if is_client_gone(exc) or not 1000 < code < 3000:
            raise
        substitute = code + _SUBSTITUTE_OFFSET
        logger.log(
            logging.DEBUG if _substituted_once else logging.WARNING,
            "the server refused to close with %d (%s): closed with %d instead (docs/servers.md)",
            code,
            exc,
            substitute,
        )
        _substituted_once = True
        await send({**message, "code": substitute})
