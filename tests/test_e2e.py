"""End to end: real uvicorn processes on loopback ports, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .servers import uvicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["websockets-sansio", "wsproto"])
def chat_port(request: pytest.FixtureRequest) -> Iterator[int]:
    # the in-memory layer: the Redis layer runs this example in tests/e2e_redis
    with uvicorn_server("examples.chat.app:app", env={"REDIS_URL": ""}, args=("--ws", request.param)) as port:
        yield port


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with uvicorn_server("tests.e2e_app:app") as port:
        yield port


async def recv_json(sock: ClientConnection) -> dict[str, object]:
    return json.loads(await asyncio.wait_for(sock.recv(), 5))  # type: ignore[no-any-return]


async def nothing_arrives(sock: ClientConnection, within: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sock.recv(), within)


async def test_room_broadcast_reaches_three_members_and_not_another_room(chat_port: int) -> None:
    base = f"ws://127.0.0.1:{chat_port}/ws/chat"
    async with (
        connect(f"{base}/a?nick=ada") as ada,
        connect(f"{base}/a?nick=bob") as bob,
        connect(f"{base}/a?nick=cy") as cy,
        connect(f"{base}/b?nick=dee") as dee,
    ):
        for sock in (ada, bob, cy, dee):
            assert (await recv_json(sock))["type"] == "welcome"
        # join notices, coalesced: ada hears bob and cy, bob hears cy (and maybe himself)
        assert {"bob", "cy"} <= await joined_until(ada, {"bob", "cy"})
        assert "cy" in await joined_until(bob, {"cy"})
        await joined_until(cy, {"cy"})

        await bob.send(json.dumps({"type": "say", "text": "hello room"}))
        for sock in (ada, bob, cy):
            said = await recv_json(sock)
            assert (said["type"], said["nick"], said["text"]) == ("said", "bob", "hello room")
        await nothing_arrives(dee)

        await cy.close()
        left = await recv_json(ada)
        assert (left["text"], left["left"]) == ("cy left", ["cy"])


async def joined_until(sock: ClientConnection, nicks: set[str]) -> set[str]:
    """Read join notices until every nick in `nicks` was announced; the nicks announced."""
    seen: set[str] = set()
    while not nicks <= seen:
        notice = await recv_json(sock)
        assert notice["type"] == "notice", notice
        assert str(notice["text"]).endswith("joined"), notice
        seen.update(notice["joined"])  # type: ignore[arg-type]
    return seen


async def test_bad_frames_get_error_frames_over_a_real_socket(chat_port: int) -> None:
    async with connect(f"ws://127.0.0.1:{chat_port}/ws/chat/err") as sock:
        await recv_json(sock)  # welcome
        await sock.send("{not json")
        assert (await recv_json(sock))["code"] == "invalid_json"
        await sock.send(json.dumps({"type": "say", "text": ""}))
        error = await recv_json(sock)
        assert error["code"] == "validation_error"
        assert error["errors"][0]["loc"] == ["say", "text"]  # type: ignore[index]
        await sock.send(json.dumps({"type": "shout"}))
        assert (await recv_json(sock))["code"] == "unknown_type"
        await sock.send(b"\x00binary")
        assert (await recv_json(sock))["code"] == "unsupported_frame"
        await sock.send(json.dumps({"type": "say", "text": "still here"}))
        assert (await recv_json(sock))["text"] == "still here"


async def test_the_page_is_served_by_the_app(chat_port: int) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{chat_port}/")
    assert response.status_code == 200
    assert 'from "/rtframe/rtframe.js"' in response.text  # the page runs on the client
    async with httpx.AsyncClient() as http:
        client = await http.get(f"http://127.0.0.1:{chat_port}/rtframe/rtframe.js")
    assert client.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_refused_and_unknown_handshakes_get_http_403(echo_port: int) -> None:
    for url, headers in ((f"ws://127.0.0.1:{echo_port}/nowhere", {}), (f"ws://127.0.0.1:{echo_port}/echo", {"x-deny": "1"})):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, additional_headers=headers):
                pass
        assert info.value.response.status_code == 403


async def test_oversized_frame_closes_with_1009(echo_port: int) -> None:
    async with connect(f"ws://127.0.0.1:{echo_port}/echo") as sock:
        await sock.send(json.dumps({"text": "fits"}))
        assert (await recv_json(sock))["text"] == "fits"
        await sock.send(json.dumps({"text": "x" * 2000}))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(sock.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_a_flood_is_answered_in_order_without_loss(echo_port: int) -> None:
    async with connect(f"ws://127.0.0.1:{echo_port}/echo") as sock:
        for i in range(500):
            await sock.send(json.dumps({"text": str(i)}))
        received = [(await recv_json(sock))["text"] for _ in range(500)]
    assert received == [str(i) for i in range(500)]
