"""Background work of the chat, written as Django's standard `@task` functions.

`settings.TASKS` sends them through rtframe's Django Tasks backend: they run in the
server process (no REDIS_URL), or in `rtframe worker` processes on Redis. Either way,
the task runs inside an rtframe task, so `current_task()` gives it the app's messaging:
it reports its progress to the socket that asked (enqueued inside `notify(conn)`) and
posts its result to the room.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from rtframe.django import database_sync_to_async
from rtframe.tasks import current_task

from .models import Message, Room

if TYPE_CHECKING:  # typed against Django 6, which has django.tasks
    from django.tasks import task
else:
    try:  # Django 6
        from django.tasks import task
    except ImportError:  # Django 4.2-5.x: the django-tasks backport
        from django_tasks import task

#: how many of the room's newest messages a summary reads
RECENT = 200


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


@task
async def summarise_room(room: str, asked_by: str) -> dict[str, object]:
    """Count the room's recent messages per user and in words; post the result to the room.

    Enqueued inside `rtframe.django.tasks.notify(conn)`, so each `progress()` reaches the
    socket that asked as a `task_progress` frame, and so does the outcome: a room deleted
    meanwhile fails the task, and the asker's page is told (`error: "DoesNotExist"`).
    """
    from .realtime import rooms  # imported here: realtime.py imports this module

    ctx = current_task()
    await ctx.progress(0.0)
    messages = await recent_messages(room)
    await ctx.progress(0.25)
    per_user = dict(Counter(author for author, _ in messages).most_common())
    words = 0
    # counted a slice at a time, each reported: the asker's bar moves as the work does
    step = max(1, len(messages) // 4)
    for start in range(0, len(messages), step):
        words += sum(len(text.split()) for _, text in messages[start : start + step])
        done = min(start + step, len(messages)) / len(messages)
        await ctx.progress(round(0.25 + 0.7 * done, 2))
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
    await ctx.broadcast(rooms, summary, room=room)
    await ctx.progress(1.0)
    return summary.model_dump(mode="json")
