"""Snapshots kept in Redis: the latest, for a client that connects between ticks, and
a bounded history, for a dashboard that opens with the last minutes drawn."""

import asyncio
import functools
import json
import socket
import time
from typing import Any

import redis
from django.conf import settings
from redis import asyncio as aioredis

from monitor.frames import SharedText
from monitor.loop_local import LoopLocal


def _make_client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL, timeout=5, **settings.REDIS_CONNECTION_OPTIONS
    )
    return aioredis.Redis(connection_pool=pool)


_clients = LoopLocal(_make_client)


def latest_key() -> str:
    """Return the Redis key that holds the latest snapshot event."""
    return f"{settings.METRICS_REDIS_PREFIX}:latest"


def get_redis() -> aioredis.Redis:
    """Return this event loop's Redis client (connections belong to their loop)."""
    return _clients.get()


def history_key() -> str:
    """Return the Redis sorted set of recent snapshots, scored by publish time."""
    return f"{settings.METRICS_REDIS_PREFIX}:history"


async def store_snapshot(event: dict[str, Any], ttl: float) -> None:
    """Store a snapshot event as the latest (expiring after `ttl` s) and in history.

    History keeps METRICS_HISTORY_SECONDS of snapshots; older ones are trimmed here,
    so the set stays bounded whatever the interval.
    """
    keep = settings.METRICS_HISTORY_SECONDS
    async with get_redis().pipeline(transaction=False) as pipe:
        pipe.set(latest_key(), json.dumps(event), px=int(ttl * 1000))
        pipe.zadd(history_key(), {event["text"]: event["ts"]})
        pipe.zremrangebyscore(history_key(), "-inf", f"({event['ts'] - keep}")
        pipe.expire(history_key(), int(keep) + 60)
        await pipe.execute()


def heartbeat_key() -> str:
    """Return the Redis key holding the wall time of the leader's last tick."""
    return f"{settings.METRICS_REDIS_PREFIX}:publisher:heartbeat"


async def save_heartbeat(wall_time: float, interval: float) -> None:
    """Record that the leading publisher, on `interval`, ticked at `wall_time`."""
    beat = {"at": wall_time, "interval": interval, "host": socket.gethostname()}
    await get_redis().set(heartbeat_key(), json.dumps(beat), ex=86400)


def parse_heartbeat(raw: bytes | None) -> dict[str, Any] | None:
    """Decode a stored heartbeat; None if absent or garbled."""
    try:
        beat = json.loads(raw) if raw is not None else None
        return {
            "at": float(beat["at"]),
            "interval": float(beat["interval"]),
            "host": str(beat.get("host", "")),
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


async def load_heartbeat() -> dict[str, Any] | None:
    """Return the leader's last tick (wall time `at`, `interval`, `host`) if known."""
    return parse_heartbeat(await get_redis().get(heartbeat_key()))


def load_heartbeat_sync() -> dict[str, Any] | None:
    """load_heartbeat() for synchronous views."""
    return parse_heartbeat(get_sync_redis().get(heartbeat_key()))


@functools.cache
def get_sync_redis() -> redis.Redis:
    """A thread-safe blocking client, for synchronous views."""
    options = dict(settings.REDIS_CONNECTION_OPTIONS, socket_timeout=5)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def load_history(since: float) -> tuple[list[str], dict[str, Any] | None]:
    """Return the snapshot texts published since wall time `since`, oldest first,
    with the publisher's heartbeat."""
    client = get_sync_redis()
    with client.pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(history_key(), since, "+inf")
        pipe.get(heartbeat_key())
        texts, beat = pipe.execute()
    return [text.decode() for text in texts], parse_heartbeat(beat)


class LatestRead:
    """One GET of the latest snapshot, shared by the callers that overlap it."""

    def __init__(self) -> None:
        # When the GET was sent (time.monotonic()); None until the task first runs.
        self.began: float | None = None
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> dict[str, Any] | None:
        self.began = time.monotonic()
        return await _read_latest()

    def answers(self, not_before: float | None) -> bool:
        """Whether this read's answer is no older than `not_before`."""
        return not_before is None or self.began is None or self.began >= not_before


_latest_reads: LoopLocal[dict[str, LatestRead]] = LoopLocal(dict)


async def load_latest(not_before: float | None = None) -> dict[str, Any] | None:
    """Return the latest snapshot event, or None if there is none (or it is garbled).

    Callers that overlap share one read, if it is sent no earlier than `not_before`
    (a time.monotonic() value): a storm of connects costs a few GETs, not one each,
    and none gets an answer older than it asked for. The event's text is a
    SharedText, framed once for all of them.
    """
    reads = _latest_reads.get()
    read = reads.get("latest")
    if read is None or not read.answers(not_before):
        read = reads["latest"] = LatestRead()
        read.task.add_done_callback(lambda _: _forget_read(reads, read))
    return await asyncio.shield(read.task)


def _forget_read(reads: dict[str, LatestRead], read: LatestRead) -> None:
    if reads.get("latest") is read:
        del reads["latest"]


async def _read_latest() -> dict[str, Any] | None:
    raw = await get_redis().get(latest_key())
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("text"), str)
        or not isinstance(event.get("ts"), int | float)
    ):
        return None
    return dict(event, text=SharedText(event["text"]))


async def close_redis() -> None:
    """Close this event loop's Redis client, if it made one."""
    client = _clients.pop()
    if client is not None:
        await client.aclose(close_connection_pool=True)
