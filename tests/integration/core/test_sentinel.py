"""REDIS_URL naming Sentinels: every kind of Redis client the service makes (the
async client of the store, leader lock and viewers; the blocking one of the
history; Django's cache and the login throttle's script; the channel layer; the
runner's start-up check) reaches the master the Sentinels name, and after the
master is killed, the replica they promote, without being made again."""

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.core.management.base import CommandError

from accounts.throttles import LoginIPThrottle
from core.cache import PrefixedRedisCache
from core.keys import redis_key
from core.redis import channel_layer_host, close_redis, get_redis, get_sync_redis
from metrics.leadership import LeaderLock, host_leader_key
from metrics.store import load_history, load_latest, store_snapshot
from metrics.viewers import count_viewers
from runner.checks import check_redis
from tests.support.hosts import HOST, host_event, host_key
from tests.support.waiting import eventually

# What a client of the service may raise while the Sentinels fail over.
OUTAGE = (redis.RedisError, OSError, TimeoutError)


@dataclass
class Clients:
    """The clients of one REDIS_URL, made as the service makes them."""

    url: str
    layer: RedisPubSubChannelLayer
    cache: PrefixedRedisCache
    channel: str = ""
    lock: LeaderLock | None = None


@pytest.fixture
async def clients(settings):
    """Points the service's settings at the test's Sentinels; closes what it made."""
    made: list[Clients] = []

    async def make(url: str) -> Clients:
        settings.REDIS_URL = url
        get_sync_redis.cache_clear()
        host = channel_layer_host(url, settings.REDIS_CONNECTION_OPTIONS)
        layer = RedisPubSubChannelLayer(hosts=[host], prefix=redis_key(""))
        options = {**settings.REDIS_CONNECTION_OPTIONS, "socket_timeout": 5}
        cache = PrefixedRedisCache(
            url, {"KEY_PREFIX": redis_key("cache"), "OPTIONS": options}
        )
        made.append(Clients(url, layer, cache))
        return made[-1]

    yield make
    for each in made:
        with contextlib.suppress(*OUTAGE):
            await each.layer.flush()
    await close_redis()
    get_sync_redis.cache_clear()


async def use_every_client(clients: Clients, number: int) -> None:
    """Write and read through each kind of client; raise if any fails."""
    event = host_event({"type": "metrics", "n": number}, time.time())
    await store_snapshot(event, ttl=60)
    assert (await load_latest(HOST)).event["ts"] == event["ts"]
    # One lock: held before a failover, still held after it (the key replicated).
    clients.lock = clients.lock or LeaderLock(
        get_redis(), ttl=60, key=host_leader_key(HOST)
    )
    assert await clients.lock.acquire_or_renew()
    assert await count_viewers(HOST) == 0
    texts, _ = await asyncio.to_thread(load_history, HOST, event["ts"])
    assert texts == [event["text"]]
    cache = clients.cache
    await asyncio.to_thread(cache.set, "answer", number, 60)
    assert await asyncio.to_thread(cache.get, "answer") == number
    throttle = LoginIPThrottle()
    key = cache.make_key(f"attempts-{number}")
    assert await asyncio.to_thread(throttle.record_attempt, cache, key)
    await asyncio.to_thread(check_redis, clients.url, 5)
    layer = clients.layer
    if not clients.channel:
        # Subscribed once: after a failover the same subscription must deliver.
        clients.channel = await layer.new_channel()
        await layer.group_add("sentinel-test", clients.channel)
    await layer.group_send("sentinel-test", {"type": "test.message", "n": number})
    async with asyncio.timeout(2):
        while (await layer.receive(clients.channel))["n"] != number:
            pass


async def until_every_client_works(clients: Clients, within: float) -> int:
    """Try use_every_client() until it succeeds; return the number it wrote."""
    started = time.monotonic()
    number = 1000
    while True:
        number += 1
        try:
            await use_every_client(clients, number)
        except OUTAGE:
            if time.monotonic() - started > within:
                raise
            await asyncio.sleep(0.2)
        else:
            return number


async def test_every_client_reaches_the_master_and_after_a_kill_the_promoted_replica(
    sentinel_cluster, clients
):
    service = await clients(sentinel_cluster.url())
    await use_every_client(service, 1)
    master = sentinel_cluster.master()
    on_master = sentinel_cluster.server_client(master)
    assert on_master.get(host_key("latest")) is not None
    assert on_master.get(host_key("leader")) is not None

    master.kill()
    killed_at = time.monotonic()
    promoted = await eventually(
        lambda: sentinel_cluster.promoted_since(master), 15, "no replica promoted"
    )
    number = await until_every_client_works(service, within=15)
    assert time.monotonic() - killed_at < 15
    latest = json.loads(
        sentinel_cluster.server_client(promoted).get(host_key("latest"))
    )
    assert json.loads(latest["text"])["n"] == number


async def test_a_dead_sentinel_is_passed_over_at_once_and_two_still_fail_over(
    sentinel_cluster, clients
):
    # The first Sentinel of the URL is the one every new client asks first.
    sentinel_cluster.watchers[0].kill()
    service = await clients(sentinel_cluster.url())
    started = time.monotonic()
    await use_every_client(service, 1)
    # redis-py's default retries would spend ~4 s on the dead one per new pool.
    assert time.monotonic() - started < 2.0
    master = sentinel_cluster.master()
    master.kill()
    await eventually(
        lambda: sentinel_cluster.promoted_since(master), 15, "no replica promoted"
    )
    await until_every_client_works(service, within=15)


@pytest.mark.parametrize(
    "secured",
    [
        {"password": "server-pass", "sentinel_password": "sentinel-pass"},
        {"tls": True, "password": "server-pass"},
    ],
    ids=["passwords", "tls"],
)
async def test_passwords_and_tls_are_taken_from_the_sentinel_url(
    start_sentinel_cluster, clients, secured
):
    cluster = await asyncio.to_thread(start_sentinel_cluster, **secured)
    service = await clients(cluster.url())
    await use_every_client(service, 1)
    assert cluster.server_client(cluster.master()).get(host_key("latest"))


def test_the_start_up_check_asks_the_sentinels_and_names_what_each_answered(
    start_sentinel_cluster,
):
    cluster = start_sentinel_cluster(sentinel_password="sentinel-pass")
    url = cluster.url().replace("sentinel-pass", "wrong-pass")
    unknown_master = cluster.url().replace("/mymaster/", "/othermaster/")
    with pytest.raises(CommandError) as refused:
        check_redis(url, within=1)
    message = str(refused.value)
    assert "REDIS_URL=redis+sentinel://127.0.0.1:" in message
    assert "sentinel_password=***" in message
    assert "wrong-pass" not in message
    assert "no Sentinel names a live master" in message
    assert f"127.0.0.1:{cluster.watchers[0].port}: " in message
    with pytest.raises(CommandError, match="monitors no master 'othermaster'"):
        check_redis(unknown_master, within=1)
    check_redis(cluster.url(), within=5)
