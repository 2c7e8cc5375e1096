"""The chat example under a real uvicorn, driven by httpx and the websockets client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import PASSWORD, ChatServer, csrf_token, manage

pytestmark = pytest.mark.e2e


async def log_in(http: httpx.AsyncClient, username: str) -> str:
    """Log in through Django's login form; returns the session cookie's value."""
    form = await http.get("/accounts/login/")
    data = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": ""}
    data["csrfmiddlewaretoken"] = csrf_token(form.text)
    answer = await http.post("/accounts/login/", data=data)
    assert answer.status_code == 302, answer.text
    return str(http.cookies["sessionid"])


async def session_of(server: ChatServer, username: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await log_in(http, username)


def open_socket(
    server: ChatServer, session: str | None, origin: str | None = None, port: int | None = None
) -> Any:
    """A socket to the room on `port` (the server's first process by default), sent
    from a page of that same origin unless `origin` says otherwise."""
    port = port or server.port
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return connect(
        f"ws://127.0.0.1:{port}/ws/chat/{server.room}",
        origin=origin or f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=5,
    )


async def next_said(conn: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), 5))
    return frame


async def test_two_users_chat_over_a_real_server(chat_server: ChatServer) -> None:
    ada, grace = [await session_of(chat_server, name) for name in chat_server.users]
    before = await asyncio.to_thread(chat_server.count_messages)
    async with open_socket(chat_server, ada) as one, open_socket(chat_server, grace) as two:
        await one.send(json.dumps({"type": "say", "text": "hi grace"}))
        assert (await next_said(two))["text"] == "hi grace"
        assert (await next_said(one))["user"] == "ada"
        await two.send(json.dumps({"type": "say", "text": "hi ada"}))
        said = await next_said(one)
        assert (said["user"], said["text"]) == ("grace", "hi ada")
    assert await asyncio.to_thread(chat_server.count_messages) == before + 2


async def test_a_form_post_to_a_django_view_reaches_the_socket(chat_server: ChatServer) -> None:
    grace = await session_of(chat_server, "grace")
    async with httpx.AsyncClient(base_url=chat_server.url) as http:
        await log_in(http, "ada")
        page = (await http.get(f"/rooms/{chat_server.room}/")).text
        async with open_socket(chat_server, grace) as conn:
            answer = await http.post(
                f"/rooms/{chat_server.room}/messages/",
                data={"text": "from the view", "csrfmiddlewaretoken": csrf_token(page)},
            )
            assert answer.status_code == 302
            said = await next_said(conn)
            assert (said["user"], said["text"]) == ("ada", "from the view")


async def test_anonymous_handshake_gets_http_403(chat_server: ChatServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(chat_server, None):
            pass
    assert refused.value.response.status_code == 403


async def test_foreign_origin_gets_http_403_even_with_a_valid_session(
    chat_server: ChatServer,
) -> None:
    ada = await session_of(chat_server, "ada")
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(chat_server, ada, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_an_origin_with_another_port_gets_http_403(chat_server: ChatServer) -> None:
    ada = await session_of(chat_server, "ada")
    other_port = f"http://127.0.0.1:{chat_server.port + 1}"
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(chat_server, ada, origin=other_port):
            pass
    assert refused.value.response.status_code == 403
    async with open_socket(chat_server, ada) as conn:  # the right port is this site
        await conn.send(json.dumps({"type": "say", "text": "same origin"}))
        assert (await next_said(conn))["text"] == "same origin"


async def test_a_logout_on_one_process_closes_the_socket_on_another(
    chat_servers_redis: ChatServer,
) -> None:
    server = chat_servers_redis
    a, b = server.ports
    grace = await session_of(server, "grace")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a}") as http:
        ada = await log_in(http, "ada")
        page = (await http.get("/")).text
        async with (
            open_socket(server, ada, port=b) as ada_socket,
            open_socket(server, grace, port=b) as grace_socket,
        ):
            await ada_socket.send(json.dumps({"type": "say", "text": "before"}))
            assert (await next_said(grace_socket))["text"] == "before"
            assert (await next_said(ada_socket))["text"] == "before"
            answer = await http.post(
                "/accounts/logout/", data={"csrfmiddlewaretoken": csrf_token(page)}
            )
            assert answer.status_code == 302, answer.text
            logged_out = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ada_socket.recv(), 1.0)
            assert time.monotonic() - logged_out < 1.0
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "logged out")
            # grace's socket on the same process is untouched
            await grace_socket.send(json.dumps({"type": "say", "text": "still here"}))
            said = await next_said(grace_socket)
            assert (said["user"], said["text"]) == ("grace", "still here")
    # and ada's old cookie opens no socket any more, on either process
    for port in server.ports:
        with pytest.raises(InvalidStatus) as refused:
            async with open_socket(server, ada, port=port):
                pass
        assert refused.value.response.status_code == 403


async def test_a_password_changed_from_a_command_closes_the_users_sockets(
    chat_servers_redis: ChatServer,
) -> None:
    server = chat_servers_redis
    grace = await session_of(server, "grace")
    async with (
        open_socket(server, grace, port=server.ports[0]) as one,
        open_socket(server, grace, port=server.ports[1]) as two,
    ):
        await one.send(json.dumps({"type": "say", "text": "hello"}))
        for conn in (one, two):
            assert (await next_said(conn))["text"] == "hello"
        # a separate process that runs no app: it publishes through settings' Redis layer
        script = (
            "from django.contrib.auth.models import User\n"
            "u = User.objects.get(username='grace'); u.set_password('new one'); u.save()\n"
        )
        await asyncio.to_thread(manage, server.env, "shell", "-c", script)
        for conn in (one, two):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(conn.recv(), 2.0)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_a_management_command_reaches_the_socket_through_redis(
    chat_server_redis: ChatServer,
) -> None:
    server = chat_server_redis
    grace = await session_of(server, "grace")
    async with open_socket(server, grace) as conn:
        out = await asyncio.to_thread(
            manage, server.env, "announce", server.room, "deploy done", "--as", "ada"
        )
        assert out.startswith("posted message")
        said = await next_said(conn)
        assert (said["user"], said["text"]) == ("ada", "deploy done")


@pytest.mark.parametrize(
    ("args", "redis", "error"),
    [
        (("lobby", "hi", "--as", "ada"), False, "set REDIS_URL"),
        (("no-such-room", "hi", "--as", "ada"), True, "no room 'no-such-room'"),
        (("lobby", "hi", "--as", "nobody"), True, "no user 'nobody'"),
    ],
)
def test_the_management_command_explains_bad_input(
    chat_server_redis: ChatServer, args: tuple[str, ...], redis: bool, error: str
) -> None:
    env = dict(chat_server_redis.env)
    if not redis:
        env.pop("REDIS_URL")
    before = chat_server_redis.count_messages()
    with pytest.raises(RuntimeError, match=error):
        manage(env, "announce", *args)
    assert chat_server_redis.count_messages() == before  # nothing half-done
