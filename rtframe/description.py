"""A read-only description of an app's routes, for the AsyncAPI generator, the CLI and docs.

`app.describe()` returns an `AppDescription`. Everything here is a frozen value built from
the compiled routes; reading it never touches the app's internals, and changing it is
impossible, so tools built on it cannot drift from what the app serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .groups import Group
    from .limits import RateLimit
    from .timing import Heartbeat, Timeouts

__all__ = [
    "AppDescription",
    "HTTPRouteDescription",
    "HandlerDescription",
    "PathParam",
    "QueryParam",
    "RouteDescription",
    "ServerMessageDescription",
    "ServerMessages",
]

HandlerRole = Literal["connect", "receive", "disconnect"]


@dataclass(frozen=True, slots=True)
class PathParam:
    """A `{name}` or `{name:converter}` segment of a route path."""

    name: str
    converter: str  #: "str", "int", "float", "uuid" or "path"
    type: type
    pattern: str  #: the regular expression the router matches the value with (unanchored)


@dataclass(frozen=True, slots=True)
class QueryParam:
    """A query-string parameter, validated once at the handshake."""

    name: str
    annotation: Any
    required: bool
    default: Any  #: meaningless when `required`


@dataclass(frozen=True, slots=True)
class HandlerDescription:
    """One registered function of a route."""

    role: HandlerRole
    fn: Callable[..., Any]
    name: str  #: module and qualified name
    message: Any  #: the message model, `bytes` for binary frames, None for connect/disconnect
    returns: Any  #: the return annotation; None when the handler answers nothing
    broadcast: Group | None  #: where the return value goes instead of the sender
    dependencies: tuple[Callable[..., Any], ...]  #: every dependency, nested ones included
    query_params: tuple[QueryParam, ...]


@dataclass(frozen=True, slots=True)
class RouteDescription:
    """One WebSocket path and its handlers."""

    path: str  #: the template as registered, converters included
    address: str  #: the template without converters: `/items/{id:int}` -> `/items/{id}`
    path_params: tuple[PathParam, ...]
    connect: HandlerDescription | None
    receive: tuple[HandlerDescription, ...]  #: in registration order
    disconnect: tuple[HandlerDescription, ...]
    query_params: tuple[QueryParam, ...]  #: of every handler and dependency of the route
    summary: str | None
    max_message_size: int
    rate_limit: RateLimit | None
    heartbeat: Heartbeat | None = None  #: None: no heartbeat frames on this route
    timeouts: Timeouts | None = None

    @property
    def handlers(self) -> tuple[HandlerDescription, ...]:
        connect = (self.connect,) if self.connect is not None else ()
        return (*connect, *self.receive, *self.disconnect)


@dataclass(frozen=True, slots=True)
class HTTPRouteDescription:
    """One HTTP route: a path, its methods and what its handler takes and answers."""

    path: str  #: the template as registered, converters included
    address: str  #: the template without converters: `/items/{id:int}` -> `/items/{id}`
    methods: tuple[str, ...]  #: sorted; HEAD included for a GET route
    name: str  #: the handler's module and qualified name
    fn: Callable[..., Any]
    path_params: tuple[PathParam, ...]
    query_params: tuple[QueryParam, ...]  #: of the handler and its dependencies
    body: Any  #: the body's model, `bytes` for a raw body, None when it takes none
    returns: Any  #: the JSON answer's type (the return annotation); None: a Response
    status: int  #: of the handler's answer (a returned `Response` has its own)
    streaming: bool  #: the handler returns a `StreamingResponse`
    media_type: str | None  #: "application/json", or the streaming route's declared type
    summary: str | None
    dependencies: tuple[Callable[..., Any], ...]  #: every dependency, nested ones included


@dataclass(frozen=True, slots=True)
class ServerMessageDescription:
    """A frame the server may send on every WebSocket route that no handler declares: an
    integration's own (e.g. `task_progress` of `rtframe.tasks`), in `ServerMessages`."""

    model: Any  #: the message's model (a Pydantic model with a `type` literal)
    name: str  #: the operation's name in the document, e.g. "task_progress"
    summary: str
    description: str


class ServerMessages:
    """The frames integrations send on every WebSocket route of an app, which no handler
    declares (`app.server_messages`; `Tasks(app=app)` adds `task_progress`).

    Only ever added to, once per name. An `AppDescription` holds a copy: the app describes
    itself again when a frame was added since (`stale`), so a `Tasks(app=app)` made after
    the app was first described is in its document too.
    """

    __slots__ = ("_by_name",)

    def __init__(self) -> None:
        self._by_name: dict[str, ServerMessageDescription] = {}

    def add(self, model: Any, *, name: str, summary: str, description: str) -> None:
        """Document `model` as the `send.<name>` operation of every WebSocket route."""
        self._by_name.setdefault(name, ServerMessageDescription(model, name, summary, description))

    def __iter__(self) -> Iterator[ServerMessageDescription]:
        return iter(tuple(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def stale(self, description: AppDescription) -> bool:
        """Whether `description` was made before the last frame was added."""
        return len(description.server_messages) != len(self._by_name)


@dataclass(frozen=True, slots=True)
class AppDescription:
    """An app's metadata and its routes, sorted by path."""

    title: str
    version: str
    description: str | None
    routes: tuple[RouteDescription, ...]
    http_paths: tuple[str, ...]
    #: SSE endpoints (`SSERouter`): one-way streams; only `connect` is set on each
    sse_routes: tuple[RouteDescription, ...] = ()
    http_routes: tuple[HTTPRouteDescription, ...] = ()  #: sorted by path, then methods
    #: frames an integration sends on every WebSocket route, in registration order
    server_messages: tuple[ServerMessageDescription, ...] = ()
