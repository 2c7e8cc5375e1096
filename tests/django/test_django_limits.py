"""The per-user connection limit keyed by the Django user (`rtframe.django.user_key`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

import rtframe.django as rd
from rtframe import Connection, Limits, RealtimeApp, WebSocketRouter
from rtframe.testing import HandshakeRejected, TestClient

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

ws = WebSocketRouter()


@ws.route("/ws/private")
async def private(conn: Connection, user: rd.LoginRequired) -> None: ...


@ws.route("/ws/open")
async def anyone(conn: Connection, user: rd.CurrentUser) -> None: ...


def test_create_app_keys_the_per_user_limit_by_the_django_user() -> None:
    app = rd.create_app([ws])
    assert app.limits.user_key is rd.user_key
    assert app.limits.per_user == Limits().per_user


async def test_a_user_past_the_limit_is_refused_and_others_are_not(
    make_user: Callable[..., Any],
) -> None:
    app = rd.mount(
        RealtimeApp([ws], limits=Limits(per_user=2, user_key=rd.user_key)), django_app=None
    )
    ada = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    bob = await sync_to_async(session_cookie)(await sync_to_async(make_user)("bob"))
    async with TestClient(app) as client:
        async with (
            client.websocket("/ws/private", headers=ada) as first,
            client.websocket("/ws/open", headers=ada),
        ):
            with pytest.raises(HandshakeRejected) as refused:
                async with client.websocket("/ws/private", headers=ada):
                    pass
            assert refused.value.code == 1008
            assert app.limit_stats.per_user == 1
            # another user, and anonymous users (not counted), get in
            async with (
                client.websocket("/ws/private", headers=bob),
                client.websocket("/ws/open"),
                client.websocket("/ws/open"),
            ):
                pass
            await first.close()
            async with client.websocket("/ws/private", headers=ada):  # room again
                pass
    assert app._admission.counts()["users"] == {}
