"""RealtimeApp: configuration plus ASGI dispatch.

The app holds its configuration, its compiled routes (`_routes`), its messaging (`hub`:
the member registry and the layer) and the set of its live sessions (`_session`). Each
WebSocket connection is served by a `Session`; HTTP requests go to the app's own routes
or to the app it is mounted beside; lifespan starts and stops the layer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._admission import Admission
from ._drain import Drainer, DrainSummary
from ._http_routes import HTTPRoutes
from ._routes import CompiledRoute, RouteTable
from ._session import HandshakeCheck, Session, SessionHost, Sessions
from ._sweeper import Sweeper, sweep_tick
from .connection import CLOSE_POLICY_VIOLATION, Connection, OverflowPolicy
from .description import AppDescription, ServerMessages
from .exceptions import ConfigurationError
from .groups import Group
from .http import Endpoint, not_found
from .http_routing import HTTPRouter
from .hub import Hub
from .layers.base import Layer, Position
from .layers.memory import InMemoryLayer
from .limits import DEFAULT_RATE_LIMIT, Limits, LimitStats, RateLimit
from .messages import encode
from .mounting import MountError, Mounts, route_path
from .origins import AllowedOrigins
from .routing import WebSocketRouter
from .sse import SSEChannel, SSEOptions, SSERouter, Stream, last_event_scope
from .stats import AppStats, count
from .timing import DEFAULT_HEARTBEAT, DEFAULT_TIMEOUTS, Heartbeat, Timeouts
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["RealtimeApp"]

logger = logging.getLogger("rtframe")

F = TypeVar("F", bound=Callable[..., Any])


class RealtimeApp:
    """Compile WebSocket routers into one ASGI application.

    Args:
        routers: the routers whose handlers this app serves.
        layer: where group and direct messages travel; an `InMemoryLayer` by default.
        http: an ASGI app for HTTP requests no route of this app matches (404 otherwise).
        max_message_size: the largest incoming frame, in bytes; bigger ones close with 1009.
        rate_limit: incoming frames allowed per connection (`RateLimit`); by default
            `DEFAULT_RATE_LIMIT` (50 a second, bursts of 100, refused with `rate_limited`
            error frames); None switches it off.
        limits: connections per process, address and user, handshakes per second and
            groups per connection (`Limits`; its defaults when omitted).
        outbox_limit: frames queued for a slow client before the overflow policy applies.
        overflow: "drop_oldest" (default) or "close" (close code 4008).
        heartbeat: application-level pings (`rtframe.timing`); None switches them off.
        timeouts: bounds on handshakes, idle connections and handler calls.
        asyncapi_path: where the AsyncAPI document is served (None: not served).
        docs_path: where its HTML page is served (None: not served).
        allowed_origins: refuse browsers' handshakes from other sites (`rtframe.origins`):
            the page's own origin and these (`"https://*.example.com"`, `"*"`) are
            allowed; `[]` allows only the own origin; None (default) checks nothing.
    """

    def __init__(
        self,
        routers: Iterable[WebSocketRouter | SSERouter | HTTPRouter] = (),
        *,
        layer: Layer | None = None,
        http: ASGIApp | None = None,
        max_message_size: int = 1024 * 1024,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        limits: Limits | None = None,
        outbox_limit: int = 256,
        overflow: OverflowPolicy = "drop_oldest",
        heartbeat: Heartbeat | None = DEFAULT_HEARTBEAT,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        title: str = "rtframe application",
        version: str = "0.1.0",
        description: str | None = None,
        asyncapi_path: str | None = "/asyncapi.json",
        docs_path: str | None = "/asyncapi",
        allowed_origins: Iterable[str] | None = None,
    ) -> None:
        if overflow not in ("drop_oldest", "close"):
            raise ConfigurationError(f"overflow must be 'drop_oldest' or 'close', not {overflow!r}")
        if outbox_limit < 1 or max_message_size < 1:
            raise ConfigurationError("outbox_limit and max_message_size must be positive")
        self.layer: Layer = layer if layer is not None else InMemoryLayer()
        #: The member registry and the layer, kept in step (see `rtframe.hub`).
        self.limits = limits if limits is not None else Limits()
        #: How often each limit refused something (`LimitStats`; exported as metrics).
        self.limit_stats = LimitStats()
        #: Handshakes, closes, error frames and timeouts counted (`AppStats`; metrics).
        self.stats = AppStats()
        self.hub = Hub(
            self.layer,
            title,
            max_groups=self.limits.groups_per_connection,
            limit_stats=self.limit_stats,
            stats=self.stats,
        )
        self._admission = Admission(self.limits, self.limit_stats)
        #: The live WebSocket sessions: `len(app.sessions)`, iterate, `close_all()`.
        self.sessions = Sessions()
        self._drainer = Drainer(self.sessions)
        self.fallback = http
        self.max_message_size, self.rate_limit = max_message_size, rate_limit
        self.outbox_limit = outbox_limit
        self.overflow: OverflowPolicy = overflow
        self.heartbeat, self.timeouts = heartbeat, timeouts
        self._sweeper: Sweeper | None = None
        self.title, self.version, self.description = title, version, description
        #: Replace a dependency by another in tests: `app.dependency_overrides[get_user] = fake`.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        #: The app's HTTP routes (`rtframe.http_routing`); iterating gives their paths.
        self.http_routes = HTTPRoutes(
            hub=self.hub,
            overrides=self.dependency_overrides,
            max_body_size=max_message_size,
            before=self._ensure_started,
        )
        #: Apps mounted under a path prefix or for a scope type (`rtframe.mounting`).
        self.mounts = Mounts()
        self._lifespan_state: dict[str, Any] | None = None
        self._table = RouteTable()
        self._sse_table = RouteTable()  # SSE endpoints: GET requests, matched first
        self._sse_options: dict[str, SSEOptions] = {}
        self._description: AppDescription | None = None
        self._on_startup: list[Callable[[], Awaitable[None]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[None]]] = []
        #: Checks run on every handshake before any route's connect handler.
        self.handshake_checks: list[HandshakeCheck] = []
        self._session_host = SessionHost(
            self.hub,
            checks=self.handshake_checks,
            sessions=self.sessions,
            admission=self._admission,
            stats=self.stats,
        )
        if allowed_origins is not None:
            self.add_handshake_check(AllowedOrigins(allowed_origins))
        self._started = False
        self._starting: asyncio.Future[None] | None = None
        self.server_messages = ServerMessages()  # frames integrations send (rtframe.tasks)
        for router in routers:
            self.include_router(router)
        if asyncapi_path is not None or docs_path is not None:
            self.serve_asyncapi(asyncapi_path, docs_path)

    # -- configuration ------------------------------------------------------------------

    def include_router(self, router: WebSocketRouter | SSERouter | HTTPRouter) -> None:
        """Compile and serve every route of `router` (WebSocket, SSE or HTTP routes).

        Raises:
            ConfigurationError: a path is served twice, or a handler cannot be served as
                registered (e.g. it broadcasts to a group naming an unknown path field).
        """
        if isinstance(router, HTTPRouter):
            self.http_routes.include(router)
            self._description = None
            return
        table = self._table
        if isinstance(router, SSERouter):
            table = self._sse_table
            self._sse_options.update(router.options)
        for spec in router.routes:
            table.add(
                CompiledRoute(
                    spec,
                    overrides=self.dependency_overrides,
                    max_message_size=self.max_message_size,
                    rate_limit=self.rate_limit,
                    heartbeat=self.heartbeat,
                    timeouts=self.timeouts,
                )
            )
        self._description = None

    @property
    def routes(self) -> list[CompiledRoute]:
        """The compiled WebSocket routes (internal; tools read `describe()`)."""
        return self._table.routes

    def describe(self) -> AppDescription:
        """A read-only description of this app and its routes (AsyncAPI, CLI, docs)."""
        if self._description is None or self.server_messages.stale(self._description):
            self._description = AppDescription(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self._table.describe(),
                http_paths=tuple(self.http_routes),
                http_routes=self.http_routes.describe(),
                sse_routes=self._sse_table.describe(),
                server_messages=tuple(self.server_messages),
            )
        return self._description

    def add_http_route(self, path: str, endpoint: Endpoint) -> None:
        """Serve GET (and HEAD) requests for `path` with `await endpoint(request)`."""
        self.http_routes.add_endpoint(path, endpoint)
        self._description = None

    def route(
        self, path: str, *, methods: Iterable[str] = ("GET",), **options: Any
    ) -> Callable[[F], F]:
        """Decorate an HTTP handler of this app (`HTTPRouter.add_route` says what it takes)."""

        def decorator(fn: F) -> F:
            self.http_routes.add(path, fn, methods=methods, **options)
            self._description = None
            return fn

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of GET (and HEAD) requests for `path`."""
        return self.route(path, methods=("GET",), **options)

    def mount(self, prefix: str, app: ASGIApp, *, lifespan: bool = True) -> None:
        """Serve every HTTP and WebSocket request under `prefix` with `app`; it gets
        lifespan events unless `lifespan=False` (`rtframe.mounting`)."""
        self.mounts.mount(prefix, app, lifespan=lifespan)

    def mount_protocol(self, scope_type: str, app: ASGIApp, *, lifespan: bool = True) -> None:
        """Serve every scope of `scope_type` (e.g. "webtransport") with `app`."""
        self.mounts.mount_protocol(scope_type, app, lifespan=lifespan)

    def on_startup(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self._on_startup.append(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        self._on_shutdown.append(fn)
        return fn

    def add_handshake_check(self, check: Callable[[Connection], Awaitable[None]]) -> None:
        """Run `await check(conn)` on every handshake, before the route's connect handler.

        A check refuses the handshake by raising `Reject` (the server answers HTTP 403);
        the Django integration uses this for its Origin check.
        """
        self.handshake_checks.append(check)

    def asyncapi(self, **options: Any) -> dict[str, Any]:
        """This app's AsyncAPI 3.0 document; options go to `rtframe.asyncapi.generate`."""
        from .asyncapi import generate

        return dict(generate(self, **options))

    def serve_asyncapi(
        self, json_path: str | None = "/asyncapi.json", page_path: str | None = "/asyncapi"
    ) -> None:
        """Serve the AsyncAPI document at `json_path` and its HTML page at `page_path`."""
        from .asyncapi.serve import serve

        serve(self, json_path, page_path)

    # -- messaging from outside a connection -------------------------------------------

    async def broadcast(self, group: Group | str, message: Any, **params: Any) -> Position | None:
        """Encode `message` once and send it to every member of a group of this app.

        `group` is a `Group` (its template filled from `params`) or a concrete name; a
        name of a history group that has a member in this process keeps its history
        (name the `Group` to be sure). Returns the message's position in a history group.

        Raises:
            LayerUnavailableError: the layer's backend is unreachable; only this
                process's members received the message.
        """
        if isinstance(group, Group):
            name, history = group.name(**params), group.history
        else:
            name, history = group, self.hub.histories.get(group)
        return await self.hub.publish(name, encode(message), history)

    async def send_to(self, connection_id: str, message: Any) -> None:
        """Send `message` to one connection of this app, wherever it is connected."""
        await self.hub.send_to(connection_id, encode(message))

    def mount_beside(self, app: ASGIApp) -> RealtimeApp:
        """Serve WebSockets (and this app's own HTTP routes) here, all other HTTP by `app`."""
        self.fallback = app
        return self

    # -- lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the layer and run startup hooks; done by lifespan or the first connection."""
        if self._started:
            return
        self.hub.enter()  # startup hooks that broadcast target this app
        await self.hub.start()
        self._start_sweeper()
        for hook in self._on_startup:
            await hook()
        await self.mounts.startup(self._lifespan_state)  # after the app, in mount order
        self._started = True

    def _start_sweeper(self) -> None:
        spans: list[float | None] = []
        for route in (*self._table.routes, *self._sse_table.routes):
            if route.heartbeat is not None:
                spans += [route.heartbeat.interval, route.heartbeat.timeout]
            spans += [route.timeouts.idle, route.timeouts.handler]
        tick = sweep_tick(*spans)
        if tick is not None:
            self._sweeper = Sweeper(self.sessions, tick)
            self._sweeper.start()

    async def shutdown(self) -> None:
        mounted: MountError | None = None
        try:
            await self.mounts.shutdown()  # before the app, in reverse mount order
        except MountError as exc:
            mounted = exc
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._sweeper = None
        for hook in reversed(self._on_shutdown):
            await hook()
        await self.hub.stop()
        self._started = False
        self._starting = None
        if mounted is not None:
            raise mounted

    async def _ensure_started(self) -> None:
        if self._started:
            return
        if self._starting is None or (self._starting.done() and self._starting.exception()):
            self._starting = asyncio.ensure_future(self.startup())
        await asyncio.shield(self._starting)

    @property
    def draining(self) -> bool:
        """True once `drain()` was called: new WebSocket handshakes are refused."""
        return self._drainer.active

    async def drain(
        self,
        window: float = 10.0,
        *,
        max_share_per_second: float = 0.2,
        handler_grace: float = 5.0,
        close_timeout: float = 2.0,
    ) -> DrainSummary:
        """Take this process out of service gently; `rtframe run` calls it on SIGTERM.

        New handshakes are refused (HTTP 503 with Retry-After, or close 1013); every
        client gets `{"type": "$reconnect", "after_ms": N}` with its own random N within
        `window` and is closed with 1012 at about that time, at most
        `max_share_per_second` of the clients in any one second (unless `window` is too
        short for that). A client whose handler is running is closed once it returns, at
        most `handler_grace` seconds after the window. Then waits up to `close_timeout`
        for every session's teardown. Takes at most the sum of the three. Calling it
        again (or concurrently) returns the first drain's summary.

        Raises:
            ConfigurationError: a negative or infinite time, or a share that is not positive.
        """
        await self.http_routes.end_streams("server draining")
        return await self._drainer.drain(
            window,
            max_share_per_second=max_share_per_second,
            handler_grace=handler_grace,
            close_timeout=close_timeout,
        )

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self.mounts and kind != "lifespan" and await self.mounts.dispatch(scope, receive, send):
            return
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            raise ValueError(f"no app serves {kind!r} scopes here; see RealtimeApp.mount_protocol")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._sse_table and scope["method"] == "GET":
            found = self._sse_table.match(route_path(scope))
            if found is not None:
                await self._sse(scope, receive, send)
                return
        if not await self.http_routes.dispatch(scope, receive, send):
            await (self.fallback or not_found)(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._lifespan_state = scope.get("state")
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._drainer.reset()  # a new serving period accepts connections again
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    # Under `rtframe run` the drain already ran (this returns its summary);
                    # plain uvicorn closed every socket before this point (nothing to do);
                    # elsewhere, live sessions get the notice and 1012 now, at once.
                    await self.drain(0.0, handler_grace=1.0, close_timeout=1.0)
                    await self.shutdown()
                except Exception as exc:
                    logger.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    def match(self, path: str) -> tuple[CompiledRoute, dict[str, Any]] | None:
        """The compiled route serving `path` and its converted parameters, if any."""
        return self._table.match(path)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The handshake's checks run in `_open`, which has returned before the session
        # runs: one coroutine frame less per live connection (about 200 bytes).
        session = await self._open(scope, receive, send)
        if session is None:
            return
        try:
            await session.run()
        finally:
            self._admission.release(scope)

    async def _sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an SSE stream: a session like a WebSocket's, behind an `SSEChannel`."""
        channel = SSEChannel(receive, send)
        extensions = {**(scope.get("extensions") or {}), "websocket.http.response": {}}
        scope = {**last_event_scope(scope), "extensions": extensions}
        session = await self._open(scope, channel.receive, channel.send, stream=True)
        if session is None:
            return
        channel.options = self._sse_options.get(session.route.path.template, channel.options)
        try:
            await session.run()
        finally:
            self._admission.release(scope)

    async def _open(
        self, scope: Scope, receive: Receive, send: Send, *, stream: bool = False
    ) -> Session | None:
        """The session for a new connection (an SSE `stream`), or None when it was refused."""
        first = await receive()
        if first["type"] != "websocket.connect":
            return None
        if self._drainer.active:
            count(self.stats.refused, "draining")
            await self._drainer.refuse(scope, send)
            return None
        found = (self._sse_table if stream else self._table).match(route_path(scope))
        if found is None:
            count(self.stats.refused, "no_route")
            logger.warning(
                "refused the WebSocket handshake for %s: no route matches it", scope["path"]
            )
            await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": ""})
            return None
        route, params = found
        admission = self._admission
        refusal = admission.admit(scope)
        if refusal is not None:
            await admission.refuse(refusal, scope, send)
            return None
        try:
            await self._ensure_started()
        except BaseException:
            admission.release(scope)
            raise
        conn = (Stream if stream else Connection)(
            scope,
            receive,
            send,
            hub=self.hub,
            path_params=params,
            outbox_limit=self.outbox_limit,
            # a slow stream is closed, and its reconnection recovers what it missed
            overflow="close" if stream else self.overflow,
        )
        return Session(route, conn, self._session_host)
