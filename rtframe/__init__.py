"""rtframe: typed, decorator-driven real-time WebSockets for Python and Django."""

from __future__ import annotations

from .app import RealtimeApp
from .asyncapi import sends
from .connection import CLOSE_SLOW_CONSUMER, Connection, ConnectionState, OverflowPolicy
from .di import Depends
from .exceptions import (
    ConfigurationError,
    ConnectionStateError,
    LayerError,
    LayerUnavailableError,
    MessageError,
    Reject,
    RtframeError,
)
from .groups import Group, send_to_connection
from .http import HTMLResponse, JSONResponse, Request, Response
from .layers import InMemoryLayer, Layer, RedisLayer
from .limits import RateLimit
from .messages import ErrorFrame
from .routing import WebSocketRouter

__version__ = "0.1.0"

__all__ = [
    "CLOSE_SLOW_CONSUMER",
    "ConfigurationError",
    "Connection",
    "ConnectionState",
    "ConnectionStateError",
    "Depends",
    "ErrorFrame",
    "Group",
    "HTMLResponse",
    "InMemoryLayer",
    "JSONResponse",
    "Layer",
    "LayerError",
    "LayerUnavailableError",
    "MessageError",
    "OverflowPolicy",
    "RateLimit",
    "RealtimeApp",
    "RedisLayer",
    "Reject",
    "Request",
    "Response",
    "RtframeError",
    "WebSocketRouter",
    "__version__",
    "send_to_connection",
    "sends",
]
