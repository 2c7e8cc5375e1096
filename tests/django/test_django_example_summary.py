"""The example's "Summarise" in-process: a Django `@task` on the in-process task engine
reports its progress to the socket that asked and posts the summary to the room."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from rtframe.testing import TestClient

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

# Imported by name: the example lives outside the package tree mypy sees.
application = import_module("chatsite.asgi").application
models = import_module("chatsite.chat.models")
realtime = import_module("chatsite.chat.realtime")
chat_tasks = import_module("chatsite.chat.tasks")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(application) as c:
        yield c


@pytest.fixture
def lobby(db: None) -> Any:
    return models.Room.objects.create(slug="lobby", title="Lobby")


async def outcome(task_id: str) -> Any:
    """Django's result of the task once it finished (its last frame comes just before)."""
    for _ in range(500):
        result = await chat_tasks.summarise_room.aget_result(task_id)
        if result.is_finished:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {task_id} is still {result.status}")


def post(room: Any, author: Any, *texts: str) -> None:
    for text in texts:
        models.Message.objects.create(room=room, author=author, text=text)


async def test_the_django_tasks_backend_is_the_rtframe_one() -> None:
    from rtframe.django.tasks import RtframeTaskBackend

    backend = chat_tasks.summarise_room.get_backend()  # settings.TASKS["default"]
    assert isinstance(backend, RtframeTaskBackend)
    assert backend.tasks is realtime.tasks


async def test_the_asker_sees_progress_and_everyone_sees_the_summary(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada_user = await sync_to_async(make_user)("ada")
    grace_user = await sync_to_async(make_user)("grace")
    await sync_to_async(post)(lobby, ada_user, "hello there", "how are you")
    await sync_to_async(post)(lobby, grace_user, "fine thanks, and you?")
    ada = await sync_to_async(session_cookie)(ada_user)
    grace = await sync_to_async(session_cookie)(grace_user)
    async with (
        client.websocket("/ws/chat/lobby", headers=ada) as asker,
        client.websocket("/ws/chat/lobby", headers=grace) as other,
    ):
        await asker.send_json({"type": "summarise"})
        frames = []
        while True:
            frame = await asker.receive_json()
            frames.append(frame)
            if frame["type"] == "task_progress" and frame["progress"] == 1.0:
                break
        started = next(f for f in frames if f["type"] == "summary_started")
        progress = [f for f in frames if f["type"] == "task_progress"]
        assert {f["task_id"] for f in progress} == {started["task_id"]}
        # the frames name the rtframe task that runs Django tasks; the id is Django's
        assert {f["task"] for f in progress} == {"rtframe.django.tasks.run"}
        values = [f["progress"] for f in progress if f["progress"] is not None]
        assert values == sorted(values) and values[0] == 0.0 and len(values) >= 4
        summary = next(f for f in frames if f["type"] == "summary")
        assert summary == await other.receive_json()  # the whole room gets the summary
        assert summary["asked_by"] == "ada"
        assert (summary["messages"], summary["words"]) == (3, 9)
        assert summary["per_user"] == {"ada": 2, "grace": 1}
        assert (summary["first"], summary["last"]) == ("hello there", "fine thanks, and you?")
        assert summary["text"].startswith("3 messages, 9 words (ada 2, grace 1).")
        await other.receive_nothing()  # progress goes to the asker only

    # Django's own API reads the outcome back (the record is rtframe's)
    result = await outcome(started["task_id"])
    assert str(result.status) == "SUCCESSFUL"
    assert result.return_value["words"] == 9
    assert result.args == ["lobby", "ada"]


async def test_an_empty_room_gets_a_summary_too(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with client.websocket("/ws/chat/lobby", headers=ada) as asker:
        await asker.send_json({"type": "summarise"})
        while (frame := await asker.receive_json())["type"] != "summary":
            assert frame["type"] in ("summary_started", "task_progress")
        assert (frame["messages"], frame["text"]) == (0, "No messages yet.")
        assert frame["first"] is None


async def test_a_room_deleted_meanwhile_fails_the_task_and_tells_the_asker(
    client: TestClient, lobby: Any, make_user: Callable[..., Any]
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with client.websocket("/ws/chat/lobby", headers=ada) as asker:
        await sync_to_async(lobby.delete)()  # an admin removes the room under the page
        await asker.send_json({"type": "summarise"})
        frame = await asker.receive_json()
        while frame.get("status") != "failed":
            assert frame["type"] in ("summary_started", "task_progress"), frame
            frame = await asker.receive_json()
        assert (frame["type"], frame["error"]) == ("task_progress", "DoesNotExist")
        task_id = frame["task_id"]
    result = await outcome(task_id)
    assert str(result.status) == "FAILED"
    assert result.errors[0].exception_class_path == "chatsite.chat.models.Room.DoesNotExist"


async def test_an_asker_who_left_does_not_stop_the_summary(
    client: TestClient, lobby: Any, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    grace = await sync_to_async(session_cookie)(await sync_to_async(make_user)("grace"))
    async with client.websocket("/ws/chat/lobby", headers=grace) as other:
        async with client.websocket("/ws/chat/lobby", headers=ada) as asker:
            await asker.send_json({"type": "summarise"})
            started = await asker.receive_json()
            while started["type"] != "summary_started":  # a progress frame may come first
                started = await asker.receive_json()
        # the asker's page is gone: the room still gets the summary
        summary = await other.receive_json()
        assert (summary["type"], summary["asked_by"]) == ("summary", "ada")
    result = await outcome(started["task_id"])
    assert str(result.status) == "SUCCESSFUL"
    assert "dropped: no such member" in caplog.text  # the lost progress is not silent
