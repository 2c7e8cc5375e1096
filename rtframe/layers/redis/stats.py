"""Counters of one Redis layer, for logs, metrics and tests."""

from __future__ import annotations

__all__ = ["RedisStats"]


class RedisStats:
    """Counters of one layer; plain integers, only ever increased."""

    __slots__ = (
        "batches",
        "busy",
        "malformed",
        "outages",
        "published",
        "received",
        "resubscribed",
        "script_loads",
        "unknown_target",
    )

    def __init__(self) -> None:
        #: publishes Redis acknowledged: PUBLISH/SPUBLISH, and history broadcasts (a script)
        self.published = 0
        #: round trips that carried them (pipelined batches), history reads included
        self.batches = 0
        self.busy = 0  #: publishes refused with LayerBusyError (no room in time)
        self.received = 0  #: messages read from the subscriber connection(s)
        self.malformed = 0  #: payloads dropped because they did not parse
        self.unknown_target = 0  #: direct messages for a member no longer here
        self.outages = 0  #: times the layer went from available to unavailable
        #: times a subscriber connection was lost, made again and subscribed again
        self.resubscribed = 0
        #: scripts sent whole (EVAL) because Redis answered NOSCRIPT: it had restarted,
        #: failed over or flushed its script cache
        self.script_loads = 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"RedisStats({fields})"
