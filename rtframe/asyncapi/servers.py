"""Server Objects, and which channels each one serves.

A WebSocket route is reached over `ws`/`wss`, an SSE endpoint over `http`/`https`. A
document with only WebSocket channels lists its servers and nothing more (every channel
is on every server, as AsyncAPI reads a channel without `servers`), so its bytes are
the same as before SSE existed. Once it has an SSE channel (`bindings.http`), `place`:

- gives the document a server of the missing family for each server of the other, with
  the same host and pathname: `default` at `ws://localhost:8000` gets `default-http` at
  `http://localhost:8000` (`wss` gives `https`); servers of both families given by the
  caller are kept as they are;
- lists on each channel the servers of its own family (`servers`, after `description`).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Literal

from ..exceptions import ConfigurationError
from . import names
from .schema import Channel, Reference, Server, ref

__all__ = ["place", "server"]

Family = Literal["ws", "http"]
_FAMILY: dict[str, Family] = {"ws": "ws", "wss": "ws", "http": "http", "https": "http"}
_SECURE = {"ws": "wss", "http": "https"}


def server(host: str, protocol: str = "ws", pathname: str | None = None) -> Server:
    """One Server Object, checked: `host` is `host[:port]`, `protocol` ws, wss, http or
    https (the last two serve SSE endpoints).

    Raises:
        ConfigurationError: the host, protocol or pathname is malformed.
    """
    if not host or "://" in host or "/" in host or any(c.isspace() for c in host):
        raise ConfigurationError(
            f"server host {host!r} must be host[:port], with no scheme and no path "
            "(put a path prefix in pathname)"
        )
    if protocol not in _FAMILY:
        raise ConfigurationError(
            f"server protocol must be 'ws', 'wss', 'http' or 'https', not {protocol!r}"
        )
    out = typing.cast(Server, {"host": host, "protocol": protocol})
    if pathname:
        if not pathname.startswith("/"):
            raise ConfigurationError(f"server pathname {pathname!r} must start with '/'")
        out["pathname"] = pathname
    return out


def place(
    servers: Mapping[str, Server], channels: Mapping[str, Channel]
) -> tuple[dict[str, Server], dict[str, Channel]]:
    """`servers` completed and `channels` each listing its family's servers (see the
    module docstring); both unchanged when no channel is an SSE endpoint's."""
    kinds = {cid: _kind(channel) for cid, channel in channels.items()}
    if "http" not in kinds.values():
        return dict(servers), dict(channels)
    out = dict(servers)
    for wanted in sorted(set(kinds.values())):
        if any(_family(s) == wanted for s in out.values()):
            continue
        others = [(n, s) for n, s in servers.items() if _family(s) not in (None, wanted)]
        made = names.unique([f"{n}-{wanted}" for n, _ in others], set(out))
        for name, (_, other) in zip(made, others, strict=True):
            out[name] = _as(other, wanted)
    out = dict(sorted(out.items()))
    placed = {}
    for cid, channel in channels.items():
        refs = [ref(f"#/servers/{n}") for n, s in out.items() if _family(s) == kinds[cid]]
        placed[cid] = _with_servers(channel, refs)
    return out, placed


def _kind(channel: Channel) -> Family:
    return "http" if "http" in channel.get("bindings", {}) else "ws"


def _family(server: Server) -> Family | None:
    return _FAMILY.get(server.get("protocol", ""))


def _as(other: Server, family: Family) -> Server:
    """A server of `family` at `other`'s place (the secure kind of a secure one)."""
    secure = other["protocol"] in ("wss", "https")
    protocol = _SECURE[family] if secure else family
    out: dict[str, Any] = {**other, "protocol": protocol}
    out.pop("description", None)  # it described the other server
    return typing.cast(Server, out)


def _with_servers(channel: Channel, refs: list[Reference]) -> Channel:
    """`channel` with `servers` set to `refs` (dropped when empty), in reading order."""
    out: dict[str, Any] = {}
    for key, value in channel.items():
        if key in ("parameters", "messages") and "servers" not in out and refs:
            out["servers"] = refs
        if key != "servers":
            out[key] = value
    return typing.cast(Channel, out)
