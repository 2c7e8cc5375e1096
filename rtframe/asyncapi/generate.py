"""Build the AsyncAPI 3.0 document of an app from its public description.

`generate(target)` is a pure function of an `AppDescription` (`app.describe()`, see
`rtframe.description`) and the server it is told about: it reads what registration
already worked out (each handler's message type, return annotation, broadcast group, path
and query parameters, dependencies) and never touches the app or a connection. The same
description gives the same document, byte for byte: every map whose order means nothing
(channels, operations, messages, schemas) is sorted by key, and nothing in it depends on
ids, hashes or import paths.

Mapping, from the application's point of view:

- one channel per WebSocket route; `address` is the path template without converters,
  `parameters` its `{params}`; query parameters go to the `ws` channel binding;
- one channel per SSE endpoint, on the `http` servers: the `GET` opening it is a
  `receive` operation with `http` bindings, its events `send` operations
  (`rtframe.asyncapi.streams`);
- one channel per streaming HTTP route, if the description lists HTTP routes: a
  `receive` operation per method, replied by the streamed body
  (`rtframe.asyncapi.http_streams`);
- `receive` operation per receive handler, with a `reply` when the handler answers the
  sender (a return annotation and no `@group.broadcast`);
- `send` operation per group reachable from the route, carrying every message any handler
  broadcasts to that group; `send` operations for messages declared with `@sends`; and
  one for the error frame, which any route can send;
- payloads are Pydantic JSON Schemas hoisted into `components/schemas` and rewritten to
  draft-07 (`rtframe.asyncapi.draft07`); operation messages are `$ref`s into their
  channel's `messages`, which `$ref` `components/messages`.

It runs in three steps, one module each: `operations` decides which messages and
operations exist, `payloads` generates their schemas in one pass, `document` assembles
the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from ..description import AppDescription
from .control import add_positions
from .document import assemble
from .operations import Collector
from .payloads import generate_schemas
from .schema import Document, Server
from .servers import place, server

__all__ = ["Describable", "describe", "generate", "server", "with_servers"]


class Describable(Protocol):
    """Anything that describes its routes: a `RealtimeApp`, or a stand-in in a test."""

    def describe(self) -> AppDescription: ...


def describe(target: AppDescription | Describable) -> AppDescription:
    """`target` itself when it is a description, else `target.describe()`.

    Raises:
        TypeError: `target` has no `describe()` returning an `AppDescription`.
    """
    if isinstance(target, AppDescription):
        return target
    method = getattr(target, "describe", None)
    found = method() if callable(method) else None
    if not isinstance(found, AppDescription):
        raise TypeError(
            f"cannot document a {type(target).__name__}: expected an AppDescription or an "
            "object whose describe() returns one (such as a RealtimeApp)"
        )
    return found


def generate(
    target: AppDescription | Describable,
    *,
    host: str = "localhost:8000",
    protocol: Literal["ws", "wss"] = "ws",
    pathname: str | None = None,
    servers: Mapping[str, Server] | None = None,
) -> Document:
    """Return the AsyncAPI 3.0.0 document of an app's WebSocket routes and SSE endpoints.

    Args:
        target: the app's description, or the app (anything with `describe()`); it is
            only read.
        host: `host[:port]` clients connect to; used when `servers` is not given.
        protocol: "ws" or "wss".
        pathname: a path prefix the app is served under, if any.
        servers: the complete `servers` map instead of `host`/`protocol`/`pathname`;
            with SSE endpoints, an `http`/`https` twin of each `ws`/`wss` server is added
            unless the map has one (`rtframe.asyncapi.servers`).

    Raises:
        ConfigurationError: a server is malformed, a type cannot be described as JSON
            Schema, a model's example does not validate, or two markers disagree.
        TypeError: `target` is neither a description nor describes itself.
    """
    description = describe(target)
    if servers is None:
        servers = {"default": server(host, protocol, pathname)}
    collector = Collector(description)
    channels = collector.collect()
    schemas = generate_schemas(collector.payloads.values(), channels)
    add_positions(collector.groups.values(), schemas)
    return assemble(description, channels, schemas, dict(servers))


def with_servers(document: Document, servers: Mapping[str, Server]) -> Document:
    """A copy of `document` describing other servers; the rest is shared, not copied.

    With SSE channels, a `ws` server given alone gets its `http` twin and each channel
    lists the servers of its protocol (`rtframe.asyncapi.servers.place`).
    """
    placed, channels = place(servers, document["channels"])
    out: Document = {
        "asyncapi": document["asyncapi"],
        "info": document["info"],
        "servers": placed,
        "defaultContentType": document["defaultContentType"],
        "channels": channels,
        "operations": document["operations"],
        "components": document["components"],
    }
    return out
