"""HTTP routes: the router that records handlers, and what each handler's signature means.

    http = HTTPRouter()

    @http.get("/items/{item_id:int}")
    async def item(item_id: int, verbose: bool = False) -> Item: ...

    @http.post("/items", status=201)
    async def create(body: NewItem, user: LoginRequired) -> Item: ...

A handler is a plain `async def`. Its signature is read once, when it is registered, with
the same rules as a WebSocket handler's: a `Request` (or `Connection`) parameter gets the
request, a path parameter gets the converted value (the same converters), a scalar
parameter is a query parameter validated by Pydantic, a pydantic model (or `bytes`)
parameter is the request body, and `Depends(...)` runs a dependency (one written for
WebSocket handlers works here too: the request is its connection). A mistake fails at
import time, naming the function and the parameter.

What it returns: a `Response` (`StreamingResponse` too) as it is; anything else is JSON,
serialized according to the return annotation (a model, a dict, a list); None from a
handler annotated `-> None` is "204 No Content".
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import TypeAdapter

from ._compile import _MISSING, CallPlan, Kind, analyse, dependency_plan, describe
from .description import HTTPRouteDescription, QueryParam
from .exceptions import ConfigurationError
from .http import Request, Response, StreamingResponse
from .messages import build_encoder
from .routing import PathTemplate

__all__ = ["METHODS", "HTTPRouteDescription", "HTTPRouteSpec", "HTTPRouter"]

F = TypeVar("F", bound=Callable[..., Any])

#: The methods a route may name; HEAD is served by every GET route.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Methods whose requests carry no body a handler could declare.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(eq=False, slots=True)
class HTTPRouteSpec:
    """One registered handler: its path, methods, call plan and answer."""

    path: PathTemplate
    methods: frozenset[str]
    fn: Callable[..., Any]
    plan: CallPlan | None  #: None for an `add_http_route` endpoint, called as fn(request)
    body: Any = None
    returns: Any = None  #: the type a JSON answer is serialized as (None: Any)
    encode: Callable[[Any], str | bytes] | None = None  #: None: `to_json` of the value
    body_adapter: TypeAdapter[Any] | None = None  #: validates a JSON body
    no_content: bool = False  #: annotated `-> None`: answered with 204
    status: int = 200
    streaming: bool = False
    media_type: str | None = None
    summary: str | None = None
    max_body_size: int | None = None  #: None: the app's

    @property
    def name(self) -> str:
        return describe(self.fn)

    def describe(self) -> HTTPRouteDescription:
        plan = self.plan
        methods = set(self.methods) | ({"HEAD"} if "GET" in self.methods else set())
        queries = plan.query_params if plan is not None else ()
        return HTTPRouteDescription(
            path=self.path.template,
            address=self.path.address,
            methods=tuple(sorted(methods)),
            name=self.name,
            fn=self.fn,
            path_params=self.path.describe(),
            query_params=tuple(
                QueryParam(
                    p.name,
                    p.annotation,
                    p.default is _MISSING,
                    None if p.default is _MISSING else p.default,
                )
                for p in {p.name: p for p in queries}.values()
            ),
            body=self.body,
            returns=self.returns,
            status=self.status,
            streaming=self.streaming,
            media_type=self.media_type,
            summary=self.summary,
            dependencies=tuple(dict.fromkeys(d.dependency for d in plan.dependencies))
            if plan is not None
            else (),
        )


def _is_response(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Response | StreamingResponse)


def _answer_type(annotation: Any) -> Any:
    """The part of a return annotation that is JSON: Response types removed from a union."""
    if get_origin(annotation) in (Union, UnionType):
        rest = [a for a in get_args(annotation) if not _is_response(a)]
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    return None if _is_response(annotation) else annotation


def _streams(annotation: Any) -> bool:
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return any(
        isinstance(a, type) and issubclass(a, StreamingResponse) for a in (annotation, *options)
    )


def compile_handler(
    fn: Callable[..., Any],
    path: PathTemplate,
    methods: frozenset[str],
    *,
    status: int | None = None,
    media_type: str | None = None,
    summary: str | None = None,
    max_body_size: int | None = None,
) -> HTTPRouteSpec:
    """Read `fn`'s signature into a route, or raise ConfigurationError naming the problem."""
    name = describe(fn)
    if inspect.isasyncgenfunction(fn) or not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"HTTP handler {name} must be declared with `async def` (return a "
            "StreamingResponse to stream a body)"
        )
    plan = analyse(fn, role="dependency", path_types=path.param_types)
    for p in plan.params:
        # a handler parameter annotated with another Connection subclass (an SSE Stream)
        # would receive the Request instead: refuse it rather than lie about its type
        if p.kind is Kind.CONNECTION and not issubclass(Request, p.annotation):
            raise ConfigurationError(
                f"parameter {p.name!r} of {name} is annotated {p.annotation.__name__}, but an "
                f"HTTP handler receives a Request (annotate it `Request` or `Connection`)"
            )
    body = _body_type(plan, path, name)
    if body is not None and methods & _BODYLESS:
        raise ConfigurationError(
            f"{name} takes a request body ({getattr(body, '__name__', body)}), but "
            f"{'/'.join(sorted(methods & _BODYLESS))} requests carry none; serve those "
            "with another handler"
        )
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # analyse() resolved them already; kept for a clear message
        raise ConfigurationError(f"cannot resolve the annotations of {name}: {exc}") from exc
    annotation = hints.get("return", Any)
    no_content = annotation is type(None)
    returns = None if no_content else _answer_type(annotation)
    encode: Callable[[Any], str | bytes] | None = None
    if returns is not None and returns is not Any:
        try:
            encode = build_encoder(returns)
        except Exception as exc:
            raise ConfigurationError(
                f"{name} returns {returns!r}, which cannot be serialized as JSON: {exc}. "
                "Return a Response, a pydantic model, or plain data (dict, list, str, ...)"
            ) from exc
    if status is None:
        status = 204 if no_content else 200
    elif not 200 <= status <= 599:
        raise ConfigurationError(f"{name}: status {status} is not a final HTTP status")
    elif status == 204 and not no_content:
        raise ConfigurationError(
            f"{name}: a 204 answer has no body, but {name} returns {annotation!r}; "
            "annotate it `-> None`"
        )
    streaming = _streams(annotation)
    return HTTPRouteSpec(
        path=path,
        methods=methods,
        fn=fn,
        plan=plan,
        body=body,
        returns=returns,
        encode=encode,
        body_adapter=TypeAdapter(body) if body is not None and body is not bytes else None,
        no_content=no_content,
        status=status,
        streaming=streaming,
        media_type=media_type or (None if streaming or returns is None else "application/json"),
        summary=summary,
        max_body_size=max_body_size,
    )


def _body_type(plan: CallPlan, path: PathTemplate, name: str) -> Any:
    """The one body type the handler and its dependencies ask for, if any."""
    found: dict[Any, str] = {}
    if plan.message_type is not None:
        found[plan.message_type] = name
    for dep in plan.dependencies:
        sub = dependency_plan(dep.dependency, path.param_types)
        if sub.message_type is not None:
            found.setdefault(sub.message_type, sub.name)
    if len(found) > 1:
        shown = ", ".join(f"{getattr(t, '__name__', t)} ({who})" for t, who in found.items())
        raise ConfigurationError(f"{name}: a request has one body, but it is asked for as {shown}")
    if plan.needs_message and not found:  # pragma: no cover - needs_message implies a type
        raise ConfigurationError(f"{name} needs a body of an unknown type")
    return next(iter(found), None)


def check_methods(methods: Iterable[str], where: str) -> frozenset[str]:
    chosen = frozenset(m.upper() for m in methods)
    if not chosen:
        raise ConfigurationError(f"{where}: name at least one method")
    unknown = chosen - METHODS
    if unknown:
        extra = " (HEAD is served by every GET route)" if "HEAD" in unknown else ""
        raise ConfigurationError(
            f"{where}: unknown method {sorted(unknown)[0]!r}; use {sorted(METHODS)}{extra}"
        )
    return chosen


class HTTPRouter:
    """Collects HTTP handlers by path and method; include it in a `RealtimeApp`.

    Registration is explicit (`add_route`); the decorators only forward to it.
    """

    def __init__(self, prefix: str = "") -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ConfigurationError(
                f"router prefix {prefix!r} must start with '/' and not end with '/'"
            )
        self.prefix = prefix
        self._routes: list[HTTPRouteSpec] = []
        # raw registrations, replayed with another prefix by include_router
        self._registrations: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []

    @property
    def routes(self) -> list[HTTPRouteSpec]:
        return list(self._routes)

    def add_route(
        self,
        path: str,
        fn: Callable[..., Any],
        *,
        methods: Iterable[str] = ("GET",),
        status: int | None = None,
        media_type: str | None = None,
        summary: str | None = None,
        max_body_size: int | None = None,
    ) -> None:
        """Serve `methods` requests for `path` with `fn` (HEAD too, for GET).

        Args:
            status: the status of the handler's answer: 200 by default, 204 for a handler
                annotated `-> None` (a returned `Response` has its own).
            media_type: what the route answers, for its description (a streaming route).
            summary: a line for the route's description.
            max_body_size: the largest body read, in bytes (413 past it); the app's when
                omitted.

        Raises:
            ConfigurationError: the signature cannot be served, or a method is unknown.
        """
        full = PathTemplate(self.prefix + path)
        chosen = check_methods(methods, f"route {full.template!r}")
        for other in self._routes:
            both = other.methods & chosen
            if other.path.template == full.template and both:
                raise ConfigurationError(
                    f"{sorted(both)[0]} {full.template!r} is served twice: by {other.name} "
                    f"and {describe(fn)}"
                )
        self._routes.append(
            compile_handler(
                fn,
                full,
                chosen,
                status=status,
                media_type=media_type,
                summary=summary,
                max_body_size=max_body_size,
            )
        )
        options = {
            "methods": tuple(chosen),
            "status": status,
            "media_type": media_type,
            "summary": summary,
            "max_body_size": max_body_size,
        }
        self._registrations.append((path, fn, options))

    def include_router(self, router: HTTPRouter, prefix: str = "") -> None:
        """Copy another router's handlers into this one, under `prefix`."""
        for path, fn, options in router._registrations:
            self.add_route(prefix + router.prefix + path, fn, **options)

    # -- decorators ---------------------------------------------------------------------

    def route(
        self,
        path: str,
        *,
        methods: Iterable[str] = ("GET",),
        status: int | None = None,
        media_type: str | None = None,
        summary: str | None = None,
        max_body_size: int | None = None,
    ) -> Callable[[F], F]:
        """Decorate the handler of `methods` requests for `path` (see `add_route`)."""

        def decorator(fn: F) -> F:
            self.add_route(
                path,
                fn,
                methods=methods,
                status=status,
                media_type=media_type,
                summary=summary,
                max_body_size=max_body_size,
            )
            return fn

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of GET (and HEAD) requests for `path`."""
        return self.route(path, methods=("GET",), **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of POST requests for `path`."""
        return self.route(path, methods=("POST",), **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of PUT requests for `path`."""
        return self.route(path, methods=("PUT",), **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of PATCH requests for `path`."""
        return self.route(path, methods=("PATCH",), **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Decorate the handler of DELETE requests for `path`."""
        return self.route(path, methods=("DELETE",), **options)


def endpoint_spec(path: str, endpoint: Callable[..., Any]) -> HTTPRouteSpec:
    """The route of an `add_http_route` endpoint: GET, called as `endpoint(request)`."""
    return HTTPRouteSpec(PathTemplate(path), frozenset({"GET"}), endpoint, None)
