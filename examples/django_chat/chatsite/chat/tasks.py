"""Background work of the chat, written as Django's standard `@task` functions.

`settings.TASKS` sends them through rtframe's Django Tasks backend: they run in the
server process (no REDIS_URL), or in `rtframe worker` processes on Redis. Either way,
the task runs inside an rtframe task, so `current_task()` gives it the app's messaging:
it reports its progress to the socket that asked and posts its result to the room.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from rtframe import LayerError
from rtframe.django import database_sync_to_async
from rtframe.tasks import TaskProgressFrame, current_task

from .models import Message, Room

if TYPE_CHECKING:  # typed against Django 6, which has django.tasks
    from django.tasks import task
else:
    try:  # Django 6
        from django.tasks import task
    except ImportError:  # Django 4.2-5.x: the django-tasks backport
        from django_tasks import task

logger = logging.getLogger(__name__)

#: how many of the room's newest messages a summary reads
RECENT = 200
#: the task the progress frames name (the rtframe task that runs it is the backend's)
TASK_NAME = f"{__name__}.summarise_room"


class Summary(BaseModel):
    """What every member of the room receives when a summary is ready."""

    type: Literal["summary"] = "summary"
    room: str
    asked_by: str
    messages: int
    words: int
    per_user: dict[str, int]
    first: str | None
    last: str | None
    text: str  # the line the page shows


def describe(messages: list[tuple[str, str]], per_user: dict[str, int], words: int) -> str:
    if not messages:
        return "No messages yet."
    counts = ", ".join(f"{user} {n}" for user, n in per_user.items())
    return (
        f"{len(messages)} messages, {words} words ({counts}). "
        f"First: {messages[0][1]!r}. Last: {messages[-1][1]!r}."
    )


@database_sync_to_async
def recent_messages(slug: str) -> list[tuple[str, str]]:
    """The room's newest `RECENT` messages, oldest first: (author, text).

    Raises:
        Room.DoesNotExist: the room was deleted since the page joined it.
    """
    room = Room.objects.get(slug=slug)
    newest = (
        Message.objects.filter(room=room)
        .select_related("author")
        .order_by("-created_at", "-id")[:RECENT]
    )
    return [(m.author.get_username(), m.text) for m in reversed(newest)]


async def report(asker: str, done: float) -> None:
    """Record how far the summary got, and push it to the socket that asked.

    Django's enqueue API cannot name a connection to notify, so the socket's id travels
    as an argument and the `task_progress` frame is sent to it here: the frame
    rtframe's own `Task.using(notify=conn)` brings, through the app's layer, from
    whichever process runs the task.
    """
    ctx = current_task()
    await ctx.progress(done)  # the status record (`tasks.handle(id).info()`)
    await tell(asker, status="running", progress=done)


async def tell(
    asker: str,
    status: Literal["running", "failed"],
    progress: float | None = None,
    error: str | None = None,
) -> None:
    ctx = current_task()
    frame = TaskProgressFrame(
        task_id=ctx.id,
        task=TASK_NAME,
        status=status,
        progress=progress,
        attempt=ctx.attempt,
        error=error,
    )
    try:
        await ctx.send_to(asker, frame)
    except LayerError as exc:
        # as for rtframe's own progress frames: the work goes on, the loss is logged
        # (an asker whose page is gone is logged by the layer, not raised)
        logger.warning("summary progress did not reach connection %s: %s", asker, exc)


@task
async def summarise_room(room: str, asker: str, asked_by: str) -> dict[str, object]:
    """Count the room's recent messages per user and in words; post the result to the room.

    `asker` is the connection that asked (it gets the progress), `asked_by` its user.
    """
    from .realtime import rooms  # imported here: realtime.py imports this module

    await report(asker, 0.0)
    try:
        messages = await recent_messages(room)
    except Room.DoesNotExist:
        # the asker's page would wait forever: tell it (the class name only, as rtframe's
        # own frames do), and fail the task so its record says why
        await tell(asker, status="failed", error="DoesNotExist")
        raise
    await report(asker, 0.25)
    per_user = dict(Counter(author for author, _ in messages).most_common())
    words = 0
    # counted a slice at a time, each reported: the asker's bar moves as the work does
    step = max(1, len(messages) // 4)
    for start in range(0, len(messages), step):
        words += sum(len(text.split()) for _, text in messages[start : start + step])
        done = min(start + step, len(messages)) / len(messages)
        await report(asker, round(0.25 + 0.7 * done, 2))
    summary = Summary(
        room=room,
        asked_by=asked_by,
        messages=len(messages),
        words=words,
        per_user=per_user,
        first=messages[0][1] if messages else None,
        last=messages[-1][1] if messages else None,
        text=describe(messages, per_user, words),
    )
    await current_task().broadcast(rooms, summary, room=room)
    await report(asker, 1.0)
    return summary.model_dump(mode="json")
