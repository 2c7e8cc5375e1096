"""Two people chat in real browsers: headless Chromium on the example under uvicorn."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from ..browser import chromium, require_chromium
from .conftest import PASSWORD, ChatServer

pytestmark = pytest.mark.e2e

require_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def open_room_as(browser: Browser, server: ChatServer, username: str) -> Page:
    """Log in through the form in a fresh browser profile and land in the room."""
    context = await browser.new_context(base_url=server.url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"/accounts/login/?next=/rooms/{server.room}/")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#status")).to_have_text("connected")
    assert not errors, errors
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_two_users_see_each_others_messages(
    browser: Browser, chat_server: ChatServer
) -> None:
    ada = await open_room_as(browser, chat_server, "ada")
    grace = await open_room_as(browser, chat_server, "grace")
    for page in (ada, grace):  # gone if the page reloads (the no-JavaScript form fallback)
        await page.evaluate("window.stillTheSamePage = true")

    await say(ada, "Hello Grace, from Ada's browser")
    await expect(grace.locator("#log")).to_contain_text("Hello Grace, from Ada's browser")
    await say(grace, "Hello Ada, Grace here")
    await expect(ada.locator("#log")).to_contain_text("Hello Ada, Grace here")

    for page in (ada, grace):
        users = await page.locator("#log li .user").all_inner_texts()
        texts = await page.locator("#log li .text").all_inner_texts()
        assert list(zip(users, texts, strict=True))[-2:] == [
            ("ada", "Hello Grace, from Ada's browser"),
            ("grace", "Hello Ada, Grace here"),
        ]
        assert await page.evaluate("window.stillTheSamePage") is True


async def test_logging_out_in_another_tab_sends_the_room_to_the_login_page(
    browser: Browser, chat_server: ChatServer
) -> None:
    room = await open_room_as(browser, chat_server, "ada")
    other_tab = await room.context.new_page()
    await other_tab.goto("/")
    await other_tab.click("text=Log out")
    # the room's socket is closed with 4001 at once; the page reloads into the login form
    await expect(room).to_have_url(re.compile(r"/accounts/login/"), timeout=5000)
