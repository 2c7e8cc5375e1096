"""SSE documents as tools use them (rtframe/asyncapi/servers.py, page.py, typescript.py):
the servers each channel is on, the served document, the page, the TypeScript unions, and
the judges (the official parser, tests/asyncapi/checks.py) catching mistakes in them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from rtframe import RealtimeApp, SSERouter
from rtframe import WebSocketRouter as Router
from rtframe.asyncapi import generate, render_page, server, with_servers
from rtframe.asyncapi.typescript import typescript
from rtframe.testing import TestClient

from . import sse_feature_app
from .checks import errors, parser_diagnostics, problems
from .sse_feature_app import Said

ROOM = "events_rooms_room"
WS_ROOM = "ws_rooms_room"
HTTP_SERVER = [{"$ref": "#/servers/default-http"}]
WS_SERVER = [{"$ref": "#/servers/default"}]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(generate(sse_feature_app.app))


# -- servers ---------------------------------------------------------------------------


def test_the_servers_given_are_completed_and_each_channel_placed() -> None:
    app = sse_feature_app.app
    secure = generate(app, host="rt.example.com", protocol="wss", pathname="/rt")
    assert secure["servers"]["default-http"] == {
        "host": "rt.example.com",
        "protocol": "https",
        "pathname": "/rt",
    }
    both = {"events": server("rt.example.com", "https"), "sockets": server("rt.example.com", "wss")}
    placed = generate(app, servers=both)
    assert list(placed["servers"]) == ["events", "sockets"]  # kept as given: nothing added
    assert placed["channels"][ROOM]["servers"] == [{"$ref": "#/servers/events"}]
    assert placed["channels"][WS_ROOM]["servers"] == [{"$ref": "#/servers/sockets"}]
    only_http = generate(app, servers={"edge": server("rt.example.com", "https")})
    assert only_http["servers"]["edge-ws"] == {"host": "rt.example.com", "protocol": "wss"}
    assert only_http["channels"][WS_ROOM]["servers"] == [{"$ref": "#/servers/edge-ws"}]
    # the served document swaps in the host a request reached, both families again
    here = with_servers(placed, {"default": server("example.org:8443", "wss")})
    assert here["servers"] == {
        "default": {"host": "example.org:8443", "protocol": "wss"},
        "default-http": {"host": "example.org:8443", "protocol": "https"},
    }
    assert here["channels"][ROOM]["servers"] == HTTP_SERVER
    assert list(here["channels"][ROOM]).index("servers") == 3  # still in reading order


async def test_the_served_document_lists_the_http_server_the_request_reached() -> None:
    async with TestClient(sse_feature_app.app) as client:
        served = json.loads((await client.get("/asyncapi.json")).body)
    assert served["servers"]["default"]["protocol"] == "ws"
    assert served["servers"]["default-http"]["protocol"] == "http"
    assert served["channels"][ROOM]["servers"] == HTTP_SERVER


def test_a_websocket_only_document_lists_no_servers_on_its_channels() -> None:
    ws = Router()

    @ws.on_receive("/ws")
    async def echo(msg: Said) -> Said:
        return msg

    plain = RealtimeApp([ws])
    with_empty_router = RealtimeApp([ws, SSERouter()])
    document = generate(plain)
    assert list(document["servers"]) == ["default"]
    assert all("servers" not in c for c in document["channels"].values())
    assert json.dumps(generate(with_empty_router)) == json.dumps(document)


# -- the page ----------------------------------------------------------------------------


def test_the_page_shows_the_request_and_the_response_of_a_stream(doc: dict[str, Any]) -> None:
    page = render_page(doc)
    assert "HTTP request: <code>GET</code>" in page
    assert "<code>Last-Event-ID</code>" in page
    assert "<code>X-Accel-Buffering</code>" in page
    assert "HTTP status <code>200</code>" in page
    assert "Servers: default-http" in page
    assert "Content type <code>text/event-stream</code> · payload none" in page


# -- the judges see mistakes in stream channels ------------------------------------------


def test_the_parser_and_the_checks_catch_mistakes_in_http_bindings(doc: dict[str, Any]) -> None:
    header_on_op = copy.deepcopy(doc)
    binding = header_on_op["operations"][f"{ROOM}.receive.open"]["bindings"]["http"]
    # why Last-Event-ID is on the request message: the operation binding has no headers
    binding["headers"] = {"type": "object", "properties": {"Last-Event-ID": {"type": "string"}}}
    text_status = copy.deepcopy(doc)
    text_status["components"]["messages"]["EventStream"]["bindings"]["http"]["statusCode"] = "200"
    op_diag, status_diag = parser_diagnostics(header_on_op, text_status)
    assert any(d["path"][-1] == "headers" for d in errors(op_diag))
    assert any(d["path"][-1] == "statusCode" for d in errors(status_diag))

    wrong_server = copy.deepcopy(doc)
    wrong_server["channels"][ROOM]["servers"] = WS_SERVER
    assert problems(wrong_server) == [f"channel {ROOM} (http) is on server default (ws)"]
    nowhere = copy.deepcopy(doc)
    del nowhere["channels"][ROOM]["servers"]
    assert problems(nowhere) == [
        f"channel {ROOM}: no servers listed, so it claims ws and http servers"
    ]
    filled = copy.deepcopy(doc)
    filled["channels"][ROOM]["bindings"]["http"] = {"method": "GET"}
    assert problems(filled) == [
        f"channel {ROOM}: the http channel binding must be empty (the spec)"
    ]
    no_object = copy.deepcopy(doc)
    no_object["operations"][f"{ROOM}.receive.open"]["bindings"]["http"]["query"] = {
        "type": "string"
    }
    assert problems(no_object) == [
        f"operations/{ROOM}.receive.open/bindings/http/query: must be an object with "
        "properties (the http binding)"
    ]


def test_typescript_declarations_give_each_stream_a_union_of_its_events(
    doc: dict[str, Any],
) -> None:
    ts = typescript(doc)
    assert "export interface CloseNotice {" in ts
    assert (
        "export type EventsRoomsRoomServerFrame = CloseNotice | PresenceNotice | "
        "ReconnectNotice | RecoveryNotice | Said | Welcome;"
    ) in ts
    # a stream accepts nothing: the request has no body, so no client union
    assert "EventsRoomsRoomClientFrame" not in ts
    assert "EventStream" not in ts
