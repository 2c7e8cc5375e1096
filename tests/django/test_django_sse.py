"""SSE endpoints get the Django user like WebSocket routes, and the same Origin rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

import rtframe.django as rd
from rtframe import SSERouter, Stream
from rtframe.testing import TestClient
from tests.sse_harness import SSEClient

from .conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

sse = SSERouter()


@sse.route("/events/private")
async def private(stream: Stream, user: rd.LoginRequired) -> None:
    await stream.accept()
    await stream.send({"type": "hello", "username": user.get_username()})


app = rd.create_app([sse])


async def test_a_logged_in_user_gets_the_stream_with_its_user(
    make_user: Callable[..., Any],
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with TestClient(app):
        stream = SSEClient(app, "/events/private", headers=cookies)
        assert await stream.start() == 200
        await stream.event()  # retry
        hello = json.loads((await stream.event())["data"])
        assert hello == {"type": "hello", "username": "ada"}
        await stream.disconnect()


async def test_an_anonymous_visitor_is_refused_with_403() -> None:
    async with TestClient(app):
        assert await SSEClient(app, "/events/private").start() == 403


async def test_a_cross_origin_stream_is_refused_with_403(make_user: Callable[..., Any]) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("bob"))
    async with TestClient(app):
        foreign = {**cookies, "Origin": "https://evil.example"}
        stream = SSEClient(app, "/events/private", headers=foreign)
        assert await stream.start() == 403
