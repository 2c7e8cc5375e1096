"""RealtimeApp: the compiled routers as one ASGI callable."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError

from ._compile import CallPlan, MessageScope, Param, Resolver, query_value
from .connection import (
    _OPEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    Connection,
    ConnectionState,
    OverflowPolicy,
)
from .exceptions import ConfigurationError, LayerUnavailableError, MessageError, Reject
from .groups import Group, set_default_layer
from .http import Endpoint, Request, method_not_allowed, not_found
from .layers.base import Layer
from .layers.memory import InMemoryLayer
from .limits import RateLimit, TokenBucket
from .messages import build_encoder, describe_validation_error, error_frame, message_adapter
from .routing import RouteSpec, WebSocketRouter
from .types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("rtframe")

E = TypeVar("E", bound=Endpoint)

_INTERNAL_ERROR = error_frame("internal_error", "The server failed to handle the message")
_RATE_LIMITED = error_frame("rate_limited", "Too many messages; this one was not handled")
_LAYER_UNAVAILABLE = error_frame(
    "layer_unavailable",
    "The messaging backend is unreachable: only members on this server received the message",
)


class Handler:
    """A receive handler ready to run: its plan, its encoder and where its result goes."""

    __slots__ = ("encode", "group", "message_only", "plan")

    def __init__(self, plan: CallPlan) -> None:
        self.plan = plan
        self.encode = build_encoder(plan.returns) if plan.returns is not None else None
        self.group: Group | None = plan.broadcast
        #: The name of the message parameter when it is the handler's only one: the
        #: commonest handler is then called without building arguments at all.
        self.message_only: str | None = (
            plan.message_param if plan.direct and len(plan.params) == 1 else None
        )


class CompiledRoute:
    """One WebSocket path with its validation adapter and dispatch table."""

    def __init__(self, spec: RouteSpec, app: RealtimeApp) -> None:
        where = f"route {spec.path.template!r}"
        self.spec = spec
        self.path = spec.path
        self.resolver = Resolver(app.dependency_overrides, spec.path.param_types)
        self.connect = spec.connect
        self.disconnect = tuple(spec.disconnect)
        self.max_message_size = spec.max_message_size or app.max_message_size
        self.rate_limit = spec.rate_limit or app.rate_limit
        text = [p for p in spec.receive if p.message_type is not bytes]
        binary = [p for p in spec.receive if p.message_type is bytes]
        if len(binary) > 1:
            raise ConfigurationError(
                f"{where} has {len(binary)} binary (bytes) receive handlers; keep one"
            )
        seen: dict[Any, str] = {}
        for plan in text:
            if plan.message_type in seen:
                raise ConfigurationError(
                    f"{where}: {plan.name} and {seen[plan.message_type]} both receive "
                    f"{plan.message_type.__name__}"
                )
            seen[plan.message_type] = plan.name
        self.adapter = message_adapter([p.message_type for p in text], where) if text else None
        self.handlers = {p.message_type: Handler(p) for p in text}
        self.single = next(iter(self.handlers.values())) if len(self.handlers) == 1 else None
        self.binary = Handler(binary[0]) if binary else None
        queries: dict[str, Param] = {}
        plans: list[CallPlan | None] = [spec.connect, *spec.receive, *spec.disconnect]
        for maybe in plans:
            for p in maybe.query_params if maybe is not None else ():
                queries.setdefault(p.name, p)
        self.query_params = tuple(queries.values())


class RealtimeApp:
    """Compile WebSocket routers into one ASGI application.

    Args:
        routers: the routers whose handlers this app serves.
        layer: where group and direct messages travel; an `InMemoryLayer` by default.
        http: an ASGI app for HTTP requests no route of this app matches (404 otherwise).
        max_message_size: the largest incoming frame, in bytes; bigger ones close with 1009.
        rate_limit: incoming frames allowed per connection (`RateLimit`); none by default.
        outbox_limit: frames queued for a slow client before the overflow policy applies.
        overflow: "drop_oldest" (default) or "close" (close code 4008).
        asyncapi_path: where the AsyncAPI document is served (None: not served).
        docs_path: where its HTML page is served (None: not served).
    """

    def __init__(
        self,
        routers: Iterable[WebSocketRouter] = (),
        *,
        layer: Layer | None = None,
        http: ASGIApp | None = None,
        max_message_size: int = 1024 * 1024,
        rate_limit: RateLimit | None = None,
        outbox_limit: int = 256,
        overflow: OverflowPolicy = "drop_oldest",
        title: str = "rtframe application",
        version: str = "0.1.0",
        description: str | None = None,
        asyncapi_path: str | None = "/asyncapi.json",
        docs_path: str | None = "/asyncapi",
    ) -> None:
        if overflow not in ("drop_oldest", "close"):
            raise ConfigurationError(f"overflow must be 'drop_oldest' or 'close', not {overflow!r}")
        if outbox_limit < 1 or max_message_size < 1:
            raise ConfigurationError("outbox_limit and max_message_size must be positive")
        self.layer: Layer = layer if layer is not None else InMemoryLayer()
        self.fallback = http
        self.max_message_size = max_message_size
        self.rate_limit = rate_limit
        self.outbox_limit = outbox_limit
        self.overflow: OverflowPolicy = overflow
        self.title, self.version, self.description = title, version, description
        #: Replace a dependency by another in tests: `app.dependency_overrides[get_user] = fake`.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.http_routes: dict[str, Endpoint] = {}
        self.routes: list[CompiledRoute] = []
        self._static: dict[str, CompiledRoute] = {}
        self._dynamic: list[CompiledRoute] = []
        self._on_startup: list[Callable[[], Awaitable[None]]] = []
        self._on_shutdown: list[Callable[[], Awaitable[None]]] = []
        #: Checks run on every handshake before any route's connect handler.
        self.handshake_checks: list[Callable[[Connection], Awaitable[None]]] = []
        self._started = False
        self._starting: asyncio.Future[None] | None = None
        for router in routers:
            self.include_router(router)
        set_default_layer(self.layer)
        if asyncapi_path is not None or docs_path is not None:
            self.serve_asyncapi(asyncapi_path, docs_path)

    # -- configuration ------------------------------------------------------------------

    def include_router(self, router: WebSocketRouter) -> None:
        for spec in router.routes:
            template = spec.path.template
            if any(r.path.template == template for r in self.routes):
                raise ConfigurationError(f"route {template!r} is registered twice")
            route = CompiledRoute(spec, self)
            self.routes.append(route)
            if spec.path.is_static:
                self._static[template] = route
            else:
                self._dynamic.append(route)

    def add_http_route(self, path: str, endpoint: Endpoint) -> None:
        """Serve GET (and HEAD) requests for exactly `path` with `endpoint(request)`."""
        self.http_routes[path] = endpoint

    def get(self, path: str) -> Callable[[E], E]:
        """Decorator form of `add_http_route`."""

        def decorator(endpoint: E) -> E:
            self.add_http_route(path, endpoint)
            return endpoint

        return decorator

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

    def mount_beside(self, app: ASGIApp) -> RealtimeApp:
        """Serve WebSockets (and this app's own HTTP routes) here, all other HTTP by `app`."""
        self.fallback = app
        return self

    # -- lifecycle ----------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the layer and run startup hooks; done by lifespan or the first connection."""
        if self._started:
            return
        await self.layer.start()
        set_default_layer(self.layer)
        for hook in self._on_startup:
            await hook()
        self._started = True

    async def shutdown(self) -> None:
        for hook in reversed(self._on_shutdown):
            await hook()
        await self.layer.stop()
        self._started = False
        self._starting = None

    async def _ensure_started(self) -> None:
        if self._started:
            return
        if self._starting is None or (self._starting.done() and self._starting.exception()):
            self._starting = asyncio.ensure_future(self.startup())
        await asyncio.shield(self._starting)

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.http_routes.get(scope["path"])
        if endpoint is None:
            await (self.fallback or not_found)(scope, receive, send)
        elif scope["method"] not in ("GET", "HEAD"):
            await method_not_allowed(scope, receive, send)
        else:
            response = await endpoint(Request(scope))
            await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    logger.exception("shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    def match(self, path: str) -> tuple[CompiledRoute, dict[str, Any]] | None:
        route = self._static.get(path)
        if route is not None:
            return route, {}
        for route in self._dynamic:
            params = route.path.match(path)
            if params is not None:
                return route, params
        return None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        found = self.match(scope["path"])
        if found is None:
            logger.info("no WebSocket route for %r; refusing the handshake", scope["path"])
            await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": ""})
            return
        route, params = found
        await self._ensure_started()
        conn = Connection(
            scope,
            receive,
            send,
            layer=self.layer,
            path_params=params,
            outbox_limit=self.outbox_limit,
            overflow=self.overflow,
        )
        accepted = False
        try:
            if not await self._connect(route, conn):
                return
            accepted = True
            self.layer.attach(conn)
            await self._serve(route, conn)
        finally:
            await self._teardown(route, conn, accepted)

    async def _connect(self, route: CompiledRoute, conn: Connection) -> bool:
        try:
            for check in self.handshake_checks:
                await check(conn)
            for p in route.query_params:
                query_value(p, conn)
            plan = route.connect
            if plan is not None:
                await self._call(route, plan, conn, None)
            if conn.state_ is ConnectionState.CONNECTING:
                await conn.accept()
        except Reject as exc:
            logger.info("refused %s: %s (code %d)", conn.path, exc.reason or "rejected", exc.code)
            await conn.close(exc.code, exc.reason)
            return False
        except Exception:
            logger.exception("connect handler of %r failed", route.path.template)
            await conn.close(CLOSE_INTERNAL_ERROR, "internal error")
            return False
        return conn.state_ is ConnectionState.OPEN

    async def _call(
        self, route: CompiledRoute, plan: CallPlan, conn: Connection, message: Any
    ) -> Any:
        scope = MessageScope() if plan.has_message_deps else None
        try:
            if plan.params:
                return await plan.fn(**await route.resolver.arguments(plan, conn, message, scope))
            return await plan.fn()
        finally:
            if scope is not None:
                await scope.aclose()

    async def _serve(self, route: CompiledRoute, conn: Connection) -> None:
        receive = conn.receive
        limit = route.max_message_size
        bucket = TokenBucket(route.rate_limit) if route.rate_limit is not None else None
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if bucket is not None and not bucket.take():
                    if await self._over_rate(route, conn):
                        return
                    continue
                text = message.get("text")
                if text is not None:
                    # a str has at most 4 UTF-8 bytes per character: encode only near the limit
                    if len(text) * 4 > limit and len(text.encode()) > limit:
                        await self._too_big(conn, limit)
                        return
                    await self._on_text(route, conn, text)
                else:
                    data = message.get("bytes") or b""
                    if len(data) > limit:
                        await self._too_big(conn, limit)
                        return
                    await self._on_bytes(route, conn, data)
                if conn.state_ is not _OPEN:
                    return
            elif kind == "websocket.disconnect":
                conn.mark_disconnected(message.get("code", 1005))
                return

    async def _over_rate(self, route: CompiledRoute, conn: Connection) -> bool:
        """Refuse one frame over the rate limit; True when the connection was closed."""
        assert route.rate_limit is not None
        if route.rate_limit.action == "close":
            logger.info("closing %r: over its rate limit", conn)
            await conn.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
            return True
        conn.deliver(_RATE_LIMITED)
        return False

    async def _too_big(self, conn: Connection, limit: int) -> None:
        logger.info("closing %r: frame larger than %d bytes", conn, limit)
        await conn.close(CLOSE_MESSAGE_TOO_BIG, f"message larger than {limit} bytes")

    async def _on_text(self, route: CompiledRoute, conn: Connection, text: str) -> None:
        adapter = route.adapter
        if adapter is None:
            conn.deliver(error_frame("unsupported_frame", "This endpoint accepts no text messages"))
            return
        try:
            message = adapter.validate_json(text)
        except ValidationError as exc:
            conn.deliver(describe_validation_error(exc))
            return
        handler = route.single or route.handlers[type(message)]
        await self._run(route, handler, conn, message)

    async def _on_bytes(self, route: CompiledRoute, conn: Connection, data: bytes) -> None:
        if route.binary is None:
            conn.deliver(
                error_frame("unsupported_frame", "This endpoint accepts JSON text frames only")
            )
            return
        await self._run(route, route.binary, conn, data)

    async def _run(
        self, route: CompiledRoute, handler: Handler, conn: Connection, message: Any
    ) -> None:
        plan = handler.plan
        try:
            if handler.message_only is not None:
                result = await plan.fn(**{handler.message_only: message})
            elif plan.direct:  # no dependencies: skip the resolver's coroutines
                result = await plan.fn(**route.resolver.direct_arguments(plan, conn, message))
            else:
                result = await self._call(route, plan, conn, message)
            if result is None or handler.encode is None:
                return
            data = handler.encode(result)
            if handler.group is not None:
                await self.layer.publish(handler.group.name_for(conn), data)
            elif conn.state_ is _OPEN:
                conn.deliver(data)
        except MessageError as exc:
            conn.deliver(error_frame(exc.code, exc.detail, exc.errors))
        except Reject as exc:
            await conn.close(exc.code, exc.reason)
        except LayerUnavailableError as exc:
            # not a bug in the handler: the backend (Redis) is down, local members got it
            logger.warning("handler %s on %r: %s", handler.plan.name, conn, exc)
            conn.deliver(_LAYER_UNAVAILABLE)
        except Exception:
            logger.exception("handler %s failed on %r", handler.plan.name, conn)
            conn.deliver(_INTERNAL_ERROR)

    async def _teardown(self, route: CompiledRoute, conn: Connection, accepted: bool) -> None:
        await conn.wait_flushed()
        conn.mark_disconnected(conn.close_code)
        if accepted:
            for plan in route.disconnect:
                try:
                    await self._call(route, plan, conn, None)
                except Exception:
                    logger.exception("disconnect handler %s failed", plan.name)
        for group in tuple(conn.groups):
            try:
                await self.layer.group_discard(group, conn)
            except Exception:
                logger.exception("could not remove %r from group %r", conn, group)
        self.layer.detach(conn)
        if conn.exit_stack is not None:
            try:
                await conn.exit_stack.aclose()
            except Exception:
                logger.exception("teardown of a dependency of %r failed", conn)


__all__ = ["CompiledRoute", "Handler", "RealtimeApp"]
