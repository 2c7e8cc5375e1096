"""Path templates and the WebSocket router that records handlers.

Registration is explicit (`add_connect_handler`, `add_receive_handler`,
`add_disconnect_handler`); the decorators only forward to those calls. Each handler's
signature is analysed as it is registered, so a mistake fails at import time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ._compile import CallPlan, analyse
from .description import PathParam
from .exceptions import ConfigurationError
from .limits import RateLimit
from .timing import Heartbeat, Timeouts

__all__ = ["PathTemplate", "RouteSpec", "WebSocketRouter"]

F = TypeVar("F", bound=Callable[..., Any])

_CONVERTERS: dict[str, tuple[str, type, Callable[[str], Any]]] = {
    "str": ("[^/]+", str, str),
    "int": ("[0-9]+", int, int),
    "float": (r"[0-9]+(?:\.[0-9]+)?", float, float),
    "uuid": (
        "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
        uuid.UUID,
        uuid.UUID,
    ),
    "path": (".*", str, str),
}
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")


class PathTemplate:
    """A path such as `/ws/chat/{room}` or `/ws/items/{id:int}`, compiled to a regex."""

    __slots__ = ("converter_names", "converters", "param_types", "regex", "template")

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ConfigurationError(f"route path {template!r} must start with '/'")
        self.template = template
        self.param_types: dict[str, type] = {}
        self.converters: dict[str, Callable[[str], Any]] = {}
        self.converter_names: dict[str, str] = {}
        pattern, last = "^", 0
        for match in _PARAM.finditer(template):
            name, conv = match.group(1), match.group(2) or "str"
            if conv not in _CONVERTERS:
                raise ConfigurationError(
                    f"unknown converter {conv!r} in {template!r}; use one of {sorted(_CONVERTERS)}"
                )
            if name in self.param_types:
                raise ConfigurationError(f"path parameter {name!r} appears twice in {template!r}")
            regex, typ, convert = _CONVERTERS[conv]
            pattern += re.escape(template[last : match.start()]) + f"(?P<{name}>{regex})"
            self.param_types[name] = typ
            self.converters[name] = convert
            self.converter_names[name] = conv
            last = match.end()
        pattern += re.escape(template[last:]) + "$"
        self.regex = re.compile(pattern)

    @property
    def is_static(self) -> bool:
        return not self.param_types

    def match(self, path: str) -> dict[str, Any] | None:
        found = self.regex.match(path)
        if found is None:
            return None
        try:
            return {name: self.converters[name](value) for name, value in found.groupdict().items()}
        except ValueError:
            return None

    def describe(self) -> tuple[PathParam, ...]:
        """The path's parameters, in order, with the regex each is matched with."""
        return tuple(
            PathParam(name, conv, self.param_types[name], _CONVERTERS[conv][0])
            for name, conv in self.converter_names.items()
        )

    @property
    def address(self) -> str:
        """The template without converters: `/items/{id:int}` -> `/items/{id}`."""
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.template)

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"


def check_group_fields(group: Any, path: PathTemplate, handler: str) -> None:
    """Refuse a broadcast group whose template names a field the path does not have."""
    unknown = [f for f in group.fields if f not in path.param_types]
    if unknown:
        raise ConfigurationError(
            f"{handler} broadcasts to {group!r}, whose template names {unknown[0]!r}, but "
            f"route {path.template!r} has no such path parameter "
            f"(it has: {', '.join(path.param_types) or 'none'})"
        )


@dataclass(eq=False)
class RouteSpec:
    """The handlers registered for one WebSocket path."""

    path: PathTemplate
    connect: CallPlan | None = None
    receive: list[CallPlan] = field(default_factory=list)
    disconnect: list[CallPlan] = field(default_factory=list)
    max_message_size: int | None = None
    rate_limit: RateLimit | None = None
    heartbeat: Heartbeat | Literal[False] | None = None  # None: the app's
    timeouts: Timeouts | None = None  # None: the app's
    summary: str | None = None


class WebSocketRouter:
    """Collects WebSocket handlers by path. Combine routers with `include_router`."""

    def __init__(self, prefix: str = "") -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ConfigurationError(
                f"router prefix {prefix!r} must start with '/' and not end with '/'"
            )
        self.prefix = prefix
        self._routes: dict[str, RouteSpec] = {}
        # raw registrations, replayed with another prefix by include_router
        self._registrations: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = []

    @property
    def routes(self) -> list[RouteSpec]:
        return list(self._routes.values())

    def _spec(self, path: str) -> RouteSpec:
        full = self.prefix + path
        spec = self._routes.get(full)
        if spec is None:
            spec = self._routes[full] = RouteSpec(PathTemplate(full))
        return spec

    # -- explicit registration ----------------------------------------------------------

    def add_connect_handler(
        self,
        path: str,
        fn: Callable[..., Any],
        *,
        max_message_size: int | None = None,
        rate_limit: RateLimit | None = None,
        heartbeat: Heartbeat | Literal[False] | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        """Register the function that runs when a client opens `path`.

        It may accept (`await conn.accept()`), refuse (`await conn.close(code)` or
        `raise Reject(code)`), or return without either, which accepts. The options
        override the app's for this path (`heartbeat=False` switches heartbeats off).
        """
        spec = self._spec(path)
        if spec.connect is not None:
            raise ConfigurationError(
                f"{spec.path.template!r} already has a connect handler ({spec.connect.name})"
            )
        spec.connect = analyse(fn, role="connect", path_types=spec.path.param_types)
        spec.max_message_size = max_message_size
        spec.rate_limit = rate_limit
        spec.heartbeat = heartbeat
        spec.timeouts = timeouts
        options = {
            "max_message_size": max_message_size,
            "rate_limit": rate_limit,
            "heartbeat": heartbeat,
            "timeouts": timeouts,
        }
        self._registrations.append(("connect", path, fn, options))

    def add_receive_handler(self, path: str, fn: Callable[..., Any]) -> None:
        """Register a function for incoming frames on `path`; its message annotation picks them."""
        spec = self._spec(path)
        plan = analyse(fn, role="receive", path_types=spec.path.param_types)
        # `@group.broadcast` may sit above or below this decorator: the app reads it when it
        # compiles the route; checked here too when it is already known, to fail early
        group = getattr(fn, "__rtframe_broadcast__", None)
        if group is not None:
            check_group_fields(group, spec.path, plan.name)
        spec.receive.append(plan)
        self._registrations.append(("receive", path, fn, {}))

    def add_disconnect_handler(self, path: str, fn: Callable[..., Any]) -> None:
        """Register a function that runs when the connection ends, however it ends."""
        spec = self._spec(path)
        spec.disconnect.append(analyse(fn, role="disconnect", path_types=spec.path.param_types))
        self._registrations.append(("disconnect", path, fn, {}))

    def include_router(self, router: WebSocketRouter, prefix: str = "") -> None:
        """Copy another router's handlers into this one, under `prefix`."""
        for kind, path, fn, options in router._registrations:
            full = prefix + router.prefix + path
            if kind == "connect":
                self.add_connect_handler(full, fn, **options)
            elif kind == "receive":
                self.add_receive_handler(full, fn)
            else:
                self.add_disconnect_handler(full, fn)

    # -- decorators ---------------------------------------------------------------------

    def route(
        self,
        path: str,
        *,
        max_message_size: int | None = None,
        rate_limit: RateLimit | None = None,
        heartbeat: Heartbeat | Literal[False] | None = None,
        timeouts: Timeouts | None = None,
    ) -> Callable[[F], F]:
        """Decorate the connect handler of `path`; options override the app's for this path."""

        def decorator(fn: F) -> F:
            self.add_connect_handler(
                path,
                fn,
                max_message_size=max_message_size,
                rate_limit=rate_limit,
                heartbeat=heartbeat,
                timeouts=timeouts,
            )
            return fn

        return decorator

    def on_receive(self, path: str) -> Callable[[F], F]:
        """Decorate a handler for incoming frames on `path`."""

        def decorator(fn: F) -> F:
            self.add_receive_handler(path, fn)
            return fn

        return decorator

    def on_disconnect(self, path: str) -> Callable[[F], F]:
        """Decorate a function that runs when a connection on `path` ends."""

        def decorator(fn: F) -> F:
            self.add_disconnect_handler(path, fn)
            return fn

        return decorator
