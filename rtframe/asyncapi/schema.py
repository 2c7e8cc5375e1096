"""The parts of the AsyncAPI 3.0.0 document model rtframe emits, as typed dicts.

Field names are the specification's own, so a document is plain JSON-ready data (no
serialization step can drift from the spec). Only the objects and fields rtframe fills
are declared; JSON Schema payloads stay `dict[str, Any]`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "ASYNCAPI_VERSION",
    "HTTP_BINDING_VERSION",
    "SECURITY_MARKER",
    "SENDS_MARKER",
    "WS_BINDING_VERSION",
    "Channel",
    "Components",
    "Document",
    "Info",
    "Message",
    "MessageExample",
    "Operation",
    "OperationReply",
    "Parameter",
    "Reference",
    "Schema",
    "Server",
    "ref",
]

ASYNCAPI_VERSION = "3.0.0"
WS_BINDING_VERSION = "0.1.0"
#: The HTTP bindings' version (operations and messages of SSE streams); the official
#: parser knows 0.2.0 and 0.3.0, and 0.3.0 is the one with a response's `statusCode`.
HTTP_BINDING_VERSION = "0.3.0"
#: The marker attribute a dependency (or handler) sets to say a route needs credentials.
SECURITY_MARKER = "__rtframe_security__"
#: The attribute `@sends(...)` sets on a handler to declare the messages it pushes itself.
SENDS_MARKER = "__rtframe_sends__"

Schema = dict[str, Any]
Reference = TypedDict("Reference", {"$ref": str})


class Info(TypedDict):
    title: str
    version: str
    description: NotRequired[str]


class Server(TypedDict):
    host: str
    protocol: Literal["ws", "wss", "http", "https"]
    pathname: NotRequired[str]
    description: NotRequired[str]


Parameter = TypedDict(
    "Parameter",
    {
        "description": str,
        "enum": NotRequired[list[str]],
        "default": NotRequired[str],
        "examples": NotRequired[list[str]],
        # the path converter's regex: the Parameter Object has no `pattern` field
        "x-pattern": str,
    },
)


class MessageExample(TypedDict, total=False):
    name: str
    summary: str
    payload: Any


class Message(TypedDict, total=False):
    name: str
    title: str
    summary: str
    description: str
    contentType: str
    payload: Schema | Reference
    examples: list[MessageExample]
    bindings: dict[str, Any]


class OperationReply(TypedDict):
    channel: Reference
    messages: list[Reference]


Operation = TypedDict(
    "Operation",
    {
        "action": Literal["send", "receive"],
        "channel": Reference,
        "summary": NotRequired[str],
        "description": NotRequired[str],
        "messages": list[Reference],
        "reply": NotRequired[OperationReply],
        "security": NotRequired[list[Reference]],
        "bindings": NotRequired[dict[str, Any]],
        # where the operation comes from in the code: the handler, the broadcast group
        "x-rtframe-handler": NotRequired[str],
        "x-rtframe-group": NotRequired[str],
    },
)


class Channel(TypedDict):
    address: str
    summary: NotRequired[str]
    description: NotRequired[str]
    #: only in a document with SSE streams: each channel on the servers of its protocol
    servers: NotRequired[list[Reference]]
    parameters: NotRequired[dict[str, Parameter]]
    messages: dict[str, Reference]
    bindings: dict[str, Any]


class Components(TypedDict, total=False):
    schemas: dict[str, Schema]
    messages: dict[str, Message]
    securitySchemes: dict[str, dict[str, Any]]


class Document(TypedDict):
    asyncapi: str
    info: Info
    servers: NotRequired[dict[str, Server]]
    defaultContentType: str
    channels: dict[str, Channel]
    operations: dict[str, Operation]
    components: Components


def ref(pointer: str) -> Reference:
    """A Reference Object to a JSON pointer inside the same document."""
    return {"$ref": pointer}
