"""The chat example in-process: ORM persistence, guards, a Django view broadcasting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from rtframe.testing import HandshakeRejected, TestClient

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

# Imported by name: the example lives outside the package tree mypy sees.
application = import_module("chatsite.asgi").application
models = import_module("chatsite.chat.models")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(application) as c:
        yield c


@pytest.fixture
def lobby(db: None) -> Any:
    return models.Room.objects.create(slug="lobby", title="Lobby")


def texts_in(slug: str) -> list[tuple[str, str]]:
    rows = models.Message.objects.filter(room__slug=slug).select_related("author")
    return [(m.author.username, m.text) for m in rows]


async def test_a_message_is_saved_and_reaches_everyone_in_the_room(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    grace = await sync_to_async(session_cookie)(await sync_to_async(make_user)("grace"))
    async with (
        client.websocket("/ws/chat/lobby", headers=ada) as one,
        client.websocket("/ws/chat/lobby", headers=grace) as two,
    ):
        await one.send_json({"type": "say", "text": "hello from ada"})
        for conn in (one, two):
            said = await conn.receive_json()
            assert (said["type"], said["user"], said["text"]) == ("said", "ada", "hello from ada")
    assert await sync_to_async(texts_in)("lobby") == [("ada", "hello from ada")]


async def test_rooms_are_separate(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    await sync_to_async(models.Room.objects.create)(slug="other", title="Other")
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with (
        client.websocket("/ws/chat/lobby", headers=ada) as lobby_conn,
        client.websocket("/ws/chat/other", headers=ada) as other_conn,
    ):
        await other_conn.send_json({"type": "say", "text": "elsewhere"})
        assert (await other_conn.receive_json())["text"] == "elsewhere"
        await lobby_conn.receive_nothing()


async def test_anonymous_visitors_are_refused(client: TestClient, lobby: Any) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        async with client.websocket("/ws/chat/lobby"):
            pass
    assert refused.value.code == 4401


async def test_unknown_room_is_refused(client: TestClient, make_user: Callable[..., Any]) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    with pytest.raises(HandshakeRejected) as refused:
        async with client.websocket("/ws/chat/nowhere", headers=ada):
            pass
    assert refused.value.code == 4404


async def test_invalid_message_is_answered_and_not_saved(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with client.websocket("/ws/chat/lobby", headers=ada) as conn:
        await conn.send_json({"type": "say", "text": ""})
        error = await conn.receive_json()
        assert error["type"] == "error"
        assert error["code"] == "validation_error"
        await conn.send_json({"type": "say", "text": "still here"})
        assert (await conn.receive_json())["text"] == "still here"
    assert await sync_to_async(texts_in)("lobby") == [("ada", "still here")]


async def test_a_django_view_broadcasts_to_connected_clients(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada_user = await sync_to_async(make_user)("ada")
    grace = await sync_to_async(session_cookie)(await sync_to_async(make_user)("grace"))
    http = AsyncClient()
    await sync_to_async(http.force_login)(ada_user)
    async with client.websocket("/ws/chat/lobby", headers=grace) as conn:
        # a plain sync view: it saves with the ORM, then async_to_sync(rooms.send)(...)
        response = await http.post("/rooms/lobby/messages/", {"text": "posted by a form"})
        assert response.status_code == 302
        said = await conn.receive_json()
        assert (said["user"], said["text"]) == ("ada", "posted by a form")
    assert await sync_to_async(texts_in)("lobby") == [("ada", "posted by a form")]


async def test_the_django_pages_render(lobby: Any, make_user: Callable[..., Any]) -> None:
    http = AsyncClient()
    await sync_to_async(http.force_login)(await sync_to_async(make_user)("ada"))
    assert (await http.get("/")).status_code == 200
    page = await http.get("/rooms/lobby/")
    assert b"/ws/chat/" in page.content
    assert (await AsyncClient().get("/rooms/lobby/")).status_code == 302  # login first


async def test_the_example_serves_metrics_beside_django(client: TestClient, lobby: Any) -> None:
    with pytest.raises(HandshakeRejected):
        async with client.websocket("/ws/chat/lobby"):  # anonymous: refused and counted
            pass
    response = await client.get("/metrics")
    assert response.status == 200
    assert "rtframe_handshakes_refused_total" in response.text
    assert 'reason="rejected"' in response.text
