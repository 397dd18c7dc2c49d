"""Reading the latest snapshot: one GET for callers that overlap, never too old."""

import asyncio
import time

import pytest

from core.frames import SharedText
from core.redis import close_redis
from metrics.store import load_latest, store_snapshot
from tests.support.hosts import HOST, host_event


@pytest.fixture
async def redis_client(clean_redis):
    yield clean_redis
    await close_redis()


def gets(redis_sync) -> int:
    """GET commands the Redis server has run so far (one per read of the latest)."""
    return redis_sync.info("commandstats").get("cmdstat_get", {}).get("calls", 0)


def event(ts: float) -> dict:
    snapshot = {"type": "metrics", "timestamp": "2026-01-19T14:30:05.000Z", "data": {}}
    return host_event(snapshot, ts)


async def test_overlapping_reads_share_one_get(redis_client):
    stored = await store_snapshot(event(100.0), ttl=60)
    before = gets(redis_client)
    asked_at = time.monotonic()
    results = await asyncio.gather(*(load_latest(HOST, asked_at) for _ in range(50)))
    assert gets(redis_client) - before == 1
    assert all(result.event["text"] == stored["text"] for result in results)
    assert isinstance(results[0].event["text"], SharedText)


async def test_a_read_sent_before_the_caller_asked_is_not_shared(redis_client):
    await store_snapshot(event(100.0), ttl=60)
    before = gets(redis_client)
    first = asyncio.ensure_future(load_latest(HOST))
    await asyncio.sleep(0)  # the first read is made
    await asyncio.sleep(0)  # its GET is sent, the answer not read yet
    second = asyncio.ensure_future(load_latest(HOST, time.monotonic()))
    await asyncio.gather(first, second)
    assert gets(redis_client) - before == 2


async def test_a_read_not_sent_yet_is_shared_by_later_callers(redis_client):
    await store_snapshot(event(100.0), ttl=60)
    before = gets(redis_client)
    first = asyncio.ensure_future(load_latest(HOST, time.monotonic()))
    await asyncio.sleep(0)  # the first read is made; its GET goes out next turn
    second = asyncio.ensure_future(load_latest(HOST, time.monotonic()))
    await asyncio.gather(first, second)
    assert gets(redis_client) - before == 1


async def test_nothing_stored_reads_as_none(redis_client):
    assert (await load_latest(HOST, time.monotonic())).event is None
