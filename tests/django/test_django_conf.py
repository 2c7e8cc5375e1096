"""Configuration from settings.RTFRAME, and mounting beside Django."""

from __future__ import annotations

import pytest
from django.test import override_settings

import rtframe.django as rd
from rtframe import ConfigurationError, InMemoryLayer, JSONResponse, RealtimeApp, Request
from rtframe.testing import TestClient


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
