"""rtframe.js, the browser client: served by the app, and its behaviour in headless Chromium
against a real uvicorn (tests/client_js_app.py plays the server's part)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from rtframe import RealtimeApp
from rtframe.client_js import CLIENT_FILES, serve_client

from .browser import chromium
from .servers import free_port, uvicorn_process, uvicorn_server

# one browser for the module, a new page per test
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

APP = "tests.client_js_app:app"

# Loads the client into the page and records everything it reports in `window.seen`.
START = """async ([url, options]) => {
  const mod = await import("/rtframe/rtframe.js");
  window.seen = window.seen || [];
  window.clients = window.clients || [];
  const rt = mod.connect(url, options);
  const index = window.clients.push(rt) - 1;
  const events = ["$state", "$overflow", "$recovery", "$dropped", "$reconnect",
                  "$presence", "$invalid", "*"];
  for (const on of events) {
    rt.on(on, (value) => seen.push({
      on, client: index, at: performance.now(), ...JSON.parse(JSON.stringify(value)),
    }));
  }
  window.rt = rt;
}"""


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    with uvicorn_server(APP, env={"REDIS_URL": ""}) as port:
        yield port


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def open_page(browser: Browser, port: int) -> Page:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"http://127.0.0.1:{port}/")
    return page


async def start(page: Page, url: str, **options: Any) -> None:
    await page.evaluate(START, [url, options])


async def seen(page: Page, on: str | None = None, **match: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = await page.evaluate("window.seen")
    return [
        e
        for e in events
        if (on is None or e["on"] == on) and all(e.get(k) == v for k, v in match.items())
    ]


async def wait_for(page: Page, predicate: str, timeout: float = 20_000) -> None:
    """Wait until `predicate` (a JS expression over `seen` and `rt`) is true."""
    await page.wait_for_function(f"() => {predicate}", timeout=timeout)


async def get(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url, **kwargs)


async def server_saw(port: int) -> dict[str, Any]:
    data: dict[str, Any] = (await get(f"http://127.0.0.1:{port}/seen")).json()
    return data


# -- served by the app ------------------------------------------------------------------


async def test_client_files_are_served_with_their_media_types(server: int) -> None:
    base = f"http://127.0.0.1:{server}/rtframe"
    js = await get(f"{base}/rtframe.js")
    assert js.status_code == 200
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["cache-control"] == "no-cache"
    assert 'from "./vendor/partysocket/ws.js"' in js.text
    again = await get(f"{base}/rtframe.js", headers={"if-none-match": js.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == js.headers["etag"]
    assert (
        await get(f"{base}/rtframe.js", headers={"if-none-match": '"other"'})
    ).status_code == 200

    vendor = await get(f"{base}/vendor/partysocket/ws.js")
    assert vendor.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "ReconnectingWebSocket" in vendor.text
    assert "MIT License" in (await get(f"{base}/vendor/partysocket/LICENSE.txt")).text
    assert "export declare function connect" in (await get(f"{base}/rtframe.d.ts")).text
    assert (await get(f"{base}/nothing.js")).status_code == 404


async def test_serve_client_under_another_prefix_names_the_module() -> None:
    app = RealtimeApp()
    assert serve_client(app, "/static/rt/") == "/static/rt/rtframe.js"
    assert {f"/static/rt/{name}" for name in CLIENT_FILES} <= set(app.http_routes)
    with pytest.raises(ValueError, match="must start with '/'"):
        serve_client(app, "static")


async def test_the_module_loads_in_chromium_and_revalidates_from_cache(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    statuses: list[int] = []
    page.on(
        "response", lambda r: statuses.append(r.status) if r.url.endswith("/rtframe.js") else None
    )
    await start(page, "/ws/echo")
    await wait_for(page, "rt.state === 'open'")
    await page.reload()
    await start(page, "/ws/echo")
    await wait_for(page, "rt.state === 'open'")
    assert statuses == [200, 304]  # revalidated, not downloaded again
    assert page.errors == []  # type: ignore[attr-defined]


# -- reconnecting -----------------------------------------------------------------------


async def test_backoff_doubles_up_to_its_ceiling_then_gives_up(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await page.evaluate("Math.random = () => 0.999")  # every delay at its ceiling
    nobody = free_port()  # nothing listens there: each handshake fails at once
    await start(
        page, f"ws://127.0.0.1:{nobody}/ws", backoff={"initial": 40, "max": 300}, maxRetries=6
    )
    await wait_for(page, "rt.state === 'closed'")
    waits = await seen(page, "$state", state="reconnecting")
    assert [(w["attempt"], w["delay"]) for w in waits] == [
        (1, 39),
        (2, 79),
        (3, 159),
        (4, 299),
        (5, 299),
    ]
    assert {(w["code"], w["reason"]) for w in waits} == {(1006, "")}
    [closed] = await seen(page, "$state", state="closed")
    assert (closed["code"], closed["reason"]) == (1006, "gave up after 6 attempts")
    assert len(await seen(page, "$state", state="connecting")) == 6


async def test_reconnecting_by_hand_starts_the_backoff_over_and_it_grows_again(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await page.evaluate("Math.random = () => 0.999")
    nobody = free_port()
    await start(
        page, f"ws://127.0.0.1:{nobody}/ws", backoff={"initial": 40, "max": 300}, maxRetries=4
    )
    # "Reconnect now" in the middle of a wait: it goes at once, and failures count again
    await page.evaluate(
        """() => {
             rt.on("$state", (s) => {
               if (s.state === "reconnecting" && s.attempt === 2 && !window.pressed) {
                 window.pressed = true;
                 rt.reconnect();
               }
             });
           }"""
    )
    await wait_for(page, "rt.state === 'closed'")
    waits = [(w["attempt"], w["delay"]) for w in await seen(page, "$state", state="reconnecting")]
    assert waits == [(1, 39), (2, 79), (1, 39), (2, 79), (3, 159)]
    connects = [c["attempt"] for c in await seen(page, "$state", state="connecting")]
    assert connects == [0, 1, 0, 1, 2, 3]  # the wait at attempt 2 was cut short
    # and after a final close, reconnect() starts over (and gives up again)
    await page.evaluate("window.seen.length = 0; rt.reconnect()")
    await wait_for(page, "seen.some(e => e.state === 'closed')")
    waits = [(w["attempt"], w["delay"]) for w in await seen(page, "$state", state="reconnecting")]
    assert waits == [(1, 39), (2, 79), (3, 159)]
    [closed] = await seen(page, "$state", state="closed")
    assert closed["reason"] == "gave up after 4 attempts"


async def test_backoff_delays_are_jittered(browser: Browser, server: int) -> None:
    page = await open_page(browser, server)
    nobody = free_port()
    for _ in range(3):
        await start(
            page, f"ws://127.0.0.1:{nobody}/ws", backoff={"initial": 40, "max": 160}, maxRetries=6
        )
    # Chromium itself slows repeated failing handshakes (a failed one can take 2 s)
    await wait_for(page, "clients.every(c => c.state === 'closed')", timeout=30_000)
    delays: dict[int, list[int]] = {}
    for wait in await seen(page, "$state", state="reconnecting"):
        ceiling = min(160, 40 * 2 ** (wait["attempt"] - 1))
        assert 0 <= wait["delay"] < ceiling, wait
        delays.setdefault(wait["client"], []).append(wait["delay"])
    assert len(delays) == 3 and all(len(d) == 5 for d in delays.values())
    assert len({tuple(d) for d in delays.values()}) == 3  # three clients, three schedules
    assert len({d for ds in delays.values() for d in ds}) > 5


@pytest.mark.parametrize("code", [4001, 1008, 4403])
async def test_no_reconnect_after_a_close_a_retry_cannot_fix(
    browser: Browser, server: int, code: int
) -> None:
    page = await open_page(browser, server)
    before = (await server_saw(server))["hits"].get(f"close/{code}", 0)
    await start(page, f"/ws/close/{code}", backoff={"initial": 20, "max": 50})
    await wait_for(page, "rt.state === 'closed'")
    [closed] = await seen(page, "$state", state="closed")
    assert (closed["code"], closed["reason"]) == (code, f"closed with {code} on purpose")
    await page.wait_for_timeout(800)  # many backoff periods
    assert (await server_saw(server))["hits"][f"close/{code}"] == before + 1
    assert await seen(page, "$state", state="reconnecting") == []
    assert await page.evaluate("rt.send('note', {n: 1})") == "rejected"


@pytest.mark.parametrize("code", [4003, 1011, 1013])
async def test_reconnects_after_a_close_that_may_pass(
    browser: Browser, server: int, code: int
) -> None:
    page = await open_page(browser, server)
    await start(page, f"/ws/close/{code}", backoff={"initial": 20, "max": 50})
    await wait_for(page, "seen.filter(e => e.state === 'reconnecting').length >= 3")
    first = (await seen(page, "$state", state="reconnecting"))[0]
    assert (first["code"], first["attempt"]) == (code, 1)
    await page.evaluate("rt.close()")
    [closed] = await seen(page, "$state", state="closed")
    assert (closed["code"], closed["reason"]) == (1000, "closed by the page")


# -- heartbeats -------------------------------------------------------------------------


async def test_pings_are_answered_so_the_server_keeps_the_connection(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    before = (await server_saw(server))["hits"].get("echo", 0)
    # the server pings every 0.3 s and closes a client silent 0.5 s after a ping (4002)
    await start(page, "/ws/echo", heartbeat={"interval": 0.3, "timeout": 0.5})
    await wait_for(page, "rt.state === 'open'")
    await page.wait_for_timeout(2500)
    assert await page.evaluate("rt.state") == "open"
    assert await seen(page, "$state", state="reconnecting") == []
    assert (await server_saw(server))["hits"]["echo"] == before + 1
    # the same server closes a bare WebSocket that does not answer
    code = await page.evaluate(
        """() => new Promise((resolve) => {
             const bare = new WebSocket(`ws://${location.host}/ws/echo`);
             bare.onclose = (e) => resolve(e.code);
           })"""
    )
    assert code == 4002


async def test_a_silent_server_is_taken_for_dead_and_left(browser: Browser) -> None:
    with uvicorn_process(APP, env={"REDIS_URL": ""}) as (port, proc):
        page = await open_page(browser, port)
        await start(
            page,
            "/ws/echo",
            heartbeat={"interval": 0.3, "timeout": 0.5},
            backoff={"initial": 50, "max": 200},
            connectTimeout=500,
        )
        await wait_for(page, "rt.state === 'open'")
        os.kill(proc.pid, signal.SIGSTOP)  # the TCP connection stays up; nothing comes
        try:
            await wait_for(page, "seen.some(e => e.reason === 'server silent')", timeout=5000)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await wait_for(page, "rt.state === 'open'")
        [silent] = await seen(page, "$state", reason="server silent")
        assert (silent["state"], silent["code"]) == ("reconnecting", 1000)


async def test_a_quiet_server_is_pinged_not_left(browser: Browser) -> None:
    # a server with heartbeats off never pings: the client asks it, and it answers
    with uvicorn_server(APP, env={"REDIS_URL": "", "CLIENT_JS_HEARTBEAT": "off"}) as port:
        page = await open_page(browser, port)
        await start(page, "/ws/echo", heartbeat={"interval": 0.2, "timeout": 0.3})
        await wait_for(page, "rt.state === 'open'")
        await page.wait_for_timeout(2000)  # four times interval + timeout
        assert await page.evaluate("rt.state") == "open"
        assert await seen(page, "$state", state="reconnecting") == []
        assert (await server_saw(port))["hits"]["echo"] == 1


# -- the send buffer --------------------------------------------------------------------


async def test_sends_while_disconnected_are_buffered_and_the_oldest_dropped(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/gate/drop", buffer={"size": 3}, backoff={"initial": 20, "max": 100})
    await wait_for(page, "rt.state === 'reconnecting'")
    results = await page.evaluate("[...Array(10).keys()].map(i => rt.send('note', {n: i + 1}))")
    assert results == ["queued"] * 10
    overflow = await seen(page, "$overflow")
    assert [(e["policy"], e["message"]["n"], e["total"]) for e in overflow] == [
        ("drop-oldest", n, n) for n in range(1, 8)
    ]
    await get(f"http://127.0.0.1:{server}/open", params={"tag": "drop"})
    await wait_for(page, "rt.state === 'open'")
    assert await page.evaluate("rt.send('note', {n: 11})") == "sent"
    for _ in range(50):
        if len((await server_saw(server))["received"].get("drop", [])) == 4:
            break
        await page.wait_for_timeout(50)
    assert (await server_saw(server))["received"]["drop"] == [8, 9, 10, 11]


async def test_a_full_buffer_can_reject_instead(browser: Browser, server: int) -> None:
    page = await open_page(browser, server)
    await start(
        page,
        "/ws/gate/reject",
        buffer={"size": 2, "overflow": "reject"},
        backoff={"initial": 20, "max": 100},
    )
    results = await page.evaluate("[1, 2, 3, 4].map(n => rt.send('note', {n}))")
    assert results == ["queued", "queued", "rejected", "rejected"]
    overflow = await seen(page, "$overflow")
    assert [(e["policy"], e["message"]["n"]) for e in overflow] == [("reject", 3), ("reject", 4)]
    await get(f"http://127.0.0.1:{server}/open", params={"tag": "reject"})
    await wait_for(page, "rt.state === 'open'")
    for _ in range(50):
        if (await server_saw(server))["received"].get("reject"):
            break
        await page.wait_for_timeout(50)
    await page.wait_for_timeout(100)
    assert (await server_saw(server))["received"]["reject"] == [1, 2]


async def test_a_bad_buffer_is_refused(browser: Browser, server: int) -> None:
    page = await open_page(browser, server)
    with pytest.raises(Exception, match=r"buffer\.overflow must be"):
        await start(page, "/ws/echo", buffer={"overflow": "block"})
    with pytest.raises(Exception, match=r"buffer\.size must be a whole number"):
        await start(page, "/ws/echo", buffer={"size": -1})


async def test_without_a_buffer_sends_while_away_are_refused(browser: Browser, server: int) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/gate/none", buffer={"size": 0}, backoff={"initial": 20, "max": 100})
    assert await page.evaluate("rt.send('note', {n: 1})") == "rejected"
    [overflow] = await seen(page, "$overflow")
    assert (overflow["message"], overflow["total"]) == ({"type": "note", "n": 1}, 1)
    await page.evaluate("rt.close()")


# -- recovery and rtframe's frames ------------------------------------------------------


async def test_reconnects_with_the_last_positions_and_takes_a_failed_recovery(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/stamped", backoff={"initial": 20, "max": 50})
    await wait_for(page, "seen.some(e => e.on === '$recovery')")
    ticks = await seen(page, "*")
    assert [(t["n"], t["$pos"]) for t in ticks] == [
        (1, {"group": "g", "epoch": "e1", "offset": 4}),
        (2, {"group": "g", "epoch": "e1", "offset": 5}),
    ]  # messages arrive whole, `$pos` included
    since = (await server_saw(server))["since"]["stamped"]
    assert since[0] == ""
    assert json.loads(since[1]) == {"g": {"epoch": "e1", "offset": 5}}
    [recovery] = await seen(page, "$recovery")
    assert recovery["recovered"] is False
    # nothing was replayed: the client carries on from where the group is now
    assert await page.evaluate("rt.positions()") == {"g": {"epoch": "e2", "offset": 9}}
    [restart] = await seen(page, "$state", state="reconnecting")
    assert (restart["code"], restart["reason"]) == (1012, "restarting")
    assert await page.evaluate("rt.forget(); rt.positions()") == {}


async def test_dropped_frames_are_recovered_by_reconnecting(browser: Browser, server: int) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/dropped", backoff={"initial": 20, "max": 50})
    await wait_for(page, "seen.filter(e => e.state === 'connecting').length === 2")
    assert [e["count"] for e in await seen(page, "$dropped")] == [3]
    [again] = await seen(page, "$state", state="reconnecting")
    assert again["reason"] == "recovering dropped frames"
    assert again["attempt"] == 0  # a reconnect the client chose is no failure
    since = (await server_saw(server))["since"]["dropped"]
    assert json.loads(since[-1]) == {"g": {"epoch": "e1", "offset": 7}}
    # the replay fills the gap; 11, shown before the gap was filled, is not shown twice
    await wait_for(page, "seen.filter(e => e.on === '*').length === 6")
    ticks = [e["$pos"]["offset"] for e in await seen(page, "*")]
    assert ticks == [7, 11, 8, 9, 10, 12]
    assert await page.evaluate("rt.positions()") == {"g": {"epoch": "e1", "offset": 12}}


async def test_a_restart_notice_is_followed_even_if_the_server_never_closes(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/drain", backoff={"initial": 20, "max": 50})
    await wait_for(page, "seen.some(e => e.reason === 'server restarting')")
    [notice] = await seen(page, "$reconnect")
    [leaving] = await seen(page, "$state", reason="server restarting")
    # after_ms (200) + the 2 s the server had to close us, then at most `initial` more
    assert 2200 <= leaving["at"] - notice["at"] <= 2400
    assert leaving["code"] == 1000
    await wait_for(page, "rt.state === 'open'")
    assert (await server_saw(server))["hits"]["drain"] == 2


async def test_presence_lists_and_frames_that_are_not_json_or_badly_stamped(
    browser: Browser, server: int
) -> None:
    page = await open_page(browser, server)
    await start(page, "/ws/presence")
    await wait_for(page, "seen.some(e => e.on === '*')")
    assert len(await seen(page, "$presence")) == 2
    members = await page.evaluate("rt.presence('room')")
    assert members == [{"id": "c2", "user": "bob", "connected_at": 2.0, "meta": {"away": True}}]
    assert await page.evaluate("rt.presence('elsewhere')") == []
    [invalid] = await seen(page, "$invalid")
    assert invalid["data"] == "this is not JSON"
    assert await page.evaluate("rt.stats.invalidFrames") == 1
    # a malformed position reaches the page as it came, but is never sent back in $since
    [tick] = await seen(page, "*")
    assert tick["$pos"] == {"group": "g", "epoch": 5, "offset": -1}
    assert await page.evaluate("rt.positions()") == {}


async def test_the_client_file_is_revalidated_with_its_etag_in_process() -> None:
    from rtframe import RealtimeApp
    from rtframe.client_js import serve_client
    from rtframe.testing import TestClient

    app = RealtimeApp()
    assert serve_client(app, "/static/") == "/static/rtframe.js"
    with pytest.raises(ValueError, match="must start with"):
        serve_client(app, "static")
    async with TestClient(app) as client:
        first = await client.get("/static/rtframe.js")
        assert first.status == 200 and first.headers["cache-control"] == "no-cache"
        again = await client.get(
            "/static/rtframe.js", headers={"if-none-match": first.headers["etag"]}
        )
        assert again.status == 304 and again.body == b""
