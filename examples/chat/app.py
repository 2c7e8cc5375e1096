"""A room chat: nicknames, join/leave notices, recent history, and a page served by the app.

The page (static/index.html) runs on `rtframe.js`, the browser client served at
/rtframe/rtframe.js: it reconnects by itself, and a reconnecting page is sent every line
it missed meanwhile (the room keeps its last 300 lines; a newcomer sees the last 50).

Run it with one command from the repository root:

    scripts/chat            # or: uvicorn examples.chat.app:app

then open http://127.0.0.1:8000/ in two browser tabs.

Two processes sharing one Redis (docs/redis.md), each tab on either port:

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.chat.app:app --port 8000 &
    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.chat.app:app --port 8001
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from rtframe import (
    Connection,
    Group,
    HTMLResponse,
    LayerUnavailableError,
    PresenceNotice,
    PresencePolicy,
    RealtimeApp,
    RedisLayer,
    Request,
    WebSocketRouter,
    sends,
)
from rtframe.client_js import serve_client
from rtframe.history import HistoryPolicy
from rtframe.limits import DEFAULT_RATE_LIMIT, NO_LIMITS

logger = logging.getLogger(__name__)
ws = WebSocketRouter()
# What is said in a room is kept for an hour after its last line: a page that reconnects
# gets the lines it missed, a newcomer the last 50. Arrivals and departures go to a group
# of their own, without history: they are news only while they happen, and a reconnect
# storm replaying them would cost thousands of frames per newcomer.
rooms = Group("chat.{room}", history=HistoryPolicy(size=300, ttl=3600, on_join=50))
crowds = Group("crowd.{room}")
# Who has the room's page open, for its member list: pages ask for it (`?presence=true`),
# scripts and load tests do not, and get no `$presence` frames they would have to skip.
pages = Group("here.{room}", presence=PresencePolicy(events=True))

ROOM = "/ws/chat/{room}"


class Say(BaseModel):
    """A line of chat typed by a user."""

    type: Literal["say"] = "say"
    text: str = Field(min_length=1, max_length=2000)


class Rename(BaseModel):
    """Change the sender's nickname."""

    type: Literal["rename"] = "rename"
    nick: str = Field(min_length=1, max_length=32)


class Said(BaseModel):
    """A chat line, as every member of the room receives it."""

    type: Literal["said"] = "said"
    nick: str
    text: str
    at: datetime


class Notice(BaseModel):
    """Someone joined, left or changed their nickname."""

    type: Literal["notice"] = "notice"
    text: str
    joined: list[str] = []
    left: list[str] = []


class Welcome(BaseModel):
    """Sent to a newcomer: who they are and where."""

    type: Literal["welcome"] = "welcome"
    nick: str
    room: str


class Crowd:
    """Join and leave notices, coalesced per room.

    The first arrival or departure in a quiet room is announced at once; those that follow
    within `window` seconds are announced together when it ends. Announcing each of 2,000
    clients that reconnect at once to everyone already there would cost 2,000 x 2,000
    deliveries; coalesced, a storm costs a few notices a second.
    """

    def __init__(self, window: float = 0.25) -> None:
        self.window = window
        self._open: dict[str, tuple[list[str], list[str]]] = {}  # room -> (joined, left)
        self._tasks: set[asyncio.Task[None]] = set()

    async def announce(self, room: str, nick: str, joined: bool) -> None:
        batch = self._open.get(room)
        if batch is not None:  # a window is open: this one goes out when it closes
            batch[0 if joined else 1].append(nick)
            return
        self._open[room] = ([], [])
        asyncio.get_running_loop().call_later(self.window, self._close_window, room)
        await self._send(room, [nick] if joined else [], [] if joined else [nick])

    def _close_window(self, room: str) -> None:
        joined, left = self._open.pop(room)
        if joined or left:
            task = asyncio.get_running_loop().create_task(self._send(room, joined, left))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _send(room: str, joined: list[str], left: list[str]) -> None:
        parts = [f"{_names(joined)} joined"] if joined else []
        parts += [f"{_names(left)} left"] if left else []
        notice = Notice(text="; ".join(parts), joined=joined, left=left)
        try:
            await crowds.broadcast(notice, room=room)
        except LayerUnavailableError as exc:  # members on this server got it
            logger.warning("notice to room %r reached this server only: %s", room, exc)


def _names(nicks: list[str]) -> str:
    if len(nicks) > 3:
        return f"{', '.join(nicks[:2])} and {len(nicks) - 2} others"
    return " and ".join([", ".join(nicks[:-1]), nicks[-1]]) if len(nicks) > 1 else nicks[0]


crowd = Crowd()


@ws.route(ROOM)
@sends(Welcome)
@sends(Notice, group=crowds)
async def join(conn: Connection, room: str, nick: str = "guest", presence: bool = False) -> None:
    """Accept everyone; the nickname comes from the `nick` query parameter."""
    nick = nick.strip()[:32] or "guest"
    conn.state.nick = nick
    conn.state.listed = presence
    # Join before accepting: once the handshake completes the socket is in the room in
    # every process (with the Redis layer, `add` returns when Redis confirmed the
    # subscription), and a socket not open yet does not hear its own notice. The room's
    # missed (or latest) lines reach the page when the socket opens, before the welcome.
    await rooms.add(conn)
    await crowds.add(conn)
    if presence:
        await pages.add(conn, presence_user=nick)
    await crowd.announce(room, nick, joined=True)
    await conn.accept()
    await conn.send(Welcome(nick=nick, room=room))
    if presence:
        await send_member_list(conn, room)


async def send_member_list(conn: Connection, room: str) -> None:
    """Everyone on the page now, as one `$presence` frame; its events keep it current.

    rtframe.js starts each connection with empty lists and applies `$presence` frames as
    they come, so one whose `joined` holds everyone is the whole list.
    """
    try:
        here = await pages.present(room=room)
    except LayerUnavailableError as exc:
        logger.warning("no member list for %r in room %r: %s", conn, room, exc)
        return
    await conn.send(PresenceNotice(group=pages.name(room=room), joined=here, left=[]))


@ws.on_receive(ROOM)
@rooms.broadcast
async def say(msg: Say, conn: Connection) -> Said:
    """Everyone in the room, the sender included, receives the line."""
    return Said(nick=conn.state.nick, text=msg.text, at=datetime.now(UTC))


@ws.on_receive(ROOM)
@rooms.broadcast
async def rename(msg: Rename, conn: Connection) -> Notice:
    old, conn.state.nick = conn.state.nick, msg.nick
    if conn.state.listed:  # the member list shows the new name (a `$presence` event)
        await pages.add(conn, presence_user=msg.nick)
    return Notice(text=f"{old} is now {msg.nick}")


@ws.on_disconnect(ROOM)
@sends(Notice, group=crowds)
async def leave(conn: Connection, room: str) -> None:
    await rooms.discard(conn)
    await crowds.discard(conn)
    await crowd.announce(room, conn.state.nick, joined=False)


# With REDIS_URL set, every process serving the chat shares its rooms through Redis.
layer = (
    RedisLayer(os.environ["REDIS_URL"], prefix=os.environ.get("CHAT_REDIS_PREFIX", "chat"))
    if os.environ.get("REDIS_URL")
    else None
)
# The default limits apply (connections, handshakes, 50 messages a second per client);
# CHAT_NO_LIMITS=1 lifts them for load tests that storm the chat from one address.
no_limits = bool(os.environ.get("CHAT_NO_LIMITS"))
# Browsers' handshakes must come from the chat's own page (same scheme, host and port) or
# an origin listed in CHAT_ALLOWED_ORIGINS ("https://chat.example.com ..."): another site
# cannot open a socket as its visitor. Clients sending no Origin (scripts) are let in.
app = RealtimeApp(
    routers=[ws],
    layer=layer,
    title="rtframe chat example",
    version="1.0.0",
    limits=NO_LIMITS if no_limits else None,
    rate_limit=None if no_limits else DEFAULT_RATE_LIMIT,
    allowed_origins=os.environ.get("CHAT_ALLOWED_ORIGINS", "").split(),
)

# Prometheus metrics at /metrics (rtframe.metrics), with the `metrics` extra installed.
try:
    from rtframe.metrics import serve_metrics
except ModuleNotFoundError:  # pragma: no cover - installed with rtframe[metrics] or [dev]
    logging.getLogger("chat").info("no /metrics: pip install 'rtframe[metrics]'")
else:
    serve_metrics(app)

# The browser client, at /rtframe/rtframe.js (rtframe.client_js).
serve_client(app)

PAGE = (Path(__file__).parent / "static" / "index.html").read_text()


@app.get("/")
async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)
