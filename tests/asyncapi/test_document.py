"""The generated document, field by field: the feature app (every feature) and the chat
example."""

from __future__ import annotations

from typing import Any

import pytest

from rtframe.asyncapi import generate

from . import feature_app
from .conftest import cli_document

BOARD = "ws_rooms_room_id_board"
LOBBY = "ws_lobby"
DOCS = "ws_docs_doc_id_section"
SECURED = [{"$ref": "#/components/securitySchemes/sessionidCookie"}]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(generate(feature_app.app))


def msgs(channel: str, *keys: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{k}"} for k in keys]


def channel_ref(channel: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{channel}"}


def test_root(doc: dict[str, Any]) -> None:
    assert list(doc) == [
        "asyncapi",
        "info",
        "servers",
        "defaultContentType",
        "channels",
        "operations",
        "components",
    ]
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"] == {
        "title": "Feature board",
        "version": "2.1.0",
        "description": "Every feature of the AsyncAPI generator in one app.",
    }
    assert doc["servers"] == {"default": {"host": "localhost:8000", "protocol": "ws"}}
    assert doc["defaultContentType"] == "application/json"


def test_one_channel_per_route_addressed_by_its_template(doc: dict[str, Any]) -> None:
    assert {cid: c["address"] for cid, c in doc["channels"].items()} == {
        BOARD: "/ws/rooms/{room_id}/board",
        DOCS: "/ws/docs/{doc_id}/{section}",
        LOBBY: "/ws/lobby",
    }


def test_path_parameters_with_descriptions_and_converter_patterns(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    # from the connect handler's `Args:` section, and the int converter
    assert channels[BOARD]["parameters"] == {
        "room_id": {
            "description": "the room's number (a non-negative integer)",
            "x-pattern": "^[0-9]+$",
        }
    }
    # uuid converter without a description; `Annotated[str, Field(description=...)]`
    assert channels[DOCS]["parameters"] == {
        "doc_id": {
            "description": "`doc_id`: a UUID.",
            "x-pattern": (
                "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
            ),
        },
        "section": {
            "description": "Slug of the section being edited (a path segment)",
            "x-pattern": "^[^/]+$",
        },
    }
    assert "parameters" not in channels[LOBBY]


def test_query_parameters_go_to_the_ws_binding(doc: dict[str, Any]) -> None:
    assert doc["channels"][BOARD]["bindings"] == {
        "ws": {
            "method": "GET",
            "query": {
                "type": "object",
                "properties": {
                    "token": {"type": "string", "description": "the invitation token of the room"},
                    "mode": {
                        "enum": ["draw", "watch"],
                        "type": "string",
                        "description": "draw, or only watch",
                        "default": "draw",
                    },
                },
                "required": ["token"],
            },
            "bindingVersion": "0.1.0",
        }
    }
    # the lobby keeps history: its only query parameter is rtframe's own `$since`
    # (tests/asyncapi/test_recovery_frames.py)
    lobby = doc["channels"][LOBBY]["bindings"]["ws"]
    assert list(lobby["query"]["properties"]) == ["$since"]
    assert "required" not in lobby["query"]


def test_channel_messages_hold_both_directions(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    assert channels[BOARD]["messages"] == {
        k: {"$ref": f"#/components/messages/{k}"}
        for k in [
            "DroppedNotice",  # told to a slow client, on every channel
            "Draw",  # received
            "ErrorFrame",  # the error frame, on every channel
            "GapNotice",  # told after a layer outage: rooms keep no history
            "HeartbeatPing",  # the heartbeat, both directions
            "HeartbeatPong",
            "Hello",  # declared with @sends on the connect handler
            "Joined",  # declared with @sends(group=rooms)
            "Ping",
            "Pong",  # reply
            "Receipt",  # reply to the binary frame
            "ReconnectNotice",  # told to every client when the server drains
            "Stroke",  # broadcast
            "UploadFrame",  # the binary frame
        ]
    }
    assert list(channels[LOBBY]["messages"]) == [
        "Chat",
        "Chatted",
        "DroppedNotice",
        "ErrorFrame",
        "History",
        "HistoryReply",
        "ReconnectNotice",
        "RecoveryNotice",  # the lobby keeps history
    ]
    assert list(channels[DOCS]["messages"]) == [
        "DroppedNotice",
        "Edit",
        "ErrorFrame",
        "ReconnectNotice",
    ]


def test_channel_descriptions_come_from_the_connect_handler(doc: dict[str, Any]) -> None:
    board = doc["channels"][BOARD]
    assert board["summary"] == "Join a room's drawing board."
    assert board["description"] == (
        "Join a room's drawing board.\n\n"
        "Only logged-in users may join; they receive a greeting and the room hears about them."
    )
    assert "summary" not in doc["channels"][LOBBY]


def test_operations(doc: dict[str, Any]) -> None:
    assert sorted(doc["operations"]) == [
        f"{DOCS}.receive.Edit",
        f"{DOCS}.send.dropped",
        f"{DOCS}.send.error",
        f"{DOCS}.send.reconnect",
        f"{LOBBY}.broadcast.lobby",
        f"{LOBBY}.receive.Chat",
        f"{LOBBY}.receive.History",
        f"{LOBBY}.send.dropped",
        f"{LOBBY}.send.error",
        f"{LOBBY}.send.reconnect",
        f"{LOBBY}.send.recovery",
        f"{BOARD}.broadcast.room.room_id",
        f"{BOARD}.receive.Draw",
        f"{BOARD}.receive.Ping",
        f"{BOARD}.receive.UploadFrame",
        f"{BOARD}.receive.heartbeat",
        f"{BOARD}.send.Hello",
        f"{BOARD}.send.dropped",
        f"{BOARD}.send.error",
        f"{BOARD}.send.gap",
        f"{BOARD}.send.heartbeat",
        f"{BOARD}.send.reconnect",
    ]


def test_the_heartbeat_is_documented_in_both_directions(doc: dict[str, Any]) -> None:
    ping = doc["operations"][f"{BOARD}.send.heartbeat"]
    assert ping["action"] == "send"
    assert ping["messages"] == msgs(BOARD, "HeartbeatPing")
    assert ping["reply"]["messages"] == msgs(BOARD, "HeartbeatPong")
    assert ping["summary"] == "Ping the client every 20 s; it must answer."
    assert "closes the connection with 4002" in ping["description"]
    assert "nothing for 25 s" in ping["description"]
    answer = doc["operations"][f"{BOARD}.receive.heartbeat"]
    assert answer["action"] == "receive"
    assert answer["messages"] == msgs(BOARD, "HeartbeatPing")
    assert doc["components"]["schemas"]["HeartbeatPing"]["properties"]["type"]["const"] == "$ping"
    assert f"{LOBBY}.send.heartbeat" not in doc["operations"]  # the app switched them off


def test_a_handler_that_answers_has_a_reply(doc: dict[str, Any]) -> None:
    assert doc["operations"][f"{BOARD}.receive.Ping"] == {
        "action": "receive",
        "channel": channel_ref(BOARD),
        "summary": "Answer the sender at once.",
        "messages": msgs(BOARD, "Ping"),
        "reply": {"channel": channel_ref(BOARD), "messages": msgs(BOARD, "Pong")},
        "security": SECURED,
        "x-rtframe-handler": "ping",
    }
    # an Optional return: None sends nothing, so the reply is the model itself
    edit = doc["operations"][f"{DOCS}.receive.Edit"]
    assert edit["reply"] == {"channel": channel_ref(DOCS), "messages": msgs(DOCS, "Edit")}
    # a non-model return is hoisted under the handler's name
    history = doc["operations"][f"{LOBBY}.receive.History"]
    assert history["reply"]["messages"] == msgs(LOBBY, "HistoryReply")
    assert doc["components"]["schemas"]["HistoryReply"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Chatted"},
    }


def test_a_broadcasting_handler_receives_without_reply(doc: dict[str, Any]) -> None:
    draw = doc["operations"][f"{BOARD}.receive.Draw"]
    assert draw["action"] == "receive"
    assert draw["messages"] == msgs(BOARD, "Draw")
    assert "reply" not in draw


def test_each_reachable_group_is_a_send_operation(doc: dict[str, Any]) -> None:
    assert doc["operations"][f"{BOARD}.broadcast.room.room_id"] == {
        "action": "send",
        "channel": channel_ref(BOARD),
        "summary": "Broadcast to the members of group `room.{room_id}`.",
        "description": (
            "Every connection in group `room.{room_id}` receives these messages, whichever "
            "route it connected to. Sent by: the return value of `draw`, `join` (declared with `@sends`)."
        ),
        "messages": msgs(BOARD, "Joined", "Stroke"),
        "security": SECURED,
        "x-rtframe-group": "room.{room_id}",
    }
    lobby = doc["operations"][f"{LOBBY}.broadcast.lobby"]
    assert lobby["messages"] == msgs(LOBBY, "Chatted")
    assert "security" not in lobby


def test_declared_direct_sends(doc: dict[str, Any]) -> None:
    assert doc["operations"][f"{BOARD}.send.Hello"] == {
        "action": "send",
        "channel": channel_ref(BOARD),
        "summary": "Pushed to this connection by `join`.",
        "messages": msgs(BOARD, "Hello"),
        "security": SECURED,
        "x-rtframe-handler": "join",
    }


def test_binary_frames(doc: dict[str, Any]) -> None:
    upload = doc["operations"][f"{BOARD}.receive.UploadFrame"]
    assert upload["messages"] == msgs(BOARD, "UploadFrame")
    assert upload["reply"]["messages"] == msgs(BOARD, "Receipt")
    assert doc["components"]["messages"]["UploadFrame"] == {
        "name": "UploadFrame",
        "title": "UploadFrame",
        "summary": "A binary frame, handled by `upload`.",
        "contentType": "application/octet-stream",
        "payload": {"$ref": "#/components/schemas/UploadFrame"},
    }
    assert doc["components"]["schemas"]["UploadFrame"] == {"type": "string", "format": "binary"}


def test_the_error_frame_on_every_channel(doc: dict[str, Any]) -> None:
    for channel in (BOARD, LOBBY, DOCS):
        op = doc["operations"][f"{channel}.send.error"]
        assert op["action"] == "send"
        assert op["messages"] == msgs(channel, "ErrorFrame")
    error = doc["components"]["schemas"]["ErrorFrame"]
    assert error["properties"]["type"]["const"] == "error"
    assert error["required"] == ["code", "detail"]
    assert error["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ErrorDetail"}


def test_messages_carry_names_docstrings_and_examples(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    assert messages["Draw"] == {
        "name": "Draw",
        "title": "Draw",
        "summary": "Draw a stroke on the board.",
        "payload": {"$ref": "#/components/schemas/Draw"},
        "examples": [
            {
                "name": "Draw-1",
                "payload": {
                    "color": "blue",
                    "points": [{"x": 1, "y": 2}],
                    "size": [3, "px"],
                    "type": "draw",
                },
            }
        ],
    }
    assert messages["Pong"]["examples"] == [
        {"name": "Pong-1", "payload": {"nonce": 7, "type": "pong"}}
    ]
    assert messages["Chat"] == {
        "name": "Chat",
        "title": "Chat",
        "payload": {"$ref": "#/components/schemas/Chat"},
    }
    # operations take handler docstrings
    assert doc["operations"][f"{LOBBY}.receive.Chat"]["summary"] == (
        "Say something to the whole lobby."
    )


def test_schemas_are_hoisted_and_draft07(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert sorted(schemas) == [
        "Chat",
        "Chatted",
        "Color",
        "Draw",
        "DroppedNotice",
        "Edit",
        "ErrorDetail",
        "ErrorFrame",
        "GapNotice",
        "HeartbeatPing",
        "HeartbeatPong",
        "Hello",
        "History",
        "HistoryPosition",  # the `$pos` member of messages to a history group
        "HistoryReply",
        "Joined",
        "Ping",
        "Point",
        "Pong",
        "Receipt",
        "ReconnectNotice",
        "RecoveryNotice",
        "Stroke",
        "UploadFrame",
    ]
    draw = schemas["Draw"]["properties"]
    assert draw["points"]["items"] == {"$ref": "#/components/schemas/Point"}
    # a $ref with a sibling keyword is wrapped: draft-07 ignores siblings of $ref
    assert draw["color"] == {"allOf": [{"$ref": "#/components/schemas/Color"}], "default": "red"}
    # tuple[int, Literal[...]]: prefixItems becomes draft-07's array form of items
    assert draw["size"]["items"] == [
        {"type": "integer"},
        {"enum": ["px", "em"], "type": "string"},
    ]
    assert "prefixItems" not in draw["size"]
    assert draw["origin"]["anyOf"] == [{"$ref": "#/components/schemas/Point"}, {"type": "null"}]
    assert schemas["Point"]["properties"]["x"] == {
        "description": "Column, from the left",
        "minimum": 0,
        "title": "X",
        "type": "integer",
    }
    assert schemas["Color"] == {"enum": ["red", "blue"], "title": "Color", "type": "string"}


def test_login_required_routes_are_secured(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"] == {
        "sessionidCookie": {"type": "httpApiKey", "in": "cookie", "name": "sessionid"}
    }
    for op_id, op in doc["operations"].items():
        assert ("security" in op) == op_id.startswith(BOARD), op_id


# -- the chat example -------------------------------------------------------------------


def test_chat_example() -> None:
    from examples.chat.app import app

    doc = generate(app)
    channel = "ws_chat_room"
    assert doc["info"] == {"title": "rtframe chat example", "version": "1.0.0"}
    assert list(doc["channels"]) == [channel]
    chat = doc["channels"][channel]
    assert chat["address"] == "/ws/chat/{room}"
    assert list(chat["parameters"]) == ["room"]
    assert chat["bindings"]["ws"]["query"]["properties"]["nick"]["default"] == "guest"
    assert "required" not in chat["bindings"]["ws"]["query"]
    ops = doc["operations"]
    assert ops[f"{channel}.receive.Say"]["messages"] == msgs(channel, "Say")
    assert ops[f"{channel}.receive.Rename"]["messages"] == msgs(channel, "Rename")
    assert "reply" not in ops[f"{channel}.receive.Say"]
    broadcast = ops[f"{channel}.broadcast.chat.room"]
    assert broadcast["action"] == "send"
    assert {"$ref": f"#/channels/{channel}/messages/Said"} in broadcast["messages"]
    assert {"$ref": f"#/channels/{channel}/messages/Notice"} in broadcast["messages"]
    said = doc["components"]["schemas"]["Said"]
    assert said["properties"]["at"] == {"format": "date-time", "title": "At", "type": "string"}
    assert said["required"] == ["nick", "text", "at"]


def test_django_chat_example() -> None:
    # a login-required route (rtframe.django.LoginRequired) is secured by the session cookie
    doc = cli_document("examples/django_chat::chatsite.asgi:application")
    channel = "ws_chat_room"
    assert doc["channels"][channel]["address"] == "/ws/chat/{room}"
    assert list(doc["channels"][channel]["parameters"]) == ["room"]
    assert doc["components"]["securitySchemes"] == {
        "sessionidCookie": {"type": "httpApiKey", "in": "cookie", "name": "sessionid"}
    }
    assert doc["operations"][f"{channel}.receive.Say"]["messages"] == msgs(channel, "Say")
    for op in doc["operations"].values():
        assert op["security"] == SECURED


def test_a_bytes_reply_is_a_binary_message() -> None:
    from rtframe import RealtimeApp, WebSocketRouter
    from rtframe.asyncapi import generate

    ws = WebSocketRouter()

    @ws.on_receive("/bin")
    async def echo(data: bytes) -> bytes:
        return data[::-1]

    reply = generate(RealtimeApp([ws]))["components"]["messages"]["EchoReply"]
    assert reply["contentType"] == "application/octet-stream"
    assert reply["summary"].endswith("echo` to its sender (a binary frame).")
    doc = generate(RealtimeApp([ws]))
    assert doc["components"]["schemas"]["EchoReply"] == {"type": "string", "format": "binary"}
