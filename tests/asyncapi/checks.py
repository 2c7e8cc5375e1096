"""What the official parser does not check about a document, checked here.

- every `$ref` resolves inside the document;
- every `{param}` in a channel address has a parameter, and every parameter is in it;
  no query string or fragment in an address;
- every message example validates against its payload schema (draft-07, `jsonschema`);
- every schema is a valid draft-07 schema with no 2020-12-only keyword left;
- operation messages are `$ref`s into their own channel's messages;
- the `http` bindings of SSE streams: an empty channel binding (the spec reserves it),
  query and header schemas that are objects with properties, and each channel only on
  servers of its protocol (`ws`/`wss` or `http`/`https`).

Plus `parser_diagnostics`, which runs the official parser (`tools/asyncapi-validate`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tools" / "asyncapi-validate"
_PARAM = re.compile(r"{([^{}]+)}")
_2020_ONLY = {
    "$defs",
    "prefixItems",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$anchor",
}


def resolve(document: Mapping[str, Any], pointer: str) -> Any:
    """Follow a local JSON pointer (`#/a/b`); KeyError if it leads nowhere."""
    if not pointer.startswith("#/"):
        raise KeyError(f"not a local reference: {pointer}")
    node: Any = document
    for raw in pointer[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise KeyError(pointer)
    return node


def refs(node: Any, path: str = "#") -> Iterator[tuple[str, str]]:
    """Every `$ref` in the document, with where it is."""
    if isinstance(node, Mapping):
        if isinstance(node.get("$ref"), str):
            yield path, node["$ref"]
        for key, value in node.items():
            if key not in ("examples", "default", "const", "enum"):  # data, not schema
                yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{path}/{i}")


def schemas(document: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    components = document.get("components", {})
    for name, schema in components.get("schemas", {}).items():
        yield f"components/schemas/{name}", schema
    yield from queries(document)
    for key, message in components.get("messages", {}).items():
        headers = message.get("bindings", {}).get("http", {}).get("headers")
        if headers is not None:
            yield f"components/messages/{key}/bindings/http/headers", headers


def queries(document: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The query schemas: of WebSocket channels' `ws` bindings, and of the `http`
    bindings of the requests opening SSE streams."""
    for cid, channel in document.get("channels", {}).items():
        query = channel.get("bindings", {}).get("ws", {}).get("query")
        if query is not None:
            yield f"channels/{cid}/bindings/ws/query", query
    for op_id, op in document.get("operations", {}).items():
        query = op.get("bindings", {}).get("http", {}).get("query")
        if query is not None:
            yield f"operations/{op_id}/bindings/http/query", query


def keywords(schema: Any) -> Iterator[str]:
    """Every keyword used in a schema, walking only schema positions."""
    if not isinstance(schema, Mapping):
        return
    for key, value in schema.items():
        yield key
        if key in ("properties", "patternProperties", "definitions"):
            for sub in value.values():
                yield from keywords(sub)
        elif key in ("allOf", "anyOf", "oneOf") or (key == "items" and isinstance(value, list)):
            for sub in value:
                yield from keywords(sub)
        elif key not in ("examples", "default", "const", "enum", "required"):
            yield from keywords(value)


def problems(document: Mapping[str, Any]) -> list[str]:
    """Everything wrong with `document` that these checks find; [] when none."""
    found: list[str] = []
    for where, target in refs(document):
        try:
            resolve(document, target)
        except (KeyError, IndexError, ValueError):
            found.append(f"{where}: $ref {target} does not resolve")
    for cid, channel in document.get("channels", {}).items():
        address = channel.get("address", "")
        if "?" in address or "#" in address:
            found.append(f"channel {cid}: address {address!r} has a query string or fragment")
        in_address = set(_PARAM.findall(address))
        declared = set(channel.get("parameters", {}))
        if in_address != declared:
            found.append(
                f"channel {cid}: address {address!r} has parameters {sorted(in_address)} but "
                f"the channel declares {sorted(declared)}"
            )
        query = channel.get("bindings", {}).get("ws", {}).get("query")
        if query is not None and (query.get("type") != "object" or "properties" not in query):
            found.append(f"channel {cid}: the ws query binding must be an object with properties")
        if channel.get("bindings", {}).get("http") not in (None, {}):
            found.append(f"channel {cid}: the http channel binding must be empty (the spec)")
    for where, schema in schemas(document):
        if "bindings/http/" in where and (
            schema.get("type") != "object" or "properties" not in schema
        ):
            found.append(f"{where}: must be an object with properties (the http binding)")
    families = {
        "http" if s.get("protocol") in ("http", "https") else "ws"
        for s in document.get("servers", {}).values()
    }
    for cid, channel in document.get("channels", {}).items():
        if len(families) > 1 and not channel.get("servers"):
            found.append(f"channel {cid}: no servers listed, so it claims ws and http servers")
    for name, server in document.get("servers", {}).items():
        family = "http" if server.get("protocol") in ("http", "https") else "ws"
        for cid, channel in document.get("channels", {}).items():
            kind = "http" if "http" in channel.get("bindings", {}) else "ws"
            if {"$ref": f"#/servers/{name}"} in channel.get("servers", []) and kind != family:
                found.append(f"channel {cid} ({kind}) is on server {name} ({family})")
    for op_id, op in document.get("operations", {}).items():
        channel = op.get("channel", {}).get("$ref", "")
        for r in [*op.get("messages", []), *op.get("reply", {}).get("messages", [])]:
            if not r.get("$ref", "").startswith(f"{channel}/messages/"):
                found.append(f"operation {op_id}: message {r} is not in its channel {channel}")
    for where, schema in schemas(document):
        try:
            jsonschema.Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            found.append(f"{where}: not a valid draft-07 schema: {exc.message}")
        left = sorted(set(keywords(schema)) & _2020_ONLY)
        if left:
            found.append(f"{where}: 2020-12-only keywords {left}")
    components = document.get("components", {})
    for key, message in components.get("messages", {}).items():
        payload = message.get("payload")
        validator = jsonschema.Draft7Validator(
            {"allOf": [payload], "components": components}, format_checker=None
        )
        for n, example in enumerate(message.get("examples", []), 1):
            try:
                failures = [e.message for e in validator.iter_errors(example.get("payload"))]
            except Exception as exc:  # an unresolvable $ref, reported above as well
                failures = [f"cannot be checked: {type(exc).__name__}"]
            found += [f"message {key}: example {n} fails its payload: {f}" for f in failures]
    return found


def parser_diagnostics(*documents: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Run the official AsyncAPI parser on each document; its diagnostics, in order.

    Raises:
        AssertionError: Node or the validator's npm packages are missing (never skipped:
            `scripts/test` installs them), or the validator crashed.
    """
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not installed; the AsyncAPI parser needs it")
    if not (VALIDATOR / "node_modules" / "@asyncapi" / "parser").is_dir():
        raise AssertionError(
            "the AsyncAPI parser is not installed: run scripts/test, or "
            "npm ci --prefix tools/asyncapi-validate --ignore-scripts"
        )
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, document in enumerate(documents):
            path = Path(tmp) / f"document{i}.json"
            path.write_text(json.dumps(document))
            paths.append(str(path))
        proc = subprocess.run(
            [node, str(VALIDATOR / "validate.js"), *paths],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode not in (0, 1):
        raise AssertionError(f"the validator failed ({proc.returncode}): {proc.stderr}")
    report = json.loads(proc.stdout)
    return [report[p] for p in paths]


def errors(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in diagnostics if d["severity"] == "error"]
