"""Rewrite Pydantic's JSON Schema (draft 2020-12 style) into what AsyncAPI 3.0 accepts.

AsyncAPI's Schema Object is a superset of JSON Schema draft-07. Pydantic emits 2020-12
keywords that draft-07 does not know, or reads differently:

- `prefixItems` (tuples) becomes draft-07's array form of `items`, and a 2020-12 `items`
  beside it (the schema of the extra items) becomes `additionalItems`;
- a `$ref` with sibling keywords becomes `allOf: [{$ref}]` plus the siblings, because
  draft-07 ignores everything next to a `$ref`;
- `dependentRequired` / `dependentSchemas` merge into `dependencies`;
- Pydantic's OpenAPI-style `discriminator` object is dropped: AsyncAPI's `discriminator`
  is a plain property name with inheritance semantics, not a tag-to-schema mapping, and
  the `const` on each variant's tag field already tells the variants apart;
- 2019-09/2020-12 keywords with no draft-07 meaning are dropped.

`$defs` never reach this module: the generator asks Pydantic to put every definition in
`#/components/schemas` directly.

Only schema positions are walked: a property *named* `prefixItems`, or an example that
contains a `$ref` key, is data and stays as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_draft07"]

# keywords whose value is one schema
_ONE = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
)
# keywords whose value is a list of schemas
_MANY = ("allOf", "anyOf", "oneOf")
# keywords whose value maps names to schemas
_MAP = ("properties", "patternProperties", "definitions")
# 2019-09 / 2020-12 keywords draft-07 has no equivalent for
_DROP = frozenset(
    (
        "unevaluatedProperties",
        "unevaluatedItems",
        "minContains",
        "maxContains",
        "contentSchema",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$vocabulary",
        "$schema",
        "$id",
        "discriminator",
    )
)


def to_draft07(schema: Any) -> Any:
    """Return a draft-07 version of one JSON Schema (a dict or a boolean); input untouched."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key == "$defs":
            continue
        if key in _ONE:
            out[key] = to_draft07(value)
        elif key in _MANY:
            out[key] = [to_draft07(s) for s in value]
        elif key in _MAP:
            out[key] = {name: to_draft07(s) for name, s in value.items()}
        elif key == "items":
            if isinstance(value, list):
                out["items"] = [to_draft07(s) for s in value]
            elif "prefixItems" in schema:
                out["additionalItems"] = to_draft07(value)
            else:
                out["items"] = to_draft07(value)
        elif key == "prefixItems":
            out["items"] = [to_draft07(s) for s in value]
        elif key == "dependentRequired":
            out.setdefault("dependencies", {}).update(value)
        elif key == "dependentSchemas":
            deps = out.setdefault("dependencies", {})
            deps.update({name: to_draft07(s) for name, s in value.items()})
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out
