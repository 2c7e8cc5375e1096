"""docs/asyncapi.md's example runs as written and documents what the page says."""

from __future__ import annotations

import re
import sys
import types

from rtframe import RealtimeApp

from .checks import ROOT, problems


def test_the_docs_example() -> None:
    text = (ROOT / "docs" / "asyncapi.md").read_text()
    source = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "@sends" in b)
    module = types.ModuleType("asyncapi_docs_example")
    sys.modules[module.__name__] = module  # pydantic resolves annotations through it
    try:
        exec(compile(source, "docs/asyncapi.md", "exec"), module.__dict__)
        doc = RealtimeApp(routers=[module.ws]).asyncapi()
    finally:
        del sys.modules[module.__name__]
    channel = doc["channels"]["ws_rooms_room_id"]
    assert channel["parameters"]["room_id"]["description"] == (
        "the room's number (a non-negative integer)"
    )
    assert channel["bindings"]["ws"]["query"]["required"] == ["token"]
    assert sorted(doc["operations"]) == [
        "ws_rooms_room_id.receive.Ping",
        "ws_rooms_room_id.receive.heartbeat",
        "ws_rooms_room_id.send.Hello",
        "ws_rooms_room_id.send.dropped",
        "ws_rooms_room_id.send.error",
        "ws_rooms_room_id.send.heartbeat",
        "ws_rooms_room_id.send.reconnect",
    ]
    assert doc["operations"]["ws_rooms_room_id.receive.Ping"]["reply"]["messages"] == [
        {"$ref": "#/channels/ws_rooms_room_id/messages/Ping"}
    ]
    assert problems(doc) == []
