"""What code declares for the document beyond its signatures: pushed messages, credentials.

Two attributes carry it, read only when a document is generated (never per message):

`__rtframe_sends__`, set by `@sends(...)` on a connect, receive or disconnect handler
or an SSE endpoint: the messages the handler pushes itself (`conn.send`,
`send_to_connection`, `group.broadcast(...)` from inside the handler), which no return
annotation shows, and the groups whose messages its connections get.

`__rtframe_security__`, set by an integration on a dependency (or on a handler): the
route needs credentials. Its value is one AsyncAPI Security Scheme Object (a mapping
with a `type`), or a mapping of scheme names to such objects, or a zero-argument callable
returning either (called at generation time, so it may read settings that are not
configured at import time), e.g.::

    async def require_login(user: CurrentUser) -> User: ...
    require_login.__rtframe_security__ = {"type": "httpApiKey", "in": "cookie", "name": "sessionid"}

A single scheme is named from its content (`sessionidCookie` above; the `type`
otherwise), so every dependency declaring the same cookie shares one scheme.

Every operation of a route whose handlers (or their dependencies, transitively) carry
the marker lists those schemes in `security`, and the schemes go to
`components/securitySchemes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import ConfigurationError
from .schema import SECURITY_MARKER, SENDS_MARKER

if TYPE_CHECKING:
    from ..groups import Group

__all__ = ["Sends", "declared_sends", "security_schemes", "sends"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Sends:
    """Messages a handler pushes itself, to its own connection or to a group."""

    messages: tuple[Any, ...]
    group: Group | None = None
    description: str | None = None


def sends(
    *messages: Any, group: Group | None = None, description: str | None = None
) -> Callable[[F], F]:
    """Declare, for the AsyncAPI document, messages a handler sends outside its return value.

    Use it on connect, receive or disconnect handlers and on SSE endpoints, above or
    below the router's decorator. It changes nothing at run time.

    `@sends(group=g)` with no message type says only that the route's connections (or
    streams) are members of `g`: its channel then documents every message any route
    declares or broadcasts to `g`, which is what an SSE endpoint that joins a group
    usually needs.

    Args:
        *messages: the message types (Pydantic models, or any type Pydantic can describe).
        group: the messages go to this group's members (`group.broadcast(...)` in the
            handler); they join that group's `send` operation. Without it they go to the
            handler's own connection (`conn.send(...)`).
        description: what the push is for; the handler's docstring is used otherwise.

    Raises:
        ConfigurationError: neither a message type nor a group was given.
    """
    if not messages and group is None:
        raise ConfigurationError("@sends() needs at least one message type, or a group=")

    def decorator(fn: F) -> F:
        declared = (*getattr(fn, SENDS_MARKER, ()), Sends(messages, group, description))
        setattr(fn, SENDS_MARKER, declared)
        return fn

    return decorator


def declared_sends(fn: Callable[..., Any]) -> tuple[Sends, ...]:
    return tuple(getattr(fn, SENDS_MARKER, ()))


def security_schemes(obj: Any) -> dict[str, dict[str, Any]]:
    """The security schemes `obj`'s marker declares, checked; {} without a marker.

    Raises:
        ConfigurationError: the marker is not a mapping of names to scheme objects.
    """
    marker = getattr(obj, SECURITY_MARKER, None)
    if marker is None:
        return {}
    if callable(marker) and not isinstance(marker, Mapping):
        marker = marker()
    where = getattr(obj, "__qualname__", repr(obj))
    if not isinstance(marker, Mapping):
        raise ConfigurationError(
            f"{SECURITY_MARKER} of {where} must be a mapping of scheme names to AsyncAPI "
            f"Security Scheme Objects, not {type(marker).__name__}"
        )
    if isinstance(marker.get("type"), str):
        return {_scheme_name(marker): dict(marker)}
    out: dict[str, dict[str, Any]] = {}
    for name, scheme in marker.items():
        if not isinstance(name, str) or not isinstance(scheme, Mapping) or "type" not in scheme:
            raise ConfigurationError(
                f"{SECURITY_MARKER} of {where}: entry {name!r} must map a name to a "
                "Security Scheme Object with a 'type'"
            )
        out[name] = dict(scheme)
    return out


def _scheme_name(scheme: Mapping[str, Any]) -> str:
    """`sessionidCookie` for an API key in cookie `sessionid`; the scheme type otherwise."""
    name, where = scheme.get("name"), scheme.get("in")
    if scheme["type"] == "httpApiKey" and isinstance(name, str) and isinstance(where, str):
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name) + where.capitalize()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(scheme["type"]))
