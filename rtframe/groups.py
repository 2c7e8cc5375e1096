"""Named groups of members, and broadcasting to them."""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._scope import USER_SCOPE_KEY
from .exceptions import ConfigurationError, RtframeError
from .history import HistoryPolicy
from .hub import target_hub
from .messages import encode
from .presence import PresenceInfo, PresencePolicy, PresenceStats

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Group", "send_to_connection"]

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


class Group:
    """A group name template such as `"chat.{room}"`.

    The placeholders are filled from a connection's path parameters (`add`, `discard`,
    and `@group.broadcast` handlers) or from keyword arguments (`await
    group.broadcast(message, room="lobby")`).
    """

    __slots__ = ("_static", "fields", "history", "presence", "template")

    def __init__(
        self,
        template: str,
        *,
        history: HistoryPolicy | None = None,
        presence: PresencePolicy | None = None,
    ) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        for f in fields:
            if not f.isidentifier():
                raise ConfigurationError(
                    f"group template {template!r}: {{{f}}} is not a plain name"
                )
        reserved = {f for f in fields if f == "conn" or f.startswith("presence_")}
        if reserved:
            raise ConfigurationError(
                f"group template {template!r}: {{{min(reserved)}}} is a reserved name "
                "(`conn` and `presence_*` are keywords of Group.add)"
            )
        self.template = template
        #: what the group keeps for members that reconnect (`rtframe.history`)
        self.history = history
        #: whether the group keeps track of who is in it (`rtframe.presence`)
        self.presence = presence
        self.fields = tuple(fields)
        self._static = not fields

    def __repr__(self) -> str:
        if self.history is not None:
            return f"Group({self.template!r}, history={self.history!r})"
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

    async def add(
        self,
        conn: Connection,
        *,
        presence_user: str | None = None,
        presence_meta: dict[str, Any] | None = None,
        **params: Any,
    ) -> str:
        """Add a connection; it leaves automatically when it disconnects.

        Returns once the group's frames reach this process (with Redis: once the
        subscription is confirmed), so call it before `accept()` and the client never
        sees an open socket that misses the group's messages.

        In a presence group the connection is shown with `presence_user` (by default
        the logged-in Django user's key, when the handshake asked for the user) and
        `presence_meta`, any JSON object the app wants others to see (a nickname).
        """
        name = self._member_name(conn, params)
        user = presence_user
        if user is None and self.presence is not None:
            key = conn.scope.get(USER_SCOPE_KEY)
            user = key if isinstance(key, str) else None
        await conn.hub.join(name, conn, self.history, self.presence, user=user, meta=presence_meta)
        return name

    async def discard(self, conn: Connection, **params: Any) -> None:
        """Remove a connection; no error if it was not a member."""
        await conn.hub.leave(self._member_name(conn, params), conn)

    @overload
    def broadcast(self, message: F, /) -> F: ...

    @overload
    def broadcast(self, message: Any, /, **params: Any) -> Coroutine[Any, Any, None]: ...

    def broadcast(self, message: Any, /, **params: Any) -> Any:
        """Send `message` to every member, or decorate a receive handler.

        As a decorator (`@group.broadcast`, above or below `@ws.on_receive`), the
        handler's return value goes to the group named from the sender's path parameters
        instead of back to the sender. Called with a message, it sends it now: the
        message is encoded once and that text reaches every member, in this process or
        (Redis layer) any. Outside a connection the app is found as `rtframe.hub`
        explains; `await app.broadcast(group, message, ...)` names it.
        """
        if inspect.iscoroutinefunction(message) and not params:
            if getattr(message, "__rtframe_broadcast__", None) is not None:
                raise ConfigurationError(f"{message.__qualname__} already broadcasts to a group")
            message.__rtframe_broadcast__ = self
            return message
        return self.send(message, **params)

    async def present(self, **params: Any) -> list[PresenceInfo]:
        """Every connection present in the group named by `params`, in every process.

        Raises:
            ConfigurationError: the layer keeps no presence.
            LayerUnavailableError: the layer's backend is unreachable.
        """
        return await target_hub().presence(self.name(**params))

    async def presence_stats(self, **params: Any) -> PresenceStats:
        """How many connections and distinct users are present (tabs of a user count once)."""
        return await target_hub().presence_stats(self.name(**params))

    async def send(self, message: Any, **params: Any) -> None:
        """Encode `message` once and publish it to the group named by `params`."""
        name = self.name(**params)
        await target_hub().publish(name, encode(message), self.history)


async def send_to_connection(connection_id: str, message: Any) -> None:
    """Send a message to one connection by id, wherever it is connected.

    Outside a connection the app is found as `rtframe.hub` explains; `await
    app.send_to(connection_id, message)` names it.
    """
    await target_hub().send_to(connection_id, encode(message))
