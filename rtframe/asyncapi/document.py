"""Assemble the AsyncAPI 3.0.0 document from collected channels and generated schemas.

`assemble(description, channels, schemas, servers)` only arranges what the earlier steps
decided (`operations` for messages and operations, `payloads` for their schemas):

- one channel per route, keyed by its id; `address` is the path without converters,
  `parameters` its `{params}` (`rtframe.asyncapi.parameters`), `messages` every message
  of the socket in both directions, and a `ws` binding holding the query parameters
  (`required` when there is no default; a default is shown when it has a JSON form);
- an SSE endpoint's or a streaming HTTP route's channel has an empty `http` binding
  instead, and its query parameters go to the `http` binding of its request operation
  (the one with a `method`); messages written out by the generator (`Payload.fixed`)
  are emitted as they are;
- with HTTP channels, each channel lists the servers of its protocol
  (`rtframe.asyncapi.servers.place`);
- the channel's summary is the route's own, else the connect handler's docstring;
- operation ids read `<channel>.<verb>.<name>`, sorted, made unique with `_2`, `_3`;
  an operation's `messages` (and `reply.messages`) are `$ref`s into its channel's
  `messages`, which `$ref` `components/messages`, whose payloads `$ref`
  `components/schemas`;
- every operation of a route carries the route's security requirements; one scheme name
  declared differently by two routes is a `ConfigurationError`;
- a message's `summary` is the first paragraph of its model's description (else of what
  the code says about it), binary frames are `application/octet-stream`, and each model
  example becomes a named message example;
- every map whose order means nothing is sorted by key; objects keep their keys in
  reading order (what, then which messages), so the same app gives the same bytes.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from ..description import AppDescription
from ..exceptions import ConfigurationError
from . import docstrings, names
from .parameters import channel_parameters, param_doc
from .payloads import MISSING, SCHEMAS, json_default
from .plans import ChannelPlan, OperationPlan, Payload
from .schema import (
    ASYNCAPI_VERSION,
    HTTP_BINDING_VERSION,
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
from .servers import place

__all__ = ["assemble"]


def assemble(
    description: AppDescription,
    channels: Iterable[ChannelPlan],
    schemas: dict[str, Schema],
    servers: dict[str, Server],
) -> Document:
    """The document of `channels` (schemas already generated) served by `servers`.

    Raises:
        ConfigurationError: two routes declare one security scheme differently.
    """
    out_channels: dict[str, Channel] = {}
    operations: dict[str, Operation] = {}
    messages: dict[str, Message] = {}
    security: dict[str, dict[str, Any]] = {}
    for plan in channels:
        channel_ref = ref(f"#/channels/{plan.id}")
        used: dict[str, Payload] = {}
        requirements = [ref(f"#/components/securitySchemes/{n}") for n in sorted(plan.security)]
        for name, scheme in plan.security.items():
            if security.setdefault(name, scheme) != scheme:
                raise ConfigurationError(
                    f"security scheme {name!r} is declared differently by two routes: "
                    f"{security[name]} and {scheme}"
                )
        op_names = [f"{plan.id}.{op.verb}.{op.name or op.payloads[0].key}" for op in plan.ops]
        order = sorted(range(len(op_names)), key=op_names.__getitem__)
        ids = names.unique([op_names[i] for i in order], set(operations))
        for i, op_id in zip(order, ids, strict=True):
            op = plan.ops[i]
            for p in (*op.payloads, *op.reply):
                used[p.key] = p
            operations[op_id] = _operation(op, plan, channel_ref, requirements)
        for key, p in used.items():
            messages[key] = _message(p)
        out_channels[plan.id] = _channel(plan, {k: used[k] for k in sorted(used)})
    placed, out_channels = place(dict(sorted(servers.items())), dict(sorted(out_channels.items())))
    components: Components = {
        "schemas": schemas,
        "messages": dict(sorted(messages.items())),
    }
    if security:
        components["securitySchemes"] = dict(sorted(security.items()))
    info: Info = {"title": description.title, "version": description.version}
    if description.description:
        info["description"] = description.description
    document: Document = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "servers": placed,
        "defaultContentType": "application/json",
        "channels": out_channels,
        "operations": dict(sorted(operations.items())),
        "components": components,
    }
    return document


def _operation(
    op: OperationPlan, plan: ChannelPlan, channel_ref: Reference, requirements: list[Reference]
) -> Operation:
    def refs(payloads: list[Payload]) -> list[Reference]:
        keys = sorted({p.key for p in payloads})
        return [ref(f"#/channels/{plan.id}/messages/{k}") for k in keys]

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
    if op.method:  # the HTTP request opening a stream: its method and query parameters
        binding: dict[str, Any] = {"method": op.method}
        if plan.query:
            binding["query"] = _query_object(plan)
        binding["bindingVersion"] = HTTP_BINDING_VERSION
        out["bindings"] = {"http": binding}
    if op.handler:
        out["x-rtframe-handler"] = op.handler
    if op.group:
        out["x-rtframe-group"] = op.group
    return typing.cast(Operation, out)


def _message(p: Payload) -> Message:
    if p.fixed is not None:
        return typing.cast(Message, {"name": p.key, **p.fixed})
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
    out["payload"] = ref(SCHEMAS + p.key)
    examples = p.schema.get("examples")
    if isinstance(examples, list) and examples:
        out["examples"] = [_example(p.key, n, e) for n, e in enumerate(examples, 1)]
    return out


def _example(key: str, n: int, payload: Any) -> MessageExample:
    return {"name": f"{key}-{n}", "payload": payload}


def _channel(plan: ChannelPlan, used: dict[str, Payload]) -> Channel:
    route = plan.route
    out: dict[str, Any] = {"address": route.address}  # keys in reading order
    doc = docstrings.parse(route.connect.fn) if route.connect else docstrings.Docstring()
    summary = route.summary or doc.summary
    if summary:
        out["summary"] = summary
    if doc.description and doc.description != summary:
        out["description"] = doc.description
    params = channel_parameters(route, plan.handlers)
    if params:
        out["parameters"] = params
    out["messages"] = {k: ref(f"#/components/messages/{k}") for k in used}
    if plan.kind != "ws":
        # the HTTP channel binding has no fields (the spec reserves it); naming it says the
        # channel is HTTP, and the request's operation binding holds method and query
        out["bindings"] = {"http": {}}
        return typing.cast(Channel, out)
    binding: dict[str, Any] = {"method": "GET"}
    if plan.query:
        binding["query"] = _query_object(plan)
    binding["bindingVersion"] = WS_BINDING_VERSION
    out["bindings"] = {"ws": binding}
    return typing.cast(Channel, out)


def _query_object(plan: ChannelPlan) -> Schema:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for query in plan.query:
        schema = dict(query.schema)
        note = param_doc(query.name, plan.handlers)
        if note and "description" not in schema:
            schema["description"] = note
        if not query.required:
            shown = json_default(query.default)
            if shown is not MISSING:
                schema.setdefault("default", shown)
        else:
            required.append(query.name)
        properties[query.name] = schema
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out
