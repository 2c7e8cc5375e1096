"""The README's Django section runs as written: its `asgi.py` and `realtime.py`, put in a
project, chat for a logged-in user and refuse anonymous visitors.

The docs harness (tests/docs) only compiles `# file:` blocks nothing on the page imports;
this test imports them, in the Django these tests configured.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from rtframe.testing import HandshakeRejected, TestClient
from tests.docs.snippets import ROOT, parse

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def django_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## With Django\n")
    return readme[start : readme.index("\n## ", start + 1)]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Any]:
    """The section's `# file:` blocks written out and imported; its asgi application."""
    files = [b for b in parse(django_section(), "README.md").blocks if b.file]
    assert sorted(b.file for b in files if b.file) == ["myproject/asgi.py", "rooms/realtime.py"]
    for block in files:
        assert block.file is not None
        path = tmp_path / block.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("myproject.asgi").application
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] in ("myproject", "rooms")]:
            del sys.modules[name]


async def test_the_readme_django_project_chats_as_the_logged_in_user(
    project: Any, make_user: Callable[..., Any]
) -> None:
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    grace = await sync_to_async(session_cookie)(await sync_to_async(make_user)("grace"))
    async with TestClient(project) as client:
        async with (
            client.websocket("/ws/chat/lobby", headers=ada) as one,
            client.websocket("/ws/chat/lobby", headers=grace) as two,
        ):
            await one.send_json({"type": "say", "text": "hello"})
            for conn in (one, two):  # joined the room's group: both get it
                assert await conn.receive_json() == {"nick": "ada", "text": "hello"}
        with pytest.raises(HandshakeRejected) as refused:
            async with client.websocket("/ws/chat/lobby"):
                pass
        assert refused.value.code == 4401
