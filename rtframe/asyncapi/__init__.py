"""AsyncAPI 3.0 documents generated from a RealtimeApp's routes, and their HTML page.

- `generate(app)` (also `app.asyncapi()`) returns the document as JSON-ready data;
- `sends(...)` declares messages a handler pushes outside its return value;
- `render_page(document)` is the offline HTML page; `serve(app)` adds both to the app.
"""

from __future__ import annotations

from .generate import generate, server, with_servers
from .markers import sends
from .schema import ASYNCAPI_VERSION, SECURITY_MARKER, Document

__all__ = [
    "ASYNCAPI_VERSION",
    "SECURITY_MARKER",
    "Document",
    "generate",
    "sends",
    "server",
    "with_servers",
]
