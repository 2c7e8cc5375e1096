"""History on Redis: the two Lua scripts, their keys, and what their replies mean.

A history group's state is two keys next to its pub/sub channel `<prefix>:g:<group>`:

- the **meta** hash `{<channel>}:m`: `epoch` (8 hex digits, made when the hash is) and
  `offset` (the newest offset given out). It expires `meta_ttl` after the last broadcast;
- the **stream** `{<channel>}:s`: one entry per kept broadcast, id `0-<offset>`, the frame
  in field `f`, trimmed to about `size` entries, expiring `ttl` after the last broadcast.

The braces are a Cluster hash tag: both keys hash to the slot of the channel itself (a
channel without a tag hashes whole), so the script that appends and publishes touches
one slot, and on a cluster its SPUBLISH goes out from the shard that owns the channel.
A channel that has a tag of its own (a prefix or a group name with `{...}` in it) keeps
it: the keys are then `<channel>:m` and `<channel>:s`, which hash by that same tag. A
channel with a `}` but no valid tag before it (e.g. the group `a}b`) hashes whole, and no
key can share its slot (a tag cannot contain `}`): such a group cannot keep history on
Redis and `history_keys` raises `LayerError` (the same on a single Redis, so an app
does not change behaviour when it moves to a cluster).

The publish script, run once per broadcast in one round trip, atomically:
1. reads the meta hash; if it has no epoch (never published, expired, or Redis lost
   it), starts a new history: the epoch the caller drew, offset 0, and DEL the stream so
   entries of an older epoch can never be read as part of the new one;
2. XADDs the frame with the id `0-<offset + 1>`, then HINCRBY the offset (after the
   XADD, so a refused XADD gives nothing out). The stream is trimmed to about `size`
   (`MAXLEN ~`: Redis drops whole nodes, which costs half of an exact trim), and reads
   return only the newest `size`, so what a reader sees is exactly what the memory layer
   keeps;
3. PEXPIREs the stream (`ttl`) and the meta hash (`meta_ttl`);
4. PUBLISHes (SPUBLISH on a cluster) `P<origin> <epoch> <offset> <frame>` on the channel;
5. returns the epoch and offset: the frame's `Position`.

The read script creates the meta hash the same way when it is missing (with its
`meta_ttl`, so later broadcasts continue that epoch), and returns the epoch, the newest
offset and the frames after `since` (XRANGE) or the newest `limit` (XREVRANGE), never
more than the newest `size`. A read does not extend the history's life: `meta_ttl`
counts from the last broadcast, as on the memory layer.

The epoch is drawn by the caller (`new_epoch`, a new one per call) rather than in Lua:
it must differ from every earlier epoch of the channel, and a script's random numbers
are not meant to be.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from typing import Any

from ...exceptions import LayerError
from ..base import HistoryPolicy, HistorySlice, Position
from . import wire
from .publisher import Script, pack_args
from .publishing import Publishers

__all__ = [
    "PUBLISH",
    "READ",
    "RedisHistory",
    "history_keys",
    "new_epoch",
    "publish_args",
    "read_args",
    "read_slice",
    "reply_position",
]

PUBLISH = Script(
    """
local meta, stream = KEYS[1], KEYS[2]
local kept = redis.call('HMGET', meta, 'epoch', 'offset')
local epoch, offset = kept[1], tonumber(kept[2])
if not epoch or not offset then
  epoch, offset = ARGV[7], 0
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'offset', 0)
end
local n = string.format('%d', offset + 1)
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '0-' .. n, 'f', ARGV[8])
offset = redis.call('HINCRBY', meta, 'offset', 1)
redis.call('PEXPIRE', stream, ARGV[5])
redis.call('PEXPIRE', meta, ARGV[6])
redis.call(ARGV[1], ARGV[2], ARGV[3] .. epoch .. ' ' .. n .. ' ' .. ARGV[8])
return {epoch, offset}
""",
    # numkeys, meta, stream; publish command, channel, header, size, ttl, meta_ttl,
    # new epoch, frame
    11,
)

READ = Script(
    """
local meta, stream = KEYS[1], KEYS[2]
local kept = redis.call('HMGET', meta, 'epoch', 'offset')
local epoch, offset = kept[1], tonumber(kept[2])
if not epoch or not offset then
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', ARGV[1], 'offset', 0)
  redis.call('PEXPIRE', meta, ARGV[2])
  return {ARGV[1], 0, {}}
end
local since, limit, size = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local frames = {}
if since >= 0 then
  if since < offset then
    local from = math.max(since, offset - size)
    frames = redis.call('XRANGE', stream, string.format('(0-%d', from), '+')
  end
elseif limit > 0 then
  frames = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', math.min(limit, size))
end
return {epoch, offset, frames}
""",
    # numkeys, meta, stream; new epoch, meta_ttl, since (-1: none), limit, size
    8,
)

_NUMKEYS = b"2"
#: how many groups keep their packed script arguments
_CACHE_LIMIT = 4096


def history_keys(channel: str) -> tuple[bytes, bytes]:
    """The meta hash and stream keys of a channel's history, in the channel's slot.

    Raises:
        LayerError: the channel has a `}` and no hash tag, so no key can share its slot.
    """
    start = channel.find("{")
    end = channel.find("}", start + 1) if start >= 0 else -1
    if end > start + 1:  # the channel has a hash tag: keys that start with it keep it
        base = channel
    elif "}" in channel:
        raise LayerError(
            f"{channel!r} cannot keep history on Redis: it has a '}}' outside a hash tag, "
            "so no key can share its Cluster slot; leave '}' out of history group names"
        )
    else:
        base = "{" + channel + "}"
    return f"{base}:m".encode(), f"{base}:s".encode()


def _ms(seconds: float) -> bytes:
    return b"%d" % max(1, round(seconds * 1000))


def _epochs() -> Iterator[int]:
    return itertools.count(secrets.randbits(32))


#: epoch candidates: a random start per process, then one more per call
_candidates = _epochs()


def _reseed() -> None:
    # a forked worker must not draw the same candidates as its siblings
    global _candidates
    _candidates = _epochs()


os.register_at_fork(after_in_child=_reseed)


def new_epoch() -> bytes:
    """A fresh epoch for a history that may be created: 8 hex digits.

    Every call draws another (a counter from a random start per process: as unlikely
    to repeat an earlier epoch of the channel as a random draw, for a tenth of its
    cost), so a history recreated by any process gets an epoch no client has seen.
    """
    return b"%08x" % (next(_candidates) & 0xFFFFFFFF)


def publish_args(channel: str, policy: HistoryPolicy, header: bytes, sharded: bool) -> list[bytes]:
    """The keys and arguments of the publish script but the last two (new epoch, frame)."""
    meta, stream = history_keys(channel)
    return [
        meta,
        stream,
        b"SPUBLISH" if sharded else b"PUBLISH",
        channel.encode(),
        header,
        b"%d" % policy.size,
        _ms(policy.ttl),
        _ms(policy.meta_ttl),
    ]


def read_args(channel: str, policy: HistoryPolicy, since: int | None, limit: int) -> list[bytes]:
    """The keys and arguments of the read script."""
    meta, stream = history_keys(channel)
    return [
        meta,
        stream,
        new_epoch(),
        _ms(policy.meta_ttl),
        b"-1" if since is None else b"%d" % max(since, 0),
        b"%d" % max(limit, 0),
        b"%d" % policy.size,
    ]


def reply_position(channel: str, reply: Any) -> Position:
    """The position the publish script returned.

    Raises:
        LayerError: the reply is not what the script returns (another script by that name?).
    """
    try:
        epoch, offset = reply
        return Position(epoch.decode() if epoch.__class__ is bytes else _text(epoch), int(offset))
    except (TypeError, ValueError, AttributeError) as exc:
        raise LayerError(
            f"unexpected reply to the history publish of {channel!r}: {reply!r:.200}"
        ) from exc


def read_slice(channel: str, reply: Any, newest_first: bool) -> HistorySlice:
    """The `HistorySlice` of the read script's reply.

    Raises:
        LayerError: the reply is not what the script returns.
    """
    try:
        epoch, offset, entries = reply
        frames = [(int(entry[0][2:]), _text(entry[1][1])) for entry in entries]
        if newest_first:
            frames.reverse()
        return HistorySlice(_text(epoch), int(offset), frames)
    except (TypeError, ValueError, IndexError) as exc:
        raise LayerError(
            f"unexpected reply reading the history of {channel!r}: {reply!r:.200}"
        ) from exc


def _text(value: Any) -> str:
    """A bulk string reply as text (a sync client may decode replies already)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r:.40}")


class RedisHistory:
    """Runs the history scripts of one `RedisLayer` through its publish pipeline.

    Args:
        publishing: the layer's publishers (one pipelined connection per node).
        prefix: the layer's prefix (channels are `<prefix>:g:<group>`).
        origin: the layer's process id, in the payload header.
        sharded: the layer is on a Redis Cluster (SPUBLISH).
    """

    __slots__ = ("_args", "_header", "_prefix", "_publishing", "_sharded")

    def __init__(self, publishing: Publishers, prefix: str, origin: bytes, sharded: bool) -> None:
        self._publishing = publishing
        self._prefix = prefix
        self._header = wire.positioned_header(origin)
        self._sharded = sharded
        #: group -> (its policy, routing key, the command up to its last two arguments):
        #: a broadcast packs only its frame and a new epoch. The policy is compared by
        #: identity (a Group keeps one), which is cheaper than hashing it
        self._args: dict[str, tuple[HistoryPolicy, bytes, bytes]] = {}

    async def publish(self, group: str, data: str | bytes, policy: HistoryPolicy) -> Position:
        """Append `data` to `group`'s history and publish it with its position, in one
        script and one round trip; the frame's position.

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerBusyError: no room in the node's queue in time.
            LayerError: Redis refused the script; or the group has a `}` outside a hash
                tag and cannot keep history (`history_keys`).
            TypeError: `data` is bytes (history frames are text).
        """
        if not isinstance(data, str):
            raise TypeError(f"history group {group!r} carries text frames only")
        packed = self._args.get(group)
        if packed is None or packed[0] is not policy:
            if len(self._args) >= _CACHE_LIMIT:
                self._args.clear()
            channel = wire.group_channel(self._prefix, group)
            args = publish_args(channel, policy, self._header, self._sharded)
            packed = (policy, args[0], PUBLISH.evalsha + pack_args(_NUMKEYS, *args))
            self._args[group] = packed
        frame = data.encode()
        # the last two arguments, a new epoch (8 bytes) and the frame, packed by hand
        tail = b"$8\r\n%s\r\n$%d\r\n" % (new_epoch(), len(frame))
        reply = await self._publishing.run(
            PUBLISH, packed[1], b"".join((packed[2], tail, frame, b"\r\n")), group, publishes=True
        )
        return reply_position(group, reply)

    async def read(
        self, group: str, policy: HistoryPolicy, since: int | None, limit: int
    ) -> HistorySlice:
        """Read `channel`'s history (see `Layer.history`).

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerBusyError: no room in the node's queue in time.
            LayerError: Redis refused the script; or the group cannot keep history.
        """
        args = read_args(wire.group_channel(self._prefix, group), policy, since, limit)
        reply = await self._publishing.run(
            READ,
            args[0],
            READ.evalsha + pack_args(_NUMKEYS, *args),
            group,
            doing="reading the history of",
            where="nothing read",
        )
        return read_slice(group, reply, newest_first=since is None)
