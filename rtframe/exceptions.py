"""Errors raised by rtframe.

    RtframeError
    ├── ConfigurationError     a handler, route or dependency cannot be served (raised at import)
    ├── ConnectionStateError   an operation the connection's current state forbids
    ├── MessageError           a handler refuses a message: sent to the client as an error frame
    │   └── LimitExceededError     a per-connection limit (groups per connection) is reached
    └── LayerError             the messaging layer cannot do what was asked
        ├── LayerUnavailableError   the layer's backend (Redis) is unreachable right now
        └── LayerBusyError          the backend is reachable but had no room in time

`Reject` is not an error of rtframe's own: raise it from a connect handler (or a
dependency) to refuse the handshake with a close code.
"""

from __future__ import annotations

from typing import Any


class RtframeError(Exception):
    """Root of every exception rtframe raises on purpose."""


class ConfigurationError(RtframeError):
    """A handler, route or dependency is declared in a way rtframe cannot serve."""


class ConnectionStateError(RtframeError):
    """The connection is in a state that does not allow the requested operation."""


class LayerError(RtframeError):
    """The messaging layer could not carry out an operation."""


class LayerUnavailableError(LayerError):
    """The layer's backend is unreachable; local delivery still works."""


class LayerBusyError(LayerError):
    """The backend is reachable but every way to it stayed taken for the bounded wait.

    Not an outage: the layer stays available and the next publish may pass; local
    delivery still works.
    """


class MessageError(RtframeError):
    """Raised by a handler to answer the sender with an error frame.

    The connection stays open. `code` is a short machine-readable string and `detail`
    a human-readable sentence; both reach the client verbatim, so keep secrets out.
    """

    def __init__(self, code: str, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors or []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail={self.detail!r})"


class LimitExceededError(MessageError):
    """A per-connection limit is reached: `Group.add` past `Limits.groups_per_connection`.

    A `MessageError` with code `limit_exceeded`: raised in a handler, the sender gets that
    error frame and the connection stays open. The refusal is logged and counted
    (`app.limit_stats`) where it happens.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("limit_exceeded", detail)


class Reject(Exception):
    """Refuse or end a connection with a WebSocket close code.

    Raised before the handshake is accepted, the server answers HTTP 403. Codes follow
    RFC 6455: 1008 for policy violations, 4000-4999 for application reasons.
    """

    def __init__(self, code: int = 1008, reason: str = "") -> None:
        super().__init__(reason or f"connection rejected with code {code}")
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Reject(code={self.code}, reason={self.reason!r})"


__all__ = [
    "ConfigurationError",
    "ConnectionStateError",
    "LayerBusyError",
    "LayerError",
    "LayerUnavailableError",
    "LimitExceededError",
    "MessageError",
    "Reject",
    "RtframeError",
]
