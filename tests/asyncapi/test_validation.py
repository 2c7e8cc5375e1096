"""Every example app's document, and the feature app's, judged by the official AsyncAPI
parser and by the checks the parser does not make (tests/asyncapi/checks.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .checks import ROOT, errors, parser_diagnostics, problems
from .conftest import FEATURE_APP, SSE_FEATURE_APP, example_targets

TARGETS = [FEATURE_APP, SSE_FEATURE_APP, *example_targets()]
Judged = dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]


def test_every_example_directory_is_discovered() -> None:
    # discovery reads the examples; if it missed one, the tests below would not judge it
    assert "examples.chat.app:app" in TARGETS
    for example in sorted((ROOT / "examples").iterdir()):
        if example.is_dir() and any(example.rglob("*.py")) and example.name != "__pycache__":
            found = [
                t
                for t in TARGETS
                if t.startswith((f"examples.{example.name}.", f"examples/{example.name}::"))
            ]
            assert found, f"no app found in examples/{example.name}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_official_parser_accepts_the_document(target: str, judged: Judged) -> None:
    _, diagnostics = judged[target]
    assert errors(diagnostics) == []
    # the only note it makes is that 3.1.0 exists; anything else would need a look
    assert {d["code"] for d in diagnostics} <= {"asyncapi-latest-version"}


@pytest.mark.parametrize("target", TARGETS)
def test_the_document_passes_the_checks_the_parser_skips(target: str, judged: Judged) -> None:
    document, _ = judged[target]
    assert problems(document) == []


@pytest.mark.parametrize("target", TARGETS)
def test_every_route_is_a_channel_with_operations(target: str, judged: Judged) -> None:
    document, _ = judged[target]
    assert document["channels"]
    used = {op["channel"]["$ref"].rsplit("/", 1)[-1] for op in document["operations"].values()}
    assert used == set(document["channels"])


# -- the judges themselves can fail ---------------------------------------------------------


def _feature(judged: Judged) -> dict[str, Any]:
    return copy.deepcopy(judged[FEATURE_APP][0])


def test_the_parser_reports_errors(judged: Judged) -> None:
    no_version = _feature(judged)
    del no_version["info"]["version"]
    foreign = _feature(judged)
    op = foreign["operations"]["ws_lobby.receive.Chat"]
    op["messages"] = [{"$ref": "#/channels/ws_rooms_room_id_board/messages/Draw"}]
    no_version_diag, foreign_diag = parser_diagnostics(no_version, foreign)
    assert errors(no_version_diag)
    assert any("operation-messages" in d["code"] for d in errors(foreign_diag))


def test_the_checks_find_a_parameter_missing_from_the_channel(judged: Judged) -> None:
    document = _feature(judged)
    del document["channels"]["ws_rooms_room_id_board"]["parameters"]
    assert problems(document) == [
        "channel ws_rooms_room_id_board: address '/ws/rooms/{room_id}/board' has parameters "
        "['room_id'] but the channel declares []"
    ]


def test_the_checks_find_a_parameter_not_in_the_address(judged: Judged) -> None:
    document = _feature(judged)
    document["channels"]["ws_lobby"]["parameters"] = {"room": {"description": "x"}}
    assert len(problems(document)) == 1


def test_the_checks_find_a_query_string_in_an_address(judged: Judged) -> None:
    document = _feature(judged)
    document["channels"]["ws_lobby"]["address"] = "/ws/lobby?token=1"
    assert problems(document) == [
        "channel ws_lobby: address '/ws/lobby?token=1' has a query string or fragment"
    ]


def test_the_checks_find_a_dangling_ref(judged: Judged) -> None:
    document = _feature(judged)
    del document["components"]["schemas"]["Point"]
    found = problems(document)
    assert (
        "#/components/schemas/Stroke/properties/points/items: $ref "
        "#/components/schemas/Point does not resolve"
    ) in found
    assert all("Point" in p or "cannot be checked" in p for p in found)


def test_the_checks_find_an_example_that_does_not_match(judged: Judged) -> None:
    document = _feature(judged)
    document["components"]["messages"]["Pong"]["examples"][0]["payload"]["nonce"] = "seven"
    assert problems(document) == [
        "message Pong: example 1 fails its payload: 'seven' is not of type 'integer'"
    ]


def test_the_checks_find_2020_12_keywords(judged: Judged) -> None:
    document = _feature(judged)
    size = document["components"]["schemas"]["Draw"]["properties"]["size"]
    size["prefixItems"] = size.pop("items")
    assert problems(document) == ["components/schemas/Draw: 2020-12-only keywords ['prefixItems']"]


def test_the_checks_find_an_operation_message_outside_its_channel(judged: Judged) -> None:
    document = _feature(judged)
    op = document["operations"]["ws_lobby.receive.Chat"]
    op["messages"] = [{"$ref": "#/components/messages/Chat"}]
    assert problems(document) == [
        "operation ws_lobby.receive.Chat: message {'$ref': '#/components/messages/Chat'} "
        "is not in its channel #/channels/ws_lobby"
    ]
