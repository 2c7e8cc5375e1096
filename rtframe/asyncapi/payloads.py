"""JSON Schemas of every payload and query parameter, generated in one pass.

`generate_schemas(payloads, channels)` asks Pydantic for every schema at once
(`TypeAdapter.json_schemas`), so a model used in several places is defined once:

- definitions are hoisted into `components/schemas` under the model's name and rewritten
  to draft-07 (`rtframe.asyncapi.draft07`);
- a payload whose schema is only a reference to a definition takes that definition's name
  as its key; any other payload (`list[Said]`, a binary frame) gets its hint as key, made
  unique among the hoisted names (`HistoryReply`, `HistoryReply_2`);
- payloads are processed sorted by (hint, mode, binary), never by discovery order, so the
  keys are stable;
- a model's `examples` (`json_schema_extra={"examples": [...]}`) must be a list of payloads
  its own schema accepts;
- query parameter schemas stay inline (they go to the channel's `ws` binding, or to the
  `http` binding of the request opening an SSE stream);
- a payload written out by the generator (`Payload.fixed`, an SSE stream's request and
  response) gets no schema, only a key no other message has.

A type Pydantic cannot describe, or a bad example, is a `ConfigurationError` naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import to_jsonable_python

from ..exceptions import ConfigurationError
from . import names
from .draft07 import to_draft07
from .plans import ChannelPlan, Payload
from .schema import Schema

__all__ = ["MISSING", "SCHEMAS", "generate_schemas", "json_default"]

#: Where hoisted schemas live; every payload's `$ref` starts with it.
SCHEMAS = "#/components/schemas/"
#: Returned by `json_default` for a value with no JSON form.
MISSING: Any = inspect.Parameter.empty

_Inputs = list[tuple[int, JsonSchemaMode, TypeAdapter[Any]]]


def generate_schemas(
    payloads: Iterable[Payload], channels: Iterable[ChannelPlan]
) -> dict[str, Schema]:
    """Fill every payload's `key` and `schema` and every query field's `schema`; return
    the hoisted definitions (`components/schemas`), sorted by name.

    Raises:
        ConfigurationError: a type cannot be described, or a model's example does not
            validate against it.
    """
    payloads = list(payloads)
    fixed = sorted((p for p in payloads if p.fixed is not None), key=lambda p: p.hint)
    ordered = sorted(
        (p for p in payloads if p.fixed is None), key=lambda p: (p.hint, p.mode, p.binary)
    )
    inputs: _Inputs = []
    for i, p in enumerate(ordered):
        inputs.append((i, p.mode, TypeAdapter(p.annotation)))
    queries = []
    for channel in channels:
        for query in channel.query:
            if query.schema:
                continue  # written out already (rtframe's own `$since`)
            queries.append((len(inputs), query))
            inputs.append((len(inputs), "validation", TypeAdapter(query.annotation)))
    results, defs = _json_schemas(inputs)
    hoisted = {name: to_draft07(s) for name, s in defs.get("$defs", {}).items()}
    taken = set(hoisted)
    for i, p in enumerate(ordered):
        schema = results[(i, p.mode)]
        target = schema.get("$ref", "")
        if len(schema) == 1 and target.startswith(SCHEMAS):
            p.key = target[len(SCHEMAS) :]
        else:
            p.key = names.unique([p.hint], taken)[0]
            hoisted[p.key] = to_draft07(schema)
        taken.add(p.key)
        p.schema = hoisted[p.key]
        _check_examples(p)
    for key, query in queries:
        query.schema = to_draft07(results[(key, "validation")])
    for p in fixed:  # written out, no schema: only a key no schema (so no message) has
        p.key = names.unique([p.hint], taken)[0]
        taken.add(p.key)
    return dict(sorted(hoisted.items()))


def json_default(value: Any) -> Any:
    """`value` as JSON data, or MISSING when it has no JSON form (it is then left out)."""
    try:
        return to_jsonable_python(value)
    except Exception:
        return MISSING


def _check_examples(p: Payload) -> None:
    examples = p.schema.get("examples")
    if examples is None:
        return
    if not isinstance(examples, list):
        raise ConfigurationError(
            f"examples of {p.key} must be a list of example payloads, not {type(examples).__name__}"
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


def _json_schemas(inputs: _Inputs) -> tuple[dict[tuple[int, JsonSchemaMode], Schema], Schema]:
    try:
        results, defs = TypeAdapter.json_schemas(inputs, ref_template=SCHEMAS + "{model}")
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
