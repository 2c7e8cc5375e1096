"""The Django user, session and guards in HTTP route handlers (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from typing import Annotated, Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from pydantic import BaseModel

import rtframe.django as rd
from rtframe import RealtimeApp
from rtframe.http import StreamingResponse
from rtframe.http_routing import HTTPRouter
from rtframe.testing import TestClient

from .conftest import session_cookie, session_key

pytestmark = pytest.mark.django_db(transaction=True)

http = HTTPRouter(prefix="/api")
SAME_SITE = {"origin": "http://testserver"}
CROSS_SITE = {"origin": "https://evil.example"}


class Note(BaseModel):
    text: str


@http.get("/whoami")
async def whoami(user: rd.CurrentUser) -> dict[str, Any]:
    return {"username": user.get_username(), "authenticated": user.is_authenticated}


@http.get("/private")
async def private(user: rd.LoginRequired) -> dict[str, str]:
    return {"username": user.get_username()}


@http.get("/staff")
async def staff(
    user: Annotated[AbstractBaseUser, rd.permission_required("chat.add_message")],
) -> str:
    return user.get_username()


@http.post("/notes")
async def add_note(note: Note, user: rd.LoginRequired, session: rd.Session) -> list[str]:
    notes = [*session.get("notes", []), note.text]
    session["notes"] = notes
    return notes


finished: list[str] = []


@http.get("/feed")
async def feed(user: rd.LoginRequired) -> StreamingResponse:
    async def ticks() -> AsyncIterator[str]:
        try:
            while True:
                yield f"{user.get_username()}\n"
                await asyncio.sleep(0.01)
        finally:
            finished.append(user.get_username())

    return StreamingResponse(ticks(), media_type="text/plain")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = rd.mount(RealtimeApp([http]), django_app=None)
    async with TestClient(app) as c:
        c.headers.pop("origin")  # sent by default; a browser's navigation sends none
        yield c


async def login(make_user: Callable[..., Any], name: str, *perms: str) -> dict[str, str]:
    """The Cookie header of a browser where this new user logged in."""
    user = await sync_to_async(make_user)(name, perms)
    cookies: dict[str, str] = await sync_to_async(session_cookie)(user)
    return cookies


async def test_the_user_of_the_session_cookie_on_a_get(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await login(make_user, "ada")
    me = await client.get("/api/whoami", headers=cookies)
    assert me.json() == {"username": "ada", "authenticated": True}
    assert (await client.get("/api/whoami")).json() == {"username": "", "authenticated": False}
    assert (await client.get("/api/private", headers=cookies)).json() == {"username": "ada"}
    refused = await client.get("/api/private")
    assert (refused.status, refused.json()["detail"]) == (401, "login required")
    assert (await client.get("/api/staff", headers=cookies)).status == 403
    boss = await login(make_user, "boss", "chat.add_message")
    assert (await client.get("/api/staff", headers=boss)).json() == "boss"
    # a GET that says where it comes from is checked: another site cannot read as ada
    cross = await client.get("/api/whoami", headers={**cookies, **CROSS_SITE})
    assert cross.status == 403


async def test_a_post_needs_this_sites_origin_and_saves_the_session(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await login(make_user, "ada")
    first = {"text": "first"}
    # without an Origin header, or from another site: refused, as Django's CSRF would
    assert (await client.request("POST", "/api/notes", headers=cookies, json=first)).status == 403
    cross = await client.request(
        "POST", "/api/notes", headers={**cookies, **CROSS_SITE}, json=first
    )
    assert cross.status == 403
    done = await client.request("POST", "/api/notes", headers={**cookies, **SAME_SITE}, json=first)
    assert (done.status, done.json()) == (200, ["first"])
    again = await client.request(
        "POST", "/api/notes", headers={**cookies, **SAME_SITE}, json={"text": "second"}
    )
    assert again.json() == ["first", "second"]

    def stored() -> Any:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key(cookies))
        return store.get("notes")

    # saved before the answer was sent: Django's next request sees it
    assert await sync_to_async(stored)() == ["first", "second"]


async def test_a_logout_ends_the_users_streaming_response(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await login(make_user, "ada")
    finished.clear()
    async with client.stream("GET", "/api/feed", headers=cookies) as response:
        assert await response.receive_chunk() == b"ada\n"
        reached = await sync_to_async(rd.end_sessions)(session_key=session_key(cookies))
        assert reached == 1
        await asyncio.wait_for(response.read(), 2)
        assert response.ended
    assert finished == ["ada"]
