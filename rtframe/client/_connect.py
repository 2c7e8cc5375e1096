"""`connect()`: the documented way to make a `Client` (its keyword arguments, explained)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..history import Position
from ._client import Client, EventHandler
from ._policy import Backoff

__all__ = ["connect"]


def connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    positions: Mapping[str, Position] | None = None,
    reconnect: bool = True,
    backoff: Backoff | None = None,
    max_attempts: int | None = None,
    send_buffer: int = 100,
    receive_buffer: int = 1024,
    control_frames: bool = False,
    on_event: EventHandler | None = None,
    **options: Any,
) -> Client:
    """A client of `url`; `async with connect(url) as client:` (or `await connect(url)`).

    Args:
        url: `ws://` or `wss://` URL of a route, query string included.
        headers: extra handshake headers (a session cookie, a token).
        positions: positions to recover from on the first connection (`$since`),
            e.g. `client.positions` of an earlier client.
        reconnect: reconnect after a close that allows it (see `RECONNECT_CODES`).
        backoff: delays between attempts (default `Backoff()`: 0.5 s doubling to 20 s).
        max_attempts: failed attempts in a row before giving up (None: never).
        send_buffer: frames `send()` keeps while reconnecting; past it `SendBufferFull`.
        receive_buffer: messages kept for `receive()`; past it the socket is not read
            until the application catches up.
        control_frames: also return control frames (`$ping`, `$recovery`...) from
            `receive()`, in order; they are handled all the same.
        on_event: called with every `Event` (connected, disconnected, the server's
            notices), plain or async; it runs in the reading task, so it should be quick.
        options: passed on to `websockets.asyncio.client.connect` (`open_timeout`,
            `max_size`, `subprotocols`, `ping_interval`...).
    """
    if headers is not None:
        options["additional_headers"] = dict(headers)
    return Client(
        url,
        positions=positions,
        reconnect=reconnect,
        backoff=backoff,
        max_attempts=max_attempts,
        send_buffer=send_buffer,
        receive_buffer=receive_buffer,
        control_frames=control_frames,
        on_event=on_event,
        **options,
    )
