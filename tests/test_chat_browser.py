"""The example chat in real browser tabs (headless Chromium) against uvicorn: chatting,
reconnecting by itself after its server was killed, recovering what it missed, and a
phone-sized screen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from playwright.async_api import Browser, Page, expect

from .browser import chromium
from .layers.redis_servers import REDIS_URL, require_redis
from .servers import ROOT, free_port, uvicorn_process, uvicorn_server, wait_for_port

pytestmark = pytest.mark.e2e

APP = "examples.chat.app:app"


async def join(browser: Browser, url: str, nick: str, **context: object) -> Page:
    page = await (await browser.new_context(**context)).new_page()  # type: ignore[arg-type]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await page.fill("input[name=nick]", nick)
    await page.click("#join button")
    await expect(page.locator("#log")).to_contain_text(f"you are {nick} in lobby")
    await expect(page.locator("#status")).to_have_text("connected")
    assert errors == []
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("input[name=text]", text)
    await page.click("#say button")


async def test_two_tabs_chat_in_one_room() -> None:
    with uvicorn_server(APP, env={"REDIS_URL": ""}) as port:
        async with chromium() as browser:
            ada = await join(browser, f"http://127.0.0.1:{port}/", "ada")
            bob = await join(browser, f"http://127.0.0.1:{port}/", "bob")
            await expect(ada.locator("#log")).to_contain_text("bob joined")
            for page in (ada, bob):  # the member list, from `$presence` frames
                await expect(page.locator("#people")).to_have_text("Here (2): ada, bob")

            await say(ada, "hello bob")
            await expect(bob.locator("#log .said")).to_have_text(["ada: hello bob"])
            await say(bob, "hi ada")
            await expect(ada.locator("#log .said")).to_have_text(["ada: hello bob", "bob: hi ada"])

            await say(bob, "/nick robert")
            await expect(ada.locator("#log")).to_contain_text("bob is now robert")
            await expect(ada.locator("#people")).to_have_text("Here (2): ada, robert")

            # a newcomer sees what was said before it came (the room's history)
            cy = await join(browser, f"http://127.0.0.1:{port}/", "cy")
            await expect(cy.locator("#log .said")).to_have_text(["ada: hello bob", "bob: hi ada"])

            # an error frame is shown as a sentence, not a code
            await ada.evaluate("chat.client.send('say', {text: ''})")
            await expect(ada.locator("#log .error")).to_have_text(
                ["That message was not accepted."]
            )

            await expect(ada.locator("#people")).to_have_text("Here (3): ada, robert, cy")
            await bob.close()
            await expect(ada.locator("#log")).to_contain_text("robert left")
            await expect(ada.locator("#people")).to_have_text("Here (2): ada, cy")


@contextmanager
def chat_on(port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """The chat under uvicorn on a given port, so a restarted server is where it was."""
    command = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


async def expect_reconnecting(page: Page) -> None:
    await expect(page.locator("#status")).to_have_text("reconnecting…")
    await expect(page.locator("#banner")).to_be_visible()
    await expect(page.locator("#banner")).to_contain_text("Reconnecting")


@pytest.fixture
def chat_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    require_redis()
    prefix = f"chatb{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.redis
async def test_a_killed_server_s_pages_come_back_with_every_missed_line_once(
    chat_prefix: str,
) -> None:
    env = {"REDIS_URL": REDIS_URL, "CHAT_REDIS_PREFIX": chat_prefix}
    port = free_port()
    with uvicorn_process(APP, env=env) as (other, _):
        async with chromium() as browser:
            with chat_on(port, env) as doomed:
                ada = await join(browser, f"http://127.0.0.1:{port}/", "ada")
                bob = await join(browser, f"http://127.0.0.1:{port}/", "bob")
                cy = await join(browser, f"http://127.0.0.1:{other}/", "cy")
                await say(cy, "before")
                for page in (ada, bob):
                    await expect(page.locator("#log .said")).to_have_text(["cy: before"])

                doomed.send_signal(signal.SIGKILL)
                doomed.wait()
                for page in (ada, bob):
                    await expect_reconnecting(page)
                missed = [f"missed {n}" for n in range(1, 6)]
                for text in missed:  # said through the other server while this one is down
                    await say(cy, text)
                await expect(cy.locator("#log .said")).to_have_count(6)
                await expect_reconnecting(ada)  # still down

            with chat_on(port, env):
                lines = ["cy: before", *(f"cy: {text}" for text in missed)]
                for page in (ada, bob):
                    await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
                    await expect(page.locator("#log .said")).to_have_text(lines)
                    await expect(page.locator("#banner")).to_be_hidden()
                    await expect(page.locator("#log")).to_contain_text("5 missed messages:")
                await say(cy, "after")
                for page in (ada, bob):
                    await expect(page.locator("#log .said")).to_have_text([*lines, "cy: after"])
                    offsets = await page.eval_on_selector_all(
                        "#log [data-offset]", "lines => lines.map(l => Number(l.dataset.offset))"
                    )
                    assert offsets == list(range(offsets[0], offsets[0] + 7))  # once, in order
                assert await ada.locator("#log .gap").count() == 0
                # the killed server's connections are listed until they expire: one name
                # per person all the same
                await expect(ada.locator("#people")).to_have_text("Here (3): ada, bob, cy")


async def test_after_a_restart_that_lost_the_history_the_page_says_so() -> None:
    env = {"REDIS_URL": ""}  # the memory layer: a restarted server has a new history
    port = free_port()
    async with chromium() as browser:
        with chat_on(port, env) as doomed:
            ada = await join(browser, f"http://127.0.0.1:{port}/", "ada")
            await say(ada, "before")
            await expect(ada.locator("#log .said")).to_have_text(["ada: before"])
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            await expect_reconnecting(ada)
        with chat_on(port, env):
            await expect(ada.locator("#status")).to_have_text("connected", timeout=20_000)
            await expect(ada.locator("#log .gap")).to_have_text(
                ["Some messages sent while you were away could not be recovered."]
            )
            bob = await join(browser, f"http://127.0.0.1:{port}/", "bob")
            await say(bob, "after")
            await expect(ada.locator("#log .said")).to_have_text(["ada: before", "bob: after"])


async def test_on_a_phone_screen_nothing_scrolls_sideways() -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    with uvicorn_server(APP, env={"REDIS_URL": ""}) as port:
        async with chromium() as browser:
            ada = await join(browser, f"http://127.0.0.1:{port}/", "ada", **phone)
            await say(ada, "https://example.com/" + "a-long-unbroken-path/" * 12)
            await say(ada, "words " * 60)
            await expect(ada.locator("#log .said")).to_have_count(2)
            widths = await ada.evaluate(
                """() => [document.documentElement.scrollWidth, window.innerWidth,
                          ...[...document.querySelectorAll('main > *')].map(e => e.getBoundingClientRect().right)]"""
            )
            page_width, viewport, *rights = widths
            assert page_width <= viewport == 390
            assert max(rights) <= 390
            log = await ada.eval_on_selector("#log", "e => [e.scrollWidth, e.clientWidth]")
            assert log[0] <= log[1]
