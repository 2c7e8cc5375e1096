"""WebSockets on every server: echo, error frames, limits, groups, direct sends, closes, heartbeat."""

from __future__ import annotations

import asyncio
import json

import pytest
from autobahn.websocket.protocol import WebSocketServerProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..servers import RunningServer
from .support import close_code, joined, limited, nothing_arrives, recv_json, ws_connect

pytestmark = pytest.mark.e2e


async def test_echo_and_a_flood_answered_in_order(server: RunningServer) -> None:
    async with ws_connect(server, "/ws/room/echo") as sock:
        await joined(sock)
        await sock.send(json.dumps({"type": "echo", "text": "hi"}))
        assert await recv_json(sock) == {"type": "echo", "text": "hi"}
        for i in range(200):
            await sock.send(json.dumps({"type": "echo", "text": str(i)}))
        received = [(await recv_json(sock))["text"] for _ in range(200)]
    assert received == [str(i) for i in range(200)]


async def test_bad_frames_get_error_frames_and_the_connection_lives_on(
    server: RunningServer,
) -> None:
    async with ws_connect(server, "/ws/room/errors") as sock:
        await joined(sock)
        await sock.send("{not json")
        assert (await recv_json(sock))["code"] == "invalid_json"
        await sock.send(json.dumps({"type": "echo"}))
        error = await recv_json(sock)
        assert error["code"] == "validation_error"
        assert error["errors"][0]["loc"] == ["echo", "text"]
        await sock.send(json.dumps({"type": "shout", "text": "?"}))
        assert (await recv_json(sock))["code"] == "unknown_type"
        await sock.send(b"\x00binary")
        assert (await recv_json(sock))["code"] == "unsupported_frame"
        await sock.send(json.dumps({"type": "echo", "text": "still here"}))
        assert (await recv_json(sock))["text"] == "still here"


async def test_a_frame_over_the_apps_limit_closes_with_1009(server: RunningServer) -> None:
    # the app's limit (1,000 bytes) is below every server's own (docs/servers.md), so
    # rtframe's check is the one that answers, the same way everywhere (but for the code
    # daphne lets it send)
    async with ws_connect(server, "/ws/room/big") as sock:
        await joined(sock)
        await sock.send(json.dumps({"type": "echo", "text": "x" * 2000}))
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(sock.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == close_code(server, 1009)


async def test_refused_and_unknown_handshakes_get_http_403(server: RunningServer) -> None:
    for path, headers in (("/nowhere", {}), ("/ws/room/a", {"x-deny": "1"})):
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(server, path, additional_headers=headers):
                pass
        assert info.value.response.status_code == 403, (path, info.value.response)


async def test_a_broadcast_reaches_the_room_and_not_another(server: RunningServer) -> None:
    async with (
        ws_connect(server, "/ws/room/red") as ada,
        ws_connect(server, "/ws/room/red") as bob,
        ws_connect(server, "/ws/room/blue") as cy,
    ):
        for sock in (ada, bob, cy):
            await joined(sock)
        await ada.send(json.dumps({"type": "say", "text": "hello red"}))
        for sock in (ada, bob):
            assert await recv_json(sock) == {"type": "said", "room": "red", "text": "hello red"}
        await nothing_arrives(cy)


async def test_a_direct_send_reaches_one_connection(server: RunningServer) -> None:
    async with (
        ws_connect(server, "/ws/room/direct") as ada,
        ws_connect(server, "/ws/room/direct") as bob,
    ):
        ada_id, bob_id = await joined(ada), await joined(bob)
        await ada.send(json.dumps({"type": "tell", "to": bob_id, "text": "psst"}))
        assert await recv_json(bob) == {"type": "told", "by": ada_id, "text": "psst"}
        await nothing_arrives(ada)


async def test_the_apps_close_code_and_reason_reach_the_client(server: RunningServer) -> None:
    async with ws_connect(server, "/ws/room/bye") as sock:
        await joined(sock)
        await sock.send(json.dumps({"type": "bye", "code": 4001, "reason": "see you"}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(sock.recv(), 5)
    assert sock.close_code == 4001
    why = limited(server, "close_reason")
    if why is not None:
        assert sock.close_reason == ""  # the limitation is real
        pytest.skip(f"{server.name}: {why}")
    assert sock.close_reason == "see you"


async def test_heartbeat_pings_are_answered_and_a_silent_client_is_closed_with_4002(
    server: RunningServer,
) -> None:
    # the app's own heartbeat ($ping/$pong text frames) works the same on every server,
    # whatever protocol-level pings the server sends or not
    async with ws_connect(server, "/ws/beat") as sock:
        assert await recv_json(sock, 2) == {"type": "$ping"}
        await sock.send('{"type":"$pong"}')
        await sock.send('{"type":"$ping"}')
        assert await recv_json(sock, 2) == {"type": "$pong"}
        assert await recv_json(sock, 2) == {"type": "$ping"}  # still alive after the pong
        # now silent: closed about 0.3 s after the next ping
        with pytest.raises(ConnectionClosed):
            while True:
                assert await recv_json(sock, 3) == {"type": "$ping"}
    assert sock.close_code == 4002


@pytest.mark.parametrize("code", [1009, 1011, 1012, 1013])
def test_daphnes_websocket_library_refuses_rtframes_protocol_close_codes(code: int) -> None:
    # the limitation behind close_code(): autobahn checks the code before it looks at
    # the connection (here none: an instance needs txaio set up for a framework)
    with pytest.raises(Exception, match=f"invalid close code {code}"):
        WebSocketServerProtocol.sendClose(object(), code=code)  # type: ignore[arg-type]
