"""The example chat in two real browser tabs (headless Chromium) against uvicorn."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from .browser import chromium
from .servers import uvicorn_server

pytestmark = pytest.mark.e2e


async def join(browser: Browser, url: str, nick: str) -> Page:
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await page.fill("input[name=nick]", nick)
    await page.click("#join button")
    await expect(page.locator("#log")).to_contain_text(f"you are {nick} in lobby")
    assert errors == []
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("input[name=text]", text)
    await page.click("#say button")


async def test_two_tabs_chat_in_one_room() -> None:
    with uvicorn_server("examples.chat.app:app", env={"REDIS_URL": ""}) as port:
        async with chromium() as browser:
            ada = await join(browser, f"http://127.0.0.1:{port}/", "ada")
            bob = await join(browser, f"http://127.0.0.1:{port}/", "bob")
            await expect(ada.locator("#log")).to_contain_text("bob joined")

            await say(ada, "hello bob")
            await expect(bob.locator("#log .said")).to_have_text(["ada: hello bob"])
            await say(bob, "hi ada")
            await expect(ada.locator("#log .said")).to_have_text(["ada: hello bob", "bob: hi ada"])

            await say(bob, "/nick robert")
            await expect(ada.locator("#log")).to_contain_text("bob is now robert")

            await bob.close()
            await expect(ada.locator("#log")).to_contain_text("robert left")
