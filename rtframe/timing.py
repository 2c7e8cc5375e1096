"""Heartbeats and timeouts: how long rtframe waits before it calls a connection dead or stuck.

Heartbeat wire protocol (JSON text frames, both directions):

- every `interval` seconds the server sends `{"type":"$ping"}`; the client answers
  `{"type":"$pong"}`. Any frame from the client counts as an answer. A client that sends
  nothing within `timeout` seconds of a ping is closed with 4002 (heartbeat timeout) and
  leaves every group.
- a client may send `{"type":"$ping"}` at any time; the server answers `{"type":"$pong"}`.
- so a client that hears nothing (no ping, no other frame) for `interval + timeout`
  seconds may take the server for dead and reconnect.

Types starting with `$` are rtframe's own control frames, so they never collide with an
application's message types. The two heartbeat frames are recognised by their exact text
(`{"type":"$ping"}` or `{"type": "$ping"}`, the same for pong) before any validation, so
they cost no parsing; a route cannot declare a message of its own of those types.

Timeouts: `handshake` bounds the connect handler and its dependencies (a refused
handshake, logged); `idle` closes a connection that sent no message (control frames do not
count) for that long, with 4003; `handler` bounds one receive handler: past it the client
gets a `handler_timeout` error frame and the log a warning, and the handler is not
cancelled: its answer, if any, follows when it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .exceptions import ConfigurationError

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_TIMEOUTS",
    "PING",
    "PING_FRAMES",
    "PONG",
    "PONG_FRAMES",
    "Heartbeat",
    "HeartbeatPing",
    "HeartbeatPong",
    "Timeouts",
]

PING = '{"type":"$ping"}'
PONG = '{"type":"$pong"}'
#: The exact texts recognised as heartbeat frames (compact, and as `json.dumps` writes them).
PING_FRAMES = frozenset({PING, '{"type": "$ping"}'})
PONG_FRAMES = frozenset({PONG, '{"type": "$pong"}'})
#: No heartbeat frame is longer: a longer text is never looked up.
CONTROL_MAX_LENGTH = 17
#: rtframe's own message types, which no route may declare (heartbeat, notices).
CONTROL_TYPES = frozenset({"$ping", "$pong", "$dropped", "$reconnect"})


class HeartbeatPing(BaseModel):
    """A heartbeat ping: whoever receives one answers with a pong."""

    type: Literal["$ping"] = "$ping"


class HeartbeatPong(BaseModel):
    """The answer to a heartbeat ping."""

    type: Literal["$pong"] = "$pong"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Ping every `interval` seconds; a peer silent for `timeout` more is closed (4002)."""

    interval: float = 25.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ConfigurationError("Heartbeat interval and timeout must be positive")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds, in seconds, on a handshake, an idle connection and one handler call.

    None switches one off. Defaults: a handshake must complete within 10 s, a handler
    within 60 s; an idle connection is never closed for idleness alone.
    """

    handshake: float | None = 10.0
    idle: float | None = None
    handler: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("handshake", "idle", "handler"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"Timeouts.{name} must be positive or None")


#: What a RealtimeApp uses unless told otherwise: a ping every 25 s, 10 s to answer.
DEFAULT_HEARTBEAT = Heartbeat()
DEFAULT_TIMEOUTS = Timeouts()
