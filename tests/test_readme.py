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
    chat_source, test_source = python_blocks()[:2]
    assert "# chat.py" in chat_source
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
