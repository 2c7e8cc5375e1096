"""OpenTelemetry tracing (`rtframe.tracing`): a span per handler call and none per
connection, an error span for a raising handler, and the error naming the extra when it
is not installed."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, Reject, WebSocketRouter
from rtframe.testing import TestClient
from rtframe.tracing import instrument


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Boom(BaseModel):
    type: Literal["boom"] = "boom"


class Leave(BaseModel):
    type: Literal["leave"] = "leave"


def traced_app() -> tuple[RealtimeApp, InMemorySpanExporter]:
    ws = WebSocketRouter()

    @ws.route("/room/{name}")
    async def join(conn: Connection, name: str) -> None:
        await conn.accept()

    @ws.on_receive("/room/{name}")
    async def say(msg: Say) -> Say:
        return msg

    @ws.on_receive("/room/{name}")
    async def boom(msg: Boom) -> None:
        raise RuntimeError("kaboom")

    @ws.on_receive("/room/{name}")
    async def leave(msg: Leave) -> None:
        raise Reject(4000, "bye")

    app = RealtimeApp([ws])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(app, tracer_provider=provider)
    instrument(app, tracer_provider=provider)  # idempotent: still one span per call
    return app, exporter


async def test_one_span_per_handler_call_and_none_per_connection() -> None:
    app, exporter = traced_app()
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as sock:
            for text in ("hi", "there"):
                await sock.send_json({"type": "say", "text": text})
                assert (await sock.receive_json())["text"] == text
            await sock.send_json({"type": "say"})  # invalid: no handler call, no span
            assert (await sock.receive_json())["code"] == "validation_error"
            conn_id = next(iter(app.sessions)).conn.id
        async with client.websocket("/room/b"):
            pass  # a connection without messages: no span
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.name == "rtframe.receive /room/{name}"
        assert span.status.status_code is StatusCode.UNSET
        assert dict(span.attributes or {}) == {
            "rtframe.route": "/room/{name}",
            "rtframe.message_type": "Say",
            "rtframe.handler": f"{__name__}.traced_app.<locals>.say",
            "rtframe.connection_id": conn_id,
        }


async def test_a_raising_handler_makes_an_error_span() -> None:
    app, exporter = traced_app()
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as sock:
            await sock.send_json({"type": "boom"})
            assert (await sock.receive_json())["code"] == "internal_error"
            await sock.send_json({"type": "say", "text": "still here"})
            assert (await sock.receive_json())["text"] == "still here"
            await sock.send_json({"type": "leave"})
            await sock.expect_close(4000)
    boom, say, leave = exporter.get_finished_spans()
    assert boom.attributes is not None and boom.attributes["rtframe.message_type"] == "Boom"
    assert boom.status.status_code is StatusCode.ERROR
    assert boom.status.description == "RuntimeError: kaboom"
    assert [event.name for event in boom.events] == ["exception"]
    assert say.status.status_code is StatusCode.UNSET
    assert leave.status.status_code is StatusCode.UNSET  # Reject closes on purpose


def test_missing_extra_names_the_install_command() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"
        "try:\n"
        "    import rtframe.tracing\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'rtframe[otel]'" in result.stdout
