"""The chat's WebSocket side: one route per room, messages saved and broadcast.

The browser opens `/ws/chat/<room>` with its Django session cookie; rtframe hands the
logged-in user to each handler as a typed parameter. "Summarise" starts a Django task
(`chat/tasks.py`) through the Tasks engine made here, which `settings.TASKS` names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.conf import settings
from pydantic import BaseModel, Field

from rtframe import Connection, Group, HistoryPolicy, Reject, WebSocketRouter
from rtframe.client_js import serve_client
from rtframe.django import LoginRequired, VerifiedUser, create_app, database_sync_to_async
from rtframe.django.tasks import notify, register
from rtframe.tasks import Tasks

from .models import Message, Room
from .tasks import summarise_room

ws = WebSocketRouter()
# One group per room, named from the path parameter. It keeps its last 300 messages for
# 10 minutes, so a page that reconnects (rtframe.js does it by itself) gets what it
# missed; the page renders older messages from the database.
rooms = Group("chat.{room}", history=HistoryPolicy(size=300, ttl=600))


class Say(BaseModel):
    """What a browser sends: `{"type": "say", "text": "hello"}`."""

    type: Literal["say"] = "say"
    text: str = Field(min_length=1, max_length=2000)


class Said(BaseModel):
    """What every member of the room receives."""

    type: Literal["said"] = "said"
    id: int
    user: str
    text: str
    at: datetime

    @classmethod
    def of(cls, message: Message) -> Said:
        return cls(
            id=message.pk,
            user=message.author.get_username(),
            text=message.text,
            at=message.created_at,
        )


# The ORM is synchronous: run it in Django's database thread, with stale connections
# closed around it as Django does for each HTTP request.
@database_sync_to_async
def room_exists(slug: str) -> bool:
    return Room.objects.filter(slug=slug).exists()


@database_sync_to_async
def save_message(slug: str, author_id: int, text: str) -> Said:
    message = Message.objects.create(
        room=Room.objects.get(slug=slug), author_id=author_id, text=text
    )
    return Said.of(message)


@ws.route("/ws/chat/{room}")
async def join(conn: Connection, room: str, user: LoginRequired) -> None:
    """Runs on the handshake. `LoginRequired` already refused anonymous visitors."""
    if not await room_exists(room):
        raise Reject(4404, f"no room {room!r}")
    # join first: an open socket is already in its room, so nothing sent meanwhile
    # misses it (and a reconnecting page's missed messages are replayed after accept)
    await rooms.add(conn)  # joins "chat.<room>"; left automatically on disconnect
    await conn.accept()


@ws.on_receive("/ws/chat/{room}")
@rooms.broadcast  # the returned Said goes to everyone in the room, sender included
async def say(msg: Say, room: str, user: VerifiedUser) -> Said:
    # VerifiedUser re-reads the session now and then (RTFRAME["USER_RECHECK_SECONDS"]):
    # after a logout elsewhere, this socket is closed instead of posting as the user.
    return await save_message(room, user.pk, msg.text)


class Summarise(BaseModel):
    """The page's "Summarise" button: `{"type": "summarise"}`."""

    type: Literal["summarise"] = "summarise"


class SummaryStarted(BaseModel):
    """The reply to the asker; `task_progress` frames about `task_id` follow."""

    type: Literal["summary_started"] = "summary_started"
    task_id: str


@ws.on_receive("/ws/chat/{room}")
async def summarise(
    msg: Summarise, conn: Connection, room: str, user: VerifiedUser
) -> SummaryStarted:
    # Enqueued here rather than from a view: this handler knows the socket that asked,
    # which is where the progress goes, and the page needs no extra request. Django's
    # own API (`aenqueue`) sends it through settings.TASKS to the engine below;
    # `notify(conn)` names the socket its `task_progress` frames go to.
    with notify(conn):
        result = await summarise_room.aenqueue(room, user.get_username())
    return SummaryStarted(task_id=result.id)


app = create_app([ws])  # layer and limits come from settings.RTFRAME

# The engine Django's tasks travel through (settings.TASKS names it). Without Redis they
# run in this process; with REDIS_URL, in `rtframe worker chatsite.asgi:application`
# processes, and reach the browsers through the app's Redis layer all the same.
_layer = settings.RTFRAME.get("LAYER") or {}
if _layer.get("URL"):
    # its keys beside the layer's, under the project's prefix (RTFRAME_PREFIX)
    _prefix = (_layer.get("OPTIONS") or {}).get("prefix", "rtframe")
    tasks = Tasks.redis(_layer["URL"], app=app, prefix=f"{_prefix}:tasks")
else:
    tasks = Tasks(app=app)
register(tasks)  # a worker that imports only this module runs Django's tasks too
serve_client(app)  # the browser client the room page imports: /rtframe/rtframe.js

# Prometheus metrics at /metrics, served beside Django (rtframe.metrics; the `metrics` extra).
try:
    from rtframe.metrics import serve_metrics
except ModuleNotFoundError:  # pragma: no cover - installed with rtframe[metrics] or [dev]
    pass
else:
    serve_metrics(app)
