"""RedisLayer on a real 3-primary Redis Cluster with sharded pub/sub (SPUBLISH/SSUBSCRIBE)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis
from redis.cluster import RedisCluster

from rtframe import RedisLayer
from rtframe.sync import SyncPublisher
from rtframe.testing import TestClient

from .conftest import Recorder
from .test_contract import room_app
from .test_redis_layer import joined

ROOMS = [f"r{i}" for i in range(12)]


def shard_subscribers(ports: list[int], channel: str) -> int:
    """SSUBSCRIBE count of `channel` on the primary that owns its slot."""
    with RedisCluster(host="127.0.0.1", port=ports[0]) as cluster:
        node = cluster.get_node_from_key(channel)
        with redis.Redis(host=node.host, port=node.port) as client:
            reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
            return int(reply[1])


async def test_groups_spread_over_shards_and_cross_processes(
    cluster_ports: list[int], prefix: str
) -> None:
    a = RedisLayer(f"redis://127.0.0.1:{cluster_ports[0]}", cluster=True, prefix=prefix)
    b = RedisLayer(f"redis://127.0.0.1:{cluster_ports[1]}", cluster=True, prefix=prefix)
    publisher = SyncPublisher(f"redis://127.0.0.1:{cluster_ports[2]}", cluster=True, prefix=prefix)
    app_a = room_app(a)
    try:
        async with TestClient(app_a) as ca, TestClient(room_app(b)) as cb:
            sessions_a = [ca.websocket(f"/room/{r}") for r in ROOMS]
            sessions_b = [cb.websocket(f"/room/{r}") for r in ROOMS]
            members_a = [await s.__aenter__() for s in sessions_a]
            members_b = [await s.__aenter__() for s in sessions_b]
            for ws in members_a:
                await joined(ws)
            ids_b = [await joined(ws) for ws in members_b]
            # twelve group channels hash to slots on every primary: one subscriber per shard
            assert len(b._subscribers) == 3
            assert shard_subscribers(cluster_ports, f"{prefix}:g:room.r0") == 2

            for room, ws_a, ws_b in zip(ROOMS, members_a, members_b, strict=True):
                await app_a.broadcast(f"room.{room}", f'{{"room":"{room}"}}')
                assert await ws_a.receive_json() == {"room": room}
                assert await ws_b.receive_json() == {"room": room}

            await app_a.send_to(ids_b[5], '{"direct":5}')
            assert await members_b[5].receive_json() == {"direct": 5}

            await asyncio.to_thread(publisher.broadcast, "room.r3", {"from": "sync"})
            assert await members_a[3].receive_json() == {"from": "sync"}
            assert await members_b[3].receive_json() == {"from": "sync"}

            for s in sessions_b:
                await s.__aexit__(None, None, None)
            for _ in range(100):
                if shard_subscribers(cluster_ports, f"{prefix}:g:room.r0") == 1:
                    break
                await asyncio.sleep(0.02)
            assert shard_subscribers(cluster_ports, f"{prefix}:g:room.r0") == 1
            for s in sessions_a:
                await s.__aexit__(None, None, None)
        assert a.stats.malformed == 0 and b.stats.malformed == 0
    finally:
        publisher.close()
        await a.stop()
        await b.stop()


async def test_a_group_follows_its_slot_to_another_shard(
    cluster_ports: list[int], prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rtframe.layers.redis")
    url = f"redis://127.0.0.1:{cluster_ports[0]}"
    a = RedisLayer(url, cluster=True, prefix=prefix, reconnect_backoff=(0.05, 0.5))
    b = RedisLayer(url, cluster=True, prefix=prefix, reconnect_backoff=(0.05, 0.5))
    channel = f"{prefix}:g:room.moving"
    app_a = room_app(a)
    try:
        async with TestClient(app_a) as ca, TestClient(room_app(b)) as cb:
            async with ca.websocket("/room/moving") as wa, cb.websocket("/room/moving") as wb:
                await joined(wa)
                await joined(wb)
                assert shard_subscribers(cluster_ports, channel) == 2
                before = a._placement[channel.encode()].name
                await asyncio.to_thread(move_slot, cluster_ports, channel)
                # the old owner dropped the subscriptions; both layers follow the slot
                for _ in range(200):
                    if shard_subscribers(cluster_ports, channel) == 2:
                        break
                    await asyncio.sleep(0.025)
                assert shard_subscribers(cluster_ports, channel) == 2
                await app_a.broadcast("room.moving", '{"after":"move"}')
                assert await wa.receive_json() == {"after": "move"}
                assert await wb.receive_json() == {"after": "move"}
                assert a._placement[channel.encode()].name != before
                assert any("slot moved" in r.message for r in caplog.records)
    finally:
        await a.stop()
        await b.stop()


def move_slot(ports: list[int], channel: str) -> None:
    """Hand the slot of `channel` to another primary (no keys live there to migrate)."""
    clients = [redis.Redis(port=p, decode_responses=True) for p in ports]
    try:
        with RedisCluster(host="127.0.0.1", port=ports[0]) as cluster:
            slot = cluster.keyslot(channel)
            owner = cluster.get_node_from_key(channel)
        source = next(c for c, p in zip(clients, ports, strict=True) if p == owner.port)
        target = next(c for c, p in zip(clients, ports, strict=True) if p != owner.port)
        source_id = source.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
        target_id = target.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)  # type: ignore[no-untyped-call]
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)  # type: ignore[no-untyped-call]
        for c in (target, source, *(c for c in clients if c not in (source, target))):
            c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)  # type: ignore[no-untyped-call]
    finally:
        for c in clients:
            c.close()


async def test_a_publish_follows_a_moved_slot(cluster_ports: list[int], prefix: str) -> None:
    """A publisher that still routes to the old owner gets MOVED, reloads the slot map and
    publishes on the new owner: no error, no lost frame."""
    url = f"redis://127.0.0.1:{cluster_ports[0]}"
    a = RedisLayer(url, cluster=True, prefix=prefix)
    b = RedisLayer(url, cluster=True, prefix=prefix)
    a.bind(Recorder())
    got = Recorder()
    b.bind(got)
    channel = f"{prefix}:g:room.m"
    try:
        await a.start()
        await a.publish("room.m", "warm")  # a knows the slot's owner and has a connection
        await asyncio.to_thread(move_slot, cluster_ports, channel)
        await b.start()
        await b.subscribe("room.m")  # on the new owner
        await a.publish("room.m", "after the move")
        assert await got.wait_groups(1) == [("room.m", "after the move")]
        assert len(a._publishing.nodes) == 2  # the old owner's and the new owner's
    finally:
        await a.stop()
        await b.stop()
