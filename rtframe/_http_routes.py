"""An app's HTTP routes: matched by path then method, and served one request at a time.

Per request: the path is matched (exact paths first, then templates), the method picked
(HEAD served by a GET handler; another method is 405 with `Allow`), then the query
parameters validated (all errors in one 422), the body read and validated (413 past the
size limit, 415 when it is not JSON, 422 when it does not match), dependencies resolved
with the WebSocket side's resolver (the request is their connection), the handler
called and its value turned into a response. A handler's failure is a JSON error in the
shape of the WebSocket error frame, never a traceback.

Dependency teardowns (the code after `yield`, a Django session's save) run before a
buffered response is sent, so what they write is visible to the client's next request;
for a streaming response they run when the stream ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import to_json

from ._compile import _MISSING, CallPlan, ConnectionScope, MessageScope, Resolver
from .exceptions import (
    ConfigurationError,
    LayerBusyError,
    LayerUnavailableError,
    MessageError,
    Reject,
)
from .http import (
    DEFAULT_MAX_BODY_SIZE,
    ClientDisconnectedError,
    HTTPError,
    Request,
    Response,
    StreamingResponse,
    error_response,
)
from .http_routing import (
    HTTPRouteDescription,
    HTTPRouter,
    HTTPRouteSpec,
    check_methods,
    compile_handler,
    endpoint_spec,
)
from .messages import SERVER_ERRORS
from .mounting import route_path
from .routing import PathTemplate

if TYPE_CHECKING:
    from .hub import Hub
    from .types import Receive, Scope, Send

__all__ = ["HTTPRoutes", "reject_status"]

logger = logging.getLogger("rtframe.http")

#: The scope key `rtframe.django`'s session dependency reads: the Origin was checked.
_ORIGIN_CHECKED = "rtframe.origin_checked"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON = "application/json"


def reject_status(code: int) -> int:
    """The HTTP status of `Reject(code)` raised for an HTTP request.

    A 4xxx close code whose last three digits are an HTTP error status is that status
    (4401 is 401, 4403 is 403, 4429 is 429); 1013 (try again later) is 503; any other
    refusal is 403, as a refused WebSocket handshake is.
    """
    if 4400 <= code <= 4599:
        return code - 4000
    return 503 if code == 1013 else 403


def _located(exc: ValidationError, where: list[str | int]) -> list[dict[str, Any]]:
    return [
        {"loc": [*where, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == _JSON or (media.startswith("application/") and media.endswith("+json"))


class _Served:
    """One route's handler, ready to serve requests."""

    __slots__ = ("max_body_size", "resolver", "spec")

    def __init__(
        self,
        spec: HTTPRouteSpec,
        overrides: Mapping[Callable[..., Any], Callable[..., Any]],
        max_body_size: int,
    ) -> None:
        self.spec = spec
        self.resolver = Resolver(overrides, spec.path.param_types)
        self.max_body_size = spec.max_body_size or max_body_size

    async def serve(self, routes: HTTPRoutes, request: Request, send: Send) -> None:
        scope = request.scope
        plan = self.spec.plan
        if plan is None:  # an add_http_route endpoint: called with the request alone
            try:
                answer: Response | StreamingResponse | None = await self.spec.fn(request)
            except Exception as exc:
                answer = self._failure(exc, request)
            if answer is not None:
                await answer(scope, request.receive_until_ended, send)
            return
        if plan.dependencies and request.method in _SAFE and "origin" not in request.headers:
            # A safe request without Origin (a navigation, a same-origin GET) is what
            # Django's CSRF middleware lets through: the session may be read. Any request
            # with an Origin, and every POST/PUT/PATCH/DELETE, is checked by it.
            scope[_ORIGIN_CHECKED] = True
        state = ConnectionScope(request)
        message_scope = MessageScope() if plan.has_message_deps else None
        torn_down = False
        try:
            answer = await self._answer(plan, request, state, message_scope)
            if isinstance(answer, StreamingResponse):  # teardowns once the stream ends
                routes.streams.add(request)
                await answer(scope, request.receive_until_ended, send)
                return
            torn_down = True  # before a buffered answer: its writes are seen at once
            failure = await self._teardown(state, message_scope)
            if failure is not None:
                answer = self._failure(failure, request)
            if answer is not None:
                await answer(scope, request.receive, send)
        except ClientDisconnectedError:
            logger.debug("%r: the client left before its body was read", request)
        finally:
            routes.streams.discard(request)
            if not torn_down:
                failure = await self._teardown(state, message_scope)
                if failure is not None:
                    logger.error(
                        "a dependency teardown of %s failed on %r",
                        self.spec.name,
                        request,
                        exc_info=failure,
                    )

    async def _answer(
        self,
        plan: CallPlan,
        request: Request,
        state: ConnectionScope,
        message_scope: MessageScope | None,
    ) -> Response | StreamingResponse | None:
        spec = self.spec
        try:
            errors = self._query(plan, request, state)
            if errors:
                return error_response(
                    422, "validation_error", "The query parameters are not valid", errors
                )
            body: Any = None
            if spec.body is not None:
                body = await self._body(request)
                if isinstance(body, Response):
                    return body
            kwargs = await self.resolver.arguments(plan, state, body, message_scope)
            result = await plan.call(**kwargs)
            if isinstance(result, Response | StreamingResponse):
                return result
            if result is None and spec.no_content:
                return Response(b"", spec.status)
            data = to_json(result) if spec.encode is None else spec.encode(result)
            return Response(data, spec.status, media_type=_JSON)
        except ClientDisconnectedError:
            raise
        except Exception as exc:
            return self._failure(exc, request)

    def _query(self, plan: CallPlan, request: Request, state: ConnectionScope) -> list[Any]:
        """Validate every query parameter now (the resolver then reads them cached)."""
        if not plan.query_params:
            return []
        cache = state.cache = {} if state.cache is None else state.cache
        query = request.query_params
        errors: dict[tuple[str, str], dict[str, Any]] = {}
        for p in plan.query_params:
            raw = query.get(p.name)
            if raw is None:
                if p.default is _MISSING:
                    errors[(p.name, "missing")] = {
                        "loc": ["query", p.name],
                        "msg": "Field required",
                        "type": "missing",
                    }
                else:
                    cache[p] = p.default
                continue
            assert p.adapter is not None
            try:
                cache[p] = p.adapter.validate_python(raw)
            except ValidationError as exc:
                for error in _located(exc, ["query", p.name]):
                    errors[(p.name, error["type"])] = error
        return list(errors.values())

    async def _body(self, request: Request) -> Any:
        """The validated body, or the error response saying why there is none."""
        spec = self.spec
        if spec.body_adapter is not None:
            content_type = request.headers.get("content-type")
            if content_type is not None and not _is_json(content_type):
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"The body must be JSON (Content-Type: {_JSON}), not {content_type}",
                )
        raw = await request.body()
        if spec.body_adapter is None:
            return raw
        try:
            return spec.body_adapter.validate_json(raw)
        except ValidationError as exc:
            errors = _located(exc, ["body"])
            if errors and errors[0]["type"] == "json_invalid":
                return error_response(422, "invalid_json", "The body is not valid JSON", errors)
            return error_response(
                422, "validation_error", "The body does not match its schema", errors
            )

    def _failure(self, exc: Exception, request: Request) -> Response | None:
        """The response for what a handler (or a dependency) raised."""
        if isinstance(exc, HTTPError):
            return exc.response()
        if isinstance(exc, Reject):
            logger.info("refused %r: %s (code %d)", request, exc.reason, exc.code)
            return error_response(
                reject_status(exc.code), "rejected", exc.reason or "The request was refused"
            )
        if isinstance(exc, MessageError):
            return error_response(400, exc.code, exc.detail, exc.errors)
        if isinstance(exc, LayerUnavailableError | LayerBusyError):
            logger.warning("%s on %r: %s", self.spec.name, request, exc)
            kind = "layer_busy" if isinstance(exc, LayerBusyError) else "layer_unavailable"
            return Response(SERVER_ERRORS[kind], 503, media_type=_JSON)
        if isinstance(exc, ClientDisconnectedError):
            return None
        logger.error("%s failed on %r", self.spec.name, request, exc_info=exc)
        return error_response(500, "internal_error", "The server failed to handle the request")

    async def _teardown(
        self, state: ConnectionScope, message_scope: MessageScope | None
    ) -> Exception | None:
        """Run the dependencies' teardowns, newest first; the first failure is returned."""
        failure: Exception | None = None
        for scope in (message_scope, state):
            if scope is None:
                continue
            try:
                await scope.aclose()
            except Exception as exc:
                failure = failure or exc
        return failure


class _Path:
    """The handlers of one path template, by method."""

    __slots__ = ("allow", "handlers", "path")

    def __init__(self, path: PathTemplate) -> None:
        self.path = path
        self.handlers: dict[str, _Served] = {}
        self.allow = ""

    def add(self, served: _Served) -> None:
        for method in served.spec.methods:
            other = self.handlers.get(method)
            if other is not None:
                raise ConfigurationError(
                    f"{method} {self.path.template!r} is served twice: by {other.spec.name} "
                    f"and {served.spec.name}"
                )
        for method in served.spec.methods:
            self.handlers[method] = served
        methods = set(self.handlers) | ({"HEAD"} if "GET" in self.handlers else set())
        self.allow = ", ".join(sorted(methods))

    def pick(self, method: str) -> _Served | None:
        served = self.handlers.get(method)
        if served is None and method == "HEAD":
            return self.handlers.get("GET")
        return served


class HTTPRoutes:
    """The HTTP routes an app serves; `dispatch` serves a request or says it is not ours.

    Args:
        hub: the app's messaging, reachable from a request (`request.hub`), as the Django
            integration needs it.
        overrides: the app's `dependency_overrides` (read at each request).
        max_body_size: the largest request body read, in bytes, unless a route says.
        before: awaited before a request a route serves (the app starts on first use).
    """

    def __init__(
        self,
        *,
        hub: Hub | None = None,
        overrides: Mapping[Callable[..., Any], Callable[..., Any]] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.hub = hub
        self.overrides: Mapping[Callable[..., Any], Callable[..., Any]] = (
            overrides if overrides is not None else {}
        )
        self.max_body_size = max_body_size
        self.before = before
        self.specs: list[HTTPRouteSpec] = []
        #: The requests whose streaming response is running (`end_streams` ends them).
        self.streams: set[Request] = set()
        self._static: dict[str, _Path] = {}
        self._dynamic: list[_Path] = []
        self._paths: dict[str, _Path] = {}

    def __iter__(self) -> Iterator[str]:
        """The path templates served, in registration order."""
        return iter(tuple(self._paths))

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, template: object) -> bool:
        return template in self._paths

    # -- registration ---------------------------------------------------------------------

    def include(self, router: HTTPRouter) -> None:
        """Serve every route of `router`."""
        for spec in router.routes:
            self._add(spec)

    def add(
        self,
        path: str,
        fn: Callable[..., Any],
        *,
        methods: Iterable[str] = ("GET",),
        **options: Any,
    ) -> None:
        """Serve `methods` requests for `path` with `fn` (see `HTTPRouter.add_route`)."""
        template = PathTemplate(path)
        chosen = check_methods(methods, f"route {path!r}")
        self._add(compile_handler(fn, template, chosen, **options))

    def add_endpoint(self, path: str, endpoint: Callable[..., Any]) -> None:
        """Serve GET (and HEAD) requests for `path` with `await endpoint(request)`."""
        self._add(endpoint_spec(path, endpoint))

    def _add(self, spec: HTTPRouteSpec) -> None:
        template = spec.path.template
        entry = self._paths.get(template)
        if entry is None:
            entry = _Path(spec.path)
        entry.add(_Served(spec, self.overrides, self.max_body_size))
        if template not in self._paths:
            self._paths[template] = entry
            if spec.path.is_static:
                self._static[template] = entry
            else:
                self._dynamic.append(entry)
        self.specs.append(spec)

    def describe(self) -> tuple[HTTPRouteDescription, ...]:
        """Every route, sorted by path then methods."""
        return tuple(sorted((s.describe() for s in self.specs), key=lambda d: (d.path, d.methods)))

    # -- serving --------------------------------------------------------------------------

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve an HTTP request if a route's path matches it; False when none does."""
        if not self._paths:
            return False
        path = route_path(scope)
        method = scope["method"]
        allowed: list[_Path] = []
        params: dict[str, Any] = {}
        served: _Served | None = None
        entry = self._static.get(path)
        if entry is not None:
            served = entry.pick(method)
            allowed.append(entry)
        if served is None:
            for entry in self._dynamic:
                found = entry.path.match(path)
                if found is None:
                    continue
                allowed.append(entry)
                served = entry.pick(method)
                if served is not None:
                    params = found
                    break
        if served is None:
            if not allowed:
                return False
            allow = ", ".join(sorted({m for e in allowed for m in e.allow.split(", ")}))
            response = error_response(
                405,
                "method_not_allowed",
                f"{method} is not allowed here; allowed: {allow}",
                headers={"allow": allow},
            )
            await response(scope, receive, send)
            return True
        if self.before is not None:
            await self.before()
        if self.hub is not None:
            self.hub.enter()  # `group.broadcast(...)` in the handler targets this app
        request = Request(
            scope,
            receive,
            send,
            hub=self.hub,
            path_params=params,
            max_body_size=served.max_body_size,
        )
        await served.serve(self, request, send)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve HTTP requests alone (tests, another router): 404 when no route matches."""
        if scope["type"] != "http":
            raise RuntimeError(f"HTTPRoutes serves http scopes, not {scope['type']!r}")
        if not await self.dispatch(scope, receive, send):
            await error_response(404, "not_found", "No route serves this path")(
                scope, receive, send
            )

    async def end_streams(self, reason: str = "server shutting down") -> int:
        """End every running streaming response (a drain); returns how many there were."""
        streams = tuple(self.streams)
        for request in streams:
            await request.close(1001, reason)
        return len(streams)
