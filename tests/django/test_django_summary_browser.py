"""The example's "Summarise" in real browsers: the asker's page shows the Django task's
progress up to 100%, and another page of the room shows the summary it posts. Once with
the task run inside the server (in-memory layer), once by a separate `rtframe worker`
process on Redis."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from rtframe.tasks import Tasks

from ..browser import chromium, require_chromium
from ..tasks.conftest import Worker
from .conftest import EXAMPLE, ChatServer
from .test_django_browser import open_room_as, say

pytestmark = pytest.mark.e2e

require_chromium()

from playwright.async_api import Browser, Page, expect  # noqa: E402


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def summarise_and_watch(asker: Page, other: Page) -> str:
    """Click Summarise on `asker`; returns the task id once both pages saw it through."""
    # every percentage the page shows, to tell live progress from a jump to the end
    await asker.evaluate(
        """() => {
          window.shown = [];
          const percent = document.getElementById("summary-percent");
          new MutationObserver(() => window.shown.push(percent.textContent))
            .observe(percent, {childList: true, characterData: true, subtree: true});
        }"""
    )
    await asker.click("#summarise")
    await expect(asker.locator("#summary-percent")).to_have_text("100%")
    await expect(asker.locator("#summarise")).to_be_enabled()
    for page in (asker, other):
        summary = page.locator("#log li").filter(has_text="summary for ada").last
        await expect(summary).to_contain_text("Summarised here, please.")
    shown = await asker.evaluate("window.shown")
    assert len([p for p in shown if p not in ("0%", "100%")]) >= 2, shown  # steps between
    await expect(other.locator("#summary-percent")).to_have_text("")  # the asker's only
    task_id = await asker.locator("#summary-progress").get_attribute("data-task")
    assert task_id
    return task_id


async def test_summarise_shows_progress_to_the_asker_and_the_summary_to_the_room(
    browser: Browser, chat_server: ChatServer
) -> None:
    ada = await open_room_as(browser, chat_server, "ada")
    grace = await open_room_as(browser, chat_server, "grace")
    await say(ada, "Summarised here, please.")
    await expect(grace.locator("#log")).to_contain_text("Summarised here, please.")
    await summarise_and_watch(ada, grace)


@pytest.fixture
def worker(chat_server_redis: ChatServer) -> Iterator[Worker]:
    """`rtframe worker` for the example, as docs/django.md starts it: its own process."""
    env = chat_server_redis.env
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtframe", "worker", "chatsite.asgi:application"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = Worker(proc)
    try:
        started.wait_for("rtframe worker: ready")
        yield started
    finally:
        try:
            started.terminate(15)
        except subprocess.TimeoutExpired:
            started.kill()
        started.close()
        with redis.Redis.from_url(env["REDIS_URL"]) as client:  # this run's task keys
            keys = list(client.scan_iter(f"{env['RTFRAME_PREFIX']}:tasks*", count=1000))
            if keys:
                client.delete(*keys)


async def test_progress_reaches_the_browser_from_a_worker_process_on_redis(
    browser: Browser, chat_server_redis: ChatServer, worker: Worker
) -> None:
    ada = await open_room_as(browser, chat_server_redis, "ada")
    grace = await open_room_as(browser, chat_server_redis, "grace")
    await say(ada, "Summarised here, please.")
    await expect(grace.locator("#log")).to_contain_text("Summarised here, please.")
    task_id = await summarise_and_watch(ada, grace)

    # the worker process ran it, not the server: its status record says so
    env = chat_server_redis.env
    records = Tasks.redis(env["REDIS_URL"], prefix=f"{env['RTFRAME_PREFIX']}:tasks")
    try:
        # its end is saved just after the last frame: wait for it, boundedly
        for _ in range(500):
            info = await records.handle(task_id).info()
            if info.status.finished:
                break
            await asyncio.sleep(0.01)
    finally:
        await records.shutdown()
    assert info.status.value == "successful"
    assert info.workers == (f"{socket.gethostname()}:{worker.pid}",)
    assert "Traceback" not in worker.output, worker.output
