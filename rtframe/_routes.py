"""Compiled routes: each WebSocket path with its validation adapter and dispatch table,
matching a request path to one, and the public description of them all.

A route is compiled once, when the app includes its router. That is where everything a
message needs is decided: the `TypeAdapter` of the route's messages (a discriminated
union when it has several receive handlers), each handler's encoder, where its result
goes (`@group.broadcast`, read here so the decorator may sit above or below
`@ws.on_receive`), and the limits that apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._compile import _MISSING, CallPlan, Param, Resolver
from .description import HandlerDescription, HandlerRole, QueryParam, RouteDescription
from .exceptions import ConfigurationError
from .groups import Group
from .limits import RateLimit
from .messages import build_encoder, message_adapter
from .routing import RouteSpec, check_group_fields
from .timing import CONTROL_TYPES, Heartbeat, Timeouts

__all__ = ["CompiledRoute", "Handler", "RouteTable"]


def _broadcast_of(plan: CallPlan) -> Group | None:
    group = getattr(plan.fn, "__rtframe_broadcast__", None)
    return group if isinstance(group, Group) else None


class Handler:
    """A receive handler ready to run: its plan, its encoder and where its result goes."""

    __slots__ = ("broadcasts", "encode", "group", "handled", "message_only", "plan", "replies")

    def __init__(self, plan: CallPlan, group: Group | None) -> None:
        self.plan = plan
        #: messages this handler was called with, and results sent back or broadcast
        #: (plain counters for rtframe.metrics, by message type)
        self.handled = self.replies = self.broadcasts = 0
        self.encode = build_encoder(plan.returns) if plan.returns is not None else None
        self.group = group
        #: The name of the message parameter when it is the handler's only one: the
        #: commonest handler is then called without building arguments at all.
        self.message_only: str | None = (
            plan.message_param if plan.direct and len(plan.params) == 1 else None
        )


class CompiledRoute:
    """One WebSocket path with its validation adapter and dispatch table."""

    def __init__(
        self,
        spec: RouteSpec,
        *,
        overrides: Mapping[Callable[..., Any], Callable[..., Any]],
        max_message_size: int,
        rate_limit: RateLimit | None,
        heartbeat: Heartbeat | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        where = f"route {spec.path.template!r}"
        self.spec = spec
        self.path = spec.path
        self.resolver = Resolver(overrides, spec.path.param_types)
        self.connect = spec.connect
        self.disconnect = tuple(spec.disconnect)
        self.max_message_size = spec.max_message_size or max_message_size
        self.rate_limit = spec.rate_limit or rate_limit
        self.heartbeat: Heartbeat | None = (
            heartbeat if spec.heartbeat is None else spec.heartbeat or None
        )
        self.timeouts = spec.timeouts or timeouts or Timeouts()
        #: Frames received on this route's connections (heartbeats and frames over the
        #: rate limit left out); read by `rtframe.metrics`.
        self.received = 0
        for plan in (*((spec.connect,) if spec.connect else ()), *spec.disconnect):
            if _broadcast_of(plan) is not None:
                raise ConfigurationError(
                    f"{plan.name} is decorated with @group.broadcast but is a connect or "
                    "disconnect handler, whose return value goes nowhere; broadcast with "
                    "`await group.broadcast(message, ...)` instead"
                )
        groups = {id(p): _broadcast_of(p) for p in spec.receive}
        for plan in spec.receive:
            group = groups[id(plan)]
            if group is not None:
                check_group_fields(group, spec.path, plan.name)
                if plan.returns is None:
                    raise ConfigurationError(
                        f"{plan.name} broadcasts to {group!r} but returns None: annotate "
                        "what it returns, which is what the group receives"
                    )
        text = [p for p in spec.receive if p.message_type is not bytes]
        binary = [p for p in spec.receive if p.message_type is bytes]
        if len(binary) > 1:
            raise ConfigurationError(
                f"{where} has {len(binary)} binary (bytes) receive handlers; keep one"
            )
        seen: dict[Any, str] = {}
        for plan in text:
            _check_not_control(plan, where)
            if plan.message_type in seen:
                raise ConfigurationError(
                    f"{where}: {plan.name} and {seen[plan.message_type]} both receive "
                    f"{plan.message_type.__name__}"
                )
            seen[plan.message_type] = plan.name
        self.adapter = message_adapter([p.message_type for p in text], where) if text else None
        self.handlers = {p.message_type: Handler(p, groups[id(p)]) for p in text}
        self.single = next(iter(self.handlers.values())) if len(self.handlers) == 1 else None
        self.binary = Handler(binary[0], groups[id(binary[0])]) if binary else None
        queries: dict[str, Param] = {}
        plans: list[CallPlan | None] = [spec.connect, *spec.receive, *spec.disconnect]
        for maybe in plans:
            for p in maybe.query_params if maybe is not None else ():
                queries.setdefault(p.name, p)
        self.query_params = tuple(queries.values())

    def handler_names(self) -> str:
        """The receive handlers' names, for logs ("a or b")."""
        names = {h.plan.name for h in self.handlers.values()}
        if self.binary is not None:
            names.add(self.binary.plan.name)
        return " or ".join(sorted(names))

    @property
    def replies(self) -> int:
        """Handler results sent back to the sender on this route (not broadcasts)."""
        return sum(h.replies for h in self.every_handler())

    def every_handler(self) -> tuple[Handler, ...]:
        """The receive handlers, text ones then the binary one."""
        binary = (self.binary,) if self.binary is not None else ()
        return (*self.handlers.values(), *binary)

    def describe(self) -> RouteDescription:
        spec = self.spec
        return RouteDescription(
            path=self.path.template,
            address=self.path.address,
            path_params=self.path.describe(),
            connect=_describe(spec.connect, "connect") if spec.connect else None,
            receive=tuple(_describe(p, "receive") for p in spec.receive),
            disconnect=tuple(_describe(p, "disconnect") for p in spec.disconnect),
            query_params=tuple(_query(p) for p in self.query_params),
            summary=spec.summary,
            max_message_size=self.max_message_size,
            rate_limit=self.rate_limit,
            heartbeat=self.heartbeat,
            timeouts=self.timeouts,
        )


def _check_not_control(plan: CallPlan, where: str) -> None:
    """Refuse a message whose `type` is a heartbeat frame's: it would never be handled."""
    field = plan.message_type.model_fields.get("type")
    if field is not None and field.default in CONTROL_TYPES:
        raise ConfigurationError(
            f"{where}: {plan.name} receives messages of type {field.default!r}, which is "
            "reserved for rtframe's own frames (heartbeats, notices; see rtframe.timing); "
            "choose another type"
        )


def _query(p: Param) -> QueryParam:
    required = p.default is _MISSING
    return QueryParam(p.name, p.annotation, required, None if required else p.default)


def _describe(plan: CallPlan, role: HandlerRole) -> HandlerDescription:
    return HandlerDescription(
        role=role,
        fn=plan.fn,
        name=plan.name,
        message=plan.message_type,
        returns=plan.returns,
        broadcast=_broadcast_of(plan) if role == "receive" else None,
        dependencies=tuple(dict.fromkeys(d.dependency for d in plan.dependencies)),
        query_params=tuple(_query(p) for p in plan.query_params),
    )


class RouteTable:
    """The compiled routes of one app, matched by path: exact paths first, then templates."""

    def __init__(self) -> None:
        self.routes: list[CompiledRoute] = []
        self._static: dict[str, CompiledRoute] = {}
        self._dynamic: list[CompiledRoute] = []

    def add(self, route: CompiledRoute) -> None:
        template = route.path.template
        if any(r.path.template == template for r in self.routes):
            raise ConfigurationError(f"route {template!r} is registered twice")
        self.routes.append(route)
        if route.path.is_static:
            self._static[template] = route
        else:
            self._dynamic.append(route)

    def match(self, path: str) -> tuple[CompiledRoute, dict[str, Any]] | None:
        route = self._static.get(path)
        if route is not None:
            return route, {}
        for route in self._dynamic:
            params = route.path.match(path)
            if params is not None:
                return route, params
        return None

    def describe(self) -> tuple[RouteDescription, ...]:
        return tuple(sorted((r.describe() for r in self.routes), key=lambda d: d.path))

    def __iter__(self) -> Iterator[CompiledRoute]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)
