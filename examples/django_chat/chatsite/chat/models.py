"""Chat rooms and their messages, stored with the ORM like any Django data."""

# django-stubs infers field types only through its mypy plugin, not enabled here.
# mypy: disable-error-code="var-annotated"

from __future__ import annotations

from django.conf import settings
from django.db import models


class Room(models.Model):
    slug = models.SlugField(unique=True, max_length=50)
    title = models.CharField(max_length=100)

    def __str__(self) -> str:
        return str(self.title)


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"
