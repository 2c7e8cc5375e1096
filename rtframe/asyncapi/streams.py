"""SSE endpoints in a document: the HTTP request that opens a stream, and its events.

An SSE endpoint (`SSERouter`) is a channel like a WebSocket route, whose address is its
path and whose parameters are its `{params}`, but it speaks HTTP:

- the channel has an (empty) `http` binding, the only form the HTTP channel binding
  has, and sits on the document's `http`/`https` servers (`rtframe.asyncapi.servers`);
- `<channel>.receive.open` is the `GET` that opens the stream: an `http` operation
  binding carries the method and the query parameters (`$since` included where the
  stream reaches a history group); its message, `EventStreamRequest`, carries the
  `Last-Event-ID` request header in its `http` message binding; its reply,
  `EventStream`, is the `200` `text/event-stream` response, with the headers every
  stream gets and the framing (`retry:`, `id:`, `data:`, keep-alive comments);
- the events are the channel's `send` operations, as on a WebSocket: the groups the
  endpoint reaches (`@sends(Model, group=g)`, or `@sends(group=g)` for every message
  of `g`), messages it declares for the stream alone (`@sends(Model)`), `$gap`,
  `$recovery` and `$presence` as its groups say, `$reconnect` (with `retry:`) and the
  last event, `$close` (`CloseNotice`);
- no error frames, no `$dropped` (a slow stream is closed instead, and recovers when it
  reconnects) and no heartbeat frames (the keep-alive is a comment, not an event).
"""

from __future__ import annotations

from ..description import RouteDescription
from ..messages import CloseNotice, ReconnectNotice
from . import names
from .plans import OperationPlan, Payload, PayloadMaker, notice
from .schema import HTTP_BINDING_VERSION, Message, Schema

__all__ = [
    "REQUEST",
    "RESPONSE",
    "RESPONSE_HEADERS",
    "CloseNotice",
    "open_op",
    "request_payload",
    "response_payload",
    "stream_ops",
]

#: The names of the stream's request and response messages (made unique if taken).
REQUEST = "EventStreamRequest"
RESPONSE = "EventStream"
#: The headers of every stream's response, as `rtframe.sse` sends them (a test checks
#: that they match: `asyncapi` may not import `sse`, both sit in one layer).
RESPONSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_EXAMPLE_ID = '{"room.lobby":{"epoch":"9f2c41aa","offset":17}}'


def request_payload() -> Payload:
    """The message of the `GET` that opens a stream: no body, one optional header."""
    headers: Schema = {
        "type": "object",
        "properties": {
            "Last-Event-ID": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": (
                    "The `id` of the last event the client got, which EventSource sends "
                    "back by itself when it reconnects: the stream's positions in its "
                    "history groups (the `$since` JSON). The stream is recovered from "
                    "there like a WebSocket naming `$since`: `$recovery`, then every "
                    "missed message in order and once, then live ones. Ignored when the "
                    "query names `$since`; a malformed value is logged and the stream "
                    "starts without a position."
                ),
                "examples": [_EXAMPLE_ID],
            }
        },
    }
    message: Message = {
        "title": "Event stream request",
        "summary": "The `GET` request that opens an SSE stream; it has no body.",
        "bindings": {"http": {"headers": headers, "bindingVersion": HTTP_BINDING_VERSION}},
    }
    return Payload(None, "serialization", False, REQUEST, fixed=message)


def response_payload() -> Payload:
    """The `200` response of a stream: the `text/event-stream` its events travel in."""
    headers: Schema = {
        "type": "object",
        "properties": {
            name: {"type": "string", "const": v} for name, v in RESPONSE_HEADERS.items()
        },
        "required": list(RESPONSE_HEADERS),
    }
    message: Message = {
        "title": "Event stream",
        "summary": "The response of an SSE endpoint: its channel's messages as events.",
        "description": (
            "A `text/event-stream` body that stays open, each event ended by a blank "
            "line:\n"
            "- `retry: <ms>` first: how long the browser waits before it reconnects, "
            "the endpoint's `retry` with jitter (half to one and a half), so a restart's "
            "reconnections spread out;\n"
            "- one event per message: `data:` holds the same JSON a WebSocket member "
            "gets, with no `event:` name (EventSource's `onmessage` gets them all; "
            "`type` tells them apart);\n"
            "- `id:` on the events of history groups: the stream's positions, a JSON "
            'object by group name of `{"epoch": string, "offset": integer}` (the `$since` '
            "format), which EventSource sends back as `Last-Event-ID`;\n"
            "- `: ping` comments on a quiet stream, to keep proxies from closing it (they "
            "are not events);\n"
            "- `retry: <after_ms>` with `$reconnect` when the server drains;\n"
            "- a last `$close` event, then the response ends."
        ),
        "contentType": "text/event-stream",
        "bindings": {
            "http": {
                "headers": headers,
                "statusCode": 200,
                "bindingVersion": HTTP_BINDING_VERSION,
            }
        },
    }
    return Payload(None, "serialization", False, RESPONSE, fixed=message)


def open_op(
    route: RouteDescription, request: Payload, response: Payload, *, history: bool
) -> OperationPlan:
    """`<channel>.receive.open`: the `GET` that opens a stream of `route`."""
    handler = names.fn_name(route.connect.fn) if route.connect is not None else None
    runs = f"`{handler}` runs" if handler else "The endpoint runs"
    parts = [
        f"{runs} first, with the dependency injection and handshake checks of a WebSocket "
        "route, and joins the stream to its groups before the response starts. A refusal "
        "(`Reject`) is answered with HTTP 403, a draining or full server with 503."
    ]
    if route.heartbeat is not None:
        parts.append(
            f"A quiet stream gets a `: ping` comment every {route.heartbeat.interval:g} s."
        )
    if history:
        parts.append(
            "The events of its history groups carry an `id`, the stream's positions; "
            "EventSource sends the last one back as `Last-Event-ID` when it reconnects, "
            "and the stream resumes where it was (`$recovery`, then what it missed)."
        )
    else:
        parts.append(
            "It reaches no history group, so its events carry no `id` and a reconnected "
            "stream starts with live messages."
        )
    return OperationPlan(
        "receive",
        "open",
        "receive",
        [request],
        reply=[response],
        summary=f"Open the stream: `GET {route.address}`, answered with `text/event-stream`.",
        description=" ".join(parts),
        handler=handler,
        method="GET",
    )


def stream_ops(make: PayloadMaker) -> list[OperationPlan]:
    """The events every stream can get from rtframe itself: `$reconnect`, `$close`."""
    return [
        notice(
            make,
            "reconnect",
            ReconnectNotice,
            summary="Tell every stream to reconnect: the server is draining.",
            description=(
                "On a graceful shutdown (`rtframe run` got SIGTERM, or `app.drain()`) each "
                "stream gets this event with `retry: <after_ms>`, its own delay, then "
                "`$close` 1012; EventSource reconnects after that delay, to another "
                "server. A stream opened while the server drains is refused with 503."
            ),
        ),
        notice(
            make,
            "close",
            CloseNotice,
            summary="End the stream: the last event says why.",
            description=(
                "Every stream the server ends gets this event, then the response ends. "
                "`code` is the close code a WebSocket member would get: 1000 the app "
                "closed it, 1012 the server restarts (after `$reconnect`), 4008 the client "
                "read too slowly (it is closed rather than losing events, so reconnecting "
                "with its `Last-Event-ID` recovers them), 4xxx the app's own "
                "(`stream.close(code, reason)`)."
            ),
        ),
    ]
