"""Prometheus metrics (`rtframe.metrics`): the counts after a scripted session, a real
server scraped over HTTP, and the error naming the extra when it is not installed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Literal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from websockets.asyncio.client import connect

from rtframe import Connection, Heartbeat, RateLimit, RealtimeApp, Reject, WebSocketRouter
from rtframe.metrics import serve_metrics
from rtframe.testing import HandshakeRejected, TestClient

from .servers import uvicorn_server


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


def make_app() -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/room/{name}")
    async def join(conn: Connection, name: str) -> None:
        if name == "closed":
            raise Reject(4003, "closed room")
        await conn.accept()

    @ws.on_receive("/room/{name}")
    async def say(msg: Say) -> Say:
        return msg

    app = RealtimeApp([ws])
    serve_metrics(app)
    return app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_count_a_scripted_session() -> None:
    app = make_app()
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as sock:
            for text in ("hi", "there"):
                await sock.send_json({"type": "say", "text": text})
                assert (await sock.receive_json())["text"] == text
            await sock.send_text("{not json")
            assert (await sock.receive_json())["code"] == "invalid_json"
            await sock.send_json({"type": "say"})
            assert (await sock.receive_json())["code"] == "validation_error"
            open_now = samples((await client.get("/metrics")).text)
            assert open_now["rtframe_connections", ()] == 1
            await sock.close(1000)
        with pytest.raises(HandshakeRejected):
            async with client.websocket("/room/closed"):
                pass
        with pytest.raises(HandshakeRejected):
            async with client.websocket("/nowhere"):
                pass
        await asyncio.sleep(0.05)  # let the teardowns finish
        response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found["rtframe_connections", ()] == 0
    assert found["rtframe_groups", ()] == 0
    assert found["rtframe_draining", ()] == 0
    assert found["rtframe_connections_accepted_total", ()] == 1
    assert found["rtframe_handshakes_refused_total", (("reason", "rejected"),)] == 1
    assert found["rtframe_handshakes_refused_total", (("reason", "no_route"),)] == 1
    assert found["rtframe_handshakes_refused_total", (("reason", "connections"),)] == 0
    assert found["rtframe_messages_received_total", (("route", "/room/{name}"),)] == 4
    assert found["rtframe_replies_sent_total", (("route", "/room/{name}"),)] == 2
    # by message type: the two valid frames were handled and answered; the bad ones not
    handled = (("route", "/room/{name}"), ("type", "Say"))
    assert found["rtframe_messages_handled_total", handled] == 2
    to_sender = (("route", "/room/{name}"), ("to", "sender"), ("type", "Say"))
    assert found["rtframe_messages_sent_total", to_sender] == 2
    assert found["rtframe_error_frames_total", (("code", "invalid_json"),)] == 1
    assert found["rtframe_error_frames_total", (("code", "validation_error"),)] == 1
    assert found["rtframe_closes_total", (("code", "1000"),)] == 1
    assert found["rtframe_outbox_dropped_total", ()] == 0
    assert found["rtframe_limit_refusals_total", (("limit", "messages"),)] == 0
    assert found["rtframe_timeouts_total", (("kind", "heartbeat"),)] == 0
    assert not any(name.startswith("rtframe_layer_") for name, _ in found)  # in-memory layer
    assert app.stats.accepted == 1
    assert "/metrics" in app.describe().http_paths


async def test_rate_limited_frames_are_counted() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/limited")
    async def say(msg: Say) -> Say:
        return msg

    limited = RealtimeApp([ws], rate_limit=RateLimit(messages=1, per=60))
    serve_metrics(limited)
    async with TestClient(limited) as client:
        async with client.websocket("/limited") as sock:
            for _ in range(3):
                await sock.send_json({"type": "say", "text": "x"})
            assert (await sock.receive_json())["type"] == "say"
            assert (await sock.receive_json())["code"] == "rate_limited"
            assert (await sock.receive_json())["code"] == "rate_limited"
            found = samples((await client.get("/metrics")).text)
    assert found["rtframe_limit_refusals_total", (("limit", "messages"),)] == 2
    assert found["rtframe_error_frames_total", (("code", "rate_limited"),)] == 2
    assert found["rtframe_messages_received_total", (("route", "/limited"),)] == 1
    assert found["rtframe_replies_sent_total", (("route", "/limited"),)] == 1


async def test_a_heartbeat_timeout_is_counted() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/silent")
    async def say(msg: Say) -> Say:
        return msg

    app = RealtimeApp([ws], heartbeat=Heartbeat(interval=0.05, timeout=0.05))
    serve_metrics(app)
    async with TestClient(app) as client:
        async with client.websocket("/silent") as sock:
            assert await sock.receive_text(timeout=1) == '{"type":"$ping"}'
            await sock.expect_close(4002, timeout=2)  # never answered
        await asyncio.sleep(0.05)
        found = samples((await client.get("/metrics")).text)
    assert found["rtframe_timeouts_total", (("kind", "heartbeat"),)] == 1
    assert found["rtframe_timeouts_total", (("kind", "idle"),)] == 0
    assert found["rtframe_closes_total", (("code", "4002"),)] == 1


@pytest.mark.e2e
async def test_a_real_server_is_scraped() -> None:
    with uvicorn_server("examples.chat.app:app", env={"REDIS_URL": ""}) as port:
        async with connect(f"ws://127.0.0.1:{port}/ws/chat/metrics") as sock:
            assert json.loads(await asyncio.wait_for(sock.recv(), 5))["type"] == "welcome"
            await sock.send("{not json")
            assert json.loads(await asyncio.wait_for(sock.recv(), 5))["code"] == "invalid_json"
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    found = samples(response.text)
    assert found["rtframe_connections", ()] == 1
    assert found["rtframe_groups", ()] == 2  # the room, and its arrivals and departures
    assert found["rtframe_connections_accepted_total", ()] == 1
    assert found["rtframe_error_frames_total", (("code", "invalid_json"),)] == 1
    assert found["rtframe_messages_received_total", (("route", "/ws/chat/{room}"),)] == 1


def test_without_the_extra_the_error_names_it() -> None:
    code = "import sys\nsys.modules['prometheus_client'] = None\nimport rtframe.metrics\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr
    assert "pip install 'rtframe[metrics]'" in done.stderr


async def test_broadcast_timings_are_histograms() -> None:
    from rtframe import Group

    room = Group("room.{name}")
    ws = WebSocketRouter()

    @ws.route("/room/{name}")
    async def join(conn: Connection) -> None:
        await room.add(conn)

    @ws.on_receive("/room/{name}")
    @room.broadcast
    async def say(msg: Say) -> Say:
        return msg

    app = RealtimeApp([ws])
    serve_metrics(app)
    async with TestClient(app) as client, client.websocket("/room/a") as sock:
        for _ in range(3):
            await sock.send_json({"type": "say", "text": "x"})
            await sock.receive_json()
        found = samples((await client.get("/metrics")).text)
    to_group = (("route", "/room/{name}"), ("to", "group"), ("type", "Say"))
    assert found["rtframe_messages_sent_total", to_group] == 3
    for name in ("rtframe_broadcast_publish_seconds", "rtframe_broadcast_fan_out_seconds"):
        assert found[f"{name}_count", ()] == 3
        assert found[f"{name}_bucket", (("le", "+Inf"),)] == 3
        assert 0 <= found[f"{name}_sum", ()] < 1
        buckets = [v for (n, labels), v in found.items() if n == f"{name}_bucket"]
        assert len(buckets) == 12
