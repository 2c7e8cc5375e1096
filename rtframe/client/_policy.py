"""What the client decides by itself: when to reconnect, how long to wait, what it tells.

It reconnects after any close but a final one, as the browser client `rtframe.js` does:
1000 (the server closed on purpose: reconnecting would undo it), 1003 and 1007 (data it
cannot take), 1008 (policy: a refused origin, a malformed `$since`), 4001 (the session
ended: logout, password change) and the app's refusals 4400-4499 (4401 login required,
4403...). So it comes back after 1001, 1006 (connection lost), 1011, 1012 (restart),
1013 (try again later), 4002 (heartbeat timeout), 4008 (too slow)... A handshake refused
with an HTTP status is final too (unlike a browser, Python sees the status), except 503:
the server drains or is full, and says when to come back (`Retry-After`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import ValidationError

from ..exceptions import ConfigurationError, RtframeError
from ..history import SINCE_PARAM, GapNotice, Position, RecoveryNotice
from ..messages import DroppedNotice, ReconnectNotice

__all__ = [
    "FINAL_CLOSE_CODES",
    "Backoff",
    "ClientClosed",
    "ClientError",
    "Connected",
    "ControlFrame",
    "Disconnected",
    "Event",
    "HandshakeRefused",
    "SendBufferFull",
    "parse_notice",
    "reconnects_after",
    "refused",
    "retry_after",
    "since_url",
]

logger = logging.getLogger("rtframe.client")

#: Close codes after which the client stays closed; so are 4400-4499 (`reconnects_after`).
FINAL_CLOSE_CODES = frozenset({1000, 1003, 1007, 1008, 4001})
#: The HTTP status of a refused handshake worth retrying: the server drains or is full.
RETRY_STATUS = 503


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter between reconnect attempts.

    The n-th consecutive attempt (from 0) waits `min(maximum, initial * factor**n)`
    seconds, less a random share of up to `jitter` of it (1: "full jitter", anywhere
    from 0, as `rtframe.js` does), so clients that lost the same server do not come
    back at the same instant.
    """

    initial: float = 0.5
    maximum: float = 20.0
    factor: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.factor >= 1 and 0 <= self.jitter <= 1):
            raise ConfigurationError(
                "Backoff needs 0 < initial <= maximum, factor >= 1 and 0 <= jitter <= 1, not "
                f"initial={self.initial}, maximum={self.maximum}, factor={self.factor}, "
                f"jitter={self.jitter}"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (0: the first one)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1 - self.jitter * random.random())


class ClientError(RtframeError):
    """Base of the client's errors."""


class ClientClosed(ClientError):
    """The client is closed for good: by `close()`, a final close code, or given up.

    Raised by `receive()` (once every message received before is read) and `send()`.
    `code` is the close code (1006 when the connection was lost without one).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class HandshakeRefused(ClientClosed):
    """The server refused the handshake with an HTTP status (403: refused, 503: busy).

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(1006, f"handshake refused with HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class SendBufferFull(ClientError):
    """`send()` while reconnecting, with `send_buffer` frames waiting already.

    The frame is not sent; send it again once the client is connected.
    """


@dataclass(frozen=True, slots=True)
class Connected:
    """The client connected (`reconnected`: again, after losing the connection)."""

    url: str  #: the URL it connected to, `$since` included
    reconnected: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection closed; the client reconnects in `reconnect_in` s (None: never)."""

    code: int  #: the close code; 1006 when lost without one
    reason: str
    reconnect_in: float | None
    status: int | None = None  #: the HTTP status of a refused reconnect handshake


@dataclass(frozen=True, slots=True)
class ControlFrame:
    """A control frame the client has no model for (`$presence`, or a newer one)."""

    type: str
    data: dict[str, Any]


#: What `on_event` is called with: the client's own events and the server's notices.
Event = (
    Connected
    | Disconnected
    | RecoveryNotice
    | GapNotice
    | DroppedNotice
    | ReconnectNotice
    | ControlFrame
)


def reconnects_after(code: int) -> bool:
    """Whether a close with `code` invites a reconnect (see the module docstring)."""
    return code not in FINAL_CLOSE_CODES and not 4400 <= code <= 4499


def since_url(url: str, positions: Mapping[str, Position]) -> str:
    """`url` with `$since` set to `positions` (URL-encoded JSON), or removed when empty."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and unquote(p.split("=", 1)[0]) != SINCE_PARAM]
    if positions:
        since = {g: {"epoch": p.epoch, "offset": p.offset} for g, p in sorted(positions.items())}
        value = json.dumps(since, separators=(",", ":"), ensure_ascii=False)
        kept.append(f"{SINCE_PARAM}={quote(value, safe='')}")
    return urlunsplit(parts._replace(query="&".join(kept)))


_NOTICES: dict[str, type[RecoveryNotice | GapNotice | DroppedNotice | ReconnectNotice]] = {
    "$recovery": RecoveryNotice,
    "$gap": GapNotice,
    "$dropped": DroppedNotice,
    "$reconnect": ReconnectNotice,
}


def parse_notice(kind: str, data: dict[str, Any]) -> Event:
    """The model of a control frame (`RecoveryNotice`...), else a `ControlFrame`.

    A frame of a known type that does not fit its model is logged and passed on as a
    `ControlFrame`.
    """
    model = _NOTICES.get(kind)
    if model is None:
        return ControlFrame(kind, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        logger.warning("a malformed %s frame (%s); passed on as a ControlFrame", kind, exc)
        return ControlFrame(kind, data)


def refused(status: int, retry_after_header: str | None) -> HandshakeRefused:
    """The error of a handshake answered with HTTP `status`."""
    return HandshakeRefused(status, retry_after(retry_after_header))


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header holding a number of seconds; else None."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: not sent by rtframe; the backoff applies instead
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None
