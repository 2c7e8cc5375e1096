"""The generator and the served document read only the app's public description."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel

from rtframe import Group, RealtimeApp, WebSocketRouter
from rtframe.asyncapi import generate, serve
from rtframe.description import (
    AppDescription,
    HandlerDescription,
    PathParam,
    QueryParam,
    RouteDescription,
)
from rtframe.http import Endpoint, Request


class Note(BaseModel):
    type: Literal["note"] = "note"
    text: str


rooms = Group("items.{id}")


async def join(id: int, limit: int = 10) -> None:
    """Follow one item."""


async def note(msg: Note) -> Note:
    """Annotate the item."""
    return msg


def described() -> AppDescription:
    """What `app.describe()` says, written out by hand."""
    limit = QueryParam("limit", int, required=False, default=10)
    connect = HandlerDescription("connect", join, "join", None, None, None, (), (limit,))
    receive = HandlerDescription("receive", note, "note", Note, Note, rooms, (), ())
    route = RouteDescription(
        path="/ws/items/{id:int}",
        address="/ws/items/{id}",
        path_params=(PathParam("id", "int", int, "[0-9]+"),),
        connect=connect,
        receive=(receive,),
        disconnect=(),
        query_params=(limit,),
        summary=None,
        max_message_size=65536,
        rate_limit=None,
    )
    return AppDescription("Items", "1.0.0", None, (route,), ())


def build() -> RealtimeApp:
    ws = WebSocketRouter()
    ws.add_connect_handler("/ws/items/{id:int}", join)
    ws.add_receive_handler("/ws/items/{id:int}", rooms.broadcast(note))
    return RealtimeApp(routers=[ws], title="Items", version="1.0.0", heartbeat=None)


app = build()


def test_a_description_written_by_hand_gives_the_apps_document() -> None:
    doc = generate(described())
    assert doc == generate(app)
    assert doc == generate(app.describe())
    channel = doc["channels"]["ws_items_id"]
    assert channel["address"] == "/ws/items/{id}"
    assert channel.get("parameters", {})["id"]["x-pattern"] == "^[0-9]+$"
    assert channel["bindings"]["ws"]["query"]["properties"]["limit"]["default"] == 10
    assert "ws_items_id.broadcast.items.id" in doc["operations"]


def test_anything_with_describe_is_a_target() -> None:
    class Stand:
        def describe(self) -> AppDescription:
            return described()

    assert generate(Stand()) == generate(described())


@pytest.mark.parametrize("target", [object(), "app", type("NotOne", (), {"describe": 1})()])
def test_a_target_that_does_not_describe_itself_is_named(target: Any) -> None:
    with pytest.raises(TypeError, match=f"cannot document a {type(target).__name__}"):
        generate(target)


class Served:
    """The two things `serve` needs of an app."""

    def __init__(self) -> None:
        self.description = described()
        self.endpoints: dict[str, Endpoint] = {}

    def describe(self) -> AppDescription:
        return self.description

    def add_http_route(self, path: str, endpoint: Endpoint) -> None:
        self.endpoints[path] = endpoint


async def _get(stub: Served, path: str) -> bytes:
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    response = await stub.endpoints[path](Request(scope))
    return response.body


async def test_the_served_document_follows_the_description(monkeypatch: Any) -> None:
    calls: list[AppDescription] = []

    def counting(target: Any, **options: Any) -> Any:
        calls.append(target)
        return generate(target, **options)

    monkeypatch.setattr(serve, "generate", counting)
    stub = Served()
    serve.serve(stub)
    assert sorted(stub.endpoints) == ["/asyncapi", "/asyncapi.json"]
    first = await _get(stub, "/asyncapi.json")
    await _get(stub, "/asyncapi")
    stub.description = described()  # a new but equal description: nothing changed
    assert await _get(stub, "/asyncapi.json") == first
    assert len(calls) == 1
    stub.description = AppDescription("Renamed", "2.0.0", None, stub.description.routes, ())
    assert b'"Renamed"' in await _get(stub, "/asyncapi.json")
    assert len(calls) == 2
