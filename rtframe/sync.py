"""Broadcast from sync code: Django views, management commands, Celery tasks.

    from rtframe.sync import broadcast_sync
    broadcast_sync(rooms, Said(nick="bot", text="deploy done"), room="lobby", app=app)

The target is explicit: `layer=` (a `RedisLayer`), else `app=` (its layer), else the only
app of the process (`rtframe.hub.target_hub`; with several candidates that raises
`RtframeError` rather than guess). Publishing goes through the layer's `SyncPublisher`:
a sync redis client with its own thread-safe pool, no event loop per call, no thread.
The frame reaches every member in every process.

Needs the Redis layer (`pip install 'rtframe[redis]'`): the in-memory layer has no way
in from outside its event loop (`LayerError`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import LayerError
from .hub import target_hub
from .layers.base import Layer

if TYPE_CHECKING:
    from .groups import Group
    from .layers.base import HistoryPolicy, Position
    from .layers.redis.sync import SyncPublisher

__all__ = ["SyncPublisher", "broadcast_sync", "send_to_connection_sync"]


class HasLayer(Protocol):
    """An app: anything with the layer its messages travel through."""

    @property
    def layer(self) -> Layer: ...


def __getattr__(name: str) -> Any:
    if name == "SyncPublisher":  # imported on use: it needs the redis package
        from .layers.redis.sync import SyncPublisher

        return SyncPublisher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def broadcast_sync(
    group: Group | str,
    message: Any,
    *,
    app: HasLayer | None = None,
    layer: Layer | None = None,
    history: HistoryPolicy | None = None,
    **params: Any,
) -> Position | None:
    """Broadcast to every member of a group, in every process, from sync code.

    `group` is a `Group` (filled from `params`) or a group name. A group that keeps
    history (`history`, by default the `Group`'s own policy; give it for a group named
    by a string) gets the message appended to it, and its position is returned.

    Raises:
        RtframeError: neither `app` nor `layer` given and no single app to use.
        LayerError: the layer is not a RedisLayer, or Redis refused the command.
        LayerUnavailableError: Redis is unreachable.
        LayerBusyError: every pooled connection stayed taken.
    """
    return _publisher(app, layer).broadcast(group, message, history, **params)


def send_to_connection_sync(
    connection_id: str,
    message: Any,
    *,
    app: HasLayer | None = None,
    layer: Layer | None = None,
) -> None:
    """Send to one connection of any process from sync code; targets as `broadcast_sync`."""
    _publisher(app, layer).send_to(connection_id, message)


def _publisher(app: HasLayer | None, layer: Layer | None) -> SyncPublisher:
    if layer is None:
        layer = app.layer if app is not None else target_hub().layer
    # a RedisLayer exists only once its module was imported: no need to import it here
    if "rtframe.layers.redis.layer" in sys.modules:
        from .layers.redis.layer import RedisLayer

        if isinstance(layer, RedisLayer):
            return layer.sync_publisher()
    raise LayerError(
        f"sync publishing needs a RedisLayer, but the layer is {type(layer).__name__}: "
        "an in-memory layer has no way in from outside the event loop"
    )
