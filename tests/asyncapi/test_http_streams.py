"""Streaming HTTP routes in the document (rtframe/asyncapi/http_streams.py).

The tests give the generator a description whose `http_routes` are the real
`HTTPRouteDescription`s of an `HTTPRouter`, beside the SSE feature app's routes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from rtframe.asyncapi import generate
from rtframe.description import AppDescription
from rtframe.http import StreamingResponse
from rtframe.http_routing import HTTPRouter

from . import sse_feature_app
from .checks import errors, parser_diagnostics, problems


def with_http_routes(base: AppDescription, routes: tuple[Any, ...]) -> AppDescription:
    return dataclasses.replace(base, http_routes=routes)


class Search(BaseModel):
    """What to look for."""

    text: str


http = HTTPRouter()


@http.get("/ticks/{room}", media_type="text/plain")
async def ticks(room: str, every: float = 1.0) -> StreamingResponse:
    """Count the seconds of a room.

    Args:
        room: the room's name
        every: seconds between ticks
    """
    raise AssertionError("never called")


@http.post("/search", media_type="application/x-ndjson")
async def search(body: Search) -> StreamingResponse:
    raise AssertionError("never called")


@http.put("/upload")
async def upload(data: bytes) -> StreamingResponse:
    raise AssertionError("never called")


@http.get("/plain")
async def plain() -> dict[str, int]:
    return {}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    routes = tuple(spec.describe() for spec in http.routes)
    return dict(generate(with_http_routes(sse_feature_app.app.describe(), routes)))


def test_a_streaming_route_is_an_http_channel_and_a_plain_one_is_left_out(
    doc: dict[str, Any],
) -> None:
    ticks = doc["channels"]["ticks_room"]
    assert ticks["address"] == "/ticks/{room}"
    assert ticks["summary"] == "Count the seconds of a room."
    assert ticks["servers"] == [{"$ref": "#/servers/default-http"}]
    assert ticks["bindings"] == {"http": {}}
    assert ticks["parameters"]["room"]["description"] == "the room's name (a path segment)"
    assert set(ticks["messages"]) == {"HTTPRequest", "TicksStream"}
    assert "plain" not in doc["channels"]  # request/response: OpenAPI's, not AsyncAPI's
    assert {"search", "upload"} <= set(doc["channels"])


def test_each_method_is_a_request_replied_by_the_streamed_body(doc: dict[str, Any]) -> None:
    ops = doc["operations"]
    get = ops["ticks_room.receive.get"]
    assert "ticks_room.receive.head" not in ops  # HEAD comes with GET, not listed
    assert get["summary"] == "`GET /ticks/{room}`, answered with a streamed `text/plain` body."
    assert get["messages"] == [{"$ref": "#/channels/ticks_room/messages/HTTPRequest"}]
    assert get["reply"]["messages"] == [{"$ref": "#/channels/ticks_room/messages/TicksStream"}]
    assert get["bindings"]["http"] == {
        "method": "GET",
        "query": {
            "type": "object",
            "properties": {
                "every": {"type": "number", "description": "seconds between ticks", "default": 1.0}
            },
        },
        "bindingVersion": "0.3.0",
    }
    assert get["x-rtframe-handler"] == "ticks"
    post = ops["search.receive.post"]
    assert post["messages"] == [{"$ref": "#/channels/search/messages/Search"}]
    assert post["bindings"]["http"] == {"method": "POST", "bindingVersion": "0.3.0"}
    put = ops["upload.receive.put"]
    assert put["messages"] == [{"$ref": "#/channels/upload/messages/UploadBody"}]
    messages = doc["components"]["messages"]
    assert messages["UploadBody"]["contentType"] == "application/octet-stream"
    assert messages["Search"]["payload"] == {"$ref": "#/components/schemas/Search"}
    assert "payload" not in messages["HTTPRequest"]
    assert messages["TicksStream"]["contentType"] == "text/plain"
    assert messages["SearchStream"]["contentType"] == "application/x-ndjson"
    undeclared = messages["UploadStream"]
    assert undeclared["contentType"] == "application/octet-stream"
    assert "declares no `media_type`" in undeclared["summary"]


def test_the_official_parser_and_the_checks_accept_it(doc: dict[str, Any]) -> None:
    (diagnostics,) = parser_diagnostics(doc)
    assert errors(diagnostics) == []
    assert problems(doc) == []


def test_without_http_routes_in_the_description_nothing_is_added() -> None:
    plain = generate(sse_feature_app.app)
    routes = tuple(spec.describe() for spec in http.routes if not spec.streaming)
    assert generate(with_http_routes(sse_feature_app.app.describe(), routes)) == plain


def test_two_streaming_handlers_of_one_path_are_two_channels() -> None:
    router = HTTPRouter()

    @router.get("/feed", media_type="text/plain")
    async def read_feed() -> StreamingResponse:
        raise AssertionError("never called")

    @router.post("/feed", media_type="application/x-ndjson")
    async def write_feed(body: Search) -> StreamingResponse:
        raise AssertionError("never called")

    routes = tuple(spec.describe() for spec in router.routes)
    document = generate(with_http_routes(sse_feature_app.app.describe(), routes))
    assert {document["channels"][c]["address"] for c in ("feed", "feed_2")} == {"/feed"}
    replies = {
        op_id: op["reply"]["messages"][0]["$ref"].rsplit("/", 1)[-1]
        for op_id, op in document["operations"].items()
        if op_id.startswith("feed")
    }
    assert sorted(replies.values()) == ["ReadFeedStream", "WriteFeedStream"]
