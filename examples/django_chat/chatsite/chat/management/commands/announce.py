"""`python manage.py announce lobby "Deploy done" --as ada`: post from outside the server.

A management command runs in its own process, so it reaches the browsers through Redis:
start the server with REDIS_URL set, and run this with the same REDIS_URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rtframe.layers.redis import RedisLayer
from rtframe.sync import broadcast_sync

from ...models import Message, Room
from ...realtime import Said, app, rooms


class Command(BaseCommand):
    help = "Post a message to a room as a user; connected browsers see it at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", help="the room's slug")
        parser.add_argument("text")
        parser.add_argument("--as", dest="username", required=True, help="the author")

    def handle(self, *args: Any, room: str, text: str, username: str, **options: Any) -> None:
        if not isinstance(app.layer, RedisLayer):
            raise CommandError("set REDIS_URL (the server's too): only Redis crosses processes")
        user_model = get_user_model()
        try:
            target = Room.objects.get(slug=room)
            author = user_model.objects.get(**{str(user_model.USERNAME_FIELD): username})
        except (Room.DoesNotExist, user_model.DoesNotExist):
            raise CommandError(f"no room {room!r} or no user {username!r}") from None
        message = Message.objects.create(room=target, author=author, text=text)
        # One line to reach every browser in the room, whichever server process holds it.
        broadcast_sync(rooms, Said.of(message), app=app, room=room)
        self.stdout.write(f"posted message {message.pk} to {room}")
