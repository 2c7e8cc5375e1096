"""Streaming HTTP routes in a document: a request answered with a body that keeps coming.

An HTTP route whose handler returns a `StreamingResponse` is asynchronous in the sense
AsyncAPI documents (plain request/response routes are OpenAPI's business and stay out).
The app's description lists HTTP routes in `http_routes` (read with `getattr`, so a
description without them documents none); each streaming one becomes:

- a channel like an SSE endpoint's: its path as address, its `{params}`, an empty
  `http` binding, on the `http`/`https` servers;
- one `receive` operation per method (`<channel>.receive.get`, `.receive.post`; HEAD,
  served by every GET route, is not listed), whose `http` binding holds the method and
  the query parameters; its message is the request body's model (`bytes`: a binary
  message; no body: `HTTPRequest`, without payload);
- a reply, `<Handler>Stream`: the response, its `contentType` the route's `media_type`
  (`application/octet-stream`, `StreamingResponse`'s own, when the route names none).

The route is turned into a `RouteDescription` whose connect handler is the HTTP handler,
so parameters, descriptions and security come out exactly as for the other channels.
"""

from __future__ import annotations

from typing import Any

from ..description import HandlerDescription, RouteDescription
from . import names
from .plans import OperationPlan, Payload, PayloadMaker
from .schema import Message

__all__ = ["NO_BODY", "as_route", "http_routes", "no_body", "operations", "stream_payload"]

#: The name of the message of a request without a body (made unique if taken).
NO_BODY = "HTTPRequest"
_DEFAULT_MEDIA = "application/octet-stream"


def http_routes(description: Any) -> list[Any]:
    """The description's streaming HTTP routes (none when it lists no HTTP routes)."""
    return [r for r in getattr(description, "http_routes", ()) if getattr(r, "streaming", False)]


def as_route(route: Any) -> RouteDescription:
    """A streaming HTTP route (`HTTPRouteDescription`) as a route with one connect handler."""
    handler = HandlerDescription(
        role="connect",
        fn=route.fn,
        name=route.name,
        message=route.body,
        returns=None,
        broadcast=None,
        dependencies=tuple(route.dependencies),
        query_params=tuple(route.query_params),
    )
    return RouteDescription(
        path=route.path,
        address=route.address,
        path_params=tuple(route.path_params),
        connect=handler,
        receive=(),
        disconnect=(),
        query_params=tuple(route.query_params),
        summary=route.summary,
        max_message_size=0,
        rate_limit=None,
    )


def no_body() -> Payload:
    """The message of a request without a body."""
    message: Message = {"title": "HTTP request", "summary": "A request without a body."}
    return Payload(None, "serialization", False, NO_BODY, fixed=message)


def stream_payload(route: Any) -> Payload:
    """The streamed response of `route`, one message per route."""
    name = names.fn_name(route.fn)
    media = route.media_type or _DEFAULT_MEDIA
    declared = "" if route.media_type else " (the route declares no `media_type`)"
    message: Message = {
        "title": f"{names.camel(name)} stream",
        "summary": f"The streamed response of `{name}`: `{media}`{declared}.",
        "description": (
            "The body is sent chunk by chunk as the handler produces it, and ends when it "
            "is done. A client that disconnects stops it: the server cancels the handler's "
            "iterator."
        ),
        "contentType": media,
    }
    return Payload(None, "serialization", False, f"{names.camel(name)}Stream", fixed=message)


def operations(
    make: PayloadMaker, route: Any, without_body: Payload, stream: Payload
) -> list[OperationPlan]:
    """One `receive` operation per method of `route` (HEAD left out), replied by `stream`."""
    name = names.fn_name(route.fn)
    body = route.body
    if body is None:
        request = without_body
    elif body is bytes:
        request = make(
            bytes,
            "validation",
            hint=f"{names.camel(name)}Body",
            note=f"A binary request body, read by `{name}`.",
            binary=True,
        )
    else:
        request = make(body, "validation", hint=names.type_name(body))
    media = route.media_type or _DEFAULT_MEDIA
    return [
        OperationPlan(
            "receive",
            method.lower(),
            "receive",
            [request],
            reply=[stream],
            # the handler's docstring is the channel's: one handler serves every method
            summary=f"`{method} {route.address}`, answered with a streamed `{media}` body.",
            handler=name,
            method=method,
        )
        for method in route.methods
        if method != "HEAD"
    ]
