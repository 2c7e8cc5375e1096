"""Ordinary Django views: the room list, a room's page, and a no-JavaScript post form."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from .models import Message, Room
from .realtime import Said, rooms


@login_required
def room_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        title = request.POST.get("title", "").strip()[:100]
        slug = slugify(title)[:50]
        if slug:
            Room.objects.get_or_create(slug=slug, defaults={"title": title})
            return redirect("room", slug=slug)
    return render(request, "chat/rooms.html", {"rooms": Room.objects.order_by("title")})


@login_required
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = get_object_or_404(Room, slug=slug)
    latest = Message.objects.filter(room=room).select_related("author").order_by("-created_at")
    history = list(latest[:50])
    return render(request, "chat/room.html", {"room": room, "history": history[::-1]})


@login_required
@require_POST
def post_message(request: HttpRequest, slug: str) -> HttpResponse:
    """Post without JavaScript: save, then tell the connected browsers in one line."""
    room = get_object_or_404(Room, slug=slug)
    text = request.POST.get("text", "").strip()[:2000]
    if text:
        message = Message.objects.create(room=room, author=request.user, text=text)
        # Sync code reaches the event loop through async_to_sync; `rooms.send` encodes
        # the message once and publishes it to the room's group.
        async_to_sync(rooms.send)(Said.of(message), room=room.slug)
    return redirect("room", slug=room.slug)
