"""History per group, positions on the wire, and the frames that tell a client about loss.

A group made with `Group("chat.{room}", history=HistoryPolicy(size=300, ttl=120))` keeps
its last `size` broadcasts for `ttl` seconds. Every broadcast to it gets a `Position`:
an `offset` that only grows, and an `epoch` that changes when the history was lost (a
Redis restarted without persistence, an evicted key, a restarted memory layer).

On the wire the position travels inside the message, as one extra member of the JSON
object, so the message's own schema is untouched (unknown keys are ignored by Pydantic
and by most clients):

    {"type": "said", "text": "hi",
     "$pos": {"group": "chat.lobby", "epoch": "9f2c41aa", "offset": 17}}

A client reconnects with the last position it saw per group in the `$since` query
parameter, a JSON object: `?$since={"chat.lobby":{"epoch":"9f2c41aa","offset":17}}`.
When the connection joins that group again it first gets a `$recovery` frame, then every
missed message in order, then live messages, with no duplicate and no gap; or
`recovered: false` with nothing replayed when the gap cannot be filled. Never partial.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel
from pydantic_core import to_json

from ._scope import scope_query
from .exceptions import Reject
from .layers.base import HistoryPolicy, HistorySlice, Position
from .messages import stamp

if TYPE_CHECKING:
    from .types import Scope

__all__ = [
    "SINCE_PARAM",
    "GapNotice",
    "HistoryPolicy",
    "HistorySlice",
    "Position",
    "PositionModel",
    "RecoveryNotice",
    "check_since",
    "gap_notice",
    "parse_since",
    "recovery_notice",
    "since_of",
    "stamp",
]

#: The query parameter a reconnecting client names its last positions in.
SINCE_PARAM = "$since"


class PositionModel(BaseModel):
    """A position as it appears on the wire (the `$pos` member of a history frame)."""

    group: str
    epoch: str
    offset: int


class RecoveryNotice(BaseModel):
    """Sent when a connection joins a history group it asked to recover (`$since`), and
    when a gap seen later (an outage, an epoch change) could or could not be filled.

    With `recovered: true` the `replayed` missed messages follow, in order, then live
    ones. With `recovered: false` nothing is replayed: the client should reload its
    state; `epoch` and `offset` are where the group is now.
    """

    type: Literal["$recovery"] = "$recovery"
    group: str
    recovered: bool
    replayed: int
    epoch: str
    offset: int


class GapNotice(BaseModel):
    """Sent to the members of a group without history that may have missed messages.

    `reason` is `layer_outage`: the messaging backend was unreachable, so messages sent
    from other servers meanwhile did not arrive. The app should reload its state.
    """

    type: Literal["$gap"] = "$gap"
    group: str
    reason: str


def recovery_notice(group: str, recovered: bool, replayed: int, position: tuple[str, int]) -> str:
    return to_json(
        {
            "type": "$recovery",
            "group": group,
            "recovered": recovered,
            "replayed": replayed,
            "epoch": position[0],
            "offset": position[1],
        }
    ).decode()


def gap_notice(group: str, reason: str = "layer_outage") -> str:
    return to_json({"type": "$gap", "group": group, "reason": reason}).decode()


def parse_since(raw: str) -> dict[str, Position]:
    """The positions of a `$since` query value.

    Raises:
        ValueError: not a JSON object of `{"epoch": str, "offset": int >= 0}` by group.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{SINCE_PARAM} is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{SINCE_PARAM} must be a JSON object of positions by group")
    since: dict[str, Position] = {}
    for group, pos in value.items():
        epoch = pos.get("epoch") if isinstance(pos, dict) else None
        offset = pos.get("offset") if isinstance(pos, dict) else None
        if (
            not isinstance(epoch, str)
            or not isinstance(offset, int)
            or isinstance(offset, bool)
            or offset < 0
        ):
            raise ValueError(
                f'{SINCE_PARAM}[{group!r}] must be {{"epoch": <string>, "offset": <int >= 0>}}'
            )
        since[group] = Position(epoch, offset)
    return since


def since_of(scope: Scope) -> dict[str, Position]:
    """The positions a connection's client asked to recover from (`$since`), if any.

    Raises:
        ValueError: `$since` is malformed (`check_since` refuses such a handshake).
    """
    if b"since" not in scope.get("query_string", b""):
        return {}  # the common case, decided without parsing the query string
    raw = scope_query(scope).get(SINCE_PARAM)
    return parse_since(raw) if raw is not None else {}


def check_since(scope: Scope) -> None:
    """Refuse a handshake whose `$since` is malformed (close 1008, reason logged).

    Raises:
        Reject: `$since` is not a JSON object of positions by group.
    """
    try:
        since_of(scope)
    except ValueError as exc:
        raise Reject(1008, str(exc)) from None
