"""rtframe: typed, decorator-driven real-time WebSockets for Python and Django."""

from __future__ import annotations

import typing as _typing

from ._drain import DrainSummary
from .app import RealtimeApp
from .asyncapi import sends
from .client_js import serve_client
from .connection import CLOSE_SLOW_CONSUMER, Connection, ConnectionState, OverflowPolicy
from .di import Depends
from .exceptions import (
    ConfigurationError,
    ConnectionStateError,
    LayerBusyError,
    LayerError,
    LayerUnavailableError,
    LimitExceededError,
    MessageError,
    Reject,
    RtframeError,
)
from .groups import Group, send_to_connection
from .history import GapNotice, RecoveryNotice
from .http import (
    HTMLResponse,
    HTTPError,
    JSONResponse,
    Request,
    Response,
    StreamingResponse,
)
from .http_routing import HTTPRouter
from .layers.base import HistoryPolicy, Layer, Position
from .layers.memory import InMemoryLayer
from .limits import Limits, LimitStats, RateLimit
from .members import Member
from .messages import ErrorFrame
from .presence import PresenceInfo, PresenceNotice, PresencePolicy, PresenceStats
from .routing import WebSocketRouter
from .sse import SSERouter, Stream
from .timing import Heartbeat, Timeouts

__version__ = "0.1.0"

if _typing.TYPE_CHECKING:
    from .layers.redis import RedisLayer


def __getattr__(name: str) -> _typing.Any:
    # the Redis layer imports redis, an optional extra: only when asked for
    if name == "RedisLayer":
        from . import layers

        return layers.RedisLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLOSE_SLOW_CONSUMER",
    "ConfigurationError",
    "Connection",
    "ConnectionState",
    "ConnectionStateError",
    "Depends",
    "DrainSummary",
    "ErrorFrame",
    "GapNotice",
    "Group",
    "HTMLResponse",
    "HTTPError",
    "HTTPRouter",
    "Heartbeat",
    "HistoryPolicy",
    "InMemoryLayer",
    "JSONResponse",
    "Layer",
    "LayerBusyError",
    "LayerError",
    "LayerUnavailableError",
    "LimitExceededError",
    "LimitStats",
    "Limits",
    "Member",
    "MessageError",
    "OverflowPolicy",
    "Position",
    "PresenceInfo",
    "PresenceNotice",
    "PresencePolicy",
    "PresenceStats",
    "RateLimit",
    "RealtimeApp",
    "RecoveryNotice",
    "RedisLayer",
    "Reject",
    "Request",
    "Response",
    "RtframeError",
    "SSERouter",
    "Stream",
    "StreamingResponse",
    "Timeouts",
    "WebSocketRouter",
    "__version__",
    "send_to_connection",
    "sends",
    "serve_client",
]
