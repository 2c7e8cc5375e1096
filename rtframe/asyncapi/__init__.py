"""AsyncAPI 3.0 documents generated from an app's description, and their HTML page.

- `generate(app)` (also `app.asyncapi()`) returns the document of the app's WebSocket
  routes and SSE endpoints as JSON-ready data; it reads only `app.describe()`
  (`rtframe.description`), so an `AppDescription` works too;
- `sends(...)` declares messages a handler pushes outside its return value;
- `render_page(document)` is the offline HTML page; `rtframe.asyncapi.serve.serve(app)`
  adds both to the app;
- `rtframe.asyncapi.typescript.typescript(document)` writes TypeScript declarations of
  the messages with Modelina (`rtframe client-types`).
"""

from __future__ import annotations

from .generate import Describable, generate, server, with_servers
from .markers import sends
from .page import render_page
from .schema import ASYNCAPI_VERSION, SECURITY_MARKER, Document

__all__ = [
    "ASYNCAPI_VERSION",
    "SECURITY_MARKER",
    "Describable",
    "Document",
    "generate",
    "render_page",
    "sends",
    "server",
    "with_servers",
]
