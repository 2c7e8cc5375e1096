"""Configuration from settings.RTFRAME, and mounting beside Django."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

import rtframe.django as rd
from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    HistoryPolicy,
    InMemoryLayer,
    JSONResponse,
    RealtimeApp,
    Request,
    WebSocketRouter,
)
from rtframe.django import logout
from rtframe.django.logout import CONTROL_GROUP
from rtframe.layers.redis import RedisLayer
from rtframe.testing import TestClient
from tests.layers.redis_servers import REDIS_URL, require_redis
from tests.servers import ROOT


def test_create_app_reads_the_settings() -> None:
    conf = {"MAX_MESSAGE_SIZE": 1234, "OUTBOX_LIMIT": 7, "OVERFLOW": "close", "TITLE": "Chat"}
    with override_settings(RTFRAME=conf):
        app = rd.create_app()
    assert (app.max_message_size, app.outbox_limit, app.overflow) == (1234, 7, "close")
    assert app.title == "Chat"
    assert isinstance(app.layer, InMemoryLayer)


def test_create_app_overrides_win() -> None:
    with override_settings(RTFRAME={"MAX_MESSAGE_SIZE": 1234}):
        assert rd.create_app(max_message_size=99).max_message_size == 99


def test_unknown_setting_is_a_clear_error() -> None:
    with override_settings(RTFRAME={"MAX_MESAGE_SIZE": 1}):
        with pytest.raises(ConfigurationError, match="MAX_MESAGE_SIZE"):
            rd.create_app()


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"URL": "amqp://x"}, "redis://"),
        ({"HOST": "x"}, "unknown key"),
        ("redis://x", "must be a dict"),
        ({"BACKEND": "rtframe.app.RealtimeApp"}, "not an rtframe Layer"),
    ],
)
def test_bad_layer_settings_are_clear_errors(layer: object, match: str) -> None:
    with override_settings(RTFRAME={"LAYER": layer}):
        with pytest.raises(ConfigurationError, match=match):
            rd.layer_from_settings()


def test_layer_url_none_or_memory_is_in_memory() -> None:
    for url in (None, "memory://"):
        assert isinstance(rd.layer_from_settings({"LAYER": {"URL": url}}), InMemoryLayer)


def test_layer_backend_by_dotted_path() -> None:
    layer = rd.layer_from_settings({"LAYER": {"BACKEND": "rtframe.InMemoryLayer"}})
    assert isinstance(layer, InMemoryLayer)


def test_redis_url_gives_the_redis_layer() -> None:
    from rtframe.layers.redis import RedisLayer

    layer = rd.layer_from_settings({"LAYER": {"URL": "redis://127.0.0.1:6379/0"}})
    assert isinstance(layer, RedisLayer)


@pytest.mark.django_db(transaction=True)
async def test_http_goes_to_django_and_own_routes_stay_reachable() -> None:
    app = RealtimeApp()

    @app.get("/realtime/health")
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async with TestClient(rd.mount(app)) as client:
        assert (await client.get("/realtime/health")).json() == {"ok": True}
        page = await client.get("/accounts/login/")  # a Django view of the example
        assert page.status == 200
        assert "csrfmiddlewaretoken" in page.text
        assert (await client.get("/no/such/page/")).status == 404


async def test_lifespan_is_answered_by_rtframe() -> None:
    # Django's ASGI handler refuses lifespan; mounted, the app still starts and stops.
    app = rd.mount(RealtimeApp())
    async with TestClient(app):
        assert app._started
    assert not app._started


# -- the Redis key prefix, set through RTFRAME["LAYER"]["OPTIONS"] ---------------------------

prefixed = WebSocketRouter()
rooms = Group("chat.{room}", history=HistoryPolicy(size=10, ttl=60))


@prefixed.route("/ws/chat/{room}")
async def join(conn: Connection, room: str) -> None:
    await rooms.add(conn)
    await conn.accept()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A prefix of this test only; its keys are deleted afterwards (Redis is shared)."""
    require_redis()
    name = f"test-prefix-{uuid.uuid4().hex[:8]}"
    yield name
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(f"*{name}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.mark.redis
async def test_the_prefix_in_layer_options_starts_every_redis_channel_and_key(prefix: str) -> None:
    room = uuid.uuid4().hex[:8]
    conf = {"LAYER": {"URL": REDIS_URL, "OPTIONS": {"prefix": prefix}}, "CHECK_ORIGIN": False}
    with override_settings(RTFRAME=conf):
        app = rd.create_app([prefixed])
    assert isinstance(app.layer, RedisLayer) and app.layer.prefix == prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        async with TestClient(app) as test_client:
            async with test_client.websocket(f"/ws/chat/{room}") as conn:
                await app.broadcast(rooms, {"text": "kept in the history"}, room=room)
                assert (await conn.receive_json())["text"] == "kept in the history"
                channels = {c.decode() for c in client.pubsub_channels(f"*{room}*")}
                keys = {k.decode() for k in client.scan_iter(f"*{room}*", count=1000)}
        # the group's pub/sub channel and its history, and nothing under the default prefix
        assert channels == {f"{prefix}:g:chat.{room}"}
        # history keys carry a cluster hash tag: "{<prefix>:g:<group>}:m"
        assert keys and all(key.removeprefix("{").startswith(f"{prefix}:") for key in keys), keys


@pytest.mark.redis
def test_a_process_running_no_app_publishes_under_the_prefix_of_the_settings() -> None:
    # end_sessions from a command: the layer of settings.RTFRAME, one per description
    require_redis()
    first, second = (f"test-prefix-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with redis.Redis.from_url(REDIS_URL) as client, client.pubsub() as listener:
        listener.subscribe(*(f"{p}:g:{CONTROL_GROUP}" for p in (first, second)))
        for _ in range(2):
            confirmed = listener.get_message(timeout=2)
            assert confirmed is not None and confirmed["type"] == "subscribe"
        heard = []
        for prefix in (first, second):
            conf = {"LAYER": {"URL": REDIS_URL, "OPTIONS": {"prefix": prefix}}}
            with override_settings(RTFRAME=conf):
                rd.end_sessions(session_key=f"key-{prefix}")
            message = listener.get_message(timeout=2)
            assert message is not None
            heard.append(message["channel"].decode())
        assert heard == [f"{first}:g:{CONTROL_GROUP}", f"{second}:g:{CONTROL_GROUP}"]
    for key, layer in list(logout._settings_layer.items()):
        if isinstance(layer, RedisLayer) and layer.prefix in (first, second):
            del logout._settings_layer[key]
            layer.sync_publisher().close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"prefx": "myproject"}, r"OPTIONS.*does not fit RedisLayer.*prefx"),
        ({"prefix": "my project"}, "prefix must be a non-empty string without spaces"),
        ("myproject", r"OPTIONS.*must be a dict"),
    ],
)
def test_bad_layer_options_are_clear_errors(options: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        rd.layer_from_settings({"LAYER": {"URL": REDIS_URL, "OPTIONS": options}})


def test_a_prefix_key_beside_url_points_at_options() -> None:
    with pytest.raises(ConfigurationError, match=r'"OPTIONS": \{"prefix": "myproject"\}'):
        rd.layer_from_settings({"LAYER": {"URL": REDIS_URL, "PREFIX": "myproject"}})


# -- when rtframe.django may be imported (README and docs/django.md say the same) ------------

IMPORT_FIRST = """
import rtframe.django  # before any settings exist
from django.core.exceptions import ImproperlyConfigured
try:
    rtframe.django.create_app()
except ImproperlyConfigured:
    print("create_app before the settings: ImproperlyConfigured")
import django
from django.conf import settings
settings.configure(
    SECRET_KEY="import-order-test",
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.sessions", "rtframe.django"],
)
django.setup()
from django.contrib.auth.signals import user_logged_out
assert user_logged_out.has_listeners(), "the import connected no logout receiver"
print("create_app after:", type(rtframe.django.create_app().layer).__name__)
"""


def test_rtframe_django_imported_before_django_is_set_up_works_once_it_is() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_FIRST],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "create_app before the settings: ImproperlyConfigured",
        "create_app after: InMemoryLayer",
    ]
