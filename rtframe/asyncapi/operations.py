"""What an app's routes say, before any schema is generated: messages and operations.

`Collector(description).collect()` walks an `AppDescription` (WebSocket routes and SSE
endpoints, sorted by path) and returns one `ChannelPlan` per route. Nothing here
generates JSON Schema or emits document objects; it only decides which messages exist
and which operations carry them:

- a `Payload` is one message type travelling in one direction; the same type in the same
  direction is one payload (one component message) wherever it appears, except binary
  frames: every `bytes` handler gets a message of its own;
- one `receive` operation per receive handler (text handlers sorted by message type name,
  the binary handler last), with a `reply` when the handler answers the sender: a return
  annotation (without `None`) and no `@group.broadcast`;
- a broadcast handler's return value, and messages declared with `@sends(..., group=g)`,
  join group `g`; every route that reaches a group gets one `broadcast` operation listing
  what any route sends to it (`add_group_ops`, once every route is collected);
- `@sends(...)` without a group is a `send` operation per message (handlers pushing the
  same message share it);
- `@sends(group=g)` with no message: the route reaches `g` (its channel gets `g`'s
  `broadcast` operation) without adding to what `g` is sent; a group reached that no
  route says anything about is a `ConfigurationError`;
- rtframe's own frames (errors, `$dropped`, `$reconnect`, heartbeat, `$gap`,
  `$recovery`) and the `$since` query parameter come from `control`;
- an SSE endpoint's channel (`kind="sse"`) gets the `GET` opening it and the events
  only streams get from `streams` instead of the WebSocket-only frames; a streaming
  HTTP route's (`kind="http"`) its requests and streamed response (`http_streams`);
- the security schemes of a route are those its handlers and their dependencies
  (transitively) declare; two declaring one name differently is a `ConfigurationError`.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic.json_schema import JsonSchemaMode

from ..description import AppDescription, HandlerDescription, RouteDescription
from ..exceptions import ConfigurationError
from . import control, docstrings, http_streams, names, streams
from .markers import declared_sends, security_schemes
from .plans import ChannelPlan, GroupUse, OperationPlan, Payload, QueryField

if TYPE_CHECKING:
    from ..groups import Group

Kind = Literal["ws", "sse", "http"]

__all__ = [
    "ChannelPlan",
    "Collector",
    "GroupUse",
    "OperationPlan",
    "Payload",
    "QueryField",
    "drop_none",
]


class Collector:
    """Collect the payloads and operations of every route of one app description."""

    def __init__(self, description: AppDescription) -> None:
        self.description = description
        self.payloads: dict[tuple[Any, str, str | None], Payload] = {}
        self.groups: dict[str, GroupUse] = {}

    def collect(self) -> list[ChannelPlan]:
        """Every route's channel plan, sorted by path (a WebSocket route, then an SSE
        endpoint, then streaming HTTP routes of one path), group operations included.

        Raises:
            ConfigurationError: a route reaches a group no route says anything about.
        """
        order = {"ws": 0, "sse": 1, "http": 2}
        routes: list[tuple[RouteDescription, Kind, Any]] = [
            *((r, "ws", None) for r in self.description.routes),
            *((r, "sse", None) for r in self.description.sse_routes),
            *(
                (http_streams.as_route(r), "http", r)
                for r in http_streams.http_routes(self.description)
            ),
        ]
        routes.sort(key=lambda t: (t[0].path, order[t[1]]))
        ids = names.unique([names.slug(r.path) for r, _, _ in routes])
        channels = [
            self.http_route(route, cid, raw) if kind == "http" else self.route(route, cid, kind)
            for (route, kind, raw), cid in zip(routes, ids, strict=True)
        ]
        for channel in channels:
            self.add_group_ops(channel)
        return channels

    def payload(
        self,
        annotation: Any,
        mode: JsonSchemaMode,
        *,
        hint: str,
        note: str | None = None,
        binary: bool = False,
    ) -> Payload:
        # binary frames all share the `bytes` type: one message per handler, not one in all
        key = (annotation, mode, hint if binary else None)
        found = self.payloads.get(key)
        if found is None:
            found = self.payloads[key] = Payload(annotation, mode, binary, hint, note)
        return found

    def route(self, route: RouteDescription, cid: str, kind: Kind = "ws") -> ChannelPlan:
        text = [h for h in route.receive if h.message is not bytes]
        binary = [h for h in route.receive if h.message is bytes]
        receive = (*sorted(text, key=lambda h: names.type_name(h.message)), *binary)
        connect = (route.connect,) if route.connect is not None else ()
        every = (*connect, *receive, *route.disconnect)
        channel = ChannelPlan(route, cid, every, receive, kind=kind)
        stream = kind == "sse"
        for handler in receive:
            channel.ops.append(self.receive_op(handler))
        for handler in every:
            for declared in declared_sends(handler.fn):
                self.declare(
                    channel, handler, declared.messages, declared.group, declared.description
                )
        channel.groups = self.reached(every)
        if stream:
            history = any(control.history_of(g) is not None for g in channel.groups.values())
            request, response = self.fixed(streams.request_payload, streams.response_payload)
            channel.ops.append(streams.open_op(route, request, response, history=history))
            channel.ops += streams.stream_ops(self.payload)
        else:
            channel.ops += control.common_ops(self.payload, route)
            sent = [p.annotation for op in channel.ops if op.action == "send" for p in op.payloads]
            channel.ops += control.server_message_ops(
                self.payload, self.description.server_messages, sent
            )
        channel.ops += control.group_ops(self.payload, channel.groups.values(), stream=stream)
        channel.security = self.security(route, every)
        channel.query = [
            QueryField(q.name, q.annotation, q.required, q.default) for q in route.query_params
        ]
        since = control.since_query(channel.groups.values(), stream=stream)
        if since is not None:
            channel.query.append(since)
        return channel

    def fixed(self, *makers: Callable[[], Payload], key: str = "") -> list[Payload]:
        """The payloads `makers` write out (`Payload.fixed`), each made once (per `key`)."""
        out = []
        for make in makers:
            ident = (None, "fixed", f"{make.__name__}:{key}")
            found = self.payloads.get(ident)
            if found is None:
                found = self.payloads[ident] = make()
            out.append(found)
        return out

    def http_route(self, route: RouteDescription, cid: str, raw: Any) -> ChannelPlan:
        """The channel of a streaming HTTP route (`raw`, seen as `route`)."""
        every = (route.connect,) if route.connect is not None else ()
        channel = ChannelPlan(route, cid, every, (), kind="http")
        (without_body,) = self.fixed(http_streams.no_body)
        # one response per route: two handlers of one path (by method) have one each
        key = f"{route.path} {' '.join(raw.methods)}"
        (stream,) = self.fixed(lambda: http_streams.stream_payload(raw), key=key)
        channel.ops += http_streams.operations(self.payload, raw, without_body, stream)
        channel.security = self.security(route, every)
        channel.query = [
            QueryField(q.name, q.annotation, q.required, q.default) for q in route.query_params
        ]
        return channel

    def reached(self, handlers: Iterable[HandlerDescription]) -> dict[str, Group]:
        """The groups `handlers` broadcast to or declare sends to, sorted by template."""
        found: dict[str, Group] = {}
        for handler in handlers:
            if handler.broadcast is not None:
                found.setdefault(handler.broadcast.template, handler.broadcast)
            for declared in declared_sends(handler.fn):
                if declared.group is not None:
                    found.setdefault(declared.group.template, declared.group)
        return dict(sorted(found.items()))

    def receive_op(self, handler: HandlerDescription) -> OperationPlan:
        name = names.fn_name(handler.fn)
        binary = handler.message is bytes
        incoming = self.payload(
            handler.message,
            "validation",
            hint=f"{names.camel(name)}Frame" if binary else names.type_name(handler.message),
            note=f"A binary frame, handled by `{name}`." if binary else None,
            binary=binary,
        )
        doc = docstrings.parse(handler.fn)
        op = OperationPlan(
            "receive",
            None,
            "receive",
            [incoming],
            summary=doc.summary,
            description=doc.description,
            handler=name,
        )
        returns = drop_none(handler.returns)
        if returns is None:
            return op
        if handler.broadcast is not None:
            use = self.group_use(handler.broadcast)
            use.payloads.append(
                self.payload(
                    returns,
                    "serialization",
                    hint=names.message_hint(returns, f"{names.camel(name)}Broadcast"),
                    note=f"Broadcast by `{name}` (its return value).",
                )
            )
            use.sources.append(f"the return value of `{name}`")
        else:
            frame = "a binary frame" if returns is bytes else "its return value"
            op.reply.append(
                self.payload(
                    returns,
                    "serialization",
                    hint=names.message_hint(returns, f"{names.camel(name)}Reply"),
                    note=f"The answer of `{name}` to its sender ({frame}).",
                    binary=returns is bytes,
                )
            )
        return op

    def declare(
        self,
        channel: ChannelPlan,
        handler: HandlerDescription,
        messages: Iterable[Any],
        group: Group | None,
        description: str | None,
    ) -> None:
        name = names.fn_name(handler.fn)
        stream = channel.kind == "sse"
        target = "stream" if stream else "connection"
        if group is not None:
            self.group_use(group)  # reached even when no message is named here
        for message in messages:
            payload = self.payload(
                message,
                "serialization",
                hint=names.message_hint(message, f"{names.camel(name)}Message"),
                note=f"Sent by `{name}`.",
            )
            if group is not None:
                use = self.group_use(group)
                use.payloads.append(payload)
                # an SSE endpoint rarely sends to its group: it says what the group gets
                source = f"what `{name}` declares with `@sends`" if stream else None
                use.sources.append(source or f"`{name}` (declared with `@sends`)")
                continue
            op = next(
                (o for o in channel.ops if o.verb == "send" and o.payloads == [payload]), None
            )
            if op is None:
                channel.ops.append(
                    OperationPlan(
                        "send",
                        None,
                        "send",
                        [payload],
                        summary=description or f"Pushed to this {target} by `{name}`.",
                        handler=name,
                    )
                )
            elif op.handler and name not in op.handler.split(", "):
                op.handler += f", {name}"

    def group_use(self, group: Group) -> GroupUse:
        use = self.groups.get(group.template)
        if use is None:
            use = self.groups[group.template] = GroupUse(group)
        return use

    def add_group_ops(self, channel: ChannelPlan) -> None:
        """One `broadcast` operation per group the route's handlers broadcast (or declare) to."""
        templates = list(channel.groups)
        slugs = names.unique([names.slug(t, keep=".-") for t in templates])
        for template, slug in zip(templates, slugs, strict=True):
            use = self.groups[template]
            if not use.payloads:
                raise ConfigurationError(
                    f"route {channel.route.path!r} declares it gets the messages of group "
                    f"{template!r} (@sends(group=...)), but no route says what the group "
                    "is sent: declare them with @sends(Model, group=...) where they are "
                    "broadcast, or on this route"
                )
            sources = ", ".join(dict.fromkeys(use.sources))
            description = (
                f"Every connection in group `{template}` receives these messages, "
                f"whichever route it connected to. Sent by: {sources}."
            )
            history = control.history_of(use.group)
            if history is not None:
                description += (
                    f" The group keeps its last {history.size} messages for {history.ttl:g} s "
                    f"after its last one: each carries `{control.POSITION_MEMBER}`, its "
                    "position, and a client that reconnects with `$since` gets what it "
                    "missed (`$recovery`)."
                )
                if channel.kind == "sse":
                    description += (
                        " On a stream those events' `id` carries the positions, so "
                        "EventSource's `Last-Event-ID` does this by itself."
                    )
            channel.ops.append(
                OperationPlan(
                    "broadcast",
                    slug,
                    "send",
                    list(dict.fromkeys(use.payloads)),
                    summary=f"Broadcast to the members of group `{template}`.",
                    description=description,
                    group=template,
                )
            )

    def security(
        self, route: RouteDescription, handlers: Iterable[HandlerDescription]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for handler in handlers:
            for obj in (handler.fn, *handler.dependencies):
                for name, scheme in security_schemes(obj).items():
                    if found.setdefault(name, scheme) != scheme:
                        raise ConfigurationError(
                            f"route {route.path!r}: two dependencies declare security "
                            f"scheme {name!r} differently: {found[name]} and {scheme}"
                        )
        return found


def drop_none(annotation: Any) -> Any:
    """A return annotation without `None`: returning None sends nothing."""
    if annotation is None or annotation is type(None):
        return None
    if get_origin(annotation) in (Union, types.UnionType):
        rest = tuple(a for a in get_args(annotation) if a is not type(None))
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
    return annotation
