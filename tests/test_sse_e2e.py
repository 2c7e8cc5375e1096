"""SSE on a real uvicorn: an httpx stream and a browser EventSource follow a room with a
WebSocket member, and both resume after a drop without losing or repeating a message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.browser import chromium
from tests.servers import uvicorn_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with uvicorn_server("tests.sse_app:app") as port:
        yield port


async def events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def said(stream: AsyncIterator[dict[str, str]], n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        event = await asyncio.wait_for(anext(stream), 5)
        if "data" in event:
            data = json.loads(event["data"])
            data["id"] = event.get("id")
            got.append(data)
    return got


async def test_an_httpx_stream_follows_a_room_and_resumes_with_last_event_id(port: int) -> None:
    url = f"http://127.0.0.1:{port}/events/r1"
    async with (
        httpx.AsyncClient(timeout=10) as http,
        connect(f"ws://127.0.0.1:{port}/ws/r1") as sock,
    ):
        async with http.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            await sock.send(json.dumps({"type": "say", "text": "one"}))
            [first] = await said(stream, 1)
        assert first["text"] == "one"
        for n in range(5):  # while the stream is away
            await sock.send(json.dumps({"type": "say", "text": f"away {n}"}))
        headers = {"Last-Event-ID": first["id"]}
        async with http.stream("GET", url, headers=headers) as response:
            stream = events(response)
            got = await said(stream, 6)
            await sock.send(json.dumps({"type": "say", "text": "live"}))
            [live] = await said(stream, 1)
    assert got[0]["type"] == "$recovery" and got[0]["recovered"] is True
    assert [g["text"] for g in got[1:]] == [f"away {n}" for n in range(5)]
    assert live["text"] == "live"
    offsets = [json.loads(g["id"])["room.r1"]["offset"] for g in [*got[1:], live]]
    assert offsets == list(range(2, 8))


async def test_a_browser_event_source_follows_the_room_and_resumes_by_itself(port: int) -> None:
    async with (
        chromium() as browser,
        connect(f"ws://127.0.0.1:{port}/ws/lobby") as sock,
    ):
        page = await browser.new_page()
        await page.goto(f"http://127.0.0.1:{port}/page")
        await page.wait_for_function("window.opens === 1")
        await sock.send(json.dumps({"type": "say", "text": "hi"}))
        await page.wait_for_function("window.got.length === 1")
        async with httpx.AsyncClient() as http:  # every stream closed, as a restart does
            assert (await http.get(f"http://127.0.0.1:{port}/kick")).json()["closed"] == 1
        for n in range(3):  # before the browser is back (it waits ~0.3 s)
            await sock.send(json.dumps({"type": "say", "text": f"gone {n}"}))
        await page.wait_for_function("window.opens === 2", timeout=10_000)
        await sock.send(json.dumps({"type": "say", "text": "back"}))
        await page.wait_for_function("window.got.length === 5", timeout=10_000)
        assert await page.evaluate("window.got") == ["hi", "gone 0", "gone 1", "gone 2", "back"]
