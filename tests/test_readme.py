"""The README's examples run as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from rtframe.testing import TestClient

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


async def test_readme_chat_example_works_as_written() -> None:
    chat_source = next(b for b in python_blocks() if "# chat.py" in b)
    test_source = next(b for b in python_blocks() if "async def test_chat" in b)
    chat = types.ModuleType("readme_chat")
    sys.modules["readme_chat"] = chat  # pydantic resolves the models' annotations here
    try:
        exec(compile(chat_source, "README.md#chat.py", "exec"), chat.__dict__)
        namespace: dict[str, object] = {"app": chat.app, "TestClient": TestClient}
        exec(compile(test_source, "README.md#test", "exec"), namespace)
        await namespace["test_chat"]()  # type: ignore[operator]

        async with TestClient(chat.app) as client:
            async with client.websocket("/ws/chat/r?nick=x") as a, client.websocket("/ws/chat/r") as b:
                await b.send_json({"type": "say", "text": "y" * 2001})
                error = await b.receive_json()
                assert error["code"] == "validation_error"
                assert error["errors"][0]["loc"] == ["text"]
                assert error["errors"][0]["msg"] == "String should have at most 2000 characters"
                await a.receive_nothing()
    finally:
        del sys.modules["readme_chat"]


async def test_readme_history_example_replays_the_newest_messages_on_join() -> None:
    source = next(b for b in python_blocks() if "HistoryPolicy(" in b)
    namespace: dict[str, object] = {}
    exec(compile(source, "README.md#history", "exec"), namespace)
    from rtframe import RealtimeApp

    app = RealtimeApp([namespace["ws"]])  # type: ignore[list-item]
    async with TestClient(app) as client:
        for n in range(60):
            await app.broadcast(namespace["room"], {"n": n}, room="r")  # type: ignore[arg-type]
        async with client.websocket("/ws/chat/r") as ws:
            recent = [await ws.receive_json() for _ in range(50)]
            await ws.receive_nothing()
    assert [m["n"] for m in recent] == list(range(10, 60))
    assert recent[-1]["$pos"]["offset"] == 60
