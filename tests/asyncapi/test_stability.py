"""The document changes when, and only when, the code's routes or schemas change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from rtframe import Connection, Group, RealtimeApp, WebSocketRouter
from rtframe.asyncapi import generate

from .conftest import FEATURE_APP, cli_document
from .feature_app import app as feature


def text(app: RealtimeApp) -> str:
    return json.dumps(generate(app), indent=2)


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    text: str


def build(
    *,
    say: type[BaseModel] = Say,
    path: str = "/ws/{room}",
    extra_route: bool = False,
    reversed_order: bool = False,
    body: Callable[[], Any] | None = None,
) -> RealtimeApp:
    """A small app; each keyword changes one thing about its code."""
    ws = WebSocketRouter()
    group = Group("g.{room}")

    async def join(conn: Connection, room: str) -> None:
        """Join."""

    async def talk(msg: Any) -> Any:
        """Talk."""
        if body is not None:
            body()
        return Said(text="x")

    async def other(msg: Any) -> Any:
        return Said(text="y")

    # set here: string annotations could not name the local `say`
    talk.__annotations__ = {"msg": say, "return": Said}
    # a broadcast handler must say what the group receives
    other.__annotations__ = {"msg": say, "return": Said}

    registrations: list[tuple[str, Any, Any]] = [(path, join, talk)]
    if extra_route:
        # `{room}` in the path: a route may only broadcast to groups its path can fill
        registrations.append(("/ws/other/{room}", None, other))
    if reversed_order:
        registrations.reverse()
    for route, connect, handler in registrations:
        if connect is not None:
            ws.add_connect_handler(route, connect)
        ws.add_receive_handler(route, group.broadcast(handler))
    return RealtimeApp(routers=[ws])


def test_the_same_app_gives_byte_identical_documents() -> None:
    assert text(feature) == text(feature)
    assert text(build()) == text(build())


def test_a_fresh_process_gives_the_same_bytes() -> None:
    # nothing depends on hash seeds, ids or import order inside one process
    assert cli_document(FEATURE_APP) == generate(feature)
    assert json.dumps(cli_document(FEATURE_APP)) == json.dumps(cli_document(FEATURE_APP))


def test_registration_order_does_not_matter() -> None:
    assert text(build(extra_route=True)) == text(build(extra_route=True, reversed_order=True))


def test_handler_bodies_and_http_routes_do_not_matter() -> None:
    app = build(body=lambda: None)
    assert text(app) == text(build())

    async def page(request: Any) -> Any:
        raise AssertionError("never called")

    app.add_http_route("/other", page)
    assert text(app) == text(build())


def test_a_new_route_changes_the_document() -> None:
    assert text(build(extra_route=True)) != text(build())


def test_a_changed_path_changes_the_document() -> None:
    changed = generate(build(path="/ws/rooms/{room}"))
    assert changed["channels"]["ws_rooms_room"]["address"] == "/ws/rooms/{room}"
    assert text(build(path="/ws/rooms/{room}")) != text(build())


def test_a_changed_schema_changes_the_document() -> None:
    class Say(BaseModel):  # same name, one constraint more
        type: Literal["say"] = "say"
        text: str = Field(max_length=10)

    before, after = generate(build()), generate(build(say=Say))
    assert after["components"]["schemas"]["Say"]["properties"]["text"]["maxLength"] == 10
    assert "maxLength" not in before["components"]["schemas"]["Say"]["properties"]["text"]
    assert text(build(say=Say)) != text(build())
