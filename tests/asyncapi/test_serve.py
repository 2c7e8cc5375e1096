"""The app serves its document at /asyncapi.json and its page at /asyncapi."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel

from rtframe import RealtimeApp, WebSocketRouter
from rtframe.asyncapi import generate
from rtframe.testing import TestClient
from rtframe.types import Message

from ..servers import uvicorn_server
from .checks import problems
from .feature_app import app as feature


class Note(BaseModel):
    type: Literal["note"] = "note"
    text: str


async def test_the_document_describes_the_server_that_was_asked() -> None:
    client = TestClient(feature)
    plain = await client.get("/asyncapi.json", headers={"host": "chat.example.com:8443"})
    assert plain.status == 200
    assert plain.headers["content-type"] == "application/json"
    doc = plain.json()
    assert doc["servers"] == {"default": {"host": "chat.example.com:8443", "protocol": "ws"}}
    assert {k: v for k, v in doc.items() if k != "servers"} == {
        k: v for k, v in generate(feature).items() if k != "servers"
    }
    assert problems(doc) == []


async def test_https_and_a_root_path_give_wss_and_a_pathname() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "root_path": "/realtime",
        "path": "/asyncapi.json",
        "headers": [(b"host", b"example.com")],
        "query_string": b"",
    }
    await feature(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert json.loads(body)["servers"] == {
        "default": {"host": "example.com", "protocol": "wss", "pathname": "/realtime"}
    }


async def test_a_malformed_host_header_still_gets_a_document() -> None:
    result = await TestClient(feature).get("/asyncapi.json", headers={"host": "a b/c"})
    assert result.status == 200
    assert result.json()["servers"]["default"]["host"] == "localhost"


async def test_the_page_shows_channels_operations_and_schemas() -> None:
    result = await TestClient(feature).get("/asyncapi")
    assert result.status == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    page = result.text
    assert "<code>/ws/rooms/{room_id}/board</code>" in page
    assert "ws_rooms_room_id_board.receive.Draw" in page
    assert "id='schema-Draw'" in page
    assert "href='/asyncapi.json'" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch from elsewhere


async def test_paths_are_configurable_and_can_be_turned_off() -> None:
    moved = RealtimeApp(asyncapi_path="/docs/api.json", docs_path="/docs")
    client = TestClient(moved)
    assert (await client.get("/docs/api.json")).status == 200
    page = await client.get("/docs")
    assert "href='/docs/api.json'" in page.text
    assert (await client.get("/asyncapi.json")).status == 404

    off = RealtimeApp(asyncapi_path=None, docs_path=None)
    client = TestClient(off)
    assert (await client.get("/asyncapi.json")).status == 404
    assert (await client.get("/asyncapi")).status == 404

    page_only = RealtimeApp(asyncapi_path=None)
    page = await TestClient(page_only).get("/asyncapi")
    assert page.status == 200 and "document (JSON)" not in page.text


async def test_routes_added_later_are_served() -> None:
    app = RealtimeApp()
    client = TestClient(app)
    assert (await client.get("/asyncapi.json")).json()["channels"] == {}
    ws = WebSocketRouter()

    async def note(msg: Note) -> None:
        return None

    ws.add_receive_handler("/ws/notes", note)
    app.include_router(ws)
    assert list((await client.get("/asyncapi.json")).json()["channels"]) == ["ws_notes"]


@pytest.mark.e2e
def test_served_by_uvicorn() -> None:
    with uvicorn_server("tests.asyncapi.feature_app:app") as port:
        doc = httpx.get(f"http://127.0.0.1:{port}/asyncapi.json").json()
        page = httpx.get(f"http://127.0.0.1:{port}/asyncapi")
    assert doc["servers"]["default"] == {"host": f"127.0.0.1:{port}", "protocol": "ws"}
    assert "ws_rooms_room_id_board" in doc["channels"]
    assert page.status_code == 200 and "Feature board" in page.text
