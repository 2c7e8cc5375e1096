"""Presence through groups and connections (memory layer): who is in a room, counts
per user, coalesced `$presence` events, and leaving on disconnect."""

from __future__ import annotations

import pytest

from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    PresencePolicy,
    RealtimeApp,
    WebSocketRouter,
)
from rtframe._scope import USER_SCOPE_KEY
from rtframe.testing import TestClient


def room_app(events: bool = True) -> tuple[RealtimeApp, Group]:
    room = Group("room.{name}", presence=PresencePolicy(events=events, coalesce=0.05))
    ws = WebSocketRouter()

    @ws.route("/room/{name}")
    async def join(conn: Connection) -> None:
        nick = conn.query_params.get("nick", "anon")
        user = conn.query_params.get("user")
        if user is not None:  # what rtframe.django does for a logged-in user
            conn.scope[USER_SCOPE_KEY] = user
        await room.add(conn, presence_meta={"nick": nick})
        await conn.accept()

    return RealtimeApp([ws]), room


async def test_present_lists_every_member_with_its_user_and_meta() -> None:
    app, room = room_app(events=False)
    async with (
        TestClient(app) as client,
        client.websocket("/room/a?nick=ann&user=1"),
        client.websocket("/room/a?nick=bob"),
        client.websocket("/room/b?nick=cy"),
    ):
        present = await room.present(name="a")
        assert [(p.user, p.meta["nick"]) for p in present] == [("1", "ann"), (None, "bob")]
        assert all(p.connected_at > 0 and p.id for p in present)
        assert [p.meta["nick"] for p in await room.present(name="b")] == ["cy"]


async def test_several_tabs_of_one_user_count_once() -> None:
    app, room = room_app(events=False)
    async with (
        TestClient(app) as client,
        client.websocket("/room/a?user=7"),
        client.websocket("/room/a?user=7"),
        client.websocket("/room/a"),
    ):
        stats = await room.presence_stats(name="a")
        assert (stats.connections, stats.users) == (3, 2)


async def test_joins_and_leaves_reach_members_as_coalesced_events() -> None:
    app, room = room_app()
    async with TestClient(app) as client, client.websocket("/room/a?nick=ann") as ann:
        first = await ann.receive_json()  # ann's own join
        assert first["type"] == "$presence" and [j["meta"]["nick"] for j in first["joined"]] == [
            "ann"
        ]
        async with client.websocket("/room/a?nick=bob"), client.websocket("/room/a?nick=cy"):
            joined = await ann.receive_json()  # both joins in one frame
            assert sorted(j["meta"]["nick"] for j in joined["joined"]) == ["bob", "cy"]
            ids = {j["id"] for j in joined["joined"]}
        left = await ann.receive_json()
        assert left["type"] == "$presence" and set(left["left"]) == ids
        await ann.receive_nothing(0.2)
        assert [p.meta["nick"] for p in await room.present(name="a")] == ["ann"]


def test_a_template_field_may_not_shadow_a_keyword_of_add() -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        Group("room.{presence_user}")
