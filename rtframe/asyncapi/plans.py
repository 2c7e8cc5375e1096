"""The plan of a document before any schema exists: payloads, operations, channels.

`operations.Collector` fills these from an app's description, `control` adds rtframe's
own frames to them, `payloads` fills in their schemas and `document` turns them into
AsyncAPI objects. They are plain mutable records, private to the generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic.json_schema import JsonSchemaMode

from ..description import HandlerDescription, RouteDescription
from .schema import Message, Schema

if TYPE_CHECKING:
    from ..groups import Group

__all__ = ["ChannelPlan", "GroupUse", "OperationPlan", "Payload", "PayloadMaker", "QueryField"]


@dataclass(eq=False)
class Payload:
    """One message type travelling in one direction; becomes one component message.

    `key` and `schema` are filled when schemas are generated (`payloads.generate_schemas`).
    A `fixed` payload is a message written out by the generator (an SSE stream's HTTP
    request and response): no schema is generated for it, only its key.
    """

    annotation: Any
    mode: JsonSchemaMode
    binary: bool
    hint: str  #: the message's name when its type is not a model
    note: str | None = None  #: description when its type is not a model
    key: str = ""
    schema: Schema = field(default_factory=dict)
    fixed: Message | None = None


class PayloadMaker(Protocol):
    """`Collector.payload`: the one `Payload` of a type in a direction, made once."""

    def __call__(
        self,
        annotation: Any,
        mode: JsonSchemaMode,
        *,
        hint: str,
        note: str | None = None,
        binary: bool = False,
    ) -> Payload: ...


@dataclass(eq=False)
class OperationPlan:
    """One operation of a channel, before its id and message references are known."""

    verb: str  #: "receive", "send" or "broadcast": the id reads `<channel>.<verb>.<name>`
    name: str | None  #: None: the key of its (first) message
    action: Literal["send", "receive"]
    payloads: list[Payload]
    reply: list[Payload] = field(default_factory=list)
    summary: str | None = None
    description: str | None = None
    handler: str | None = None
    group: str | None = None
    #: the HTTP method when the operation is the request opening a stream: it gets an
    #: `http` binding with the method and the channel's query parameters
    method: str | None = None


@dataclass(eq=False)
class QueryField:
    """A query parameter of a channel; `schema` is filled when schemas are generated.

    `schema` given up front (rtframe's own `$since`) is kept as it is.
    """

    name: str
    annotation: Any
    required: bool
    default: Any
    schema: Schema = field(default_factory=dict)


@dataclass(eq=False)
class ChannelPlan:
    """One route: its channel id, the handlers it documents and its operations."""

    route: RouteDescription
    id: str
    #: connect, receive (text sorted by message type name, then binary), disconnect
    handlers: tuple[HandlerDescription, ...]
    receive: tuple[HandlerDescription, ...]
    ops: list[OperationPlan] = field(default_factory=list)
    security: dict[str, dict[str, Any]] = field(default_factory=dict)
    query: list[QueryField] = field(default_factory=list)
    #: the groups its handlers broadcast to or declare sends to, by template, sorted
    groups: dict[str, Group] = field(default_factory=dict)
    #: "ws" for a WebSocket route, "sse" for an SSE endpoint (`SSERouter`), "http" for a
    #: streaming HTTP route
    kind: Literal["ws", "sse", "http"] = "ws"


@dataclass(eq=False)
class GroupUse:
    """What every route sends to one group, and which code sends it."""

    group: Group
    payloads: list[Payload] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def notice(
    make: PayloadMaker,
    name: str,
    model: type[Any],
    summary: str,
    description: str | None = None,
    hint: str | None = None,
) -> OperationPlan:
    """`send.<name>`: one kind of frame the server sends, `model`, whose schema is named
    after it (`hint`, default the class name) wherever it appears."""
    payload = make(model, "serialization", hint=hint or model.__name__)
    return OperationPlan("send", name, "send", [payload], summary=summary, description=description)
