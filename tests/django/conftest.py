"""Django for the tests in this folder only: settings, users, sessions, a live example.

Django is configured when pytest collects this folder (not by DJANGO_SETTINGS_MODULE),
so the rest of the suite runs without Django or a database.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings

from tests.servers import uvicorn_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "django_chat"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

if not settings.configured:
    from tests.django import settings as test_settings

    settings.configure(**{k: getattr(test_settings, k) for k in dir(test_settings) if k.isupper()})
    django.setup()

PASSWORD = "correct horse battery staple"


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    """Create a user; `perms=["chat.add_message"]` grants permissions."""
    from django.contrib.auth.models import Permission, User

    def make(username: str, perms: tuple[str, ...] = ()) -> User:
        user = User.objects.create_user(username, password=PASSWORD)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    return make


def session_cookie(user: Any) -> dict[str, str]:
    """The Cookie header a browser sends after this user logged in (any SESSION_ENGINE).

    Passed as a raw header, as browsers send it: signed-cookie sessions contain ':'.
    """
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return {"cookie": f"{name}={client.cookies[name].value}"}


def session_key(headers: dict[str, str]) -> str:
    return headers["cookie"].partition("=")[2]


# -- the example served by a real uvicorn ---------------------------------------------


@dataclass
class ChatServer:
    """The example project running under uvicorn, with users and a room."""

    port: int
    users: tuple[str, ...]
    room: str
    env: dict[str, str]
    #: every process serving the project, `port` first (several share one Redis and database)
    ports: tuple[int, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count_messages(self) -> int:
        """Rows in the example's message table, read straight from its sqlite file."""
        with closing(sqlite3.connect(self.env["DJANGO_CHAT_DB"])) as db:
            return int(db.execute("SELECT COUNT(*) FROM chat_message").fetchone()[0])


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@contextmanager
def serve_example(redis_url: str | None, room: str, processes: int = 1) -> Iterator[ChatServer]:
    """Migrate a temporary sqlite database, add two users and a room, start uvicorn
    (`processes` of them, each on its own port, sharing the database)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DJANGO_CHAT_DB": str(Path(tmp) / "chat.sqlite3"),
        }
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
            # its own channels: other test runs may share this Redis (and users' ids)
            env["RTFRAME_PREFIX"] = f"test-{uuid.uuid4().hex[:8]}"
        manage(env, "migrate", "--noinput")
        users = ("ada", "grace")
        setup = (
            "from django.contrib.auth.models import User\n"
            "from chatsite.chat.models import Room\n"
            f"for name in {users!r}: User.objects.create_user(name, password={PASSWORD!r})\n"
            f"Room.objects.create(slug={room!r}, title='Lobby')\n"
        )
        manage(env, "shell", "-c", setup)
        with ExitStack() as servers:
            ports = tuple(
                servers.enter_context(
                    uvicorn_server(
                        "chatsite.asgi:application",
                        # no REDIS_URL unless given (scripts/test exports one): in memory
                        env={"REDIS_URL": None, **env},
                        args=("--app-dir", str(EXAMPLE)),
                    )
                )
                for _ in range(processes)
            )
            yield ChatServer(port=ports[0], users=users, room=room, env=env, ports=ports)


@pytest.fixture(scope="session")
def chat_server() -> Iterator[ChatServer]:
    """The example on the in-memory layer: one process serves everything."""
    with serve_example(None, "lobby") as server:
        yield server


@pytest.fixture(scope="session")
def chat_server_redis() -> Iterator[ChatServer]:
    """The example on the Redis layer (REDIS_URL, a real server; never skipped)."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    # a room of its own: other tests may share this Redis and its channel names
    with serve_example(url, f"lobby-{uuid.uuid4().hex[:8]}") as server:
        yield server


@pytest.fixture(scope="session")
def chat_servers_redis() -> Iterator[ChatServer]:
    """Two processes of the example sharing one database and one Redis (REDIS_URL)."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    with serve_example(url, f"lobby-{uuid.uuid4().hex[:8]}", processes=2) as server:
        yield server


_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token(html: str) -> str:
    found = _CSRF_INPUT.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)
