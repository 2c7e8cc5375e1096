"""How frames cross Redis: channel names and the payload format of the Redis layer.

A payload is a short ASCII header followed by the frame exactly as clients receive it
(the JSON text a broadcast was serialized to, once, by its sender):

    group channel    <kind><origin> <frame>
    history group    P<origin> <epoch> <offset> <frame>
    process channel  <kind><origin> <member id> <frame>

`kind` is one byte, `T` for a text frame (UTF-8) or `B` for a binary one; `origin` is the
12-character id of the publishing process, so a process can skip the echo of its own
broadcasts (it already delivered them to its local members). A broadcast to a history
group is kind `P` (positioned, always text): the history script writes its position
(`epoch`, ASCII without spaces, and `offset`, decimal) between the header this module
makes (`positioned_header`) and the frame. Nothing is ever unpickled or evaluated: a
payload that does not parse is logged and dropped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from ...exceptions import ConfigurationError
from ..base import Position

__all__ = [
    "BINARY",
    "NODE_ID_LENGTH",
    "POSITIONED",
    "TEXT",
    "MalformedPayload",
    "address",
    "check_prefix",
    "connection_factory",
    "group_channel",
    "new_node_id",
    "node_of",
    "pack_direct",
    "pack_group",
    "positioned_header",
    "process_channel",
    "resolve_client",
    "unpack_direct",
    "unpack_group",
    "unpack_positioned",
]

C = TypeVar("C")

TEXT = b"T"
BINARY = b"B"
POSITIONED = b"P"
NODE_ID_LENGTH = 12
_HEADER = 1 + NODE_ID_LENGTH


class MalformedPayload(ValueError):
    """A payload on an rtframe channel does not follow the format above."""


def new_node_id() -> str:
    """A random id naming one process (or one sync publisher) for the life of the layer."""
    return secrets.token_hex(NODE_ID_LENGTH // 2)


def check_prefix(prefix: str) -> str:
    """`prefix` if it can start channel names, else ConfigurationError."""
    if not prefix or any(c.isspace() for c in prefix):
        raise ConfigurationError(
            f"prefix must be a non-empty string without spaces, not {prefix!r}"
        )
    return prefix


def address(kwargs: dict[str, Any]) -> str:
    """`host:port` (or the socket path) of a client's connection settings, for logs."""
    return f"{kwargs.get('host', kwargs.get('path', 'redis'))}:{kwargs.get('port', '')}"


def group_channel(prefix: str, group: str) -> str:
    return f"{prefix}:g:{group}"


def process_channel(prefix: str, node_id: str) -> str:
    return f"{prefix}:p:{node_id}"


def node_of(member_id: str) -> str | None:
    """The process part of a member id made by `RedisLayer`, or None if it has none."""
    node, dot, rest = member_id.partition(".")
    if not dot or len(node) != NODE_ID_LENGTH or not rest:
        return None
    return node


def pack_group(origin: bytes, data: str | bytes) -> bytes:
    if isinstance(data, str):
        return b"".join((TEXT, origin, b" ", data.encode()))
    return b"".join((BINARY, origin, b" ", data))


def pack_direct(origin: bytes, member_id: str, data: str | bytes) -> bytes:
    target = member_id.encode()
    if isinstance(data, str):
        return b"".join((TEXT, origin, b" ", target, b" ", data.encode()))
    return b"".join((BINARY, origin, b" ", target, b" ", data))


def positioned_header(origin: bytes) -> bytes:
    """What starts a history broadcast's payload; the script appends the rest."""
    return POSITIONED + origin + b" "


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


def unpack_positioned(payload: bytes) -> tuple[bytes, Position, str]:
    """Split a history group payload (kind `P`) into (origin, position, frame)."""
    parts = payload.split(b" ", 3)
    if len(parts) != 4 or len(parts[0]) != _HEADER:
        raise MalformedPayload("too short, or no epoch and offset")
    head, epoch, offset, frame = parts
    if not epoch or not offset.isdigit():  # ASCII digits only, so int() cannot fail
        raise MalformedPayload(f"no position in {epoch[:24]!r} {offset[:24]!r}")
    try:
        return head[1:], Position(epoch.decode("ascii"), int(offset)), frame.decode()
    except UnicodeDecodeError:
        raise MalformedPayload("an epoch or a text frame that does not decode") from None


def unpack_direct(payload: bytes) -> tuple[str, str | bytes]:
    """Split a process-channel payload into (member id, frame)."""
    if len(payload) <= _HEADER or payload[_HEADER : _HEADER + 1] != b" ":
        raise MalformedPayload("too short or no header")
    end = payload.find(b" ", _HEADER + 1)
    if end < 0:
        raise MalformedPayload("no member id")
    try:
        target = payload[_HEADER + 1 : end].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedPayload("a member id that is not ASCII") from None
    return target, _frame(payload[:1], payload, end + 1)


def resolve_client(
    url: str | None,
    client: C | None,
    *,
    who: str,
    cluster: bool,
    classes: tuple[Any, Any],
    retry: Any,
) -> tuple[C, bool]:
    """The client given, or one built for `url`; and whether the caller owns it.

    `classes` are the single-node and cluster client classes to build with (async for
    the layer, sync for the sync publisher), `retry` their `Retry` class. One quick retry
    covers a pooled connection that died with a restarted Redis; more would only delay
    the LayerUnavailableError a caller should see.

    Raises:
        ConfigurationError: both or neither of `url` and `client`, or a bad URL.
    """
    if client is not None:
        if url is not None:
            raise ConfigurationError(f"{who} needs either a url or a client, not both")
        return client, False
    if url is None:
        raise ConfigurationError(f"{who} needs either a url or a client, not neither")
    single, clustered = classes
    policy = retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
    try:
        built = (clustered if cluster else single).from_url(url, retry=policy)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {url!r}: {exc}") from None
    return built, True


#: Connection settings that belong to the pool that made them, not to a lone connection.
_POOL_ONLY = ("maint_notifications", "orig_", "oss_cluster_maint")


def connection_factory(
    connection_class: type[AbstractConnection], kwargs: dict[str, Any], client_name: str
) -> Callable[[], AbstractConnection]:
    """Build lone connections like a client's own, for the layer's long-lived connections.

    RESP2 keeps pub/sub replies plain arrays and PUBLISH replies plain integers; health
    checks inside `send_command` would read replies behind the reading task's back, so
    they are off (the subscriber pings, the publisher checks its connection per batch);
    redis-py's own retries are off, the layer decides what a failure means.
    """
    own = {k: v for k, v in kwargs.items() if not k.startswith(_POOL_ONLY)}
    own["client_name"] = client_name  # CLIENT LIST then shows which process is which
    own.update(protocol=2, health_check_interval=0, retry=Retry(NoBackoff(), 0))
    own.setdefault("socket_connect_timeout", 5.0)

    def make() -> AbstractConnection:
        return connection_class(**own)

    return make
