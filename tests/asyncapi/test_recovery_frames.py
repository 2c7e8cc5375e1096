"""History, recovery and presence in the document: `$recovery`, `$gap`, `$presence`, the
`$since` query parameter and the `$pos` member (rtframe/asyncapi/control.py)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from rtframe.asyncapi import generate
from rtframe.description import AppDescription
from rtframe.history import PositionModel, parse_since

from . import feature_app
from .checks import errors, parser_diagnostics, problems
from .feature_app import Chatted, Joined

BOARD = "ws_rooms_room_id_board"
LOBBY = "ws_lobby"
DOCS = "ws_docs_doc_id_section"
POS = {"$ref": "#/components/schemas/HistoryPosition"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(generate(feature_app.app))


def test_a_history_group_gets_recovery_since_and_positions(doc: dict[str, Any]) -> None:
    recovery = doc["operations"][f"{LOBBY}.send.recovery"]
    assert recovery["action"] == "send"
    assert recovery["messages"] == [{"$ref": f"#/channels/{LOBBY}/messages/RecoveryNotice"}]
    assert "`recovered: false` nothing is replayed" in recovery["description"]
    assert recovery["description"].endswith("Groups: `lobby`.")
    notice = doc["components"]["schemas"]["RecoveryNotice"]
    assert notice["properties"]["type"]["const"] == "$recovery"
    assert set(notice["required"]) == {"group", "recovered", "replayed", "epoch", "offset"}
    broadcast = doc["operations"][f"{LOBBY}.broadcast.lobby"]
    assert "keeps its last 100 messages for 60 s" in broadcast["description"]
    assert "`$pos`" in broadcast["description"]


def test_since_is_an_optional_query_parameter_of_the_ws_binding(doc: dict[str, Any]) -> None:
    query = doc["channels"][LOBBY]["bindings"]["ws"]["query"]
    since = query["properties"]["$since"]
    assert "required" not in query
    assert (since["type"], since["contentMediaType"]) == ("string", "application/json")
    assert "URL-encoded" in since["description"] and "(1008)" in since["description"]
    assert "History groups: `lobby`." in since["description"]
    # the example is what a client sends, and what the server reads
    (example,) = since["examples"]
    assert parse_since(example)["chat.lobby"].offset == 17


def test_messages_to_a_history_group_carry_an_optional_position(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    chatted = schemas["Chatted"]
    assert chatted["properties"]["$pos"] == POS
    assert "$pos" not in chatted.get("required", [])
    # the position's schema has the fields of the position on the wire, no more
    position = schemas["HistoryPosition"]
    wire = PositionModel.model_json_schema()
    assert list(position["properties"]) == list(wire["properties"])
    assert position["required"] == wire["required"]
    assert position["properties"]["offset"]["minimum"] == 1
    # a message that is also a reply (the history list) keeps its one schema
    assert schemas["HistoryReply"]["items"] == {"$ref": "#/components/schemas/Chatted"}


def test_a_group_without_history_gets_gap_notices_only(doc: dict[str, Any]) -> None:
    operations = doc["operations"]
    gap = operations[f"{BOARD}.send.gap"]
    assert gap["messages"] == [{"$ref": f"#/channels/{BOARD}/messages/GapNotice"}]
    assert "messages sent from other servers meanwhile were lost" in gap["description"]
    assert gap["description"].endswith("Groups: `room.{room_id}`.")
    assert f"{BOARD}.send.recovery" not in operations
    assert "$since" not in doc["channels"][BOARD]["bindings"]["ws"]["query"]["properties"]
    assert "$pos" not in doc["components"]["schemas"]["Stroke"]["properties"]
    # the lobby keeps history, so it gets recovery instead of gap notices
    assert f"{LOBBY}.send.gap" not in operations
    # a route whose handlers reach no group gets neither
    assert not {f"{DOCS}.send.gap", f"{DOCS}.send.recovery"} & set(operations)


class HistoryPosition(BaseModel):
    """An app's own model that happens to have the name rtframe uses for `$pos`."""

    type: Literal["history_position"] = "history_position"
    move: int


def _lobby_broadcasting(returns: Any, group: Any) -> AppDescription:
    """The feature app's description, with the lobby's `chat` handler returning `returns`
    to `group` (a stand-in: groups with presence, or without the new attributes)."""
    description = feature_app.app.describe()
    routes = []
    for route in description.routes:
        if route.address == "/ws/lobby":
            receive = tuple(
                dataclasses.replace(h, returns=returns, broadcast=group)
                if h.fn is feature_app.chat
                else h
                for h in route.receive
            )
            route = dataclasses.replace(route, receive=receive)
        routes.append(route)
    return dataclasses.replace(description, routes=tuple(routes))


def test_presence_events_a_union_and_a_name_taken_by_the_app() -> None:
    group = SimpleNamespace(
        template="lobby",
        history=feature_app.lobby.history,
        presence=SimpleNamespace(events=True),
    )
    document = generate(_lobby_broadcasting(Chatted | Joined | HistoryPosition, group))
    presence = document["operations"][f"{LOBBY}.send.presence"]
    assert presence["messages"] == [{"$ref": f"#/channels/{LOBBY}/messages/PresenceNotice"}]
    assert "as a set by id" in presence["description"]
    schemas = document["components"]["schemas"]
    assert schemas["PresenceNotice"]["properties"]["type"]["const"] == "$presence"
    assert "PresenceInfo" in schemas
    # every model of the union carries the position; rtframe's schema gave way to the app's
    ours = {"$ref": "#/components/schemas/HistoryPosition_2"}
    for name in ("Chatted", "Joined", "HistoryPosition"):
        assert schemas[name]["properties"]["$pos"] == ours, name
    assert schemas["HistoryPosition_2"]["title"] == "HistoryPosition"
    assert list(schemas) == sorted(schemas)
    # the official parser and the checks accept it
    assert problems(document) == []
    (diagnostics,) = parser_diagnostics(json.loads(json.dumps(document)))
    assert errors(diagnostics) == []


def test_a_group_without_the_attributes_has_neither_history_nor_presence() -> None:
    document = generate(_lobby_broadcasting(Chatted, SimpleNamespace(template="lobby")))
    operations = document["operations"]
    assert f"{LOBBY}.send.gap" in operations
    assert not {f"{LOBBY}.send.recovery", f"{LOBBY}.send.presence"} & set(operations)
    assert "$pos" not in document["components"]["schemas"]["Chatted"]["properties"]
    assert "HistoryPosition" not in document["components"]["schemas"]
