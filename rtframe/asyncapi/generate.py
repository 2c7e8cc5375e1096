"""Build the AsyncAPI 3.0 document of a RealtimeApp from its compiled routes.

`generate(app)` is a pure function of the routes (and the server it is told about): it
reads what registration already worked out (each handler's message type, return
annotation, broadcast group, path and query parameters, dependencies) and never touches
a connection. The same app gives the same document, byte for byte: every map whose order
means nothing (channels, operations, messages, schemas) is sorted by key, and nothing in
it depends on ids, hashes or import paths.

Mapping, from the application's point of view:

- one channel per WebSocket route; `address` is the path template without converters,
  `parameters` its `{params}`; query parameters go to the `ws` channel binding;
- `receive` operation per receive handler, with a `reply` when the handler answers the
  sender (a return annotation and no `@group.broadcast`);
- `send` operation per group reachable from the route, carrying every message any handler
  broadcasts to that group; `send` operations for messages declared with `@sends`; and
  one for the error frame, which any route can send;
- payloads are Pydantic JSON Schemas hoisted into `components/schemas` and rewritten to
  draft-07 (`rtframe.asyncapi.draft07`); operation messages are `$ref`s into their
  channel's `messages`, which `$ref` `components/messages`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import to_jsonable_python

from .._compile import CallPlan
from ..exceptions import ConfigurationError
from ..messages import ErrorFrame
from . import docstrings, names
from .draft07 import to_draft07
from .markers import declared_sends, security_schemes
from .parameters import address, channel_parameters, param_doc
from .schema import (
    ASYNCAPI_VERSION,
    WS_BINDING_VERSION,
    Channel,
    Components,
    Document,
    Info,
    Message,
    MessageExample,
    Operation,
    Reference,
    Schema,
    Server,
    ref,
)

if TYPE_CHECKING:
    from ..app import CompiledRoute, RealtimeApp
    from ..groups import Group

_SCHEMAS = "#/components/schemas/"
_MISSING: Any = inspect.Parameter.empty


def generate(
    app: RealtimeApp,
    *,
    host: str = "localhost:8000",
    protocol: Literal["ws", "wss"] = "ws",
    pathname: str | None = None,
    servers: Mapping[str, Server] | None = None,
) -> Document:
    """Return the AsyncAPI 3.0.0 document of `app`'s WebSocket routes.

    Args:
        app: the application (its routes are read, nothing is changed).
        host: `host[:port]` clients connect to; used when `servers` is not given.
        protocol: "ws" or "wss".
        pathname: a path prefix the app is served under, if any.
        servers: the complete `servers` map instead of `host`/`protocol`/`pathname`.

    Raises:
        ConfigurationError: a server is malformed, a type cannot be described as JSON
            Schema, a model's example does not validate, or two markers disagree.
    """
    if servers is None:
        servers = {"default": server(host, protocol, pathname)}
    return _Builder(app).build(dict(servers))


def server(host: str, protocol: str = "ws", pathname: str | None = None) -> Server:
    """One Server Object, checked: `host` is `host[:port]`, `protocol` ws or wss."""
    if not host or "://" in host or "/" in host or any(c.isspace() for c in host):
        raise ConfigurationError(
            f"server host {host!r} must be host[:port], with no scheme and no path "
            "(put a path prefix in pathname)"
        )
    if protocol not in ("ws", "wss"):
        raise ConfigurationError(f"server protocol must be 'ws' or 'wss', not {protocol!r}")
    out: Server = {"host": host, "protocol": "wss" if protocol == "wss" else "ws"}
    if pathname:
        if not pathname.startswith("/"):
            raise ConfigurationError(f"server pathname {pathname!r} must start with '/'")
        out["pathname"] = pathname
    return out


def with_servers(document: Document, servers: Mapping[str, Server]) -> Document:
    """A copy of `document` describing other servers; the rest is shared, not copied."""
    out: Document = {
        "asyncapi": document["asyncapi"],
        "info": document["info"],
        "servers": dict(servers),
        "defaultContentType": document["defaultContentType"],
        "channels": document["channels"],
        "operations": document["operations"],
        "components": document["components"],
    }
    return out


# -- what the routes say, before any schema is generated --------------------------------


@dataclass(eq=False)
class _Payload:
    """One message type travelling in one direction; becomes one component message."""

    annotation: Any
    mode: JsonSchemaMode
    binary: bool
    hint: str  # the message's name when its type is not a model
    note: str | None = None  # description when its type is not a model
    key: str = ""
    schema: Schema = field(default_factory=dict)


@dataclass(eq=False)
class _Op:
    verb: str  # "receive", "send" or "broadcast": the id reads `<channel>.<verb>.<name>`
    name: str | None  # None: the key of its (first) message
    action: Literal["send", "receive"]
    payloads: list[_Payload]
    reply: list[_Payload] = field(default_factory=list)
    summary: str | None = None
    description: str | None = None
    handler: str | None = None
    group: str | None = None


@dataclass(eq=False)
class _Route:
    route: CompiledRoute
    id: str
    plans: tuple[CallPlan, ...]
    ops: list[_Op] = field(default_factory=list)
    security: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (name, schema input key, required, default) of each query parameter
    query: list[tuple[str, int, bool, Any]] = field(default_factory=list)


@dataclass(eq=False)
class _GroupUse:
    group: Group
    payloads: list[_Payload] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, app: RealtimeApp) -> None:
        self.app = app
        self.payloads: dict[tuple[Any, str, str | None], _Payload] = {}
        self.query_schemas: dict[int, Schema] = {}
        self.groups: dict[str, _GroupUse] = {}
        self.error = self.payload(ErrorFrame, "serialization", hint="ErrorFrame")

    # -- collecting ---------------------------------------------------------------------

    def payload(
        self,
        annotation: Any,
        mode: JsonSchemaMode,
        *,
        hint: str,
        note: str | None = None,
        binary: bool = False,
    ) -> _Payload:
        # binary frames all share the `bytes` type: one message per handler, not one in all
        key = (annotation, mode, hint if binary else None)
        found = self.payloads.get(key)
        if found is None:
            found = self.payloads[key] = _Payload(annotation, mode, binary, hint, note)
        return found

    def build(self, servers: dict[str, Server]) -> Document:
        routes = sorted(self.app.routes, key=lambda r: r.path.template)
        ids = names.unique([names.slug(r.path.template) for r in routes])
        collected = [self.collect(route, cid) for route, cid in zip(routes, ids, strict=True)]
        for info in collected:
            self.add_group_ops(info)
        schemas = self.schemas(collected)
        return self.emit(collected, schemas, servers)

    def collect(self, route: CompiledRoute, cid: str) -> _Route:
        handlers = sorted(
            route.handlers.values(), key=lambda h: names.type_name(h.plan.message_type)
        )
        plans = tuple(h.plan for h in handlers)
        if route.binary is not None:
            plans += (route.binary.plan,)
        every = (*((route.connect,) if route.connect else ()), *plans, *route.disconnect)
        info = _Route(route, cid, every)
        for plan in plans:
            info.ops.append(self.receive_op(cid, plan))
        for plan in every:
            for declared in declared_sends(plan.fn):
                self.declare(info, plan, declared.messages, declared.group, declared.description)
        info.ops.append(
            _Op(
                "send",
                "error",
                "send",
                [self.error],
                summary="Tell the sender its message could not be handled.",
                description=(
                    "Sent for a frame that is not JSON, does not match any message schema, "
                    "has an unknown `type`, or whose handler failed or raised MessageError. "
                    "The connection stays open."
                ),
            )
        )
        info.security = self.security(route, every)
        return info

    def receive_op(self, cid: str, plan: CallPlan) -> _Op:
        name = names.fn_name(plan.fn)
        binary = plan.message_type is bytes
        incoming = self.payload(
            plan.message_type,
            "validation",
            hint=f"{names.camel(name)}Frame" if binary else names.type_name(plan.message_type),
            note=f"A binary frame, handled by `{name}`." if binary else None,
            binary=binary,
        )
        doc = docstrings.parse(plan.fn)
        op = _Op(
            "receive",
            None,
            "receive",
            [incoming],
            summary=doc.summary,
            description=doc.description,
            handler=name,
        )
        returns = _drop_none(plan.returns)
        if returns is None:
            return op
        if plan.broadcast is not None:
            use = self.group_use(plan.broadcast)
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
            op.reply.append(
                self.payload(
                    returns,
                    "serialization",
                    hint=names.message_hint(returns, f"{names.camel(name)}Reply"),
                    note=f"The answer of `{name}` to its sender (its return value).",
                )
            )
        return op

    def declare(
        self,
        info: _Route,
        plan: CallPlan,
        messages: Iterable[Any],
        group: Group | None,
        description: str | None,
    ) -> None:
        name = names.fn_name(plan.fn)
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
                use.sources.append(f"`{name}` (declared with `@sends`)")
                continue
            op = next((o for o in info.ops if o.verb == "send" and o.payloads == [payload]), None)
            if op is None:
                info.ops.append(
                    _Op(
                        "send",
                        None,
                        "send",
                        [payload],
                        summary=description or f"Pushed to this connection by `{name}`.",
                        handler=name,
                    )
                )
            elif op.handler and name not in op.handler.split(", "):
                op.handler += f", {name}"

    def group_use(self, group: Group) -> _GroupUse:
        use = self.groups.get(group.template)
        if use is None:
            use = self.groups[group.template] = _GroupUse(group)
        return use

    def add_group_ops(self, info: _Route) -> None:
        """One `send` operation per group the route's handlers broadcast (or declare) to."""
        reached: list[str] = []
        for plan in info.plans:
            if plan.broadcast is not None:
                reached.append(plan.broadcast.template)
            reached += [s.group.template for s in declared_sends(plan.fn) if s.group]
        slugs = names.unique([names.slug(t, keep=".-") for t in sorted(set(reached))])
        for template, slug in zip(sorted(set(reached)), slugs, strict=True):
            use = self.groups[template]
            sources = ", ".join(dict.fromkeys(use.sources))
            info.ops.append(
                _Op(
                    "broadcast",
                    slug,
                    "send",
                    list(dict.fromkeys(use.payloads)),
                    summary=f"Broadcast to the members of group `{template}`.",
                    description=(
                        f"Every connection in group `{template}` receives these messages, "
                        f"whichever route it connected to. Sent by: {sources}."
                    ),
                    group=template,
                )
            )

    def security(
        self, route: CompiledRoute, plans: Iterable[CallPlan]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for plan in plans:
            for obj in (plan.fn, *(d.dependency for d in plan.dependencies)):
                for name, scheme in security_schemes(obj).items():
                    if found.setdefault(name, scheme) != scheme:
                        raise ConfigurationError(
                            f"route {route.path.template!r}: two dependencies declare security "
                            f"scheme {name!r} differently: {found[name]} and {scheme}"
                        )
        return found

    # -- schemas ------------------------------------------------------------------------

    def schemas(self, routes: list[_Route]) -> dict[str, Schema]:
        """Generate every payload and query schema in one pass; return the hoisted defs."""
        payloads = sorted(self.payloads.values(), key=lambda p: (p.hint, p.mode, p.binary))
        inputs: list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]] = []
        for i, p in enumerate(payloads):
            inputs.append((i, p.mode, TypeAdapter(p.annotation)))
        for info in routes:
            for param in info.route.query_params:
                key = len(inputs)
                adapter = param.adapter or TypeAdapter(param.annotation)
                inputs.append((key, "validation", adapter))
                info.query.append((param.name, key, param.default is _MISSING, param.default))
        results, defs = _json_schemas(inputs)
        hoisted = {name: to_draft07(s) for name, s in defs.get("$defs", {}).items()}
        taken = set(hoisted)
        for i, p in enumerate(payloads):
            schema = results[(i, p.mode)]
            target = schema.get("$ref", "")
            if len(schema) == 1 and target.startswith(_SCHEMAS):
                p.key = target[len(_SCHEMAS) :]
            else:
                p.key = names.unique([p.hint], taken)[0]
                hoisted[p.key] = to_draft07(schema)
            taken.add(p.key)
            p.schema = hoisted[p.key]
            self.check_examples(p)
        for info in routes:
            for _name, key, _required, _default in info.query:
                self.query_schemas[key] = to_draft07(results[(key, "validation")])
        return dict(sorted(hoisted.items()))

    def check_examples(self, p: _Payload) -> None:
        examples = p.schema.get("examples")
        if examples is None:
            return
        if not isinstance(examples, list):
            raise ConfigurationError(
                f"examples of {p.key} must be a list of example payloads, not "
                f"{type(examples).__name__}"
            )
        adapter: TypeAdapter[Any] = TypeAdapter(p.annotation)
        for n, example in enumerate(examples, 1):
            try:
                adapter.validate_python(example)
            except ValidationError as exc:
                raise ConfigurationError(
                    f"example {n} of {p.key} does not match its own schema: "
                    f"{exc.errors(include_url=False)[0]['msg']} at "
                    f"{'.'.join(map(str, exc.errors()[0]['loc'])) or 'the top level'}"
                ) from None

    # -- output -------------------------------------------------------------------------

    def emit(
        self, routes: list[_Route], schemas: dict[str, Schema], servers: dict[str, Server]
    ) -> Document:
        channels: dict[str, Channel] = {}
        operations: dict[str, Operation] = {}
        messages: dict[str, Message] = {}
        security: dict[str, dict[str, Any]] = {}
        for info in routes:
            channel_ref = ref(f"#/channels/{info.id}")
            used: dict[str, _Payload] = {}
            requirements = [ref(f"#/components/securitySchemes/{n}") for n in sorted(info.security)]
            for name, scheme in info.security.items():
                if security.setdefault(name, scheme) != scheme:
                    raise ConfigurationError(
                        f"security scheme {name!r} is declared differently by two routes: "
                        f"{security[name]} and {scheme}"
                    )
            op_names = [f"{info.id}.{op.verb}.{op.name or op.payloads[0].key}" for op in info.ops]
            order = sorted(range(len(op_names)), key=op_names.__getitem__)
            ids = names.unique([op_names[i] for i in order], set(operations))
            for i, op_id in zip(order, ids, strict=True):
                op = info.ops[i]
                for p in (*op.payloads, *op.reply):
                    used[p.key] = p
                operations[op_id] = self.operation(op, info.id, channel_ref, requirements)
            for key, p in used.items():
                messages[key] = self.message(p)
            channels[info.id] = self.channel(info, {k: used[k] for k in sorted(used)})
        components: Components = {
            "schemas": schemas,
            "messages": dict(sorted(messages.items())),
        }
        if security:
            components["securitySchemes"] = dict(sorted(security.items()))
        info_obj: Info = {"title": self.app.title, "version": self.app.version}
        if self.app.description:
            info_obj["description"] = self.app.description
        document: Document = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": info_obj,
            "servers": dict(sorted(servers.items())),
            "defaultContentType": "application/json",
            "channels": dict(sorted(channels.items())),
            "operations": dict(sorted(operations.items())),
            "components": components,
        }
        return document

    def operation(
        self, op: _Op, cid: str, channel_ref: Reference, requirements: list[Reference]
    ) -> Operation:
        def refs(payloads: list[_Payload]) -> list[Reference]:
            return [ref(f"#/channels/{cid}/messages/{k}") for k in _keys(payloads)]

        # built as a plain dict so the keys come in reading order: what, then which messages
        out: dict[str, Any] = {"action": op.action, "channel": channel_ref}
        if op.summary:
            out["summary"] = op.summary
        if op.description and op.description != op.summary:
            out["description"] = op.description
        out["messages"] = refs(op.payloads)
        if op.reply:
            out["reply"] = {"channel": channel_ref, "messages": refs(op.reply)}
        if requirements:
            out["security"] = list(requirements)
        if op.handler:
            out["x-rtframe-handler"] = op.handler
        if op.group:
            out["x-rtframe-group"] = op.group
        return typing.cast(Operation, out)

    def message(self, p: _Payload) -> Message:
        out: Message = {"name": p.key}
        title = p.schema.get("title")
        out["title"] = title if isinstance(title, str) else p.key
        description = p.schema.get("description")
        if not isinstance(description, str):
            description = p.note
        if description:
            out["summary"] = " ".join(description.split("\n\n", 1)[0].split())
            if out["summary"] != description:
                out["description"] = description
        if p.binary:
            out["contentType"] = "application/octet-stream"
        out["payload"] = ref(_SCHEMAS + p.key)
        examples = p.schema.get("examples")
        if isinstance(examples, list) and examples:
            out["examples"] = [_example(p.key, n, e) for n, e in enumerate(examples, 1)]
        return out

    def channel(self, info: _Route, used: dict[str, _Payload]) -> Channel:
        route = info.route
        out: dict[str, Any] = {"address": address(route.path)}  # keys in reading order
        doc = docstrings.parse(route.connect.fn) if route.connect else docstrings.Docstring()
        summary = route.spec.summary or doc.summary
        if summary:
            out["summary"] = summary
        if doc.description and doc.description != summary:
            out["description"] = doc.description
        params = channel_parameters(route.path, info.plans)
        if params:
            out["parameters"] = params
        out["messages"] = {k: ref(f"#/components/messages/{k}") for k in used}
        binding: dict[str, Any] = {"method": "GET"}
        if info.query:
            binding["query"] = self.query_object(info)
        binding["bindingVersion"] = WS_BINDING_VERSION
        out["bindings"] = {"ws": binding}
        return typing.cast(Channel, out)

    def query_object(self, info: _Route) -> Schema:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, key, is_required, default in info.query:
            schema = dict(self.query_schemas[key])
            note = param_doc(name, info.plans)
            if note and "description" not in schema:
                schema["description"] = note
            if not is_required:
                shown = _json_default(default)
                if shown is not _MISSING:
                    schema.setdefault("default", shown)
            else:
                required.append(name)
            properties[name] = schema
        out: Schema = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out


def _json_schemas(
    inputs: list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]],
) -> tuple[dict[tuple[int, JsonSchemaMode], Schema], Schema]:
    try:
        results, defs = TypeAdapter.json_schemas(inputs, ref_template=_SCHEMAS + "{model}")
    except Exception:
        # find the type that cannot be described, to name it in the error
        for _key, mode, adapter in inputs:
            try:
                adapter.json_schema(mode=mode)
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot describe {_adapter_type(adapter)} as JSON Schema for the "
                    f"AsyncAPI document: {exc}"
                ) from exc
        raise
    return {(k, m): s for (k, m), s in results.items()}, dict(defs)


def _adapter_type(adapter: TypeAdapter[Any]) -> str:
    typ = getattr(adapter, "_type", None)
    return names.type_name(typ) if typ is not None else repr(adapter)


def _json_default(value: Any) -> Any:
    """`value` as JSON data, or _MISSING when it has no JSON form (it is then left out)."""
    try:
        return to_jsonable_python(value)
    except Exception:
        return _MISSING


def _example(key: str, n: int, payload: Any) -> MessageExample:
    return {"name": f"{key}-{n}", "payload": payload}


def _keys(payloads: Iterable[_Payload]) -> list[str]:
    return sorted({p.key for p in payloads})


def _drop_none(annotation: Any) -> Any:
    """A return annotation without `None`: returning None sends nothing."""
    if annotation is None or annotation is type(None):
        return None
    if get_origin(annotation) in (Union, types.UnionType):
        rest = tuple(a for a in get_args(annotation) if a is not type(None))
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007
    return annotation
