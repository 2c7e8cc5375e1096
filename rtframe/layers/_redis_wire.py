"""How frames cross Redis: channel names and the payload format of the Redis layer.

A payload is a short ASCII header followed by the frame exactly as clients receive it
(the JSON text a broadcast was serialized to, once, by its sender):

    group channel    <kind><origin> <frame>
    process channel  <kind><origin> <connection id> <frame>

`kind` is one byte, `T` for a text frame (UTF-8) or `B` for a binary one; `origin` is the
12-character id of the publishing process, so a process can skip the echo of its own
broadcasts (it already delivered them to its local members). Nothing is ever unpickled
or evaluated: a payload that does not parse is logged and dropped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import ConfigurationError

S = TypeVar("S")
K = TypeVar("K")

TEXT = b"T"
BINARY = b"B"
NODE_ID_LENGTH = 12
_HEADER = 1 + NODE_ID_LENGTH


class MalformedPayload(ValueError):
    """A payload on an rtframe channel does not follow the format above."""


def new_node_id() -> str:
    """A random id naming one process (or one sync publisher) for the life of the layer."""
    return secrets.token_hex(NODE_ID_LENGTH // 2)


def group_channel(prefix: str, group: str) -> str:
    return f"{prefix}:g:{group}"


def process_channel(prefix: str, node_id: str) -> str:
    return f"{prefix}:p:{node_id}"


def node_of(connection_id: str) -> str | None:
    """The process part of a connection id made by `RedisLayer`, or None if it has none."""
    node, dot, rest = connection_id.partition(".")
    if not dot or len(node) != NODE_ID_LENGTH or not rest:
        return None
    return node


def pack_group(origin: bytes, data: str | bytes) -> bytes:
    if isinstance(data, str):
        return b"".join((TEXT, origin, b" ", data.encode()))
    return b"".join((BINARY, origin, b" ", data))


def pack_direct(origin: bytes, connection_id: str, data: str | bytes) -> bytes:
    target = connection_id.encode()
    if isinstance(data, str):
        return b"".join((TEXT, origin, b" ", target, b" ", data.encode()))
    return b"".join((BINARY, origin, b" ", target, b" ", data))


def _frame(kind: bytes, payload: bytes, start: int) -> str | bytes:
    if kind == TEXT:
        try:
            return payload[start:].decode()
        except UnicodeDecodeError:
            raise MalformedPayload("a text frame that is not UTF-8") from None
    if kind == BINARY:
        return payload[start:]
    raise MalformedPayload(f"unknown frame kind {kind!r}")


def unpack_group(payload: bytes) -> tuple[bytes, str | bytes]:
    """Split a group payload into (origin, frame)."""
    if len(payload) <= _HEADER or payload[_HEADER : _HEADER + 1] != b" ":
        raise MalformedPayload("too short or no header")
    return payload[1:_HEADER], _frame(payload[:1], payload, _HEADER + 1)


def unpack_direct(payload: bytes) -> tuple[str, str | bytes]:
    """Split a process-channel payload into (connection id, frame)."""
    if len(payload) <= _HEADER or payload[_HEADER : _HEADER + 1] != b" ":
        raise MalformedPayload("too short or no header")
    end = payload.find(b" ", _HEADER + 1)
    if end < 0:
        raise MalformedPayload("no connection id")
    try:
        target = payload[_HEADER + 1 : end].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedPayload("a connection id that is not ASCII") from None
    return target, _frame(payload[:1], payload, end + 1)


def client_from_url(
    url: str,
    *,
    cluster: bool,
    single: Callable[..., S],
    clustered: Callable[..., K],
    retry: Any,
) -> S | K:
    """A redis-py client (async or sync, as the factories given) for the layer's URL.

    `single` and `clustered` are the `from_url` of the client classes to use; `retry`
    their `Retry`. One quick retry covers a pooled connection that died with a restarted
    Redis; more would only delay the LayerUnavailableError a caller should see.
    """
    try:
        return clustered(url, retry=retry) if cluster else single(url, retry=retry)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {url!r}: {exc}") from None
