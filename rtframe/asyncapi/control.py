"""rtframe's own frames in a document: notices, heartbeat, recovery, positions.

Types starting with `$` are rtframe's control frames; a route cannot declare them. Every
WebSocket channel gets (an SSE endpoint's gets `streams.stream_ops` instead):

- `send.error` (the error frame), `send.dropped` (`$dropped`, a slow client lost frames)
  and `send.reconnect` (`$reconnect`, the server drains);
- the heartbeat in both directions (`$ping` / `$pong`) when its route has one;
- the frames integrations send on any route, which no handler declares
  (`AppDescription.server_messages`: `task_progress` once a `Tasks(app=app)` exists),
  a `send.<name>` operation each (`server_message_ops`).

What else a channel gets depends on the groups its handlers reach (broadcast to, or
declare sends to with `@sends(..., group=g)`), the same groups whose `broadcast`
operations it documents:

- a group without history: `send.gap` (`$gap`: the layer was unreachable, messages from
  other servers were lost);
- a group with history (`Group(..., history=HistoryPolicy(...))`): `send.recovery`
  (`$recovery`) and the `$since` query parameter of the `ws` binding; every message
  broadcast to it gets an optional `$pos` member, a `HistoryPosition` schema
  (`add_positions`, once schemas exist);
- a group with presence events (`Group(..., presence=PresencePolicy(events=True))`):
  `send.presence` (`$presence`: members joined or left).

The group's `history` and `presence` attributes are read with `getattr`, so a group
type without them is a group without history or presence.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..description import RouteDescription, ServerMessageDescription
from ..history import SINCE_PARAM, GapNotice, RecoveryNotice
from ..messages import DroppedNotice, ErrorFrame, ReconnectNotice
from ..presence import PresenceNotice
from ..timing import HeartbeatPing, HeartbeatPong
from . import names
from .plans import GroupUse, OperationPlan, PayloadMaker, QueryField, notice
from .schema import Schema

if TYPE_CHECKING:
    from ..groups import Group

__all__ = [
    "POSITION",
    "POSITION_MEMBER",
    "add_positions",
    "common_ops",
    "group_ops",
    "history_of",
    "presence_events",
    "server_message_ops",
    "since_query",
]

#: The name of the `$pos` member's schema in `components/schemas` (made unique if taken).
POSITION = "HistoryPosition"
#: The member a frame to a history group carries its position in.
POSITION_MEMBER = "$pos"

_DRAFT_07_REF = "#/components/schemas/"


def history_of(group: Group) -> Any:
    """The group's `HistoryPolicy`, or None (a group type without the attribute too)."""
    return getattr(group, "history", None)


def presence_events(group: Group) -> bool:
    """Whether the group's members get `$presence` frames (a `PresencePolicy(events=True)`)."""
    return bool(getattr(getattr(group, "presence", None), "events", False))


def common_ops(make: PayloadMaker, route: RouteDescription) -> list[OperationPlan]:
    """The frames every channel can carry: errors, `$dropped`, `$reconnect`, heartbeat."""
    ops = [
        notice(
            make,
            "error",
            ErrorFrame,
            summary="Tell the sender its message could not be handled.",
            description=(
                "Sent for a frame that is not JSON, does not match any message schema, "
                "has an unknown `type`, or whose handler failed or raised MessageError. "
                "The connection stays open."
            ),
        ),
        notice(
            make,
            "dropped",
            DroppedNotice,
            summary="Tell a slow client how many frames it did not get.",
            description=(
                "Under the `drop_oldest` overflow policy, a client that reads more slowly "
                "than frames arrive loses the oldest queued ones; once its backlog is "
                "written it receives this notice with their number. (Under `close` it is "
                "closed with 4008 instead.) Frames of history groups it lost can be "
                "recovered: reconnect with `$since` set to the last position before the "
                "first missing offset."
            ),
        ),
        notice(
            make,
            "reconnect",
            ReconnectNotice,
            summary="Tell every client to reconnect: the server is draining.",
            description=(
                "On a graceful shutdown (`rtframe run` got SIGTERM, or `app.drain()`) "
                "each client gets this notice with its own delay, then a close 1012 at "
                "about that time; reconnecting then reaches another server. A handshake "
                "made while the server drains is refused with HTTP 503 (or close 1013)."
            ),
        ),
    ]
    if route.heartbeat is not None:
        every, wait = route.heartbeat.interval, route.heartbeat.timeout
        ping = make(HeartbeatPing, "serialization", hint="HeartbeatPing")
        pong = make(HeartbeatPong, "serialization", hint="HeartbeatPong")
        ops.append(
            OperationPlan(
                "send",
                "heartbeat",
                "send",
                [ping],
                reply=[pong],
                summary=f"Ping the client every {every:g} s; it must answer.",
                description=(
                    f"The client answers with `$pong` (any frame counts) within {wait:g} s, "
                    "or the server closes the connection with 4002 and removes it from its "
                    f"groups. A client that hears nothing for {every + wait:g} s may take the "
                    "server for gone and reconnect."
                ),
            )
        )
        ops.append(
            OperationPlan(
                "receive",
                "heartbeat",
                "receive",
                [ping],
                reply=[pong],
                summary="Answer a client's ping with a pong.",
            )
        )
    return ops


def server_message_ops(
    make: PayloadMaker, messages: Iterable[ServerMessageDescription], declared: Iterable[Any]
) -> list[OperationPlan]:
    """A `send.<name>` operation per integration frame, unless the route's handlers
    already declare that model (`declared`: the annotations of its send operations)."""
    seen = set(map(id, declared))
    return [
        notice(
            make,
            message.name,
            message.model,
            summary=message.summary,
            description=message.description,
            hint=names.type_name(message.model),
        )
        for message in messages
        if id(message.model) not in seen
    ]


def group_ops(
    make: PayloadMaker, groups: Iterable[Group], *, stream: bool = False
) -> list[OperationPlan]:
    """`$gap`, `$recovery` and `$presence`, for a channel whose handlers reach `groups`
    (`stream`: an SSE endpoint's, which resumes from its `Last-Event-ID`)."""
    groups = list(groups)
    plain = [g.template for g in groups if history_of(g) is None]
    kept = [g.template for g in groups if history_of(g) is not None]
    present = [g.template for g in groups if presence_events(g)]
    joins, named = "connection joins", "`$since`"
    if stream:
        joins, named = "stream joins", "its `Last-Event-ID` (or `$since`)"
    ops = []
    if plain:
        ops.append(
            notice(
                make,
                "gap",
                GapNotice,
                summary="Tell a member of a group without history that it may have missed "
                "messages.",
                description=(
                    "When the messaging layer (Redis) comes back after an outage, every "
                    "member of a group without history gets this notice: messages sent "
                    "from other servers meanwhile were lost; reload the state. Groups: "
                    f"{_listed(plain)}."
                ),
            )
        )
    if kept:
        ops.append(
            notice(
                make,
                "recovery",
                RecoveryNotice,
                summary="Say whether the messages a client missed in a history group follow.",
                description=(
                    f"Sent when the {joins} a history group named in {named}, "
                    "and when the server sees it missed frames (a layer outage, a gap in "
                    "offsets, a new epoch). With `recovered: true` the `replayed` missed "
                    "messages follow, in order, each with its `$pos`, then live ones: none "
                    "missing, none twice. With `recovered: false` nothing is replayed: "
                    "reload the state; `epoch` and `offset` are where the group is now. "
                    f"Groups: {_listed(kept)}."
                ),
            )
        )
    if present:
        ops.append(
            notice(
                make,
                "presence",
                PresenceNotice,
                summary="Tell the members of a group with presence events who joined or left.",
                description=(
                    "Joins and leaves of one server's members within a short window come in "
                    "one frame; keep the members as a set by id: add or replace `joined`, "
                    "remove `left`. Events are at most once: after a reconnect or a `$gap`, "
                    f"read the list again. Groups: {_listed(present)}."
                ),
            )
        )
    return ops


def since_query(groups: Iterable[Group], *, stream: bool = False) -> QueryField | None:
    """The `$since` query parameter, for a channel reaching a history group (`stream`: an
    SSE endpoint's, where it stands in for `Last-Event-ID`)."""
    kept = [g.template for g in groups if history_of(g) is not None]
    if not kept:
        return None
    refused = "the handshake (1008)"
    if stream:
        refused = (
            "the stream (HTTP 403). It wins over `Last-Event-ID`, which EventSource sends "
            "by itself; give it to resume a stream from a position kept elsewhere"
        )
    schema: Schema = {
        "type": "string",
        "contentMediaType": "application/json",
        "description": (
            "The last position the client saw in each history group, to recover what it "
            'missed: a JSON object by group name, each `{"epoch": string, "offset": '
            "integer >= 0}`, URL-encoded. Groups it names that the connection joins get "
            "a `$recovery` frame, then the missed messages. A malformed value refuses "
            f"{refused}. History groups: {_listed(kept)}."
        ),
        "examples": ['{"chat.lobby":{"epoch":"9f2c41aa","offset":17}}'],
    }
    return QueryField(SINCE_PARAM, str, False, inspect.Parameter.empty, schema)


def add_positions(uses: Iterable[GroupUse], schemas: dict[str, Schema]) -> None:
    """Add the optional `$pos` member to every message broadcast to a history group.

    A message that is a union of models gets it on each model; anything else (a history
    group carries JSON objects only) is left as it is.
    """
    stamped: dict[str, None] = {}
    for use in uses:
        if history_of(use.group) is None:
            continue
        for payload in use.payloads:
            stamped.update(dict.fromkeys(_object_schemas(payload.key, schemas)))
    if not stamped:
        return
    name = names.unique([POSITION], set(schemas))[0]
    schemas[name] = _position_schema()
    for key in stamped:
        properties = schemas[key].setdefault("properties", {})
        properties[POSITION_MEMBER] = {"$ref": _DRAFT_07_REF + name}
    for key in sorted(schemas):  # keep components/schemas sorted after adding one
        schemas[key] = schemas.pop(key)


def _object_schemas(key: str, schemas: dict[str, Schema]) -> list[str]:
    schema = schemas.get(key, {})
    if "properties" in schema:
        return [key]
    found: list[str] = []
    variants: list[Any] = schema.get("anyOf") or schema.get("oneOf") or []
    for variant in variants:
        target = variant.get("$ref", "") if isinstance(variant, dict) else ""
        if target.startswith(_DRAFT_07_REF):
            found += _object_schemas(target[len(_DRAFT_07_REF) :], schemas)
    return found


def _position_schema() -> Schema:
    # written out rather than generated from `PositionModel`, for its own wording
    # (tests/asyncapi check that its fields match the model's)
    return {
        "title": "HistoryPosition",
        "description": (
            "Where a message sits in its history group: the server stamps it on every "
            "message to a history group. A client keeps the last one per group and sends "
            "them back in `$since` when it reconnects, to get what it missed."
        ),
        "type": "object",
        "properties": {
            "group": {"title": "Group", "type": "string", "description": "The group's name."},
            "epoch": {
                "title": "Epoch",
                "type": "string",
                "description": "Names the group's history; changes when it was lost.",
            },
            "offset": {
                "title": "Offset",
                "type": "integer",
                "minimum": 1,
                "description": "Grows by one per message within an epoch.",
            },
        },
        "required": ["group", "epoch", "offset"],
    }


def _listed(templates: Iterable[str]) -> str:
    return ", ".join(f"`{t}`" for t in templates)
