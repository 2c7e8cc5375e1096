"""Reading request data out of an ASGI scope, shared by WebSocket and HTTP requests."""

from __future__ import annotations

from urllib.parse import parse_qsl

from .types import Scope

#: Where an integration leaves the logged-in user's key in a connection's scope (the
#: per-user limit and presence read it; `rtframe.django` sets it when a handshake asks
#: for the user).
USER_SCOPE_KEY = "rtframe.django.user_key"


def scope_headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased; a repeated header's values are joined with commas."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def scope_query(scope: Scope) -> dict[str, str]:
    """Query string parameters; the last value wins for repeated names."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))
