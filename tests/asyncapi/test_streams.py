"""SSE endpoints in the document (rtframe/asyncapi/streams.py and servers.py): a channel
per endpoint on the `http` servers, the `GET` that opens it with its `http` bindings,
its events, and what a real stream sends checked against the document."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from rtframe import Connection, Group, HistoryPolicy, RealtimeApp, SSERouter, Stream
from rtframe import WebSocketRouter as Router
from rtframe.asyncapi import generate, sends
from rtframe.asyncapi.streams import RESPONSE_HEADERS, CloseNotice
from rtframe.exceptions import ConfigurationError
from rtframe.history import parse_since
from rtframe.sse import HEADERS
from rtframe.testing import TestClient
from tests.sse_harness import SSEClient

from . import sse_feature_app
from .conftest import SSE_FEATURE_APP, cli_document
from .sse_feature_app import Said

ROOM = "events_rooms_room"
NEWS = "events_news"
WS_ROOM = "ws_rooms_room"
SECURED = [{"$ref": "#/components/securitySchemes/sessionidCookie"}]
HTTP_SERVER = [{"$ref": "#/servers/default-http"}]
WS_SERVER = [{"$ref": "#/servers/default"}]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(generate(sse_feature_app.app))


def ops_of(doc: dict[str, Any], cid: str) -> dict[str, dict[str, Any]]:
    """A channel's operations by what follows the channel id in theirs."""
    prefix = f"{cid}."
    return {
        op_id[len(prefix) :]: op
        for op_id, op in doc["operations"].items()
        if op["channel"]["$ref"] == f"#/channels/{cid}"
    }


def msgs(cid: str, *keys: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{cid}/messages/{k}"} for k in keys]


def test_an_endpoint_is_an_http_channel_on_the_http_servers(doc: dict[str, Any]) -> None:
    assert doc["servers"] == {
        "default": {"host": "localhost:8000", "protocol": "ws"},
        "default-http": {"host": "localhost:8000", "protocol": "http"},
    }
    room = doc["channels"][ROOM]
    assert list(room) == [
        "address",
        "summary",
        "description",
        "servers",
        "parameters",
        "messages",
        "bindings",
    ]
    assert room["address"] == "/events/rooms/{room}"
    assert room["summary"] == "Follow a room without a WebSocket."
    assert room["description"] == (
        "Follow a room without a WebSocket.\n\n"
        "The stream gets every line of the room, and resumes after a drop."
    )
    assert room["servers"] == HTTP_SERVER
    assert room["parameters"] == {
        "room": {"description": "the room's name (a path segment)", "x-pattern": "^[^/]+$"}
    }
    # the HTTP channel binding has no fields; naming it says the channel is HTTP
    assert room["bindings"] == {"http": {}}
    assert set(room["messages"]) == {
        "CloseNotice",
        "EventStream",
        "EventStreamRequest",
        "PresenceNotice",
        "ReconnectNotice",
        "RecoveryNotice",
        "Said",
        "Welcome",
    }
    assert doc["channels"][WS_ROOM]["servers"] == WS_SERVER
    assert "ws" in doc["channels"][WS_ROOM]["bindings"]


def test_the_get_opening_a_stream_has_its_method_query_and_security(
    doc: dict[str, Any],
) -> None:
    op = ops_of(doc, ROOM)["receive.open"]
    assert op["action"] == "receive"
    assert op["summary"] == (
        "Open the stream: `GET /events/rooms/{room}`, answered with `text/event-stream`."
    )
    assert op["messages"] == msgs(ROOM, "EventStreamRequest")
    assert op["reply"] == {
        "channel": {"$ref": f"#/channels/{ROOM}"},
        "messages": msgs(ROOM, "EventStream"),
    }
    assert op["security"] == SECURED
    assert op["x-rtframe-handler"] == "follow"
    http = op["bindings"]["http"]
    assert list(http) == ["method", "query", "bindingVersion"]
    assert (http["method"], http["bindingVersion"]) == ("GET", "0.3.0")
    query = http["query"]
    assert "required" not in query
    assert query["properties"]["lines"] == {
        "type": "integer",
        "description": "how many earlier lines to show first",
        "default": 20,
    }
    since = query["properties"]["$since"]
    assert "HTTP 403" in since["description"] and "`Last-Event-ID`" in since["description"]
    for words in ("HTTP 403", "every 10 s", "`Last-Event-ID`", "`$recovery`"):
        assert words in op["description"]


def test_a_stream_of_a_group_without_history_has_no_ids_and_no_since(
    doc: dict[str, Any],
) -> None:
    op = ops_of(doc, NEWS)["receive.open"]
    assert op["bindings"] == {"http": {"method": "GET", "bindingVersion": "0.3.0"}}
    assert "carry no `id`" in op["description"]
    assert "security" not in op


def test_the_request_carries_last_event_id_and_the_response_is_an_event_stream(
    doc: dict[str, Any],
) -> None:
    messages = doc["components"]["messages"]
    request = messages["EventStreamRequest"]
    assert "payload" not in request  # a GET has no body
    header = request["bindings"]["http"]["headers"]["properties"]["Last-Event-ID"]
    assert (header["type"], header["contentMediaType"]) == ("string", "application/json")
    assert "`$since`" in header["description"]
    (example,) = header["examples"]
    assert parse_since(example)["room.lobby"].offset == 17  # what the server reads
    response = messages["EventStream"]
    assert response["contentType"] == "text/event-stream"
    http = response["bindings"]["http"]
    assert (http["statusCode"], http["bindingVersion"]) == (200, "0.3.0")
    consts = {k.lower(): v["const"] for k, v in http["headers"]["properties"].items()}
    # the headers rtframe.sse sends, byte for byte
    assert consts == {k.decode(): v.decode() for k, v in HEADERS}
    assert {k.lower() for k in RESPONSE_HEADERS} == set(consts)
    assert http["headers"]["required"] == list(RESPONSE_HEADERS)
    for field in ("`retry: <ms>`", "`id:`", "`data:`", "`: ping`", "`$close`", "`Last-Event-ID`"):
        assert field in response["description"]


def test_a_stream_gets_its_groups_own_and_rtframe_events_and_nothing_it_cannot(
    doc: dict[str, Any],
) -> None:
    room = ops_of(doc, ROOM)
    assert set(room) == {
        "receive.open",
        "broadcast.room.room",
        "send.Welcome",
        "send.close",
        "send.presence",
        "send.reconnect",
        "send.recovery",
    }
    assert set(ops_of(doc, NEWS)) == {
        "receive.open",
        "broadcast.news",
        "send.close",
        "send.gap",
        "send.reconnect",
    }
    assert set(ops_of(doc, "live_2")) == {"receive.open", "send.close", "send.reconnect"}
    # a WebSocket route keeps what a stream lacks: errors, $dropped, heartbeats
    assert {"send.error", "send.dropped", "send.heartbeat"} <= set(ops_of(doc, WS_ROOM))
    for op_id, op in room.items():
        assert op["security"] == SECURED, op_id
        assert op["action"] == ("receive" if op_id == "receive.open" else "send")

    # @sends(group=rooms): everything the room is sent, from any route
    broadcast = room["broadcast.room.room"]
    assert broadcast["messages"] == msgs(ROOM, "Said")
    assert "Sent by: the return value of `say`." in broadcast["description"]
    assert "`Last-Event-ID` does this by itself" in broadcast["description"]
    assert room["send.Welcome"]["summary"] == "Pushed to this stream by `follow`."
    assert (
        "stream joins a history group named in its `Last-Event-ID`"
        in (room["send.recovery"]["description"])
    )
    assert "connection joins" in ops_of(doc, WS_ROOM)["send.recovery"]["description"]
    assert "`retry: <after_ms>`" in room["send.reconnect"]["description"]
    assert room["send.close"]["messages"] == msgs(ROOM, "CloseNotice")
    assert "4008" in room["send.close"]["description"]
    news = ops_of(doc, NEWS)["broadcast.news"]
    assert news["messages"] == msgs(NEWS, "Headline")
    assert news["description"].endswith("Sent by: what `headlines` declares with `@sends`.")


def test_the_close_event_is_documented_as_the_model_sent(doc: dict[str, Any]) -> None:
    schema = doc["components"]["schemas"]["CloseNotice"]
    assert schema["properties"]["type"]["const"] == "$close"
    assert schema["properties"]["code"]["type"] == "integer"
    assert set(schema["required"]) == {"code", "reason"}
    assert doc["components"]["messages"]["CloseNotice"]["summary"].startswith(
        "The last event of an SSE stream"
    )


def test_a_websocket_route_and_a_stream_on_one_path_are_two_channels(
    doc: dict[str, Any],
) -> None:
    live, stream = doc["channels"]["live"], doc["channels"]["live_2"]
    assert live["address"] == stream["address"] == "/live"
    assert (live["servers"], stream["servers"]) == (WS_SERVER, HTTP_SERVER)
    assert stream["summary"] == "A stream with nothing but rtframe's own events."


# -- what a stream sends matches the document ------------------------------------------


def payload_keys(doc: dict[str, Any], cid: str, data: Any) -> list[str]:
    """The keys of the channel's messages whose payload schema accepts `data`."""
    components = doc["components"]
    found = []
    for key in doc["channels"][cid]["messages"]:
        payload = components["messages"][key].get("payload")
        if payload is None:
            continue
        validator = jsonschema.Draft7Validator({"allOf": [payload], "components": components})
        if validator.is_valid(data):
            found.append(key)
    return found


async def test_the_events_of_a_real_stream_are_the_documented_messages(
    doc: dict[str, Any],
) -> None:
    app = sse_feature_app.app
    cookie = {"cookie": "sessionid=alice"}
    async with TestClient(app) as client, client.websocket("/ws/rooms/lobby") as ws:
        stream = SSEClient(app, "/events/rooms/lobby", headers=cookie)
        assert await stream.start() == 200
        response = doc["components"]["messages"]["EventStream"]["bindings"]["http"]
        for name, header in response["headers"]["properties"].items():
            assert stream.headers[name.lower()] == header["const"]
        assert "retry" in await stream.event()
        events = [await stream.event()]  # the greeting
        await ws.send_json({"type": "say", "text": "hello"})
        while json.loads(events[-1]["data"]).get("type") != "said":
            events.append(await stream.event())
        last_id = events[-1]["id"]
        await stream.disconnect()
        await ws.send_json({"type": "say", "text": "missed"})
        # EventSource sends the last id back: the stream resumes as documented
        again = SSEClient(app, "/events/rooms/lobby", headers={**cookie, "Last-Event-ID": last_id})
        await again.start()
        await again.event()  # retry
        while not events or json.loads(events[-1]["data"]).get("text") != "missed":
            events.append(await again.event())
        [session] = [s for s in app.sessions if isinstance(s.conn, Stream)]
        await session.close(4001, "logged out")
        while not again.ended:  # a `$presence` event may come first
            events.append(await again.event())
    seen = []
    for event in events:
        data = json.loads(event["data"])
        keys = payload_keys(doc, ROOM, data)
        assert len(keys) == 1, (data, keys)
        seen.append(keys[0])
        if "id" in event:  # the `$since` format, which Last-Event-ID sends back
            assert set(parse_since(event["id"])) == {"room.lobby"}
    # the greeting and a line; on resuming, the recovery notice, the missed line, the
    # greeting; the close (presence events, whenever they come, are checked too)
    assert [k for k in seen if k != "PresenceNotice"] == [
        "Welcome",
        "Said",
        "RecoveryNotice",
        "Said",
        "Welcome",
        "CloseNotice",
    ]
    assert CloseNotice.model_validate_json(events[-1]["data"]).code == 4001


# -- declaring what a stream gets --------------------------------------------------------


class Note(BaseModel):
    text: str


def stream_app(*, declare: bool) -> RealtimeApp:
    sse = SSERouter()
    notes = Group("notes", history=HistoryPolicy(size=5, ttl=10))

    @sse.route("/notes")
    @sends(group=notes)
    async def follow(stream: Stream) -> None:
        await notes.add(stream)

    if declare:

        @sse.route("/notes/all")
        @sends(Note, group=notes)
        async def everything(stream: Stream) -> None:
            await notes.add(stream)

    return RealtimeApp([sse])


def test_a_group_joined_with_nothing_declared_for_it_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"route '/notes' .* group 'notes'"):
        generate(stream_app(declare=False))
    document = dict(generate(stream_app(declare=True)))
    assert ops_of(document, "notes")["broadcast.notes"]["messages"] == msgs("notes", "Note")
    with pytest.raises(ConfigurationError, match=r"at least one message type, or a group="):
        sends()


def test_a_stream_endpoint_changes_nothing_of_the_websocket_side() -> None:
    """Adding a stream that follows a group leaves the WebSocket channels, operations and
    messages as they were, but for the `servers` each channel now lists."""

    def build(with_stream: bool) -> RealtimeApp:
        ws, sse = Router(), SSERouter()
        group = Group("g.{room}")

        @ws.route("/ws/{room}")
        async def join(conn: Connection, room: str) -> None:
            await group.add(conn)

        @ws.on_receive("/ws/{room}")
        @group.broadcast
        async def talk(msg: Said) -> Said:
            return msg

        @sse.route("/events/{room}")
        @sends(group=group)
        async def follow(stream: Stream) -> None:
            await group.add(stream)

        return RealtimeApp([ws, sse] if with_stream else [ws])

    before, after = generate(build(False)), generate(build(True))
    channel = dict(after["channels"]["ws_room"])
    assert channel.pop("servers") == WS_SERVER
    assert channel == before["channels"]["ws_room"]
    ws_ops = {k: v for k, v in after["operations"].items() if k.startswith("ws_room.")}
    assert ws_ops == before["operations"]
    for key, message in before["components"]["messages"].items():
        assert after["components"]["messages"][key] == message
    assert set(after["components"]["messages"]) - set(before["components"]["messages"]) == {
        "CloseNotice",
        "EventStream",
        "EventStreamRequest",
    }


def test_a_stream_document_is_stable() -> None:
    document = generate(sse_feature_app.app)
    assert json.dumps(document) == json.dumps(generate(sse_feature_app.app))
    assert cli_document(SSE_FEATURE_APP) == document  # a fresh process: the same bytes


async def test_a_stream_frame_is_sent_as_the_model_says() -> None:
    # the `$close` model lives in the generator (asyncapi may not import sse): the frame
    # rtframe.sse writes must be exactly what it describes
    app = sse_feature_app.app
    async with TestClient(app):
        stream = SSEClient(app, "/events/news")
        await stream.start()
        await stream.event()
        [session] = [s for s in app.sessions if isinstance(s.conn, Stream)]
        await session.close(1000, "")
        data = (await stream.event())["data"]
        await asyncio.wait_for(stream.task, 2)
    assert json.loads(data) == CloseNotice.model_validate_json(data).model_dump()
