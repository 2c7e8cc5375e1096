"""Validation of incoming frames, encoding of outgoing values, and the error frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from .exceptions import ConfigurationError, RtframeError

ErrorCode = Literal[
    "invalid_json",
    "validation_error",
    "unknown_type",
    "unsupported_frame",
    "rate_limited",
    "limit_exceeded",
    "internal_error",
    "layer_unavailable",
    "layer_busy",
    "layer_error",
]


class ErrorDetail(BaseModel):
    """One problem found in a message, as Pydantic located it."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorFrame(BaseModel):
    """Sent to a client whose message could not be handled; the connection stays open.

    `code` is one of invalid_json, validation_error, unknown_type, unsupported_frame,
    rate_limited, limit_exceeded, internal_error, layer_unavailable, layer_busy,
    layer_error, or a code chosen by the application (`MessageError`).
    """

    type: Literal["error"] = "error"
    code: str
    detail: str
    errors: list[ErrorDetail] = Field(default_factory=list)


class DroppedNotice(BaseModel):
    """Sent to a client that was too slow: `count` frames meant for it were dropped.

    Under the `drop_oldest` overflow policy, once its backlog is written; the frames it
    did get are the newest ones. An app with history lets the client recover them.
    """

    type: Literal["$dropped"] = "$dropped"
    count: int


class ReconnectNotice(BaseModel):
    """Sent to every client when the server drains (a deploy, a restart).

    The server closes the connection with 1012 about `after_ms` milliseconds later; each
    client gets its own delay, so reconnecting clients spread over the drain window.
    """

    type: Literal["$reconnect"] = "$reconnect"
    after_ms: int


class CloseNotice(BaseModel):
    """The last event of an SSE stream: the close code and reason, as a WebSocket gets them.

    The response ends right after it. EventSource reconnects by itself after `retry`;
    a client told a final code (4001 logged out, 1008 policy) should close its source.
    """

    type: Literal["$close"] = "$close"
    code: int
    reason: str


def close_event(code: int, reason: str) -> str:
    """The `$close` frame an SSE stream ends with."""
    return to_json({"type": "$close", "code": code, "reason": reason}).decode()


def error_frame(code: str, detail: str, errors: Sequence[Any] = ()) -> str:
    return to_json(
        {"type": "error", "code": code, "detail": detail, "errors": list(errors)}
    ).decode()


#: The error frames the server sends as they are, by code.
SERVER_ERRORS = {
    "internal_error": error_frame("internal_error", "The server failed to handle the message"),
    "rate_limited": error_frame("rate_limited", "Too many messages; this one was not handled"),
    "layer_unavailable": error_frame(
        "layer_unavailable",
        "The messaging backend is unreachable: only members on this server received the message",
    ),
    "layer_busy": error_frame(
        "layer_busy",
        "The messaging backend is overloaded: only members on this server received the message",
    ),
    "layer_error": error_frame(
        "layer_error",
        "The messaging backend refused the message: only members on this server received it",
    ),
}


def stamp(data: str | bytes, group: str, position: tuple[str, int]) -> str:
    """The frame with its position added as the last member of its JSON object.

    Raises:
        RtframeError: the frame is not a JSON object (history frames must be).
    """
    if not isinstance(data, str) or len(data) < 2 or data[0] != "{" or data[-1] != "}":
        raise RtframeError(
            f"messages to history group {group!r} must encode to a JSON object; got {data[:40]!r}"
        )
    epoch, offset = position
    pos = to_json({"group": group, "epoch": epoch, "offset": offset}).decode()
    body = data[:-1].rstrip()
    separator = "" if body.endswith("{") else ","
    return f'{body}{separator}"$pos":{pos}}}'


def message_adapter(models: Sequence[type[BaseModel]], where: str) -> TypeAdapter[Any]:
    """One adapter for every model a route accepts: a discriminated union when several."""
    if len(models) == 1:
        return TypeAdapter(models[0])
    tags: dict[Any, str] = {}
    for model in models:
        field_info = model.model_fields.get("type")
        literal = getattr(field_info.annotation, "__args__", None) if field_info else None
        if (
            not field_info
            or not literal
            or getattr(field_info.annotation, "__origin__", None) is not Literal
        ):
            raise ConfigurationError(
                f"{where} has several receive handlers, so {model.__name__} needs a "
                "`type: Literal[...]` field to tell its messages apart"
            )
        for tag in literal:
            if tag in tags:
                raise ConfigurationError(
                    f"{where}: message type {tag!r} is claimed by both {tags[tag]} "
                    f"and {model.__name__}"
                )
            tags[tag] = model.__name__
    # built at runtime from the registered models, so typed as Any for the checker
    union: Any = Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(union)


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a Pydantic error from validate_json into the text of one error frame."""
    errors = exc.errors(include_url=False, include_input=False, include_context=True)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return error_frame("invalid_json", f"The frame is not valid JSON: {first['msg']}")
    if kind == "union_tag_invalid":
        ctx = first.get("ctx", {})
        return error_frame(
            "unknown_type",
            f"Unknown message type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}",
        )
    if kind == "union_tag_not_found":
        return error_frame("unknown_type", "The message has no 'type' field")
    if kind == "literal_error" and tuple(first["loc"]) == ("type",):
        return error_frame("unknown_type", f"Unknown message type: {first['msg']}")
    details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return error_frame("validation_error", "The message does not match its schema", details)


def encode(message: Any) -> str | bytes:
    """Turn a value into the text (or bytes) of one frame: str and bytes as they are,
    models and anything else pydantic can serialize as JSON."""
    if isinstance(message, str | bytes):
        return message
    if isinstance(message, BaseModel):
        return message.__pydantic_serializer__.to_json(message).decode()
    return to_json(message).decode()


def _encode_binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"a handler annotated -> bytes returned {type(value).__name__}, not bytes")


def build_encoder(annotation: Any) -> Callable[[Any], str | bytes]:
    """Encode a handler's return value according to its return annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        model = annotation
        serializer = model.__pydantic_serializer__

        def encode_model(value: Any) -> str:
            if not isinstance(value, model):
                value = model.model_validate(value)
            return serializer.to_json(value).decode()

        return encode_model
    if annotation is Any or annotation is None:
        return encode
    if annotation is bytes:
        # symmetric with a `bytes` message parameter: the reply is one binary frame
        return _encode_binary
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def encode_any(value: Any) -> str:
        return adapter.dump_json(adapter.validate_python(value)).decode()

    return encode_any


__all__ = [
    "SERVER_ERRORS",
    "CloseNotice",
    "DroppedNotice",
    "ErrorCode",
    "ErrorDetail",
    "ErrorFrame",
    "ReconnectNotice",
    "build_encoder",
    "close_event",
    "describe_validation_error",
    "encode",
    "error_frame",
    "message_adapter",
    "stamp",
]
