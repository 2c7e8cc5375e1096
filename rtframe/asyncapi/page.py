"""The AsyncAPI document as one self-contained HTML page: no script, no CDN, no fonts.

Rendered on the server from the document itself (not from the app), so the page shows
exactly what `/asyncapi.json` says: channels with their parameters and query binding,
operations with their messages and replies, every message and every payload schema.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["render_page"]

_CODE = re.compile(r"`([^`]+)`")

_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6475; --line: #dde1e8;
  --recv: #0b6bcb; --send: #13804a; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: #fff; }
header { padding: 24px 32px; background: var(--bg); border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 26px; }
main { display: grid; grid-template-columns: 240px minmax(0, 1fr); }
nav { padding: 16px 20px; border-right: 1px solid var(--line); font-size: 14px; }
nav ul { list-style: none; padding: 0; margin: 4px 0 16px; }
nav a { color: var(--ink); text-decoration: none; }
nav h3 { margin: 12px 0 0; font-size: 12px; text-transform: uppercase; color: var(--muted); }
article { padding: 8px 32px 48px; }
section { border-bottom: 1px solid var(--line); padding: 12px 0 20px; }
h2 { font-size: 20px; margin: 24px 0 8px; }
h3 { font-size: 16px; margin: 16px 0 6px; }
.channel > h3 code { font-size: 17px; }
code, pre { font: 13px/1.45 ui-monospace, "SFMono-Regular", Menlo, monospace; }
pre { background: var(--bg); padding: 10px 12px; overflow-x: auto; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 14px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px;
  border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
.muted { color: var(--muted); }
.prose { white-space: pre-line; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
  font-size: 12px; font-weight: 600; text-transform: uppercase; }
.receive { background: var(--recv); }
.send { background: var(--send); }
.operation { margin: 10px 0; padding: 8px 12px; border: 1px solid var(--line);
  border-radius: 6px; }
"""


def render_page(document: Mapping[str, Any], *, json_url: str | None = None) -> str:
    """Return the HTML page for an AsyncAPI 3.0 document made by `generate`.

    Args:
        document: the AsyncAPI document.
        json_url: where the JSON document is served, linked from the page header.
    """
    return _Page(document).render(json_url)


class _Page:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.doc = document
        components = document.get("components", {})
        self.schemas: Mapping[str, Any] = components.get("schemas", {})
        self.messages: Mapping[str, Any] = components.get("messages", {})
        self.security: Mapping[str, Any] = components.get("securitySchemes", {})
        self.channels: Mapping[str, Any] = document.get("channels", {})
        self.operations: Mapping[str, Any] = document.get("operations", {})

    def render(self, json_url: str | None) -> str:
        info = self.doc.get("info", {})
        title = _e(info.get("title", "AsyncAPI"))
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title} - AsyncAPI</title><style>{_STYLE}</style></head><body>",
            "<header>",
            f"<h1>{title} <span class='muted'>{_e(info.get('version', ''))}</span></h1>",
            f"<div class='muted'>AsyncAPI {_e(self.doc.get('asyncapi', ''))}",
        ]
        if json_url:
            parts.append(f" · <a href='{_e(json_url)}'>document (JSON)</a>")
        parts.append("</div>")
        if info.get("description"):
            parts.append(_prose(info["description"]))
        parts += ["</header><main>", self.nav(), "<article>"]
        parts += [self.servers(), self.channel_sections(), self.message_sections()]
        parts += [self.schema_sections(), self.security_section()]
        parts.append("</article></main></body></html>\n")
        return "".join(parts)

    # -- navigation and servers ---------------------------------------------------------

    def nav(self) -> str:
        out = ["<nav>", "<h3>Channels</h3><ul>"]
        out += [
            f"<li><a href='#channel-{_e(cid)}'><code>{_e(ch.get('address', cid))}</code></a></li>"
            for cid, ch in self.channels.items()
        ]
        out.append("</ul><h3>Messages</h3><ul>")
        out += [f"<li><a href='#message-{_e(k)}'>{_e(k)}</a></li>" for k in self.messages]
        out.append("</ul><h3>Schemas</h3><ul>")
        out += [f"<li><a href='#schema-{_e(k)}'>{_e(k)}</a></li>" for k in self.schemas]
        out.append("</ul></nav>")
        return "".join(out)

    def servers(self) -> str:
        servers = self.doc.get("servers", {})
        if not servers:
            return ""
        rows = []
        for name, server in servers.items():
            url = f"{server.get('protocol', '')}://{server.get('host', '')}"
            url += server.get("pathname", "")
            rows.append(
                f"<tr><td>{_e(name)}</td><td><code>{_e(url)}</code></td>"
                f"<td>{_inline(server.get('description', ''))}</td></tr>"
            )
        return (
            "<section id='servers'><h2>Servers</h2><table><tr><th>Name</th><th>URL</th>"
            f"<th>Description</th></tr>{''.join(rows)}</table></section>"
        )

    # -- channels and their operations --------------------------------------------------

    def channel_sections(self) -> str:
        out = ["<h2>Channels</h2>"]
        for cid, channel in self.channels.items():
            out.append(f"<section id='channel-{_e(cid)}' class='channel'>")
            out.append(f"<h3><code>{_e(channel.get('address', ''))}</code></h3>")
            out.append(f"<div class='muted'>channel <code>{_e(cid)}</code></div>")
            out.append(_summary_and_description(channel))
            if channel.get("servers"):  # only in documents with SSE streams
                on = [r.get("$ref", "").rsplit("/", 1)[-1] for r in channel["servers"]]
                out.append(f"<div>Servers: {', '.join(_e(n) for n in on)}</div>")
            out.append(self.parameters(channel.get("parameters", {})))
            out.append(self.query(channel.get("bindings", {}).get("ws", {}).get("query")))
            out.append("<h3>Operations</h3>")
            out += [
                self.operation(op_id, op)
                for op_id, op in self.operations.items()
                if op.get("channel", {}).get("$ref") == f"#/channels/{cid}"
            ]
            out.append("</section>")
        return "".join(out)

    def parameters(self, parameters: Mapping[str, Any]) -> str:
        if not parameters:
            return ""
        rows = [
            f"<tr><td><code>{{{_e(name)}}}</code></td><td>{_inline(p.get('description', ''))}"
            f"</td><td><code>{_e(p.get('x-pattern', ''))}</code></td></tr>"
            for name, p in parameters.items()
        ]
        return (
            "<h4>Path parameters</h4><table><tr><th>Name</th><th>Description</th>"
            f"<th>Pattern</th></tr>{''.join(rows)}</table>"
        )

    def query(self, schema: Mapping[str, Any] | None) -> str:
        if not schema:
            return ""
        return "<h4>Query parameters</h4>" + self.properties(schema)

    def operation(self, op_id: str, op: Mapping[str, Any]) -> str:
        action = op.get("action", "")
        direction = "client → app" if action == "receive" else "app → client"
        out = [
            f"<div class='operation' id='operation-{_e(op_id)}'>",
            f"<span class='badge {_e(action)}'>{_e(action)}</span> <code>{_e(op_id)}</code>",
            f" <span class='muted'>{direction}</span>",
        ]
        out.append(_summary_and_description(op))
        out.append(f"<div>Messages: {self.message_links(op.get('messages', []))}</div>")
        if "reply" in op:
            out.append(f"<div>Reply: {self.message_links(op['reply'].get('messages', []))}</div>")
        if op.get("security"):
            names = [s.get("$ref", "").rsplit("/", 1)[-1] for s in op["security"]]
            out.append(f"<div>Security: {', '.join(_e(n) for n in names)}</div>")
        http = op.get("bindings", {}).get("http")
        if http:  # the request opening an SSE stream
            out.append(f"<div>HTTP request: <code>{_e(http.get('method', ''))}</code></div>")
            out.append(self.query(http.get("query")))
        out.append("</div>")
        return "".join(out)

    def message_links(self, refs: list[Mapping[str, str]]) -> str:
        keys = [r.get("$ref", "").rsplit("/", 1)[-1] for r in refs]
        return ", ".join(f"<a href='#message-{_e(k)}'>{_e(k)}</a>" for k in keys)

    # -- messages and schemas -----------------------------------------------------------

    def message_sections(self) -> str:
        out = ["<h2>Messages</h2>"]
        for key, message in self.messages.items():
            payload = message.get("payload", {})
            out.append(f"<section id='message-{_e(key)}' class='message'>")
            out.append(f"<h3>{_e(message.get('title', key))}</h3>")
            out.append(_summary_and_description(message))
            content_type = message.get("contentType", self.doc.get("defaultContentType", ""))
            out.append(
                f"<div class='muted'>Content type <code>{_e(content_type)}</code> · payload "
                f"{self.type_of(payload) if 'payload' in message else 'none'}</div>"
            )
            target = self.resolve(payload)
            if target.get("properties"):
                out.append(self.properties(target))
            http = message.get("bindings", {}).get("http")
            if http:  # an SSE stream's request or response
                if "statusCode" in http:
                    out.append(f"<div>HTTP status <code>{_e(http['statusCode'])}</code></div>")
                if http.get("headers"):
                    out.append("<h4>HTTP headers</h4>" + self.properties(http["headers"]))
            for example in message.get("examples", []):
                label = _e(example.get("name", "example"))
                text = json.dumps(example.get("payload"), indent=2, ensure_ascii=False)
                out.append(f"<div class='muted'>Example {label}</div><pre>{_e(text)}</pre>")
            out.append("</section>")
        return "".join(out)

    def schema_sections(self) -> str:
        out = ["<h2>Schemas</h2>"]
        for key, schema in self.schemas.items():
            out.append(f"<section id='schema-{_e(key)}' class='schema'><h3>{_e(key)}</h3>")
            if schema.get("description"):
                out.append(_prose(schema["description"]))
            if schema.get("properties"):
                out.append(self.properties(schema))
            else:
                out.append(f"<div>Type: {self.type_of(schema)}</div>")
            raw = json.dumps(schema, indent=2, ensure_ascii=False)
            out.append(f"<details><summary>JSON Schema</summary><pre>{_e(raw)}</pre></details>")
            out.append("</section>")
        return "".join(out)

    def security_section(self) -> str:
        if not self.security:
            return ""
        rows = []
        for name, scheme in self.security.items():
            where = " ".join(f"{k}: {v}" for k, v in scheme.items() if k in ("in", "name"))
            rows.append(
                f"<tr><td>{_e(name)}</td><td>{_e(scheme.get('type', ''))}</td>"
                f"<td><code>{_e(where)}</code></td>"
                f"<td>{_inline(scheme.get('description', ''))}</td></tr>"
            )
        return (
            "<h2>Security</h2><section id='security'><table><tr><th>Scheme</th><th>Type</th>"
            f"<th>Where</th><th>Description</th></tr>{''.join(rows)}</table></section>"
        )

    def properties(self, schema: Mapping[str, Any]) -> str:
        required = set(schema.get("required", ()))
        rows = []
        for name, prop in schema.get("properties", {}).items():
            rows.append(
                f"<tr><td><code>{_e(name)}</code></td><td>{self.type_of(prop)}</td>"
                f"<td>{'yes' if name in required else 'no'}</td>"
                f"<td>{_e(_constraints(prop))}</td>"
                f"<td>{_inline(prop.get('description', ''))}</td></tr>"
            )
        return (
            "<table><tr><th>Field</th><th>Type</th><th>Required</th><th>Constraints</th>"
            f"<th>Description</th></tr>{''.join(rows)}</table>"
        )

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        target = schema.get("$ref", "")
        if target.startswith("#/components/schemas/"):
            found = self.schemas.get(target.rsplit("/", 1)[-1])
            if isinstance(found, Mapping):
                return found
        return schema

    def type_of(self, schema: Any) -> str:
        """A short, linked description of a schema's type: `array of Said`, `"say"`..."""
        if not isinstance(schema, Mapping):
            return "any" if schema is True or schema is None else "nothing"
        if "$ref" in schema:
            key = schema["$ref"].rsplit("/", 1)[-1]
            return f"<a href='#schema-{_e(key)}'>{_e(key)}</a>"
        if "const" in schema:
            return f"<code>{_e(json.dumps(schema['const']))}</code>"
        if "enum" in schema:
            return "one of " + ", ".join(
                f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"]
            )
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                joiner = " and " if key == "allOf" else " | "
                return joiner.join(self.type_of(s) for s in schema[key])
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items", True)
            if isinstance(items, list):
                return "[" + ", ".join(self.type_of(s) for s in items) + "]"
            return f"array of {self.type_of(items)}"
        if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
            return f"map of {self.type_of(schema['additionalProperties'])}"
        text = "/".join(kind) if isinstance(kind, list) else str(kind or "any")
        if schema.get("format"):
            text += f" ({schema['format']})"
        return _e(text)


_LIMITS = (
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minimum", "≥"),
    ("exclusiveMinimum", ">"),
    ("maximum", "≤"),
    ("exclusiveMaximum", "<"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("pattern", "pattern"),
    ("default", "default"),
)


def _constraints(schema: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{label} {json.dumps(schema[key]) if key == 'default' else schema[key]}"
        for key, label in _LIMITS
        if key in schema
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _inline(text: str) -> str:
    """Escaped text with `code spans` kept as code."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", _e(text))


def _summary_and_description(obj: Mapping[str, Any]) -> str:
    """The description, and the summary too unless the description starts with it."""
    summary, description = obj.get("summary") or "", obj.get("description") or ""
    shown = []
    if summary and not " ".join(description.split()).startswith(summary):
        shown.append(f"<div>{_inline(summary)}</div>")
    if description:
        shown.append(_prose(description))
    return "".join(shown)


def _prose(text: str) -> str:
    return f"<div class='prose'>{_inline(text)}</div>"
