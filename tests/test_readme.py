"""What the README claims about its examples, beyond running them (tests/docs runs every
block): the error frame it shows is the one the chat sends, and the history example
replays what it says."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtframe import RealtimeApp
from rtframe.testing import TestClient
from tests.docs.snippets import parse

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = parse(README.read_text(), "README.md").blocks


def module_from(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module  # pydantic resolves the models' annotations here
    exec(compile(source, f"README.md#{name}", "exec"), module.__dict__)
    return module


@pytest.fixture
def chat() -> Iterator[types.ModuleType]:
    source = next(b.code for b in BLOCKS if b.file == "chat.py")
    try:
        yield module_from(source, "readme_chat")
    finally:
        del sys.modules["readme_chat"]


async def test_the_error_frame_shown_is_the_one_sent(chat: types.ModuleType) -> None:
    shown = next(b.code for b in BLOCKS if b.lang == "json" and "validation_error" in b.code)
    async with TestClient(chat.app) as client:
        async with client.websocket("/ws/chat/r?nick=x") as a, client.websocket("/ws/chat/r") as b:
            await b.send_json({"type": "say", "text": "y" * 2001})
            assert await b.receive_json() == json.loads(shown)
            await a.receive_nothing()


async def test_the_history_example_replays_the_newest_messages_on_join() -> None:
    source = next(b.code for b in BLOCKS if "HistoryPolicy(" in b.code)
    try:
        history = module_from(source, "readme_history")
        app = RealtimeApp([history.ws])
        async with TestClient(app) as client:
            for n in range(60):
                await app.broadcast(history.room, {"n": n}, room="r")
            async with client.websocket("/ws/chat/r") as ws:
                recent = [await ws.receive_json() for _ in range(50)]
                await ws.receive_nothing()
    finally:
        del sys.modules["readme_history"]
    assert [m["n"] for m in recent] == list(range(10, 60))
    assert recent[-1]["$pos"]["offset"] == 60
