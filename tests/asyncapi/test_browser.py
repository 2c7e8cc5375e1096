"""The /asyncapi page in headless Chromium with the network off: a reader sees the
channels, operations and message schemas, and the page asks for nothing from elsewhere.

Chromium is Debian's (`scripts/test` installs it), driven by Python playwright; the test
never downloads a browser. Every request the page makes is intercepted: requests to the
app's own loopback server go through, anything else is recorded and aborted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Route

from ..browser import chromium
from ..servers import uvicorn_server


@pytest.mark.e2e
async def test_the_page_renders_offline(tmp_path: Path) -> None:
    with uvicorn_server("tests.asyncapi.feature_app:app") as port:
        origin = f"http://127.0.0.1:{port}"
        elsewhere: list[str] = []

        async def only_loopback(route: Route) -> None:
            if route.request.url.startswith(origin + "/"):
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort("internetdisconnected")

        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.route("**/*", only_loopback)
            response = await page.goto(f"{origin}/asyncapi", wait_until="load")
            assert response is not None and response.status == 200
            title = await page.title()
            channels = await page.locator("section.channel > h3 > code").all_inner_texts()
            operations = await page.locator(".operation > code").all_inner_texts()
            draw_fields = await page.locator(
                "#message-Draw table tr td:first-child"
            ).all_inner_texts()
            schemas = await page.locator("section.schema > h3").all_inner_texts()
            reply = await page.locator(
                "[id='operation-ws_rooms_room_id_board.receive.Ping']"
            ).inner_text()
            shot = tmp_path / "asyncapi.png"
            await page.screenshot(path=str(shot), full_page=True)

    assert elsewhere == []
    assert title == "Feature board - AsyncAPI"
    assert channels == ["/ws/docs/{doc_id}/{section}", "/ws/lobby", "/ws/rooms/{room_id}/board"]
    assert "ws_rooms_room_id_board.receive.Draw" in operations
    assert "ws_rooms_room_id_board.broadcast.room.room_id" in operations
    assert "ws_lobby.send.error" in operations
    assert "Reply: Pong" in reply
    assert draw_fields == ["type", "points", "color", "size", "origin"]
    assert {"Draw", "Point", "ErrorFrame", "HistoryReply"} <= set(schemas)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


@pytest.mark.e2e
async def test_the_page_of_streams_shows_their_http_request_and_response(tmp_path: Path) -> None:
    with uvicorn_server("tests.asyncapi.sse_feature_app:app") as port:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"http://127.0.0.1:{port}/asyncapi", wait_until="load")
            servers = await page.locator("#servers td code").all_inner_texts()
            opening = await page.locator(
                "[id='operation-events_rooms_room.receive.open']"
            ).inner_text()
            response = await page.locator("#message-EventStream").inner_text()
            await page.screenshot(path=str(tmp_path / "streams.png"), full_page=True)
    assert servers == [f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"]
    assert "HTTP request: GET" in opening and "Reply: EventStream" in opening
    assert "lines" in opening and "$since" in opening  # the query parameters
    assert "HTTP status 200" in response and "X-Accel-Buffering" in response
    assert "Content type text/event-stream" in response
