"""Named groups of connections, and broadcasting to them."""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .exceptions import ConfigurationError, RtframeError
from .messages import encode

if TYPE_CHECKING:
    from .connection import Connection
    from .layers.base import Layer

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])

_default_layer: Layer | None = None


def set_default_layer(layer: Layer | None) -> None:
    """Choose the layer used by broadcasts made outside a connection (views, tasks).

    RealtimeApp calls this when it is created and when it starts, so a process serving
    one app never needs to.
    """
    global _default_layer
    _default_layer = layer


def default_layer() -> Layer:
    if _default_layer is None:
        raise RtframeError("no RealtimeApp has been created in this process, so there is no layer")
    return _default_layer


class Group:
    """A group name template such as `"chat.{room}"`.

    The placeholders are filled from a connection's path parameters (`add`, `discard`,
    and `@group.broadcast` handlers) or from keyword arguments (`await
    group.broadcast(message, room="lobby")`).
    """

    __slots__ = ("_static", "fields", "template")

    def __init__(self, template: str) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        for f in fields:
            if not f.isidentifier():
                raise ConfigurationError(
                    f"group template {template!r}: {{{f}}} is not a plain name"
                )
        self.template = template
        self.fields = tuple(fields)
        self._static = not fields

    def __repr__(self) -> str:
        return f"Group({self.template!r})"

    def name(self, **params: Any) -> str:
        """The concrete group name for these parameters."""
        if self._static:
            return self.template
        try:
            return self.template.format_map(params)
        except KeyError as exc:
            raise RtframeError(
                f"group {self.template!r} needs a value for {exc.args[0]!r}"
            ) from None

    def name_for(self, conn: Connection) -> str:
        """The concrete group name for a connection, from its path parameters."""
        return self.template if self._static else self.name(**conn.path_params)

    def _member_name(self, conn: Connection, params: dict[str, Any]) -> str:
        return self.name(**{**conn.path_params, **params}) if params else self.name_for(conn)

    async def add(self, conn: Connection, **params: Any) -> str:
        """Add a connection; it leaves automatically when it disconnects."""
        name = self._member_name(conn, params)
        await conn.layer.group_add(name, conn)
        return name

    async def discard(self, conn: Connection, **params: Any) -> None:
        """Remove a connection; no error if it was not a member."""
        await conn.layer.group_discard(self._member_name(conn, params), conn)

    @overload
    def broadcast(self, message: F, /) -> F: ...

    @overload
    def broadcast(self, message: Any, /, **params: Any) -> Coroutine[Any, Any, None]: ...

    def broadcast(self, message: Any, /, **params: Any) -> Any:
        """Send `message` to every member, or decorate a receive handler.

        As a decorator (`@group.broadcast` under `@ws.on_receive`), the handler's return
        value goes to the group named from the sender's path parameters instead of back
        to the sender. Called with a message, it sends it now: the message is encoded
        once and that text reaches every member, in this process or (Redis layer) any.
        """
        if inspect.iscoroutinefunction(message) and not params:
            if getattr(message, "__rtframe_broadcast__", None) is not None:
                raise ConfigurationError(f"{message.__qualname__} already broadcasts to a group")
            message.__rtframe_broadcast__ = self
            return message
        return self.send(message, **params)

    async def send(self, message: Any, **params: Any) -> None:
        """Encode `message` once and publish it to the group named by `params`."""
        await default_layer().publish(self.name(**params), encode(message))


async def send_to_connection(
    connection_id: str, message: Any, *, layer: Layer | None = None
) -> None:
    """Send a message to one connection by id, wherever it is connected."""
    await (layer or default_layer()).send_to(connection_id, encode(message))
