"""An asyncio WebSocket client for rtframe apps: tests, scripts and services.

    from rtframe.client import connect

    async with connect("ws://127.0.0.1:8000/ws/chat/lobby?nick=ann") as client:
        await client.send(Say(text="hi"))        # a model, a dict, a str or bytes
        said = await client.receive(Said)        # validated; receive() gives the dict
        async for message in client:             # until the client is closed for good
            ...

It needs the `websockets` library (`pip install websockets`; uvicorn's `standard` extra
brings it). `import rtframe` never imports it; `import rtframe.client` does.

What it does by itself:

- answers `{"type":"$ping"}` with `{"type":"$pong"}`;
- reconnects, with exponential backoff and jitter (`Backoff`), after any close but a
  final one (`FINAL_CLOSE_CODES`: 1000, 1003, 1007, 1008 policy, 4001 session ended;
  and 4400-4499, the app's refusals), as the browser client `rtframe.js` does; after a
  handshake refused with HTTP 503 (draining, full), when `Retry-After` says; never after
  another refused handshake (403). The 1012 that follows a `$reconnect` notice is
  answered at once (within the first backoff delay);
- remembers, per history group, the last position up to which every message arrived
  (`client.positions`) and reconnects with them in `$since`, so the server replays what
  was missed: no message twice (replayed duplicates are dropped), none lost while the
  history holds it. After `$dropped`, or an offset that skips ahead, it reconnects at
  once to recover the missing messages; they then arrive after newer ones;
- keeps up to `send_buffer` frames sent while reconnecting and sends them, in order,
  once connected (`SendBufferFull` past that).

Control frames it handles (`$ping`, `$pong`, `$recovery`, `$gap`, `$dropped`,
`$reconnect`, `$presence`) are not returned by `receive()` unless the client was made
with `control_frames=True`; they are passed to `on_event` as models (`RecoveryNotice`...;
`ControlFrame` for a type it has no model for), with `Connected` and `Disconnected`. A
`$recovery` with `recovered: false` means messages were lost: reload the state.
"""

from __future__ import annotations

from ..history import GapNotice, Position, RecoveryNotice
from ..messages import DroppedNotice, ReconnectNotice
from ._client import Client, EventHandler
from ._connect import connect
from ._policy import (
    FINAL_CLOSE_CODES,
    Backoff,
    ClientClosed,
    ClientError,
    Connected,
    ControlFrame,
    Disconnected,
    Event,
    HandshakeRefused,
    SendBufferFull,
    reconnects_after,
)

__all__ = [
    "FINAL_CLOSE_CODES",
    "Backoff",
    "Client",
    "ClientClosed",
    "ClientError",
    "Connected",
    "ControlFrame",
    "Disconnected",
    "DroppedNotice",
    "Event",
    "EventHandler",
    "GapNotice",
    "HandshakeRefused",
    "Position",
    "ReconnectNotice",
    "RecoveryNotice",
    "SendBufferFull",
    "connect",
    "reconnects_after",
]
